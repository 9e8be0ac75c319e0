#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]
//! Three `portcullis run` processes sharing one Redis (the machine's, 127.0.0.1:6379, with a
//! namespace of their own), driven together by a bounded load at four times the limit, admit the
//! global limit: within ±2% with one Redis call per decision, within ±5% with local batching.
//! Needs Redis on 127.0.0.1:6379 (`scripts/services` starts it).
//!
//! And the same three processes on a private redis-server this test starts, kills mid-run and
//! restarts: fail-open routes keep serving within the nodes' local shares, fail-closed routes
//! answer 503 `rate-limit-unavailable`, no process dies, and the shared limit comes back.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use portcullis_testkit::{OwnCluster, OwnRedis, Upstream, free_port, http1_client, send};

const NODES: usize = 3;
const LIMIT: u64 = 300;
/// Requests per node; the whole load is 4 × the limit.
const PER_NODE: u64 = 400;
/// Concurrent clients per node.
const CLIENTS: u64 = 4;

/// The child gateways; killed on drop, so a failed assertion never leaves one running.
struct Nodes {
    children: Vec<Child>,
    addrs: Vec<SocketAddr>,
    _dir: tempfile::TempDir,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_nodes(up: &Upstream, ns: &str, batching: &str) -> Nodes {
    let cluster = format!("namespace: {ns}, expected_nodes: {NODES}, timeout: 2s, failure_threshold: 1000 {batching}");
    let routes = format!(
        "  - name: all\n    prefix: /\n    upstream: up\n    policy:\n      rate_limit: {{ limits: [{{ name: global, key: route, rate: {LIMIT}, period: 1h, on_store_failure: closed }}] }}\n"
    );
    start_nodes_on(up, "redis://127.0.0.1:6379/", &cluster, &routes)
}

/// Three gateways on `redis_url` with `cluster` settings (after `redis_url`) and `routes`.
fn start_nodes_on(up: &Upstream, redis_url: &str, cluster: &str, routes: &str) -> Nodes {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("redis.url"), redis_url).unwrap();
    let mut children = Vec::new();
    let mut addrs = Vec::new();
    for i in 0..NODES {
        let (port, admin) = (free_port(), free_port());
        let yaml = format!(
            r#"
listeners: [{{ name: public, bind: "127.0.0.1:{port}" }}]
admin: {{ bind: "127.0.0.1:{admin}" }}
workers: 1
access_log: {{ enabled: false }}
upstreams: {{ up: {{ targets: ["http://{up}"] }} }}
traffic:
  cluster: {{ redis_url: "${{file:redis.url}}", {cluster} }}
routes:
{routes}"#,
            up = up.addr()
        );
        let path = dir.path().join(format!("node{i}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("run")
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        children.push(child);
        addrs.push(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let nodes = Nodes { children, addrs, _dir: dir };
    // Wait (bounded) until every node accepts connections.
    let deadline = Instant::now() + Duration::from_secs(30);
    for a in &nodes.addrs {
        while std::net::TcpStream::connect_timeout(a, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "node {a} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    nodes
}

fn namespace(test: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("pctest-{test}-{}-{nanos}", std::process::id())
}

/// Drives every node at once; returns (admitted, refused) over the whole cluster.
async fn drive(nodes: &Nodes) -> (u64, u64) {
    let ok = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for &addr in &nodes.addrs {
        for _ in 0..CLIENTS {
            let (ok, refused) = (ok.clone(), refused.clone());
            tasks.push(tokio::spawn(async move {
                let mode = http1_client();
                for _ in 0..PER_NODE / CLIENTS {
                    if Instant::now() > deadline {
                        break;
                    }
                    let req = http::Request::builder()
                        .uri("/x")
                        .header("host", "api.test")
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    match send(addr, &mode, req).await.status {
                        200 => ok.fetch_add(1, Ordering::Relaxed),
                        429 => refused.fetch_add(1, Ordering::Relaxed),
                        s => panic!("unexpected status {s}"),
                    };
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    (ok.load(Ordering::Relaxed), refused.load(Ordering::Relaxed))
}

fn within(admitted: u64, pct: f64) -> bool {
    let diff = admitted.abs_diff(LIMIT) as f64;
    diff <= LIMIT as f64 * pct / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_sharing_redis_admit_the_global_limit_within_2_percent() {
    let up = Upstream::start().await;
    let nodes = start_nodes(&up, &namespace("cluster"), "");
    let started = Instant::now();
    let (admitted, refused) = drive(&nodes).await;
    eprintln!("3 nodes, no batching: {admitted} admitted, {refused} refused in {:?}", started.elapsed());
    assert_eq!(admitted + refused, NODES as u64 * PER_NODE, "every request was answered");
    assert!(within(admitted, 2.0), "admitted {admitted}, limit {LIMIT} (±2%)");
    assert_eq!(up.hits() as u64, admitted, "the upstream saw exactly what was admitted");
    drop(nodes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_with_local_batching_admit_the_global_limit_within_5_percent() {
    let up = Upstream::start().await;
    // Over-admission is bounded by nodes × (size − 1) = 6 units (2%), under-admission by what the
    // nodes still hold unspent when the load stops: both within 5%.
    let nodes = start_nodes(&up, &namespace("cluster-batch"), ", batching: { size: 3, max_hold: 5s }");
    let started = Instant::now();
    let (admitted, refused) = drive(&nodes).await;
    eprintln!("3 nodes, batching 3: {admitted} admitted, {refused} refused in {:?}", started.elapsed());
    assert_eq!(admitted + refused, NODES as u64 * PER_NODE);
    assert!(within(admitted, 5.0), "admitted {admitted}, limit {LIMIT} (±5%)");
    assert_eq!(up.hits() as u64, admitted);
    drop(nodes);
}

/// What a run of requests on one path got back.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    limited: u64,
    unavailable: u64,
    /// 503s whose body is the `rate-limit-unavailable` problem, as `application/problem+json`.
    unavailable_problems: u64,
}

const UNAVAILABLE: &str = "urn:portcullis:problem:rate-limit-unavailable";

/// `per_node` requests on `path` to every node at once (`CLIENTS` connections each; bounded in
/// count and by a 60 s deadline). Any other status than 200, 429 or 503 fails the test.
async fn drive_path(nodes: &Nodes, path: &'static str, per_node: u64) -> Tally {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tasks = Vec::new();
    for &addr in &nodes.addrs {
        for _ in 0..CLIENTS {
            tasks.push(tokio::spawn(async move {
                let mode = http1_client();
                let mut t = Tally::default();
                for _ in 0..per_node / CLIENTS {
                    if Instant::now() > deadline {
                        break;
                    }
                    let req = http::Request::builder()
                        .uri(path)
                        .header("host", "api.test")
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    let r = send(addr, &mode, req).await;
                    match r.status {
                        200 => t.ok += 1,
                        429 => t.limited += 1,
                        503 => {
                            t.unavailable += 1;
                            let problem =
                                r.headers.get("content-type").is_some_and(|v| v == "application/problem+json");
                            let body = String::from_utf8_lossy(&r.body);
                            if problem && body.contains(&format!("\"type\":\"{UNAVAILABLE}\"")) {
                                t.unavailable_problems += 1;
                            }
                        }
                        s => panic!("unexpected status {s} on {path}"),
                    }
                }
                t
            }));
        }
    }
    let mut total = Tally::default();
    for t in tasks {
        let t = t.await.unwrap();
        total.ok += t.ok;
        total.limited += t.limited;
        total.unavailable += t.unavailable;
        total.unavailable_problems += t.unavailable_problems;
    }
    total
}

/// Every gateway process is still running.
fn all_alive(nodes: &mut Nodes) {
    for (i, c) in nodes.children.iter_mut().enumerate() {
        assert!(c.try_wait().unwrap().is_none(), "gateway {i} exited");
    }
}

/// Three processes on a private Redis: before, during and after a Redis death.
///
/// - Redis up: each route admits its limit (150) within ±2% out of 4× offered.
/// - Redis killed (SIGKILL) mid-run: the fail-closed route answers only 503
///   `rate-limit-unavailable`; the fail-open route (whose shared bucket phase 1 emptied) keeps
///   serving, each node at its local share (150 / 3 = 50, counted from zero by a local limiter),
///   so 150 in the cluster; every process is alive and answering.
/// - Redis restarted (empty) on the same port: once each node's breaker lets a probe through, the
///   shared limits are back: each route admits 150 within ±2% again, across the three nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_survive_a_redis_death_and_the_shared_limits_come_back() {
    const L: u64 = 150;
    let up = Upstream::start().await;
    let mut redis = OwnRedis::start();
    let url = format!("redis://127.0.0.1:{}/", redis.port);
    let ns = namespace("kill");
    let cluster =
        format!("namespace: {ns}, expected_nodes: {NODES}, timeout: 1s, failure_threshold: 3, cooldown: 300ms");
    let routes = format!(
        r#"  - name: open
    prefix: /open
    upstream: up
    policy:
      rate_limit: {{ limits: [{{ name: open-route, key: route, rate: {L}, period: 1h, on_store_failure: open }}] }}
  - name: closed
    prefix: /closed
    upstream: up
    policy:
      rate_limit: {{ limits: [{{ name: closed-route, key: route, rate: {L}, period: 1h, on_store_failure: closed }}] }}
"#
    );
    let mut nodes = start_nodes_on(&up, &url, &cluster, &routes);
    let per_node = 4 * L / NODES as u64; // 4× the limit over the cluster, per phase and route

    // 1. Redis up.
    let open = drive_path(&nodes, "/open", per_node).await;
    let closed = drive_path(&nodes, "/closed", per_node).await;
    eprintln!("redis up: open {open:?}, closed {closed:?} (limit {L} each)");
    for t in [&open, &closed] {
        assert_eq!(t.unavailable, 0, "{t:?}");
        assert!(t.ok.abs_diff(L) * 50 <= L, "admitted {}, limit {L} ± 2%", t.ok);
    }

    // 2. Redis dies while the load runs: kill it once the next phase is under way.
    let killer = {
        let started = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            redis.kill();
            (redis, started.elapsed())
        })
    };
    let during_open = drive_path(&nodes, "/open", per_node).await;
    let (mut redis, killed_after) = killer.await.unwrap();
    let started = Instant::now();
    let down_open = drive_path(&nodes, "/open", per_node).await;
    let down_closed = drive_path(&nodes, "/closed", per_node).await;
    let took = started.elapsed();
    eprintln!(
        "redis killed after {killed_after:?}: open during the kill {during_open:?}; open after {down_open:?}, \
         closed after {down_closed:?} in {took:?}"
    );
    all_alive(&mut nodes);
    assert_eq!(during_open.unavailable, 0, "a fail-open route never answers 503: {during_open:?}");
    assert_eq!(down_open.unavailable, 0, "{down_open:?}");
    // Phase 1 emptied the route's bucket in Redis, so every 200 from here on is a local decision:
    // 50 per node (150 / 3) from a fresh local bucket, each node being offered 400. At most one
    // unit more per node may refill meanwhile (150/h in Redis, 50/h locally).
    let local_ok = during_open.ok + down_open.ok;
    assert!(
        (L..=L + 3).contains(&local_ok),
        "fail-open admitted {local_ok} while Redis was down, share {} × {NODES}",
        L / 3
    );
    assert_eq!(down_closed.ok + down_closed.limited, 0, "fail-closed only answers 503: {down_closed:?}");
    assert_eq!(down_closed.unavailable_problems, down_closed.unavailable, "every 503 is the problem type");
    assert!(took < Duration::from_secs(30), "a dead Redis stalled the gateways: {took:?}");

    // 3. Redis back, empty, on the same port: wait (bounded) until every node decides in Redis
    // again, probing the fail-closed route (the probes count against its new bucket).
    redis.spawn();
    let mut probes_ok = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    for &addr in &nodes.addrs {
        loop {
            let req = http::Request::builder()
                .uri("/closed")
                .header("host", "api.test")
                .body(Full::new(Bytes::new()))
                .unwrap();
            match send(addr, &http1_client(), req).await.status {
                200 => {
                    probes_ok += 1;
                    break;
                }
                503 => {}
                s => panic!("unexpected status {s}"),
            }
            assert!(Instant::now() < deadline, "the limits did not come back with Redis");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let after_open = drive_path(&nodes, "/open", per_node).await;
    let after_closed = drive_path(&nodes, "/closed", per_node).await;
    let closed_total = after_closed.ok + probes_ok;
    eprintln!(
        "redis back: open {after_open:?}; closed {after_closed:?} + {probes_ok} probes = {closed_total} (limit {L} each)"
    );
    all_alive(&mut nodes);
    assert_eq!(after_open.unavailable + after_closed.unavailable, 0);
    assert!(after_open.ok.abs_diff(L) * 50 <= L, "open admitted {}, limit {L} ± 2%", after_open.ok);
    assert!(closed_total.abs_diff(L) * 50 <= L, "closed admitted {closed_total}, limit {L} ± 2%");
    assert_eq!(
        up.hits() as u64,
        open.ok + closed.ok + during_open.ok + down_open.ok + probes_ok + after_open.ok + after_closed.ok,
        "the upstream saw exactly what was admitted"
    );
}

/// `examples/cluster.yaml` passes `portcullis check` with its secrets from the environment,
/// pointing at addresses where nothing listens: `check` connects to neither PostgreSQL nor Redis.
/// A malformed traffic Redis URL is refused without being echoed.
#[test]
fn the_cluster_example_checks_without_reaching_redis_or_postgres() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/cluster.yaml");
    let run = |traffic_url: &str| {
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["check", "--config", example])
            .env("PORTCULLIS_PG_URL", "postgres://portcullis:pw@127.0.0.1:1/portcullis")
            .env("PORTCULLIS_REDIS_URL", "redis://127.0.0.1:1/0")
            .env("PORTCULLIS_TRAFFIC_REDIS_URL", traffic_url)
            .env("PORTCULLIS_KEY_SECRET", "test-cluster-key-secret-0123456789abcdef")
            .env("PORTCULLIS_SIGNING_SECRET", "test-cluster-signing-secret-0123456789abcdef")
            .output()
            .unwrap()
    };
    for url in ["redis://127.0.0.1:1/1", "redis+sentinel://127.0.0.1:1,127.0.0.1:2/pc", "redis+cluster://127.0.0.1:1"] {
        let out = run(url);
        assert!(out.status.success(), "{url}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("0 warning(s)"));
    }
    let out = run("redis+sentinel://:hunter2secret@127.0.0.1:1");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("traffic.cluster.redis_url") && !err.contains("hunter2secret"), "{err}");
}

/// Three processes on a private three-master Redis Cluster (`redis+cluster://`), with limits on
/// several routes whose counters land on different masters: each admits its limit within ±2%.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_on_a_redis_cluster_admit_each_global_limit_within_2_percent() {
    const L: u64 = 150;
    let up = Upstream::start().await;
    let redis = tokio::task::spawn_blocking(OwnCluster::start).await.unwrap();
    let ns = namespace("rcluster");
    let cluster = format!("namespace: {ns}, expected_nodes: {NODES}, timeout: 2s, failure_threshold: 1000");
    let mut routes = String::new();
    for r in ["a", "b", "c", "d"] {
        routes.push_str(&format!(
            "  - name: {r}\n    prefix: /{r}\n    upstream: up\n    policy:\n      rate_limit: {{ limits: [{{ name: lim-{r}, key: route, rate: {L}, period: 1h, on_store_failure: closed }}] }}\n"
        ));
    }
    let mut nodes = start_nodes_on(&up, &redis.url(), &cluster, &routes);
    let mut total = 0;
    for path in ["/a", "/b", "/c", "/d"] {
        let t = drive_path(&nodes, path, 4 * L / NODES as u64).await;
        eprintln!("redis cluster, route {path}: {t:?} (limit {L})");
        assert_eq!(t.unavailable, 0, "{t:?}");
        assert!(t.ok.abs_diff(L) * 50 <= L, "{path}: admitted {}, limit {L} ± 2%", t.ok);
        total += t.ok;
    }
    all_alive(&mut nodes);
    assert_eq!(up.hits() as u64, total, "the upstream saw exactly what was admitted");
    // The four counters are spread over more than one master.
    let holding = redis.key_counts().iter().filter(|n| **n > 0).count();
    assert!(holding >= 2, "counters on {holding} master(s)");
}
