use std::future::Future;

use bytes::Bytes;

use crate::{Outcome, RequestCtx};

/// What a stage decides: let the request go on, or answer it now.
///
/// A denial is a response, not an error: the stage builds the answer it wants the client to see.
#[derive(Debug)]
pub enum Flow {
    /// Go on to the next stage (or the upstream).
    Continue,
    /// Stop here and send this response; no later stage and no upstream sees the request.
    Respond(http::Response<Bytes>),
}

/// A stage failed in a way it could not turn into an answer. The proxy fails closed: the client
/// gets a 500 problem with the request id, the log gets the cause.
#[derive(Debug, thiserror::Error)]
#[error("stage {stage} failed: {source}")]
pub struct StageError {
    stage: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl StageError {
    /// Wraps the cause of a failure in stage `stage`.
    pub fn new(stage: &'static str, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self { stage, source: source.into() }
    }

    /// The stage that failed.
    pub fn stage(&self) -> &'static str {
        self.stage
    }
}

/// One step of the security pipeline.
///
/// Phases run in this order for every request: [`on_request`](Stage::on_request),
/// [`on_request_body`](Stage::on_request_body) (only when some stage asked to see the whole body,
/// see [`RequestCtx::buffer_request_body`]), then the upstream, then
/// [`on_response`](Stage::on_response), [`on_response_body`](Stage::on_response_body) (same rule),
/// and [`on_complete`](Stage::on_complete), which always runs, also for requests that were denied or
/// failed. The order of stages is fixed in code; configuration only turns them on and tunes them.
pub trait Stage: Send + Sync + 'static {
    /// A short, stable name used in logs and metrics.
    fn name(&self) -> &'static str;

    /// Sees the request head (canonical path already in place) before anything is sent upstream.
    fn on_request(
        &self,
        _req: &mut http::request::Parts,
        _ctx: &mut RequestCtx,
    ) -> impl Future<Output = Result<Flow, StageError>> + Send {
        async { Ok(Flow::Continue) }
    }

    /// Sees the whole request body, buffered up to the cap a stage asked for, before the upstream
    /// is contacted. It may rewrite it.
    fn on_request_body(
        &self,
        _body: &mut Bytes,
        _ctx: &mut RequestCtx,
    ) -> impl Future<Output = Result<Flow, StageError>> + Send {
        async { Ok(Flow::Continue) }
    }

    /// Sees the upstream's response head. `Flow::Respond` replaces the upstream's response.
    fn on_response(
        &self,
        _resp: &mut http::response::Parts,
        _ctx: &mut RequestCtx,
    ) -> impl Future<Output = Result<Flow, StageError>> + Send {
        async { Ok(Flow::Continue) }
    }

    /// Sees the whole response body when a stage asked for it (see
    /// [`RequestCtx::buffer_response_body`]); it may rewrite it.
    fn on_response_body(
        &self,
        _body: &mut Bytes,
        _ctx: &mut RequestCtx,
    ) -> impl Future<Output = Result<Flow, StageError>> + Send {
        async { Ok(Flow::Continue) }
    }

    /// Runs once per request when the response has been sent (or the request failed): audit,
    /// metrics. It must not block.
    fn on_complete(&self, _ctx: &RequestCtx, _outcome: &Outcome) {}
}
