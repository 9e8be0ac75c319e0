//! [`RateLimitStage`]: the pipeline stage that applies plans, in-flight limits, rate limits and
//! quotas after authorization, and meters what the upstream served.
//!
//! Two lifetimes, on purpose:
//! - [`TrafficService`] is built once per gateway process: it owns the counters (local or on
//!   Redis), the in-flight limiters and the usage meter, so a config reload never resets a limit.
//! - [`RateLimitStage`] is built per config generation from a [`TrafficPolicy`] (plans, route
//!   limits) and a service handle.
//!
//! Order inside the stage, each step answering before the next runs:
//! 1. global in-flight cap (anonymous callers shed first) → 503 `unavailable`;
//! 2. the plan's allowed routes → 403 `forbidden`;
//! 3. in-flight requests per consumer (or client IP) → 429 `too-many-requests`;
//! 4. the route's rate limits, then the plan's → 429 `too-many-requests` with `Retry-After`
//!    and `RateLimit-Policy`/`RateLimit`, or 503 `rate-limit-unavailable` when a fail-closed
//!    limit cannot reach Redis;
//! 5. the plan's quotas → 429 `quota-exhausted` (or 503 as above).
//!
//! **Usage** is metered in [`Stage::on_complete`]: one unit per request that the upstream
//! *served*, meaning the upstream returned a response head (`ctx.upstream` is set), whatever its
//! status. Requests refused by the gateway, and requests whose upstream could not be reached or
//! timed out, are not counted. Only authenticated consumers are metered (by consumer id), per
//! route and per day in the usage time zone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use portcullis_core::{Flow, Outcome, Problem, ProblemKind, RequestCtx, Stage, StageError};

use crate::clock::Clock;
use crate::concurrency::{ConcurrencyLimiter, ConcurrencyPermit, InflightGate, InflightPermit, Priority};
use crate::gcra::Decision;
use crate::limiter::Limiter;
use crate::local::LocalLimiter;
use crate::plan::Plan;
use crate::quota::{LocalQuotas, QuotaDecision, QuotaStore, RedisQuotas};
use crate::redis_limiter::{BatchConfig, RedisLimiter};
use crate::route::RouteLimits;
use crate::spec::{KeySource, KeySpec};
use crate::store::{RedisStore, RedisStoreConfig};
use crate::usage::{UsageMeter, day_in};

const STAGE: &str = "ratelimit";

/// A route's traffic policy: its rate limits and its per-consumer in-flight limit.
#[derive(Clone, Debug)]
pub struct RouteTraffic {
    /// Rate limits checked for every request of the route (with `emit_on_allow` for headers).
    pub limits: RouteLimits,
    /// Requests in flight at once per consumer (per client IP for anonymous callers).
    pub concurrency_per_consumer: Option<u32>,
}

/// Everything the stage needs from one config generation.
#[derive(Clone, Debug, Default)]
pub struct TrafficPolicy {
    /// Plans by name (a principal's `plan` names one).
    pub plans: HashMap<String, Arc<Plan>>,
    /// The plan of callers whose principal names none (authenticated or not).
    pub default_plan: Option<String>,
    /// Route policies by route name.
    pub routes: HashMap<Arc<str>, Arc<RouteTraffic>>,
    /// Per-operation policies (the route's limits plus an OpenAPI operation's
    /// `x-portcullis-rate-limit`), by route name then operation id; used instead of the route's
    /// when the router matched the operation ([`portcullis_core::MatchedOperation`]).
    pub operations: HashMap<Arc<str>, HashMap<Arc<str>, Arc<RouteTraffic>>>,
    /// Meter usage, with days counted in this time zone; `None` turns metering off.
    pub usage_time_zone: Option<jiff::tz::TimeZone>,
}

/// The Redis side of a cluster.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// `redis://…`, `redis+sentinel://…` or `redis+cluster://…` (see [`crate::RedisTarget`]; may
    /// carry a password: never logged).
    pub redis_url: String,
    /// Store settings (namespace, timeout, breaker, expected nodes).
    pub store: RedisStoreConfig,
    /// Local batching of reservations, if any.
    pub batching: Option<BatchConfig>,
}

/// What the long-lived service is built from.
#[derive(Clone)]
pub struct ServiceSettings {
    /// Shared counters on Redis; `None` keeps them in this process.
    pub cluster: Option<ClusterSettings>,
    /// Process-wide in-flight cap and the level from which anonymous callers are shed.
    pub inflight: Option<(usize, usize)>,
    /// Where decisions read the time.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ServiceSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceSettings").field("inflight", &self.inflight).finish_non_exhaustive()
    }
}

/// A dedicated runtime that drives the Redis connection; dropping it never blocks.
struct IoRuntime(Option<tokio::runtime::Runtime>);

impl Drop for IoRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

struct ServiceInner {
    limiter: Limiter,
    quotas: QuotaStore,
    concurrency: ConcurrencyLimiter,
    gate: Option<InflightGate>,
    meter: Arc<UsageMeter>,
    clock: Arc<dyn Clock>,
    redis: Option<Arc<RedisStore>>,
    _io: IoRuntime,
}

/// The process-wide traffic state. Cheap to clone.
#[derive(Clone)]
pub struct TrafficService {
    inner: Arc<ServiceInner>,
}

impl std::fmt::Debug for TrafficService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrafficService").field("redis", &self.inner.redis.is_some()).finish_non_exhaustive()
    }
}

/// The service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The I/O runtime for Redis could not be built.
    #[error("traffic runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The Redis store could not be set up.
    #[error(transparent)]
    Store(#[from] crate::error::StoreError),
}

impl TrafficService {
    /// Builds the counters. In cluster mode a dedicated one-thread runtime drives the Redis
    /// connection (which connects lazily: a Redis that is down at start is not an error).
    ///
    /// # Errors
    /// The runtime cannot be built or the Redis URL is rejected.
    pub fn start(settings: ServiceSettings) -> Result<Self, ServiceError> {
        let gate = settings.inflight.map(|(max, shed)| InflightGate::new(max, shed));
        let (limiter, quotas, redis, io) = match settings.cluster {
            None => (
                Limiter::Local(LocalLimiter::default()),
                QuotaStore::Local(LocalQuotas::default()),
                None,
                IoRuntime(None),
            ),
            Some(c) => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("pc-traffic")
                    .enable_all()
                    .build()
                    .map_err(ServiceError::Runtime)?;
                let store = {
                    let _enter = rt.enter();
                    Arc::new(RedisStore::connect_lazy(&c.redis_url, c.store)?)
                };
                let limiter = match c.batching {
                    Some(b) => RedisLimiter::with_batching(store.clone(), b),
                    None => RedisLimiter::new(store.clone()),
                };
                (
                    Limiter::Redis(limiter),
                    QuotaStore::Redis(RedisQuotas::new(store.clone())),
                    Some(store),
                    IoRuntime(Some(rt)),
                )
            }
        };
        Ok(Self {
            inner: Arc::new(ServiceInner {
                limiter,
                quotas,
                concurrency: ConcurrencyLimiter::new(),
                gate,
                meter: Arc::new(UsageMeter::default()),
                clock: settings.clock,
                redis,
                _io: io,
            }),
        })
    }

    /// The usage meter: drain it periodically and persist the rows with an additive upsert.
    #[must_use]
    pub fn meter(&self) -> &Arc<UsageMeter> {
        &self.inner.meter
    }

    /// The Redis store in cluster mode (for readiness: its circuit breaker).
    #[must_use]
    pub fn redis(&self) -> Option<&Arc<RedisStore>> {
        self.inner.redis.as_ref()
    }

    /// The clock decisions read.
    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }
}

/// Reads a claim of the authenticated token from the context (the identity crate's
/// `Authenticated` extension); injected by the gateway so this crate does not depend on it.
pub type ClaimLookup = fn(&RequestCtx, &str) -> Option<String>;

/// The rate-limit and quota stage.
pub struct RateLimitStage {
    svc: TrafficService,
    policy: Arc<TrafficPolicy>,
    claims: ClaimLookup,
}

impl std::fmt::Debug for RateLimitStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitStage").field("svc", &self.svc).finish_non_exhaustive()
    }
}

/// Response headers decided on the request path, added in `on_response`.
#[derive(Clone, Debug)]
struct PendingHeaders(Arc<Vec<(HeaderName, HeaderValue)>>);

/// In-flight slots held for the request's lifetime (dropped with the context).
#[derive(Clone)]
struct HeldSlots {
    _gate: Option<Arc<InflightPermit>>,
    _consumer: Option<Arc<ConcurrencyPermit>>,
}

/// The request facts keys are built from.
struct CtxKeys<'a> {
    ctx: &'a RequestCtx,
    headers: &'a http::HeaderMap,
    claims: Vec<(String, String)>,
}

impl KeySource for CtxKeys<'_> {
    fn org(&self) -> Option<&str> {
        self.ctx.principal.as_ref()?.org_id.as_deref()
    }
    fn consumer(&self) -> Option<&str> {
        self.ctx.principal.as_ref()?.consumer_id.as_deref()
    }
    fn credential(&self) -> Option<&str> {
        self.ctx.principal.as_ref()?.credential_id.as_deref()
    }
    fn client_ip(&self) -> Option<IpAddr> {
        Some(self.ctx.client_ip)
    }
    fn route(&self) -> &str {
        self.ctx.route.as_deref().unwrap_or("-")
    }
    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.headers.get(name).map(HeaderValue::as_bytes)
    }
    fn claim(&self, name: &str) -> Option<&str> {
        self.claims.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

fn no_claims(_: &RequestCtx, _: &str) -> Option<String> {
    None
}

impl RateLimitStage {
    /// A stage for one config generation. Claim-keyed limits see no claim (one shared bucket)
    /// until [`RateLimitStage::with_claims`] gives a lookup.
    #[must_use]
    pub fn new(svc: TrafficService, policy: Arc<TrafficPolicy>) -> Self {
        Self { svc, policy, claims: no_claims }
    }

    /// Sets how token claims are read.
    #[must_use]
    pub fn with_claims(mut self, lookup: ClaimLookup) -> Self {
        self.claims = lookup;
        self
    }

    fn deny(ctx: &mut RequestCtx, reason: &'static str, problem: Problem) -> Flow {
        ctx.deny(STAGE, reason);
        metrics::counter!("portcullis_ratelimit_denied_total", "reason" => reason).increment(1);
        Flow::Respond(problem.to_response(&ctx.request_id))
    }

    fn plan_for(&self, ctx: &RequestCtx) -> Result<Option<Arc<Plan>>, ()> {
        let named = ctx.principal.as_ref().and_then(|p| p.plan.as_deref()).or(self.policy.default_plan.as_deref());
        match named {
            None => Ok(None),
            Some(name) => self.policy.plans.get(name).cloned().map(Some).ok_or(()),
        }
    }

    fn claim_values(
        &self,
        ctx: &RequestCtx,
        route: Option<&RouteTraffic>,
        plan: Option<&Plan>,
    ) -> Vec<(String, String)> {
        let specs = route.map(|r| r.limits.limits()).into_iter().flatten().map(|l| l.key());
        let plan_specs = plan.into_iter().flat_map(|p| {
            p.limits().limits().iter().map(|l| l.key()).chain(p.quotas().quotas().iter().map(|q| q.key()))
        });
        let mut out: Vec<(String, String)> = Vec::new();
        for spec in specs.chain(plan_specs) {
            if let KeySpec::Claim(name) = spec
                && !out.iter().any(|(n, _)| n == name)
                && let Some(v) = (self.claims)(ctx, name)
            {
                out.push((name.clone(), v));
            }
        }
        out
    }
}

/// One field line per header name: the route's and the plan's lists joined (a structured-field
/// list may be split over lines, but many clients read only the first).
fn merge(headers: Vec<(HeaderName, HeaderValue)>) -> Vec<(HeaderName, HeaderValue)> {
    let mut out: Vec<(HeaderName, Vec<u8>)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.extend_from_slice(b", ");
                v.extend_from_slice(value.as_bytes());
            }
            None => out.push((name, value.as_bytes().to_vec())),
        }
    }
    out.into_iter().filter_map(|(n, v)| Some((n, HeaderValue::from_bytes(&v).ok()?))).collect()
}

fn with_headers(mut p: Problem, headers: Vec<(HeaderName, HeaderValue)>) -> Problem {
    for (n, v) in headers {
        p = p.with_header(n, v);
    }
    p
}

impl Stage for RateLimitStage {
    fn name(&self) -> &'static str {
        STAGE
    }

    async fn on_request(&self, req: &mut http::request::Parts, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
        let svc = &self.svc.inner;
        if ctx.route.is_none() {
            return Ok(Flow::Continue);
        }
        // 1. The process-wide cap: anonymous callers are shed before authenticated ones.
        let gate = match &svc.gate {
            None => None,
            Some(g) => {
                let prio = if ctx.principal.is_some() { Priority::Normal } else { Priority::Low };
                match g.try_enter(prio) {
                    Ok(p) => Some(Arc::new(p)),
                    Err(_) => {
                        let p = Problem::new(ProblemKind::Unavailable)
                            .with_detail("The gateway is shedding load; retry shortly")
                            .with_header(http::header::RETRY_AFTER, HeaderValue::from(1u64));
                        return Ok(Self::deny(ctx, "load-shed", p));
                    }
                }
            }
        };
        // 2. The plan, and whether it includes this route (an authorization outcome: 403).
        let Ok(plan) = self.plan_for(ctx) else {
            tracing::warn!(request_id = %ctx.request_id, "the caller's plan is not configured; refusing");
            let p = Problem::new(ProblemKind::Forbidden).with_detail("The caller's plan is not available");
            return Ok(Self::deny(ctx, "plan-unknown", p));
        };
        let route_name = ctx.route.clone().unwrap_or_else(|| Arc::from("-"));
        if let Some(plan) = &plan
            && !plan.permits_route(&route_name)
        {
            let p = Problem::new(ProblemKind::Forbidden).with_detail("The caller's plan does not include this API");
            return Ok(Self::deny(ctx, "plan-route", p));
        }
        let route = self
            .policy
            .operations
            .get(&route_name)
            .zip(portcullis_core::matched_operation(ctx))
            .and_then(|(ops, id)| ops.get(id))
            .or_else(|| self.policy.routes.get(&route_name))
            .cloned();
        // 3. In flight per consumer (per client IP when anonymous).
        let mut consumer_slot = None;
        if let Some(limit) = route.as_ref().and_then(|r| r.concurrency_per_consumer) {
            let key = match ctx.principal.as_ref().and_then(|p| p.consumer_id.as_deref()) {
                Some(c) => format!("{route_name}\u{0}c:{c}"),
                None => format!("{route_name}\u{0}ip:{}", ctx.client_ip),
            };
            match svc.concurrency.try_acquire(&key, limit) {
                Ok(p) => consumer_slot = Some(Arc::new(p)),
                Err(_) => {
                    let p = Problem::new(ProblemKind::TooManyRequests)
                        .with_detail("Too many requests in flight for this caller")
                        .with_header(http::header::RETRY_AFTER, HeaderValue::from(1u64));
                    return Ok(Self::deny(ctx, "concurrency", p));
                }
            }
        }
        if gate.is_some() || consumer_slot.is_some() {
            ctx.extensions.insert(HeldSlots { _gate: gate, _consumer: consumer_slot });
        }
        // 4. Rate limits: the route's, then the plan's.
        let claims = self.claim_values(ctx, route.as_deref(), plan.as_deref());
        let keys = CtxKeys { ctx, headers: &req.headers, claims };
        let now = svc.clock.now();
        let mut pending = Vec::new();
        let sets = route.as_ref().map(|r| &r.limits).into_iter().chain(plan.as_ref().map(|p| p.limits()));
        for limits in sets {
            if limits.limits().is_empty() {
                continue;
            }
            let outcome = limits.check(&svc.limiter, &keys, 1, now).await;
            let headers = limits.headers(&outcome);
            match outcome.decision {
                Decision::Allow { .. } => pending.extend(headers),
                Decision::Deny { .. } => {
                    let p = with_headers(Problem::new(ProblemKind::TooManyRequests), headers);
                    return Ok(Self::deny(ctx, "rate-limited", p));
                }
                _ => {
                    let p = with_headers(Problem::new(ProblemKind::RateLimitUnavailable), headers);
                    return Ok(Self::deny(ctx, "store-unavailable", p));
                }
            }
        }
        // 5. Quotas, last: a request refused by a rate limit does not use up quota.
        if let Some(plan) = &plan
            && !plan.quotas().quotas().is_empty()
        {
            let outcome = plan.quotas().charge(&svc.quotas, &keys, 1, svc.clock.wall(), now).await;
            let headers = plan.quotas().headers(&outcome);
            match outcome.decision {
                QuotaDecision::Allow { .. } => {
                    if plan.limits().emit_on_allow() {
                        pending.extend(headers);
                    }
                }
                QuotaDecision::Exhausted { .. } => {
                    let p = with_headers(Problem::new(ProblemKind::QuotaExhausted), headers);
                    return Ok(Self::deny(ctx, "quota-exhausted", p));
                }
                _ => {
                    let p = with_headers(Problem::new(ProblemKind::RateLimitUnavailable), headers);
                    return Ok(Self::deny(ctx, "store-unavailable", p));
                }
            }
        }
        if !pending.is_empty() {
            ctx.extensions.insert(PendingHeaders(Arc::new(merge(pending))));
        }
        Ok(Flow::Continue)
    }

    async fn on_response(&self, resp: &mut http::response::Parts, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
        if let Some(PendingHeaders(h)) = ctx.extensions.get::<PendingHeaders>() {
            // The gateway's figures replace whatever the upstream said about limits.
            for (name, _) in h.iter() {
                resp.headers.remove(name);
            }
            for (name, value) in h.iter() {
                resp.headers.append(name.clone(), value.clone());
            }
        }
        Ok(Flow::Continue)
    }

    fn on_complete(&self, ctx: &RequestCtx, _outcome: &Outcome) {
        let Some(tz) = &self.policy.usage_time_zone else { return };
        // Served = the upstream returned a response head for this request.
        if ctx.upstream.is_none() {
            return;
        }
        let (Some(consumer), Some(route)) =
            (ctx.principal.as_ref().and_then(|p| p.consumer_id.as_deref()), ctx.route.as_deref())
        else {
            return;
        };
        let day = day_in(tz, self.svc.inner.clock.wall());
        self.svc.inner.meter.record(day, consumer, route, 1);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use portcullis_core::{AuthMethodUsed, Principal, RequestId};

    use super::*;
    use crate::clock::FakeClock;
    use crate::spec::{LimitSpec, OnStoreFailure};

    fn service(clock: &FakeClock) -> TrafficService {
        TrafficService::start(ServiceSettings { cluster: None, inflight: None, clock: Arc::new(clock.clone()) })
            .unwrap()
    }

    fn policy() -> Arc<TrafficPolicy> {
        let spec =
            LimitSpec::new("per-c", KeySpec::Consumer, 2, Duration::from_secs(10), 2, OnStoreFailure::Open).unwrap();
        let limits = RouteLimits::new(vec![spec], false).unwrap();
        let mut routes = HashMap::new();
        routes.insert(Arc::from("orders"), Arc::new(RouteTraffic { limits, concurrency_per_consumer: None }));
        Arc::new(TrafficPolicy { routes, usage_time_zone: Some(jiff::tz::TimeZone::UTC), ..Default::default() })
    }

    fn ctx(consumer: &str) -> RequestCtx {
        let mut ctx = RequestCtx::new(RequestId::generate(), "127.0.0.1:1".parse().unwrap(), Arc::from("l"), false);
        ctx.route = Some(Arc::from("orders"));
        let mut p = Principal::new(AuthMethodUsed::ApiKey);
        p.consumer_id = Some(Arc::from(consumer));
        ctx.principal = Some(Arc::new(p));
        ctx
    }

    async fn status(stage: &RateLimitStage, consumer: &str) -> u16 {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        match stage.on_request(&mut parts, &mut ctx(consumer)).await.unwrap() {
            Flow::Continue => 200,
            Flow::Respond(r) => r.status().as_u16(),
        }
    }

    #[tokio::test]
    async fn limit_refills_with_the_injected_clock() {
        let clock = FakeClock::new(jiff::Timestamp::UNIX_EPOCH);
        let stage = RateLimitStage::new(service(&clock), policy());
        assert_eq!(status(&stage, "c1").await, 200);
        assert_eq!(status(&stage, "c1").await, 200);
        assert_eq!(status(&stage, "c1").await, 429);
        assert_eq!(status(&stage, "c2").await, 200, "another consumer has its own bucket");
        // One unit every 10 s / 2 = 5 s.
        clock.advance(Duration::from_millis(4_999));
        assert_eq!(status(&stage, "c1").await, 429);
        clock.advance(Duration::from_millis(1));
        assert_eq!(status(&stage, "c1").await, 200);
        assert_eq!(status(&stage, "c1").await, 429);
    }

    #[test]
    fn only_requests_the_upstream_served_are_metered() {
        let clock = FakeClock::new("2026-11-23T23:59:59Z".parse().unwrap());
        let svc = service(&clock);
        let stage = RateLimitStage::new(svc.clone(), policy());
        let served = {
            let mut c = ctx("c1");
            c.upstream = Some(Arc::from("127.0.0.1:3000"));
            c
        };
        stage.on_complete(&served, &Outcome::default());
        stage.on_complete(&ctx("c1"), &Outcome::default()); // refused or upstream unreachable
        let mut anon = ctx("c1");
        anon.principal = None;
        anon.upstream = Some(Arc::from("127.0.0.1:3000"));
        stage.on_complete(&anon, &Outcome::default()); // not a consumer
        clock.advance(Duration::from_secs(1)); // next UTC day
        stage.on_complete(&served, &Outcome::default());
        let rows = svc.meter().drain();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].day.to_string(), rows[0].count), ("2026-11-23".into(), 1));
        assert_eq!(
            (rows[1].day.to_string(), rows[1].consumer.as_str(), rows[1].route.as_str()),
            ("2026-11-24".into(), "c1", "orders")
        );
    }

    #[test]
    fn headers_of_two_sets_merge_into_one_line_per_name() {
        let h = |n: &HeaderName, v: &'static str| (n.clone(), HeaderValue::from_static(v));
        let merged = merge(vec![
            h(&crate::route::RATELIMIT_POLICY, "\"a\";q=1;w=1"),
            h(&crate::route::RATELIMIT, "\"a\";r=0;t=1"),
            h(&crate::route::RATELIMIT_POLICY, "\"b\";q=2;w=60"),
            h(&crate::route::RATELIMIT, "\"b\";r=1;t=30"),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].1, "\"a\";q=1;w=1, \"b\";q=2;w=60");
        assert_eq!(merged[1].1, "\"a\";r=0;t=1, \"b\";r=1;t=30");
    }
}
