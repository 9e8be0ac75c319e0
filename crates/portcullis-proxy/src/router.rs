//! Route matching on the canonical path: first match in config order wins.

use portcullis_config::RouteConfig;

/// The result of routing a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RouteMatch {
    /// The index of the matching route.
    Found(usize),
    /// Some route matches host and path, none the method; these methods would be allowed.
    MethodNotAllowed(Vec<http::Method>),
    /// Nothing matches.
    NotFound,
}

/// Whether a route matches host and path (whatever the method).
fn matches_place(r: &RouteConfig, host: Option<&str>, path: &str) -> bool {
    let host_ok = r.hosts.is_empty() || host.is_some_and(|h| r.hosts.iter().any(|m| m.matches(h)));
    host_ok && r.path.matches(path)
}

/// The routes that match host and path, whatever the method, in config order.
pub(crate) fn matching_place<'r>(
    routes: &'r [RouteConfig],
    host: Option<&'r str>,
    path: &'r str,
) -> impl Iterator<Item = usize> + 'r {
    routes.iter().enumerate().filter(move |(_, r)| matches_place(r, host, path)).map(|(i, _)| i)
}

pub(crate) fn find(routes: &[RouteConfig], host: Option<&str>, path: &str, method: &http::Method) -> RouteMatch {
    let mut allowed: Vec<http::Method> = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        if !matches_place(r, host, path) {
            continue;
        }
        if r.methods.is_empty()
            || r.methods.contains(method)
            || (method == http::Method::HEAD && r.methods.contains(&http::Method::GET))
        {
            return RouteMatch::Found(i);
        }
        for m in &r.methods {
            if !allowed.contains(m) {
                allowed.push(m.clone());
            }
        }
    }
    if allowed.is_empty() { RouteMatch::NotFound } else { RouteMatch::MethodNotAllowed(allowed) }
}

/// The request's host, lower-cased, without port or trailing dot: from the URI authority (HTTP/2,
/// absolute-form) or the `Host` header.
pub(crate) fn request_host(parts: &http::request::Parts) -> Option<String> {
    let raw = match parts.uri.authority() {
        Some(a) => a.host().to_owned(),
        None => {
            let h = parts.headers.get(http::header::HOST)?.to_str().ok()?;
            let auth: http::uri::Authority = h.parse().ok()?;
            auth.host().to_owned()
        }
    };
    let mut host = raw.to_ascii_lowercase();
    if host.ends_with('.') {
        host.pop();
    }
    Some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Vec<RouteConfig> {
        let yaml = r#"
listeners: [{ name: l, bind: "127.0.0.1:1" }]
upstreams: { u: { targets: ["http://127.0.0.1:2"] } }
routes:
  - { name: admin, prefix: /admin, hosts: ["api.example.com"], methods: [GET], upstream: u }
  - { name: customer, path: "/customers/{id}", methods: [GET, PUT], upstream: u }
  - { name: wild, prefix: /w, hosts: ["*.example.org"], upstream: u }
"#;
        portcullis_config::from_yaml(yaml, std::path::Path::new(".")).unwrap().routes
    }

    #[test]
    fn matches_host_path_and_method() {
        let r = routes();
        assert_eq!(find(&r, Some("api.example.com"), "/admin/export", &http::Method::GET), RouteMatch::Found(0));
        assert_eq!(find(&r, Some("api.example.com"), "/admin", &http::Method::HEAD), RouteMatch::Found(0));
        assert_eq!(find(&r, Some("other.com"), "/admin/export", &http::Method::GET), RouteMatch::NotFound);
        assert_eq!(find(&r, None, "/admin", &http::Method::GET), RouteMatch::NotFound);
        assert_eq!(find(&r, None, "/customers/1", &http::Method::PUT), RouteMatch::Found(1));
        assert_eq!(
            find(&r, None, "/customers/1", &http::Method::DELETE),
            RouteMatch::MethodNotAllowed(vec![http::Method::GET, http::Method::PUT])
        );
        assert_eq!(find(&r, Some("a.example.org"), "/w/x", &http::Method::POST), RouteMatch::Found(2));
        assert_eq!(find(&r, Some("example.org"), "/w/x", &http::Method::POST), RouteMatch::NotFound);
    }

    #[test]
    fn host_is_normalised() {
        let (mut parts, ()) =
            http::Request::builder().uri("/x").header("host", "API.Example.com.:8080").body(()).unwrap().into_parts();
        assert_eq!(request_host(&parts).as_deref(), Some("api.example.com"));
        parts.uri = "http://[::1]:80/x".parse().unwrap();
        assert_eq!(request_host(&parts).as_deref(), Some("[::1]"));
    }
}
