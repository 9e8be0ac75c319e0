//! [`RedisLimiter`]: GCRA shared by every gateway through Redis, one atomic script per decision,
//! with optional local batching and a local fallback when the store fails.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Nanos;
use crate::gcra::{Decision, Gcra};
use crate::local::LocalLimiter;
use crate::shard::ShardedMap;
use crate::spec::OnStoreFailure;
use crate::store::RedisStore;

/// Local batching: a node reserves `size` units at once from Redis and spends them locally.
///
/// Over-admission bound (tested in `tests/redis_exactness.rs`): reserved units are taken from the
/// shared bucket when reserved, so the cluster never *reserves* more than the GCRA bound; a unit
/// reserved at time `r` and spent at `s` is what can shift. Units not spent within `max_hold` are
/// dropped, so every unit admitted in an interval `[a, b]` was reserved in `[a - max_hold, b]`:
/// admissions in any interval of length `L` are at most `burst + rate × (L + max_hold) / period`,
/// and also at most the exact bound plus the units held unspent at its start, at most
/// `nodes × (size - 1)` per key (a node has at most one batch reservation per key in flight;
/// concurrent requests meanwhile reserve only their own cost). The bound is tight: it is reached
/// when every node has just reserved a batch and spent one unit. The other side:
/// units dropped unspent, at most `size - 1` per node and key per `max_hold`, are lost to
/// everyone (under-admission). `RateLimit` header values in batch mode are the store's figures
/// at the last reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Units reserved per store call (2 or more to batch at all).
    pub size: u32,
    /// How long reserved units may wait locally before they are dropped.
    pub max_hold: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self { size: 10, max_hold: Duration::from_millis(250) }
    }
}

#[derive(Clone, Copy, Debug)]
struct Stash {
    units: u32,
    expires: Nanos,
    /// Store figures at reservation: units left there, and when its bucket is full again.
    remaining: u64,
    full_at: Nanos,
    /// A batch reservation for this key is in flight from this node.
    reserving: bool,
}

/// A GCRA limiter whose state lives in Redis, shared by every gateway of a cluster.
pub struct RedisLimiter {
    store: Arc<RedisStore>,
    fallback: LocalLimiter,
    batch: Option<(BatchConfig, ShardedMap<Stash>)>,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("store", &self.store)
            .field("batch", &self.batch.as_ref().map(|(c, _)| *c))
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// A limiter on `store`, one store call per decision.
    #[must_use]
    pub fn new(store: Arc<RedisStore>) -> Self {
        Self { store, fallback: LocalLimiter::default(), batch: None }
    }

    /// A limiter that reserves units in batches (see [`BatchConfig`] for the bound).
    #[must_use]
    pub fn with_batching(store: Arc<RedisStore>, batch: BatchConfig) -> Self {
        let batch = (batch.size > 1).then(|| (batch, ShardedMap::new()));
        Self { store, fallback: LocalLimiter::default(), batch }
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<RedisStore> {
        &self.store
    }

    /// Takes `cost` units for `key`. When the store fails, times out or its circuit is open:
    /// `Open` decides locally at this node's share of the limit, `Closed` answers
    /// [`Decision::StoreUnavailable`]. Never waits longer than the store timeout.
    pub async fn check(&self, key: &str, gcra: &Gcra, cost: u32, now: Nanos, on_failure: OnStoreFailure) -> Decision {
        if let Some((cfg, stash)) = &self.batch {
            let want = match take_from_stash(stash, key, cost, now) {
                Take::Taken(d) => return d,
                // One batch reservation per key and node at a time: concurrent requests reserve
                // just their own cost, so the stash never holds more than one batch.
                Take::Reserve => cfg.size.max(cost),
                Take::Direct => cost,
            };
            let mut guard = ReserveGuard { stash, key, armed: want != cost };
            let reply = self.reserve(key, gcra, cost, want, now).await;
            if guard.armed {
                guard.armed = false;
                finish_reservation(stash, key, reply.as_ref(), cost, now, cfg.max_hold);
            }
            return match reply {
                Some((_, decision)) => decision,
                None => self.fail(key, gcra, cost, now, on_failure),
            };
        }
        match self.reserve(key, gcra, cost, cost, now).await {
            Some((_, decision)) => decision,
            None => self.fail(key, gcra, cost, now, on_failure),
        }
    }

    /// Gives back `cost` units taken by an earlier allowed check (best effort; a failure is only
    /// counted). In batch mode the units return to the local stash.
    pub async fn refund(&self, key: &str, gcra: &Gcra, cost: u32, now: Nanos) {
        if let Some((_, stash)) = &self.batch {
            let (mut map, h) = stash.lock(key);
            if let Some(s) = map.get_mut(h, key)
                && s.expires > now
                && s.units > 0
            {
                s.units = s.units.saturating_add(cost);
                return;
            }
            drop(map);
        }
        let full = self.store.full_key(key);
        let mut inv = self.store.gcra_refund_script().key(&full);
        inv.arg(gcra.t_ns().div_ceil(1000)).arg(cost);
        let _ = self.store.run::<i64>(&inv, now).await;
        self.fallback.refund(key, &gcra.share(self.store.config().expected_nodes), cost, now);
    }

    /// One store call: `Some((granted, decision))`, or `None` when the store failed.
    async fn reserve(&self, key: &str, gcra: &Gcra, cost: u32, want: u32, now: Nanos) -> Option<(u32, Decision)> {
        let full = self.store.full_key(key);
        let mut inv = self.store.gcra_script().key(&full);
        // Microseconds in the store: the emission interval rounded up keeps rounding strict.
        inv.arg(gcra.t_ns().div_ceil(1000)).arg(gcra.burst()).arg(cost).arg(want);
        let reply: Vec<i64> = self.store.run(&inv, now).await.ok()?;
        let [granted, avail, retry_us, reset_us] = reply[..] else {
            tracing::warn!("unexpected rate-limit script reply");
            metrics::counter!("portcullis_ratelimit_store_errors_total", "kind" => "reply").increment(1);
            return None;
        };
        let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        let granted = u32::try_from(granted).unwrap_or(0);
        if granted == 0 {
            return Some((0, Decision::Deny { retry_after: us(retry_us), reset: us(reset_us) }));
        }
        let remaining = u64::try_from(avail).unwrap_or(0);
        Some((granted, Decision::Allow { remaining, reset: us(reset_us) }))
    }

    fn fail(&self, key: &str, gcra: &Gcra, cost: u32, now: Nanos, on_failure: OnStoreFailure) -> Decision {
        match on_failure {
            OnStoreFailure::Closed => {
                metrics::counter!("portcullis_ratelimit_store_fallback_total", "mode" => "closed").increment(1);
                Decision::StoreUnavailable
            }
            OnStoreFailure::Open => {
                metrics::counter!("portcullis_ratelimit_store_fallback_total", "mode" => "open").increment(1);
                self.fallback.check(key, &gcra.share(self.store.config().expected_nodes), cost, now)
            }
        }
    }
}

enum Take {
    Taken(Decision),
    Reserve,
    Direct,
}

fn take_from_stash(stash: &ShardedMap<Stash>, key: &str, cost: u32, now: Nanos) -> Take {
    let (mut map, h) = stash.lock(key);
    let s = map.get_or_insert_with(h, key, || Stash {
        units: 0,
        expires: now,
        remaining: 0,
        full_at: now,
        reserving: false,
    });
    if s.expires > now && s.units >= cost {
        s.units -= cost;
        return Take::Taken(Decision::Allow {
            remaining: s.remaining + u64::from(s.units),
            reset: s.full_at.since(now),
        });
    }
    if s.reserving {
        return Take::Direct;
    }
    // Units left are fewer than one request's cost, or stale: they are dropped.
    s.units = 0;
    s.reserving = true;
    Take::Reserve
}

/// Ends a batch reservation: the units granted beyond this request's cost become the stash.
fn finish_reservation(
    stash: &ShardedMap<Stash>,
    key: &str,
    reply: Option<&(u32, Decision)>,
    cost: u32,
    now: Nanos,
    hold: Duration,
) {
    let (mut map, h) = stash.lock(key);
    let entry = map.get_or_insert_with(h, key, || Stash {
        units: 0,
        expires: now,
        remaining: 0,
        full_at: now,
        reserving: false,
    });
    entry.reserving = false;
    if let Some(&(granted, Decision::Allow { remaining, reset })) = reply
        && granted > cost
    {
        entry.units = granted - cost;
        entry.expires = now.plus(hold);
        entry.remaining = remaining;
        entry.full_at = now.plus(reset);
    }
    // Bounded memory: entries idle past `max_hold` are stale and dropped in bulk.
    if map.len() > 4096 {
        map.retain(|s| s.expires > now || s.reserving);
    }
}

/// Clears the "reserving" mark if a reservation's future is dropped before it finishes.
struct ReserveGuard<'a> {
    stash: &'a ShardedMap<Stash>,
    key: &'a str,
    armed: bool,
}

impl Drop for ReserveGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let (mut map, h) = self.stash.lock(self.key);
            if let Some(s) = map.get_mut(h, self.key) {
                s.reserving = false;
            }
        }
    }
}
