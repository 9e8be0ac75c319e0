//! The masking stage: runs the route's exposure policy over upstream responses.
//!
//! - `on_request`: when the route has a policy, asks the upstream for `Accept-Encoding: identity`
//!   (a compressed body cannot be scanned) and asks the handler to buffer the response body up to
//!   the policy's cap (over the cap the handler answers 502: fail closed).
//! - `on_response`: a response still compressed is refused (502) unless the route says `pass`;
//!   validators (`ETag`, `Content-MD5`) are dropped because the body may change.
//! - `on_response_body`: upstream errors (status ≥ 400) judged unsafe are replaced by a problem
//!   with the same status; JSON bodies go through [`CompiledPolicy::apply_json`] with the caller's
//!   shape, `text/*` through [`CompiledPolicy::apply_text`]. A block answers 502 and never sends
//!   the body.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use portcullis_core::{Flow, Principal, Problem, ProblemKind, RequestCtx, Stage, StageError};

use crate::{Applied, CompiledPolicy, ErrorBodyVerdict, Shape, classify_error_body, error_body_digest};

/// What to do with a response the upstream compressed although it was asked not to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnCompressed {
    /// Answer 502: a body that cannot be scanned is never served (default).
    #[default]
    Refuse,
    /// Serve it unscanned and count it in `portcullis_exposure_unscanned_total`.
    Pass,
}

/// Whom a shaping rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShapeSubject {
    /// A consumer, by name.
    Consumer(Arc<str>),
    /// An organization, by name.
    Org(Arc<str>),
    /// A plan, by name.
    Plan(Arc<str>),
}

impl ShapeSubject {
    fn rank(&self) -> u8 {
        match self {
            ShapeSubject::Consumer(_) => 0,
            ShapeSubject::Org(_) => 1,
            ShapeSubject::Plan(_) => 2,
        }
    }

    fn matches(&self, p: &Principal) -> bool {
        let (want, have) = match self {
            ShapeSubject::Consumer(n) => (n, &p.consumer_name),
            ShapeSubject::Org(n) => (n, &p.org_name),
            ShapeSubject::Plan(n) => (n, &p.plan),
        };
        have.as_deref() == Some(&**want)
    }
}

/// One shaping rule: whom it applies to and the shape.
#[derive(Debug, Clone)]
pub struct ShapingRule {
    /// Consumer, organization or plan.
    pub subject: ShapeSubject,
    /// The compiled shape.
    pub shape: Arc<Shape>,
}

/// A route's compiled exposure settings.
pub struct RouteExposure {
    /// The compiled policy.
    pub policy: Arc<CompiledPolicy>,
    /// Shaping rules; the first match wins, consumer rules before organization before plan.
    pub shaping: Vec<ShapingRule>,
    /// Replace upstream error bodies judged unsafe.
    pub safe_errors: bool,
    /// The response body buffering cap.
    pub max_body_bytes: usize,
    /// What to do with a compressed response.
    pub on_compressed: OnCompressed,
}

impl fmt::Debug for RouteExposure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteExposure")
            .field("policy", &self.policy)
            .field("shaping", &self.shaping.len())
            .field("safe_errors", &self.safe_errors)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("on_compressed", &self.on_compressed)
            .finish()
    }
}

impl RouteExposure {
    /// Sorts the shaping rules so consumer rules come before organization and plan rules
    /// (stable: the configured order is kept within a kind).
    pub fn sort_shaping(&mut self) {
        self.shaping.sort_by_key(|r| r.subject.rank());
    }

    /// The shape for this caller: the first matching rule (consumer > org > plan), if any.
    pub fn shape_for(&self, principal: Option<&Principal>) -> Option<&Shape> {
        select_shape(&self.shaping, &[], principal, 0)
    }

    /// Settings for a route that has no `policy.exposure` block but a run-time shaping rule: no
    /// detector runs and no field is masked, only the shape applies; a compressed response is
    /// refused (it cannot be shaped); upstream error bodies pass as they are.
    pub fn shape_only() -> Result<Self, crate::PolicyError> {
        let policy = crate::ExposurePolicy {
            detectors: Vec::new(),
            replace_default_sensitive_fields: true,
            ..crate::ExposurePolicy::default()
        };
        Ok(RouteExposure {
            max_body_bytes: policy.max_body_bytes,
            policy: Arc::new(policy.compile()?),
            shaping: Vec::new(),
            safe_errors: false,
            on_compressed: OnCompressed::Refuse,
        })
    }
}

/// Route name → its exposure settings.
pub type RouteExposures = Arc<HashMap<Arc<str>, Arc<RouteExposure>>>;

/// Route name → operation id → that operation's exposure settings.
pub type OperationExposures = Arc<HashMap<Arc<str>, HashMap<Arc<str>, Arc<RouteExposure>>>>;

/// A shaping rule set at run time (through the admin API) and when it lapses.
#[derive(Debug, Clone)]
pub struct OverrideRule {
    /// Consumer, organization or plan.
    pub subject: ShapeSubject,
    /// The compiled shape.
    pub shape: Arc<Shape>,
    /// Unix seconds at which it stops applying, if any.
    pub expires_at: Option<i64>,
}

impl OverrideRule {
    fn is_active_at(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

/// Every run-time shaping rule, by route name: one immutable snapshot, replaced whole when the
/// store changes (see [`SharedOverrides`]).
#[derive(Debug, Default)]
pub struct ShapingOverrides {
    by_route: HashMap<Arc<str>, Vec<OverrideRule>>,
}

impl ShapingOverrides {
    /// A snapshot of these (route, rule) pairs; within a route, consumer rules sort before
    /// organization rules before plan rules.
    pub fn new(rules: impl IntoIterator<Item = (Arc<str>, OverrideRule)>) -> Self {
        let mut by_route: HashMap<Arc<str>, Vec<OverrideRule>> = HashMap::new();
        for (route, rule) in rules {
            by_route.entry(route).or_default().push(rule);
        }
        for rules in by_route.values_mut() {
            rules.sort_by_key(|r| r.subject.rank());
        }
        Self { by_route }
    }

    /// The rules of a route.
    pub fn route(&self, name: &str) -> &[OverrideRule] {
        self.by_route.get(name).map_or(&[], Vec::as_slice)
    }

    /// How many rules there are, over every route.
    pub fn len(&self) -> usize {
        self.by_route.values().map(Vec::len).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_route.is_empty()
    }

    /// Whether any rule has lapsed at `now` (the owner then rebuilds the snapshot).
    pub fn any_lapsed_at(&self, now: i64) -> bool {
        self.by_route.values().flatten().any(|r| !r.is_active_at(now))
    }
}

/// The current run-time shaping rules: written by whoever watches the store (the identity
/// service), read lock-free by the stage on every response.
pub type SharedOverrides = Arc<ArcSwap<ShapingOverrides>>;

/// The caller's shape on a route: the best-ranked matching rule (consumer > organization > plan)
/// among the run-time rules in force at `now` and the configured ones; at equal rank the run-time
/// rule wins, so a switch through the admin API replaces what the configuration says for that
/// subject.
pub fn select_shape<'a>(
    configured: &'a [ShapingRule],
    overrides: &'a [OverrideRule],
    principal: Option<&Principal>,
    now: i64,
) -> Option<&'a Shape> {
    let p = principal?;
    let mut best: Option<(u8, &Shape)> = None;
    let runtime = overrides.iter().filter(|r| r.is_active_at(now)).map(|r| (&r.subject, &r.shape));
    for (subject, shape) in runtime.chain(configured.iter().map(|r| (&r.subject, &r.shape))) {
        if subject.matches(p) && best.is_none_or(|(rank, _)| subject.rank() < rank) {
            best = Some((subject.rank(), &**shape));
        }
    }
    best.map(|(_, s)| s)
}

/// What `on_response` saw, for `on_response_body`.
#[derive(Debug, Clone)]
struct Seen {
    status: StatusCode,
    content_type: Option<String>,
    skip: bool,
}

/// The settings chosen for this request in `on_request`, so every later phase uses the same ones
/// (the body was buffered for them).
#[derive(Debug, Clone)]
struct Chosen(Arc<RouteExposure>);

/// The masking stage.
#[derive(Debug, Clone)]
pub struct ExposureStage {
    routes: RouteExposures,
    operations: OperationExposures,
    overrides: Option<SharedOverrides>,
    shape_only: Option<Arc<RouteExposure>>,
}

const NAME: &str = "exposure";

/// Unix seconds now.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl ExposureStage {
    /// A stage for these routes; routes not in the map are not touched.
    pub fn new(routes: RouteExposures) -> Self {
        // An empty policy cannot fail to compile (a unit test holds it to that).
        Self {
            routes,
            operations: Arc::default(),
            overrides: None,
            shape_only: RouteExposure::shape_only().ok().map(Arc::new),
        }
    }

    /// Also applies per-operation settings (an OpenAPI operation's `x-portcullis-exposure`
    /// merged over its route's), by route name then operation id, to requests the router
    /// matched to the operation ([`portcullis_core::MatchedOperation`]).
    #[must_use]
    pub fn with_operations(mut self, operations: OperationExposures) -> Self {
        self.operations = operations;
        self
    }

    /// Also applies the run-time shaping rules of `overrides`, read on every response. A route
    /// without a `policy.exposure` block that gets a run-time rule is shaped (not scanned) with
    /// [`RouteExposure::shape_only`] settings.
    #[must_use]
    pub fn with_overrides(mut self, overrides: SharedOverrides) -> Self {
        self.overrides = Some(overrides);
        self
    }

    /// The settings for this request: the route's own, else shape-only ones when a run-time rule
    /// names the route.
    fn choose(&self, ctx: &RequestCtx) -> Option<Arc<RouteExposure>> {
        let route = ctx.route.as_deref()?;
        if let Some(r) = self
            .operations
            .get(route)
            .zip(portcullis_core::matched_operation(ctx))
            .and_then(|(ops, id)| ops.get(id))
            .or_else(|| self.routes.get(route))
        {
            return Some(r.clone());
        }
        let overrides = self.overrides.as_ref()?.load();
        // The common case, no run-time policy anywhere: no hashing.
        if overrides.is_empty() || overrides.route(route).is_empty() {
            return None;
        }
        self.shape_only.clone()
    }

    fn route(&self, ctx: &RequestCtx) -> Option<Arc<RouteExposure>> {
        ctx.extensions.get::<Chosen>().map(|c| c.0.clone())
    }
}

fn blocked(ctx: &mut RequestCtx, applied: &Applied) -> Flow {
    ctx.deny(NAME, "sensitive-data-blocked");
    let mut classes: Vec<&'static str> =
        applied.findings.iter().filter(|f| f.action == crate::Action::Block).map(|f| f.class.as_str()).collect();
    classes.sort_unstable();
    classes.dedup();
    for c in &classes {
        metrics::counter!("portcullis_exposure_blocked_total", "class" => *c).increment(1);
    }
    tracing::error!(
        request_id = ctx.request_id.as_str(),
        route = ctx.route.as_deref().unwrap_or(""),
        classes = %classes.join(","),
        "response blocked: sensitive data"
    );
    Flow::Respond(
        Problem::new(ProblemKind::BadGateway)
            .with_detail("The response was withheld by the data-exposure policy.")
            .to_response(&ctx.request_id),
    )
}

fn count_findings(applied: &Applied) {
    for f in &applied.findings {
        metrics::counter!("portcullis_exposure_findings_total", "class" => f.class.as_str(), "action" => f.action.as_str())
            .increment(1);
    }
}

fn is_json(ct: &str) -> bool {
    let base = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    base == "application/json" || base.ends_with("+json")
}

fn is_text(ct: &str) -> bool {
    ct.trim_start().to_ascii_lowercase().starts_with("text/")
}

fn refuse(ctx: &mut RequestCtx, reason: &'static str, detail: &'static str) -> Flow {
    ctx.deny(NAME, reason);
    Flow::Respond(Problem::new(ProblemKind::BadGateway).with_detail(detail).to_response(&ctx.request_id))
}

impl Stage for ExposureStage {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn on_request(&self, req: &mut http::request::Parts, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
        if let Some(r) = self.choose(ctx) {
            req.headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
            ctx.require_response_body(r.max_body_bytes);
            ctx.extensions.insert(Chosen(r));
        }
        Ok(Flow::Continue)
    }

    async fn on_response(&self, resp: &mut http::response::Parts, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
        let Some(r) = self.route(ctx) else { return Ok(Flow::Continue) };
        let encoded =
            resp.headers.get_all(header::CONTENT_ENCODING).iter().any(|v| {
                v.to_str().map_or(true, |s| !s.trim().eq_ignore_ascii_case("identity") && !s.trim().is_empty())
            });
        let mut skip = false;
        if encoded {
            match r.on_compressed {
                OnCompressed::Pass => {
                    metrics::counter!("portcullis_exposure_unscanned_total", "reason" => "compressed").increment(1);
                    tracing::warn!(request_id = ctx.request_id.as_str(), "compressed response passed unscanned");
                    skip = true;
                }
                _ => {
                    metrics::counter!("portcullis_exposure_refused_total", "reason" => "compressed").increment(1);
                    tracing::error!(request_id = ctx.request_id.as_str(), "compressed response refused: cannot scan");
                    return Ok(refuse(ctx, "compressed-response", "The upstream response could not be inspected."));
                }
            }
        } else {
            resp.headers.remove(header::ETAG);
            resp.headers.remove("content-md5");
        }
        let content_type = resp.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        ctx.extensions.insert(Seen { status: resp.status, content_type, skip });
        Ok(Flow::Continue)
    }

    async fn on_response_body(&self, body: &mut Bytes, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
        let Some(r) = self.route(ctx) else { return Ok(Flow::Continue) };
        let Some(seen) = ctx.extensions.get::<Seen>().cloned() else { return Ok(Flow::Continue) };
        // Nothing to scan (204, 304, HEAD, an empty error): never refuse an empty body.
        if seen.skip || body.is_empty() {
            return Ok(Flow::Continue);
        }
        let ct = seen.content_type.as_deref();
        if r.safe_errors
            && (seen.status.is_client_error() || seen.status.is_server_error())
            && let ErrorBodyVerdict::Unsafe { reasons } = classify_error_body(ct, body)
        {
            let reasons: Vec<String> = reasons.iter().map(ToString::to_string).collect();
            metrics::counter!("portcullis_exposure_error_bodies_replaced_total").increment(1);
            tracing::warn!(
                request_id = ctx.request_id.as_str(),
                status = seen.status.as_u16(),
                reasons = %reasons.join(","),
                digest = %error_body_digest(body),
                "unsafe upstream error body replaced"
            );
            return Ok(Flow::Respond(safe_error(seen.status, ctx)));
        }
        let overrides = self.overrides.as_ref().map(|o| o.load());
        let runtime = match (&overrides, ctx.route.as_deref()) {
            (Some(o), Some(route)) => o.route(route),
            _ => &[],
        };
        let now = if runtime.is_empty() { 0 } else { unix_now() };
        let shape = select_shape(&r.shaping, runtime, ctx.principal.as_deref(), now);
        let applied = match ct {
            Some(c) if is_json(c) => r.policy.apply_json(body, shape),
            Some(c) if is_text(c) => match std::str::from_utf8(body) {
                Ok(t) => r.policy.apply_text(t),
                Err(_) => {
                    return Ok(refuse(ctx, "unscannable-response", "The upstream response could not be inspected."));
                }
            },
            _ => return Ok(Flow::Continue),
        };
        let applied = match applied {
            Ok(a) => a,
            Err(e) => {
                metrics::counter!("portcullis_exposure_refused_total", "reason" => "scan-error").increment(1);
                tracing::error!(request_id = ctx.request_id.as_str(), error = %e, "response could not be scanned");
                return Ok(refuse(ctx, "unscannable-response", "The upstream response could not be inspected."));
            }
        };
        count_findings(&applied);
        if applied.blocked {
            return Ok(blocked(ctx, &applied));
        }
        if applied.changed {
            *body = Bytes::from(applied.body);
        }
        Ok(Flow::Continue)
    }
}

/// A problem+json with the upstream's status and the request id, and nothing of the upstream body.
fn safe_error(status: StatusCode, ctx: &RequestCtx) -> http::Response<Bytes> {
    let kind = if status.is_client_error() { ProblemKind::BadRequest } else { ProblemKind::BadGateway };
    let mut resp = Problem::new(kind).to_response(&ctx.request_id);
    let doc = serde_json::json!({
        "type": "urn:portcullis:problem:upstream-error",
        "title": status.canonical_reason().unwrap_or("Upstream error"),
        "status": status.as_u16(),
        "request_id": ctx.request_id.as_str(),
    });
    *resp.body_mut() = Bytes::from(doc.to_string());
    *resp.status_mut() = status;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExposurePolicy, ShapeConfig};
    use portcullis_core::AuthMethodUsed;

    fn rule(subject: ShapeSubject, allow: &str) -> ShapingRule {
        let shape = ShapeConfig { allow: vec![allow.into()], ..Default::default() }.compile().unwrap();
        ShapingRule { subject, shape: Arc::new(shape) }
    }

    #[test]
    fn consumer_rules_win_over_org_and_plan() {
        let mut r = RouteExposure {
            policy: Arc::new(ExposurePolicy::default().compile().unwrap()),
            shaping: vec![
                rule(ShapeSubject::Plan("gold".into()), "/plan"),
                rule(ShapeSubject::Org("acme".into()), "/org"),
                rule(ShapeSubject::Consumer("app".into()), "/consumer"),
            ],
            safe_errors: true,
            max_body_bytes: 1024,
            on_compressed: OnCompressed::Refuse,
        };
        r.sort_shaping();
        let mut p = Principal::new(AuthMethodUsed::ApiKey);
        p.plan = Some("gold".into());
        let shaped = |r: &RouteExposure, p: &Principal| {
            let out = r.policy.apply_json(br#"{"plan":1,"org":2,"consumer":3}"#, r.shape_for(Some(p))).unwrap();
            String::from_utf8(out.body).unwrap()
        };
        assert_eq!(shaped(&r, &p), r#"{"plan":1}"#);
        p.org_name = Some("acme".into());
        assert_eq!(shaped(&r, &p), r#"{"org":2}"#);
        p.consumer_name = Some("app".into());
        assert_eq!(shaped(&r, &p), r#"{"consumer":3}"#);
        // Another consumer of another org on another plan: no shape.
        let other = Principal::new(AuthMethodUsed::ApiKey);
        assert!(r.shape_for(Some(&other)).is_none());
        assert!(r.shape_for(None).is_none());
    }

    fn over(subject: ShapeSubject, allow: &str, expires_at: Option<i64>) -> OverrideRule {
        let r = rule(subject, allow);
        OverrideRule { subject: r.subject, shape: r.shape, expires_at }
    }

    #[test]
    fn run_time_rules_replace_configured_ones_of_the_same_rank_until_they_lapse() {
        let policy = ExposurePolicy::default().compile().unwrap();
        let configured = vec![
            rule(ShapeSubject::Consumer("app".into()), "/config"),
            rule(ShapeSubject::Plan("gold".into()), "/plan"),
        ];
        let snapshot = ShapingOverrides::new([
            (Arc::from("r"), over(ShapeSubject::Plan("free".into()), "/free", None)),
            (Arc::from("r"), over(ShapeSubject::Consumer("app".into()), "/runtime", Some(100))),
        ]);
        assert_eq!(snapshot.len(), 2);
        assert!(snapshot.route("other").is_empty());
        assert!(!snapshot.any_lapsed_at(99) && snapshot.any_lapsed_at(100));
        let mut p = Principal::new(AuthMethodUsed::ApiKey);
        p.consumer_name = Some("app".into());
        p.plan = Some("free".into());
        let body = br#"{"config":1,"runtime":2,"free":3,"plan":4}"#;
        let shaped = |now: i64, p: &Principal| {
            let shape = select_shape(&configured, snapshot.route("r"), Some(p), now);
            String::from_utf8(policy.apply_json(body, shape).unwrap().body).unwrap()
        };
        assert_eq!(shaped(99, &p), r#"{"runtime":2}"#, "the run-time rule wins at equal rank");
        assert_eq!(shaped(100, &p), r#"{"config":1}"#, "lapsed: the configured rule is back");
        p.consumer_name = Some("other".into());
        assert_eq!(shaped(99, &p), r#"{"free":3}"#, "a run-time plan rule applies to the rest of the plan");
        p.plan = Some("gold".into());
        assert_eq!(shaped(99, &p), r#"{"plan":4}"#);
        assert!(select_shape(&configured, snapshot.route("r"), None, 99).is_none(), "anonymous callers");
    }

    #[test]
    fn shape_only_settings_shape_without_masking() {
        let r = RouteExposure::shape_only().unwrap();
        assert!(!r.safe_errors);
        assert_eq!(r.on_compressed, OnCompressed::Refuse);
        let shape =
            ShapeConfig { allow: vec!["/email".into(), "/password".into()], ..Default::default() }.compile().unwrap();
        let out = r.policy.apply_json(br#"{"email":"jane@example.com","password":"x","id":1}"#, Some(&shape)).unwrap();
        assert_eq!(out.body, br#"{"email":"jane@example.com","password":"x"}"#);
        assert!(out.findings.is_empty());
    }
}
