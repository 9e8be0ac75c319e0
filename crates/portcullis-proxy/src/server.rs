//! Listeners and connections: accept with a connection cap, TLS, HTTP/1.1 and HTTP/2 through
//! hyper, header-read and idle timeouts, graceful shutdown.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsAcceptor;

use crate::Shared;
use crate::h1_guard::H1Guard;
use crate::handler::{ConnInfo, handle};

/// A bound listener and what it needs to serve connections.
pub(crate) struct ListenerRt {
    pub(crate) name: Arc<str>,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) h2c: bool,
}

/// The answer to a connection over the cap on a cleartext listener: a complete, closed 503.
const SHED_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\ncontent-length: 110\r\nconnection: close\r\nretry-after: 1\r\n\r\n{\"type\":\"urn:portcullis:problem:unavailable\",\"title\":\"The service is unavailable\",\"status\":503,\"request_id\":\"\"}";

/// A listening socket with `SO_REUSEPORT`, so every worker can have its own on the same address.
pub(crate) fn reuseport_listener(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// A worker thread: its own single-threaded event loop running its accept sockets and every
/// connection they accept, and its own upstream connections. Thread-per-core, like nginx's
/// workers: no work stealing, no cross-thread wake-ups on the request path.
pub(crate) fn worker(index: usize, shared: Arc<Shared>, listeners: Vec<(std::net::TcpListener, Arc<ListenerRt>)>) {
    crate::upstream::set_worker(index);
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(worker = index, error = %e, "cannot start worker event loop");
            return;
        }
    };
    rt.block_on(async move {
        let mut accepting = tokio::task::JoinSet::new();
        for (l, lrt) in listeners {
            match TcpListener::from_std(l) {
                Ok(l) => {
                    accepting.spawn(accept_loop(shared.clone(), l, lrt));
                }
                Err(e) => tracing::error!(worker = index, error = %e, "cannot register listener"),
            }
        }
        while accepting.join_next().await.is_some() {}
        // Shutdown: connections on this loop finish their requests, up to the grace period.
        let deadline = Instant::now() + Duration::from_millis(shared.grace_ms.load(Ordering::Relaxed));
        while shared.conns.available_permits() < shared.max_connections && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, rt: Arc<ListenerRt>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let Ok(permit) = shared.conns.clone().try_acquire_owned() else {
            metrics::counter!("portcullis_shed_total", "reason" => "connections").increment(1);
            if rt.tls.is_none() {
                tokio::spawn(shed(stream));
            }
            continue;
        };
        tokio::spawn(serve_connection(shared.clone(), rt.clone(), stream, peer, permit));
    }
}

async fn shed(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(SHED_RESPONSE).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

async fn serve_connection(
    shared: Arc<Shared>,
    listener: Arc<ListenerRt>,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    metrics::gauge!("portcullis_connections_active").increment(1.0);
    let (timeouts, limits) = {
        let rt = shared.runtime.load();
        (rt.config.timeouts.clone(), rt.config.limits.clone())
    };
    let last = Arc::new(AtomicU64::new(now_ms()));
    let head_started = Arc::new(AtomicU64::new(0));
    let peer_ip =
        http::HeaderValue::from_str(&peer.ip().to_string()).unwrap_or(http::HeaderValue::from_static("unknown"));
    let info = Arc::new(ConnInfo {
        peer,
        peer_ip,
        listener: listener.name.clone(),
        tls: listener.tls.is_some(),
        inflight: Arc::new(AtomicUsize::new(0)),
        upgraded: Arc::new(AtomicBool::new(false)),
        permit: std::sync::Mutex::new(Some(permit)),
        client_cert: std::sync::OnceLock::new(),
    });
    // hyper's read buffer is twice the header limit, so a head between the two is refused by
    // our own check with a problem+json 431; only a head beyond that gets hyper's bare 431.
    let head_buf = limits.max_header_bytes.saturating_mul(2).max(16 * 1024);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let mut h1 = builder.http1();
    // The header-read timeout is ours (see `drive`): hyper's also runs while a kept-alive
    // connection waits for its next request, which would cut `idle` down to `header_read`.
    h1.timer(TokioTimer::new()).header_read_timeout(None).max_buf_size(head_buf).keep_alive(true);
    // hyper keeps up to 100 header slots on the stack and moves them to the heap per request when
    // the count is changed; keep the fast path for the default.
    if limits.max_headers != 100 {
        h1.max_headers(limits.max_headers);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .max_pending_accept_reset_streams(64)
        .max_local_error_reset_streams(256);
    match &listener.tls {
        Some(acceptor) => {
            let tls = match tokio::time::timeout(timeouts.header_read, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                _ => {
                    metrics::counter!("portcullis_tls_handshake_failures_total").increment(1);
                    metrics::gauge!("portcullis_connections_active").decrement(1.0);
                    return;
                }
            };
            if let Some(leaf) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                let _ = info.client_cert.set(Arc::from(leaf.as_ref()));
            }
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let io = ActivityIo { inner: tls, last: last.clone() };
            if h2 {
                drive(&shared, &info, builder.http2_only(), io, &last, &head_started, &timeouts).await;
            } else {
                let io = H1Guard::new(io, head_buf, info.upgraded.clone(), head_started.clone());
                drive(&shared, &info, builder.http1_only(), io, &last, &head_started, &timeouts).await;
            }
        }
        None => {
            // The guard lets an HTTP/2 preface through untouched, so h2c still works behind it.
            let builder = if listener.h2c { builder } else { builder.http1_only() };
            let io = ActivityIo { inner: stream, last: last.clone() };
            let io = H1Guard::new(io, head_buf, info.upgraded.clone(), head_started.clone());
            drive(&shared, &info, builder, io, &last, &head_started, &timeouts).await;
        }
    }
    metrics::gauge!("portcullis_connections_active").decrement(1.0);
}

async fn drive<I>(
    shared: &Arc<Shared>,
    info: &Arc<ConnInfo>,
    builder: auto::Builder<TokioExecutor>,
    io: I,
    last: &AtomicU64,
    head_started: &AtomicU64,
    timeouts: &portcullis_config::Timeouts,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc_shared = shared.clone();
    let svc_info = info.clone();
    let service = hyper::service::service_fn(move |req| handle(svc_shared.clone(), svc_info.clone(), req));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut shutdown = shared.shutdown.subscribe();
    let idle_ms = u64::try_from(timeouts.idle.as_millis()).unwrap_or(u64::MAX);
    let head_ms = u64::try_from(timeouts.header_read.as_millis()).unwrap_or(u64::MAX);
    let period = (timeouts.idle.min(timeouts.header_read) / 4).clamp(Duration::from_millis(20), Duration::from_secs(5));
    let mut tick = tokio::time::interval(period);
    let mut closing = false;
    let mut busy_until = 0u64;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, peer = %info.peer, "connection ended with an error");
                }
                break;
            }
            _ = shutdown.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tick.tick(), if !closing => {
                let now = now_ms();
                if info.inflight.load(Ordering::Relaxed) != 0 {
                    // A head pipelined behind a request in flight waits for hyper; its clock
                    // starts when the connection is free again.
                    busy_until = now;
                }
                let started = head_started.load(Ordering::Relaxed).max(busy_until);
                if head_started.load(Ordering::Relaxed) != 0 && now.saturating_sub(started) >= head_ms {
                    // Slow or stalled request head (slowloris): drop the connection.
                    metrics::counter!("portcullis_timeouts_total", "kind" => "header_read").increment(1);
                    break;
                }
                let quiet = now_ms().saturating_sub(last.load(Ordering::Relaxed));
                if info.inflight.load(Ordering::Relaxed) == 0 && quiet >= idle_ms {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    u64::try_from(EPOCH.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// An IO that records when it last moved bytes, for the idle timer.
struct ActivityIo<T> {
    inner: T,
    last: Arc<AtomicU64>,
}

impl<T> ActivityIo<T> {
    fn touch(&self) {
        self.last.store(now_ms(), Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ActivityIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ActivityIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Splices an upgraded client connection to the upstream until either side closes or both stay
/// quiet for `idle`, or the gateway shuts down.
pub(crate) async fn tunnel<A, B>(
    client: A,
    upstream: B,
    idle: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let last = Arc::new(AtomicU64::new(now_ms()));
    let mut client = ActivityIo { inner: client, last: last.clone() };
    let mut upstream = ActivityIo { inner: upstream, last: last.clone() };
    let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
    let mut tick = tokio::time::interval((idle / 4).clamp(Duration::from_millis(20), Duration::from_secs(5)));
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::pin!(copy);
    loop {
        tokio::select! {
            _ = copy.as_mut() => return,
            _ = shutdown.changed() => return,
            _ = tick.tick() => {
                if now_ms().saturating_sub(last.load(Ordering::Relaxed)) >= idle_ms {
                    return;
                }
            }
        }
    }
}
