//! The one canonical request path.
//!
//! The router, every stage and the upstream must agree on which resource a request names. If the
//! router read `/x/../admin` as a path under `/x` while the upstream served `/admin`, or a policy
//! written for `/admin` never matched `/%61dmin`, an attacker could pick whichever reading slips
//! past a check. So the gateway computes [`canonicalize`] once per request, rejects whatever is
//! ambiguous (fail closed), and the router, every stage and the request sent upstream all use
//! that one string.
//!
//! What canonical means here:
//! - escapes of unreserved characters (RFC 3986 §2.3) are decoded: `%61dmin` is `admin` and
//!   `%2e%2e` is `..`; every other escape stays encoded, with uppercase hex;
//! - raw non-ASCII bytes and ASCII characters that a path may not hold (space, `"`, `#`, `?`, …)
//!   are percent-encoded, so the result is pure ASCII;
//! - runs of `/` are merged (by default), then dot segments are removed (RFC 3986 §5.2.4),
//!   except that `..` above the root is an error rather than being clamped;
//! - whatever means different things to different decoders is rejected: encoded slashes,
//!   backslashes, NUL and other control characters, double encoding, malformed escapes, and
//!   escapes that do not decode to valid UTF-8 (overlong forms such as `%C0%AE` included).
//!
//! Slashes are merged *before* dot segments are removed. Taken alone, RFC 3986 reads `/a//../b`
//! as `/a/b` (the `..` eats the empty segment), whereas a server that merges slashes (nginx's
//! default, many frameworks) reads it as `/b`. Merging first means an empty segment never counts
//! as a segment: `//..` escapes the root exactly as `/..` does, and `/a//../b` is `/b`. Because
//! the upstream receives the canonical path, it never gets to apply its own reading.
//!
//! The result is stable: `canonicalize(canonicalize(p)) == canonicalize(p)`.
//!
//! ```
//! use portcullis_core::path::{PathError, PathOptions, canonicalize};
//!
//! let opts = PathOptions::default();
//! assert_eq!(canonicalize("/x/../%61dmin/.", &opts)?, "/admin/");
//! assert_eq!(canonicalize("//admin", &opts)?, "/admin");
//! assert_eq!(canonicalize("/caf%c3%a9", &opts)?, "/caf%C3%A9");
//! assert_eq!(canonicalize("/../etc/passwd", &opts), Err(PathError::EscapesRoot));
//! assert_eq!(canonicalize("/a%2fb", &opts), Err(PathError::EncodedSlash));
//! # Ok::<(), PathError>(())
//! ```

/// How to canonicalize. The defaults are the secure choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathOptions {
    /// Collapse runs of `/` into one (`//a///b` is `/a/b`). Default `true`.
    pub merge_slashes: bool,
    /// Keep `%2F` and `%5C` (as uppercase escapes) instead of rejecting them. Default `false`.
    ///
    /// Dangerous: the gateway then treats `a%2F..` as one segment, while an upstream that decodes
    /// `%2F` sees `a/..` and walks up a directory the gateway never checked.
    pub danger_allow_encoded_slash: bool,
}

impl Default for PathOptions {
    fn default() -> Self {
        Self { merge_slashes: true, danger_allow_encoded_slash: false }
    }
}

/// Why a path has no canonical form. The gateway answers these with 400.
///
/// The error never carries the path itself: it is attacker input, and may hold secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path does not start with `/` (not an origin-form request target).
    #[error("path does not start with '/'")]
    NotOriginForm,
    /// `%2F` or `%5C`: an encoded separator that upstreams disagree about.
    #[error("path contains an encoded slash or backslash")]
    EncodedSlash,
    /// A literal `\`, which some servers treat as a separator.
    #[error("path contains a backslash")]
    Backslash,
    /// A NUL byte, raw or as `%00`.
    #[error("path contains a NUL byte")]
    Nul,
    /// A control character (below 0x20, or 0x7F), raw or percent-encoded.
    #[error("path contains a control character")]
    ControlCharacter,
    /// A `%` not followed by two hex digits.
    #[error("path contains a malformed percent escape")]
    BadPercentEncoding,
    /// An encoded `%` followed by two hex digits (`%252e`), decoded differently by each layer
    /// that decodes once more.
    #[error("path is percent-encoded twice")]
    DoubleEncoding,
    /// The fully decoded path is not valid UTF-8 (overlong forms, surrogates, stray bytes).
    #[error("path does not decode to valid UTF-8")]
    InvalidUtf8,
    /// A `..` segment would climb above the root.
    #[error("path climbs above the root")]
    EscapesRoot,
}

impl PathError {
    /// A stable, short slug for metrics labels, logs and problem details.
    pub const fn reason(&self) -> &'static str {
        match self {
            PathError::NotOriginForm => "not-origin-form",
            PathError::EncodedSlash => "encoded-slash",
            PathError::Backslash => "backslash",
            PathError::Nul => "nul",
            PathError::ControlCharacter => "control-character",
            PathError::BadPercentEncoding => "bad-percent-encoding",
            PathError::DoubleEncoding => "double-encoding",
            PathError::InvalidUtf8 => "invalid-utf8",
            PathError::EscapesRoot => "escapes-root",
        }
    }
}

/// Returns the canonical form of the path part of a request target.
///
/// `raw` is the path only: the caller splits the target at the first `?` and keeps the query
/// apart. A `?` or `#` still present here is treated as data and encoded.
///
/// # Errors
///
/// A [`PathError`] when the path has no unambiguous canonical form; see the variants.
pub fn canonicalize(raw: &str, opts: &PathOptions) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotOriginForm);
    }
    if is_already_canonical(bytes, opts) {
        return Ok(raw.to_owned());
    }
    canonicalize_slow(bytes, opts)
}

/// The common case: plain ASCII that needs no decoding, holds no dot segment and (when merging)
/// no `//`. Conservative: `/.well-known` takes the slow path, which gives the same answer.
fn is_already_canonical(bytes: &[u8], opts: &PathOptions) -> bool {
    let mut prev = b'/';
    for &b in bytes.iter().skip(1) {
        if b == b'/' {
            if opts.merge_slashes && prev == b'/' {
                return false;
            }
        } else if !PATH_SAFE[usize::from(b)] || (b == b'.' && prev == b'/') {
            return false;
        }
        prev = b;
    }
    true
}

fn canonicalize_slow(bytes: &[u8], opts: &PathOptions) -> Result<String, PathError> {
    // Invariant: `out` is empty or "/" followed by segments joined by "/", all ASCII.
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len() + 8);
    // A removed "." or ".." leaves the path ending in a directory ("/a/." is "/a/").
    let mut trailing_slash = false;
    let mut rest = bytes.get(1..).unwrap_or_default();
    loop {
        let (segment, next) = match rest.iter().position(|&b| b == b'/') {
            Some(i) => (rest.get(..i), rest.get(i + 1..)),
            None => (Some(rest), None),
        };
        let segment = segment.unwrap_or_default();
        // An empty last segment is a trailing slash, which is kept: "/a/" is not "/a".
        let skip = opts.merge_slashes && segment.is_empty() && next.is_some();
        if !skip {
            let start = out.len();
            out.push(b'/');
            decode_segment(segment, opts, &mut out)?;
            match out.get(start + 1..) {
                Some(b".") => {
                    out.truncate(start);
                    trailing_slash = true;
                }
                Some(b"..") => {
                    out.truncate(start);
                    let parent = out.iter().rposition(|&b| b == b'/').ok_or(PathError::EscapesRoot)?;
                    out.truncate(parent);
                    trailing_slash = true;
                }
                _ => trailing_slash = false,
            }
        }
        match next {
            Some(next) => rest = next,
            None => break,
        }
    }
    if trailing_slash || out.is_empty() {
        out.push(b'/');
    }
    // Everything pushed is ASCII, so this cannot fail; if it ever did, fail closed.
    String::from_utf8(out).map_err(|_| PathError::InvalidUtf8)
}

/// Appends the canonical form of one segment (the bytes between two raw `/`) to `out`.
fn decode_segment(segment: &[u8], opts: &PathOptions, out: &mut Vec<u8>) -> Result<(), PathError> {
    let mut utf8 = Utf8Check::default();
    // Where the byte after the last "%25" written to `out` sits, until two bytes follow it.
    let mut after_percent: Option<usize> = None;
    let mut i = 0;
    while let Some(&b) = segment.get(i) {
        let mut wrote_percent = false;
        if b == b'%' {
            let hi = segment.get(i + 1).copied().and_then(hex_value);
            let lo = segment.get(i + 2).copied().and_then(hex_value);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PathError::BadPercentEncoding);
            };
            i += 3;
            let v = (hi << 4) | lo;
            match v {
                0 => return Err(PathError::Nul),
                0x01..=0x1F | 0x7F => return Err(PathError::ControlCharacter),
                b'/' | b'\\' if !opts.danger_allow_encoded_slash => {
                    return Err(PathError::EncodedSlash);
                }
                _ => {}
            }
            utf8.feed(v)?;
            if UNRESERVED[usize::from(v)] {
                out.push(v);
            } else {
                push_escaped(out, v);
                wrote_percent = v == b'%';
            }
        } else {
            i += 1;
            match b {
                0 => return Err(PathError::Nul),
                0x01..=0x1F | 0x7F => return Err(PathError::ControlCharacter),
                b'\\' => return Err(PathError::Backslash),
                _ => {}
            }
            // Raw bytes come from a &str and are valid on their own, but must not complete or
            // interrupt a sequence begun by escapes ("%C3é").
            utf8.feed(b)?;
            if PATH_SAFE[usize::from(b)] {
                out.push(b);
            } else {
                push_escaped(out, b);
            }
        }
        // Checked on the output, after unreserved decoding, so "%25%34%31" is caught like "%2541"
        // and a second pass can never see an escape that the first one let through.
        if let Some(p) = after_percent
            && out.len() >= p + 2
        {
            if let Some(&[a, b]) = out.get(p..p + 2)
                && a.is_ascii_hexdigit()
                && b.is_ascii_hexdigit()
            {
                return Err(PathError::DoubleEncoding);
            }
            after_percent = None;
        }
        if wrote_percent {
            after_percent = Some(out.len());
        }
    }
    // A raw '/' (or the end) inside a multi-byte sequence is invalid.
    utf8.finish()
}

fn push_escaped(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0x0F)]]);
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". Their escapes are decoded.
static UNRESERVED: [bool; 256] = byte_table(false);
/// Bytes kept raw in a segment: unreserved, sub-delims, ":" and "@" (RFC 3986 `pchar`).
static PATH_SAFE: [bool; 256] = byte_table(true);

const fn byte_table(with_pchar_delims: bool) -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        let delim =
            matches!(b, b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@');
        table[i] = unreserved || (with_pchar_delims && delim);
        i += 1;
    }
    table
}

/// Incremental UTF-8 check over decoded bytes, without buffering the decoded path.
///
/// It only collects one sequence (at most four bytes) and leaves the hard rules (overlong forms,
/// surrogates, nothing above U+10FFFF) to `std::str::from_utf8`.
#[derive(Default)]
struct Utf8Check {
    buf: [u8; 4],
    len: usize,
    need: usize,
}

impl Utf8Check {
    fn feed(&mut self, b: u8) -> Result<(), PathError> {
        if self.need == 0 {
            self.need = match b {
                0x00..=0x7F => return Ok(()),
                0xC2..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF4 => 4,
                _ => return Err(PathError::InvalidUtf8),
            };
            self.buf[0] = b;
            self.len = 1;
            return Ok(());
        }
        if b & 0xC0 != 0x80 {
            return Err(PathError::InvalidUtf8);
        }
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
        }
        self.len += 1;
        if self.len == self.need {
            self.need = 0;
            let sequence = self.buf.get(..self.len).ok_or(PathError::InvalidUtf8)?;
            std::str::from_utf8(sequence).map_err(|_| PathError::InvalidUtf8)?;
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), PathError> {
        if self.need == 0 { Ok(()) } else { Err(PathError::InvalidUtf8) }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn canon(raw: &str) -> Result<String, PathError> {
        canonicalize(raw, &PathOptions::default())
    }

    #[test]
    fn accepts_and_canonicalizes() {
        let cases: &[(&str, &str)] = &[
            ("/", "/"),
            ("/admin", "/admin"),
            ("/customers/12345/orders", "/customers/12345/orders"),
            // The admin variants all reach one policy.
            ("/%61dmin", "/admin"),
            ("/x/../admin", "/admin"),
            ("/admin/.", "/admin/"),
            ("//admin", "/admin"),
            ("/admin/", "/admin/"),
            ("/%61%64%6D%69%6E", "/admin"),
            ("/%61%64%6d%69%6E", "/admin"),
            ("/x/%2e%2E/admin", "/admin"),
            ("/x/.%2e/admin", "/admin"),
            ("/x/%2E./admin", "/admin"),
            // Slashes.
            ("///a///b//", "/a/b/"),
            ("//", "/"),
            ("/a//../b", "/b"),
            // Dot segments.
            ("/.", "/"),
            ("/%2e", "/"),
            ("/%2E/", "/"),
            ("/a/./b", "/a/b"),
            ("/a/%2e/b", "/a/b"),
            ("/a/b/..", "/a/"),
            ("/a/b/../", "/a/"),
            ("/a/b/../../c", "/c"),
            ("/a/b/../..", "/"),
            ("/a/.%2e/", "/"),
            ("/a/./", "/a/"),
            ("/a/.//", "/a/"),
            ("/./a", "/a"),
            // Not dot segments.
            ("/..;/admin", "/..;/admin"),
            ("/a/..;/b", "/a/..;/b"),
            ("/.well-known/x", "/.well-known/x"),
            ("/a..b/...", "/a..b/..."),
            ("/.a/a.", "/.a/a."),
            // Unreserved decoded, the rest normalised to uppercase.
            ("/%7e%5F%2D%30", "/~_-0"),
            ("/a%3bb", "/a%3Bb"),
            ("/a;b=c,d:e@f!$&'()*+", "/a;b=c,d:e@f!$&'()*+"),
            ("/a%20b", "/a%20b"),
            ("/a b", "/a%20b"),
            ("/a?b#c", "/a%3Fb%23c"),
            ("/{x}|^`[]<>\"", "/%7Bx%7D%7C%5E%60%5B%5D%3C%3E%22"),
            // Unicode.
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/café", "/caf%C3%A9"),
            ("/caf%C3%A9", "/caf%C3%A9"),
            ("/日本", "/%E6%97%A5%E6%9C%AC"),
            ("/%F0%9F%98%80", "/%F0%9F%98%80"),
            ("/😀", "/%F0%9F%98%80"),
            ("/%f4%8f%bf%bf", "/%F4%8F%BF%BF"),
            // A lone encoded '%' is data.
            ("/%25", "/%25"),
            ("/%25zz", "/%25zz"),
            ("/%252", "/%252"),
            ("/%25/2e", "/%25/2e"),
            ("/%25%25", "/%25%25"),
            ("/%25.", "/%25."),
        ];
        for (raw, want) in cases {
            assert_eq!(canon(raw).as_deref(), Ok(*want), "input {raw:?}");
            assert_eq!(canon(want).as_deref(), Ok(*want), "not idempotent: {want:?}");
        }
    }

    #[test]
    fn rejects() {
        use PathError::*;
        let cases: &[(&str, PathError)] = &[
            ("", NotOriginForm),
            ("admin", NotOriginForm),
            ("*", NotOriginForm),
            ("http://host/a", NotOriginForm),
            ("%2Fadmin", NotOriginForm),
            ("\\admin", NotOriginForm),
            ("/a%2fb", EncodedSlash),
            ("/a%2Fb", EncodedSlash),
            ("/a%5cb", EncodedSlash),
            ("/a%5C..%5Cb", EncodedSlash),
            ("/..%2f..%2fetc/passwd", EncodedSlash),
            ("/a\\b", Backslash),
            ("/..\\admin", Backslash),
            ("/a%00", Nul),
            ("/a\0b", Nul),
            ("/a%0d%0aSet-Cookie:x", ControlCharacter),
            ("/a%1F", ControlCharacter),
            ("/a%7f", ControlCharacter),
            ("/a\tb", ControlCharacter),
            ("/a\nb", ControlCharacter),
            ("/a\x7f", ControlCharacter),
            ("/%%", BadPercentEncoding),
            ("/%4", BadPercentEncoding),
            ("/%4/1", BadPercentEncoding),
            ("/%zz", BadPercentEncoding),
            ("/%", BadPercentEncoding),
            ("/a%g1", BadPercentEncoding),
            ("/%25%", BadPercentEncoding),
            ("/%252e%252e/admin", DoubleEncoding),
            ("/%252E", DoubleEncoding),
            ("/%2541dmin", DoubleEncoding),
            ("/%2525", DoubleEncoding),
            ("/%25%32%65", DoubleEncoding),
            ("/%25%34%31", DoubleEncoding),
            ("/%C0%AE%C0%AE/", InvalidUtf8),
            ("/%c0%ae", InvalidUtf8),
            ("/%E0%80%AF", InvalidUtf8),
            ("/%E0%80%AE%E0%80%AE/admin", InvalidUtf8),
            ("/%ED%A0%80", InvalidUtf8),
            ("/%F4%90%80%80", InvalidUtf8),
            ("/%F8%88%80%80%80", InvalidUtf8),
            ("/%80", InvalidUtf8),
            ("/%BF", InvalidUtf8),
            ("/%FF", InvalidUtf8),
            ("/%C3", InvalidUtf8),
            ("/%C3/%A9", InvalidUtf8),
            ("/%C3a", InvalidUtf8),
            ("/%C3é", InvalidUtf8),
            ("/%E6%97", InvalidUtf8),
            ("/..", EscapesRoot),
            ("/../etc/passwd", EscapesRoot),
            ("/a/../../b", EscapesRoot),
            ("/.%2e/", EscapesRoot),
            ("/%2e%2e/admin", EscapesRoot),
            ("//..", EscapesRoot),
            ("/./../a", EscapesRoot),
            ("/a/b/../../..", EscapesRoot),
        ];
        for (raw, want) in cases {
            assert_eq!(canon(raw), Err(*want), "input {raw:?}");
        }
    }

    #[test]
    fn without_merging_empty_segments_are_segments() {
        let opts = PathOptions { merge_slashes: false, ..PathOptions::default() };
        let cases: &[(&str, Result<&str, PathError>)] = &[
            ("//admin", Ok("//admin")),
            ("/a//b", Ok("/a//b")),
            ("/a//../b", Ok("/a/b")),
            ("/a/.//b", Ok("/a//b")),
            ("//..", Ok("/")),
            ("/..", Err(PathError::EscapesRoot)),
            ("/x/../%61dmin", Ok("/admin")),
        ];
        for (raw, want) in cases {
            assert_eq!(canonicalize(raw, &opts).as_deref(), want.as_deref(), "input {raw:?}");
        }
    }

    #[test]
    fn danger_allow_encoded_slash_keeps_them_encoded() {
        let opts = PathOptions { danger_allow_encoded_slash: true, ..PathOptions::default() };
        let cases: &[(&str, Result<&str, PathError>)] = &[
            ("/a%2fb", Ok("/a%2Fb")),
            ("/a%5cb", Ok("/a%5Cb")),
            ("/a%2F..", Ok("/a%2F..")),
            ("/a\\b", Err(PathError::Backslash)),
            ("/%00", Err(PathError::Nul)),
        ];
        for (raw, want) in cases {
            assert_eq!(canonicalize(raw, &opts).as_deref(), want.as_deref(), "input {raw:?}");
        }
    }

    #[test]
    fn reasons_are_distinct_slugs() {
        use PathError::*;
        let all = [
            NotOriginForm,
            EncodedSlash,
            Backslash,
            Nul,
            ControlCharacter,
            BadPercentEncoding,
            DoubleEncoding,
            InvalidUtf8,
            EscapesRoot,
        ];
        let mut slugs: Vec<_> = all.iter().map(PathError::reason).collect();
        assert!(slugs.iter().all(|s| { s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') }));
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), all.len());
        assert_eq!(EncodedSlash.reason(), "encoded-slash");
    }

    #[test]
    fn utf8_check_agrees_with_std_on_every_two_byte_sequence() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(check_utf8(&[a, b]), std::str::from_utf8(&[a, b]).is_ok());
            }
        }
    }

    fn check_utf8(bytes: &[u8]) -> bool {
        let mut check = Utf8Check::default();
        bytes.iter().all(|&b| check.feed(b).is_ok()) && check.finish().is_ok()
    }

    /// Decodes every escape: what a naive upstream would see.
    fn decode_all(s: &str) -> Vec<u8> {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    /// Paths built from the pieces attacks are made of, so cases collide often.
    fn tricky_path() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "/", "/", "/", ".", "..", "%2e", "%2E", "%2f", "%5C", "%25", "%61", "%41", "%c3", "%a9", "%C0", "%AE",
            "%E0", "%80", "%00", "%0a", "%7F", "%", "%4", "a", "Z", "2", "e", "~", ";", " ", "?", "é", "日", "\\",
            "\u{1}", "\u{7f}", "%20", "%3b", "%zz",
        ]);
        prop::collection::vec(pieces, 0..24).prop_map(|v| format!("/{}", v.concat()))
    }

    fn any_path() -> impl Strategy<Value = String> {
        prop_oneof![tricky_path(), any::<String>().prop_map(|s| format!("/{s}")), "/[a-zA-Z0-9./%;~-]{0,32}",]
    }

    fn assert_canonical_shape(out: &str, merge: bool) {
        assert!(out.starts_with('/'), "{out:?}");
        assert!(out.is_ascii(), "{out:?}");
        for bad in ["/./", "/../"] {
            assert!(!out.contains(bad), "{out:?} contains {bad}");
        }
        assert!(!out.ends_with("/.") && !out.ends_with("/.."), "{out:?}");
        if merge {
            assert!(!out.contains("//"), "{out:?}");
        }
        let upper = out.to_ascii_uppercase();
        for bad in ["%2F", "%5C", "%00"] {
            assert!(!upper.contains(bad), "{out:?} contains {bad}");
        }
        let bytes = out.as_bytes();
        for (i, w) in bytes.windows(5).enumerate() {
            assert!(
                !(w.starts_with(b"%25") && w[3].is_ascii_hexdigit() && w[4].is_ascii_hexdigit()),
                "{out:?} double-encoded at {i}"
            );
        }
        // Escapes are uppercase and never stand for an unreserved character.
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'%' {
                let hex = &out[i + 1..i + 3];
                assert_eq!(hex, hex.to_ascii_uppercase(), "{out:?}");
                let v = u8::from_str_radix(hex, 16).unwrap();
                assert!(!UNRESERVED[usize::from(v)], "{out:?}");
            }
        }
        assert!(std::str::from_utf8(&decode_all(out)).is_ok(), "{out:?}");
    }

    proptest! {
        #[test]
        fn never_panics(raw in any::<String>()) {
            let _ = canon(&raw);
            let _ = canonicalize(&raw, &PathOptions { merge_slashes: false, danger_allow_encoded_slash: true });
        }

        #[test]
        fn idempotent_and_canonical(raw in any_path(), merge in any::<bool>(), danger in any::<bool>()) {
            let opts = PathOptions { merge_slashes: merge, danger_allow_encoded_slash: danger };
            if let Ok(once) = canonicalize(&raw, &opts) {
                prop_assert_eq!(canonicalize(&once, &opts), Ok(once.clone()));
                if danger {
                    prop_assert!(once.is_ascii() && !once.contains("/./"));
                } else {
                    assert_canonical_shape(&once, merge);
                }
            }
        }

        #[test]
        fn fast_path_agrees_with_slow_path(raw in any_path(), merge in any::<bool>()) {
            let opts = PathOptions { merge_slashes: merge, ..PathOptions::default() };
            if is_already_canonical(raw.as_bytes(), &opts) {
                prop_assert_eq!(canonicalize_slow(raw.as_bytes(), &opts), Ok(raw.clone()));
            }
        }

        #[test]
        fn escaped_and_raw_unicode_agree(s in "[^\u{0}-\u{7f}]{1,8}") {
            let escaped: String = s.bytes().map(|b| format!("%{b:02x}")).collect();
            prop_assert_eq!(canon(&format!("/{s}")), canon(&format!("/{escaped}")));
        }

        #[test]
        fn utf8_check_agrees_with_std(bytes in prop::collection::vec(any::<u8>(), 0..12)) {
            prop_assert_eq!(check_utf8(&bytes), std::str::from_utf8(&bytes).is_ok());
        }

        #[test]
        fn utf8_check_accepts_every_char(c in any::<char>()) {
            let mut buf = [0u8; 4];
            prop_assert!(check_utf8(c.encode_utf8(&mut buf).as_bytes()));
        }
    }
}
