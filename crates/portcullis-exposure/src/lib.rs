//! Response-side data-exposure engine: finds sensitive data in response bodies (cards, IBANs,
//! national identifiers, e-mail addresses, phone numbers, credentials, password hashes and fields
//! whose names say what they are), masks, redacts, hashes or blocks it per class and per field,
//! shapes responses per consumer (field allow-lists, array caps) and classifies upstream error
//! bodies as safe or not. Pure functions on bytes: no I/O, no logging; the pipeline stage that
//! calls them lives in the proxy.
//!
//! # In the pipeline (masking stage, after the response contract)
//! - At config load, compile one [`CompiledPolicy`] per route (and one [`Shape`] per consumer
//!   that has shaping rules); share them through `Arc`. Compile errors name the config item.
//! - `on_response_body`: buffer up to the policy's `max_body_bytes` (the cap is decided before
//!   the upstream is called). At end of stream, `application/json` and `*+json` bodies go to
//!   [`CompiledPolicy::apply_json`], `text/*` to [`CompiledPolicy::apply_text`].
//! - `blocked`: answer 502 problem+json and raise an alert-level event; never send `body`.
//! - `changed`: send `body` and fix `Content-Length` (and drop `ETag`/`Content-MD5`).
//! - `findings`: into the audit event as is; their `Display`/`Debug` never hold a value.
//! - `Err(ApplyError)`: fail closed (502), or pass unscanned and count it where the route says so.
//! - Upstream status ≥ 400: [`classify_error_body`]; on `Unsafe`, replace the body by a generic
//!   problem and log the reasons with [`error_body_digest`] (never the body).
//!
//! ```
//! use portcullis_exposure::{Action, DataClass, ExposurePolicy, FieldRule, FieldTarget, ShapeConfig};
//!
//! let policy = ExposurePolicy {
//!     field_rules: vec![FieldRule { target: FieldTarget::Pointer("/items/*/support".into()), action: Action::Allow }],
//!     ..ExposurePolicy::default()
//! }
//! .compile()?;
//! let body = br#"{"items":[{"id":1,"email":"jane@example.com","card":"4242 4242 4242 4242","password":"x"}]}"#;
//! let out = policy.apply_json(body, None)?;
//! assert_eq!(
//!     String::from_utf8(out.body)?,
//!     r#"{"items":[{"id":1,"email":"j***@example.com","card":"************4242"}]}"#
//! );
//! assert!(out.changed && !out.blocked);
//! assert_eq!(out.findings[0].class, DataClass::Email);
//! assert_eq!(out.findings[0].to_string(), "email (email) at /items/0/email: mask");
//!
//! // Partner X sees id only, at most 20 items.
//! let shape = ShapeConfig { allow: vec!["/items/*/id".into()], max_items_everywhere: Some(20), ..Default::default() }
//!     .compile()?;
//! let out = policy.apply_json(body, Some(&shape))?;
//! assert_eq!(out.body, br#"{"items":[{"id":1}]}"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod apply;
mod class;
mod detect;
mod errors;
mod mask;
mod pointer;
mod policy;
mod shape;
mod stage;
mod validate;

pub use apply::{Applied, ApplyError};
pub use class::{Action, DataClass, Finding, Location};
pub use detect::{NamedDetector, Validator};
pub use errors::{ERROR_SCAN_LIMIT, ErrorBodyVerdict, UnsafeReason, classify_error_body, error_body_digest};
pub use pointer::PointerError;
pub use policy::{
    CompiledPolicy, DEFAULT_SENSITIVE_FIELDS, ExposurePolicy, FieldRule, FieldTarget, HashKey, PolicyError,
    normalize_field_name,
};
pub use shape::{ArrayCap, Shape, ShapeConfig, ShapeError};
pub use stage::{
    ExposureStage, OnCompressed, OperationExposures, OverrideRule, RouteExposure, RouteExposures, ShapeSubject,
    ShapingOverrides, ShapingRule, SharedOverrides, select_shape,
};
