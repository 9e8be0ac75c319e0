//! The data model: what the store keeps, what a caller gives to create it, and the rules checked
//! before anything is written.
//!
//! Ids are UUIDv7 strings made by the store (time-ordered, so listing by id lists by creation);
//! times are unix seconds given by the caller (injected time: the store never reads the clock).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Longest name (organization, consumer) accepted.
pub const MAX_NAME_LEN: usize = 64;
/// Longest credential `hint` accepted: it is a display prefix, never the key itself.
pub const MAX_HINT_LEN: usize = 32;
/// Most rows [`AuditFilter::limit`] may ask for at once.
pub const MAX_AUDIT_PAGE: u32 = 1000;

const MAX_TEXT_LEN: usize = 1024;
const MAX_SCOPE_LEN: usize = 128;
const MAX_SCOPES: usize = 256;
const MAX_SECRET_LEN: usize = 512;
const MAX_DETAIL_BYTES: usize = 16 * 1024;

/// Whether an organization or consumer may use the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Allowed (subject to suspensions, credential expiry and revocation).
    Active,
    /// Refused.
    Suspended,
}

/// What kind of party a consumer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsumerKind {
    /// A person.
    User,
    /// An application acting for users.
    App,
    /// A machine-to-machine service.
    Service,
}

/// How a credential proves who the caller is; with `lookup`, it is unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// `lookup` is the lower-case hex HMAC of the key, computed by the caller.
    ApiKey,
    /// `lookup` is the user name; `secret` the argon2 PHC string.
    Password,
    /// `lookup` is the SHA-256 fingerprint of the client certificate, lower-case hex.
    Certificate,
    /// `lookup` is the key id; `secret` a random salt (never the signing key itself).
    HmacKey,
}

macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The name stored in the database and used in JSON.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }

            pub(crate) fn parse(text: &str) -> Result<Self, StoreError> {
                match text {
                    $($text => Ok($ty::$variant),)+
                    _ => Err(StoreError::backend_msg("decoding a row", concat!("unknown ", stringify!($ty)))),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(Status { Active => "active", Suspended => "suspended" });
text_enum!(ConsumerKind { User => "user", App => "app", Service => "service" });
text_enum!(CredentialKind {
    ApiKey => "api_key",
    Password => "password",
    Certificate => "certificate",
    HmacKey => "hmac_key",
});

/// A tenant: consumers belong to exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// UUIDv7.
    pub id: String,
    /// Unique slug.
    pub name: String,
    /// Name of a rate-limit/quota plan, if any.
    pub plan: Option<String>,
    /// Active or suspended.
    pub status: Status,
    /// Unix seconds.
    pub created_at: i64,
}

/// What [`crate::Store::create_org`] needs. The organization starts [`Status::Active`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrg {
    /// Unique slug (`[a-z0-9-_.]`, 1–64).
    pub name: String,
    /// Plan name, if any.
    pub plan: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// Who calls the API: a user, an app or a service, inside one organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumer {
    /// UUIDv7.
    pub id: String,
    /// The owning organization's id.
    pub org_id: String,
    /// Globally unique slug.
    pub name: String,
    /// User, app or service.
    pub kind: ConsumerKind,
    /// Scopes granted to every credential of this consumer (a credential may narrow them).
    pub scopes: Vec<String>,
    /// Roles, for authorization rules.
    pub roles: Vec<String>,
    /// Plan name, if any (overrides the organization's).
    pub plan: Option<String>,
    /// A JWT `sub` or certificate subject mapped to this consumer; unique when set. A `sub` is
    /// unique only per issuer, so callers with several issuers should store `<issuer>|<sub>`.
    pub external_subject: Option<String>,
    /// Active or suspended.
    pub status: Status,
    /// Unix seconds.
    pub created_at: i64,
}

/// What [`crate::Store::create_consumer`] needs. The consumer starts [`Status::Active`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConsumer {
    /// The owning organization's id (must exist).
    pub org_id: String,
    /// Globally unique slug.
    pub name: String,
    /// User, app or service.
    pub kind: ConsumerKind,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Roles.
    pub roles: Vec<String>,
    /// Plan name, if any.
    pub plan: Option<String>,
    /// JWT `sub` or certificate subject, unique when set.
    pub external_subject: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A way for a consumer to authenticate. Holds no usable secret: API keys are stored as an HMAC
/// made by the caller, passwords as an argon2 PHC string. `Debug` hides `secret`, and `secret` is
/// never serialized.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// UUIDv7.
    pub id: String,
    /// The consumer it authenticates.
    pub consumer_id: String,
    /// API key, password, certificate or HMAC key.
    pub kind: CredentialKind,
    /// What the verifier looks the credential up by (see [`CredentialKind`]); unique per kind.
    pub lookup: String,
    /// Display only, e.g. `pc_live_AbCd…`.
    pub hint: String,
    /// Password: argon2 PHC string; HMAC key: salt. Never serialized.
    #[serde(skip_serializing, default)]
    pub secret: Option<String>,
    /// Narrower scopes than the consumer's; `None` inherits them.
    pub scopes: Option<Vec<String>>,
    /// Unix seconds after which the credential no longer works, if any.
    pub expires_at: Option<i64>,
    /// Unix seconds from which the credential is revoked, if it is.
    pub revoked_at: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
    /// Free label for people ("CI deploy key").
    pub label: Option<String>,
}

impl Credential {
    /// Whether the credential itself may be used at `now`: neither revoked nor expired.
    /// (The consumer's and organization's status and suspensions are checked separately.)
    pub fn is_usable_at(&self, now: i64) -> bool {
        self.revoked_at.is_none_or(|at| now < at) && self.expires_at.is_none_or(|at| now < at)
    }

    /// The scopes this credential grants, given its consumer: the credential's own list cut down
    /// to what the consumer still holds (the consumer's scopes may have shrunk since), or the
    /// consumer's when the credential inherits.
    pub fn effective_scopes(&self, consumer: &Consumer) -> Vec<String> {
        match &self.scopes {
            None => consumer.scopes.clone(),
            Some(own) => own.iter().filter(|s| consumer.scopes.contains(s)).cloned().collect(),
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("id", &self.id)
            .field("consumer_id", &self.consumer_id)
            .field("kind", &self.kind)
            .field("lookup", &self.lookup)
            .field("hint", &self.hint)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .field("created_at", &self.created_at)
            .field("label", &self.label)
            .finish()
    }
}

/// A credential with the consumer and organization it belongs to: what authentication needs,
/// read in one query ([`crate::Store::credential_with_owner`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialOwner {
    /// The credential.
    pub credential: Credential,
    /// Its consumer.
    pub consumer: Consumer,
    /// The consumer's organization.
    pub organization: Organization,
}

/// Why a credential that exists may not be used now. Checked in this order; the first that
/// applies is returned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// `revoked_at <= now`.
    CredentialRevoked,
    /// `expires_at <= now`.
    CredentialExpired,
    /// The consumer's status is suspended.
    ConsumerSuspended,
    /// The organization's status is suspended.
    OrganizationSuspended,
    /// A suspension in force names the credential, the consumer or the organization.
    Suspended(SuspensionTarget),
}

impl CredentialOwner {
    /// `None` if the credential may be used at `now`, given the suspensions in force (as from
    /// [`crate::Store::active_suspensions`]; route suspensions are ignored here, they are about the
    /// route, not the caller). Scopes are [`Credential::effective_scopes`] of `consumer`.
    pub fn refusal_at(&self, now: i64, suspensions: &[Suspension]) -> Option<Refusal> {
        let c = &self.credential;
        if c.revoked_at.is_some_and(|at| at <= now) {
            return Some(Refusal::CredentialRevoked);
        }
        if c.expires_at.is_some_and(|at| at <= now) {
            return Some(Refusal::CredentialExpired);
        }
        if self.consumer.status != Status::Active {
            return Some(Refusal::ConsumerSuspended);
        }
        if self.organization.status != Status::Active {
            return Some(Refusal::OrganizationSuspended);
        }
        suspensions
            .iter()
            .filter(|s| s.is_active_at(now))
            .find(|s| match &s.target {
                SuspensionTarget::Credential(id) => *id == c.id,
                SuspensionTarget::Consumer(id) => *id == self.consumer.id,
                SuspensionTarget::Organization(id) => *id == self.organization.id,
                SuspensionTarget::Route(_) => false,
            })
            .map(|s| Refusal::Suspended(s.target.clone()))
    }
}

/// What [`crate::Store::create_credential`] needs. `Debug` hides `secret`.
#[derive(Clone, PartialEq, Eq)]
pub struct NewCredential {
    /// The consumer (must exist).
    pub consumer_id: String,
    /// Kind.
    pub kind: CredentialKind,
    /// See [`CredentialKind`]: never the plain key. API key and certificate lookups must be
    /// lower-case hex, so a raw `pc_live_…` key is refused.
    pub lookup: String,
    /// Display prefix, at most [`MAX_HINT_LEN`] characters.
    pub hint: String,
    /// Password: argon2 PHC string (required, must start `$argon2`); HMAC key: salt.
    pub secret: Option<String>,
    /// Narrower scopes: each must be one of the consumer's.
    pub scopes: Option<Vec<String>>,
    /// Unix seconds, if it expires.
    pub expires_at: Option<i64>,
    /// Free label.
    pub label: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

impl fmt::Debug for NewCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewCredential")
            .field("consumer_id", &self.consumer_id)
            .field("kind", &self.kind)
            .field("lookup", &self.lookup)
            .field("hint", &self.hint)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .field("label", &self.label)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// What a suspension applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum SuspensionTarget {
    /// An organization id: every consumer in it is refused.
    Organization(String),
    /// A consumer id.
    Consumer(String),
    /// A credential id.
    Credential(String),
    /// A route by its configured name: the route answers 503 for everyone.
    Route(String),
}

impl SuspensionTarget {
    pub(crate) fn kind_str(&self) -> &'static str {
        match self {
            SuspensionTarget::Organization(_) => "organization",
            SuspensionTarget::Consumer(_) => "consumer",
            SuspensionTarget::Credential(_) => "credential",
            SuspensionTarget::Route(_) => "route",
        }
    }

    /// The id (or route name) the suspension applies to.
    pub fn id(&self) -> &str {
        match self {
            SuspensionTarget::Organization(id)
            | SuspensionTarget::Consumer(id)
            | SuspensionTarget::Credential(id)
            | SuspensionTarget::Route(id) => id,
        }
    }

    pub(crate) fn from_parts(kind: &str, id: String) -> Result<Self, StoreError> {
        Ok(match kind {
            "organization" => SuspensionTarget::Organization(id),
            "consumer" => SuspensionTarget::Consumer(id),
            "credential" => SuspensionTarget::Credential(id),
            "route" => SuspensionTarget::Route(id),
            _ => return Err(StoreError::backend_msg("decoding a row", "unknown suspension target")),
        })
    }
}

/// An emergency stop on an organization, consumer, credential or route, possibly time-limited.
/// A target has at most one suspension: suspending it again replaces the old one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    /// UUIDv7.
    pub id: String,
    /// What is suspended.
    pub target: SuspensionTarget,
    /// Why, for people and audit.
    pub reason: String,
    /// Unix seconds at which it lifts by itself, if any.
    pub expires_at: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
    /// Who suspended it (admin name, detector name).
    pub created_by: String,
}

impl Suspension {
    /// Whether the suspension is in force at `now`.
    pub fn is_active_at(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

/// What [`crate::Store::suspend`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSuspension {
    /// What to suspend (organizations, consumers and credentials must exist).
    pub target: SuspensionTarget,
    /// Why.
    pub reason: String,
    /// Unix seconds at which it lifts by itself, if any.
    pub expires_at: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
    /// Who.
    pub created_by: String,
}

/// Whom a run-time shaping policy applies to, by name (as the caller's principal carries it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum PolicySubject {
    /// A consumer, by name.
    Consumer(String),
    /// An organization, by name.
    Organization(String),
    /// A plan, by name.
    Plan(String),
}

impl PolicySubject {
    /// `consumer`, `organization` or `plan`: the name stored in the database and used in URLs.
    pub fn kind_str(&self) -> &'static str {
        match self {
            PolicySubject::Consumer(_) => "consumer",
            PolicySubject::Organization(_) => "organization",
            PolicySubject::Plan(_) => "plan",
        }
    }

    /// The consumer, organization or plan name.
    pub fn name(&self) -> &str {
        match self {
            PolicySubject::Consumer(n) | PolicySubject::Organization(n) | PolicySubject::Plan(n) => n,
        }
    }

    /// From a kind (`consumer`, `organization`/`org`, `plan`) and a name.
    pub fn from_parts(kind: &str, name: String) -> Result<Self, StoreError> {
        Ok(match kind {
            "consumer" => PolicySubject::Consumer(name),
            "organization" | "org" => PolicySubject::Organization(name),
            "plan" => PolicySubject::Plan(name),
            _ => return Err(StoreError::invalid("a policy subject is a consumer, an organization or a plan")),
        })
    }
}

/// An array length cap of a [`PolicyShape`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyArrayCap {
    /// The array's JSON pointer pattern (`/items`, `/data/*/tags`).
    pub pointer: String,
    /// The most items kept.
    pub max: u32,
}

/// A response shape as stored: field allow-list and array caps (compiled by the gateway).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyShape {
    /// JSON pointer patterns of the members the subject may see; empty keeps every member.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Caps on array lengths by pointer.
    #[serde(default)]
    pub max_items: Vec<PolicyArrayCap>,
    /// A cap on every array no `max_items` entry names.
    #[serde(default)]
    pub max_items_everywhere: Option<u32>,
}

/// Most entries of [`PolicyShape::allow`] or [`PolicyShape::max_items`].
pub const MAX_SHAPE_ENTRIES: usize = 64;

/// A response-shaping policy set at run time for a subject on a route; replaces, for that
/// subject, what the route's configuration says. A (route, subject) pair has at most one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShapingPolicy {
    /// UUIDv7 (a new one each time the policy is replaced).
    pub id: String,
    /// The route's configured name.
    pub route: String,
    /// Whom it applies to.
    pub subject: PolicySubject,
    /// The shape.
    pub shape: PolicyShape,
    /// Why, for people and audit.
    pub reason: String,
    /// Unix seconds at which it lapses by itself, if any.
    pub expires_at: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
    /// Who set it.
    pub created_by: String,
}

impl ShapingPolicy {
    /// Whether the policy is in force at `now`.
    pub fn is_active_at(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

/// What [`crate::Store::put_shaping_policy`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewShapingPolicy {
    /// The route's configured name (not checked: routes live in the configuration).
    pub route: String,
    /// Whom it applies to (names are not checked here: the admin layer does).
    pub subject: PolicySubject,
    /// The shape.
    pub shape: PolicyShape,
    /// Why.
    pub reason: String,
    /// Unix seconds at which it lapses, if any.
    pub expires_at: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
    /// Who.
    pub created_by: String,
}

/// One line of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Increasing position in the log (1, 2, …); readers page with [`AuditFilter::since_seq`].
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// Who did it.
    pub actor: String,
    /// What was done, e.g. `credential.revoke`.
    pub action: String,
    /// What it was done to, e.g. a credential id.
    pub target: String,
    /// Anything else worth keeping (a JSON value).
    pub detail: serde_json::Value,
}

/// What [`crate::Store::append_audit`] needs.
///
/// The caller is responsible for never putting a secret in an audit entry. As a backstop, the
/// store refuses a `detail` that has, at any depth, an object key that looks like it names a
/// secret (`secret`, `password`, `passwd`, `token`, `authorization`, `cookie`, or a key ending in
/// `key`, such as `api_key`); `key_id` and `hint` are fine.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    /// Unix seconds.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// To what.
    pub target: String,
    /// Anything else (no secrets).
    pub detail: serde_json::Value,
}

/// Which organizations [`crate::Store::list_orgs`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgFilter {
    /// Only this status, if set.
    pub status: Option<Status>,
}

/// Which consumers [`crate::Store::list_consumers`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerFilter {
    /// Only consumers of this organization, if set.
    pub org_id: Option<String>,
    /// Only this status, if set.
    pub status: Option<Status>,
}

/// Which audit entries [`crate::Store::list_audit`] returns: those with `seq > since_seq`, oldest
/// first, at most `limit` (capped at [`MAX_AUDIT_PAGE`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Exclusive lower bound; 0 starts at the beginning.
    pub since_seq: i64,
    /// Page size.
    pub limit: u32,
}

impl Default for AuditFilter {
    fn default() -> Self {
        AuditFilter { since_seq: 0, limit: 100 }
    }
}

// --- validation ---------------------------------------------------------------------------------

pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub(crate) fn check_name(field: &str, name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(format!("{field} must be 1-{MAX_NAME_LEN} characters of [a-z0-9-_.]")))
    }
}

/// Free text: not empty, bounded, no control characters (keeps logs and terminals safe).
pub(crate) fn check_text(field: &str, text: &str, max: usize) -> Result<(), StoreError> {
    if text.is_empty() || text.len() > max || text.chars().any(char::is_control) {
        Err(StoreError::invalid(format!("{field} must be 1-{max} bytes without control characters")))
    } else {
        Ok(())
    }
}

fn check_opt_text(field: &str, text: Option<&str>, max: usize) -> Result<(), StoreError> {
    text.map_or(Ok(()), |t| check_text(field, t, max))
}

pub(crate) fn check_id(field: &str, id: &str) -> Result<(), StoreError> {
    check_text(field, id, 64)
}

pub(crate) fn check_scopes(field: &str, scopes: &[String]) -> Result<(), StoreError> {
    if scopes.len() > MAX_SCOPES {
        return Err(StoreError::invalid(format!("{field}: at most {MAX_SCOPES} entries")));
    }
    for s in scopes {
        if s.is_empty() || s.len() > MAX_SCOPE_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(StoreError::invalid(format!(
                "{field}: each entry must be 1-{MAX_SCOPE_LEN} printable ASCII characters without spaces"
            )));
        }
    }
    Ok(())
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl NewOrg {
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        check_name("name", &self.name)?;
        check_opt_text("plan", self.plan.as_deref(), MAX_NAME_LEN)
    }
}

impl NewConsumer {
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        check_id("org_id", &self.org_id)?;
        check_name("name", &self.name)?;
        check_scopes("scopes", &self.scopes)?;
        check_scopes("roles", &self.roles)?;
        check_opt_text("plan", self.plan.as_deref(), MAX_NAME_LEN)?;
        check_opt_text("external_subject", self.external_subject.as_deref(), MAX_TEXT_LEN)
    }
}

impl NewCredential {
    /// Checks everything that does not need the consumer row.
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        check_id("consumer_id", &self.consumer_id)?;
        match self.kind {
            // Hex only: a raw `pc_live_…` key (or any other plain text) cannot land here by mistake.
            CredentialKind::ApiKey if !(16..=128).contains(&self.lookup.len()) || !is_lower_hex(&self.lookup) => {
                return Err(StoreError::invalid("an api_key lookup must be the lower-case hex HMAC of the key"));
            }
            CredentialKind::Certificate if self.lookup.len() != 64 || !is_lower_hex(&self.lookup) => {
                return Err(StoreError::invalid(
                    "a certificate lookup must be the lower-case hex SHA-256 fingerprint (64 characters)",
                ));
            }
            _ => check_text("lookup", &self.lookup, 256)?,
        }
        check_text("hint", &self.hint, MAX_HINT_LEN)?;
        match (&self.kind, &self.secret) {
            (CredentialKind::Password, Some(phc)) if phc.starts_with("$argon2") => {}
            (CredentialKind::Password, _) => {
                return Err(StoreError::invalid("a password credential needs its argon2 PHC string as secret"));
            }
            _ => {}
        }
        check_opt_text("secret", self.secret.as_deref(), MAX_SECRET_LEN)?;
        if let Some(scopes) = &self.scopes {
            check_scopes("scopes", scopes)?;
        }
        check_opt_text("label", self.label.as_deref(), 256)
    }

    /// A credential may narrow its consumer's scopes, never widen them.
    pub(crate) fn check_scopes_within(&self, consumer_scopes: &[String]) -> Result<(), StoreError> {
        match &self.scopes {
            Some(own) if own.iter().any(|s| !consumer_scopes.contains(s)) => {
                Err(StoreError::invalid("credential scopes must be a subset of the consumer's scopes"))
            }
            _ => Ok(()),
        }
    }
}

impl NewSuspension {
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        check_id("target", self.target.id())?;
        check_text("reason", &self.reason, MAX_TEXT_LEN)?;
        check_text("created_by", &self.created_by, 256)
    }
}

impl NewShapingPolicy {
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        check_text("route", &self.route, 128)?;
        check_text("subject name", self.subject.name(), 128)?;
        check_text("reason", &self.reason, MAX_TEXT_LEN)?;
        check_text("created_by", &self.created_by, 256)?;
        let shape = &self.shape;
        if shape.allow.len() > MAX_SHAPE_ENTRIES || shape.max_items.len() > MAX_SHAPE_ENTRIES {
            return Err(StoreError::invalid(format!(
                "a shape has at most {MAX_SHAPE_ENTRIES} allow pointers and {MAX_SHAPE_ENTRIES} array caps"
            )));
        }
        for p in shape.allow.iter().chain(shape.max_items.iter().map(|c| &c.pointer)) {
            check_text("pointer", p, 512)?;
        }
        if self.expires_at.is_some_and(|at| at <= self.created_at) {
            return Err(StoreError::invalid("expires_at must be after created_at"));
        }
        Ok(())
    }
}

impl NewAuditEntry {
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        check_text("actor", &self.actor, 256)?;
        check_text("action", &self.action, 128)?;
        check_text("target", &self.target, 256)?;
        if let Some(key) = secret_looking_key(&self.detail) {
            return Err(StoreError::invalid(format!(
                "audit detail key {key:?} looks like it names a secret; audit entries never hold secrets"
            )));
        }
        if serde_json::to_vec(&self.detail).map_or(true, |v| v.len() > MAX_DETAIL_BYTES) {
            return Err(StoreError::invalid(format!("audit detail must be at most {MAX_DETAIL_BYTES} bytes of JSON")));
        }
        Ok(())
    }
}

/// The first object key, at any depth, that looks like it names a secret. Depth is bounded by
/// serde_json's own recursion limit on parsing; values built in code are walked with an explicit
/// stack, so no input can overflow ours.
pub(crate) fn secret_looking_key(value: &serde_json::Value) -> Option<String> {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Object(map) => {
                for (k, child) in map {
                    if key_names_secret(k) {
                        return Some(k.clone());
                    }
                    stack.push(child);
                }
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    None
}

fn key_names_secret(key: &str) -> bool {
    let k: String = key.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_lowercase();
    ["secret", "password", "passwd", "token", "authorization", "cookie"].iter().any(|w| k.contains(w))
        || k.ends_with("key")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cred(kind: CredentialKind, lookup: &str, secret: Option<&str>) -> NewCredential {
        NewCredential {
            consumer_id: "c".into(),
            kind,
            lookup: lookup.into(),
            hint: "pc_live_AbCd…".into(),
            secret: secret.map(Into::into),
            scopes: None,
            expires_at: None,
            label: None,
            created_at: 0,
        }
    }

    #[test]
    fn names_are_slugs() {
        for ok in ["acme", "a", "acme-corp_1.eu", &"a".repeat(64)] {
            assert!(check_name("name", ok).is_ok(), "{ok}");
        }
        for bad in ["", "Acme", "a b", "a/b", "ä", &"a".repeat(65), "a\n"] {
            assert!(check_name("name", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn api_key_lookup_must_be_hex_so_raw_keys_are_refused() {
        let hex = "ab".repeat(32);
        assert!(cred(CredentialKind::ApiKey, &hex, None).validate().is_ok());
        for bad in ["pc_live_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", &"AB".repeat(32), "abc"] {
            assert!(cred(CredentialKind::ApiKey, bad, None).validate().is_err(), "{bad}");
        }
        assert!(cred(CredentialKind::Certificate, &hex, None).validate().is_ok());
        assert!(cred(CredentialKind::Certificate, "ab", None).validate().is_err());
    }

    #[test]
    fn password_credentials_need_a_phc_string_not_a_password() {
        assert!(
            cred(CredentialKind::Password, "alice", Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"))
                .validate()
                .is_ok()
        );
        assert!(cred(CredentialKind::Password, "alice", Some("hunter2")).validate().is_err());
        assert!(cred(CredentialKind::Password, "alice", None).validate().is_err());
    }

    #[test]
    fn credential_scopes_must_narrow() {
        let mut c = cred(CredentialKind::HmacKey, "kid-1", Some("salt"));
        let consumer = vec!["read".to_owned(), "write".to_owned()];
        c.scopes = Some(vec!["read".into()]);
        assert!(c.check_scopes_within(&consumer).is_ok());
        c.scopes = Some(vec!["admin".into()]);
        assert!(c.check_scopes_within(&consumer).is_err());
        c.scopes = None;
        assert!(c.check_scopes_within(&consumer).is_ok());
    }

    #[test]
    fn audit_detail_guard_rejects_secret_looking_keys_at_any_depth() {
        for bad in [
            json!({"password": "x"}),
            json!({"api_key": "x"}),
            json!({"apiKey": "x"}),
            json!({"outer": [{"client_secret": 1}]}),
            json!({"a": {"b": {"Access-Token": null}}}),
            json!({"key": "x"}),
            json!({"Authorization": "Bearer x"}),
        ] {
            assert!(secret_looking_key(&bad).is_some(), "{bad}");
        }
        for ok in [
            json!({"key_id": "k1", "credential_id": "c1", "hint": "pc_live_AbCd", "reason": "rotation"}),
            json!([1, 2]),
            json!(null),
        ] {
            assert!(secret_looking_key(&ok).is_none(), "{ok}");
        }
    }

    #[test]
    fn usable_and_active_follow_the_clock() {
        let mut c = Credential {
            id: "i".into(),
            consumer_id: "c".into(),
            kind: CredentialKind::ApiKey,
            lookup: "ab".into(),
            hint: "h".into(),
            secret: Some("s3cr3t-salt".into()),
            scopes: None,
            expires_at: Some(100),
            revoked_at: None,
            created_at: 0,
            label: None,
        };
        assert!(c.is_usable_at(99));
        assert!(!c.is_usable_at(100));
        c.expires_at = None;
        c.revoked_at = Some(50);
        assert!(c.is_usable_at(49));
        assert!(!c.is_usable_at(50));
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(!serde_json::to_string(&c).unwrap_or_default().contains("s3cr3t"));

        let s = Suspension {
            id: "s".into(),
            target: SuspensionTarget::Route("r".into()),
            reason: "x".into(),
            expires_at: Some(10),
            created_at: 0,
            created_by: "a".into(),
        };
        assert!(s.is_active_at(9));
        assert!(!s.is_active_at(10));
    }

    #[test]
    fn shaping_policy_validation_and_json_shape() {
        let new = NewShapingPolicy {
            route: "customers".into(),
            subject: PolicySubject::Consumer("partner-x".into()),
            shape: PolicyShape { allow: vec!["/items/*/id".into()], ..PolicyShape::default() },
            reason: "scraping".into(),
            expires_at: None,
            created_at: 10,
            created_by: "admin".into(),
        };
        assert!(new.validate().is_ok());
        let too_many = PolicyShape { allow: vec!["/a".into(); MAX_SHAPE_ENTRIES + 1], ..PolicyShape::default() };
        assert!(NewShapingPolicy { shape: too_many, ..new.clone() }.validate().is_err());
        assert!(NewShapingPolicy { reason: String::new(), ..new.clone() }.validate().is_err());
        assert!(NewShapingPolicy { expires_at: Some(10), ..new.clone() }.validate().is_err());
        assert_eq!(
            serde_json::to_value(&new.subject).unwrap_or_default(),
            json!({"kind": "consumer", "name": "partner-x"})
        );
        assert!(PolicySubject::from_parts("org", "acme".into()).is_ok());
        assert!(PolicySubject::from_parts("route", "x".into()).is_err());
    }

    #[test]
    fn suspension_target_json_shape() {
        let t = SuspensionTarget::Consumer("abc".into());
        assert_eq!(serde_json::to_value(&t).unwrap_or_default(), json!({"kind": "consumer", "id": "abc"}));
    }
}
