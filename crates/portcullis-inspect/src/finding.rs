//! What a scan reports: attack classes, locations, findings and the verdict.

use std::fmt;

/// The family an attack belongs to.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttackClass {
    /// SQL injection.
    Sqli,
    /// Cross-site scripting (HTML and JavaScript injection).
    Xss,
    /// OS command injection, server-side includes and shellshock.
    CommandInjection,
    /// Server-side code injection (PHP/ASP calls, unsafe deserialisation tags).
    CodeInjection,
    /// Path traversal and local file inclusion.
    PathTraversal,
    /// NoSQL (MongoDB) operator and JavaScript injection.
    NoSqlInjection,
    /// Server-side template injection.
    Ssti,
    /// LDAP filter injection.
    LdapInjection,
    /// XPath injection.
    XpathInjection,
    /// XML external entities and entity expansion.
    Xxe,
    /// CR/LF injection into headers, mail or IMAP commands.
    CrlfInjection,
    /// Log4Shell-style `${jndi:…}` lookups.
    Log4Shell,
    /// `__proto__` / `constructor.prototype` keys.
    PrototypePollution,
    /// Known scanners, attack tools and out-of-band callback hosts.
    Scanner,
    /// GraphQL schema introspection.
    GraphqlIntrospection,
    /// Encoding tricks used to hide a payload (double URL encoding, overlong UTF-8, UTF-7).
    Evasion,
}

impl AttackClass {
    /// Every class, in a stable order.
    pub const ALL: [Self; 16] = [
        Self::Sqli,
        Self::Xss,
        Self::CommandInjection,
        Self::CodeInjection,
        Self::PathTraversal,
        Self::NoSqlInjection,
        Self::Ssti,
        Self::LdapInjection,
        Self::XpathInjection,
        Self::Xxe,
        Self::CrlfInjection,
        Self::Log4Shell,
        Self::PrototypePollution,
        Self::Scanner,
        Self::GraphqlIntrospection,
        Self::Evasion,
    ];

    /// Short stable identifier (also accepted in exclusions to exclude a whole class).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sqli => "sqli",
            Self::Xss => "xss",
            Self::CommandInjection => "cmdi",
            Self::CodeInjection => "code",
            Self::PathTraversal => "traversal",
            Self::NoSqlInjection => "nosql",
            Self::Ssti => "ssti",
            Self::LdapInjection => "ldap",
            Self::XpathInjection => "xpath",
            Self::Xxe => "xxe",
            Self::CrlfInjection => "crlf",
            Self::Log4Shell => "log4shell",
            Self::PrototypePollution => "proto",
            Self::Scanner => "scanner",
            Self::GraphqlIntrospection => "graphql",
            Self::Evasion => "evasion",
        }
    }
}

impl fmt::Display for AttackClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in the request a finding was made.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// Path segment, 0-based.
    Path(usize),
    /// Query parameter (by name).
    Query(String),
    /// Request header (lower-case name).
    Header(String),
    /// Cookie (by name).
    Cookie(String),
    /// JSON body leaf or key (RFC 6901 pointer), XML element path, or `""` for a whole text body.
    Body(String),
    /// `application/x-www-form-urlencoded` field.
    Form(String),
    /// `multipart/form-data` part (by name).
    Multipart(String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(i) => write!(f, "path[{i}]"),
            Self::Query(n) => write!(f, "query:{}", Redacted(n)),
            Self::Header(n) => write!(f, "header:{}", Redacted(n)),
            Self::Cookie(n) => write!(f, "cookie:{}", Redacted(n)),
            Self::Body(p) => write!(f, "body:{}", Redacted(p)),
            Self::Form(n) => write!(f, "form:{}", Redacted(n)),
            Self::Multipart(n) => write!(f, "multipart:{}", Redacted(n)),
        }
    }
}

/// Prints at most 64 characters of a name, replacing control characters: names come from the
/// attacker too (a payload can sit in a parameter name).
struct Redacted<'a>(&'a str);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.chars().enumerate() {
            if i >= 64 {
                return f.write_str("…");
            }
            if c.is_control() {
                f.write_str("?")?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// One detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Attack family.
    pub class: AttackClass,
    /// Stable rule identifier (see [`crate::rules::RULES`]).
    pub rule_id: &'static str,
    /// Where it was found.
    pub location: Location,
    /// Anomaly score this finding contributes.
    pub score: u32,
}

impl fmt::Display for Finding {
    /// Never prints the payload: class, rule, location and score only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}) at {} score {}", self.class, self.rule_id, self.location, self.score)
    }
}

/// The decision for a request.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Below the threshold.
    Allow,
    /// At or above the threshold in block mode: deny the request.
    Block,
    /// At or above the threshold in monitor mode: let it through, record it.
    MonitorFlagged,
}

/// Result of scanning one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Every finding that survived paranoia filtering and exclusions (bounded).
    pub findings: Vec<Finding>,
    /// Sum of the findings' scores.
    pub score: u32,
    /// What the route's policy says to do.
    pub verdict: Verdict,
    /// Whether some input was not scanned (body past the cap or caller-truncated, too many fields).
    pub incomplete: bool,
}
