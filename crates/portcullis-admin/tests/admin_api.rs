#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers fail the test loudly")]
//! The identity admin API end to end: a gateway with identity on SQLite in a temp dir and an
//! admin token, called over real sockets on 127.0.0.1. Each endpoint's accept and reject cases;
//! keys shown once and never listed; every action audited without a key; the API closed when no
//! token is configured; the OpenAPI document and the router agree.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use portcullis_testkit::{Mode, Resp, TestGateway, Upstream, send};
use serde_json::{Value, json};

const TOKEN: &str = "pc_admin_test-token-0123456789abcdef0123456789abcdef";
const SECRET: &str = "an-identity-test-secret-of-32-bytes-or-more";

fn sha256_hex(s: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, s.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn config(up: &Upstream, token_line: &str) -> String {
    format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams: {{ up: {{ targets: ["http://{addr}"] }} }}
identity:
  store: {{ sqlite: {{ path: ids.db }} }}
  key_secret: "${{file:key.secret}}"
  {token_line}
traffic:
  plans:
    gold: {{ limits: [{{ name: burst, rate: 1000, period: 1s }}] }}
routes:
  - name: health
    path: /health
    upstream: up
    policy: {{ auth: {{ public: true }} }}
  - name: orders
    prefix: /orders
    upstream: up
    policy: {{ auth: {{ methods: [api_key], scopes: [orders:read] }} }}
  - name: signed
    prefix: /signed
    upstream: up
    policy: {{ auth: {{ methods: [hmac], scopes: [orders:read] }} }}
  - name: basic
    path: /basic
    upstream: up
    policy: {{ auth: {{ methods: [basic] }} }}
"#,
        addr = up.addr()
    )
}

async fn start_with(up: &Upstream, token_line: &str) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.secret"), SECRET).unwrap();
    TestGateway::start_in(dir, &config(up, token_line)).await
}

async fn start(up: &Upstream) -> TestGateway {
    start_with(up, &format!("admin_token_sha256: \"{}\"", sha256_hex(TOKEN))).await
}

/// Calls the admin API. `token: None` sends no Authorization header.
async fn admin(gw: &TestGateway, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
    admin_raw(gw, method, path, token, body.map(|b| ("application/json", b.to_string())), &[]).await
}

async fn admin_raw(
    gw: &TestGateway,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, String)>,
    headers: &[(&str, &str)],
) -> Resp {
    let mut b = http::Request::builder().method(method).uri(path).header("host", "127.0.0.1");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let body = match body {
        Some((ct, text)) => {
            b = b.header("content-type", ct);
            Bytes::from(text)
        }
        None => Bytes::new(),
    };
    send(gw.admin_addr(), &Mode::H1, b.body(Full::new(body)).unwrap()).await
}

async fn ok(gw: &TestGateway, method: &str, path: &str, body: Option<Value>) -> Value {
    let r = admin(gw, method, path, Some(TOKEN), body).await;
    assert!(r.status < 300, "{method} {path}: {} {}", r.status, String::from_utf8_lossy(&r.body));
    r.json()
}

fn assert_problem(r: &Resp, status: u16) -> Value {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let doc = r.json();
    assert_eq!(doc["status"], status);
    assert!(doc["type"].as_str().unwrap().starts_with("urn:portcullis:problem:"));
    assert!(doc["title"].is_string());
    doc
}

async fn through_gateway(gw: &TestGateway, path: &str, key: Option<&str>) -> u16 {
    let mut b = http::Request::get(path).header("host", "api.test");
    if let Some(k) = key {
        b = b.header("x-api-key", k);
    }
    gw.request(b.body(Full::new(Bytes::new())).unwrap()).await.status
}

/// Polls until the gateway answers `want`, for at most `within`; returns how long it took.
async fn eventually(gw: &TestGateway, key: &str, want: u16, within: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        let got = through_gateway(gw, "/orders/1", Some(key)).await;
        if got == want {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < within, "still {got}, wanted {want} after {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn seed(gw: &TestGateway) -> String {
    ok(gw, "POST", "/v1/orgs", Some(json!({"name": "acme", "plan": "gold"}))).await;
    ok(gw, "POST", "/v1/consumers", Some(json!({"org": "acme", "name": "acme-app", "scopes": ["orders:read"]}))).await;
    let k = ok(gw, "POST", "/v1/consumers/acme-app/keys", Some(json!({"label": "ci"}))).await;
    k["key"].as_str().unwrap().to_owned()
}

fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// ---- authentication ----

#[tokio::test]
async fn admin_token_is_required_checked_counted_and_audited_without_the_token() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let before = String::from_utf8_lossy(&admin(&gw, "GET", "/metrics", None, None).await.body).into_owned();

    // Accept.
    assert_eq!(admin(&gw, "GET", "/v1/orgs", Some(TOKEN), None).await.status, 200);

    // Reject: none, wrong, the hash itself, wrong scheme, and unknown paths too.
    let wrong = "pc_admin_wrong-token-does-not-match-anything-at-all";
    for (token, extra) in [
        (None, None),
        (Some(wrong), None),
        (Some(sha256_hex(TOKEN).as_str()), None),
        (None, Some(("authorization", format!("Basic {TOKEN}")))),
    ] {
        let headers: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = admin_raw(&gw, "GET", "/v1/orgs", token, None, &headers).await;
        let doc = assert_problem(&r, 401);
        assert_eq!(doc["type"], "urn:portcullis:problem:unauthorized");
        assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
        assert!(!String::from_utf8_lossy(&r.body).contains(wrong));
    }
    assert_problem(&admin(&gw, "GET", "/v1/no-such-thing", None, None).await, 401);
    assert_problem(&admin(&gw, "POST", "/v1/orgs", Some(wrong), Some(json!({"name": "evil"}))).await, 401);
    // A refused write did nothing.
    assert_eq!(ok(&gw, "GET", "/v1/orgs", None).await["items"], json!([]));

    // Audited, without the presented token.
    let audit = ok(&gw, "GET", "/v1/audit", None).await;
    let failures: Vec<&Value> =
        audit["items"].as_array().unwrap().iter().filter(|e| e["action"] == "admin.auth_failed").collect();
    assert_eq!(failures.len(), 6, "{audit:#}");
    assert!(failures.iter().all(|e| e["actor"] == "unknown"));
    assert!(failures.iter().any(|e| e["detail"]["reason"] == "invalid_token"));
    assert!(failures.iter().any(|e| e["detail"]["reason"] == "missing_token"));
    assert!(failures.iter().all(|e| e["detail"]["peer"] == "127.0.0.1"));
    let text = audit.to_string();
    assert!(!text.contains(wrong) && !text.contains("wrong-token"), "the audit trail holds no presented token");

    // Counted.
    let after = String::from_utf8_lossy(&admin(&gw, "GET", "/metrics", None, None).await.body).into_owned();
    let name = "portcullis_admin_auth_failures_total";
    let grew = metric(&after, name, "invalid_token") - metric(&before, name, "invalid_token");
    assert!(grew >= 3.0, "{after}");
    assert!(metric(&after, name, "missing_token") - metric(&before, name, "missing_token") >= 3.0);
}

#[tokio::test]
async fn the_api_stays_closed_without_identity_or_without_an_admin_token() {
    let up = Upstream::start().await;
    // Identity configured, no admin token: 503, whatever token is sent.
    let gw = start_with(&up, "").await;
    for token in [None, Some(TOKEN)] {
        let doc = assert_problem(&admin(&gw, "GET", "/v1/orgs", token, None).await, 503);
        assert_eq!(doc["type"], "urn:portcullis:problem:admin-api-disabled");
        assert!(doc["detail"].as_str().unwrap().contains("admin-token"));
    }
    assert_problem(&admin(&gw, "POST", "/v1/orgs", Some(TOKEN), Some(json!({"name": "x"}))).await, 503);
    // The rest of the admin listener still works.
    assert_eq!(admin(&gw, "GET", "/healthz", None, None).await.status, 200);

    // No identity at all: 404.
    let gw = TestGateway::start(&TestGateway::yaml(&up, "")).await;
    let doc = assert_problem(&admin(&gw, "GET", "/v1/orgs", Some(TOKEN), None).await, 404);
    assert_eq!(doc["type"], "urn:portcullis:problem:admin-api-disabled");
    assert_eq!(admin(&gw, "GET", "/healthz", None, None).await.status, 200);
}

// ---- organizations and consumers ----

#[tokio::test]
async fn organizations_accept_and_reject() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let r = admin(&gw, "POST", "/v1/orgs", Some(TOKEN), Some(json!({"name": "acme", "plan": "gold"}))).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.json()["name"], "acme");
    assert_eq!(r.json()["status"], "active");

    assert_problem(&admin(&gw, "POST", "/v1/orgs", Some(TOKEN), Some(json!({"name": "acme"}))).await, 409);
    for bad in [json!({"name": "Bad Name"}), json!({"name": "ok", "extra": 1}), json!({}), json!({"name": 5})] {
        assert_problem(&admin(&gw, "POST", "/v1/orgs", Some(TOKEN), Some(bad)).await, 400);
    }
    assert_problem(
        &admin_raw(&gw, "POST", "/v1/orgs", Some(TOKEN), Some(("application/json", "{".into())), &[]).await,
        400,
    );
    assert_problem(
        &admin_raw(&gw, "POST", "/v1/orgs", Some(TOKEN), Some(("text/plain", r#"{"name":"t"}"#.into())), &[]).await,
        415,
    );
    let huge = format!(r#"{{"name":"big","plan":"{}"}}"#, "x".repeat(70 * 1024));
    assert_problem(&admin_raw(&gw, "POST", "/v1/orgs", Some(TOKEN), Some(("application/json", huge)), &[]).await, 413);
    assert_problem(&admin(&gw, "PUT", "/v1/orgs", Some(TOKEN), None).await, 405);

    let list = ok(&gw, "GET", "/v1/orgs", None).await;
    let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["acme"]);
}

#[tokio::test]
async fn consumers_accept_and_reject() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    ok(&gw, "POST", "/v1/orgs", Some(json!({"name": "acme"}))).await;
    ok(&gw, "POST", "/v1/orgs", Some(json!({"name": "globex"}))).await;
    let c = ok(
        &gw,
        "POST",
        "/v1/consumers",
        Some(
            json!({"org": "acme", "name": "acme-app", "kind": "service", "scopes": ["orders:read"], "roles": ["ops"]}),
        ),
    )
    .await;
    assert_eq!(c["kind"], "service");
    assert_eq!(c["scopes"], json!(["orders:read"]));
    ok(&gw, "POST", "/v1/consumers", Some(json!({"org": "globex", "name": "globex-app"}))).await;

    let r = admin(&gw, "POST", "/v1/consumers", Some(TOKEN), Some(json!({"org": "nope", "name": "x"}))).await;
    assert_eq!(assert_problem(&r, 404)["detail"], "organization not found");
    let r = admin(&gw, "POST", "/v1/consumers", Some(TOKEN), Some(json!({"org": "acme", "name": "acme-app"}))).await;
    assert_problem(&r, 409);
    for bad in [
        json!({"org": "acme", "name": "k", "kind": "robot"}),
        json!({"org": "acme", "name": "k", "scopes": ["has space"]}),
        json!({"org": "acme", "name": "k", "admin": true}),
        json!({"name": "k"}),
    ] {
        assert_problem(&admin(&gw, "POST", "/v1/consumers", Some(TOKEN), Some(bad)).await, 400);
    }

    assert_eq!(ok(&gw, "GET", "/v1/consumers", None).await["items"].as_array().unwrap().len(), 2);
    let acme = ok(&gw, "GET", "/v1/consumers?org=acme", None).await;
    assert_eq!(acme["items"].as_array().unwrap().len(), 1);
    assert_eq!(acme["items"][0]["name"], "acme-app");
    assert_problem(&admin(&gw, "GET", "/v1/consumers?org=nope", Some(TOKEN), None).await, 404);
    assert_problem(&admin(&gw, "GET", "/v1/consumers?organization=acme", Some(TOKEN), None).await, 400);

    assert_eq!(ok(&gw, "GET", "/v1/consumers/acme-app", None).await["name"], "acme-app");
    assert_problem(&admin(&gw, "GET", "/v1/consumers/nobody", Some(TOKEN), None).await, 404);
}

// ---- keys ----

#[tokio::test]
async fn a_key_is_shown_once_works_and_is_never_listed() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let key = seed(&gw).await;
    assert!(key.starts_with("pc_live_"));
    assert_eq!(through_gateway(&gw, "/orders/1", Some(&key)).await, 200);

    let test = ok(&gw, "POST", "/v1/consumers/acme-app/keys", Some(json!({"env": "test", "ttl": "30d"}))).await;
    let test_key = test["key"].as_str().unwrap();
    assert!(test_key.starts_with("pc_test_"));
    assert!(test["warning"].as_str().unwrap().contains("shown once"));
    let exp = test["credential"]["expires_at"].as_i64().unwrap() - test["credential"]["created_at"].as_i64().unwrap();
    assert!((30 * 86_400 - 5..=30 * 86_400 + 5).contains(&exp));
    assert!(test["credential"].get("lookup").is_none() && test["credential"].get("secret").is_none());

    let list = admin(&gw, "GET", "/v1/consumers/acme-app/keys", Some(TOKEN), None).await;
    let text = String::from_utf8_lossy(&list.body).into_owned();
    assert!(!text.contains(&key) && !text.contains(test_key), "no key in a list");
    assert!(!text.contains("lookup") && !text.contains("secret"));
    let items = list.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|c| c["status"] == "active" && c["hint"].as_str().unwrap().len() == 12));
    let id = items[0]["id"].as_str().unwrap().to_owned();
    let one = admin(&gw, "GET", &format!("/v1/keys/{id}"), Some(TOKEN), None).await;
    assert_eq!(one.status, 200);
    assert!(!String::from_utf8_lossy(&one.body).contains(&key));

    // Rejects.
    for bad in [
        json!({"scopes": ["admin:all"]}),
        json!({"ttl": "soon"}),
        json!({"ttl": "0s"}),
        json!({"env": "prod"}),
        json!({"key": "pc_live_chosen"}),
    ] {
        assert_problem(&admin(&gw, "POST", "/v1/consumers/acme-app/keys", Some(TOKEN), Some(bad)).await, 400);
    }
    assert_problem(&admin(&gw, "POST", "/v1/consumers/nobody/keys", Some(TOKEN), Some(json!({}))).await, 404);
    assert_problem(&admin(&gw, "GET", "/v1/consumers/nobody/keys", Some(TOKEN), None).await, 404);
    assert_problem(&admin(&gw, "GET", "/v1/keys/not-an-id", Some(TOKEN), None).await, 404);
}

#[tokio::test]
async fn rotate_and_revoke() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let old = seed(&gw).await;
    let id = ok(&gw, "GET", "/v1/consumers/acme-app/keys", None).await["items"][0]["id"].as_str().unwrap().to_owned();

    // Rotation with the default overlap: both keys work.
    let r = admin(&gw, "POST", &format!("/v1/keys/{id}/rotate"), Some(TOKEN), None).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let rotated = r.json();
    let new = rotated["key"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(rotated["replaces"]["id"], id.as_str());
    let until =
        rotated["replaces"]["expires_at"].as_i64().unwrap() - rotated["credential"]["created_at"].as_i64().unwrap();
    assert!((86_400 - 5..=86_400 + 5).contains(&until), "default overlap 24h, got {until}");
    assert_eq!(through_gateway(&gw, "/orders/1", Some(&old)).await, 200);
    assert_eq!(through_gateway(&gw, "/orders/1", Some(&new)).await, 200);

    // Rotation with no overlap: the old key stops at once.
    let new_id = rotated["credential"]["id"].as_str().unwrap().to_owned();
    let r = ok(&gw, "POST", &format!("/v1/keys/{new_id}/rotate"), Some(json!({"overlap": "0s"}))).await;
    let newest = r["key"].as_str().unwrap().to_owned();
    eventually(&gw, &new, 401, Duration::from_secs(1)).await;
    assert_eq!(through_gateway(&gw, "/orders/1", Some(&newest)).await, 200);

    // Revoke.
    let newest_id = r["credential"]["id"].as_str().unwrap().to_owned();
    for bad in [json!({}), json!({"reason": ""}), json!({"reason": "x", "now": true})] {
        assert_problem(&admin(&gw, "POST", &format!("/v1/keys/{newest_id}/revoke"), Some(TOKEN), Some(bad)).await, 400);
    }
    let bad = json!({"overlap": "a while"});
    assert_problem(&admin(&gw, "POST", &format!("/v1/keys/{newest_id}/rotate"), Some(TOKEN), Some(bad)).await, 400);
    let why = json!({"reason": "leaked"});
    assert_problem(&admin(&gw, "POST", "/v1/keys/nope/revoke", Some(TOKEN), Some(why.clone())).await, 404);
    assert_problem(&admin(&gw, "POST", "/v1/keys/nope/rotate", Some(TOKEN), None).await, 404);
    let revoked = ok(&gw, "POST", &format!("/v1/keys/{newest_id}/revoke"), Some(why)).await;
    assert_eq!(revoked["status"], "revoked");
    let took = eventually(&gw, &newest, 401, Duration::from_secs(1)).await;
    assert!(took < Duration::from_secs(1));
}

// ---- suspensions ----

#[tokio::test]
async fn suspensions_apply_within_a_second_and_resume() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let key = seed(&gw).await;
    assert_eq!(through_gateway(&gw, "/orders/1", Some(&key)).await, 200);

    let body = json!({"target": {"kind": "consumer", "name_or_id": "acme-app"}, "reason": "abuse", "duration": "1h"});
    let s = ok(&gw, "POST", "/v1/suspensions", Some(body)).await;
    assert_eq!(s["target"]["kind"], "consumer");
    assert_eq!(s["reason"], "abuse");
    assert!(s["expires_at"].is_i64());
    eventually(&gw, &key, 403, Duration::from_secs(1)).await;
    let list = ok(&gw, "GET", "/v1/suspensions", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    assert_eq!(ok(&gw, "DELETE", "/v1/suspensions/consumer/acme-app", None).await["lifted"], true);
    eventually(&gw, &key, 200, Duration::from_secs(1)).await;
    assert_eq!(ok(&gw, "DELETE", "/v1/suspensions/consumer/acme-app", None).await["lifted"], false);

    // Organization and route kill switches.
    let body = json!({"target": {"kind": "organization", "name_or_id": "acme"}, "reason": "unpaid"});
    ok(&gw, "POST", "/v1/suspensions", Some(body)).await;
    eventually(&gw, &key, 403, Duration::from_secs(1)).await;
    ok(&gw, "DELETE", "/v1/suspensions/organization/acme", None).await;
    eventually(&gw, &key, 200, Duration::from_secs(1)).await;
    let body = json!({"target": {"kind": "route", "name_or_id": "orders"}, "reason": "incident"});
    ok(&gw, "POST", "/v1/suspensions", Some(body)).await;
    eventually(&gw, &key, 503, Duration::from_secs(1)).await;
    ok(&gw, "DELETE", "/v1/suspensions/route/orders", None).await;
    eventually(&gw, &key, 200, Duration::from_secs(1)).await;

    // Rejects.
    for (bad, status) in [
        (json!({"target": {"kind": "route", "name_or_id": "no-such-route"}, "reason": "x"}), 404),
        (json!({"target": {"kind": "consumer", "name_or_id": "nobody"}, "reason": "x"}), 404),
        (json!({"target": {"kind": "credential", "name_or_id": "nope"}, "reason": "x"}), 404),
        (json!({"target": {"kind": "planet", "name_or_id": "earth"}, "reason": "x"}), 400),
        (json!({"target": {"kind": "consumer", "name_or_id": "acme-app"}, "reason": "  "}), 400),
        (json!({"target": {"kind": "consumer", "name_or_id": "acme-app"}}), 400),
        (json!({"target": {"kind": "consumer", "name_or_id": "acme-app"}, "reason": "x", "duration": "-1h"}), 400),
    ] {
        assert_problem(&admin(&gw, "POST", "/v1/suspensions", Some(TOKEN), Some(bad)).await, status);
    }
    assert_problem(&admin(&gw, "DELETE", "/v1/suspensions/planet/earth", Some(TOKEN), None).await, 400);
    assert_problem(&admin(&gw, "DELETE", "/v1/suspensions/consumer/nobody", Some(TOKEN), None).await, 404);
    assert_eq!(through_gateway(&gw, "/orders/1", Some(&key)).await, 200, "rejected calls changed nothing");
}

async fn orders_body(gw: &TestGateway, key: &str) -> Value {
    let req = http::Request::get("/orders/1").header("host", "api.test").header("x-api-key", key);
    let r = gw.request(req.body(Full::new(Bytes::new())).unwrap()).await;
    assert_eq!(r.status, 200);
    r.json()
}

/// Polls until the orders body is `want`, for at most `within`.
async fn eventually_body(gw: &TestGateway, key: &str, want: &Value, within: Duration) {
    let t0 = Instant::now();
    loop {
        if orders_body(gw, key).await == *want {
            return;
        }
        assert!(t0.elapsed() < within, "body never became {want} within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn shaping_policies_accept_reject_apply_and_are_audited() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let key = seed(&gw).await;
    let full = json!({"method": "GET", "path": "/orders/1"});
    assert_eq!(orders_body(&gw, &key).await, full, "the orders route has no exposure block of its own");

    let put = json!({"allow": ["/method"], "max_items_everywhere": 20, "reason": "scraping", "duration": "1h"});
    let p = ok(&gw, "PUT", "/v1/policies/orders/consumer/acme-app", Some(put)).await;
    assert_eq!(p["route"], "orders");
    assert_eq!(p["subject"], json!({"kind": "consumer", "name": "acme-app"}));
    assert_eq!(p["shape"]["allow"], json!(["/method"]));
    assert_eq!(p["created_by"], "admin");
    assert!(p["expires_at"].is_i64());
    eventually_body(&gw, &key, &json!({"method": "GET"}), Duration::from_secs(1)).await;
    assert_eq!(ok(&gw, "GET", "/v1/policies/orders/consumer/acme-app", None).await, p);
    assert_eq!(ok(&gw, "GET", "/v1/policies", None).await["items"], json!([p]));
    assert_eq!(ok(&gw, "GET", "/v1/policies?route=orders", None).await["items"], json!([p]));
    assert_eq!(ok(&gw, "GET", "/v1/policies?route=health", None).await["items"], json!([]));

    // An organization rule ranks below the consumer's own; a plan rule below both.
    ok(&gw, "PUT", "/v1/policies/orders/organization/acme", Some(json!({"allow": ["/path"], "reason": "r"}))).await;
    ok(&gw, "PUT", "/v1/policies/orders/plan/gold", Some(json!({"allow": ["/nothing"], "reason": "r"}))).await;
    assert_eq!(orders_body(&gw, &key).await, json!({"method": "GET"}));

    // Setting it again replaces it.
    let again = json!({"allow": ["/path"], "reason": "narrower"});
    assert_eq!(ok(&gw, "PUT", "/v1/policies/orders/consumer/acme-app", Some(again)).await["reason"], "narrower");
    eventually_body(&gw, &key, &json!({"path": "/orders/1"}), Duration::from_secs(1)).await;

    // Rejects: nothing changes.
    for (path, bad, status) in [
        ("/v1/policies/no-such-route/consumer/acme-app", json!({"allow": ["/a"], "reason": "x"}), 404),
        ("/v1/policies/orders/consumer/nobody", json!({"allow": ["/a"], "reason": "x"}), 404),
        ("/v1/policies/orders/organization/nobody", json!({"allow": ["/a"], "reason": "x"}), 404),
        ("/v1/policies/orders/planet/earth", json!({"allow": ["/a"], "reason": "x"}), 400),
        // `gold` is a configured traffic plan (accepted above); `golden` is not.
        ("/v1/policies/orders/plan/golden", json!({"allow": ["/a"], "reason": "x"}), 404),
        ("/v1/policies/no-such-route/plan/gold", json!({"allow": ["/a"], "reason": "x"}), 404),
        ("/v1/policies/orders/consumer/acme-app", json!({"allow": ["no-slash"], "reason": "x"}), 400),
        ("/v1/policies/orders/consumer/acme-app", json!({"allow": ["/a"]}), 400),
        ("/v1/policies/orders/consumer/acme-app", json!({"allow": ["/a"], "reason": " "}), 400),
        ("/v1/policies/orders/consumer/acme-app", json!({"allow": ["/a"], "reason": "x", "duration": "soon"}), 400),
        ("/v1/policies/orders/consumer/acme-app", json!({"allow": ["/a"], "reason": "x", "extra": 1}), 400),
        ("/v1/policies/orders/consumer/acme-app", json!({"allow": vec!["/a"; 65], "reason": "x"}), 400),
    ] {
        assert_problem(&admin(&gw, "PUT", path, Some(TOKEN), Some(bad)).await, status);
    }
    assert_problem(
        &admin(&gw, "PUT", "/v1/policies/orders/consumer/acme-app", None, Some(json!({"reason": "x"}))).await,
        401,
    );
    let unknown = json!({"allow": ["/a"], "reason": "x"});
    let r = admin(&gw, "PUT", "/v1/policies/orders/plan/golden", Some(TOKEN), Some(unknown.clone())).await;
    assert_eq!(assert_problem(&r, 404)["detail"], "plan not found");
    let r = admin(&gw, "PUT", "/v1/policies/nowhere/plan/gold", Some(TOKEN), Some(unknown)).await;
    assert_eq!(assert_problem(&r, 404)["detail"], "route not found");
    assert_problem(&admin(&gw, "GET", "/v1/policies/orders/plan/silver", Some(TOKEN), None).await, 404);
    assert_problem(&admin(&gw, "DELETE", "/v1/policies/no-such-route/plan/gold", Some(TOKEN), None).await, 404);
    assert_eq!(orders_body(&gw, &key).await, json!({"path": "/orders/1"}), "rejected calls changed nothing");

    let del = ok(&gw, "DELETE", "/v1/policies/orders/consumer/acme-app?reason=resolved", None).await;
    assert_eq!(del["deleted"], true);
    eventually_body(&gw, &key, &json!({"path": "/orders/1"}), Duration::from_secs(1)).await;
    assert_eq!(ok(&gw, "DELETE", "/v1/policies/orders/consumer/acme-app", None).await["deleted"], false);
    assert_problem(&admin(&gw, "GET", "/v1/policies/orders/consumer/acme-app", Some(TOKEN), None).await, 404);
    ok(&gw, "DELETE", "/v1/policies/orders/organization/acme", None).await;
    ok(&gw, "DELETE", "/v1/policies/orders/plan/gold", None).await;
    eventually_body(&gw, &key, &full, Duration::from_secs(1)).await;

    // Audited with the actor and the reason.
    let trail = ok(&gw, "GET", "/v1/audit?limit=1000", None).await;
    let entries = trail["items"].as_array().unwrap();
    let set = entries.iter().find(|e| e["action"] == "policy.set" && e["detail"]["reason"] == "narrower").unwrap();
    assert_eq!(set["actor"], "admin");
    assert_eq!(set["detail"]["route"], "orders");
    let deleted = entries.iter().find(|e| e["action"] == "policy.delete" && e["detail"]["deleted"] == true).unwrap();
    assert_eq!(deleted["detail"]["reason"], "resolved");
}

// ---- audit ----

#[tokio::test]
async fn every_action_is_audited_with_its_actor_and_no_key() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let as_alice = [("x-portcullis-actor", "alice@example.com")];
    let send_as = |method: &'static str, path: String, body: Value| {
        let gw = &gw;
        async move {
            let r = admin_raw(gw, method, &path, Some(TOKEN), Some(("application/json", body.to_string())), &as_alice)
                .await;
            assert!(r.status < 300, "{method} {path}: {}", String::from_utf8_lossy(&r.body));
            r.json()
        }
    };
    send_as("POST", "/v1/orgs".into(), json!({"name": "acme"})).await;
    send_as("POST", "/v1/consumers".into(), json!({"org": "acme", "name": "acme-app"})).await;
    let k = send_as("POST", "/v1/consumers/acme-app/keys".into(), json!({})).await;
    let id = k["credential"]["id"].as_str().unwrap().to_owned();
    let rot = send_as("POST", format!("/v1/keys/{id}/rotate"), json!({"overlap": "1h"})).await;
    let id2 = rot["credential"]["id"].as_str().unwrap().to_owned();
    send_as("POST", format!("/v1/keys/{id2}/revoke"), json!({"reason": "test"})).await;
    let body = json!({"target": {"kind": "credential", "name_or_id": id}, "reason": "pause"});
    send_as("POST", "/v1/suspensions".into(), body).await;
    let r = admin_raw(&gw, "DELETE", &format!("/v1/suspensions/credential/{id}"), Some(TOKEN), None, &as_alice).await;
    assert_eq!(r.status, 200);

    let audit = ok(&gw, "GET", "/v1/audit?since=0&limit=1000", None).await;
    let entries = audit["items"].as_array().unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    for want in [
        "organization.create",
        "consumer.create",
        "api_key.create",
        "api_key.rotate",
        "credential.revoke",
        "suspend",
        "resume",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    assert!(entries.iter().all(|e| e["actor"] == "admin:alice@example.com"), "{audit:#}");
    let text = audit.to_string();
    for key in [k["key"].as_str().unwrap(), rot["key"].as_str().unwrap()] {
        assert!(!text.contains(key), "the audit trail holds no key");
    }

    // Paging.
    let first = ok(&gw, "GET", "/v1/audit?limit=2", None).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let next = first["next_since"].as_i64().unwrap();
    let rest = ok(&gw, "GET", &format!("/v1/audit?since={next}"), None).await;
    assert_eq!(rest["items"].as_array().unwrap().len(), entries.len() - 2);
    assert!(rest["items"][0]["seq"].as_i64().unwrap() > next);
    for bad in
        ["/v1/audit?limit=0", "/v1/audit?limit=1001", "/v1/audit?since=-1", "/v1/audit?since=x", "/v1/audit?from=1"]
    {
        assert_problem(&admin(&gw, "GET", bad, Some(TOKEN), None).await, 400);
    }
}

// ---- passwords, HMAC keys, certificates ----

const PASSWORD: &str = "correct horse battery staple";

#[tokio::test]
async fn passwords_hmac_keys_and_certificates_accept_and_reject() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    seed(&gw).await;
    let fp = sha256_hex("a client certificate");

    // Accept: each answers 201 with the credential; the password is never echoed.
    let r = admin(
        &gw,
        "POST",
        "/v1/consumers/acme-app/passwords",
        Some(TOKEN),
        Some(json!({"username": "acme-user", "password": PASSWORD})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(!text.contains(PASSWORD) && !text.contains("argon2") && !text.contains("secret"), "{text}");
    assert_eq!(r.json()["kind"], "password");
    assert_eq!(r.json()["hint"], "acme-user");

    let h = admin(&gw, "POST", "/v1/consumers/acme-app/hmac-keys", Some(TOKEN), None).await;
    assert_eq!(h.status, 201, "{}", String::from_utf8_lossy(&h.body));
    assert_eq!(h.header("pragma"), Some("no-cache"));
    let h = h.json();
    let (key_id, secret) = (h["key_id"].as_str().unwrap(), h["secret"].as_str().unwrap());
    assert!(portcullis_identity::hmac_sig::SigningSecret::from_base64(secret).is_ok());
    assert_eq!(h["credential"]["kind"], "hmac_key");
    assert_eq!(h["credential"]["hint"], key_id);
    assert!(h["warning"].as_str().unwrap().contains("shown once"));

    // Colons and upper case are accepted and normalised.
    let colons: String =
        fp.to_uppercase().as_bytes().chunks(2).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(":");
    let c = ok(&gw, "POST", "/v1/consumers/acme-app/certificates", Some(json!({"fingerprint": colons}))).await;
    assert_eq!(c["kind"], "certificate");
    assert_eq!(c["hint"], format!("sha256:{}…", &fp[..12]));

    // Reject.
    let pw = |body: Value| admin(&gw, "POST", "/v1/consumers/acme-app/passwords", Some(TOKEN), Some(body));
    let short = pw(json!({"username": "short-user", "password": "eleven char"})).await;
    assert!(assert_problem(&short, 400)["detail"].as_str().unwrap().contains("12"));
    assert_problem(&pw(json!({"username": "a:b", "password": PASSWORD})).await, 400);
    assert_problem(&pw(json!({"username": "", "password": PASSWORD})).await, 400);
    assert_problem(&pw(json!({"username": "x", "password": "y".repeat(1025)})).await, 400);
    assert_problem(&pw(json!({"username": "x"})).await, 400);
    assert_problem(&pw(json!({"username": "acme-user", "password": "another long password"})).await, 409);
    let body = json!({"username": "ghost", "password": PASSWORD});
    assert_problem(&admin(&gw, "POST", "/v1/consumers/nobody/passwords", Some(TOKEN), Some(body)).await, 404);
    assert_problem(&admin(&gw, "POST", "/v1/consumers/nobody/hmac-keys", Some(TOKEN), None).await, 404);
    let body = json!({"key_id": "pchk_chosen"});
    assert_problem(&admin(&gw, "POST", "/v1/consumers/acme-app/hmac-keys", Some(TOKEN), Some(body)).await, 400);
    let cert = |who: &'static str, body: Value| admin(&gw, "POST", who, Some(TOKEN), Some(body));
    for bad in ["abc", "zz", &fp[..62], &format!("{fp}00")] {
        let r = cert("/v1/consumers/acme-app/certificates", json!({"fingerprint": bad})).await;
        assert_problem(&r, 400);
    }
    assert_problem(&cert("/v1/consumers/acme-app/certificates", json!({})).await, 400);
    assert_problem(&cert("/v1/consumers/acme-app/certificates", json!({"fingerprint": fp})).await, 409);
    assert_problem(&cert("/v1/consumers/nobody/certificates", json!({"fingerprint": fp})).await, 404);
    // Without the admin token, nothing.
    let r = admin(&gw, "POST", "/v1/consumers/acme-app/hmac-keys", None, None).await;
    assert_problem(&r, 401);

    // The list shows every kind, no secret; neither does the audit trail.
    let list = admin(&gw, "GET", "/v1/consumers/acme-app/keys", Some(TOKEN), None).await;
    let text = String::from_utf8_lossy(&list.body).into_owned();
    let kinds: BTreeSet<String> =
        list.json()["items"].as_array().unwrap().iter().map(|c| c["kind"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds, ["api_key", "certificate", "hmac_key", "password"].map(String::from).into());
    let audit = ok(&gw, "GET", "/v1/audit?limit=1000", None).await.to_string();
    for (what, shown) in [("list", &text), ("audit", &audit)] {
        assert!(!shown.contains(PASSWORD) && !shown.contains(secret) && !shown.contains("argon2"), "{what}: {shown}");
    }
    for action in ["password.create", "hmac_key.create", "certificate.create"] {
        assert!(audit.contains(action), "{action} not audited: {audit}");
    }
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
}

/// Signs a request the way `portcullis sign` does: `host` and `content-type` signed, the body
/// hashed, the current time and a fresh nonce, with `hmac_sig::sign`.
fn signed(key_id: &str, secret: &str, body: &str) -> http::Request<Full<Bytes>> {
    use portcullis_identity::hmac_sig::{self, BodyDigest, RequestParts, SigningSecret};
    let secret = SigningSecret::from_base64(secret).unwrap();
    let req =
        http::Request::post("/signed/orders").header("host", "api.test").header("content-type", "application/json");
    let (mut parts, ()) = req.body(()).unwrap().into_parts();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let nonce = hmac_sig::new_nonce().unwrap();
    let params = hmac_sig::sign(
        &secret,
        key_id,
        now,
        &nonce,
        &["host", "content-type"],
        RequestParts::from(&parts),
        &BodyDigest::of(body.as_bytes()),
    )
    .unwrap();
    parts.headers.insert(http::header::AUTHORIZATION, params.to_header_value().unwrap());
    http::Request::from_parts(parts, Full::new(Bytes::from(body.to_owned())))
}

#[tokio::test]
async fn a_password_and_an_hmac_key_set_via_the_api_work_through_the_gateway() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    seed(&gw).await;
    let basic_req = |auth: String| {
        http::Request::get("/basic")
            .header("host", "api.test")
            .header("authorization", auth)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    // Basic: refused before the password exists, accepted after, refused with a wrong one.
    assert_eq!(gw.request(basic_req(basic("acme-user", PASSWORD))).await.status, 401);
    let body = json!({"username": "acme-user", "password": PASSWORD});
    ok(&gw, "POST", "/v1/consumers/acme-app/passwords", Some(body)).await;
    assert_eq!(gw.request(basic_req(basic("acme-user", PASSWORD))).await.status, 200);
    assert_eq!(gw.request(basic_req(basic("acme-user", "not the password at all"))).await.status, 401);

    // HMAC: a key issued via the API signs a request that the gateway accepts.
    let h = ok(&gw, "POST", "/v1/consumers/acme-app/hmac-keys", Some(json!({}))).await;
    let (key_id, secret) = (h["key_id"].as_str().unwrap(), h["secret"].as_str().unwrap());
    let r = gw.request(signed(key_id, secret, r#"{"sku":"x"}"#)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // Reject: the same key id with another key's secret.
    let other = ok(&gw, "POST", "/v1/consumers/acme-app/hmac-keys", Some(json!({}))).await;
    let r = gw.request(signed(key_id, other["secret"].as_str().unwrap(), r#"{"sku":"x"}"#)).await;
    assert_eq!(r.status, 401);
    // Revoked via the API: refused (within a second, on every node).
    let id = h["credential"]["id"].as_str().unwrap();
    ok(&gw, "POST", &format!("/v1/keys/{id}/revoke"), Some(json!({"reason": "test"}))).await;
    let t0 = Instant::now();
    loop {
        let st = gw.request(signed(key_id, secret, "{}")).await.status;
        if st == 401 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(1), "a revoked HMAC key still answers {st}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- storage ----

#[tokio::test]
async fn the_database_file_holds_no_usable_key() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let mut keys = vec![seed(&gw).await];
    for env in ["live", "test"] {
        let k = ok(&gw, "POST", "/v1/consumers/acme-app/keys", Some(json!({"env": env}))).await;
        keys.push(k["key"].as_str().unwrap().to_owned());
    }
    let id = ok(&gw, "GET", "/v1/consumers/acme-app/keys", None).await["items"][0]["id"].as_str().unwrap().to_owned();
    let r = ok(&gw, "POST", &format!("/v1/keys/{id}/rotate"), None).await;
    keys.push(r["key"].as_str().unwrap().to_owned());

    // Raw bytes of the database and its WAL: no key, and no key's random part either.
    let mut raw = Vec::new();
    for name in ["ids.db", "ids.db-wal", "ids.db-shm"] {
        if let Ok(bytes) = std::fs::read(gw.dir().join(name)) {
            raw.extend(bytes);
        }
    }
    assert!(raw.len() > 1000, "the database was written");
    for key in &keys {
        let random_part = &key["pc_live_".len()..key.len() - 6];
        for needle in [key.as_str(), random_part] {
            assert!(raw.windows(needle.len()).all(|w| w != needle.as_bytes()), "found a key in the database bytes");
        }
    }

    // And as sqlite3 dumps it, when the tool is installed.
    if let Ok(out) = std::process::Command::new("sqlite3").arg(gw.dir().join("ids.db")).arg(".dump").output()
        && out.status.success()
    {
        let dump = String::from_utf8_lossy(&out.stdout);
        assert!(dump.contains("CREATE TABLE"), "{dump}");
        assert!(dump.contains("acme-app"));
        for key in &keys {
            assert!(!dump.contains(key.as_str()) && !dump.contains(&key["pc_live_".len()..key.len() - 6]));
        }
    }
}

// ---- the OpenAPI document ----

fn openapi_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.clone(), path.clone()));
        }
    }
    out
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_served_routes() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let r = admin(&gw, "GET", "/v1/openapi.json", Some(TOKEN), None).await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_problem(&admin(&gw, "GET", "/v1/openapi.json", None, None).await, 401);

    let documented = openapi_routes(&doc);
    let declared: BTreeSet<(String, String)> =
        portcullis_admin::api::ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
    assert_eq!(documented, declared);
    // Every $ref resolves.
    let text = doc.to_string();
    for part in text.split("\"#/components/schemas/").skip(1) {
        let name = &part[..part.find('"').unwrap()];
        assert!(doc["components"]["schemas"].get(name).is_some(), "dangling $ref {name}");
    }

    // Probe the live router: for every documented path and every method, it serves the method
    // exactly when the document lists it (an unserved method answers 405).
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        let concrete = path.replace("{kind}", "consumer").replace('{', "x").replace('}', "");
        for method in ["get", "post", "put", "patch", "delete"] {
            let r = admin_raw(&gw, &method.to_uppercase(), &concrete, Some(TOKEN), None, &[]).await;
            let served = r.status != 405 && r.status != 404
                || (r.status == 404 && r.json()["type"] != "urn:portcullis:problem:route-not-found");
            let listed = documented.contains(&(method.to_owned(), path.clone()));
            assert_eq!(served, listed, "{method} {path}: {} {}", r.status, String::from_utf8_lossy(&r.body));
        }
    }
    let r = admin(&gw, "GET", "/v1/undocumented", Some(TOKEN), None).await;
    assert_eq!(assert_problem(&r, 404)["type"], "urn:portcullis:problem:route-not-found");
}
