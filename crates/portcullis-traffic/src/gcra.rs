//! The generic cell rate algorithm (GCRA): one timestamp of state per key, exact integer
//! arithmetic, no windows to straddle.
//!
//! Semantics (tested below and by property tests):
//! - `burst` requests can be admitted at once from a fresh (or long idle) key;
//! - after that one request is admitted every emission interval `T = period / rate` (rounded
//!   *up* to the nanosecond, so rounding never admits more);
//! - hence over any interval of length `L`, at most `burst + floor(L / T)` requests are
//!   admitted, and a key idle for `burst × T` is back to full capacity.
//!
//! "N per minute" with `burst = N` therefore means: N at once, then one every 60/N s, never
//! more than `N + N × L / 60 s` in `L`. For a strict "N and then wait", use `burst = N` with a
//! longer `period` for the sustained rate, or two limits (burst + sustained) on the route.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::clock::Nanos;
use crate::error::ConfigError;

/// Ten years in nanoseconds: the longest bucket (`T × burst`) accepted, which keeps the Redis
/// state (microseconds in Lua doubles) exact.
const MAX_BUCKET_NANOS: u128 = 10 * 366 * 24 * 3600 * 1_000_000_000;

/// The outcome of one rate-limit check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Admitted. `remaining` more units could be admitted right now; `reset` is the time until
    /// the key is back to full capacity if nothing else arrives.
    Allow {
        /// Units still available now.
        remaining: u64,
        /// Time until full capacity.
        reset: Duration,
    },
    /// Over the limit: retry after `retry_after`; `reset` is the time until full capacity.
    Deny {
        /// Earliest time at which the same request can be admitted.
        retry_after: Duration,
        /// Time until full capacity.
        reset: Duration,
    },
    /// The shared store failed and the limit is configured `on_store_failure: closed`.
    StoreUnavailable,
}

impl Decision {
    /// True for [`Decision::Allow`].
    #[must_use]
    pub fn is_allow(&self) -> bool {
        matches!(self, Self::Allow { .. })
    }
}

/// A GCRA limit: `rate` units per `period`, up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gcra {
    rate: NonZeroU32,
    period: Duration,
    burst: NonZeroU32,
    /// Emission interval in nanoseconds, `ceil(period / rate)`, at least 1.
    t_ns: u64,
}

impl Gcra {
    /// `rate` units per `period` with at most `burst` at once.
    ///
    /// # Errors
    /// A zero value, or a bucket (`period / rate × burst`) longer than ten years.
    pub fn new(rate: u32, period: Duration, burst: u32) -> Result<Self, ConfigError> {
        let rate = NonZeroU32::new(rate).ok_or(ConfigError::Zero { field: "rate" })?;
        let burst = NonZeroU32::new(burst).ok_or(ConfigError::Zero { field: "burst" })?;
        if period.is_zero() {
            return Err(ConfigError::Zero { field: "period" });
        }
        let t_ns = period.as_nanos().div_ceil(u128::from(rate.get())).max(1);
        if t_ns * u128::from(burst.get()) > MAX_BUCKET_NANOS {
            return Err(ConfigError::TooLong);
        }
        let t_ns = u64::try_from(t_ns).map_err(|_| ConfigError::TooLong)?;
        Ok(Self { rate, period, burst, t_ns })
    }

    /// Units per period.
    #[must_use]
    pub fn rate(&self) -> u32 {
        self.rate.get()
    }

    /// The period of `rate`.
    #[must_use]
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Units admitted at once from full capacity.
    #[must_use]
    pub fn burst(&self) -> u32 {
        self.burst.get()
    }

    /// Time between two units at the sustained rate (`period / rate`, rounded up to 1 ns).
    #[must_use]
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.t_ns)
    }

    pub(crate) fn t_ns(&self) -> u64 {
        self.t_ns
    }

    /// This limit divided among `nodes` gateways: rate and burst divided (rounded down, at least
    /// 1), the period kept. It is what one node enforces on its own while the shared store is
    /// unreachable and the limit fails open.
    #[must_use]
    pub fn share(&self, nodes: u32) -> Self {
        let nodes = nodes.max(1);
        let rate = (self.rate.get() / nodes).max(1);
        let burst = (self.burst.get() / nodes).max(1);
        // Smaller rate and burst than an accepted limit cannot make the bucket longer than
        // rate/burst scaled together; fall back to self only if arithmetic says otherwise.
        Self::new(rate, self.period, burst).unwrap_or(*self)
    }

    /// The GCRA step. `stored_tat` is the theoretical arrival time kept for the key (`None` when
    /// absent); returns the decision and the new TAT to store when admitted.
    pub(crate) fn step(&self, stored_tat: Option<u64>, now: Nanos, cost: u32) -> (Decision, Option<u64>) {
        let now = now.0;
        let cap = self.t_ns.saturating_mul(u64::from(self.burst.get()));
        let tat = stored_tat.unwrap_or(now).max(now);
        let new_tat = tat.saturating_add(self.t_ns.saturating_mul(u64::from(cost)));
        let allow_at = new_tat.saturating_sub(cap);
        if allow_at <= now {
            let left = cap - (new_tat - now); // allow_at <= now means new_tat - now <= cap
            let decision = Decision::Allow { remaining: left / self.t_ns, reset: Duration::from_nanos(new_tat - now) };
            (decision, Some(new_tat))
        } else {
            let decision = Decision::Deny {
                retry_after: Duration::from_nanos(allow_at - now),
                reset: Duration::from_nanos(tat - now),
            };
            (decision, None)
        }
    }

    /// The TAT after giving back `cost` units taken earlier (used when a later limit of the same
    /// request denies). `None` when the key is then at full capacity and can be dropped.
    pub(crate) fn refund(&self, stored_tat: u64, now: Nanos, cost: u32) -> Option<u64> {
        let back = stored_tat.saturating_sub(self.t_ns.saturating_mul(u64::from(cost)));
        (back > now.0).then_some(back)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(g: &Gcra, tat: &mut Option<u64>, now: u64, cost: u32) -> Decision {
        let (d, new) = g.step(*tat, Nanos(now), cost);
        if let Some(n) = new {
            *tat = Some(n);
        }
        d
    }

    #[test]
    fn rejects_zero_and_too_long() {
        assert_eq!(Gcra::new(0, Duration::from_secs(1), 1), Err(ConfigError::Zero { field: "rate" }));
        assert_eq!(Gcra::new(1, Duration::ZERO, 1), Err(ConfigError::Zero { field: "period" }));
        assert_eq!(Gcra::new(1, Duration::from_secs(1), 0), Err(ConfigError::Zero { field: "burst" }));
        assert_eq!(Gcra::new(1, Duration::from_secs(86_400 * 365), 20), Err(ConfigError::TooLong));
    }

    #[test]
    fn burst_admits_exactly_burst_at_once_then_denies() {
        let g = Gcra::new(100, Duration::from_secs(60), 100).unwrap();
        let mut tat = None;
        let admitted = (0..1000).filter(|_| run(&g, &mut tat, 0, 1).is_allow()).count();
        assert_eq!(admitted, 100);
        match run(&g, &mut tat, 0, 1) {
            Decision::Deny { retry_after, reset } => {
                assert_eq!(retry_after, Duration::from_millis(600));
                assert_eq!(reset, Duration::from_secs(60));
            }
            other => panic!("expected deny, got {other:?}"),
        }
    }

    #[test]
    fn remaining_counts_down_and_reset_grows() {
        let g = Gcra::new(10, Duration::from_secs(10), 3).unwrap();
        let mut tat = None;
        assert_eq!(run(&g, &mut tat, 0, 1), Decision::Allow { remaining: 2, reset: Duration::from_secs(1) });
        assert_eq!(run(&g, &mut tat, 0, 1), Decision::Allow { remaining: 1, reset: Duration::from_secs(2) });
        assert_eq!(run(&g, &mut tat, 0, 1), Decision::Allow { remaining: 0, reset: Duration::from_secs(3) });
        assert!(!run(&g, &mut tat, 0, 1).is_allow());
        // One emission interval later exactly one more fits.
        assert!(run(&g, &mut tat, 1_000_000_000, 1).is_allow());
        assert!(!run(&g, &mut tat, 1_000_000_000, 1).is_allow());
    }

    #[test]
    fn sustained_overload_admits_burst_plus_rate_times_elapsed() {
        // 100 per minute, burst 100; offer 10 requests every 100 ms for 10 minutes.
        let g = Gcra::new(100, Duration::from_secs(60), 100).unwrap();
        let mut tat = None;
        let mut admitted = 0u64;
        let step_ns = 100_000_000u64;
        let steps = 6_000u64;
        for i in 0..steps {
            for _ in 0..10 {
                admitted += u64::from(run(&g, &mut tat, i * step_ns, 1).is_allow());
            }
        }
        let elapsed = (steps - 1) * step_ns; // last offer time
        assert_eq!(admitted, 100 + elapsed / 600_000_000);
    }

    #[test]
    fn cost_above_one_and_above_burst() {
        let g = Gcra::new(10, Duration::from_secs(1), 10).unwrap();
        let mut tat = None;
        assert_eq!(run(&g, &mut tat, 0, 4), Decision::Allow { remaining: 6, reset: Duration::from_millis(400) });
        assert!(run(&g, &mut tat, 0, 6).is_allow());
        assert!(!run(&g, &mut tat, 0, 1).is_allow());
        let mut fresh = None;
        assert!(!run(&g, &mut fresh, 0, 11).is_allow(), "a cost above burst never fits");
        assert_eq!(fresh, None);
    }

    #[test]
    fn refund_gives_back_exactly() {
        let g = Gcra::new(10, Duration::from_secs(1), 2).unwrap();
        let mut tat = None;
        run(&g, &mut tat, 0, 1);
        run(&g, &mut tat, 0, 1);
        assert!(!run(&g, &mut tat, 0, 1).is_allow());
        tat = g.refund(tat.unwrap(), Nanos(0), 1);
        assert!(run(&g, &mut tat, 0, 1).is_allow());
        assert_eq!(g.refund(100_000_000, Nanos(0), 1), None, "back to full: state can go");
    }

    #[test]
    fn share_divides_rate_and_burst() {
        let g = Gcra::new(300, Duration::from_secs(60), 90).unwrap();
        let s = g.share(3);
        assert_eq!((s.rate(), s.burst(), s.period()), (100, 30, Duration::from_secs(60)));
        let tiny = Gcra::new(2, Duration::from_secs(1), 1).unwrap().share(5);
        assert_eq!((tiny.rate(), tiny.burst()), (1, 1));
    }

    #[test]
    fn rounding_is_never_generous() {
        let g = Gcra::new(3, Duration::from_secs(1), 1).unwrap();
        assert_eq!(g.emission_interval(), Duration::from_nanos(333_333_334));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Over any run of arrivals, admitted units never exceed burst + rate × elapsed
        /// (elapsed measured from the first arrival), and a single request at a fresh key fits.
        #[test]
        fn never_admits_more_than_burst_plus_rate_times_elapsed(
            rate in 1u32..5_000,
            period_ms in 1u64..120_000,
            burst in 1u32..500,
            gaps in proptest::collection::vec((0u64..50_000_000, 1u32..4), 1..400),
        ) {
            let period = Duration::from_millis(period_ms);
            let g = Gcra::new(rate, period, burst).unwrap();
            let mut tat = None;
            let mut now = 0u64;
            let mut admitted: u128 = 0;
            for (gap, cost) in gaps {
                now += gap;
                if run(&g, &mut tat, now, cost).is_allow() {
                    admitted += u128::from(cost);
                }
                // admitted <= burst + rate * elapsed / period, in exact integer form.
                let bound_num = u128::from(burst) * period.as_nanos() + u128::from(rate) * u128::from(now);
                prop_assert!(admitted * period.as_nanos() <= bound_num,
                    "admitted {admitted} > burst {burst} + {rate}/{period:?} over {now} ns");
            }
        }

        /// Under continuous overload offered at every emission boundary the limiter admits the
        /// bound exactly: it is exact, not merely safe.
        #[test]
        fn overload_admits_the_bound(rate in 1u32..1_000, burst in 1u32..50, steps in 1u64..500) {
            let g = Gcra::new(rate, Duration::from_secs(1), burst).unwrap();
            let t = g.t_ns();
            let mut tat = None;
            let mut admitted = 0u64;
            let step = t;
            for i in 0..steps {
                // Offer more than can fit at every step.
                for _ in 0..(burst + 2) {
                    admitted += u64::from(run(&g, &mut tat, i * step, 1).is_allow());
                }
            }
            let elapsed = (steps - 1) * step;
            prop_assert_eq!(admitted, u64::from(burst) + elapsed / t);
        }
    }
}
