//! The pipeline stage: runs the [`Inspector`] of the matched route on path segments, query,
//! cookies, chosen headers and (buffered, up to the route's cap) the body, before the upstream is
//! contacted.
//!
//! Without a body the request is scanned in `on_request`; with one, the stage asks the proxy to
//! buffer it and scans everything in `on_request_body`. A block answers 403
//! `urn:portcullis:problem:attack-detected` whose detail names the rule ids and the location
//! classes (never a value, never a parameter name: both are attacker-controlled). Monitor mode
//! lets the request through and counts `portcullis_inspect_findings_total{class,rule,mode}`.
//! Fail closed: a verdict this stage does not know blocks.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use http::header;
use portcullis_core::{ContractValidated, Flow, Problem, ProblemKind, RequestCtx, Stage, StageError};

use crate::{Finding, Inspector, Location, Mode, Report, RequestView, Verdict};

/// What happens to a request body larger than the route's inspection cap.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverCap {
    /// Refuse it with 413 before the upstream is contacted (the secure default).
    #[default]
    Reject,
    /// Scan the first `body_cap` bytes, let the rest through unscanned, count it.
    Pass,
}

/// One route's inspection: the compiled inspector and its body handling.
#[derive(Debug, Clone)]
pub struct RouteInspection {
    inspector: Inspector,
    mode: Mode,
    body_cap: usize,
    over_cap: OverCap,
    max_body: usize,
}

impl RouteInspection {
    /// `policy` must be the policy the inspector was compiled from (its mode and body cap are
    /// used here); `max_body` is the route's request body limit, used to buffer the whole body
    /// when `over_cap` is [`OverCap::Pass`].
    pub fn new(policy: &crate::InspectPolicy, inspector: Inspector, over_cap: OverCap, max_body: u64) -> Self {
        Self {
            inspector,
            mode: policy.mode,
            body_cap: policy.body_cap.max(1),
            over_cap,
            max_body: usize::try_from(max_body).unwrap_or(usize::MAX),
        }
    }
}

/// The attack-detection stage, holding every route's inspection by route name.
#[derive(Debug, Default)]
pub struct InspectStage {
    routes: HashMap<Arc<str>, Arc<RouteInspection>>,
}

/// The request head kept between `on_request` and `on_request_body`.
#[derive(Clone)]
struct Pending {
    route: Arc<RouteInspection>,
    headers: http::HeaderMap,
}

/// The stage's name in logs and metrics.
pub const STAGE_NAME: &str = "inspect";

impl InspectStage {
    /// A stage for these routes (by route name); other routes are not inspected.
    pub fn new(routes: impl IntoIterator<Item = (Arc<str>, RouteInspection)>) -> Self {
        Self { routes: routes.into_iter().map(|(k, v)| (k, Arc::new(v))).collect() }
    }

    /// Whether no route is inspected (the pipeline can leave the stage out).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    fn route(&self, ctx: &RequestCtx) -> Option<Arc<RouteInspection>> {
        ctx.route.as_ref().and_then(|r| self.routes.get(r)).cloned()
    }
}

/// Whether the request may carry a body. HTTP/1 frames bodies only with `Content-Length` or
/// `Transfer-Encoding`; HTTP/2 and HTTP/3 may send DATA frames with neither, so there a body is
/// assumed unless `Content-Length: 0` says otherwise (never let a body through unscanned).
fn has_body(req: &http::request::Parts) -> bool {
    match content_length(&req.headers) {
        Some(n) => n > 0,
        None => req.headers.contains_key(header::TRANSFER_ENCODING) || req.version >= http::Version::HTTP_2,
    }
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Scans and turns the report into a flow.
fn decide(
    route: &RouteInspection,
    ctx: &mut RequestCtx,
    headers: &http::HeaderMap,
    body: Option<(&[u8], bool)>,
) -> Flow {
    let method = ctx.method.as_str().to_owned();
    let segs: Vec<&str> = ctx.path.split('/').filter(|s| !s.is_empty()).collect();
    let mut view = RequestView::new(&method).with_path_segments(segs).with_query(ctx.query.as_deref());
    // What the contract stage (which runs first) proved holds no free text is not scanned.
    if let Some(v) = ctx.extensions.get::<ContractValidated>() {
        view = view.with_validated(v.fields());
    }
    for (name, value) in headers {
        view = view.with_header(name.as_str(), value.as_bytes());
    }
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if let Some((b, truncated)) = body {
        view = view.with_body(ct, b, truncated);
    }
    let report = route.inspector.scan_request(&view);
    verdict_flow(route, ctx, &report)
}

fn mode_label(m: Mode) -> &'static str {
    match m {
        Mode::Monitor => "monitor",
        _ => "block",
    }
}

fn count(report: &Report, mode: &'static str) {
    for f in &report.findings {
        metrics::counter!(
            "portcullis_inspect_findings_total",
            "class" => f.class.as_str(),
            "rule" => f.rule_id,
            "mode" => mode,
        )
        .increment(1);
    }
}

fn verdict_flow(route: &RouteInspection, ctx: &mut RequestCtx, report: &Report) -> Flow {
    match report.verdict {
        Verdict::Allow => Flow::Continue,
        Verdict::MonitorFlagged => {
            count(report, "monitor");
            tracing::info!(
                request_id = %ctx.request_id,
                rules = %rule_list(&report.findings),
                score = report.score,
                "inspection flagged a request (monitor mode)"
            );
            Flow::Continue
        }
        // Block, and any verdict this stage does not know: fail closed.
        _ => {
            count(report, mode_label(route.mode));
            tracing::warn!(
                request_id = %ctx.request_id,
                rules = %rule_list(&report.findings),
                score = report.score,
                "inspection blocked a request"
            );
            ctx.deny(STAGE_NAME, "attack-detected");
            let p = Problem::new(ProblemKind::AttackDetected).with_detail(safe_detail(&report.findings));
            Flow::Respond(p.to_response(&ctx.request_id))
        }
    }
}

/// The location's kind only: a parameter name or JSON pointer is attacker data.
fn location_kind(l: &Location) -> &'static str {
    match l {
        Location::Path(_) => "path",
        Location::Query(_) => "query",
        Location::Header(_) => "header",
        Location::Cookie(_) => "cookie",
        Location::Body(_) => "body",
        Location::Form(_) => "form",
        Location::Multipart(_) => "multipart",
    }
}

/// `rule (kind), …`, deduplicated, bounded: rule ids are fixed identifiers, never input.
fn rule_list(findings: &[Finding]) -> String {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for f in findings {
        let k = (f.rule_id, location_kind(&f.location));
        if !seen.contains(&k) && seen.len() < 8 {
            seen.push(k);
        }
    }
    let mut out = String::new();
    for (i, (r, k)) in seen.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{r} ({k})");
    }
    out
}

/// The client-visible detail of a block.
pub fn safe_detail(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "blocked by attack detection".to_owned();
    }
    format!("blocked by attack detection: {}", rule_list(findings))
}

impl Stage for InspectStage {
    fn name(&self) -> &'static str {
        STAGE_NAME
    }

    async fn on_request(&self, req: &mut http::request::Parts, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
        let Some(route) = self.route(ctx) else { return Ok(Flow::Continue) };
        if !has_body(req) {
            return Ok(decide(&route, ctx, &req.headers, None));
        }
        let declared = content_length(&req.headers);
        let over = declared.is_some_and(|n| n > route.body_cap as u64);
        match route.over_cap {
            OverCap::Reject => {
                if over {
                    ctx.deny(STAGE_NAME, "body-over-inspect-cap");
                    return Ok(Flow::Respond(
                        Problem::new(ProblemKind::PayloadTooLarge)
                            .with_detail("the body is larger than this route inspects")
                            .to_response(&ctx.request_id),
                    ));
                }
                // A chunked body over the cap is refused (413) by the proxy while buffering.
                ctx.require_request_body(route.body_cap);
            }
            _ => ctx.require_request_body(route.max_body.max(route.body_cap)),
        }
        ctx.extensions.insert(Pending { route, headers: req.headers.clone() });
        Ok(Flow::Continue)
    }

    async fn on_request_body(&self, body: &mut Bytes, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
        let Some(Pending { route, headers }) = ctx.extensions.remove::<Pending>() else {
            return Ok(Flow::Continue);
        };
        let truncated = body.len() > route.body_cap;
        if truncated {
            // Only reachable in `pass` mode: reject mode buffers at most `body_cap`.
            metrics::counter!("portcullis_inspect_body_over_cap_total", "mode" => mode_label(route.mode)).increment(1);
        }
        let scanned = &body[..body.len().min(route.body_cap)];
        Ok(decide(&route, ctx, &headers, Some((scanned, truncated))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AttackClass, InspectPolicy};

    #[test]
    fn detail_names_rules_and_kinds_never_values_or_names() {
        let f = |rule, location| Finding { class: AttackClass::Sqli, rule_id: rule, location, score: 5 };
        let d = safe_detail(&[
            f("sqli-tautology", Location::Query("<script>alert(1)</script>".into())),
            f("sqli-tautology", Location::Query("x".into())),
            f("xss-tag", Location::Body("/a' OR 1=1".into())),
        ]);
        assert_eq!(d, "blocked by attack detection: sqli-tautology (query), xss-tag (body)");
    }

    fn ctx(path: &str, query: Option<&str>) -> RequestCtx {
        let mut c =
            RequestCtx::new(portcullis_core::RequestId::generate(), "127.0.0.1:1".parse().unwrap(), "l".into(), false);
        c.path = path.into();
        c.query = query.map(Into::into);
        c.route = Some("r".into());
        c
    }

    fn stage(mode: Mode) -> InspectStage {
        let p = InspectPolicy { mode, ..InspectPolicy::default() };
        let i = Inspector::new(p.compile().unwrap());
        InspectStage::new([(Arc::from("r"), RouteInspection::new(&p, i, OverCap::Reject, 1 << 20))])
    }

    fn parts(body_len: Option<usize>) -> http::request::Parts {
        let mut b = http::Request::builder().uri("/x");
        if let Some(n) = body_len {
            b = b.header("content-length", n).header("content-type", "application/json");
        }
        b.body(()).unwrap().into_parts().0
    }

    #[tokio::test]
    async fn blocks_and_allows_in_the_head_when_there_is_no_body() {
        let s = stage(Mode::Block);
        let mut c = ctx("/echo", Some("q=1%27%20OR%201=1--"));
        let Flow::Respond(r) = s.on_request(&mut parts(None), &mut c).await.unwrap() else { panic!("not blocked") };
        assert_eq!(r.status(), 403);
        let mut c = ctx("/echo", Some("q=O%27Brien"));
        assert!(matches!(s.on_request(&mut parts(None), &mut c).await.unwrap(), Flow::Continue));
    }

    #[tokio::test]
    async fn body_requests_are_buffered_then_scanned() {
        let s = stage(Mode::Block);
        let mut c = ctx("/echo", None);
        assert!(matches!(s.on_request(&mut parts(Some(30)), &mut c).await.unwrap(), Flow::Continue));
        assert_eq!(c.buffer_request_body, Some(1 << 20));
        let mut body = Bytes::from_static(br#"{"q":"x' OR 'a'='a"}"#);
        assert!(matches!(s.on_request_body(&mut body, &mut c).await.unwrap(), Flow::Respond(_)));
    }

    #[tokio::test]
    async fn an_h2_body_without_content_length_is_buffered_and_scanned() {
        let s = stage(Mode::Block);
        let mut p = parts(None);
        p.version = http::Version::HTTP_2;
        let mut c = ctx("/echo", None);
        assert!(matches!(s.on_request(&mut p, &mut c).await.unwrap(), Flow::Continue));
        assert_eq!(c.buffer_request_body, Some(1 << 20));
        let mut body = Bytes::from_static(b"x' OR 'a'='a");
        assert!(matches!(s.on_request_body(&mut body, &mut c).await.unwrap(), Flow::Respond(_)));
        // HTTP/1.1 without framing headers has no body: scanned at once.
        let mut c = ctx("/echo", None);
        assert!(matches!(s.on_request(&mut parts(None), &mut c).await.unwrap(), Flow::Continue));
        assert_eq!(c.buffer_request_body, None);
    }

    #[tokio::test]
    async fn monitor_mode_lets_attacks_through() {
        let s = stage(Mode::Monitor);
        let mut c = ctx("/echo", Some("q=1%27%20OR%201=1--"));
        assert!(matches!(s.on_request(&mut parts(None), &mut c).await.unwrap(), Flow::Continue));
    }

    #[tokio::test]
    async fn other_routes_are_not_inspected() {
        let s = stage(Mode::Block);
        let mut c = ctx("/echo", Some("q=1%27%20OR%201=1--"));
        c.route = Some("other".into());
        assert!(matches!(s.on_request(&mut parts(None), &mut c).await.unwrap(), Flow::Continue));
    }
}
