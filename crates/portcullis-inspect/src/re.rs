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
pub(crate) fn build(p: &str) -> Option<Regex> {
    regex::RegexBuilder::new(p).size_limit(4 << 20).dfa_size_limit(4 << 20).build().ok()
}

macro_rules! lazy_re {
    ($name:ident, $pat:expr) => {
        static $name: $crate::re::Lazy = $crate::re::Lazy::new(|| $crate::re::build($pat));
    };
}
pub(crate) use lazy_re;
