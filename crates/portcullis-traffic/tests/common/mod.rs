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
