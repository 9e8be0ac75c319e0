//! HTTP hygiene that no later stage can be tricked around: request-smuggling shapes, header
//! limits, hop-by-hop headers, forwarding headers from untrusted peers, response fingerprints.
//!
//! hyper's parser already refuses most malformed input (obs-fold, bad header names, invalid
//! `Content-Length`); these checks run after it and refuse what it tolerates but an upstream or a
//! proxy behind us might read differently.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use portcullis_config::Limits;
use portcullis_core::ProblemKind;

/// A refusal: the problem to answer with and a stable reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reject {
    pub(crate) kind: ProblemKind,
    pub(crate) reason: &'static str,
}

const fn reject(kind: ProblemKind, reason: &'static str) -> Reject {
    Reject { kind, reason }
}

/// Checks the request head. Runs before routing and before any stage.
pub(crate) fn check_request(parts: &http::request::Parts, limits: &Limits) -> Result<(), Reject> {
    let uri_len = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > limits.max_uri_bytes {
        return Err(reject(ProblemKind::UriTooLong, "uri-too-long"));
    }
    if parts.method == http::Method::CONNECT || parts.method == http::Method::TRACE {
        return Err(reject(ProblemKind::MethodNotAllowed, "method-not-proxied"));
    }
    let h = &parts.headers;
    // HTTP/2 has no header-count limit of its own in hyper; enforce the same limits for both.
    if h.len() > limits.max_headers {
        return Err(reject(ProblemKind::HeadersTooLarge, "too-many-headers"));
    }
    let mut total = 0usize;
    // Control characters in names and values never get this far: httparse refuses them and
    // `http::HeaderValue` cannot hold them (the end-to-end table proves it on the wire).
    for (name, value) in h {
        total += name.as_str().len() + value.len() + 4;
    }
    if total > limits.max_header_bytes {
        return Err(reject(ProblemKind::HeadersTooLarge, "headers-too-large"));
    }

    // Shapes hyper's parser would hide, marked on the wire by the HTTP/1 guard.
    if h.contains_key(crate::h1_guard::MARK_CL_AND_TE) {
        return Err(reject(ProblemKind::BadRequest, "smuggling-cl-te"));
    }
    if h.contains_key(crate::h1_guard::MARK_CL_REPEAT) {
        return Err(reject(ProblemKind::BadRequest, "smuggling-duplicate-cl"));
    }
    let te: Vec<&HeaderValue> = h.get_all(header::TRANSFER_ENCODING).iter().collect();
    let cl: Vec<&HeaderValue> = h.get_all(header::CONTENT_LENGTH).iter().collect();
    if !te.is_empty() {
        if !cl.is_empty() {
            return Err(reject(ProblemKind::BadRequest, "smuggling-cl-te"));
        }
        if parts.version != http::Version::HTTP_11
            || te.len() != 1
            || !te[0].as_bytes().eq_ignore_ascii_case(b"chunked")
        {
            return Err(reject(ProblemKind::BadRequest, "smuggling-te"));
        }
    }
    if cl.len() > 1 {
        return Err(reject(ProblemKind::BadRequest, "smuggling-duplicate-cl"));
    }
    if let Some(v) = cl.first() {
        let b = v.as_bytes();
        if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) {
            return Err(reject(ProblemKind::BadRequest, "smuggling-bad-cl"));
        }
    }
    if h.get_all(header::HOST).iter().count() > 1 {
        return Err(reject(ProblemKind::BadRequest, "duplicate-host"));
    }
    if parts.version == http::Version::HTTP_11 && parts.uri.authority().is_none() && !h.contains_key(header::HOST) {
        return Err(reject(ProblemKind::BadRequest, "missing-host"));
    }
    Ok(())
}

/// The declared body length, if any (already validated by [`check_request`]).
pub(crate) fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Whether this is an HTTP/1.1 WebSocket upgrade request.
pub(crate) fn is_websocket_upgrade(parts: &http::request::Parts) -> bool {
    parts.version == http::Version::HTTP_11
        && parts.method == http::Method::GET
        && header_has_token(&parts.headers, header::CONNECTION, "upgrade")
        && parts.headers.get(header::UPGRADE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

fn header_has_token(h: &HeaderMap, name: HeaderName, token: &str) -> bool {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), including those the `Connection` header names.
/// `Upgrade` is removed too unless `keep_upgrade` (a WebSocket handshake being passed through).
pub(crate) fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the (few) headers present instead of a hash lookup per listed name.
    let mut doomed: Vec<HeaderName> = Vec::new();
    for name in h.keys() {
        let listed = HOP_BY_HOP.contains(name) || (!keep_upgrade && *name == header::UPGRADE);
        if listed && !doomed.contains(name) {
            doomed.push(name.clone());
        }
    }
    if doomed.is_empty() {
        if keep_upgrade {
            h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        return;
    }
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for n in named {
        if !(keep_upgrade && n == header::UPGRADE) {
            h.remove(n);
        }
    }
    for n in doomed {
        h.remove(n);
    }
    if keep_upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = canonical_ip(ip);
    trusted.iter().any(|n| n.contains(&ip))
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether the TCP peer is a configured trusted proxy.
pub(crate) fn peer_is_trusted(peer: IpAddr, trusted: &[IpNet]) -> bool {
    !trusted.is_empty() && is_trusted(peer, trusted)
}

/// The client address behind trusted proxies: walk `X-Forwarded-For` (or `Forwarded: for=`) from
/// the right, skipping trusted proxies; the first untrusted address is the client. Only called
/// when the peer itself is trusted. A malformed entry stops the walk at the last good address.
pub(crate) fn forwarded_client(h: &HeaderMap, peer: IpAddr, trusted: &[IpNet]) -> IpAddr {
    let mut chain: Vec<IpAddr> = Vec::new();
    let mut malformed = false;
    let xff: Vec<&str> = h.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
    if !xff.is_empty() {
        for part in xff.iter().flat_map(|v| v.split(',')) {
            match parse_addr(part.trim()) {
                Some(ip) => chain.push(ip),
                None => malformed = true,
            }
        }
    } else {
        for v in h.get_all(header::FORWARDED).iter().filter_map(|v| v.to_str().ok()) {
            for element in v.split(',') {
                for pair in element.split(';') {
                    let mut kv = pair.splitn(2, '=');
                    if kv.next().is_some_and(|k| k.trim().eq_ignore_ascii_case("for")) {
                        match kv.next().and_then(|v| parse_addr(v.trim().trim_matches('"'))) {
                            Some(ip) => chain.push(ip),
                            None => malformed = true,
                        }
                    }
                }
            }
        }
    }
    if malformed {
        // An unparsable hop means the chain cannot be trusted past it; fall back to the peer.
        return peer;
    }
    let mut client = peer;
    for ip in chain.iter().rev() {
        client = *ip;
        if !is_trusted(*ip, trusted) {
            break;
        }
    }
    client
}

fn parse_addr(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    let inner = s.strip_prefix('[')?.split(']').next()?;
    inner.parse().ok()
}

/// Headers upstreams use to fingerprint themselves; removed from every response.
const FINGERPRINTS: [&str; 8] = [
    "server",
    "x-powered-by",
    "x-aspnet-version",
    "x-aspnetmvc-version",
    "x-runtime",
    "x-generator",
    "x-drupal-cache",
    "x-backend-server",
];

/// Response hygiene applied to every response, upstream or synthetic.
pub(crate) fn secure_response_headers(h: &mut HeaderMap, request_id: &str, hsts: Option<&HeaderValue>) {
    let doomed: Vec<HeaderName> = h.keys().filter(|n| FINGERPRINTS.contains(&n.as_str())).cloned().collect();
    for name in doomed {
        h.remove(name);
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert(HeaderName::from_static("x-request-id"), v);
    }
    if let Some(v) = hsts {
        h.insert(header::STRICT_TRANSPORT_SECURITY, v.clone());
    }
}

/// Removes every client-sent `x-portcullis-*` header: only the gateway sets identity headers.
pub(crate) fn strip_identity_headers(h: &mut http::HeaderMap) {
    let spoofed: Vec<http::HeaderName> =
        h.keys().filter(|n| n.as_str().starts_with("x-portcullis-")).cloned().collect();
    for name in spoofed {
        h.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_header_bytes: 8192,
            max_headers: 10,
            max_uri_bytes: 64,
            max_request_body_bytes: 100,
            max_connections: 10,
            max_inflight_requests: 10,
        }
    }

    fn parts(headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().uri("/x").header("host", "h");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn accepts_ordinary_requests() {
        assert_eq!(check_request(&parts(&[("content-length", "5")]), &limits()), Ok(()));
        assert_eq!(check_request(&parts(&[("transfer-encoding", "Chunked")]), &limits()), Ok(()));
        assert_eq!(check_request(&parts(&[("x-tab", "a\tb")]), &limits()), Ok(()));
    }

    #[test]
    fn rejects_smuggling_shapes() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("content-length", "5"), ("transfer-encoding", "chunked")], "smuggling-cl-te"),
            (&[("content-length", "5"), ("content-length", "5")], "smuggling-duplicate-cl"),
            (&[("content-length", "5, 5")], "smuggling-bad-cl"),
            (&[("content-length", "+5")], "smuggling-bad-cl"),
            (&[("transfer-encoding", "gzip, chunked")], "smuggling-te"),
            (&[("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")], "smuggling-te"),
            (&[("transfer-encoding", "identity")], "smuggling-te"),
            (&[("host", "other")], "duplicate-host"),
        ];
        for (headers, reason) in cases {
            assert_eq!(check_request(&parts(headers), &limits()).map_err(|r| r.reason), Err(*reason), "{headers:?}");
        }
    }

    #[test]
    fn rejects_oversize_heads_and_unproxied_methods() {
        assert!(HeaderValue::from_bytes(b"a\x01b").is_err(), "http must refuse control characters");
        let many: Vec<(String, String)> = (0..11).map(|i| (format!("x-{i}"), "v".into())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(check_request(&parts(&many), &limits()).unwrap_err().kind, ProblemKind::HeadersTooLarge);
        let mut long = parts(&[]);
        long.uri = format!("/{}", "a".repeat(100)).parse().unwrap();
        assert_eq!(check_request(&long, &limits()).unwrap_err().kind, ProblemKind::UriTooLong);
        let mut trace = parts(&[]);
        trace.method = http::Method::TRACE;
        assert_eq!(check_request(&trace, &limits()).unwrap_err().reason, "method-not-proxied");
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret-hop"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn forwarded_for_is_walked_from_the_right_past_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 1.2.3.4, 10.0.0.9"));
        assert_eq!(forwarded_client(&h, peer, &trusted), "1.2.3.4".parse::<IpAddr>().unwrap());
        let mut f = HeaderMap::new();
        f.insert(header::FORWARDED, HeaderValue::from_static("for=5.5.5.5;proto=https, for=\"[2001:db8::1]:4711\""));
        assert_eq!(forwarded_client(&f, peer, &trusted), "2001:db8::1".parse::<IpAddr>().unwrap());
        let mut bad = HeaderMap::new();
        bad.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4, garbage"));
        assert_eq!(forwarded_client(&bad, peer, &trusted), peer);
        assert!(peer_is_trusted(peer, &trusted));
        assert!(!peer_is_trusted("1.1.1.1".parse().unwrap(), &trusted));
        assert!(!peer_is_trusted(peer, &[]));
    }

    #[test]
    fn response_fingerprints_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("server", HeaderValue::from_static("crm/1.0"));
        h.insert("x-powered-by", HeaderValue::from_static("php"));
        secure_response_headers(&mut h, "rid", Some(&HeaderValue::from_static("max-age=1")));
        assert!(!h.contains_key("server") && !h.contains_key("x-powered-by"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-request-id"], "rid");
        assert_eq!(h["strict-transport-security"], "max-age=1");
    }
}
