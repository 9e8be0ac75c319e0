//! Server-side template injection: template delimiters around an expression a template engine
//! would evaluate (arithmetic, calls, object-graph walks), and engine directives. A plain
//! placeholder (`{{name}}`, `${user.name}`) is not an injection.

use crate::re::lazy_re;

// Expression inside {{ }}, ${ }, #{ }, *{ }, <%= %>, {% %} with arithmetic, a call, an index or a filter.
lazy_re!(
    EXPR,
    r#"(?s)(?:\{\{|\$\{|#\{|\*\{|@\{|<%=?|\{%|\{\#)[^}%]{0,200}?(?:\d\s*[*/+%-]\s*['"]?\d|[\w\]'")]\s*\(|\[\s*['"]|\|\s*(?:attr|safe|e|join|map)\b|\.(?:class|getclass|forname|constructor|getruntime)\b)"#
);
lazy_re!(
    DIRECTIVE,
    r#"(?i)<#(?:assign|list|if|include|import|macro)\b|#set\s*\(\s*\$|#foreach\s*\(|\?new\s*\(|freemarker\.template|\{%\s*(?:import|include|extends|from|set|for|if|raw|load|debug)\b|th:(?:text|utext|with)\s*=|\$\{\s*T\s*\(|\bT\(java\.|<%@|\{php\}|\{\{\s*(?:_self|self|config|request|lipsum|cycler|joiner|namespace|range)\b"#
);
lazy_re!(DUNDER, r"__(?:class|mro|subclasses|globals|builtins|init|base|bases|import|getattribute|dict|module)__");

/// Template injection in `s`.
#[must_use]
pub fn detect(s: &str) -> Option<&'static str> {
    let b = s.as_bytes();
    let has_open = memchr::memchr3(b'{', b'<', b'#', b).is_some();
    if memchr::memmem::find(b, b"__").is_some() && DUNDER.is_match(s) {
        return Some("ssti-dunder");
    }
    if !has_open {
        return None;
    }
    if DIRECTIVE.is_match(s) {
        return Some("ssti-directive");
    }
    if EXPR.is_match(s) {
        return Some("ssti-expression");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        assert!(EXPR.compiled() && DIRECTIVE.compiled() && DUNDER.compiled());
    }

    #[test]
    fn attacks() {
        for a in [
            "{{7*'7'}}",
            "${6*6}",
            "#{3*3}",
            "<%= 8*8 %>",
            "{{ ''.__class__.__mro__ }}",
            "{{config.items()}}",
            "<#assign x=\"freemarker.template.utility.Execute\"?new()>",
            "{% import os %}",
            "*{T(java.lang.Runtime).getRuntime()}",
            "#set($x = 1)",
        ] {
            assert!(detect(a).is_some(), "missed {a:?}");
        }
    }

    #[test]
    fn benign() {
        for b in ["Hello {{name}}", "Total: ${amount}", "use {curly} braces", "#1 seller", "50% off {today}", "a <% b"]
        {
            assert!(detect(b).is_none(), "false positive {b:?}");
        }
    }
}
