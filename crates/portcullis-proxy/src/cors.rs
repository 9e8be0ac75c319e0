//! Browser-facing response rules of a route, beside `hygiene.rs`: CORS answered by the gateway
//! (preflights never reach the upstream; the upstream's own `Access-Control-*` headers are
//! replaced) and attributes forced onto the upstream's cookies.
//!
//! - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) on a route with a
//!   CORS policy is answered here, before authentication (browsers send preflights without
//!   credentials): 204 with the allowed methods and headers when the origin, the method and
//!   every requested header are allowed, otherwise 403 with no CORS header at all; also 403 when
//!   the route at that place does not serve the method asked about (not routing's 405).
//! - Any other response on such a route loses the upstream's `Access-Control-*` headers; an
//!   allowed origin gets `Access-Control-Allow-Origin` (its own value, or `*` for a policy open
//!   to any origin without credentials), credentials and expose headers as configured. A
//!   disallowed origin gets no CORS header, so the browser does not let the page read the body.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use portcullis_config::{CookiePolicy, CorsOrigins, CorsPolicy};

const ACRM: HeaderName = header::ACCESS_CONTROL_REQUEST_METHOD;
const ACRH: HeaderName = header::ACCESS_CONTROL_REQUEST_HEADERS;

/// The method a preflight asks about, when the request is one.
pub(crate) fn preflight_method(parts: &http::request::Parts) -> Option<Method> {
    if parts.method != Method::OPTIONS || !parts.headers.contains_key(header::ORIGIN) {
        return None;
    }
    Method::from_bytes(parts.headers.get(ACRM)?.as_bytes()).ok()
}

/// Why a preflight was refused (for the access log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PreflightRefusal {
    Origin,
    Method,
    Headers,
}

impl PreflightRefusal {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            PreflightRefusal::Origin => "cors-origin",
            PreflightRefusal::Method => "cors-method",
            PreflightRefusal::Headers => "cors-headers",
        }
    }
}

/// Why a preflight for a method that no route at its place serves is refused: its origin, when
/// the policy does not allow it (as [`preflight`] checks first), else the method.
pub(crate) fn unrouted(policy: &CorsPolicy, req: &HeaderMap) -> PreflightRefusal {
    match req.get(header::ORIGIN) {
        Some(o) if policy.allows_origin(o.as_bytes()) => PreflightRefusal::Method,
        _ => PreflightRefusal::Origin,
    }
}

/// The answer to an allowed preflight: its status and headers (the body is empty).
pub(crate) fn preflight(
    policy: &CorsPolicy,
    req: &HeaderMap,
    method: &Method,
) -> Result<(StatusCode, HeaderMap), PreflightRefusal> {
    let origin =
        req.get(header::ORIGIN).filter(|o| policy.allows_origin(o.as_bytes())).ok_or(PreflightRefusal::Origin)?;
    if !policy.methods.contains(method) {
        return Err(PreflightRefusal::Method);
    }
    for value in req.get_all(ACRH) {
        let text = value.to_str().map_err(|_| PreflightRefusal::Headers)?;
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !policy.allow_headers.iter().any(|h| h.as_str().eq_ignore_ascii_case(name)) {
                return Err(PreflightRefusal::Headers);
            }
        }
    }
    let mut h = HeaderMap::new();
    allow_origin(&mut h, policy, origin);
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, policy.methods_value.clone());
    if let Some(v) = &policy.allow_headers_value {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
    }
    if let Some(v) = &policy.max_age_value {
        h.insert(header::ACCESS_CONTROL_MAX_AGE, v.clone());
    }
    h.append(
        header::VARY,
        HeaderValue::from_static("Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
    );
    Ok((StatusCode::NO_CONTENT, h))
}

fn allow_origin(h: &mut HeaderMap, policy: &CorsPolicy, origin: &HeaderValue) {
    match (&policy.origins, policy.allow_credentials) {
        (CorsOrigins::Any, false) => {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        }
        _ => {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            if policy.allow_credentials {
                h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
            }
        }
    }
}

/// The CORS headers of an actual (non-preflight) response on a route with a policy: the
/// upstream's are dropped, the gateway's set for an allowed origin.
pub(crate) fn apply(policy: &CorsPolicy, origin: Option<&HeaderValue>, h: &mut HeaderMap) {
    let upstreams: Vec<HeaderName> = h.keys().filter(|n| n.as_str().starts_with("access-control-")).cloned().collect();
    for n in upstreams {
        h.remove(n);
    }
    if matches!(policy.origins, CorsOrigins::List(_)) {
        // The answer depends on Origin: caches must keep one copy per origin.
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    let Some(origin) = origin.filter(|o| policy.allows_origin(o.as_bytes())) else { return };
    allow_origin(h, policy, origin);
    if let Some(v) = &policy.expose_headers_value {
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
    }
}

/// Forces the policy's attributes onto every `Set-Cookie`, without duplicating one the upstream
/// already set; a `SameSite` of the upstream is replaced. A cookie that is not valid text cannot
/// be rewritten safely and is dropped (counted).
pub(crate) fn secure_cookies(policy: &CookiePolicy, h: &mut HeaderMap) {
    if !h.contains_key(header::SET_COOKIE) {
        return;
    }
    let old: Vec<HeaderValue> = h.get_all(header::SET_COOKIE).iter().cloned().collect();
    h.remove(header::SET_COOKIE);
    for v in old {
        match v.to_str().ok().map(|s| rewrite_cookie(policy, s)).and_then(|s| HeaderValue::from_str(&s).ok()) {
            Some(v) => {
                h.append(header::SET_COOKIE, v);
            }
            None => {
                metrics::counter!("portcullis_cookies_dropped_total").increment(1);
                tracing::warn!("upstream Set-Cookie is not text and was dropped");
            }
        }
    }
}

fn rewrite_cookie(policy: &CookiePolicy, value: &str) -> String {
    let mut parts = value.split(';');
    let mut out = parts.next().unwrap_or_default().trim().to_owned();
    let (mut secure, mut http_only) = (false, false);
    for attr in parts.map(str::trim).filter(|a| !a.is_empty()) {
        let name = attr.split('=').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("samesite") && policy.same_site.is_some() {
            continue;
        }
        secure |= name.eq_ignore_ascii_case("secure");
        http_only |= name.eq_ignore_ascii_case("httponly");
        out.push_str("; ");
        out.push_str(attr);
    }
    if policy.secure && !secure {
        out.push_str("; Secure");
    }
    if policy.http_only && !http_only {
        out.push_str("; HttpOnly");
    }
    if let Some(s) = policy.same_site {
        out.push_str("; SameSite=");
        out.push_str(s.as_str());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_config::SameSite;

    fn policy() -> CookiePolicy {
        CookiePolicy { secure: true, http_only: true, same_site: Some(SameSite::Strict) }
    }

    #[test]
    fn cookie_attributes_are_added_once_and_samesite_replaced() {
        let p = policy();
        assert_eq!(rewrite_cookie(&p, "sid=abc"), "sid=abc; Secure; HttpOnly; SameSite=Strict");
        assert_eq!(
            rewrite_cookie(&p, "sid=abc; Path=/; secure; HTTPONLY; SameSite=None; Max-Age=60"),
            "sid=abc; Path=/; secure; HTTPONLY; Max-Age=60; SameSite=Strict"
        );
        // Idempotent: rewriting a rewritten cookie changes nothing.
        let once = rewrite_cookie(&p, "a=1; Domain=example.com");
        assert_eq!(rewrite_cookie(&p, &once), once);
        let lax_only = CookiePolicy { secure: false, http_only: false, same_site: None };
        assert_eq!(rewrite_cookie(&lax_only, "a=1;  Path=/ ; SameSite=Lax"), "a=1; Path=/; SameSite=Lax");
    }

    #[test]
    fn every_set_cookie_is_rewritten_and_unreadable_ones_dropped() {
        let mut h = HeaderMap::new();
        h.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::SET_COOKIE, HeaderValue::from_static("b=2; HttpOnly"));
        h.append(header::SET_COOKIE, HeaderValue::from_bytes(b"c=\xff").unwrap());
        secure_cookies(&policy(), &mut h);
        let got: Vec<&str> = h.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(got, ["a=1; Secure; HttpOnly; SameSite=Strict", "b=2; HttpOnly; Secure; SameSite=Strict"]);
    }
}
