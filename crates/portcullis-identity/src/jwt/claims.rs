//! Registered-claim checks (RFC 7519 §4.1) and the verified token handed to the pipeline.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::JwtError;
use super::alg::Alg;

/// How a token was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// A JWT whose signature we checked.
    Jwt {
        /// The algorithm.
        alg: Alg,
        /// The `kid` the token named.
        kid: Option<String>,
    },
    /// An opaque token the issuer's introspection endpoint declared active (RFC 7662).
    Introspection,
}

#[derive(Debug)]
struct Inner {
    source: TokenSource,
    subject: Option<String>,
    issuer: Option<String>,
    audiences: Vec<String>,
    expires_at: Option<SystemTime>,
    client_id: Option<String>,
    scopes: Vec<String>,
    claims: Map<String, Value>,
}

/// A token that passed every check. Cheap to clone (shared). Its `Debug` lists the claims,
/// which are not secret; the token itself is never kept.
#[derive(Debug, Clone)]
pub struct VerifiedToken(Arc<Inner>);

impl VerifiedToken {
    /// How it was verified.
    pub fn source(&self) -> &TokenSource {
        &self.0.source
    }

    /// `sub`.
    pub fn subject(&self) -> Option<&str> {
        self.0.subject.as_deref()
    }

    /// `iss` (always present for a JWT; for introspection, if the endpoint sent it).
    pub fn issuer(&self) -> Option<&str> {
        self.0.issuer.as_deref()
    }

    /// `aud`, as a list even when the token carried a single string.
    pub fn audiences(&self) -> &[String] {
        &self.0.audiences
    }

    /// `exp`, if the token has one.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.0.expires_at
    }

    /// `client_id`, or else `azp` (the OAuth client the token was issued to).
    pub fn client_id(&self) -> Option<&str> {
        self.0.client_id.as_deref()
    }

    /// The union of `scope` (space-separated string) and `scp` (string or array), in order,
    /// without duplicates.
    pub fn scopes(&self) -> &[String] {
        &self.0.scopes
    }

    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.0.scopes.iter().any(|s| s == scope)
    }

    /// Every claim as sent, for ownership rules that read custom claims.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.0.claims
    }
}

/// Reads a NumericDate (seconds since the epoch, possibly fractional; RFC 7519 §2).
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                return Ok(Some(u));
            }
            match n.as_f64() {
                // Float-to-int `as` saturates, so 1e300 becomes u64::MAX: "far future".
                Some(f) if f.is_finite() && f >= 0.0 => Ok(Some(f.floor() as u64)),
                _ => Err(JwtError::InvalidClaim(name)),
            }
        }
        Some(_) => Err(JwtError::InvalidClaim(name)),
    }
}

fn string(claims: &Map<String, Value>, name: &'static str) -> Result<Option<String>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(JwtError::InvalidClaim(name)),
    }
}

fn string_or_array(claims: &Map<String, Value>, name: &'static str, split: bool) -> Result<Vec<String>, JwtError> {
    match claims.get(name) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) if split => Ok(s.split_ascii_whitespace().map(str::to_owned).collect()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => {
            items.iter().map(|v| v.as_str().map(str::to_owned).ok_or(JwtError::InvalidClaim(name))).collect()
        }
        Some(_) => Err(JwtError::InvalidClaim(name)),
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// What the claims must satisfy.
pub(crate) struct ClaimRules<'a> {
    pub(crate) issuer: Option<&'a str>,
    pub(crate) audiences: &'a [String],
    pub(crate) leeway: Duration,
    pub(crate) require_exp: bool,
}

/// Checks the registered claims against `rules` at `now` and builds the verified token.
pub(crate) fn validate(
    claims: Map<String, Value>,
    rules: &ClaimRules<'_>,
    now: SystemTime,
    source: TokenSource,
) -> Result<VerifiedToken, JwtError> {
    let now_s = unix_seconds(now);
    let leeway = rules.leeway.as_secs();
    let exp = numeric_date(&claims, "exp")?;
    let nbf = numeric_date(&claims, "nbf")?;
    let iat = numeric_date(&claims, "iat")?;
    match exp {
        None if rules.require_exp => return Err(JwtError::MissingClaim("exp")),
        Some(exp) if now_s >= exp.saturating_add(leeway) => return Err(JwtError::Expired),
        _ => {}
    }
    if let Some(nbf) = nbf
        && nbf > now_s.saturating_add(leeway)
    {
        return Err(JwtError::NotYetValid);
    }
    if let Some(iat) = iat
        && iat > now_s.saturating_add(leeway)
    {
        return Err(JwtError::IssuedInFuture);
    }
    let issuer = string(&claims, "iss")?;
    if let Some(want) = rules.issuer {
        match issuer.as_deref() {
            None => return Err(JwtError::MissingClaim("iss")),
            Some(got) if got != want => return Err(JwtError::WrongIssuer),
            Some(_) => {}
        }
    }
    let audiences = string_or_array(&claims, "aud", false)?;
    if !rules.audiences.is_empty() {
        if !claims.contains_key("aud") {
            return Err(JwtError::MissingClaim("aud"));
        }
        if !audiences.iter().any(|a| rules.audiences.contains(a)) {
            return Err(JwtError::WrongAudience);
        }
    }
    let subject = string(&claims, "sub")?;
    let client_id = match string(&claims, "client_id")? {
        Some(c) => Some(c),
        None => string(&claims, "azp")?,
    };
    let mut scopes: Vec<String> = Vec::new();
    for s in string_or_array(&claims, "scope", true)?.into_iter().chain(string_or_array(&claims, "scp", true)?) {
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    let expires_at = exp.and_then(|e| UNIX_EPOCH.checked_add(Duration::from_secs(e)));
    Ok(VerifiedToken(Arc::new(Inner { source, subject, issuer, audiences, expires_at, client_id, scopes, claims })))
}
