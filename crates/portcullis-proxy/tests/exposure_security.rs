#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]
//! Data exposure end to end: the masking stage between a real upstream and a real client.
//! The upstream answers `POST /data` with the request body, the status in `x-status`, the
//! content type in `x-type` and, when set, the `Content-Encoding` in `x-encoding`; it records the
//! `Accept-Encoding` it was sent.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use portcullis_identity::admin::ConsumerSpec;
use portcullis_identity::apikey::KeyEnv;
use portcullis_testkit::{Resp, TestGateway};
use tokio::net::TcpListener;

const SECRET: &str = "an-exposure-test-secret-of-32-bytes-or-more";

struct Echo {
    addr: SocketAddr,
    accept_encoding: Arc<Mutex<Vec<Option<String>>>>,
}

async fn echo_upstream() -> Echo {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { break };
            let seen = seen2.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let h = req.headers().clone();
                        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
                        seen.lock().unwrap().push(get("accept-encoding"));
                        let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                        let mut b = http::Response::builder()
                            .status(get("x-status").and_then(|s| s.parse::<u16>().ok()).unwrap_or(200))
                            .header("content-type", get("x-type").unwrap_or_else(|| "application/json".into()))
                            .header("etag", "\"v1\"");
                        if let Some(enc) = get("x-encoding") {
                            b = b.header("content-encoding", enc);
                        }
                        Ok::<_, Infallible>(b.body(Full::new(body)).unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    Echo { addr, accept_encoding: seen }
}

fn config(up: &Echo) -> String {
    format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams: {{ up: {{ targets: ["http://{addr}"] }} }}
identity:
  store: {{ sqlite: {{ path: ids.db }} }}
  key_secret: "${{file:key.secret}}"
routes:
  - name: masked
    prefix: /masked
    upstream: up
    policy:
      auth: {{ public: true }}
      exposure:
        actions: {{ card_number: mask, email: mask, password_hash: redact, private_key: block, aws_access_key_id: block }}
        fields:
          - {{ name: internal_credit_score, action: redact }}
          - {{ pointer: /support, action: allow }}
  - name: passing
    prefix: /passing
    upstream: up
    policy:
      auth: {{ public: true }}
      exposure: {{ on_compressed: pass, safe_errors: false }}
  - name: small
    prefix: /small
    upstream: up
    policy:
      auth: {{ public: true }}
      exposure: {{ max_body_bytes: 64 }}
  - name: plain
    prefix: /plain
    upstream: up
    policy: {{ auth: {{ public: true }} }}
  - name: shaped
    prefix: /shaped
    upstream: up
    policy:
      auth: {{ methods: [api_key] }}
      exposure:
        shaping:
          - {{ plan: gold, allow: [/items/*/id, /items/*/name] }}
          - {{ org: acme, allow: [/items/*/id], max_items_everywhere: 1 }}
"#,
        addr = up.addr
    )
}

async fn start(up: &Echo) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.secret"), SECRET).unwrap();
    TestGateway::start_in(dir, &config(up)).await
}

async fn post(gw: &TestGateway, path: &str, body: &str, extra: &[(&str, &str)]) -> Resp {
    let mut b = http::Request::builder().method("POST").uri(path).header("host", "api.test");
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    gw.request(b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await
}

fn text(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

const CARD: &str = "4242 4242 4242 4242";
const BCRYPT: &str = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";

#[tokio::test]
async fn json_cards_emails_hashes_and_named_fields_are_masked_or_removed() {
    let up = echo_upstream().await;
    let gw = start(&up).await;
    let body = format!(
        r#"{{"id":7,"card":"{CARD}","email":"jane@example.com","password_hash":"{BCRYPT}","internal_credit_score":712,"support":"help@example.com"}}"#
    );
    let r = post(&gw, "/masked/x", &body, &[]).await;
    assert_eq!(r.status, 200);
    let t = text(&r);
    assert!(!t.contains("4242 4242 4242 4242") && t.contains("4242"), "{t}");
    assert!(!t.contains("jane@example.com") && t.contains("@example.com"), "{t}");
    assert!(!t.contains("$2b$12$"), "{t}");
    assert!(!t.contains("internal_credit_score") && !t.contains("712"), "{t}");
    // Allowed by pointer: the public support address is untouched.
    assert!(t.contains("help@example.com"), "{t}");
    assert_eq!(r.header("content-length").unwrap().parse::<usize>().unwrap(), r.body.len());
    assert!(r.header("etag").is_none(), "a validator of the unmasked body must not be served");
    // The upstream was asked for an uncompressed body.
    assert!(up.accept_encoding.lock().unwrap().iter().all(|a| a.as_deref() == Some("identity")));

    // Accept: the same body on a route without an exposure policy passes unchanged.
    let r = post(&gw, "/plain/x", &body, &[]).await;
    assert_eq!(text(&r), body);
}

#[tokio::test]
async fn blocked_classes_answer_502_and_never_send_the_body() {
    let up = echo_upstream().await;
    let gw = start(&up).await;
    let body = r#"{"key":"AKIAIOSFODNN7EXAMPLE","ok":1}"#;
    let r = post(&gw, "/masked/x", body, &[]).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let t = text(&r);
    assert!(!t.contains("AKIA"), "{t}");
    assert!(r.json()["request_id"].is_string());
    // Accept: a clean body on the same route is served as is.
    let r = post(&gw, "/masked/x", r#"{"ok":1}"#, &[]).await;
    assert_eq!((r.status, text(&r).as_str()), (200, r#"{"ok":1}"#));
    // An empty JSON-typed body (204-like) is served, not refused as invalid JSON.
    let r = post(&gw, "/masked/x", "", &[]).await;
    assert_eq!((r.status, r.body.len()), (200, 0));
}

#[tokio::test]
async fn text_bodies_are_scanned_too() {
    let up = echo_upstream().await;
    let gw = start(&up).await;
    let r = post(&gw, "/masked/x", &format!("card {CARD} on file"), &[("x-type", "text/plain")]).await;
    assert_eq!(r.status, 200);
    let t = text(&r);
    assert!(!t.contains(CARD) && t.ends_with("4242 on file"), "{t}");
    let r = post(
        &gw,
        "/masked/x",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n",
        &[("x-type", "text/plain")],
    )
    .await;
    assert_eq!(r.status, 502);
    assert!(!text(&r).contains("PRIVATE KEY"));
}

#[tokio::test]
async fn unsafe_upstream_errors_are_replaced_safe_ones_kept() {
    let up = echo_upstream().await;
    let gw = start(&up).await;
    let trace =
        "Traceback (most recent call last):\n  File \"/srv/app/db.py\", line 12, in query\npsycopg2.errors.SyntaxError";
    let r = post(&gw, "/masked/x", trace, &[("x-status", "500"), ("x-type", "text/plain")]).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let t = text(&r);
    assert!(!t.contains("Traceback") && !t.contains("/srv/app"), "{t}");
    assert_eq!(r.json()["status"], 500);
    assert_eq!(r.json()["request_id"].as_str(), r.header("x-request-id"));
    // Accept: a plain error document passes.
    let r = post(&gw, "/masked/x", r#"{"error":"not found"}"#, &[("x-status", "404")]).await;
    assert_eq!((r.status, text(&r).as_str()), (404, r#"{"error":"not found"}"#));
    // A route that turned safe errors off serves the upstream's body.
    let r = post(&gw, "/passing/x", trace, &[("x-status", "500"), ("x-type", "text/plain")]).await;
    assert_eq!(r.status, 500);
    assert!(text(&r).contains("Traceback"));
}

#[tokio::test]
async fn compressed_responses_are_refused_unless_the_route_passes_them() {
    let up = echo_upstream().await;
    let gw = start(&up).await;
    let r = post(&gw, "/masked/x", &format!(r#"{{"card":"{CARD}"}}"#), &[("x-encoding", "gzip")]).await;
    assert_eq!(r.status, 502);
    assert!(!text(&r).contains("4242"));
    let r = post(&gw, "/passing/x", r#"{"a":1}"#, &[("x-encoding", "gzip")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    // `identity` is no encoding.
    let r = post(&gw, "/masked/x", r#"{"a":1}"#, &[("x-encoding", "identity")]).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn responses_over_the_cap_fail_closed() {
    let up = echo_upstream().await;
    let gw = start(&up).await;
    let big = format!(r#"{{"pad":"{}","card":"{CARD}"}}"#, "x".repeat(100));
    let r = post(&gw, "/small/x", &big, &[]).await;
    assert_eq!(r.status, 502);
    assert!(!text(&r).contains("4242"));
    let r = post(&gw, "/small/x", r#"{"a":1}"#, &[]).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn shaping_applies_per_consumer_org_and_plan() {
    let up = echo_upstream().await;
    let gw = start(&up).await;
    let s = gw.handle().identity().unwrap().clone();
    s.create_org("test", "acme", None).await.unwrap();
    s.create_org("test", "globex", None).await.unwrap();
    let mut keys = Vec::new();
    for (org, name) in [("acme", "acme-app"), ("globex", "globex-app")] {
        s.create_consumer("test", ConsumerSpec { org: org.into(), name: name.into(), ..ConsumerSpec::default() })
            .await
            .unwrap();
        let k = s.issue_api_key("test", name, None, None, None, KeyEnv::Live).await.unwrap();
        keys.push(k.key.expose().to_owned());
    }
    let body = r#"{"items":[{"id":1,"name":"a","cost":5},{"id":2,"name":"b","cost":6}]}"#;
    // acme (org rule): ids only, one item.
    let r = post(&gw, "/shaped/x", body, &[("x-api-key", &keys[0])]).await;
    assert_eq!((r.status, text(&r).as_str()), (200, r#"{"items":[{"id":1}]}"#));
    // globex: no rule matches, the body is served whole.
    let r = post(&gw, "/shaped/x", body, &[("x-api-key", &keys[1])]).await;
    assert_eq!((r.status, text(&r).as_str()), (200, body));
}
