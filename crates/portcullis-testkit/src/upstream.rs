use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, exactly as received.
    pub path: String,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// A recording upstream. Paths it understands:
/// `/status/{code}`, `/slow/{ms}`, `/echo` (returns the body), `/big/{bytes}`, `/ws` (WebSocket
/// echo); anything else answers 200 JSON `{"method","path"}`. Every response carries `Server` and
/// `X-Powered-By` headers that the gateway must strip.
pub struct Upstream {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub async fn start() -> Self {
        Self::start_inner(None).await
    }

    /// An upstream speaking TLS (HTTP/1.1 and h2 by ALPN) with this certificate.
    pub async fn start_tls(cert: &crate::TestCert) -> Self {
        Self::start_inner(Some(tokio_rustls::TlsAcceptor::from(Arc::new(cert.server_config(&[b"h2", b"http/1.1"])))))
            .await
    }

    async fn start_inner(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let task_log = log.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let log = task_log.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| respond(log.clone(), req));
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        Some(acc) => {
                            if let Ok(s) = acc.accept(stream).await {
                                let _ = builder.serve_connection_with_upgrades(TokioIo::new(s), svc).await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
        });
        Self { addr, log, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    pub fn hits(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

async fn respond(
    log: Arc<Mutex<Vec<Recorded>>>,
    mut req: http::Request<Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let method = req.method().to_string();
    let headers = req.headers().clone();
    let version = req.version();
    let is_ws = path == "/ws";
    let on_upgrade = if is_ws { Some(hyper::upgrade::on(&mut req)) } else { None };
    let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    log.lock().unwrap().push(Recorded {
        method: method.clone(),
        path: path.clone(),
        version,
        headers: headers.clone(),
        body: body.clone(),
    });

    let resp = http::Response::builder().header("server", "mock-upstream/1.0").header("x-powered-by", "mock");
    if let (true, Some(on_upgrade)) = (is_ws, on_upgrade) {
        let key = headers.get("sec-websocket-key").map(|k| k.as_bytes().to_vec()).unwrap_or_default();
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    tokio_tungstenite::tungstenite::protocol::Role::Server,
                    None,
                )
                .await;
                let (mut tx, mut rx) = ws.split();
                while let Some(Ok(msg)) = rx.next().await {
                    if (msg.is_text() || msg.is_binary()) && tx.send(msg).await.is_err() {
                        break;
                    }
                }
            }
        });
        return Ok(resp
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", accept)
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    let seg: Vec<&str> = path.split('?').next().unwrap_or("").split('/').collect();
    let reply = match seg.as_slice() {
        ["", "status", code] => {
            let code: u16 = code.parse().unwrap_or(500);
            resp.status(code)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(format!("{{\"status\":{code}}}"))))
        }
        ["", "slow", ms] => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
            resp.header("content-type", "application/json").body(Full::new(Bytes::from_static(b"{\"slow\":true}")))
        }
        ["", "echo"] => resp.header("content-type", "application/octet-stream").body(Full::new(body)),
        ["", "big", n] => resp.body(Full::new(Bytes::from(vec![b'x'; n.parse().unwrap_or(0)]))),
        _ => {
            let doc = serde_json::json!({ "method": method, "path": path });
            resp.header("content-type", "application/json").body(Full::new(Bytes::from(doc.to_string())))
        }
    };
    Ok(reply.unwrap())
}
