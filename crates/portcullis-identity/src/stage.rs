//! The authentication and authorization stages.
//!
//! [`AuthnStage`] finds the credential a route accepts, verifies it and records the caller as an
//! [`Authenticated`] value, which only this crate can build. [`AuthzStage`] takes that proof and
//! checks scopes, roles and object ownership, then strips the caller's raw credential and adds
//! the identity headers the gateway signs, so the upstream never sees a credential it could leak
//! and can trust who the caller is.
//!
//! Every authentication failure looks the same to the caller (401, one problem type, one detail),
//! whether the credential is unknown, wrong, revoked or expired, so responses cannot be used to
//! enumerate keys or users.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, header};
use portcullis_config::{AuthMethod, OwnerSource, OwnerValue, PathPattern, RouteAuth};
use portcullis_core::{AuthMethodUsed, Flow, Principal, Problem, ProblemKind, RequestCtx, Stage, StageError};

use crate::service::{IdentityService, Refusal, Resolved, check_usable, unix_now};

/// Identity headers the gateway sets upstream. Any client-sent header with this prefix is removed
/// before the pipeline runs.
pub const IDENTITY_HEADER_PREFIX: &str = "x-portcullis-";

/// Proof that a request was authenticated. Only [`AuthnStage`] can build one.
#[derive(Debug, Clone)]
pub struct Authenticated {
    principal: Arc<Principal>,
    claims: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
}

impl Authenticated {
    pub(crate) fn new(principal: Principal, claims: Option<Arc<serde_json::Map<String, serde_json::Value>>>) -> Self {
        Self { principal: Arc::new(principal), claims }
    }

    /// Who the caller is.
    pub fn principal(&self) -> &Arc<Principal> {
        &self.principal
    }

    /// The token's claims, for JWT and introspection callers.
    pub fn claims(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.claims.as_deref()
    }
}

/// One route's identity policy, compiled.
#[derive(Debug, Clone)]
pub struct RoutePolicy {
    /// The auth block.
    pub auth: RouteAuth,
    /// The route's path pattern (for `{param}` ownership rules).
    pub path: PathPattern,
}

/// Route policies by route name, for one configuration generation.
pub type RoutePolicies = Arc<HashMap<Arc<str>, RoutePolicy>>;

/// Builds the route policy table from a configuration.
pub fn route_policies(config: &portcullis_config::Config) -> RoutePolicies {
    Arc::new(
        config
            .routes
            .iter()
            .map(|r| (r.name.clone(), RoutePolicy { auth: r.auth.clone(), path: r.path.clone() }))
            .collect(),
    )
}

fn unauthorized(ctx: &mut RequestCtx, reason: &'static str, methods: &[AuthMethod]) -> Flow {
    ctx.deny("authn", reason);
    metrics::counter!("portcullis_auth_failures_total", "reason" => reason).increment(1);
    let mut p = Problem::new(ProblemKind::Unauthorized).with_detail("A valid credential is required.");
    let challenge = if methods.contains(&AuthMethod::Basic) {
        "Basic realm=\"portcullis\", charset=\"UTF-8\""
    } else {
        "Bearer realm=\"portcullis\""
    };
    p = p.with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    Flow::Respond(p.to_response(&ctx.request_id))
}

fn problem(ctx: &mut RequestCtx, stage: &'static str, reason: &'static str, kind: ProblemKind) -> Flow {
    ctx.deny(stage, reason);
    Flow::Respond(Problem::new(kind).to_response(&ctx.request_id))
}

/// The credential a request presents for one of the route's methods.
enum Presented {
    ApiKey(String),
    /// A bearer token for `jwt` or `introspection`.
    Token(String),
}

/// Marks a request let through unauthenticated because the identity provider is down and the
/// route says `on_idp_outage: open`.
#[derive(Debug, Clone, Copy)]
struct OutageBypass;

/// Finds the credential, looking only where the route's methods allow.
fn presented(req: &http::request::Parts, policy: &RouteAuth, svc: &IdentityService) -> Option<Presented> {
    if policy.methods.contains(&AuthMethod::ApiKey) {
        let header_name = &svc.config().api_key_header;
        if let Some(v) = req.headers.get(header_name).and_then(|v| v.to_str().ok()) {
            return Some(Presented::ApiKey(v.trim().to_owned()));
        }
        if let Some(token) = bearer(req)
            && token.starts_with("pc_")
        {
            return Some(Presented::ApiKey(token.to_owned()));
        }
        if let Some(param) = &policy.api_key_query_param
            && let Some(v) = query_param(req.uri.query(), param)
        {
            return Some(Presented::ApiKey(v));
        }
    }
    let tokens = policy.methods.iter().any(|m| matches!(m, AuthMethod::Jwt { .. } | AuthMethod::Introspection { .. }));
    if tokens && let Some(token) = bearer(req) {
        return Some(Presented::Token(token.to_owned()));
    }
    None
}

/// The unverified `iss` of a JWT, only to pick which issuer's verifier to run (the verifier then
/// checks `iss` itself).
fn peek_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = crate::jwt::b64::decode(payload.as_bytes())?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss")?.as_str().map(str::to_owned)
}

fn principal_from_token(
    t: &crate::jwt::VerifiedToken,
    method: AuthMethodUsed,
    subject: Option<&str>,
    mapping: Option<&crate::service::SubjectMapping>,
) -> Principal {
    let mut p = Principal::new(method);
    p.subject = subject.map(Arc::from);
    p.scopes = t.scopes().iter().map(|s| Arc::from(s.as_str())).collect();
    if let Some(m) = mapping {
        p.org_id = Some(Arc::from(m.org.id.as_str()));
        p.org_name = Some(Arc::from(m.org.name.as_str()));
        p.consumer_id = Some(Arc::from(m.consumer.id.as_str()));
        p.consumer_name = Some(Arc::from(m.consumer.name.as_str()));
        p.roles = m.consumer.roles.iter().map(|s| Arc::from(s.as_str())).collect();
        p.plan = m.consumer.plan.as_deref().or(m.org.plan.as_deref()).map(Arc::from);
    }
    p
}

fn bearer(req: &http::request::Parts) -> Option<&str> {
    let v = req.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The first value of a query parameter, percent-decoded.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded_pairs(query?).find(|(k, _)| k == name).map(|(_, v)| v)
}

fn form_urlencoded_pairs(q: &str) -> impl Iterator<Item = (String, String)> + '_ {
    q.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
                    (Some(h), Some(l)) => {
                        out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes one query parameter from the request URI (an API key must not travel upstream).
fn strip_query_param(req: &mut http::request::Parts, ctx: &mut RequestCtx, name: &str) {
    let Some(q) = req.uri.query() else { return };
    let kept: Vec<&str> = q
        .split('&')
        .filter(|p| !p.is_empty() && percent_decode(p.split_once('=').map_or(*p, |x| x.0)) != name)
        .collect();
    let path = req.uri.path().to_owned();
    let pq = if kept.is_empty() { path } else { format!("{path}?{}", kept.join("&")) };
    if let Ok(pq) = http::uri::PathAndQuery::try_from(pq) {
        req.uri = http::Uri::from(pq);
        ctx.query = req.uri.query().map(str::to_owned);
    }
}

fn principal_for(r: &Resolved, method: AuthMethodUsed) -> Principal {
    let mut p = Principal::new(method);
    p.org_id = Some(Arc::from(r.org.id.as_str()));
    p.org_name = Some(Arc::from(r.org.name.as_str()));
    p.consumer_id = Some(Arc::from(r.consumer.id.as_str()));
    p.consumer_name = Some(Arc::from(r.consumer.name.as_str()));
    p.credential_id = Some(Arc::from(r.credential.id.as_str()));
    p.subject = r.consumer.external_subject.as_deref().map(Arc::from);
    p.scopes = r.credential.effective_scopes(&r.consumer).iter().map(|s| Arc::from(s.as_str())).collect();
    p.roles = r.consumer.roles.iter().map(|s| Arc::from(s.as_str())).collect();
    p.plan = r.consumer.plan.as_deref().or(r.org.plan.as_deref()).map(Arc::from);
    p
}

/// The authentication stage.
#[derive(Debug, Clone)]
pub struct AuthnStage {
    svc: IdentityService,
    routes: RoutePolicies,
}

impl AuthnStage {
    /// A stage for one configuration generation.
    pub fn new(svc: IdentityService, routes: RoutePolicies) -> Self {
        Self { svc, routes }
    }

    fn accept(&self, ctx: &mut RequestCtx, auth: Authenticated) {
        metrics::counter!("portcullis_auth_success_total", "method" => auth.principal.method.as_str()).increment(1);
        ctx.principal = Some(auth.principal.clone());
        ctx.extensions.insert(auth);
    }
}

impl Stage for AuthnStage {
    fn name(&self) -> &'static str {
        "authn"
    }

    async fn on_request(&self, req: &mut http::request::Parts, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
        let Some(route) = ctx.route.clone() else { return Ok(Flow::Continue) };
        let now = unix_now();
        if self.svc.suspensions().route(&route, now).is_some() {
            return Ok(problem(ctx, "authn", "route-suspended", ProblemKind::RouteSuspended));
        }
        let Some(policy) = self.routes.get(&route) else {
            // A route this generation does not know cannot be authorized: fail closed.
            return Ok(problem(ctx, "authn", "no-policy", ProblemKind::Forbidden));
        };
        if policy.auth.public {
            return Ok(Flow::Continue);
        }
        let Some(cred) = presented(req, &policy.auth, &self.svc) else {
            return Ok(unauthorized(ctx, "credential-missing", &policy.auth.methods));
        };
        match cred {
            Presented::ApiKey(key) => {
                let resolved = self.svc.resolve_api_key(&key).await.map_err(|e| StageError::new("authn", e))?;
                let Some(r) = resolved else {
                    return Ok(unauthorized(ctx, "credential-invalid", &policy.auth.methods));
                };
                match check_usable(&r, &self.svc.suspensions(), now) {
                    Ok(()) => {}
                    Err(Refusal::Unusable) => return Ok(unauthorized(ctx, "credential-invalid", &policy.auth.methods)),
                    Err(_) => return Ok(problem(ctx, "authn", "suspended", ProblemKind::Suspended)),
                }
                self.accept(ctx, Authenticated::new(principal_for(&r, AuthMethodUsed::ApiKey), None));
                // The raw key never travels upstream.
                req.headers.remove(&self.svc.config().api_key_header);
                req.headers.remove(header::AUTHORIZATION);
                if let Some(param) = &policy.auth.api_key_query_param {
                    strip_query_param(req, ctx, param);
                }
            }
            Presented::Token(token) => return self.token(req, ctx, policy, &token, now).await,
        }
        Ok(Flow::Continue)
    }
}

impl AuthnStage {
    /// Verifies a bearer token: as a JWT of one of the route's issuers (picked by its `iss`), else
    /// by introspection when the route allows it.
    async fn token(
        &self,
        req: &mut http::request::Parts,
        ctx: &mut RequestCtx,
        policy: &RoutePolicy,
        token: &str,
        now: i64,
    ) -> Result<Flow, StageError> {
        let methods = &policy.auth.methods;
        let wall = std::time::SystemTime::now();
        let mut outage = false;
        let mut verified = None;
        if token.bytes().filter(|&b| b == b'.').count() == 2
            && let Some(AuthMethod::Jwt { issuers }) = methods.iter().find(|m| matches!(m, AuthMethod::Jwt { .. }))
            && let Some(iss) = peek_issuer(token)
        {
            let chosen = issuers.iter().find_map(|n| self.svc.issuer(n).filter(|v| v.issuer() == iss).map(|v| (n, v)));
            if let Some((name, v)) = chosen {
                match v.verify(token, wall).await {
                    Ok(t) => verified = Some((t, AuthMethodUsed::Jwt, name.clone())),
                    Err(e) if e.is_unavailable() => outage = true,
                    Err(e) => tracing::debug!(issuer = %name, error = %e, "JWT refused"),
                }
            }
        }
        if verified.is_none()
            && let Some(AuthMethod::Introspection { endpoint }) =
                methods.iter().find(|m| matches!(m, AuthMethod::Introspection { .. }))
            && let Some(i) = self.svc.introspector(endpoint)
        {
            match i.introspect(token, wall).await {
                Ok(t) => verified = Some((t, AuthMethodUsed::Introspection, endpoint.clone())),
                Err(e) if e.is_unavailable() => outage = true,
                Err(e) => tracing::debug!(endpoint = %endpoint, error = %e, "token refused by introspection"),
            }
        }
        let Some((t, method, source)) = verified else {
            if outage {
                metrics::counter!("portcullis_auth_idp_unavailable_total").increment(1);
                let a = &policy.auth;
                let bypass = a.on_idp_outage == portcullis_config::IdpOutage::Open
                    && a.scopes.is_empty()
                    && a.roles.is_empty()
                    && a.owner.is_empty();
                if bypass {
                    ctx.extensions.insert(OutageBypass);
                    return Ok(Flow::Continue);
                }
                return Ok(problem(ctx, "authn", "idp-unavailable", ProblemKind::IdpUnavailable));
            }
            return Ok(unauthorized(ctx, "credential-invalid", methods));
        };
        let subject_claim = match method {
            AuthMethodUsed::Jwt => self.svc.config().issuers.get(&source).map_or("sub", |i| i.subject_claim.as_str()),
            _ => "sub",
        };
        let subject = t.claims().get(subject_claim).and_then(|v| v.as_str()).map(str::to_owned);
        let mapping = match &subject {
            Some(sub) => self.svc.resolve_subject(sub).await.map_err(|e| StageError::new("authn", e))?,
            None => None,
        };
        if let Some(m) = &mapping {
            let active = m.consumer.status == portcullis_store::Status::Active
                && m.org.status == portcullis_store::Status::Active;
            if !active || self.svc.suspensions().blocking_consumer(&m.consumer, now).is_some() {
                return Ok(problem(ctx, "authn", "suspended", ProblemKind::Suspended));
            }
        }
        let principal = principal_from_token(&t, method, subject.as_deref(), mapping.as_deref());
        let claims = Arc::new(t.claims().clone());
        self.accept(ctx, Authenticated::new(principal, Some(claims)));
        req.headers.remove(header::AUTHORIZATION);
        Ok(Flow::Continue)
    }
}

/// The authorization stage: scopes, roles, object ownership, then identity headers.
#[derive(Debug, Clone)]
pub struct AuthzStage {
    routes: RoutePolicies,
    signer: Option<ring::hmac::Key>,
}

impl AuthzStage {
    /// A stage for one configuration generation.
    pub fn new(svc: &IdentityService, routes: RoutePolicies) -> Self {
        let signer = svc
            .config()
            .upstream_signing_secret
            .as_ref()
            .map(|s| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, s.expose().as_bytes()));
        Self { routes, signer }
    }
}

/// What the caller is, as the value an ownership rule compares against.
fn owner_value<'a>(auth: &'a Authenticated, v: &OwnerValue) -> Option<std::borrow::Cow<'a, str>> {
    let p = &auth.principal;
    let s: Option<&'a str> = match v {
        OwnerValue::OrgId => p.org_id.as_deref(),
        OwnerValue::OrgName => p.org_name.as_deref(),
        OwnerValue::ConsumerId => p.consumer_id.as_deref(),
        OwnerValue::ConsumerName => p.consumer_name.as_deref(),
        OwnerValue::Subject => p.subject.as_deref(),
        OwnerValue::Claim(name) => {
            return auth.claims().and_then(|c| c.get(name)).and_then(json_scalar);
        }
        _ => None,
    };
    s.map(std::borrow::Cow::Borrowed)
}

fn json_scalar(v: &serde_json::Value) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        serde_json::Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
        serde_json::Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        _ => None,
    }
}

fn insufficient_scope(ctx: &mut RequestCtx, auth: &RouteAuth) -> Flow {
    ctx.deny("authz", "insufficient-scope");
    let mut p = Problem::new(ProblemKind::InsufficientScope);
    let challenge =
        format!("Bearer realm=\"portcullis\", error=\"insufficient_scope\", scope=\"{}\"", auth.scopes.join(" "));
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        p = p.with_header(header::WWW_AUTHENTICATE, v);
    }
    Flow::Respond(p.to_response(&ctx.request_id))
}

impl AuthzStage {
    fn identity_headers(&self, req: &mut http::request::Parts, ctx: &RequestCtx, p: &Principal) {
        let h = &mut req.headers;
        let scopes = p.scopes.iter().map(|s| &**s).collect::<Vec<_>>().join(" ");
        let fields: [(&str, &str); 6] = [
            ("x-portcullis-auth-method", p.method.as_str()),
            ("x-portcullis-org", p.org_name.as_deref().unwrap_or("")),
            ("x-portcullis-consumer", p.consumer_name.as_deref().unwrap_or("")),
            ("x-portcullis-consumer-id", p.consumer_id.as_deref().unwrap_or("")),
            ("x-portcullis-subject", p.subject.as_deref().unwrap_or("")),
            ("x-portcullis-scopes", &scopes),
        ];
        let ts = unix_now().to_string();
        let mut signed = format!("v1\n{}\n{}\n{}\n{}", ctx.request_id, ts, ctx.method, req.uri.path());
        for (name, value) in fields {
            signed.push('\n');
            signed.push_str(value);
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(HeaderName::from_static(name), v);
            }
        }
        if let Some(key) = &self.signer {
            let tag = ring::hmac::sign(key, signed.as_bytes());
            let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            if let Ok(v) = HeaderValue::from_str(&format!("v1={hex}")) {
                h.insert(HeaderName::from_static("x-portcullis-identity-signature"), v);
            }
            if let Ok(v) = HeaderValue::from_str(&ts) {
                h.insert(HeaderName::from_static("x-portcullis-identity-ts"), v);
            }
        }
    }
}

/// The string every upstream verifies the identity signature over (documented for upstream
/// authors): `v1`, request id, timestamp, method, path, then the six identity header values in
/// the order auth-method, org, consumer, consumer-id, subject, scopes, joined by `\n`.
pub fn identity_signature_input(request_id: &str, ts: &str, method: &str, path: &str, values: [&str; 6]) -> String {
    let mut s = format!("v1\n{request_id}\n{ts}\n{method}\n{path}");
    for v in values {
        s.push('\n');
        s.push_str(v);
    }
    s
}

impl Stage for AuthzStage {
    fn name(&self) -> &'static str {
        "authz"
    }

    async fn on_request(&self, req: &mut http::request::Parts, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
        let Some(route) = ctx.route.clone() else { return Ok(Flow::Continue) };
        let Some(policy) = self.routes.get(&route) else {
            return Ok(problem(ctx, "authz", "no-policy", ProblemKind::Forbidden));
        };
        if policy.auth.public {
            return Ok(Flow::Continue);
        }
        if ctx.extensions.get::<OutageBypass>().is_some() {
            return Ok(Flow::Continue);
        }
        let Some(auth) = ctx.extensions.get::<Authenticated>().cloned() else {
            // Authentication did not run or did not finish: never authorize without its proof.
            return Ok(problem(ctx, "authz", "not-authenticated", ProblemKind::Unauthorized));
        };
        if !auth.principal.has_scopes(&policy.auth.scopes) || !auth.principal.has_any_role(&policy.auth.roles) {
            return Ok(insufficient_scope(ctx, &policy.auth));
        }
        for rule in &policy.auth.owner {
            let requested = match &rule.source {
                OwnerSource::PathParam(name) => policy.path.param(&ctx.path, name).map(percent_decode),
                OwnerSource::Query(name) => match query_param(req.uri.query(), name) {
                    Some(v) => Some(v),
                    // No such parameter: nothing to check (the upstream sees no object id).
                    None => continue,
                },
                OwnerSource::Body(_) => {
                    ctx.require_request_body(usize::try_from(policy_body_cap()).unwrap_or(usize::MAX));
                    continue;
                }
                _ => None,
            };
            let owner = owner_value(&auth, &rule.equals);
            match (requested, owner) {
                (Some(r), Some(o)) if r == *o => {}
                _ => return Ok(problem(ctx, "authz", "not-owner", ProblemKind::NotOwner)),
            }
        }
        self.identity_headers(req, ctx, &auth.principal);
        Ok(Flow::Continue)
    }

    async fn on_request_body(&self, body: &mut Bytes, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
        let Some(route) = ctx.route.clone() else { return Ok(Flow::Continue) };
        let Some(policy) = self.routes.get(&route) else { return Ok(Flow::Continue) };
        let body_rules: Vec<_> =
            policy.auth.owner.iter().filter(|r| matches!(r.source, OwnerSource::Body(_))).collect();
        if policy.auth.public || body_rules.is_empty() {
            return Ok(Flow::Continue);
        }
        let Some(auth) = ctx.extensions.get::<Authenticated>().cloned() else {
            return Ok(problem(ctx, "authz", "not-authenticated", ProblemKind::Unauthorized));
        };
        let doc: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        for rule in body_rules {
            let OwnerSource::Body(pointer) = &rule.source else { continue };
            let requested = doc.as_ref().and_then(|d| d.pointer(pointer)).and_then(json_scalar);
            let owner = owner_value(&auth, &rule.equals);
            match (requested, owner) {
                (Some(r), Some(o)) if r == o => {}
                // A body the rule cannot read (not JSON, field missing) is refused: fail closed.
                _ => return Ok(problem(ctx, "authz", "not-owner", ProblemKind::NotOwner)),
            }
        }
        Ok(Flow::Continue)
    }
}

/// Bodies read for ownership rules are capped by the route's own body limit (applied by the
/// proxy); this is the stage's upper bound on top of it.
const fn policy_body_cap() -> u64 {
    1024 * 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_decoded_and_stripped() {
        assert_eq!(query_param(Some("a=1&api_key=pc%5Flive&b=2"), "api_key").as_deref(), Some("pc_live"));
        assert_eq!(query_param(Some("a=1"), "api_key"), None);
        assert_eq!(percent_decode("a+b%20c%zz%"), "a b c%zz%");
    }
}
