//! OpenAPI 3.0/3.1 contract enforcement: the API contract as a positive security model.
//!
//! A route names one or more OpenAPI documents. They are loaded once (YAML or JSON, local
//! `$ref`s across files, never remote ones), compiled into a route table (path template, method,
//! operation) and precompiled JSON Schema validators, and enforced by [`ContractStage`]:
//!
//! - requests: undeclared paths answer 404 and undeclared methods 405 without the upstream being
//!   contacted; path, query (`style`/`explode`), header and cookie parameters and the body (JSON,
//!   form, multipart) are validated; the `Content-Type` must be declared; in strict mode
//!   undeclared query parameters and properties are refused; `readOnly` properties in a request
//!   are refused (mass assignment); the operation's `security` is checked against the caller;
//! - responses: validated per operation and status; in `enforce` mode undeclared properties are
//!   removed and a response that still does not match becomes a 502.
//!
//! Refusals are RFC 9457 problems listing each violation with a JSON pointer and a reason that
//! never quotes the value. See `docs/contract.md`.
//!
//! ```
//! use portcullis_contract::{CompileOptions, Contract, Lookup, RequestHead};
//!
//! let spec = r#"
//! openapi: 3.1.0
//! info: { title: t, version: "1" }
//! paths:
//!   /items/{id}:
//!     get:
//!       operationId: getItem
//!       x-portcullis-public: true
//!       parameters:
//!         - { name: id, in: path, required: true, schema: { type: integer } }
//!       responses: { "200": { description: ok } }
//! "#;
//! let loaded = Contract::from_text(spec, std::path::Path::new("."), &CompileOptions::default()).unwrap();
//! let Lookup::Found(op, params) = loaded.contract.find(&http::Method::GET, "/items/abc") else { panic!() };
//! let headers = http::HeaderMap::new();
//! let violations = op.check_head(&RequestHead::new(None, &headers, &params), true);
//! assert_eq!(violations[0].pointer, "/path/id");
//! ```
//!
//! - [`json`]: the strict JSON parser every request body goes through (size, depth, string and
//!   array limits; duplicate keys rejected).
//! - [`ssrf`]: the guard for URL-typed fields (scheme allow-list; hosts that resolve to loopback,
//!   private, link-local or cloud-metadata addresses refused).

mod body;
mod contract;
pub mod json;
mod load;
mod params;
mod prune;
pub mod ssrf;
mod stage;

pub use contract::{
    BodyChoice, CompileOptions, Contract, Loaded, Lookup, OPERATION_EXTENSIONS, Operation, RequestHead, ResponseCheck,
    SchemeKind, SecurityAlternative,
};
pub use load::SpecError;
pub use stage::{ContractStage, Detail, OverCap, ResponsePolicy, RouteContract, STAGE_NAME};

/// Enforce (refuse what the contract does not allow) or monitor (log and count only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// Refuse violating requests; fix or refuse violating responses.
    #[default]
    Enforce,
    /// Let everything through; log and count what would have been refused.
    Monitor,
}

impl Mode {
    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Monitor => "monitor",
        }
    }
}

/// One way a request or response breaks the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where: a JSON pointer into `{path, query, header, cookie, body}` for requests, into
    /// `{status, header, body}` for responses (`/query/limit`, `/body/items/0/qty`).
    pub pointer: String,
    /// Why, without the offending value.
    pub reason: String,
}

/// Longest pointer kept (names in it come from the client).
const MAX_POINTER: usize = 256;
/// Longest reason kept.
const MAX_REASON: usize = 300;

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

impl Violation {
    /// A violation at `pointer`.
    pub fn new(pointer: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { pointer: truncate(pointer.into(), MAX_POINTER), reason: truncate(reason.into(), MAX_REASON) }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.pointer, self.reason)
    }
}

#[cfg(test)]
mod tests;
