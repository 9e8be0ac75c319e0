//! [`LocalLimiter`]: GCRA state for many keys in one process, sharded, with bounded memory.

use crate::clock::Nanos;
use crate::gcra::{Decision, Gcra};
use crate::shard::{ShardedMap, Table};

/// Default bound on keys held (across all shards).
pub const DEFAULT_MAX_KEYS: usize = 1 << 20;

/// GCRA state (one TAT per key) for any number of limits; keys carry the limit name, so one
/// limiter serves every limit of a process.
///
/// Memory is bounded: a key at full capacity is the same as an absent key, so entries whose TAT
/// has passed are dropped for free. When a shard is still full after that, the entries closest to
/// full capacity are evicted (down to 7/8 of the shard), each counted in
/// `portcullis_ratelimit_local_evictions_total`; an evicted key that was still limited starts
/// again at full capacity. Size `max_keys` above the number of keys limited at once.
pub struct LocalLimiter {
    map: ShardedMap<u64>,
    max_per_shard: usize,
}

impl std::fmt::Debug for LocalLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLimiter")
            .field("shards", &self.map.shard_count())
            .field("max_per_shard", &self.max_per_shard)
            .finish_non_exhaustive()
    }
}

impl Default for LocalLimiter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_KEYS)
    }
}

impl LocalLimiter {
    /// A limiter holding at most about `max_keys` keys (64 shards; at least 8 keys per shard).
    #[must_use]
    pub fn new(max_keys: usize) -> Self {
        let map = ShardedMap::new();
        let max_per_shard = (max_keys / map.shard_count()).max(8);
        Self { map, max_per_shard }
    }

    /// Takes `cost` units for `key` under `gcra` at `now`. All calls for one key must use the same
    /// clock and the same `gcra`.
    pub fn check(&self, key: &str, gcra: &Gcra, cost: u32, now: Nanos) -> Decision {
        let (mut map, h) = self.map.lock(key);
        if let Some(tat) = map.get_mut(h, key) {
            let (decision, new_tat) = gcra.step(Some(*tat), now, cost);
            if let Some(t) = new_tat {
                *tat = t;
            }
            return decision;
        }
        let (decision, new_tat) = gcra.step(None, now, cost);
        if let Some(t) = new_tat {
            if map.len() >= self.max_per_shard {
                evict(&mut map, now, self.max_per_shard);
            }
            map.insert_new(h, key, t);
        }
        decision
    }

    /// Gives back `cost` units taken by an earlier allowed [`LocalLimiter::check`] (a later limit
    /// of the same request denied it).
    pub fn refund(&self, key: &str, gcra: &Gcra, cost: u32, now: Nanos) {
        let (mut map, h) = self.map.lock(key);
        if let Some(tat) = map.get_mut(h, key) {
            match gcra.refund(*tat, now, cost) {
                Some(t) => *tat = t,
                None => {
                    map.remove(h, key);
                }
            }
        }
    }

    /// Keys held now (for metrics and tests).
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every key at full capacity; returns how many were dropped. Optional: the limiter
    /// also does this by itself when a shard fills up.
    pub fn purge_idle(&self, now: Nanos) -> usize {
        (0..self.map.shard_count())
            .map(|i| {
                let mut map = self.map.lock_at(i);
                let before = map.len();
                map.retain(|tat| *tat > now.0);
                before - map.len()
            })
            .sum()
    }
}

/// Frees room in a full shard: idle keys first, then the keys closest to full capacity.
fn evict(map: &mut Table<u64>, now: Nanos, max: usize) {
    map.retain(|tat| *tat > now.0);
    let target = max - max / 8;
    if map.len() <= target {
        return;
    }
    let excess = map.len() - target;
    let mut tats: Vec<u64> = map.values().copied().collect();
    let (_, cut, _) = tats.select_nth_unstable(excess - 1);
    let cut = *cut;
    let mut evicted = 0usize;
    map.retain(|tat| {
        if *tat <= cut && evicted < excess {
            evicted += 1;
            false
        } else {
            true
        }
    });
    metrics::counter!("portcullis_ratelimit_local_evictions_total").increment(evicted as u64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keys_are_independent() {
        let l = LocalLimiter::default();
        let g = Gcra::new(1, Duration::from_secs(60), 2).unwrap();
        assert!(l.check("a", &g, 1, Nanos(0)).is_allow());
        assert!(l.check("a", &g, 1, Nanos(0)).is_allow());
        assert!(!l.check("a", &g, 1, Nanos(0)).is_allow());
        assert!(l.check("b", &g, 1, Nanos(0)).is_allow());
    }

    #[test]
    fn memory_is_bounded_and_idle_keys_go_first() {
        let l = LocalLimiter::new(64 * 16); // 16 per shard
        let g = Gcra::new(1, Duration::from_secs(1), 1).unwrap();
        for i in 0..10_000u64 {
            l.check(&format!("k{i}"), &g, 1, Nanos(0));
        }
        assert!(l.len() <= 64 * 16, "held {}", l.len());
        // Once every bucket has refilled, all state is idle and a purge empties the limiter.
        let held = l.len();
        assert_eq!(l.purge_idle(Nanos(2_000_000_000)), held);
        assert!(l.is_empty());
    }

    #[test]
    fn a_limited_key_survives_a_flood_of_new_keys_when_it_is_furthest_from_full() {
        let l = LocalLimiter::new(64 * 16);
        let strict = Gcra::new(1, Duration::from_secs(3600), 1).unwrap();
        let loose = Gcra::new(1000, Duration::from_secs(1), 1).unwrap();
        assert!(l.check("victim", &strict, 1, Nanos(0)).is_allow());
        for i in 0..5_000u64 {
            l.check(&format!("flood{i}"), &loose, 1, Nanos(0));
        }
        assert!(!l.check("victim", &strict, 1, Nanos(0)).is_allow(), "the hour-long state was kept");
    }

    #[test]
    fn refund_restores_a_unit() {
        let l = LocalLimiter::default();
        let g = Gcra::new(1, Duration::from_secs(60), 1).unwrap();
        assert!(l.check("a", &g, 1, Nanos(0)).is_allow());
        l.refund("a", &g, 1, Nanos(0));
        assert!(l.is_empty());
        assert!(l.check("a", &g, 1, Nanos(0)).is_allow());
    }
}
