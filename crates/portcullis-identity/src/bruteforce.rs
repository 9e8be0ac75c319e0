//! Throttling of failed authentications: progressive delay, then lockout.
//!
//! Failures are counted per key, and a key is one of three kinds, each with its own
//! [`Policy`]: the client IP (IPv6 by /64, since one host gets a whole /64), a credential's
//! non-secret prefix (an API key hint, an HMAC key id), and a username. Counting is in a fixed
//! window that starts with the first failure. With `n` failures in the window:
//!
//! - `n < delay_after`: [`Verdict::Allow`];
//! - `n ≥ delay_after`: [`Verdict::Delay`] of `min(base_delay × 2^(n − delay_after), max_delay)`;
//! - the failure that brings `n` to `lockout_after` locks the key for `lockout`
//!   ([`Verdict::Locked`]); when the lock ends the key starts afresh.
//!
//! A success clears the key. Time is injected: `now_ms` is milliseconds since the Unix epoch (any
//! fixed epoch works if every caller of one tracker uses it). Storage sits behind
//! [`FailureStore`] (four operations that map onto Redis `INCR`/`PEXPIRE`, `SET … PX`, `DEL`) so a
//! shared store can replace the in-memory [`MemoryFailureStore`], which holds at most
//! `max_keys` keys per kind (a spray of IPs cannot push usernames out) and evicts the key whose
//! last failure is oldest. Every call is amortised O(1).
//!
//! ```
//! use std::net::IpAddr;
//! use portcullis_identity::bruteforce::{FailureKey, FailureTracker, Policies, Verdict};
//! let tracker = FailureTracker::new(Policies::default());
//! let ip = FailureKey::client_ip("203.0.113.7".parse::<IpAddr>().unwrap());
//! let user = FailureKey::username("Alice");
//! let now = 1_767_225_600_000;
//! assert_eq!(tracker.check_all(&[ip.clone(), user.clone()], now), Verdict::Allow);
//! for _ in 0..3 {
//!     tracker.record_failure_all(&[ip.clone(), user.clone()], now); // after a failed login
//! }
//! assert!(matches!(tracker.check_all(&[ip.clone(), user.clone()], now), Verdict::Delay(_)));
//! tracker.record_success(&user); // after a successful one
//! ```

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

const MAX_VALUE_BYTES: usize = 256;

/// What a [`FailureKey`] identifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyKind {
    /// The client's IP address (IPv6: its /64).
    ClientIp,
    /// A credential's non-secret prefix or id.
    CredentialPrefix,
    /// A username (compared case-insensitively).
    Username,
}

impl KeyKind {
    fn index(self) -> usize {
        match self {
            KeyKind::ClientIp => 0,
            KeyKind::CredentialPrefix => 1,
            KeyKind::Username => 2,
        }
    }

    /// A short stable name, for store key prefixes and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::ClientIp => "ip",
            KeyKind::CredentialPrefix => "cred",
            KeyKind::Username => "user",
        }
    }
}

/// A throttled key: a kind and a normalised value (at most 256 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FailureKey {
    kind: KeyKind,
    value: Box<str>,
}

fn capped(s: &str) -> &str {
    if s.len() <= MAX_VALUE_BYTES {
        return s;
    }
    let mut end = MAX_VALUE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

impl FailureKey {
    /// The client address; IPv4-mapped IPv6 counts as IPv4, other IPv6 by its /64.
    pub fn client_ip(ip: IpAddr) -> Self {
        let value = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = v6.segments();
                    format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
        };
        Self { kind: KeyKind::ClientIp, value: value.into() }
    }

    /// A credential's non-secret prefix or id (never the secret part).
    pub fn credential_prefix(prefix: &str) -> Self {
        Self { kind: KeyKind::CredentialPrefix, value: capped(prefix).into() }
    }

    /// A username, lower-cased so that case variants share one counter.
    pub fn username(name: &str) -> Self {
        Self { kind: KeyKind::Username, value: capped(&name.to_lowercase()).into() }
    }

    /// The kind.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The normalised value.
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// Thresholds for one kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Failures are counted in a window of this length from the first one.
    pub window: Duration,
    /// From this many failures on, answers are delayed (0: never).
    pub delay_after: u32,
    /// The first delay; it doubles with each further failure.
    pub base_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// This many failures lock the key (0: never).
    pub lockout_after: u32,
    /// How long a lock lasts.
    pub lockout: Duration,
    /// The in-memory store keeps at most this many keys of this kind.
    pub max_keys: usize,
}

impl Policy {
    /// The verdict for a key whose record reads `r` at `now_ms`. Pure: a tracker over an
    /// asynchronous shared store (Redis) calls this and [`Policy::lock_until`] itself.
    pub fn verdict(&self, r: FailureRecord, now_ms: u64) -> Verdict {
        if r.locked_until_ms > now_ms {
            return Verdict::Locked { until: r.locked_until_ms };
        }
        if self.delay_after == 0 || r.failures < self.delay_after {
            return Verdict::Allow;
        }
        let exp = r.failures - self.delay_after;
        let factor = if exp >= 31 { u32::MAX } else { 1u32 << exp };
        Verdict::Delay(self.base_delay.saturating_mul(factor).min(self.max_delay))
    }

    /// After a failure brought the record to `r`: the time until which the key must now be
    /// locked, if this failure reached the lockout threshold.
    pub fn lock_until(&self, r: FailureRecord, now_ms: u64) -> Option<u64> {
        (self.lockout_after > 0 && r.failures >= self.lockout_after).then(|| now_ms.saturating_add(ms(self.lockout)))
    }
}

/// One [`Policy`] per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policies {
    /// For [`KeyKind::ClientIp`]: lenient, since many users may share one address.
    pub client_ip: Policy,
    /// For [`KeyKind::CredentialPrefix`].
    pub credential_prefix: Policy,
    /// For [`KeyKind::Username`]. A lockout here can be triggered by anyone who knows the name:
    /// keep it short.
    pub username: Policy,
}

impl Default for Policies {
    fn default() -> Self {
        let fifteen = Duration::from_secs(15 * 60);
        Self {
            client_ip: Policy {
                window: fifteen,
                delay_after: 10,
                base_delay: Duration::from_millis(250),
                max_delay: Duration::from_secs(8),
                lockout_after: 100,
                lockout: fifteen,
                max_keys: 100_000,
            },
            credential_prefix: Policy {
                window: fifteen,
                delay_after: 3,
                base_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(16),
                lockout_after: 20,
                lockout: fifteen,
                max_keys: 100_000,
            },
            username: Policy {
                window: fifteen,
                delay_after: 3,
                base_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(16),
                lockout_after: 10,
                lockout: Duration::from_secs(5 * 60),
                max_keys: 100_000,
            },
        }
    }
}

impl Policies {
    /// The policy for a kind.
    pub fn for_kind(&self, kind: KeyKind) -> &Policy {
        match kind {
            KeyKind::ClientIp => &self.client_ip,
            KeyKind::CredentialPrefix => &self.credential_prefix,
            KeyKind::Username => &self.username,
        }
    }
}

/// What to do with an authentication attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// Go ahead, but answer no sooner than this (or answer 429 with `Retry-After`).
    Delay(Duration),
    /// Refuse without checking the credential until this time (ms since the epoch).
    Locked {
        /// When the lock ends, ms since the epoch.
        until: u64,
    },
}

impl Verdict {
    fn severity(self) -> (u8, u64) {
        match self {
            Verdict::Allow => (0, 0),
            Verdict::Delay(d) => (1, u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            Verdict::Locked { until } => (2, until),
        }
    }

    /// The more severe of two verdicts (a lock beats a delay beats allow; longer beats shorter).
    pub fn max(self, other: Verdict) -> Verdict {
        if other.severity() > self.severity() { other } else { self }
    }
}

/// A key's state as a store sees it. An absent or expired key reads as all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureRecord {
    /// Failures in the current window.
    pub failures: u32,
    /// When the current window ends, ms since the epoch.
    pub window_ends_ms: u64,
    /// When the lock ends, ms since the epoch (0: not locked).
    pub locked_until_ms: u64,
}

/// Where failure counts live, for a synchronous store. Implementations must be safe to share
/// between threads. A store that needs `.await` (Redis) keeps the same four operations in its own
/// async type and takes its decisions from [`Policy::verdict`] and [`Policy::lock_until`].
pub trait FailureStore: Send + Sync {
    /// The key's record at `now_ms`; failures of an ended window read as 0.
    fn load(&self, key: &FailureKey, now_ms: u64) -> FailureRecord;
    /// Counts one failure (starting a window of `window` if none is running) and returns the
    /// record after it.
    fn add_failure(&self, key: &FailureKey, now_ms: u64, window: Duration) -> FailureRecord;
    /// Locks the key until `until_ms` and resets its failure count.
    fn lock(&self, key: &FailureKey, until_ms: u64);
    /// Forgets the key.
    fn clear(&self, key: &FailureKey);
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<FailureKey, (FailureRecord, u64)>,
    // Keys by last failure, oldest first; entries whose sequence number no longer matches the
    // map are stale and skipped.
    order: VecDeque<(u64, FailureKey)>,
    next_seq: u64,
}

impl Shard {
    fn touch(&mut self, key: &FailureKey, record: FailureRecord, cap: usize) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let is_new = self.map.insert(key.clone(), (record, seq)).is_none();
        self.order.push_back((seq, key.clone()));
        if is_new {
            while self.map.len() > cap {
                let Some((s, k)) = self.order.pop_front() else { break };
                if self.map.get(&k).is_some_and(|(_, cur)| *cur == s) {
                    self.map.remove(&k);
                }
            }
        }
        if self.order.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.order.retain(|(s, k)| map.get(k).is_some_and(|(_, cur)| cur == s));
        }
    }
}

/// The in-process [`FailureStore`]: bounded per kind, oldest-failure-first eviction.
#[derive(Debug)]
pub struct MemoryFailureStore {
    shards: [Mutex<Shard>; 3],
    caps: [usize; 3],
}

impl MemoryFailureStore {
    /// A store holding at most each policy's `max_keys` keys of its kind.
    pub fn new(policies: &Policies) -> Self {
        let cap = |k| policies.for_kind(k).max_keys.max(1);
        Self {
            shards: Default::default(),
            caps: [cap(KeyKind::ClientIp), cap(KeyKind::CredentialPrefix), cap(KeyKind::Username)],
        }
    }

    fn shard(&self, kind: KeyKind) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[kind.index()].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keys currently held for a kind (including ones that expired but were not yet dropped).
    pub fn len(&self, kind: KeyKind) -> usize {
        self.shard(kind).map.len()
    }
}

fn live(mut r: FailureRecord, now_ms: u64) -> FailureRecord {
    if r.window_ends_ms <= now_ms {
        r.failures = 0;
    }
    if r.locked_until_ms <= now_ms {
        r.locked_until_ms = 0;
    }
    r
}

impl FailureStore for MemoryFailureStore {
    fn load(&self, key: &FailureKey, now_ms: u64) -> FailureRecord {
        self.shard(key.kind).map.get(key).map(|(r, _)| live(*r, now_ms)).unwrap_or_default()
    }

    fn add_failure(&self, key: &FailureKey, now_ms: u64, window: Duration) -> FailureRecord {
        let mut shard = self.shard(key.kind);
        let mut r = shard.map.get(key).map(|(r, _)| live(*r, now_ms)).unwrap_or_default();
        if r.failures == 0 {
            r.window_ends_ms = now_ms.saturating_add(ms(window));
        }
        r.failures = r.failures.saturating_add(1);
        shard.touch(key, r, self.caps[key.kind.index()]);
        r
    }

    fn lock(&self, key: &FailureKey, until_ms: u64) {
        let mut shard = self.shard(key.kind);
        let r = FailureRecord { failures: 0, window_ends_ms: 0, locked_until_ms: until_ms };
        shard.touch(key, r, self.caps[key.kind.index()]);
    }

    fn clear(&self, key: &FailureKey) {
        // The order queue keeps a stale entry; it is skipped or compacted later.
        self.shard(key.kind).map.remove(key);
    }
}

/// Decides on attempts from recorded failures. See the module docs.
#[derive(Debug)]
pub struct FailureTracker<S = MemoryFailureStore> {
    policies: Policies,
    store: S,
}

impl FailureTracker<MemoryFailureStore> {
    /// A tracker with an in-memory store.
    pub fn new(policies: Policies) -> Self {
        Self { store: MemoryFailureStore::new(&policies), policies }
    }
}

impl<S: FailureStore> FailureTracker<S> {
    /// A tracker over another store (e.g. a shared one).
    pub fn with_store(policies: Policies, store: S) -> Self {
        Self { policies, store }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The verdict for an attempt under `key` at `now_ms`.
    pub fn check(&self, key: &FailureKey, now_ms: u64) -> Verdict {
        self.policies.for_kind(key.kind).verdict(self.store.load(key, now_ms), now_ms)
    }

    /// The most severe verdict over several keys (IP, credential, username of one attempt).
    pub fn check_all(&self, keys: &[FailureKey], now_ms: u64) -> Verdict {
        keys.iter().fold(Verdict::Allow, |v, k| v.max(self.check(k, now_ms)))
    }

    /// Counts a failed attempt and returns the verdict for the next one.
    pub fn record_failure(&self, key: &FailureKey, now_ms: u64) -> Verdict {
        let policy = self.policies.for_kind(key.kind);
        let current = self.store.load(key, now_ms);
        if current.locked_until_ms > now_ms {
            // Attempts during a lock are refused before any check; they do not extend it.
            return Verdict::Locked { until: current.locked_until_ms };
        }
        let r = self.store.add_failure(key, now_ms, policy.window);
        if let Some(until) = policy.lock_until(r, now_ms) {
            self.store.lock(key, until);
            return Verdict::Locked { until };
        }
        policy.verdict(r, now_ms)
    }

    /// Counts a failure under every key; returns the most severe resulting verdict.
    pub fn record_failure_all(&self, keys: &[FailureKey], now_ms: u64) -> Verdict {
        keys.iter().fold(Verdict::Allow, |v, k| v.max(self.record_failure(k, now_ms)))
    }

    /// Clears a key after a successful authentication.
    pub fn record_success(&self, key: &FailureKey) {
        self.store.clear(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_queue_stays_compact_under_churn() {
        let policies = Policies::default();
        let store = MemoryFailureStore::new(&policies);
        let k = FailureKey::username("u");
        for i in 0..10_000 {
            store.add_failure(&k, i, Duration::from_secs(60));
            if i % 2 == 0 {
                store.clear(&k);
            }
        }
        let shard = store.shard(KeyKind::Username);
        assert!(shard.order.len() <= 2 * shard.map.len() + 65, "{}", shard.order.len());
    }

    #[test]
    fn long_values_are_capped_on_a_char_boundary() {
        let k = FailureKey::username(&"é".repeat(200));
        assert!(k.value().len() <= MAX_VALUE_BYTES);
        assert!(k.value().chars().all(|c| c == 'é'));
    }
}
