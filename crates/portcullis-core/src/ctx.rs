use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The id of one request: taken from a trusted proxy's `X-Request-Id`, or generated (UUIDv7).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// A new, time-ordered, random id.
    pub fn generate() -> Self {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        Self(Arc::from(&*uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf)))
    }

    /// Accepts an id sent by a trusted proxy if it is short and made of safe characters, so it can
    /// never inject into a log line or a header.
    pub fn from_trusted(value: &[u8]) -> Option<Self> {
        let ok = !value.is_empty()
            && value.len() <= 128
            && value.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if !ok {
            return None;
        }
        std::str::from_utf8(value).ok().map(|s| Self(Arc::from(s)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::ops::Deref for RequestId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// What the pipeline decided about a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Let through to the upstream.
    #[default]
    Allow,
    /// Refused by a stage (or by the proxy's own hygiene); `reason` is a stable, secret-free code.
    Deny {
        /// The stage (or `hygiene`, `routing`) that refused.
        stage: &'static str,
        /// A short machine-readable reason, e.g. `smuggling`, `route-not-found`.
        reason: &'static str,
    },
    /// The gateway could not complete the request (upstream down, timeout, stage failure).
    Error {
        /// A short machine-readable reason, e.g. `upstream-connect`.
        reason: &'static str,
    },
}

impl Decision {
    /// The label used in logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny { .. } => "deny",
            Decision::Error { .. } => "error",
        }
    }

    /// The reason code, if any.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Decision::Allow => None,
            Decision::Deny { reason, .. } | Decision::Error { reason } => Some(reason),
        }
    }
}

/// Everything the pipeline knows about one request. Metadata only: never bodies, never secrets.
/// The OpenAPI operation the request matched, set by the router (before any stage) when the
/// route enforces a contract: stages with per-operation policy (ownership rules, rate limits,
/// masking from `x-portcullis-*` extensions) read it from [`RequestCtx::extensions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedOperation(pub Arc<str>);

impl MatchedOperation {
    /// The operation id.
    pub fn id(&self) -> &str {
        &self.0
    }
}

/// The matched operation's id, if the router found one.
pub fn matched_operation(ctx: &RequestCtx) -> Option<&str> {
    ctx.extensions.get::<MatchedOperation>().map(MatchedOperation::id)
}

#[derive(Debug)]
#[non_exhaustive]
pub struct RequestCtx {
    /// The request id, also sent upstream and returned to the client.
    pub request_id: RequestId,
    /// When the request head was received.
    pub received_at: Instant,
    /// Wall-clock time of the same moment, for logs.
    pub received_at_wall: SystemTime,
    /// The TCP peer.
    pub peer_addr: SocketAddr,
    /// The client's address: the peer, or what a trusted proxy said it was.
    pub client_ip: IpAddr,
    /// The listener's name.
    pub listener: Arc<str>,
    /// Whether the client connection is TLS.
    pub tls: bool,
    /// The request method.
    pub method: http::Method,
    /// The HTTP version the client spoke.
    pub version: http::Version,
    /// The canonical path: the only path any stage, the router and the upstream ever see.
    pub path: String,
    /// The raw query string, if any. Logged only when configured.
    pub query: Option<String>,
    /// The matched route's name.
    pub route: Option<Arc<str>>,
    /// The matched route's path pattern (a template such as `/customers/{id}`), never the raw path.
    pub path_template: Option<Arc<str>>,
    /// The upstream target that served the request, e.g. `127.0.0.1:3000`.
    pub upstream: Option<Arc<str>>,
    /// The pipeline's decision so far.
    pub decision: Decision,
    /// If set, the request body is buffered up to this many bytes and shown to
    /// [`Stage::on_request_body`](crate::Stage::on_request_body) before the upstream is contacted.
    pub buffer_request_body: Option<usize>,
    /// Same for the response body and [`Stage::on_response_body`](crate::Stage::on_response_body).
    pub buffer_response_body: Option<usize>,
    /// Set by [`RequestCtx::require_response_body`]: past the cap the response is refused.
    response_body_required: bool,
    /// Set by the proxy when a response body preferred (not required) was over the cap and was
    /// streamed to the client without `on_response_body`.
    pub response_body_unseen: bool,
    /// The authenticated caller, set only by the authentication stage.
    pub principal: Option<Arc<crate::Principal>>,
    /// The client certificate (DER) the TLS handshake verified, if the listener asks for one.
    pub client_cert: Option<Arc<[u8]>>,
    /// Headers a stage wants the upstream to receive, applied (replacing same-named ones) after
    /// the request body phase, so body-phase stages can set them too.
    pub upstream_headers: http::HeaderMap,
    /// Typed data later stages share (identity, rate-limit state, …).
    pub extensions: http::Extensions,
}

impl RequestCtx {
    /// A context for a request that just arrived.
    pub fn new(request_id: RequestId, peer_addr: SocketAddr, listener: Arc<str>, tls: bool) -> Self {
        Self {
            request_id,
            received_at: Instant::now(),
            received_at_wall: SystemTime::now(),
            peer_addr,
            client_ip: peer_addr.ip(),
            listener,
            tls,
            method: http::Method::GET,
            version: http::Version::HTTP_11,
            path: String::new(),
            query: None,
            route: None,
            path_template: None,
            upstream: None,
            decision: Decision::Allow,
            buffer_request_body: None,
            buffer_response_body: None,
            response_body_required: false,
            response_body_unseen: false,
            principal: None,
            client_cert: None,
            upstream_headers: http::HeaderMap::new(),
            extensions: http::Extensions::new(),
        }
    }

    /// Asks to see the whole request body, up to `cap` bytes (the largest cap asked for wins).
    pub fn require_request_body(&mut self, cap: usize) {
        self.buffer_request_body = Some(self.buffer_request_body.map_or(cap, |c| c.max(cap)));
    }

    /// Asks to see the whole response body, up to `cap` bytes (the largest cap asked for wins).
    /// A body past the cap is a 502: the response is not served unseen.
    pub fn require_response_body(&mut self, cap: usize) {
        self.buffer_response_body = Some(self.buffer_response_body.map_or(cap, |c| c.max(cap)));
        self.response_body_required = true;
    }

    /// Asks to see the response body if it fits in `cap` bytes; a larger one is streamed to the
    /// client unseen (no `on_response_body` call) and [`RequestCtx::response_body_unseen`] is
    /// set. Any stage calling [`RequestCtx::require_response_body`] makes the body required.
    pub fn prefer_response_body(&mut self, cap: usize) {
        self.buffer_response_body = Some(self.buffer_response_body.map_or(cap, |c| c.max(cap)));
    }

    /// Whether some stage requires the whole response body (see
    /// [`RequestCtx::require_response_body`]).
    pub fn response_body_required(&self) -> bool {
        self.response_body_required
    }

    /// Records a denial (the first one wins).
    pub fn deny(&mut self, stage: &'static str, reason: &'static str) {
        if self.decision == Decision::Allow {
            self.decision = Decision::Deny { stage, reason };
        }
    }

    /// Records a failure (the first one wins).
    pub fn fail(&mut self, reason: &'static str) {
        if self.decision == Decision::Allow {
            self.decision = Decision::Error { reason };
        }
    }
}

/// How a request ended, as seen by [`Stage::on_complete`](crate::Stage::on_complete).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Outcome {
    /// The status sent to the client (0 if the connection broke before a response).
    pub status: u16,
    /// Request body bytes read from the client.
    pub bytes_in: u64,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// From the request head to the end of the response body.
    pub duration: Duration,
    /// Time spent waiting for the upstream's response head, if it was contacted.
    pub upstream_duration: Option<Duration>,
    /// Whether the response body was cut short (client gone, upstream broke, timeout).
    pub aborted: bool,
}

impl Outcome {
    /// An outcome with the given status and timings.
    pub fn new(status: u16, bytes_in: u64, bytes_out: u64, duration: Duration) -> Self {
        Self { status, bytes_in, bytes_out, duration, upstream_duration: None, aborted: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_request_id_accepts_safe_ids() {
        assert_eq!(RequestId::from_trusted(b"abc-123_X.y:z").map(|r| r.to_string()).as_deref(), Some("abc-123_X.y:z"));
    }

    #[test]
    fn trusted_request_id_rejects_unsafe_ids() {
        assert!(RequestId::from_trusted(b"").is_none());
        assert!(RequestId::from_trusted(b"a b").is_none());
        assert!(RequestId::from_trusted(b"a\r\nx: y").is_none());
        assert!(RequestId::from_trusted(b"\"}{").is_none());
        assert!(RequestId::from_trusted(&[b'a'; 129]).is_none());
    }

    #[test]
    fn generated_ids_are_unique() {
        assert_ne!(RequestId::generate(), RequestId::generate());
    }

    #[test]
    fn first_decision_wins() {
        let mut ctx = RequestCtx::new(RequestId::generate(), "127.0.0.1:1".parse().unwrap(), Arc::from("l"), false);
        ctx.deny("hygiene", "smuggling");
        ctx.fail("upstream-connect");
        assert_eq!(ctx.decision, Decision::Deny { stage: "hygiene", reason: "smuggling" });
    }
}
