//! Quotas: a count per day or per month in a time zone, exhausted as a distinct outcome
//! ([`QuotaDecision::Exhausted`], which the stage maps to its own 429 problem type).
//!
//! Windows are calendar windows in the quota's time zone (jiff's tz database, bundled): a day
//! starts at local midnight and lasts 23, 24 or 25 hours across daylight-saving changes; a month
//! starts on the 1st at local midnight. Counts are kept per window id (`2026-11-23`, `2026-11`),
//! so a new window starts from zero with no reset job. In cluster mode the count is one Redis key
//! per window, charged by INCRBY in a script that refuses a charge past the limit and sets
//! PEXPIREAT to the window end. Nodes decide the window from their own wall clock, so clocks
//! skewed by `s` can charge the old window for up to `s` after its end.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

use crate::clock::Nanos;
use crate::error::{ConfigError, check_name};
use crate::shard::ShardedMap;
use crate::spec::{KeySource, KeySpec, OnStoreFailure, build_key};
use crate::store::RedisStore;

/// The calendar length of a quota window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuotaPeriod {
    /// A calendar day.
    Day,
    /// A calendar month.
    Month,
}

/// One window of a quota.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaWindow {
    /// Stable id of the window: `YYYY-MM-DD` or `YYYY-MM` in the quota's zone.
    pub id: String,
    /// First instant of the window.
    pub start: Timestamp,
    /// First instant after the window.
    pub end: Timestamp,
}

impl QuotaWindow {
    /// Time from `now` to the window end (zero once past it).
    #[must_use]
    pub fn remaining_time(&self, now: Timestamp) -> Duration {
        Duration::try_from(self.end.duration_since(now)).unwrap_or(Duration::ZERO)
    }
}

/// A quota: at most `limit` units per window, counted per key.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaSpec {
    name: String,
    key: KeySpec,
    limit: u64,
    period: QuotaPeriod,
    tz: TimeZone,
    on_store_failure: OnStoreFailure,
}

impl QuotaSpec {
    /// `limit` units per `period` in the IANA zone `time_zone` (e.g. `"Europe/Paris"`, `"UTC"`).
    ///
    /// # Errors
    /// A bad name or an unknown zone.
    pub fn new(
        name: &str,
        key: KeySpec,
        limit: u64,
        period: QuotaPeriod,
        time_zone: &str,
        on_store_failure: OnStoreFailure,
    ) -> Result<Self, ConfigError> {
        check_name(name)?;
        let tz = TimeZone::get(time_zone)
            .map_err(|_| ConfigError::BadTimeZone { name: time_zone.chars().take(80).collect() })?;
        Ok(Self { name: name.to_owned(), key, limit, period, tz, on_store_failure })
    }

    /// The quota's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it counts per.
    #[must_use]
    pub fn key(&self) -> &KeySpec {
        &self.key
    }

    /// Units per window.
    #[must_use]
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Window length.
    #[must_use]
    pub fn period(&self) -> QuotaPeriod {
        self.period
    }

    /// Its failure mode in cluster mode.
    #[must_use]
    pub fn on_store_failure(&self) -> OnStoreFailure {
        self.on_store_failure
    }

    /// The window containing `now`.
    #[must_use]
    pub fn window(&self, now: Timestamp) -> QuotaWindow {
        let zoned = now.to_zoned(self.tz.clone());
        calendar_window(&zoned, self.period).unwrap_or_else(|| fixed_window(now, self.period))
    }

    /// The state key of this request in `window`: `q:{name}:{tag}:{value}:{window id}`.
    #[must_use]
    pub fn state_key(&self, src: &dyn KeySource, window: &QuotaWindow) -> String {
        let mut k = build_key("q", &self.name, &self.key, src);
        k.push(':');
        k.push_str(&window.id);
        k
    }

    /// Window length in seconds for the `RateLimit-Policy` `w` parameter (nominal: 86400 for a
    /// day, 30 days for a month).
    #[must_use]
    pub fn nominal_window_secs(&self) -> u64 {
        match self.period {
            QuotaPeriod::Day => 86_400,
            QuotaPeriod::Month => 30 * 86_400,
        }
    }
}

fn calendar_window(zoned: &Zoned, period: QuotaPeriod) -> Option<QuotaWindow> {
    match period {
        QuotaPeriod::Day => {
            let start = zoned.start_of_day().ok()?;
            let end = start.tomorrow().ok()?.start_of_day().ok()?;
            Some(QuotaWindow { id: start.date().to_string(), start: start.timestamp(), end: end.timestamp() })
        }
        QuotaPeriod::Month => {
            let start = zoned.first_of_month().ok()?.start_of_day().ok()?;
            let end = zoned.last_of_month().ok()?.tomorrow().ok()?.start_of_day().ok()?;
            let d = start.date();
            Some(QuotaWindow {
                id: format!("{:04}-{:02}", d.year(), d.month()),
                start: start.timestamp(),
                end: end.timestamp(),
            })
        }
    }
}

/// Only for instants jiff cannot place in the zone (the far ends of its range): fixed UTC
/// windows, so a decision is still made.
fn fixed_window(now: Timestamp, period: QuotaPeriod) -> QuotaWindow {
    let len: i64 = match period {
        QuotaPeriod::Day => 86_400,
        QuotaPeriod::Month => 30 * 86_400,
    };
    let s = now.as_second().div_euclid(len) * len;
    let at = |secs: i64| Timestamp::from_second(secs).unwrap_or(now);
    QuotaWindow { id: format!("f{s}"), start: at(s), end: at(s + len) }
}

/// The outcome of one quota charge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuotaDecision {
    /// Charged; `remaining` units left in the window, which ends in `reset`.
    Allow {
        /// Units left.
        remaining: u64,
        /// Time to the window end.
        reset: Duration,
    },
    /// The window's quota is used up (not charged); it renews at the window end.
    Exhausted {
        /// Time to the window end.
        retry_after: Duration,
    },
    /// The shared store failed and the quota is `on_store_failure: closed`.
    StoreUnavailable,
}

impl QuotaDecision {
    /// True for [`QuotaDecision::Allow`].
    #[must_use]
    pub fn is_allow(&self) -> bool {
        matches!(self, Self::Allow { .. })
    }
}

#[derive(Clone, Copy, Debug)]
struct Count {
    used: u64,
    end: Timestamp,
}

/// Quota counts in this process, bounded: counts of ended windows are dropped when a shard fills;
/// if it is still full, the smallest counts go (counted in
/// `portcullis_quota_local_evictions_total`; those keys start their window again from zero).
pub struct LocalQuotas {
    map: ShardedMap<Count>,
    max_per_shard: usize,
}

impl std::fmt::Debug for LocalQuotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalQuotas").field("max_per_shard", &self.max_per_shard).finish_non_exhaustive()
    }
}

impl Default for LocalQuotas {
    fn default() -> Self {
        Self::new(1 << 20)
    }
}

impl LocalQuotas {
    /// At most about `max_keys` counts.
    #[must_use]
    pub fn new(max_keys: usize) -> Self {
        let map = ShardedMap::new();
        let max_per_shard = (max_keys / map.shard_count()).max(8);
        Self { map, max_per_shard }
    }

    /// Charges `cost` units to `key` (a [`QuotaSpec::state_key`]) unless that passes `limit`.
    pub fn charge(&self, key: &str, limit: u64, window: &QuotaWindow, cost: u64, now: Timestamp) -> QuotaDecision {
        let reset = window.remaining_time(now);
        let (mut map, h) = self.map.lock(key);
        let used = map.get(h, key).map_or(0, |c| c.used);
        let Some(after) = used.checked_add(cost).filter(|a| *a <= limit) else {
            return QuotaDecision::Exhausted { retry_after: reset };
        };
        if let Some(c) = map.get_mut(h, key) {
            c.used = after;
        } else {
            if map.len() >= self.max_per_shard {
                map.retain(|c| c.end > now);
                if map.len() >= self.max_per_shard {
                    let excess = map.len() - (self.max_per_shard - self.max_per_shard / 8);
                    let mut used: Vec<u64> = map.values().map(|c| c.used).collect();
                    let (_, cut, _) = used.select_nth_unstable(excess.saturating_sub(1));
                    let cut = *cut;
                    let mut n = 0;
                    map.retain(|c| {
                        let go = c.used <= cut && n < excess;
                        n += usize::from(go);
                        !go
                    });
                    metrics::counter!("portcullis_quota_local_evictions_total").increment(n as u64);
                }
            }
            map.insert_new(h, key, Count { used: after, end: window.end });
        }
        QuotaDecision::Allow { remaining: limit - after, reset }
    }

    /// Gives back `cost` units charged earlier.
    pub fn refund(&self, key: &str, cost: u64) {
        let (mut map, h) = self.map.lock(key);
        if let Some(c) = map.get_mut(h, key) {
            c.used = c.used.saturating_sub(cost);
        }
    }
}

/// Quota counts in Redis, shared by the cluster, with a local fallback (this node's share,
/// `limit / expected_nodes`, counted from zero) when the store fails and the quota fails open.
#[derive(Debug)]
pub struct RedisQuotas {
    store: Arc<RedisStore>,
    fallback: LocalQuotas,
}

impl RedisQuotas {
    /// Quotas on `store`.
    #[must_use]
    pub fn new(store: Arc<RedisStore>) -> Self {
        Self { store, fallback: LocalQuotas::default() }
    }

    /// Charges `cost` units to `key` unless that passes `limit`; never waits longer than the
    /// store timeout.
    #[expect(clippy::too_many_arguments, reason = "one call carries the whole decision")]
    pub async fn charge(
        &self,
        key: &str,
        limit: u64,
        window: &QuotaWindow,
        cost: u64,
        now: Timestamp,
        mono: Nanos,
        on_failure: OnStoreFailure,
    ) -> QuotaDecision {
        let full = self.store.full_key(key);
        let mut inv = self.store.quota_script().key(&full);
        inv.arg(cost).arg(limit).arg(window.end.as_millisecond());
        let reset = window.remaining_time(now);
        match self.store.run::<Vec<i64>>(&inv, mono).await {
            Ok(r) => match r[..] {
                [1, after] => {
                    QuotaDecision::Allow { remaining: limit.saturating_sub(after.max(0).unsigned_abs()), reset }
                }
                [0, _] => QuotaDecision::Exhausted { retry_after: reset },
                _ => {
                    metrics::counter!("portcullis_ratelimit_store_errors_total", "kind" => "reply").increment(1);
                    self.fail(key, limit, window, cost, now, on_failure)
                }
            },
            Err(_) => self.fail(key, limit, window, cost, now, on_failure),
        }
    }

    fn fail(
        &self,
        key: &str,
        limit: u64,
        window: &QuotaWindow,
        cost: u64,
        now: Timestamp,
        on_failure: OnStoreFailure,
    ) -> QuotaDecision {
        match on_failure {
            OnStoreFailure::Closed => QuotaDecision::StoreUnavailable,
            OnStoreFailure::Open => {
                let share = (limit / u64::from(self.store.config().expected_nodes.max(1))).max(1);
                self.fallback.charge(key, share, window, cost, now)
            }
        }
    }

    /// Gives back `cost` units charged earlier (best effort).
    pub async fn refund(&self, key: &str, cost: u64, mono: Nanos) {
        let full = self.store.full_key(key);
        let mut inv = self.store.quota_refund_script().key(&full);
        inv.arg(cost);
        let _ = self.store.run::<i64>(&inv, mono).await;
        self.fallback.refund(key, cost);
    }
}

/// Where quota counts live.
#[derive(Debug)]
#[non_exhaustive]
pub enum QuotaStore {
    /// In this process.
    Local(LocalQuotas),
    /// In Redis.
    Redis(RedisQuotas),
}

/// The quotas that apply to a request (a plan's), charged together.
#[derive(Clone, Debug)]
pub struct QuotaSet {
    quotas: Vec<QuotaSpec>,
}

/// The outcome of a [`QuotaSet`] charge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaOutcome {
    /// `Exhausted` (the longest wait) before `StoreUnavailable` before the `Allow` with the fewest
    /// units left.
    pub decision: QuotaDecision,
    /// Index of the quota that gave `decision`.
    pub tightest: Option<usize>,
    /// Each quota charged, in order; charging stops at the first that does not allow.
    pub results: Vec<(usize, QuotaDecision)>,
}

impl QuotaSet {
    /// A set of quotas.
    ///
    /// # Errors
    /// Two quotas with the same name.
    pub fn new(quotas: Vec<QuotaSpec>) -> Result<Self, ConfigError> {
        let mut seen = HashSet::new();
        for q in &quotas {
            if !seen.insert(q.name()) {
                return Err(ConfigError::Duplicate { name: q.name().to_owned() });
            }
        }
        Ok(Self { quotas })
    }

    /// The quotas.
    #[must_use]
    pub fn quotas(&self) -> &[QuotaSpec] {
        &self.quotas
    }

    /// `RateLimit-Policy`, `RateLimit` and (when exhausted) `Retry-After` for `outcome`, in the
    /// same syntax as [`crate::RouteLimits::headers`]: `"daily";q=1000;w=86400` and
    /// `"daily";r=12;t=3600` (`t` = seconds to the window end). When rate-limit headers are sent
    /// too, *append* these (a structured-field list may be split over several field lines).
    #[must_use]
    pub fn headers(&self, outcome: &QuotaOutcome) -> Vec<(http::HeaderName, http::HeaderValue)> {
        let mut out = Vec::with_capacity(3);
        let policy: Vec<String> =
            self.quotas.iter().map(|q| format!("\"{}\";q={};w={}", q.name, q.limit, q.nominal_window_secs())).collect();
        if let Ok(v) = http::HeaderValue::from_str(&policy.join(", "))
            && !policy.is_empty()
        {
            out.push((crate::route::RATELIMIT_POLICY.clone(), v));
        }
        let items: Vec<String> = outcome
            .results
            .iter()
            .filter_map(|(i, d)| {
                let q = self.quotas.get(*i)?;
                match d {
                    QuotaDecision::Allow { remaining, reset } => {
                        Some(format!("\"{}\";r={remaining};t={}", q.name, crate::route::ceil_secs(*reset)))
                    }
                    QuotaDecision::Exhausted { retry_after } => {
                        Some(format!("\"{}\";r=0;t={}", q.name, crate::route::ceil_secs(*retry_after).max(1)))
                    }
                    QuotaDecision::StoreUnavailable => None,
                }
            })
            .collect();
        if let Ok(v) = http::HeaderValue::from_str(&items.join(", "))
            && !items.is_empty()
        {
            out.push((crate::route::RATELIMIT.clone(), v));
        }
        match outcome.decision {
            QuotaDecision::Exhausted { retry_after } => out.push((
                http::header::RETRY_AFTER,
                http::HeaderValue::from(crate::route::ceil_secs(retry_after).max(1)),
            )),
            QuotaDecision::StoreUnavailable => out.push((http::header::RETRY_AFTER, http::HeaderValue::from(1u64))),
            QuotaDecision::Allow { .. } => {}
        }
        out
    }

    /// Charges `cost` to every quota; when one does not allow, earlier charges are given back.
    pub async fn charge(
        &self,
        store: &QuotaStore,
        src: &dyn KeySource,
        cost: u64,
        now: Timestamp,
        mono: Nanos,
    ) -> QuotaOutcome {
        let mut results = Vec::with_capacity(self.quotas.len());
        let mut charged: Vec<String> = Vec::with_capacity(self.quotas.len());
        for (i, q) in self.quotas.iter().enumerate() {
            let window = q.window(now);
            let key = q.state_key(src, &window);
            let d = match store {
                QuotaStore::Local(l) => l.charge(&key, q.limit, &window, cost, now),
                QuotaStore::Redis(r) => r.charge(&key, q.limit, &window, cost, now, mono, q.on_store_failure).await,
            };
            results.push((i, d));
            if !d.is_allow() {
                for k in &charged {
                    match store {
                        QuotaStore::Local(l) => l.refund(k, cost),
                        QuotaStore::Redis(r) => r.refund(k, cost, mono).await,
                    }
                }
                break;
            }
            charged.push(key);
        }
        let rank = |d: &QuotaDecision| -> (u8, u128) {
            match d {
                QuotaDecision::Exhausted { retry_after } => (2, retry_after.as_nanos()),
                QuotaDecision::StoreUnavailable => (1, 0),
                QuotaDecision::Allow { remaining, .. } => (0, u128::from(u64::MAX - remaining)),
            }
        };
        let tightest = results.iter().enumerate().max_by_key(|(_, (_, d))| rank(d)).map(|(i, _)| i);
        let decision =
            tightest.map_or(QuotaDecision::Allow { remaining: u64::MAX, reset: Duration::ZERO }, |i| results[i].1);
        QuotaOutcome { decision, tightest: tightest.map(|i| results[i].0), results }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::RequestKeys;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn daily(limit: u64, tz: &str) -> QuotaSpec {
        QuotaSpec::new("daily", KeySpec::Consumer, limit, QuotaPeriod::Day, tz, OnStoreFailure::Open).unwrap()
    }

    #[test]
    fn day_window_in_a_zone() {
        let q = daily(10, "America/New_York");
        // 03:30 UTC on the 24th is 22:30 on the 23rd in New York (UTC-5 in November).
        let w = q.window(ts("2026-11-24T03:30:00Z"));
        assert_eq!(w.id, "2026-11-23");
        assert_eq!(w.start, ts("2026-11-23T05:00:00Z"));
        assert_eq!(w.end, ts("2026-11-24T05:00:00Z"));
        assert_eq!(w.remaining_time(ts("2026-11-24T03:30:00Z")), Duration::from_secs(90 * 60));
    }

    #[test]
    fn dst_days_are_23_and_25_hours() {
        let q = daily(10, "Europe/Paris");
        let spring = q.window(ts("2026-03-29T12:00:00Z"));
        assert_eq!(spring.end.duration_since(spring.start).as_secs(), 23 * 3600);
        let autumn = q.window(ts("2026-10-25T12:00:00Z"));
        assert_eq!(autumn.end.duration_since(autumn.start).as_secs(), 25 * 3600);
    }

    #[test]
    fn month_window() {
        let q =
            QuotaSpec::new("monthly", KeySpec::Org, 5, QuotaPeriod::Month, "Asia/Tokyo", OnStoreFailure::Open).unwrap();
        // 2026-02-28T16:00Z is 2026-03-01 01:00 in Tokyo.
        let w = q.window(ts("2026-02-28T16:00:00Z"));
        assert_eq!(w.id, "2026-03");
        assert_eq!(w.start, ts("2026-02-28T15:00:00Z"));
        assert_eq!(w.end, ts("2026-03-31T15:00:00Z"));
    }

    #[test]
    fn unknown_zone_is_a_config_error() {
        let e = QuotaSpec::new("d", KeySpec::Org, 1, QuotaPeriod::Day, "Mars/Olympus", OnStoreFailure::Open);
        assert!(matches!(e, Err(ConfigError::BadTimeZone { .. })));
    }

    #[test]
    fn local_quota_exhausts_exactly_and_renews_next_window() {
        let q = daily(3, "UTC");
        let store = QuotaStore::Local(LocalQuotas::default());
        let set = QuotaSet::new(vec![q]).unwrap();
        let src = RequestKeys { consumer: Some("c1"), route: "r", ..Default::default() };
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let now = ts("2026-11-23T23:00:00Z");
        let outcomes: Vec<_> = (0..5).map(|_| rt.block_on(set.charge(&store, &src, 1, now, Nanos(0)))).collect();
        assert_eq!(outcomes[2].decision, QuotaDecision::Allow { remaining: 0, reset: Duration::from_secs(3600) });
        assert_eq!(outcomes[3].decision, QuotaDecision::Exhausted { retry_after: Duration::from_secs(3600) });
        let h = set.headers(&outcomes[3]);
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.to_str().unwrap().to_owned());
        assert_eq!(get("ratelimit-policy").as_deref(), Some("\"daily\";q=3;w=86400"));
        assert_eq!(get("ratelimit").as_deref(), Some("\"daily\";r=0;t=3600"));
        assert_eq!(get("retry-after").as_deref(), Some("3600"));
        let allowed = set.headers(&outcomes[0]);
        assert_eq!(allowed[1].1, "\"daily\";r=2;t=3600");
        assert_eq!(allowed.len(), 2, "no Retry-After when allowed");
        let next = ts("2026-11-24T00:00:00Z");
        assert!(rt.block_on(set.charge(&store, &src, 1, next, Nanos(0))).decision.is_allow());
        let other = RequestKeys { consumer: Some("c2"), route: "r", ..Default::default() };
        assert!(rt.block_on(set.charge(&store, &other, 1, now, Nanos(0))).decision.is_allow());
    }

    #[test]
    fn an_exhausted_monthly_quota_refunds_the_daily_charge() {
        let d = daily(100, "UTC");
        let m =
            QuotaSpec::new("monthly", KeySpec::Consumer, 2, QuotaPeriod::Month, "UTC", OnStoreFailure::Open).unwrap();
        let store = QuotaStore::Local(LocalQuotas::default());
        let set = QuotaSet::new(vec![d, m]).unwrap();
        let src = RequestKeys { consumer: Some("c1"), route: "r", ..Default::default() };
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let now = ts("2026-11-23T10:00:00Z");
        for _ in 0..5 {
            rt.block_on(set.charge(&store, &src, 1, now, Nanos(0)));
        }
        let o = rt.block_on(set.charge(&store, &src, 1, now, Nanos(0)));
        assert!(matches!(o.decision, QuotaDecision::Exhausted { .. }));
        assert_eq!(o.tightest, Some(1));
        assert!(matches!(o.results[0].1, QuotaDecision::Allow { remaining: 97, .. }), "{o:?}");
    }
}
