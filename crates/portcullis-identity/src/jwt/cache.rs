//! A bounded map from SHA-256(token) to a verification result, each entry valid until a
//! deadline. Keyed by the full 32-byte digest, so a hit means the same token bytes (a collision
//! would need a SHA-256 collision); the token itself is never stored.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use ring::digest;

/// The cache key for a token.
pub(crate) fn token_key(token: &str) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

struct Entry<V> {
    value: V,
    until: SystemTime,
    generation: u64,
}

/// Bounded TTL cache. When full, expired entries are swept; if that is not enough, arbitrary
/// entries are dropped down to 7/8 of the capacity, so the sweep cost is amortised.
pub(crate) struct TtlCache<V> {
    map: Mutex<HashMap<[u8; 32], Entry<V>>>,
    capacity: usize,
}

impl<V: Clone> TtlCache<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { map: Mutex::new(HashMap::new()), capacity }
    }

    /// The value for `key` if it is still valid at `now` and was stored under `generation`.
    pub(crate) fn get(&self, key: &[u8; 32], now: SystemTime, generation: u64) -> Option<V> {
        if self.capacity == 0 {
            return None;
        }
        let map = self.map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = map.get(key)?;
        (now < entry.until && entry.generation == generation).then(|| entry.value.clone())
    }

    /// Stores `value` until `until`.
    pub(crate) fn insert(&self, key: [u8; 32], value: V, until: SystemTime, generation: u64, now: SystemTime) {
        if self.capacity == 0 || until <= now {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() >= self.capacity && !map.contains_key(&key) {
            map.retain(|_, e| e.until > now);
            if map.len() >= self.capacity {
                let target = self.capacity - self.capacity / 8 - 1;
                let excess = map.len().saturating_sub(target);
                let victims: Vec<[u8; 32]> = map.keys().take(excess).copied().collect();
                for v in victims {
                    map.remove(&v);
                }
            }
        }
        map.insert(key, Entry { value, until, generation });
    }

    /// How many entries are held (valid or not yet swept).
    pub(crate) fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn entries_expire_are_bounded_and_respect_generation() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let cache = TtlCache::new(16);
        let k = token_key("a");
        cache.insert(k, 1, t0 + Duration::from_secs(10), 0, t0);
        assert_eq!(cache.get(&k, t0, 0), Some(1));
        assert_eq!(cache.get(&k, t0 + Duration::from_secs(10), 0), None, "expired at the deadline");
        assert_eq!(cache.get(&k, t0, 1), None, "a key-set change invalidates");
        for i in 0..100 {
            cache.insert(token_key(&i.to_string()), i, t0 + Duration::from_secs(10), 0, t0);
            assert!(cache.len() <= 16);
        }
        cache.insert(token_key("past"), 5, t0, 0, t0);
        assert_eq!(cache.get(&token_key("past"), t0, 0), None);
        assert_ne!(token_key("a"), token_key("b"));
    }
}
