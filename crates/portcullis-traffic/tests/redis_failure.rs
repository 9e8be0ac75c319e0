#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]

//! The shared store fails: a private redis-server (never the machine's shared one) is killed,
//! paused or absent. Fail-open limits keep serving within the node's share, fail-closed ones
//! answer `StoreUnavailable`, no call waits past the timeout, nothing panics, and the shared
//! limits come back once the server does.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{OwnRedis, redis_cmd, unique_namespace};
use portcullis_traffic::{
    Clock, Decision, Gcra, KeySpec, OnStoreFailure, QuotaDecision, QuotaPeriod, QuotaSet, QuotaSpec, QuotaStore,
    RedisLimiter, RedisQuotas, RedisStore, RedisStoreConfig, RequestKeys, SystemClock,
};

const TIMEOUT: Duration = Duration::from_millis(50);
/// What "never stalls" means here: the timeout plus scheduling slack on a busy 2-core machine.
const STALL: Duration = Duration::from_millis(400);

fn store(url: &str, ns: &str) -> Arc<RedisStore> {
    let cfg = RedisStoreConfig {
        namespace: ns.to_owned(),
        timeout: TIMEOUT,
        failure_threshold: 3,
        cooldown: Duration::from_millis(200),
        expected_nodes: 4,
    };
    Arc::new(RedisStore::connect_lazy(url, cfg).unwrap())
}

/// Runs `n` checks, asserting none takes longer than `STALL`; returns how many were admitted and
/// how many answered `StoreUnavailable`.
async fn burst(
    lim: &RedisLimiter,
    clock: &SystemClock,
    key: &str,
    gcra: &Gcra,
    mode: OnStoreFailure,
    n: u32,
) -> (u32, u32) {
    let (mut allowed, mut unavailable) = (0, 0);
    for _ in 0..n {
        let started = Instant::now();
        let d = lim.check(key, gcra, 1, clock.now(), mode).await;
        let took = started.elapsed();
        assert!(took < STALL, "a check took {took:?}");
        match d {
            Decision::Allow { .. } => allowed += 1,
            Decision::StoreUnavailable => unavailable += 1,
            _ => {}
        }
    }
    (allowed, unavailable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_redis_fails_open_to_the_local_share_and_closed_to_unavailable_then_recovers() {
    let mut redis = OwnRedis::start();
    let ns = unique_namespace("kill");
    let lim = RedisLimiter::new(store(&redis.url(), &ns));
    let clock = SystemClock::new();
    // 400 per hour, burst 400: a node's share with 4 expected nodes is 100.
    let gcra = Gcra::new(400, Duration::from_secs(3600), 400).unwrap();

    // Up: decisions come from Redis (the shared bucket of 400).
    assert_eq!(burst(&lim, &clock, "rl:a:route:r", &gcra, OnStoreFailure::Closed, 10).await, (10, 0));
    assert!(!lim.store().breaker().is_open());

    redis.kill();

    // Fail-closed: StoreUnavailable, quickly, every time.
    let (allowed, unavailable) = burst(&lim, &clock, "rl:closed:route:r", &gcra, OnStoreFailure::Closed, 50).await;
    assert_eq!((allowed, unavailable), (0, 50));
    assert!(lim.store().breaker().is_open(), "consecutive failures opened the circuit");

    // Fail-open: exactly the node's share (400 / 4) of a fresh key, then local denials.
    let (allowed, unavailable) = burst(&lim, &clock, "rl:open:route:r", &gcra, OnStoreFailure::Open, 300).await;
    assert_eq!((allowed, unavailable), (100, 0));

    // Back up (empty: no persistence). Poll until the breaker's probe gets through (bounded).
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = lim.check("rl:probe:route:r", &gcra, 1, clock.now(), OnStoreFailure::Closed).await;
        if d != Decision::StoreUnavailable {
            break;
        }
        assert!(Instant::now() < deadline, "the store never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!lim.store().breaker().is_open());
    // The shared limit is enforced from Redis again: the full 400 burst, not the local 100.
    let (allowed, unavailable) = burst(&lim, &clock, "rl:after:route:r", &gcra, OnStoreFailure::Open, 450).await;
    assert_eq!((allowed, unavailable), (400, 0));
    let key = format!("{ns}:{{rl:after:route:r}}");
    assert!(matches!(redis_cmd(&redis.url(), &["EXISTS", &key]).unwrap(), redis::Value::Int(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_times_out_within_the_timeout_and_falls_back() {
    let redis = OwnRedis::start();
    let ns = unique_namespace("pause");
    let lim = RedisLimiter::new(store(&redis.url(), &ns));
    let clock = SystemClock::new();
    let gcra = Gcra::new(400, Duration::from_secs(3600), 400).unwrap();
    assert_eq!(burst(&lim, &clock, "rl:a:route:r", &gcra, OnStoreFailure::Closed, 3).await, (3, 0));

    // The server stops answering clients for 2 s (it stays up): every call must time out.
    redis_cmd(&redis.url(), &["CLIENT", "PAUSE", "2000", "ALL"]).unwrap();
    let started = Instant::now();
    let d = lim.check("rl:slow:route:r", &gcra, 1, clock.now(), OnStoreFailure::Closed).await;
    let took = started.elapsed();
    assert_eq!(d, Decision::StoreUnavailable);
    assert!(took >= TIMEOUT && took < STALL, "timed out after {took:?}");
    let (allowed, _) = burst(&lim, &clock, "rl:slow-open:route:r", &gcra, OnStoreFailure::Open, 5).await;
    assert_eq!(allowed, 5, "fail-open serves from the local share meanwhile");
    assert!(lim.store().breaker().is_open());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_is_not_an_error() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}/");
    let lim = RedisLimiter::new(store(&url, &unique_namespace("absent")));
    let clock = SystemClock::new();
    let gcra = Gcra::new(40, Duration::from_secs(3600), 40).unwrap();
    assert_eq!(burst(&lim, &clock, "rl:x:route:r", &gcra, OnStoreFailure::Open, 20).await, (10, 0));
    assert_eq!(burst(&lim, &clock, "rl:y:route:r", &gcra, OnStoreFailure::Closed, 5).await, (0, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_fail_open_to_the_share_and_closed_to_unavailable() {
    let mut redis = OwnRedis::start();
    let ns = unique_namespace("quota-kill");
    let st = store(&redis.url(), &ns);
    let quotas = QuotaStore::Redis(RedisQuotas::new(Arc::clone(&st)));
    let open = QuotaSpec::new("open", KeySpec::Consumer, 40, QuotaPeriod::Day, "UTC", OnStoreFailure::Open).unwrap();
    let closed =
        QuotaSpec::new("closed", KeySpec::Consumer, 40, QuotaPeriod::Day, "UTC", OnStoreFailure::Closed).unwrap();
    let (open, closed) = (QuotaSet::new(vec![open]).unwrap(), QuotaSet::new(vec![closed]).unwrap());
    let clock = SystemClock::new();
    let req = RequestKeys { consumer: Some("c1"), route: "r", ..Default::default() };
    assert!(open.charge(&quotas, &req, 1, clock.wall(), clock.now()).await.decision.is_allow());

    redis.kill();
    let mut allowed = 0;
    for _ in 0..30 {
        let started = Instant::now();
        allowed += u32::from(open.charge(&quotas, &req, 1, clock.wall(), clock.now()).await.decision.is_allow());
        assert!(started.elapsed() < STALL);
    }
    assert_eq!(allowed, 10, "40 / 4 nodes");
    let d = closed.charge(&quotas, &req, 1, clock.wall(), clock.now()).await.decision;
    assert_eq!(d, QuotaDecision::StoreUnavailable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_script_cache_is_reloaded_transparently() {
    let redis = OwnRedis::start();
    let lim = RedisLimiter::new(store(&redis.url(), &unique_namespace("noscript")));
    let clock = SystemClock::new();
    let gcra = Gcra::new(5, Duration::from_secs(3600), 5).unwrap();
    assert_eq!(burst(&lim, &clock, "rl:s:route:r", &gcra, OnStoreFailure::Closed, 2).await, (2, 0));
    // EVALSHA now answers NOSCRIPT; the script is loaded again and the state is intact.
    redis_cmd(&redis.url(), &["SCRIPT", "FLUSH"]).unwrap();
    assert_eq!(burst(&lim, &clock, "rl:s:route:r", &gcra, OnStoreFailure::Closed, 5).await, (3, 0));
    assert!(!lim.store().breaker().is_open());
}
