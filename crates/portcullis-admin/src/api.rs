//! The identity admin API under `/v1/`: organizations, consumers, credentials (API keys,
//! passwords, HMAC signing keys, client certificates), kill switches and the audit trail, as JSON
//! over HTTP, each call a thin layer over [`portcullis_identity::IdentityService`]'s admin
//! operations.
//!
//! Authentication: `Authorization: Bearer <admin token>`; the SHA-256 of the presented token is
//! compared in constant time with `identity.admin_token_sha256`. Without identity, or without an
//! admin token, every `/v1/` path answers a problem (404 / 503): the API is never open.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use portcullis_identity::IdentityService;
use portcullis_identity::admin::{ConsumerSpec, IssuedKey, TargetRef};
use portcullis_identity::apikey::KeyEnv;
use portcullis_identity::service::unix_now;
use portcullis_proxy::GatewayHandle;
use portcullis_store::{Credential, MAX_AUDIT_PAGE, PolicyArrayCap, PolicyShape, PolicySubject};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::problem::ApiError;

/// Largest request body the admin API reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The OpenAPI 3.1 description of the admin API, as served at `/v1/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");
/// At most this many refused logins are written to the audit trail per [`FAILURE_AUDIT_WINDOW`];
/// past it they are only counted, so a token-guessing flood cannot bloat the trail.
const FAILURE_AUDIT_BURST: u32 = 20;
const FAILURE_AUDIT_WINDOW: Duration = Duration::from_secs(60);
/// Default overlap of a rotated key with its successor.
const DEFAULT_ROTATE_OVERLAP: Duration = Duration::from_secs(24 * 3600);
const MAX_REASON_LEN: usize = 1024;
/// Longest accepted Basic username, in characters.
const MAX_USERNAME_LEN: usize = 128;
/// Longest accepted password, in bytes: Argon2 hashes any length, but a megabyte of password per
/// request is only a way to burn CPU.
const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Clone)]
pub(crate) struct ApiState {
    gateway: GatewayHandle,
    failures: Arc<FailureAudit>,
}

impl ApiState {
    pub(crate) fn new(gateway: GatewayHandle) -> Self {
        Self { gateway, failures: Arc::new(FailureAudit::default()) }
    }
}

/// The admin API router, to be nested under `/v1`.
pub(crate) fn router(state: ApiState) -> Router {
    routes()
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        // Runs for every /v1 path, the fallbacks included: an unknown path without a token is a
        // 401 too, so the API's shape is not probed anonymously.
        .layer(axum::middleware::from_fn_with_state(state.clone(), authenticate))
        // Outermost: every answer, refusals included, is kept out of caches (keys travel here).
        .layer(axum::middleware::map_response(no_store))
        .with_state(state)
}

async fn no_store(mut resp: Response) -> Response {
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

macro_rules! api_routes {
    ($( $method:ident $path:literal => $handler:ident ),* $(,)?) => {
        /// Every `(method, path)` the admin API serves; the OpenAPI document lists exactly these.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), concat!("/v1", $path))),*];

        fn routes() -> Router<ApiState> {
            Router::new()$(.route($path, axum::routing::$method($handler)))*
        }
    };
}

api_routes! {
    get "/openapi.json" => openapi,
    post "/orgs" => create_org,
    get "/orgs" => list_orgs,
    post "/consumers" => create_consumer,
    get "/consumers" => list_consumers,
    get "/consumers/{name}" => get_consumer,
    post "/consumers/{name}/keys" => create_key,
    get "/consumers/{name}/keys" => list_keys,
    post "/consumers/{name}/passwords" => set_password,
    post "/consumers/{name}/hmac-keys" => create_hmac_key,
    post "/consumers/{name}/certificates" => register_certificate,
    get "/keys/{id}" => get_key,
    post "/keys/{id}/rotate" => rotate_key,
    post "/keys/{id}/revoke" => revoke_key,
    post "/suspensions" => suspend,
    get "/suspensions" => list_suspensions,
    delete "/suspensions/{kind}/{name_or_id}" => resume,
    get "/policies" => list_policies,
    put "/policies/{route}/{kind}/{name}" => put_policy,
    get "/policies/{route}/{kind}/{name}" => get_policy,
    delete "/policies/{route}/{kind}/{name}" => delete_policy,
    get "/audit" => audit,
    get "/usage" => usage,
}

// ---- authentication ------------------------------------------------------------------------

/// Who is acting, and on which service; put in the request by [`authenticate`].
#[derive(Clone)]
pub(crate) struct Admin {
    svc: IdentityService,
    actor: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Only `authenticate` inserts it; a handler reached without it is refused, not served.
        parts.extensions.get::<Admin>().cloned().ok_or_else(ApiError::unauthorized)
    }
}

async fn authenticate(State(s): State<ApiState>, mut req: Request, next: Next) -> Response {
    let Some(svc) = s.gateway.identity() else {
        return ApiError::identity_not_configured().into_response();
    };
    let Some(expected) = svc.config().admin_token_sha256 else {
        return ApiError::no_admin_token().into_response();
    };
    let presented = bearer_token(req.headers());
    if let Some(token) = presented
        && token_matches(token, &expected)
    {
        let actor = actor_name(req.headers());
        req.extensions_mut().insert(Admin { svc: svc.clone(), actor });
        return next.run(req).await;
    }
    let reason = if presented.is_some() { "invalid_token" } else { "missing_token" };
    metrics::counter!("portcullis_admin_auth_failures_total", "reason" => reason).increment(1);
    // Past the budget a refusal is only counted: no audit entry, no log line.
    if s.failures.admit(Instant::now()) {
        let peer = req.extensions().get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip().to_string());
        // The presented token is never recorded, not even a prefix of it.
        let detail = json!({
            "reason": reason,
            "method": req.method().as_str(),
            "path": clip(req.uri().path(), 128),
            "peer": peer,
        });
        if let Err(e) = svc.record("unknown", "admin.auth_failed", "admin-api", detail).await {
            tracing::warn!(error = %e, "cannot audit a refused admin login");
        }
        tracing::warn!(reason, "admin API: refused a request without a valid admin token");
    }
    ApiError::unauthorized().into_response()
}

/// The token of an `Authorization: Bearer …` header (scheme case-insensitive), if any.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether SHA-256(`token`) equals `expected`, compared in constant time (every byte is looked
/// at, no early exit). Hashing first also makes the comparison independent of the presented
/// token's length, and an attacker cannot steer the digest byte by byte anyway. (ring's
/// `constant_time::verify_slices_are_equal` is deprecated for outside use.)
pub(crate) fn token_matches(token: &str, expected: &[u8; 32]) -> bool {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let diff = digest.as_ref().iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    digest.as_ref().len() == expected.len() && std::hint::black_box(diff) == 0
}

/// The visible prefix of admin API tokens.
pub const ADMIN_TOKEN_PREFIX: &str = "pc_admin_";

/// A freshly generated admin API token. No `Debug`: the token must not end up in a log.
pub struct NewAdminToken {
    /// `pc_admin_` and 64 lower-case hex digits (256 random bits). Show it once.
    pub token: String,
    /// Its SHA-256 as 64 lower-case hex digits: the value of `identity.admin_token_sha256`.
    pub sha256_hex: String,
}

/// The system random generator failed.
#[derive(Debug, thiserror::Error)]
#[error("the system random generator failed")]
pub struct RandomError;

/// Generates an admin API token (what `portcullis admin-token` prints or writes).
pub fn generate_admin_token() -> Result<NewAdminToken, RandomError> {
    let mut random = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random).map_err(|_| RandomError)?;
    let token = format!("{ADMIN_TOKEN_PREFIX}{}", hex(&random));
    let sha256_hex = admin_token_sha256_hex(&token);
    Ok(NewAdminToken { token, sha256_hex })
}

/// The lower-case hex SHA-256 of a token, as `identity.admin_token_sha256` holds it.
pub fn admin_token_sha256_hex(token: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// `admin`, or `admin:<X-Portcullis-Actor>` with the header cut down to `[A-Za-z0-9_.@-]{1,64}`.
pub(crate) fn actor_name(headers: &HeaderMap) -> String {
    let named: String = headers
        .get("x-portcullis-actor")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'))
        .take(64)
        .collect();
    if named.is_empty() { "admin".to_owned() } else { format!("admin:{named}") }
}

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// A fixed-window budget for audit entries about refused logins.
#[derive(Default)]
pub(crate) struct FailureAudit {
    window: Mutex<Option<(Instant, u32)>>,
}

impl FailureAudit {
    /// Whether one more refused login may be written to the audit trail at `now`.
    pub(crate) fn admit(&self, now: Instant) -> bool {
        let Ok(mut w) = self.window.lock() else { return false };
        match &mut *w {
            Some((start, n)) if now.saturating_duration_since(*start) < FAILURE_AUDIT_WINDOW => {
                *n = n.saturating_add(1);
                *n <= FAILURE_AUDIT_BURST
            }
            slot => {
                *slot = Some((now, 1));
                true
            }
        }
    }
}

// ---- extractors ----------------------------------------------------------------------------

/// A JSON body: at most [`MAX_BODY_BYTES`], `Content-Type: application/json` (an empty body reads
/// as `{}`), unknown fields refused by the target type.
pub(crate) struct ApiJson<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let declared =
            req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(ApiError::too_large(MAX_BODY_BYTES));
        }
        let is_json = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
            let essence = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
            essence == "application/json" || essence.ends_with("+json")
        });
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| ApiError::too_large(MAX_BODY_BYTES))?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else if !is_json {
            return Err(ApiError::unsupported_media_type());
        } else {
            &bytes
        };
        serde_json::from_slice(bytes).map(ApiJson).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
    }
}

/// Path parameters, with a problem+json rejection.
pub(crate) struct ApiPath<T>(T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e: PathRejection| ApiError::invalid(e.body_text()))
    }
}

/// A query string, with a problem+json rejection.
pub(crate) struct ApiQuery<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e: QueryRejection| ApiError::invalid(e.body_text()))
    }
}

// ---- responses ------------------------------------------------------------------------------

fn reply<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_string(body) {
        Ok(text) => {
            let mut resp = (status, text).into_response();
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize an admin API response");
            ApiError::internal().into_response()
        }
    }
}

fn items<T: Serialize>(list: &[T]) -> Response {
    reply(StatusCode::OK, &json!({ "items": list }))
}

/// A credential as the admin API shows it: no secret, no lookup hash, a computed status.
#[derive(Serialize)]
struct CredentialView<'a> {
    id: &'a str,
    consumer_id: &'a str,
    kind: &'static str,
    hint: &'a str,
    status: &'static str,
    scopes: Option<&'a [String]>,
    label: Option<&'a str>,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    created_at: i64,
}

impl<'a> CredentialView<'a> {
    fn of(c: &'a Credential, now: i64) -> Self {
        let status = if c.revoked_at.is_some_and(|at| at <= now) {
            "revoked"
        } else if c.expires_at.is_some_and(|at| at <= now) {
            "expired"
        } else {
            "active"
        };
        Self {
            id: &c.id,
            consumer_id: &c.consumer_id,
            kind: c.kind.as_str(),
            hint: &c.hint,
            status,
            scopes: c.scopes.as_deref(),
            label: c.label.as_deref(),
            expires_at: c.expires_at,
            revoked_at: c.revoked_at,
            created_at: c.created_at,
        }
    }
}

const SHOWN_ONCE: &str = "this key is shown once: store it now, it cannot be recovered";

fn issued(k: &IssuedKey, extra: Option<serde_json::Value>) -> Response {
    let mut body = json!({
        "key": k.key.expose(),
        "credential": CredentialView::of(&k.credential, unix_now()),
        "warning": SHOWN_ONCE,
    });
    if let (Some(extra), Some(map)) = (extra, body.as_object_mut()) {
        map.insert("replaces".into(), extra);
    }
    let mut resp = reply(StatusCode::CREATED, &body);
    // Belt and braces for the one response that carries a secret.
    resp.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

// ---- request bodies -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateOrg {
    name: String,
    #[serde(default)]
    plan: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateConsumer {
    org: String,
    name: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    plan: Option<String>,
    #[serde(default)]
    external_subject: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum EnvName {
    Live,
    Test,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    ttl: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    env: Option<EnvName>,
}

/// No `Debug`: the password must not end up in a log.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPassword {
    username: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateHmacKey {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterCertificate {
    fingerprint: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateKey {
    #[serde(default)]
    overlap: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeKey {
    reason: String,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum TargetKind {
    Organization,
    Consumer,
    Credential,
    Route,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetBody {
    kind: TargetKind,
    name_or_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Suspend {
    target: TargetBody,
    reason: String,
    #[serde(default)]
    duration: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutPolicy {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    max_items: Vec<PolicyArrayCap>,
    #[serde(default)]
    max_items_everywhere: Option<u32>,
    reason: String,
    #[serde(default)]
    duration: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoliciesQuery {
    #[serde(default)]
    route: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeletePolicyQuery {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumersQuery {
    #[serde(default)]
    org: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    since: Option<i64>,
    #[serde(default)]
    limit: Option<u32>,
}

/// A positive duration such as `30d`, `24h` or `90m`; `zero_ok` also admits `0s`.
fn duration(field: &str, text: &str, zero_ok: bool) -> Result<Duration, ApiError> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) if d.is_zero() && !zero_ok => Err(ApiError::invalid(format!("{field} must be longer than 0"))),
        Ok(d) if d > Duration::from_secs(100 * 365 * 86_400) => {
            Err(ApiError::invalid(format!("{field} must be at most 100 years")))
        }
        Ok(d) => Ok(d),
        Err(e) => Err(ApiError::invalid(format!("{field}: invalid duration {text:?} ({e}); write e.g. 30d, 24h, 15m"))),
    }
}

fn reason(text: &str) -> Result<&str, ApiError> {
    let t = text.trim();
    if t.is_empty() || t.len() > MAX_REASON_LEN || t.chars().any(char::is_control) {
        Err(ApiError::invalid(format!("reason must be 1-{MAX_REASON_LEN} bytes without control characters")))
    } else {
        Ok(t)
    }
}

// ---- handlers -------------------------------------------------------------------------------

async fn no_route(_: Admin) -> ApiError {
    ApiError::no_route()
}

async fn method_not_allowed(_: Admin) -> ApiError {
    ApiError::method_not_allowed()
}

async fn openapi(_: Admin) -> Response {
    let mut resp = OPENAPI_JSON.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

async fn create_org(a: Admin, ApiJson(b): ApiJson<CreateOrg>) -> Result<Response, ApiError> {
    let org = a.svc.create_org(&a.actor, &b.name, b.plan).await?;
    Ok(reply(StatusCode::CREATED, &org))
}

async fn list_orgs(a: Admin) -> Result<Response, ApiError> {
    Ok(items(&a.svc.list_orgs().await?))
}

async fn create_consumer(a: Admin, ApiJson(b): ApiJson<CreateConsumer>) -> Result<Response, ApiError> {
    let spec = ConsumerSpec {
        org: b.org,
        name: b.name,
        kind: b.kind,
        scopes: b.scopes,
        roles: b.roles,
        plan: b.plan,
        external_subject: b.external_subject,
    };
    let c = a.svc.create_consumer(&a.actor, spec).await?;
    Ok(reply(StatusCode::CREATED, &c))
}

async fn list_consumers(a: Admin, ApiQuery(q): ApiQuery<ConsumersQuery>) -> Result<Response, ApiError> {
    Ok(items(&a.svc.list_consumers(q.org.as_deref()).await?))
}

async fn get_consumer(a: Admin, ApiPath(name): ApiPath<String>) -> Result<Response, ApiError> {
    Ok(reply(StatusCode::OK, &a.svc.consumer_named(&name).await?))
}

async fn create_key(
    a: Admin,
    ApiPath(consumer): ApiPath<String>,
    ApiJson(b): ApiJson<CreateKey>,
) -> Result<Response, ApiError> {
    let ttl = b.ttl.as_deref().map(|t| duration("ttl", t, false)).transpose()?;
    let env = match b.env {
        Some(EnvName::Test) => KeyEnv::Test,
        Some(EnvName::Live) | None => KeyEnv::Live,
    };
    let k = a.svc.issue_api_key(&a.actor, &consumer, b.scopes, ttl, b.label, env).await?;
    Ok(issued(&k, None))
}

async fn list_keys(a: Admin, ApiPath(consumer): ApiPath<String>) -> Result<Response, ApiError> {
    let list = a.svc.list_credentials(&consumer).await?;
    let now = unix_now();
    Ok(items(&list.iter().map(|c| CredentialView::of(c, now)).collect::<Vec<_>>()))
}

/// A Basic username: 1-128 characters, no `:` (RFC 7617 splits at the first one), no control
/// characters, no surrounding spaces.
fn username(text: &str) -> Result<&str, ApiError> {
    let n = text.chars().count();
    if n == 0 || n > MAX_USERNAME_LEN || text.trim() != text || text.contains(':') || text.chars().any(char::is_control)
    {
        Err(ApiError::invalid(format!(
            "username must be 1-{MAX_USERNAME_LEN} characters without ':', control characters or surrounding spaces"
        )))
    } else {
        Ok(text)
    }
}

async fn set_password(
    a: Admin,
    ApiPath(consumer): ApiPath<String>,
    ApiJson(b): ApiJson<SetPassword>,
) -> Result<Response, ApiError> {
    let user = username(&b.username)?;
    if b.password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::invalid(format!("password must be at most {MAX_PASSWORD_BYTES} bytes")));
    }
    let c = a.svc.set_password(&a.actor, &consumer, user, &b.password).await?;
    // The answer never carries the password, not even its hash.
    Ok(reply(StatusCode::CREATED, &CredentialView::of(&c, unix_now())))
}

const HMAC_SHOWN_ONCE: &str = "this signing secret is shown once: store it now, it cannot be recovered";

async fn create_hmac_key(
    a: Admin,
    ApiPath(consumer): ApiPath<String>,
    ApiJson(CreateHmacKey {}): ApiJson<CreateHmacKey>,
) -> Result<Response, ApiError> {
    let (c, secret) = a.svc.issue_hmac_key(&a.actor, &consumer).await?;
    let body = json!({
        "key_id": c.lookup,
        "secret": secret,
        "credential": CredentialView::of(&c, unix_now()),
        "warning": HMAC_SHOWN_ONCE,
    });
    let mut resp = reply(StatusCode::CREATED, &body);
    resp.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

async fn register_certificate(
    a: Admin,
    ApiPath(consumer): ApiPath<String>,
    ApiJson(b): ApiJson<RegisterCertificate>,
) -> Result<Response, ApiError> {
    let c = a.svc.register_certificate(&a.actor, &consumer, b.fingerprint.trim()).await?;
    Ok(reply(StatusCode::CREATED, &CredentialView::of(&c, unix_now())))
}

async fn get_key(a: Admin, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    let c = a.svc.credential(&id).await?;
    Ok(reply(StatusCode::OK, &CredentialView::of(&c, unix_now())))
}

async fn rotate_key(
    a: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<RotateKey>,
) -> Result<Response, ApiError> {
    let overlap = b.overlap.as_deref().map(|t| duration("overlap", t, true)).transpose()?;
    let k = a.svc.rotate_api_key(&a.actor, &id, overlap.unwrap_or(DEFAULT_ROTATE_OVERLAP)).await?;
    // The new key exists now and is shown only in this answer: failing to read the old one's new
    // expiry must not lose it.
    let old_expires_at = match a.svc.credential(&id).await {
        Ok(old) => old.expires_at,
        Err(e) => {
            tracing::warn!(error = %e, "rotated a key but cannot read the old one back");
            None
        }
    };
    Ok(issued(&k, Some(json!({ "id": id, "expires_at": old_expires_at }))))
}

async fn revoke_key(
    a: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<RevokeKey>,
) -> Result<Response, ApiError> {
    let why = reason(&b.reason)?;
    let c = a.svc.revoke_credential(&a.actor, &id, why).await?;
    Ok(reply(StatusCode::OK, &CredentialView::of(&c, unix_now())))
}

fn target_ref(gateway: &GatewayHandle, kind: TargetKind, name: String) -> Result<TargetRef, ApiError> {
    Ok(match kind {
        TargetKind::Organization => TargetRef::Organization(name),
        TargetKind::Consumer => TargetRef::Consumer(name),
        TargetKind::Credential => TargetRef::Credential(name),
        TargetKind::Route => {
            // A typo must not look like a working kill switch.
            if !gateway.config().routes.iter().any(|r| *r.name == *name) {
                return Err(ApiError::not_found("route"));
            }
            TargetRef::Route(name)
        }
    })
}

async fn suspend(State(s): State<ApiState>, a: Admin, ApiJson(b): ApiJson<Suspend>) -> Result<Response, ApiError> {
    let why = reason(&b.reason)?;
    let d = b.duration.as_deref().map(|t| duration("duration", t, false)).transpose()?;
    let target = target_ref(&s.gateway, b.target.kind, b.target.name_or_id)?;
    let sus = a.svc.suspend(&a.actor, &target, why, d).await?;
    Ok(reply(StatusCode::CREATED, &sus))
}

async fn list_suspensions(a: Admin) -> Result<Response, ApiError> {
    Ok(items(&a.svc.list_suspensions().await?))
}

async fn resume(
    State(s): State<ApiState>,
    a: Admin,
    ApiPath((kind, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let kind = match kind.as_str() {
        "organization" => TargetKind::Organization,
        "consumer" => TargetKind::Consumer,
        "credential" => TargetKind::Credential,
        "route" => TargetKind::Route,
        _ => return Err(ApiError::invalid("kind must be organization, consumer, credential or route")),
    };
    let target = target_ref(&s.gateway, kind, name)?;
    let lifted = a.svc.resume(&a.actor, &target).await?;
    Ok(reply(StatusCode::OK, &json!({ "lifted": lifted })))
}

/// The route (which must be configured: a typo must not look like a working switch) and the
/// subject of a `/policies/{route}/{kind}/{name}` path.
fn policy_key(
    gateway: &GatewayHandle,
    route: String,
    kind: &str,
    name: String,
) -> Result<(String, PolicySubject), ApiError> {
    if !gateway.config().routes.iter().any(|r| *r.name == *route) {
        return Err(ApiError::not_found("route"));
    }
    let subject = match kind {
        "consumer" => PolicySubject::Consumer(name),
        "organization" => PolicySubject::Organization(name),
        "plan" => PolicySubject::Plan(name),
        _ => return Err(ApiError::invalid("kind must be consumer, organization or plan")),
    };
    Ok((route, subject))
}

async fn list_policies(a: Admin, ApiQuery(q): ApiQuery<PoliciesQuery>) -> Result<Response, ApiError> {
    Ok(items(&a.svc.list_shaping_policies(q.route.as_deref()).await?))
}

async fn put_policy(
    State(s): State<ApiState>,
    a: Admin,
    ApiPath((route, kind, name)): ApiPath<(String, String, String)>,
    ApiJson(b): ApiJson<PutPolicy>,
) -> Result<Response, ApiError> {
    let why = reason(&b.reason)?;
    let d = b.duration.as_deref().map(|t| duration("duration", t, false)).transpose()?;
    let (route, subject) = policy_key(&s.gateway, route, &kind, name)?;
    // A plan must be one of the configured traffic plans: a typo would store a rule that never
    // applies. (Reading and deleting stay open, so a plan removed from config can be cleaned up.)
    if let PolicySubject::Plan(plan) = &subject
        && !s.gateway.config().traffic.as_ref().is_some_and(|t| t.plans.contains_key(plan))
    {
        return Err(ApiError::not_found("plan"));
    }
    let shape = PolicyShape { allow: b.allow, max_items: b.max_items, max_items_everywhere: b.max_items_everywhere };
    let p = a.svc.set_shaping_policy(&a.actor, &route, subject, shape, why, d).await?;
    Ok(reply(StatusCode::OK, &p))
}

async fn get_policy(
    State(s): State<ApiState>,
    a: Admin,
    ApiPath((route, kind, name)): ApiPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (route, subject) = policy_key(&s.gateway, route, &kind, name)?;
    let p = a.svc.shaping_policy(&route, &subject).await?.ok_or_else(|| ApiError::not_found("shaping policy"))?;
    Ok(reply(StatusCode::OK, &p))
}

async fn delete_policy(
    State(s): State<ApiState>,
    a: Admin,
    ApiPath((route, kind, name)): ApiPath<(String, String, String)>,
    ApiQuery(q): ApiQuery<DeletePolicyQuery>,
) -> Result<Response, ApiError> {
    let why = q.reason.as_deref().map(reason).transpose()?;
    let (route, subject) = policy_key(&s.gateway, route, &kind, name)?;
    let deleted = a.svc.delete_shaping_policy(&a.actor, &route, &subject, why).await?;
    Ok(reply(StatusCode::OK, &json!({ "deleted": deleted })))
}

/// `GET /v1/usage`: behind the same admin authentication as every other `/v1` endpoint.
async fn usage(
    _: Admin,
    State(s): State<ApiState>,
    q: Result<Query<crate::usage::UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    crate::usage::report(s.gateway.clone(), q).await
}

async fn audit(a: Admin, ApiQuery(q): ApiQuery<AuditQuery>) -> Result<Response, ApiError> {
    let since = q.since.unwrap_or(0);
    let limit = q.limit.unwrap_or(100);
    if since < 0 {
        return Err(ApiError::invalid("since must be 0 or more"));
    }
    if limit == 0 || limit > MAX_AUDIT_PAGE {
        return Err(ApiError::invalid(format!("limit must be 1-{MAX_AUDIT_PAGE}")));
    }
    let list = a.svc.audit_trail(since, limit).await?;
    let next = list.last().map_or(since, |e| e.seq);
    Ok(reply(StatusCode::OK, &json!({ "items": list, "next_since": next })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_accepts_only_the_hashed_token() {
        let token = "pc_admin_0123456789abcdef";
        let mut expected = [0u8; 32];
        expected.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
        assert!(token_matches(token, &expected));
        assert!(!token_matches("pc_admin_0123456789abcdeg", &expected));
        assert!(!token_matches("", &expected));
        // The hash itself is not a token.
        let hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!token_matches(&hex, &expected));
    }

    #[test]
    fn generated_tokens_match_their_hash() {
        let a = generate_admin_token().unwrap();
        let b = generate_admin_token().unwrap();
        assert_ne!(a.token, b.token);
        assert!(a.token.starts_with(ADMIN_TOKEN_PREFIX));
        assert_eq!(a.token.len(), ADMIN_TOKEN_PREFIX.len() + 64);
        assert_eq!(a.sha256_hex.len(), 64);
        let mut expected = [0u8; 32];
        for (i, byte) in expected.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&a.sha256_hex[2 * i..2 * i + 2], 16).unwrap();
        }
        assert!(token_matches(&a.token, &expected));
        assert!(!token_matches(&b.token, &expected));
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(bearer_token(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer  abc "));
        assert_eq!(bearer_token(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer_token(&h), None);
    }

    #[test]
    fn actor_is_sanitized() {
        let mut h = HeaderMap::new();
        assert_eq!(actor_name(&h), "admin");
        h.insert("x-portcullis-actor", HeaderValue::from_static("alice@example.com"));
        assert_eq!(actor_name(&h), "admin:alice@example.com");
        h.insert("x-portcullis-actor", HeaderValue::from_static("bob; DROP TABLE\t<x>"));
        assert_eq!(actor_name(&h), "admin:bobDROPTABLEx");
        h.insert("x-portcullis-actor", HeaderValue::from_static("  ;;  "));
        assert_eq!(actor_name(&h), "admin");
        let long = "a".repeat(200);
        h.insert("x-portcullis-actor", HeaderValue::from_str(&long).unwrap());
        assert_eq!(actor_name(&h).len(), "admin:".len() + 64);
    }

    #[test]
    fn failure_audit_is_bounded_per_window() {
        let f = FailureAudit::default();
        let t0 = Instant::now();
        let admitted = (0..100).filter(|_| f.admit(t0)).count();
        assert_eq!(admitted, FAILURE_AUDIT_BURST as usize);
        assert!(f.admit(t0 + FAILURE_AUDIT_WINDOW), "a new window admits again");
    }

    #[test]
    fn usernames() {
        assert!(username("alice").is_ok());
        assert!(username("alice@example.com").is_ok());
        for bad in ["", "a:b", " alice", "alice ", "al\nice"] {
            assert!(username(bad).is_err(), "{bad:?}");
        }
        assert!(username(&"u".repeat(MAX_USERNAME_LEN)).is_ok());
        assert!(username(&"u".repeat(MAX_USERNAME_LEN + 1)).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration("ttl", "30d", false).unwrap(), Duration::from_secs(30 * 86_400));
        assert!(duration("ttl", "0s", false).is_err());
        assert!(duration("overlap", "0s", true).is_ok());
        assert!(duration("ttl", "soon", false).is_err());
        assert!(duration("ttl", "1000y", false).is_err());
    }
}
