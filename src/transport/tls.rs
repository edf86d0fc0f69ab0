//! TLS under the protocol: a listener with a certificate secures each
//! connection's socket before MQTT (or WebSocket) reads a byte, and the
//! layers above see the same byte stream either way (`Secured`).
//!
//! rustls with ring alone, chosen explicitly: with a second provider
//! compiled in, rustls's implicit choice panics. The server's settings
//! sit behind a lock that a reload swaps, so a new certificate is used
//! by the next handshake while the connections already open keep theirs.
//! A program that holds its PEM in memory (the simulation, which must not
//! read the disk) makes the same settings from bytes (`Tls::from_pem`).

use std::io;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;

use super::sent_through::SentThrough;
use crate::config::ListenerConfig;

/// A listener's TLS: where its files are (none, if it was made from PEM
/// in memory), and the settings last read from them.
#[derive(Debug)]
pub struct Tls {
    files: Option<Files>,
    config: RwLock<Arc<ServerConfig>>,
}

/// What each input is called in an error: a file's key and path, or the
/// PEM's name.
struct Names {
    cert: String,
    key: String,
    ca: String,
}

#[derive(Debug, Clone)]
struct Files {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    ca: Option<std::path::PathBuf>,
    require_certificate: bool,
}

/// A connection's socket, as it is (`Left`) or inside TLS (`Right`;
/// boxed: a TLS session's state is kilobytes, a socket a few words).
pub type Secured<S> = Either<S, Box<SentThrough<TlsStream<S>>>>;

/// The socket's last read under TLS: what the connection reads next came
/// in it or before it.
impl<S: crate::net::Arrivals> crate::net::Arrivals for TlsStream<S> {
    fn last_arrival(&self) -> u64 {
        self.get_ref().0.last_arrival()
    }

    /// Left to the kernel: a read that takes part of a record, or a
    /// record with no application data, gives the connection no bytes,
    /// and the ACK it owed would wait for the kernel's timer.
    fn acknowledge(&self, _: crate::net::NextAcks) {}

    fn give_way(&self) {
        self.get_ref().0.give_way();
    }
}

impl Tls {
    /// The listener's TLS, if it has a certificate; its files are read
    /// now, and an error is one line that names the file.
    pub fn new(listener: &ListenerConfig) -> Result<Option<Tls>, String> {
        let (Some(cert), Some(key)) = (&listener.cert_file, &listener.key_file) else {
            return Ok(None);
        };
        let files = Files {
            cert: cert.clone(),
            key: key.clone(),
            ca: listener.ca_file.clone(),
            require_certificate: listener.require_certificate,
        };
        let config = RwLock::new(files.load()?);
        Ok(Some(Tls {
            files: Some(files),
            config,
        }))
    }

    /// TLS from PEM in memory: a certificate chain, its key, and the CA
    /// that client certificates are verified against, if any. The same
    /// settings as from files; a reload keeps them.
    pub fn from_pem(
        cert: &[u8],
        key: &[u8],
        ca: Option<&[u8]>,
        require_certificate: bool,
    ) -> Result<Tls, String> {
        let names = Names {
            cert: "certificate PEM".into(),
            key: "key PEM".into(),
            ca: "CA PEM".into(),
        };
        let chain = certificates(&names.cert, Ok(CertificateDer::pem_slice_iter(cert)))?;
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|e| format!("{}: {}", names.key, pem_error(e, "private key")))?;
        let ca = match ca {
            Some(ca) => Some(certificates(
                &names.ca,
                Ok(CertificateDer::pem_slice_iter(ca)),
            )?),
            None => None,
        };
        let config = server_config(chain, key, ca, require_certificate, &names)?;
        Ok(Tls {
            files: None,
            config: RwLock::new(config),
        })
    }

    /// Reads the files again for the handshakes to come. On an error the
    /// settings in use stay, and the error is returned.
    pub fn reload(&self) -> Result<(), String> {
        let Some(files) = &self.files else {
            return Ok(());
        };
        let config = files.load()?;
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = config;
        Ok(())
    }

    /// Runs the server's side of the handshake on `stream`; returns the
    /// secured stream and the verified client certificate's subject CN,
    /// if the client sent a certificate and it has one.
    pub async fn accept<S>(&self, stream: S) -> io::Result<(Secured<S>, Option<String>)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let config = self
            .config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let stream = TlsAcceptor::from(config).accept(stream).await?;
        let identity = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(common_name);
        Ok((Either::Right(Box::new(SentThrough::new(stream))), identity))
    }
}

impl Files {
    /// The server settings these files make.
    fn load(&self) -> Result<Arc<ServerConfig>, String> {
        let names = Names {
            cert: format!("cert_file {}", self.cert.display()),
            key: format!("key_file {}", self.key.display()),
            ca: self
                .ca
                .as_ref()
                .map_or_else(String::new, |ca| format!("ca_file {}", ca.display())),
        };
        let chain = certificates(&names.cert, CertificateDer::pem_file_iter(&self.cert))?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| format!("{}: {}", names.key, pem_error(e, "private key")))?;
        let ca = match &self.ca {
            Some(ca) => Some(certificates(&names.ca, CertificateDer::pem_file_iter(ca))?),
            None => None,
        };
        server_config(chain, key, ca, self.require_certificate, &names)
    }
}

type PemResult = Result<CertificateDer<'static>, rustls_pki_types::pem::Error>;

/// The server settings: TLS 1.2 and 1.3 with ring, client certificates
/// verified against `ca` if there is one.
fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca: Option<Vec<CertificateDer<'static>>>,
    require_certificate: bool,
    names: &Names,
) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match ca {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(verifier(
            ca,
            require_certificate,
            provider,
            &names.ca,
        )?),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("{} with {}: {e}", names.cert, names.key))?;
    Ok(Arc::new(config))
}

fn verifier(
    ca: Vec<CertificateDer<'static>>,
    require_certificate: bool,
    provider: Arc<CryptoProvider>,
    name: &str,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    for cert in ca {
        roots.add(cert).map_err(|e| format!("{name}: {e}"))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let verifier = match require_certificate {
        true => verifier,
        false => verifier.allow_unauthenticated(),
    };
    verifier.build().map_err(|e| format!("{name}: {e}"))
}

/// The certificates PEM gives: at least one; `name` says whose they are.
fn certificates(
    name: &str,
    pem: Result<impl Iterator<Item = PemResult>, rustls_pki_types::pem::Error>,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let fail = |e| format!("{name}: {}", pem_error(e, "certificate"));
    let chain = pem
        .map_err(fail)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    if chain.is_empty() {
        return Err(fail(rustls_pki_types::pem::Error::NoItemsFound));
    }
    Ok(chain)
}

fn pem_error(error: rustls_pki_types::pem::Error, kind: &str) -> String {
    match error {
        rustls_pki_types::pem::Error::Io(error) => format!("cannot read: {error}"),
        rustls_pki_types::pem::Error::NoItemsFound => format!("no {kind} in it"),
        other => format!("bad PEM: {other}"),
    }
}

/// The subject's common name (the first, if several), as mosquitto's
/// `use_identity_as_username` takes it.
fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let name = parsed.subject().iter_common_name().next()?;
    name.as_str().ok().map(str::to_owned)
}
