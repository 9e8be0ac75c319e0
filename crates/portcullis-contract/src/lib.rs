//! OpenAPI 3.0/3.1 contract enforcement: the API contract as a positive security model.
//!
//! - [`json`]: the strict JSON parser every request body goes through (size, depth, string and
//!   array limits; duplicate keys rejected).
//! - [`ssrf`]: the guard for URL-typed fields (scheme allow-list; hosts that resolve to loopback,
//!   private, link-local or cloud-metadata addresses refused).

pub mod json;
pub mod ssrf;
