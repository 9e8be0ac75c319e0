//! Attack detection for portcullis: decoding and normalisation, then injection detectors that
//! tokenise (SQL, HTML/JS, shell) rather than match keyword lists, scored against a route policy.
//!
//! Pure functions on borrowed request data: no I/O, no global state, linear time (the `regex`
//! crate and `aho-corasick`, no backtracking engine), never a panic on input.
//!
//! ```
//! use portcullis_inspect::{InspectPolicy, Inspector, RequestView, Verdict};
//!
//! let policy = InspectPolicy { paranoia: 1, ..InspectPolicy::default() }.compile()?;
//! let inspector = Inspector::new(policy);
//!
//! let body = br#"{"name": "O'Brien", "note": "x' OR 'a'='a"}"#;
//! let req = RequestView::new("POST")
//!     .with_path_segments(["users", "42"])
//!     .with_query(Some("page=2"))
//!     .with_header("user-agent", b"curl/8.5")
//!     .with_body(Some("application/json"), body, false);
//! let report = inspector.scan_request(&req);
//! assert_eq!(report.verdict, Verdict::Block);
//! assert_eq!(report.findings[0].rule_id, "sqli-tautology");
//! assert_eq!(report.findings[0].location.to_string(), "body:/note");
//! # Ok::<(), portcullis_inspect::PolicyError>(())
//! ```

pub mod cmdi;
pub mod crlf;
pub mod extract;
mod features;
pub mod finding;
mod inspector;
pub mod ldap;
pub mod log4shell;
pub mod normalize;
pub mod nosql;
pub mod policy;
pub mod proto;
mod re;
pub mod rules;
pub mod scanner;
pub mod sqli;
pub mod ssti;
pub mod stage;
pub mod traversal;
pub mod xpath;
pub mod xss;
pub mod xxe;

pub use finding::{AttackClass, Finding, Location, Report, Verdict};
pub use inspector::{Inspector, MAX_FINDINGS, MAX_PARTS, MAX_VALUES, RequestView};
pub use policy::{CompiledPolicy, Exclusion, InspectPolicy, Mode, PolicyError, Target};
pub use sqli::Fingerprint;
pub use stage::{InspectStage, OverCap, RouteInspection};
