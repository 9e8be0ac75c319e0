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
    // ASCII digits, a char each (cheaper than checking them as UTF-8).
    out.extend(buf[n..].iter().map(|&d| char::from(d)));
}

/// Renders a path as a JSON pointer.
pub(crate) fn render(path: &[Step<'_>]) -> String {
    let mut out = String::with_capacity(rendered_len(path));
    render_into(&mut out, path);
    out
}

/// An upper bound of the rendered length of `path` (an index takes at most 20 digits).
fn rendered_len(path: &[Step<'_>]) -> usize {
    path.iter().map(|s| 1 + if let Step::Key(k) = s { k.len() } else { 20 }).sum()
}

/// Appends the steps of `path` to a pointer.
pub(crate) fn render_into(out: &mut String, path: &[Step<'_>]) {
    for step in path {
        match step {
            Step::Key(k) => push_key(out, k),
            Step::Index(i) => {
                out.push('/');
                push_index(out, *i);
            }
        }
    }
}

/// The rendered pointer of a prefix of the walker's path, kept while the walk stays below it:
/// findings under the same object or array render their parent's part once, and the next
/// element of an array renders only its index.
#[derive(Debug, Default)]
pub(crate) struct PrefixCache {
    /// `render(&path[..ends.len()])`.
    text: String,
    /// The length of `text` after each step.
    ends: Vec<usize>,
}

impl PrefixCache {
    /// The path was cut to `len` steps: the steps past it no longer hold.
    pub(crate) fn truncate(&mut self, len: usize) {
        if self.ends.len() > len {
            self.text.truncate(len.checked_sub(1).and_then(|i| self.ends.get(i).copied()).unwrap_or(0));
            self.ends.truncate(len);
        }
    }

    /// Renders `path`, whose first steps must be those the cache was filled from (the walker
    /// calls [`Self::truncate`] whenever it pops a step). The parent's part is kept for the next
    /// call.
    pub(crate) fn render(&mut self, path: &[Step<'_>]) -> String {
        let parent = path.len().saturating_sub(1);
        while let Some(step) = path.get(self.ends.len()).filter(|_| self.ends.len() < parent) {
            render_into(&mut self.text, std::slice::from_ref(step));
            self.ends.push(self.text.len());
        }
        let rest = path.get(self.ends.len()..).unwrap_or_default();
        let mut out = String::with_capacity(self.text.len() + rendered_len(rest));
        out.push_str(&self.text);
        render_into(&mut out, rest);
        debug_assert_eq!(out, render(path), "cached pointer prefix out of date");
        out
    }
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
        let mut cache = PrefixCache::default();
        assert_eq!(cache.render(&path), "/items/3/a~1b");
        assert_eq!(cache.render(&path[..2]), "/items/3");
        cache.truncate(1);
        let sibling = [Step::Key("items".into()), Step::Index(12), Step::Key("b".into())];
        assert_eq!(cache.render(&sibling), "/items/12/b");
        cache.truncate(0);
        let other = [Step::Key("it~ems".into()), Step::Key("x".into())];
        assert_eq!(cache.render(&other), "/it~0ems/x");
        assert!(parse("/a~2").is_err());
        assert_eq!(parse("").unwrap(), vec![]);
    }
}
