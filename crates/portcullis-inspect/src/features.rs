//! One pass over a value's bytes to learn which characters it contains, so that detectors whose
//! grammar needs a character the value lacks are not run at all. This is what keeps benign JSON
//! fast: most leaves (names, e-mails, dates, ids) trip one or two detectors at most.

/// `'`, `"`, `` ` ``.
pub(crate) const QUOTE: u32 = 1;
/// `<`.
pub(crate) const LT: u32 = 1 << 1;
/// `>`.
pub(crate) const GT: u32 = 1 << 2;
/// `;`.
pub(crate) const SEMI: u32 = 1 << 3;
/// `|`.
pub(crate) const PIPE: u32 = 1 << 4;
/// `&`.
pub(crate) const AMP: u32 = 1 << 5;
/// CR or LF.
pub(crate) const NL: u32 = 1 << 6;
/// `` ` ``.
pub(crate) const BACKTICK: u32 = 1 << 7;
/// `(` or `)`.
pub(crate) const PAREN: u32 = 1 << 8;
/// `$`.
pub(crate) const DOLLAR: u32 = 1 << 9;
/// `{` or `}`.
pub(crate) const BRACE: u32 = 1 << 10;
/// `#`.
pub(crate) const HASH: u32 = 1 << 11;
/// `%`.
pub(crate) const PCT: u32 = 1 << 12;
/// `\`.
pub(crate) const BSLASH: u32 = 1 << 13;
/// `/`.
pub(crate) const SLASH: u32 = 1 << 14;
/// `=`.
pub(crate) const EQ: u32 = 1 << 15;
/// `:`.
pub(crate) const COLON: u32 = 1 << 16;
/// `*`.
pub(crate) const STAR: u32 = 1 << 17;
/// `@`.
pub(crate) const AT: u32 = 1 << 18;
/// `.`.
pub(crate) const DOT: u32 = 1 << 19;
/// `[` or `]`.
pub(crate) const BRACKET: u32 = 1 << 20;
/// A byte ≥ 0x80.
pub(crate) const NONASCII: u32 = 1 << 21;
/// NUL or another control character other than tab, CR, LF.
pub(crate) const CTRL: u32 = 1 << 22;
/// `0`–`9`.
pub(crate) const DIGIT: u32 = 1 << 23;
/// `-`.
pub(crate) const MINUS: u32 = 1 << 24;
/// `+`.
pub(crate) const PLUS: u32 = 1 << 25;
/// `!`, `~`, `^`, `?`.
pub(crate) const OTHER_OP: u32 = 1 << 26;
/// `_`.
pub(crate) const UNDERSCORE: u32 = 1 << 27;
/// A space or tab.
pub(crate) const SPACE: u32 = 1 << 28;
/// `,`.
pub(crate) const COMMA: u32 = 1 << 29;

const fn class(b: u8) -> u32 {
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
        b',' => COMMA,
        0x80..=0xFF => NONASCII,
        0..=0x1F | 0x7F => CTRL,
        _ => 0,
    }
}

static TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = class(i as u8);
        i += 1;
    }
    t
};

/// The character classes present in `s`.
pub(crate) fn of(s: &str) -> u32 {
    s.as_bytes().iter().fold(0, |acc, b| acc | TABLE[*b as usize])
}

/// Characters SQL injection grammar needs beyond words and spaces.
pub(crate) const SQLI: u32 =
    QUOTE | PAREN | SEMI | HASH | EQ | LT | GT | AT | PIPE | AMP | STAR | OTHER_OP | MINUS | DIGIT | SLASH | PCT | PLUS;
