//! JWT bearer-token verification (JWS compact, RFC 7515/7519) for one issuer at a time, with the
//! policy in our hands: the header and claims are parsed here with serde_json, and only the
//! signature arithmetic is delegated to ring.
//!
//! The pieces:
//! - [`IssuerPolicy`]: what the integrator builds from config (issuer, audiences, algorithm
//!   allow-list, leeway, size cap, key sources, caching).
//! - [`Verifier`]: checks a token against the policy at an injected `now`; keeps a bounded
//!   cache of verified tokens so a repeated token costs a SHA-256 and a map look-up.
//! - [`Jwk`], [`JwkSet`]: keys (RSA ≥ 2048 bits, EC P-256/P-384, Ed25519, HMAC from a
//!   [`Secret`](portcullis_config::Secret) only).
//! - [`JwksCache`]: a remote key set (JWKS URL or OIDC discovery) with background refresh,
//!   single-flight rate-limited refetch on unknown `kid`, and last-good-set fallback.
//! - [`verify_signature`]: the signature layer alone.
//!
//! What is refused, and in which order, is listed on [`Verifier::verify`].
//!
//! # Header policy
//! - `alg` must be a registered name we support (case-sensitive), in the issuer's allow-list,
//!   and fit the key: `none` in any casing is refused first; an HMAC `alg` never runs with an
//!   RSA/EC/OKP key (an allow-list mixing HMAC and public-key algorithms is refused when the
//!   verifier is built); a JWK that declares `alg` serves only that `alg`.
//! - `crit`: we implement no JWS extension, so any `crit` is refused (RFC 7515 §4.1.11).
//! - `jku`, `x5u`, `jwk`: refused outright. They ask the verifier to fetch or trust a key the
//!   token itself names; accepting tokens that merely carry them buys nothing and invites a
//!   future code path that uses them. `x5c`, `x5t` and `x5t#S256` are tolerated (some identity
//!   providers send them) but never read: keys come only from the issuer's configured sources.
//! - `kid` is only a map key into our key set: `../../dev/null` or `x' OR '1'='1` simply find
//!   nothing. Without a `kid`, the single key that fits the `alg` is used; several are ambiguous.
//! - `typ` is checked only when [`IssuerPolicy::typ`] lists accepted values (e.g. `at+jwt`,
//!   RFC 9068), to stop one kind of token being replayed as another.
//! - Header and payload must be JSON objects without duplicate members (a repeated `alg` or
//!   `exp` is a parser-differential attack); base64url is strict (no padding, no stray
//!   characters, canonical trailing bits).
//!
//! ```
//! use std::time::{Duration, SystemTime, UNIX_EPOCH};
//! use portcullis_identity::jwt::{self, Alg, IssuerPolicy, JwkSet, KeySource, Verifier};
//! # let dir = std::env::temp_dir().join(format!("pc-jwt-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # std::fs::write(dir.join("hs"), r#"{"keys":[{"kty":"oct","kid":"k1","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}"#).unwrap();
//! // Shared secrets come only from a secret reference (${env:…} or ${file:…}).
//! let secret = portcullis_config::resolve_secret("${file:hs}", &dir).unwrap();
//! let keys = JwkSet::from_secret_json(&secret).unwrap();
//! let policy = IssuerPolicy::new(
//!     "https://idp.example",
//!     vec!["orders-api".into()],
//!     vec![Alg::Hs256],
//!     vec![KeySource::Static(keys)],
//! );
//! let verifier = Verifier::new(policy).unwrap();
//!
//! # let sign = |claims: &str| {
//! #     let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret-secret-secret-secret-secret");
//! #     let input = format!("{}.{}", jwt::b64::encode(br#"{"alg":"HS256","kid":"k1"}"#), jwt::b64::encode(claims.as_bytes()));
//! #     format!("{input}.{}", jwt::b64::encode(ring::hmac::sign(&key, input.as_bytes()).as_ref()))
//! # };
//! let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let token = sign(r#"{"iss":"https://idp.example","aud":"orders-api","sub":"alice","exp":1700000600,"scope":"orders:read"}"#);
//! // `verify` is async (it may have to fetch keys); a static key set never waits.
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let ok = rt.block_on(verifier.verify(&token, now)).unwrap();
//! assert_eq!(ok.subject(), Some("alice"));
//! assert!(ok.has_scope("orders:read"));
//!
//! let expired = now + Duration::from_secs(3600);
//! assert_eq!(rt.block_on(verifier.verify(&token, expired)).unwrap_err(), jwt::JwtError::Expired);
//! ```

pub mod b64;

mod alg;
mod cache;
mod claims;
mod jwk;
mod jwks;
mod jws;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use alg::Alg;
pub use claims::{TokenSource, VerifiedToken};
pub use jwk::{Jwk, JwkError, JwkSet, MAX_RSA_BITS, MIN_RSA_BITS, SkippedKey};
pub use jwks::{Clock, FetchOptions, JwksCache, RemoteKeys, SystemClock};
pub use jws::{VerifiedJws, check_signature, verify_signature};

pub(crate) use cache::{TtlCache, token_key};
pub(crate) use claims::{ClaimRules, validate};
pub(crate) use jws::parse_object;

/// Why a token was refused. `Display` never contains the token (nor the `kid`, which is
/// attacker-chosen). Everything but [`JwtError::IdpUnavailable`] and [`JwtError::Config`]
/// means "401".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Longer than the policy's `max_token_bytes`; refused before decoding.
    #[error("token larger than {max} bytes")]
    TooLarge {
        /// The cap.
        max: usize,
    },
    /// Not a well-formed compact JWS/JWT.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg: none`, in any casing.
    #[error("unsigned tokens (alg none) are never accepted")]
    AlgNone,
    /// An `alg` we do not implement.
    #[error("unsupported alg")]
    UnsupportedAlg,
    /// An `alg` outside the issuer's allow-list.
    #[error("alg {0} is not allowed for this issuer")]
    AlgNotAllowed(Alg),
    /// `jku`, `x5u` or `jwk` in the header.
    #[error("header parameter {0} is not accepted")]
    ForbiddenHeader(&'static str),
    /// A `crit` header (we implement no extension).
    #[error("crit names an extension that is not understood")]
    UnknownCrit,
    /// No key with the token's `kid` (or, without a `kid`, none that fits).
    #[error("no key for this token")]
    UnknownKey,
    /// No `kid` and several keys fit.
    #[error("token names no kid and several keys fit")]
    AmbiguousKey,
    /// The key named by `kid` may not verify this `alg` (wrong type, curve or declared alg).
    #[error("the key does not allow alg {0}")]
    KeyAlgMismatch(Alg),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// A required claim is absent.
    #[error("required claim {0} is missing")]
    MissingClaim(&'static str),
    /// A claim has the wrong JSON type.
    #[error("claim {0} is invalid")]
    InvalidClaim(&'static str),
    /// `typ` is absent or not one the policy accepts.
    #[error("wrong token type")]
    WrongType,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` names none of the configured audiences.
    #[error("wrong audience")]
    WrongAudience,
    /// The identity provider could not be reached and no key set was ever fetched: answer
    /// 503, not 401.
    #[error("identity provider unavailable")]
    IdpUnavailable,
    /// The policy itself is unusable (reported when the verifier is built).
    #[error("invalid issuer policy: {0}")]
    Config(String),
}

impl JwtError {
    /// Whether the failure is ours or the identity provider's (503) rather than the token's
    /// (401).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, JwtError::IdpUnavailable)
    }
}

/// Refuses an empty allow-list, and one that mixes HMAC with public-key algorithms (the
/// classic confusion: a public key used as an HMAC secret).
pub(crate) fn check_algorithms(algorithms: &[Alg]) -> Result<(), JwtError> {
    if algorithms.is_empty() {
        return Err(JwtError::Config("the algorithm allow-list is empty".into()));
    }
    let hmac = algorithms.iter().filter(|a| a.is_hmac()).count();
    if hmac != 0 && hmac != algorithms.len() {
        return Err(JwtError::Config("the allow-list mixes HMAC and public-key algorithms".into()));
    }
    Ok(())
}

fn normalize_typ(t: &str) -> String {
    let lower = t.to_ascii_lowercase();
    lower.strip_prefix("application/").map(str::to_owned).unwrap_or(lower)
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum KeySource {
    /// Keys given in configuration (public keys, or shared secrets read from a secret).
    Static(JwkSet),
    /// A JWKS URL.
    Jwks {
        /// The URL.
        url: String,
    },
    /// An OIDC issuer URL: its discovery document names the JWKS URL.
    Discovery {
        /// The issuer URL.
        issuer_url: String,
    },
}

/// Caching of verified tokens.
#[derive(Debug, Clone, Copy)]
pub struct TokenCacheOptions {
    /// An entry lives until `min(exp, verified_at + ttl)`. Default 5 min; zero disables.
    pub ttl: Duration,
    /// At most this many entries. Default 10 000.
    pub max_entries: usize,
}

impl Default for TokenCacheOptions {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(300), max_entries: 10_000 }
    }
}

/// What one issuer's tokens must satisfy. Built by the integrator from config.
#[derive(Debug, Clone)]
pub struct IssuerPolicy {
    /// The required `iss`, compared exactly.
    pub issuer: String,
    /// `aud` (string or array) must contain at least one of these. Must not be empty.
    pub audiences: Vec<String>,
    /// Allowed algorithms; must not mix HMAC with public-key algorithms.
    pub algorithms: Vec<Alg>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`. Default 60 s.
    pub leeway: Duration,
    /// Longer tokens are refused before decoding. Default 8 KiB.
    pub max_token_bytes: usize,
    /// Key sources: any number of `Static` sets plus at most one remote source.
    pub keys: Vec<KeySource>,
    /// Whether `exp` is required. Default true.
    pub require_exp: bool,
    /// Remote fetch settings.
    pub fetch: FetchOptions,
    /// Verified-token cache settings.
    pub cache: TokenCacheOptions,
    /// Accepted `typ` header values, compared case-insensitively with an optional
    /// `application/` prefix (RFC 8725 §3.11). Empty (the default): `typ` is not checked.
    pub typ: Vec<String>,
}

impl IssuerPolicy {
    /// A policy with the defaults for everything else.
    pub fn new(issuer: &str, audiences: Vec<String>, algorithms: Vec<Alg>, keys: Vec<KeySource>) -> Self {
        Self {
            issuer: issuer.to_owned(),
            audiences,
            algorithms,
            leeway: Duration::from_secs(60),
            max_token_bytes: 8 * 1024,
            keys,
            require_exp: true,
            fetch: FetchOptions::default(),
            cache: TokenCacheOptions::default(),
            typ: Vec::new(),
        }
    }
}

/// Verifies one issuer's tokens.
pub struct Verifier {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Alg>,
    leeway: Duration,
    max_token_bytes: usize,
    require_exp: bool,
    static_keys: JwkSet,
    remote: Option<Arc<JwksCache>>,
    cache: TtlCache<VerifiedToken>,
    cache_ttl: Duration,
    typ: Vec<String>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.issuer)
            .field("algorithms", &self.algorithms)
            .field("remote", &self.remote)
            .finish()
    }
}

impl Verifier {
    /// Checks the policy and builds the verifier. Fetches nothing: call
    /// [`JwksCache::spawn_refresher`] on [`Verifier::jwks`] at start-up, or let the first token
    /// trigger the fetch.
    pub fn new(policy: IssuerPolicy) -> Result<Verifier, JwtError> {
        check_algorithms(&policy.algorithms)?;
        if policy.issuer.is_empty() {
            return Err(JwtError::Config("issuer is empty".into()));
        }
        if policy.audiences.is_empty() {
            return Err(JwtError::Config("at least one audience is required".into()));
        }
        let hmac = policy.algorithms.iter().any(|a| a.is_hmac());
        let mut static_keys: Vec<Jwk> = Vec::new();
        let mut remote = None;
        for source in policy.keys {
            match source {
                KeySource::Static(set) => {
                    if set.is_symmetric() != hmac {
                        return Err(JwtError::Config("a static key set does not fit the allowed algorithms".into()));
                    }
                    static_keys.extend(set.iter().map(|k| k.as_ref().clone()));
                }
                KeySource::Jwks { .. } | KeySource::Discovery { .. } if hmac => {
                    return Err(JwtError::Config("HMAC secrets are never fetched from a URL".into()));
                }
                KeySource::Jwks { .. } | KeySource::Discovery { .. } if remote.is_some() => {
                    return Err(JwtError::Config("at most one remote key source per issuer".into()));
                }
                KeySource::Jwks { url } => {
                    remote =
                        Some(Arc::new(JwksCache::new(&policy.issuer, RemoteKeys::Jwks { url }, policy.fetch.clone())?))
                }
                KeySource::Discovery { issuer_url } => {
                    remote = Some(Arc::new(JwksCache::new(
                        &policy.issuer,
                        RemoteKeys::Discovery { issuer_url },
                        policy.fetch.clone(),
                    )?))
                }
            }
        }
        let static_keys = JwkSet::from_keys(static_keys).map_err(|e| JwtError::Config(e.to_string()))?;
        if static_keys.is_empty() && remote.is_none() {
            return Err(JwtError::Config("no keys configured".into()));
        }
        Ok(Verifier {
            issuer: policy.issuer,
            audiences: policy.audiences,
            algorithms: policy.algorithms,
            leeway: policy.leeway,
            max_token_bytes: policy.max_token_bytes,
            require_exp: policy.require_exp,
            static_keys,
            remote,
            cache: TtlCache::new(if policy.cache.ttl.is_zero() { 0 } else { policy.cache.max_entries }),
            cache_ttl: policy.cache.ttl,
            typ: policy.typ.iter().map(|t| normalize_typ(t)).collect(),
        })
    }

    /// The remote key set, if the policy has one.
    pub fn jwks(&self) -> Option<&Arc<JwksCache>> {
        self.remote.as_ref()
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    fn generation(&self) -> u64 {
        self.remote.as_ref().map_or(0, |r| r.generation())
    }

    /// Verifies `token` at `now`. Refused, in this order:
    /// 1. longer than `max_token_bytes` (before any decoding);
    /// 2. not exactly three base64url segments (strict: no padding, no stray characters);
    ///    header not a JSON object, or with duplicate members;
    /// 3. `alg` missing, `none` in any casing, unknown, or outside the allow-list;
    /// 4. any `crit`; a `jku`, `x5u` or `jwk` header (keys come only from our key sources);
    ///    a `typ` the policy does not accept (when it lists any);
    /// 5. no key for the `kid` (after one rate-limited refetch of a remote set), or the key
    ///    does not fit the `alg` (type, curve, declared `alg`): an HMAC `alg` never runs with
    ///    an RSA/EC/OKP key;
    /// 6. bad signature (ECDSA in fixed `r || s` form; r = s = 0 fails);
    /// 7. payload not a JSON object, or with duplicate members;
    /// 8. `exp` missing (unless not required) or passed, `nbf`/`iat` in the future, each with
    ///    the leeway; `iss` missing or different; `aud` missing or naming none of ours.
    ///
    /// A token that passed is cached (keyed by its SHA-256) until `min(exp, now + ttl)`, or
    /// until the remote key set changes.
    pub async fn verify(&self, token: &str, now: SystemTime) -> Result<VerifiedToken, JwtError> {
        if token.len() > self.max_token_bytes {
            return Err(JwtError::TooLarge { max: self.max_token_bytes });
        }
        let key = token_key(token);
        let generation = self.generation();
        if let Some(hit) = self.cache.get(&key, now, generation) {
            return Ok(hit);
        }
        let compact = jws::parse(token, &self.algorithms, self.max_token_bytes)?;
        if !self.typ.is_empty() && !compact.typ.as_deref().is_some_and(|t| self.typ.contains(&normalize_typ(t))) {
            return Err(JwtError::WrongType);
        }
        let set;
        let jwk = match (jws::select(&self.static_keys, &compact), &self.remote) {
            (Ok(k), _) => k,
            (Err(JwtError::UnknownKey | JwtError::AmbiguousKey), Some(remote)) => {
                let mut current = remote.keys(now).await?;
                if compact.kid.is_some() && matches!(jws::select(&current, &compact), Err(JwtError::UnknownKey)) {
                    current = remote.refetch_for_unknown_kid(now).await?;
                }
                set = current;
                jws::select(&set, &compact)?
            }
            (Err(e), _) => return Err(e),
        };
        jws::check_signature(jwk, compact.alg, compact.signing_input, &compact.signature)?;
        let claims = parse_object(&compact.payload).ok_or(JwtError::Malformed("payload is not a JSON object"))?;
        let rules = ClaimRules {
            issuer: Some(&self.issuer),
            audiences: &self.audiences,
            leeway: self.leeway,
            require_exp: self.require_exp,
        };
        let token_out = validate(claims, &rules, now, TokenSource::Jwt { alg: compact.alg, kid: compact.kid.clone() })?;
        let by_ttl = now.checked_add(self.cache_ttl);
        let by_exp = token_out.expires_at().and_then(|exp| exp.checked_add(self.leeway));
        if let Some(until) = [by_ttl, by_exp].into_iter().flatten().min() {
            self.cache.insert(key, token_out.clone(), until, generation, now);
        }
        Ok(token_out)
    }

    /// How many verified tokens are cached.
    pub fn cached_tokens(&self) -> usize {
        self.cache.len()
    }
}

#[cfg(test)]
mod tests;
