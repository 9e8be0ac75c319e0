//! The request scanner: finds every value of a request, normalises it, runs the detectors and
//! decides with the route's policy.

use std::collections::HashSet;

use crate::extract::{self, JsonVisitor, Seg, XmlVisitor};
use crate::finding::{Finding, Report, Verdict};
use crate::normalize::{self, url_decode};
use crate::policy::{CompiledPolicy, LocRef, Mode, Target};
use crate::rules;
use crate::{cmdi, crlf, features, ldap, log4shell, nosql, proto, scanner, sqli, ssti, traversal, xpath, xss, xxe};

/// Most findings kept per request (the score still counts all of them).
pub const MAX_FINDINGS: usize = 64;
/// Most values (parameters, leaves, parts, headers) scanned per request.
pub const MAX_VALUES: usize = 20_000;
/// Most multipart parts looked at.
pub const MAX_PARTS: usize = 1_000;

/// Headers that carry protocol metadata, not application data: skipped by the `*` header scope.
const PROTOCOL_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "accept",
    "accept-encoding",
    "accept-language",
    "accept-charset",
    "authorization",
    "proxy-authorization",
    "cookie",
    "cache-control",
    "pragma",
    "te",
    "trailer",
    "upgrade",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "range",
    "origin",
    "sec-fetch-site",
    "sec-fetch-mode",
    "sec-fetch-dest",
    "sec-fetch-user",
    "sec-ch-ua",
    "sec-ch-ua-mobile",
    "sec-ch-ua-platform",
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "forwarded",
    "dnt",
    "upgrade-insecure-requests",
    "priority",
];

/// A borrowed view of one request. Build it with [`RequestView::new`] and the `with_*` methods.
#[derive(Debug, Clone, Default)]
pub struct RequestView<'a> {
    method: &'a str,
    path_segments: Vec<&'a str>,
    query: Option<&'a str>,
    headers: Vec<(&'a str, &'a [u8])>,
    cookies: Vec<(&'a str, &'a str)>,
    content_type: Option<&'a str>,
    body: &'a [u8],
    body_truncated: bool,
    validated: Vec<crate::policy::CompiledTarget>,
}

impl<'a> RequestView<'a> {
    /// A request with this method and nothing else.
    #[must_use]
    pub fn new(method: &'a str) -> Self {
        Self { method, ..Self::default() }
    }

    /// Path segments, canonical (percent-escapes kept; they are decoded here).
    #[must_use]
    pub fn with_path_segments(mut self, segs: impl IntoIterator<Item = &'a str>) -> Self {
        self.path_segments = segs.into_iter().collect();
        self
    }

    /// Raw query string (without `?`).
    #[must_use]
    pub fn with_query(mut self, q: Option<&'a str>) -> Self {
        self.query = q;
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: &'a str, value: &'a [u8]) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Adds a cookie. When no cookie is given, `Cookie` headers are parsed instead.
    #[must_use]
    pub fn with_cookie(mut self, name: &'a str, value: &'a str) -> Self {
        self.cookies.push((name, value));
        self
    }

    /// The body, its content type, and whether the caller stopped buffering it early.
    #[must_use]
    pub fn with_body(mut self, content_type: Option<&'a str>, body: &'a [u8], truncated: bool) -> Self {
        self.content_type = content_type;
        self.body = body;
        self.body_truncated = truncated;
        self
    }

    /// Places the contract stage validated against a type with no free text (`path:1`,
    /// `query:limit`, `header:x-trace`, `body:/age`; see `portcullis_core::ContractValidated`):
    /// not scanned in this request. A string that is not a target is ignored (that place is
    /// scanned).
    #[must_use]
    pub fn with_validated<S: AsRef<str>>(mut self, fields: &[S]) -> Self {
        self.validated.extend(
            fields
                .iter()
                .filter_map(|f| Target::parse(f.as_ref()).ok())
                .map(|t| crate::policy::CompiledTarget::new(&t)),
        );
        self
    }

    /// The method.
    #[must_use]
    pub fn method(&self) -> &'a str {
        self.method
    }
}

/// How a value's container treated it.
#[derive(Clone, Copy)]
struct ValueKind {
    /// Already percent-decoded once by its container.
    transport_decoded: bool,
    /// A line break is never legitimate here (path segment, header).
    strict_lines: bool,
}

const PARAM: ValueKind = ValueKind { transport_decoded: true, strict_lines: false };
const PATH: ValueKind = ValueKind { transport_decoded: true, strict_lines: true };
const HEADER: ValueKind = ValueKind { transport_decoded: false, strict_lines: true };
const BODY: ValueKind = ValueKind { transport_decoded: false, strict_lines: false };

const DETECTORS: usize = 15;

/// Runs each detector whose grammar can match given the characters `v` contains, filling the
/// empty slots of `found` (one slot per detector: the first view that matches wins).
///
/// Each gate is a necessary condition of its detector, read off the detector's grammar (its
/// patterns and the constructs its tokeniser reports): benign prose with a `(`, `#`, `$` or `;`
/// mostly trips none. The property tests below check gated against ungated detection.
fn run_detectors(v: &str, f: u64, kind: ValueKind, found: &mut [Option<&'static str>; DETECTORS]) {
    use features as F;
    let has = |m: u64| f & m != 0;
    let b = v.as_bytes();
    let mut set = |i: usize, gate: bool, d: &dyn Fn(&str) -> Option<&'static str>| {
        if found[i].is_none() && gate {
            found[i] = d(v);
        }
    };
    let words = sqli::words(b);
    let sql = has(F::SQLI) || sqli::has_keyword(words);
    set(0, sql, &|s| sqli::detect_with_words(s, words, f).map(|fp| fp.rule_id));
    // xss: a tag needs `<`, an attribute `=`, a script URI `:`; a sink is called (`alert(`,
    // ``alert`1` ``, `(alert)(1)`, `alert?.(1)`), assigned to a handler (`=`) or read
    // (`document.cookie`, `self['location']`).
    // Without a call, `=` only matters after a handler name (`onerror=alert`) or `innerHTML`.
    let js = has(F::CALLPAREN | F::BACKTICK)
        || has(F::EQ) && (xss::handler_before_eq(b) || F::word_before(b, b'=', &[b"innerhtml", b"outerhtml"]))
        || has(F::DOT | F::BRACKET) && xss::dom_access(b);
    set(1, has(F::LT | F::EQ | F::COLON) || js, &|s| xss::detect_classes(s, js, f));
    // cmdi: a command position needs a separator, a backtick or `$(`; shellshock `()`, SSI `<!`.
    // Without them only a command at the start with a path argument (`/`) is left.
    let cmd_full =
        has(F::SEMI | F::PIPE | F::AMP | F::NL | F::BACKTICK | F::DOLLARPAREN | F::EMPTYPAREN | F::LTSPECIAL);
    set(2, cmd_full || has(F::SLASH | F::BSLASH), &|s| cmdi::detect_classes(s, cmd_full, f));
    // code: deserialisation tags (`!!python/`, `!RUBY/`, `rO0AB`, `O:8:"stdClass"`), PHP openers
    // (`<?`, `${@`), else a call (`system(`) or a dotted object (`WScript.Shell`) and a `(`.
    let code = has(F::BANGWORD | F::LTSPECIAL | F::DOLLARBRACE)
        || has(F::COLON) && has(F::QUOTE) && memchr::memchr(b'"', b).is_some()
        || has(F::UPPER)
            && has(F::DIGIT)
            && b.iter().enumerate().any(|(i, &c)| c == b'r' && b[i..].starts_with(b"rO0AB"))
        || has(F::PAREN)
            && (has(F::CALLPAREN)
                || has(F::DOT) && F::word_before(b, b'.', &[b"wscript", b"runtime", b"subprocess", b"response"]));
    set(3, code, &cmdi::code::detect);
    // traversal: `..`, a UNC or rooted path, a wrapper (`file:/`, `php://`; without a slash only
    // `netdoc:`, `jar:file` and `zlib:`).
    let traversal = has(F::DOTDOT | F::SLASHSLASH | F::BSLASH)
        || b.first() == Some(&b'/')
        || has(F::SCHEME) && (has(F::SLASH) || F::word_before(b, b':', &[b"netdoc", b"jar", b"zlib"]));
    set(4, traversal, &traversal::detect);
    // nosql: an operator in text is `$op:`; server-side JavaScript needs a brace, `this.x ==`,
    // `return` after `;`, or a call of `db.…`, `while`, `Date`, `.match`, `sleep`.
    let nosql = has(F::DOLLAR) && has(F::COLON)
        || has(F::BRACE)
        || has(F::DOT) && has(F::EQ) && F::word_before(b, b'.', &[b"this"])
        || has(F::PAREN)
            && (F::word_before(b, b'(', &[b"while", b"date", b"match", b"sleep"])
                || has(F::DOT) && F::word_before(b, b'.', &[b"db"]))
        || has(F::SEMI) && F::word_after(b, b';', &[b"return"]);
    set(5, nosql, &nosql::detect);
    // ssti: a template opener or directive (`{{`, `${`, `#{`, `<%`, `{%`, `<#`, `#set`, `?new`,
    // `{php}`, `T(`, `th:…=`, `freemarker.template`) next to a `{`, `<` or `#`; or a dunder.
    let ssti = has(F::UNDERUNDER)
        || has(F::BRACE | F::LT | F::HASH)
            && (has(F::TEMPLATE_OPEN | F::DOLLARBRACE | F::LTSPECIAL | F::HASHWORD | F::BRACEWORD | F::CALLPAREN)
                || has(F::COLON) && has(F::EQ)
                || has(F::DOT) && F::word_before(b, b'.', &[b"freemarker"]));
    set(6, ssti, &ssti::detect);
    set(7, has(F::FILTER | F::COLONEQ), &ldap::detect);
    // xpath: an axis `::`, a node test `()`, a union `|`, a leading `//`; a function in a
    // predicate needs `(` after `[`, `|`, `or` or `and`.
    let xpath = has(F::COLONCOLON | F::EMPTYPAREN | F::PIPE)
        || has(F::SLASHSLASH) && v.trim_start().starts_with("//")
        || has(F::PAREN) && (has(F::BRACKET) || sqli::has_keyword(words));
    set(8, xpath, &xpath::detect);
    set(9, has(F::LT), &xxe::detect);
    // crlf: a CR or LF, or a character whose low byte is one (UTF-8 ends it with 0x8A or 0x8D).
    let crlf = has(F::NL) || has(F::NONASCII) && memchr::memchr2(0x8A, 0x8D, b).is_some();
    set(10, crlf, &|s| crlf::detect(s, kind.strict_lines));
    set(11, has(F::DOLLARBRACE), &log4shell::detect);
    set(12, has(F::UNDERSCORE | F::DOT | F::BRACKET), &proto::detect);
    set(13, has(F::DOT), &scanner::oast);
    set(14, has(F::UNDERUNDER) && has(F::BRACE), &scanner::graphql_introspection);
}

/// Scans requests with one compiled policy. Cheap to share (`&self`), no I/O, no interior state.
#[derive(Debug, Clone)]
pub struct Inspector {
    policy: CompiledPolicy,
}

struct Scan<'p> {
    policy: &'p CompiledPolicy,
    validated: &'p [crate::policy::CompiledTarget],
    findings: Vec<Finding>,
    seen: HashSet<(&'static str, crate::finding::Location)>,
    score: u32,
    values: usize,
    incomplete: bool,
}

impl Scan<'_> {
    fn skipped(&self, loc: &LocRef<'_, '_>) -> bool {
        self.policy.skip.iter().chain(self.validated).any(|t| t.matches(loc))
    }

    fn report(&mut self, rule_id: &'static str, loc: LocRef<'_, '_>) {
        let Some(rule) = rules::rule(rule_id) else { return };
        if rule.paranoia > self.policy.paranoia || self.policy.off_rules.contains(rule_id) {
            return;
        }
        if self.policy.located.iter().any(|(rs, t)| rs.as_ref().is_none_or(|r| r.contains(rule_id)) && t.matches(&loc))
        {
            return;
        }
        let location = loc.to_location();
        if !self.seen.insert((rule_id, location.clone())) {
            return;
        }
        self.score = self.score.saturating_add(rule.score);
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(Finding { class: rule.class, rule_id, location, score: rule.score });
        }
    }

    fn budget(&mut self) -> bool {
        self.values += 1;
        if self.values > MAX_VALUES {
            self.incomplete = true;
            return false;
        }
        true
    }

    /// Runs every detector on every normalised view of `value`.
    fn value(&mut self, value: &str, loc: LocRef<'_, '_>, kind: ValueKind) {
        if value.is_empty() || !self.budget() || self.skipped(&loc) {
            return;
        }
        let f = features::of(value);
        let b64_shape = f & features::NOT_B64 == 0 && f & features::UPPER != 0 && f & features::LOWER != 0;
        let fast = if f & (features::PCT | features::AMP | features::BSLASH | features::CTRL) != 0 {
            false
        } else if f & features::NONASCII != 0 {
            // Accented letters and typographic punctuation: only folding could give another view
            // (and base64 once Unicode blanks are trimmed).
            !normalize::fold_possible(value.as_bytes()) && !normalize::base64_candidate(value)
        } else {
            !(b64_shape && normalize::base64_candidate(value))
        };
        let mut found: [Option<&'static str>; DETECTORS] = [None; DETECTORS];
        if fast {
            // Nothing to decode: the value is its only view.
            run_detectors(value, f, kind, &mut found);
        } else {
            let n = normalize::normalize(value, kind.transport_decoded);
            if n.double_encoded {
                self.report("evasion-double-encoding", loc);
            }
            if n.overlong {
                self.report("evasion-overlong-utf8", loc);
            }
            for v in &n.variants {
                run_detectors(v, features::of(v), kind, &mut found);
            }
        }
        for r in found.iter().flatten() {
            self.report(r, loc);
        }
    }

    /// A parameter or key name: prototype pollution and NoSQL operators, then the value detectors.
    fn name(&mut self, name: &str, loc: LocRef<'_, '_>, kind: ValueKind) {
        if name.is_empty() || self.skipped(&loc) {
            return;
        }
        if proto::key(name, None) {
            self.report("proto-key", loc);
        }
        if nosql::operator_key(name) {
            self.report("nosql-operator-key", loc);
        }
        // Plain identifiers cannot carry a payload: skip the detectors for them.
        if !name.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')) {
            self.value(name, loc, kind);
        }
    }

    fn pairs(&mut self, s: &str, form: bool) {
        let mut odd_names = 0;
        let mut count = 0;
        for (n, v) in extract::pairs(s) {
            let loc = if form { LocRef::Form(&n) } else { LocRef::Query(&n) };
            count += 1;
            if !n.bytes().all(|c| c.is_ascii_alphanumeric() || b"_-.[]$@:".contains(&c)) {
                odd_names += 1;
            }
            self.name(&n, loc, PARAM);
            self.value(&v, loc, PARAM);
        }
        // A payload with a raw `&` or `=` in it is cut into pieces by the parser (and reassembled by
        // a lenient upstream): when names look like payload fragments, scan the whole string too.
        if count > 1 && odd_names > 0 {
            let whole = url_decode(s, true);
            self.value(&whole, if form { LocRef::Form("") } else { LocRef::Query("") }, PARAM);
        }
    }
}

struct JsonScan<'s, 'p> {
    scan: &'s mut Scan<'p>,
}

impl<'a> JsonVisitor<'a> for JsonScan<'_, '_> {
    fn key(&mut self, path: &[Seg<'a>]) {
        let Some(Seg::Key(k)) = path.last() else { return };
        let loc = LocRef::Json(path);
        if self.scan.skipped(&loc) {
            return;
        }
        let parent = match path.len().checked_sub(2).and_then(|i| path.get(i)) {
            Some(Seg::Key(p)) => Some(&**p),
            _ => None,
        };
        if proto::key(k, parent) {
            self.scan.report("proto-key", loc);
        }
        if k.starts_with('$') && nosql::operator_key(k) {
            self.scan.report("nosql-operator-key", loc);
        }
        if !k.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'$' | b' ')) {
            self.scan.value(k, loc, BODY);
        }
    }

    fn string(&mut self, path: &[Seg<'a>], value: &str) {
        self.scan.value(value, LocRef::Json(path), BODY);
    }
}

struct XmlScan<'s, 'p> {
    scan: &'s mut Scan<'p>,
}

impl XmlVisitor for XmlScan<'_, '_> {
    fn text(&mut self, path: &str, value: &str) {
        self.scan.value(value, LocRef::Xml(path), BODY);
    }
}

fn media_type(ct: &str) -> std::borrow::Cow<'_, str> {
    let end = ct.bytes().position(|c| c == b';').unwrap_or(ct.len());
    let t = ct[..end].trim_ascii();
    if t.bytes().any(|c| c.is_ascii_uppercase()) { t.to_ascii_lowercase().into() } else { t.into() }
}

impl Inspector {
    /// An inspector for one compiled policy.
    #[must_use]
    pub fn new(policy: CompiledPolicy) -> Self {
        Self { policy }
    }

    /// Scans a request. Pure: no I/O, no allocation beyond the scan, never panics.
    #[must_use]
    pub fn scan_request(&self, req: &RequestView<'_>) -> Report {
        let mut s = Scan {
            policy: &self.policy,
            validated: &req.validated,
            findings: Vec::new(),
            seen: HashSet::new(),
            score: 0,
            values: 0,
            incomplete: req.body_truncated,
        };
        for (i, seg) in req.path_segments.iter().enumerate() {
            let d = url_decode(seg, false);
            s.value(&d, LocRef::Path(i), PATH);
        }
        if let Some(q) = req.query {
            s.pairs(q, false);
        }
        self.headers(&mut s, req);
        self.body(&mut s, req);
        let verdict = if s.score >= self.policy.threshold {
            match self.policy.mode {
                Mode::Monitor => Verdict::MonitorFlagged,
                Mode::Block => Verdict::Block,
            }
        } else {
            Verdict::Allow
        };
        Report { findings: s.findings, score: s.score, verdict, incomplete: s.incomplete }
    }

    fn headers(&self, s: &mut Scan<'_>, req: &RequestView<'_>) {
        let mut cookie_headers = Vec::new();
        for (name, value) in &req.headers {
            let lname = name.to_ascii_lowercase();
            let v = String::from_utf8_lossy(value);
            if lname == "cookie" {
                cookie_headers.push(v);
                continue;
            }
            let loc = LocRef::Header(name);
            let listed = lname == "user-agent"
                || lname == "referer"
                || self.policy.headers.contains(&lname)
                || self.policy.all_headers && !PROTOCOL_HEADERS.contains(&lname.as_str());
            if !listed || s.skipped(&loc) {
                continue;
            }
            if lname == "user-agent"
                && let Some(r) = scanner::user_agent(&v)
            {
                s.report(r, loc);
            }
            s.value(&v, loc, HEADER);
        }
        if req.cookies.is_empty() {
            for h in &cookie_headers {
                for (n, v) in extract::cookies(h) {
                    let d = url_decode(v, false);
                    s.name(n, LocRef::Cookie(n), PARAM);
                    s.value(&d, LocRef::Cookie(n), PARAM);
                }
            }
        } else {
            for (n, v) in &req.cookies {
                let d = url_decode(v, false);
                s.name(n, LocRef::Cookie(n), PARAM);
                s.value(&d, LocRef::Cookie(n), PARAM);
            }
        }
    }

    fn body(&self, s: &mut Scan<'_>, req: &RequestView<'_>) {
        if req.body.is_empty() {
            return;
        }
        let cap = self.policy.body_cap.min(req.body.len());
        if cap < req.body.len() {
            s.incomplete = true;
        }
        let raw = &req.body[..cap];
        let text = match std::str::from_utf8(raw) {
            Ok(t) => std::borrow::Cow::Borrowed(t),
            Err(_) => String::from_utf8_lossy(raw),
        };
        let mt = req.content_type.map(media_type).unwrap_or_default();
        let mt = mt.as_ref();
        if mt == "application/json" || mt.ends_with("+json") {
            let mut v = JsonScan { scan: s };
            if extract::walk_json(&text, &mut v).is_ok() {
                return;
            }
            s.value(&text, LocRef::Text, BODY);
        } else if mt == "application/x-www-form-urlencoded" {
            s.pairs(&text, true);
        } else if mt.starts_with("multipart/") {
            let Some(b) = req.content_type.and_then(extract::boundary) else {
                s.value(&text, LocRef::Text, BODY);
                return;
            };
            let parts = extract::multipart(raw, b, MAX_PARTS);
            if parts.len() >= MAX_PARTS {
                s.incomplete = true;
            }
            for p in &parts {
                let name = p.name.as_ref();
                let loc = LocRef::Multipart(name);
                s.name(name, loc, BODY);
                if let Some(f) = &p.filename {
                    s.value(f, loc, BODY);
                }
                let binary = p.content_type.is_some_and(|ct| {
                    let m = media_type(ct);
                    !(m.starts_with("text/") || m.contains("json") || m.contains("xml") || m.contains("urlencoded"))
                });
                if !binary {
                    s.value(&String::from_utf8_lossy(p.body), loc, BODY);
                }
            }
        } else if mt == "application/xml" || mt == "text/xml" || mt.ends_with("+xml") {
            if let Some(r) = xxe::detect(&text) {
                s.report(r, LocRef::Text);
            }
            let mut v = XmlScan { scan: s };
            extract::walk_xml(&text, &mut v);
        } else {
            s.value(&text, LocRef::Text, BODY);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Every detector, ungated, in the slot order of [`run_detectors`].
    fn ungated(v: &str, kind: ValueKind) -> [Option<&'static str>; DETECTORS] {
        [
            sqli::detect(v).map(|f| f.rule_id),
            xss::detect(v),
            cmdi::detect(v),
            cmdi::code::detect(v),
            traversal::detect(v),
            nosql::detect(v),
            ssti::detect(v),
            ldap::detect(v),
            xpath::detect(v),
            xxe::detect(v),
            crlf::detect(v, kind.strict_lines),
            log4shell::detect(v),
            proto::detect(v),
            scanner::oast(v),
            scanner::graphql_introspection(v),
        ]
    }

    fn same_as_ungated(v: &str) {
        for kind in [PARAM, PATH] {
            let mut gated = [None; DETECTORS];
            run_detectors(v, features::of(v), kind, &mut gated);
            assert_eq!(gated, ungated(v, kind), "gating changed a verdict for {v:?}");
        }
    }

    fn payloadish() -> impl Strategy<Value = String> {
        let atoms = prop::sample::select(vec![
            "'",
            "\"",
            "`",
            "<",
            ">",
            "/",
            "\\",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            "$",
            "${",
            "$(",
            ";",
            "|",
            "&",
            "&&",
            "||",
            "#",
            "--",
            "/*",
            "*/",
            "@@",
            "@",
            "=",
            ":",
            "::",
            "//",
            "..",
            "!",
            "!!",
            "*",
            " ",
            "\n",
            "_",
            "__",
            "union",
            "select",
            "or",
            "and",
            "sleep",
            "1",
            "0x1",
            "a",
            "script",
            "onerror",
            "alert",
            "javascript",
            "document",
            "cookie",
            "cat",
            "id",
            "etc",
            "passwd",
            "file",
            "$ne",
            "where",
            "db",
            "jndi",
            "lower",
            "proto",
            "__proto__",
            "constructor",
            "prototype",
            "oastify.com",
            ".",
            "__schema",
            "ENTITY",
            "SYSTEM",
            "DOCTYPE",
            "child",
            "count",
            "uid",
            "rO0AB",
            "php",
            "<?",
            "exec",
            "Set-Cookie",
            "QUIT",
            "by",
            "order",
            "1union",
            "9or",
            "like",
            "is",
            "0x7e",
            "()",
            "$(",
            "{{",
            "{%",
            "#set",
            "?new",
            "{php}",
            "T(java.",
            "th:text",
            "freemarker.template",
            "this.",
            "==",
            "return",
            "while",
            "db.",
            "Date",
            ".match",
            "sleep",
            "wscript.shell",
            "runtime",
            "subprocess",
            "response",
            "!RUBY/",
            "O:8:\"stdClass\"",
            "self",
            "top",
            "window",
            "location",
            "?.(",
            ")(",
            "/text",
            "child",
            "6pm",
            "I work",
            "Invoice #4411",
            "data",
            " :",
            "text/html",
            "on error resume next",
            "wget",
            "http://x",
            "<!--#exec",
            "eval",
            "system",
            "passthru",
            "$where",
            "$gt",
            "Tab",
            "\t",
            "é",
            "嘍",
            "Ċ",
            "\u{2028}",
            "\u{85}",
            "Ｓet-Cookie",
        ]);
        prop::collection::vec(atoms, 0..24).prop_map(|v| v.concat())
    }

    /// Benign-looking prose: the values whose detectors the gates are there to skip.
    fn proseish() -> impl Strategy<Value = String> {
        let atoms = prop::sample::select(vec![
            "Please",
            "leave",
            "the",
            "parcel",
            "at",
            "back",
            "door",
            "dog",
            "is",
            "friendly",
            "Invoice",
            "#4411",
            "shows",
            "$1,299.00",
            "instead",
            "of",
            "-",
            "can",
            "you",
            "check",
            "?",
            "Thanks",
            ".",
            "Deliver",
            "after",
            "6pm",
            "(",
            ")",
            "I",
            "work",
            "9-5",
            "Call",
            "+353",
            "87",
            "on",
            "arrival",
            "Gift",
            "wrap",
            "please",
            ":",
            "it's",
            "for",
            "my",
            "mum's",
            "60th",
            ":)",
            "See",
            "https://example.com/orders",
            "?id=881",
            "&",
            "tab=items",
            "details",
            " ",
            " ",
            " ",
            ",",
            ";",
            "!",
            "O'Brien",
            "\"",
            "@",
            "user1@example.com",
            "2024-05-02T10:01:00Z",
            "SKU-4401",
            "ord_000001",
            "11.99",
            "{",
            "}",
            "[",
            "]",
            "/",
            "=",
            "<",
            ">",
            "%",
            "and",
            "or",
            "select",
            "count",
            "date",
            "while",
            "top",
            "self",
            "return",
            "cat",
            "id",
            "onerror",
            "alert",
            "innerHTML",
            ".",
            "this",
            "netdoc",
        ]);
        prop::collection::vec(atoms, 0..24).prop_map(|v| v.join(""))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        /// The character-class gates only skip detectors that could not have matched.
        #[test]
        fn gating_never_hides_a_detection(v in payloadish()) {
            same_as_ungated(&v);
        }

        #[test]
        fn gating_never_hides_a_detection_in_prose(v in proseish()) {
            same_as_ungated(&v);
        }
    }

    fn corpora_dir() -> Option<std::path::PathBuf> {
        if let Ok(p) = std::env::var("PORTCULLIS_CORPORA") {
            return Some(p.into());
        }
        let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        manifest.ancestors().map(|a| a.join("shared").join("corpora")).find(|c| c.join("README.md").is_file())
    }

    fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => {
                // A JSON body's own leaves too: the scanner sees those, not the body text.
                if let Ok(inner) = serde_json::from_str::<serde_json::Value>(s)
                    && !inner.is_string()
                {
                    strings(&inner, out);
                }
                out.push(s.clone());
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| strings(x, out)),
            _ => {}
        }
    }

    /// Every string of the shared corpora (GoTestWAF, libinjection) and of our benign API set, and
    /// every decoded view of it: gated detection equals ungated detection.
    #[test]
    fn gating_on_corpora() {
        let dir = corpora_dir().expect("shared/corpora next to the checkout (or PORTCULLIS_CORPORA)");
        let files = [
            dir.join("gotestwaf/payloads.jsonl"),
            dir.join("libinjection/samples.jsonl"),
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/benign_api.jsonl"),
        ];
        let mut n = 0;
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let mut out = Vec::new();
                strings(&serde_json::from_str(line).unwrap(), &mut out);
                for mut s in out {
                    // The 16–128 KB padded payloads only repeat their head: 8 KB keeps the test fast.
                    if s.len() > 8192 {
                        let mut end = 8192;
                        while !s.is_char_boundary(end) {
                            end -= 1;
                        }
                        s.truncate(end);
                    }
                    for v in normalize::normalize(&s, false).variants {
                        same_as_ungated(&v);
                        n += 1;
                    }
                }
            }
        }
        assert!(n > 3000, "corpora too small: {n} values");
    }

    /// Places the contract validated are skipped; everything else is still scanned.
    #[test]
    fn contract_validated_places_are_skipped_and_only_those() {
        let ins = Inspector::new(crate::InspectPolicy::default().compile().unwrap());
        let body = br#"{"href": "javascript:void(0)", "note": "hi"}"#;
        let req = |validated: &[&str]| {
            RequestView::new("POST")
                .with_path_segments(["links", "7"])
                .with_query(Some("target=javascript:void(0)"))
                .with_body(Some("application/json"), body, false)
                .with_validated(validated)
        };
        let all = ins.scan_request(&req(&[]));
        assert_eq!(all.verdict, crate::Verdict::Block);
        assert_eq!(all.findings.len(), 2, "{:?}", all.findings);
        let one = ins.scan_request(&req(&["body:/href"]));
        assert_eq!(one.findings.len(), 1, "{:?}", one.findings);
        assert_eq!(one.findings[0].location.to_string(), "query:target");
        let none = ins.scan_request(&req(&["body:/href", "query:target", "not a target:"]));
        assert_eq!(none.verdict, crate::Verdict::Allow, "{:?}", none.findings);
        // A validated name elsewhere (another place, another field) skips nothing here.
        let other = ins.scan_request(&req(&["body:/note", "query:href", "header:target"]));
        assert_eq!(other.findings.len(), 2, "{:?}", other.findings);
    }

    #[test]
    fn gating_on_known_payloads() {
        for v in [
            "document[\"cookie\"]",
            "x' or 1=1--",
            "-1 union select 1",
            "a;id",
            "../../etc/passwd",
            "${jndi:ldap://x}",
            "{{7*7}}",
            "*)(uid=*",
            "//user[name/text()='a']",
            "userPassword:2.5.13.18:=1",
            "rO0ABXNy",
            "!!python/object",
            "x\r\nSet-Cookie: a",
            "/text()",
            "self.location",
            "data :text/html,x",
            "!RUBY/object",
            "cat /etc/passwd",
            "a;cat /etc/passwd",
            "{php}x{/php}",
            "x.match(/a/)",
            "netdoc:x",
            "a jar:file:x!/y",
            "zlib:x",
            "x onerror=alert",
            "x\" onMouseOver =prompt",
            "a.innerHTML = x",
            "y.outerHTML=1",
            "' ONLOAD= confirm",
            "onerror\t=\teval",
            "a.constructor.prototype.x",
            "constructor[prototype][y]",
            "constructor[\"prototype\"]",
            "x __proto__ y",
            "this.a == 1",
            "this .a != 'b'",
            "this.x.match(/a/)",
            "O:8:\"stdClass\":1:{}",
            "//*",
            "  //user",
            "see https://a.example/b//c?x=1&y=2 (ok)",
            "Gift wrap please: it's for my mum's 60th :)",
            "José Ñúñez",
            "ＡＢ＜script＞",
            "a\u{00AD}lert(1)",
        ] {
            same_as_ungated(v);
        }
    }
}
