//! Every other detector of `portcullis-inspect` on arbitrary text: command and code injection,
//! traversal, NoSQL, SSTI, LDAP, XPath, XXE, CRLF, Log4Shell, prototype pollution, scanners.
//! No panic, and only catalogue rule ids.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_inspect::{cmdi, crlf, ldap, log4shell, nosql, proto, rules, scanner, ssti, traversal, xpath, xxe};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let hits = [
        cmdi::detect(s),
        cmdi::code::detect(s),
        traversal::detect(s),
        nosql::detect(s),
        ssti::detect(s),
        ldap::detect(s),
        xpath::detect(s),
        xxe::detect(s),
        crlf::detect(s, true),
        crlf::detect(s, false),
        log4shell::detect(s),
        proto::detect(s),
        scanner::user_agent(s),
        scanner::oast(s),
        scanner::graphql_introspection(s),
    ];
    for r in hits.into_iter().flatten() {
        assert!(rules::rule(r).is_some(), "{r}");
    }
    let _ = nosql::operator_key(s);
    let _ = proto::key(s, Some("constructor"));
    let d = log4shell::deobfuscate(s);
    assert!(d.len() <= s.len(), "deobfuscation only removes");
});
