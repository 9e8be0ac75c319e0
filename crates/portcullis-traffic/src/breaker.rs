//! A circuit breaker in front of the shared store: after `threshold` consecutive failures or
//! timeouts the store is skipped for `cooldown`, then one call probes it; a success closes the
//! breaker, a failure opens it for another cool-down.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::{Nanos, duration_nanos};

/// Whether a call may go to the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Closed: call.
    Call,
    /// Cool-down over: this call is the single probe.
    Probe,
    /// Open: do not call.
    Skip,
}

/// The breaker's state, lock-free.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown_ns: u64,
    failures: AtomicU32,
    /// 0 when closed, else the monotonic time (ns, at least 1) at which a probe may go.
    open_until: AtomicU64,
    probing: AtomicBool,
}

impl CircuitBreaker {
    /// Opens after `threshold` consecutive failures (at least 1), for `cooldown`.
    #[must_use]
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown_ns: duration_nanos(cooldown),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
        }
    }

    /// True while calls are being skipped or probed.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Acquire) != 0
    }

    pub(crate) fn admit(&self, now: Nanos) -> Admit {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Admit::Call;
        }
        if now.0 < until {
            return Admit::Skip;
        }
        if self.probing.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            Admit::Probe
        } else {
            Admit::Skip
        }
    }

    pub(crate) fn success(&self) {
        self.failures.store(0, Ordering::Release);
        if self.open_until.swap(0, Ordering::AcqRel) != 0 {
            tracing::info!("rate-limit store reachable again: circuit closed");
        }
        self.probing.store(false, Ordering::Release);
    }

    pub(crate) fn failure(&self, now: Nanos, probe: bool) {
        let reopen = now.0.saturating_add(self.cooldown_ns).max(1);
        if probe {
            self.open_until.store(reopen, Ordering::Release);
            self.probing.store(false, Ordering::Release);
            return;
        }
        let n = self.failures.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        if n >= self.threshold
            && self.open_until.compare_exchange(0, reopen, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            metrics::counter!("portcullis_ratelimit_circuit_opened_total").increment(1);
            tracing::warn!(failures = n, "rate-limit store failing: circuit open, store skipped for the cool-down");
        }
    }

    /// A probe whose future was dropped before it finished: let the next call probe.
    pub(crate) fn abandon_probe(&self) {
        self.probing.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_then_probes_once_then_closes() {
        let b = CircuitBreaker::new(3, Duration::from_secs(1));
        let t0 = Nanos(10);
        for _ in 0..2 {
            assert_eq!(b.admit(t0), Admit::Call);
            b.failure(t0, false);
        }
        assert!(!b.is_open());
        b.failure(t0, false);
        assert!(b.is_open());
        assert_eq!(b.admit(t0.plus(Duration::from_millis(999))), Admit::Skip);
        let later = t0.plus(Duration::from_secs(1));
        assert_eq!(b.admit(later), Admit::Probe);
        assert_eq!(b.admit(later), Admit::Skip, "only one probe at a time");
        b.failure(later, true);
        assert_eq!(b.admit(later), Admit::Skip, "a failed probe reopens");
        let again = later.plus(Duration::from_secs(1));
        assert_eq!(b.admit(again), Admit::Probe);
        b.success();
        assert!(!b.is_open());
        assert_eq!(b.admit(again), Admit::Call);
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = CircuitBreaker::new(2, Duration::from_secs(1));
        b.failure(Nanos(0), false);
        b.success();
        b.failure(Nanos(0), false);
        assert!(!b.is_open());
    }

    #[test]
    fn an_abandoned_probe_lets_another_probe() {
        let b = CircuitBreaker::new(1, Duration::from_secs(1));
        b.failure(Nanos(0), false);
        let t = Nanos(2_000_000_000);
        assert_eq!(b.admit(t), Admit::Probe);
        b.abandon_probe();
        assert_eq!(b.admit(t), Admit::Probe);
    }
}
