//! [`RedisStore`]: the shared store of a gateway cluster. One connection manager, one circuit
//! breaker, a per-call timeout and the Lua scripts every decision runs (EVALSHA, reloaded on
//! NOSCRIPT by [`redis::Script`]).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Script, ScriptInvocation};

use crate::breaker::{Admit, CircuitBreaker};
use crate::clock::Nanos;
use crate::error::StoreError;

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
    conn: ConnectionManager,
    cfg: RedisStoreConfig,
    breaker: CircuitBreaker,
    gcra: Script,
    gcra_refund: Script,
    quota: Script,
    quota_refund: Script,
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
    /// A store for `url` (`redis://host:port/db`). Connects lazily: a Redis that is down at start
    /// is not an error, its calls fail (and fall back) until it comes up.
    ///
    /// # Errors
    /// A URL the client rejects, or no tokio runtime in the calling context.
    pub fn connect_lazy(url: &str, cfg: RedisStoreConfig) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(StoreError::Setup)?;
        let mgr_cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.timeout.max(Duration::from_millis(100))))
            .set_response_timeout(Some(cfg.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, mgr_cfg).map_err(StoreError::Setup)?;
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

    /// `{namespace}:{key}`.
    pub(crate) fn full_key(&self, key: &str) -> String {
        let mut k = String::with_capacity(self.cfg.namespace.len() + 1 + key.len());
        k.push_str(&self.cfg.namespace);
        k.push(':');
        k.push_str(key);
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
        let mut conn = self.conn.clone();
        let result = tokio::time::timeout(self.cfg.timeout, invocation.invoke_async::<T>(&mut conn)).await;
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
