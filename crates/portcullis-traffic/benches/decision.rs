//! Decision cost: a local GCRA decision (target < 200 ns), a whole route check with key building,
//! and a Redis decision with one client (sequential latency, and throughput with 64 in flight).
//!
//! `cargo bench -p portcullis-traffic --bench decision -- --warm-up-time 1 --measurement-time 3`
//! (the Redis cases need Redis on 127.0.0.1:6379 and are skipped without it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, reason = "benchmark harness")]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portcullis_traffic::{
    Gcra, KeySpec, LimitSpec, Limiter, LocalLimiter, Nanos, OnStoreFailure, RedisLimiter, RedisStore, RedisStoreConfig,
    RequestKeys, RouteLimits,
};

/// Polls a future that never waits (local decisions) to completion without a runtime.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a local decision never waits"),
    }
}

fn local(c: &mut Criterion) {
    let limiter = LocalLimiter::default();
    let gcra = Gcra::new(1_000_000, Duration::from_secs(1), 1000).unwrap();
    let keys: Vec<String> = (0..1024).map(|i| format!("rl:bench:consumer:c-{i}")).collect();
    let mut g = c.benchmark_group("local");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    let mut now = 0u64;
    g.bench_function("gcra_check_1024_keys", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            now += 1000;
            black_box(limiter.check(&keys[i], &gcra, 1, Nanos(now)))
        });
    });
    g.bench_function("gcra_check_one_hot_key", |b| {
        b.iter(|| {
            now += 1000;
            black_box(limiter.check(&keys[0], &gcra, 1, Nanos(now)))
        });
    });

    let specs = vec![
        LimitSpec::new("burst", KeySpec::Consumer, 1_000_000, Duration::from_secs(1), 1000, OnStoreFailure::Open)
            .unwrap(),
        LimitSpec::new("per-ip", KeySpec::ClientIp, 1_000_000, Duration::from_secs(60), 1000, OnStoreFailure::Open)
            .unwrap(),
    ];
    let route = RouteLimits::new(specs, true).unwrap();
    let lim = Limiter::Local(LocalLimiter::default());
    let req = RequestKeys {
        consumer: Some("c-42"),
        client_ip: Some("203.0.113.7".parse().unwrap()),
        route: "orders.list",
        ..Default::default()
    };
    g.bench_function("route_check_2_limits_with_keys_and_headers", |b| {
        b.iter(|| {
            now += 1000;
            let o = ready(route.check(&lim, &req, 1, Nanos(now)));
            black_box(route.headers(&o))
        });
    });
    g.finish();
}

fn redis(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ns = format!("pcbench:{}", std::process::id());
    let cfg = RedisStoreConfig { namespace: ns, timeout: Duration::from_secs(1), ..Default::default() };
    let store = rt.block_on(async { RedisStore::connect_lazy("redis://127.0.0.1:6379/", cfg) }).unwrap();
    let lim = Arc::new(RedisLimiter::new(Arc::new(store)));
    let gcra = Gcra::new(1_000_000, Duration::from_secs(1), 1_000_000).unwrap();
    let probe = rt.block_on(lim.check("rl:probe", &gcra, 1, Nanos(0), OnStoreFailure::Closed));
    if !probe.is_allow() {
        eprintln!("redis on 127.0.0.1:6379 unavailable: redis benchmarks skipped");
        return;
    }
    let mut g = c.benchmark_group("redis");
    g.throughput(Throughput::Elements(1));
    g.bench_function("gcra_check_sequential_one_client", |b| {
        b.iter(|| rt.block_on(lim.check("rl:bench:consumer:c1", &gcra, 1, Nanos(0), OnStoreFailure::Closed)));
    });
    g.throughput(Throughput::Elements(64));
    g.bench_function("gcra_check_64_in_flight_one_client", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut set = tokio::task::JoinSet::new();
                for i in 0..64 {
                    let lim = Arc::clone(&lim);
                    set.spawn(async move {
                        let key = format!("rl:bench:consumer:c{}", i % 8);
                        lim.check(&key, &gcra, 1, Nanos(0), OnStoreFailure::Closed).await
                    });
                }
                while set.join_next().await.is_some() {}
            });
        });
    });
    g.finish();
}

criterion_group!(benches, local, redis);
criterion_main!(benches);
