use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use portcullis_core::{Decision, Outcome, RequestCtx, Stage};
use serde::Serialize;

/// Lines waiting for the writer thread beyond this are dropped (and counted) rather than let a
/// slow disk grow memory or stall requests.
const MAX_PENDING: usize = 8 * 1024 * 1024;
/// How often the writer thread flushes: one write call per batch, not per line.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Where access log lines go. Requests append to an in-memory batch under a short lock; a
/// background thread writes each batch with one call. Writing never blocks a request on I/O.
#[derive(Clone)]
pub struct AccessLogSink(Arc<Inner>);

enum Inner {
    Batched { batch: Arc<Batch>, thread: Mutex<Option<std::thread::JoinHandle<()>>> },
    Memory(Arc<Mutex<Vec<String>>>),
}

#[derive(Default)]
struct Batch {
    buf: Mutex<Vec<u8>>,
    stop: AtomicBool,
}

impl fmt::Debug for AccessLogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match &*self.0 {
            Inner::Batched { .. } => "AccessLogSink::Batched",
            Inner::Memory(_) => "AccessLogSink::Memory",
        })
    }
}

impl AccessLogSink {
    /// Lines are written to `writer` by a background thread, in batches.
    pub fn writer(mut writer: impl Write + Send + 'static) -> Self {
        let batch = Arc::new(Batch::default());
        let worker = batch.clone();
        let thread = std::thread::Builder::new()
            .name("portcullis-access-log".into())
            .spawn(move || {
                let mut out = Vec::new();
                loop {
                    let stopping = worker.stop.load(Ordering::Acquire);
                    {
                        let mut buf = worker.buf.lock().unwrap_or_else(PoisonError::into_inner);
                        std::mem::swap(&mut *buf, &mut out);
                    }
                    if !out.is_empty() {
                        // A failed log write must never fail requests; the line is lost.
                        let _ = writer.write_all(&out).and_then(|()| writer.flush());
                        out.clear();
                    }
                    if stopping {
                        return;
                    }
                    std::thread::park_timeout(FLUSH_EVERY);
                }
            })
            .ok();
        Self(Arc::new(Inner::Batched { batch, thread: Mutex::new(thread) }))
    }

    /// Lines are kept in memory (for tests); the returned handle reads them.
    pub fn memory() -> (Self, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        (Self(Arc::new(Inner::Memory(lines.clone()))), lines)
    }

    fn write(&self, line: &Line<'_>) {
        match &*self.0 {
            Inner::Batched { batch, .. } => {
                let mut buf = batch.buf.lock().unwrap_or_else(PoisonError::into_inner);
                if buf.len() > MAX_PENDING {
                    drop(buf);
                    metrics::counter!("portcullis_access_log_dropped_total").increment(1);
                    return;
                }
                if serde_json::to_writer(&mut *buf, line).is_ok() {
                    buf.push(b'\n');
                }
            }
            Inner::Memory(lines) => {
                if let (Ok(s), Ok(mut l)) = (serde_json::to_string(line), lines.lock()) {
                    l.push(s);
                }
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last sink is gone: flush what is pending and stop the writer.
        if let Inner::Batched { batch, thread } = self {
            batch.stop.store(true, Ordering::Release);
            if let Some(t) = thread.get_mut().unwrap_or_else(PoisonError::into_inner).take() {
                t.thread().unpark();
                let _ = t.join();
            }
        }
    }
}

/// One access log line. Borrowed fields: building it allocates nothing.
#[derive(Serialize)]
struct Line<'a> {
    time: Rfc3339,
    request_id: &'a str,
    listener: &'a str,
    client_ip: IpAddr,
    tls: bool,
    protocol: &'static str,
    method: &'static str,
    route: Option<&'a str>,
    path_template: Option<&'a str>,
    status: u16,
    latency_ms: f64,
    upstream_ms: Option<f64>,
    bytes_in: u64,
    bytes_out: u64,
    upstream: Option<&'a str>,
    decision: &'static str,
    stage: Option<&'static str>,
    reason: Option<&'static str>,
    aborted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_method: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    org: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<&'a str>,
}

struct Rfc3339(std::time::SystemTime);

impl Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(self.0))
    }
}

fn protocol(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "other",
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

    fn build<'a>(&self, ctx: &'a RequestCtx, outcome: &Outcome) -> Line<'a> {
        Line {
            time: Rfc3339(ctx.received_at_wall),
            request_id: ctx.request_id.as_str(),
            listener: &ctx.listener,
            client_ip: ctx.client_ip,
            tls: ctx.tls,
            protocol: protocol(ctx.version),
            method: crate::method_label(&ctx.method),
            route: ctx.route.as_deref(),
            path_template: ctx.path_template.as_deref(),
            status: outcome.status,
            latency_ms: outcome.duration.as_secs_f64() * 1000.0,
            upstream_ms: outcome.upstream_duration.map(|d| d.as_secs_f64() * 1000.0),
            bytes_in: outcome.bytes_in,
            bytes_out: outcome.bytes_out,
            upstream: ctx.upstream.as_deref(),
            decision: ctx.decision.label(),
            stage: match &ctx.decision {
                Decision::Deny { stage, .. } => Some(*stage),
                _ => None,
            },
            reason: ctx.decision.reason(),
            aborted: outcome.aborted,
            auth_method: ctx.principal.as_ref().map(|p| p.method.as_str()),
            org: ctx.principal.as_ref().and_then(|p| p.org_name.as_deref()),
            consumer: ctx.principal.as_ref().and_then(|p| p.consumer_name.as_deref()),
            credential_id: ctx.principal.as_ref().and_then(|p| p.credential_id.as_deref()),
            query: if self.log_query { ctx.query.as_deref() } else { None },
        }
    }

    /// The JSON document for one request.
    pub fn line(&self, ctx: &RequestCtx, outcome: &Outcome) -> serde_json::Value {
        serde_json::to_value(self.build(ctx, outcome)).unwrap_or_default()
    }
}

impl Stage for AccessLogStage {
    fn name(&self) -> &'static str {
        "access-log"
    }

    fn on_complete(&self, ctx: &RequestCtx, outcome: &Outcome) {
        self.sink.write(&self.build(ctx, outcome));
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
        assert_eq!(doc["protocol"], "HTTP/1.1");
        assert!(doc["time"].as_str().unwrap().ends_with('Z'));
        assert!(!lines[0].contains("/customers/42"));
        assert!(!lines[0].contains("secret"));
    }

    #[test]
    fn logs_query_only_when_asked() {
        let stage = AccessLogStage::new(AccessLogSink::memory().0, true);
        let doc = stage.line(&ctx(), &Outcome::new(200, 0, 0, Duration::ZERO));
        assert_eq!(doc["query"], "token=secret");
    }

    #[test]
    fn batched_writer_writes_every_line_and_flushes_on_drop() {
        #[derive(Clone, Default)]
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Shared::default();
        let stage = AccessLogStage::new(AccessLogSink::writer(out.clone()), false);
        for _ in 0..1000 {
            stage.on_complete(&ctx(), &Outcome::new(200, 0, 0, Duration::ZERO));
        }
        drop(stage);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1000);
        assert!(text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    }
}
