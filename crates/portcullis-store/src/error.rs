//! The store's error type.

use std::error::Error as StdError;

/// Why a store operation failed. Never carries a secret: values given by the caller are not
/// echoed back, only the name of the field or constraint concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No row with that id or name (or a referenced row, e.g. the consumer of a new credential).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique constraint refused the write, e.g. `"organization name"` or `"credential lookup"`.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The input broke a rule of the data model (a name that is not a slug, a scope list that is
    /// not narrower than the consumer's, an audit detail with a secret-looking key…).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The database failed or could not be reached; the source says why.
    #[error("storage backend error: {context}")]
    Backend {
        /// What the store was doing.
        context: &'static str,
        /// The driver's error.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl StoreError {
    pub(crate) fn backend(context: &'static str, source: impl StdError + Send + Sync + 'static) -> Self {
        StoreError::Backend { context, source: Box::new(source) }
    }

    pub(crate) fn backend_msg(context: &'static str, message: &str) -> Self {
        StoreError::Backend { context, source: message.to_owned().into() }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        StoreError::Invalid(message.into())
    }
}

/// Maps the name of a violated unique constraint (PostgreSQL constraint name or SQLite's
/// "UNIQUE constraint failed: table.column" message) to what the caller should be told.
pub(crate) fn conflict_subject(text: &str) -> &'static str {
    if text.contains("organizations") {
        "organization name"
    } else if text.contains("external_subject") {
        "consumer external subject"
    } else if text.contains("consumers") {
        "consumer name"
    } else if text.contains("credentials") {
        "credential lookup"
    } else if text.contains("suspensions") {
        "suspension"
    } else if text.contains("shaping_policies") {
        "shaping policy"
    } else {
        "unique value"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_subjects_cover_both_backends() {
        assert_eq!(conflict_subject("UNIQUE constraint failed: organizations.name"), "organization name");
        assert_eq!(conflict_subject("organizations_name_key"), "organization name");
        assert_eq!(
            conflict_subject("UNIQUE constraint failed: consumers.external_subject"),
            "consumer external subject"
        );
        assert_eq!(conflict_subject("consumers_external_subject_key"), "consumer external subject");
        assert_eq!(conflict_subject("consumers_name_key"), "consumer name");
        assert_eq!(
            conflict_subject("UNIQUE constraint failed: credentials.kind, credentials.lookup"),
            "credential lookup"
        );
        assert_eq!(conflict_subject("something_else"), "unique value");
    }
}
