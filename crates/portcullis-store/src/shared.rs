//! State shared by the nodes of a cluster, on Redis (or in-process for a single node): the change
//! bus that tells every node to drop cached identity rows, the HMAC nonce cache that refuses
//! replays, and failure counters (brute-force lockouts).
//!
//! Every Redis key starts with `portcullis:` and the configured namespace (`portcullis:<ns>:…`, or
//! just `portcullis:` when the namespace is empty); the change channel is `<prefix>changes`, so the
//! default namespace publishes on `portcullis:changes`. Every TTL is sent in milliseconds (`PX`,
//! `PEXPIRE`): a TTL of a few seconds given to a seconds-based command by mistake would live 1000×
//! too long, a bug other gateways have shipped.
//!
//! Failure semantics: a Redis error is returned to the caller, never turned into an answer. A
//! nonce check that errors must be treated as a replay (refuse), and a failure counter that errors
//! as over the limit; the caller decides, the store does not guess.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use portcullis_config::Secret;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, oneshot};
use tokio::time::Instant;

/// How many change events a slow subscriber may fall behind before it gets `Lagged` (and, through
/// [`next_change`], a flush-everything event).
pub const CHANGE_BUFFER: usize = 1024;
/// Most entries the in-process nonce cache or counter map holds; past it, inserts fail closed.
pub const MAX_LOCAL_ENTRIES: usize = 1_000_000;

const MAX_KEY_PART: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const PING_EVERY: Duration = Duration::from_secs(10);
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a shared-state operation failed. Never contains a key's value or the Redis URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SharedError {
    /// Bad input (namespace, key, TTL).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Redis could not be reached or refused the command.
    #[error("redis unavailable while {context}")]
    Unavailable {
        /// What was being done.
        context: &'static str,
        /// The driver's error.
        #[source]
        source: redis::RedisError,
    },
    /// The in-process maps are full of live entries; the caller should fail closed.
    #[error("in-process shared state is full")]
    Full,
}

type Result<T> = std::result::Result<T, SharedError>;

/// What changed; subscribers drop the matching cached entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChangeKind {
    /// A credential (id = credential id).
    Credential,
    /// A consumer (id = consumer id).
    Consumer,
    /// An organization (id = organization id).
    Organization,
    /// A suspension was added or lifted.
    Suspension,
    /// A policy.
    Policy,
    /// Anything may have changed: drop every cache. Also sent after a lag or a reconnect.
    Any,
}

/// One change event on the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// What kind of row.
    pub kind: ChangeKind,
    /// Which one, if known.
    pub id: Option<String>,
}

impl Change {
    /// A change of one row.
    pub fn of(kind: ChangeKind, id: impl Into<String>) -> Self {
        Change { kind, id: Some(id.into()) }
    }

    /// "Flush everything".
    pub fn any() -> Self {
        Change { kind: ChangeKind::Any, id: None }
    }
}

/// Receives the next change, turning a lag (events were dropped because this receiver was slow)
/// into a [`ChangeKind::Any`] event so the subscriber flushes everything. `None` once the bus is
/// gone.
pub async fn next_change(rx: &mut broadcast::Receiver<Change>) -> Option<Change> {
    match rx.recv().await {
        Ok(change) => Some(change),
        Err(broadcast::error::RecvError::Lagged(_)) => Some(Change::any()),
        Err(broadcast::error::RecvError::Closed) => None,
    }
}

/// Cluster-shared state: in-process for one node, Redis for many. Cheap to clone.
#[derive(Clone, Debug)]
pub enum SharedState {
    /// One node: everything in this process.
    Local(LocalShared),
    /// Several nodes: Redis.
    Redis(RedisShared),
}

impl SharedState {
    /// Sends a change to every subscriber (on every node, for Redis).
    pub async fn publish(&self, change: &Change) -> Result<()> {
        match self {
            SharedState::Local(s) => {
                s.publish(change);
                Ok(())
            }
            SharedState::Redis(s) => s.publish(change).await,
        }
    }

    /// A new receiver of change events; read it with [`next_change`].
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        match self {
            SharedState::Local(s) => s.subscribe(),
            SharedState::Redis(s) => s.subscribe(),
        }
    }

    /// Records `nonce` for `key_id` for `ttl`. `true`: first time seen, accept; `false`: a replay
    /// within `ttl`, refuse.
    pub async fn check_and_insert_nonce(&self, key_id: &str, nonce: &str, ttl: Duration) -> Result<bool> {
        match self {
            SharedState::Local(s) => s.check_and_insert_nonce(key_id, nonce, ttl),
            SharedState::Redis(s) => s.check_and_insert_nonce(key_id, nonce, ttl).await,
        }
    }

    /// Counts one failure for `key` in a fixed window of `window` starting at the first failure;
    /// returns the count so far in that window.
    pub async fn incr_failure(&self, key: &str, window: Duration) -> Result<u64> {
        match self {
            SharedState::Local(s) => s.incr_failure(key, window),
            SharedState::Redis(s) => s.incr_failure(key, window).await,
        }
    }

    /// Forgets the failures counted for `key` (e.g. after a successful login).
    pub async fn reset_failures(&self, key: &str) -> Result<()> {
        match self {
            SharedState::Local(s) => s.reset_failures(key),
            SharedState::Redis(s) => s.reset_failures(key).await,
        }
    }
}

fn check_part(field: &str, part: &str) -> Result<()> {
    if part.is_empty() || part.len() > MAX_KEY_PART {
        Err(SharedError::Invalid(format!("{field} must be 1-{MAX_KEY_PART} bytes")))
    } else {
        Ok(())
    }
}

fn ttl_millis(field: &str, ttl: Duration) -> Result<u64> {
    match u64::try_from(ttl.as_millis()) {
        Ok(ms) if ms >= 1 && ms <= i64::MAX as u64 => Ok(ms),
        _ => Err(SharedError::Invalid(format!("{field} must be at least 1 ms"))),
    }
}

// --- Local ---------------------------------------------------------------------------------------

/// In-process shared state for a single node. Time comes from `tokio::time::Instant`, so tests can
/// drive it with `tokio::time::pause`.
#[derive(Clone, Debug)]
pub struct LocalShared {
    inner: Arc<LocalInner>,
}

#[derive(Debug)]
struct LocalInner {
    changes: broadcast::Sender<Change>,
    nonces: Mutex<Expiring<(String, String), ()>>,
    failures: Mutex<Expiring<String, u64>>,
}

/// How often a full map may be swept for expired entries: a sweep walks every entry, so a map
/// kept full of live entries must not be swept on every insert.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A bounded map whose entries expire. Expired entries are ignored at once and dropped by a sweep
/// when the map is full (at most once per [`SWEEP_EVERY`]); a map full of live entries refuses
/// inserts, so the caller fails closed instead of the process growing without bound.
#[derive(Debug)]
struct Expiring<K, V> {
    map: HashMap<K, (V, Instant)>,
    capacity: usize,
    next_sweep: Instant,
}

impl<K: std::hash::Hash + Eq, V> Expiring<K, V> {
    fn new(capacity: usize) -> Self {
        Expiring { map: HashMap::new(), capacity, next_sweep: Instant::now() }
    }

    fn live_mut(&mut self, key: &K, now: Instant) -> Option<&mut V> {
        self.map.get_mut(key).filter(|(_, expiry)| *expiry > now).map(|(v, _)| v)
    }

    fn insert(&mut self, key: K, value: V, expiry: Instant, now: Instant) -> Result<()> {
        if self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            if now >= self.next_sweep {
                self.map.retain(|_, (_, e)| *e > now);
                self.next_sweep = now + SWEEP_EVERY;
            }
            if self.map.len() >= self.capacity {
                return Err(SharedError::Full);
            }
        }
        self.map.insert(key, (value, expiry));
        Ok(())
    }

    fn remove(&mut self, key: &K) {
        self.map.remove(key);
    }
}

impl Default for LocalShared {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalShared {
    /// An empty in-process state holding at most [`MAX_LOCAL_ENTRIES`] nonces and counters.
    pub fn new() -> Self {
        Self::with_capacity(MAX_LOCAL_ENTRIES)
    }

    /// An empty in-process state holding at most `capacity` live nonces and as many counters.
    pub fn with_capacity(capacity: usize) -> Self {
        let (changes, _) = broadcast::channel(CHANGE_BUFFER);
        LocalShared {
            inner: Arc::new(LocalInner {
                changes,
                nonces: Mutex::new(Expiring::new(capacity)),
                failures: Mutex::new(Expiring::new(capacity)),
            }),
        }
    }

    fn publish(&self, change: &Change) {
        // No subscriber is not an error: nobody has anything cached.
        let _ = self.inner.changes.send(change.clone());
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.changes.subscribe()
    }

    fn check_and_insert_nonce(&self, key_id: &str, nonce: &str, ttl: Duration) -> Result<bool> {
        check_part("key_id", key_id)?;
        check_part("nonce", nonce)?;
        ttl_millis("ttl", ttl)?;
        let now = Instant::now();
        let mut map = self.inner.nonces.lock().map_err(|_| SharedError::Full)?;
        let key = (key_id.to_owned(), nonce.to_owned());
        if map.live_mut(&key, now).is_some() {
            return Ok(false);
        }
        map.insert(key, (), now + ttl, now)?;
        Ok(true)
    }

    fn incr_failure(&self, key: &str, window: Duration) -> Result<u64> {
        check_part("key", key)?;
        ttl_millis("window", window)?;
        let now = Instant::now();
        let mut map = self.inner.failures.lock().map_err(|_| SharedError::Full)?;
        let key = key.to_owned();
        if let Some(count) = map.live_mut(&key, now) {
            *count = count.saturating_add(1);
            return Ok(*count);
        }
        map.insert(key, 1, now + window, now)?;
        Ok(1)
    }

    fn reset_failures(&self, key: &str) -> Result<()> {
        check_part("key", key)?;
        self.inner.failures.lock().map_err(|_| SharedError::Full)?.remove(&key.to_owned());
        Ok(())
    }
}

// --- Redis ---------------------------------------------------------------------------------------

/// Shared state on Redis. Commands go through a `ConnectionManager` (reconnects by itself); change
/// events come from a background task holding a pub/sub connection that resubscribes after a
/// Redis restart, with bounded backoff, and then emits [`ChangeKind::Any`] since events may have
/// been missed meanwhile. The task stops when the last clone is dropped.
#[derive(Clone)]
pub struct RedisShared {
    inner: Arc<RedisInner>,
}

struct RedisInner {
    conn: ConnectionManager,
    prefix: String,
    channel: String,
    changes: broadcast::Sender<Change>,
    subscriber: tokio::task::JoinHandle<()>,
}

impl Drop for RedisInner {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

impl std::fmt::Debug for RedisShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisShared").field("prefix", &self.inner.prefix).finish_non_exhaustive()
    }
}

/// Failure-counter script: INCR and set the window's expiry (in ms) in one atomic step. The
/// expiry is set whenever the key has none, so a counter can never be left without a TTL.
const INCR_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
";

fn unavailable(context: &'static str) -> impl Fn(redis::RedisError) -> SharedError {
    move |source| SharedError::Unavailable { context, source }
}

/// Checks the namespace and builds the key prefix.
fn key_prefix(namespace: &str) -> Result<String> {
    if namespace.len() > 64 || !namespace.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(SharedError::Invalid("namespace must be 0-64 characters of [A-Za-z0-9-_.]".into()));
    }
    Ok(if namespace.is_empty() { "portcullis:".to_owned() } else { format!("portcullis:{namespace}:") })
}

impl RedisShared {
    /// Connects to Redis at `url` (e.g. `redis://127.0.0.1:6379/`), with keys under `namespace`,
    /// and waits until the change subscription is in place (so nothing published after this
    /// returns is missed). Fails if Redis does not answer within a few seconds.
    pub async fn connect(url: &Secret, namespace: &str) -> Result<Self> {
        let prefix = key_prefix(namespace)?;
        // The parse error could quote the URL (and its password): say only that it is wrong.
        let client =
            redis::Client::open(url.expose()).map_err(|_| SharedError::Invalid("the Redis URL is not valid".into()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(MAX_BACKOFF);
        let conn = client.get_connection_manager_with_config(config).await.map_err(unavailable("connecting"))?;
        let channel = format!("{prefix}changes");
        let (changes, _) = broadcast::channel(CHANGE_BUFFER);
        let (ready_tx, ready_rx) = oneshot::channel();
        let subscriber = tokio::spawn(subscriber_loop(client, channel.clone(), changes.clone(), ready_tx));
        let ready = tokio::time::timeout(SUBSCRIBE_TIMEOUT, ready_rx).await;
        if !matches!(ready, Ok(Ok(()))) {
            subscriber.abort();
            return Err(SharedError::Unavailable {
                context: "subscribing to the change channel",
                source: redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)),
            });
        }
        Ok(RedisShared { inner: Arc::new(RedisInner { conn, prefix, channel, changes, subscriber }) })
    }

    /// The prefix every key of this instance starts with (`portcullis:<ns>:`).
    pub fn key_prefix(&self) -> &str {
        &self.inner.prefix
    }

    async fn publish(&self, change: &Change) -> Result<()> {
        let payload = serde_json::to_string(change).map_err(|e| SharedError::Invalid(e.to_string()))?;
        let mut conn = self.inner.conn.clone();
        redis::cmd("PUBLISH")
            .arg(&self.inner.channel)
            .arg(payload)
            .query_async::<i64>(&mut conn)
            .await
            .map_err(unavailable("publishing a change"))?;
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.changes.subscribe()
    }

    fn nonce_key(&self, key_id: &str, nonce: &str) -> String {
        // The length prefix keeps ("a:b", "c") and ("a", "b:c") apart.
        format!("{}nonce:{}:{key_id}:{nonce}", self.inner.prefix, key_id.len())
    }

    async fn check_and_insert_nonce(&self, key_id: &str, nonce: &str, ttl: Duration) -> Result<bool> {
        check_part("key_id", key_id)?;
        check_part("nonce", nonce)?;
        let ms = ttl_millis("ttl", ttl)?;
        let mut conn = self.inner.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.nonce_key(key_id, nonce))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ms)
            .query_async(&mut conn)
            .await
            .map_err(unavailable("recording a nonce"))?;
        Ok(set.is_some())
    }

    fn failure_key(&self, key: &str) -> String {
        format!("{}fail:{key}", self.inner.prefix)
    }

    async fn incr_failure(&self, key: &str, window: Duration) -> Result<u64> {
        check_part("key", key)?;
        let ms = ttl_millis("window", window)?;
        let mut conn = self.inner.conn.clone();
        redis::Script::new(INCR_SCRIPT)
            .key(self.failure_key(key))
            .arg(ms)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable("counting a failure"))
    }

    async fn reset_failures(&self, key: &str) -> Result<()> {
        check_part("key", key)?;
        let mut conn = self.inner.conn.clone();
        redis::cmd("DEL")
            .arg(self.failure_key(key))
            .query_async::<i64>(&mut conn)
            .await
            .map_err(unavailable("resetting failures"))?;
        Ok(())
    }
}

async fn subscribe_once(
    client: &redis::Client,
    channel: &str,
) -> redis::RedisResult<(redis::aio::PubSubSink, redis::aio::PubSubStream)> {
    let pubsub = tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
    let (mut sink, stream) = pubsub.split();
    sink.subscribe(channel).await?;
    Ok((sink, stream))
}

/// Owns the pub/sub connection for the life of the [`RedisShared`]: forwards each message to the
/// broadcast channel, pings to notice a dead connection, and reconnects with bounded backoff.
async fn subscriber_loop(
    client: redis::Client,
    channel: String,
    changes: broadcast::Sender<Change>,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut backoff = MIN_BACKOFF;
    loop {
        match subscribe_once(&client, &channel).await {
            Ok((mut sink, mut stream)) => {
                backoff = MIN_BACKOFF;
                match ready.take() {
                    Some(ready) => {
                        let _ = ready.send(());
                    }
                    None => {
                        // Events published while we were away are lost: everyone flushes.
                        tracing::info!("change subscription restored; asking subscribers to flush");
                        let _ = changes.send(Change::any());
                    }
                }
                let mut ping = tokio::time::interval(PING_EVERY);
                ping.tick().await;
                loop {
                    tokio::select! {
                        msg = stream.next() => match msg {
                            Some(msg) => {
                                // A payload we cannot read (a newer node's kind?) flushes everything.
                                let change = serde_json::from_slice(msg.get_payload_bytes()).unwrap_or_else(|_| Change::any());
                                let _ = changes.send(change);
                            }
                            None => break,
                        },
                        _ = ping.tick() => {
                            let alive = tokio::time::timeout(RESPONSE_TIMEOUT, sink.ping::<redis::Value>()).await;
                            if !matches!(alive, Ok(Ok(_))) {
                                break;
                            }
                        }
                    }
                }
                tracing::warn!("lost the Redis change subscription; reconnecting");
            }
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to Redis changes; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_namespaces() {
        assert_eq!(key_prefix("").ok().as_deref(), Some("portcullis:"));
        assert_eq!(key_prefix("eu-1").ok().as_deref(), Some("portcullis:eu-1:"));
        assert!(key_prefix("a:b").is_err());
        assert!(key_prefix("a b").is_err());
        assert!(key_prefix(&"a".repeat(65)).is_err());
    }

    #[test]
    fn ttls_are_whole_positive_milliseconds() {
        assert_eq!(ttl_millis("t", Duration::from_secs(5)).ok(), Some(5000));
        assert!(ttl_millis("t", Duration::ZERO).is_err());
        assert!(ttl_millis("t", Duration::from_micros(999)).is_err());
    }

    #[test]
    fn change_json_shape() {
        let c = Change::of(ChangeKind::Credential, "abc");
        assert_eq!(serde_json::to_string(&c).unwrap(), r#"{"kind":"credential","id":"abc"}"#);
        let unknown: std::result::Result<Change, _> = serde_json::from_str(r#"{"kind":"future_thing","id":null}"#);
        assert!(unknown.is_err(), "unknown kinds fail to parse, and the subscriber turns that into Any");
    }

    #[tokio::test(start_paused = true)]
    async fn local_nonce_replay_refused_until_ttl() {
        let s = SharedState::Local(LocalShared::new());
        let ttl = Duration::from_secs(300);
        assert!(s.check_and_insert_nonce("k1", "n1", ttl).await.unwrap(), "first use accepted");
        assert!(!s.check_and_insert_nonce("k1", "n1", ttl).await.unwrap(), "replay refused");
        assert!(s.check_and_insert_nonce("k2", "n1", ttl).await.unwrap(), "other key id is independent");
        tokio::time::advance(ttl).await;
        assert!(s.check_and_insert_nonce("k1", "n1", ttl).await.unwrap(), "accepted again after the TTL");
        assert!(s.check_and_insert_nonce("", "n", ttl).await.is_err());
        assert!(s.check_and_insert_nonce("k", "n", Duration::ZERO).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn local_failures_count_and_expire() {
        let s = SharedState::Local(LocalShared::new());
        let w = Duration::from_secs(60);
        assert_eq!(s.incr_failure("ip:1", w).await.unwrap(), 1);
        assert_eq!(s.incr_failure("ip:1", w).await.unwrap(), 2);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(s.incr_failure("ip:1", w).await.unwrap(), 3, "fixed window from the first failure");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(s.incr_failure("ip:1", w).await.unwrap(), 1, "window over");
        s.reset_failures("ip:1").await.unwrap();
        assert_eq!(s.incr_failure("ip:1", w).await.unwrap(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn local_maps_full_of_live_entries_fail_closed_then_recover() {
        let s = SharedState::Local(LocalShared::with_capacity(2));
        let ttl = Duration::from_secs(10);
        assert!(s.check_and_insert_nonce("k", "1", ttl).await.unwrap());
        assert!(s.check_and_insert_nonce("k", "2", ttl).await.unwrap());
        assert!(matches!(s.check_and_insert_nonce("k", "3", ttl).await, Err(SharedError::Full)), "full: refuse");
        assert!(!s.check_and_insert_nonce("k", "1", ttl).await.unwrap(), "a replay is still a replay when full");
        assert!(matches!(s.incr_failure("a", ttl).await, Ok(1)));
        assert!(matches!(s.incr_failure("b", ttl).await, Ok(1)));
        assert!(matches!(s.incr_failure("c", ttl).await, Err(SharedError::Full)));
        assert!(matches!(s.incr_failure("a", ttl).await, Ok(2)), "existing counters keep counting");
        tokio::time::advance(ttl).await;
        assert!(s.check_and_insert_nonce("k", "3", ttl).await.unwrap(), "expired entries swept");
        assert!(matches!(s.incr_failure("c", ttl).await, Ok(1)));
    }

    #[tokio::test]
    async fn local_bus_delivers_and_lag_becomes_any() {
        let s = SharedState::Local(LocalShared::new());
        let mut rx = s.subscribe();
        s.publish(&Change::of(ChangeKind::Consumer, "c1")).await.unwrap();
        assert_eq!(next_change(&mut rx).await, Some(Change::of(ChangeKind::Consumer, "c1")));
        for i in 0..(CHANGE_BUFFER + 5) {
            s.publish(&Change::of(ChangeKind::Credential, i.to_string())).await.unwrap();
        }
        assert_eq!(next_change(&mut rx).await, Some(Change::any()), "a lagging subscriber is told to flush");
    }
}
