//! Usage rows: requests the upstream served, per day, consumer and route, added up by every node
//! (an upsert that adds), and reported per period for reconciliation against plans.

use serde::Serialize;

use crate::StoreError;

/// Counts to add to one (day, consumer, route) row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// The day, `YYYY-MM-DD` (in the gateway's usage time zone).
    pub day: String,
    /// The consumer's id.
    pub consumer_id: String,
    /// The route's name.
    pub route: String,
    /// Requests to add.
    pub count: u64,
}

/// Which rows a report sums.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFilter {
    /// `YYYY-MM` (a month) or `YYYY-MM-DD` (a day).
    pub period: String,
    /// Only this consumer (by id).
    pub consumer_id: Option<String>,
    /// Only this route.
    pub route: Option<String>,
}

/// One line of a usage report: the total for a consumer and route over the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageLine {
    /// The period asked for.
    pub period: String,
    /// The consumer's id.
    pub consumer_id: String,
    /// The consumer's name, if the consumer still exists.
    pub consumer_name: Option<String>,
    /// The route's name.
    pub route: String,
    /// Requests served.
    pub count: u64,
}

impl UsageLine {
    /// The CSV header matching [`UsageLine::csv`].
    pub const CSV_HEADER: &'static str = "period,consumer_id,consumer_name,route,count";

    /// Lines as CSV (RFC 4180, CRLF line ends, header first). Fields are quoted when needed, and a
    /// field that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) is
    /// prefixed with `'`.
    pub fn csv(lines: &[UsageLine]) -> String {
        let mut out = String::from(Self::CSV_HEADER);
        out.push_str("\r\n");
        for l in lines {
            let count = l.count.to_string();
            let fields =
                [l.period.as_str(), &l.consumer_id, l.consumer_name.as_deref().unwrap_or(""), &l.route, &count];
            let cells: Vec<String> = fields.iter().map(|f| csv_cell(f)).collect();
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        }
        out
    }
}

fn csv_cell(value: &str) -> String {
    let value =
        if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

impl UsageRecord {
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        if !is_day(&self.day) {
            return Err(StoreError::invalid("usage day must be YYYY-MM-DD"));
        }
        if self.consumer_id.is_empty() || self.route.is_empty() {
            return Err(StoreError::invalid("usage consumer and route must not be empty"));
        }
        if i64::try_from(self.count).is_err() {
            return Err(StoreError::invalid("usage count too large"));
        }
        Ok(())
    }
}

impl UsageFilter {
    /// The period, checked: digits and dashes only, so it is safe as a `LIKE` prefix.
    pub(crate) fn checked_period(&self) -> Result<&str, StoreError> {
        let p = self.period.as_str();
        if is_day(p) || is_month(p) {
            Ok(p)
        } else {
            Err(StoreError::invalid("usage period must be YYYY-MM or YYYY-MM-DD"))
        }
    }
}

fn shape(s: &str, pattern: &str) -> bool {
    s.len() == pattern.len()
        && s.bytes().zip(pattern.bytes()).all(|(c, p)| if p == b'9' { c.is_ascii_digit() } else { c == p })
}

fn is_day(s: &str) -> bool {
    shape(s, "9999-99-99")
}

fn is_month(s: &str) -> bool {
    shape(s, "9999-99")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let line = |name: &str| UsageLine {
            period: "2026-11".into(),
            consumer_id: "c1".into(),
            consumer_name: Some(name.into()),
            route: "orders".into(),
            count: 7,
        };
        let csv = UsageLine::csv(&[line("plain"), line("a,\"b\""), line("=HYPERLINK(\"x\")")]);
        let rows: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(rows[0], UsageLine::CSV_HEADER);
        assert_eq!(rows[1], "2026-11,c1,plain,orders,7");
        assert_eq!(rows[2], "2026-11,c1,\"a,\"\"b\"\"\",orders,7");
        assert_eq!(rows[3], "2026-11,c1,\"'=HYPERLINK(\"\"x\"\")\",orders,7");
    }

    #[test]
    fn periods_are_checked() {
        for ok in ["2026-11", "2026-11-23"] {
            assert!(UsageFilter { period: ok.into(), ..Default::default() }.checked_period().is_ok());
        }
        for bad in ["2026", "2026-1", "2026-11%", "%", "2026-11-23'--", ""] {
            assert!(UsageFilter { period: bad.into(), ..Default::default() }.checked_period().is_err(), "{bad}");
        }
        let r = UsageRecord { day: "2026-11".into(), consumer_id: "c".into(), route: "r".into(), count: 1 };
        assert!(r.validate().is_err());
    }
}
