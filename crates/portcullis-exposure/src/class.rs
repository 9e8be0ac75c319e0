//! Data classes and actions: what a detector found and what the policy does about it.

use std::fmt;

/// What kind of sensitive data a finding is.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataClass {
    /// A payment card number (PAN) that passes Luhn and has a known IIN range and length.
    CardNumber,
    /// An IBAN with a valid mod-97 checksum and its country's length.
    Iban,
    /// A US social security number outside the never-issued ranges.
    Ssn,
    /// A national identifier found by a named, pluggable detector ([`crate::NamedDetector`]).
    NationalId,
    /// An e-mail address.
    Email,
    /// A phone number (E.164 or a common national format).
    Phone,
    /// A PEM private key block.
    PrivateKey,
    /// A JSON Web Token (three or five base64url segments, JSON header).
    Jwt,
    /// An AWS access key id (`AKIA…`, `ASIA…`, …).
    AwsAccessKeyId,
    /// An AWS secret access key (40 characters next to an `aws_secret…` label).
    AwsSecretKey,
    /// A GitHub token (`ghp_…`, `gho_…`, `github_pat_…`, …).
    GithubToken,
    /// A Slack token (`xoxb-…`, `xoxp-…`, …).
    SlackToken,
    /// A Stripe live secret or restricted key (`sk_live_…`, `rk_live_…`).
    StripeKey,
    /// A portcullis API key (`pc_live_…`, `pc_test_…`).
    PortcullisKey,
    /// A password hash (bcrypt, argon2, sha512-crypt/sha256-crypt, PBKDF2).
    PasswordHash,
    /// A field whose name says it is sensitive (`password`, `api_key`, …), whatever its value.
    SensitiveField,
}

impl DataClass {
    /// Every class, in a stable order.
    pub const ALL: [DataClass; 16] = [
        DataClass::CardNumber,
        DataClass::Iban,
        DataClass::Ssn,
        DataClass::NationalId,
        DataClass::Email,
        DataClass::Phone,
        DataClass::PrivateKey,
        DataClass::Jwt,
        DataClass::AwsAccessKeyId,
        DataClass::AwsSecretKey,
        DataClass::GithubToken,
        DataClass::SlackToken,
        DataClass::StripeKey,
        DataClass::PortcullisKey,
        DataClass::PasswordHash,
        DataClass::SensitiveField,
    ];

    /// A stable snake_case name, for logs, metrics labels and config.
    pub const fn as_str(self) -> &'static str {
        match self {
            DataClass::CardNumber => "card_number",
            DataClass::Iban => "iban",
            DataClass::Ssn => "ssn",
            DataClass::NationalId => "national_id",
            DataClass::Email => "email",
            DataClass::Phone => "phone",
            DataClass::PrivateKey => "private_key",
            DataClass::Jwt => "jwt",
            DataClass::AwsAccessKeyId => "aws_access_key_id",
            DataClass::AwsSecretKey => "aws_secret_key",
            DataClass::GithubToken => "github_token",
            DataClass::SlackToken => "slack_token",
            DataClass::StripeKey => "stripe_key",
            DataClass::PortcullisKey => "portcullis_key",
            DataClass::PasswordHash => "password_hash",
            DataClass::SensitiveField => "sensitive_field",
        }
    }

    /// Parses [`DataClass::as_str`] back.
    pub fn from_name(name: &str) -> Option<DataClass> {
        DataClass::ALL.into_iter().find(|c| c.as_str() == name)
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    /// The action used when the policy does not name one for this class: private keys are never
    /// served (`Block`); credentials, hashes and sensitive fields are removed (`Redact`); personal
    /// data is masked.
    pub const fn default_action(self) -> Action {
        match self {
            DataClass::PrivateKey => Action::Block,
            DataClass::Jwt
            | DataClass::AwsAccessKeyId
            | DataClass::AwsSecretKey
            | DataClass::GithubToken
            | DataClass::SlackToken
            | DataClass::StripeKey
            | DataClass::PortcullisKey
            | DataClass::PasswordHash
            | DataClass::SensitiveField => Action::Redact,
            DataClass::CardNumber
            | DataClass::Iban
            | DataClass::Ssn
            | DataClass::NationalId
            | DataClass::Email
            | DataClass::Phone => Action::Mask,
        }
    }

    /// Credentials and keys: masked by keeping only the last four characters.
    pub(crate) const fn is_secret(self) -> bool {
        matches!(
            self,
            DataClass::PrivateKey
                | DataClass::Jwt
                | DataClass::AwsAccessKeyId
                | DataClass::AwsSecretKey
                | DataClass::GithubToken
                | DataClass::SlackToken
                | DataClass::StripeKey
                | DataClass::PortcullisKey
                | DataClass::PasswordHash
                | DataClass::SensitiveField
        )
    }
}

impl fmt::Display for DataClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do with a detected value.
///
/// In JSON, `Redact` removes the member from its object; an array element becomes `null` (so the
/// indexes of the other elements do not shift); a value embedded in a longer string is replaced by
/// `[redacted]`. In text bodies `Redact` is always the in-place `[redacted]` replacement.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Leave the value alone and record nothing (e.g. a public support e-mail address).
    Allow,
    /// Leave the value alone but record a finding (detection only, for rollout).
    Report,
    /// Mask the value the way its class is usually masked: cards keep the last four digits
    /// (`************4242`), e-mails keep the first character and the domain (`j***@example.com`),
    /// SSNs and phones keep separators and the last four digits, secrets keep their last four
    /// characters, sensitive fields become `********`.
    Mask,
    /// Mask keeping at most the last N characters (alphanumerics for detected values).
    MaskKeepLast(u8),
    /// Remove the value (see the type's documentation for where it goes).
    Redact,
    /// Replace the value by a stable keyed token (`tok_` + 24 hex digits of HMAC-SHA256 under the
    /// server key), so that records can still be joined.
    Hash,
    /// The response must not be served: the caller answers 502 and raises an alert.
    Block,
}

impl Action {
    /// A stable snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Report => "report",
            Action::Mask | Action::MaskKeepLast(_) => "mask",
            Action::Redact => "redact",
            Action::Hash => "hash",
            Action::Block => "block",
        }
    }
}

impl Action {
    /// Parses a config word: `allow`, `report`, `mask`, `mask_keep_last:N` (N ≤ 255), `redact`,
    /// `hash`, `block`.
    pub fn from_name(name: &str) -> Option<Action> {
        Some(match name {
            "allow" => Action::Allow,
            "report" => Action::Report,
            "mask" => Action::Mask,
            "redact" => Action::Redact,
            "hash" => Action::Hash,
            "block" => Action::Block,
            other => Action::MaskKeepLast(other.strip_prefix("mask_keep_last:")?.parse().ok()?),
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a finding is.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A JSON pointer (RFC 6901) into the *output* document (masked keys appear masked); for a
    /// member that was removed, the pointer it had.
    Pointer(String),
    /// A byte range in a text body (of the input).
    Text {
        /// First byte.
        start: usize,
        /// One past the last byte.
        end: usize,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Pointer(p) if p.is_empty() => f.write_str("(root)"),
            Location::Pointer(p) => f.write_str(p),
            Location::Text { start, end } => write!(f, "bytes {start}..{end}"),
        }
    }
}

/// One piece of sensitive data found in a response. Never holds the value itself, so it can be
/// logged and put into events as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was found.
    pub class: DataClass,
    /// The detector's name: the class name for built-in detectors, the configured name for a
    /// [`crate::NamedDetector`], the rule for field rules (`field:<name>` / `pointer:<pointer>`).
    pub detector: std::sync::Arc<str>,
    /// Where.
    pub location: Location,
    /// What was done.
    pub action: Action,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}) at {}: {}", self.class, self.detector, self.location, self.action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in DataClass::ALL {
            assert_eq!(DataClass::from_name(c.as_str()), Some(c));
        }
        assert_eq!(DataClass::from_name("nope"), None);
        assert_eq!(Action::from_name("mask_keep_last:2"), Some(Action::MaskKeepLast(2)));
        assert_eq!(Action::from_name("block"), Some(Action::Block));
        assert_eq!(Action::from_name("mask_keep_last:999"), None);
        assert_eq!(Action::from_name("drop"), None);
    }
}
