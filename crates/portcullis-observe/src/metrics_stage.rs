use std::sync::OnceLock;

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
/// bounded: route names come from the config, never from the request.
#[derive(Debug, Clone, Default)]
pub struct MetricsStage;

impl Stage for MetricsStage {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn on_complete(&self, ctx: &RequestCtx, outcome: &Outcome) {
        let route = ctx.route.as_deref().unwrap_or("").to_owned();
        let status = status_label(outcome.status);
        let labels = [
            ("listener", ctx.listener.to_string()),
            ("route", route.clone()),
            ("method", method_label(&ctx.method).to_owned()),
            ("status", status.to_owned()),
            ("decision", ctx.decision.label().to_owned()),
        ];
        metrics::counter!("portcullis_requests_total", &labels).increment(1);
        metrics::histogram!("portcullis_request_duration_seconds", "route" => route.clone())
            .record(outcome.duration.as_secs_f64());
        if let Some(d) = outcome.upstream_duration {
            metrics::histogram!("portcullis_upstream_duration_seconds", "route" => route.clone())
                .record(d.as_secs_f64());
        }
        if let Some(reason) = ctx.decision.reason() {
            metrics::counter!("portcullis_rejected_total", "reason" => reason, "route" => route).increment(1);
        }
        metrics::counter!("portcullis_request_bytes_total").increment(outcome.bytes_in);
        metrics::counter!("portcullis_response_bytes_total").increment(outcome.bytes_out);
    }
}

fn status_label(status: u16) -> &'static str {
    const CODES: [&str; 6] = ["0", "1xx", "2xx", "3xx", "4xx", "5xx"];
    match status {
        200 => "200",
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
