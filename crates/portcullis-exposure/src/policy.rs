//! Policy config (plain structs) and its compiled form.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use regex::Regex;

use crate::class::{Action, DataClass};
use crate::detect::{CompiledCustom, NamedDetector, Scanner};
use crate::mask::Tokenizer;
use crate::pointer::{self, PointerError, Seg};

/// Field names that are sensitive whatever their value holds. Compared after
/// [`normalize_field_name`], so `apiKey`, `API-KEY` and `api_key` are the same name.
pub const DEFAULT_SENSITIVE_FIELDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "pass",
    "password_hash",
    "hashed_password",
    "user_password",
    "new_password",
    "old_password",
    "password_confirmation",
    "secret",
    "client_secret",
    "secret_key",
    "api_secret",
    "app_secret",
    "private_key",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "auth_token",
    "session_token",
    "bearer_token",
    "api_key",
    "apikey",
    "x_api_key",
    "access_key",
    "aws_secret_access_key",
    "ssn",
    "social_security_number",
    "card_number",
    "credit_card",
    "credit_card_number",
    "cc_number",
    "pan",
    "cvv",
    "cvc",
    "cvv2",
    "card_cvv",
    "pin",
    "otp",
    "mfa_secret",
    "totp_secret",
    "recovery_codes",
    "security_answer",
];

/// Lowercases and removes `_`, `-`, `.` and spaces: `API-Key` → `apikey`.
pub fn normalize_field_name(name: &str) -> String {
    name.chars().filter(|c| !matches!(c, '_' | '-' | '.' | ' ')).flat_map(char::to_lowercase).collect()
}

/// A secret HMAC key for [`Action::Hash`]. Its Debug output is `***`.
#[derive(Clone)]
pub struct HashKey(Vec<u8>);

impl HashKey {
    /// Wraps key bytes (at least 16 are required at compile time).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        HashKey(bytes.into())
    }
}

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashKey(***)")
    }
}

/// What a field rule targets.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldTarget {
    /// A JSON pointer pattern (`/customer/ssn`, `/items/*/email`).
    Pointer(String),
    /// A member name anywhere in the document, case- and separator-insensitive.
    Name(String),
}

/// An action for a field, whatever a detector thinks of its value. `Allow` exempts the field (and
/// everything under it) from detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRule {
    /// Which field.
    pub target: FieldTarget,
    /// What to do with its value (applies to every string and number under it).
    pub action: Action,
}

/// The exposure policy of one route (or one route and consumer), as plain config.
#[derive(Debug, Clone)]
pub struct ExposurePolicy {
    /// Classes whose detectors run. Default: all.
    pub detectors: Vec<DataClass>,
    /// Actions per class, overriding [`DataClass::default_action`].
    pub class_actions: Vec<(DataClass, Action)>,
    /// Per-field rules; pointer rules win over name rules, the first matching rule of a kind wins.
    pub field_rules: Vec<FieldRule>,
    /// Sensitive field names added to [`DEFAULT_SENSITIVE_FIELDS`].
    pub extra_sensitive_fields: Vec<String>,
    /// Drop [`DEFAULT_SENSITIVE_FIELDS`] and use only `extra_sensitive_fields`.
    pub replace_default_sensitive_fields: bool,
    /// Extra named detectors (national identifiers and the like).
    pub named_detectors: Vec<NamedDetector>,
    /// Key for [`Action::Hash`]; required if any action is `Hash`.
    pub hash_key: Option<HashKey>,
    /// Prefix of hash tokens: 1–16 of `[a-z0-9_]`, ending in `_`. Default `tok_`.
    pub token_prefix: String,
    /// Bodies larger than this are refused with [`crate::ApplyError::TooLarge`]. Default 8 MiB.
    pub max_body_bytes: usize,
    /// Deepest nesting accepted (1–128). Default 64.
    pub max_depth: usize,
}

impl Default for ExposurePolicy {
    fn default() -> Self {
        ExposurePolicy {
            detectors: DataClass::ALL.to_vec(),
            class_actions: Vec::new(),
            field_rules: Vec::new(),
            extra_sensitive_fields: Vec::new(),
            replace_default_sensitive_fields: false,
            named_detectors: Vec::new(),
            hash_key: None,
            token_prefix: "tok_".to_owned(),
            max_body_bytes: 8 * 1024 * 1024,
            max_depth: 64,
        }
    }
}

/// Why a policy was refused. Every message names the config item.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A field rule's pointer is malformed.
    #[error("field_rules[{index}]: invalid pointer: {source}")]
    Pointer {
        /// Position in `field_rules`.
        index: usize,
        /// What is wrong.
        source: PointerError,
    },
    /// A field name is empty once `_`, `-`, `.` and spaces are removed.
    #[error("{what}[{index}]: field name is empty after normalisation")]
    EmptyFieldName {
        /// `field_rules` or `extra_sensitive_fields`.
        what: &'static str,
        /// Position.
        index: usize,
    },
    /// A named detector's regex does not compile.
    #[error("named_detectors[{index}] ({name}): invalid regex: {reason}")]
    Regex {
        /// Position.
        index: usize,
        /// The detector's name.
        name: String,
        /// The regex crate's message.
        reason: String,
    },
    /// Two named detectors share a name, or a name is empty.
    #[error("named_detectors[{index}]: name {name:?} is empty or already used")]
    DetectorName {
        /// Position.
        index: usize,
        /// The name.
        name: String,
    },
    /// An action is `Hash` but no key was given, or it is shorter than 16 bytes.
    #[error("hash_key: an action is `hash`, which needs a key of at least 16 bytes")]
    HashKey,
    /// The token prefix is not 1–16 of `[a-z0-9_]` ending in `_`.
    #[error("token_prefix: must be 1-16 characters of [a-z0-9_] ending in '_'")]
    TokenPrefix,
    /// `max_depth` is outside 1–128 or `max_body_bytes` is 0.
    #[error("{0}: out of range")]
    Limit(&'static str),
    /// Internal: a built-in detector failed to build.
    #[error("built-in detectors: {0}")]
    Builtin(String),
}

/// A compiled field rule's origin, for findings.
#[derive(Debug, Clone)]
pub(crate) struct Forced {
    pub(crate) action: Action,
    pub(crate) class: DataClass,
    pub(crate) detector: Arc<str>,
    /// From the sensitive-names list (not an explicit rule): a plain mask is the fixed `********`.
    pub(crate) sensitive_name: bool,
}

/// FNV-1a: field names are short and chosen by the operator, so hash flooding is not a concern
/// and SipHash's setup cost would dominate the lookup.
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Index into [`CompiledPolicy::name_sigs`] for a name's first and last (normalised) bytes.
pub(crate) fn name_sig(first: u8, last: u8) -> usize {
    (usize::from(first & 31) << 5) | usize::from(last & 31)
}

pub(crate) type NameMap = HashMap<Vec<u8>, Forced, std::hash::BuildHasherDefault<Fnv>>;

/// A policy ready for the hot path. Cheap to share (`Arc` it); all methods take `&self`.
pub struct CompiledPolicy {
    pub(crate) scanner: Scanner,
    pub(crate) actions: [Action; DataClass::ALL.len()],
    pub(crate) pointer_rules: Vec<(Vec<Seg>, Forced)>,
    pub(crate) max_pointer_len: usize,
    /// Normalised name → rule (name rules first, then sensitive names).
    pub(crate) names: NameMap,
    pub(crate) max_name_len: usize,
    /// A filter over the names: entry [`name_sig`]`(first, last)` has bit n set when some
    /// normalised name of n bytes (n < 64) starts and ends with those bytes, and bit 0 when one
    /// of 64 bytes or more does (those also set `long_names`). Most keys skip the lookup.
    pub(crate) name_sigs: Box<[u64]>,
    pub(crate) long_names: bool,
    pub(crate) class_names: [Arc<str>; DataClass::ALL.len()],
    pub(crate) tokenizer: Option<Tokenizer>,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_depth: usize,
}

impl fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("actions", &self.actions)
            .field("pointer_rules", &self.pointer_rules.len())
            .field("names", &self.names.len())
            .field("named_detectors", &self.scanner.customs.len())
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_depth", &self.max_depth)
            .finish_non_exhaustive()
    }
}

impl ExposurePolicy {
    /// Validates and compiles the policy.
    pub fn compile(&self) -> Result<CompiledPolicy, PolicyError> {
        if !(1..=128).contains(&self.max_depth) {
            return Err(PolicyError::Limit("max_depth"));
        }
        if self.max_body_bytes == 0 {
            return Err(PolicyError::Limit("max_body_bytes"));
        }
        let p = &self.token_prefix;
        if p.is_empty()
            || p.len() > 16
            || !p.ends_with('_')
            || !p.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        {
            return Err(PolicyError::TokenPrefix);
        }

        let mut actions = DataClass::ALL.map(DataClass::default_action);
        for &(class, action) in &self.class_actions {
            actions[class.index()] = action;
        }
        let mut enabled = [false; DataClass::ALL.len()];
        for c in &self.detectors {
            enabled[c.index()] = true;
        }
        let class_names = DataClass::ALL.map(|c| Arc::<str>::from(c.as_str()));

        let mut customs = Vec::with_capacity(self.named_detectors.len());
        for (index, d) in self.named_detectors.iter().enumerate() {
            if d.name.is_empty() || self.named_detectors[..index].iter().any(|o| o.name == d.name) {
                return Err(PolicyError::DetectorName { index, name: d.name.clone() });
            }
            let re = Regex::new(&d.pattern).map_err(|e| PolicyError::Regex {
                index,
                name: d.name.clone(),
                reason: e.to_string(),
            })?;
            customs.push(CompiledCustom {
                name: Arc::from(d.name.as_str()),
                class: d.class,
                re,
                validator: d.validator.clone(),
                action: d.action,
            });
        }
        // Named detectors run only when their class is on; a named detector is itself a request to run.
        for d in &self.named_detectors {
            enabled[d.class.index()] = true;
        }

        let mut pointer_rules = Vec::new();
        let mut names = NameMap::default();
        for (index, rule) in self.field_rules.iter().enumerate() {
            match &rule.target {
                FieldTarget::Pointer(p) => {
                    let segs = pointer::parse(p).map_err(|source| PolicyError::Pointer { index, source })?;
                    let forced = Forced {
                        action: rule.action,
                        class: DataClass::SensitiveField,
                        detector: Arc::from(format!("pointer:{p}")),
                        sensitive_name: false,
                    };
                    pointer_rules.push((segs, forced));
                }
                FieldTarget::Name(n) => {
                    let norm = normalize_field_name(n);
                    if norm.is_empty() {
                        return Err(PolicyError::EmptyFieldName { what: "field_rules", index });
                    }
                    let forced = Forced {
                        action: rule.action,
                        class: DataClass::SensitiveField,
                        detector: Arc::from(format!("field:{norm}")),
                        sensitive_name: false,
                    };
                    names.entry(norm.into_bytes()).or_insert(forced);
                }
            }
        }
        let defaults: &[&str] = if self.replace_default_sensitive_fields { &[] } else { DEFAULT_SENSITIVE_FIELDS };
        let sensitive_on = enabled[DataClass::SensitiveField.index()];
        let extra = self.extra_sensitive_fields.iter().map(String::as_str);
        for (index, n) in defaults.iter().copied().chain(extra).enumerate() {
            let norm = normalize_field_name(n);
            if norm.is_empty() {
                return Err(PolicyError::EmptyFieldName {
                    what: "extra_sensitive_fields",
                    index: index.saturating_sub(defaults.len()),
                });
            }
            if sensitive_on {
                let forced = Forced {
                    action: actions[DataClass::SensitiveField.index()],
                    class: DataClass::SensitiveField,
                    detector: Arc::from(format!("field:{norm}")),
                    sensitive_name: true,
                };
                names.entry(norm.into_bytes()).or_insert(forced);
            }
        }

        let uses_hash = actions.contains(&Action::Hash)
            || self.field_rules.iter().any(|r| r.action == Action::Hash)
            || self.named_detectors.iter().any(|d| d.action == Some(Action::Hash));
        let tokenizer = match &self.hash_key {
            Some(k) if k.0.len() >= 16 => Some(Tokenizer::new(&k.0, &self.token_prefix)),
            _ if uses_hash => return Err(PolicyError::HashKey),
            _ => None,
        };

        let scanner = Scanner::new(enabled, customs).map_err(|e| PolicyError::Builtin(e.to_string()))?;
        Ok(CompiledPolicy {
            scanner,
            actions,
            max_pointer_len: pointer_rules.iter().map(|(p, _)| p.len()).max().unwrap_or(0),
            pointer_rules,
            max_name_len: names.keys().map(Vec::len).max().unwrap_or(0),
            name_sigs: {
                let mut sigs = vec![0u64; 1024].into_boxed_slice();
                for k in names.keys() {
                    if let (Some(&first), Some(&last)) = (k.first(), k.last()) {
                        // Bit 0 (no name is empty) stands for every length from 64 on.
                        sigs[name_sig(first, last)] |= 1u64 << if k.len() < 64 { k.len() } else { 0 };
                    }
                }
                sigs
            },
            long_names: names.keys().any(|k| k.len() >= 64),
            names,
            class_names,
            tokenizer,
            max_body_bytes: self.max_body_bytes,
            max_depth: self.max_depth,
        })
    }
}
