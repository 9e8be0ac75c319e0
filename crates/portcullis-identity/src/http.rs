//! A small outbound HTTP client for talking to identity providers (JWKS, OIDC discovery, token
//! introspection): HTTPS with the Mozilla roots (webpki-roots) plus an optional extra CA file,
//! plain HTTP only to a loopback address or `localhost` unless `danger_allow_http` is set, one
//! timeout over the whole exchange, a cap on the response size, no redirects followed, and only
//! `200 OK` counts as an answer.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portcullis_config::Secret;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Settings for outbound calls to an identity provider.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Deadline for connecting, sending and reading the whole response. Default 5 s.
    pub timeout: Duration,
    /// Larger responses are refused. Default 1 MiB.
    pub max_response_bytes: usize,
    /// PEM file with extra trusted CA certificates (added to the Mozilla roots).
    pub extra_ca_file: Option<PathBuf>,
    /// Allows `http://` to any host. Off by default: keys and introspection answers fetched in
    /// clear text can be forged by anyone on the path.
    pub danger_allow_http: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_response_bytes: 1 << 20,
            extra_ca_file: None,
            danger_allow_http: false,
        }
    }
}

/// Why an outbound call failed. Never contains credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// Not an absolute `http(s)://host/...` URL.
    #[error("invalid URL")]
    InvalidUrl,
    /// `http://` to a non-loopback host without `danger_allow_http`.
    #[error("plain http is allowed only to a loopback address (or with danger_allow_http)")]
    InsecureUrl,
    /// The extra CA file cannot be read or holds no certificate.
    #[error("cannot load CA file {0}")]
    CaFile(String),
    /// TLS configuration failed.
    #[error("TLS configuration failed")]
    Tls,
    /// Connecting, sending or reading failed (including TLS handshake failures).
    #[error("request failed: {0}")]
    Transport(String),
    /// The deadline passed.
    #[error("request timed out")]
    Timeout,
    /// The answer was not `200 OK`.
    #[error("unexpected status {0}")]
    Status(u16),
    /// The response was larger than allowed.
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
}

/// The shared client. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    opts: Arc<HttpOptions>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient").field("opts", &self.opts).finish()
    }
}

fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Checks that `url` is absolute and that its scheme is acceptable under `opts`.
pub fn check_url(url: &str, opts: &HttpOptions) -> Result<Uri, HttpError> {
    let uri: Uri = url.parse().map_err(|_| HttpError::InvalidUrl)?;
    let host = uri.host().ok_or(HttpError::InvalidUrl)?;
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if opts.danger_allow_http || is_loopback_host(host) => Ok(uri),
        Some("http") => Err(HttpError::InsecureUrl),
        _ => Err(HttpError::InvalidUrl),
    }
}

impl HttpClient {
    /// A client with these options. Does not need a runtime until the first request.
    pub fn new(opts: HttpOptions) -> Result<Self, HttpError> {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(path) = &opts.extra_ca_file {
            let shown = path.display().to_string();
            let pem = std::fs::read(path).map_err(|_| HttpError::CaFile(shown.clone()))?;
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|_| HttpError::CaFile(shown.clone()))?;
                roots.add(cert).map_err(|_| HttpError::CaFile(shown.clone()))?;
                added += 1;
            }
            if added == 0 {
                return Err(HttpError::CaFile(shown));
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|_| HttpError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector =
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector);
        Ok(Self { client, opts: Arc::new(opts) })
    }

    /// The options this client was built with.
    pub fn options(&self) -> &HttpOptions {
        &self.opts
    }

    /// `GET url`, expecting `200` and a body within the size cap.
    pub async fn get(&self, url: &str) -> Result<Bytes, HttpError> {
        let uri = check_url(url, &self.opts)?;
        let req = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|_| HttpError::InvalidUrl)?;
        self.send(req).await
    }

    /// `POST url` with an `application/x-www-form-urlencoded` body and HTTP Basic credentials
    /// (RFC 6749 §2.3.1: both parts form-encoded first). The header is marked sensitive.
    pub async fn post_form(&self, url: &str, form: String, basic: Option<(&str, &Secret)>) -> Result<Bytes, HttpError> {
        let uri = check_url(url, &self.opts)?;
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(form)))
            .map_err(|_| HttpError::InvalidUrl)?;
        if let Some((user, secret)) = basic {
            let pair = format!("{}:{}", form_urlencode(user), form_urlencode(secret.expose()));
            let mut value = HeaderValue::try_from(format!("Basic {}", base64_standard(pair.as_bytes())))
                .map_err(|_| HttpError::InvalidUrl)?;
            value.set_sensitive(true);
            req.headers_mut().insert(AUTHORIZATION, value);
        }
        self.send(req).await
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Result<Bytes, HttpError> {
        let max = self.opts.max_response_bytes;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| HttpError::Transport(transport_reason(&e)))?;
            if resp.status() != StatusCode::OK {
                return Err(HttpError::Status(resp.status().as_u16()));
            }
            let declared =
                resp.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > max as u64) {
                return Err(HttpError::TooLarge(max));
            }
            let body = Limited::new(resp.into_body(), max).collect().await.map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    HttpError::TooLarge(max)
                } else {
                    HttpError::Transport("reading the body failed".into())
                }
            })?;
            Ok(body.to_bytes())
        };
        tokio::time::timeout(self.opts.timeout, exchange).await.map_err(|_| HttpError::Timeout)?
    }
}

fn transport_reason(e: &hyper_util::client::legacy::Error) -> String {
    // The error chain names the cause (refused, TLS, …); it never holds request headers.
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    let mut depth = 0;
    while let Some(s) = source
        && depth < 4
    {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
        depth += 1;
    }
    out
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_urlencode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn base64_standard(bytes: &[u8]) -> String {
    let mut s = crate::jwt::b64::encode(bytes).replace('-', "+").replace('_', "/");
    while !s.len().is_multiple_of(4) {
        s.push('=');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_may_use_plain_http() {
        let opts = HttpOptions::default();
        for ok in ["https://idp.example/jwks", "http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]:9/x"] {
            assert!(check_url(ok, &opts).is_ok(), "{ok}");
        }
        assert_eq!(check_url("http://idp.example/jwks", &opts), Err(HttpError::InsecureUrl));
        assert_eq!(check_url("http://10.0.0.1/jwks", &opts), Err(HttpError::InsecureUrl));
        assert_eq!(check_url("http://localhost.evil.example/", &opts), Err(HttpError::InsecureUrl));
        assert_eq!(check_url("ftp://idp.example/", &opts), Err(HttpError::InvalidUrl));
        assert_eq!(check_url("/relative", &opts), Err(HttpError::InvalidUrl));
        let danger = HttpOptions { danger_allow_http: true, ..HttpOptions::default() };
        assert!(check_url("http://idp.example/jwks", &danger).is_ok());
    }

    #[test]
    fn form_and_basic_encoding() {
        assert_eq!(form_urlencode("a b+c/d=é"), "a+b%2Bc%2Fd%3D%C3%A9");
        assert_eq!(base64_standard(b"Aladdin:open sesame"), "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(base64_standard(&[0xfb, 0xff]), "+/8=");
    }
}
