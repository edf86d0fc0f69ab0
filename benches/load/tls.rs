//! TLS for the load benchmark: a CA and a server certificate for
//! 127.0.0.1 made at start (rcgen, ECDSA P-256) and written where both
//! brokers read them, and a client (tokio-rustls, ring) that does a full
//! handshake and CONNECT on each connection, with no resumption, so that
//! each counts as a new client's cost.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tern::codec::{self, Connect, ConnectCode, DecodeOptions, Packet, ProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::client::timed;

/// The clients' settings: they trust the CA that [`files`] made.
static CLIENT: OnceLock<Arc<ClientConfig>> = OnceLock::new();

pub fn client() -> Arc<ClientConfig> {
    CLIENT
        .get()
        .expect("tls::files made the certificates")
        .clone()
}

/// Makes the certificates into `dir` as server.pem and server.key, which
/// `brokers` configures. mosquitto drops root for its own user before it
/// reads them, so they are readable by all (a benchmark's throwaway key).
pub fn files(dir: &Path) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "bench CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("CA key");
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let params = CertificateParams::new(names).expect("server params");
    let key = KeyPair::generate().expect("server key");
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    let (cert_path, key_path) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&cert_path, cert.pem()).expect("write server.pem");
    std::fs::write(&key_path, key.serialize_pem()).expect("write server.key");
    use std::os::unix::fs::PermissionsExt;
    for path in [dir, &cert_path, &key_path] {
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).expect("the CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Every connection a new client: no session to resume.
    client.resumption = rustls::client::Resumption::disabled();
    let _ = CLIENT.set(Arc::new(client));
}

/// TCP, a TLS handshake, CONNECT and an accepting CONNACK; then closed.
pub async fn handshake(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    client_id: &str,
) -> io::Result<()> {
    let tcp = timed(TcpStream::connect(addr)).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::from(addr.ip());
    let mut stream = timed(TlsConnector::from(config).connect(name, tcp)).await?;
    let connect = Packet::Connect(Box::new(Connect {
        version: ProtocolVersion::V311,
        clean_session: true,
        keep_alive: 600,
        client_id: client_id.to_owned(),
        will: None,
        username: None,
        password: None,
        properties: Default::default(),
    }));
    let mut buf = bytes::BytesMut::new();
    codec::encode(&connect, ProtocolVersion::V311, &mut buf);
    timed(stream.write_all(&buf)).await?;
    buf.clear();
    let options = DecodeOptions::default();
    loop {
        let decoded = codec::decode(&mut buf, &options)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        match decoded {
            Some(Packet::ConnAck(ack)) if ack.code == ConnectCode::Accepted => return Ok(()),
            Some(other) => return Err(io::Error::other(format!("CONNECT answered by {other:?}"))),
            None => {}
        }
        if timed(stream.read_buf(&mut buf)).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}
