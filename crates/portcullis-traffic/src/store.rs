//! [`RedisStore`]: the shared store of a gateway cluster. One connection (to a standalone Redis,
//! the master named by Sentinels, or a Redis Cluster: see [`RedisTarget`]), one circuit breaker,
//! a per-call timeout and the Lua scripts every decision runs (EVALSHA, reloaded on NOSCRIPT by
//! [`redis::Script`]; in Cluster the reload goes to every node).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncConnectionConfig, ConnectionAddr, FromRedisValue, Script, ScriptInvocation};

use crate::breaker::{Admit, CircuitBreaker};
use crate::clock::Nanos;
use crate::error::StoreError;
use crate::target::RedisTarget;

/// GCRA in one atomic step. Times in microseconds, read from the Redis server (`TIME`) so the
/// nodes' clocks never disagree. KEYS[1] = state key holding the TAT;
/// ARGV = emission interval, burst, cost, units wanted (>= cost; more when batching).
/// Grants `want` units when available, else every whole unit available when that covers `cost`,
/// else nothing. Returns {granted, available after, retry after, time to full capacity}.
/// The key lives exactly as long as it differs from "absent" (PX = TAT - now, in ms, rounded up).
const GCRA_LUA: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000000 + tonumber(tm[2])
local cap = t * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local avail = math.floor((now + cap - tat) / t)
if avail < cost then
  return {0, avail, tat + t * cost - cap - now, tat - now}
end
local grant = want
if grant > avail then grant = avail end
local new_tat = tat + t * grant
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {grant, avail - grant, 0, new_tat - now}
";

/// Gives back units granted earlier. ARGV = emission interval, units.
const GCRA_REFUND_LUA: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000000 + tonumber(tm[2])
local back = tonumber(v) - tonumber(ARGV[1]) * tonumber(ARGV[2])
if back <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%d', back), 'PX', math.ceil((back - now) / 1000))
end
return 1
";

/// Quota charge: adds `cost` unless that would pass `limit`; the key expires at the window end
/// (PEXPIREAT, ms). ARGV = cost, limit, window end. Returns {charged 0|1, count after}.
const QUOTA_LUA: &str = r"
local cost = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur + cost > limit then return {0, cur} end
local v = redis.call('INCRBY', KEYS[1], cost)
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return {1, v}
";

/// Quota refund. ARGV = units.
const QUOTA_REFUND_LUA: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local v = redis.call('DECRBY', KEYS[1], ARGV[1])
if v <= 0 then redis.call('DEL', KEYS[1]) end
return 1
";

/// How the shared store is reached and when it is given up on.
#[derive(Clone, Debug)]
pub struct RedisStoreConfig {
    /// Prefix of every key, e.g. `"pc"`; one per gateway cluster (tests: one per test).
    pub namespace: String,
    /// Longest wait for one call; past it the call counts as a failure. Default 50 ms.
    pub timeout: Duration,
    /// Consecutive failures or timeouts that open the circuit. Default 5.
    pub failure_threshold: u32,
    /// How long an open circuit skips the store before one probe. Default 2 s.
    pub cooldown: Duration,
    /// Gateways sharing the store; a limit that fails open is enforced per node at
    /// `limit / expected_nodes`. Default 1.
    pub expected_nodes: u32,
}

impl Default for RedisStoreConfig {
    fn default() -> Self {
        Self {
            namespace: "pc".to_owned(),
            timeout: Duration::from_millis(50),
            failure_threshold: 5,
            cooldown: Duration::from_secs(2),
            expected_nodes: 1,
        }
    }
}

/// Why a store call produced no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StoreFailure {
    Timeout,
    Error,
    CircuitOpen,
}

impl StoreFailure {
    fn label(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Error => "error",
            Self::CircuitOpen => "circuit_open",
        }
    }
}

/// The shared store: Redis behind a timeout and a circuit breaker.
///
/// Build it inside the tokio runtime that will drive its connection (the connection task is
/// spawned there); with the gateway's one-loop-per-worker design, build one per worker or one on
/// a dedicated runtime that outlives the workers.
pub struct RedisStore {
    conn: Conn,
    cfg: RedisStoreConfig,
    breaker: CircuitBreaker,
    gcra: Script,
    gcra_refund: Script,
    quota: Script,
    quota_refund: Script,
}

/// The connection to one of the three deployments.
enum Conn {
    /// One server, reconnected by the connection manager.
    Single(ConnectionManager),
    /// The master named to the Sentinels: resolved on each (re)connect.
    Sentinel {
        client: tokio::sync::Mutex<SentinelClient>,
        conn: Lazy<MultiplexedConnection>,
        cfg: AsyncConnectionConfig,
    },
    /// Redis Cluster: the connection follows the slot map, `MOVED` and `ASK` itself.
    Cluster { client: ClusterClient, conn: Lazy<ClusterConnection> },
}

/// A connection being made (boxed: see [`RedisStore::invoke`]).
type BoxedConnect<'a, C> = std::pin::Pin<Box<dyn std::future::Future<Output = redis::RedisResult<C>> + Send + 'a>>;

/// A connection made on first use and made again after a connection-level failure.
struct Lazy<C> {
    /// The current connection and its generation.
    current: std::sync::Mutex<Option<(u64, C)>>,
    /// Held while connecting, so concurrent callers make one connection.
    connecting: tokio::sync::Mutex<u64>,
}

impl<C: Clone> Lazy<C> {
    fn new() -> Self {
        Self { current: std::sync::Mutex::new(None), connecting: tokio::sync::Mutex::new(0) }
    }

    fn peek(&self) -> Option<(u64, C)> {
        self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The current connection, or a new one from `connect` (callers bound this by the store
    /// timeout; a connect cut short leaves nothing behind).
    async fn get<F, Fut>(&self, connect: F) -> redis::RedisResult<(u64, C)>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<C>>,
    {
        if let Some(c) = self.peek() {
            return Ok(c);
        }
        let mut generation = self.connecting.lock().await;
        if let Some(c) = self.peek() {
            return Ok(c);
        }
        let conn = connect().await?;
        *generation += 1;
        let entry = (*generation, conn);
        *self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(entry.clone());
        Ok(entry)
    }

    /// Drops connection `generation` (if still current) so the next call connects again.
    fn reset(&self, generation: u64) {
        let mut cur = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cur.as_ref().is_some_and(|(g, _)| *g == generation) {
            *cur = None;
        }
    }
}

/// An error after which the connection is not trusted any more: the link broke, or the server
/// is no longer the master (a failover happened under us).
fn connection_level(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown | ServerErrorKind::ClusterDown)
        )
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: it is not kept, so not printed.
        f.debug_struct("RedisStore").field("cfg", &self.cfg).field("breaker", &self.breaker).finish_non_exhaustive()
    }
}

/// Clears the breaker's probe flag if a probe's future is dropped before it finishes.
struct ProbeGuard<'a> {
    breaker: &'a CircuitBreaker,
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.breaker.abandon_probe();
        }
    }
}

impl RedisStore {
    /// A store for `url`: `redis://host:port/db`, `redis+sentinel://s1:port,s2:port/master[/db]`
    /// or `redis+cluster://n1:port,n2:port` (see [`RedisTarget`]). Connects lazily: a Redis that
    /// is down at start is not an error, its calls fail (and fall back) until it comes up.
    ///
    /// # Errors
    /// A URL the client rejects, or no tokio runtime in the calling context.
    pub fn connect_lazy(url: &str, cfg: RedisStoreConfig) -> Result<Self, StoreError> {
        let target = RedisTarget::parse(url).map_err(StoreError::Url)?;
        Self::connect_target(&target, cfg)
    }

    /// A store for a parsed target (see [`RedisStore::connect_lazy`]).
    ///
    /// # Errors
    /// The client rejects the target, or no tokio runtime in the calling context.
    pub fn connect_target(target: &RedisTarget, cfg: RedisStoreConfig) -> Result<Self, StoreError> {
        let connect_timeout = cfg.timeout.max(Duration::from_millis(100));
        let conn = match target {
            RedisTarget::Standalone { url } => {
                let client = redis::Client::open(url.as_str()).map_err(StoreError::Setup)?;
                let mgr_cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(cfg.timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(10))
                    .set_max_delay(Duration::from_millis(200));
                Conn::Single(ConnectionManager::new_lazy_with_config(client, mgr_cfg).map_err(StoreError::Setup)?)
            }
            RedisTarget::Sentinel { sentinels, master, auth, db } => {
                let addrs = sentinels.iter().map(|(h, p)| ConnectionAddr::Tcp(h.clone(), *p));
                let mut b = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)
                    .map_err(StoreError::Setup)?
                    .set_client_to_redis_db(*db);
                if let Some(u) = &auth.username {
                    b = b.set_client_to_redis_username(u);
                }
                if let Some(p) = &auth.password {
                    b = b.set_client_to_redis_password(p);
                }
                let client = b.build().map_err(StoreError::Setup)?;
                Conn::Sentinel {
                    client: tokio::sync::Mutex::new(client),
                    conn: Lazy::new(),
                    cfg: AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(connect_timeout))
                        .set_response_timeout(Some(cfg.timeout)),
                }
            }
            RedisTarget::Cluster { nodes, auth } => {
                let seeds: Vec<ConnectionAddr> =
                    nodes.iter().map(|(h, p)| ConnectionAddr::Tcp(h.clone(), *p)).collect();
                let mut b = ClusterClientBuilder::new(seeds)
                    .connection_timeout(connect_timeout)
                    .response_timeout(cfg.timeout)
                    .retries(2)
                    .min_retry_wait(5)
                    .max_retry_wait(50);
                if let Some(u) = &auth.username {
                    b = b.username(u);
                }
                if let Some(p) = &auth.password {
                    b = b.password(p);
                }
                Conn::Cluster { client: b.build().map_err(StoreError::Setup)?, conn: Lazy::new() }
            }
        };
        Ok(Self {
            conn,
            breaker: CircuitBreaker::new(cfg.failure_threshold, cfg.cooldown),
            cfg,
            gcra: Script::new(GCRA_LUA),
            gcra_refund: Script::new(GCRA_REFUND_LUA),
            quota: Script::new(QUOTA_LUA),
            quota_refund: Script::new(QUOTA_REFUND_LUA),
        })
    }

    /// One script call on the deployment's connection: `EVALSHA`, and on `NOSCRIPT` a
    /// `SCRIPT LOAD` then `EVALSHA` again (in Cluster, the load goes to every node, so a
    /// node that restarted or was promoted learns the script on first use).
    async fn invoke<T: FromRedisValue>(&self, invocation: &ScriptInvocation<'_>) -> redis::RedisResult<T> {
        match &self.conn {
            Conn::Single(m) => invocation.invoke_async(&mut m.clone()).await,
            Conn::Sentinel { client, conn, cfg } => {
                // Boxed: the Sentinel connect future is deep enough to overflow the compiler's
                // `Send` check in the crates that spawn requests, and connecting is rare.
                let connect = || -> BoxedConnect<'_, MultiplexedConnection> {
                    Box::pin(async {
                        let mut client = client.lock().await;
                        client.get_async_connection_with_config(cfg).await
                    })
                };
                let (generation, mut c) = conn.get(connect).await?;
                let r = invocation.invoke_async(&mut c).await;
                if let Err(e) = &r
                    && connection_level(e)
                {
                    conn.reset(generation);
                }
                r
            }
            Conn::Cluster { client, conn } => {
                let connect = || -> BoxedConnect<'_, ClusterConnection> { Box::pin(client.get_async_connection()) };
                let (generation, mut c) = conn.get(connect).await?;
                let r = invocation.invoke_async(&mut c).await;
                if let Err(e) = &r
                    && (e.is_unrecoverable_error() || e.is_connection_refusal())
                {
                    conn.reset(generation);
                }
                r
            }
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &RedisStoreConfig {
        &self.cfg
    }

    /// The circuit breaker (for readiness reports and metrics).
    #[must_use]
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// `namespace:{key}`: the state key of one decision, e.g.
    /// `prod:{rl:per-consumer:consumer:c-42}`.
    ///
    /// The braces are a Redis Cluster hash tag: the slot is computed from `key` alone — the
    /// limit's name and the caller's stable ids (consumer, organization, credential, client IP,
    /// route, hashed header or claim), never a node id — so every gateway computes the same slot
    /// and reaches the same master. Every script call touches exactly this one key, so it can
    /// never be refused with `CROSSSLOT`; a future script touching several keys of one caller
    /// must give them the same tag. The namespace is outside the tag (it is the same for every
    /// key, so inside it would add nothing), and the first `{` is always ours: a `}` inside an id
    /// only shortens the tag to a prefix of the same stable key.
    pub(crate) fn full_key(&self, key: &str) -> String {
        let mut k = String::with_capacity(self.cfg.namespace.len() + 3 + key.len());
        k.push_str(&self.cfg.namespace);
        k.push_str(":{");
        k.push_str(key);
        k.push('}');
        k
    }

    pub(crate) fn gcra_script(&self) -> &Script {
        &self.gcra
    }
    pub(crate) fn gcra_refund_script(&self) -> &Script {
        &self.gcra_refund
    }
    pub(crate) fn quota_script(&self) -> &Script {
        &self.quota
    }
    pub(crate) fn quota_refund_script(&self) -> &Script {
        &self.quota_refund
    }

    /// Runs one script call through the breaker and the timeout. Never waits longer than the
    /// timeout; every failure is counted in `portcullis_ratelimit_store_errors_total{kind}`.
    pub(crate) async fn run<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
        now: Nanos,
    ) -> Result<T, StoreFailure> {
        let admit = self.breaker.admit(now);
        if admit == Admit::Skip {
            return Err(count(StoreFailure::CircuitOpen));
        }
        let probe = admit == Admit::Probe;
        let mut guard = ProbeGuard { breaker: &self.breaker, armed: probe };
        let result = tokio::time::timeout(self.cfg.timeout, self.invoke::<T>(invocation)).await;
        guard.armed = false;
        match result {
            Ok(Ok(v)) => {
                self.breaker.success();
                Ok(v)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "rate-limit store call failed");
                self.breaker.failure(now, probe);
                Err(count(StoreFailure::Error))
            }
            Err(_) => {
                self.breaker.failure(now, probe);
                Err(count(StoreFailure::Timeout))
            }
        }
    }
}

fn count(f: StoreFailure) -> StoreFailure {
    metrics::counter!("portcullis_ratelimit_store_errors_total", "kind" => f.label()).increment(1);
    f
}
