//! Known scanners and attack tools (User-Agent), out-of-band interaction hosts (anywhere), and
//! GraphQL introspection.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

const TOOLS: &[&str] = &[
    "sqlmap",
    "nikto",
    "nuclei",
    "nmap scripting engine",
    "nmap",
    "masscan",
    "zgrab",
    "fuzz faster u fool",
    "ffuf",
    "gobuster",
    "dirbuster",
    "dirb/",
    "wfuzz",
    "feroxbuster",
    "acunetix",
    "netsparker",
    "nessus",
    ".nasl",
    "openvas",
    "w3af",
    "arachni",
    "havij",
    "appscan",
    "webinspect",
    "burp suite",
    "burpsuite",
    "zap/",
    "owasp zap",
    "wpscan",
    "joomscan",
    "commix",
    "xsstrike",
    "jaeles",
    "whatweb",
    "skipfish",
    "paros",
    "grabber",
    "morfeus",
    "zmeu",
    "hydra",
    "medusa",
    "brutus",
    "bbqsql",
    "jorgee",
    "sqlninja",
    "pangolin",
    "detectify",
    "qualys",
    "tsunami",
    "gotestwaf",
    "winrm client",
    "dotdotpwn",
    "fimap",
    "xspider",
    "nsauditor",
    "httprint",
    "wapiti",
    "vega/",
    "crowdstrike",
    "censysinspect",
    "interactsh",
];

/// Out-of-band (blind) interaction domains: a request that names one is a probe.
const OAST: &[&str] = &[
    "burpcollaborator.net",
    "oastify.com",
    "oast.me",
    "oast.pro",
    "oast.live",
    "oast.site",
    "oast.online",
    "oast.fun",
    "interact.sh",
    "interactsh.com",
    "dnslog.cn",
    "ceye.io",
    "requestbin.net",
    "canarytokens.com",
    "xss.ht",
    "bxss.me",
    "pipedream.net",
    "dnslog.link",
];

static TOOLS_AC: LazyLock<Option<AhoCorasick>> = LazyLock::new(|| {
    AhoCorasickBuilder::new().ascii_case_insensitive(true).match_kind(MatchKind::LeftmostFirst).build(TOOLS).ok()
});
static OAST_AC: LazyLock<Option<AhoCorasick>> =
    LazyLock::new(|| AhoCorasickBuilder::new().ascii_case_insensitive(true).build(OAST).ok());

/// A scanner or attack tool in a User-Agent.
#[must_use]
pub fn user_agent(ua: &str) -> Option<&'static str> {
    if TOOLS_AC.as_ref().is_some_and(|ac| ac.is_match(ua)) {
        return Some("scanner-ua");
    }
    oast(ua)
}

/// An out-of-band interaction host anywhere in a value.
#[must_use]
pub fn oast(s: &str) -> Option<&'static str> {
    // Cheap gate: some label right after a dot must start like one of the known services.
    let b = s.as_bytes();
    let maybe = crate::features::any_at(b, b'.', |p| {
        let l = b.get(p + 1..).unwrap_or(&[]);
        l.len() >= 2
            && matches!(
                [l[0].to_ascii_lowercase(), l[1].to_ascii_lowercase()],
                [b'o', b'a']
                    | [b'b', b'u']
                    | [b'i', b'n']
                    | [b'd', b'n']
                    | [b'c', b'e']
                    | [b'r', b'e']
                    | [b'c', b'a']
                    | [b'x', b's']
                    | [b'b', b'x']
                    | [b'p', b'i']
                    | [b's', b'h']
            )
    });
    (maybe && OAST_AC.as_ref().is_some_and(|ac| ac.is_match(s))).then_some("scanner-oast")
}

/// GraphQL introspection (`__schema`, `__type(`) in a query.
#[must_use]
pub fn graphql_introspection(s: &str) -> Option<&'static str> {
    let b = s.as_bytes();
    if !b.windows(2).any(|w| w == b"__") {
        return None;
    }
    let hit = memchr::memmem::find(b, b"__schema").is_some_and(|p| {
        let after = b.get(p + 8).copied();
        after.is_none_or(|c| !c.is_ascii_alphanumeric() && c != b'_') && s.contains('{')
    }) || memchr::memmem::find(b, b"__type").is_some_and(|p| s[p + 6..].trim_start().starts_with('('))
        && s.contains('{');
    hit.then_some("graphql-introspection")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanners() {
        assert!(TOOLS_AC.is_some() && OAST_AC.is_some());
        assert!(user_agent("sqlmap/1.8#stable (https://sqlmap.org)").is_some());
        assert!(user_agent("Mozilla/5.0 (compatible; Nmap Scripting Engine)").is_some());
        assert!(oast("http://abc.oastify.com/x").is_some());
        assert!(user_agent("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36").is_none());
        assert!(user_agent("curl/8.5.0").is_none());
        assert!(graphql_introspection("query { __schema { types { name } } }").is_some());
        assert!(graphql_introspection("query { user(id: 1) { name __typename } }").is_none());
    }
}
