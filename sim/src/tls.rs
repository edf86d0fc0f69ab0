//! TLS beside plain TCP: the broker serves a second port with TLS, through
//! the same code as the binary's (`tern::transport::Tls`, `Endpoint`), and
//! a share of the clients connect to it and check its certificate against
//! the run's CA. A few probes speak plain MQTT to the TLS port, and a few
//! open a TLS handshake on the plain port: the broker must never answer
//! either with a CONNACK, and must close both.
//!
//! The certificates are made for each run from its seed, never kept on
//! disk: Ed25519 keys from seeded bytes, and Ed25519 signatures, which
//! are themselves deterministic and of one length. TLS's own randomness
//! (key shares, nonces) comes from ring and cannot be seeded; it changes
//! the bytes on the wire but not their number, and the history records
//! neither.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ED25519,
};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use crate::workload::{ClientPlan, Wire};

pub const BROKER_TLS_PORT: u16 = 8883;

/// The name the clients ask for and the server's certificate carries.
pub const BROKER_NAME: &str = "broker";

/// How much of a scenario's traffic goes over TLS.
#[derive(Debug, Clone)]
pub struct TlsMix {
    /// The chance that a client connects over TLS.
    pub share: f64,
    /// Clients that send plain MQTT to the TLS port.
    pub plaintext_probes: usize,
    /// Clients that open a TLS handshake on the plain port.
    pub hello_probes: usize,
}

/// One run's certificates: a CA, and the broker's certificate and key,
/// and the clients' settings that trust that CA alone.
pub struct RunTls {
    cert_pem: String,
    key_pem: String,
    pub client: Arc<ClientConfig>,
}

impl RunTls {
    pub fn new(seed: u64) -> RunTls {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x7157_7157_7157_7157);
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, "tern-sim CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let ca_key = ed25519_key(&mut rng);
        let ca = params.self_signed(&ca_key).expect("a self-signed CA");
        let issuer = Issuer::new(params, ca_key);
        let mut params =
            CertificateParams::new(vec![BROKER_NAME.to_owned()]).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, BROKER_NAME);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = ed25519_key(&mut rng);
        let cert = params.signed_by(&key, &issuer).expect("a signed server");
        RunTls {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            client: Arc::new(client_config(ca.der().clone())),
        }
    }

    /// The broker's TLS, made anew at each boot of its host as the binary
    /// makes it from files.
    pub fn server(&self) -> tern::transport::Tls {
        tern::transport::Tls::from_pem(
            self.cert_pem.as_bytes(),
            self.key_pem.as_bytes(),
            None,
            false,
        )
        .expect("the run's certificate and key make a server")
    }
}

/// A key from seeded bytes: PKCS#8 v1 for Ed25519 is a fixed prefix and
/// the 32-byte seed (RFC 8410).
fn ed25519_key(rng: &mut StdRng) -> KeyPair {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = PREFIX.to_vec();
    der.extend(rng.random::<[u8; 32]>());
    KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(der), &PKCS_ED25519)
        .expect("an Ed25519 key from 32 bytes")
}

/// TLS 1.3 and 1.2 with ring, trusting the run's CA alone.
fn client_config(ca: CertificateDer<'static>) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(ca).expect("the run's CA is a valid root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports both versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

impl TlsMix {
    /// Sends a share of the clients (not the hostile ones, whose limits
    /// are the point) over TLS, and adds the probes. From a generator of
    /// its own, after every other draw.
    pub fn apply(&self, clients: &mut Vec<ClientPlan>, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x7157_0000_7157_0000);
        for client in clients.iter_mut() {
            if !client.adversary && rng.random_bool(self.share) {
                client.wire = Wire::Tls;
            }
        }
        let churners: Vec<&ClientPlan> = clients
            .iter()
            .filter(|c| c.name.starts_with('c') && !c.connections.is_empty())
            .collect();
        if churners.is_empty() {
            return;
        }
        // A login the broker takes, should it answer: an observer's.
        let login = clients
            .iter()
            .find(|c| c.observer)
            .map(|c| c.login.clone())
            .unwrap_or_default();
        let kinds = [
            ("tp", self.plaintext_probes, Wire::PlainToTlsPort),
            ("th", self.hello_probes, Wire::TlsToPlainPort),
        ];
        let mut probes = Vec::new();
        for (prefix, count, wire) in kinds {
            for i in 0..count {
                let mut plan = churners[rng.random_range(0..churners.len())].clone();
                plan.name = format!("{prefix}{i}");
                plan.client_id = plan.name.clone();
                plan.start += Duration::from_millis(rng.random_range(0..2_000));
                plan.connections.truncate(1);
                plan.session_expiry = 0;
                plan.login = login.clone();
                plan.wire = wire;
                for connection in &mut plan.connections {
                    connection.clean = true;
                    connection.will = None;
                }
                probes.push(plan);
            }
        }
        clients.extend(probes);
    }
}
