//! Applying a compiled policy to a response body: a single forward pass over the JSON text that
//! writes the output as it goes, from the first edit on (replace a string, drop a member with its
//! comma, null an array element), and copies the input when there is none. Everything not edited
//! (key order, number precision, formatting, untouched strings) comes out byte for byte.

use std::borrow::Cow;
use std::sync::Arc;

use crate::class::{Action, DataClass, Finding, Location};
use crate::detect::{DetId, Gates, Hit};
use crate::mask::{self, FIELD_MASK, REDACTED};
use crate::pointer::{self, Step};
use crate::policy::{CompiledPolicy, Forced};
use crate::shape::{ProjState, Shape};

/// The result of applying a policy to a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The body to send: a copy of the input when nothing changed, the input with its edits applied
    /// otherwise (the formatting of what was not edited is kept), and empty
    /// when `blocked` (so that a blocked body cannot be served by mistake).
    pub body: Vec<u8>,
    /// What was found, in document order. No values, only classes, places and actions.
    pub findings: Vec<Finding>,
    /// Whether `body` differs from the input (masking, redaction, hashing or shaping).
    pub changed: bool,
    /// A `Block` action fired: answer 502 (problem+json) and raise an alert-level event.
    pub blocked: bool,
}

/// Why a body could not be processed. The caller fails closed (502) or, by route policy, serves
/// the body unscanned and counts it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The body exceeds the policy's `max_body_bytes`.
    #[error("body is {size} bytes, more than the {limit} allowed")]
    TooLarge {
        /// Body size.
        size: usize,
        /// The policy's limit.
        limit: usize,
    },
    /// The body is not UTF-8.
    #[error("body is not UTF-8")]
    NotUtf8,
    /// The body is not JSON. Only the position is kept: never a piece of the body.
    #[error("body is not valid JSON (line {line}, column {column})")]
    InvalidJson {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// The body nests deeper than the policy's `max_depth`.
    #[error("JSON nesting deeper than {limit}")]
    TooDeep {
        /// The policy's limit.
        limit: usize,
    },
}

const WALK_ERROR: ApplyError = ApplyError::InvalidJson { line: 0, column: 0 };

/// Called once per acted-on hit: class, detector, action, byte range in the scanned string.
type Recorder<'r> = dyn FnMut(DataClass, &Arc<str>, Action, usize, usize) + 'r;

/// Where the output stood when a member or element began: removing it (or its comma) rolls the
/// output back to here.
#[derive(Clone, Copy)]
struct Mark {
    out: usize,
    copied: usize,
}

enum Out {
    Kept,
    Remove,
}

/// What [`Walker::lean_scalar`] made of a value.
enum Lean {
    /// Walked; nothing to do.
    Done,
    /// An unescaped string, walked, that the detectors must see.
    Hit(Span, Gates),
    /// Not walked: take the full path.
    Full,
}

enum StrResult {
    Unchanged,
    Replaced(String),
    Remove,
}

#[derive(Clone, Copy)]
struct Ctx<'p> {
    forced: Option<&'p Forced>,
    allow: bool,
    proj: ProjState,
}

struct Walker<'p, 'a> {
    p: &'p CompiledPolicy,
    shape: Option<&'p Shape>,
    src: &'a [u8],
    text: &'a str,
    pos: usize,
    /// The output: the input up to `copied` with every edit so far applied. Written from the first
    /// edit on (sized once for the whole body), in document order; everything not edited
    /// (formatting included) is copied as is. Empty while nothing changed.
    out: Vec<u8>,
    copied: usize,
    changed: bool,
    /// An edit came before the part already written (a walker bug): fail closed.
    broken: bool,
    path: Vec<Step<'a>>,
    /// The rendered pointer of the path's parent part, shared by the findings under it.
    prefix: pointer::PrefixCache,
    findings: Vec<Finding>,
    blocked: bool,
    /// Positions of `@` and of the secret prefixes in the body, consumed in document order.
    at: Positions,
    pre: Positions,
    name_buf: Vec<u8>,
    scratch: Scratch,
}

/// Buffers [`CompiledPolicy::rewrite`] reuses from one string to the next: the hits, and a
/// string to write a rewritten value into (given back after the edit is recorded).
#[derive(Default)]
struct Scratch {
    hits: Vec<Hit>,
    spare: String,
}

/// The error for invalid JSON at byte `pos`: 1-based line and column (in bytes), never a piece of
/// the body.
fn line_col(body: &[u8], pos: usize) -> ApplyError {
    let before = body.get(..pos).unwrap_or(body);
    let line = memchr::memchr_iter(b'\n', before).count() + 1;
    let column = before.len() - memchr::memrchr(b'\n', before).map_or(0, |i| i + 1) + 1;
    ApplyError::InvalidJson { line, column }
}

/// A sorted list of byte positions, queried with ranges that only move forward (the walker
/// visits strings in document order): amortised O(1) per query.
struct Positions {
    list: Vec<usize>,
    next: usize,
}

impl Positions {
    fn new(list: Vec<usize>) -> Self {
        Positions { list, next: 0 }
    }

    /// Whether a position lies in `[start, end)`; `start` must not go backwards between calls.
    fn any_in(&mut self, start: usize, end: usize) -> bool {
        while self.list.get(self.next).is_some_and(|&p| p < start) {
            self.next += 1;
        }
        self.list.get(self.next).is_some_and(|&p| p < end)
    }
}

/// A JSON string in the body: its content `start..end` (without the quotes), whether it holds
/// escapes, and its ASCII digits (counted on the raw text: exact when `esc` is false).
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    esc: bool,
    digits: usize,
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// How many bytes of `m` have their high bit set (`m` has no other bit set). A multiply sums
/// the bytes: the release build targets CPUs without `popcnt`, where `count_ones` is a
/// dozen instructions.
fn bytes_set(m: u64) -> usize {
    ((m >> 7).wrapping_mul(LO) >> 56) as usize
}

/// Offset (from `i`) of the first `"`, `\` or control byte of `src[i..]`, and the ASCII digits
/// before it; `None` when the body ends first. Eight bytes per step (SWAR): the usual
/// zero-byte tricks give the lowest matching byte exactly, which is all that is used.
#[inline(always)]
fn special_in_words(src: &[u8], i: usize) -> Option<(usize, usize)> {
    let rest = src.get(i..)?;
    let mut off = 0usize;
    let mut digits = 0usize;
    let mut chunks = rest.chunks_exact(8);
    for chunk in &mut chunks {
        let w = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).ok()?);
        let q = w ^ (LO * u64::from(b'"'));
        let bs = w ^ (LO * u64::from(b'\\'));
        let special = ((q.wrapping_sub(LO) & !q) | (bs.wrapping_sub(LO) & !bs) | (w.wrapping_sub(LO * 0x20) & !w)) & HI;
        // Per byte and exact (no carry crosses a byte): high bit set for `0`..=`9`.
        let x = w & (LO * 0x7f);
        let dig = x.wrapping_add(LO * 0x50) & !x.wrapping_add(LO * 0x46) & !w & HI;
        if special != 0 {
            let k = special.trailing_zeros() / 8;
            let before = if k == 0 { 0 } else { u64::MAX >> (64 - 8 * k) };
            digits += bytes_set(dig & before);
            return Some((off + k as usize, digits));
        }
        digits += bytes_set(dig);
        off += 8;
    }
    for (j, &c) in chunks.remainder().iter().enumerate() {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return Some((off + j, digits));
        }
        digits += usize::from(c.is_ascii_digit());
    }
    None
}

/// Appends `s` as a JSON string; the runs between the bytes to escape are found a word at a
/// time ([`special_in_words`]) and copied whole.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push(b'"');
    let b = s.as_bytes();
    let mut last = 0;
    while let Some((k, _)) = special_in_words(b, last) {
        let i = last + k;
        let Some(&c) = b.get(i) else { break };
        out.extend_from_slice(&b[last..i]);
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            c => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(c >> 4)], HEX[usize::from(c & 0xf)]]),
        }
        last = i + 1;
    }
    out.extend_from_slice(&b[last..]);
    out.push(b'"');
}

impl CompiledPolicy {
    /// Applies the policy (and an optional consumer shape) to a JSON body.
    pub fn apply_json(&self, body: &[u8], shape: Option<&Shape>) -> Result<Applied, ApplyError> {
        if body.len() > self.max_body_bytes {
            return Err(ApplyError::TooLarge { size: body.len(), limit: self.max_body_bytes });
        }
        let text = std::str::from_utf8(body).map_err(|_| ApplyError::NotUtf8)?;
        let at: Vec<usize> = memchr::memchr_iter(b'@', body).collect();
        let pre: Vec<usize> = self.scanner.prefixes.find_iter(body).map(|m| m.start()).collect();
        let mut w = Walker {
            p: self,
            shape,
            src: body,
            text,
            pos: 0,
            out: Vec::new(),
            copied: 0,
            changed: false,
            broken: false,
            path: Vec::new(),
            prefix: pointer::PrefixCache::default(),
            findings: Vec::new(),
            blocked: false,
            at: Positions::new(at),
            pre: Positions::new(pre),
            name_buf: Vec::new(),
            scratch: Scratch::default(),
        };
        let proj = shape.map_or(ProjState::ALL, Shape::root);
        let ctx = Ctx { forced: None, allow: false, proj };
        // The walker is also the validator (RFC 8259 grammar, no control characters in strings,
        // nesting bounded by `max_depth`): there is no separate parsing pass.
        if let Err(e) = w.root(ctx) {
            return Err(match e {
                ApplyError::InvalidJson { .. } => line_col(body, w.pos),
                e => e,
            });
        }
        if w.broken {
            return Err(WALK_ERROR);
        }
        let Walker { mut out, copied, changed, findings, blocked, .. } = w;
        let body = if blocked {
            Vec::new()
        } else if changed {
            out.extend_from_slice(body.get(copied..).ok_or(WALK_ERROR)?);
            out
        } else {
            body.to_vec()
        };
        Ok(Applied { body, findings, changed: changed || blocked, blocked })
    }

    /// Applies the policy to a `text/*` body. `Mask` and `Hash` rewrite in place, `Redact`
    /// replaces the value by `[redacted]`, `Block` blocks. Field rules and shapes do not apply.
    /// Finding locations are byte ranges of the input (for values that only became visible after a
    /// first rewrite, of the rewritten text).
    pub fn apply_text(&self, text: &str) -> Result<Applied, ApplyError> {
        if text.len() > self.max_body_bytes {
            return Err(ApplyError::TooLarge { size: text.len(), limit: self.max_body_bytes });
        }
        let mut findings = Vec::new();
        let mut blocked = false;
        let mut scratch = Scratch::default();
        let result = self.rewrite(
            text,
            self.scanner.gates_for(text),
            false,
            &mut scratch,
            &mut |class, detector, action, s, e| {
                blocked |= action == Action::Block;
                findings.push(Finding {
                    class,
                    detector: detector.clone(),
                    location: Location::Text { start: s, end: e },
                    action,
                });
            },
        );
        let (body, changed) = match result {
            _ if blocked => (Vec::new(), true),
            StrResult::Replaced(out) => (out.into_bytes(), true),
            StrResult::Unchanged | StrResult::Remove => (text.as_bytes().to_vec(), false),
        };
        Ok(Applied { body, findings, changed, blocked })
    }

    /// Scans `val` and applies the class actions until nothing acted on is left: replacing one
    /// value can expose a neighbour that its context hid (`4242…4242+1 415 555 2671`), and the
    /// output must be a fixed point. After a few rounds, the whole string is redacted (fail closed).
    fn rewrite(
        &self,
        val: &str,
        gates: Gates,
        json: bool,
        scratch: &mut Scratch,
        record: &mut Recorder<'_>,
    ) -> StrResult {
        const ROUNDS: usize = 4;
        let Scratch { hits, spare } = scratch;
        let mut cur: Option<String> = None;
        for round in 0..=ROUNDS {
            let text = cur.as_deref().unwrap_or(val);
            hits.clear();
            // A masked value is scanned again only if the detectors can find something in it
            // (`may_hit` false: `scan` finds nothing, `triggers_lose_no_detection`).
            let g = if round == 0 {
                gates
            } else {
                match self.scanner.gates_if_may_hit(text) {
                    Some(g) => g,
                    None => break,
                }
            };
            self.scanner.scan(text, g, hits);
            if hits.is_empty() {
                break;
            }
            if round == ROUNDS {
                return if json { StrResult::Remove } else { StrResult::Replaced(REDACTED.to_owned()) };
            }
            match self.rewrite_once(text, hits, json, round == 0, spare, record) {
                StrResult::Unchanged => break,
                StrResult::Remove => return StrResult::Remove,
                StrResult::Replaced(next) => {
                    if let Some(old) = cur.replace(next) {
                        *spare = old;
                    }
                }
            }
        }
        match cur {
            Some(out) => StrResult::Replaced(out),
            None => StrResult::Unchanged,
        }
    }

    /// One pass of [`Self::rewrite`] over sorted, disjoint hits. Report and allow hits are recorded
    /// in the first round only. The output is written into `spare`'s buffer (given back unless
    /// it is the result).
    fn rewrite_once(
        &self,
        val: &str,
        hits: &[Hit],
        json: bool,
        first: bool,
        spare: &mut String,
        record: &mut Recorder<'_>,
    ) -> StrResult {
        // Whether a hit is the whole value but for surrounding whitespace.
        let whole = |h: &Hit| {
            let lead = val.len() - val.trim_start().len();
            h.start == lead && h.end == lead + val.trim().len()
        };
        let mut out = std::mem::take(spare);
        out.clear();
        out.reserve(val.len());
        let mut last = 0;
        let mut changed = false;
        for h in hits {
            let (class, detector, action) = self.resolve(h.det);
            if action == Action::Allow || (!first && action == Action::Report) {
                continue;
            }
            record(class, detector, action, h.start, h.end);
            if json && action == Action::Redact && whole(h) {
                *spare = out;
                return StrResult::Remove;
            }
            if matches!(action, Action::Allow | Action::Report | Action::Block) {
                continue;
            }
            let value = val.get(h.start..h.end).unwrap_or("");
            out.push_str(val.get(last..h.start).unwrap_or(""));
            self.replace_into(&mut out, class, action, value);
            last = h.end;
            changed = true;
        }
        if !changed {
            *spare = out;
            return StrResult::Unchanged;
        }
        out.push_str(val.get(last..).unwrap_or(""));
        StrResult::Replaced(out)
    }

    /// Class, detector name and action of a hit.
    fn resolve(&self, det: DetId) -> (DataClass, &Arc<str>, Action) {
        match det {
            DetId::Builtin(c) => (c, &self.class_names[c.index()], self.actions[c.index()]),
            DetId::Custom(i) => match self.scanner.customs.get(usize::from(i)) {
                Some(c) => (c.class, &c.name, c.action.unwrap_or(self.actions[c.class.index()])),
                None => (DataClass::NationalId, &self.class_names[DataClass::NationalId.index()], Action::Mask),
            },
        }
    }

    /// Appends the in-place replacement of a detected value for `Mask`/`MaskKeepLast`/`Hash`/
    /// `Redact` to `out`; the actions that leave the value (`Allow`, `Report`, `Block`) never
    /// get here.
    fn replace_into(&self, out: &mut String, class: DataClass, action: Action, value: &str) {
        match action {
            Action::Mask => mask::mask_detected_into(out, class, value),
            Action::MaskKeepLast(n) if class.is_secret() => mask::mask_chars_keep_last_into(out, value, usize::from(n)),
            Action::MaskKeepLast(n) => mask::mask_alnum_keep_last_into(out, value, usize::from(n)),
            Action::Hash => match &self.tokenizer {
                Some(t) => out.push_str(&t.token(value)),
                None => out.push_str(REDACTED),
            },
            Action::Redact | Action::Allow | Action::Report | Action::Block => out.push_str(REDACTED),
        }
    }
}

impl<'p, 'a> Walker<'p, 'a> {
    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), ApplyError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(WALK_ERROR)
        }
    }

    /// At a `"`: returns the content range, whether it holds escapes and how many ASCII digits
    /// it holds (exact when it holds no escape); leaves `pos` after it. Refuses control
    /// characters and malformed escapes (as any JSON parser does).
    fn string_span(&mut self) -> Result<Span, ApplyError> {
        self.expect(b'"')?;
        let start = self.pos;
        let mut i = start;
        let mut esc = false;
        let mut digits = 0usize;
        loop {
            // Eight bytes at a time: most strings (ids, names, dates) end within one or two words,
            // where a memchr call would cost more than the whole scan.
            let (k, d) = match special_in_words(self.src, i) {
                Some((k, d)) => (k, d),
                None => {
                    self.pos = self.src.len();
                    return Err(WALK_ERROR);
                }
            };
            digits += d;
            let at = i + k;
            let Some(&c) = self.src.get(at) else {
                self.pos = self.src.len();
                return Err(WALK_ERROR);
            };
            if c == b'"' {
                self.pos = at + 1;
                return Ok(Span { start, end: at, esc, digits });
            }
            if c != b'\\' {
                self.pos = at;
                return Err(WALK_ERROR);
            }
            esc = true;
            let j = at + 1;
            i = match self.src.get(j) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => j + 1,
                Some(b'u') if self.src.get(j + 1..j + 5).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) => j + 5,
                _ => {
                    self.pos = j;
                    return Err(WALK_ERROR);
                }
            };
        }
    }

    /// At a number: checks its grammar (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`) and
    /// leaves `pos` after it.
    fn number_span(&mut self) -> Result<(), ApplyError> {
        let b = self.src;
        let digits = |mut i: usize| {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            i
        };
        let mut i = self.pos;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        i = match b.get(i) {
            Some(b'0') => i + 1,
            Some(b'1'..=b'9') => digits(i + 1),
            _ => {
                self.pos = i;
                return Err(WALK_ERROR);
            }
        };
        if b.get(i) == Some(&b'.') {
            let end = digits(i + 1);
            if end == i + 1 {
                self.pos = end;
                return Err(WALK_ERROR);
            }
            i = end;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let end = digits(i);
            if end == i {
                self.pos = end;
                return Err(WALK_ERROR);
            }
            i = end;
        }
        self.pos = i;
        Ok(())
    }

    fn literal(&mut self) -> Result<(), ApplyError> {
        let rest = self.src.get(self.pos..).unwrap_or_default();
        match [&b"true"[..], b"false", b"null"].into_iter().find(|l| rest.starts_with(l)) {
            Some(l) => {
                self.pos += l.len();
                Ok(())
            }
            None => Err(WALK_ERROR),
        }
    }

    /// The whole document: one value (walked, or skipped and replaced by `null` when a shape does
    /// not keep a scalar root) and nothing but whitespace after it.
    fn root(&mut self, ctx: Ctx<'p>) -> Result<(), ApplyError> {
        self.ws();
        let root_start = self.pos;
        let mark = self.mark();
        if !ctx.proj.full && !matches!(self.peek(), Some(b'{' | b'[')) {
            self.skip_value(0)?;
            self.replace_range(mark, root_start, self.pos, b"null");
        } else if let Out::Remove = self.value(ctx, 0)? {
            self.replace_range(mark, root_start, self.pos, b"null");
        }
        self.ws();
        if self.pos == self.src.len() { Ok(()) } else { Err(WALK_ERROR) }
    }

    fn str_at(&self, start: usize, end: usize) -> Result<&'a str, ApplyError> {
        self.text.get(start..end).ok_or(WALK_ERROR)
    }

    /// The decoded content of a string whose content is `start..end`.
    fn decode(&self, start: usize, end: usize, esc: bool) -> Result<Cow<'a, str>, ApplyError> {
        if esc {
            let quoted = self.str_at(start - 1, end + 1)?;
            serde_json::from_str::<String>(quoted).map(Cow::Owned).map_err(|_| WALK_ERROR)
        } else {
            self.str_at(start, end).map(Cow::Borrowed)
        }
    }

    /// Skips (and validates) a value at nesting `depth` that is dropped or kept as is.
    fn skip_value(&mut self, depth: usize) -> Result<(), ApplyError> {
        if depth >= self.p.max_depth {
            return Err(ApplyError::TooDeep { limit: self.p.max_depth });
        }
        self.ws();
        match self.peek() {
            Some(b'"') => self.string_span().map(|_| ()),
            Some(open @ (b'{' | b'[')) => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.pos += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    if open == b'{' {
                        self.ws();
                        self.string_span()?;
                        self.ws();
                        self.expect(b':')?;
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(c) if c == close => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return Err(WALK_ERROR),
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => self.number_span(),
            _ => self.literal(),
        }
    }

    fn location(&mut self) -> Location {
        Location::Pointer(self.prefix.render(&self.path))
    }

    /// Pops the last step of the path (and the cached pointer prefix if it covered it).
    fn pop_step(&mut self) {
        self.path.pop();
        self.prefix.truncate(self.path.len());
    }

    fn record(&mut self, class: DataClass, detector: Arc<str>, action: Action) {
        let location = self.location();
        self.findings.push(Finding { class, detector, location, action });
        if action == Action::Block {
            self.blocked = true;
        }
    }

    fn value(&mut self, ctx: Ctx<'p>, depth: usize) -> Result<Out, ApplyError> {
        if depth >= self.p.max_depth {
            return Err(ApplyError::TooDeep { limit: self.p.max_depth });
        }
        self.ws();
        match self.peek() {
            Some(b'{') => self.object(ctx, depth + 1),
            Some(b'[') => self.array(ctx, depth + 1),
            Some(b'"') => self.string_value(ctx),
            Some(b'-' | b'0'..=b'9') => self.number(ctx),
            Some(b't' | b'f' | b'n') => {
                self.literal()?;
                Ok(Out::Kept)
            }
            _ => Err(WALK_ERROR),
        }
    }

    /// The gates of a string (decoded `val`, at `sp` in the body) when the detectors can find
    /// something in it ([`crate::detect::Scanner::may_hit`]); `None` for most strings.
    fn str_may_hit(&mut self, val: &str, sp: Span) -> Option<Gates> {
        let sc = &self.p.scanner;
        if sp.esc {
            let gates = sc.gates_for(val);
            return sc.may_hit(val, gates).then_some(gates);
        }
        let gates = Gates { has_at: self.at.any_in(sp.start, sp.end), has_prefix: self.pre.any_in(sp.start, sp.end) };
        sc.may_hit_counted(val, gates, sp.digits).then_some(gates)
    }

    /// Whether the members or elements of a container at `depth` can take the lean path: no
    /// shape, no pointer rule, no field rule in force above, and room for one more level.
    fn lean(&self, ctx: Ctx<'p>, depth: usize) -> bool {
        self.shape.is_none()
            && self.p.pointer_rules.is_empty()
            && ctx.forced.is_none()
            && !ctx.allow
            && depth < self.p.max_depth
    }

    /// Whether the detectors can skip the unescaped string at `sp` ([`Self::str_may_hit`] is
    /// `None`), from the body-wide `@` and prefix positions and the digits counted in the span.
    fn quick_skip(&mut self, sp: Span) -> bool {
        !sp.esc && self.raw_may_hit(sp).is_none()
    }

    /// [`Self::str_may_hit`] for an unescaped string, from its bytes in the body.
    fn raw_may_hit(&mut self, sp: Span) -> Option<Gates> {
        let gates = Gates { has_at: self.at.any_in(sp.start, sp.end), has_prefix: self.pre.any_in(sp.start, sp.end) };
        let b = self.src.get(sp.start..sp.end)?;
        self.p.scanner.may_hit_bytes(b, gates, sp.digits).then_some(gates)
    }

    /// The lean path for a value in a container that [`Self::lean`] allows: a scalar that needs
    /// nothing (a literal, a number that cannot be a card, a string the detectors skip) is
    /// validated and passed; a string the detectors must see is handed back with its gates, to
    /// be pushed onto the path and processed ([`Self::string_hit`]); for anything else `pos` is
    /// left at the value for the full path.
    fn lean_scalar(&mut self) -> Result<Lean, ApplyError> {
        let at = self.pos;
        match self.peek() {
            Some(b'"') => {
                let sp = self.string_span()?;
                if !sp.esc {
                    return Ok(match self.raw_may_hit(sp) {
                        None => Lean::Done,
                        Some(gates) => Lean::Hit(sp, gates),
                    });
                }
            }
            Some(b'-' | b'0'..=b'9') => {
                self.number_span()?;
                if !(12..=19).contains(&(self.pos - at)) || !self.p.scanner.enabled(DataClass::CardNumber) {
                    return Ok(Lean::Done);
                }
            }
            Some(b't' | b'f' | b'n') => {
                self.literal()?;
                return Ok(Lean::Done);
            }
            _ => {}
        }
        self.pos = at;
        Ok(Lean::Full)
    }

    /// An unescaped string at `sp` (already walked) that the detectors must see, with no field
    /// rule in force: detection and actions, as [`Self::string_value`] does.
    fn string_hit(&mut self, sp: Span, gates: Gates) -> Result<Out, ApplyError> {
        let val = self.str_at(sp.start, sp.end)?;
        match self.process_str(val, gates)? {
            StrResult::Unchanged => {}
            StrResult::Replaced(new) => {
                self.push_str_edit(sp.start - 1, sp.end + 1, &new);
                self.scratch.spare = new;
            }
            StrResult::Remove => return Ok(Out::Remove),
        }
        Ok(Out::Kept)
    }

    /// The rule for the child reached by `step` from the current path, if any.
    fn rule_for(&mut self, step: &Step<'_>) -> Option<&'p Forced> {
        let p = self.p;
        let depth = self.path.len() + 1;
        if depth <= p.max_pointer_len {
            for (pat, forced) in &p.pointer_rules {
                if pat.len() == depth
                    && pat.last().is_some_and(|s| s.matches(step))
                    && pointer::matches_path(&pat[..depth - 1], &self.path)
                {
                    return Some(forced);
                }
            }
        }
        let Step::Key(k) = step else { return None };
        self.name_rule(k)
    }

    /// The rule a member's name selects (name rules and sensitive names), if any.
    fn name_rule(&mut self, k: &str) -> Option<&'p Forced> {
        let p = self.p;
        if let (Some(&first), Some(&last)) = (k.as_bytes().first(), k.as_bytes().last())
            && first.is_ascii_alphanumeric()
            && last.is_ascii_alphanumeric()
            && p.name_sigs[crate::policy::name_sig(first.to_ascii_lowercase(), last.to_ascii_lowercase())] == 0
        {
            // The normalised name starts and ends with these bytes (lowercased), whatever lies
            // between them, and no configured name does.
            return None;
        }
        if p.names.is_empty() || k.len() > p.max_name_len * 3 + 8 {
            return None;
        }
        if k.is_ascii() {
            // Length, first and last byte of the normalised name, without building it: most keys
            // fail the filter and are never copied nor hashed.
            let (mut n, mut first, mut last, mut plain) = (0usize, 0u8, 0u8, true);
            for c in k.bytes() {
                if matches!(c, b'_' | b'-' | b'.' | b' ') {
                    plain = false;
                    continue;
                }
                plain &= !c.is_ascii_uppercase();
                let c = c.to_ascii_lowercase();
                if n == 0 {
                    first = c;
                }
                last = c;
                n += 1;
            }
            let maybe = if n < 64 {
                p.name_sigs[crate::policy::name_sig(first, last)] & (1u64 << n) != 0
            } else {
                p.long_names
            };
            if !maybe {
                return None;
            }
            if plain {
                return p.names.get(k.as_bytes());
            }
            self.name_buf.clear();
            self.name_buf
                .extend(k.bytes().filter(|c| !matches!(c, b'_' | b'-' | b'.' | b' ')).map(|c| c.to_ascii_lowercase()));
        } else {
            self.name_buf.clear();
            self.name_buf.extend_from_slice(crate::policy::normalize_field_name(k).as_bytes());
        }
        p.names.get(self.name_buf.as_slice())
    }

    fn child_ctx(parent: Ctx<'p>, rule: Option<&'p Forced>, proj: ProjState) -> Ctx<'p> {
        match rule {
            Some(f) if f.action == Action::Allow => Ctx { forced: None, allow: true, proj },
            Some(f) => Ctx { forced: Some(f), allow: false, proj },
            None => Ctx { forced: parent.forced, allow: parent.allow, proj },
        }
    }

    /// Where the output stands.
    fn mark(&self) -> Mark {
        Mark { out: self.out.len(), copied: self.copied }
    }

    /// Copies the input up to `start` (the beginning of an edit) to the output, with room for
    /// `more` bytes after it. The first edit sizes the output for the whole body (plus some
    /// slack), once: no doubling copies of a large buffer.
    fn copy_to(&mut self, start: usize, more: usize) {
        self.changed = true;
        let Some(gap) = self.src.get(self.copied..start) else {
            self.broken = true;
            return;
        };
        let need = self.out.len() + gap.len() + more;
        if need > self.out.capacity() {
            let slack = self.src.len() / 64 + 64;
            self.out.reserve_exact(need - self.out.len() + slack);
        }
        self.out.extend_from_slice(gap);
    }

    /// Replaces `start..end` by `bytes`.
    fn push_edit(&mut self, start: usize, end: usize, bytes: &[u8]) {
        self.copy_to(start, bytes.len() + self.src.len().saturating_sub(end));
        self.out.extend_from_slice(bytes);
        self.copied = end;
    }

    /// Replaces `start..end` by the JSON string `s`.
    fn push_str_edit(&mut self, start: usize, end: usize, s: &str) {
        self.copy_to(start, s.len() + 2 + self.src.len().saturating_sub(end));
        write_json_str(&mut self.out, s);
        self.copied = end;
    }

    /// Replaces `from..to`, a member or element that began at `mark`, by `rep`: what its walk
    /// wrote is dropped first.
    fn replace_range(&mut self, mark: Mark, from: usize, to: usize, rep: &[u8]) {
        self.out.truncate(mark.out);
        self.copied = mark.copied;
        self.push_edit(from, to, rep);
    }

    /// Removes member/element `start..end` (begun at `mark`) with the comma before it (if any).
    /// The first member kept after removed ones loses its comma in [`Self::kept`].
    fn remove(&mut self, mark: Mark, comma: Option<usize>, start: usize, end: usize) {
        self.replace_range(mark, comma.unwrap_or(start), end, b"");
    }

    /// A member/element at `start` (begun at `mark`) is kept: if every one before it was
    /// removed, its comma (and the whitespace up to it) goes.
    #[inline(always)]
    fn kept(&mut self, kept_before: usize, comma: Option<usize>, start: usize, mark: Mark) {
        if kept_before == 0
            && let Some(c) = comma
        {
            self.drop_comma(c, start, mark);
        }
    }

    /// [`Self::kept`] for the first member kept after removed ones: its comma at `c` goes.
    #[inline(never)]
    fn drop_comma(&mut self, c: usize, start: usize, mark: Mark) {
        if self.out.len() == mark.out && self.copied == mark.copied {
            self.push_edit(c, start, b"");
            return;
        }
        // The member's walk wrote edits: the output from `mark` holds the input from
        // `mark.copied` to at least `start` as is, the comma included.
        let at = mark.out + c.saturating_sub(mark.copied);
        match self.out.get(at..at + (start - c)) {
            Some(_) if mark.copied <= c => {
                self.out.drain(at..at + (start - c));
            }
            _ => self.broken = true,
        }
    }

    fn object(&mut self, ctx: Ctx<'p>, depth: usize) -> Result<Out, ApplyError> {
        self.expect(b'{')?;
        let lean = self.lean(ctx, depth);
        let mut kept = 0usize;
        let mut first = true;
        loop {
            self.ws();
            let comma = match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                Some(b',') if !first => {
                    let c = self.pos;
                    self.pos += 1;
                    self.ws();
                    Some(c)
                }
                _ if first => None,
                _ => return Err(WALK_ERROR),
            };
            first = false;
            let start = self.pos;
            let mark = self.mark();
            let ksp = self.string_span()?;
            let (ks, ke, kesc) = (ksp.start, ksp.end, ksp.esc);
            let key = self.decode(ks, ke, kesc)?;
            self.ws();
            self.expect(b':')?;
            self.ws();

            // Lean path: a plain key (no rule, nothing to detect in it) over a scalar the detectors
            // can skip, or over a container walked the same way; everything else below.
            let plain_key = lean && !kesc && self.name_rule(&key).is_none() && self.quick_skip(ksp);
            if plain_key {
                let r = match self.lean_scalar()? {
                    Lean::Done => Ok(Out::Kept),
                    Lean::Hit(sp, gates) => {
                        self.path.push(Step::Key(key));
                        let r = self.string_hit(sp, gates);
                        self.pop_step();
                        r
                    }
                    Lean::Full => {
                        self.path.push(Step::Key(key));
                        let r = self.value(ctx, depth);
                        self.pop_step();
                        r
                    }
                };
                match r? {
                    Out::Kept => {
                        self.kept(kept, comma, start, mark);
                        kept += 1;
                    }
                    Out::Remove => self.remove(mark, comma, start, self.pos),
                }
                continue;
            }

            let mut step = Step::Key(key);
            let proj = match self.shape {
                Some(sh) => sh.child(ctx.proj, self.path.len(), &step),
                None => Some(ProjState::ALL),
            };
            let Some(proj) = proj.filter(|p| p.full || matches!(self.peek(), Some(b'{' | b'['))) else {
                self.skip_value(depth)?;
                self.remove(mark, comma, start, self.pos);
                continue;
            };
            let rule = self.rule_for(&step);
            let child = Self::child_ctx(ctx, rule, proj);

            // Detection on the key itself (maps keyed by e-mail address and the like).
            if !child.allow
                && let Step::Key(k) = &step
                && let Some(gates) = self.str_may_hit(k, ksp)
            {
                let k: Cow<'a, str> = k.clone();
                {
                    let before = self.findings.len();
                    let result = self.process_str(&k, gates)?;
                    // A key finding points at the member under its masked name; when the key is
                    // kept as is (report) the pointer stops at the parent so the value is not shown.
                    if let StrResult::Replaced(new) = &result {
                        let mut loc = self.prefix.render(&self.path);
                        pointer::push_key(&mut loc, new);
                        for f in &mut self.findings[before..] {
                            f.location = Location::Pointer(loc.clone());
                        }
                    }
                    match result {
                        StrResult::Unchanged => {}
                        StrResult::Replaced(new) => {
                            self.push_str_edit(ks - 1, ke + 1, &new);
                            step = Step::Key(Cow::Owned(new));
                        }
                        StrResult::Remove => {
                            self.skip_value(depth)?;
                            self.remove(mark, comma, start, self.pos);
                            continue;
                        }
                    }
                }
            }

            if let Some(f) = child.forced
                && matches!(f.action, Action::Redact | Action::Block)
            {
                self.path.push(step);
                self.record(f.class, f.detector.clone(), f.action);
                self.pop_step();
                self.skip_value(depth)?;
                self.remove(mark, comma, start, self.pos);
                continue;
            }

            self.path.push(step);
            let r = self.value(child, depth);
            self.pop_step();
            match r? {
                Out::Kept => {
                    self.kept(kept, comma, start, mark);
                    kept += 1;
                }
                Out::Remove => self.remove(mark, comma, start, self.pos),
            }
        }
        Ok(Out::Kept)
    }

    fn array(&mut self, ctx: Ctx<'p>, depth: usize) -> Result<Out, ApplyError> {
        self.expect(b'[')?;
        let cap = self.shape.and_then(|s| s.cap(&self.path));
        let lean = self.lean(ctx, depth) && self.p.pointer_rules.is_empty();
        let mut index = 0usize;
        let mut kept = 0usize;
        loop {
            self.ws();
            let comma = match self.peek() {
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                Some(b',') if index > 0 => {
                    let c = self.pos;
                    self.pos += 1;
                    self.ws();
                    Some(c)
                }
                _ if index == 0 => None,
                _ => return Err(WALK_ERROR),
            };
            let start = self.pos;
            let mark = self.mark();
            let step = Step::Index(index);
            index += 1;
            if lean {
                let r = match self.lean_scalar()? {
                    Lean::Done => Some(Out::Kept),
                    Lean::Hit(sp, gates) => {
                        self.path.push(Step::Index(index - 1));
                        let r = self.string_hit(sp, gates);
                        self.pop_step();
                        Some(r?)
                    }
                    Lean::Full => None,
                };
                if let Some(r) = r {
                    if let Out::Remove = r {
                        self.replace_range(mark, start, self.pos, b"null");
                    }
                    self.kept(kept, comma, start, mark);
                    kept += 1;
                    continue;
                }
            }
            let proj = match self.shape {
                Some(sh) => sh.child(ctx.proj, self.path.len(), &step),
                None => Some(ProjState::ALL),
            };
            let proj = proj.filter(|p| p.full || matches!(self.peek(), Some(b'{' | b'[')));
            let Some(proj) = proj.filter(|_| cap.is_none_or(|c| kept < c)) else {
                self.skip_value(depth)?;
                self.remove(mark, comma, start, self.pos);
                continue;
            };
            let rule = if self.p.pointer_rules.is_empty() { None } else { self.rule_for(&step) };
            let child = Self::child_ctx(ctx, rule, proj);
            self.path.push(step);
            let r = if let Some(f) = child.forced
                && matches!(f.action, Action::Redact | Action::Block)
            {
                self.record(f.class, f.detector.clone(), f.action);
                self.skip_value(depth).map(|()| Out::Remove)
            } else {
                self.value(child, depth)
            };
            self.pop_step();
            if let Out::Remove = r? {
                self.replace_range(mark, start, self.pos, b"null");
            }
            self.kept(kept, comma, start, mark);
            kept += 1;
        }
        Ok(Out::Kept)
    }

    fn string_value(&mut self, ctx: Ctx<'p>) -> Result<Out, ApplyError> {
        let sp = self.string_span()?;
        let (s, e) = (sp.start, sp.end);
        if ctx.allow && ctx.forced.is_none() {
            return Ok(Out::Kept);
        }
        let val = self.decode(s, e, sp.esc)?;
        let result = match ctx.forced {
            Some(f) => self.forced(f, &val)?,
            None => match self.str_may_hit(&val, sp) {
                None => StrResult::Unchanged,
                Some(gates) => self.process_str(&val, gates)?,
            },
        };
        match result {
            StrResult::Unchanged => {}
            StrResult::Replaced(new) => {
                self.push_str_edit(s - 1, e + 1, &new);
                self.scratch.spare = new;
            }
            StrResult::Remove => return Ok(Out::Remove),
        }
        Ok(Out::Kept)
    }

    fn number(&mut self, ctx: Ctx<'p>) -> Result<Out, ApplyError> {
        let start = self.pos;
        self.number_span()?;
        let raw = self.str_at(start, self.pos)?;
        let result = if ctx.allow && ctx.forced.is_none() {
            StrResult::Unchanged
        } else if let Some(f) = ctx.forced {
            self.forced(f, raw)?
        } else if (12..=19).contains(&raw.len())
            && self.p.scanner.enabled(DataClass::CardNumber)
            && crate::validate::card_number(raw.as_bytes())
        {
            let p = self.p;
            let hit = [Hit { start: 0, end: raw.len(), det: DetId::Builtin(DataClass::CardNumber) }];
            let location = self.prefix.render(&self.path);
            let findings = &mut self.findings;
            let blocked = &mut self.blocked;
            p.rewrite_once(raw, &hit, true, true, &mut self.scratch.spare, &mut |class, detector, action, _, _| {
                *blocked |= action == Action::Block;
                findings.push(Finding {
                    class,
                    detector: detector.clone(),
                    location: Location::Pointer(location.clone()),
                    action,
                });
            })
        } else {
            StrResult::Unchanged
        };
        match result {
            StrResult::Unchanged => {}
            StrResult::Replaced(new) => self.push_str_edit(start, self.pos, &new),
            StrResult::Remove => return Ok(Out::Remove),
        }
        Ok(Out::Kept)
    }

    /// Runs the detectors on a string and acts on what they find.
    fn process_str(&mut self, val: &str, gates: Gates) -> Result<StrResult, ApplyError> {
        let p = self.p;
        let path = &self.path;
        let prefix = &mut self.prefix;
        let findings = &mut self.findings;
        let blocked = &mut self.blocked;
        Ok(p.rewrite(val, gates, true, &mut self.scratch, &mut |class, detector, action, _, _| {
            *blocked |= action == Action::Block;
            let location = Location::Pointer(prefix.render(path));
            findings.push(Finding { class, detector: detector.clone(), location, action });
        }))
    }

    /// A field rule's action on one scalar (string content or number text) under the field.
    fn forced(&mut self, f: &'p Forced, val: &str) -> Result<StrResult, ApplyError> {
        let keep = match f.action {
            Action::Allow => return Ok(StrResult::Unchanged),
            Action::Report => {
                self.record(f.class, f.detector.clone(), f.action);
                return Ok(StrResult::Unchanged);
            }
            Action::Redact | Action::Block => {
                self.record(f.class, f.detector.clone(), f.action);
                return Ok(StrResult::Remove);
            }
            Action::Hash => {
                let Some(t) = &self.p.tokenizer else {
                    self.record(f.class, f.detector.clone(), Action::Redact);
                    return Ok(StrResult::Remove);
                };
                if val.is_empty() || t.is_token(val) {
                    return Ok(StrResult::Unchanged);
                }
                let token = t.token(val);
                self.record(f.class, f.detector.clone(), f.action);
                return Ok(StrResult::Replaced(token));
            }
            Action::Mask => None,
            Action::MaskKeepLast(n) => Some(usize::from(n)),
        };
        // A field rule masks the whole value generically (at most a quarter of it stays, at most
        // `keep` characters); a sensitive name with a plain `Mask` becomes the fixed `********`.
        // Both are idempotent by construction: the output depends only on the length and the tail.
        let masked = match keep {
            None if f.sensitive_name => (!val.is_empty() && val != FIELD_MASK).then(|| FIELD_MASK.to_owned()),
            None => mask::mask_generic(val, 4),
            Some(n) => mask::mask_generic(val, n),
        };
        Ok(match masked {
            Some(m) => {
                self.record(f.class, f.detector.clone(), f.action);
                StrResult::Replaced(m)
            }
            None => StrResult::Unchanged,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The byte-at-a-time reference for [`special_in_words`].
    fn naive(src: &[u8], i: usize) -> Option<(usize, usize)> {
        let rest = src.get(i..)?;
        let k = rest.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        Some((k, rest[..k].iter().filter(|c| c.is_ascii_digit()).count()))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        /// Every byte value in every lane of a word, and every tail length.
        #[test]
        fn word_scan_matches_byte_scan(
            src in proptest::collection::vec(
                prop_oneof![any::<u8>(), b'0'..=b'9', Just(b'"'), Just(b'\\'), Just(0x1f), Just(0x7f), Just(0xb0), Just(0xba)],
                0..40,
            ),
            from in 0usize..8,
        ) {
            prop_assert_eq!(special_in_words(&src, from), naive(&src, from));
        }
    }

    proptest! {
        /// The string writer's output reads back as the string, byte for byte as the byte loop
        /// wrote it.
        #[test]
        fn json_strings_read_back(s in "[a-z\"\\\\\n\r\t\x00-\x1f\x7fé€0-9 ]{0,40}") {
            let mut out = Vec::new();
            write_json_str(&mut out, &s);
            prop_assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), s.clone());
            prop_assert_eq!(out, bytewise_json_str(&s));
        }
    }

    /// The byte-at-a-time writer [`write_json_str`] replaced: the output must not change.
    fn bytewise_json_str(s: &str) -> Vec<u8> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = vec![b'"'];
        for &c in s.as_bytes() {
            match c {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                c if c < 0x20 => {
                    out.extend_from_slice(&[
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        HEX[usize::from(c >> 4)],
                        HEX[usize::from(c & 0xf)],
                    ]);
                }
                c => out.push(c),
            }
        }
        out.push(b'"');
        out
    }

    fn pointers(out: &Applied) -> Vec<String> {
        out.findings.iter().map(|f| f.location.to_string()).collect()
    }

    /// Findings in nested objects and arrays, siblings after deeper ones and keys that need
    /// `~0`/`~1`: every pointer as the full render of the path gives it (which the cached prefix
    /// also checks itself against in debug builds).
    #[test]
    fn finding_pointers_in_nested_objects_and_arrays() {
        let policy = crate::ExposurePolicy::default().compile().unwrap();
        let body = br#"{"a~b":{"x/y":[{"email":"jane@example.com","other":"joe@example.com"},"bob@example.com"],
            "c":"ann@example.com"},"list":[[{"m":"amy@example.com"}],{"n":{"o":"eve@example.com"},"q":"zed@example.com"}],
            "k":{"kim@example.com":1,"card":{"d":4242424242424242}},"last":"lee@example.com"}"#;
        let out = policy.apply_json(body, None).unwrap();
        assert_eq!(
            pointers(&out),
            [
                "/a~0b/x~1y/0/email",
                "/a~0b/x~1y/0/other",
                "/a~0b/x~1y/1",
                "/a~0b/c",
                "/list/0/0/m",
                "/list/1/n/o",
                "/list/1/q",
                "/k/k***@example.com",
                "/k/card/d",
                "/last",
            ]
        );
        // The output is what a second pass leaves as is.
        let again = policy.apply_json(&out.body, None).unwrap();
        assert!(!again.changed);
    }

    /// Members dropped before a kept one take the kept one's comma with them, whether the kept
    /// member's walk wrote edits (the comma is cut out of what was written) or not.
    #[test]
    fn dropped_members_take_the_next_comma_along() {
        let policy = crate::ExposurePolicy::default().compile().unwrap();
        let shape = crate::ShapeConfig { allow: vec!["/keep/email".into(), "/id".into()], ..Default::default() }
            .compile()
            .unwrap();
        let body = br#"{"drop":1 , "keep": {"x":2, "email":"jane@example.com"},"gone":[1],"id":7}"#;
        let out = policy.apply_json(body, Some(&shape)).unwrap();
        assert_eq!(String::from_utf8(out.body).unwrap(), r#"{ "keep": {"email":"j***@example.com"},"id":7}"#);
        let body = br#"{"drop":1 , "id":7, "keep": {"email":"jane@example.com", "x":2}}"#;
        let out = policy.apply_json(body, Some(&shape)).unwrap();
        assert_eq!(String::from_utf8(out.body).unwrap(), r#"{ "id":7, "keep": {"email":"j***@example.com"}}"#);
    }

    #[test]
    fn word_scan_finds_the_first_special_byte_and_counts_digits_before_it() {
        assert_eq!(special_in_words(b"ab12cd34ef\"56", 0), Some((10, 4)));
        assert_eq!(special_in_words(b"12345678\x01", 0), Some((8, 8)));
        assert_eq!(special_in_words(b"x\\", 0), Some((1, 0)));
        assert_eq!(special_in_words(b"0123456789", 0), None);
        // Bytes ≥ 0x80 whose low seven bits are digits are not digits.
        assert_eq!(special_in_words(&[0xb0, 0xb9, b'1', b'"'], 0), Some((3, 1)));
    }
}
