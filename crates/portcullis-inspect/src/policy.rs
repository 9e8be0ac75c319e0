//! Route inspection policy: threshold, paranoia, mode, exclusions, headers, body cap and the
//! contract-driven skip set. Validated once by [`InspectPolicy::compile`]; a typo in an exclusion
//! is an error that names it, never a silently ignored rule.

use std::collections::HashSet;

use crate::finding::{AttackClass, Location};
use crate::rules::RULES;

/// What to do when a request reaches the threshold.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Deny it.
    #[default]
    Block,
    /// Let it through, flagged (for tuning before enforcing).
    Monitor,
}

/// A place in the request, as written in policy (exclusions and skip set).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// JSON body pointer (RFC 6901); a `*` segment matches any key or index. XML element paths
    /// (`/Envelope/Body/q`) use the same syntax.
    Body(String),
    /// A parameter by name, wherever it appears: query, form field or multipart part.
    Param(String),
    /// Query parameter only.
    Query(String),
    /// Form field only.
    Form(String),
    /// Multipart part only.
    Multipart(String),
    /// Header (case-insensitive).
    Header(String),
    /// Cookie.
    Cookie(String),
    /// Path segment, 0-based.
    Path(usize),
}

impl Target {
    /// Parses `body:/a/*/b`, `param:q`, `query:q`, `form:f`, `multipart:m`, `header:x-note`,
    /// `cookie:c`, `path:2`; a bare `/pointer` is a body pointer and a bare name a parameter.
    ///
    /// # Errors
    /// An unknown prefix, an empty name, a bad pointer or a bad path index.
    pub fn parse(s: &str) -> Result<Self, PolicyError> {
        let bad = || PolicyError::BadTarget(s.to_owned());
        let t = match s.split_once(':') {
            Some(("body", p)) => Self::Body(p.to_owned()),
            Some(("param", n)) => Self::Param(n.to_owned()),
            Some(("query", n)) => Self::Query(n.to_owned()),
            Some(("form", n)) => Self::Form(n.to_owned()),
            Some(("multipart", n)) => Self::Multipart(n.to_owned()),
            Some(("header", n)) => Self::Header(n.to_ascii_lowercase()),
            Some(("cookie", n)) => Self::Cookie(n.to_owned()),
            Some(("path", n)) => Self::Path(n.parse().map_err(|_| bad())?),
            Some(_) => return Err(bad()),
            None if s.starts_with('/') => Self::Body(s.to_owned()),
            None => Self::Param(s.to_owned()),
        };
        t.validate()?;
        Ok(t)
    }

    fn validate(&self) -> Result<(), PolicyError> {
        match self {
            Self::Body(p) => {
                if !(p.is_empty() || p.starts_with('/')) {
                    return Err(PolicyError::BadPointer(p.clone()));
                }
                let mut chars = p.chars().peekable();
                while let Some(c) = chars.next() {
                    if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                        return Err(PolicyError::BadPointer(p.clone()));
                    }
                }
                Ok(())
            }
            Self::Param(n) | Self::Query(n) | Self::Form(n) | Self::Multipart(n) | Self::Cookie(n) if n.is_empty() => {
                Err(PolicyError::BadTarget(String::new()))
            }
            Self::Header(n) if n.is_empty() || !n.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_".contains(&c)) => {
                Err(PolicyError::BadTarget(format!("header:{n}")))
            }
            _ => Ok(()),
        }
    }
}

/// An exclusion: a rule (or a whole class) turned off everywhere, everything turned off at a
/// place, or a rule turned off at a place.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Exclusion {
    /// Rule id (`sqli-union`) or class id (`sqli`); `None` = every rule.
    pub rule: Option<String>,
    /// Place; `None` = everywhere.
    pub target: Option<Target>,
}

/// A route's inspection policy, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InspectPolicy {
    /// Anomaly score at which a request is blocked (or flagged in monitor mode).
    pub threshold: u32,
    /// Paranoia level 1–4: higher levels enable rules with more false positives.
    pub paranoia: u8,
    /// Block or monitor.
    pub mode: Mode,
    /// Exclusions.
    pub exclusions: Vec<Exclusion>,
    /// Extra headers to scan, besides User-Agent and Referer (case-insensitive). `*` scans every
    /// header that is not a well-known protocol header.
    pub headers: Vec<String>,
    /// Most body bytes scanned; the rest is reported as not scanned.
    pub body_cap: usize,
    /// Places the contract types narrowly (integer, enum, uuid, date…): not scanned.
    pub skip: Vec<Target>,
}

impl Default for InspectPolicy {
    fn default() -> Self {
        Self {
            threshold: 5,
            paranoia: 1,
            mode: Mode::Block,
            exclusions: Vec::new(),
            headers: Vec::new(),
            body_cap: 1 << 20,
            skip: Vec::new(),
        }
    }
}

/// A policy that cannot be used.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The exclusion names a rule or class that does not exist.
    #[error("unknown inspection rule or class `{0}` in exclusion (see portcullis_inspect::rules::RULES)")]
    UnknownRule(String),
    /// An exclusion with neither a rule nor a target would turn inspection off entirely.
    #[error("exclusion #{0} names neither a rule nor a target; to disable inspection, disable the stage")]
    EmptyExclusion(usize),
    /// A target that does not parse.
    #[error(
        "bad inspection target `{0}` (expected body:/ptr, param:, query:, form:, multipart:, header:, cookie: or path:N)"
    )]
    BadTarget(String),
    /// A JSON pointer that is not RFC 6901.
    #[error("bad JSON pointer `{0}` (must be empty or start with `/`; `~` only as ~0 or ~1)")]
    BadPointer(String),
    /// Paranoia outside 1–4.
    #[error("paranoia level {0} is out of range 1..=4")]
    Paranoia(u8),
    /// A zero threshold would block everything.
    #[error("threshold must be at least 1")]
    Threshold,
}

/// A place, compiled for matching.
#[derive(Debug, Clone)]
pub(crate) enum CompiledTarget {
    Body(Vec<String>),
    Param(String),
    Query(String),
    Form(String),
    Multipart(String),
    Header(String),
    Cookie(String),
    Path(usize),
}

fn unescape_segment(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

impl CompiledTarget {
    pub(crate) fn new(t: &Target) -> Self {
        match t {
            Target::Body(p) => Self::Body(p.split('/').skip(1).map(unescape_segment).collect()),
            Target::Param(n) => Self::Param(n.clone()),
            Target::Query(n) => Self::Query(n.clone()),
            Target::Form(n) => Self::Form(n.clone()),
            Target::Multipart(n) => Self::Multipart(n.clone()),
            Target::Header(n) => Self::Header(n.to_ascii_lowercase()),
            Target::Cookie(n) => Self::Cookie(n.clone()),
            Target::Path(i) => Self::Path(*i),
        }
    }

    /// Whether a place, given as a borrowed location, is this target.
    pub(crate) fn matches(&self, loc: &LocRef<'_, '_>) -> bool {
        match (self, loc) {
            (Self::Body(pat), LocRef::Json(path)) => json_matches(pat, path),
            (Self::Body(pat), LocRef::Xml(p)) => {
                let segs: Vec<&str> = p.split('/').skip(1).collect();
                segs.len() == pat.len() && pat.iter().zip(segs).all(|(a, b)| a == "*" || a == b)
            }
            (Self::Body(pat), LocRef::Text) => pat.is_empty(),
            (Self::Param(n) | Self::Query(n), LocRef::Query(q)) => n == q,
            (Self::Param(n) | Self::Form(n), LocRef::Form(q)) => n == q,
            (Self::Param(n) | Self::Multipart(n), LocRef::Multipart(q)) => n == q,
            (Self::Header(n), LocRef::Header(h)) => n.eq_ignore_ascii_case(h),
            (Self::Cookie(n), LocRef::Cookie(c)) => n == c,
            (Self::Path(i), LocRef::Path(j)) => i == j,
            _ => false,
        }
    }
}

fn json_matches(pat: &[String], path: &[crate::extract::Seg<'_>]) -> bool {
    use crate::extract::Seg;
    pat.len() == path.len()
        && pat.iter().zip(path).all(|(p, s)| {
            p == "*"
                || match s {
                    Seg::Key(k) => p == k,
                    Seg::Index(i) => p.parse::<usize>().ok() == Some(*i),
                }
        })
}

/// A location, borrowed from the request while scanning (a JSON pointer is only built when a
/// finding is reported).
#[derive(Debug, Clone, Copy)]
pub(crate) enum LocRef<'a, 'b> {
    Path(usize),
    Query(&'b str),
    Header(&'b str),
    Cookie(&'b str),
    Form(&'b str),
    Multipart(&'b str),
    Json(&'b [crate::extract::Seg<'a>]),
    Xml(&'b str),
    Text,
}

impl LocRef<'_, '_> {
    pub(crate) fn to_location(self) -> Location {
        match self {
            Self::Path(i) => Location::Path(i),
            Self::Query(n) => Location::Query(n.to_owned()),
            Self::Header(n) => Location::Header(n.to_ascii_lowercase()),
            Self::Cookie(n) => Location::Cookie(n.to_owned()),
            Self::Form(n) => Location::Form(n.to_owned()),
            Self::Multipart(n) => Location::Multipart(n.to_owned()),
            Self::Json(p) => Location::Body(crate::extract::pointer(p)),
            Self::Xml(p) => Location::Body(p.to_owned()),
            Self::Text => Location::Body(String::new()),
        }
    }
}

/// A validated policy, ready for [`crate::Inspector`].
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub(crate) threshold: u32,
    pub(crate) paranoia: u8,
    pub(crate) mode: Mode,
    pub(crate) off_rules: HashSet<&'static str>,
    /// (rules it applies to, or all; where).
    pub(crate) located: Vec<(Option<HashSet<&'static str>>, CompiledTarget)>,
    pub(crate) skip: Vec<CompiledTarget>,
    pub(crate) headers: Vec<String>,
    pub(crate) all_headers: bool,
    pub(crate) body_cap: usize,
}

fn expand_rule(id: &str) -> Result<HashSet<&'static str>, PolicyError> {
    if let Some(r) = RULES.iter().find(|r| r.id == id) {
        return Ok(HashSet::from([r.id]));
    }
    if let Some(c) = AttackClass::ALL.iter().find(|c| c.as_str() == id) {
        return Ok(RULES.iter().filter(|r| r.class == *c).map(|r| r.id).collect());
    }
    Err(PolicyError::UnknownRule(id.to_owned()))
}

impl InspectPolicy {
    /// Validates and compiles the policy.
    ///
    /// # Errors
    /// The first problem found: unknown rule id or class in an exclusion (named), empty exclusion,
    /// bad target or pointer, paranoia outside 1–4, zero threshold.
    pub fn compile(&self) -> Result<CompiledPolicy, PolicyError> {
        if !(1..=4).contains(&self.paranoia) {
            return Err(PolicyError::Paranoia(self.paranoia));
        }
        if self.threshold == 0 {
            return Err(PolicyError::Threshold);
        }
        let mut off_rules = HashSet::new();
        let mut located = Vec::new();
        for (i, e) in self.exclusions.iter().enumerate() {
            let rules = e.rule.as_deref().map(expand_rule).transpose()?;
            if let Some(t) = &e.target {
                t.validate()?;
            }
            match (rules, &e.target) {
                (None, None) => return Err(PolicyError::EmptyExclusion(i)),
                (Some(r), None) => off_rules.extend(r),
                (r, Some(t)) => located.push((r, CompiledTarget::new(t))),
            }
        }
        let mut skip = Vec::with_capacity(self.skip.len());
        for t in &self.skip {
            t.validate()?;
            skip.push(CompiledTarget::new(t));
        }
        let mut headers = Vec::new();
        let mut all_headers = false;
        for h in &self.headers {
            if h == "*" {
                all_headers = true;
            } else {
                Target::Header(h.to_ascii_lowercase()).validate()?;
                headers.push(h.to_ascii_lowercase());
            }
        }
        Ok(CompiledPolicy {
            threshold: self.threshold,
            paranoia: self.paranoia,
            mode: self.mode,
            off_rules,
            located,
            skip,
            headers,
            all_headers,
            body_cap: self.body_cap,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_rule_is_named() {
        let p = InspectPolicy {
            exclusions: vec![Exclusion { rule: Some("sqli-unoin".into()), target: None }],
            ..InspectPolicy::default()
        };
        let e = p.compile().unwrap_err();
        assert_eq!(e, PolicyError::UnknownRule("sqli-unoin".into()));
        assert!(e.to_string().contains("sqli-unoin"));
    }

    #[test]
    fn valid_exclusions_compile() {
        let p = InspectPolicy {
            exclusions: vec![
                Exclusion { rule: Some("sqli".into()), target: Some(Target::parse("body:/ticket/text").unwrap()) },
                Exclusion { rule: Some("xss-tag".into()), target: None },
                Exclusion { rule: None, target: Some(Target::parse("header:x-raw").unwrap()) },
            ],
            skip: vec![Target::parse("/items/*/id").unwrap(), Target::parse("param:page").unwrap()],
            headers: vec!["X-Note".into(), "*".into()],
            ..InspectPolicy::default()
        };
        let c = p.compile().unwrap();
        assert!(c.off_rules.contains("xss-tag"));
        assert_eq!(c.located.len(), 2);
        assert!(c.all_headers);
    }

    #[test]
    fn bad_inputs_rejected() {
        assert!(matches!(Target::parse("body:items"), Err(PolicyError::BadPointer(_))));
        assert!(matches!(Target::parse("/a/~2"), Err(PolicyError::BadPointer(_))));
        assert!(matches!(Target::parse("nope:x"), Err(PolicyError::BadTarget(_))));
        assert!(matches!(Target::parse("path:x"), Err(PolicyError::BadTarget(_))));
        let p = InspectPolicy { paranoia: 5, ..InspectPolicy::default() };
        assert_eq!(p.compile().unwrap_err(), PolicyError::Paranoia(5));
        let p = InspectPolicy { exclusions: vec![Exclusion::default()], ..InspectPolicy::default() };
        assert_eq!(p.compile().unwrap_err(), PolicyError::EmptyExclusion(0));
    }
}
