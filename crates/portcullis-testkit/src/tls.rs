use std::path::{Path, PathBuf};

/// A self-signed certificate for `localhost` and 127.0.0.1, written to PEM files.
pub struct TestCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
}

impl TestCert {
    pub fn generate() -> Self {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        Self { cert_pem: c.cert.pem(), key_pem: c.signing_key.serialize_pem(), cert_der: c.cert.der().to_vec() }
    }

    /// Writes `NAME.crt` and `NAME.key` into `dir`, returning their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }

    pub fn server_config(&self, alpn: &[&[u8]]) -> rustls::ServerConfig {
        use rustls::pki_types::pem::PemObject;
        let certs = vec![rustls::pki_types::CertificateDer::from(self.cert_der.clone())];
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap();
        let mut cfg =
            rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap();
        cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
        cfg
    }

    /// A client config trusting only this certificate.
    pub fn client_config(&self, alpn: &[&[u8]]) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from(self.cert_der.clone())).unwrap();
        let mut cfg =
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
        cfg
    }
}
