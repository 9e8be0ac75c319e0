#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]
//! Two gateway nodes sharing one PostgreSQL store and one Redis: a suspension made on one node is
//! enforced by the other within a second, while other consumers keep working. Real servers on
//! loopback (`scripts/services` starts them on a fresh machine).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use portcullis_identity::admin::{ConsumerSpec, TargetRef};
use portcullis_identity::apikey::KeyEnv;
use portcullis_testkit::{TestGateway, Upstream};

fn node_yaml(up: &Upstream, schema: &str, namespace: &str) -> String {
    format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams: {{ up: {{ targets: ["http://{}"] }} }}
identity:
  store: {{ postgres: {{ url: "${{file:pg.url}}", schema: {schema}, pool_size: 2 }} }}
  cluster: {{ redis_url: "${{file:redis.url}}", namespace: {namespace} }}
  key_secret: "${{file:key.secret}}"
routes:
  - name: orders
    prefix: /orders
    upstream: up
    policy: {{ auth: {{ methods: [api_key] }} }}
"#,
        up.addr()
    )
}

async fn node(up: &Upstream, schema: &str, namespace: &str) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pg.url"), "postgres://postgres@127.0.0.1:5432/postgres").unwrap();
    std::fs::write(dir.path().join("redis.url"), "redis://127.0.0.1:6379").unwrap();
    std::fs::write(dir.path().join("key.secret"), "a-cluster-test-key-secret-of-32-bytes-or-more").unwrap();
    TestGateway::start_in(dir, &node_yaml(up, schema, namespace)).await
}

async fn status(gw: &TestGateway, key: &str) -> u16 {
    let req = http::Request::get("/orders/1")
        .header("host", "x")
        .header("x-api-key", key)
        .body(Full::new(Bytes::new()))
        .unwrap();
    gw.request(req).await.status
}

/// Polls `node` until `key` gets `want`, at most `limit`; returns how long it took.
async fn until_status(node: &TestGateway, key: &str, want: u16, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if status(node, key).await == want {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "node never answered {want} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_suspension_on_one_node_applies_on_the_other_within_a_second() {
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let schema = format!("t_cluster_{}", &suffix[suffix.len() - 12..]);
    let namespace = format!("test-{suffix}");
    let up = Upstream::start().await;
    let a = node(&up, &schema, &namespace).await;
    let b = node(&up, &schema, &namespace).await;
    let admin = a.handle().identity().unwrap().clone();
    admin.create_org("ops", "acme", None).await.unwrap();
    admin.create_org("ops", "globex", None).await.unwrap();
    for (org, name) in [("acme", "acme-billing"), ("globex", "globex-app")] {
        admin
            .create_consumer("ops", ConsumerSpec { org: org.into(), name: name.into(), ..ConsumerSpec::default() })
            .await
            .unwrap();
    }
    let acme = admin.issue_api_key("ops", "acme-billing", None, None, None, KeyEnv::Live).await.unwrap();
    let globex = admin.issue_api_key("ops", "globex-app", None, None, None, KeyEnv::Live).await.unwrap();
    let (acme, globex) = (acme.key.expose().to_owned(), globex.key.expose().to_owned());

    // Both nodes know both keys (node B reads them from the shared store) and cache them.
    for gw in [&a, &b] {
        assert_eq!(status(gw, &acme).await, 200);
        assert_eq!(status(gw, &globex).await, 200);
    }

    admin.suspend("ops", &TargetRef::Consumer("acme-billing".into()), "abuse", None).await.unwrap();
    let took = until_status(&b, &acme, 403, Duration::from_secs(1)).await;
    eprintln!("suspension reached the other node in {took:?}");
    assert_eq!(status(&b, &globex).await, 200, "the other consumer keeps working");
    assert_eq!(status(&a, &acme).await, 403);

    admin.resume("ops", &TargetRef::Consumer("acme-billing".into())).await.unwrap();
    until_status(&b, &acme, 200, Duration::from_secs(1)).await;

    // Revocation travels the same way.
    let cred = admin.list_credentials("globex-app").await.unwrap().remove(0);
    admin.revoke_credential("ops", &cred.id, "leaked").await.unwrap();
    until_status(&b, &globex, 401, Duration::from_secs(1)).await;

    a.shutdown().await;
    b.shutdown().await;
    let _ = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-qc", &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")])
        .output();
}
