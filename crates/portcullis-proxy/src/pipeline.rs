//! The pipeline: one closed list of stages in a fixed order. Configuration turns stages on and
//! tunes them; it cannot reorder them. The order (see `docs/phases.md`):
//!
//! request id → connection and HTTP hygiene (in the proxy, before any stage) → authentication →
//! authorization → rate limit and quota → contract (request) → inspection → upstream → contract
//! (response) → masking → audit and metrics.
//!
//! Dispatch is a `match` over [`AnyStage`]: no boxing, no dynamic dispatch per request.

use bytes::Bytes;
use portcullis_contract::ContractStage;
use portcullis_core::{Flow, Outcome, RequestCtx, Stage, StageError};
use portcullis_exposure::ExposureStage;
use portcullis_identity::{AuthnStage, AuthzStage};
use portcullis_inspect::InspectStage;
use portcullis_observe::{AccessLogStage, MetricsStage};
use portcullis_traffic::RateLimitStage;

/// Every stage portcullis has, in pipeline order. Adding a stage means adding a variant here and
/// a place in [`Pipeline::new`]'s fixed order.
pub(crate) enum AnyStage {
    Authn(AuthnStage),
    Authz(AuthzStage),
    RateLimit(RateLimitStage),
    Contract(ContractStage),
    Inspect(InspectStage),
    Exposure(ExposureStage),
    AccessLog(AccessLogStage),
    Metrics(MetricsStage),
    /// Test-only: a stage that fails or denies in a chosen phase.
    #[cfg(test)]
    Fault(fault::FaultStage),
}

macro_rules! dispatch {
    ($stage:expr, $method:ident ( $($arg:expr),* )) => {
        match $stage {
            AnyStage::Authn(s) => s.$method($($arg),*),
            AnyStage::Authz(s) => s.$method($($arg),*),
            AnyStage::RateLimit(s) => s.$method($($arg),*),
            AnyStage::Contract(s) => s.$method($($arg),*),
            AnyStage::Inspect(s) => s.$method($($arg),*),
            AnyStage::Exposure(s) => s.$method($($arg),*),
            AnyStage::AccessLog(s) => s.$method($($arg),*),
            AnyStage::Metrics(s) => s.$method($($arg),*),
            #[cfg(test)]
            AnyStage::Fault(s) => s.$method($($arg),*),
        }
    };
}

macro_rules! dispatch_async {
    ($stage:expr, $method:ident ( $($arg:expr),* )) => {
        match $stage {
            AnyStage::Authn(s) => s.$method($($arg),*).await,
            AnyStage::Authz(s) => s.$method($($arg),*).await,
            AnyStage::RateLimit(s) => s.$method($($arg),*).await,
            AnyStage::Contract(s) => s.$method($($arg),*).await,
            AnyStage::Inspect(s) => s.$method($($arg),*).await,
            AnyStage::Exposure(s) => s.$method($($arg),*).await,
            AnyStage::AccessLog(s) => s.$method($($arg),*).await,
            AnyStage::Metrics(s) => s.$method($($arg),*).await,
            #[cfg(test)]
            AnyStage::Fault(s) => s.$method($($arg),*).await,
        }
    };
}

pub(crate) struct Pipeline {
    stages: Vec<AnyStage>,
}

impl Pipeline {
    /// Builds the pipeline in its fixed order from the stages that are turned on.
    pub(crate) fn new(
        identity: Option<(AuthnStage, AuthzStage)>,
        rate_limit: Option<RateLimitStage>,
        contract: Option<ContractStage>,
        inspect: Option<InspectStage>,
        exposure: Option<ExposureStage>,
        access_log: Option<AccessLogStage>,
        metrics: MetricsStage,
    ) -> Self {
        let mut stages = Vec::new();
        // Authentication, then authorization: nothing later runs for a caller who is not allowed.
        if let Some((authn, authz)) = identity {
            stages.push(AnyStage::Authn(authn));
            stages.push(AnyStage::Authz(authz));
        }
        // Rate limits and quotas after authorization: callers refused there never spend a unit.
        if let Some(r) = rate_limit {
            stages.push(AnyStage::RateLimit(r));
        }
        // The contract: after rate limits (a refused caller costs no validation), before
        // inspection (what the contract refuses is never scanned). On the way back it runs
        // before masking, because stages see responses in this same order: undeclared
        // properties are gone before the masking policy looks.
        if let Some(c) = contract {
            stages.push(AnyStage::Contract(c));
        }
        // Inspection: after authentication, authorization and contract, before the upstream.
        if let Some(i) = inspect {
            stages.push(AnyStage::Inspect(i));
        }
        // Masking: after the upstream, before audit and metrics.
        if let Some(e) = exposure {
            stages.push(AnyStage::Exposure(e));
        }
        // Audit and metrics come last: they see the final decision of every other stage.
        if let Some(a) = access_log {
            stages.push(AnyStage::AccessLog(a));
        }
        stages.push(AnyStage::Metrics(metrics));
        Self { stages }
    }

    /// Test-only: puts a fault stage first.
    #[cfg(test)]
    pub(crate) fn push_front_fault(&mut self, f: fault::FaultStage) {
        self.stages.insert(0, AnyStage::Fault(f));
    }

    pub(crate) fn stage_names(&self) -> Vec<&'static str> {
        self.stages.iter().map(|s| dispatch!(s, name())).collect()
    }

    pub(crate) async fn on_request(
        &self,
        req: &mut http::request::Parts,
        ctx: &mut RequestCtx,
    ) -> Result<Flow, StageError> {
        for s in &self.stages {
            if let Flow::Respond(r) = dispatch_async!(s, on_request(req, ctx))? {
                // A stage that answered records its own reason; this names it if it did not.
                ctx.deny(dispatch!(s, name()), "denied");
                return Ok(Flow::Respond(r));
            }
        }
        Ok(Flow::Continue)
    }

    pub(crate) async fn on_request_body(&self, body: &mut Bytes, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
        for s in &self.stages {
            if let Flow::Respond(r) = dispatch_async!(s, on_request_body(body, ctx))? {
                // A stage that answered records its own reason; this names it if it did not.
                ctx.deny(dispatch!(s, name()), "denied");
                return Ok(Flow::Respond(r));
            }
        }
        Ok(Flow::Continue)
    }

    pub(crate) async fn on_response(
        &self,
        resp: &mut http::response::Parts,
        ctx: &mut RequestCtx,
    ) -> Result<Flow, StageError> {
        for s in &self.stages {
            if let Flow::Respond(r) = dispatch_async!(s, on_response(resp, ctx))? {
                // A stage that answered records its own reason; this names it if it did not.
                ctx.deny(dispatch!(s, name()), "denied");
                return Ok(Flow::Respond(r));
            }
        }
        Ok(Flow::Continue)
    }

    pub(crate) async fn on_response_body(&self, body: &mut Bytes, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
        for s in &self.stages {
            if let Flow::Respond(r) = dispatch_async!(s, on_response_body(body, ctx))? {
                // A stage that answered records its own reason; this names it if it did not.
                ctx.deny(dispatch!(s, name()), "denied");
                return Ok(Flow::Respond(r));
            }
        }
        Ok(Flow::Continue)
    }

    pub(crate) fn on_complete(&self, ctx: &RequestCtx, outcome: &Outcome) {
        for s in &self.stages {
            dispatch!(s, on_complete(ctx, outcome));
        }
    }
}

#[cfg(test)]
pub(crate) mod fault {
    use bytes::Bytes;
    use portcullis_core::{Flow, Problem, ProblemKind, RequestCtx, Stage, StageError};

    /// Which phase misbehaves, and how.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Fault {
        FailRequest,
        FailRequestBody,
        FailResponse,
        DenyRequest,
        DenyResponseBody,
    }

    #[derive(Debug, Clone, Copy)]
    pub(crate) struct FaultStage(pub(crate) Fault);

    fn boom() -> StageError {
        StageError::new("fault", std::io::Error::other("internal detail: db password is hunter2"))
    }

    impl Stage for FaultStage {
        fn name(&self) -> &'static str {
            "fault"
        }

        async fn on_request(&self, _req: &mut http::request::Parts, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
            match self.0 {
                Fault::FailRequest => Err(boom()),
                Fault::DenyRequest => {
                    ctx.deny("fault", "test-denied");
                    Ok(Flow::Respond(Problem::new(ProblemKind::Forbidden).to_response(&ctx.request_id)))
                }
                Fault::FailRequestBody => {
                    ctx.require_request_body(1024);
                    Ok(Flow::Continue)
                }
                Fault::DenyResponseBody => {
                    ctx.require_response_body(1024);
                    Ok(Flow::Continue)
                }
                Fault::FailResponse => Ok(Flow::Continue),
            }
        }

        async fn on_request_body(&self, body: &mut Bytes, _ctx: &mut RequestCtx) -> Result<Flow, StageError> {
            if self.0 == Fault::FailRequestBody && body.as_ref() == b"explode" {
                return Err(boom());
            }
            Ok(Flow::Continue)
        }

        async fn on_response(
            &self,
            _resp: &mut http::response::Parts,
            _ctx: &mut RequestCtx,
        ) -> Result<Flow, StageError> {
            if self.0 == Fault::FailResponse { Err(boom()) } else { Ok(Flow::Continue) }
        }

        async fn on_response_body(&self, body: &mut Bytes, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
            if body.windows(6).any(|w| w == b"secret") {
                return Ok(Flow::Respond(Problem::new(ProblemKind::BadGateway).to_response(&ctx.request_id)));
            }
            *body = Bytes::from(body.to_ascii_uppercase());
            Ok(Flow::Continue)
        }
    }
}
