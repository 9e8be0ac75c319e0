//! The string scanner: cheap gates (digit counts, `@`, an Aho-Corasick prefilter over the secret
//! prefixes) decide which detectors run; only those run their linear-time regex or hand-written
//! matcher, and a checksum or range check confirms each candidate.

use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;

use crate::class::{Action, DataClass};
use crate::validate;

/// Decides whether a matched string really is an instance (checksum, ranges). Gets the match.
pub type Validator = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// A pluggable detector: a name, a regex (the `regex` crate's linear-time syntax) and an optional
/// validator. For national identifiers other than the US SSN (which is built in).
#[derive(Clone)]
pub struct NamedDetector {
    /// Stable name, used in findings (`uk_nino`).
    pub name: String,
    /// What to report it as (usually [`DataClass::NationalId`]).
    pub class: DataClass,
    /// The regex; each match is a candidate.
    pub pattern: String,
    /// Confirms a candidate; `None` accepts every match.
    pub validator: Option<Validator>,
    /// Overrides the class's action for this detector's findings.
    pub action: Option<Action>,
}

impl std::fmt::Debug for NamedDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedDetector")
            .field("name", &self.name)
            .field("class", &self.class)
            .field("pattern", &self.pattern)
            .field("validator", &self.validator.as_ref().map(|_| "fn"))
            .field("action", &self.action)
            .finish()
    }
}

impl NamedDetector {
    /// UK National Insurance number (`AB 12 34 56 C`), with the prefixes HMRC never issues excluded.
    pub fn uk_nino() -> NamedDetector {
        NamedDetector {
            name: "uk_nino".into(),
            class: DataClass::NationalId,
            pattern: r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\b".into(),
            validator: Some(Arc::new(|m: &str| {
                let p = m.get(..2).unwrap_or("");
                !matches!(p, "BG" | "GB" | "NK" | "KN" | "TN" | "NT" | "ZZ")
            })),
            action: None,
        }
    }
}

/// Which detector produced a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DetId {
    Builtin(DataClass),
    Custom(u16),
}

/// A detected value in a string: byte range and detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) det: DetId,
}

/// Gate hints computed by the caller (e.g. over a whole JSON body at once).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gates {
    pub(crate) has_at: bool,
    pub(crate) has_prefix: bool,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Pem,
    Jwt,
    AwsKeyId,
    AwsSecretLabel,
    GithubClassic,
    GithubPat,
    Slack,
    Stripe,
    Portcullis,
    Bcrypt,
    Argon2,
    ShaCrypt(usize),
    Pbkdf2Passlib,
    Pbkdf2Django,
}

const PREFIXES: &[(&str, Kind)] = &[
    ("-----BEGIN ", Kind::Pem),
    ("eyJ", Kind::Jwt),
    ("AKIA", Kind::AwsKeyId),
    ("ASIA", Kind::AwsKeyId),
    ("AGPA", Kind::AwsKeyId),
    ("AIDA", Kind::AwsKeyId),
    ("AROA", Kind::AwsKeyId),
    ("AIPA", Kind::AwsKeyId),
    ("ANPA", Kind::AwsKeyId),
    ("ANVA", Kind::AwsKeyId),
    ("ABIA", Kind::AwsKeyId),
    ("ACCA", Kind::AwsKeyId),
    ("aws_secret", Kind::AwsSecretLabel),
    ("AWS_SECRET", Kind::AwsSecretLabel),
    ("aws-secret", Kind::AwsSecretLabel),
    ("AWS-SECRET", Kind::AwsSecretLabel),
    ("awsSecret", Kind::AwsSecretLabel),
    ("AwsSecret", Kind::AwsSecretLabel),
    ("secret_access_key", Kind::AwsSecretLabel),
    ("SECRET_ACCESS_KEY", Kind::AwsSecretLabel),
    ("secretAccessKey", Kind::AwsSecretLabel),
    ("SecretAccessKey", Kind::AwsSecretLabel),
    ("ghp_", Kind::GithubClassic),
    ("gho_", Kind::GithubClassic),
    ("ghu_", Kind::GithubClassic),
    ("ghs_", Kind::GithubClassic),
    ("ghr_", Kind::GithubClassic),
    ("github_pat_", Kind::GithubPat),
    ("xoxb-", Kind::Slack),
    ("xoxp-", Kind::Slack),
    ("xoxa-", Kind::Slack),
    ("xoxr-", Kind::Slack),
    ("xoxs-", Kind::Slack),
    ("xoxe-", Kind::Slack),
    ("sk_live_", Kind::Stripe),
    ("rk_live_", Kind::Stripe),
    ("pc_live_", Kind::Portcullis),
    ("pc_test_", Kind::Portcullis),
    ("$2a$", Kind::Bcrypt),
    ("$2b$", Kind::Bcrypt),
    ("$2y$", Kind::Bcrypt),
    ("$2x$", Kind::Bcrypt),
    ("$argon2", Kind::Argon2),
    ("$6$", Kind::ShaCrypt(86)),
    ("$5$", Kind::ShaCrypt(43)),
    ("$pbkdf2", Kind::Pbkdf2Passlib),
    ("pbkdf2_sha", Kind::Pbkdf2Django),
];

/// The first two bytes of every prefix, as a set of 65,536 bits (byte pairs, first byte high).
static PREFIX_PAIRS: [u64; 1024] = {
    let mut bits = [0u64; 1024];
    let mut i = 0;
    while i < PREFIXES.len() {
        let p = PREFIXES[i].0.as_bytes();
        assert!(p.len() >= 2, "every prefix has two bytes at least");
        let pair = (p[0] as usize) << 8 | p[1] as usize;
        bits[pair >> 6] |= 1u64 << (pair & 63);
        i += 1;
    }
    bits
};

/// Whether the two bytes of `w` start a prefix.
fn prefix_pair(w: &[u8]) -> bool {
    match w {
        &[a, b, ..] => {
            let pair = usize::from(a) << 8 | usize::from(b);
            PREFIX_PAIRS[pair >> 6] >> (pair & 63) & 1 != 0
        }
        _ => false,
    }
}

/// Whether a secret prefix occurs in `b` (what `prefix_automaton().is_match(b)` says), for short
/// strings: one bit test per byte pair, branch-free, and the patterns compared only where the
/// first two bytes of one are. No search setup, which costs more than the whole walk on a masked
/// 20-byte value. `has_prefix_short_is_the_automaton` (tests) compares the two.
fn has_prefix_short(b: &[u8]) -> bool {
    b.windows(2).fold(false, |any, w| any | prefix_pair(w)) && (0..b.len()).any(|i| prefix_at(b, i))
}

/// Whether a secret prefix starts at `i`.
fn prefix_at(b: &[u8], i: usize) -> bool {
    b.get(i..).is_some_and(|rest| prefix_pair(rest) && PREFIXES.iter().any(|(p, _)| rest.starts_with(p.as_bytes())))
}

const fn kind_class(k: Kind) -> DataClass {
    match k {
        Kind::Pem => DataClass::PrivateKey,
        Kind::Jwt => DataClass::Jwt,
        Kind::AwsKeyId => DataClass::AwsAccessKeyId,
        Kind::AwsSecretLabel => DataClass::AwsSecretKey,
        Kind::GithubClassic | Kind::GithubPat => DataClass::GithubToken,
        Kind::Slack => DataClass::SlackToken,
        Kind::Stripe => DataClass::StripeKey,
        Kind::Portcullis => DataClass::PortcullisKey,
        Kind::Bcrypt | Kind::Argon2 | Kind::ShaCrypt(_) | Kind::Pbkdf2Passlib | Kind::Pbkdf2Django => {
            DataClass::PasswordHash
        }
    }
}

/// The secret-prefix automaton, also used by the JSON walker as a whole-body prefilter.
pub(crate) fn prefix_automaton() -> Result<AhoCorasick, aho_corasick::BuildError> {
    AhoCorasickBuilder::new().match_kind(MatchKind::LeftmostFirst).build(PREFIXES.iter().map(|(p, _)| p))
}

pub(crate) struct CompiledCustom {
    pub(crate) name: Arc<str>,
    pub(crate) class: DataClass,
    pub(crate) re: Regex,
    pub(crate) validator: Option<Validator>,
    pub(crate) action: Option<Action>,
}

/// All detectors of one policy, compiled.
pub(crate) struct Scanner {
    enabled: [bool; DataClass::ALL.len()],
    pub(crate) prefixes: AhoCorasick,
    card: Regex,
    iban: Regex,
    pub(crate) customs: Vec<CompiledCustom>,
}

/// Below this length, [`Scanner::gates_for`] looks for the prefixes with [`has_prefix_short`].
const SHORT: usize = 64;

/// Errors building the built-in detectors; only possible through a bug, kept as an error anyway.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    #[error("built-in regex: {0}")]
    Regex(#[from] regex::Error),
    #[error("prefix automaton: {0}")]
    Automaton(#[from] aho_corasick::BuildError),
}

impl Scanner {
    pub(crate) fn new(enabled: [bool; DataClass::ALL.len()], customs: Vec<CompiledCustom>) -> Result<Self, BuildError> {
        Ok(Scanner {
            enabled,
            prefixes: prefix_automaton()?,
            card: Regex::new(r"(?-u:\b)[0-9](?:[ \-]?[0-9]){11,18}(?-u:\b)")?,
            iban: Regex::new(r"(?-u:\b)[A-Z]{2}[0-9]{2}(?:\x20?[A-Z0-9]){11,32}")?,
            customs,
        })
    }

    pub(crate) fn enabled(&self, class: DataClass) -> bool {
        self.enabled[class.index()]
    }

    /// Computes the gates from the string itself (text bodies, JSON strings with escapes).
    pub(crate) fn gates_for(&self, s: &str) -> Gates {
        let has_prefix = if s.len() < SHORT { has_prefix_short(s.as_bytes()) } else { self.prefixes.is_match(s) };
        Gates { has_at: memchr::memchr(b'@', s.as_bytes()).is_some(), has_prefix }
    }

    /// Whether [`Self::scan`] can find anything in `s`: false for most strings, after a cheap
    /// look (no prefix, no `@` an address can surround, fewer than 8 digits, no named detector).
    pub(crate) fn may_hit(&self, s: &str, gates: Gates) -> bool {
        let b = s.as_bytes();
        gates.has_prefix
            || !self.customs.is_empty()
            || (gates.has_at && email_trigger(b))
            || (b.len() >= 9 && digit_count(b) >= 8 && numeric_may_hit(b))
    }

    /// The gates of `s` ([`Self::gates_for`]) when [`Self::may_hit`] says the detectors can find
    /// something in it, `None` otherwise. For the re-scan of a masked value: a short string
    /// skips the searches' setup (see [`has_prefix_short`]).
    /// `gates_if_may_hit_is_gates_for_and_may_hit` (tests) compares it with the two.
    pub(crate) fn gates_if_may_hit(&self, s: &str) -> Option<Gates> {
        let b = s.as_bytes();
        if b.len() >= SHORT || !self.customs.is_empty() {
            let gates = self.gates_for(s);
            return self.may_hit(s, gates).then_some(gates);
        }
        let has_prefix = has_prefix_short(b);
        let has_at = b.contains(&b'@');
        let gates = Gates { has_at, has_prefix };
        (has_prefix || (has_at && email_trigger(b)) || (b.len() >= 9 && digit_count(b) >= 8 && numeric_may_hit(b)))
            .then_some(gates)
    }

    /// [`Self::may_hit`] for a string whose ASCII digits the caller has already counted.
    pub(crate) fn may_hit_counted(&self, s: &str, gates: Gates, digits: usize) -> bool {
        self.may_hit_bytes(s.as_bytes(), gates, digits)
    }

    /// [`Self::may_hit_counted`] on the raw bytes.
    pub(crate) fn may_hit_bytes(&self, b: &[u8], gates: Gates, digits: usize) -> bool {
        gates.has_prefix
            || !self.customs.is_empty()
            || (gates.has_at && email_trigger(b))
            || (b.len() >= 9 && digits >= 8 && numeric_may_hit(b))
    }

    /// Appends the hits in `s`, sorted by start, without overlaps (secrets win over the rest).
    pub(crate) fn scan(&self, s: &str, gates: Gates, out: &mut Vec<Hit>) {
        let base = out.len();
        let b = s.as_bytes();
        if gates.has_prefix {
            self.scan_prefixes(b, base, out);
        }
        if gates.has_at && self.enabled(DataClass::Email) && email_trigger(b) {
            let mut at = 0;
            while let Some((start, end)) = email_find(b, at) {
                if email_ok(&b[start..end]) {
                    push(out, base, start, end, DetId::Builtin(DataClass::Email));
                }
                at = end;
            }
        }
        // Every numeric detector needs at least 8 digits: most strings stop here, after one
        // vectorised count.
        if b.len() >= 9 && digit_count(b) >= 8 {
            let t = NumericTriggers::of(b);
            if t.card && self.enabled(DataClass::CardNumber) {
                for m in matches(&self.card, s) {
                    if card_ok(b, m.start(), m.end()) {
                        push(out, base, m.start(), m.end(), DetId::Builtin(DataClass::CardNumber));
                    }
                }
            }
            if t.iban && self.enabled(DataClass::Iban) {
                for m in matches(&self.iban, s) {
                    if let Some(end) = iban_end(b, m.start(), m.end()) {
                        push(out, base, m.start(), end, DetId::Builtin(DataClass::Iban));
                    }
                }
            }
            if t.digits >= 9 && self.enabled(DataClass::Ssn) {
                let mut i = 0;
                while i + SSN_LEN <= b.len() {
                    if ssn_at(b, i) {
                        push(out, base, i, i + SSN_LEN, DetId::Builtin(DataClass::Ssn));
                        i += SSN_LEN;
                    } else {
                        i += 1;
                    }
                }
            }
            if t.phone && self.enabled(DataClass::Phone) {
                let mut at = 0;
                while let Some((start, end)) = phone_find(b, at) {
                    if phone_ok(b, start, end) {
                        push(out, base, start, end, DetId::Builtin(DataClass::Phone));
                    }
                    at = end;
                }
            }
        }
        for (i, c) in self.customs.iter().enumerate() {
            if !self.enabled(c.class) {
                continue;
            }
            let Ok(id) = u16::try_from(i) else { break };
            for m in c.re.find_iter(s) {
                if m.is_empty() {
                    continue;
                }
                if c.validator.as_ref().is_none_or(|v| v(m.as_str())) {
                    push(out, base, m.start(), m.end(), DetId::Custom(id));
                }
            }
        }
        if out.len() - base > 1 {
            out[base..].sort_unstable_by_key(|h| h.start);
        }
    }

    fn scan_prefixes(&self, b: &[u8], base: usize, out: &mut Vec<Hit>) {
        for m in self.prefixes.find_iter(b) {
            let Some(&(_, kind)) = PREFIXES.get(m.pattern().as_usize()) else { continue };
            let class = kind_class(kind);
            if !self.enabled(class) {
                continue;
            }
            if let Some((s, e)) = match_secret(kind, b, m.start(), m.end()) {
                push(out, base, s, e, DetId::Builtin(class));
            }
        }
    }
}

/// `re.find_iter(s)` for a built-in regex (none matches the empty string), without the search
/// that `find_iter` runs after a match that ends the string (most hits are a whole value).
fn matches<'s>(re: &Regex, s: &'s str) -> impl Iterator<Item = regex::Match<'s>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= s.len() {
            return None;
        }
        let m = re.find_at(s, at)?;
        // An empty match cannot happen; stopping there keeps the loop finite regardless.
        if m.is_empty() {
            return None;
        }
        at = m.end();
        Some(m)
    })
}

/// One pass over a string that tells which numeric detectors can possibly match, so that ids,
/// UUIDs, timestamps and prices do not reach the regexes. Each trigger is a necessary condition
/// of its detector (regex, edge checks and validator together), never a guess: a string that
/// does not trigger a detector cannot produce a hit from it.
#[derive(Debug, Default)]
struct NumericTriggers {
    digits: usize,
    /// A run of ≥ 12 digits (single ` `/`-` between them) from a place a card can start: a
    /// digit 2–6 or 8 after a non-word byte other than `-./+_$#`.
    card: bool,
    /// ≥ 10 digits (≥ 8 after a `+`) in a run of digits and ` .-()+` from a place a phone
    /// number can start: `+`, `(` or a digit after a non-word byte other than `-./+$#:,`.
    phone: bool,
    /// A word-initial `CC99` with an IBAN country code, in a string of ≥ 15 bytes.
    iban: bool,
}

/// Whether a numeric detector can match: a run of digits and ` .-()+` (the only bytes card,
/// SSN and phone matches are made of) with 9 digits (8 from a `+`) counted from the first place
/// in the run where a match can start (after a byte that is not a word byte nor one of
/// `-./+$#`: the union of the start checks of [`card_start_ok`], [`ssn_at`] and
/// [`phone_start_ok`]), or a word-initial IBAN start. Dates and times (`2024-01-15T10:30:00Z`:
/// 8 digits at most per run) and UUIDs (every digit group follows a letter or a `-`) stop here.
fn numeric_may_hit(b: &[u8]) -> bool {
    // Digits since the first possible start in the current run; `NONE`: no start yet.
    const NONE: u32 = u32::MAX;
    let (mut run, mut plus) = (NONE, false);
    // The previous byte's flags; the start of the string allows a start and is not a word.
    let mut prev = 0u8;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let f = BYTE_FLAGS[usize::from(c)];
        if f & F_DIGIT != 0 && (run != NONE || prev & F_NO_START_AFTER == 0) {
            if run == NONE {
                run = 0;
            }
            run += 1;
            if run >= 9 || (plus && run >= 8) {
                return true;
            }
        } else if f & (F_DIGIT | F_RUN) == F_RUN {
            if f & F_OPENER != 0 && prev & F_NO_START_AFTER == 0 {
                if run == NONE {
                    run = 0;
                }
                plus |= c == b'+';
            }
        } else {
            if f & F_DIGIT == 0 {
                run = NONE;
                plus = false;
                if f & F_UPPER != 0 && prev & F_WORD == 0 && iban_start(b, i) {
                    return true;
                }
            }
            // No run here (a digit gets here only without one). After a word byte nothing
            // starts and the state stays as it is until the next byte that is not a word byte.
            if f & F_WORD != 0 {
                while b.get(i + 1).is_some_and(|&d| BYTE_FLAGS[usize::from(d)] & F_WORD != 0) {
                    i += 1;
                }
            }
        }
        prev = f;
        i += 1;
    }
    false
}

const F_DIGIT: u8 = 1;
/// Digits and ` .-()+`: the bytes card, SSN and phone matches are made of.
const F_RUN: u8 = 2;
/// Word bytes and `-./+$#`: no card, SSN or phone match starts after one.
const F_NO_START_AFTER: u8 = 4;
const F_WORD: u8 = 8;
const F_UPPER: u8 = 16;
/// `(` and `+`: a phone match can start at one.
const F_OPENER: u8 = 32;

/// The classes of [`numeric_may_hit`], one table lookup per byte.
static BYTE_FLAGS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let word = c.is_ascii_alphanumeric() || c == b'_';
        let mut f = 0;
        if c.is_ascii_digit() {
            f |= F_DIGIT | F_RUN;
        }
        if matches!(c, b' ' | b'.' | b'-' | b'(' | b')' | b'+') {
            f |= F_RUN;
        }
        if matches!(c, b'(' | b'+') {
            f |= F_OPENER;
        }
        if word || matches!(c, b'-' | b'.' | b'/' | b'+' | b'$' | b'#') {
            f |= F_NO_START_AFTER;
        }
        if word {
            f |= F_WORD;
        }
        if c.is_ascii_uppercase() {
            f |= F_UPPER;
        }
        t[i] = f;
        i += 1;
    }
    t
};

/// ASCII digits in `b` (vectorised).
fn digit_count(b: &[u8]) -> usize {
    b.iter().filter(|c| c.is_ascii_digit()).count()
}

/// Digit 2–6 or 8: the first digit of every card range `validate::card_number` accepts.
fn card_first(c: u8) -> bool {
    matches!(c, b'2'..=b'6' | b'8')
}

impl NumericTriggers {
    fn of(b: &[u8]) -> Self {
        let mut t = NumericTriggers::default();
        // Card run: digits with at most one separator between them.
        let (mut card_on, mut card_sep, mut card_n) = (false, false, 0usize);
        // Phone run: digits and ` .-()+`; counts from the first possible start (`phone_n`) and
        // from the first possible `+` start (`plus_n`).
        let (mut phone_n, mut plus_n): (Option<usize>, Option<usize>) = (None, None);
        let mut prev = 0u8;
        for (i, &c) in b.iter().enumerate() {
            if c.is_ascii_digit() {
                t.digits += 1;
                if !prev.is_ascii_digit() {
                    // A digit group starts: a card can start here.
                    if !card_on && card_first(c) && card_start_ok(i, prev) {
                        card_on = true;
                        card_n = 0;
                    }
                    if phone_n.is_none() && phone_start_ok(i, prev) {
                        phone_n = Some(0);
                    }
                }
                if card_on {
                    card_n += 1;
                    t.card |= card_n >= 12;
                }
                card_sep = false;
                if let Some(n) = &mut phone_n {
                    *n += 1;
                    t.phone |= *n >= 10;
                }
                if let Some(n) = &mut plus_n {
                    *n += 1;
                    t.phone |= *n >= 8;
                }
            } else {
                match c {
                    b' ' | b'-' if !card_sep && prev.is_ascii_digit() => card_sep = true,
                    _ => {
                        card_on = false;
                        card_sep = false;
                    }
                }
                match c {
                    b' ' | b'.' | b'-' | b')' => {}
                    b'(' | b'+' => {
                        if phone_start_ok(i, prev) {
                            phone_n.get_or_insert(0);
                            if c == b'+' {
                                plus_n.get_or_insert(0);
                            }
                        }
                    }
                    _ => {
                        phone_n = None;
                        plus_n = None;
                    }
                }
                if c.is_ascii_uppercase() && !is_word(prev) && b.len() >= 15 && iban_start(b, i) {
                    t.iban = true;
                }
            }
            prev = c;
        }
        t
    }
}

/// `prev` is the byte before `i` (0 at the start): the edge checks of [`ok_edges`] and `\b`.
fn card_start_ok(i: usize, prev: u8) -> bool {
    i == 0 || !(is_word(prev) || matches!(prev, b'-' | b'.' | b'/' | b'+' | b'_' | b'$' | b'#'))
}

/// The start checks of [`phone_ok`].
fn phone_start_ok(i: usize, prev: u8) -> bool {
    i == 0 || !(is_word(prev) || matches!(prev, b'-' | b'.' | b'/' | b'+' | b'$' | b'#' | b':' | b','))
}

/// `CC99` at `i` with `CC` a country that issues IBANs.
fn iban_start(b: &[u8], i: usize) -> bool {
    match b.get(i..i + 4) {
        Some(&[c1, c2, d1, d2]) => {
            c2.is_ascii_uppercase()
                && d1.is_ascii_digit()
                && d2.is_ascii_digit()
                && validate::iban_length(&[c1, c2]).is_some()
        }
        _ => false,
    }
}

/// An `@` that an e-mail address can surround: a local-part character before it and a letter or
/// digit after it (so `j***@example.com`, a masked address, does not run the regex again).
fn email_trigger(b: &[u8]) -> bool {
    memchr::memchr_iter(b'@', b).any(|i| email_trigger_at(b, i))
}

/// [`email_trigger`] for the `@` at `i`.
fn email_trigger_at(b: &[u8], i: usize) -> bool {
    i > 0
        && (b[i - 1].is_ascii_alphanumeric() || matches!(b[i - 1], b'.' | b'_' | b'%' | b'+' | b'-'))
        && b.get(i + 1).is_some_and(u8::is_ascii_alphanumeric)
}

/// A card regex match: its digits (without separators) in an issued range with Luhn, and edges
/// that do not continue a longer token.
fn card_ok(b: &[u8], start: usize, end: usize) -> bool {
    let mut d = [0u8; 19];
    let mut n = 0;
    for &c in &b[start..end] {
        if c.is_ascii_digit() {
            let Some(slot) = d.get_mut(n) else { return false };
            *slot = c;
            n += 1;
        }
    }
    validate::card_number(&d[..n]) && ok_edges(b, start, end)
}

/// Length of a US SSN as written (`123-45-6789` or `123 45 6789`).
const SSN_LEN: usize = 11;

/// A US SSN at `i`: `\b999-99-9999\b` (or with spaces), a valid area/group/serial and edges that
/// do not continue a longer token. Matches are scanned left to right without overlap, as the
/// regex `\b[0-9]{3}(?:-[0-9]{2}-| [0-9]{2} )[0-9]{4}\b` would find them.
fn ssn_at(b: &[u8], i: usize) -> bool {
    let Some(m) = b.get(i..i + SSN_LEN) else { return false };
    let sep = m[3];
    if !matches!(sep, b'-' | b' ') || m[6] != sep || (i > 0 && is_word(b[i - 1])) {
        return false;
    }
    if b.get(i + SSN_LEN).is_some_and(|&c| is_word(c)) {
        return false;
    }
    let mut d = [0u8; 9];
    for (slot, &c) in d.iter_mut().zip(m[..3].iter().chain(&m[4..6]).chain(&m[7..])) {
        if !c.is_ascii_digit() {
            return false;
        }
        *slot = c;
    }
    validate::ssn(&d) && ok_edges(b, i, i + SSN_LEN)
}

/// Adds a hit unless it overlaps one already found (earlier detectors have priority).
fn push(out: &mut Vec<Hit>, base: usize, start: usize, end: usize, det: DetId) {
    if start >= end || out[base..].iter().any(|h| start < h.end && h.start < end) {
        return;
    }
    out.push(Hit { start, end, det });
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// A numeric match must not continue a longer token (`ORD-4242…`, `…-12`, `1.4242…`).
fn ok_edges(b: &[u8], start: usize, end: usize) -> bool {
    let before_ok = start == 0 || !matches!(b[start - 1], b'-' | b'.' | b'/' | b'+' | b'_' | b'$' | b'#');
    let after_ok = match (b.get(end), b.get(end + 1)) {
        (Some(b'-' | b'.' | b'/' | b','), Some(c)) if c.is_ascii_digit() => false,
        (Some(b'_' | b'%'), _) => false,
        _ => true,
    };
    before_ok && after_ok
}

fn phone_ok(b: &[u8], start: usize, end: usize) -> bool {
    let m = &b[start..end];
    let digits = m.iter().filter(|c| c.is_ascii_digit()).count();
    let before = start.checked_sub(1).map(|i| b[i]);
    if before.is_some_and(|c| is_word(c) || matches!(c, b'-' | b'.' | b'/' | b'+' | b'$' | b'#' | b':' | b',')) {
        return false;
    }
    if b.get(end).is_some_and(|&c| is_word(c) || c == b'%') {
        return false;
    }
    if matches!((b.get(end), b.get(end + 1)), (Some(b'-' | b'.' | b'/' | b':' | b','), Some(c)) if c.is_ascii_digit()) {
        return false;
    }
    if m.first() == Some(&b'+') {
        (8..=15).contains(&digits)
    } else if m.first() == Some(&b'0') {
        // National trunk-prefix formats (UK, FR, DE, …): 10–11 digits in groups.
        (10..=11).contains(&digits)
    } else {
        digits == 10
    }
}

fn email_ok(m: &[u8]) -> bool {
    let tld = m.rsplit(|&c| c == b'.').next().unwrap_or_default();
    // `icon@2x.png` and friends are asset names, not addresses.
    !["png", "jpg", "jpeg", "gif", "svg", "webp", "css", "js", "ico", "map"]
        .iter()
        .any(|a| tld.eq_ignore_ascii_case(a.as_bytes()))
}

#[cfg(test)]
/// The e-mail regex, for the record and for the tests that hold [`email_find`] to it.
pub(crate) const EMAIL_RE: &str = r"(?-u:\b)[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?-u:\b)";

#[cfg(test)]
/// The phone regex, for the record and for the tests that hold [`phone_find`] to it.
pub(crate) const PHONE_RE: &str = concat!(
    r"\+[1-9](?:[ .\-]?(?:\([0-9]{1,4}\)|[0-9])){7,14}",
    r"|(?:\([2-9][0-9]{2}\)\x20?|[2-9][0-9]{2}[\-. ])[2-9][0-9]{2}[\-. ][0-9]{4}",
    r"|0[1-9][0-9]{0,4}(?:[ \-][0-9]{2,6}){1,4}",
);

/// The first match of [`EMAIL_RE`] in `b` at or after `at` (leftmost-first, as the regex crate
/// reports it; `\b` looks at the byte before `at`). Every match holds exactly one `@` (no part
/// may contain one), so the `@`s are tried in order: the first whose domain matches and that has
/// a valid local-part start gives the leftmost match. The domain does not depend on the start;
/// its end is the greedy one: the most `.label`s (each a whole dot-separated component, 1–64
/// bytes, alphanumeric at both ends) after which a `.` and a 2–24-letter TLD followed by a
/// non-word byte come. `email_find_is_the_regex` (tests) compares it with the regex.
fn email_find(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let local = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-');
    let mut from = at;
    while let Some(k) = memchr::memchr(b'@', b.get(from..)?) {
        let p = from + k;
        from = p + 1;
        if p == 0 || p <= at {
            continue;
        }
        let Some(end) = email_domain_end(b, p + 1) else { continue };
        // Local part: `s..p`, every byte a local-part byte, 1–64 bytes, `s` alphanumeric at a
        // word boundary (`\b` before a word byte: start of the text or a non-word byte).
        let lo = p.saturating_sub(64).max(at);
        let mut r = p;
        while r > lo && local(b[r - 1]) {
            r -= 1;
        }
        let start = (r..p).find(|&s| b[s].is_ascii_alphanumeric() && (s == 0 || !is_word(b[s - 1])));
        if let Some(s) = start {
            return Some((s, end));
        }
    }
    None
}

/// Where the domain part of [`EMAIL_RE`] starting at `q` ends, if it matches there.
fn email_domain_end(b: &[u8], mut q: usize) -> Option<usize> {
    let mut best = None;
    loop {
        let e = run(b, q, |c| c.is_ascii_alphanumeric() || c == b'-');
        if e == q || e - q > 64 || !b[q].is_ascii_alphanumeric() || !b[e - 1].is_ascii_alphanumeric() {
            break;
        }
        if b.get(e) != Some(&b'.') {
            break;
        }
        let t = e + 1;
        let tld_end = run(b, t, |c| c.is_ascii_alphabetic());
        if (2..=24).contains(&(tld_end - t)) && b.get(tld_end).is_none_or(|&c| !is_word(c)) {
            best = Some(tld_end);
        }
        q = t;
    }
    best
}

/// The first match of [`PHONE_RE`] in `b` at or after `at` (leftmost-first). The three
/// alternatives start with different bytes (`+`; `(` or `2`–`9`; `0`), and every repetition in
/// them is greedy with nothing after it that could make a shorter one succeed, so each start has
/// at most one match, found without backtracking. `phone_find_is_the_regex` (tests) compares it
/// with the regex.
fn phone_find(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let in_set = |i: usize, set: &[u8]| b.get(i).is_some_and(|c| set.contains(c));
    let two_to_nine = |i: usize| b.get(i).is_some_and(|c| (b'2'..=b'9').contains(c));
    // `[2-9][0-9]{2}[\-. ][0-9]{4}` at `i`.
    let tail = |i: usize| {
        (two_to_nine(i) && digit(i + 1) && digit(i + 2) && in_set(i + 3, b"-. ") && (i + 4..i + 8).all(digit))
            .then_some(i + 8)
    };
    for s in at..b.len() {
        let end = match b[s] {
            b'+' => {
                if !b.get(s + 1).is_some_and(|c| (b'1'..=b'9').contains(c)) {
                    continue;
                }
                // `(?:[ .\-]?(?:\([0-9]{1,4}\)|[0-9])){7,14}`, each unit matching one way.
                let (mut i, mut n) = (s + 2, 0);
                while n < 14 {
                    let j = if in_set(i, b" .-") { i + 1 } else { i };
                    if b.get(j) == Some(&b'(') {
                        let d = run(b, j + 1, |c| c.is_ascii_digit());
                        if !(1..=4).contains(&(d - j - 1)) || b.get(d) != Some(&b')') {
                            break;
                        }
                        i = d + 1;
                    } else if digit(j) {
                        i = j + 1;
                    } else {
                        break;
                    }
                    n += 1;
                }
                (n >= 7).then_some(i)
            }
            b'(' => {
                if !(two_to_nine(s + 1) && digit(s + 2) && digit(s + 3) && b.get(s + 4) == Some(&b')')) {
                    continue;
                }
                tail(if b.get(s + 5) == Some(&b' ') { s + 6 } else { s + 5 })
            }
            b'2'..=b'9' => {
                if !(digit(s + 1) && digit(s + 2) && in_set(s + 3, b"-. ")) {
                    continue;
                }
                tail(s + 4)
            }
            b'0' => {
                if !b.get(s + 1).is_some_and(|c| (b'1'..=b'9').contains(c)) {
                    continue;
                }
                // `[0-9]{0,4}` must end where a separator comes: the whole digit run.
                let k = run(b, s + 2, |c| c.is_ascii_digit());
                if k - (s + 2) > 4 {
                    continue;
                }
                let (mut i, mut n) = (k, 0);
                while n < 4 && in_set(i, b" -") {
                    let d = run(b, i + 1, |c| c.is_ascii_digit()) - (i + 1);
                    if d < 2 {
                        break;
                    }
                    i += 1 + d.min(6);
                    n += 1;
                }
                (n >= 1).then_some(i)
            }
            _ => continue,
        };
        if end.is_some() {
            return end.map(|e| (s, e));
        }
    }
    None
}

/// Finds where a valid IBAN starting at `start` ends (the regex may run on into the next word).
fn iban_end(b: &[u8], start: usize, max_end: usize) -> Option<usize> {
    if start > 0 && is_word(b[start - 1]) {
        return None;
    }
    let len = validate::iban_length(b.get(start..start + 2)?)?;
    let mut compact = Vec::with_capacity(len);
    let mut i = start;
    while i < max_end && compact.len() < len {
        if b[i] != b' ' {
            compact.push(b[i]);
        }
        i += 1;
    }
    if compact.len() != len || b.get(i).is_some_and(|&c| c.is_ascii_alphanumeric()) {
        return None;
    }
    validate::iban(&compact).then_some(i)
}

fn run(b: &[u8], from: usize, ok: impl Fn(u8) -> bool) -> usize {
    let mut i = from;
    while i < b.len() && ok(b[i]) {
        i += 1;
    }
    i
}

fn b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    memchr::memmem::find(hay.get(from..)?, needle).map(|i| i + from)
}

/// Extends a prefix hit to the whole secret, or rejects it.
fn match_secret(kind: Kind, b: &[u8], start: usize, pend: usize) -> Option<(usize, usize)> {
    let boundary = start == 0 || !is_word(b[start - 1]);
    match kind {
        Kind::Pem => {
            let line_end = run(b, pend, |c| c != b'\n' && c != b'\r').min(pend + 64);
            let label = &b[pend..line_end];
            memchr::memmem::find(label, b"PRIVATE KEY")?;
            let end = match find(b, b"-----END ", pend) {
                Some(e) => find(b, b"-----", e + 9).map_or(b.len(), |x| x + 5),
                None => b.len(),
            };
            Some((start, end))
        }
        Kind::Jwt => {
            if start > 0 && b64url(b[start - 1]) {
                return None;
            }
            let e1 = run(b, start, b64url);
            if e1 - start < 10 || b.get(e1) != Some(&b'.') || b.get(e1 + 1..e1 + 3) != Some(b"ey") {
                return None;
            }
            let e2 = run(b, e1 + 1, b64url);
            if e2 - e1 < 8 || b.get(e2) != Some(&b'.') {
                return None;
            }
            let mut end = run(b, e2 + 1, b64url);
            // JWE compact serialisation has five segments.
            for _ in 0..2 {
                if b.get(end) == Some(&b'.') {
                    end = run(b, end + 1, b64url);
                }
            }
            Some((start, end))
        }
        Kind::AwsKeyId => {
            let end = run(b, pend, |c| c.is_ascii_uppercase() || c.is_ascii_digit());
            (boundary && end - pend == 16 && b.get(end).is_none_or(|&c| !c.is_ascii_alphanumeric()))
                .then_some((start, end))
        }
        Kind::AwsSecretLabel => {
            let mut i = run(b, pend, |c| c.is_ascii_alphabetic() || c == b'_' || c == b'-');
            i = run(b, i, |c| matches!(c, b'"' | b'\'' | b' ' | b'\\' | b'\t'));
            if !matches!(b.get(i), Some(b':' | b'=')) {
                return None;
            }
            i = run(b, i + 1, |c| matches!(c, b'"' | b'\'' | b' ' | b'\\' | b'\t' | b'>'));
            let end = run(b, i, |c| c.is_ascii_alphanumeric() || c == b'/' || c == b'+');
            (end - i == 40 && b.get(end).is_none_or(|&c| c != b'=')).then_some((i, end))
        }
        Kind::GithubClassic => {
            let end = run(b, pend, |c| c.is_ascii_alphanumeric());
            (boundary && end - pend >= 36).then_some((start, end))
        }
        Kind::GithubPat => {
            let end = run(b, pend, is_word);
            (boundary && end - pend >= 22).then_some((start, end))
        }
        Kind::Slack => {
            let end = run(b, pend, |c| c.is_ascii_alphanumeric() || c == b'-');
            (boundary && end - pend >= 10).then_some((start, end))
        }
        Kind::Stripe => {
            let end = run(b, pend, |c| c.is_ascii_alphanumeric());
            (boundary && end - pend >= 16).then_some((start, end))
        }
        Kind::Portcullis => {
            let end = run(b, pend, |c| c.is_ascii_alphanumeric());
            (boundary && end - pend >= 30).then_some((start, end))
        }
        Kind::Bcrypt => {
            let cost = b.get(pend..pend + 3)?;
            if !(cost[0].is_ascii_digit() && cost[1].is_ascii_digit() && cost[2] == b'$') {
                return None;
            }
            let body = pend + 3;
            let end = run(b, body, |c| c.is_ascii_alphanumeric() || c == b'.' || c == b'/');
            (end - body == 53).then_some((start, end))
        }
        Kind::Argon2 => {
            let end = run(b, pend, |c| {
                c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'$' | b',' | b'.' | b'-')
            });
            let v = &b[pend..end];
            let variant_ok = v.starts_with(b"id$") || v.starts_with(b"i$") || v.starts_with(b"d$");
            (variant_ok && end - start >= 40 && v.iter().filter(|&&c| c == b'$').count() >= 3).then_some((start, end))
        }
        Kind::ShaCrypt(hash_len) => {
            let end = run(b, pend, |c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'/' | b'$' | b'='));
            let v = &b[pend..end];
            let parts: Vec<&[u8]> = v.split(|&c| c == b'$').collect();
            let ok = match parts.as_slice() {
                [salt, hash] => !salt.is_empty() && salt.len() <= 16 && hash.len() == hash_len,
                [rounds, salt, hash] => {
                    rounds.starts_with(b"rounds=") && !salt.is_empty() && salt.len() <= 16 && hash.len() == hash_len
                }
                _ => false,
            };
            ok.then_some((start, end))
        }
        Kind::Pbkdf2Passlib => {
            let end =
                run(b, pend, |c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'/' | b'+' | b'=' | b'$' | b'-'));
            let dollars = b[pend..end].iter().filter(|&&c| c == b'$').count();
            (end - start >= 40 && dollars >= 3).then_some((start, end))
        }
        Kind::Pbkdf2Django => {
            let end = run(b, pend, |c| is_word(c) || matches!(c, b'.' | b'/' | b'+' | b'=' | b'$'));
            let dollars = b[pend..end].iter().filter(|&&c| c == b'$').count();
            (boundary && end - start >= 40 && dollars >= 3).then_some((start, end))
        }
    }
}

#[cfg(test)]
mod tests {
    //! The triggers only decide whether a detector runs: the hits must be exactly those of every
    //! detector run unconditionally (the regexes as they were before the triggers, the SSN regex
    //! included), whatever the string.

    use super::*;
    use proptest::prelude::*;

    static SCANNER: std::sync::LazyLock<Scanner> =
        std::sync::LazyLock::new(|| Scanner::new([true; DataClass::ALL.len()], Vec::new()).unwrap());
    static EMAIL: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| Regex::new(EMAIL_RE).unwrap());
    static PHONE: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| Regex::new(PHONE_RE).unwrap());
    static SSN: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(r"(?-u:\b)[0-9]{3}(?:-[0-9]{2}-|\x20[0-9]{2}\x20)[0-9]{4}(?-u:\b)").unwrap()
    });

    /// Every built-in detector, no gate, no trigger.
    fn reference(sc: &Scanner, s: &str) -> Vec<Hit> {
        let b = s.as_bytes();
        let mut out = Vec::new();
        sc.scan_prefixes(b, 0, &mut out);
        for m in EMAIL.find_iter(s) {
            if email_ok(m.as_str().as_bytes()) {
                push(&mut out, 0, m.start(), m.end(), DetId::Builtin(DataClass::Email));
            }
        }
        for m in sc.card.find_iter(s) {
            let d: Vec<u8> = m.as_str().bytes().filter(u8::is_ascii_digit).collect();
            if validate::card_number(&d) && ok_edges(b, m.start(), m.end()) {
                push(&mut out, 0, m.start(), m.end(), DetId::Builtin(DataClass::CardNumber));
            }
        }
        for m in sc.iban.find_iter(s) {
            if let Some(end) = iban_end(b, m.start(), m.end()) {
                push(&mut out, 0, m.start(), end, DetId::Builtin(DataClass::Iban));
            }
        }
        for m in SSN.find_iter(s) {
            let d: Vec<u8> = m.as_str().bytes().filter(u8::is_ascii_digit).collect();
            if validate::ssn(&d) && ok_edges(b, m.start(), m.end()) {
                push(&mut out, 0, m.start(), m.end(), DetId::Builtin(DataClass::Ssn));
            }
        }
        for m in PHONE.find_iter(s) {
            if phone_ok(b, m.start(), m.end()) {
                push(&mut out, 0, m.start(), m.end(), DetId::Builtin(DataClass::Phone));
            }
        }
        out.sort_unstable_by_key(|h| h.start);
        out
    }

    fn triggered(sc: &Scanner, s: &str) -> Vec<Hit> {
        let mut out = Vec::new();
        sc.scan(s, sc.gates_for(s), &mut out);
        out
    }

    const PIECES: &[&str] = &[
        "4242424242424242",
        "4242 4242 4242 4242",
        "5555-5555-5555-4444",
        "378282246310005",
        "0000 4242 4242 4242 4242",
        "536-22-6789",
        "536 22 6789",
        "078-05-1120",
        "+1 415 555 2671",
        "+44 20 7946 0958",
        "(415) 555-2671",
        "415.555.2671",
        "020 7946 0958",
        "06 12 34 56 78",
        "DE89 3704 0044 0532 0130 00",
        "GB82WEST12345698765432",
        "NL91ABNA0417164300",
        "jane.doe@example.com",
        "j***@example.com",
        "icon@2x.png",
        "7f9c2ba4-e88f-11ee-a506-000000000001",
        "2024-01-15T10:30:00Z",
        "1,299.00",
        "order #10077",
        "AKIAIOSFODNN7EXAMPLE",
    ];

    fn text() -> impl Strategy<Value = String> {
        let piece = proptest::sample::select(PIECES).prop_map(str::to_owned);
        let glue = "[ a-zA-Z0-9+()#$:,./_@-]{0,4}";
        prop_oneof![
            proptest::collection::vec((glue, piece), 1..4).prop_map(|v| v.into_iter().map(|(g, p)| g + &p).collect()),
            "[0-9 ()+.-]{0,40}",
            "[A-Z0-9 @a-z.+-]{0,40}",
        ]
    }

    /// Every match of `re` from `at` on, as `find_at` gives them one after the other.
    fn regex_matches(re: &Regex, s: &str, at: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut at = at;
        while at <= s.len() {
            let Some(m) = re.find_at(s, at) else { break };
            out.push((m.start(), m.end()));
            at = m.end().max(at + 1);
        }
        out
    }

    /// The byte-at-a-time [`numeric_may_hit`] (before it skipped words): the reference.
    fn numeric_may_hit_bytewise(b: &[u8]) -> bool {
        // Digits since the first possible start in the current run; `NONE`: no start yet.
        const NONE: u32 = u32::MAX;
        let (mut run, mut plus) = (NONE, false);
        // The previous byte's flags; the start of the string allows a start and is not a word.
        let mut prev = 0u8;
        for (i, &c) in b.iter().enumerate() {
            let f = BYTE_FLAGS[usize::from(c)];
            if f & F_DIGIT != 0 {
                if run == NONE {
                    if prev & F_NO_START_AFTER != 0 {
                        prev = f;
                        continue;
                    }
                    run = 0;
                }
                run += 1;
                if run >= 9 || (plus && run >= 8) {
                    return true;
                }
            } else if f & F_RUN != 0 {
                if f & F_OPENER != 0 && prev & F_NO_START_AFTER == 0 {
                    if run == NONE {
                        run = 0;
                    }
                    plus |= c == b'+';
                }
            } else {
                run = NONE;
                plus = false;
                if f & F_UPPER != 0 && prev & F_WORD == 0 && iban_start(b, i) {
                    return true;
                }
            }
            prev = f;
        }
        false
    }

    /// A hand-written matcher: the first match at or after a position.
    type Find = fn(&[u8], usize) -> Option<(usize, usize)>;

    fn hand_matches(find: Find, s: &str, at: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut at = at;
        while let Some(m) = find(s.as_bytes(), at) {
            out.push(m);
            at = m.1;
        }
        out
    }

    /// Strings made to hit the corners of the e-mail regex: local-part and label bytes, dots,
    /// several `@`, word bytes around, labels and local parts near their length limits.
    fn email_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[a-c0-9._%+@-]{1,6}",
            "[A-Za-z]{1,3}",
            Just("@".to_owned()),
            Just(".".to_owned()),
            Just("_".to_owned()),
            Just("é".to_owned()),
            "[a-z]{20,30}",
            "[a-z0-9-]{60,66}",
            proptest::sample::select(&["jane.doe@example.com", "icon@2x.png", "a@b.co.uk", "x@y-z.io", "é@é.fr"][..])
                .prop_map(str::to_owned),
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
    }

    /// Strings made to hit the corners of the phone regex.
    fn phone_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[0-9 ().+-]{1,6}",
            "[0-9]{1,8}",
            "[a-z_:,]{1,2}",
            proptest::sample::select(
                &[
                    "+1 415 555 2671",
                    "+44 (20) 7946 0958",
                    "(415) 555-2671",
                    "415.555.2671",
                    "020 7946 0958",
                    "06 12 34 56 78",
                    "+49(0)30-1234567"
                ][..]
            )
            .prop_map(str::to_owned),
        ];
        proptest::collection::vec(piece, 0..10).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        #[test]
        fn email_find_is_the_regex(s in email_text(), at in 0usize..8) {
            let at = (0..=at.min(s.len())).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
            prop_assert_eq!(hand_matches(email_find, &s, at), regex_matches(&EMAIL, &s, at), "{:?} from {}", s, at);
        }

        #[test]
        fn has_prefix_short_is_the_automaton(s in prefix_text()) {
            prop_assert_eq!(has_prefix_short(s.as_bytes()), SCANNER.prefixes.is_match(&s), "{:?}", s);
        }

        #[test]
        fn gates_if_may_hit_is_gates_for_and_may_hit(s in prop_oneof![prefix_text(), email_text(), phone_text(), text()]) {
            let g = SCANNER.gates_for(&s);
            let old = SCANNER.may_hit(&s, g).then_some((g.has_at, g.has_prefix));
            prop_assert_eq!(SCANNER.gates_if_may_hit(&s).map(|g| (g.has_at, g.has_prefix)), old, "{:?}", s);
        }

        #[test]
        fn numeric_may_hit_skips_words_exactly(s in prop_oneof![text(), phone_text(), "[0-9A-Za-z_ .()+$#:,/-]{0,40}"]) {
            prop_assert_eq!(numeric_may_hit(s.as_bytes()), numeric_may_hit_bytewise(s.as_bytes()), "{:?}", s);
        }

        #[test]
        fn phone_find_is_the_regex(s in phone_text(), at in 0usize..8) {
            let at = (0..=at.min(s.len())).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
            prop_assert_eq!(hand_matches(phone_find, &s, at), regex_matches(&PHONE, &s, at), "{:?} from {}", s, at);
        }
    }

    /// Strings of prefix pieces (whole, cut, with a changed byte) and other bytes.
    fn prefix_text() -> impl Strategy<Value = String> {
        let prefix = proptest::sample::select(PREFIXES.iter().map(|(p, _)| *p).collect::<Vec<_>>());
        let piece = prop_oneof![
            prefix.clone().prop_map(str::to_owned),
            (prefix.clone(), 1usize..12).prop_map(|(p, n)| p[..n.min(p.len())].to_owned()),
            (prefix, 0usize..12, "[a-zA-Z0-9$_ -]").prop_map(|(p, n, c)| {
                let n = n.min(p.len() - 1);
                format!("{}{}{}", &p[..n], c, &p[n + 1..])
            }),
            "[a-zA-Z0-9$_ *@.é-]{0,6}",
        ];
        proptest::collection::vec(piece, 0..6).prop_map(|v| v.concat())
    }

    #[test]
    fn hand_matchers_agree_with_the_regexes_on_the_corpus() {
        let mut corpus: Vec<String> = PIECES.iter().map(|p| (*p).to_owned()).collect();
        corpus.extend(
            [
                "Contact: jane.doe@example.com, +1 415 555 2671 or (415) 555-2671.",
                "a@4242424242424242.com",
                "x@sub.example.co.uk_y z@a.b.c.de-f",
                "mail me@localhost or me@ex-.com or me@-ex.com or me@ex.c0m or me@ex.toolongtoolongtoolongtoolong",
                "tel +49 (0)30 1234567 / 0049 30 123456 / 030-1234567890123",
                "SSN 536-22-6789, order #10077, 2024-01-15T10:30:00Z",
            ]
            .map(str::to_owned),
        );
        corpus.push(format!("{}@example.com", "a".repeat(70)));
        corpus.push(format!("user@{}.com", "b".repeat(64)));
        corpus.push(format!("user@{}.com", "b".repeat(65)));
        corpus.extend(PREFIXES.iter().map(|(p, _)| format!("x {p}…")));
        corpus.extend(
            ["c***@example.com", "+* *** *** 0012", "************4242", "$2b", "xox", "-----BEGIN"].map(str::to_owned),
        );
        for s in &corpus {
            assert_eq!(has_prefix_short(s.as_bytes()), SCANNER.prefixes.is_match(s), "{s}");
            let g = SCANNER.gates_for(s);
            let old = SCANNER.may_hit(s, g).then_some((g.has_at, g.has_prefix));
            assert_eq!(SCANNER.gates_if_may_hit(s).map(|g| (g.has_at, g.has_prefix)), old, "{s}");
            assert_eq!(hand_matches(email_find, s, 0), regex_matches(&EMAIL, s, 0), "{s}");
            assert_eq!(hand_matches(phone_find, s, 0), regex_matches(&PHONE, s, 0), "{s}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn triggers_lose_no_detection(s in text()) {
            let hits = triggered(&SCANNER, &s);
            prop_assert!(hits.is_empty() || SCANNER.may_hit(&s, SCANNER.gates_for(&s)), "{:?}", s);
            prop_assert_eq!(hits, reference(&SCANNER, &s), "{:?}", s);
        }
    }

    #[test]
    fn triggers_skip_ids_uuids_and_timestamps() {
        for s in ["7f9c2ba4-e88f-11ee-a506-000000000001", "2024-06-01T08:00:00.123Z", "order #177 shipped", "1299.50"] {
            let t = NumericTriggers::of(s.as_bytes());
            assert!(!t.card && !t.phone && !t.iban, "{s}: {t:?}");
        }
        let t = NumericTriggers::of(b"call +1 415 555 2671, card 4242 4242 4242 4242, DE89370400440532013000");
        assert!(t.card && t.phone && t.iban);
        assert!(!email_trigger(b"j***@example.com") && email_trigger(b"mail jane@example.com"));
        // A run counts from where a match can start: not after a word byte nor `-./+$#`.
        for s in [
            "2024-06-01T08:00:00.123Z",
            "7f9c2ba4-e88f-11ee-a506-0a0000003e8b",
            "7f9c2ba4-e88f-11ee-a506-000000000001",
            "Widget 123456",
            "ORD-4242424242424242",
            "v1.4242424242424242",
            "x+14155552671",
        ] {
            assert!(!numeric_may_hit(s.as_bytes()), "{s}");
        }
        for s in [
            "536-22-6789",
            "+1 415 5550",
            "x DE89370400440532013000",
            "ab12 4242424242424242",
            "(415) 555-2671",
            "tel:+14155552671",
            "id 7f9c2ba4 000000000001",
        ] {
            assert!(numeric_may_hit(s.as_bytes()), "{s}");
        }
    }
}
