//! XML external entities and entity expansion, looked for in XML bodies and in any value that
//! carries a DOCTYPE.

use crate::re::lazy_re;

lazy_re!(EXTERNAL_ENTITY, r#"(?is)<!ENTITY\s+(?:%\s*)?[\w.:-]+\s+(?:SYSTEM|PUBLIC)\b"#);
lazy_re!(PARAM_ENTITY_REF, r"(?s)<!DOCTYPE[^>\[]*\[.*%[\w.:-]+;");
lazy_re!(ENTITY_VALUE_REFS, r#"(?is)<!ENTITY\s+[\w.:-]+\s+["'][^"']*&[\w.:-]+;[^"']*&[\w.:-]+;"#);
lazy_re!(DOCTYPE_EXTERNAL, r#"(?is)<!DOCTYPE\s+[\w.:-]+\s+(?:SYSTEM|PUBLIC)\b"#);
lazy_re!(DOCTYPE_SUBSET, r"(?is)<!DOCTYPE\s+[\w.:-]+\s*\[");
lazy_re!(
    XINCLUDE,
    r#"(?is)<[\w-]*:?include\b[^>]*(?:href|namespace|schemaLocation)\s*=\s*["'](?:https?|ftp|file|//)|schemaLocation\s*=\s*["'][^"']*(?:https?://|file:|//)[^"']*\b(?:xxe|evil|attacker|burpcollaborator|oast|interact)|xmlns:xi\s*=|<xi:include"#
);
lazy_re!(UTF7, r#"(?i)<\?xml[^>]*encoding\s*=\s*["']?utf-?7"#);

/// XXE / entity-expansion markup in `s`.
#[must_use]
pub fn detect(s: &str) -> Option<&'static str> {
    let b = s.as_bytes();
    memchr::memchr(b'<', b)?;
    if UTF7.is_match(s) {
        return Some("xxe-utf7");
    }
    if memchr::memmem::find(b, b"<!").is_some() {
        if EXTERNAL_ENTITY.is_match(s) {
            return Some("xxe-external-entity");
        }
        if ENTITY_VALUE_REFS.is_match(s) || PARAM_ENTITY_REF.is_match(s) {
            return Some("xxe-entity-expansion");
        }
        if DOCTYPE_EXTERNAL.is_match(s) {
            return Some("xxe-doctype-external");
        }
    }
    if XINCLUDE.is_match(s) {
        return Some("xxe-xinclude");
    }
    if memchr::memmem::find(b, b"<!").is_some() && DOCTYPE_SUBSET.is_match(s) {
        return Some("xxe-doctype");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        for r in [
            &EXTERNAL_ENTITY,
            &PARAM_ENTITY_REF,
            &ENTITY_VALUE_REFS,
            &DOCTYPE_EXTERNAL,
            &DOCTYPE_SUBSET,
            &XINCLUDE,
            &UTF7,
        ] {
            assert!(r.compiled());
        }
    }

    #[test]
    fn attacks() {
        for a in [
            "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY e SYSTEM \"file:///etc/hostname\">]><r>&e;</r>",
            "<!DOCTYPE r [<!ENTITY a \"x\"><!ENTITY b \"&a;&a;&a;&a;\">]><r>&b;</r>",
            "<!DOCTYPE r SYSTEM \"http://dtd.test/x.dtd\"><r/>",
            "<!DOCTYPE r [<!ENTITY % p SYSTEM \"http://x\"> %p;]>",
            "<r xmlns:xi=\"http://www.w3.org/2001/XInclude\"><xi:include href=\"/etc/hosts\"/></r>",
            "<?xml version=\"1.0\" encoding=\"UTF-7\"?>",
        ] {
            assert!(detect(a).is_some(), "missed {a:?}");
        }
    }

    #[test]
    fn benign() {
        for b in [
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><order><id>5</id></order>",
            "<html><body>hi</body></html>",
            "<!-- comment --><a/>",
        ] {
            assert!(detect(b).is_none(), "false positive {b:?}");
        }
    }
}
