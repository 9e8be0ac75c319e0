//! Pulling the scannable values out of a request: query strings and forms, multipart parts,
//! JSON string leaves and keys (with their JSON pointer), XML text and attributes, cookies.
//!
//! Every parser here is a single forward pass with bounded depth; malformed input is reported
//! (the caller then scans the raw text instead), never a panic.

use std::borrow::Cow;

use crate::normalize::url_decode;

/// Deepest JSON / XML nesting followed.
pub const MAX_DEPTH: usize = 128;

/// Splits `a=1&b=2` into decoded (name, value) pairs (`+` is a space).
pub fn pairs(s: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    s.split('&').filter(|p| !p.is_empty()).map(|p| {
        let (n, v) = p.split_once('=').unwrap_or((p, ""));
        (url_decode(n, true), url_decode(v, true))
    })
}

/// Splits a `Cookie` header value into (name, value) pairs.
pub fn cookies(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.split(';').filter_map(|c| {
        let c = c.trim();
        (!c.is_empty()).then(|| c.split_once('=').map_or(("", c), |(n, v)| (n.trim(), v.trim())))
    })
}

/// One part of a multipart body.
#[derive(Debug)]
pub struct Part<'a> {
    /// `name` from Content-Disposition (empty when absent).
    pub name: Cow<'a, str>,
    /// `filename` from Content-Disposition, if any.
    pub filename: Option<Cow<'a, str>>,
    /// The part's Content-Type, if any.
    pub content_type: Option<&'a str>,
    /// The part body.
    pub body: &'a [u8],
}

/// The `boundary` parameter of a multipart content type.
#[must_use]
pub fn boundary(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"')).filter(|b| !b.is_empty())
    })
}

fn header_param<'a>(h: &'a str, key: &str) -> Option<&'a str> {
    h.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then(|| v.trim().trim_matches('"'))
    })
}

/// Splits a multipart body into parts (at most `max_parts`).
#[must_use]
pub fn multipart<'a>(body: &'a [u8], boundary: &str, max_parts: usize) -> Vec<Part<'a>> {
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    let mut parts = Vec::new();
    let starts: Vec<usize> = memchr::memmem::find_iter(body, d).take(max_parts + 1).collect();
    for w in starts.windows(2) {
        let mut seg = &body[w[0] + d.len()..w[1]];
        seg = seg.strip_prefix(b"\r\n").or_else(|| seg.strip_prefix(b"\n")).unwrap_or(seg);
        seg = seg.strip_suffix(b"\r\n").or_else(|| seg.strip_suffix(b"\n")).unwrap_or(seg);
        let (head, content) = match memchr::memmem::find(seg, b"\r\n\r\n") {
            Some(p) => (&seg[..p], &seg[p + 4..]),
            None => match memchr::memmem::find(seg, b"\n\n") {
                Some(p) => (&seg[..p], &seg[p + 2..]),
                None => (seg, &[][..]),
            },
        };
        let head = std::str::from_utf8(head).unwrap_or("");
        let mut part = Part { name: Cow::Borrowed(""), filename: None, content_type: None, body: content };
        for line in head.lines().take(32) {
            let Some((k, v)) = line.split_once(':') else { continue };
            if k.trim().eq_ignore_ascii_case("content-disposition") {
                part.name = Cow::Borrowed(header_param(v, "name").unwrap_or(""));
                part.filename = header_param(v, "filename").map(Cow::Borrowed);
            } else if k.trim().eq_ignore_ascii_case("content-type") {
                part.content_type = Some(v.trim());
            }
        }
        parts.push(part);
    }
    parts
}

/// A step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg<'a> {
    /// Object member.
    Key(Cow<'a, str>),
    /// Array element.
    Index(usize),
}

/// RFC 6901 pointer of a path.
#[must_use]
pub fn pointer(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for s in path {
        out.push('/');
        match s {
            Seg::Key(k) => {
                for c in k.chars() {
                    match c {
                        '~' => out.push_str("~0"),
                        '/' => out.push_str("~1"),
                        _ => out.push(c),
                    }
                }
            }
            Seg::Index(i) => out.push_str(&i.to_string()),
        }
    }
    out
}

/// What the JSON walker reports.
pub trait JsonVisitor<'a> {
    /// An object key; `path` ends with this key.
    fn key(&mut self, path: &[Seg<'a>]);
    /// A string leaf at `path`.
    fn string(&mut self, path: &[Seg<'a>], value: &str);
}

/// Malformed or too deep JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonError;

/// Walks every key and string leaf of a JSON document.
///
/// # Errors
/// Malformed JSON, or nesting deeper than [`MAX_DEPTH`].
pub fn walk_json<'a, V: JsonVisitor<'a>>(s: &'a str, v: &mut V) -> Result<(), JsonError> {
    let mut p = JsonParser { s, b: s.as_bytes(), i: 0, path: Vec::with_capacity(8) };
    p.ws();
    p.value(v, 0)?;
    p.ws();
    if p.i == p.b.len() { Ok(()) } else { Err(JsonError) }
}

struct JsonParser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    path: Vec<Seg<'a>>,
}

impl<'a> JsonParser<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn value<V: JsonVisitor<'a>>(&mut self, v: &mut V, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError);
        }
        match self.b.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    if self.b.get(self.i) != Some(&b'"') {
                        return Err(JsonError);
                    }
                    let k = self.string()?;
                    self.path.push(Seg::Key(k));
                    v.key(&self.path);
                    self.ws();
                    if self.b.get(self.i) != Some(&b':') {
                        return Err(JsonError);
                    }
                    self.i += 1;
                    self.ws();
                    self.value(v, depth + 1)?;
                    self.path.pop();
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(JsonError),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(());
                }
                let mut idx = 0;
                loop {
                    self.ws();
                    self.path.push(Seg::Index(idx));
                    self.value(v, depth + 1)?;
                    self.path.pop();
                    idx += 1;
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(JsonError),
                    }
                }
            }
            Some(b'"') => {
                let s = self.string()?;
                v.string(&self.path, &s);
                Ok(())
            }
            Some(c) if c.is_ascii_alphanumeric() || *c == b'-' => {
                let st = self.i;
                while self.i < self.b.len()
                    && matches!(self.b[self.i], b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'+' | b'-' | b'.')
                {
                    self.i += 1;
                }
                let lit = &self.b[st..self.i];
                let ok = matches!(lit, b"true" | b"false" | b"null")
                    || (lit[0] == b'-' || lit[0].is_ascii_digit())
                        && lit.iter().all(|c| c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.' | b'e' | b'E'));
                if ok { Ok(()) } else { Err(JsonError) }
            }
            _ => Err(JsonError),
        }
    }

    /// Parses a string at `self.i` (on the opening quote); borrowed when it has no escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        let start = self.i + 1;
        let mut j = start;
        // Most strings of an API body are short: eight bytes at a time beats memchr's set-up there.
        let short = &self.b[j..self.b.len().min(j + 64)];
        match quote_or_backslash(short) {
            Some(p) => j += p,
            None => j += memchr::memchr2(b'"', b'\\', &self.b[j..]).ok_or(JsonError)?,
        }
        if self.b[j] == b'"' {
            self.i = j + 1;
            return Ok(Cow::Borrowed(&self.s[start..j]));
        }
        // Escapes: decode.
        let mut out = String::with_capacity(j - start + 16);
        out.push_str(&self.s[start..j]);
        let mut last = j;
        while j < self.b.len() {
            match self.b[j] {
                b'"' => {
                    out.push_str(&self.s[last..j]);
                    self.i = j + 1;
                    return Ok(Cow::Owned(out));
                }
                b'\\' => {
                    out.push_str(&self.s[last..j]);
                    let e = *self.b.get(j + 1).ok_or(JsonError)?;
                    j += 2;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = hex4(self.b, j).ok_or(JsonError)?;
                            j += 4;
                            let cp = if (0xD800..0xDC00).contains(&hi)
                                && self.b.get(j) == Some(&b'\\')
                                && self.b.get(j + 1) == Some(&b'u')
                            {
                                match hex4(self.b, j + 2) {
                                    Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                                        j += 6;
                                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                    }
                                    _ => 0xFFFD,
                                }
                            } else {
                                hi
                            };
                            out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                        }
                        _ => return Err(JsonError),
                    }
                    last = j;
                }
                _ => {
                    let rel = memchr::memchr2(b'"', b'\\', &self.b[j..]).ok_or(JsonError)?;
                    j += rel;
                }
            }
        }
        Err(JsonError)
    }
}

/// Where the first `"` or `\\` of `b` is: eight bytes per step (SWAR), the tail bytewise.
fn quote_or_backslash(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut blocks = b.chunks_exact(8);
    for (k, blk) in blocks.by_ref().enumerate() {
        let x = <[u8; 8]>::try_from(blk).map_or(0, u64::from_le_bytes);
        let q = x ^ (LO * u64::from(b'"'));
        let e = x ^ (LO * u64::from(b'\\'));
        // A zero byte of `q` / `e` is a `"` / `\\`. The lowest flagged byte of each is exact (a
        // borrow only runs upwards, past a true zero), so the lowest of both is the first match.
        let z = (q.wrapping_sub(LO) & !q | e.wrapping_sub(LO) & !e) & HI;
        if z != 0 {
            return Some(8 * k + (z.trailing_zeros() / 8) as usize);
        }
    }
    let off = b.len() - blocks.remainder().len();
    blocks.remainder().iter().position(|c| matches!(c, b'"' | b'\\')).map(|p| off + p)
}

fn hex4(b: &[u8], at: usize) -> Option<u32> {
    let d = b.get(at..at + 4)?;
    d.iter().try_fold(0u32, |acc, c| Some(acc << 4 | char::from(*c).to_digit(16)?))
}

/// What the XML walker reports: text and attribute values with a path like `/a/b` or `/a/b/@id`.
pub trait XmlVisitor {
    /// A text node or attribute value.
    fn text(&mut self, path: &str, value: &str);
}

/// Walks the text content and attribute values of an XML document (tolerant: no validation,
/// no entity expansion, no DTD processing).
pub fn walk_xml<V: XmlVisitor>(s: &str, v: &mut V) {
    let b = s.as_bytes();
    let mut stack: Vec<&str> = Vec::new();
    let mut i = 0;
    let mut path = String::new();
    let rebuild = |stack: &[&str], path: &mut String| {
        path.clear();
        for n in stack {
            path.push('/');
            path.push_str(n);
        }
    };
    while i < b.len() {
        let Some(lt) = memchr::memchr(b'<', &b[i..]).map(|p| i + p) else {
            emit_text(v, &path, &s[i..]);
            break;
        };
        emit_text(v, &path, &s[i..lt]);
        let rest = &b[lt..];
        if rest.starts_with(b"<!--") {
            i = memchr::memmem::find(&b[lt + 4..], b"-->").map_or(b.len(), |p| lt + 4 + p + 3);
        } else if rest.starts_with(b"<![CDATA[") {
            let st = lt + 9;
            let end = memchr::memmem::find(&b[st..], b"]]>").map_or(b.len(), |p| st + p);
            emit_text(v, &path, &s[st..end]);
            i = (end + 3).min(b.len());
        } else if rest.starts_with(b"<?") || rest.starts_with(b"<!") {
            i = memchr::memchr(b'>', &b[lt..]).map_or(b.len(), |p| lt + p + 1);
        } else if rest.starts_with(b"</") {
            stack.pop();
            rebuild(&stack, &mut path);
            i = memchr::memchr(b'>', &b[lt..]).map_or(b.len(), |p| lt + p + 1);
        } else {
            let end = tag_end(b, lt + 1);
            let inner = &s[lt + 1..end];
            let self_closing = inner.ends_with('/');
            let inner = inner.trim_end_matches('/');
            let name_end = inner.find(|c: char| c.is_whitespace()).unwrap_or(inner.len());
            let name = &inner[..name_end];
            let local = name.rsplit(':').next().unwrap_or(name);
            let local = &local[..floor_boundary(local, 64)];
            let mut attr_path = path.clone();
            attr_path.push('/');
            attr_path.push_str(local);
            attributes(v, &attr_path, &inner[name_end..]);
            if !self_closing && stack.len() < MAX_DEPTH {
                stack.push(local);
                rebuild(&stack, &mut path);
            }
            i = (end + 1).min(b.len());
        }
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// End of a tag (index of its `>`), skipping quoted attribute values.
fn tag_end(b: &[u8], mut i: usize) -> usize {
    let mut q = 0u8;
    while i < b.len() {
        let c = b[i];
        if q != 0 {
            if c == q {
                q = 0;
            }
        } else if c == b'"' || c == b'\'' {
            q = c;
        } else if c == b'>' {
            return i;
        }
        i += 1;
    }
    b.len()
}

fn attributes<V: XmlVisitor>(v: &mut V, elem_path: &str, s: &str) {
    let mut rest = s;
    for _ in 0..256 {
        let Some(eq) = rest.find('=') else { return };
        let name = rest[..eq].trim();
        let name = &name[..floor_boundary(name, 64)];
        let after = rest[eq + 1..].trim_start();
        let Some(q) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else { return };
        let body = &after[1..];
        let Some(close) = body.find(q) else { return };
        let value = &body[..close];
        if !name.starts_with("xmlns") && !value.is_empty() {
            v.text(&format!("{elem_path}/@{name}"), value);
        }
        rest = &body[close + 1..];
    }
}

fn emit_text<V: XmlVisitor>(v: &mut V, path: &str, t: &str) {
    let t = t.trim();
    if !t.is_empty() {
        v.text(if path.is_empty() { "/" } else { path }, t);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// The eight-bytes-at-a-time search finds what a bytewise search finds.
        #[test]
        fn quote_or_backslash_is_first_match(v in prop::collection::vec(
            prop::sample::select(vec![b'"', b'\\', b'a', b' ', 0u8, 0x80, 0xFF, b'!', b']', b'#', 0x5B, 0x5D, 0x21, 0x23]),
            0..80,
        )) {
            prop_assert_eq!(quote_or_backslash(&v), v.iter().position(|c| matches!(c, b'"' | b'\\')));
        }
    }

    struct Collect(Vec<(String, String)>, Vec<String>);
    impl<'a> JsonVisitor<'a> for Collect {
        fn key(&mut self, path: &[Seg<'a>]) {
            self.1.push(pointer(path));
        }
        fn string(&mut self, path: &[Seg<'a>], value: &str) {
            self.0.push((pointer(path), value.to_owned()));
        }
    }

    #[test]
    fn json_leaves_with_pointers() {
        let mut c = Collect(Vec::new(), Vec::new());
        walk_json(r#"{"a":{"b/c":["x",1,"y\u0041\n"]},"n":null,"t":true,"f":-1.5e3}"#, &mut c).unwrap();
        assert_eq!(c.0, vec![("/a/b~1c/0".into(), "x".into()), ("/a/b~1c/2".into(), "yA\n".into())]);
        assert_eq!(c.1, vec!["/a", "/a/b~1c", "/n", "/t", "/f"]);
        assert!(walk_json("{\"a\":", &mut c).is_err());
        assert!(walk_json(&"[".repeat(200), &mut c).is_err());
        assert!(walk_json("[1,2]x", &mut c).is_err());
    }

    #[test]
    fn multipart_parts() {
        let body = b"--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nhello\r\n--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\nContent-Type: text/plain\r\n\r\nfile body\r\n--B--\r\n";
        let parts = multipart(body, "B", 10);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "a");
        assert_eq!(parts[0].body, b"hello");
        assert_eq!(parts[1].filename.as_deref(), Some("x.txt"));
        assert_eq!(boundary("multipart/form-data; boundary=\"B\""), Some("B"));
    }

    struct X(Vec<(String, String)>);
    impl XmlVisitor for X {
        fn text(&mut self, path: &str, value: &str) {
            self.0.push((path.to_owned(), value.to_owned()));
        }
    }

    #[test]
    fn xml_texts() {
        let mut x = X(Vec::new());
        walk_xml(
            "<?xml version=\"1.0\"?><s:Env xmlns:s=\"u\"><s:Body id=\"7\"><q>a &lt; b</q><![CDATA[raw]]></s:Body></s:Env>",
            &mut x,
        );
        assert_eq!(
            x.0,
            vec![
                ("/Env/Body/@id".into(), "7".into()),
                ("/Env/Body/q".into(), "a &lt; b".into()),
                ("/Env/Body".into(), "raw".into())
            ]
        );
    }

    #[test]
    fn query_pairs() {
        let v: Vec<_> = pairs("a=1&b=x+y%21&c").map(|(a, b)| (a.into_owned(), b.into_owned())).collect();
        assert_eq!(v, vec![("a".into(), "1".into()), ("b".into(), "x y!".into()), ("c".into(), String::new())]);
    }
}
