//! Client certificates (mTLS): the TLS layer verifies the chain and revocation with
//! [`client_verifier`]; [`CertIdentity::from_der`] then maps the verified end-entity
//! certificate to the names a consumer can be matched on.
//!
//! `CertIdentity` does no verification of its own: call it only on the certificate rustls
//! accepted (`ServerConnection::peer_certificates()[0]`). Match consumers on the SHA-256
//! fingerprint (pinning) or on a SAN from a CA you control; the subject CN is for display and for
//! legacy CAs that issue no SANs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ring::digest;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// Why a certificate or a verifier could not be built. Carries paths and reasons, never key
/// material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// Not a DER X.509 certificate, or bytes follow it.
    #[error("not a DER-encoded X.509 certificate")]
    Malformed,
    /// The subject has more than one common name: which one is meant is ambiguous.
    #[error("certificate subject has more than one common name")]
    AmbiguousCommonName,
    /// A name in the certificate is not valid text.
    #[error("certificate contains a name that is not valid text")]
    BadName,
    /// The subject alternative name extension is malformed or repeated.
    #[error("malformed subject alternative name extension")]
    BadSubjectAltName,
    /// A PEM file cannot be read or holds nothing usable.
    #[error("cannot read {what} from {path}: {reason}")]
    Pem {
        /// What was expected ("CA certificates", "CRLs").
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused to build the verifier (e.g. a CRL it cannot parse).
    #[error("cannot build the client certificate verifier: {0}")]
    Verifier(String),
}

/// The identity a verified client certificate carries.
#[derive(Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// The subject's common name, if it has exactly one.
    pub common_name: Option<String>,
    /// The subject distinguished name as a string (`CN=…, O=…`, in certificate order).
    pub subject: String,
    /// The issuer distinguished name, same format.
    pub issuer: String,
    /// The serial number, lower-case hex with `:` between bytes.
    pub serial: String,
    /// SAN DNS names.
    pub dns_names: Vec<String>,
    /// SAN URIs (e.g. SPIFFE ids).
    pub uris: Vec<String>,
    /// SAN e-mail addresses.
    pub emails: Vec<String>,
    /// SHA-256 of the DER certificate, lower-case hex without separators.
    pub fingerprint_sha256: String,
}

impl fmt::Debug for CertIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertIdentity")
            .field("subject", &self.subject)
            .field("fingerprint_sha256", &self.fingerprint_sha256)
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl CertIdentity {
    /// Reads the identity from a DER certificate (already verified by the TLS layer).
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let (rest, cert) = X509Certificate::from_der(der).map_err(|_| CertError::Malformed)?;
        if !rest.is_empty() {
            return Err(CertError::Malformed);
        }
        let mut cns = cert.subject().iter_common_name();
        let common_name = match (cns.next(), cns.next()) {
            (None, _) => None,
            (Some(cn), None) => Some(cn.as_str().map_err(|_| CertError::BadName)?.to_owned()),
            (Some(_), Some(_)) => return Err(CertError::AmbiguousCommonName),
        };
        let (mut dns_names, mut uris, mut emails) = (Vec::new(), Vec::new(), Vec::new());
        if let Some(san) = cert.subject_alternative_name().map_err(|_| CertError::BadSubjectAltName)? {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(s) => dns_names.push((*s).to_owned()),
                    GeneralName::URI(s) => uris.push((*s).to_owned()),
                    GeneralName::RFC822Name(s) => emails.push((*s).to_owned()),
                    GeneralName::Invalid(..) => return Err(CertError::BadSubjectAltName),
                    _ => {}
                }
            }
        }
        Ok(Self {
            common_name,
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial: cert.raw_serial_as_string().to_ascii_lowercase(),
            dns_names,
            uris,
            emails,
            fingerprint_sha256: hex(digest::digest(&digest::SHA256, der).as_ref()),
        })
    }
}

fn pem_error(what: &'static str, path: &Path, reason: impl fmt::Display) -> CertError {
    CertError::Pem { what, path: path.display().to_string(), reason: reason.to_string() }
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|e| pem_error(what, path, e))
}

/// Builds the verifier for a TLS server config (`ServerConfig::builder().with_client_cert_verifier`)
/// from PEM files: trusted CA certificates in `ca_pem_path` and CRLs in `crl_pem_paths`.
///
/// With `required`, a client without a certificate fails the handshake; without it, anonymous
/// clients are let through (`allow_unauthenticated`) and later stages decide. Revocation: every
/// certificate of the chain below the root is checked against the CRLs given, and a certificate
/// whose issuer has no CRL among them is refused (unknown status fails closed); with no CRLs at
/// all, revocation is not checked. CRL `nextUpdate` is not enforced (a stale CRL keeps working
/// rather than locking every client out).
pub fn client_verifier(
    ca_pem_path: &Path,
    crl_pem_paths: &[PathBuf],
    required: bool,
) -> Result<Arc<dyn ClientCertVerifier>, CertError> {
    let ca = read(ca_pem_path, "CA certificates")?;
    let crls =
        crl_pem_paths.iter().map(|p| read(p, "CRLs").map(|b| (p.as_path(), b))).collect::<Result<Vec<_>, _>>()?;
    build_verifier(ca_pem_path, &ca, &crls, required)
}

/// As [`client_verifier`], from PEM text already in memory.
pub fn client_verifier_from_pem(
    ca_pem: &[u8],
    crl_pems: &[&[u8]],
    required: bool,
) -> Result<Arc<dyn ClientCertVerifier>, CertError> {
    let crls: Vec<(&Path, Vec<u8>)> = crl_pems.iter().map(|b| (Path::new("<memory>"), b.to_vec())).collect();
    build_verifier(Path::new("<memory>"), ca_pem, &crls, required)
}

fn build_verifier(
    ca_path: &Path,
    ca_pem: &[u8],
    crl_pems: &[(&Path, Vec<u8>)],
    required: bool,
) -> Result<Arc<dyn ClientCertVerifier>, CertError> {
    const CA: &str = "CA certificates";
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| pem_error(CA, ca_path, e))?;
        roots.add(cert).map_err(|e| pem_error(CA, ca_path, e))?;
    }
    if roots.is_empty() {
        return Err(pem_error(CA, ca_path, "no certificate found"));
    }
    let mut crls = Vec::new();
    for (path, pem) in crl_pems {
        let before = crls.len();
        for crl in CertificateRevocationListDer::pem_slice_iter(pem) {
            crls.push(crl.map_err(|e| pem_error("CRLs", path, e))?);
        }
        if crls.len() == before {
            return Err(pem_error("CRLs", path, "no CRL found"));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).with_crls(crls);
    if !required {
        builder = builder.allow_unauthenticated();
    }
    builder.build().map_err(|e| CertError::Verifier(e.to_string()))
}
