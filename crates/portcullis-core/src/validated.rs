//! What the contract stage proved about a request, for the stages after it.

/// Request locations the contract stage validated against a type that admits no free text
/// (integer, number, boolean, enum, uuid, date…), in the inspection target syntax: `path:1`,
/// `query:limit`, `header:x-trace`, `cookie:c`, `body:/items/*/qty`.
///
/// The contract stage puts it in [`RequestCtx::extensions`](crate::RequestCtx::extensions) only
/// when it enforces the matched operation and the request passed (head fields in `on_request`,
/// JSON body fields once the body validated); in monitor mode nothing was refused, so nothing is
/// listed. The inspection stage skips exactly these places: a value that parsed as an integer or
/// a uuid cannot carry a payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContractValidated {
    fields: Vec<String>,
}

impl ContractValidated {
    /// These locations, validated.
    #[must_use]
    pub fn new(fields: impl IntoIterator<Item = String>) -> Self {
        Self { fields: fields.into_iter().collect() }
    }

    /// Adds locations validated later (the body, after the head).
    pub fn extend(&mut self, fields: impl IntoIterator<Item = String>) {
        self.fields.extend(fields);
    }

    /// The validated locations.
    #[must_use]
    pub fn fields(&self) -> &[String] {
        &self.fields
    }
}
