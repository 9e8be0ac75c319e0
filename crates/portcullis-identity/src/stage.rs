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

use portcullis_store::CredentialKind;

use crate::bruteforce::{FailureKey, Verdict};
use crate::service::{IdentityService, Refusal, Resolved, check_usable, unix_now};

/// HMAC-signed bodies are read whole to check the digest, up to this size (the route's own body
/// limit applies first).
const MAX_SIGNED_BODY: u64 = 1024 * 1024;

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

    /// For a principal built once and cached with its credential.
    pub(crate) fn shared(principal: Arc<Principal>) -> Self {
        Self { principal, claims: None }
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
    /// The matched OpenAPI operation's path template (for its `x-portcullis-owner` `path_param`
    /// rules); `None` on a route's own policy.
    pub operation_path: Option<PathPattern>,
    /// Per-operation policies (the route's auth plus an operation's `x-portcullis-owner`
    /// rules), by operation id.
    pub operations: HashMap<Arc<str>, RoutePolicy>,
}

impl RoutePolicy {
    /// The policy for this request: the matched operation's, if it has one, else the route's.
    fn for_request(&self, ctx: &RequestCtx) -> &RoutePolicy {
        if self.operations.is_empty() {
            return self;
        }
        portcullis_core::matched_operation(ctx).and_then(|id| self.operations.get(id)).unwrap_or(self)
    }
}

/// Route policies by route name, for one configuration generation.
pub type RoutePolicies = Arc<HashMap<Arc<str>, RoutePolicy>>;

/// Builds the route policy table from a configuration.
pub fn route_policies(config: &portcullis_config::Config) -> RoutePolicies {
    Arc::new(
        config
            .routes
            .iter()
            .map(|r| {
                let operations = r
                    .operations
                    .iter()
                    .filter_map(|(id, op)| {
                        let policy = RoutePolicy {
                            auth: op.auth.clone()?,
                            path: r.path.clone(),
                            operation_path: op.path.clone(),
                            operations: HashMap::new(),
                        };
                        Some((id.clone(), policy))
                    })
                    .collect();
                let policy =
                    RoutePolicy { auth: r.auth.clone(), path: r.path.clone(), operation_path: None, operations };
                (r.name.clone(), policy)
            })
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
    /// An HMAC-signed request.
    Hmac(crate::hmac_sig::SignatureParams),
    /// HTTP Basic.
    Basic(crate::basic::BasicCredentials),
    /// A verified client certificate.
    Cert(Arc<[u8]>),
    /// A credential for an accepted method that cannot even be parsed.
    Malformed,
}

/// An HMAC-signed request waiting for its body to be verified.
#[derive(Clone)]
struct PendingHmac {
    params: crate::hmac_sig::SignatureParams,
    secret: Arc<crate::hmac_sig::SigningSecret>,
    resolved: Arc<Resolved>,
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
}

/// A request to a login route (public, with `login_username`).
#[derive(Debug, Clone)]
struct LoginAttempt {
    username: Option<String>,
}

/// Login bodies are read up to this size to find the username.
const LOGIN_BODY_CAP: usize = 16 * 1024;
/// A failed login is answered no sooner than this after the request arrived, so "no such user"
/// and "wrong password" take the same time whatever the upstream does.
const LOGIN_FAILURE_FLOOR: std::time::Duration = std::time::Duration::from_millis(250);

/// Authorization waits for the body (HMAC requests, body ownership rules).
#[derive(Debug, Clone, Copy)]
struct AuthzDeferred {
    head_checked: bool,
}

/// Marks a request let through unauthenticated because the identity provider is down and the
/// route says `on_idp_outage: open`.
#[derive(Debug, Clone, Copy)]
struct OutageBypass;

/// Finds the credential, looking only where the route's methods allow.
fn presented(
    req: &http::request::Parts,
    ctx: &RequestCtx,
    policy: &RouteAuth,
    svc: &IdentityService,
) -> Option<Presented> {
    let authz = req.headers.get(header::AUTHORIZATION);
    let scheme = authz.and_then(|v| v.to_str().ok()).and_then(|v| v.split(' ').next()).unwrap_or("");
    if policy.methods.contains(&AuthMethod::Hmac) && scheme == "PC-HMAC-SHA256" {
        return Some(match authz.map(crate::hmac_sig::parse_authorization) {
            Some(Ok(p)) => Presented::Hmac(p),
            _ => Presented::Malformed,
        });
    }
    if policy.methods.contains(&AuthMethod::Basic) && scheme.eq_ignore_ascii_case("basic") {
        return Some(match authz.map(crate::basic::parse_basic) {
            Some(Ok(c)) => Presented::Basic(c),
            _ => Presented::Malformed,
        });
    }
    if policy.methods.contains(&AuthMethod::Mtls)
        && let Some(cert) = &ctx.client_cert
    {
        return Some(Presented::Cert(cert.clone()));
    }
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
    let mut p = match mapping {
        Some(m) => principal_for_consumer(method, &m.consumer, &m.org),
        None => Principal::new(method),
    };
    p.subject = subject.map(Arc::from);
    // A token's scopes are what the identity provider granted, not the consumer's.
    p.scopes = t.scopes().iter().map(|s| Arc::from(s.as_str())).collect();
    p
}

/// The ids, names, scopes, roles and plan of a consumer in its organization.
fn principal_for_consumer(
    method: AuthMethodUsed,
    consumer: &portcullis_store::Consumer,
    org: &portcullis_store::Organization,
) -> Principal {
    let mut p = Principal::new(method);
    p.org_id = Some(Arc::from(org.id.as_str()));
    p.org_name = Some(Arc::from(org.name.as_str()));
    p.consumer_id = Some(Arc::from(consumer.id.as_str()));
    p.consumer_name = Some(Arc::from(consumer.name.as_str()));
    p.subject = consumer.external_subject.as_deref().map(Arc::from);
    p.scopes = consumer.scopes.iter().map(|s| Arc::from(s.as_str())).collect();
    p.roles = consumer.roles.iter().map(|s| Arc::from(s.as_str())).collect();
    p.plan = consumer.plan.as_deref().or(org.plan.as_deref()).map(Arc::from);
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

/// The principal of a resolved credential, built on first use and kept with the cached rows.
fn cached_principal(r: &Resolved, method: AuthMethodUsed) -> Arc<Principal> {
    r.principal.get_or_init(|| Arc::new(principal_for(r, method))).clone()
}

fn principal_for(r: &Resolved, method: AuthMethodUsed) -> Principal {
    let mut p = principal_for_consumer(method, &r.consumer, &r.org);
    p.credential_id = Some(Arc::from(r.credential.id.as_str()));
    // A credential may narrow its consumer's scopes.
    p.scopes = r.credential.effective_scopes(&r.consumer).iter().map(|s| Arc::from(s.as_str())).collect();
    p
}

/// The authentication stage.
#[derive(Debug, Clone)]
pub struct AuthnStage {
    svc: IdentityService,
    routes: RoutePolicies,
    /// `portcullis_auth_success_total` per method, registered once (a registry lookup per request
    /// would cost more than the key check itself).
    success: Arc<[(AuthMethodUsed, metrics::Counter); 6]>,
}

impl AuthnStage {
    /// A stage for one configuration generation.
    pub fn new(svc: IdentityService, routes: RoutePolicies) -> Self {
        let c = |m: AuthMethodUsed| (m, metrics::counter!("portcullis_auth_success_total", "method" => m.as_str()));
        let success = Arc::new([
            c(AuthMethodUsed::ApiKey),
            c(AuthMethodUsed::Jwt),
            c(AuthMethodUsed::Introspection),
            c(AuthMethodUsed::Hmac),
            c(AuthMethodUsed::Mtls),
            c(AuthMethodUsed::Basic),
        ]);
        Self { svc, routes, success }
    }

    fn accept(&self, ctx: &mut RequestCtx, auth: Authenticated) {
        if let Some((_, counter)) = self.success.iter().find(|(m, _)| *m == auth.principal.method) {
            counter.increment(1);
        }
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
            if policy.auth.login_username.is_some() {
                // A login route: the upstream checks the password; the gateway counts failures
                // per client IP and per username and makes every failure look the same.
                let ip_key = FailureKey::client_ip(ctx.client_ip);
                if let Some(flow) = self.locked(ctx, std::slice::from_ref(&ip_key)) {
                    return Ok(flow);
                }
                ctx.require_request_body(LOGIN_BODY_CAP);
                ctx.extensions.insert(LoginAttempt { username: None });
            }
            return Ok(Flow::Continue);
        }
        let Some(cred) = presented(req, ctx, &policy.auth, &self.svc) else {
            return Ok(unauthorized(ctx, "credential-missing", &policy.auth.methods));
        };
        // Brute force: a locked client IP (or, below, credential) is refused before any check.
        let ip_key = FailureKey::client_ip(ctx.client_ip);
        if let Some(flow) = self.locked(ctx, std::slice::from_ref(&ip_key)) {
            return Ok(flow);
        }
        match cred {
            Presented::Malformed => return Ok(self.fail(ctx, &policy.auth, vec![ip_key], "credential-invalid").await),
            Presented::ApiKey(key) => {
                let prefix = FailureKey::credential_prefix(key.get(..16).unwrap_or(&key));
                let keys = vec![ip_key, prefix];
                if let Some(flow) = self.locked(ctx, &keys) {
                    return Ok(flow);
                }
                let resolved = self.svc.resolve_api_key(&key).await.map_err(|e| StageError::new("authn", e))?;
                let Some(r) = resolved else {
                    return Ok(self.fail(ctx, &policy.auth, keys, "credential-invalid").await);
                };
                match check_usable(&r, &self.svc.suspensions(), now) {
                    Ok(()) => {}
                    Err(Refusal::Unusable) => {
                        return Ok(self.fail(ctx, &policy.auth, keys, "credential-invalid").await);
                    }
                    Err(_) => return Ok(problem(ctx, "authn", "suspended", ProblemKind::Suspended)),
                }
                self.accept(ctx, Authenticated::shared(cached_principal(&r, AuthMethodUsed::ApiKey)));
                // The raw key never travels upstream.
                req.headers.remove(&self.svc.config().api_key_header);
                req.headers.remove(header::AUTHORIZATION);
                if let Some(param) = &policy.auth.api_key_query_param {
                    strip_query_param(req, ctx, param);
                }
            }
            Presented::Token(token) => return self.token(req, ctx, policy, &token, now).await,
            Presented::Hmac(params) => return self.hmac_head(req, ctx, policy, params, ip_key, now).await,
            Presented::Basic(creds) => return self.basic(req, ctx, policy, creds, ip_key, now).await,
            Presented::Cert(der) => return self.cert(ctx, policy, &der, ip_key, now).await,
        }
        Ok(Flow::Continue)
    }

    async fn on_response(&self, resp: &mut http::response::Parts, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
        let Some(attempt) = ctx.extensions.remove::<LoginAttempt>() else { return Ok(Flow::Continue) };
        let mut keys = vec![FailureKey::client_ip(ctx.client_ip)];
        if let Some(u) = &attempt.username {
            keys.push(FailureKey::username(u));
        }
        let status = resp.status.as_u16();
        if resp.status.is_success() {
            for k in &keys {
                self.svc.failures().record_success(k);
            }
            return Ok(Flow::Continue);
        }
        if !matches!(status, 401 | 403 | 404) {
            return Ok(Flow::Continue);
        }
        // A failed login: whatever the upstream said ("no such user", "wrong password"), the
        // caller sees one answer, no sooner than a fixed floor after the request arrived.
        let verdict = self.svc.failures().record_failure_all(&keys, now_ms());
        let floor = ctx.received_at + LOGIN_FAILURE_FLOOR;
        let delay = match verdict {
            Verdict::Delay(d) => d.min(MAX_FAILURE_DELAY),
            _ => std::time::Duration::ZERO,
        };
        tokio::time::sleep_until(tokio::time::Instant::from_std(floor.max(std::time::Instant::now() + delay))).await;
        let methods: &[AuthMethod] = &[];
        Ok(unauthorized(ctx, "login-failed", methods))
    }

    async fn on_request_body(&self, body: &mut Bytes, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
        if ctx.extensions.get::<LoginAttempt>().is_some() {
            return Ok(self.login_body(body, ctx));
        }
        let Some(pending) = ctx.extensions.remove::<PendingHmac>() else { return Ok(Flow::Continue) };
        let Some(route) = ctx.route.clone() else { return Ok(Flow::Continue) };
        let Some(policy) = self.routes.get(&route) else {
            return Ok(problem(ctx, "authn", "no-policy", ProblemKind::Forbidden));
        };
        let keys = vec![FailureKey::client_ip(ctx.client_ip), FailureKey::credential_prefix(&pending.params.key_id)];
        let parts =
            crate::hmac_sig::RequestParts { method: &pending.method, uri: &pending.uri, headers: &pending.headers };
        let digest = crate::hmac_sig::BodyDigest::of(body);
        let window = self.svc.config().hmac_window;
        let now = u64::try_from(unix_now()).unwrap_or(0);
        if crate::hmac_sig::verify(&pending.secret, &pending.params, parts, &digest, now, window).is_err() {
            return Ok(self.fail(ctx, &policy.auth, keys, "credential-invalid").await);
        }
        // Only a verified request may spend a nonce, so forgeries cannot fill the cache.
        let shared = self.svc.shared().clone();
        let (key_id, nonce) = (pending.params.key_id.clone(), pending.params.nonce.clone());
        let fresh = self
            .svc
            .io(async move { Ok(shared.check_and_insert_nonce(&key_id, &nonce, window * 2).await?) })
            .await
            .map_err(|e| StageError::new("authn", e))?;
        if !fresh {
            return Ok(self.fail(ctx, &policy.auth, keys, "replay").await);
        }
        self.svc.failures().record_success(&keys[1]);
        self.accept(ctx, Authenticated::shared(cached_principal(&pending.resolved, AuthMethodUsed::Hmac)));
        Ok(Flow::Continue)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Longest a failure answer is held back (progressive delay); past it the caller is locked out.
const MAX_FAILURE_DELAY: std::time::Duration = std::time::Duration::from_secs(2);

impl AuthnStage {
    /// Reads the username of a login attempt and refuses it if that username is locked out.
    fn login_body(&self, body: &[u8], ctx: &mut RequestCtx) -> Flow {
        let Some(route) = ctx.route.clone() else { return Flow::Continue };
        let Some(pointer) = self.routes.get(&route).and_then(|p| p.auth.login_username.clone()) else {
            return Flow::Continue;
        };
        let username = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|d| d.pointer(&pointer).and_then(|v| v.as_str()).map(str::to_owned))
            .filter(|u| !u.is_empty() && u.len() <= 256);
        if let Some(u) = &username {
            let keys = [FailureKey::client_ip(ctx.client_ip), FailureKey::username(u)];
            if let Some(flow) = self.locked(ctx, &keys) {
                ctx.extensions.remove::<LoginAttempt>();
                return flow;
            }
        }
        ctx.extensions.insert(LoginAttempt { username });
        Flow::Continue
    }

    /// A 429 if any of `keys` is locked out.
    fn locked(&self, ctx: &mut RequestCtx, keys: &[FailureKey]) -> Option<Flow> {
        match self.svc.failures().check_all(keys, now_ms()) {
            Verdict::Locked { until } => {
                ctx.deny("authn", "locked-out");
                metrics::counter!("portcullis_auth_lockouts_total").increment(1);
                let secs = until.saturating_sub(now_ms()).div_ceil(1000).max(1);
                let p =
                    Problem::new(ProblemKind::AuthLockedOut).with_header(header::RETRY_AFTER, HeaderValue::from(secs));
                Some(Flow::Respond(p.to_response(&ctx.request_id)))
            }
            _ => None,
        }
    }

    /// Records a failure for every key, holds the answer back as the counters say (bounded), and
    /// answers the one uniform 401.
    async fn fail(&self, ctx: &mut RequestCtx, auth: &RouteAuth, keys: Vec<FailureKey>, reason: &'static str) -> Flow {
        if let Verdict::Delay(d) = self.svc.failures().record_failure_all(&keys, now_ms()) {
            tokio::time::sleep(d.min(MAX_FAILURE_DELAY)).await;
        }
        unauthorized(ctx, reason, &auth.methods)
    }

    /// HMAC: finds the key and derives its secret now; the signature covers the body, so it is
    /// verified in the body phase.
    async fn hmac_head(
        &self,
        req: &mut http::request::Parts,
        ctx: &mut RequestCtx,
        policy: &RoutePolicy,
        params: crate::hmac_sig::SignatureParams,
        ip_key: FailureKey,
        now: i64,
    ) -> Result<Flow, StageError> {
        let keys = vec![ip_key, FailureKey::credential_prefix(&params.key_id)];
        if let Some(flow) = self.locked(ctx, &keys) {
            return Ok(flow);
        }
        let resolved =
            self.svc.resolve(CredentialKind::HmacKey, &params.key_id).await.map_err(|e| StageError::new("authn", e))?;
        let Some(r) = resolved else { return Ok(self.fail(ctx, &policy.auth, keys, "credential-invalid").await) };
        match check_usable(&r, &self.svc.suspensions(), now) {
            Ok(()) => {}
            Err(Refusal::Unusable) => return Ok(self.fail(ctx, &policy.auth, keys, "credential-invalid").await),
            Err(_) => return Ok(problem(ctx, "authn", "suspended", ProblemKind::Suspended)),
        }
        let Some(salt) = r.credential.secret.as_deref() else {
            return Ok(self.fail(ctx, &policy.auth, keys, "credential-invalid").await);
        };
        let secret = crate::hmac_sig::derive_signing_secret(&self.svc.config().key_secret, &params.key_id, salt)
            .map_err(|e| StageError::new("authn", e))?;
        ctx.require_request_body(usize::try_from(MAX_SIGNED_BODY).unwrap_or(usize::MAX));
        let pending = PendingHmac {
            params,
            secret: Arc::new(secret),
            resolved: r,
            method: req.method.clone(),
            uri: req.uri.clone(),
            headers: req.headers.clone(),
        };
        ctx.extensions.insert(pending);
        req.headers.remove(header::AUTHORIZATION);
        Ok(Flow::Continue)
    }

    /// HTTP Basic: Argon2id on the blocking pool; an unknown user costs the same as a wrong password.
    async fn basic(
        &self,
        req: &mut http::request::Parts,
        ctx: &mut RequestCtx,
        policy: &RoutePolicy,
        creds: crate::basic::BasicCredentials,
        ip_key: FailureKey,
        now: i64,
    ) -> Result<Flow, StageError> {
        let keys = vec![ip_key, FailureKey::username(&creds.username)];
        if let Some(flow) = self.locked(ctx, &keys) {
            return Ok(flow);
        }
        let resolved = self
            .svc
            .resolve(CredentialKind::Password, &creds.username)
            .await
            .map_err(|e| StageError::new("authn", e))?;
        let stored = resolved.as_ref().and_then(|r| r.credential.secret.clone());
        let password = creds.password;
        let ok =
            tokio::task::spawn_blocking(move || crate::basic::verify_password(password.expose(), stored.as_deref()))
                .await
                .map_err(|e| StageError::new("authn", e))?;
        let Some(r) = resolved.filter(|_| ok) else {
            return Ok(self.fail(ctx, &policy.auth, keys, "credential-invalid").await);
        };
        match check_usable(&r, &self.svc.suspensions(), now) {
            Ok(()) => {}
            Err(Refusal::Unusable) => return Ok(self.fail(ctx, &policy.auth, keys, "credential-invalid").await),
            Err(_) => return Ok(problem(ctx, "authn", "suspended", ProblemKind::Suspended)),
        }
        self.svc.failures().record_success(&keys[1]);
        self.accept(ctx, Authenticated::shared(cached_principal(&r, AuthMethodUsed::Basic)));
        req.headers.remove(header::AUTHORIZATION);
        Ok(Flow::Continue)
    }

    /// mTLS: the handshake verified the chain; map the certificate to a consumer by its SHA-256
    /// fingerprint (a registered certificate credential), else by subject (CN, DNS/URI/e-mail SAN)
    /// to a consumer's external subject.
    async fn cert(
        &self,
        ctx: &mut RequestCtx,
        policy: &RoutePolicy,
        der: &[u8],
        ip_key: FailureKey,
        now: i64,
    ) -> Result<Flow, StageError> {
        let Ok(id) = crate::cert::CertIdentity::from_der(der) else {
            return Ok(self.fail(ctx, &policy.auth, vec![ip_key], "credential-invalid").await);
        };
        let by_fingerprint = self
            .svc
            .resolve(CredentialKind::Certificate, &id.fingerprint_sha256)
            .await
            .map_err(|e| StageError::new("authn", e))?;
        if let Some(r) = by_fingerprint {
            return Ok(match check_usable(&r, &self.svc.suspensions(), now) {
                Ok(()) => {
                    self.accept(ctx, Authenticated::shared(cached_principal(&r, AuthMethodUsed::Mtls)));
                    Flow::Continue
                }
                Err(Refusal::Unusable) => self.fail(ctx, &policy.auth, vec![ip_key], "credential-invalid").await,
                Err(_) => problem(ctx, "authn", "suspended", ProblemKind::Suspended),
            });
        }
        let names = id.common_name.iter().chain(&id.dns_names).chain(&id.uris).chain(&id.emails);
        for name in names {
            let mapping = self.svc.resolve_subject(name).await.map_err(|e| StageError::new("authn", e))?;
            if let Some(m) = mapping {
                let active = m.consumer.status == portcullis_store::Status::Active
                    && m.org.status == portcullis_store::Status::Active;
                if !active || self.svc.suspensions().blocking_consumer(&m.consumer, now).is_some() {
                    return Ok(problem(ctx, "authn", "suspended", ProblemKind::Suspended));
                }
                let mut p = principal_for_consumer(AuthMethodUsed::Mtls, &m.consumer, &m.org);
                p.subject = Some(Arc::from(name.as_str()));
                self.accept(ctx, Authenticated::new(p, None));
                return Ok(Flow::Continue);
            }
        }
        Ok(self.fail(ctx, &policy.auth, vec![ip_key], "credential-invalid").await)
    }

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
    /// Sets the identity headers (and their signature) the upstream receives.
    fn identity_headers(&self, ctx: &mut RequestCtx, p: &Principal) {
        let scopes = p.scopes.iter().map(|s| &**s).collect::<Vec<_>>().join(" ");
        let values: [&str; 6] = [
            p.method.as_str(),
            p.org_name.as_deref().unwrap_or(""),
            p.consumer_name.as_deref().unwrap_or(""),
            p.consumer_id.as_deref().unwrap_or(""),
            p.subject.as_deref().unwrap_or(""),
            &scopes,
        ];
        const NAMES: [&str; 6] = [
            "x-portcullis-auth-method",
            "x-portcullis-org",
            "x-portcullis-consumer",
            "x-portcullis-consumer-id",
            "x-portcullis-subject",
            "x-portcullis-scopes",
        ];
        let ts = unix_now().to_string();
        let signed = identity_signature_input(&ctx.request_id, &ts, ctx.method.as_str(), &ctx.path, values);
        let h = &mut ctx.upstream_headers;
        for (name, value) in NAMES.into_iter().zip(values) {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(HeaderName::from_static(name), v);
            }
        }
        if let Some(key) = &self.signer {
            let tag = ring::hmac::sign(key, signed.as_bytes());
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let mut out = String::with_capacity(3 + 64);
            out.push_str("v1=");
            for b in tag.as_ref() {
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
            if let Ok(v) = HeaderValue::from_str(&out) {
                h.insert(HeaderName::from_static("x-portcullis-identity-signature"), v);
            }
            if let Ok(v) = HeaderValue::from_str(&ts) {
                h.insert(HeaderName::from_static("x-portcullis-identity-ts"), v);
            }
        }
    }

    /// Scopes, roles, and ownership rules on the path and query.
    fn check_head(&self, ctx: &mut RequestCtx, policy: &RoutePolicy, auth: &Authenticated) -> Option<Flow> {
        if !auth.principal.has_scopes(&policy.auth.scopes) || !auth.principal.has_any_role(&policy.auth.roles) {
            return Some(insufficient_scope(ctx, &policy.auth));
        }
        for rule in &policy.auth.owner {
            let requested = match &rule.source {
                OwnerSource::PathParam(name) => policy.path.param(&ctx.path, name).map(percent_decode),
                OwnerSource::Query(name) => match query_param(ctx.query.as_deref(), name) {
                    Some(v) => Some(v),
                    // No such parameter: nothing to check (the upstream sees no object id).
                    None => continue,
                },
                OwnerSource::Body(_) => continue,
                OwnerSource::OperationParam(name) => {
                    policy.operation_path.as_ref().and_then(|pp| pp.param(&ctx.path, name)).map(percent_decode)
                }
                _ => None,
            };
            let owner = owner_value(auth, &rule.equals);
            match (requested, owner) {
                (Some(r), Some(o)) if r == *o => {}
                _ => return Some(problem(ctx, "authz", "not-owner", ProblemKind::NotOwner)),
            }
        }
        None
    }

    /// Ownership rules on the JSON body.
    fn check_body(
        &self,
        ctx: &mut RequestCtx,
        policy: &RoutePolicy,
        auth: &Authenticated,
        body: &[u8],
    ) -> Option<Flow> {
        let mut rules = policy.auth.owner.iter().filter(|r| matches!(r.source, OwnerSource::Body(_))).peekable();
        rules.peek()?;
        let doc: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        for rule in rules {
            let OwnerSource::Body(pointer) = &rule.source else { continue };
            let requested = doc.as_ref().and_then(|d| d.pointer(pointer)).and_then(json_scalar);
            let owner = owner_value(auth, &rule.equals);
            match (requested, owner) {
                (Some(r), Some(o)) if r == o => {}
                // A body the rule cannot read (not JSON, field missing) is refused: fail closed.
                _ => return Some(problem(ctx, "authz", "not-owner", ProblemKind::NotOwner)),
            }
        }
        None
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

    async fn on_request(&self, _req: &mut http::request::Parts, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
        let Some(route) = ctx.route.clone() else { return Ok(Flow::Continue) };
        let Some(policy) = self.routes.get(&route).map(|p| p.for_request(ctx)) else {
            return Ok(problem(ctx, "authz", "no-policy", ProblemKind::Forbidden));
        };
        if policy.auth.public || ctx.extensions.get::<OutageBypass>().is_some() {
            return Ok(Flow::Continue);
        }
        if ctx.extensions.get::<PendingHmac>().is_some() {
            // The caller is proven only once the signed body is checked: decide then.
            ctx.extensions.insert(AuthzDeferred { head_checked: false });
            return Ok(Flow::Continue);
        }
        let Some(auth) = ctx.extensions.get::<Authenticated>().cloned() else {
            // Authentication did not run or did not finish: never authorize without its proof.
            return Ok(problem(ctx, "authz", "not-authenticated", ProblemKind::Unauthorized));
        };
        if let Some(flow) = self.check_head(ctx, policy, &auth) {
            return Ok(flow);
        }
        if policy.auth.needs_body() {
            ctx.require_request_body(usize::try_from(policy_body_cap()).unwrap_or(usize::MAX));
            ctx.extensions.insert(AuthzDeferred { head_checked: true });
            return Ok(Flow::Continue);
        }
        self.identity_headers(ctx, &auth.principal);
        Ok(Flow::Continue)
    }

    async fn on_request_body(&self, body: &mut Bytes, ctx: &mut RequestCtx) -> Result<Flow, StageError> {
        let Some(deferred) = ctx.extensions.remove::<AuthzDeferred>() else { return Ok(Flow::Continue) };
        let Some(route) = ctx.route.clone() else { return Ok(Flow::Continue) };
        let Some(policy) = self.routes.get(&route).map(|p| p.for_request(ctx)) else {
            return Ok(problem(ctx, "authz", "no-policy", ProblemKind::Forbidden));
        };
        let Some(auth) = ctx.extensions.get::<Authenticated>().cloned() else {
            return Ok(problem(ctx, "authz", "not-authenticated", ProblemKind::Unauthorized));
        };
        if !deferred.head_checked
            && let Some(flow) = self.check_head(ctx, policy, &auth)
        {
            return Ok(flow);
        }
        if let Some(flow) = self.check_body(ctx, policy, &auth, body) {
            return Ok(flow);
        }
        self.identity_headers(ctx, &auth.principal);
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
