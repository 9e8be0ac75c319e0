//! Masking and keyed tokens. Every function here is idempotent on its own output: a masked
//! value is not detected again, and a token is recognised and left alone.

use ring::hmac;

use crate::class::DataClass;

/// Replacement for a value redacted inside a longer string.
pub(crate) const REDACTED: &str = "[redacted]";

/// Fixed mask for sensitive fields: the length of a password is not revealed.
pub(crate) const FIELD_MASK: &str = "********";

/// Class-aware mask of a detected value.
#[cfg(test)]
pub(crate) fn mask_detected(class: DataClass, v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    mask_detected_into(&mut out, class, v);
    out
}

/// [`mask_detected`], appended to `out`.
pub(crate) fn mask_detected_into(out: &mut String, class: DataClass, v: &str) {
    match class {
        DataClass::CardNumber | DataClass::Iban => {
            let n = v.bytes().filter(u8::is_ascii_alphanumeric).count();
            out.extend(std::iter::repeat_n('*', n.saturating_sub(4)));
            out.extend(v.bytes().filter(u8::is_ascii_alphanumeric).skip(n.saturating_sub(4)).map(char::from));
        }
        DataClass::Email => match v.split_once('@') {
            Some((local, domain)) => {
                out.push(local.chars().next().unwrap_or('*'));
                out.push_str("***@");
                out.push_str(domain);
            }
            None => mask_alnum_keep_last_into(out, v, 0),
        },
        DataClass::Ssn | DataClass::Phone | DataClass::NationalId => mask_alnum_keep_last_into(out, v, 4),
        DataClass::SensitiveField => out.push_str(FIELD_MASK),
        _ => mask_chars_keep_last_into(out, v, 4),
    }
}

/// Replaces every ASCII alphanumeric but the last `keep` of them by `*`; separators stay.
/// Appended to `out`.
pub(crate) fn mask_alnum_keep_last_into(out: &mut String, v: &str, keep: usize) {
    const STARS: &str = "****************";
    let b = v.as_bytes();
    let mut to_mask = b.iter().filter(|c| c.is_ascii_alphanumeric()).count().saturating_sub(keep);
    // Runs of alphanumerics become runs of `*`, the bytes between them are copied: every cut is
    // next to an ASCII byte, so a char boundary.
    let mut i = 0;
    while to_mask > 0 && i < b.len() {
        let other = b[i..].iter().position(u8::is_ascii_alphanumeric).unwrap_or(b.len() - i);
        out.push_str(v.get(i..i + other).unwrap_or(""));
        i += other;
        let run = b[i..].iter().take(to_mask).take_while(|c| c.is_ascii_alphanumeric()).count();
        let mut left = run;
        while left > 0 {
            let n = left.min(STARS.len());
            out.push_str(&STARS[..n]);
            left -= n;
        }
        i += run;
        to_mask -= run;
    }
    out.push_str(v.get(i..).unwrap_or(""));
}

/// Replaces every character but the last `keep` by `*`, keeping the length in characters.
pub(crate) fn mask_chars_keep_last(v: &str, keep: usize) -> String {
    let mut out = String::with_capacity(v.len());
    mask_chars_keep_last_into(&mut out, v, keep);
    out
}

/// [`mask_chars_keep_last`], appended to `out`.
pub(crate) fn mask_chars_keep_last_into(out: &mut String, v: &str, keep: usize) {
    let total = v.chars().count();
    out.extend(v.chars().enumerate().map(|(i, c)| if i + keep < total { '*' } else { c }));
}

/// Generic mask of a whole field value that no detector recognised: keeps at most `keep` trailing
/// characters and never more than a quarter of the value. Idempotent: the output depends only on
/// the length and the kept tail. `None` when the value is already in that form.
pub(crate) fn mask_generic(v: &str, keep: usize) -> Option<String> {
    let total = v.chars().count();
    let out = mask_chars_keep_last(v, keep.min(total / 4));
    (out != v).then_some(out)
}

/// Keyed tokens: `prefix` + 24 lowercase hex digits of HMAC-SHA256(key, value).
pub(crate) struct Tokenizer {
    key: hmac::Key,
    prefix: String,
}

pub(crate) const TOKEN_HEX: usize = 24;

impl Tokenizer {
    pub(crate) fn new(key: &[u8], prefix: &str) -> Self {
        Tokenizer { key: hmac::Key::new(hmac::HMAC_SHA256, key), prefix: prefix.to_owned() }
    }

    pub(crate) fn is_token(&self, v: &str) -> bool {
        v.strip_prefix(self.prefix.as_str()).is_some_and(|h| {
            h.len() == TOKEN_HEX && h.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        })
    }

    pub(crate) fn token(&self, v: &str) -> String {
        let tag = hmac::sign(&self.key, v.as_bytes());
        let mut out = String::with_capacity(self.prefix.len() + TOKEN_HEX);
        out.push_str(&self.prefix);
        for b in tag.as_ref().iter().take(TOKEN_HEX / 2) {
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 0xf));
        }
        out
    }
}

fn hex_digit(n: u8) -> char {
    char::from(if n < 10 { b'0' + n } else { b'a' + n - 10 })
}

/// Lowercase hex of SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = String::with_capacity(64);
    for b in d.as_ref() {
        out.push(hex_digit(b >> 4));
        out.push(hex_digit(b & 0xf));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The char-by-char definitions the byte-level masks must match.
    fn alnum_reference(v: &str, keep: usize) -> String {
        let total = v.chars().filter(char::is_ascii_alphanumeric).count();
        let mut seen = 0usize;
        v.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    seen += 1;
                    if seen + keep <= total { '*' } else { c }
                } else {
                    c
                }
            })
            .collect()
    }

    fn card_reference(v: &str) -> String {
        let kept: Vec<char> = v.chars().filter(char::is_ascii_alphanumeric).collect();
        let n = kept.len();
        let mut out = "*".repeat(n.saturating_sub(4));
        out.extend(kept.iter().skip(n.saturating_sub(4)));
        out
    }

    proptest::proptest! {
        #[test]
        fn byte_level_masks_match_their_definitions(v in "[a-zA-Z0-9 +()é€.-]{0,40}", keep in 0usize..6) {
            let mut out = String::new();
            mask_alnum_keep_last_into(&mut out, &v, keep);
            proptest::prop_assert_eq!(out, alnum_reference(&v, keep));
            proptest::prop_assert_eq!(mask_detected(DataClass::CardNumber, &v), card_reference(&v));
        }
    }

    #[test]
    fn card_keeps_last_four() {
        assert_eq!(mask_detected(DataClass::CardNumber, "4242 4242 4242 4242"), "************4242");
    }

    #[test]
    fn email_keeps_first_and_domain() {
        assert_eq!(mask_detected(DataClass::Email, "john.doe@example.com"), "j***@example.com");
    }

    #[test]
    fn ssn_and_phone_keep_separators() {
        assert_eq!(mask_detected(DataClass::Ssn, "536-22-6789"), "***-**-6789");
        assert_eq!(mask_detected(DataClass::Phone, "+1 (415) 555-2671"), "+* (***) ***-2671");
    }

    #[test]
    fn generic_mask_reveals_at_most_a_quarter_and_is_idempotent() {
        assert_eq!(mask_generic("Bob", 4).as_deref(), Some("***"));
        let once = mask_generic("abcdefghijklmnop", 4).unwrap();
        assert_eq!(once, "************mnop");
        assert_eq!(mask_generic(&once, 4), None);
        assert_eq!(mask_generic("", 4), None);
    }

    #[test]
    fn tokens_are_stable_and_recognised() {
        let t = Tokenizer::new(b"0123456789abcdef0123456789abcdef", "tok_");
        let a = t.token("john@example.com");
        assert_eq!(a, t.token("john@example.com"));
        assert_ne!(a, t.token("jane@example.com"));
        assert!(t.is_token(&a));
        assert!(!t.is_token("tok_short"));
    }
}
