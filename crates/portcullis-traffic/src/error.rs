//! Errors: configuration values rejected at load, and a shared store that cannot be set up.

/// A limit, quota or plan value that cannot be used. Raised when the config is turned into
/// typed values, never on the request path.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `rate`, `period` or `burst` is zero.
    #[error("`{field}` must be greater than zero")]
    Zero {
        /// The offending field.
        field: &'static str,
    },
    /// The bucket (emission interval × burst) is too long to keep exact state for.
    #[error("`burst` × `period` / `rate` is longer than 10 years; lower `burst` or `period`")]
    TooLong,
    /// A limit, quota or plan name that is not a short token.
    #[error("name {name:?} must be 1-64 characters of A-Z a-z 0-9 - _ . : /")]
    BadName {
        /// The rejected name.
        name: String,
    },
    /// A header name for a header-keyed limit that is not a valid HTTP header name.
    #[error("{name:?} is not a valid header name")]
    BadHeader {
        /// The rejected header name.
        name: String,
    },
    /// An IANA time zone name that is not known.
    #[error("unknown time zone {name:?}: use an IANA name such as \"Europe/Paris\" or \"UTC\"")]
    BadTimeZone {
        /// The rejected zone name.
        name: String,
    },
    /// Two limits or quotas in one set share a name (their headers and keys would collide).
    #[error("duplicate name {name:?} in one set of limits")]
    Duplicate {
        /// The repeated name.
        name: String,
    },
}

/// The shared store could not be set up (bad URL or no tokio runtime). Failures on the request
/// path are never errors: they become a fallback decision or `StoreUnavailable`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The Redis client rejected the URL or the connection manager could not be built.
    #[error("redis store setup failed: {0}")]
    Setup(#[source] redis::RedisError),
    /// The URL names no deployment this build can reach (the message never repeats the URL).
    #[error("redis url: {0}")]
    Url(#[source] crate::target::TargetError),
}

/// Checks that a name is a short token safe inside a quoted structured-field string and a key.
pub(crate) fn check_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'));
    if ok { Ok(()) } else { Err(ConfigError::BadName { name: name.chars().take(80).collect() }) }
}
