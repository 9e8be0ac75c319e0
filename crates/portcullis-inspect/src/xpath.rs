//! XPath injection: axes, node tests and predicates with XPath functions, i.e. the grammar of a
//! location path rather than a string comparison (which the SQL detector already covers).

use crate::re::lazy_re;

lazy_re!(
    AXIS,
    r"(?i)\b(?:child|descendant|descendant-or-self|ancestor|ancestor-or-self|following|following-sibling|preceding|preceding-sibling|parent|self|attribute|namespace)::|/(?:node|text|comment|processing-instruction)\(\)|\]\s*\|\s*//|^\s*//\*|['\x22]\s*\]\s*\|"
);
lazy_re!(
    FUNC,
    r#"(?i)(?:\bor\b|\band\b|\[|\|)\s*(?:count|name|local-name|string-length|substring|contains|starts-with|normalize-space|string|position|last|translate|concat)\s*\(\s*(?:/|\.|@|\)|name\(|text\(|node\(|'|"|[a-z]+\()"#
);

/// XPath injection in `s`.
#[must_use]
pub fn detect(s: &str) -> Option<&'static str> {
    let b = s.as_bytes();
    let axis_possible = memchr::memmem::find(b, b"::").is_some()
        || memchr::memmem::find(b, b"()").is_some()
        || memchr::memchr(b'|', b).is_some()
        || s.trim_start().starts_with("//");
    if axis_possible && AXIS.is_match(s) {
        return Some("xpath-axis");
    }
    if memchr::memchr(b'(', b).is_some() && memchr::memchr3(b'[', b'|', b' ', b).is_some() && FUNC.is_match(s) {
        return Some("xpath-function");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        assert!(AXIS.compiled() && FUNC.compiled());
    }

    #[test]
    fn attacks() {
        for a in [
            "' or count(/child::node())=1 or '",
            "x'] | //user/*[contains(*,'a')] | //x['",
            "' and string-length(name(/*[1]))=5 and '",
            "//*",
            "ancestor::users",
        ] {
            assert!(detect(a).is_some(), "missed {a:?}");
        }
    }

    #[test]
    fn benign() {
        for b in ["https://example.com/a", "count me in (please)", "name (optional)", "C++::iterator", "a | b"] {
            assert!(detect(b).is_none(), "false positive {b:?}");
        }
    }
}
