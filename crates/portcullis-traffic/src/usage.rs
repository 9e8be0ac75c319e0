//! [`UsageMeter`]: counts per day, consumer and route, aggregated in memory and drained in
//! batches for the integrator to persist.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use jiff::civil::Date;

/// One aggregated row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UsageRow {
    /// The day (in the time zone the caller chose, usually the plan's).
    pub day: Date,
    /// Consumer id.
    pub consumer: String,
    /// Route id.
    pub route: String,
    /// Requests counted since the last drain.
    pub count: u64,
}

type Key = (Date, Box<str>, Box<str>);

/// Aggregates usage in memory. Memory is bounded by `max_rows` distinct (day, consumer, route)
/// rows between two drains: counts for new rows past that are dropped and counted in
/// `portcullis_usage_dropped_total` (drain more often if it ever moves).
#[derive(Debug)]
pub struct UsageMeter {
    shards: Box<[Mutex<HashMap<Key, u64>>]>,
    max_rows_per_shard: usize,
    dropped: AtomicU64,
}

impl Default for UsageMeter {
    fn default() -> Self {
        Self::new(1 << 18)
    }
}

impl UsageMeter {
    /// A meter holding at most about `max_rows` rows between drains.
    #[must_use]
    pub fn new(max_rows: usize) -> Self {
        let n = 16;
        Self {
            shards: (0..n).map(|_| Mutex::new(HashMap::new())).collect(),
            max_rows_per_shard: (max_rows / n).max(1),
            dropped: AtomicU64::new(0),
        }
    }

    /// Adds `count` to the row (day, consumer, route).
    pub fn record(&self, day: Date, consumer: &str, route: &str, count: u64) {
        // Spread rows by a cheap hash of the consumer so threads rarely meet on one lock.
        let h = consumer.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(b)));
        let shard = &self.shards[h % self.shards.len()];
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let key: Key = (day, consumer.into(), route.into());
        if let Some(c) = map.get_mut(&key) {
            *c = c.saturating_add(count);
        } else if map.len() < self.max_rows_per_shard {
            map.insert(key, count);
        } else {
            self.dropped.fetch_add(count, Ordering::Relaxed);
            metrics::counter!("portcullis_usage_dropped_total").increment(count);
        }
    }

    /// Takes every row counted so far (sorted), leaving the meter empty. Persist with an
    /// upsert that *adds* `count` to the stored row.
    #[must_use]
    pub fn drain(&self) -> Vec<UsageRow> {
        let mut rows = Vec::new();
        for shard in &*self.shards {
            let taken = std::mem::take(&mut *shard.lock().unwrap_or_else(PoisonError::into_inner));
            rows.extend(taken.into_iter().map(|((day, consumer, route), count)| UsageRow {
                day,
                consumer: consumer.into(),
                route: route.into(),
                count,
            }));
        }
        rows.sort();
        rows
    }

    /// Units dropped because the meter was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The calendar day of `now` in `tz`, for [`UsageMeter::record`].
#[must_use]
pub fn day_in(tz: &jiff::tz::TimeZone, now: jiff::Timestamp) -> Date {
    now.to_zoned(tz.clone()).date()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_and_drains_in_batches() {
        let m = UsageMeter::default();
        let d1 = jiff::civil::date(2026, 11, 23);
        let d2 = jiff::civil::date(2026, 11, 24);
        for _ in 0..3 {
            m.record(d1, "c1", "orders", 1);
        }
        m.record(d1, "c1", "users", 2);
        m.record(d2, "c2", "orders", 5);
        let rows = m.drain();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], UsageRow { day: d1, consumer: "c1".into(), route: "orders".into(), count: 3 });
        assert_eq!(rows[1].count, 2);
        assert_eq!(rows[2], UsageRow { day: d2, consumer: "c2".into(), route: "orders".into(), count: 5 });
        assert!(m.drain().is_empty(), "a drain empties the meter");
        m.record(d1, "c1", "orders", 1);
        assert_eq!(m.drain()[0].count, 1);
    }

    #[test]
    fn bounded_rows_count_what_they_drop() {
        let m = UsageMeter::new(16); // one row per shard
        let d = jiff::civil::date(2026, 1, 1);
        for i in 0..100 {
            m.record(d, "same", &format!("r{i}"), 1);
        }
        assert_eq!(m.drain().len(), 1);
        assert_eq!(m.dropped(), 99);
    }

    #[test]
    fn day_in_zone() {
        let tz = jiff::tz::TimeZone::get("Asia/Tokyo").unwrap();
        let now: jiff::Timestamp = "2026-11-23T16:00:00Z".parse().unwrap();
        assert_eq!(day_in(&tz, now), jiff::civil::date(2026, 11, 24));
    }
}
