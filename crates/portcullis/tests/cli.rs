//! Black-box tests of the `portcullis` binary: run it, read its exit code and output, talk to it
//! over real sockets on 127.0.0.1. Every spawned process is killed by [`Proc`]'s `Drop`, and
//! every wait is bounded by [`DEADLINE`].
#![expect(clippy::unwrap_used, clippy::panic, reason = "test helpers fail the test loudly")]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use portcullis_testkit::{Upstream, raw_request};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const DEMO_YAML: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/demo.yaml");
/// The longest any single wait in these tests may take.
const DEADLINE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(25);

// ---- process handling ----

/// A running `portcullis` with its stdout and stderr captured by background threads.
/// Dropping it kills the process and reaps it.
struct Proc {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

/// A process that has exited, with everything it wrote.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Proc {
    fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(args)
            // The environment must not change what the CLI sees: `run` reads its config path
            // from PORTCULLIS_CONFIG, and RUST_LOG changes what goes to stderr.
            .env_remove("PORTCULLIS_CONFIG")
            .env_remove("RUST_LOG")
            // examples/demo.yaml takes its secrets from these (the demo itself generates files).
            .env("PORTCULLIS_DEMO_KEY_SECRET", "cli-test-key-secret-0123456789abcdef0123")
            .env("PORTCULLIS_DEMO_SIGNING_SECRET", "cli-test-signing-secret-0123456789abcdef")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {BIN}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            capture(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>), stdout.clone()),
            capture(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>), stderr.clone()),
        ];
        Self { child, stdout, stderr, readers }
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Fails the test (with the output so far) if the process has already exited.
    fn assert_alive(&mut self, waiting_for: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "portcullis exited ({status}) while waiting for {waiting_for}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
        }
    }

    /// Waits until `addr` accepts TCP connections.
    fn wait_for_port(&mut self, addr: SocketAddr) {
        let start = Instant::now();
        loop {
            self.assert_alive(&format!("{addr} to accept"));
            if TcpStream::connect_timeout(&addr, POLL * 4).is_ok() {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{addr} did not accept within {DEADLINE:?}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits until stdout satisfies `done`, returning it.
    fn wait_for_stdout(&mut self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let out = self.stdout();
            if done(&out) {
                return out;
            }
            self.assert_alive(what);
            assert!(
                start.elapsed() < DEADLINE,
                "no {what} on stdout within {DEADLINE:?}\nstdout:\n{out}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Sends SIGTERM (through kill(1): the workspace forbids unsafe code, so no libc here).
    fn terminate(&self) {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits for the process to exit on its own within `within`, then collects all its output.
    fn finish(mut self, within: Duration) -> Finished {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                start.elapsed() < within,
                "portcullis still running after {within:?}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(POLL);
        };
        // The pipes close when the process exits, so the readers end promptly.
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Finished { status, stdout: self.stdout(), stderr: self.stderr() }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn capture(pipe: Option<Box<dyn Read + Send>>, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let Some(mut pipe) = pipe else { return };
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

/// Runs a command that is expected to exit by itself.
fn portcullis(args: &[&str]) -> Finished {
    Proc::spawn(args).finish(DEADLINE)
}

/// An address on 127.0.0.1 that was free a moment ago.
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn write_config(dir: &tempfile::TempDir, yaml: &str) -> PathBuf {
    let path = dir.path().join("portcullis.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A valid config: one listener, the admin listener, one upstream, one catch-all route.
fn gateway_yaml(listen: SocketAddr, admin: SocketAddr, upstream: SocketAddr) -> String {
    format!(
        "listeners: [{{ name: public, bind: \"{listen}\" }}]\n\
         admin: {{ bind: \"{admin}\" }}\n\
         upstreams: {{ up: {{ targets: [\"http://{upstream}\"] }} }}\n\
         routes: [{{ name: all, prefix: /, upstream: up }}]\n"
    )
}

// ---- HTTP on raw sockets ----

/// A response parsed from raw bytes; header names lowercased, chunked bodies decoded.
#[derive(Debug)]
struct RawResp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResp {
    fn parse(text: &str) -> Self {
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no response head in {text:?}"));
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        let body = if chunked { dechunk(body) } else { body.to_owned() };
        Self { status, headers, body }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap_or_default().trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].strip_prefix("\r\n").unwrap_or(&after[size..]);
    }
    out
}

async fn get(addr: SocketAddr, target: &str) -> RawResp {
    get_with(addr, target, "").await
}

/// GET with extra header lines (each ending in CRLF).
async fn get_with(addr: SocketAddr, target: &str, headers: &str) -> RawResp {
    let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n");
    let text = tokio::time::timeout(DEADLINE, raw_request(addr, req.as_bytes()))
        .await
        .unwrap_or_else(|_| panic!("GET {target} on {addr} took longer than {DEADLINE:?}"));
    RawResp::parse(&text)
}

// ---- 1. version and help ----

#[test]
fn version_prints_the_crate_version() {
    let out = portcullis(&["--version"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(out.stdout.trim(), format!("portcullis {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn help_describes_every_subcommand_and_its_options() {
    let top = portcullis(&["--help"]);
    assert!(top.status.success(), "{}", top.stderr);
    for sub in ["run", "check", "demo", "config-schema", "sample-api"] {
        assert!(top.stdout.contains(sub), "top-level help does not mention {sub}:\n{}", top.stdout);
    }
    let cases: [(&str, &[&str]); 5] = [
        ("run", &["--config", "--log-format", "PORTCULLIS_CONFIG"]),
        ("check", &["--config"]),
        ("demo", &["--listen", "--admin", "--log-format", "127.0.0.1:8080"]),
        ("config-schema", &["JSON Schema"]),
        ("sample-api", &["--listen", "--record"]),
    ];
    for (sub, expected) in cases {
        let out = portcullis(&[sub, "--help"]);
        assert!(out.status.success(), "{sub} --help failed: {}", out.stderr);
        assert!(out.stdout.contains(&format!("Usage: portcullis {sub}")), "{sub} --help:\n{}", out.stdout);
        for option in expected {
            assert!(out.stdout.contains(option), "{sub} --help does not mention {option}:\n{}", out.stdout);
        }
    }
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let out = portcullis(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("unrecognized subcommand 'frobnicate'"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[test]
fn missing_config_flag_is_a_usage_error() {
    for sub in ["run", "check"] {
        let out = portcullis(&[sub]);
        assert_eq!(out.status.code(), Some(2), "{sub}: {}", out.stderr);
        assert!(out.stderr.contains("required") && out.stderr.contains("--config"), "{sub}: {}", out.stderr);
    }
}

// ---- 2. check ----

#[test]
fn check_accepts_the_demo_config() {
    let out = portcullis(&["check", "--config", DEMO_YAML]);
    assert!(out.status.success(), "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert!(out.stdout.starts_with("ok"), "{}", out.stdout);
    assert!(!out.stderr.contains("warning:"), "the demo config should not warn:\n{}", out.stderr);
}

#[test]
fn check_prints_every_error_with_its_key_path_and_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &dir,
        "listeners: [{ name: public, bind: \"not-an-address\" }]\n\
         timeouts: { idle: \"forever\" }\n\
         upstreams: { crm: { targets: [\"http://127.0.0.1:3000\"] } }\n\
         routes: [{ name: all, prefix: /, upstream: missing }]\n",
    );
    let out = portcullis(&["check", "--config", path_str(&config)]);
    assert_eq!(out.status.code(), Some(2), "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("ok"), "{}", out.stdout);
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.trim_start().starts_with("- ")).collect();
    for path in ["listeners[0].bind", "timeouts.idle", "routes[0].upstream"] {
        let line = errors.iter().find(|l| l.contains(&format!("{path}:")));
        let line = line.unwrap_or_else(|| panic!("no error for {path}:\n{}", out.stderr));
        assert!(line.contains("fix:"), "no fix for {path}: {line}");
    }
    assert_eq!(errors.len(), 3, "expected exactly three errors:\n{}", out.stderr);
}

#[test]
fn check_names_an_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &dir,
        "listeners: [{ name: public, bind: \"127.0.0.1:8080\" }]\n\
         upstreams: { crm: { targets: [\"http://127.0.0.1:3000\"] } }\n\
         routes: [{ name: all, prefix: /, upstream: crm, methdos: [GET] }]\n",
    );
    let out = portcullis(&["check", "--config", path_str(&config)]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("routes[0].methdos"), "{}", out.stderr);
    assert!(out.stderr.contains("fix:"), "{}", out.stderr);
}

#[test]
fn check_names_a_missing_tls_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &dir,
        "listeners: [{ name: public, bind: \"127.0.0.1:8443\", tls: { cert_file: nope.crt, key_file: nope.key } }]\n\
         upstreams: { crm: { targets: [\"http://127.0.0.1:3000\"] } }\n\
         routes: [{ name: all, prefix: /, upstream: crm }]\n",
    );
    let out = portcullis(&["check", "--config", path_str(&config)]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("listeners[0].tls.cert_file"), "{}", out.stderr);
}

#[test]
fn check_passes_a_danger_setting_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &dir,
        "listeners: [{ name: public, bind: \"127.0.0.1:8080\" }]\n\
         upstreams: { x: { targets: [\"https://127.0.0.1:8443\"], tls: { danger_skip_verify: true } } }\n\
         routes: [{ name: all, prefix: /, upstream: x }]\n",
    );
    let out = portcullis(&["check", "--config", path_str(&config)]);
    assert!(out.status.success(), "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert!(out.stdout.starts_with("ok"), "{}", out.stdout);
    let warning = out.stderr.lines().find(|l| l.starts_with("warning:"));
    let warning = warning.unwrap_or_else(|| panic!("no warning line:\n{}", out.stderr));
    assert!(warning.contains("upstreams.x.tls.danger_skip_verify"), "{warning}");
}

#[test]
fn check_reports_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("does-not-exist.yaml");
    let out = portcullis(&["check", "--config", path_str(&missing)]);
    assert!(!out.status.success());
    assert_ne!(out.status.code(), None, "killed by a signal instead of exiting");
    assert!(out.stderr.contains("does-not-exist.yaml") && out.stderr.contains("cannot read"), "{}", out.stderr);
}

// ---- 3. config-schema ----

#[test]
fn config_schema_is_a_json_schema_of_the_file() {
    let out = portcullis(&["config-schema"]);
    assert!(out.status.success(), "{}", out.stderr);
    let schema: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(schema["$schema"].as_str().is_some_and(|s| s.contains("json-schema.org")), "{schema:#}");
    assert_eq!(schema["type"], "object");
    assert!(schema["properties"]["listeners"].is_object(), "{schema:#}");
    assert!(schema["properties"]["routes"].is_object(), "{schema:#}");
}

// ---- 4. and 5. run ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_proxies_logs_serves_admin_and_stops_on_sigterm() {
    let upstream = Upstream::start().await;
    let (listen, admin) = (free_addr(), free_addr());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&dir, &gateway_yaml(listen, admin, upstream.addr()));
    let mut proc = Proc::spawn(&["run", "--config", path_str(&config)]);
    proc.wait_for_port(listen);
    proc.wait_for_port(admin);

    let first = get(listen, "/hello?token=supersecret").await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(upstream.hits(), 1);
    assert!(upstream.requests()[0].path.starts_with("/hello"), "{:?}", upstream.requests()[0].path);
    let first_id = first.header("x-request-id").unwrap_or_else(|| panic!("no x-request-id: {first:?}")).to_owned();
    assert!(first.header("server").is_none(), "upstream Server header leaked: {first:?}");
    let second = get(listen, "/status/404").await;
    assert_eq!(second.status, 404, "{second:?}");
    assert_eq!(upstream.hits(), 2);
    let second_id = second.header("x-request-id").unwrap_or_default().to_owned();
    assert_ne!(first_id, second_id);

    let health = get(admin, "/healthz").await;
    assert_eq!(health.status, 200, "{health:?}");
    let metrics = get(admin, "/metrics").await;
    assert_eq!(metrics.status, 200, "{metrics:?}");
    assert!(metrics.body.contains("portcullis_requests_total"), "{}", metrics.body);

    // The access log is written by a background thread: wait for both lines before stopping.
    proc.wait_for_stdout("two access-log lines", |out| out.contains(&first_id) && out.contains(&second_id));
    proc.terminate();
    let out = proc.finish(DEADLINE);
    assert!(out.status.success(), "exit after SIGTERM: {}\nstderr:\n{}", out.status, out.stderr);

    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "one access-log line per proxied request:\n{}", out.stdout);
    for (line, id, status) in [(&lines[0], &first_id, 200), (&lines[1], &second_id, 404)] {
        assert_eq!(line["request_id"], id.as_str(), "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["route"], "all", "{line}");
    }
    assert!(!out.stdout.contains("supersecret"), "query string leaked into the access log:\n{}", out.stdout);
    assert!(!out.stderr.contains("supersecret"), "query string leaked into the process log:\n{}", out.stderr);
}

#[test]
fn run_refuses_an_invalid_config_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &dir,
        "listeners: [{ name: public, bind: \"127.0.0.1:0\" }]\n\
         admin: { bind: \"127.0.0.1:0\" }\n\
         upstreams: { crm: { targets: [\"http://127.0.0.1:3000\"] } }\n\
         routes: [{ name: all, prefix: /, upstream: missing }]\n",
    );
    let out = portcullis(&["run", "--config", path_str(&config)]);
    assert!(!out.status.success(), "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert_ne!(out.status.code(), None, "killed by a signal instead of exiting");
    assert!(out.stderr.contains("routes[0].upstream"), "{}", out.stderr);
}

#[test]
fn run_reports_a_listener_address_in_use() {
    // Held for the whole test, so the gateway cannot bind it.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&dir, &gateway_yaml(busy, free_addr(), free_addr()));
    let out = portcullis(&["run", "--config", path_str(&config)]);
    assert!(!out.status.success(), "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert_ne!(out.status.code(), None, "killed by a signal instead of exiting");
    assert!(out.stderr.contains(&busy.to_string()), "the error does not name {busy}:\n{}", out.stderr);
    drop(taken);
}

// ---- 6. demo ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_the_sample_api_through_the_gateway() {
    let (listen, admin) = (free_addr(), free_addr());
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("demo");
    let mut proc = Proc::spawn(&[
        "demo",
        "--listen",
        &listen.to_string(),
        "--admin",
        &admin.to_string(),
        "--data-dir",
        path_str(&data_dir),
    ]);
    let banner = proc.wait_for_stdout("the demo banner", |out| out.contains("Ctrl-C stops"));
    assert!(banner.contains("portcullis demo is running"), "{banner}");
    assert!(banner.contains(&format!("curl -i http://{listen}/customers/1")), "{banner}");
    assert!(banner.contains(&format!("http://{admin}")), "{banner}");
    proc.wait_for_port(listen);

    // The keys are printed once and written to a file only the owner can read.
    let alice = banner
        .lines()
        .find(|l| l.trim_start().starts_with("alice "))
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("pc_test_")))
        .unwrap_or_else(|| panic!("no key for alice in the banner:\n{banner}"))
        .to_owned();
    let keys_file = data_dir.join("demo-keys.txt");
    assert!(std::fs::read_to_string(&keys_file).unwrap().contains(&alice));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&keys_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // The database holds no usable key.
    let mut db = std::fs::read(data_dir.join("portcullis.db")).unwrap_or_default();
    db.extend(std::fs::read(data_dir.join("portcullis.db-wal")).unwrap_or_default());
    assert!(!db.windows(alice.len()).any(|w| w == alice.as_bytes()), "a raw key is in the demo database");

    assert_eq!(get(listen, "/customers/1").await.status, 401, "a credential is required");
    let auth = format!("x-api-key: {alice}\r\n");
    assert_eq!(get_with(listen, "/customers/2", &auth).await.status, 403, "alice is not customer 2");
    let customer = get_with(listen, "/customers/1", &auth).await;
    assert_eq!(customer.status, 200, "{customer:?}");
    assert!(customer.header("content-type").is_some_and(|c| c.starts_with("application/json")), "{customer:?}");
    let body: serde_json::Value = serde_json::from_str(&customer.body).unwrap();
    assert_eq!(body["id"], 1, "{body}");
    assert!(customer.header("server").is_none(), "{customer:?}");
    assert!(customer.header("x-powered-by").is_none(), "{customer:?}");
    assert!(customer.header("x-request-id").is_some(), "{customer:?}");

    // Data exposure, as the demo config promises: card numbers masked, internal fields removed,
    // the partner's view shaped, stack traces hidden.
    let key_of = |name: &str| {
        banner
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().find(|w| w.starts_with("pc_test_")))
            .unwrap_or_else(|| panic!("no key for {name} in the banner:\n{banner}"))
            .to_owned()
    };
    let (billing, partner) = (key_of("acme-billing"), key_of("globex-partner"));
    let list = get_with(listen, "/customers", &format!("x-api-key: {billing}\r\n")).await;
    assert_eq!(list.status, 200, "{list:?}");
    let doc: serde_json::Value = serde_json::from_str(&list.body).unwrap();
    let customers = doc["customers"].as_array().unwrap();
    assert!(customers.len() > 5, "{doc}");
    for c in customers {
        let card = c["card_number"].as_str().unwrap_or_else(|| panic!("no card number: {c}"));
        let digits: Vec<char> = card.chars().filter(char::is_ascii_digit).collect();
        assert!(card.starts_with("****") && digits.len() == 4, "card not masked: {c}");
        assert!(c.get("password_hash").is_none() && c.get("internal_credit_score").is_none(), "{c}");
        assert!(c["name"].is_string() && c["email"].is_string(), "the billing app sees the rest: {c}");
    }
    assert!(!list.body.contains("$argon2") && !list.body.contains("internal_credit_score"), "{list:?}");
    let shaped = get_with(listen, "/customers", &format!("x-api-key: {partner}\r\n")).await;
    assert_eq!(shaped.status, 200, "{shaped:?}");
    let doc: serde_json::Value = serde_json::from_str(&shaped.body).unwrap();
    let mut keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["customers", "page", "total"], "{doc}");
    let customers = doc["customers"].as_array().unwrap();
    assert_eq!(customers.len(), 5, "the partner gets 5 per page: {doc}");
    for c in customers {
        let mut keys: Vec<&String> = c.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["address", "id", "name"], "{c}");
        assert_eq!(c["address"].as_object().unwrap().keys().collect::<Vec<_>>(), ["city"], "{c}");
    }
    let failed = get_with(listen, "/customers?page=0", &format!("x-api-key: {billing}\r\n")).await;
    assert_eq!(failed.status, 400, "{failed:?}");
    assert!(failed.header("content-type").is_some_and(|c| c.starts_with("application/problem+json")), "{failed:?}");
    for leak in ["crm::", "src/", "SELECT", "OFFSET", "axum"] {
        assert!(!failed.body.contains(leak), "the upstream's {leak} leaked: {failed:?}");
    }
    let id = failed.header("x-request-id").unwrap_or_default();
    assert!(!id.is_empty() && failed.body.contains(id), "the problem keeps the request id: {failed:?}");

    let nope = get(listen, "/nope").await;
    assert_eq!(nope.status, 404, "{nope:?}");
    assert!(nope.header("content-type").is_some_and(|c| c.starts_with("application/problem+json")), "{nope:?}");

    // Sent raw so that no client library normalises the dot segments away.
    let traversal = get(listen, "/%2e%2e/etc/passwd").await;
    assert_eq!(traversal.status, 400, "{traversal:?}");
    assert!(!traversal.body.contains("root:"), "{traversal:?}");

    let health = get(admin, "/healthz").await;
    assert_eq!(health.status, 200, "{health:?}");

    // The banner's admin CLI lines work: a fresh admin token in a private file opens /v1.
    let token_file = data_dir.join("admin.token");
    assert!(banner.contains(&format!("--token-file {}", token_file.display())), "{banner}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let token = std::fs::read_to_string(&token_file).unwrap();
    let bearer = format!("authorization: Bearer {}\r\n", token.trim());
    let listed = get_with(admin, "/v1/consumers/alice/keys", &bearer).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert!(listed.body.contains("api_key") && !listed.body.contains(&alice), "{listed:?}");
    assert_eq!(get(admin, "/v1/consumers/alice/keys").await.status, 401, "the API needs the token");

    // As the banner promises, access-log lines follow it on stdout.
    let id = customer.header("x-request-id").unwrap_or_default().to_owned();
    proc.wait_for_stdout("the access-log line", |out| out.contains(&id));
    proc.terminate();
    let out = proc.finish(DEADLINE);
    assert!(out.status.success(), "exit after SIGTERM: {}\nstderr:\n{}", out.status, out.stderr);
    let line = out.stdout.lines().find(|l| l.contains(&id)).unwrap_or_default();
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["route"], "customer", "{line}");
    assert_eq!(line["consumer"], "alice", "{line}");
    assert_eq!(line["status"], 200, "{line}");
}
