//! Upstream pools: one pooled HTTP client per upstream, round-robin over its targets, passive
//! health (eject after repeated connect failures), one retry of idempotent requests elsewhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use portcullis_config::{Target, UpstreamConfig, UpstreamProtocol};
use rustls::pki_types::ServerName;

use crate::body::ProxyBody;

struct TargetState {
    target: Target,
    authority: Authority,
    failures: AtomicU32,
    /// Milliseconds since the pool's epoch until which the target is out; 0 when in.
    ejected_until: AtomicU64,
}

thread_local! {
    /// The index of the worker thread running this code (0 outside workers).
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks the current thread as worker `i`: it uses its own upstream connections.
pub(crate) fn set_worker(i: usize) {
    WORKER.with(|w| w.set(i));
}

/// A pool of connections to one upstream's targets. Each worker thread has its own client (and
/// so its own connections, driven by its own event loop); target health is shared.
pub(crate) struct UpstreamPool {
    cfg: Arc<UpstreamConfig>,
    clients: Vec<Client<HttpsConnector<HttpConnector>, ProxyBody>>,
    targets: Vec<TargetState>,
    next: AtomicUsize,
    epoch: Instant,
}

/// Why an upstream call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("no healthy target")]
    NoHealthyTarget,
    #[error("connect to {target} failed")]
    Connect { target: Arc<str>, source: hyper_util::client::legacy::Error },
    #[error("request to {target} failed")]
    Request { target: Arc<str>, source: hyper_util::client::legacy::Error },
    #[error("no response head from {target} in time")]
    Timeout { target: Arc<str> },
    #[error("the upstream switched protocols unasked")]
    UnexpectedUpgrade,
    #[error("invalid upstream URI")]
    Uri(#[from] http::Error),
}

/// A request body that is either fully in memory (replayable for a retry) or streaming.
pub(crate) enum OutBody {
    Full(Bytes),
    Stream(ProxyBody),
}

impl UpstreamPool {
    pub(crate) fn new(
        cfg: Arc<UpstreamConfig>,
        connect_timeout: Duration,
        workers: usize,
    ) -> Result<Self, rustls::Error> {
        let clients = (0..workers.max(1)).map(|_| Self::client(&cfg, connect_timeout)).collect::<Result<_, _>>()?;
        let targets = cfg
            .targets
            .iter()
            .filter_map(|t| {
                Some(TargetState {
                    authority: t.authority.parse().ok()?,
                    target: t.clone(),
                    failures: AtomicU32::new(0),
                    ejected_until: AtomicU64::new(0),
                })
            })
            .collect();
        Ok(Self { cfg, clients, targets, next: AtomicUsize::new(0), epoch: Instant::now() })
    }

    fn client(
        cfg: &UpstreamConfig,
        connect_timeout: Duration,
    ) -> Result<Client<HttpsConnector<HttpConnector>, ProxyBody>, rustls::Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let tls = crate::tls::upstream_client_config(cfg)?;
        let fixed: Option<ServerName<'static>> = cfg.server_name.clone();
        let resolver = move |uri: &http::Uri| -> Result<ServerName<'static>, BoxResolveError> {
            if let Some(n) = &fixed {
                return Ok(n.clone());
            }
            let host = uri.host().unwrap_or_default();
            let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
            ServerName::try_from(host.to_owned()).map_err(|e| Box::new(e) as BoxResolveError)
        };
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .with_server_name_resolver(resolver);
        let connector = match cfg.protocol {
            UpstreamProtocol::Http1 => builder.enable_http1().wrap_connector(http),
            UpstreamProtocol::Http2 => builder.enable_http2().wrap_connector(http),
        };
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(512)
            .http2_only(cfg.protocol == UpstreamProtocol::Http2)
            .set_host(false)
            .build(connector);
        Ok(client)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The next healthy target in round-robin order, skipping `exclude`.
    fn pick(&self, exclude: Option<usize>) -> Option<usize> {
        let n = self.targets.len();
        if n == 0 {
            return None;
        }
        let now = self.now_ms();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| Some(i) != exclude && self.targets[i].ejected_until.load(Ordering::Relaxed) <= now)
    }

    fn record_success(&self, i: usize) {
        let t = &self.targets[i];
        if t.failures.load(Ordering::Relaxed) != 0 {
            t.failures.store(0, Ordering::Relaxed);
        }
    }

    fn record_connect_failure(&self, i: usize) {
        let t = &self.targets[i];
        let failures = t.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.cfg.eject_after_failures {
            let until = self.now_ms() + u64::try_from(self.cfg.eject_for.as_millis()).unwrap_or(u64::MAX / 2);
            t.ejected_until.store(until, Ordering::Relaxed);
            t.failures.store(0, Ordering::Relaxed);
            metrics::counter!("portcullis_upstream_ejections_total", "upstream" => self.cfg.name.to_string())
                .increment(1);
            tracing::warn!(upstream = %self.cfg.name, target = %t.target.authority, "upstream target ejected after repeated connect failures");
        }
    }

    /// Sends the request to a target; on a connect failure of an idempotent request with a
    /// replayable body, tries once more on another target. Returns the response and the target.
    pub(crate) async fn send(
        &self,
        parts: http::request::Parts,
        body: OutBody,
        timeout: Duration,
    ) -> Result<(http::Response<Incoming>, Arc<str>), UpstreamError> {
        let first = self.pick(None).ok_or(UpstreamError::NoHealthyTarget)?;
        let replay = match (&body, self.cfg.retry_idempotent && parts.method.is_idempotent()) {
            (OutBody::Full(b), true) => Some((parts.clone(), b.clone())),
            _ => None,
        };
        let body = match body {
            OutBody::Full(b) => full(b),
            OutBody::Stream(s) => s,
        };
        match self.attempt(first, parts, body, timeout).await {
            Err(UpstreamError::Connect { target, source }) => {
                let Some((parts, bytes)) = replay else {
                    return Err(UpstreamError::Connect { target, source });
                };
                let Some(second) = self.pick(Some(first)) else {
                    return Err(UpstreamError::Connect { target, source });
                };
                metrics::counter!("portcullis_upstream_retries_total", "upstream" => self.cfg.name.to_string())
                    .increment(1);
                self.attempt(second, parts, full(bytes), timeout).await
            }
            other => other,
        }
    }

    async fn attempt(
        &self,
        i: usize,
        mut parts: http::request::Parts,
        body: ProxyBody,
        timeout: Duration,
    ) -> Result<(http::Response<Incoming>, Arc<str>), UpstreamError> {
        let t = &self.targets[i];
        let label = t.target.authority.clone();
        let pq = parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = http::Uri::builder()
            .scheme(if t.target.tls { Scheme::HTTPS } else { Scheme::HTTP })
            .authority(t.authority.clone())
            .path_and_query(pq)
            .build()?;
        if self.cfg.protocol == UpstreamProtocol::Http2 {
            parts.version = http::Version::HTTP_2;
        } else {
            parts.version = http::Version::HTTP_11;
        }
        let req = http::Request::from_parts(parts, body);
        let client = &self.clients[WORKER.with(std::cell::Cell::get) % self.clients.len()];
        match tokio::time::timeout(timeout, client.request(req)).await {
            Err(_) => Err(UpstreamError::Timeout { target: label }),
            Ok(Ok(resp)) => {
                self.record_success(i);
                Ok((resp, label))
            }
            Ok(Err(e)) if e.is_connect() => {
                self.record_connect_failure(i);
                Err(UpstreamError::Connect { target: label, source: e })
            }
            Ok(Err(e)) => Err(UpstreamError::Request { target: label, source: e }),
        }
    }
}

type BoxResolveError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) fn full(b: Bytes) -> ProxyBody {
    use http_body_util::BodyExt;
    http_body_util::Full::new(b).map_err(|never| match never {}).boxed()
}
