#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]

//! Store failures are visible: `portcullis_ratelimit_store_errors_total{kind}` counts errors,
//! timeouts and calls skipped by the open circuit; fallbacks are counted by mode.

use std::sync::Arc;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use portcullis_traffic::{
    Clock, Decision, Gcra, OnStoreFailure, RedisLimiter, RedisStore, RedisStoreConfig, SystemClock,
};

/// (name, labels, value) of one counter.
type Row = (String, Vec<(String, String)>, u64);

fn counter(snapshot: &[Row], name: &str, label: (&str, &str)) -> u64 {
    snapshot
        .iter()
        .filter(|(n, labels, _)| n == name && labels.iter().any(|(k, v)| k == label.0 && v == label.1))
        .map(|(_, _, v)| *v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_errors_and_fallbacks_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = RedisStoreConfig {
        namespace: "pctest:metrics".into(),
        timeout: Duration::from_millis(50),
        failure_threshold: 2,
        cooldown: Duration::from_secs(60),
        expected_nodes: 2,
    };
    let store = Arc::new(RedisStore::connect_lazy(&format!("redis://127.0.0.1:{port}/"), cfg).unwrap());
    let lim = RedisLimiter::new(store);
    let clock = SystemClock::new();
    let gcra = Gcra::new(10, Duration::from_secs(60), 10).unwrap();
    for _ in 0..5 {
        let d = lim.check("rl:m:route:r", &gcra, 1, clock.now(), OnStoreFailure::Open).await;
        assert!(d.is_allow());
    }
    assert_eq!(
        lim.check("rl:m:route:r", &gcra, 1, clock.now(), OnStoreFailure::Closed).await,
        Decision::StoreUnavailable
    );

    let snapshot: Vec<Row> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let DebugValue::Counter(v) = value else { return None };
            let labels = key.key().labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
            Some((key.key().name().to_owned(), labels, v))
        })
        .collect();
    let errors = counter(&snapshot, "portcullis_ratelimit_store_errors_total", ("kind", "error"))
        + counter(&snapshot, "portcullis_ratelimit_store_errors_total", ("kind", "timeout"));
    assert_eq!(errors, 2, "two failures open the circuit: {snapshot:?}");
    assert_eq!(counter(&snapshot, "portcullis_ratelimit_store_errors_total", ("kind", "circuit_open")), 4);
    assert_eq!(counter(&snapshot, "portcullis_ratelimit_store_fallback_total", ("mode", "open")), 5);
    assert_eq!(counter(&snapshot, "portcullis_ratelimit_store_fallback_total", ("mode", "closed")), 1);
}
