//! Shared helpers for the Redis tests: unique key namespaces on the machine's Redis, and a private
//! redis-server this test owns and may kill.

#![allow(dead_code, unreachable_pub, reason = "each test file uses a part")]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portcullis_traffic::{RedisStore, RedisStoreConfig};

/// The machine's shared Redis. Tests never stop or flush it; they only use their own namespace.
pub const SHARED_REDIS: &str = "redis://127.0.0.1:6379/";

/// A namespace no other test run uses.
pub fn unique_namespace(test: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("pctest:{test}:{}:{nanos}", std::process::id())
}

/// A store on the shared Redis with a generous timeout (exactness tests measure counts, not
/// latency, on a busy 2-core machine).
pub fn shared_store(ns: &str, nodes: u32) -> Arc<RedisStore> {
    let cfg = RedisStoreConfig {
        namespace: ns.to_owned(),
        timeout: Duration::from_secs(2),
        failure_threshold: 1000,
        cooldown: Duration::from_millis(100),
        expected_nodes: nodes,
    };
    Arc::new(RedisStore::connect_lazy(SHARED_REDIS, cfg).unwrap())
}

/// Runs a command on a Redis URL with the synchronous client.
pub fn redis_cmd(url: &str, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(1))?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut conn)
}

/// A redis-server of our own on a free loopback port, in a temp dir, without persistence.
pub struct OwnRedis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnRedis {
    pub fn start() -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut r = Self { port, dir: tempfile::tempdir().unwrap(), child: None };
        r.spawn();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        self.child = Some(child);
        // Poll until it answers (bounded: 5 s).
        let deadline = Instant::now() + Duration::from_secs(5);
        while redis_cmd(&self.url(), &["PING"]).is_err() {
            assert!(Instant::now() < deadline, "own redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL: no goodbye to clients) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (empty: no persistence).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free loopback port (bound then released; the caller starts its server at once).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Whether `redis-server` can be run here (tests that start their own servers skip, with a
/// message, only when it is missing).
pub fn have_redis_server() -> bool {
    let ok = Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: redis-server is not installed");
    }
    ok
}

fn spawn_server(args: &[String], dir: &std::path::Path) -> Child {
    Command::new("redis-server")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed")
}

/// Polls `f` every 50 ms until it is true; panics with `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn value_text(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        redis::Value::VerbatimString { text, .. } | redis::Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

/// Reads one `field:value` line of `INFO section`.
pub fn info(url: &str, section: &str, field: &str) -> Option<String> {
    let v = redis_cmd(url, &["INFO", section]).ok()?;
    let text = value_text(&v)?;
    text.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':').map(|v| v.trim().to_owned()))
}

/// A three-master Redis Cluster of our own on free loopback ports (no replicas, no persistence).
pub struct OwnCluster {
    pub ports: Vec<u16>,
    _dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl OwnCluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut ports = Vec::new();
        let mut children = Vec::new();
        for i in 0..3 {
            let (port, bus) = (free_port(), free_port());
            let args: Vec<String> = [
                "--port",
                &port.to_string(),
                "--cluster-port",
                &bus.to_string(),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &format!("nodes-{i}.conf"),
                "--cluster-node-timeout",
                "2000",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            children.push(spawn_server(&args, dir.path()));
            ports.push(port);
        }
        let mut c = Self { ports, _dir: dir, children };
        for p in &c.ports {
            let url = format!("redis://127.0.0.1:{p}/");
            wait_until("a cluster node to start", Duration::from_secs(10), || redis_cmd(&url, &["PING"]).is_ok());
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for p in &c.ports {
            create.arg(format!("127.0.0.1:{p}"));
        }
        let mut child = create.arg("--cluster-yes").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "redis-cli --cluster create failed");
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                c.stop();
                panic!("redis-cli --cluster create did not finish in 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for p in c.ports.clone() {
            let url = format!("redis://127.0.0.1:{p}/");
            wait_until("cluster_state:ok", Duration::from_secs(20), || {
                let Ok(v) = redis_cmd(&url, &["CLUSTER", "INFO"]) else { return false };
                value_text(&v).is_some_and(|t| t.contains("cluster_state:ok"))
            });
        }
        c
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// A plain URL for one node (direct commands in assertions).
    pub fn node_url(&self, i: usize) -> String {
        format!("redis://127.0.0.1:{}/", self.ports[i])
    }

    fn stop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A master, one replica and one Sentinel of our own (quorum 1, down after 1 s).
pub struct OwnSentinel {
    pub master_port: u16,
    pub replica_port: u16,
    pub sentinel_port: u16,
    _dir: tempfile::TempDir,
    master: Option<Child>,
    others: Vec<Child>,
}

pub const SENTINEL_MASTER: &str = "pcmaster";

impl OwnSentinel {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (mp, rp, sp) = (free_port(), free_port(), free_port());
        let base = |port: u16| -> Vec<String> {
            ["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        };
        let master = spawn_server(&base(mp), dir.path());
        let mut replica_args = base(rp);
        replica_args.extend(["--replicaof".to_owned(), "127.0.0.1".to_owned(), mp.to_string()]);
        let replica = spawn_server(&replica_args, dir.path());
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sp}\nbind 127.0.0.1\nsentinel monitor {SENTINEL_MASTER} 127.0.0.1 {mp} 1\n\
                 sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n\
                 sentinel failover-timeout {SENTINEL_MASTER} 3000\n"
            ),
        )
        .unwrap();
        let sentinel = spawn_server(&[conf.display().to_string(), "--sentinel".to_owned()], dir.path());
        let s = Self {
            master_port: mp,
            replica_port: rp,
            sentinel_port: sp,
            _dir: dir,
            master: Some(master),
            others: vec![replica, sentinel],
        };
        let replica_url = format!("redis://127.0.0.1:{rp}/");
        wait_until("the replica to sync", Duration::from_secs(15), || {
            info(&replica_url, "replication", "master_link_status").as_deref() == Some("up")
        });
        let sentinel_url = format!("redis://127.0.0.1:{sp}/");
        wait_until("the Sentinel to see the replica", Duration::from_secs(15), || {
            info(&sentinel_url, "sentinel", "master0")
                .is_some_and(|l| l.contains("status=ok") && l.contains("slaves=1"))
        });
        s
    }

    /// `redis+sentinel://` to our Sentinel.
    pub fn url(&self) -> String {
        format!("redis+sentinel://127.0.0.1:{}/{SENTINEL_MASTER}", self.sentinel_port)
    }

    pub fn master_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.master_port)
    }

    /// The master's port as the Sentinel names it now.
    pub fn current_master_port(&self) -> Option<u16> {
        let url = format!("redis://127.0.0.1:{}/", self.sentinel_port);
        let v = redis_cmd(&url, &["SENTINEL", "get-master-addr-by-name", SENTINEL_MASTER]).ok()?;
        let redis::Value::Array(items) = v else { return None };
        value_text(items.get(1)?)?.parse().ok()
    }

    /// Kills the master (SIGKILL).
    pub fn kill_master(&mut self) {
        if let Some(mut c) = self.master.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnSentinel {
    fn drop(&mut self) {
        self.kill_master();
        for c in &mut self.others {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
