//! The contract stage: after rate limiting and before inspection on the request side, after the
//! upstream and before masking on the response side.
//!
//! - `on_request`: the route table (404/405 for what the contract does not declare), parameters,
//!   the operation's security against the caller, the body's media type; asks for the body when
//!   there is one to validate.
//! - `on_request_body`: the body against its schema.
//! - `on_response` / `on_response_body`: the response against the operation's declared status,
//!   media type and schema; in `enforce` mode undeclared properties are removed and what still
//!   does not match becomes a 502.
//!
//! The client sees a problem whose violation list depends on [`Detail`]; the log always has the
//! full list (pointers and reasons, never values).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, header};
use portcullis_core::{ContractValidated, Flow, Principal, Problem, ProblemKind, RequestCtx, Stage, StageError};

use crate::contract::{BodyChoice, Contract, Lookup, Operation, RequestHead};
use crate::{Mode, Violation};

/// The stage's name in logs and metrics.
pub const STAGE_NAME: &str = "contract";

/// How much of the violation list the client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Detail {
    /// Each violation's JSON pointer and reason (for internal clients and development).
    Full,
    /// Only the number of violations (the public default: the contract's shape is not taught).
    #[default]
    Minimal,
}

/// What happens to a response body larger than the validation cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OverCap {
    /// In enforce mode, answer 502 (an unvalidated response is not served).
    #[default]
    Reject,
    /// Serve it unvalidated, counted in `portcullis_contract_unvalidated_total`.
    Pass,
}

/// Response validation settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ResponsePolicy {
    /// Validate responses at all. Default true.
    pub validate: bool,
    /// Largest response body buffered for validation.
    pub max_body_bytes: usize,
    /// What happens past it.
    pub over_cap: OverCap,
}

impl Default for ResponsePolicy {
    fn default() -> Self {
        Self { validate: true, max_body_bytes: 1 << 20, over_cap: OverCap::Reject }
    }
}

/// One route's contract and how it is enforced.
#[derive(Debug)]
#[non_exhaustive]
pub struct RouteContract {
    /// The compiled documents.
    pub contract: Arc<Contract>,
    /// The route's mode.
    pub mode: Mode,
    /// Per-operation modes (by operation id), over the document's `x-portcullis-mode`.
    pub operation_modes: HashMap<String, Mode>,
    /// Refuse undeclared query parameters (undeclared properties are compiled into the schemas).
    pub strict: bool,
    /// What clients see of the violations.
    pub detail: Detail,
    /// Check each operation's `security` (and `x-portcullis-scopes`) against the caller.
    pub security: bool,
    /// Largest request body buffered for validation.
    pub max_body_bytes: usize,
    /// Responses.
    pub responses: ResponsePolicy,
    /// Limits of the strict JSON parser for request bodies (`max_bytes` is `max_body_bytes`).
    pub json_limits: crate::json::JsonLimits,
    /// The SSRF guard for request-body fields with `format: uri` (or `x-portcullis-ssrf`);
    /// `None` turns it off.
    pub ssrf: Option<crate::ssrf::SsrfPolicy>,
    /// Resolve host names and refuse any that resolve inside (else literal addresses and refused
    /// names only).
    pub ssrf_resolve: bool,
    /// The documents (for reload watching).
    pub files: Vec<PathBuf>,
}

impl RouteContract {
    /// A route contract with secure defaults: enforce, strict, minimal detail, security
    /// checked, 1 MiB request and response caps, responses validated and refused past the cap.
    pub fn new(contract: Arc<Contract>) -> Self {
        Self {
            contract,
            mode: Mode::Enforce,
            operation_modes: HashMap::new(),
            strict: true,
            detail: Detail::Minimal,
            security: true,
            max_body_bytes: 1 << 20,
            responses: ResponsePolicy::default(),
            json_limits: crate::json::JsonLimits::default(),
            ssrf: Some(crate::ssrf::SsrfPolicy::default()),
            ssrf_resolve: true,
            files: Vec::new(),
        }
    }

    fn mode_for(&self, op: &Operation) -> Mode {
        self.operation_modes.get(&**op.id()).copied().or(op.mode()).unwrap_or(self.mode)
    }
}

/// The contract stage, holding every route's contract by route name.
#[derive(Debug, Default)]
pub struct ContractStage {
    routes: HashMap<Arc<str>, Arc<RouteContract>>,
}

/// Kept from `on_request` for the body phase.
#[derive(Clone)]
struct PendingBody {
    route: Arc<RouteContract>,
    op: usize,
    choice: BodyChoice,
    content_type: String,
    mode: Mode,
}

/// Kept from `on_request` for the response phases.
#[derive(Clone)]
struct PendingResponse {
    route: Arc<RouteContract>,
    op: usize,
    mode: Mode,
    status: u16,
    content_type: Option<String>,
}

impl ContractStage {
    /// A stage for these routes; other routes are not checked.
    pub fn new(routes: impl IntoIterator<Item = (Arc<str>, Arc<RouteContract>)>) -> Self {
        Self { routes: routes.into_iter().collect() }
    }

    /// Whether no route has a contract.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

fn has_body(req: &http::request::Parts) -> bool {
    match content_length(&req.headers) {
        Some(n) => n > 0,
        None => req.headers.contains_key(header::TRANSFER_ENCODING) || req.version >= http::Version::HTTP_2,
    }
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

fn content_type(headers: &http::HeaderMap) -> Option<String> {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// `pointer: reason; …`, bounded, for the log.
fn log_list(v: &[Violation]) -> String {
    let mut s = String::new();
    for (i, x) in v.iter().enumerate() {
        if s.len() > 4096 {
            let _ = write!(s, "; … {} more", v.len() - i);
            break;
        }
        if i > 0 {
            s.push_str("; ");
        }
        let _ = write!(s, "{x}");
    }
    s
}

fn count(ctx: &RequestCtx, direction: &'static str, mode: Mode) {
    let route = ctx.route.as_deref().unwrap_or("").to_owned();
    metrics::counter!("portcullis_contract_violations_total", "route" => route, "direction" => direction, "mode" => mode.as_str())
        .increment(1);
}

/// Logs and counts a request that breaks the contract; in enforce mode builds the refusal.
fn refuse(
    ctx: &mut RequestCtx,
    route: &RouteContract,
    operation: &str,
    mode: Mode,
    kind: ProblemKind,
    reason: &'static str,
    violations: &[Violation],
) -> Option<Flow> {
    count(ctx, "request", mode);
    let list = log_list(violations);
    if mode == Mode::Monitor {
        tracing::info!(request_id = %ctx.request_id, operation, reason, violations = %list, "contract violation (monitor mode)");
        return None;
    }
    tracing::warn!(request_id = %ctx.request_id, operation, reason, violations = %list, "contract refused a request");
    ctx.deny(STAGE_NAME, reason);
    Some(Flow::Respond(problem(kind, route.detail, violations).to_response(&ctx.request_id)))
}

fn problem(kind: ProblemKind, detail: Detail, violations: &[Violation]) -> Problem {
    let n = violations.len();
    let mut p = Problem::new(kind);
    if n > 0 {
        p = p.with_detail(format!("{n} violation{} of the API contract", if n == 1 { "" } else { "s" }));
    }
    if detail == Detail::Full && n > 0 {
        let list: Vec<serde_json::Value> =
            violations.iter().map(|v| serde_json::json!({ "pointer": v.pointer, "reason": v.reason })).collect();
        p = p.with_member("violations", serde_json::Value::Array(list));
    }
    p
}

/// Why the caller does not satisfy the operation's security.
enum SecurityRefusal {
    Unauthenticated,
    Insufficient,
}

fn check_security(op: &Operation, principal: Option<&Principal>) -> Result<(), SecurityRefusal> {
    let extra = op.extra_scopes();
    let Some(alts) = op.security() else {
        if extra.is_empty() {
            return Ok(());
        }
        let p = principal.ok_or(SecurityRefusal::Unauthenticated)?;
        return if p.has_scopes(extra) { Ok(()) } else { Err(SecurityRefusal::Insufficient) };
    };
    let p = principal.ok_or(SecurityRefusal::Unauthenticated)?;
    if !p.has_scopes(extra) {
        return Err(SecurityRefusal::Insufficient);
    }
    let mut method_ok = false;
    for alt in alts {
        if !alt.schemes.iter().any(|(_, k, _)| k.accepts(p.method)) {
            continue;
        }
        method_ok = true;
        let granted = alt.schemes.iter().all(|(_, k, needs)| match k {
            crate::SchemeKind::OAuth => p.has_scopes(needs),
            // OpenAPI 3.1: for other schemes the strings are roles, all required.
            _ => needs.iter().all(|r| p.roles.iter().any(|x| **x == **r)),
        });
        if granted {
            return Ok(());
        }
    }
    Err(if method_ok { SecurityRefusal::Insufficient } else { SecurityRefusal::Unauthenticated })
}

/// The operation's narrowly typed head fields (`path:`, `query:`, `header:`, `cookie:`) that
/// `check_head` really read. A header or cookie value that is not visible ASCII is skipped by the
/// check (`to_str` fails), so such a header name, or every cookie when a `Cookie` header is not
/// ASCII, is left out: the inspection stage still scans it.
fn validated_head_fields(op: &Operation, headers: &http::HeaderMap) -> Vec<String> {
    let cookies_readable = headers.get_all(header::COOKIE).iter().all(|v| v.to_str().is_ok());
    op.constrained_fields()
        .iter()
        .filter(|f| {
            if let Some(name) = f.strip_prefix("header:") {
                headers.get_all(name).iter().all(|v| v.to_str().is_ok())
            } else if f.starts_with("cookie:") {
                cookies_readable
            } else {
                f.starts_with("path:") || f.starts_with("query:")
            }
        })
        .cloned()
        .collect()
}

impl Stage for ContractStage {
    fn name(&self) -> &'static str {
        STAGE_NAME
    }

    async fn on_request(&self, req: &mut http::request::Parts, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
        let Some(route) = ctx.route.as_ref().and_then(|r| self.routes.get(r)).cloned() else {
            return Ok(Flow::Continue);
        };
        let (op, path_params) = match route.contract.find(&ctx.method, &ctx.path) {
            Lookup::Found(op, params) => (op, params),
            Lookup::NotFound => {
                let v = [Violation::new("/path", "no operation of the contract has this path")];
                return Ok(refuse(ctx, &route, "", route.mode, ProblemKind::RouteNotFound, "undeclared-path", &v)
                    .unwrap_or(Flow::Continue));
            }
            Lookup::MethodNotAllowed(allowed) => {
                let v = [Violation::new("/method", "the contract does not declare this method on this path")];
                let Some(Flow::Respond(mut resp)) =
                    refuse(ctx, &route, "", route.mode, ProblemKind::MethodNotAllowed, "undeclared-method", &v)
                else {
                    return Ok(Flow::Continue);
                };
                let allow = allowed.iter().map(http::Method::as_str).collect::<Vec<_>>().join(", ");
                if let Ok(v) = HeaderValue::from_str(&allow) {
                    resp.headers_mut().insert(header::ALLOW, v);
                }
                return Ok(Flow::Respond(resp));
            }
            #[allow(unreachable_patterns)]
            _ => return Ok(Flow::Continue),
        };
        let mode = route.mode_for(op);
        let id = op.id().clone();

        if route.security {
            match check_security(op, ctx.principal.as_deref()) {
                Ok(()) => {}
                Err(SecurityRefusal::Unauthenticated) => {
                    let v = [Violation::new("/security", "the operation requires a credential of a declared scheme")];
                    if let Some(mut f) =
                        refuse(ctx, &route, &id, mode, ProblemKind::Unauthorized, "security-unauthenticated", &v)
                    {
                        if let Flow::Respond(r) = &mut f {
                            r.headers_mut().insert(
                                header::WWW_AUTHENTICATE,
                                HeaderValue::from_static("Bearer realm=\"portcullis\""),
                            );
                        }
                        return Ok(f);
                    }
                }
                Err(SecurityRefusal::Insufficient) => {
                    let v =
                        [Violation::new("/security", "the credential lacks a scope or role the operation requires")];
                    if let Some(f) =
                        refuse(ctx, &route, &id, mode, ProblemKind::InsufficientScope, "security-scope", &v)
                    {
                        return Ok(f);
                    }
                }
            }
        }

        let head = RequestHead::new(ctx.query.as_deref(), &req.headers, &path_params);
        let (mut violations, params) = op.check_head_value(&head, route.strict);
        if let (Some(policy), Some(params)) = (&route.ssrf, params)
            && violations.is_empty()
        {
            violations = ssrf_violations(op.uri_params(), &params, "", policy, route.ssrf_resolve).await;
        }
        let ct = content_type(&req.headers);
        let mut body_choice = None;
        let mut media_only = false;
        if has_body(req) {
            match op.body_media(ct.as_deref()) {
                Ok(c) => body_choice = Some(c),
                Err(v) => {
                    media_only = violations.is_empty() && op.declares_body();
                    violations.push(v);
                }
            }
        } else if op.body_required() {
            violations.push(Violation::new("/body", "a request body is required"));
        }
        if !violations.is_empty() {
            let (kind, reason) = if media_only {
                (ProblemKind::UnsupportedMediaType, "unsupported-media-type")
            } else {
                (ProblemKind::ContractViolation, "contract-violation")
            };
            if let Some(f) = refuse(ctx, &route, &id, mode, kind, reason, &violations) {
                return Ok(f);
            }
        }
        // The head passed (or this is monitor mode, where nothing was refused): in enforce mode,
        // tell the inspection stage which head fields were proved to hold no free text.
        if mode == Mode::Enforce {
            ctx.extensions.insert(ContractValidated::new(validated_head_fields(op, &req.headers)));
        }
        if let Some(choice) = body_choice {
            if content_length(&req.headers).is_some_and(|n| n > route.max_body_bytes as u64) {
                let v = [Violation::new("/body", "the body is larger than this route validates")];
                if let Some(f) =
                    refuse(ctx, &route, &id, mode, ProblemKind::PayloadTooLarge, "body-over-contract-cap", &v)
                {
                    return Ok(f);
                }
            } else {
                // A chunked body over the cap is refused (413) by the proxy while buffering.
                ctx.require_request_body(route.max_body_bytes);
                ctx.extensions.insert(PendingBody {
                    route: route.clone(),
                    op: op.index(),
                    choice,
                    content_type: ct.unwrap_or_default(),
                    mode,
                });
            }
        }
        if route.responses.validate {
            // A compressed body cannot be validated.
            req.headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
            let op = op.index();
            ctx.extensions.insert(PendingResponse { route: route.clone(), op, mode, status: 0, content_type: None });
        }
        Ok(Flow::Continue)
    }

    async fn on_request_body(&self, body: &mut Bytes, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
        let Some(p) = ctx.extensions.remove::<PendingBody>() else { return Ok(Flow::Continue) };
        let Some(op) = p.route.contract.operations().get(p.op) else { return Ok(Flow::Continue) };
        let mut violations = if body.is_empty() {
            if op.body_required() { vec![Violation::new("/body", "a request body is required")] } else { Vec::new() }
        } else {
            let (v, value) = op.check_body_value(p.choice, &p.content_type, body, &p.route.json_limits);
            match (&p.route.ssrf, value) {
                (Some(policy), Some(value)) if v.is_empty() && !op.uri_fields().is_empty() => {
                    ssrf_violations(op.uri_fields(), &value, "/body", policy, p.route.ssrf_resolve).await
                }
                _ => v,
            }
        };
        violations.truncate(crate::contract::MAX_VIOLATIONS);
        if violations.is_empty() {
            // A JSON body that validated in enforce mode: its narrowly typed fields hold no free text.
            if p.mode == Mode::Enforce && !body.is_empty() && op.body_is_json(p.choice) {
                let body_fields = op.constrained_fields().iter().filter(|f| f.starts_with("body:")).cloned();
                match ctx.extensions.get_mut::<ContractValidated>() {
                    Some(v) => v.extend(body_fields),
                    None => {
                        ctx.extensions.insert(ContractValidated::new(body_fields));
                    }
                }
            }
            return Ok(Flow::Continue);
        }
        let id = op.id().clone();
        Ok(refuse(ctx, &p.route, &id, p.mode, ProblemKind::ContractViolation, "contract-violation", &violations)
            .unwrap_or(Flow::Continue))
    }

    async fn on_response(&self, resp: &mut http::response::Parts, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
        let Some(mut p) = ctx.extensions.remove::<PendingResponse>() else { return Ok(Flow::Continue) };
        let route = ctx.route.as_deref().unwrap_or("").to_owned();
        let encoded =
            resp.headers.get(header::CONTENT_ENCODING).is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        let over = content_length(&resp.headers).is_some_and(|n| n > p.route.responses.max_body_bytes as u64);
        if encoded || (over && p.route.responses.over_cap == OverCap::Pass) {
            let reason = if encoded { "compressed" } else { "over-cap" };
            metrics::counter!("portcullis_contract_unvalidated_total", "route" => route, "reason" => reason)
                .increment(1);
            if encoded && p.mode == Mode::Enforce {
                return Ok(Flow::Respond(bad_response(ctx, "response-unvalidatable")));
            }
            return Ok(Flow::Continue);
        }
        if over && p.mode == Mode::Monitor {
            metrics::counter!("portcullis_contract_unvalidated_total", "route" => route, "reason" => "over-cap")
                .increment(1);
            return Ok(Flow::Continue);
        }
        // With no length, a body over the cap is learnt while buffering: in enforce mode with
        // `reject` the proxy answers 502 (fail closed); otherwise it is served unvalidated and
        // counted in `on_complete`.
        p.status = resp.status.as_u16();
        p.content_type = content_type(&resp.headers);
        if p.route.responses.over_cap == OverCap::Pass || p.mode == Mode::Monitor {
            ctx.prefer_response_body(p.route.responses.max_body_bytes);
        } else {
            ctx.require_response_body(p.route.responses.max_body_bytes);
        }
        if p.mode == Mode::Enforce {
            // The body may be rewritten.
            resp.headers.remove(header::ETAG);
            resp.headers.remove("content-md5");
        }
        ctx.extensions.insert(p);
        Ok(Flow::Continue)
    }

    async fn on_response_body(&self, body: &mut Bytes, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
        let Some(p) = ctx.extensions.remove::<PendingResponse>() else { return Ok(Flow::Continue) };
        let Some(op) = p.route.contract.operations().get(p.op) else { return Ok(Flow::Continue) };
        let enforce = p.mode == Mode::Enforce;
        let check = op.check_response(p.status, p.content_type.as_deref(), body, enforce);
        let route = ctx.route.as_deref().unwrap_or("").to_owned();
        if !check.removed.is_empty() {
            metrics::counter!("portcullis_contract_properties_removed_total", "route" => route.clone())
                .increment(check.removed.len() as u64);
            tracing::info!(
                request_id = %ctx.request_id,
                operation = %op.id(),
                removed = %check.removed.join(", "),
                "contract removed undeclared response properties"
            );
        }
        if !check.violations.is_empty() {
            count(ctx, "response", p.mode);
            let list = log_list(&check.violations);
            if enforce {
                tracing::warn!(request_id = %ctx.request_id, operation = %op.id(), status = p.status, violations = %list, "contract refused a response");
                return Ok(Flow::Respond(bad_response(ctx, "response-contract-violation")));
            }
            tracing::info!(request_id = %ctx.request_id, operation = %op.id(), status = p.status, violations = %list, "response contract violation (monitor mode)");
        }
        if let Some(b) = check.rewritten {
            *body = Bytes::from(b);
        }
        Ok(Flow::Continue)
    }

    fn on_complete(&self, ctx: &RequestCtx, _outcome: &portcullis_core::Outcome) {
        // A response with no length that turned out longer than the cap, served unvalidated.
        if ctx.response_body_unseen && ctx.extensions.get::<PendingResponse>().is_some() {
            let route = ctx.route.as_deref().unwrap_or("").to_owned();
            metrics::counter!("portcullis_contract_unvalidated_total", "route" => route, "reason" => "over-cap")
                .increment(1);
            tracing::info!(request_id = %ctx.request_id, "response over the contract's cap served unvalidated");
        }
    }
}

/// Most URLs checked in one body.
const MAX_URLS: usize = 16;

/// The string values at a pointer pattern (`*` matches any array index or member).
fn values_at<'v>(v: &'v serde_json::Value, tokens: &[&str], at: String, out: &mut Vec<(String, &'v str)>) {
    if out.len() >= MAX_URLS {
        return;
    }
    let Some((first, rest)) = tokens.split_first() else {
        if let Some(s) = v.as_str() {
            out.push((at, s));
        }
        return;
    };
    match (v, *first) {
        (serde_json::Value::Array(a), "*") => {
            for (i, x) in a.iter().enumerate() {
                values_at(x, rest, format!("{at}/{i}"), out);
            }
        }
        (serde_json::Value::Object(m), tok) => {
            let key = tok.replace("~1", "/").replace("~0", "~");
            if let Some(x) = m.get(&key) {
                values_at(x, rest, format!("{at}/{tok}"), out);
            }
        }
        _ => {}
    }
}

/// Runs the SSRF guard over the URL fields of a body or of the typed parameters (`at`: the
/// prefix of the violations' pointers). Reasons name the refused class, never the URL.
async fn ssrf_violations(
    fields: &[String],
    value: &serde_json::Value,
    at: &str,
    policy: &crate::ssrf::SsrfPolicy,
    resolve: bool,
) -> Vec<Violation> {
    use crate::ssrf::SsrfError as E;
    let mut urls = Vec::new();
    for f in fields {
        let tokens: Vec<&str> = f.split('/').skip(1).collect();
        values_at(value, &tokens, at.to_owned(), &mut urls);
    }
    let mut out = Vec::new();
    for (at, url) in urls {
        let result = if resolve {
            crate::ssrf::check(url, policy).await
        } else {
            crate::ssrf::check_syntax(url, policy).map(|_| ())
        };
        if let Err(e) = result {
            let reason = match e {
                E::DeniedAddress { range, .. } => format!("URL refused (SSRF guard): address is {range}"),
                E::DeniedHost { .. } => "URL refused (SSRF guard): host name refused".to_owned(),
                E::Scheme { .. } => "URL refused (SSRF guard): scheme not allowed".to_owned(),
                E::Userinfo => "URL refused (SSRF guard): carries userinfo".to_owned(),
                E::Resolve { .. } => "URL refused (SSRF guard): host could not be resolved".to_owned(),
                E::NonCanonicalIp | E::Ambiguous => "URL refused (SSRF guard): ambiguous syntax".to_owned(),
                _ => "URL refused (SSRF guard)".to_owned(),
            };
            out.push(Violation::new(at, reason));
        }
    }
    out
}

fn bad_response(ctx: &mut RequestCtx, reason: &'static str) -> http::Response<Bytes> {
    ctx.deny(STAGE_NAME, reason);
    Problem::new(ProblemKind::BadGateway)
        .with_detail("The upstream's response does not match the API contract.")
        .to_response(&ctx.request_id)
}
