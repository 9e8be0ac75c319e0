//! Client certificates: identity extraction, and the rustls verifier (chain, CRL revocation,
//! foreign CAs, optional vs required), directly and through real TLS handshakes on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]

use std::sync::Arc;

use portcullis_identity::cert::{self, CertError, CertIdentity};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevokedCertParams, SanType, SerialNumber, date_time_ymd,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Ca { pem: cert.pem(), issuer: Issuer::new(p, key) }
}

struct Leaf {
    der: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn client(ca: &Ca, cn: &str, serial: u64, sans: Vec<SanType>) -> Leaf {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name.push(DnType::OrganizationName, "Example Clients");
    p.subject_alt_names = sans;
    p.serial_number = Some(SerialNumber::from(serial));
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    Leaf { der: cert.der().clone(), key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())) }
}

fn crl(ca: &Ca, revoked: &[u64]) -> String {
    CertificateRevocationListParams {
        this_update: date_time_ymd(2025, 1, 1),
        next_update: date_time_ymd(2035, 1, 1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: date_time_ymd(2025, 6, 1),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca.issuer)
    .unwrap()
    .pem()
    .unwrap()
}

fn san(kind: &str, v: &str) -> SanType {
    let s = v.to_owned().try_into().unwrap();
    match kind {
        "dns" => SanType::DnsName(s),
        "uri" => SanType::URI(s),
        _ => SanType::Rfc822Name(s),
    }
}

struct Pki {
    ca: Ca,
    alice: Leaf,
    revoked: Leaf,
    foreign: Leaf,
    crl: String,
}

fn pki() -> Pki {
    let ca1 = ca("Portcullis Test Client CA");
    let ca2 = ca("Someone Else's CA");
    let alice = client(
        &ca1,
        "alice",
        1001,
        vec![
            san("dns", "alice.clients.example"),
            san("uri", "spiffe://example.org/ns/prod/sa/alice"),
            san("email", "alice@example.org"),
        ],
    );
    let revoked = client(&ca1, "mallory", 1002, vec![san("dns", "mallory.clients.example")]);
    let foreign = client(&ca2, "alice", 1001, vec![san("dns", "alice.clients.example")]);
    let crl = crl(&ca1, &[1002]);
    Pki { ca: ca1, alice, revoked, foreign, crl }
}

#[test]
fn identity_is_read_from_the_certificate() {
    let p = pki();
    let id = CertIdentity::from_der(&p.alice.der).unwrap();
    assert_eq!(id.common_name.as_deref(), Some("alice"));
    assert!(id.subject.contains("CN=alice"), "{}", id.subject);
    assert!(id.subject.contains("O=Example Clients"), "{}", id.subject);
    assert_eq!(id.issuer, "CN=Portcullis Test Client CA");
    assert_eq!(id.serial, "03:e9", "1001");
    assert_eq!(id.dns_names, ["alice.clients.example"]);
    assert_eq!(id.uris, ["spiffe://example.org/ns/prod/sa/alice"]);
    assert_eq!(id.emails, ["alice@example.org"]);
    let expected: String =
        ring::digest::digest(&ring::digest::SHA256, &p.alice.der).as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(id.fingerprint_sha256, expected);
    assert_eq!(id.fingerprint_sha256.len(), 64);
    assert!(id.fingerprint_sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    let other = CertIdentity::from_der(&p.foreign.der).unwrap();
    assert_eq!(other.common_name, id.common_name, "same CN from another CA ...");
    assert_ne!(other.fingerprint_sha256, id.fingerprint_sha256, "... but a different fingerprint");
    assert_ne!(other.issuer, id.issuer);
}

#[test]
fn certificates_without_cn_or_sans_still_have_a_fingerprint() {
    let ca = ca("CA");
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::OrganizationName, "No CN Inc");
    let key = KeyPair::generate().unwrap();
    let der = p.signed_by(&key, &ca.issuer).unwrap().der().to_vec();
    let id = CertIdentity::from_der(&der).unwrap();
    assert_eq!(id.common_name, None);
    assert!(id.dns_names.is_empty() && id.uris.is_empty() && id.emails.is_empty());
    assert_eq!(id.fingerprint_sha256.len(), 64);
}

#[test]
fn malformed_certificates_are_rejected() {
    let p = pki();
    assert_eq!(CertIdentity::from_der(b"not a certificate"), Err(CertError::Malformed));
    assert_eq!(CertIdentity::from_der(&[]), Err(CertError::Malformed));
    let mut trailing = p.alice.der.to_vec();
    trailing.push(0);
    assert_eq!(CertIdentity::from_der(&trailing), Err(CertError::Malformed));
    let truncated = &p.alice.der[..p.alice.der.len() - 10];
    assert_eq!(CertIdentity::from_der(truncated), Err(CertError::Malformed));
}

fn verifier(p: &Pki, required: bool) -> Arc<dyn ClientCertVerifier> {
    cert::client_verifier_from_pem(p.ca.pem.as_bytes(), &[p.crl.as_bytes()], required).unwrap()
}

#[test]
fn the_verifier_accepts_our_clients_and_rejects_revoked_and_foreign_ones() {
    let p = pki();
    let v = verifier(&p, true);
    let now = UnixTime::now();
    assert!(v.verify_client_cert(&p.alice.der, &[], now).is_ok());
    let revoked = v.verify_client_cert(&p.revoked.der, &[], now).unwrap_err();
    assert!(format!("{revoked:?}").contains("Revoked"), "{revoked:?}");
    let foreign = v.verify_client_cert(&p.foreign.der, &[], now).unwrap_err();
    assert!(format!("{foreign:?}").contains("UnknownIssuer"), "{foreign:?}");
    assert!(v.offer_client_auth());
    assert!(v.client_auth_mandatory());
    assert!(!verifier(&p, false).client_auth_mandatory());

    // Without the CRL the revoked certificate would pass: the CRL is what stops it.
    let no_crl = cert::client_verifier_from_pem(p.ca.pem.as_bytes(), &[], true).unwrap();
    assert!(no_crl.verify_client_cert(&p.revoked.der, &[], now).is_ok());
}

#[test]
fn a_crl_from_another_ca_leaves_status_unknown_and_fails_closed() {
    let p = pki();
    let other = ca("Other");
    let other_crl = crl(&other, &[]);
    let v = cert::client_verifier_from_pem(p.ca.pem.as_bytes(), &[other_crl.as_bytes()], true).unwrap();
    assert!(v.verify_client_cert(&p.alice.der, &[], UnixTime::now()).is_err());
}

#[test]
fn verifier_files_are_loaded_and_bad_files_reported() {
    let p = pki();
    let dir = std::env::temp_dir().join(format!("pc-authn-cert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca_path, crl_path, junk) = (dir.join("ca.pem"), dir.join("crl.pem"), dir.join("junk.pem"));
    std::fs::write(&ca_path, &p.ca.pem).unwrap();
    std::fs::write(&crl_path, &p.crl).unwrap();
    std::fs::write(&junk, "hello").unwrap();
    let v = cert::client_verifier(&ca_path, std::slice::from_ref(&crl_path), true).unwrap();
    assert!(v.verify_client_cert(&p.revoked.der, &[], UnixTime::now()).is_err());
    assert!(v.verify_client_cert(&p.alice.der, &[], UnixTime::now()).is_ok());

    let missing = cert::client_verifier(&dir.join("nope.pem"), &[], true).err().unwrap();
    assert!(matches!(missing, CertError::Pem { what: "CA certificates", .. }), "{missing}");
    let empty = cert::client_verifier(&junk, &[], true).err().unwrap();
    assert!(matches!(empty, CertError::Pem { what: "CA certificates", .. }), "{empty}");
    let bad_crl = cert::client_verifier(&ca_path, std::slice::from_ref(&junk), true).err().unwrap();
    assert!(matches!(bad_crl, CertError::Pem { what: "CRLs", .. }), "{bad_crl}");
    let garbage_crl = "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n";
    let garbage = cert::client_verifier_from_pem(p.ca.pem.as_bytes(), &[garbage_crl.as_bytes()], true).err().unwrap();
    assert!(matches!(garbage, CertError::Verifier(_)), "{garbage}");
}

// ---- real handshakes ----

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Starts a TLS server on 127.0.0.1:0 that accepts one connection, and returns its address and
/// a handle yielding the client certificate's identity (or the handshake error).
async fn serve_once(
    verifier: Arc<dyn ClientCertVerifier>,
    server_cert: CertificateDer<'static>,
    server_key: PrivateKeyDer<'static>,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<Result<Option<CertIdentity>, String>>) {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![server_cert], server_key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let id = match tls.get_ref().1.peer_certificates() {
            Some(chain) => Some(CertIdentity::from_der(&chain[0]).map_err(|e| e.to_string())?),
            None => None,
        };
        tls.write_all(b"ok").await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())?;
        Ok(id)
    });
    (addr, handle)
}

async fn handshake(p: &Pki, required: bool, client_cert: Option<&Leaf>) -> Result<Option<CertIdentity>, String> {
    let server = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let server_der = server.cert.der().clone();
    let server_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server.signing_key.serialize_der()));
    let (addr, handle) = serve_once(verifier(p, required), server_der.clone(), server_key).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_der).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client_cert {
        Some(leaf) => builder.with_client_auth_cert(vec![leaf.der.clone()], leaf.key.clone_key()).unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let client_side = async {
        let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
        let mut buf = Vec::new();
        // TLS 1.3: a refused client certificate surfaces on the first read.
        tls.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let timeout = std::time::Duration::from_secs(10);
    let client_result = tokio::time::timeout(timeout, client_side).await.expect("client timed out");
    let server_result = tokio::time::timeout(timeout, handle).await.expect("server timed out").unwrap();
    match (client_result, server_result) {
        (Ok(buf), Ok(id)) if buf == b"ok" => Ok(id),
        (c, s) => Err(format!("client: {c:?}, server: {s:?}")),
    }
}

#[tokio::test]
async fn a_tls_client_with_a_valid_certificate_is_identified() {
    let p = pki();
    let id = handshake(&p, true, Some(&p.alice)).await.unwrap().expect("a client certificate");
    assert_eq!(id.common_name.as_deref(), Some("alice"));
    assert_eq!(id.fingerprint_sha256, CertIdentity::from_der(&p.alice.der).unwrap().fingerprint_sha256);
}

#[tokio::test]
async fn revoked_and_foreign_client_certificates_fail_the_handshake() {
    let p = pki();
    let revoked = handshake(&p, true, Some(&p.revoked)).await.unwrap_err();
    assert!(revoked.contains("Revoked") || revoked.contains("revoked"), "{revoked}");
    let foreign = handshake(&p, true, Some(&p.foreign)).await.unwrap_err();
    assert!(foreign.contains("UnknownIssuer") || foreign.contains("unknown"), "{foreign}");
    // Optional client auth does not make a bad certificate acceptable.
    assert!(handshake(&p, false, Some(&p.revoked)).await.is_err());
}

#[tokio::test]
async fn a_missing_client_certificate_fails_only_when_required() {
    let p = pki();
    let err = handshake(&p, true, None).await.unwrap_err();
    assert!(err.contains("server"), "{err}");
    assert_eq!(handshake(&p, false, None).await.unwrap(), None, "anonymous, later stages decide");
}
