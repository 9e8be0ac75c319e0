//! JSON pointer patterns (RFC 6901 plus `*` for "any key or index"), and the path of the value
//! being walked.

use std::borrow::Cow;

/// One segment of a pointer pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Any,
}

/// Why a pointer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PointerError {
    /// A non-empty pointer must start with `/`.
    #[error("a JSON pointer must be empty or start with '/'")]
    NoLeadingSlash,
    /// `~` must be followed by `0` or `1`.
    #[error("'~' must be followed by '0' or '1'")]
    BadEscape,
}

/// Parses a pointer pattern. `*` as a whole segment matches any key or index; `~0`/`~1` escape
/// `~` and `/`.
pub(crate) fn parse(p: &str) -> Result<Vec<Seg>, PointerError> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let rest = p.strip_prefix('/').ok_or(PointerError::NoLeadingSlash)?;
    rest.split('/')
        .map(|raw| {
            if raw == "*" {
                return Ok(Seg::Any);
            }
            let mut out = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return Err(PointerError::BadEscape),
                    }
                } else {
                    out.push(c);
                }
            }
            Ok(Seg::Key(out))
        })
        .collect()
}

/// A step in the path of the value being walked.
#[derive(Debug, Clone)]
pub(crate) enum Step<'a> {
    Key(Cow<'a, str>),
    Index(usize),
}

impl Seg {
    pub(crate) fn matches(&self, step: &Step<'_>) -> bool {
        match (self, step) {
            (Seg::Any, _) => true,
            (Seg::Key(k), Step::Key(s)) => k == s,
            (Seg::Key(k), Step::Index(i)) => k.parse::<usize>().is_ok_and(|n| n == *i),
        }
    }
}

/// Whether a pattern matches a whole path.
pub(crate) fn matches_path(pat: &[Seg], path: &[Step<'_>]) -> bool {
    pat.len() == path.len() && pat.iter().zip(path).all(|(s, p)| s.matches(p))
}

/// Appends `/key` (escaped) to a pointer.
pub(crate) fn push_key(out: &mut String, key: &str) {
    out.push('/');
    // Keys are short: a plain scan beats a memchr call.
    if !key.bytes().any(|c| c == b'~' || c == b'/') {
        out.push_str(key);
        return;
    }
    for c in key.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
}

/// Appends a decimal index (without `fmt`: findings render one pointer each).
fn push_index(out: &mut String, mut i: usize) {
    let mut buf = [0u8; 20];
    let mut n = buf.len();
    loop {
        n -= 1;
        buf[n] = b'0' + (i % 10) as u8;
        i /= 10;
        if i == 0 {
            break;
        }
    }
    // ASCII digits: always a valid `str`.
    out.push_str(std::str::from_utf8(&buf[n..]).unwrap_or_default());
}

/// Renders a path as a JSON pointer.
pub(crate) fn render(path: &[Step<'_>]) -> String {
    let len: usize = path.iter().map(|s| 1 + if let Step::Key(k) = s { k.len() } else { 20 }).sum();
    let mut out = String::with_capacity(len);
    for step in path {
        match step {
            Step::Key(k) => push_key(&mut out, k),
            Step::Index(i) => {
                out.push('/');
                push_index(&mut out, *i);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let p = parse("/items/*/a~1b").unwrap();
        assert_eq!(p, vec![Seg::Key("items".into()), Seg::Any, Seg::Key("a/b".into())]);
        let path = [Step::Key("items".into()), Step::Index(3), Step::Key("a/b".into())];
        assert!(matches_path(&p, &path));
        assert_eq!(render(&path), "/items/3/a~1b");
        assert!(parse("items").is_err());
        assert!(parse("/a~2").is_err());
        assert_eq!(parse("").unwrap(), vec![]);
    }
}
