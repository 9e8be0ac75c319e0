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
        let p = principal?;
        let mut best: Option<&ShapingRule> = None;
        for r in self.shaping.iter().filter(|r| r.subject.matches(p)) {
            if best.is_none_or(|b| r.subject.rank() < b.subject.rank()) {
                best = Some(r);
            }
        }
        best.map(|r| &*r.shape)
    }
}

/// Route name → its exposure settings.
pub type RouteExposures = Arc<HashMap<Arc<str>, Arc<RouteExposure>>>;

/// What `on_response` saw, for `on_response_body`.
#[derive(Debug, Clone)]
struct Seen {
    status: StatusCode,
    content_type: Option<String>,
    skip: bool,
}

/// The masking stage.
#[derive(Debug, Clone)]
pub struct ExposureStage {
    routes: RouteExposures,
}

const NAME: &str = "exposure";

impl ExposureStage {
    /// A stage for these routes; routes not in the map are not touched.
    pub fn new(routes: RouteExposures) -> Self {
        Self { routes }
    }

    fn route(&self, ctx: &RequestCtx) -> Option<&Arc<RouteExposure>> {
        self.routes.get(ctx.route.as_deref()?)
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
        if let Some(r) = self.route(ctx) {
            req.headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
            let cap = r.max_body_bytes;
            ctx.require_response_body(cap);
        }
        Ok(Flow::Continue)
    }

    async fn on_response(&self, resp: &mut http::response::Parts, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
        let Some(r) = self.route(ctx).cloned() else { return Ok(Flow::Continue) };
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
        let Some(r) = self.route(ctx).cloned() else { return Ok(Flow::Continue) };
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
        let applied = match ct {
            Some(c) if is_json(c) => r.policy.apply_json(body, r.shape_for(ctx.principal.as_deref())),
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
}
