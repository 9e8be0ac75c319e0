//! The rule catalogue: every rule id a detector can report, with its class, paranoia level and score.
//!
//! Scores follow the anomaly-scoring idea of the OWASP CRS (critical 5, error 4, warning 3,
//! notice 2): a request is decided by the sum of its findings against the route's threshold, so a
//! weak signal alone does not block but adds up with others.

use crate::finding::AttackClass;

/// One rule of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Stable identifier, used in findings and exclusions.
    pub id: &'static str,
    /// Attack family.
    pub class: AttackClass,
    /// Lowest paranoia level (1–4) at which the rule is active.
    pub paranoia: u8,
    /// Anomaly score of one finding.
    pub score: u32,
    /// One line saying what it matches.
    pub summary: &'static str,
}

const fn r(id: &'static str, class: AttackClass, paranoia: u8, score: u32, summary: &'static str) -> Rule {
    Rule { id, class, paranoia, score, summary }
}

use AttackClass as C;

/// Every rule.
pub static RULES: &[Rule] = &[
    r("sqli-union", C::Sqli, 1, 5, "UNION followed by a SELECT"),
    r("sqli-stacked", C::Sqli, 1, 5, "statement separator followed by a SQL statement"),
    r("sqli-tautology", C::Sqli, 1, 5, "boolean operator followed by a comparison (string/number breakout)"),
    r("sqli-breakout-comment", C::Sqli, 1, 5, "quote or parenthesis closed, rest commented out"),
    r("sqli-breakout-clause", C::Sqli, 1, 5, "quote or parenthesis closed, followed by a SQL clause or operator"),
    r("sqli-function", C::Sqli, 1, 5, "time, error or file SQL function call in an expression"),
    r("sqli-statement", C::Sqli, 1, 5, "a complete SQL statement"),
    r("sqli-sysvar", C::Sqli, 1, 5, "SQL system variable (@@name)"),
    r("sqli-breakout-concat", C::Sqli, 2, 3, "quote closed, followed by an operator and another string"),
    r("sqli-number-comment", C::Sqli, 2, 3, "number followed by a comment"),
    r("xss-tag", C::Xss, 1, 5, "script-capable HTML element"),
    r("xss-event-handler", C::Xss, 1, 5, "HTML event-handler attribute"),
    r("xss-uri", C::Xss, 1, 5, "javascript:, vbscript: or data:text/html URI"),
    r("xss-style", C::Xss, 1, 5, "script in a style attribute"),
    r("xss-js-sink", C::Xss, 1, 5, "call to a JavaScript sink (alert, eval, …) or access to document.cookie"),
    r("xss-attr-breakout", C::Xss, 1, 5, "attribute value closed, followed by an event handler"),
    r("cmdi-separator", C::CommandInjection, 1, 5, "shell separator followed by a command"),
    r("cmdi-subst", C::CommandInjection, 1, 5, "shell command substitution ($(…) or backticks)"),
    r("cmdi-shellshock", C::CommandInjection, 1, 5, "bash function definition (shellshock)"),
    r("cmdi-ssi", C::CommandInjection, 1, 5, "server-side include directive"),
    r("cmdi-sensitive-arg", C::CommandInjection, 1, 5, "command with a sensitive path or URL argument"),
    r("code-php", C::CodeInjection, 1, 5, "PHP/ASP code execution construct"),
    r("code-deser", C::CodeInjection, 1, 5, "unsafe deserialisation tag or stream"),
    r("traversal-dotdot", C::PathTraversal, 1, 5, "two or more ../ segments"),
    r("traversal-dotdot-single", C::PathTraversal, 2, 3, "one ../ segment"),
    r("lfi-sensitive-file", C::PathTraversal, 1, 5, "well-known sensitive system file"),
    r("lfi-wrapper", C::PathTraversal, 1, 5, "file://, php:// or other stream wrapper"),
    r("lfi-unc", C::PathTraversal, 1, 5, "UNC path to an administrative share"),
    r("nosql-operator-key", C::NoSqlInjection, 1, 5, "MongoDB query operator used as a key"),
    r("nosql-operator-text", C::NoSqlInjection, 1, 5, "MongoDB query operator in text"),
    r("nosql-js", C::NoSqlInjection, 1, 5, "server-side JavaScript (db.collection calls, busy loops)"),
    r("ssti-expression", C::Ssti, 1, 5, "template expression with arithmetic or calls"),
    r("ssti-directive", C::Ssti, 1, 5, "template directive (FreeMarker, Velocity, Jinja)"),
    r("ssti-dunder", C::Ssti, 1, 5, "Python object-graph traversal (__class__, __globals__, …)"),
    r("ldap-filter", C::LdapInjection, 1, 5, "LDAP filter breakout"),
    r("ldap-extensible", C::LdapInjection, 1, 5, "LDAP extensible-match filter"),
    r("xpath-axis", C::XpathInjection, 1, 5, "XPath axis or node test"),
    r("xpath-function", C::XpathInjection, 1, 5, "XPath function in a predicate"),
    r("xxe-external-entity", C::Xxe, 1, 5, "external entity (SYSTEM/PUBLIC)"),
    r("xxe-entity-expansion", C::Xxe, 1, 5, "entity defined in terms of other entities"),
    r("xxe-doctype-external", C::Xxe, 1, 5, "DOCTYPE with an external DTD"),
    r("xxe-xinclude", C::Xxe, 1, 5, "XInclude, xs:include or schemaLocation pointing outside"),
    r("xxe-utf7", C::Xxe, 1, 5, "XML declared as UTF-7"),
    r("xxe-doctype", C::Xxe, 2, 3, "DOCTYPE with an internal subset"),
    r("crlf-header", C::CrlfInjection, 1, 5, "line break followed by a header"),
    r("crlf-mail", C::CrlfInjection, 1, 5, "line break followed by an SMTP/IMAP command"),
    r("crlf-any", C::CrlfInjection, 3, 3, "line break in a path segment or header"),
    r("log4shell-jndi", C::Log4Shell, 1, 5, "JNDI lookup after de-obfuscation"),
    r("log4shell-lookup", C::Log4Shell, 2, 3, "Log4j lookup (${env:…}, ${sys:…}, …)"),
    r("proto-key", C::PrototypePollution, 1, 5, "__proto__ or constructor.prototype as a key or parameter name"),
    r("proto-text", C::PrototypePollution, 2, 3, "__proto__ in a value"),
    r("scanner-ua", C::Scanner, 1, 5, "known scanner or attack tool"),
    r("scanner-oast", C::Scanner, 1, 5, "out-of-band interaction host (Burp Collaborator, interactsh, …)"),
    r("graphql-introspection", C::GraphqlIntrospection, 1, 5, "GraphQL schema introspection"),
    r("evasion-double-encoding", C::Evasion, 2, 2, "percent-encoding that decodes to another escape"),
    r("evasion-overlong-utf8", C::Evasion, 1, 3, "overlong UTF-8 sequence"),
];

/// The rule with this id.
#[must_use]
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_levels_valid() {
        let mut ids: Vec<_> = RULES.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n);
        assert!(RULES.iter().all(|r| (1..=4).contains(&r.paranoia) && r.score > 0));
        assert!(rule("sqli-union").is_some());
        assert!(rule("sqli-unoin").is_none());
    }
}
