//! Route matchers compiled at load: path templates and prefixes, host names.

use std::fmt;
use std::sync::Arc;

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(Arc<str>),
}

/// A compiled route path: an exact template (`/customers/{id}`) or a segment-wise prefix (`/api`).
#[derive(Clone, PartialEq, Eq)]
pub struct PathPattern {
    source: Arc<str>,
    segments: Vec<Segment>,
    prefix: bool,
    trailing_slash: bool,
}

impl fmt::Debug for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.source, if self.prefix { "*" } else { "" })
    }
}

/// Why a path pattern is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Does not start with `/`.
    #[error("must start with '/'")]
    NoLeadingSlash,
    /// Contains `.`/`..` segments, `//`, `%`, `?`, `#` or `\`; patterns are written in canonical form.
    #[error("must be in canonical form (no '.', '..' or empty segments, no '%', '?', '#' or '\\')")]
    NotCanonical,
    /// A `{param}` that is not a whole segment, or has an empty or invalid name.
    #[error("a parameter must be a whole segment such as '{{id}}'")]
    BadParam,
}

impl PathPattern {
    /// Compiles an exact path or template (`prefix == false`) or a prefix (`prefix == true`).
    pub fn parse(source: &str, prefix: bool) -> Result<Self, PatternError> {
        let rest = source.strip_prefix('/').ok_or(PatternError::NoLeadingSlash)?;
        if source.contains(['%', '?', '#', '\\']) || source.contains("//") {
            return Err(PatternError::NotCanonical);
        }
        let trailing_slash = !rest.is_empty() && rest.ends_with('/');
        let body = rest.strip_suffix('/').unwrap_or(rest);
        let mut segments = Vec::new();
        if !body.is_empty() {
            for seg in body.split('/') {
                if seg.is_empty() || seg == "." || seg == ".." {
                    return Err(PatternError::NotCanonical);
                }
                if seg.contains(['{', '}']) {
                    let name = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')).ok_or(PatternError::BadParam)?;
                    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                        return Err(PatternError::BadParam);
                    }
                    segments.push(Segment::Param(Arc::from(name)));
                } else {
                    segments.push(Segment::Literal(seg.to_owned()));
                }
            }
        }
        Ok(Self { source: Arc::from(source), segments, prefix, trailing_slash })
    }

    /// The pattern as written, used as the path template in logs.
    pub fn source(&self) -> &Arc<str> {
        &self.source
    }

    /// Whether this is a prefix pattern.
    pub fn is_prefix(&self) -> bool {
        self.prefix
    }

    /// The names of the template's `{param}` segments, in order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) => Some(&**n),
            Segment::Literal(_) => None,
        })
    }

    /// The value of the `{name}` segment in `path` (which must match this pattern), if any.
    pub fn param<'p>(&self, path: &'p str, name: &str) -> Option<&'p str> {
        let body = path.strip_prefix('/')?;
        let mut parts = body.split('/');
        for seg in &self.segments {
            let part = parts.next()?;
            if let Segment::Param(n) = seg
                && &**n == name
            {
                return Some(part);
            }
        }
        None
    }

    /// Matches a canonical path. Prefixes match whole segments; templates match every segment,
    /// and a trailing `/` must agree with the template's.
    pub fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let ends_with_slash = !rest.is_empty() && rest.ends_with('/');
        let body = rest.strip_suffix('/').unwrap_or(rest);
        let mut parts = if body.is_empty() { None } else { Some(body.split('/')) };
        for seg in &self.segments {
            let Some(part) = parts.as_mut().and_then(Iterator::next) else {
                return false;
            };
            match seg {
                Segment::Literal(lit) if lit != part => return false,
                Segment::Param(_) if part.is_empty() => return false,
                _ => {}
            }
        }
        if self.prefix {
            return true;
        }
        let exhausted = parts.as_mut().and_then(Iterator::next).is_none();
        exhausted && (self.segments.is_empty() || ends_with_slash == self.trailing_slash)
    }
}

/// A host matcher: exact (case-insensitive) or `*.suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// `api.example.com`
    Exact(String),
    /// `*.example.com` matches `a.example.com` and `a.b.example.com`, not `example.com`.
    Suffix(String),
}

impl HostMatch {
    /// Parses a host pattern.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.to_ascii_lowercase();
        let valid = |h: &str| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        match s.strip_prefix("*.") {
            Some(rest) if valid(rest) => Some(Self::Suffix(format!(".{rest}"))),
            Some(_) => None,
            None if valid(&s) => Some(Self::Exact(s)),
            None => None,
        }
    }

    /// Matches a lower-case host name without port.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Exact(h) => h == host,
            HostMatch::Suffix(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_whole_segments() {
        let p = PathPattern::parse("/customers/{id}", false).unwrap();
        assert!(p.matches("/customers/42"));
        assert!(!p.matches("/customers"));
        assert!(!p.matches("/customers/"));
        assert!(!p.matches("/customers/42/orders"));
        assert!(!p.matches("/customers/42/"));
        assert!(!p.matches("/customersx/42"));
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let p = PathPattern::parse("/admin", true).unwrap();
        assert!(p.matches("/admin"));
        assert!(p.matches("/admin/"));
        assert!(p.matches("/admin/export"));
        assert!(!p.matches("/administrator"));
        assert!(!p.matches("/"));
        let root = PathPattern::parse("/", true).unwrap();
        assert!(root.matches("/"));
        assert!(root.matches("/anything/at/all"));
    }

    #[test]
    fn params_are_captured_by_name() {
        let p = PathPattern::parse("/orgs/{org}/customers/{id}", false).unwrap();
        assert_eq!(p.param_names().collect::<Vec<_>>(), ["org", "id"]);
        assert_eq!(p.param("/orgs/acme/customers/42", "id"), Some("42"));
        assert_eq!(p.param("/orgs/acme/customers/42", "org"), Some("acme"));
        assert_eq!(p.param("/orgs/acme/customers/42", "nope"), None);
        let prefix = PathPattern::parse("/customers/{id}", true).unwrap();
        assert_eq!(prefix.param("/customers/7/orders", "id"), Some("7"));
    }

    #[test]
    fn exact_root() {
        let p = PathPattern::parse("/", false).unwrap();
        assert!(p.matches("/"));
        assert!(!p.matches("/a"));
    }

    #[test]
    fn rejects_non_canonical_patterns() {
        for bad in ["admin", "/a//b", "/a/../b", "/a/./b", "/a%2Fb", "/a?x", "/a\\b"] {
            assert!(PathPattern::parse(bad, true).is_err(), "{bad}");
        }
        for bad in ["/a/{", "/a/x{id}", "/a/{}", "/a/{i d}"] {
            assert_eq!(PathPattern::parse(bad, false), Err(PatternError::BadParam), "{bad}");
        }
    }

    #[test]
    fn host_matching() {
        let exact = HostMatch::parse("API.example.com").unwrap();
        assert!(exact.matches("api.example.com"));
        assert!(!exact.matches("xapi.example.com"));
        let wild = HostMatch::parse("*.example.com").unwrap();
        assert!(wild.matches("a.example.com"));
        assert!(wild.matches("a.b.example.com"));
        assert!(!wild.matches("example.com"));
        assert!(!wild.matches("badexample.com"));
        assert!(HostMatch::parse("a b").is_none());
        assert!(HostMatch::parse("*.").is_none());
    }
}
