//! A string-keyed map split into mutex-guarded shards, so threads touching different keys
//! rarely wait on each other. A key is hashed once (SipHash with a per-process random key, so
//! attacker-chosen keys cannot be aimed at one bucket): the high bits pick the shard, the full
//! hash places the key in the shard's table.

use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};

use hashbrown::HashTable;

const SHARDS: usize = 64;

/// One shard's entries.
pub(crate) struct Table<V> {
    entries: HashTable<(Box<str>, V)>,
    hasher: RandomState,
}

impl<V> Table<V> {
    pub(crate) fn get(&self, hash: u64, key: &str) -> Option<&V> {
        self.entries.find(hash, |e| &*e.0 == key).map(|e| &e.1)
    }

    pub(crate) fn get_mut(&mut self, hash: u64, key: &str) -> Option<&mut V> {
        self.entries.find_mut(hash, |e| &*e.0 == key).map(|e| &mut e.1)
    }

    /// Inserts a key known to be absent.
    pub(crate) fn insert_new(&mut self, hash: u64, key: &str, value: V) -> &mut V {
        let hasher = &self.hasher;
        &mut self.entries.insert_unique(hash, (key.into(), value), |e| hasher.hash_one(&*e.0)).into_mut().1
    }

    pub(crate) fn get_or_insert_with(&mut self, hash: u64, key: &str, make: impl FnOnce() -> V) -> &mut V {
        let hasher = &self.hasher;
        let entry = self.entries.entry(hash, |e| &*e.0 == key, |e| hasher.hash_one(&*e.0));
        &mut entry.or_insert_with(|| (key.into(), make())).into_mut().1
    }

    pub(crate) fn remove(&mut self, hash: u64, key: &str) -> Option<V> {
        self.entries.find_entry(hash, |e| &*e.0 == key).ok().map(|e| e.remove().0.1)
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&mut V) -> bool) {
        self.entries.retain(|e| keep(&mut e.1));
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|e| &e.1)
    }
}

/// One shard, padded so two shards never share a cache line.
#[repr(align(128))]
struct Shard<V> {
    table: Mutex<Table<V>>,
}

pub(crate) struct ShardedMap<V> {
    shards: Box<[Shard<V>]>,
    hasher: RandomState,
}

impl<V> ShardedMap<V> {
    pub(crate) fn new() -> Self {
        let hasher = RandomState::new();
        let shards = (0..SHARDS)
            .map(|_| Shard { table: Mutex::new(Table { entries: HashTable::new(), hasher: hasher.clone() }) })
            .collect();
        Self { shards, hasher }
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub(crate) fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(crate) fn lock_at(&self, index: usize) -> MutexGuard<'_, Table<V>> {
        // Each update under the lock is one insert, removal or assignment, so a panic elsewhere
        // cannot leave a table half-updated: a poisoned lock is still used.
        self.shards[index % self.shards.len()].table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks the shard of `key`; returns the guard and the key's hash for the table calls.
    pub(crate) fn lock(&self, key: &str) -> (MutexGuard<'_, Table<V>>, u64) {
        let hash = self.hash(key);
        // Bits 32..38 pick the shard: the table uses the low bits for the bucket and the top 7 for
        // its tag, so a shard's keys still spread evenly inside its table.
        (self.lock_at((hash >> 32) as usize & (SHARDS - 1)), hash)
    }

    pub(crate) fn len(&self) -> usize {
        (0..self.shards.len()).map(|i| self.lock_at(i).len()).sum()
    }
}
