//! CR/LF injection: a line break followed by what a downstream protocol would read as a new
//! header (HTTP response splitting, mail headers) or a new command (SMTP, IMAP, POP3).
//!
//! Characters whose low byte is CR or LF (`U+560D` "嘍", `U+010A`) count as line breaks: some
//! servers truncate them to one byte when writing a header.

use crate::re::lazy_re;

lazy_re!(
    HEADER,
    r"(?i)^[ \t]*(?:set-cookie|location|content-type|content-length|content-disposition|transfer-encoding|refresh|access-control-allow-[\w-]+|x-[\w-]+|host|cookie|authorization|cache-control|link|bcc|cc|to|from|subject|reply-to|http/\d)[ \t]*:"
);
lazy_re!(
    MAIL,
    r"(?i)^[ \t]*(?:(?:rcpt\s+to|mail\s+from)\s*:|(?:data|quit|rset|noop|helo|ehlo|vrfy|expn|auth|starttls|stat|retr|dele|list|uidl)\b(?:\s|$)|[a-z]?\d{1,6}\s+(?:capability|login|logout|select|examine|fetch|store|copy|uid|list|lsub|status|append|search|create|delete|rename|noop|authenticate|starttls)\b)"
);

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n') || (c as u32 > 0x7f && matches!(c as u32 & 0xff, 0x0a | 0x0d))
}

/// CR/LF injection in `s`. `strict` (path segments and headers, where a line break is never
/// legitimate) also reports a bare line break at paranoia 3.
#[must_use]
pub fn detect(s: &str, strict: bool) -> Option<&'static str> {
    let ascii_break = memchr::memchr2(b'\r', b'\n', s.as_bytes()).is_some();
    if !ascii_break && s.is_ascii() {
        return None;
    }
    let mut found_break = false;
    let mut lines = 0;
    let mut prev_break = false;
    for (i, c) in s.char_indices() {
        let brk = is_break(c);
        // Only the first break of a run is examined (the rest of the run is trimmed once).
        let first_of_run = brk && !prev_break;
        prev_break = brk;
        if !first_of_run {
            continue;
        }
        found_break = true;
        lines += 1;
        if lines > 1024 {
            break;
        }
        let rest = &s[i + c.len_utf8()..];
        let rest = rest.trim_start_matches(is_break);
        if HEADER.is_match(rest) {
            return Some("crlf-header");
        }
        if MAIL.is_match(rest) {
            return Some("crlf-mail");
        }
    }
    (strict && found_break).then_some("crlf-any")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        assert!(HEADER.compiled() && MAIL.compiled());
    }

    #[test]
    fn attacks() {
        for a in [
            "x\r\nSet-Cookie: a=b",
            "en\nLocation: http://evil.test",
            "\r\nRCPT TO: <a@b.test>",
            "\nA1 FETCH 1:* (BODY[])",
            "q\r\nQUIT\r\n",
            "a\u{560d}\u{560a}Set-Cookie: x=y",
        ] {
            assert!(detect(a, false).is_some(), "missed {a:?}");
        }
    }

    #[test]
    fn benign() {
        for b in ["line one\nline two", "Dear team,\n\nThanks!\nBob", "Steps:\n1. open\n2. close", "no breaks here"] {
            assert!(detect(b, false).is_none(), "false positive {b:?}");
        }
        assert_eq!(detect("a\nb", true), Some("crlf-any"));
    }
}
