#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]
//! `portcullis usage` and the traffic warnings of `portcullis check`, as a black box: the built
//! binary, its exit code and output.

use std::process::Command;

use portcullis_store::{Store, StoreConfig, UsageRecord};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("key.secret"), "a-usage-cli-test-secret-of-32-bytes-or-more").unwrap();
    let yaml = format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams: {{ up: {{ targets: ["http://127.0.0.1:9"] }} }}
identity:
  store: {{ sqlite: {{ path: usage.db }} }}
  key_secret: "${{file:key.secret}}"
{extra}
routes: [{{ name: orders, prefix: /, upstream: up, policy: {{ auth: {{ public: true }} }} }}]
"#
    );
    let path = dir.join("portcullis.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[tokio::test]
async fn usage_prints_csv_and_json_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let store = Store::open(&StoreConfig::Sqlite { path: dir.path().join("usage.db") }).await.unwrap();
    let rec = |day: &str, c: &str, r: &str, n| UsageRecord {
        day: day.into(),
        consumer_id: c.into(),
        route: r.into(),
        count: n,
    };
    store
        .record_usage(vec![
            rec("2026-11-01", "c1", "orders", 5),
            rec("2026-11-02", "c1", "orders", 2),
            rec("2026-12-01", "c1", "orders", 9),
        ])
        .await
        .unwrap();
    drop(store);
    let cfg = cfg.to_str().unwrap();

    let (ok, out, err) = run(&["usage", "--config", cfg, "--period", "2026-11", "--format", "csv"]);
    assert!(ok, "{err}");
    assert_eq!(out, "period,consumer_id,consumer_name,route,count\r\n2026-11,c1,,orders,7\r\n");

    let (ok, out, err) = run(&["usage", "--config", cfg, "--period", "2026-12", "--format", "json"]);
    assert!(ok, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["usage"][0]["count"], 9);
    assert_eq!(doc["period"], "2026-12");

    // A malformed period is refused with a message, not run as a pattern.
    let (ok, _, err) = run(&["usage", "--config", cfg, "--period", "2026-%", "--format", "csv"]);
    assert!(!ok);
    assert!(err.contains("YYYY-MM"), "{err}");
}

#[test]
fn check_reports_traffic_mistakes_with_key_paths_and_warns_about_fail_open() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("redis.url"), "redis://127.0.0.1:6379/").unwrap();
    let cfg = config(
        dir.path(),
        "traffic:\n  cluster: { redis_url: \"${file:redis.url}\" }\n  plans: { free: { limits: [{ name: ip, key: client_ip, rate: 5, period: 1m, on_store_failure: open }] } }",
    );
    let (ok, out, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(!out.contains(" 0 warning(s)"), "{out}");
    assert!(err.contains("traffic.plans.free.limits[0].on_store_failure"), "{err}");

    let cfg = config(
        dir.path(),
        "traffic:\n  default_plan: gold\n  plans: { free: { limits: [{ name: b, rate: 0, period: 1s }] } }",
    );
    let (ok, _, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("traffic.default_plan") && err.contains("traffic.plans.free.limits[0].rate"), "{err}");
}
