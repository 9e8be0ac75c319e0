#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]
//! Mutual TLS end to end: client certificates verified at the handshake against the configured
//! CA and CRL, then mapped to a consumer by fingerprint or subject; routes that require `mtls`
//! refuse callers without a known certificate.

use std::sync::Arc;

use portcullis_identity::admin::ConsumerSpec;
use portcullis_testkit::{Mode, TestCert, TestGateway, Upstream, get, send};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevokedCertParams, SerialNumber, date_time_ymd,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

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

fn client(ca: &Ca, cn: &str, serial: u64) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.serial_number = Some(SerialNumber::from(serial));
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    (cert.der().clone(), PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
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

fn client_mode(server: &TestCert, cert: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>) -> Mode {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(server.cert_der.clone())).unwrap();
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match cert {
        Some((c, k)) => b.with_client_auth_cert(vec![c], k).unwrap(),
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Mode::Tls(Arc::new(cfg))
}

fn fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn client_certificates_are_verified_and_mapped_to_consumers() {
    let up = Upstream::start().await;
    let server = TestCert::generate();
    let clients = ca("Partner CA");
    let foreign = ca("Someone Else");
    let dir = tempfile::tempdir().unwrap();
    server.write(dir.path(), "server");
    std::fs::write(dir.path().join("clients.pem"), &clients.pem).unwrap();
    std::fs::write(dir.path().join("clients.crl"), crl(&clients, &[99])).unwrap();
    std::fs::write(dir.path().join("key.secret"), "an-identity-test-secret-of-32-bytes-or-more").unwrap();
    let yaml = format!(
        r#"
listeners:
  - name: public
    bind: "127.0.0.1:0"
    tls: {{ cert_file: server.crt, key_file: server.key, client_auth: {{ ca_file: clients.pem, crl_files: [clients.crl] }} }}
upstreams: {{ up: {{ targets: ["http://{}"] }} }}
identity:
  store: {{ sqlite: {{ path: ids.db }} }}
  key_secret: "${{file:key.secret}}"
routes:
  - name: partner
    prefix: /partner
    upstream: up
    policy: {{ auth: {{ methods: [mtls] }} }}
  - name: open
    prefix: /open
    upstream: up
    policy: {{ auth: {{ public: true }} }}
"#,
        up.addr()
    );
    let gw = TestGateway::start_in(dir, &yaml).await;
    let svc = gw.handle().identity().unwrap().clone();
    svc.create_org("t", "partner-co", None).await.unwrap();
    for (name, subject) in [("partner-sync", None), ("partner-batch", Some("batch.partner.test".to_owned()))] {
        svc.create_consumer(
            "t",
            ConsumerSpec {
                org: "partner-co".into(),
                name: name.into(),
                external_subject: subject,
                ..ConsumerSpec::default()
            },
        )
        .await
        .unwrap();
    }
    let by_fp = client(&clients, "sync-client", 1);
    svc.register_certificate("t", "partner-sync", &fingerprint(&by_fp.0)).await.unwrap();
    let by_subject = client(&clients, "batch.partner.test", 2);
    let unknown = client(&clients, "stranger", 3);

    let r = send(gw.addr(), &client_mode(&server, Some(by_fp)), get("/partner/a")).await;
    assert_eq!(r.status, 200);
    let seen = up.requests().pop().unwrap();
    assert_eq!(seen.headers["x-portcullis-consumer"], "partner-sync");
    assert_eq!(seen.headers["x-portcullis-auth-method"], "mtls");

    let r = send(gw.addr(), &client_mode(&server, Some(by_subject)), get("/partner/b")).await;
    assert_eq!(r.status, 200);
    assert_eq!(up.requests().pop().unwrap().headers["x-portcullis-consumer"], "partner-batch");

    // A valid certificate that maps to no consumer, and no certificate at all: 401.
    assert_eq!(send(gw.addr(), &client_mode(&server, Some(unknown)), get("/partner/c")).await.status, 401);
    assert_eq!(send(gw.addr(), &client_mode(&server, None), get("/partner/d")).await.status, 401);
    // Without a certificate, public routes still work (client_auth is optional on this listener).
    assert_eq!(send(gw.addr(), &client_mode(&server, None), get("/open")).await.status, 200);
    assert_eq!(up.hits(), 3);

    // Revoked (in the CRL) and foreign-CA certificates fail the handshake itself.
    let addr = gw.addr();
    for (what, cert) in [("revoked", client(&clients, "partner-sync-old", 99)), ("foreign", client(&foreign, "x", 5))] {
        let mode = client_mode(&server, Some(cert));
        let Mode::Tls(cfg) = mode else { unreachable!() };
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(cfg);
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        // TLS 1.3 reports a refused client certificate on the first read after the handshake.
        let outcome = match connector.connect(name, tcp).await {
            Err(_) => true,
            Ok(mut s) => {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let _ = s.write_all(b"GET /partner/x HTTP/1.1\r\nhost: localhost\r\n\r\n").await;
                let mut buf = [0u8; 64];
                !matches!(s.read(&mut buf).await, Ok(n) if n > 0)
            }
        };
        assert!(outcome, "{what} certificate must fail the handshake");
    }
    assert_eq!(up.hits(), 3);
}
