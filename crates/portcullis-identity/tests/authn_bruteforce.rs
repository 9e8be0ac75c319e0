//! Failed-authentication throttling: thresholds, delay growth, lockout and its end, reset on
//! success, bounded memory, independent kinds. Time is injected (milliseconds).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]

use std::net::IpAddr;
use std::time::Duration;

use portcullis_identity::bruteforce::{
    FailureKey, FailureStore, FailureTracker, KeyKind, MemoryFailureStore, Policies, Policy, Verdict,
};

const T0: u64 = 1_767_225_600_000;

fn policy() -> Policy {
    Policy {
        window: Duration::from_secs(60),
        delay_after: 3,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(1000),
        lockout_after: 8,
        lockout: Duration::from_secs(300),
        max_keys: 1000,
    }
}

fn policies() -> Policies {
    Policies { client_ip: policy(), credential_prefix: policy(), username: policy() }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn below_the_threshold_attempts_are_allowed_then_delays_double_up_to_the_cap() {
    let t = FailureTracker::new(policies());
    let k = FailureKey::username("alice");
    assert_eq!(t.check(&k, T0), Verdict::Allow);
    assert_eq!(t.record_failure(&k, T0), Verdict::Allow);
    assert_eq!(t.record_failure(&k, T0), Verdict::Allow);
    assert_eq!(t.check(&k, T0), Verdict::Allow, "2 failures < delay_after");
    let expected = [100, 200, 400, 800, 1000];
    for want in expected {
        let v = t.record_failure(&k, T0 + 1);
        assert_eq!(v, Verdict::Delay(ms(want)));
        assert_eq!(t.check(&k, T0 + 1), Verdict::Delay(ms(want)));
    }
}

#[test]
fn enough_failures_lock_the_key_until_the_lock_ends_then_it_starts_afresh() {
    let t = FailureTracker::new(policies());
    let k = FailureKey::credential_prefix("pc_live_AbCd");
    for _ in 0..7 {
        assert!(!matches!(t.record_failure(&k, T0), Verdict::Locked { .. }));
    }
    let until = T0 + 300_000;
    assert_eq!(t.record_failure(&k, T0), Verdict::Locked { until });
    assert_eq!(t.check(&k, T0 + 299_999), Verdict::Locked { until });
    assert_eq!(t.record_failure(&k, T0 + 1000), Verdict::Locked { until }, "failures during a lock do not extend it");
    assert_eq!(t.check(&k, until), Verdict::Allow, "lock over: fresh start");
    assert_eq!(t.record_failure(&k, until), Verdict::Allow);
}

#[test]
fn the_window_expires_failures() {
    let t = FailureTracker::new(policies());
    let k = FailureKey::username("bob");
    for _ in 0..4 {
        t.record_failure(&k, T0);
    }
    assert_eq!(t.check(&k, T0 + 59_999), Verdict::Delay(ms(200)));
    assert_eq!(t.check(&k, T0 + 60_000), Verdict::Allow, "window of 60 s from the first failure");
    assert_eq!(t.record_failure(&k, T0 + 60_000), Verdict::Allow, "a new window");
}

#[test]
fn success_clears_the_key() {
    let t = FailureTracker::new(policies());
    let k = FailureKey::username("carol");
    for _ in 0..5 {
        t.record_failure(&k, T0);
    }
    assert!(matches!(t.check(&k, T0), Verdict::Delay(_)));
    t.record_success(&k);
    assert_eq!(t.check(&k, T0), Verdict::Allow);
    assert_eq!(t.record_failure(&k, T0), Verdict::Allow, "counting starts again from zero");
}

#[test]
fn kinds_and_keys_are_independent_and_each_kind_has_its_own_threshold() {
    let mut p = policies();
    p.client_ip.delay_after = 10;
    p.username.delay_after = 2;
    let t = FailureTracker::new(p);
    let ip = FailureKey::client_ip("198.51.100.9".parse().unwrap());
    let user = FailureKey::username("dave");
    let cred = FailureKey::credential_prefix("dave");
    for _ in 0..2 {
        t.record_failure_all(&[ip.clone(), user.clone()], T0);
    }
    assert_eq!(t.check(&ip, T0), Verdict::Allow, "the IP's threshold is 10");
    assert_eq!(t.check(&user, T0), Verdict::Delay(ms(100)), "the username's threshold is 2");
    assert_eq!(t.check(&cred, T0), Verdict::Allow, "same value, other kind: separate counter");
    assert_eq!(t.check(&FailureKey::username("erin"), T0), Verdict::Allow);
    assert_eq!(t.check_all(&[ip.clone(), user.clone(), cred], T0), Verdict::Delay(ms(100)), "most severe wins");
    t.record_success(&user);
    assert_eq!(t.check(&ip, T0), Verdict::Allow);
    let ip_failures = t.store().load(&ip, T0).failures;
    assert_eq!(ip_failures, 2, "a success for the user leaves the IP's count alone");
}

#[test]
fn keys_are_normalised() {
    assert_eq!(FailureKey::username("Alice"), FailureKey::username("ALICE"));
    let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
    let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert_eq!(FailureKey::client_ip(a), FailureKey::client_ip(b), "one /64 is one client");
    assert_ne!(FailureKey::client_ip(a), FailureKey::client_ip(c));
    let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
    assert_eq!(FailureKey::client_ip(mapped), FailureKey::client_ip("192.0.2.1".parse().unwrap()));
    assert_eq!(FailureKey::client_ip(a).kind(), KeyKind::ClientIp);
}

#[test]
fn memory_is_bounded_per_kind_and_the_oldest_key_is_evicted() {
    let mut p = policies();
    p.client_ip.max_keys = 100;
    let t = FailureTracker::new(p);
    let victim = FailureKey::username("victim");
    for _ in 0..8 {
        t.record_failure(&victim, T0);
    }
    let first = FailureKey::client_ip("10.0.0.0".parse().unwrap());
    for _ in 0..4 {
        t.record_failure(&first, T0);
    }
    for i in 1..=1000u32 {
        let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        t.record_failure(&FailureKey::client_ip(ip), T0 + u64::from(i));
    }
    assert_eq!(t.store().len(KeyKind::ClientIp), 100, "capped");
    assert_eq!(t.check(&first, T0 + 2000), Verdict::Allow, "the oldest was evicted");
    let newest = FailureKey::client_ip(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + 1000)));
    assert_eq!(t.store().load(&newest, T0 + 2000).failures, 1, "the newest is kept");
    assert!(
        matches!(t.check(&victim, T0 + 2000), Verdict::Locked { .. }),
        "an IP spray does not evict a locked username"
    );
}

#[test]
fn recently_failing_keys_survive_eviction() {
    let mut p = policies();
    p.username.max_keys = 3;
    let t = FailureTracker::new(p);
    let (a, b, c, d) =
        (FailureKey::username("a"), FailureKey::username("b"), FailureKey::username("c"), FailureKey::username("d"));
    t.record_failure(&a, T0);
    t.record_failure(&b, T0 + 1);
    t.record_failure(&c, T0 + 2);
    t.record_failure(&a, T0 + 3); // a is now the most recent
    t.record_failure(&d, T0 + 4); // evicts b
    let s = t.store();
    assert_eq!(s.len(KeyKind::Username), 3);
    assert_eq!(s.load(&a, T0 + 5).failures, 2);
    assert_eq!(s.load(&b, T0 + 5).failures, 0);
    assert_eq!(s.load(&c, T0 + 5).failures, 1);
}

#[test]
fn zero_thresholds_disable_delay_and_lockout() {
    let mut p = policies();
    p.username.delay_after = 0;
    p.username.lockout_after = 0;
    let t = FailureTracker::new(p);
    let k = FailureKey::username("free");
    for i in 0..100 {
        assert_eq!(t.record_failure(&k, T0 + i), Verdict::Allow);
    }
}

#[test]
fn huge_failure_counts_saturate_at_the_cap() {
    let mut p = policies();
    p.username.lockout_after = 0;
    p.username.max_delay = Duration::from_secs(3600);
    let t = FailureTracker::new(p);
    let k = FailureKey::username("many");
    let mut last = Verdict::Allow;
    for i in 0..200 {
        last = t.record_failure(&k, T0 + i);
    }
    assert_eq!(last, Verdict::Delay(Duration::from_secs(3600)));
}

/// A second store implementation, to show the tracker only needs the trait.
struct Counting(MemoryFailureStore, std::sync::atomic::AtomicUsize);

impl FailureStore for Counting {
    fn load(&self, key: &FailureKey, now_ms: u64) -> portcullis_identity::bruteforce::FailureRecord {
        self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.0.load(key, now_ms)
    }
    fn add_failure(
        &self,
        key: &FailureKey,
        now_ms: u64,
        window: Duration,
    ) -> portcullis_identity::bruteforce::FailureRecord {
        self.0.add_failure(key, now_ms, window)
    }
    fn lock(&self, key: &FailureKey, until_ms: u64) {
        self.0.lock(key, until_ms);
    }
    fn clear(&self, key: &FailureKey) {
        self.0.clear(key);
    }
}

#[test]
fn the_tracker_works_over_any_store() {
    let store = Counting(MemoryFailureStore::new(&policies()), Default::default());
    let t = FailureTracker::with_store(policies(), store);
    let k = FailureKey::username("x");
    for _ in 0..3 {
        t.record_failure(&k, T0);
    }
    assert_eq!(t.check(&k, T0), Verdict::Delay(ms(100)));
    assert!(t.store().1.load(std::sync::atomic::Ordering::Relaxed) >= 4);
}
