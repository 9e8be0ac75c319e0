//! The heart of portcullis: the pipeline's vocabulary, with no I/O.
//!
//! A [`Stage`] sees a request in fixed phases and answers with a [`Flow`]: go on, or respond now.
//! Errors a stage cannot handle become a [`StageError`], which the proxy turns into a fail-closed
//! RFC 9457 answer through [`Problem`].
//!
//! ```
//! use portcullis_core::{Flow, Problem, ProblemKind, RequestCtx, Stage, StageError};
//!
//! struct DenyDelete;
//!
//! impl Stage for DenyDelete {
//!     fn name(&self) -> &'static str {
//!         "deny-delete"
//!     }
//!     async fn on_request(
//!         &self,
//!         req: &mut http::request::Parts,
//!         ctx: &mut RequestCtx,
//!     ) -> Result<Flow, StageError> {
//!         if req.method == http::Method::DELETE {
//!             return Ok(Flow::Respond(Problem::new(ProblemKind::Forbidden).to_response(&ctx.request_id)));
//!         }
//!         Ok(Flow::Continue)
//!     }
//! }
//! ```

mod ctx;
pub mod path;
mod principal;
mod problem;
mod stage;
mod validated;

pub use ctx::{Decision, MatchedOperation, Outcome, RequestCtx, RequestId, matched_operation};
pub use principal::{AuthMethodUsed, Principal};
pub use problem::{PROBLEM_CONTENT_TYPE, Problem, ProblemKind};
pub use stage::{Flow, Stage, StageError};
pub use validated::ContractValidated;
