//! Browser-facing settings of a route: a CORS policy (answered by the gateway) and the attributes
//! forced onto cookies the upstream sets. Compiled at load time; the proxy applies them
//! (`portcullis-proxy/src/cors.rs`).
//!
//! ```yaml
//! policy:
//!   cors:
//!     allow_origins: [https://app.example.com]
//!     allow_methods: [GET, POST]
//!     allow_headers: [content-type, x-api-key]
//!     expose_headers: [x-request-id]
//!     max_age: 10m
//!     allow_credentials: true
//!   cookies: { secure: true, http_only: true, same_site: lax }
//! ```

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::typed::Builder;

/// Longest `max_age` accepted: browsers cap it lower anyway (Chromium at 2 hours).
const MAX_CORS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// A route's CORS policy, as written.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileCors {
    /// Origins allowed to read responses (`https://app.example.com`, scheme and host and an
    /// optional port, no path), or `["*"]` for any origin (not with `allow_credentials`).
    pub allow_origins: Vec<String>,
    /// Methods a cross-origin request may use. Default: GET, HEAD, POST.
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// Request headers a cross-origin request may send (beyond the CORS-safelisted ones).
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers the browser may show to the calling script.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// How long a browser may cache a preflight answer (e.g. `10m`); at most 24h. Default: not
    /// sent (browsers then use 5 s).
    #[serde(default)]
    pub max_age: Option<String>,
    /// Let the browser send cookies and HTTP authentication. Needs explicit origins.
    #[serde(default)]
    pub allow_credentials: bool,
}

/// Which origins a CORS policy allows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorsOrigins {
    /// Any origin (`*`); never together with credentials.
    Any,
    /// These serialized origins, lower-case (`https://app.example.com:8443`).
    List(Vec<String>),
}

/// A compiled CORS policy; the header values are built once here.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    /// Allowed origins.
    pub origins: CorsOrigins,
    /// Allowed methods.
    pub methods: Vec<Method>,
    /// Allowed request headers (lower-case).
    pub allow_headers: Vec<HeaderName>,
    /// Whether credentials are allowed.
    pub allow_credentials: bool,
    /// `Access-Control-Allow-Methods`.
    pub methods_value: HeaderValue,
    /// `Access-Control-Allow-Headers`, if any header is allowed.
    pub allow_headers_value: Option<HeaderValue>,
    /// `Access-Control-Expose-Headers`, if any.
    pub expose_headers_value: Option<HeaderValue>,
    /// `Access-Control-Max-Age`, if set.
    pub max_age_value: Option<HeaderValue>,
}

impl CorsPolicy {
    /// Whether this `Origin` header value is allowed (origins compare case-insensitively).
    pub fn allows_origin(&self, origin: &[u8]) -> bool {
        match &self.origins {
            CorsOrigins::Any => true,
            CorsOrigins::List(list) => list.iter().any(|o| o.as_bytes().eq_ignore_ascii_case(origin)),
        }
    }
}

/// `SameSite` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SameSite {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=None` (needs `Secure`).
    None,
}

impl SameSite {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// Attributes forced onto every `Set-Cookie` of the upstream, as written.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileCookies {
    /// Add `Secure`. Default `true`.
    #[serde(default)]
    pub secure: Option<bool>,
    /// Add `HttpOnly`. Default `true`.
    #[serde(default)]
    pub http_only: Option<bool>,
    /// Set `SameSite` (`strict`, `lax` or `none`), replacing the upstream's. Default `lax`.
    #[serde(default)]
    pub same_site: Option<String>,
}

/// A compiled cookie policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookiePolicy {
    /// Add `Secure`.
    pub secure: bool,
    /// Add `HttpOnly`.
    pub http_only: bool,
    /// Set `SameSite`.
    pub same_site: Option<SameSite>,
}

/// A serialized origin: `http(s)://host[:port]`, lower-cased, no path, query or user info.
fn parse_origin(s: &str) -> Result<String, String> {
    let lower = s.trim().to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(|| format!("{s:?} must start with https:// or http://"))?;
    let not_origin = || format!("{s:?} is not an origin: write scheme://host[:port] with no path");
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (addr, after) = v6.split_once(']').ok_or_else(not_origin)?;
            addr.parse::<std::net::Ipv6Addr>().map_err(|_| not_origin())?;
            (None, after.strip_prefix(':').map(Some).unwrap_or((!after.is_empty()).then_some("")))
        }
        None => match rest.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(rest), None),
        },
    };
    if let Some(h) = host
        && (h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')))
    {
        return Err(not_origin());
    }
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err())
    {
        return Err(format!("{s:?} has an invalid port"));
    }
    Ok(lower)
}

fn list_value(items: &[String]) -> Option<HeaderValue> {
    (!items.is_empty()).then(|| HeaderValue::from_str(&items.join(", ")).ok()).flatten()
}

impl Builder<'_> {
    pub(crate) fn route_cors(&mut self, p: &str, fc: Option<&FileCors>) -> Option<Arc<CorsPolicy>> {
        let fc = fc?;
        let p = format!("{p}.policy.cors");
        let mut ok = true;
        let origins = if fc.allow_origins.iter().any(|o| o.trim() == "*") {
            if fc.allow_origins.len() > 1 {
                self.c.error(
                    format!("{p}.allow_origins"),
                    "`*` cannot be mixed with origins",
                    "keep either [\"*\"] or a list of origins",
                );
                ok = false;
            }
            if fc.allow_credentials {
                self.c.error(
                    format!("{p}.allow_credentials"),
                    "credentials are allowed only for explicit origins, never with `*`",
                    "list the origins that may send credentials, or set allow_credentials: false",
                );
                ok = false;
            }
            CorsOrigins::Any
        } else {
            let mut list = Vec::new();
            for (i, o) in fc.allow_origins.iter().enumerate() {
                if o.trim().eq_ignore_ascii_case("null") {
                    self.c.error(
                        format!("{p}.allow_origins[{i}]"),
                        "the `null` origin is shared by sandboxed frames and local files and cannot be trusted",
                        "list real origins such as https://app.example.com",
                    );
                    ok = false;
                    continue;
                }
                match parse_origin(o) {
                    Ok(o) => list.push(o),
                    Err(e) => {
                        self.c.error(format!("{p}.allow_origins[{i}]"), e, "write e.g. https://app.example.com");
                        ok = false;
                    }
                }
            }
            if fc.allow_origins.is_empty() {
                self.c.error(
                    format!("{p}.allow_origins"),
                    "no origin is allowed",
                    "list at least one origin, or remove cors",
                );
                ok = false;
            }
            CorsOrigins::List(list)
        };
        let mut methods = Vec::new();
        let names: Vec<String> = if fc.allow_methods.is_empty() {
            vec!["GET".into(), "HEAD".into(), "POST".into()]
        } else {
            fc.allow_methods.clone()
        };
        for (i, m) in names.iter().enumerate() {
            match Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes()) {
                Ok(m) if m != Method::CONNECT && m != Method::TRACE && m.as_str() != "*" => methods.push(m),
                _ => {
                    self.c.error(
                        format!("{p}.allow_methods[{i}]"),
                        format!("invalid method {m:?}"),
                        "write GET, POST, PUT, …",
                    );
                    ok = false;
                }
            }
        }
        let mut headers = |field: &str, list: &[String], ok: &mut bool| -> Vec<HeaderName> {
            let mut out = Vec::new();
            for (i, h) in list.iter().enumerate() {
                // `*` is a valid header-name token, but as a CORS wildcard it would mean "any
                // header" (and nothing at all with credentials): refuse it rather than guess.
                match HeaderName::from_bytes(h.trim().as_bytes()).ok().filter(|n| n.as_str() != "*") {
                    Some(n) => out.push(n),
                    None => {
                        self.c.error(
                            format!("{p}.{field}[{i}]"),
                            format!("invalid header name {h:?} (wildcards are not supported)"),
                            "list header names such as content-type",
                        );
                        *ok = false;
                    }
                }
            }
            out
        };
        let allow_headers = headers("allow_headers", &fc.allow_headers, &mut ok);
        let expose_headers = headers("expose_headers", &fc.expose_headers, &mut ok);
        let max_age = match fc.max_age.as_deref().map(crate::typed::parse_duration) {
            None => None,
            Some(Ok(d)) if d <= MAX_CORS_MAX_AGE => Some(d),
            Some(Ok(_)) => {
                self.c.error(format!("{p}.max_age"), "must be at most 24h", "e.g. 10m");
                ok = false;
                None
            }
            Some(Err(e)) => {
                self.c.error(format!("{p}.max_age"), format!("invalid duration: {e}"), "e.g. 10m");
                ok = false;
                None
            }
        };
        let method_names: Vec<String> = methods.iter().map(|m| m.as_str().to_owned()).collect();
        let header_names = |v: &[HeaderName]| v.iter().map(|h| h.as_str().to_owned()).collect::<Vec<_>>();
        let methods_value = list_value(&method_names)?;
        if !ok {
            return None;
        }
        Some(Arc::new(CorsPolicy {
            origins,
            methods,
            allow_headers_value: list_value(&header_names(&allow_headers)),
            allow_headers,
            allow_credentials: fc.allow_credentials,
            methods_value,
            expose_headers_value: list_value(&header_names(&expose_headers)),
            max_age_value: max_age.map(|d| HeaderValue::from(d.as_secs())),
        }))
    }

    pub(crate) fn route_cookies(&mut self, p: &str, fc: Option<&FileCookies>) -> Option<CookiePolicy> {
        let fc = fc?;
        let p = format!("{p}.policy.cookies");
        let same_site = match fc.same_site.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("lax") => Some(SameSite::Lax),
            Some("strict") => Some(SameSite::Strict),
            Some("none") => Some(SameSite::None),
            Some(other) => {
                self.c.error(format!("{p}.same_site"), format!("unknown value {other:?}"), "write strict, lax or none");
                return None;
            }
        };
        let secure = fc.secure.unwrap_or(true);
        if same_site == Some(SameSite::None) && !secure {
            self.c.error(
                format!("{p}.same_site"),
                "SameSite=None cookies must be Secure (browsers reject them otherwise)",
                "set secure: true, or use same_site: lax",
            );
            return None;
        }
        if !secure {
            self.c.warn(format!("{p}.secure"), "cookies may be sent over cleartext HTTP");
        }
        Some(CookiePolicy { secure, http_only: fc.http_only.unwrap_or(true), same_site })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::from_yaml;

    fn yaml(policy: &str) -> String {
        format!(
            r#"
listeners: [{{ name: public, bind: "127.0.0.1:8080" }}]
upstreams: {{ crm: {{ targets: ["http://127.0.0.1:3000"] }} }}
routes: [{{ name: all, prefix: /, upstream: crm, policy: {policy} }}]
"#
        )
    }

    #[test]
    fn a_valid_cors_policy_compiles() {
        let c = from_yaml(
            &yaml(
                "{ cors: { allow_origins: [HTTPS://App.Example.com, 'http://localhost:3000'], allow_methods: [get, put], \
                 allow_headers: [Content-Type, x-api-key], expose_headers: [x-request-id], max_age: 10m, \
                 allow_credentials: true } }",
            ),
            Path::new("."),
        )
        .unwrap();
        let cors = c.routes[0].cors.as_ref().unwrap();
        assert!(cors.allows_origin(b"https://app.example.com"));
        assert!(cors.allows_origin(b"http://LOCALHOST:3000"));
        assert!(!cors.allows_origin(b"https://evil.example.com"));
        assert!(!cors.allows_origin(b"https://app.example.com.evil.test"));
        assert!(!cors.allows_origin(b"null"));
        assert_eq!(cors.methods_value, "GET, PUT");
        assert_eq!(cors.allow_headers_value.as_ref().unwrap(), "content-type, x-api-key");
        assert_eq!(cors.max_age_value.as_ref().unwrap(), "600");
        assert!(cors.allow_credentials);
        let any = from_yaml(&yaml("{ cors: { allow_origins: ['*'] } }"), Path::new(".")).unwrap();
        let any = any.routes[0].cors.as_ref().unwrap();
        assert!(any.allows_origin(b"https://anything.test"));
        assert_eq!(any.methods_value, "GET, HEAD, POST");
    }

    #[test]
    fn cors_mistakes_are_rejected_with_their_path() {
        for (bad, path) in [
            ("{ cors: { allow_origins: ['*'], allow_credentials: true } }", "routes[0].policy.cors.allow_credentials"),
            ("{ cors: { allow_origins: ['*', 'https://a.test'] } }", "routes[0].policy.cors.allow_origins"),
            ("{ cors: { allow_origins: [] } }", "routes[0].policy.cors.allow_origins"),
            ("{ cors: { allow_origins: ['null'] } }", "routes[0].policy.cors.allow_origins[0]"),
            ("{ cors: { allow_origins: ['https://a.test/path'] } }", "routes[0].policy.cors.allow_origins[0]"),
            ("{ cors: { allow_origins: ['a.test'] } }", "routes[0].policy.cors.allow_origins[0]"),
            ("{ cors: { allow_origins: ['https://a.test:99999'] } }", "routes[0].policy.cors.allow_origins[0]"),
            (
                "{ cors: { allow_origins: ['https://a.test'], allow_methods: [TRACE] } }",
                "routes[0].policy.cors.allow_methods[0]",
            ),
            (
                "{ cors: { allow_origins: ['https://a.test'], allow_headers: ['*'] } }",
                "routes[0].policy.cors.allow_headers[0]",
            ),
            ("{ cors: { allow_origins: ['https://a.test'], max_age: 2d } }", "routes[0].policy.cors.max_age"),
            ("{ cookies: { same_site: none, secure: false } }", "routes[0].policy.cookies.same_site"),
            ("{ cookies: { same_site: sometimes } }", "routes[0].policy.cookies.same_site"),
        ] {
            let errs = from_yaml(&yaml(bad), Path::new(".")).unwrap_err().0;
            assert!(errs.iter().any(|e| e.path == path), "{bad}: {errs:?}");
        }
    }

    #[test]
    fn cookie_policy_defaults_are_strict() {
        let c = from_yaml(&yaml("{ cookies: {} }"), Path::new(".")).unwrap();
        let k = c.routes[0].cookies.unwrap();
        assert!(k.secure && k.http_only);
        assert_eq!(k.same_site, Some(super::SameSite::Lax));
        assert!(from_yaml(&yaml("{}"), Path::new(".")).unwrap().routes[0].cookies.is_none());
    }
}
