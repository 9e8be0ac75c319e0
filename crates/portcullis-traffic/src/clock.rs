//! Time, injected: every decision takes `now` from a [`Clock`] so tests drive time by hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Monotonic time in nanoseconds since the clock's own origin. Only differences between two
/// readings of the same clock mean anything; never compare readings of two clocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nanos(pub u64);

impl Nanos {
    /// `self + d`, saturating.
    #[must_use]
    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(duration_nanos(d)))
    }

    /// `self - earlier`, zero when `earlier` is later.
    #[must_use]
    pub fn since(self, earlier: Self) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// A [`Duration`] in nanoseconds, saturating at `u64::MAX` (584 years).
pub(crate) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Where decisions read the time: a monotonic reading for rate limits, circuit breakers and
/// local state, and the wall clock for quota windows (days and months in a time zone).
pub trait Clock: Send + Sync + 'static {
    /// Monotonic time.
    fn now(&self) -> Nanos;
    /// Wall-clock time.
    fn wall(&self) -> jiff::Timestamp;
}

/// The real clocks: [`Instant`] since construction and [`jiff::Timestamp::now`].
#[derive(Clone, Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose monotonic origin is now.
    #[must_use]
    pub fn new() -> Self {
        Self { origin: Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Nanos {
        Nanos(duration_nanos(self.origin.elapsed()))
    }

    fn wall(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}

/// A clock moved only by [`FakeClock::advance`] and [`FakeClock::set_wall`]; clones share time.
#[derive(Clone, Debug)]
pub struct FakeClock {
    inner: Arc<FakeInner>,
}

#[derive(Debug)]
struct FakeInner {
    mono: AtomicU64,
    wall_ns: AtomicI64,
}

impl FakeClock {
    /// Monotonic time 0, wall time `wall`.
    #[must_use]
    pub fn new(wall: jiff::Timestamp) -> Self {
        let wall_ns = i64::try_from(wall.as_nanosecond()).unwrap_or(i64::MAX);
        Self { inner: Arc::new(FakeInner { mono: AtomicU64::new(0), wall_ns: AtomicI64::new(wall_ns) }) }
    }

    /// Moves both clocks forward by `d`.
    pub fn advance(&self, d: Duration) {
        let ns = duration_nanos(d);
        self.inner.mono.fetch_add(ns, Ordering::SeqCst);
        self.inner.wall_ns.fetch_add(i64::try_from(ns).unwrap_or(i64::MAX), Ordering::SeqCst);
    }

    /// Sets the wall clock (the monotonic clock does not move).
    pub fn set_wall(&self, wall: jiff::Timestamp) {
        let wall_ns = i64::try_from(wall.as_nanosecond()).unwrap_or(i64::MAX);
        self.inner.wall_ns.store(wall_ns, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Nanos {
        Nanos(self.inner.mono.load(Ordering::SeqCst))
    }

    fn wall(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_nanosecond(i128::from(self.inner.wall_ns.load(Ordering::SeqCst)))
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_moves_only_when_told() {
        let c = FakeClock::new(jiff::Timestamp::UNIX_EPOCH);
        assert_eq!(c.now(), Nanos(0));
        c.advance(Duration::from_millis(5));
        assert_eq!(c.now(), Nanos(5_000_000));
        assert_eq!(c.wall().as_millisecond(), 5);
        let shared = c.clone();
        shared.advance(Duration::from_secs(1));
        assert_eq!(c.now().since(Nanos(5_000_000)), Duration::from_secs(1));
    }

    #[test]
    fn system_clock_is_monotonic() {
        let c = SystemClock::new();
        let a = c.now();
        let b = c.now();
        assert!(b >= a);
    }
}
