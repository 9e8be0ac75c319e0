#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]

//! The shared counters on Redis Cluster and Redis Sentinel, each started by the test itself on
//! free loopback ports: several independent nodes admit the global limit, `NOSCRIPT` is
//! recovered from on every cluster master, and a Sentinel failover keeps the counts.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{OwnCluster, OwnSentinel, have_redis_server, redis_cmd, unique_namespace};
use portcullis_traffic::{
    BatchConfig, Clock, Decision, Gcra, KeySpec, OnStoreFailure, QuotaDecision, QuotaPeriod, QuotaSet, QuotaSpec,
    QuotaStore, RedisLimiter, RedisQuotas, RedisStore, RedisStoreConfig, RequestKeys, SystemClock,
};

const NODES: usize = 3;
const TASKS_PER_NODE: usize = 8;

fn store(url: &str, ns: &str) -> Arc<RedisStore> {
    let cfg = RedisStoreConfig {
        namespace: ns.to_owned(),
        timeout: Duration::from_secs(2),
        failure_threshold: 1000,
        cooldown: Duration::from_millis(100),
        expected_nodes: NODES as u32,
    };
    Arc::new(RedisStore::connect_lazy(url, cfg).unwrap())
}

fn nodes(url: &str, ns: &str, batch: Option<BatchConfig>) -> Vec<Arc<RedisLimiter>> {
    (0..NODES)
        .map(|_| {
            let s = store(url, ns);
            Arc::new(match batch {
                None => RedisLimiter::new(s),
                Some(b) => RedisLimiter::with_batching(s, b),
            })
        })
        .collect()
}

/// Every node runs `TASKS_PER_NODE` callers spread over `keys` until `offered` checks were made
/// per key (bounded). Returns the admitted count per key.
async fn drive(nodes: &[Arc<RedisLimiter>], gcra: Gcra, keys: &[String], offered: u64) -> Vec<u64> {
    let clock = Arc::new(SystemClock::new());
    let sent: Arc<Vec<AtomicU64>> = Arc::new(keys.iter().map(|_| AtomicU64::new(0)).collect());
    let admitted: Arc<Vec<AtomicU64>> = Arc::new(keys.iter().map(|_| AtomicU64::new(0)).collect());
    let keys = Arc::new(keys.to_vec());
    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for t in 0..TASKS_PER_NODE {
            let (node, clock, sent, admitted, keys) =
                (Arc::clone(node), Arc::clone(&clock), Arc::clone(&sent), Arc::clone(&admitted), Arc::clone(&keys));
            tasks.push(tokio::spawn(async move {
                let mut k = (n + t) % keys.len();
                let mut idle = 0;
                while idle < keys.len() {
                    k = (k + 1) % keys.len();
                    if sent[k].fetch_add(1, Ordering::Relaxed) >= offered {
                        idle += 1;
                        continue;
                    }
                    idle = 0;
                    let d = node.check(&keys[k], &gcra, 1, clock.now(), OnStoreFailure::Closed).await;
                    assert_ne!(d, Decision::StoreUnavailable, "the store must answer");
                    admitted[k].fetch_add(u64::from(d.is_allow()), Ordering::Relaxed);
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    admitted.iter().map(|a| a.load(Ordering::Relaxed)).collect()
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("rl:burst:consumer:c{i}")).collect()
}

fn dbsize(url: &str) -> i64 {
    match redis_cmd(url, &["DBSIZE"]).unwrap() {
        redis::Value::Int(n) => n,
        other => panic!("{other:?}"),
    }
}

/// Three masters, three gateway nodes, eight keys (spread over the masters), each key with a
/// bucket of 200 refilling at 200 per hour, offered 5× its limit: each key admits 200 (the
/// refill during the test is under one unit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_three_masters_admit_each_global_limit_exactly() {
    if !have_redis_server() {
        return;
    }
    let cluster = tokio::task::spawn_blocking(OwnCluster::start).await.unwrap();
    let ns = unique_namespace("cluster");
    let gcra = Gcra::new(200, Duration::from_secs(3600), 200).unwrap();
    let ks = keys(8);
    let admitted = drive(&nodes(&cluster.url(), &ns, None), gcra, &ks, 1000).await;
    eprintln!("cluster, no batching: admitted per key {admitted:?} of 1000 offered each (limit 200)");
    for a in &admitted {
        assert!((200..=201).contains(a), "admitted {admitted:?}, want 200 per key");
    }
    // The keys really live on several masters (no hash tag forces them onto one slot).
    let used = (0..3).filter(|i| dbsize(&cluster.node_url(*i)) > 0).count();
    assert!(used >= 2, "keys on {used} master(s)");
    // The slot is the hash tag's: the stable key alone, whatever the namespace; each key is on
    // exactly one master.
    for k in &ks {
        let full = format!("{ns}:{{{k}}}");
        let slot = |key: &str| redis_cmd(&cluster.node_url(0), &["CLUSTER", "KEYSLOT", key]).unwrap();
        assert_eq!(slot(&full), slot(k), "{full}");
        let holders =
            (0..3).filter(|i| redis_cmd(&cluster.node_url(*i), &["EXISTS", &full]) == Ok(redis::Value::Int(1)));
        assert_eq!(holders.count(), 1, "{full}");
    }
}

/// Batching (5 units per reservation) on the cluster: within 5% and never above the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_with_batching_stays_within_5_percent() {
    if !have_redis_server() {
        return;
    }
    let cluster = tokio::task::spawn_blocking(OwnCluster::start).await.unwrap();
    let ns = unique_namespace("clusterbatch");
    let gcra = Gcra::new(1000, Duration::from_secs(3600), 1000).unwrap();
    let batch = BatchConfig { size: 5, max_hold: Duration::from_millis(250) };
    let admitted = drive(&nodes(&cluster.url(), &ns, Some(batch)), gcra, &keys(1), 5000).await[0];
    eprintln!("cluster, batches of 5: admitted {admitted} of 5000 offered (limit 1000)");
    assert!((950..=1050).contains(&admitted), "admitted {admitted}, want 1000 ± 5%");
    assert!(admitted <= 1003, "admitted {admitted}");
}

/// `EVALSHA` after every master forgot the scripts (`SCRIPT FLUSH`, as after a restart or a
/// promotion): the first call gets `NOSCRIPT`, loads the script, and decisions go on exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_reloads_scripts_after_noscript_on_every_master() {
    if !have_redis_server() {
        return;
    }
    let cluster = tokio::task::spawn_blocking(OwnCluster::start).await.unwrap();
    let ns = unique_namespace("noscript");
    let node = RedisLimiter::new(store(&cluster.url(), &ns));
    let gcra = Gcra::new(10, Duration::from_secs(3600), 10).unwrap();
    let clock = SystemClock::new();
    let ks = keys(12);
    for k in &ks {
        assert!(node.check(k, &gcra, 1, clock.now(), OnStoreFailure::Closed).await.is_allow());
    }
    let used: Vec<usize> = (0..3).filter(|i| dbsize(&cluster.node_url(*i)) > 0).collect();
    assert!(used.len() >= 2, "keys on {used:?}");
    for i in 0..3 {
        redis_cmd(&cluster.node_url(i), &["SCRIPT", "FLUSH"]).unwrap();
    }
    for i in 0..3 {
        assert_eq!(script_count(&cluster.node_url(i)), 0, "master {i} still has scripts");
    }
    // Nine more per key: every key reaches exactly its burst of 10, then is refused.
    for k in &ks {
        for _ in 0..9 {
            let d = node.check(k, &gcra, 1, clock.now(), OnStoreFailure::Closed).await;
            assert!(d.is_allow(), "{k}: {d:?}");
        }
        let d = node.check(k, &gcra, 1, clock.now(), OnStoreFailure::Closed).await;
        assert!(matches!(d, Decision::Deny { .. }), "{k}: {d:?}");
    }
    // Each master that holds keys loaded the script again.
    for i in used {
        assert!(script_count(&cluster.node_url(i)) >= 1, "master {i} has no script after NOSCRIPT");
    }
}

/// How many scripts a server has cached (from `INFO memory`'s `number_of_cached_scripts`).
fn script_count(url: &str) -> u64 {
    common::info(url, "memory", "number_of_cached_scripts").and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// A daily quota shared by three nodes on the cluster admits exactly its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_quota_is_exact() {
    if !have_redis_server() {
        return;
    }
    let cluster = tokio::task::spawn_blocking(OwnCluster::start).await.unwrap();
    quota_is_exact(&cluster.url(), &unique_namespace("clusterquota")).await;
}

async fn quota_is_exact(url: &str, ns: &str) {
    let q = QuotaSpec::new("daily", KeySpec::Consumer, 25, QuotaPeriod::Day, "UTC", OnStoreFailure::Closed).unwrap();
    let set = QuotaSet::new(vec![q]).unwrap();
    let stores: Vec<QuotaStore> = (0..NODES).map(|_| QuotaStore::Redis(RedisQuotas::new(store(url, ns)))).collect();
    let clock = SystemClock::new();
    let mut counts = (0, 0);
    for consumer in ["c-1", "c-2", "c-3"] {
        let req = RequestKeys { consumer: Some(consumer), route: "r", ..Default::default() };
        for i in 0..40 {
            match set.charge(&stores[i % NODES], &req, 1, clock.wall(), clock.now()).await.decision {
                QuotaDecision::Allow { .. } => counts.0 += 1,
                QuotaDecision::Exhausted { .. } => counts.1 += 1,
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(counts, (75, 45));
}

/// Three nodes finding the master through a Sentinel admit the global limit exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_nodes_admit_the_global_limit_exactly() {
    if !have_redis_server() {
        return;
    }
    let s = tokio::task::spawn_blocking(OwnSentinel::start).await.unwrap();
    let ns = unique_namespace("sentinel");
    let gcra = Gcra::new(1000, Duration::from_secs(3600), 1000).unwrap();
    let admitted = drive(&nodes(&s.url(), &ns, None), gcra, &keys(1), 5000).await[0];
    eprintln!("sentinel, no batching: admitted {admitted} of 5000 offered (limit 1000)");
    assert!((1000..=1003).contains(&admitted), "admitted {admitted}");
    assert!(dbsize(&s.master_url()) > 0, "the counters are on the master");
    quota_is_exact(&s.url(), &unique_namespace("sentinelquota")).await;
}

/// The master dies: while the Sentinel promotes the replica, fail-closed decisions answer
/// `StoreUnavailable` (never a wrong allow, never a stall past the timeout); then the nodes
/// follow the new master and the counts taken before the failover still count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_is_followed_and_keeps_the_counts() {
    if !have_redis_server() {
        return;
    }
    let mut s = tokio::task::spawn_blocking(OwnSentinel::start).await.unwrap();
    let ns = unique_namespace("failover");
    let cfg = RedisStoreConfig {
        namespace: ns.clone(),
        timeout: Duration::from_millis(200),
        failure_threshold: 3,
        cooldown: Duration::from_millis(100),
        expected_nodes: 2,
    };
    let cluster: Vec<RedisLimiter> =
        (0..2).map(|_| RedisLimiter::new(Arc::new(RedisStore::connect_lazy(&s.url(), cfg.clone()).unwrap()))).collect();
    let gcra = Gcra::new(100, Duration::from_secs(3600), 100).unwrap();
    let clock = SystemClock::new();
    let key = "rl:failover:consumer:c1";
    let mut admitted = 0u64;
    for i in 0..60 {
        admitted +=
            u64::from(cluster[i % 2].check(key, &gcra, 1, clock.now(), OnStoreFailure::Closed).await.is_allow());
    }
    assert_eq!(admitted, 60);
    // The replica has every write before the master dies (WAIT 1 replica, 2 s).
    let acked = redis_cmd(&s.master_url(), &["WAIT", "1", "2000"]).unwrap();
    assert_eq!(acked, redis::Value::Int(1));
    let old = s.master_port;
    s.kill_master();
    // Bounded: the Sentinel needs ~1 s to see the master down, then promotes the replica.
    let started = Instant::now();
    let mut unavailable = 0u64;
    let mut first_after = None;
    while started.elapsed() < Duration::from_secs(30) {
        let t = Instant::now();
        let d = cluster[0].check(key, &gcra, 1, clock.now(), OnStoreFailure::Closed).await;
        assert!(t.elapsed() < Duration::from_secs(2), "a decision waited {:?}", t.elapsed());
        match d {
            Decision::StoreUnavailable => unavailable += 1,
            d => {
                first_after = Some(d);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first_after = first_after.expect("no decision from the promoted master within 30 s");
    let took = started.elapsed();
    let new_port = s.current_master_port();
    assert_ne!(new_port, Some(old), "the Sentinel promoted the replica");
    assert_eq!(new_port, Some(s.replica_port));
    admitted += u64::from(first_after.is_allow());
    // Both nodes now reach the new master, and the bucket remembers the 60 taken before.
    for i in 0..200 {
        let d = cluster[i % 2].check(key, &gcra, 1, clock.now(), OnStoreFailure::Closed).await;
        if d == Decision::StoreUnavailable {
            // The second node may still hold its dead connection for one call.
            continue;
        }
        admitted += u64::from(d.is_allow());
    }
    eprintln!(
        "sentinel failover: {unavailable} fail-closed answers over {took:?}, then admitted {admitted} in total (limit 100)"
    );
    assert!((100..=101).contains(&admitted), "admitted {admitted}, want 100");
}
