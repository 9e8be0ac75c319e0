use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

/// The media type of every error the gateway itself produces (RFC 9457).
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// The kinds of problem the gateway answers with. Each has a stable type URI, a status and a title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The request is malformed or ambiguous (smuggling shapes, bad path encoding, bad headers).
    BadRequest,
    /// Authentication is required or failed.
    Unauthorized,
    /// The caller may not do this.
    Forbidden,
    /// No route matches.
    RouteNotFound,
    /// A route matches the path but not the method.
    MethodNotAllowed,
    /// The client was too slow sending the request.
    RequestTimeout,
    /// The request body is over the route's limit.
    PayloadTooLarge,
    /// The request target is over the URI limit.
    UriTooLong,
    /// Too many or too large request headers.
    HeadersTooLarge,
    /// Too many requests.
    TooManyRequests,
    /// The gateway failed internally (a stage error); fails closed.
    Internal,
    /// The upstream answered with something unusable, or broke the connection.
    BadGateway,
    /// The gateway is shedding load or no upstream target is available.
    Unavailable,
    /// The upstream did not answer in time.
    GatewayTimeout,
    /// The credential is valid but its consumer, organization or key is suspended.
    Suspended,
    /// The caller lacks a required scope or role.
    InsufficientScope,
    /// The object named in the request does not belong to the caller (BOLA).
    NotOwner,
    /// Too many failed authentication attempts: locked out for a while.
    AuthLockedOut,
    /// The identity provider (JWKS, introspection) is unreachable and nothing usable is cached.
    IdpUnavailable,
    /// The route is switched off by a kill switch.
    RouteSuspended,
    /// The caller's quota for the current day or month is used up (distinct from a rate limit:
    /// waiting a second does not help).
    QuotaExhausted,
    /// A rate limit or quota that fails closed could not reach its shared store.
    RateLimitUnavailable,
    /// The attack-detection stage found an attack (SQL injection, XSS, traversal, …).
    AttackDetected,
    /// The request does not match the API contract (OpenAPI): parameters, body or properties.
    ContractViolation,
    /// The request body's media type is not one the operation declares.
    UnsupportedMediaType,
}

impl ProblemKind {
    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            ProblemKind::BadRequest => StatusCode::BAD_REQUEST,
            ProblemKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ProblemKind::Forbidden => StatusCode::FORBIDDEN,
            ProblemKind::RouteNotFound => StatusCode::NOT_FOUND,
            ProblemKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProblemKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ProblemKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemKind::UriTooLong => StatusCode::URI_TOO_LONG,
            ProblemKind::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProblemKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ProblemKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ProblemKind::BadGateway => StatusCode::BAD_GATEWAY,
            ProblemKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProblemKind::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProblemKind::Suspended | ProblemKind::InsufficientScope | ProblemKind::NotOwner => StatusCode::FORBIDDEN,
            ProblemKind::AuthLockedOut => StatusCode::TOO_MANY_REQUESTS,
            ProblemKind::IdpUnavailable | ProblemKind::RouteSuspended => StatusCode::SERVICE_UNAVAILABLE,
            ProblemKind::QuotaExhausted => StatusCode::TOO_MANY_REQUESTS,
            ProblemKind::RateLimitUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProblemKind::AttackDetected => StatusCode::FORBIDDEN,
            ProblemKind::ContractViolation => StatusCode::BAD_REQUEST,
            ProblemKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    /// A stable slug, used in the type URI and in logs.
    pub fn slug(self) -> &'static str {
        match self {
            ProblemKind::BadRequest => "bad-request",
            ProblemKind::Unauthorized => "unauthorized",
            ProblemKind::Forbidden => "forbidden",
            ProblemKind::RouteNotFound => "route-not-found",
            ProblemKind::MethodNotAllowed => "method-not-allowed",
            ProblemKind::RequestTimeout => "request-timeout",
            ProblemKind::PayloadTooLarge => "payload-too-large",
            ProblemKind::UriTooLong => "uri-too-long",
            ProblemKind::HeadersTooLarge => "headers-too-large",
            ProblemKind::TooManyRequests => "too-many-requests",
            ProblemKind::Internal => "internal",
            ProblemKind::BadGateway => "bad-gateway",
            ProblemKind::Unavailable => "unavailable",
            ProblemKind::GatewayTimeout => "gateway-timeout",
            ProblemKind::Suspended => "suspended",
            ProblemKind::InsufficientScope => "insufficient-scope",
            ProblemKind::NotOwner => "not-owner",
            ProblemKind::AuthLockedOut => "auth-locked-out",
            ProblemKind::IdpUnavailable => "idp-unavailable",
            ProblemKind::RouteSuspended => "route-suspended",
            ProblemKind::QuotaExhausted => "quota-exhausted",
            ProblemKind::RateLimitUnavailable => "rate-limit-unavailable",
            ProblemKind::AttackDetected => "attack-detected",
            ProblemKind::ContractViolation => "contract-violation",
            ProblemKind::UnsupportedMediaType => "unsupported-media-type",
        }
    }

    /// A short human-readable summary that never varies between occurrences.
    pub fn title(self) -> &'static str {
        match self {
            ProblemKind::BadRequest => "The request is malformed",
            ProblemKind::Unauthorized => "Authentication is required",
            ProblemKind::Forbidden => "The request is not allowed",
            ProblemKind::RouteNotFound => "No route matches this request",
            ProblemKind::MethodNotAllowed => "The method is not allowed on this route",
            ProblemKind::RequestTimeout => "The request was not received in time",
            ProblemKind::PayloadTooLarge => "The request body is too large",
            ProblemKind::UriTooLong => "The request URI is too long",
            ProblemKind::HeadersTooLarge => "The request headers are too large",
            ProblemKind::TooManyRequests => "Too many requests",
            ProblemKind::Internal => "The gateway failed to process the request",
            ProblemKind::BadGateway => "The upstream service failed",
            ProblemKind::Unavailable => "The service is unavailable",
            ProblemKind::GatewayTimeout => "The upstream service did not answer in time",
            ProblemKind::Suspended => "Access is suspended",
            ProblemKind::InsufficientScope => "The credential does not grant this operation",
            ProblemKind::NotOwner => "The object does not belong to the caller",
            ProblemKind::AuthLockedOut => "Too many failed authentication attempts",
            ProblemKind::IdpUnavailable => "The identity provider is unavailable",
            ProblemKind::RouteSuspended => "This API is temporarily switched off",
            ProblemKind::QuotaExhausted => "The quota for this period is used up",
            ProblemKind::RateLimitUnavailable => "Rate limiting is temporarily unavailable",
            ProblemKind::AttackDetected => "The request looks like an attack",
            ProblemKind::ContractViolation => "The request does not match the API contract",
            ProblemKind::UnsupportedMediaType => "The request body's media type is not accepted",
        }
    }

    /// The problem type URI.
    pub fn type_uri(self) -> String {
        format!("urn:portcullis:problem:{}", self.slug())
    }
}

/// An RFC 9457 problem the gateway answers with. `detail` must be safe to show a client: a fixed
/// explanation, never an internal error message, a path, a header value or a secret.
#[derive(Debug, Clone)]
pub struct Problem {
    kind: ProblemKind,
    detail: Option<Cow<'static, str>>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
    members: Vec<(&'static str, serde_json::Value)>,
}

impl Problem {
    /// A problem of this kind, with no detail.
    pub fn new(kind: ProblemKind) -> Self {
        Self { kind, detail: None, headers: Vec::new(), members: Vec::new() }
    }

    /// Adds a client-safe detail.
    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds a response header (e.g. `Allow`, `Retry-After`).
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Adds an extension member (RFC 9457 §3.2), e.g. the list of contract violations. It must
    /// be as client-safe as `detail`. The standard members cannot be overridden.
    pub fn with_member(mut self, name: &'static str, value: serde_json::Value) -> Self {
        self.members.push((name, value));
        self
    }

    /// The kind.
    pub fn kind(&self) -> ProblemKind {
        self.kind
    }

    /// The JSON document.
    pub fn body(&self, request_id: &str) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "type": self.kind.type_uri(),
            "title": self.kind.title(),
            "status": self.kind.status().as_u16(),
            "request_id": request_id,
        });
        if let (Some(detail), Some(map)) = (&self.detail, doc.as_object_mut()) {
            map.insert("detail".into(), serde_json::Value::String(detail.to_string()));
        }
        if let Some(map) = doc.as_object_mut() {
            for (name, value) in &self.members {
                if !map.contains_key(*name) {
                    map.insert((*name).to_owned(), value.clone());
                }
            }
        }
        doc
    }

    /// The response: status, `application/problem+json`, `Cache-Control: no-store`, the request id.
    pub fn to_response(&self, request_id: &str) -> Response<Bytes> {
        let body = Bytes::from(self.body(request_id).to_string());
        let mut resp = Response::new(body);
        *resp.status_mut() = self.kind.status();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert(header::HeaderName::from_static("x-request-id"), v);
        }
        for (name, value) in &self.headers {
            h.append(name.clone(), value.clone());
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_is_rfc9457_json_with_request_id() {
        let resp = Problem::new(ProblemKind::RouteNotFound).to_response("rid-1");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], PROBLEM_CONTENT_TYPE);
        assert_eq!(resp.headers()["x-request-id"], "rid-1");
        let doc: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(doc["type"], "urn:portcullis:problem:route-not-found");
        assert_eq!(doc["status"], 404);
        assert_eq!(doc["request_id"], "rid-1");
        assert!(doc.get("detail").is_none());
    }

    #[test]
    fn extension_members_are_added_but_never_replace_standard_ones() {
        let p = Problem::new(ProblemKind::ContractViolation)
            .with_member("violations", serde_json::json!([{"pointer": "/query/x"}]))
            .with_member("status", serde_json::json!(200));
        let doc = p.body("rid");
        assert_eq!(doc["violations"][0]["pointer"], "/query/x");
        assert_eq!(doc["status"], 400);
    }

    #[test]
    fn every_kind_has_an_error_status() {
        use ProblemKind::*;
        for k in [
            BadRequest,
            Unauthorized,
            Forbidden,
            RouteNotFound,
            MethodNotAllowed,
            RequestTimeout,
            PayloadTooLarge,
            UriTooLong,
            HeadersTooLarge,
            TooManyRequests,
            Internal,
            BadGateway,
            Unavailable,
            GatewayTimeout,
            Suspended,
            InsufficientScope,
            NotOwner,
            AuthLockedOut,
            IdpUnavailable,
            RouteSuspended,
            QuotaExhausted,
            RateLimitUnavailable,
            AttackDetected,
            ContractViolation,
            UnsupportedMediaType,
        ] {
            assert!(k.status().is_client_error() || k.status().is_server_error(), "{k:?}");
            assert!(!k.title().is_empty());
        }
    }
}
