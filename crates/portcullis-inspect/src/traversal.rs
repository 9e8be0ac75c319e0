//! Path traversal and local file inclusion.
//!
//! Counts `..` segments the way a file system resolves them (`/` or `\` separators, after the
//! normaliser has folded `%2e`, overlong `%c0%ae` and friends), and recognises well-known
//! sensitive files, stream wrappers (`file://`, `php://filter`) and UNC admin shares.

const SENSITIVE: &[&str] = &[
    "etc/passwd",
    "etc/shadow",
    "etc/group",
    "etc/hosts",
    "etc/issue",
    "etc/motd",
    "etc/sudoers",
    "etc/crontab",
    "proc/self/",
    "proc/version",
    "proc/cmdline",
    "boot.ini",
    "win.ini",
    "system.ini",
    "windows/system32",
    "winnt/system32",
    "web-inf/web.xml",
    "meta-inf/manifest",
    ".htaccess",
    ".htpasswd",
    ".ssh/id_rsa",
    ".ssh/authorized_keys",
    ".bash_history",
    ".aws/credentials",
    ".git/config",
    ".env",
    "ntuser.dat",
    "sam",
    "var/log/",
    "wp-config.php",
    "etc/mysql/",
    "etc/nginx/",
    "etc/apache2/",
    "etc/httpd/",
];

const WRAPPERS: &[&str] = &[
    "file:/",
    "php://",
    "phar://",
    "zip://",
    "expect://",
    "data://",
    "glob://",
    "netdoc:",
    "jar:file",
    "zlib:",
    "compress.zlib://",
    "gopher://",
    "dict://",
];

/// Keys whose absence rules out every traversal rule but the UNC one: `..`, the wrappers, and the
/// last component of each sensitive file.
static PREFILTER: std::sync::LazyLock<Option<aho_corasick::AhoCorasick>> = std::sync::LazyLock::new(|| {
    let pats: Vec<&str> = SENSITIVE
        .iter()
        .map(|f| f.trim_end_matches('/').rsplit('/').next().unwrap_or(f))
        .chain(WRAPPERS.iter().copied())
        .chain([".."])
        .filter(|p| p.len() >= 2)
        .collect();
    aho_corasick::AhoCorasickBuilder::new().ascii_case_insensitive(true).build(pats).ok()
});

/// Number of `..` path segments in `s` (a segment of two or more dots between separators; `....//`
/// survives filters that strip `../` once).
#[must_use]
pub fn dotdot_segments(s: &str) -> usize {
    if !s.contains("..") {
        return 0;
    }
    let segs: Vec<&str> = s.split(['/', '\\']).take(4096).collect();
    if segs.len() < 2 {
        return 0;
    }
    segs.iter()
        .filter(|seg| {
            let t = seg.trim_end_matches([';', '\0']).trim_start_matches(|c: char| c == '=' || c.is_whitespace());
            t.len() >= 2 && t.bytes().all(|c| c == b'.')
        })
        .count()
}

/// Traversal or inclusion in `s`.
#[must_use]
pub fn detect(s: &str) -> Option<&'static str> {
    let b = s.as_bytes();
    let has_sep = memchr::memchr2(b'/', b'\\', b).is_some();
    let has_colon = memchr::memchr(b':', b).is_some();
    if !has_sep && !has_colon {
        return None;
    }
    // One case-insensitive pass decides whether any rule can match at all (a UNC path is
    // recognised by its start).
    let unc = s.starts_with("//") || s.starts_with("\\\\");
    if !unc && !PREFILTER.as_ref().is_some_and(|ac| ac.is_match(s)) {
        return None;
    }
    let l: String = s.chars().take(8192).map(|c| if c == '\\' { '/' } else { c.to_ascii_lowercase() }).collect();
    let dd = dotdot_segments(s);
    if has_colon && WRAPPERS.iter().any(|w| l.contains(w)) {
        // `file:/` etc. only as a scheme at a word start, not "profile:/x".
        let at_start = WRAPPERS
            .iter()
            .any(|w| l.match_indices(w).any(|(i, _)| i == 0 || !l.as_bytes()[i - 1].is_ascii_alphanumeric()));
        if at_start {
            return Some("lfi-wrapper");
        }
    }
    if l.starts_with("//") && (l.contains("/c$") || l.contains("/admin$") || l.contains("/ipc$")) {
        return Some("lfi-unc");
    }
    let sensitive = SENSITIVE.iter().any(|f| {
        l.match_indices(f).any(|(i, _)| {
            let before = if i == 0 { b'/' } else { l.as_bytes()[i - 1] };
            let after = l.as_bytes().get(i + f.len()).copied();
            let whole = f.ends_with('/') || after.is_none_or(|c| !c.is_ascii_alphanumeric());
            // Must sit on a path: preceded by a separator (or be the whole value's start path).
            (before == b'/' || (i == 0 && f.contains('/'))) && whole
        })
    });
    if sensitive && (dd > 0 || l.starts_with('/') || l.starts_with("c:") || l.contains("file:")) {
        return Some("lfi-sensitive-file");
    }
    if dd >= 2 || (dd == 1 && sensitive) {
        return Some("traversal-dotdot");
    }
    if dd == 1 {
        return Some("traversal-dotdot-single");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attacks() {
        for a in [
            "../../../../etc/hosts",
            "..\\..\\boot.ini",
            "/var/www/../../etc/shadow",
            "file:///etc/issue",
            "php://filter/convert.base64-encode/resource=index",
            "\\\\127.0.0.1\\c$\\windows",
            "/proc/self/environ",
            "....//....//x",
        ] {
            assert!(detect(a).is_some_and(|r| r != "traversal-dotdot-single"), "missed {a:?}: {:?}", detect(a));
        }
    }

    #[test]
    fn benign() {
        for b in [
            "https://example.com/a/b.png",
            "see docs/setup.md",
            "v1.2..3",
            "Wait... what?",
            "profile:/home",
            "/home/user/.envelope",
            "the passwd command",
            "2024/05/01",
        ] {
            assert!(detect(b).is_none(), "false positive {b:?}: {:?}", detect(b));
        }
        assert_eq!(detect("../images/logo.png"), Some("traversal-dotdot-single"));
    }
}
