//! A string-keyed map split into mutex-guarded shards, so threads touching different keys
//! rarely wait on each other.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};

const SHARDS: usize = 64;

/// One shard, padded so two shards never share a cache line.
#[repr(align(128))]
struct Shard<V> {
    map: Mutex<HashMap<Box<str>, V>>,
}

pub(crate) struct ShardedMap<V> {
    shards: Box<[Shard<V>]>,
    hasher: RandomState,
}

impl<V> ShardedMap<V> {
    pub(crate) fn new() -> Self {
        let shards = (0..SHARDS).map(|_| Shard { map: Mutex::new(HashMap::new()) }).collect();
        Self { shards, hasher: RandomState::new() }
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub(crate) fn index(&self, key: &str) -> usize {
        // The high half of the hash picks the shard; each map hashes again with its own keys.
        ((self.hasher.hash_one(key) >> 32) as usize) % self.shards.len()
    }

    pub(crate) fn lock_at(&self, index: usize) -> MutexGuard<'_, HashMap<Box<str>, V>> {
        // A panic while holding a shard cannot leave a map half-updated in a way that matters
        // here (each update is one insert or assignment), so a poisoned lock is still used.
        self.shards[index % self.shards.len()].map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn lock(&self, key: &str) -> MutexGuard<'_, HashMap<Box<str>, V>> {
        self.lock_at(self.index(key))
    }

    pub(crate) fn len(&self) -> usize {
        (0..self.shards.len()).map(|i| self.lock_at(i).len()).sum()
    }
}
