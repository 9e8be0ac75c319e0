#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]
//! `SharedState::Redis` against the real Redis on 127.0.0.1:6379 (`scripts/services` starts it,
//! or set `PORTCULLIS_TEST_REDIS_URL`). Each test uses its own namespace, so tests run in parallel
//! and never touch another user's keys. The restart test starts its own redis-server on a free
//! port in a temp dir and stops it; the machine's Redis is never restarted.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use portcullis_config::{Secret, resolve_secret};
use portcullis_store::shared::*;
use redis::AsyncCommands;

const WITHIN: Duration = Duration::from_secs(1);

fn redis_url() -> String {
    std::env::var("PORTCULLIS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

/// `Secret` is built only from a reference (`${env:…}` or `${file:…}`); tests use a file.
fn secret_of(value: &str) -> Secret {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), value).unwrap();
    resolve_secret("${file:secret}", dir.path()).unwrap()
}

fn namespace() -> String {
    format!("test-{}", uuid::Uuid::now_v7().simple())
}

async fn connect(url: &str, ns: &str) -> SharedState {
    SharedState::Redis(RedisShared::connect(&secret_of(url), ns).await.unwrap())
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap()
}

async fn recv_within(rx: &mut tokio::sync::broadcast::Receiver<Change>, within: Duration) -> Change {
    tokio::time::timeout(within, next_change(rx)).await.expect("no change event in time").expect("bus closed")
}

#[tokio::test]
async fn change_published_on_one_node_reaches_another() {
    let ns = namespace();
    let node_a = connect(&redis_url(), &ns).await;
    let node_b = connect(&redis_url(), &ns).await;
    let mut rx_b = node_b.subscribe();
    let mut rx_a = node_a.subscribe();

    let change = Change::of(ChangeKind::Credential, "0192f0c0-cred");
    node_a.publish(&change).await.unwrap();
    assert_eq!(recv_within(&mut rx_b, WITHIN).await, change, "the other node hears it");
    assert_eq!(recv_within(&mut rx_a, WITHIN).await, change, "and so does the publisher");

    // Another namespace is another cluster: it hears nothing.
    let stranger = connect(&redis_url(), &namespace()).await;
    let mut rx_s = stranger.subscribe();
    node_a.publish(&Change::of(ChangeKind::Consumer, "c1")).await.unwrap();
    assert_eq!(recv_within(&mut rx_b, WITHIN).await, Change::of(ChangeKind::Consumer, "c1"));
    assert!(tokio::time::timeout(Duration::from_millis(200), rx_s.recv()).await.is_err(), "no cross-talk");
}

#[tokio::test]
async fn unreadable_payload_becomes_flush_everything() {
    let ns = namespace();
    let node = connect(&redis_url(), &ns).await;
    let mut rx = node.subscribe();
    let mut conn = raw(&redis_url()).await;
    let _: i64 = conn.publish(format!("portcullis:{ns}:changes"), "{not json").await.unwrap();
    assert_eq!(recv_within(&mut rx, WITHIN).await, Change::any());
    let _: i64 = conn.publish(format!("portcullis:{ns}:changes"), r#"{"kind":"policy","id":"p1"}"#).await.unwrap();
    assert_eq!(recv_within(&mut rx, WITHIN).await, Change::of(ChangeKind::Policy, "p1"));
}

#[tokio::test]
async fn nonce_replay_is_refused_and_ttl_is_in_milliseconds() {
    let ns = namespace();
    let node_a = connect(&redis_url(), &ns).await;
    let node_b = connect(&redis_url(), &ns).await;
    let ttl = Duration::from_secs(30);

    assert!(node_a.check_and_insert_nonce("key-1", "n-abc", ttl).await.unwrap(), "first use accepted");
    assert!(!node_b.check_and_insert_nonce("key-1", "n-abc", ttl).await.unwrap(), "replay on another node refused");
    assert!(!node_a.check_and_insert_nonce("key-1", "n-abc", ttl).await.unwrap(), "replay on the same node refused");
    assert!(node_a.check_and_insert_nonce("key-2", "n-abc", ttl).await.unwrap(), "same nonce, other key: fresh");
    // The length prefix keeps ("a:b", "c") and ("a", "b:c") apart.
    assert!(node_a.check_and_insert_nonce("a:b", "c", ttl).await.unwrap());
    assert!(node_a.check_and_insert_nonce("a", "b:c", ttl).await.unwrap());

    let mut conn = raw(&redis_url()).await;
    let pttl: i64 = conn.pttl(format!("portcullis:{ns}:nonce:5:key-1:n-abc")).await.unwrap();
    assert!(pttl > 29_000 && pttl <= 30_000, "PTTL {pttl} ms: 30 s, not 30 000 s");

    assert!(node_a.check_and_insert_nonce("", "n", ttl).await.is_err());
    assert!(node_a.check_and_insert_nonce("k", "n", Duration::ZERO).await.is_err());
}

#[tokio::test]
async fn failure_counters_count_across_nodes_and_expire() {
    let ns = namespace();
    let node_a = connect(&redis_url(), &ns).await;
    let node_b = connect(&redis_url(), &ns).await;
    let window = Duration::from_millis(300);

    assert_eq!(node_a.incr_failure("login:alice", window).await.unwrap(), 1);
    assert_eq!(node_b.incr_failure("login:alice", window).await.unwrap(), 2);
    assert_eq!(node_a.incr_failure("login:alice", window).await.unwrap(), 3);
    assert_eq!(node_a.incr_failure("login:bob", window).await.unwrap(), 1, "per key");

    let key = format!("portcullis:{ns}:fail:login:alice");
    let mut conn = raw(&redis_url()).await;
    let pttl: i64 = conn.pttl(&key).await.unwrap();
    assert!(pttl > 0 && pttl <= 300, "PTTL {pttl} ms: the window in ms, set once");

    // Redis expires the key by itself: wait for it (bounded), then the count starts over.
    let mut gone = false;
    for _ in 0..100 {
        let exists: bool = conn.exists(&key).await.unwrap();
        if !exists {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "counter expired within 2 s");
    assert_eq!(node_b.incr_failure("login:alice", window).await.unwrap(), 1);

    node_a.reset_failures("login:bob").await.unwrap();
    assert_eq!(node_b.incr_failure("login:bob", Duration::from_secs(60)).await.unwrap(), 1, "reset");
    node_a.reset_failures("login:bob").await.unwrap();

    // A key left without a TTL (written by something else) gets one on the next failure.
    let orphan = format!("portcullis:{ns}:fail:orphan");
    let _: () = conn.set(&orphan, 7).await.unwrap();
    assert_eq!(node_a.incr_failure("orphan", Duration::from_secs(5)).await.unwrap(), 8);
    let pttl: i64 = conn.pttl(&orphan).await.unwrap();
    assert!(pttl > 0 && pttl <= 5000, "PTTL {pttl}");
    let _: i64 = conn.del(&orphan).await.unwrap();
}

#[tokio::test]
async fn unreachable_redis_fails_to_connect_without_leaking_the_url() {
    let port = free_port();
    let err =
        RedisShared::connect(&secret_of(&format!("redis://:hunter2-secret@127.0.0.1:{port}/")), "x").await.unwrap_err();
    assert!(matches!(err, SharedError::Unavailable { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    let bad = RedisShared::connect(&secret_of("not a url"), "x").await.unwrap_err();
    assert!(matches!(bad, SharedError::Invalid(_)), "{bad:?}");
    let bad_ns = RedisShared::connect(&secret_of(&redis_url()), "a:b").await.unwrap_err();
    assert!(matches!(bad_ns, SharedError::Invalid(_)), "{bad_ns:?}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A private redis-server, killed on drop.
struct PrivateRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PrivateRedis {
    async fn start(port: u16, dir: tempfile::TempDir) -> Self {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/services installs it)");
        let me = PrivateRedis { child, port, _dir: dir };
        for _ in 0..250 {
            if let Ok(client) = redis::Client::open(me.url())
                && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok()
            {
                return me;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("private redis-server did not start on port {port}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self._dir, dir)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn subscription_survives_a_redis_restart_and_asks_for_a_flush() {
    let port = free_port();
    let server = PrivateRedis::start(port, tempfile::tempdir().unwrap()).await;
    let url = server.url();
    let node_a = connect(&url, "restart").await;
    let node_b = connect(&url, "restart").await;
    let mut rx = node_b.subscribe();
    node_a.publish(&Change::of(ChangeKind::Organization, "o1")).await.unwrap();
    assert_eq!(recv_within(&mut rx, WITHIN).await, Change::of(ChangeKind::Organization, "o1"));

    // Redis goes away: commands fail (the caller fails closed) instead of answering.
    let dir = server.stop();
    assert!(node_a.check_and_insert_nonce("k", "n", Duration::from_secs(5)).await.is_err());

    // It comes back on the same port: the subscriber reconnects by itself (backoff ≤ 5 s) and
    // tells everyone to flush, since changes may have been missed meanwhile.
    let _server = PrivateRedis::start(port, dir).await;
    assert_eq!(recv_within(&mut rx, Duration::from_secs(15)).await, Change::any(), "flush after reconnect");
    node_a.publish(&Change::of(ChangeKind::Suspension, "s1")).await.unwrap();
    assert_eq!(recv_within(&mut rx, Duration::from_secs(5)).await, Change::of(ChangeKind::Suspension, "s1"));
    assert!(node_a.check_and_insert_nonce("k", "n", Duration::from_secs(5)).await.unwrap(), "commands work again");
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_subscriber() {
    let node = connect(&redis_url(), &namespace()).await;
    let mut rx = node.subscribe();
    drop(node);
    let closed = tokio::time::timeout(WITHIN, next_change(&mut rx)).await.expect("the bus closes");
    assert_eq!(closed, None);
}
