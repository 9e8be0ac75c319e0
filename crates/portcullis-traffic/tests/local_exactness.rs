#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]

//! Single node, simulated clock: a limit of N per window admits exactly N at once and N per
//! window after that, and the headers tell the client the truth (waiting `Retry-After` seconds
//! is enough; `RateLimit` counts down to zero).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use portcullis_traffic::{
    Clock, Decision, FakeClock, KeySpec, LimitSpec, Limiter, LocalLimiter, OnStoreFailure, RequestKeys, RouteLimits,
};

/// Local decisions never wait: poll once.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a local decision waited"),
    }
}

fn header(h: &[(HeaderName, HeaderValue)], name: &str) -> Option<String> {
    h.iter().find(|(n, _)| n == name).map(|(_, v)| v.to_str().unwrap().to_owned())
}

fn setup(n: u32, window: Duration) -> (RouteLimits, Limiter, FakeClock) {
    let spec = LimitSpec::new("per-ip", KeySpec::ClientIp, n, window, n, OnStoreFailure::Open).unwrap();
    (
        RouteLimits::new(vec![spec], true).unwrap(),
        Limiter::Local(LocalLimiter::default()),
        FakeClock::new(jiff::Timestamp::UNIX_EPOCH),
    )
}

#[test]
fn n_per_window_admits_exactly_n_then_n_per_window() {
    let (limits, limiter, clock) = setup(60, Duration::from_secs(60));
    let req = RequestKeys { client_ip: Some("192.0.2.1".parse().unwrap()), route: "r", ..Default::default() };
    let mut per_window = Vec::new();
    for _ in 0..5 {
        // 1000 attempts spread over the window (one every 60 ms).
        let mut admitted = 0;
        for _ in 0..1000 {
            admitted += u32::from(ready(limits.check(&limiter, &req, 1, clock.now())).decision.is_allow());
            clock.advance(Duration::from_millis(60));
        }
        per_window.push(admitted);
    }
    // First window: the burst of 60 plus the 60 that refill during it (minus the last, which
    // refills exactly at the window's end); then exactly 60 per window.
    assert_eq!(per_window, vec![119, 60, 60, 60, 60]);
    let total: u32 = per_window.iter().sum();
    assert!(u64::from(total) <= 60 + 60 * 5, "never above burst + rate × elapsed");
}

#[test]
fn all_at_once_admits_exactly_n() {
    let (limits, limiter, clock) = setup(100, Duration::from_secs(60));
    let req = RequestKeys { client_ip: Some("192.0.2.2".parse().unwrap()), route: "r", ..Default::default() };
    let admitted =
        (0..10_000).filter(|_| ready(limits.check(&limiter, &req, 1, clock.now())).decision.is_allow()).count();
    assert_eq!(admitted, 100);
}

#[test]
fn headers_count_down_and_retry_after_is_enough() {
    let (limits, limiter, clock) = setup(3, Duration::from_secs(30));
    let req = RequestKeys { client_ip: Some("192.0.2.3".parse().unwrap()), route: "r", ..Default::default() };
    let mut seen = Vec::new();
    for _ in 0..3 {
        let o = ready(limits.check(&limiter, &req, 1, clock.now()));
        assert!(o.decision.is_allow());
        let h = limits.headers(&o);
        assert_eq!(header(&h, "ratelimit-policy").as_deref(), Some("\"per-ip\";q=3;w=30"));
        assert_eq!(header(&h, "retry-after"), None);
        seen.push(header(&h, "ratelimit").unwrap());
    }
    assert_eq!(seen, ["\"per-ip\";r=2;t=10", "\"per-ip\";r=1;t=20", "\"per-ip\";r=0;t=30"]);

    let denied = ready(limits.check(&limiter, &req, 1, clock.now()));
    let Decision::Deny { retry_after, .. } = denied.decision else { panic!("{denied:?}") };
    assert_eq!(retry_after, Duration::from_secs(10));
    let h = limits.headers(&denied);
    assert_eq!(header(&h, "ratelimit").as_deref(), Some("\"per-ip\";r=0;t=10"));
    assert_eq!(header(&h, "retry-after").as_deref(), Some("10"));

    // A client that waits one second less is still refused; one that waits Retry-After is served.
    clock.advance(Duration::from_secs(9));
    assert!(!ready(limits.check(&limiter, &req, 1, clock.now())).decision.is_allow());
    clock.advance(Duration::from_secs(1));
    assert!(ready(limits.check(&limiter, &req, 1, clock.now())).decision.is_allow());
}

#[test]
fn different_clients_do_not_share_a_bucket_but_one_ipv6_64_does() {
    let (limits, limiter, clock) = setup(1, Duration::from_secs(60));
    let ip = |s: &str| RequestKeys { client_ip: Some(s.parse().unwrap()), route: "r", ..Default::default() };
    assert!(ready(limits.check(&limiter, &ip("192.0.2.10"), 1, clock.now())).decision.is_allow());
    assert!(ready(limits.check(&limiter, &ip("192.0.2.11"), 1, clock.now())).decision.is_allow());
    assert!(!ready(limits.check(&limiter, &ip("192.0.2.10"), 1, clock.now())).decision.is_allow());
    assert!(ready(limits.check(&limiter, &ip("2001:db8::1"), 1, clock.now())).decision.is_allow());
    assert!(!ready(limits.check(&limiter, &ip("2001:db8::ffff"), 1, clock.now())).decision.is_allow());
}
