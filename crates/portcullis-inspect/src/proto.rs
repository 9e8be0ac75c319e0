//! Prototype pollution: `__proto__` or `constructor` → `prototype` as an object key or in a
//! parameter name (`a[__proto__][admin]=1`, `constructor.prototype.x`).

/// Whether a JSON key path segment or a parameter name pollutes a prototype. `parent` is the
/// previous key (for `constructor` → `prototype`).
#[must_use]
pub fn key(name: &str, parent: Option<&str>) -> bool {
    if name == "__proto__" || (name == "prototype" && parent == Some("constructor")) {
        return true;
    }
    // Every other form holds `__proto__` or `prototype` (9 bytes).
    if name.len() < 9 {
        return false;
    }
    let b = name.as_bytes();
    let has = |n: &[u8]| b.windows(n.len()).any(|w| w == n);
    // Bracketed or dotted parameter names: `a[__proto__]`, `constructor[prototype]`, `a.__proto__.b`.
    if has(b"__proto__") {
        return name.split(['[', ']', '.']).any(|p| p == "__proto__");
    }
    if has(b"prototype") && has(b"constructor") {
        let parts: Vec<&str> = name.split(['[', ']', '.']).filter(|p| !p.is_empty()).take(256).collect();
        return parts.windows(2).any(|w| w[0] == "constructor" && w[1] == "prototype");
    }
    false
}

/// `__proto__` in a value (weak: PL2).
#[must_use]
pub fn detect(s: &str) -> Option<&'static str> {
    let b = s.as_bytes();
    // Bytewise on `p` first: cheaper than comparing every 5-byte window.
    if !b.iter().enumerate().any(|(i, &c)| c == b'p' && b[i..].starts_with(b"proto")) {
        return None;
    }
    (memchr::memmem::find(s.as_bytes(), b"__proto__").is_some()
        || s.contains("constructor.prototype")
        || s.contains("constructor[prototype]")
        || s.contains("constructor[\"prototype\"]"))
    .then_some("proto-text")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(key("__proto__", None));
        assert!(key("prototype", Some("constructor")));
        assert!(key("a[__proto__][isAdmin]", None));
        assert!(key("constructor[prototype][x]", None));
        assert!(!key("prototype", Some("design")));
        assert!(!key("my__proto__field", None));
        assert!(!key("constructor", None));
    }
}
