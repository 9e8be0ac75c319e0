//! Shared by the jwt_* and introspect* tests and the verify bench: keys, token minting, secrets,
//! and a tiny HTTP server on 127.0.0.1:0 whose connections all die when it is stopped.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support shared by several test targets: not every target uses every helper, and failures must panic"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use portcullis_config::Secret;
use portcullis_identity::jwt::b64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

pub const ISS: &str = "https://idp.test";
pub const AUD: &str = "orders-api";

/// A fixed "now" for tests: 2023-11-14T22:13:20Z.
pub fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

pub fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// The Wycheproof corpus, shared by every checkout (`/work/<checkout>/crates/<crate>` →
/// `/work/shared`). Missing corpus = failing test.
pub fn wycheproof(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora/wycheproof").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("Wycheproof corpus missing at {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A secret resolved the only way secrets are: from a `${file:…}` reference.
pub fn secret(value: &str) -> Secret {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s"), value).unwrap();
    portcullis_config::resolve_secret("${file:s}", dir.path()).unwrap()
}

pub enum Signer {
    Rsa(RsaKeyPair),
    P256(EcdsaKeyPair),
    P384(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Hmac(Vec<u8>),
}

impl Signer {
    pub fn rsa(name: &str) -> Self {
        let der = std::fs::read(data_dir().join(format!("{name}.pk8"))).unwrap();
        Signer::Rsa(RsaKeyPair::from_pkcs8(&der).unwrap())
    }

    pub fn p256() -> Self {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pk8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Signer::P256(EcdsaKeyPair::from_pkcs8(alg, pk8.as_ref(), &rng).unwrap())
    }

    pub fn p384() -> Self {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P384_SHA384_FIXED_SIGNING;
        let pk8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Signer::P384(EcdsaKeyPair::from_pkcs8(alg, pk8.as_ref(), &rng).unwrap())
    }

    pub fn ed25519() -> Self {
        let pk8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Signer::Ed(Ed25519KeyPair::from_pkcs8(pk8.as_ref()).unwrap())
    }

    /// The public JWK (for HMAC, the `oct` JWK with the secret).
    pub fn jwk(&self, kid: &str) -> Value {
        match self {
            Signer::Rsa(k) => {
                let c: signature::RsaPublicKeyComponents<Vec<u8>> = k.public().into();
                json!({"kty": "RSA", "kid": kid, "use": "sig", "n": b64::encode(&c.n), "e": b64::encode(&c.e)})
            }
            Signer::P256(k) | Signer::P384(k) => {
                let p = k.public_key().as_ref();
                let len = (p.len() - 1) / 2;
                let crv = if len == 32 { "P-256" } else { "P-384" };
                json!({"kty": "EC", "kid": kid, "crv": crv, "x": b64::encode(&p[1..1 + len]), "y": b64::encode(&p[1 + len..])})
            }
            Signer::Ed(k) => {
                json!({"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64::encode(k.public_key().as_ref())})
            }
            Signer::Hmac(s) => json!({"kty": "oct", "kid": kid, "k": b64::encode(s)}),
        }
    }

    /// The bytes an attacker would use as an HMAC secret in a key-confusion attack: the public
    /// key as published (JWK JSON) — and, for RSA/EC, its raw encodings too.
    pub fn public_bytes(&self) -> Vec<Vec<u8>> {
        let mut out = vec![serde_json::to_vec(&self.jwk("k")).unwrap()];
        match self {
            Signer::Rsa(k) => out.push(k.public().as_ref().to_vec()),
            Signer::P256(k) | Signer::P384(k) => out.push(k.public_key().as_ref().to_vec()),
            Signer::Ed(k) => out.push(k.public_key().as_ref().to_vec()),
            Signer::Hmac(_) => {}
        }
        out
    }

    /// Signs `input` under `alg` (the header's name).
    pub fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Signer::Rsa(k) => {
                let enc: &'static dyn signature::RsaEncoding = match alg {
                    "RS256" => &signature::RSA_PKCS1_SHA256,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "PS384" => &signature::RSA_PSS_SHA384,
                    "PS512" => &signature::RSA_PSS_SHA512,
                    other => panic!("RSA cannot sign {other}"),
                };
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(enc, &rng, input, &mut sig).unwrap();
                sig
            }
            Signer::P256(k) | Signer::P384(k) => k.sign(&rng, input).unwrap().as_ref().to_vec(),
            Signer::Ed(k) => k.sign(input).as_ref().to_vec(),
            Signer::Hmac(s) => hmac(alg, s, input),
        }
    }
}

pub fn hmac(alg: &str, key: &[u8], input: &[u8]) -> Vec<u8> {
    let a = match alg {
        "HS384" => ring::hmac::HMAC_SHA384,
        "HS512" => ring::hmac::HMAC_SHA512,
        _ => ring::hmac::HMAC_SHA256,
    };
    ring::hmac::sign(&ring::hmac::Key::new(a, key), input).as_ref().to_vec()
}

/// `header.payload` from JSON values.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64::encode(&serde_json::to_vec(header).unwrap()),
        b64::encode(&serde_json::to_vec(claims).unwrap())
    )
}

/// A token with an arbitrary header.
pub fn mint_with_header(signer: &Signer, header: &Value, claims: &Value) -> String {
    let alg = header["alg"].as_str().unwrap();
    let input = signing_input(header, claims);
    let sig = signer.sign(alg, input.as_bytes());
    format!("{input}.{}", b64::encode(&sig))
}

pub fn mint(signer: &Signer, alg: &str, kid: &str, claims: &Value) -> String {
    mint_with_header(signer, &json!({"alg": alg, "typ": "JWT", "kid": kid}), claims)
}

/// Claims that pass the default policy at `now`.
pub fn good_claims(now: SystemTime) -> Value {
    let n = secs(now);
    json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "iat": n - 10, "nbf": n - 10, "exp": n + 600,
        "scope": "orders:read orders:write", "client_id": "web-app", "tenant": "acme"
    })
}

/// A minimal HTTP/1.1 server on 127.0.0.1:0. `handler` sees the method, the path with query,
/// the headers and the whole body. Stopping it closes every connection.
pub struct TestServer {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
    /// Keeps the port bound after `stop`, so no other test server can take it over: a stopped
    /// server is a black hole (connections are accepted by the kernel, never answered).
    listener: Arc<tokio::net::TcpListener>,
}

pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

pub type Handler = Arc<dyn Fn(Seen) -> futures_util::future::BoxFuture<'static, (u16, String)> + Send + Sync>;

impl TestServer {
    pub async fn start(handler: Handler) -> Self {
        Self::start_inner(handler, None).await
    }

    /// The same over TLS with a self-signed certificate for `localhost`; returns the CA PEM.
    pub async fn start_tls(handler: Handler) -> (Self, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(c.signing_key.serialize_der()).unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![c.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        (Self::start_inner(handler, Some(acceptor)).await, c.cert.pem())
    }

    async fn start_inner(handler: Handler, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = Arc::new(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        let addr = listener.local_addr().unwrap();
        let held = Arc::clone(&listener);
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let task = tokio::spawn(async move {
            // Connections live in this set: aborting the accept task drops (aborts) them all.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let handler = Arc::clone(&handler);
                let counter = Arc::clone(&counter);
                let tls = tls.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let handler = Arc::clone(&handler);
                        let counter = Arc::clone(&counter);
                        async move {
                            counter.fetch_add(1, Ordering::SeqCst);
                            let method = req.method().to_string();
                            let path = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
                            let headers = req.headers().clone();
                            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let (status, body) = handler(Seen { method, path, headers, body }).await;
                            Ok::<_, std::convert::Infallible>(
                                Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap(),
                            )
                        }
                    });
                    match tls {
                        None => {
                            let io = hyper_util::rt::TokioIo::new(stream);
                            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
                        }
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else { return };
                            let io = hyper_util::rt::TokioIo::new(stream);
                            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
                        }
                    }
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Self { addr, hits, task, listener: held }
    }

    /// A server answering every request with the current value of `body`.
    pub async fn serving(body: Arc<Mutex<String>>) -> Self {
        Self::start(Arc::new(move |_seen| {
            let b = body.lock().unwrap().clone();
            Box::pin(async move { (200, b) })
        }))
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops serving: every open connection is dropped and new ones are never answered.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A metrics recorder that counts counters by `name{labels}`, installed once per test binary.
pub mod recorder {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};

    use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

    type Map = Arc<Mutex<HashMap<String, Arc<AtomicU64>>>>;

    #[derive(Clone)]
    pub struct Counting(Map);

    fn id(key: &Key) -> String {
        let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        format!("{}{{{}}}", key.name(), labels.join(","))
    }

    impl Recorder for Counting {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let c = Arc::clone(self.0.lock().unwrap().entry(id(key)).or_default());
            Counter::from_arc(c)
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    static INSTALLED: OnceLock<Map> = OnceLock::new();

    fn get() -> &'static Map {
        INSTALLED.get_or_init(|| {
            let map: Map = Arc::default();
            metrics::set_global_recorder(Counting(Arc::clone(&map))).unwrap();
            map
        })
    }

    /// Installs the recorder (idempotent).
    pub fn install() {
        get();
    }

    /// The value of counter `name{labels}`, e.g. `portcullis_idp_fetch_errors_total{issuer=x}`.
    pub fn counter(id: &str) -> u64 {
        get().lock().unwrap().get(id).map_or(0, |c| c.load(Ordering::SeqCst))
    }
}
