//! OAuth 2.0 token introspection (RFC 7662) for opaque bearer tokens.
//!
//! The token is POSTed as `token=…&token_type_hint=access_token` to the configured endpoint with
//! the gateway's client credentials (HTTP Basic; the secret is a [`Secret`]). An answer with
//! `active: false` (or no `active: true`), an `exp` already passed, or an `aud`/`iss` that does
//! not match the optional expectations is a refusal.
//!
//! Results are cached by SHA-256 of the token: active ones until `min(exp, now + max_ttl)`,
//! inactive ones for `negative_ttl` (so a replayed dead token does not reach the endpoint on
//! every request). When the endpoint cannot be reached, or answers with anything but `200` and
//! a JSON object, the result is [`IntrospectError::IdpUnavailable`] (answer 503, not 401), it
//! is not cached, and `portcullis_idp_fetch_errors_total{issuer}` counts it.

use std::fmt;
use std::time::{Duration, SystemTime};

use portcullis_config::Secret;
use serde_json::Value;

use crate::http::{HttpClient, HttpOptions, check_url, form_urlencode};
use crate::jwt::{ClaimRules, JwtError, TokenSource, TtlCache, VerifiedToken, parse_object, token_key, validate};

/// Settings for one introspection endpoint.
#[derive(Clone)]
pub struct IntrospectionConfig {
    /// The endpoint URL (HTTPS; plain http only to loopback or with `danger_allow_http`).
    pub endpoint: String,
    /// The gateway's client id at the authorization server.
    pub client_id: String,
    /// The gateway's client secret.
    pub client_secret: Secret,
    /// Transport settings.
    pub http: HttpOptions,
    /// Label for metrics and logs (e.g. the issuer URL).
    pub label: String,
    /// If set, the answer's `iss` must equal it.
    pub issuer: Option<String>,
    /// If not empty, the answer's `aud` must contain one of these.
    pub audiences: Vec<String>,
    /// Active results are cached at most this long. Default 5 min.
    pub max_ttl: Duration,
    /// Inactive results are cached this long. Default 30 s.
    pub negative_ttl: Duration,
    /// Cache capacity. Default 10 000.
    pub max_entries: usize,
    /// Longer tokens are refused without a call. Default 8 KiB.
    pub max_token_bytes: usize,
    /// Leeway on `exp`/`nbf`/`iat` in the answer. Default 60 s.
    pub leeway: Duration,
}

impl fmt::Debug for IntrospectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionConfig")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl IntrospectionConfig {
    /// A configuration with the defaults for everything else.
    pub fn new(endpoint: &str, client_id: &str, client_secret: Secret) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            client_id: client_id.to_owned(),
            client_secret,
            http: HttpOptions::default(),
            label: endpoint.to_owned(),
            issuer: None,
            audiences: Vec::new(),
            max_ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(30),
            max_entries: 10_000,
            max_token_bytes: 8 * 1024,
            leeway: Duration::from_secs(60),
        }
    }
}

/// Why an opaque token was refused. `Display` never contains the token or the client secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntrospectError {
    /// The authorization server says the token is not active.
    #[error("token is not active")]
    Inactive,
    /// The token is empty or longer than allowed.
    #[error("token is empty or too large")]
    Malformed,
    /// The answer was active but failed a claim check (expired, wrong audience…).
    #[error("token rejected: {0}")]
    Claims(JwtError),
    /// The endpoint could not be reached or gave no usable answer: answer 503, not 401.
    #[error("introspection endpoint unavailable")]
    IdpUnavailable,
    /// The configuration is unusable.
    #[error("invalid introspection configuration: {0}")]
    Config(String),
}

impl IntrospectError {
    /// Whether the failure is the identity provider's (503) rather than the token's (401).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, IntrospectError::IdpUnavailable)
    }
}

#[derive(Clone)]
enum Cached {
    Active(VerifiedToken),
    Inactive,
}

/// An introspection client with its result cache.
pub struct Introspector {
    cfg: IntrospectionConfig,
    client: HttpClient,
    cache: TtlCache<Cached>,
}

impl fmt::Debug for Introspector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Introspector").field("cfg", &self.cfg).finish()
    }
}

impl Introspector {
    /// Checks the configuration and builds the client. Sends nothing.
    pub fn new(cfg: IntrospectionConfig) -> Result<Self, IntrospectError> {
        check_url(&cfg.endpoint, &cfg.http).map_err(|e| IntrospectError::Config(e.to_string()))?;
        let client = HttpClient::new(cfg.http.clone()).map_err(|e| IntrospectError::Config(e.to_string()))?;
        let cache = TtlCache::new(cfg.max_entries);
        Ok(Self { cfg, client, cache })
    }

    /// Introspects `token` at `now` (from the cache when possible).
    pub async fn introspect(&self, token: &str, now: SystemTime) -> Result<VerifiedToken, IntrospectError> {
        if token.is_empty() || token.len() > self.cfg.max_token_bytes {
            return Err(IntrospectError::Malformed);
        }
        let key = token_key(token);
        match self.cache.get(&key, now, 0) {
            Some(Cached::Active(t)) => return Ok(t),
            Some(Cached::Inactive) => return Err(IntrospectError::Inactive),
            None => {}
        }
        let form = format!("token={}&token_type_hint=access_token", form_urlencode(token));
        let answer = self
            .client
            .post_form(&self.cfg.endpoint, form, Some((&self.cfg.client_id, &self.cfg.client_secret)))
            .await
            .map_err(|e| self.unavailable(&e.to_string()))?;
        let claims = parse_object(&answer).ok_or_else(|| self.unavailable("answer is not a JSON object"))?;
        if claims.get("active") != Some(&Value::Bool(true)) {
            self.remember_inactive(key, now);
            return Err(IntrospectError::Inactive);
        }
        let rules = ClaimRules {
            issuer: self.cfg.issuer.as_deref(),
            audiences: &self.cfg.audiences,
            leeway: self.cfg.leeway,
            require_exp: false,
        };
        let verified = match validate(claims, &rules, now, TokenSource::Introspection) {
            Ok(v) => v,
            Err(e) => {
                self.remember_inactive(key, now);
                return Err(IntrospectError::Claims(e));
            }
        };
        let by_ttl = now.checked_add(self.cfg.max_ttl);
        let by_exp = verified.expires_at();
        if let Some(until) = [by_ttl, by_exp].into_iter().flatten().min() {
            self.cache.insert(key, Cached::Active(verified.clone()), until, 0, now);
        }
        Ok(verified)
    }

    fn remember_inactive(&self, key: [u8; 32], now: SystemTime) {
        if let Some(until) = now.checked_add(self.cfg.negative_ttl) {
            self.cache.insert(key, Cached::Inactive, until, 0, now);
        }
    }

    fn unavailable(&self, why: &str) -> IntrospectError {
        metrics::counter!("portcullis_idp_fetch_errors_total", "issuer" => self.cfg.label.clone()).increment(1);
        tracing::warn!(issuer = %self.cfg.label, error = why, "token introspection failed");
        IntrospectError::IdpUnavailable
    }
}
