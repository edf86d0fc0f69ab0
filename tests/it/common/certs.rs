//! Certificates made when a test runs (rcgen), never kept in the repo: a
//! CA, a server certificate for 127.0.0.1 and localhost, and client
//! certificates with a CN, written as PEM files into a directory of the
//! test's own that goes when it is dropped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate authority that signs servers and clients.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pub cert: CertificateDer<'static>,
    pub pem: String,
}

/// A certificate and its key, as DER for rustls and PEM for files.
pub struct Leaf {
    pub cert: CertificateDer<'static>,
    pub cert_pem: String,
    key: KeyPair,
}

impl Authority {
    pub fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("a CA key");
        let cert = params.self_signed(&key).expect("a self-signed CA");
        Authority {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
            cert: cert.der().clone(),
        }
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub fn server(&self) -> Leaf {
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        self.sign(
            names,
            "tern test server",
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate whose subject CN is `cn`.
    pub fn client(&self, cn: &str) -> Leaf {
        self.sign(Vec::new(), cn, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn sign(&self, names: Vec<String>, cn: &str, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("a leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("a signed leaf");
        Leaf {
            cert_pem: cert.pem(),
            cert: cert.der().clone(),
            key,
        }
    }
}

impl Leaf {
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivatePkcs8KeyDer::from(self.key.serialize_der()).into()
    }
}

/// A directory for one test's PEM files, removed when dropped.
pub struct Files {
    dir: PathBuf,
}

impl Files {
    pub fn new() -> Files {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tern-it-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the test's certificates");
        Files { dir }
    }

    /// Writes `contents` to the file `name` in the directory.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).expect("write a PEM file");
        path
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
