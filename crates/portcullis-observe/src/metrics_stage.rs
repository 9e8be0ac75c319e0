use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use metrics::{Counter, Histogram, Label, SharedString};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use portcullis_core::{Outcome, RequestCtx, Stage};

/// Installs the process-wide Prometheus recorder once and returns its handle (later calls return
/// the same handle).
pub fn install_recorder() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
                )
                .ok()?
                .install_recorder()
                .ok()
        })
        .clone()
}

/// A bounded label for a method: unknown methods become `OTHER` so a client cannot blow up the
/// number of time series.
pub fn method_label(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// Counts requests and their latency per listener, route, method, status and decision. Labels are
/// bounded: route names come from the config, never from the request. Metric handles are cached
/// per label set, so the hot path does one read-locked lookup instead of building keys.
#[derive(Debug, Default)]
pub struct MetricsStage {
    handles: RwLock<HashMap<HandleKey, Handles>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct HandleKey {
    listener: Arc<str>,
    route: Option<Arc<str>>,
    method: &'static str,
    status: &'static str,
    decision: &'static str,
    reason: Option<&'static str>,
}

#[derive(Debug, Clone)]
struct Handles {
    requests: Counter,
    rejected: Option<Counter>,
    duration: Histogram,
    upstream_duration: Histogram,
    bytes_in: Counter,
    bytes_out: Counter,
}

impl Handles {
    fn register(k: &HandleKey) -> Self {
        let route = k.route.clone().map_or(SharedString::const_str(""), SharedString::from);
        let labels = vec![
            Label::new("listener", SharedString::from(k.listener.clone())),
            Label::new("route", route.clone()),
            Label::from_static_parts("method", k.method),
            Label::from_static_parts("status", k.status),
            Label::from_static_parts("decision", k.decision),
        ];
        Self {
            requests: metrics::counter!("portcullis_requests_total", labels),
            rejected: k
                .reason
                .map(|r| metrics::counter!("portcullis_rejected_total", "reason" => r, "route" => route.clone())),
            duration: metrics::histogram!("portcullis_request_duration_seconds", "route" => route.clone()),
            upstream_duration: metrics::histogram!("portcullis_upstream_duration_seconds", "route" => route),
            bytes_in: metrics::counter!("portcullis_request_bytes_total"),
            bytes_out: metrics::counter!("portcullis_response_bytes_total"),
        }
    }
}

impl Stage for MetricsStage {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn on_complete(&self, ctx: &RequestCtx, outcome: &Outcome) {
        let key = HandleKey {
            listener: ctx.listener.clone(),
            route: ctx.route.clone(),
            method: method_label(&ctx.method),
            status: status_label(outcome.status),
            decision: ctx.decision.label(),
            reason: ctx.decision.reason(),
        };
        let cached = self.handles.read().ok().and_then(|h| h.get(&key).cloned());
        let h = match cached {
            Some(h) => h,
            None => {
                let h = Handles::register(&key);
                if let Ok(mut map) = self.handles.write() {
                    map.insert(key, h.clone());
                }
                h
            }
        };
        h.requests.increment(1);
        if let Some(r) = &h.rejected {
            r.increment(1);
        }
        h.duration.record(outcome.duration.as_secs_f64());
        if let Some(d) = outcome.upstream_duration {
            h.upstream_duration.record(d.as_secs_f64());
        }
        h.bytes_in.increment(outcome.bytes_in);
        h.bytes_out.increment(outcome.bytes_out);
    }
}

fn status_label(status: u16) -> &'static str {
    const CODES: [&str; 6] = ["0", "1xx", "2xx", "3xx", "4xx", "5xx"];
    match status {
        200 => "200",
        101 => "101",
        405 => "405",
        408 => "408",
        413 => "413",
        414 => "414",
        431 => "431",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        s => CODES.get(usize::from(s / 100)).copied().unwrap_or("other"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(method_label(&http::Method::from_bytes(b"FOOBAR").unwrap()), "OTHER");
        assert_eq!(status_label(201), "2xx");
        assert_eq!(status_label(404), "404");
        assert_eq!(status_label(999), "other");
        assert_eq!(status_label(0), "0");
    }
}
