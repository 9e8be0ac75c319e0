//! [`RouteLimits`]: the rate limits that apply to one request (a route's, a plan's), checked
//! together; the tightest wins. Plus the `RateLimit-Policy` / `RateLimit` / `Retry-After` headers.
//!
//! Headers follow draft-ietf-httpapi-ratelimit-headers-11 (the latest draft text found; -09 and
//! -10 use the same structured-field syntax):
//! - `RateLimit-Policy: "name";q=<rate>;w=<period seconds>` for every limit of the set, in order;
//!   it does not change between responses, so it is rendered once at construction.
//! - `RateLimit: "name";r=<remaining>;t=<seconds>` for every limit evaluated. For an admitted
//!   request `t` is the time until the key is back to full capacity; for a denied one `r=0` and
//!   `t` is the retry delay, and `Retry-After` carries the same number, so Retry-After never
//!   points before the end of the effective window (draft section 6). Seconds are rounded up.
//! - No `pk` partition key is sent: it would echo consumer or credential ids to the client.

use std::collections::HashSet;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::clock::Nanos;
use crate::error::ConfigError;
use crate::gcra::Decision;
use crate::limiter::Limiter;
use crate::spec::{KeySource, LimitSpec};

/// `RateLimit-Policy`.
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`.
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The outcome of one limit of a set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitResult {
    /// Index of the limit in its [`RouteLimits`].
    pub index: usize,
    /// Its decision.
    pub decision: Decision,
}

/// The outcome of a [`RouteLimits`] check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteOutcome {
    /// The tightest decision: a `Deny` (the longest retry) before `StoreUnavailable` before the
    /// `Allow` with the fewest units remaining. `Allow` with nothing to check when the set is empty.
    pub decision: Decision,
    /// Index of the limit that gave `decision` (`None` when the set is empty).
    pub tightest: Option<usize>,
    /// Every limit evaluated, in order. Evaluation stops at the first limit that does not allow.
    pub results: Vec<LimitResult>,
}

/// The limits checked together for a request. Evaluated in order, each taking `cost` units; when
/// one does not allow, the units taken by the earlier ones are given back (so a request refused
/// by its sustained limit does not use up its burst) and the rest are not evaluated.
#[derive(Clone, Debug)]
pub struct RouteLimits {
    limits: Vec<LimitSpec>,
    emit_on_allow: bool,
    policy: Option<HeaderValue>,
}

impl RouteLimits {
    /// A set of limits; `emit_on_allow` adds the headers to admitted responses too.
    ///
    /// # Errors
    /// Two limits with the same name.
    pub fn new(limits: Vec<LimitSpec>, emit_on_allow: bool) -> Result<Self, ConfigError> {
        let mut seen = HashSet::new();
        for l in &limits {
            if !seen.insert(l.name()) {
                return Err(ConfigError::Duplicate { name: l.name().to_owned() });
            }
        }
        let policy = render_policy(&limits);
        Ok(Self { limits, emit_on_allow, policy })
    }

    /// The limits, in evaluation order.
    #[must_use]
    pub fn limits(&self) -> &[LimitSpec] {
        &self.limits
    }

    /// Whether admitted responses carry the headers.
    #[must_use]
    pub fn emit_on_allow(&self) -> bool {
        self.emit_on_allow
    }

    /// Checks every limit for this request (see the type's docs for the order and refunds). With
    /// a Redis limiter each limit is one round trip. A `cost` above a limit's burst never fits and
    /// is always denied; keep costs at or under the smallest burst (check it at config load).
    pub async fn check(&self, limiter: &Limiter, src: &dyn KeySource, cost: u32, now: Nanos) -> RouteOutcome {
        let mut results = Vec::with_capacity(self.limits.len());
        let mut keys: Vec<String> = Vec::with_capacity(self.limits.len());
        for (index, spec) in self.limits.iter().enumerate() {
            let key = spec.state_key(src);
            let decision = limiter.check(&key, spec.gcra(), cost, now, spec.on_store_failure()).await;
            let allowed = decision.is_allow();
            results.push(LimitResult { index, decision });
            if !allowed {
                for ((spec, key), earlier) in self.limits.iter().zip(&keys).zip(results.iter_mut()) {
                    limiter.refund(key, spec.gcra(), cost, now).await;
                    if let Decision::Allow { remaining, .. } = &mut earlier.decision {
                        *remaining = remaining.saturating_add(u64::from(cost));
                    }
                }
                break;
            }
            keys.push(key);
        }
        let tightest = tightest(&results);
        let decision =
            tightest.map_or(Decision::Allow { remaining: u64::MAX, reset: Duration::ZERO }, |i| results[i].decision);
        RouteOutcome { decision, tightest: tightest.map(|i| results[i].index), results }
    }

    /// The response headers for `outcome`: `RateLimit-Policy` and `RateLimit` (on admitted
    /// responses only when `emit_on_allow`), and `Retry-After` when denied or the store is
    /// unavailable (1 s then).
    #[must_use]
    pub fn headers(&self, outcome: &RouteOutcome) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::with_capacity(3);
        let retry = match outcome.decision {
            Decision::Allow { .. } if !self.emit_on_allow => return out,
            Decision::Allow { .. } => None,
            Decision::Deny { retry_after, .. } => Some(ceil_secs(retry_after).max(1)),
            Decision::StoreUnavailable => Some(1),
        };
        if let Some(p) = &self.policy {
            out.push((RATELIMIT_POLICY.clone(), p.clone()));
        }
        let mut items = String::new();
        for r in &outcome.results {
            let Some(spec) = self.limits.get(r.index) else { continue };
            let (remaining, t) = match r.decision {
                Decision::Allow { remaining, reset } => (remaining, ceil_secs(reset)),
                Decision::Deny { retry_after, .. } => (0, ceil_secs(retry_after).max(1)),
                Decision::StoreUnavailable => continue,
            };
            if !items.is_empty() {
                items.push_str(", ");
            }
            items.push_str(&format!("\"{}\";r={remaining};t={t}", spec.name()));
        }
        if let Ok(v) = HeaderValue::from_str(&items)
            && !items.is_empty()
        {
            out.push((RATELIMIT.clone(), v));
        }
        if let Some(secs) = retry {
            out.push((http::header::RETRY_AFTER, HeaderValue::from(secs)));
        }
        out
    }
}

/// Index into `results` of the tightest decision.
fn tightest(results: &[LimitResult]) -> Option<usize> {
    // Rank: deny (longer retry is tighter) > store unavailable > allow (fewer remaining is tighter).
    let rank = |d: &Decision| -> (u8, u128) {
        match d {
            Decision::Deny { retry_after, .. } => (2, retry_after.as_nanos()),
            Decision::StoreUnavailable => (1, 0),
            Decision::Allow { remaining, .. } => (0, u128::from(u64::MAX - remaining)),
        }
    };
    results.iter().enumerate().max_by_key(|(_, r)| rank(&r.decision)).map(|(i, _)| i)
}

fn render_policy(limits: &[LimitSpec]) -> Option<HeaderValue> {
    if limits.is_empty() {
        return None;
    }
    let items: Vec<String> = limits
        .iter()
        .map(|l| format!("\"{}\";q={};w={}", l.name(), l.gcra().rate(), ceil_secs(l.gcra().period()).max(1)))
        .collect();
    // Names are checked tokens and the rest are digits, so this is always a valid value.
    HeaderValue::from_str(&items.join(", ")).ok()
}

/// Whole seconds, rounded up.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalLimiter;
    use crate::spec::{KeySpec, OnStoreFailure, RequestKeys};

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    fn limits(emit: bool) -> RouteLimits {
        let burst = LimitSpec::new("burst", KeySpec::Consumer, 10, Duration::from_secs(1), 5, OnStoreFailure::Open);
        let sustained =
            LimitSpec::new("sustained", KeySpec::Consumer, 100, Duration::from_secs(60), 8, OnStoreFailure::Open);
        RouteLimits::new(vec![burst.unwrap(), sustained.unwrap()], emit).unwrap()
    }

    fn header<'a>(h: &'a [(HeaderName, HeaderValue)], name: &str) -> Option<&'a str> {
        h.iter().find(|(n, _)| n == name).map(|(_, v)| v.to_str().unwrap())
    }

    #[test]
    fn burst_and_sustained_together_and_headers() {
        let rl = limits(true);
        let lim = Limiter::Local(LocalLimiter::default());
        let src = RequestKeys { consumer: Some("c1"), route: "r", ..Default::default() };
        let mut admitted = 0;
        for _ in 0..20 {
            admitted += usize::from(block_on(rl.check(&lim, &src, 1, Nanos(0))).decision.is_allow());
        }
        assert_eq!(admitted, 5, "the burst limit binds at t=0");
        // Let the burst limit refill (5 × 100 ms); the sustained one (8, one per 600 ms) now binds.
        let later = Nanos(1_000_000_000);
        let mut more = 0;
        let mut last = None;
        for _ in 0..20 {
            let o = block_on(rl.check(&lim, &src, 1, later));
            more += usize::from(o.decision.is_allow());
            last = Some(o);
        }
        // Sustained had 8 - 5 = 3 left plus one refilled unit (1 s / 600 ms).
        assert_eq!(more, 4);
        let denied = last.unwrap();
        assert_eq!(denied.tightest, Some(1));
        let h = rl.headers(&denied);
        assert_eq!(header(&h, "ratelimit-policy"), Some("\"burst\";q=10;w=1, \"sustained\";q=100;w=60"));
        assert_eq!(header(&h, "ratelimit"), Some("\"burst\";r=1;t=1, \"sustained\";r=0;t=1"));
        assert_eq!(header(&h, "retry-after"), Some("1"));
    }

    #[test]
    fn a_denial_by_a_later_limit_refunds_the_earlier_ones() {
        let wide = LimitSpec::new("wide", KeySpec::Consumer, 1, Duration::from_secs(60), 100, OnStoreFailure::Open);
        let narrow = LimitSpec::new("narrow", KeySpec::Consumer, 1, Duration::from_secs(60), 2, OnStoreFailure::Open);
        let (wide, narrow) = (wide.unwrap(), narrow.unwrap());
        let rl = RouteLimits::new(vec![wide.clone(), narrow], true).unwrap();
        let lim = Limiter::Local(LocalLimiter::default());
        let src = RequestKeys { consumer: Some("c1"), route: "r", ..Default::default() };
        let outcomes: Vec<_> = (0..5).map(|_| block_on(rl.check(&lim, &src, 1, Nanos(0)))).collect();
        assert_eq!(outcomes.iter().filter(|o| o.decision.is_allow()).count(), 2);
        // The denied requests' units went back to the wide limit: 100 - 2 admitted - this one.
        let Limiter::Local(l) = &lim else { unreachable!() };
        let d = l.check(&wide.state_key(&src), wide.gcra(), 1, Nanos(0));
        assert!(matches!(d, Decision::Allow { remaining: 97, .. }), "{d:?}");
        // And the headers of a denied request report the wide limit after the refund.
        let h = rl.headers(&outcomes[4]);
        assert_eq!(header(&h, "ratelimit"), Some("\"wide\";r=98;t=180, \"narrow\";r=0;t=60"));
    }

    #[test]
    fn headers_on_allow_only_when_asked() {
        let src = RequestKeys { consumer: Some("c1"), route: "r", ..Default::default() };
        let lim = Limiter::Local(LocalLimiter::default());
        let quiet = limits(false);
        let o = block_on(quiet.check(&lim, &src, 1, Nanos(0)));
        assert!(o.decision.is_allow());
        assert!(quiet.headers(&o).is_empty());
        let loud = limits(true);
        let o = block_on(loud.check(&lim, &src, 1, Nanos(0)));
        let h = loud.headers(&o);
        assert_eq!(header(&h, "ratelimit"), Some("\"burst\";r=3;t=1, \"sustained\";r=6;t=2"));
        assert_eq!(header(&h, "retry-after"), None);
    }

    #[test]
    fn the_exact_brief_example_renders() {
        let spec =
            LimitSpec::new("burst", KeySpec::Route, 100, Duration::from_secs(60), 100, OnStoreFailure::Open).unwrap();
        let rl = RouteLimits::new(vec![spec], true).unwrap();
        let outcome = RouteOutcome {
            decision: Decision::Allow { remaining: 45, reset: Duration::from_millis(29_500) },
            tightest: Some(0),
            results: vec![LimitResult {
                index: 0,
                decision: Decision::Allow { remaining: 45, reset: Duration::from_millis(29_500) },
            }],
        };
        let h = rl.headers(&outcome);
        assert_eq!(header(&h, "ratelimit-policy"), Some("\"burst\";q=100;w=60"));
        assert_eq!(header(&h, "ratelimit"), Some("\"burst\";r=45;t=30"));
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let a = LimitSpec::new("x", KeySpec::Route, 1, Duration::from_secs(1), 1, OnStoreFailure::Open).unwrap();
        assert!(matches!(RouteLimits::new(vec![a.clone(), a], true), Err(ConfigError::Duplicate { .. })));
    }
}
