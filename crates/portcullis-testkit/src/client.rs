use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response read completely.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How a client connects.
#[derive(Clone)]
pub enum Mode {
    H1,
    H2c,
    Tls(Arc<rustls::ClientConfig>),
}

/// Sends one request on a fresh connection and reads the whole response.
pub async fn send(addr: SocketAddr, mode: &Mode, req: http::Request<Full<Bytes>>) -> Resp {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let resp = match mode {
        Mode::H1 => h1(TokioIo::new(tcp), req).await,
        Mode::H2c => h2(TokioIo::new(tcp), req).await,
        Mode::Tls(cfg) => {
            let conn = tokio_rustls::TlsConnector::from(cfg.clone());
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let tls = conn.connect(name, tcp).await.unwrap();
            if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                h2(TokioIo::new(tls), req).await
            } else {
                h1(TokioIo::new(tls), req).await
            }
        }
    };
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    Resp { status: parts.status.as_u16(), version: parts.version, headers: parts.headers, body }
}

async fn h1<I>(io: I, req: http::Request<Full<Bytes>>) -> http::Response<hyper::body::Incoming>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    sender.send_request(req).await.unwrap()
}

async fn h2<I>(io: I, req: http::Request<Full<Bytes>>) -> http::Response<hyper::body::Incoming>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.unwrap();
    tokio::spawn(conn);
    sender.send_request(req).await.unwrap()
}

pub fn http1_client() -> Mode {
    Mode::H1
}

pub fn h2c_client() -> Mode {
    Mode::H2c
}

pub fn tls_client(cfg: rustls::ClientConfig) -> Mode {
    Mode::Tls(Arc::new(cfg))
}

/// Writes raw bytes and reads what comes back until the peer closes or stays quiet for 1 s.
/// For requests no well-behaved client would send (smuggling, malformed heads).
pub async fn raw_request(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let _ = tcp.write_all(bytes).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_millis(1000), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw HTTP/1.1 response text (from [`raw_request`]), if it has one.
pub fn status_of(resp: &str) -> Option<u16> {
    resp.lines().next()?.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// A bodiless GET with a `Host` header, for [`send`].
pub fn get(path: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(path).header("host", "localhost").body(Full::new(Bytes::new())).unwrap()
}
