#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]
//! Two gateway nodes sharing one PostgreSQL store and one Redis: a response-shaping policy set
//! through node A's admin API is applied by node B within a second, for that consumer only, and
//! deleting it restores the full response on B as fast. Real servers on loopback
//! (`scripts/services` starts them on a fresh machine).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use portcullis_identity::admin::ConsumerSpec;
use portcullis_identity::apikey::KeyEnv;
use portcullis_testkit::{Mode, Resp, TestGateway, Upstream, send};
use serde_json::{Value, json};

const TOKEN: &str = "pc_admin_cluster-token-0123456789abcdef0123456789abcdef";

fn sha256_hex(s: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, s.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn node_yaml(up: &Upstream, schema: &str, namespace: &str) -> String {
    format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams: {{ up: {{ targets: ["http://{}"] }} }}
identity:
  store: {{ postgres: {{ url: "${{file:pg.url}}", schema: {schema}, pool_size: 2 }} }}
  cluster: {{ redis_url: "${{file:redis.url}}", namespace: {namespace} }}
  key_secret: "${{file:key.secret}}"
  admin_token_sha256: "{}"
routes:
  - name: orders
    prefix: /orders
    upstream: up
    policy: {{ auth: {{ methods: [api_key] }} }}
"#,
        up.addr(),
        sha256_hex(TOKEN)
    )
}

async fn node(up: &Upstream, schema: &str, namespace: &str) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pg.url"), "postgres://postgres@127.0.0.1:5432/postgres").unwrap();
    std::fs::write(dir.path().join("redis.url"), "redis://127.0.0.1:6379").unwrap();
    std::fs::write(dir.path().join("key.secret"), "a-cluster-test-key-secret-of-32-bytes-or-more").unwrap();
    TestGateway::start_in(dir, &node_yaml(up, schema, namespace)).await
}

async fn admin(gw: &TestGateway, method: &str, path: &str, body: Option<Value>) -> Resp {
    let b = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("x-portcullis-actor", "oncall");
    let req = match body {
        Some(v) => b.header("content-type", "application/json").body(Full::new(Bytes::from(v.to_string()))),
        None => b.body(Full::new(Bytes::new())),
    };
    send(gw.admin_addr(), &Mode::H1, req.unwrap()).await
}

async fn body(gw: &TestGateway, key: &str) -> Value {
    let req = http::Request::get("/orders/1")
        .header("host", "x")
        .header("x-api-key", key)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = gw.request(req).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// Polls `node` until `key` gets `want`, at most `limit`; returns when it first did.
async fn until_body(node: &TestGateway, key: &str, want: &Value, limit: Duration) -> Instant {
    let started = Instant::now();
    loop {
        if body(node, key).await == *want {
            return Instant::now();
        }
        assert!(started.elapsed() < limit, "node never answered {want} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_shaping_policy_set_on_one_node_applies_on_the_other_within_a_second() {
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let schema = format!("t_cluster_exp_{}", &suffix[suffix.len() - 12..]);
    let namespace = format!("test-{suffix}");
    let up = Upstream::start().await;
    let a = node(&up, &schema, &namespace).await;
    let b = node(&up, &schema, &namespace).await;
    let ids = a.handle().identity().unwrap().clone();
    ids.create_org("ops", "acme", None).await.unwrap();
    for name in ["partner-x", "acme-app"] {
        ids.create_consumer("ops", ConsumerSpec { org: "acme".into(), name: name.into(), ..ConsumerSpec::default() })
            .await
            .unwrap();
    }
    let partner = ids.issue_api_key("ops", "partner-x", None, None, None, KeyEnv::Live).await.unwrap();
    let other = ids.issue_api_key("ops", "acme-app", None, None, None, KeyEnv::Live).await.unwrap();
    let (partner, other) = (partner.key.expose().to_owned(), other.key.expose().to_owned());

    // The recording upstream answers {"method", "path"}; both nodes serve it whole.
    let full = json!({ "method": "GET", "path": "/orders/1" });
    let shaped = json!({ "path": "/orders/1" });
    for gw in [&a, &b] {
        assert_eq!(body(gw, &partner).await, full);
    }

    let mut latencies = Vec::new();
    for round in 0..3 {
        let sent = Instant::now();
        let r = admin(
            &a,
            "PUT",
            "/v1/policies/orders/consumer/partner-x",
            Some(json!({ "allow": ["/path"], "reason": "scraping through the orders export", "duration": "1h" })),
        )
        .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let acked = sent.elapsed();
        let applied = until_body(&b, &partner, &shaped, Duration::from_secs(1)).await - sent;
        eprintln!("round {round}: policy set, acked by A in {acked:?}, applied on B after {applied:?}");
        latencies.push(applied);
        assert_eq!(body(&b, &other).await, full, "another consumer of the same organization is not shaped");
        assert_eq!(body(&a, &partner).await, shaped);

        let sent = Instant::now();
        let r = admin(&a, "DELETE", "/v1/policies/orders/consumer/partner-x?reason=resolved", None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["deleted"], true);
        let restored = until_body(&b, &partner, &full, Duration::from_secs(1)).await - sent;
        eprintln!("round {round}: policy deleted, full body on B after {restored:?}");
        latencies.push(restored);
    }
    let worst = latencies.iter().max().unwrap();
    eprintln!("cross-node policy switch: worst {worst:?} over {} switches", latencies.len());
    assert!(*worst < Duration::from_secs(1));

    // The switch is in the audit trail with its actor and reason.
    let audit = admin(&a, "GET", "/v1/audit?limit=1000", None).await.json();
    let set = audit["items"].as_array().unwrap().iter().find(|e| e["action"] == "policy.set").unwrap();
    assert_eq!(set["actor"], "admin:oncall");
    assert_eq!(set["detail"]["reason"], "scraping through the orders export");
    assert_eq!(set["detail"]["subject"], json!({ "kind": "consumer", "name": "partner-x" }));

    a.shutdown().await;
    b.shutdown().await;
    let _ = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-qc", &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")])
        .output();
}
