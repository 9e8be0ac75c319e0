use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};

use portcullis_core::{Outcome, RequestCtx, Stage};
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

/// Where access log lines go. Writing never blocks the request: lines go through a bounded,
/// lossy queue to a background writer (a full queue drops lines rather than stall traffic).
#[derive(Clone)]
pub struct AccessLogSink(Inner);

#[derive(Clone)]
enum Inner {
    // The guard flushes and stops the writer thread when the last sink clone is dropped.
    Writer(NonBlocking, #[expect(dead_code, reason = "held for its Drop")] Arc<WorkerGuard>),
    Memory(Arc<Mutex<Vec<String>>>),
}

impl fmt::Debug for AccessLogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Inner::Writer(..) => "AccessLogSink::Writer",
            Inner::Memory(_) => "AccessLogSink::Memory",
        })
    }
}

impl AccessLogSink {
    /// Lines are written to `writer` by a background thread.
    pub fn writer(writer: impl Write + Send + 'static) -> Self {
        let (nb, guard) = NonBlockingBuilder::default().lossy(true).buffered_lines_limit(64 * 1024).finish(writer);
        Self(Inner::Writer(nb, Arc::new(guard)))
    }

    /// Lines are kept in memory (for tests); the returned handle reads them.
    pub fn memory() -> (Self, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        (Self(Inner::Memory(lines.clone())), lines)
    }

    fn write_line(&self, line: String) {
        match &self.0 {
            Inner::Writer(nb, _) => {
                let mut w = nb.clone();
                let mut bytes = line.into_bytes();
                bytes.push(b'\n');
                // A failed log write must never fail the request.
                let _ = w.write_all(&bytes);
            }
            Inner::Memory(lines) => {
                if let Ok(mut l) = lines.lock() {
                    l.push(line);
                }
            }
        }
    }
}

/// Writes one JSON line per request: time, request id, route, method, path template, status,
/// latency, bytes, upstream, decision. Never bodies, never headers or credentials, never the raw
/// path (it may carry ids and personal data), the query string only if configured.
#[derive(Debug, Clone)]
pub struct AccessLogStage {
    sink: AccessLogSink,
    log_query: bool,
}

impl AccessLogStage {
    /// A stage writing to `sink`; `log_query` adds the raw query string.
    pub fn new(sink: AccessLogSink, log_query: bool) -> Self {
        Self { sink, log_query }
    }

    /// The JSON document for one request.
    pub fn line(&self, ctx: &RequestCtx, outcome: &Outcome) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "time": humantime::format_rfc3339_millis(ctx.received_at_wall).to_string(),
            "request_id": ctx.request_id.as_str(),
            "listener": &*ctx.listener,
            "client_ip": ctx.client_ip.to_string(),
            "tls": ctx.tls,
            "protocol": format!("{:?}", ctx.version),
            "method": crate::method_label(&ctx.method),
            "route": ctx.route.as_deref(),
            "path_template": ctx.path_template.as_deref(),
            "status": outcome.status,
            "latency_ms": outcome.duration.as_secs_f64() * 1000.0,
            "upstream_ms": outcome.upstream_duration.map(|d| d.as_secs_f64() * 1000.0),
            "bytes_in": outcome.bytes_in,
            "bytes_out": outcome.bytes_out,
            "upstream": ctx.upstream.as_deref(),
            "decision": ctx.decision.label(),
            "stage": match &ctx.decision {
                portcullis_core::Decision::Deny { stage, .. } => Some(*stage),
                _ => None,
            },
            "reason": ctx.decision.reason(),
            "aborted": outcome.aborted,
        });
        if self.log_query
            && let (Some(q), Some(map)) = (&ctx.query, doc.as_object_mut())
        {
            map.insert("query".into(), serde_json::Value::String(q.clone()));
        }
        doc
    }
}

impl Stage for AccessLogStage {
    fn name(&self) -> &'static str {
        "access-log"
    }

    fn on_complete(&self, ctx: &RequestCtx, outcome: &Outcome) {
        self.sink.write_line(self.line(ctx, outcome).to_string());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use portcullis_core::RequestId;

    use super::*;

    fn ctx() -> RequestCtx {
        let mut ctx =
            RequestCtx::new(RequestId::generate(), "127.0.0.1:5555".parse().unwrap(), Arc::from("public"), false);
        ctx.method = http::Method::GET;
        ctx.path = "/customers/42".into();
        ctx.query = Some("token=secret".into());
        ctx.route = Some(Arc::from("customers"));
        ctx.path_template = Some(Arc::from("/customers/{id}"));
        ctx
    }

    #[test]
    fn logs_metadata_not_raw_path_or_query() {
        let (sink, lines) = AccessLogSink::memory();
        let stage = AccessLogStage::new(sink, false);
        stage.on_complete(&ctx(), &Outcome::new(200, 10, 20, Duration::from_millis(3)));
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 1);
        let doc: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(doc["path_template"], "/customers/{id}");
        assert_eq!(doc["status"], 200);
        assert_eq!(doc["decision"], "allow");
        assert!(!lines[0].contains("/customers/42"));
        assert!(!lines[0].contains("secret"));
    }

    #[test]
    fn logs_query_only_when_asked() {
        let stage = AccessLogStage::new(AccessLogSink::memory().0, true);
        let doc = stage.line(&ctx(), &Outcome::new(200, 0, 0, Duration::ZERO));
        assert_eq!(doc["query"], "token=secret");
    }
}
