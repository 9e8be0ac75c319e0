#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]
//! Three `portcullis run` processes sharing one Redis (the machine's, 127.0.0.1:6379, with a
//! namespace of their own), driven together by a bounded load at four times the limit, admit the
//! global limit: within ±2% with one Redis call per decision, within ±5% with local batching.
//! Needs Redis on 127.0.0.1:6379 (`scripts/services` starts it).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use portcullis_testkit::{Upstream, http1_client, send};

const NODES: usize = 3;
const LIMIT: u64 = 300;
/// Requests per node; the whole load is 4 × the limit.
const PER_NODE: u64 = 400;
/// Concurrent clients per node.
const CLIENTS: u64 = 4;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

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
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("redis.url"), "redis://127.0.0.1:6379/").unwrap();
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
  cluster: {{ redis_url: "${{file:redis.url}}", namespace: {ns}, expected_nodes: {NODES}, timeout: 2s, failure_threshold: 1000 {batching} }}
routes:
  - name: all
    prefix: /
    upstream: up
    policy:
      rate_limit: {{ limits: [{{ name: global, key: route, rate: {LIMIT}, period: 1h, on_store_failure: closed }}] }}
"#,
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
