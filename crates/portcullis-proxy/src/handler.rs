//! One request through the gateway: hygiene, canonical path, routing, the pipeline, the upstream,
//! response hygiene. This is the single rescue point: every failure becomes an RFC 9457 problem
//! with the request id, and the log keeps the cause.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use portcullis_core::path::canonicalize;
use portcullis_core::{Flow, Outcome, Problem, ProblemKind, RequestCtx, RequestId, StageError};
use tokio::sync::OwnedSemaphorePermit;

use crate::Shared;
use crate::body::{BODY_TIMEOUT, BODY_TOO_LARGE, BodyStatus, LimitedBody, ProxyBody, ResponseBody};
use crate::hygiene;
use crate::router::{self, RouteMatch};
use crate::runtime::Runtime;
use crate::upstream::{OutBody, UpstreamError, full};

/// What the connection knows about itself.
pub(crate) struct ConnInfo {
    pub(crate) peer: SocketAddr,
    /// The peer's address as a header value, formatted once per connection.
    pub(crate) peer_ip: HeaderValue,
    pub(crate) listener: Arc<str>,
    pub(crate) tls: bool,
    /// Requests in flight on this connection (the idle timer runs only when it is 0).
    pub(crate) inflight: Arc<AtomicUsize>,
    /// Set when this connection switched protocols (WebSocket): the HTTP/1 guard stops parsing.
    pub(crate) upgraded: Arc<std::sync::atomic::AtomicBool>,
    /// The connection's slot under `max_connections`; a WebSocket tunnel takes it over.
    pub(crate) permit: std::sync::Mutex<Option<OwnedSemaphorePermit>>,
    /// The client certificate the TLS handshake verified (mutual TLS), DER.
    pub(crate) client_cert: std::sync::OnceLock<Arc<[u8]>>,
}

/// Runs the completion phase exactly once, whatever happens to the request: normal end, client
/// gone, upstream failure, panic-free early return.
pub(crate) struct CompletionGuard {
    rt: Arc<Runtime>,
    ctx: RequestCtx,
    status: u16,
    body: Option<Arc<BodyStatus>>,
    bytes_out: u64,
    upstream_duration: Option<Duration>,
    conn_inflight: Arc<AtomicUsize>,
    _permit: Option<OwnedSemaphorePermit>,
    /// The route's CORS policy and the request's `Origin`, once routed: `finish` applies them to
    /// whatever response goes out, denials included.
    cors: Option<(Arc<portcullis_config::CorsPolicy>, Option<HeaderValue>)>,
    done: bool,
}

impl CompletionGuard {
    pub(crate) fn add_bytes_out(&mut self, n: u64) {
        self.bytes_out += n;
    }

    pub(crate) fn finish(mut self, aborted: bool) {
        self.complete(aborted);
    }

    fn complete(&mut self, aborted: bool) {
        if self.done {
            return;
        }
        self.done = true;
        let mut outcome = Outcome::new(
            self.status,
            self.body.as_ref().map_or(0, |b| b.bytes()),
            self.bytes_out,
            self.ctx.received_at.elapsed(),
        );
        outcome.upstream_duration = self.upstream_duration;
        outcome.aborted = aborted;
        self.rt.pipeline.on_complete(&self.ctx, &outcome);
        self.conn_inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for CompletionGuard {
    fn drop(&mut self) {
        self.complete(true);
    }
}

type Resp = http::Response<ResponseBody>;

/// The hyper service function.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: http::Request<Incoming>,
) -> Result<Resp, Infallible> {
    let rt = shared.runtime.load_full();
    let (mut parts, body) = req.into_parts();
    let cfg = &rt.config;

    // Request id and client address: taken from headers only when a trusted proxy sent them.
    let trusted_peer = hygiene::peer_is_trusted(conn.peer.ip(), &cfg.trusted_proxies);
    let request_id = trusted_peer
        .then(|| parts.headers.get("x-request-id").and_then(|v| RequestId::from_trusted(v.as_bytes())))
        .flatten()
        .unwrap_or_else(RequestId::generate);
    let mut ctx = RequestCtx::new(request_id, conn.peer, conn.listener.clone(), conn.tls);
    ctx.method = parts.method.clone();
    ctx.client_cert = conn.client_cert.get().cloned();
    ctx.version = parts.version;
    if trusted_peer {
        ctx.client_ip = hygiene::forwarded_client(&parts.headers, conn.peer.ip(), &cfg.trusted_proxies);
    }
    conn.inflight.fetch_add(1, Ordering::Relaxed);
    let mut guard = CompletionGuard {
        rt: rt.clone(),
        ctx,
        status: 0,
        body: None,
        bytes_out: 0,
        upstream_duration: None,
        conn_inflight: conn.inflight.clone(),
        _permit: None,
        cors: None,
        done: false,
    };

    // Overload: shed at once rather than queue.
    match shared.inflight.clone().try_acquire_owned() {
        Ok(p) => guard._permit = Some(p),
        Err(_) => {
            metrics::counter!("portcullis_shed_total", "reason" => "inflight").increment(1);
            return Ok(deny(guard, "overload", "inflight-limit", Problem::new(ProblemKind::Unavailable)));
        }
    }

    if let Err(r) = hygiene::check_request(&parts, &cfg.limits) {
        // A malformed head means the connection's framing cannot be trusted: answer and close
        // (RFC 9112 §6.1), so nothing pipelined behind it is read as a request.
        let mut resp = deny(guard, "hygiene", r.reason, Problem::new(r.kind));
        if resp.version() != http::Version::HTTP_2 && r.kind == ProblemKind::BadRequest {
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        return Ok(resp);
    }

    // One canonical path for the router, every stage and the upstream.
    let raw_path = parts.uri.path();
    match canonicalize(raw_path, &cfg.paths) {
        Ok(p) => guard.ctx.path = p,
        Err(e) => {
            return Ok(deny(
                guard,
                "hygiene",
                e.reason(),
                Problem::new(ProblemKind::BadRequest).with_detail("The request path is not acceptable."),
            ));
        }
    }
    guard.ctx.query = parts.uri.query().map(str::to_owned);

    let host = router::request_host(&parts);
    // A CORS preflight on a route with a CORS policy is the gateway's to answer: route it by the
    // method it asks about, before any stage (browsers send preflights without credentials). A
    // method no route at that place serves is refused like any other preflight (403, no CORS
    // header) when a route there has a CORS policy, not sent on to routing's 405.
    let preflight = crate::cors::preflight_method(&parts).and_then(|method| {
        match router::find(&cfg.routes, host.as_deref(), &guard.ctx.path, &method) {
            RouteMatch::Found(i) => cfg.routes[i].cors.clone().map(|p| (i, p, Some(method))),
            RouteMatch::MethodNotAllowed(_) => router::matching_place(&cfg.routes, host.as_deref(), &guard.ctx.path)
                .find_map(|i| cfg.routes[i].cors.clone().map(|p| (i, p, None))),
            RouteMatch::NotFound => None,
        }
    });
    if let Some((i, policy, routed)) = preflight {
        guard.ctx.route = Some(cfg.routes[i].name.clone());
        guard.ctx.path_template = Some(cfg.routes[i].path.source().clone());
        let answer = match &routed {
            Some(method) => crate::cors::preflight(&policy, &parts.headers, method),
            None => Err(crate::cors::unrouted(&policy, &parts.headers)),
        };
        return Ok(match answer {
            Ok((status, headers)) => {
                let mut resp = http::Response::new(full(Bytes::new()));
                *resp.status_mut() = status;
                *resp.headers_mut() = headers;
                finish(guard, resp)
            }
            Err(refusal) => {
                metrics::counter!("portcullis_cors_refused_total", "reason" => refusal.reason()).increment(1);
                deny(guard, "cors", refusal.reason(), Problem::new(ProblemKind::Forbidden))
            }
        });
    }
    let route_idx = match router::find(&cfg.routes, host.as_deref(), &guard.ctx.path, &parts.method) {
        RouteMatch::Found(i) => i,
        RouteMatch::NotFound => {
            return Ok(deny(guard, "routing", "route-not-found", Problem::new(ProblemKind::RouteNotFound)));
        }
        RouteMatch::MethodNotAllowed(allowed) => {
            let allow = allowed.iter().map(http::Method::as_str).collect::<Vec<_>>().join(", ");
            let mut p = Problem::new(ProblemKind::MethodNotAllowed);
            if let Ok(v) = HeaderValue::from_str(&allow) {
                p = p.with_header(header::ALLOW, v);
            }
            return Ok(deny(guard, "routing", "method-not-allowed", p));
        }
    };
    let route = &cfg.routes[route_idx];
    guard.ctx.route = Some(route.name.clone());
    guard.ctx.path_template = Some(route.path.source().clone());
    // The OpenAPI operation, for stages with per-operation policy (`x-portcullis-*`).
    if !route.operations.is_empty()
        && let Some(c) = &route.contract
        && let portcullis_contract::Lookup::Found(op, _) = c.contract.find(&guard.ctx.method, &guard.ctx.path)
    {
        guard.ctx.extensions.insert(portcullis_core::MatchedOperation(op.id().clone()));
    }
    if let Some(policy) = &route.cors {
        guard.cors = Some((policy.clone(), parts.headers.get(header::ORIGIN).cloned()));
    }

    if hygiene::content_length(&parts.headers).is_some_and(|n| n > route.max_request_body_bytes) {
        return Ok(deny(guard, "hygiene", "body-too-large", Problem::new(ProblemKind::PayloadTooLarge)));
    }

    // The path the upstream sees is the canonical one.
    let pq = match guard.ctx.query.as_deref() {
        Some(q) => format!("{}?{q}", guard.ctx.path),
        None => guard.ctx.path.clone(),
    };
    match http::uri::PathAndQuery::try_from(pq) {
        Ok(pq) => parts.uri = http::Uri::from(pq),
        Err(_) => return Ok(deny(guard, "hygiene", "bad-uri", Problem::new(ProblemKind::BadRequest))),
    }

    // Identity headers are the gateway's to set: a client that sends its own is not believed.
    hygiene::strip_identity_headers(&mut parts.headers);

    match rt.pipeline.on_request(&mut parts, &mut guard.ctx).await {
        Ok(Flow::Continue) => {}
        Ok(Flow::Respond(resp)) => return Ok(stage_response(guard, resp)),
        Err(e) => return Ok(stage_failed(guard, &e)),
    }

    // The request body: buffered if a stage must see all of it, streamed otherwise.
    let body_status = Arc::new(BodyStatus::default());
    guard.body = Some(body_status.clone());
    let deadline = tokio::time::Instant::now() + cfg.timeouts.request_body;
    let websocket = hygiene::is_websocket_upgrade(&parts);
    let client_upgrade = if websocket { parts.extensions.remove::<hyper::upgrade::OnUpgrade>() } else { None };
    // A stage that asked for the body sees it even when it is empty (a signature or ownership
    // check over "no body" must still run).
    let out_body = if guard.ctx.buffer_request_body.is_none() && body.is_end_stream() {
        OutBody::Full(Bytes::new())
    } else if let Some(cap) = guard.ctx.buffer_request_body {
        let limit = route.max_request_body_bytes.min(u64::try_from(cap).unwrap_or(u64::MAX));
        let limited = LimitedBody::new(body, limit, deadline, body_status.clone());
        let mut bytes = match limited.collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => return Ok(body_failed(guard, &body_status)),
        };
        match rt.pipeline.on_request_body(&mut bytes, &mut guard.ctx).await {
            Ok(Flow::Continue) => {}
            Ok(Flow::Respond(resp)) => return Ok(stage_response(guard, resp)),
            Err(e) => return Ok(stage_failed(guard, &e)),
        }
        parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        parts.headers.remove(header::TRANSFER_ENCODING);
        OutBody::Full(bytes)
    } else {
        OutBody::Stream(LimitedBody::new(body, route.max_request_body_bytes, deadline, body_status.clone()).boxed())
    };

    for (name, value) in std::mem::take(&mut guard.ctx.upstream_headers) {
        if let Some(name) = name {
            parts.headers.insert(name, value);
        }
    }
    prepare_upstream_headers(&mut parts, &guard.ctx, trusted_peer, conn.tls, host.as_deref(), websocket, &conn.peer_ip);

    let pool = &rt.route_pools[route_idx];
    let started = std::time::Instant::now();
    let result = pool.send(parts, out_body, route.upstream_timeout).await;
    guard.upstream_duration = Some(started.elapsed());
    let (upstream_resp, target) = match result {
        Ok(r) => r,
        Err(e) => {
            if body_status.state() != crate::body::BODY_OK {
                return Ok(body_failed(guard, &body_status));
            }
            return Ok(upstream_failed(guard, &e));
        }
    };
    guard.ctx.upstream = Some(target);

    if upstream_resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
        return Ok(match client_upgrade {
            Some(client_upgrade) => {
                conn.upgraded.store(true, Ordering::Release);
                let permit = conn.permit.lock().ok().and_then(|mut p| p.take());
                let shutdown = shared.shutdown.subscribe();
                switch_protocols(guard, upstream_resp, client_upgrade, permit, cfg.timeouts.idle, shutdown)
            }
            // A 101 to a request that did not ask to upgrade is an upstream fault.
            None => upstream_failed(guard, &UpstreamError::UnexpectedUpgrade),
        });
    }
    let (mut resp_parts, resp_body) = upstream_resp.into_parts();
    hygiene::strip_hop_by_hop(&mut resp_parts.headers, false);
    if let Some(policy) = &route.cookies {
        crate::cors::secure_cookies(policy, &mut resp_parts.headers);
    }

    match rt.pipeline.on_response(&mut resp_parts, &mut guard.ctx).await {
        Ok(Flow::Continue) => {}
        Ok(Flow::Respond(resp)) => return Ok(stage_response(guard, resp)),
        Err(e) => return Ok(stage_failed(guard, &e)),
    }

    let out: ProxyBody = if let Some(cap) = guard.ctx.buffer_response_body {
        let mut bytes = match read_response(resp_body, cap, guard.ctx.response_body_required()).await {
            Ok(Buffered::Whole(b)) => b,
            Ok(Buffered::Unseen(body)) => {
                // Over a cap no stage required: served as it comes, unseen (the stages count it).
                guard.ctx.response_body_unseen = true;
                return Ok(finish(guard, http::Response::from_parts(resp_parts, body)));
            }
            Err(()) => {
                guard.ctx.fail("upstream-body");
                let resp = Problem::new(ProblemKind::BadGateway).to_response(&guard.ctx.request_id).map(full);
                return Ok(finish(guard, resp));
            }
        };
        match rt.pipeline.on_response_body(&mut bytes, &mut guard.ctx).await {
            Ok(Flow::Continue) => {}
            Ok(Flow::Respond(resp)) => return Ok(stage_response(guard, resp)),
            Err(e) => return Ok(stage_failed(guard, &e)),
        }
        resp_parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        full(bytes)
    } else {
        resp_body.map_err(Into::into).boxed()
    };
    Ok(finish(guard, http::Response::from_parts(resp_parts, out)))
}

/// A response body read for the stages.
enum Buffered {
    /// All of it, within the cap.
    Whole(Bytes),
    /// Past a cap no stage required: what was read, then the rest, streamed.
    Unseen(ProxyBody),
}

/// Reads a response body up to `cap` bytes. Past the cap: an error when `required`, else the
/// body to stream as it is (the bytes already read first). An upstream body error is an error.
async fn read_response(mut body: Incoming, cap: usize, required: bool) -> Result<Buffered, ()> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ())?;
        let Ok(data) = frame.into_data() else { continue };
        if buf.len() + data.len() > cap {
            if required {
                return Err(());
            }
            buf.extend_from_slice(&data);
            let head = futures_util::stream::once(std::future::ready(Ok::<_, crate::body::BoxError>(
                http_body::Frame::data(buf.freeze()),
            )));
            let rest = http_body_util::BodyStream::new(body.map_err(Into::<crate::body::BoxError>::into));
            let stream = futures_util::StreamExt::chain(head, rest);
            return Ok(Buffered::Unseen(http_body_util::StreamBody::new(stream).boxed()));
        }
        buf.extend_from_slice(&data);
    }
    Ok(Buffered::Whole(buf.freeze()))
}

/// Sets what the upstream must see and nothing it must not: hop-by-hop headers gone, forwarding
/// headers rebuilt (kept only from trusted proxies), the request id.
fn prepare_upstream_headers(
    parts: &mut http::request::Parts,
    ctx: &RequestCtx,
    trusted_peer: bool,
    tls: bool,
    host: Option<&str>,
    websocket: bool,
    peer_ip: &HeaderValue,
) {
    let h = &mut parts.headers;
    hygiene::strip_hop_by_hop(h, websocket);
    match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) if trusted_peer => {
            if let Ok(v) = HeaderValue::from_str(&format!("{prev}, {}", ctx.peer_addr.ip())) {
                h.insert(HeaderName::from_static("x-forwarded-for"), v);
            }
        }
        _ => {
            h.insert(HeaderName::from_static("x-forwarded-for"), peer_ip.clone());
        }
    }
    if !trusted_peer {
        h.remove(header::FORWARDED);
        h.remove("x-forwarded-host");
        h.remove("x-real-ip");
    }
    if !trusted_peer || !h.contains_key("x-forwarded-proto") {
        h.insert(
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static(if tls { "https" } else { "http" }),
        );
    }
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        h.insert(HeaderName::from_static("x-request-id"), v);
    }
    if !h.contains_key(header::HOST) {
        if let Some(v) = parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
            h.insert(header::HOST, v);
        } else if let Some(v) = host.and_then(|s| HeaderValue::from_str(s).ok()) {
            h.insert(header::HOST, v);
        }
    }
}

/// WebSocket passthrough: answer 101 and splice the two upgraded connections.
fn switch_protocols(
    mut guard: CompletionGuard,
    mut upstream_resp: http::Response<Incoming>,
    client_upgrade: hyper::upgrade::OnUpgrade,
    permit: Option<OwnedSemaphorePermit>,
    idle: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Resp {
    let upstream_upgrade = hyper::upgrade::on(&mut upstream_resp);
    let mut resp = http::Response::new(full(Bytes::new()));
    *resp.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
    *resp.headers_mut() = upstream_resp.headers().clone();
    hygiene::strip_hop_by_hop(resp.headers_mut(), true);
    let request_id = guard.ctx.request_id.clone();
    tokio::spawn(async move {
        // The tunnel keeps the connection's slot under max_connections until it closes.
        let _permit = permit;
        match tokio::try_join!(client_upgrade, upstream_upgrade) {
            Ok((client, upstream)) => {
                metrics::gauge!("portcullis_websocket_tunnels_active").increment(1.0);
                crate::server::tunnel(
                    hyper_util::rt::TokioIo::new(client),
                    hyper_util::rt::TokioIo::new(upstream),
                    idle,
                    shutdown,
                )
                .await;
                metrics::gauge!("portcullis_websocket_tunnels_active").decrement(1.0);
                tracing::debug!(%request_id, "websocket tunnel closed");
            }
            Err(e) => tracing::debug!(%request_id, error = %e, "websocket upgrade failed"),
        }
    });
    guard.status = 101;
    finish(guard, resp)
}

/// Final response hygiene, then hand the guard to the body so completion runs when it ends.
fn finish(mut guard: CompletionGuard, resp: http::Response<ProxyBody>) -> Resp {
    let (mut parts, body) = resp.into_parts();
    let hsts = guard.rt.hsts.get(&guard.ctx.listener).cloned();
    hygiene::secure_response_headers(&mut parts.headers, &guard.ctx.request_id, hsts.as_ref());
    if let Some((policy, origin)) = &guard.cors {
        crate::cors::apply(policy, origin.as_ref(), &mut parts.headers);
    }
    guard.status = parts.status.as_u16();
    http::Response::from_parts(parts, ResponseBody::new(body, guard))
}

fn deny(mut guard: CompletionGuard, stage: &'static str, reason: &'static str, problem: Problem) -> Resp {
    guard.ctx.deny(stage, reason);
    let resp = problem.to_response(&guard.ctx.request_id).map(full);
    finish(guard, resp)
}

/// A stage answered; the pipeline has already recorded which one and why.
fn stage_response(guard: CompletionGuard, resp: http::Response<Bytes>) -> Resp {
    finish(guard, resp.map(full))
}

fn stage_failed(mut guard: CompletionGuard, e: &StageError) -> Resp {
    tracing::error!(request_id = %guard.ctx.request_id, stage = e.stage(), error = %e, "stage failed; failing closed");
    guard.ctx.fail("stage-failed");
    let resp = Problem::new(ProblemKind::Internal).to_response(&guard.ctx.request_id).map(full);
    finish(guard, resp)
}

fn body_failed(guard: CompletionGuard, status: &BodyStatus) -> Resp {
    match status.state() {
        BODY_TOO_LARGE => deny(guard, "hygiene", "body-too-large", Problem::new(ProblemKind::PayloadTooLarge)),
        BODY_TIMEOUT => deny(guard, "hygiene", "body-timeout", Problem::new(ProblemKind::RequestTimeout)),
        _ => deny(guard, "hygiene", "body-error", Problem::new(ProblemKind::BadRequest)),
    }
}

fn upstream_failed(mut guard: CompletionGuard, e: &UpstreamError) -> Resp {
    let (kind, reason) = match e {
        UpstreamError::NoHealthyTarget => (ProblemKind::Unavailable, "no-healthy-target"),
        UpstreamError::Connect { .. } => (ProblemKind::BadGateway, "upstream-connect"),
        UpstreamError::Timeout { .. } => (ProblemKind::GatewayTimeout, "upstream-timeout"),
        UpstreamError::Request { .. } | UpstreamError::Uri(_) | UpstreamError::UnexpectedUpgrade => {
            (ProblemKind::BadGateway, "upstream-error")
        }
    };
    let upstream = guard.ctx.route.as_deref().unwrap_or_default().to_owned();
    metrics::counter!("portcullis_upstream_errors_total", "route" => upstream, "reason" => reason).increment(1);
    tracing::warn!(request_id = %guard.ctx.request_id, error = %e, source = ?std::error::Error::source(e), "upstream failed");
    guard.ctx.fail(reason);
    let resp = Problem::new(kind).to_response(&guard.ctx.request_id).map(full);
    finish(guard, resp)
}
