//! One pass over a value's bytes to learn which characters it contains, so that detectors whose
//! grammar needs a character the value lacks are not run at all. This is what keeps benign JSON
//! fast: most leaves (names, e-mails, dates, ids) trip one or two detectors at most.

/// `'`, `"`, `` ` ``.
pub(crate) const QUOTE: u64 = 1;
/// `<`.
pub(crate) const LT: u64 = 1 << 1;
/// `>`.
pub(crate) const GT: u64 = 1 << 2;
/// `;`.
pub(crate) const SEMI: u64 = 1 << 3;
/// `|`.
pub(crate) const PIPE: u64 = 1 << 4;
/// `&`.
pub(crate) const AMP: u64 = 1 << 5;
/// CR or LF.
pub(crate) const NL: u64 = 1 << 6;
/// `` ` ``.
pub(crate) const BACKTICK: u64 = 1 << 7;
/// `(` or `)`.
pub(crate) const PAREN: u64 = 1 << 8;
/// `$`.
pub(crate) const DOLLAR: u64 = 1 << 9;
/// `{` or `}`.
pub(crate) const BRACE: u64 = 1 << 10;
/// `#`.
pub(crate) const HASH: u64 = 1 << 11;
/// `%`.
pub(crate) const PCT: u64 = 1 << 12;
/// `\`.
pub(crate) const BSLASH: u64 = 1 << 13;
/// `/`.
pub(crate) const SLASH: u64 = 1 << 14;
/// `=`.
pub(crate) const EQ: u64 = 1 << 15;
/// `:`.
pub(crate) const COLON: u64 = 1 << 16;
/// `*`.
pub(crate) const STAR: u64 = 1 << 17;
/// `@`.
pub(crate) const AT: u64 = 1 << 18;
/// `.`.
pub(crate) const DOT: u64 = 1 << 19;
/// `[` or `]`.
pub(crate) const BRACKET: u64 = 1 << 20;
/// A byte ≥ 0x80.
pub(crate) const NONASCII: u64 = 1 << 21;
/// NUL or another control character other than tab, CR, LF.
pub(crate) const CTRL: u64 = 1 << 22;
/// `0`–`9`.
pub(crate) const DIGIT: u64 = 1 << 23;
/// `-`.
pub(crate) const MINUS: u64 = 1 << 24;
/// `+`.
pub(crate) const PLUS: u64 = 1 << 25;
/// `!`, `~`, `^`, `?`.
pub(crate) const OTHER_OP: u64 = 1 << 26;
/// `_`.
pub(crate) const UNDERSCORE: u64 = 1 << 27;
/// A space or tab.
pub(crate) const SPACE: u64 = 1 << 28;
/// `,`.
pub(crate) const COMMA: u64 = 1 << 29;

const fn class(b: u8) -> u64 {
    match b {
        b'\'' | b'"' => QUOTE,
        b'`' => QUOTE | BACKTICK,
        b'<' => LT,
        b'>' => GT,
        b';' => SEMI,
        b'|' => PIPE,
        b'&' => AMP,
        b'\r' | b'\n' => NL,
        b'(' | b')' => PAREN,
        b'$' => DOLLAR,
        b'{' | b'}' => BRACE,
        b'#' => HASH,
        b'%' => PCT,
        b'\\' => BSLASH,
        b'/' => SLASH,
        b'=' => EQ,
        b':' => COLON,
        b'*' => STAR,
        b'@' => AT,
        b'.' => DOT,
        b'[' | b']' => BRACKET,
        b'0'..=b'9' => DIGIT,
        b'-' => MINUS,
        b'+' => PLUS,
        b'!' | b'~' | b'^' | b'?' => OTHER_OP,
        b'_' => UNDERSCORE,
        b' ' | b'\t' => SPACE,
        b'A'..=b'Z' => UPPER,
        b'a'..=b'z' => LOWER,
        b',' => COMMA,
        0x80..=0xFF => NONASCII,
        0..=0x1F | 0x7F => CTRL,
    }
}

static TABLE: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let b64 = b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'=' | b' ');
        t[i] = class(b) | if b64 { 0 } else { NOT_B64 };
        i += 1;
    }
    t
};

/// `A`–`Z`.
pub(crate) const UPPER: u64 = 1 << 30;
/// `a`–`z`.
pub(crate) const LOWER: u64 = 1 << 31;
/// A byte outside the base64 alphabet (and space).
pub(crate) const NOT_B64: u64 = 1 << 32;
/// `--`.
pub(crate) const DASHDASH: u64 = 1 << 33;
/// `/*`.
pub(crate) const SLASHSTAR: u64 = 1 << 34;
/// `@@`.
pub(crate) const ATAT: u64 = 1 << 35;
/// `&&` or `||`.
pub(crate) const LOGIC2: u64 = 1 << 36;
/// `${`.
pub(crate) const DOLLARBRACE: u64 = 1 << 37;
/// `!` then a letter or `!`.
pub(crate) const BANGWORD: u64 = 1 << 38;
/// `<?` or `<!` or `<%` or `<#`.
pub(crate) const LTSPECIAL: u64 = 1 << 39;
/// `::`.
pub(crate) const COLONCOLON: u64 = 1 << 40;
/// `//`.
pub(crate) const SLASHSLASH: u64 = 1 << 41;
/// `..`.
pub(crate) const DOTDOT: u64 = 1 << 42;
/// A letter then `:` (URI scheme, drive letter).
pub(crate) const SCHEME: u64 = 1 << 43;
/// `__`.
pub(crate) const UNDERUNDER: u64 = 1 << 44;
/// `)(`, `(|`, `(&`, `(!`, `*)`: LDAP filter joints.
pub(crate) const FILTER: u64 = 1 << 45;
/// `:=`.
pub(crate) const COLONEQ: u64 = 1 << 46;

/// `{{`, `{%`, `{#`, `#{`, `*{`, `@{` (and `{?`, `?{`, `%{`, `{%`: same ids): template openers.
pub(crate) const TEMPLATE_OPEN: u64 = 1 << 47;
/// `#`, `?` or `%` then a letter (`#set`, `?new`).
pub(crate) const HASHWORD: u64 = 1 << 48;
/// `{` then a letter (`{php}`).
pub(crate) const BRACEWORD: u64 = 1 << 49;
/// A letter, `.` or `)` right before `(`: a call (`alert(`, `?.(`, `(alert)(`).
pub(crate) const CALLPAREN: u64 = 1 << 50;
/// `$(`.
pub(crate) const DOLLARPAREN: u64 = 1 << 51;
/// `()`.
pub(crate) const EMPTYPAREN: u64 = 1 << 52;

/// Small ids for the bytes that take part in a two-byte feature (0: none).
const fn pair_id(b: u8) -> u8 {
    match b {
        b'-' => 1,
        b'/' => 2,
        b'@' => 3,
        b'&' => 4,
        b'|' => 5,
        b'$' => 6,
        b'!' => 7,
        b'<' => 8,
        b':' => 9,
        b'.' => 10,
        b'_' => 11,
        b')' => 12,
        b'(' => 13,
        b'*' => 14,
        b'{' => 15,
        b'?' | b'%' | b'#' => 16,
        b'=' => 17,
        b'a'..=b'z' => 18,
        b'A'..=b'Z' => 19,
        _ => 0,
    }
}

const PAIR_IDS: usize = 20;

const fn pair_feature(a: u8, b: u8) -> u64 {
    let mut f = match (a, b) {
        (1, 1) => DASHDASH,
        (2, 14) => SLASHSTAR,
        (3, 3) => ATAT,
        (4, 4) | (5, 5) => LOGIC2,
        (6, 15) => DOLLARBRACE,
        (7, 7 | 18 | 19) => BANGWORD,
        (8, 16 | 7) => LTSPECIAL,
        (9, 9) => COLONCOLON,
        (2, 2) => SLASHSLASH,
        (10, 10) => DOTDOT,
        (18 | 19, 9) => SCHEME,
        (11, 11) => UNDERUNDER,
        (12, 13) | (13, 5 | 4 | 7) | (14, 12) => FILTER,
        (9, 17) => COLONEQ,
        (6, 13) => DOLLARPAREN,
        (13, 12) => EMPTYPAREN,
        _ => 0,
    };
    if matches!((a, b), (15, 15 | 16) | (16 | 14 | 3, 15)) {
        f |= TEMPLATE_OPEN;
    }
    if matches!((a, b), (16, 18 | 19)) {
        f |= HASHWORD;
    }
    if matches!((a, b), (15, 18 | 19)) {
        f |= BRACEWORD;
    }
    if matches!((a, b), (18 | 19 | 10 | 12, 13)) {
        f |= CALLPAREN;
    }
    f
}

static PAIR_ID: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = pair_id(i as u8);
        i += 1;
    }
    t
};

static PAIR: [[u64; PAIR_IDS]; PAIR_IDS] = {
    let mut t = [[0u64; PAIR_IDS]; PAIR_IDS];
    let mut a = 0;
    while a < PAIR_IDS {
        let mut b = 0;
        while b < PAIR_IDS {
            t[a][b] = pair_feature(a as u8, b as u8);
            b += 1;
        }
        a += 1;
    }
    t
};

/// The character classes and the few two-byte sequences present in `s`, in one branch-free pass
/// (three table loads per byte).
pub(crate) fn of(s: &str) -> u64 {
    let mut acc = 0u64;
    let mut prev = 0usize;
    for &b in s.as_bytes() {
        let id = PAIR_ID[b as usize] as usize;
        acc |= TABLE[b as usize] | PAIR[prev][id];
        prev = id;
    }
    acc
}

/// Whether `f` holds at some position of `c` in `b` (the first 4096 of them): a plain loop for
/// short values (most API values), where memchr's set-up per call costs more than the search, and
/// memchr for long ones.
pub(crate) fn any_at(b: &[u8], c: u8, mut f: impl FnMut(usize) -> bool) -> bool {
    if b.len() <= 16 {
        return b.iter().enumerate().any(|(i, x)| *x == c && f(i));
    }
    memchr::memchr_iter(c, b).take(4096).any(f)
}

/// Whether some `at` byte in `b` follows one of `words` (lower-case ASCII, any case in `b`), with
/// blanks allowed between (as a pattern's `\s*` allows). For the few gates that need a word on
/// top of the character classes.
pub(crate) fn word_before(b: &[u8], at: u8, words: &[&[u8]]) -> bool {
    any_at(b, at, |p| {
        let before = b[..p].trim_ascii_end();
        words.iter().any(|w| before.len() >= w.len() && before[before.len() - w.len()..].eq_ignore_ascii_case(w))
    })
}

/// Whether some `at` byte in `b` is followed, after blanks, by one of `words` (lower-case ASCII).
pub(crate) fn word_after(b: &[u8], at: u8, words: &[&[u8]]) -> bool {
    any_at(b, at, |p| {
        let after = b[p + 1..].trim_ascii_start();
        words.iter().any(|w| after.len() >= w.len() && after[..w.len()].eq_ignore_ascii_case(w))
    })
}

/// Characters SQL injection grammar needs beyond words and spaces.
pub(crate) const SQLI: u64 = QUOTE | SEMI | PAREN | HASH | DASHDASH | SLASHSTAR | ATAT | LOGIC2;

#[cfg(test)]
mod tests {
    use super::*;

    /// [`any_at`] visits what memchr finds, on both sides of its short/long cut.
    #[test]
    fn any_at_matches_memchr() {
        for len in [0, 1, 15, 16, 17, 200] {
            let b: Vec<u8> = (0..len).map(|i| if i % 7 == 3 || i == len - 1 { b'.' } else { b'a' }).collect();
            let want: Vec<usize> = memchr::memchr_iter(b'.', &b).collect();
            let mut got = Vec::new();
            assert!(!any_at(&b, b'.', |p| {
                got.push(p);
                false
            }));
            assert_eq!(got, want, "len {len}");
            assert_eq!(any_at(&b, b'.', |_| true), !want.is_empty());
        }
    }

    /// The table-driven pass agrees with the obvious definition.
    #[test]
    fn pairs_match_reference() {
        let cases: &[(&str, u64)] = &[
            ("a--b", DASHDASH),
            ("/*x", SLASHSTAR),
            ("@@v", ATAT),
            ("a&&b", LOGIC2),
            ("a||b", LOGIC2),
            ("${x}", DOLLARBRACE),
            ("!!py", BANGWORD),
            ("!ruby", BANGWORD),
            ("<?php", LTSPECIAL),
            ("<!--", LTSPECIAL),
            ("a::b", COLONCOLON),
            ("//x", SLASHSLASH),
            ("../", DOTDOT),
            ("file:", SCHEME),
            ("__proto__", UNDERUNDER),
            (")(", FILTER),
            ("(|", FILTER),
            ("*)", FILTER),
            ("x:=1", COLONEQ),
            ("{{7}}", TEMPLATE_OPEN),
            ("{% if", TEMPLATE_OPEN),
            ("#{x}", TEMPLATE_OPEN),
            ("*{x}", TEMPLATE_OPEN),
            ("@{x}", TEMPLATE_OPEN),
            ("#set", HASHWORD),
            ("?new", HASHWORD),
            ("{php}", BRACEWORD),
            ("alert(1)", CALLPAREN),
            ("?.(1)", CALLPAREN),
            ("(a)(1)", CALLPAREN),
            ("$(id)", DOLLARPAREN),
            ("() {", EMPTYPAREN),
        ];
        for (s, f) in cases {
            assert_ne!(of(s) & f, 0, "{s}");
        }
        assert_eq!(of("10:05 - 1/2 ! a_b") & (DASHDASH | SCHEME | BANGWORD | UNDERUNDER | SLASHSLASH), 0);
        assert!(word_before(b"x = Date (1)", b'(', &[b"date"]) && !word_before(b"update(1)", b'(', &[b"dat"]));
        assert!(word_after(b"a; return x", b';', &[b"return"]) && !word_after(b"a; ret", b';', &[b"return"]));
        assert_eq!(
            of("Invoice #4411 (paid) costs $1 { ok }")
                & (TEMPLATE_OPEN | HASHWORD | BRACEWORD | CALLPAREN | DOLLARPAREN | EMPTYPAREN),
            0
        );
    }
}
