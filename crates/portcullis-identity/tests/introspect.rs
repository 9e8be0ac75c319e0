//! Token introspection (RFC 7662) end to end against a small introspection server on
//! 127.0.0.1:0 that checks the gateway's client credentials.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]

mod jwt_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jwt_support::*;
use portcullis_identity::introspect::{IntrospectError, IntrospectionConfig, Introspector};
use portcullis_identity::jwt::{JwtError, TokenSource};
use serde_json::{Value, json};

/// Client secret "s3cr3t:with/special chars", sent form-encoded inside HTTP Basic.
const SECRET: &str = "s3cr3t:with/special chars";
const EXPECTED_AUTH: &str = "Basic Z2F0ZXdheTpzM2NyM3QlM0F3aXRoJTJGc3BlY2lhbCtjaGFycw==";

fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

type Answers = Arc<Mutex<HashMap<String, Value>>>;

/// An introspection endpoint: answers from `answers` by token, `{"active":false}` otherwise,
/// 401 when the client credentials are wrong.
async fn idp(answers: Answers) -> TestServer {
    TestServer::start(Arc::new(move |seen| {
        let auth_ok = seen.method == "POST"
            && seen.headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(EXPECTED_AUTH)
            && seen.headers.get("content-type").and_then(|v| v.to_str().ok())
                == Some("application/x-www-form-urlencoded");
        let body = String::from_utf8(seen.body.to_vec()).unwrap();
        let token = body.split('&').find_map(|kv| kv.strip_prefix("token=")).map(form_decode);
        let answer = token.and_then(|t| answers.lock().unwrap().get(&t).cloned()).unwrap_or(json!({"active": false}));
        Box::pin(async move {
            if auth_ok { (200, answer.to_string()) } else { (401, "{\"error\":\"invalid_client\"}".to_owned()) }
        })
    }))
    .await
}

fn config(url: String) -> IntrospectionConfig {
    let mut c = IntrospectionConfig::new(&url, "gateway", secret(SECRET));
    c.label = "https://as.test".into();
    c
}

fn at(s: u64) -> std::time::SystemTime {
    t0() + Duration::from_secs(s)
}

fn active(exp_in: u64) -> Value {
    json!({
        "active": true, "sub": "alice", "client_id": "web-app", "scope": "orders:read orders:write",
        "exp": secs(t0()) + exp_in, "iat": secs(t0()) - 5, "aud": ["orders-api"], "iss": "https://as.test",
        "username": "alice@example.test"
    })
}

#[tokio::test]
async fn active_tokens_are_accepted_and_cached_until_exp() {
    let answers: Answers = Arc::default();
    let weird = "opaque+token/with=special&chars %";
    answers.lock().unwrap().insert(weird.into(), active(120));
    let server = idp(Arc::clone(&answers)).await;
    let i = Introspector::new(config(server.url("/introspect"))).unwrap();
    let t = i.introspect(weird, at(0)).await.unwrap();
    assert_eq!(t.source(), &TokenSource::Introspection);
    assert_eq!(t.subject(), Some("alice"));
    assert_eq!(t.client_id(), Some("web-app"));
    assert_eq!(t.scopes(), ["orders:read", "orders:write"]);
    assert_eq!(t.claims()["username"], "alice@example.test");
    assert_eq!(server.hits(), 1);
    i.introspect(weird, at(60)).await.unwrap();
    assert_eq!(server.hits(), 1, "cached");
    // Past exp the cache no longer answers, and the answer's own exp is enforced (with leeway).
    let err = i.introspect(weird, at(200)).await.unwrap_err();
    assert_eq!(err, IntrospectError::Claims(JwtError::Expired));
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn cache_lifetime_is_bounded_by_max_ttl() {
    let answers: Answers = Arc::default();
    answers.lock().unwrap().insert("long".into(), active(86_400));
    let server = idp(Arc::clone(&answers)).await;
    let mut c = config(server.url("/introspect"));
    c.max_ttl = Duration::from_secs(60);
    let i = Introspector::new(c).unwrap();
    i.introspect("long", at(0)).await.unwrap();
    i.introspect("long", at(59)).await.unwrap();
    assert_eq!(server.hits(), 1);
    // Revoked at the authorization server: seen once the cached entry has aged out.
    answers.lock().unwrap().insert("long".into(), json!({"active": false}));
    assert_eq!(i.introspect("long", at(61)).await.unwrap_err(), IntrospectError::Inactive);
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn inactive_tokens_are_refused_and_cached_briefly() {
    let answers: Answers = Arc::default();
    answers.lock().unwrap().insert("stringly".into(), json!({"active": "true", "sub": "x"}));
    let server = idp(Arc::clone(&answers)).await;
    let i = Introspector::new(config(server.url("/introspect"))).unwrap();
    assert_eq!(i.introspect("dead", at(0)).await.unwrap_err(), IntrospectError::Inactive);
    assert_eq!(i.introspect("dead", at(29)).await.unwrap_err(), IntrospectError::Inactive);
    assert_eq!(server.hits(), 1, "negative result cached");
    assert_eq!(i.introspect("dead", at(31)).await.unwrap_err(), IntrospectError::Inactive);
    assert_eq!(server.hits(), 2, "negative cache lasts 30 s");
    // `active` must be the JSON boolean true.
    assert_eq!(i.introspect("stringly", at(0)).await.unwrap_err(), IntrospectError::Inactive);
    // Empty or oversized tokens never leave the gateway.
    assert_eq!(i.introspect("", at(0)).await.unwrap_err(), IntrospectError::Malformed);
    assert_eq!(i.introspect(&"x".repeat(9000), at(0)).await.unwrap_err(), IntrospectError::Malformed);
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn audience_and_issuer_are_checked_when_configured() {
    let answers: Answers = Arc::default();
    answers.lock().unwrap().insert("t".into(), active(600));
    let server = idp(Arc::clone(&answers)).await;
    let mut c = config(server.url("/introspect"));
    c.audiences = vec!["billing-api".into()];
    let i = Introspector::new(c).unwrap();
    assert_eq!(i.introspect("t", at(0)).await.unwrap_err(), IntrospectError::Claims(JwtError::WrongAudience));
    let mut c = config(server.url("/introspect"));
    c.issuer = Some("https://other-as.test".into());
    let i = Introspector::new(c).unwrap();
    assert_eq!(i.introspect("t", at(0)).await.unwrap_err(), IntrospectError::Claims(JwtError::WrongIssuer));
    let mut c = config(server.url("/introspect"));
    c.audiences = vec!["orders-api".into()];
    c.issuer = Some("https://as.test".into());
    Introspector::new(c).unwrap().introspect("t", at(0)).await.unwrap();
}

#[tokio::test]
async fn endpoint_failures_are_idp_unavailable_and_counted() {
    recorder::install();
    let metric = "portcullis_idp_fetch_errors_total{issuer=https://as.test}";
    let before = recorder::counter(metric);
    // Nothing listens on port 1.
    let down = Introspector::new(config("http://127.0.0.1:1/introspect".into())).unwrap();
    let err = down.introspect("t", at(0)).await.unwrap_err();
    assert_eq!(err, IntrospectError::IdpUnavailable);
    assert!(err.is_unavailable());
    // Not cached: the next request tries again.
    assert_eq!(down.introspect("t", at(1)).await.unwrap_err(), IntrospectError::IdpUnavailable);
    assert_eq!(recorder::counter(metric), before + 2);

    // Wrong client credentials (the server says 401) are our problem, not the caller's: 503.
    let answers: Answers = Arc::default();
    answers.lock().unwrap().insert("t".into(), active(600));
    let server = idp(answers).await;
    let mut c = IntrospectionConfig::new(&server.url("/introspect"), "gateway", secret("wrong"));
    c.label = "https://as.test".into();
    let wrong = Introspector::new(c).unwrap();
    assert_eq!(wrong.introspect("t", at(0)).await.unwrap_err(), IntrospectError::IdpUnavailable);

    // Garbage answers too.
    let garbage = TestServer::start(Arc::new(|_| Box::pin(async { (200, "<html>".to_owned()) }))).await;
    let g = Introspector::new(config(garbage.url("/introspect"))).unwrap();
    assert_eq!(g.introspect("t", at(0)).await.unwrap_err(), IntrospectError::IdpUnavailable);
}

#[test]
fn configuration_is_checked_and_the_secret_never_printed() {
    let c = IntrospectionConfig::new("http://as.example/introspect", "gateway", secret(SECRET));
    assert!(matches!(Introspector::new(c), Err(IntrospectError::Config(_))));
    let c = IntrospectionConfig::new("https://as.example/introspect", "gateway", secret(SECRET));
    let shown = format!("{c:?}");
    assert!(!shown.contains("s3cr3t"), "{shown}");
    let i = Introspector::new(c).unwrap();
    assert!(!format!("{i:?}").contains("s3cr3t"));
}
