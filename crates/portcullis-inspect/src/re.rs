//! Lazily compiled regular expressions (the `regex` crate: finite automata, linear time).

use std::sync::LazyLock;

use regex::Regex;

/// A pattern compiled on first use. A pattern that fails to compile matches nothing (and a unit
/// test in each detector proves every pattern compiles), so the hot path has no panic.
pub(crate) struct Lazy(LazyLock<Option<Regex>>);

impl Lazy {
    pub(crate) const fn new(f: fn() -> Option<Regex>) -> Self {
        Self(LazyLock::new(f))
    }

    pub(crate) fn is_match(&self, s: &str) -> bool {
        self.0.as_ref().is_some_and(|r| r.is_match(s))
    }

    #[cfg(test)]
    pub(crate) fn compiled(&self) -> bool {
        self.0.is_some()
    }
}

/// Compiles with a size limit (patterns are ours, but keep the automata small).
///
/// Perl classes are rewritten to their ASCII forms first: a Unicode `\\b` makes the regex crate
/// fall back from its lazy DFA to the much slower PikeVM on non-ASCII input, and payload grammar
/// is ASCII anyway.
pub(crate) fn build(p: &str) -> Option<Regex> {
    let p = p
        .replace(r"\b", r"(?-u:\b)")
        .replace(r"\w", "[0-9A-Za-z_]")
        .replace(r"\d", "[0-9]")
        .replace(r"\s", r"[\t\n\x0B\x0C\r ]");
    regex::RegexBuilder::new(&p).size_limit(4 << 20).dfa_size_limit(4 << 20).build().ok()
}

macro_rules! lazy_re {
    ($name:ident, $pat:expr) => {
        static $name: $crate::re::Lazy = $crate::re::Lazy::new(|| $crate::re::build($pat));
    };
}
pub(crate) use lazy_re;

#[cfg(test)]
mod tests {
    #[test]
    fn ascii_rewrite_compiles_and_matches() {
        let r = super::build(r"\bdb\.\w+\s*\(\d").unwrap();
        assert!(r.is_match("x db.users (1"));
        assert!(!r.is_match("xdb.users (1"));
        assert!(super::build(r"[\w.:-]+").unwrap().is_match("a.b"));
    }
}
