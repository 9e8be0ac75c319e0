//! Redis servers a test owns: [`OwnRedis`] (one server it may kill and restart on the same port)
//! and [`OwnCluster`] (a three-master Redis Cluster), on free loopback ports, without
//! persistence, killed on drop. Never the machine's shared Redis. Every wait is bounded.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound then released; the caller starts its server at once).
#[must_use]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether a Redis server answers `PING` on `127.0.0.1:port` (within about 700 ms).
#[must_use]
pub fn redis_ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok() && s.read(&mut buf).is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

/// Runs `redis-cli` with `args` (bounded: `timeout 2`) and returns its stdout.
#[must_use]
pub fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("timeout").args(["2", "redis-cli"]).args(args).stderr(Stdio::null()).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn redis_server(args: &[&str], dir: &std::path::Path) -> Child {
    Command::new("redis-server")
        .args(args)
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (scripts/services)")
}

fn wait_for(what: &str, deadline: Instant, mut ready: impl FnMut() -> bool) {
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A redis-server of our own on a free loopback port; killed on drop.
pub struct OwnRedis {
    /// Its port (kept across [`OwnRedis::kill`] and [`OwnRedis::spawn`]).
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts it and waits (up to 5 s) until it answers.
    #[must_use]
    pub fn start() -> Self {
        let mut r = Self { port: free_port(), dir: tempfile::tempdir().unwrap(), child: None };
        r.spawn();
        r
    }

    /// `redis://127.0.0.1:port/`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server (again) on its port, empty, and waits (up to 5 s) until it answers.
    pub fn spawn(&mut self) {
        self.kill();
        self.child = Some(redis_server(&["--port", &self.port.to_string()], self.dir.path()));
        wait_for("own redis-server", Instant::now() + Duration::from_secs(5), || redis_ping(self.port));
    }

    /// SIGKILL: no goodbye to its clients.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A three-master Redis Cluster of our own (no replicas); killed on drop.
pub struct OwnCluster {
    /// The masters' ports.
    pub ports: Vec<u16>,
    children: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl OwnCluster {
    /// Starts three nodes, joins them with `redis-cli --cluster create`, and waits until every
    /// node reports `cluster_state:ok` (all bounded by 30 s). Blocking: call it from
    /// `spawn_blocking` in async tests.
    #[must_use]
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Self { ports: Vec::new(), children: Vec::new(), _dir: dir };
        for i in 0..3 {
            let (port, bus) = (free_port(), free_port());
            let (port_s, bus_s, conf) = (port.to_string(), bus.to_string(), format!("nodes-{i}.conf"));
            let args = [
                "--port",
                &port_s,
                "--cluster-port",
                &bus_s,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &conf,
            ];
            c.children.push(redis_server(&args, c._dir.path()));
            c.ports.push(port);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for &p in &c.ports {
            wait_for("a cluster node", deadline, || redis_ping(p));
        }
        let nodes: Vec<String> = c.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mut cli = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .arg("--cluster-yes")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        loop {
            if let Some(status) = cli.try_wait().unwrap() {
                assert!(status.success(), "redis-cli --cluster create failed");
                break;
            }
            if Instant::now() > deadline {
                let _ = cli.kill();
                let _ = cli.wait();
                panic!("redis-cli --cluster create did not finish in time");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for &p in &c.ports {
            let port = p.to_string();
            wait_for("cluster_state:ok", deadline, || {
                redis_cli(&["-p", &port, "cluster", "info"]).contains("cluster_state:ok")
            });
        }
        c
    }

    /// `redis+cluster://` with every node as a seed (the gateway's URL form).
    #[must_use]
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// How many keys each master holds.
    #[must_use]
    pub fn key_counts(&self) -> Vec<u64> {
        self.ports.iter().map(|p| redis_cli(&["-p", &p.to_string(), "dbsize"]).trim().parse().unwrap_or(0)).collect()
    }
}
