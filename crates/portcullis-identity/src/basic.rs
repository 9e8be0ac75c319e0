//! HTTP Basic authentication (RFC 7617) for legacy clients, with passwords stored as Argon2id
//! PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
//!
//! Defaults follow OWASP's password storage cheat sheet: Argon2id, m = 19456 KiB, t = 2, p = 1.
//! Verification always costs one Argon2 computation, also when the user does not exist (a fixed
//! dummy hash with the configured parameters is verified instead), so response time does not tell
//! which usernames exist.
//!
//! ```
//! use portcullis_identity::basic::{self, Argon2Config, PasswordHasher};
//! # let cheap = Argon2Config { m_kib: 64, t: 1, p: 1, ..Argon2Config::default() }; // keep the doctest fast
//! let hasher = PasswordHasher::new(cheap).unwrap(); // Argon2Config::default() in production
//! let stored = hasher.hash_password("correct horse").unwrap();
//!
//! let header = http::HeaderValue::from_static("Basic YWxpY2U6Y29ycmVjdCBob3JzZQ==");
//! let creds = basic::parse_basic(&header).unwrap();
//! assert_eq!(creds.username, "alice");
//! // Look the user up; pass None when there is no such user: the cost is the same.
//! assert!(hasher.verify_password(creds.password.expose(), Some(&stored)));
//! assert!(!hasher.verify_password(creds.password.expose(), None));
//! ```

use std::fmt;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, PasswordHash, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use ring::rand::{SecureRandom, SystemRandom};

/// Usernames longer than this many bytes are refused.
pub const MAX_USERNAME_BYTES: usize = 256;
/// Passwords longer than this many bytes are refused.
pub const MAX_PASSWORD_BYTES: usize = 1024;
// base64 of user, colon and password, plus "Basic ".
const MAX_HEADER_BYTES: usize = 6 + (MAX_USERNAME_BYTES + 1 + MAX_PASSWORD_BYTES).div_ceil(3) * 4;
// OWASP's weakest listed Argon2id configuration is m = 7168 KiB with t = 5; every listed one
// spends at least m × t = 35840 KiB-passes.
const OWASP_MIN_M_KIB: u32 = 7168;
const OWASP_MIN_COST: u64 = 7168 * 5;

/// Why Basic credentials or a password hash could not be handled. Never contains a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BasicError {
    /// The header is not `Basic <base64 of user:password>`.
    #[error("malformed Basic authorization header: {0}")]
    Malformed(&'static str),
    /// The username is empty or longer than [`MAX_USERNAME_BYTES`].
    #[error("username must be 1 to {MAX_USERNAME_BYTES} bytes")]
    UsernameLength,
    /// The password is longer than [`MAX_PASSWORD_BYTES`].
    #[error("password longer than {MAX_PASSWORD_BYTES} bytes")]
    PasswordTooLong,
    /// The Argon2 parameters are out of range.
    #[error("invalid Argon2 parameters: {0}")]
    Params(&'static str),
    /// Hashing failed.
    #[error("password hashing failed")]
    Hash,
    /// The system random generator failed.
    #[error("the system random generator failed")]
    Random,
}

/// Argon2id cost parameters, and the ceiling above which a stored hash is refused (a corrupted
/// or planted hash must not be able to make one verification cost gigabytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Config {
    /// Memory in KiB (OWASP: 19456).
    pub m_kib: u32,
    /// Passes (OWASP: 2).
    pub t: u32,
    /// Lanes (OWASP: 1).
    pub p: u32,
    /// Stored hashes asking for more memory than this are refused.
    pub max_m_kib: u32,
    /// Stored hashes asking for more passes than this are refused.
    pub max_t: u32,
    /// Stored hashes asking for more lanes than this are refused.
    pub max_p: u32,
}

impl Default for Argon2Config {
    fn default() -> Self {
        Self { m_kib: 19456, t: 2, p: 1, max_m_kib: 256 * 1024, max_t: 16, max_p: 8 }
    }
}

/// What a stored PHC string's parameters mean for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PhcStatus {
    /// Argon2id v19 with exactly the configured parameters.
    Current,
    /// Argon2id v19 within the ceiling and at least OWASP's minimum, but not the configured
    /// parameters: it verifies; rehash after the next successful login.
    Outdated,
    /// Argon2id v19 within the ceiling but below OWASP's minimum cost: it verifies, but should
    /// be rehashed after the next successful login.
    Weak,
    /// Not a PHC string, not Argon2id v19, or above the cost ceiling: never verified.
    Unsupported,
}

impl PhcStatus {
    /// Whether the parameters are acceptable as they are (no rehash needed for strength).
    pub fn is_acceptable(self) -> bool {
        matches!(self, PhcStatus::Current | PhcStatus::Outdated)
    }
}

/// A password from a Basic header. `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The password, to pass to verification; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The credentials of a Basic header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    /// The user-id, as sent (UTF-8, no control characters, no colon).
    pub username: String,
    /// The password.
    pub password: Password,
}

/// Parses `Authorization: Basic <base64(user-id ":" password)>` (RFC 7617). The scheme is
/// case-insensitive; the credentials must be canonical padded base64 of UTF-8 text; the user-id
/// may not be empty or contain control characters; lengths are capped.
pub fn parse_basic(value: &HeaderValue) -> Result<BasicCredentials, BasicError> {
    let bytes = value.as_bytes();
    if bytes.len() > MAX_HEADER_BYTES {
        return Err(BasicError::Malformed("too long"));
    }
    let s = std::str::from_utf8(bytes).map_err(|_| BasicError::Malformed("not ASCII"))?;
    let (scheme, token) = s.split_once(' ').ok_or(BasicError::Malformed("no credentials"))?;
    if !scheme.eq_ignore_ascii_case("Basic") {
        return Err(BasicError::Malformed("scheme"));
    }
    let token = token.trim_matches([' ', '\t']);
    let decoded = STANDARD.decode(token).map_err(|_| BasicError::Malformed("base64"))?;
    let text = String::from_utf8(decoded).map_err(|_| BasicError::Malformed("not UTF-8"))?;
    let (user, pass) = text.split_once(':').ok_or(BasicError::Malformed("no colon"))?;
    if user.is_empty() || user.len() > MAX_USERNAME_BYTES {
        return Err(BasicError::UsernameLength);
    }
    if pass.len() > MAX_PASSWORD_BYTES {
        return Err(BasicError::PasswordTooLong);
    }
    if user.chars().any(char::is_control) || pass.chars().any(char::is_control) {
        return Err(BasicError::Malformed("control character"));
    }
    Ok(BasicCredentials { username: user.to_owned(), password: Password(pass.to_owned()) })
}

/// Hashes and verifies passwords with Argon2id. Shareable across threads.
pub struct PasswordHasher {
    config: Argon2Config,
    argon: Argon2<'static>,
    dummy: PasswordHash,
    computations: AtomicU64,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher").field("config", &self.config).finish_non_exhaustive()
    }
}

fn params_of(c: &Argon2Config) -> Result<Params, BasicError> {
    if c.m_kib > c.max_m_kib || c.t > c.max_t || c.p > c.max_p {
        return Err(BasicError::Params("cost above the configured ceiling"));
    }
    Params::new(c.m_kib, c.t, c.p, None).map_err(|_| BasicError::Params("m must be at least 8 × p, t and p at least 1"))
}

impl PasswordHasher {
    /// A hasher with these parameters. Computes the dummy hash used for unknown users (one
    /// Argon2 computation).
    pub fn new(config: Argon2Config) -> Result<Self, BasicError> {
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params_of(&config)?);
        let mut pw = [0u8; 16];
        SystemRandom::new().fill(&mut pw).map_err(|_| BasicError::Random)?;
        let dummy = Self::hash_with(&argon, &pw)?;
        Ok(Self { config, argon, dummy, computations: AtomicU64::new(1) })
    }

    /// The parameters in use.
    pub fn config(&self) -> Argon2Config {
        self.config
    }

    fn hash_with(argon: &Argon2<'static>, password: &[u8]) -> Result<PasswordHash, BasicError> {
        let mut salt = [0u8; 16];
        SystemRandom::new().fill(&mut salt).map_err(|_| BasicError::Random)?;
        argon.hash_password_with_salt(password, &salt).map_err(|_| BasicError::Hash)
    }

    /// Hashes a password with a fresh random salt; the PHC string is what is stored.
    pub fn hash_password(&self, password: &str) -> Result<String, BasicError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(BasicError::PasswordTooLong);
        }
        self.computations.fetch_add(1, Ordering::Relaxed);
        Ok(Self::hash_with(&self.argon, password.as_bytes())?.to_string())
    }

    fn status_of(&self, hash: &PasswordHash) -> PhcStatus {
        if hash.algorithm.as_str() != "argon2id"
            || hash.version != Some(0x13)
            || hash.salt.is_none()
            || hash.hash.is_none()
        {
            return PhcStatus::Unsupported;
        }
        let Ok(p) = Params::try_from(hash) else { return PhcStatus::Unsupported };
        let c = &self.config;
        if p.m_cost() > c.max_m_kib || p.t_cost() > c.max_t || p.p_cost() > c.max_p {
            return PhcStatus::Unsupported;
        }
        if (p.m_cost(), p.t_cost(), p.p_cost()) == (c.m_kib, c.t, c.p) {
            PhcStatus::Current
        } else if p.m_cost() >= OWASP_MIN_M_KIB && u64::from(p.m_cost()) * u64::from(p.t_cost()) >= OWASP_MIN_COST {
            PhcStatus::Outdated
        } else {
            PhcStatus::Weak
        }
    }

    /// What a stored PHC string's parameters mean: whether it can be verified at all and
    /// whether it should be rehashed.
    pub fn phc_status(&self, phc: &str) -> PhcStatus {
        match PasswordHash::new(phc) {
            Ok(h) => self.status_of(&h),
            Err(_) => PhcStatus::Unsupported,
        }
    }

    /// Whether `candidate` matches the stored hash. With `None` (no such user), or a stored
    /// hash that is unsupported, a dummy hash with the configured parameters is verified
    /// instead and the answer is `false`: every call costs one Argon2 computation.
    pub fn verify_password(&self, candidate: &str, stored: Option<&str>) -> bool {
        let parsed =
            stored.and_then(|s| PasswordHash::new(s).ok()).filter(|h| self.status_of(h) != PhcStatus::Unsupported);
        // An over-long candidate is hashed truncated so that it still costs the same; it can
        // never match because the real answer is forced to false below.
        let too_long = candidate.len() > MAX_PASSWORD_BYTES;
        let bytes = candidate.as_bytes().get(..MAX_PASSWORD_BYTES).unwrap_or(candidate.as_bytes());
        self.computations.fetch_add(1, Ordering::Relaxed);
        match parsed {
            Some(h) => self.argon.verify_password(bytes, &h).is_ok() && !too_long,
            None => {
                let _ = self.argon.verify_password(bytes, &self.dummy);
                false
            }
        }
    }

    /// How many Argon2 computations this hasher has run (hashes and verifications, including
    /// dummy ones): for metrics, and for tests that the unknown-user path does the work.
    pub fn computations(&self) -> u64 {
        self.computations.load(Ordering::Relaxed)
    }
}

static DEFAULT_HASHER: LazyLock<Option<PasswordHasher>> =
    LazyLock::new(|| PasswordHasher::new(Argon2Config::default()).ok());

/// Hashes with the OWASP default parameters (a process-wide [`PasswordHasher`]).
pub fn hash_password(password: &str) -> Result<String, BasicError> {
    DEFAULT_HASHER.as_ref().ok_or(BasicError::Hash)?.hash_password(password)
}

/// Verifies with the process-wide default [`PasswordHasher`]; see
/// [`PasswordHasher::verify_password`]. `false` if that hasher could not be built.
pub fn verify_password(candidate: &str, stored: Option<&str>) -> bool {
    DEFAULT_HASHER.as_ref().is_some_and(|h| h.verify_password(candidate, stored))
}

/// What a stored PHC string's parameters mean under the OWASP defaults; see
/// [`PasswordHasher::phc_status`].
pub fn phc_status(phc: &str) -> PhcStatus {
    DEFAULT_HASHER.as_ref().map_or(PhcStatus::Unsupported, |h| h.phc_status(phc))
}
