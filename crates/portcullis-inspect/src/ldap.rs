//! LDAP filter injection: the value closes a filter component and opens another (`*)(uid=*`,
//! `)(|(…`), starts a boolean filter, or uses an extensible-match rule (`attr:1.2.3:=`).

use crate::re::lazy_re;

lazy_re!(
    BREAKOUT,
    r"\)\s*\(\s*[|&!]?\s*\(?[\w.;-]+\s*[~<>]?=|\(\s*[|&!]\s*\(\s*[\w.;-]+\s*[~<>]?=|^\s*\*\s*\)\s*\(|\*\s*\)\s*\(\s*[|&]"
);
lazy_re!(EXTENSIBLE, r"(?i)[\w-]*:(?:dn:)?\d+(?:\.\d+)+:=|[\w-]+:dn:=");

/// LDAP injection in `s`.
#[must_use]
pub fn detect(s: &str) -> Option<&'static str> {
    let b = s.as_bytes();
    let filter_possible = b.windows(2).any(|w| matches!(w, b")(" | b"(|" | b"(&" | b"(!" | b"*)" | b") " | b"( "));
    if filter_possible && BREAKOUT.is_match(s) {
        return Some("ldap-filter");
    }
    if memchr::memmem::find(b, b":=").is_some() && EXTENSIBLE.is_match(s) {
        return Some("ldap-extensible");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        assert!(BREAKOUT.compiled() && EXTENSIBLE.compiled());
    }

    #[test]
    fn attacks() {
        for a in [
            "*)(uid=*))(|(uid=*",
            "admin)(&(objectClass=user)",
            "(|(cn=a)(cn=b))",
            "cn:1.2.840.113556.1.4.803:=2",
            "x)(!(mail=*)",
        ] {
            assert!(detect(a).is_some(), "missed {a:?}");
        }
    }

    #[test]
    fn benign() {
        for b in ["(DICKEY DICKIE*)", "call me (555) 123-4567", "f(x) = (a+b)", "x := 5", "smile :) (really)"] {
            assert!(detect(b).is_none(), "false positive {b:?}");
        }
    }
}
