//! Decoding layers applied before detection.
//!
//! Every decoder here only ever shrinks its input (an escape is always longer than what it stands
//! for), runs in one pass, and returns `Cow::Borrowed` when there was nothing to decode, so the
//! common benign value costs one scan and no allocation. [`normalize`] stacks them a bounded
//! number of rounds and returns the distinct views a detector should look at.

use std::borrow::Cow;

/// Most decoding rounds applied to one value (URL → entities → escapes, repeated).
pub const MAX_ROUNDS: usize = 3;
/// Most views of one value handed to the detectors.
pub const MAX_VARIANTS: usize = 6;
/// Shortest value considered as a base64 candidate.
pub const MIN_BASE64_LEN: usize = 8;

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s` once (`%XX`, and IIS `%uXXXX`); `+` becomes a space when `plus_as_space`.
/// Invalid escapes stay as they are. Overlong UTF-8 in the decoded bytes is folded to the character
/// it spells (see [`fold_overlong`]); other invalid UTF-8 becomes U+FFFD.
#[must_use]
pub fn url_decode(s: &str, plus_as_space: bool) -> Cow<'_, str> {
    let b = s.as_bytes();
    if !(b.contains(&b'%') || plus_as_space && b.contains(&b'+')) {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            if let (Some(h), Some(l)) = (b.get(i + 1).and_then(|x| hex_val(*x)), b.get(i + 2).and_then(|x| hex_val(*x)))
            {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
            if matches!(b.get(i + 1), Some(b'u' | b'U')) {
                let digits = b.get(i + 2..i + 6).filter(|d| d.iter().all(|x| hex_val(*x).is_some()));
                if let Some(d) = digits {
                    let v = d.iter().fold(0u32, |acc, x| acc << 4 | u32::from(hex_val(*x).unwrap_or(0)));
                    let ch = char::from_u32(v).unwrap_or('\u{FFFD}');
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    i += 6;
                    continue;
                }
            }
            out.push(c);
        } else if c == b'+' && plus_as_space {
            out.push(b' ');
        } else {
            out.push(c);
        }
        i += 1;
    }
    Cow::Owned(fold_overlong(&out).0)
}

/// Turns bytes into a string, folding overlong UTF-8 encodings (`C0 AE` for `.`, `E0 80 AF` for
/// `/`) into the character they spell. The flag says whether any was found: an overlong sequence
/// never occurs in honest traffic. Other invalid sequences become U+FFFD.
#[must_use]
pub fn fold_overlong(b: &[u8]) -> (String, bool) {
    if let Ok(s) = std::str::from_utf8(b) {
        return (s.to_owned(), false);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut found = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let cont = |j: usize| b.get(j).is_some_and(|x| x & 0xC0 == 0x80);
        if (c == 0xC0 || c == 0xC1) && cont(i + 1) {
            out.push(((c & 0x1F) << 6) | (b[i + 1] & 0x3F));
            found = true;
            i += 2;
            continue;
        }
        if c == 0xE0 && b.get(i + 1).is_some_and(|x| (0x80..0xA0).contains(x)) && cont(i + 2) {
            let v = (u32::from(b[i + 1] & 0x3F) << 6) | u32::from(b[i + 2] & 0x3F);
            push_char(&mut out, v);
            found = true;
            i += 3;
            continue;
        }
        if c == 0xF0 && b.get(i + 1).is_some_and(|x| (0x80..0x90).contains(x)) && cont(i + 2) && cont(i + 3) {
            let v = (u32::from(b[i + 1] & 0x3F) << 12) | (u32::from(b[i + 2] & 0x3F) << 6) | u32::from(b[i + 3] & 0x3F);
            push_char(&mut out, v);
            found = true;
            i += 4;
            continue;
        }
        out.push(c);
        i += 1;
    }
    (String::from_utf8_lossy(&out).into_owned(), found)
}

fn push_char(out: &mut Vec<u8>, v: u32) {
    let ch = char::from_u32(v).unwrap_or('\u{FFFD}');
    let mut buf = [0u8; 4];
    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
}

const NAMED_ENTITIES: &[(&str, char)] = &[
    ("lt", '<'),
    ("gt", '>'),
    ("amp", '&'),
    ("quot", '"'),
    ("apos", '\''),
    ("colon", ':'),
    ("lpar", '('),
    ("rpar", ')'),
    ("tab", '\t'),
    ("newline", '\n'),
    ("equals", '='),
    ("sol", '/'),
    ("bsol", '\\'),
    ("lowbar", '_'),
    ("period", '.'),
    ("comma", ','),
    ("semi", ';'),
    ("excl", '!'),
    ("num", '#'),
    ("dollar", '$'),
    ("percnt", '%'),
    ("plus", '+'),
    ("lsqb", '['),
    ("rsqb", ']'),
    ("lbrack", '['),
    ("rbrack", ']'),
    ("lcub", '{'),
    ("rcub", '}'),
    ("lbrace", '{'),
    ("rbrace", '}'),
    ("grave", '`'),
    ("hat", '^'),
    ("ast", '*'),
    ("quest", '?'),
    ("verbar", '|'),
    ("vert", '|'),
    ("nbsp", ' '),
];

/// Decodes HTML character references once: numeric (`&#40;`, `&#x28;`, any number of leading zeros,
/// `;` optional) and the named ones an attacker uses to spell code (`&lt;`, `&colon;`, `&lpar;`,
/// `&Tab;`, … case-insensitive). Unknown references stay as they are.
#[must_use]
pub fn html_decode(s: &str) -> Cow<'_, str> {
    if !s.as_bytes().contains(&b'&') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    // Allocated at the first reference: most `&` in API values are query strings, not entities.
    let mut out = String::new();
    let mut last = 0;
    let mut i = 0;
    while let Some(p) = memchr::memchr(b'&', &b[i..]) {
        i += p;
        if let Some((ch, len)) = entity_at(&b[i..]) {
            if out.capacity() == 0 {
                out.reserve(s.len());
            }
            out.push_str(&s[last..i]);
            out.push(ch);
            i += len;
            last = i;
        } else {
            i += 1;
        }
    }
    if last == 0 {
        return Cow::Borrowed(s);
    }
    out.push_str(&s[last..]);
    Cow::Owned(out)
}

/// The character and byte length of the reference starting at `b[0] == b'&'`.
fn entity_at(b: &[u8]) -> Option<(char, usize)> {
    let mut i = 1;
    if b.get(1) == Some(&b'#') {
        i = 2;
        let hex = matches!(b.get(2), Some(b'x' | b'X'));
        if hex {
            i = 3;
        }
        let start = i;
        let mut v: u32 = 0;
        while let Some(&d) = b.get(i) {
            let dv = if hex { hex_val(d) } else { d.is_ascii_digit().then(|| d - b'0') };
            let Some(dv) = dv else { break };
            v = v.saturating_mul(if hex { 16 } else { 10 }).saturating_add(u32::from(dv));
            i += 1;
        }
        if i == start {
            return None;
        }
        if b.get(i) == Some(&b';') {
            i += 1;
        }
        let ch = char::from_u32(v).filter(|c| *c != '\0').unwrap_or('\u{FFFD}');
        return Some((ch, i));
    }
    while i < b.len() && i <= 10 && b[i].is_ascii_alphabetic() {
        i += 1;
    }
    let name = &b[1..i];
    if name.is_empty() {
        return None;
    }
    let semi = b.get(i) == Some(&b';');
    // Without `;` only the four legacy names count: decide that before searching the table
    // (`?id=1&tab=x` is a query string, not a reference).
    let legacy = || [&b"lt"[..], b"gt", b"amp", b"quot"].iter().any(|l| name.eq_ignore_ascii_case(l));
    if !semi && !legacy() {
        return None;
    }
    let (_, ch) = NAMED_ENTITIES.iter().find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))?;
    Some((*ch, if semi { i + 1 } else { i }))
}

/// Decodes JavaScript / C style escapes once: `\uXXXX`, `\u{X…}`, `\xXX`. Other backslashes stay.
#[must_use]
pub fn js_unescape(s: &str) -> Cow<'_, str> {
    let b = s.as_bytes();
    if !b.contains(&b'\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        let (val, len) = match b.get(i + 1) {
            Some(b'u') if b.get(i + 2) == Some(&b'{') => {
                let mut j = i + 3;
                let mut v: u32 = 0;
                while j < b.len() && j < i + 11 {
                    match hex_val(b[j]) {
                        Some(d) => v = v << 4 | u32::from(d),
                        None => break,
                    }
                    j += 1;
                }
                if j > i + 3 && b.get(j) == Some(&b'}') { (Some(v), j + 1 - i) } else { (None, 0) }
            }
            Some(b'u') => hex_n(b, i + 2, 4).map_or((None, 0), |v| (Some(v), 6)),
            Some(b'x') => hex_n(b, i + 2, 2).map_or((None, 0), |v| (Some(v), 4)),
            _ => (None, 0),
        };
        if let Some(v) = val {
            out.push_str(&s[last..i]);
            out.push(char::from_u32(v).unwrap_or('\u{FFFD}'));
            i += len;
            last = i;
        } else {
            i += 1;
        }
    }
    if last == 0 {
        return Cow::Borrowed(s);
    }
    out.push_str(&s[last..]);
    Cow::Owned(out)
}

fn hex_n(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let d = b.get(at..at + n)?;
    d.iter().try_fold(0u32, |acc, x| hex_val(*x).map(|v| acc << 4 | u32::from(v)))
}

/// Maps full-width ASCII (U+FF01–U+FF5E) to ASCII and drops NUL and other invisible characters
/// (zero-width, BOM, soft hyphen) that browsers and shells skip.
#[must_use]
pub fn fold_unicode(s: &str) -> Cow<'_, str> {
    if !fold_possible(s.as_bytes()) {
        return Cow::Borrowed(s);
    }
    let mut changed = false;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\u{FF01}'..='\u{FF5E}' => {
                out.push(char::from_u32(c as u32 - 0xFEE0).unwrap_or(c));
                changed = true;
            }
            '\0' | '\u{200B}'..='\u{200F}' | '\u{FEFF}' | '\u{00AD}' | '\u{2060}' => changed = true,
            _ => out.push(c),
        }
    }
    if changed { Cow::Owned(out) } else { Cow::Borrowed(s) }
}

/// Whether [`fold_unicode`] changes `b` (UTF-8): a NUL, or the encoding of a fullwidth form
/// (U+FF01–U+FF5E: `EF BC 81`–`EF BD 9E`), a zero-width or direction mark (U+200B–U+200F:
/// `E2 80 8B`–`E2 80 8F`), the word joiner (U+2060: `E2 81 A0`), the BOM (`EF BB BF`) or the soft
/// hyphen (U+00AD: `C2 AD`). Byte tests only, so accented letters and typographic quotes cost a
/// look at their lead byte.
pub(crate) fn fold_possible(b: &[u8]) -> bool {
    // Most values are ASCII without NUL: one branch-free pass rules them out.
    if !b.iter().fold(false, |acc, &c| acc | (c == 0) | (c >= 0xC2)) {
        return false;
    }
    b.iter().enumerate().any(|(i, &c)| match c {
        0 => true,
        0xC2 | 0xE2 | 0xEF => matches!(
            (c, b.get(i + 1), b.get(i + 2)),
            (0xC2, Some(0xAD), _)
                | (0xE2, Some(0x80), Some(0x8B..=0x8F))
                | (0xE2, Some(0x81), Some(0xA0))
                | (0xEF, Some(0xBB), Some(0xBF))
                | (0xEF, Some(0xBC), Some(0x81..=0xBF))
                | (0xEF, Some(0xBD), Some(0x80..=0x9E))
        ),
        _ => false,
    })
}

/// Whether `s` could be base64 (standard or URL-safe alphabet, optional padding, plausible length).
#[must_use]
pub fn looks_like_base64(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < MIN_BASE64_LEN {
        return false;
    }
    let body = s.trim_end_matches('=');
    if b.len() - body.len() > 2 || body.len() % 4 == 1 {
        return false;
    }
    let mut upper = false;
    let mut lower = false;
    let mut digit = false;
    for &c in body.as_bytes() {
        match c {
            b'A'..=b'Z' => upper = true,
            b'a'..=b'z' => lower = true,
            b'0'..=b'9' => digit = true,
            b'+' | b'/' | b'-' | b'_' => {}
            _ => return false,
        }
    }
    // Real base64 of text nearly always mixes cases; a single-case word is a word.
    let _ = digit;
    upper && lower
}

/// Whether [`normalize`] would try `value` as base64 (also with spaces read as `+`, which a form
/// decoder produces from an unencoded `+`).
#[must_use]
pub fn base64_candidate(value: &str) -> bool {
    let t = value.trim();
    if t.len() < MIN_BASE64_LEN {
        return false;
    }
    // Check the alphabet before allocating: most values with spaces are prose.
    if !t.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'-' | b'_' | b'=' | b' ')) {
        return false;
    }
    if t.contains(' ') { !t.contains("  ") && looks_like_base64(&t.replace(' ', "+")) } else { looks_like_base64(t) }
}

/// Decodes base64 (standard or URL-safe, padding optional) when the result is printable UTF-8
/// text: that is when a value was most likely an encoded payload rather than an opaque token.
#[must_use]
pub fn base64_text(s: &str) -> Option<String> {
    if !looks_like_base64(s) {
        return None;
    }
    let body = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in body {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6 | u32::from(v)) & 0x00FF_FFFF;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    let text = String::from_utf8(out).ok()?;
    let total = text.chars().count();
    let printable = text.chars().filter(|c| !c.is_control() || matches!(c, '\t' | '\r' | '\n')).count();
    (total > 0 && printable * 100 >= total * 95 && text.chars().any(|c| c.is_ascii_punctuation() || c.is_whitespace()))
        .then_some(text)
}

/// The views of one value, with what decoding revealed.
#[derive(Debug, Clone, Default)]
pub struct Normalized<'a> {
    /// The value itself first, then each distinct decoded form (at most [`MAX_VARIANTS`]).
    pub variants: Vec<Cow<'a, str>>,
    /// A percent-escape survived the transport decoding (double encoding).
    pub double_encoded: bool,
    /// An overlong UTF-8 sequence was folded.
    pub overlong: bool,
}

/// One decoding round: percent, HTML entities, JS escapes, Unicode folding.
fn round(s: &str, flags: &mut (bool, bool)) -> Option<String> {
    let mut changed = false;
    let mut cur: Cow<'_, str> = Cow::Borrowed(s);
    if cur.as_bytes().contains(&b'%') {
        let d = url_decode(&cur, false);
        if let Cow::Owned(o) = d
            && o != *cur
        {
            flags.0 = true;
            flags.1 |= raw_has_overlong(&cur);
            cur = Cow::Owned(o);
            changed = true;
        }
    }
    for f in [html_decode, js_unescape, fold_unicode] {
        let d = f(&cur);
        if let Cow::Owned(o) = d {
            cur = Cow::Owned(o);
            changed = true;
        }
    }
    changed.then(|| cur.into_owned())
}

/// Whether a percent-encoded overlong lead byte (`%C0`, `%C1`, `%E0%80`, `%F0%80`) appears.
fn raw_has_overlong(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l.contains("%c0%") || l.contains("%c1%") || l.contains("%e0%80") || l.contains("%f0%80")
}

/// Builds the views of `value`. `transport_decoded` says the value has already been
/// percent-decoded once by its container (query string, form, path): any `%XX` still in it is
/// then double encoding.
#[must_use]
pub fn normalize(value: &str, transport_decoded: bool) -> Normalized<'_> {
    let mut n = Normalized { variants: vec![Cow::Borrowed(value)], ..Normalized::default() };
    let b = value.as_bytes();
    let decodable = b.iter().any(|c| matches!(c, b'%' | b'&' | b'\\' | 0) || *c >= 0x80);
    if !decodable && !base64_candidate(value) {
        return n;
    }
    let mut flags = (false, false);
    let mut cur: Option<String> = None;
    for r in 0..MAX_ROUNDS {
        let src = cur.as_deref().unwrap_or(value);
        flags.0 = false;
        let Some(next) = round(src, &mut flags) else { break };
        if flags.0 && (transport_decoded || r > 0) {
            n.double_encoded = true;
        }
        push_variant(&mut n.variants, next.clone());
        cur = Some(next);
    }
    n.overlong = flags.1;
    let trimmed = value.trim();
    // Base64 (even with `+` read as a space) has only these bytes: anything else, no copy.
    let b64_bytes =
        trimmed.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'-' | b'_' | b'=' | b' '));
    // `+` in base64 became a space when the container decoded it as a form value.
    let b64 = if !b64_bytes {
        None
    } else if trimmed.contains(' ') && !trimmed.contains("  ") {
        base64_text(&trimmed.replace(' ', "+"))
    } else {
        base64_text(trimmed)
    };
    if let Some(b) = b64 {
        let decoded_more = round(&b, &mut flags);
        push_variant(&mut n.variants, b);
        if let Some(d) = decoded_more {
            push_variant(&mut n.variants, d);
        }
    }
    n
}

fn push_variant<'a>(v: &mut Vec<Cow<'a, str>>, s: String) {
    if v.len() < MAX_VARIANTS && !v.iter().any(|x| **x == *s) {
        v.push(Cow::Owned(s));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// The byte precheck in [`normalize`] never skips a value [`base64_text`] would decode
        /// (as is, or with spaces read as `+`).
        #[test]
        fn base64_needs_its_alphabet(v in prop::collection::vec(prop::sample::select(vec![
            "QUJD", "YWJj", "ZGVm", "PHNjcmlwdD4", "=", "==", " ", "+", "/", "-", "_", "é", ".", "!", "\u{3000}",
            "\t", "a", "Z", "9", "%", "&",
        ]), 0..12)) {
            let s = v.concat();
            let t = s.trim();
            if base64_text(t).is_some() || base64_text(&t.replace(' ', "+")).is_some() {
                prop_assert!(t.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'-' | b'_' | b'=' | b' ')));
            }
        }
    }

    /// The byte test [`fold_possible`] agrees with folding by characters.
    #[test]
    fn fold_possible_is_exact() {
        fn by_chars(s: &str) -> bool {
            s.chars().any(|c| {
                matches!(c, '\u{FF01}'..='\u{FF5E}' | '\0' | '\u{200B}'..='\u{200F}' | '\u{FEFF}' | '\u{00AD}' | '\u{2060}')
            })
        }
        let mut all = String::new();
        for c in (0u32..0x3_0000).filter_map(char::from_u32) {
            let one = c.to_string();
            assert_eq!(fold_possible(one.as_bytes()), by_chars(&one), "U+{:04X}", c as u32);
            assert_eq!(matches!(fold_unicode(&one), Cow::Owned(_)), by_chars(&one), "U+{:04X}", c as u32);
            all.push(c);
            all.push('a');
        }
        assert!(fold_possible(all.as_bytes()));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        /// A value with letters outside ASCII but nothing to decode or fold has no other view:
        /// what lets the inspector skip normalising it.
        #[test]
        fn unfoldable_non_ascii_has_one_view(v in prop::collection::vec(prop::sample::select(vec![
            "é", "Ñ", "ú", "’", "–", "£", "\u{a0}", "\u{3000}", "\u{2028}", "\u{ad}", "\u{200b}", "Ａ", "＜", "\u{feff}",
            "\u{2060}", "QUJD", "PHNjcmlwdD4", "YWJj", "=", " ", "+", "/", "a", "Z", "9", "<", "'", "日本",
        ]), 0..12)) {
            let s = v.concat();
            if !fold_possible(s.as_bytes()) && !base64_candidate(&s) {
                let n = normalize(&s, false);
                prop_assert_eq!(n.variants.len(), 1, "{:?}", n.variants);
                prop_assert!(!n.double_encoded && !n.overlong);
            }
        }
    }

    #[test]
    fn url_decoding() {
        assert_eq!(url_decode("a%20b+c", true), "a b c");
        assert_eq!(url_decode("a%2", false), "a%2");
        assert_eq!(url_decode("%u003cscript", false), "<script");
        assert_eq!(url_decode("%C0%AE%C0%AE%C0%AF", false), "../");
        assert!(matches!(url_decode("plain", true), Cow::Borrowed(_)));
    }

    #[test]
    fn entities() {
        assert_eq!(html_decode("&lt;svg&gt;"), "<svg>");
        assert_eq!(html_decode("&#0000000040;x&#x29"), "(x)");
        assert_eq!(html_decode("java&Tab;script&colon;"), "java\tscript:");
        assert_eq!(html_decode("Tom & Jerry &unknown;"), "Tom & Jerry &unknown;");
    }

    #[test]
    fn js_escapes() {
        assert_eq!(js_unescape(r"\u0061\x62\u{63}"), "abc");
        assert_eq!(js_unescape(r"C:\path\x"), r"C:\path\x");
    }

    #[test]
    fn base64_only_for_text() {
        assert_eq!(base64_text("PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==").as_deref(), Some("<script>alert(1)</script>"));
        assert_eq!(base64_text("controller"), None);
        assert_eq!(base64_text("Basics"), None);
        assert_eq!(base64_text("dGVzdA"), None, "too short");
    }

    #[test]
    fn double_encoding_detected() {
        let n = normalize("%253Cscript%253E", true);
        assert!(n.double_encoded);
        assert!(n.variants.iter().any(|v| v == "<script>"));
        let n = normalize("hello world", true);
        assert_eq!(n.variants.len(), 1);
        assert!(!n.double_encoded);
    }
}
