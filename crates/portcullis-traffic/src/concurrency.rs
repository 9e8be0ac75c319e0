//! In-flight limits: [`ConcurrencyLimiter`] per key (e.g. per consumer) and [`InflightGate`], a
//! process-wide cap that sheds low-priority work first. Both hand out RAII permits released on
//! drop, so an early return, an error or a cancelled request can never leak a slot.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::shard::ShardedMap;

/// Refused: the key already has `limit` requests in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{limit} requests already in flight")]
pub struct ConcurrencyDenied {
    /// The limit that was reached.
    pub limit: u32,
}

/// At most `limit` requests in flight per key, in this process. Memory holds only keys with
/// requests in flight (an entry goes when its last permit drops).
#[derive(Clone)]
pub struct ConcurrencyLimiter {
    inner: Arc<ShardedMap<u32>>,
}

impl std::fmt::Debug for ConcurrencyLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConcurrencyLimiter").field("keys", &self.inner.len()).finish()
    }
}

impl Default for ConcurrencyLimiter {
    fn default() -> Self {
        Self::new()
    }
}

/// One in-flight slot of a key; dropping it frees the slot.
#[must_use = "the slot is released when the permit is dropped"]
pub struct ConcurrencyPermit {
    inner: Arc<ShardedMap<u32>>,
    key: Box<str>,
}

impl std::fmt::Debug for ConcurrencyPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConcurrencyPermit").finish_non_exhaustive()
    }
}

impl ConcurrencyLimiter {
    /// An empty limiter.
    #[must_use]
    pub fn new() -> Self {
        Self { inner: Arc::new(ShardedMap::new()) }
    }

    /// Takes a slot for `key` if fewer than `limit` are in flight.
    ///
    /// # Errors
    /// [`ConcurrencyDenied`] when `limit` are already in flight.
    pub fn try_acquire(&self, key: &str, limit: u32) -> Result<ConcurrencyPermit, ConcurrencyDenied> {
        let (mut map, h) = self.inner.lock(key);
        if let Some(n) = map.get_mut(h, key) {
            if *n >= limit {
                return Err(ConcurrencyDenied { limit });
            }
            *n += 1;
        } else {
            if limit == 0 {
                return Err(ConcurrencyDenied { limit });
            }
            map.insert_new(h, key, 1);
        }
        drop(map);
        Ok(ConcurrencyPermit { inner: Arc::clone(&self.inner), key: key.into() })
    }

    /// Requests in flight for `key`.
    #[must_use]
    pub fn in_flight(&self, key: &str) -> u32 {
        let (map, h) = self.inner.lock(key);
        map.get(h, key).copied().unwrap_or(0)
    }

    /// Keys with requests in flight.
    #[must_use]
    pub fn keys(&self) -> usize {
        self.inner.len()
    }
}

impl Drop for ConcurrencyPermit {
    fn drop(&mut self) {
        let (mut map, h) = self.inner.lock(&self.key);
        if let Some(n) = map.get_mut(h, &self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(h, &self.key);
            }
        }
    }
}

/// How much a request matters when the gateway sheds load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Priority {
    /// Shed first: anonymous or best-effort traffic.
    Low,
    /// Everything else.
    Normal,
}

/// A process-wide in-flight cap. `Normal` requests are admitted up to `max`; `Low` ones only
/// while fewer than `shed_low_at` are in flight, so under overload best-effort traffic is shed
/// before the cap refuses everyone.
#[derive(Clone, Debug)]
pub struct InflightGate {
    inner: Arc<GateInner>,
}

#[derive(Debug)]
struct GateInner {
    in_flight: AtomicUsize,
    max: usize,
    shed_low_at: usize,
}

/// One slot of the gate; dropping it frees the slot.
#[must_use = "the slot is released when the permit is dropped"]
#[derive(Debug)]
pub struct InflightPermit {
    inner: Arc<GateInner>,
}

/// Refused by the [`InflightGate`]: the gateway is shedding load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("load shed: {in_flight} requests in flight")]
pub struct LoadShed {
    /// Requests in flight when refused.
    pub in_flight: usize,
}

impl InflightGate {
    /// A gate admitting `max` requests, low-priority ones only below `shed_low_at` (capped at
    /// `max`).
    #[must_use]
    pub fn new(max: usize, shed_low_at: usize) -> Self {
        Self { inner: Arc::new(GateInner { in_flight: AtomicUsize::new(0), max, shed_low_at: shed_low_at.min(max) }) }
    }

    /// Takes a slot.
    ///
    /// # Errors
    /// [`LoadShed`] when the cap for `priority` is reached (counted in
    /// `portcullis_load_shed_total`).
    pub fn try_enter(&self, priority: Priority) -> Result<InflightPermit, LoadShed> {
        let cap = match priority {
            Priority::Low => self.inner.shed_low_at,
            Priority::Normal => self.inner.max,
        };
        let mut cur = self.inner.in_flight.load(Ordering::Relaxed);
        loop {
            if cur >= cap {
                metrics::counter!("portcullis_load_shed_total").increment(1);
                return Err(LoadShed { in_flight: cur });
            }
            match self.inner.in_flight.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Ok(InflightPermit { inner: Arc::clone(&self.inner) }),
                Err(seen) => cur = seen,
            }
        }
    }

    /// Requests in flight.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Relaxed)
    }
}

impl Drop for InflightPermit {
    fn drop(&mut self) {
        self.inner.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_key_limit_and_release_on_drop() {
        let c = ConcurrencyLimiter::new();
        let a = c.try_acquire("c1", 2).unwrap();
        let b = c.try_acquire("c1", 2).unwrap();
        assert_eq!(c.try_acquire("c1", 2).unwrap_err(), ConcurrencyDenied { limit: 2 });
        let other = c.try_acquire("c2", 2).unwrap();
        drop(a);
        let again = c.try_acquire("c1", 2).unwrap();
        assert_eq!(c.in_flight("c1"), 2);
        drop((b, again, other));
        assert_eq!(c.keys(), 0, "no memory held once idle");
        assert!(c.try_acquire("c3", 0).is_err());
    }

    #[test]
    fn permits_are_released_across_threads() {
        let c = ConcurrencyLimiter::new();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        if let Ok(p) = c.try_acquire("k", 3) {
                            assert!(c.in_flight("k") <= 3);
                            drop(p);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(c.in_flight("k"), 0);
    }

    #[test]
    fn gate_sheds_low_priority_first() {
        let g = InflightGate::new(3, 1);
        let low = g.try_enter(Priority::Low).unwrap();
        assert!(g.try_enter(Priority::Low).is_err(), "low priority shed at 1 in flight");
        let n1 = g.try_enter(Priority::Normal).unwrap();
        let n2 = g.try_enter(Priority::Normal).unwrap();
        assert_eq!(g.try_enter(Priority::Normal).unwrap_err(), LoadShed { in_flight: 3 });
        drop((low, n1, n2));
        assert_eq!(g.in_flight(), 0);
        assert!(g.try_enter(Priority::Low).is_ok());
    }
}
