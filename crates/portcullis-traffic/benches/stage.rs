//! The rate-limit stage as the gateway runs it (`RateLimitStage::on_request` on a request with a
//! consumer principal, one per-consumer limit), with counters in this process, in Redis (one call
//! per decision) and in Redis with local batching (size 10). Sequential, one request at a time,
//! so `1 / time` is the req/s one connection gets from this stage alone.
//!
//! `cargo bench -p portcullis-traffic --bench stage -- --warm-up-time 1 --measurement-time 3`
//! (the Redis cases need Redis on 127.0.0.1:6379 and are skipped without it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, reason = "benchmark harness")]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portcullis_core::{AuthMethodUsed, Flow, Principal, RequestCtx, RequestId, Stage};
use portcullis_traffic::{
    BatchConfig, ClusterSettings, KeySpec, LimitSpec, OnStoreFailure, RateLimitStage, RedisStoreConfig, RouteLimits,
    RouteTraffic, ServiceSettings, SystemClock, TrafficPolicy, TrafficService,
};

fn policy() -> Arc<TrafficPolicy> {
    let spec = LimitSpec::new(
        "bench",
        KeySpec::Consumer,
        1_000_000_000,
        Duration::from_secs(1),
        1_000_000,
        OnStoreFailure::Open,
    )
    .unwrap();
    let mut routes = HashMap::new();
    routes.insert(
        Arc::from("orders"),
        Arc::new(RouteTraffic { limits: RouteLimits::new(vec![spec], true).unwrap(), concurrency_per_consumer: None }),
    );
    Arc::new(TrafficPolicy { routes, ..Default::default() })
}

fn redis_up() -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], 6379).into(), Duration::from_millis(200)).is_ok()
}

fn service(cluster: Option<Option<BatchConfig>>) -> TrafficService {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let cluster = cluster.map(|batching| {
        let store = RedisStoreConfig {
            namespace: format!("pcbench:{nanos}"),
            timeout: Duration::from_secs(1),
            ..RedisStoreConfig::default()
        };
        ClusterSettings { redis_url: "redis://127.0.0.1:6379/".into(), store, batching }
    });
    TrafficService::start(ServiceSettings { cluster, inflight: None, clock: Arc::new(SystemClock::new()) }).unwrap()
}

fn bench_stage(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut principal = Principal::new(AuthMethodUsed::ApiKey);
    principal.consumer_id = Some(Arc::from("c-42"));
    let principal = Arc::new(principal);
    let mut cases: Vec<(&str, Option<Option<BatchConfig>>)> = vec![("local", None)];
    if redis_up() {
        cases.push(("redis", Some(None)));
        cases.push(("redis_batch10", Some(Some(BatchConfig { size: 10, max_hold: Duration::from_millis(250) }))));
    } else {
        eprintln!("Redis not on 127.0.0.1:6379: skipping the Redis cases");
    }
    let mut g = c.benchmark_group("stage_on_request");
    g.throughput(Throughput::Elements(1));
    for (name, cluster) in cases {
        let stage = RateLimitStage::new(service(cluster), policy());
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut ctx =
                    RequestCtx::new(RequestId::generate(), "127.0.0.1:1".parse().unwrap(), Arc::from("l"), false);
                ctx.route = Some(Arc::from("orders"));
                ctx.principal = Some(principal.clone());
                let (mut parts, ()) = http::Request::new(()).into_parts();
                let flow = rt.block_on(stage.on_request(&mut parts, &mut ctx)).unwrap();
                assert!(matches!(flow, Flow::Continue));
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench_stage);
criterion_main!(benches);
