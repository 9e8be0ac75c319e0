//! The `identity` section (consumers, credentials, issuers) and each route's `policy.auth` block:
//! file types, typed values and their validation.
//!
//! Deny by default: once `identity` is configured, every route must either list the
//! authentication methods it accepts or say `public: true`; a route that says neither is a
//! configuration error, never an open door.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::pattern::PathPattern;
use crate::secret::{Secret, resolve_secret};
use crate::typed::Builder;

/// Identity: where consumers and credentials live, and how callers prove who they are.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileIdentity {
    /// The store of organizations, consumers, credentials, suspensions and the admin audit trail.
    /// Default: SQLite at `data/portcullis.db` next to the config file.
    #[serde(default)]
    pub store: Option<FileStore>,
    /// Shared state for several gateway nodes (cache invalidation, replay nonces, failure
    /// counters). Without it, each node keeps these in memory.
    #[serde(default)]
    pub cluster: Option<FileCluster>,
    /// Reference to the server secret API keys are hashed with (HMAC-SHA256), at least 32 bytes:
    /// `${env:NAME}` or `${file:path}`. Changing it invalidates every issued key.
    pub key_secret: String,
    /// Reference to the secret the gateway signs the identity headers it sends upstream with.
    /// Without it, identity headers are sent unsigned (`check` warns).
    #[serde(default)]
    pub upstream_signing_secret: Option<String>,
    /// How long a verified credential stays cached in memory. Default `30s`; changes (revocation,
    /// suspension) invalidate the cache at once.
    #[serde(default)]
    pub cache_ttl: Option<String>,
    /// The request header API keys are read from. Default `x-api-key`. `Authorization: Bearer
    /// pc_…` is accepted too.
    #[serde(default)]
    pub api_key_header: Option<String>,
    /// JWT issuers (OAuth 2.0 / OIDC), by name.
    #[serde(default)]
    pub issuers: BTreeMap<String, FileIssuer>,
    /// OAuth 2.0 token introspection endpoints (RFC 7662) for opaque tokens, by name.
    #[serde(default)]
    pub introspection: BTreeMap<String, FileIntrospection>,
    /// HMAC request signing.
    #[serde(default)]
    pub hmac: FileHmac,
    /// Failed-authentication throttling (brute force and credential stuffing).
    #[serde(default)]
    pub brute_force: FileBruteForce,
    /// The admin API token, as the lowercase hex SHA-256 of the token (`portcullis admin-token`
    /// makes one). Without it the admin API's identity endpoints are disabled.
    #[serde(default)]
    pub admin_token_sha256: Option<String>,
}

/// Store backend: exactly one of `sqlite` and `postgres`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileStore {
    /// Embedded SQLite (the default): one file, WAL.
    #[serde(default)]
    pub sqlite: Option<FileSqlite>,
    /// PostgreSQL, shared by several gateway nodes.
    #[serde(default)]
    pub postgres: Option<FilePostgres>,
}

/// SQLite settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSqlite {
    /// Database file; relative paths are relative to the config file.
    pub path: String,
}

/// PostgreSQL settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilePostgres {
    /// Reference to the connection URL (it may hold a password): `${env:NAME}` or `${file:path}`.
    pub url: String,
    /// Connections per gateway process. Default 8.
    #[serde(default)]
    pub pool_size: Option<usize>,
    /// Schema to use instead of `public`.
    #[serde(default)]
    pub schema: Option<String>,
}

/// Cluster state on Redis.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileCluster {
    /// Reference to the Redis URL (`redis://127.0.0.1:6379`), `${env:NAME}` or `${file:path}`.
    pub redis_url: String,
    /// A prefix that keeps several deployments apart on one Redis. Default `default`.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// A JWT issuer.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileIssuer {
    /// The exact `iss` value tokens must carry.
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one. Required.
    pub audiences: Vec<String>,
    /// Accepted algorithms, e.g. `[RS256]`. Default `[RS256, ES256]`. `none` is never accepted.
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// The issuer's JWKS URL (HTTPS, or HTTP on loopback).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// OIDC discovery: the issuer URL whose `/.well-known/openid-configuration` names the JWKS.
    #[serde(default)]
    pub discovery_url: Option<String>,
    /// A JWKS file with static keys.
    #[serde(default)]
    pub jwks_file: Option<String>,
    /// Reference to an HMAC secret for HS256/384/512 tokens (at least 32 bytes).
    #[serde(default)]
    pub hmac_secret: Option<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`. Default `60s`.
    #[serde(default)]
    pub leeway: Option<String>,
    /// How often the JWKS is refreshed in the background. Default `5m`.
    #[serde(default)]
    pub refresh_interval: Option<String>,
    /// The claim that names the consumer (matched against a consumer's `external_subject`).
    /// Default `sub`. A token whose subject maps to no consumer is still authenticated, with the
    /// scopes the token carries.
    #[serde(default)]
    pub subject_claim: Option<String>,
    /// Fetch the JWKS over plain HTTP from a non-loopback host. Never in production.
    #[serde(default)]
    pub danger_allow_http: bool,
}

/// A token introspection endpoint.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileIntrospection {
    /// The endpoint URL (HTTPS, or HTTP on loopback).
    pub endpoint: String,
    /// The gateway's client id at the authorization server.
    pub client_id: String,
    /// Reference to the client secret.
    pub client_secret: String,
    /// Upper bound on how long an active token's answer is cached. Default `5m`.
    #[serde(default)]
    pub cache_max_ttl: Option<String>,
    /// How long an inactive or unknown token's answer is cached. Default `30s`.
    #[serde(default)]
    pub negative_ttl: Option<String>,
}

/// HMAC request signing.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileHmac {
    /// How far a signature's timestamp may be from the gateway's clock. Default `5m`.
    #[serde(default)]
    pub window: Option<String>,
}

/// Failed-authentication throttling.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileBruteForce {
    /// Failures from one client IP before answers are delayed. Default 10.
    #[serde(default)]
    pub ip_threshold: Option<u32>,
    /// Failures for one credential prefix or username before answers are delayed. Default 5.
    #[serde(default)]
    pub credential_threshold: Option<u32>,
    /// Failures before a key (IP, prefix or username) is locked out. Default 20.
    #[serde(default)]
    pub lockout_after: Option<u32>,
    /// How long a lockout lasts. Default `15m`.
    #[serde(default)]
    pub lockout_for: Option<String>,
    /// The window failures are counted in. Default `15m`.
    #[serde(default)]
    pub window: Option<String>,
}

/// A route's authentication and authorization.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRouteAuth {
    /// The route needs no credential. Must be said explicitly when `identity` is configured.
    #[serde(default)]
    pub public: bool,
    /// Accepted methods, any of: `api_key`, `jwt`, `introspection`, `hmac`, `mtls`, `basic`.
    #[serde(default)]
    pub methods: Vec<String>,
    /// For `jwt`: the issuers accepted (default: all configured issuers).
    #[serde(default)]
    pub issuers: Vec<String>,
    /// For `introspection`: the endpoint's name (default: the only one configured).
    #[serde(default)]
    pub introspection: Option<String>,
    /// Also accept an API key from this query parameter. Keys in URLs end up in logs and
    /// browser history; `check` warns.
    #[serde(default)]
    pub api_key_query_param: Option<String>,
    /// Scopes the caller must all hold.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Roles of which the caller must hold at least one.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Object-ownership rules (BOLA): every rule must hold, or the request is refused with 403
    /// before the upstream sees it.
    #[serde(default)]
    pub owner: Vec<FileOwnerRule>,
    /// What happens when a JWKS or introspection endpoint is unreachable and nothing is cached:
    /// `closed` (default: 503) or `open` (the request goes on unauthenticated: only sensible on
    /// routes that also accept anonymous callers; `check` warns).
    #[serde(default)]
    pub on_idp_outage: Option<String>,
    /// On a login route: the JSON pointer of the username in the request body, so failures are
    /// also counted per username.
    #[serde(default)]
    pub login_username: Option<String>,
}

/// One ownership rule: a value from the request must equal a value of the caller.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileOwnerRule {
    /// A `{param}` of the route's path template.
    #[serde(default)]
    pub path_param: Option<String>,
    /// A query parameter.
    #[serde(default)]
    pub query: Option<String>,
    /// A JSON pointer into the request body, e.g. `/customer_id`.
    #[serde(default)]
    pub body: Option<String>,
    /// What it must equal: `org_id`, `org_name`, `consumer_id`, `consumer_name`, `subject`, or
    /// `claim:<name>`.
    pub equals: String,
}

/// Where the store is.
#[derive(Debug, Clone)]
pub enum StoreSettings {
    /// A SQLite file.
    Sqlite {
        /// Its path.
        path: PathBuf,
    },
    /// A PostgreSQL database.
    Postgres {
        /// Connection URL.
        url: Secret,
        /// Connections per process.
        pool_size: usize,
        /// Schema, if not `public`.
        schema: Option<String>,
    },
}

/// Cluster state on Redis.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// Redis URL.
    pub redis_url: Secret,
    /// Key prefix.
    pub namespace: String,
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub struct IssuerSettings {
    /// The issuer's name in the config.
    pub name: String,
    /// Required `iss`.
    pub issuer: String,
    /// Accepted audiences.
    pub audiences: Vec<String>,
    /// Accepted algorithms (upper case, as in the JWS `alg` header).
    pub algorithms: Vec<String>,
    /// JWKS URL.
    pub jwks_url: Option<String>,
    /// OIDC discovery URL.
    pub discovery_url: Option<String>,
    /// Static JWKS, as read from the file.
    pub jwks_static: Option<String>,
    /// HMAC secret.
    pub hmac_secret: Option<Secret>,
    /// Leeway.
    pub leeway: Duration,
    /// Background refresh.
    pub refresh_interval: Duration,
    /// The claim naming the consumer.
    pub subject_claim: String,
    /// Plain HTTP allowed to non-loopback hosts.
    pub danger_allow_http: bool,
}

/// An introspection endpoint.
#[derive(Debug, Clone)]
pub struct IntrospectionSettings {
    /// Its name in the config.
    pub name: String,
    /// URL.
    pub endpoint: String,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: Secret,
    /// Cache bound for active tokens.
    pub cache_max_ttl: Duration,
    /// Cache time for inactive tokens.
    pub negative_ttl: Duration,
}

/// Failed-authentication throttling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BruteForceSettings {
    /// Failures per client IP before delays start.
    pub ip_threshold: u32,
    /// Failures per credential prefix or username before delays start.
    pub credential_threshold: u32,
    /// Failures before lockout.
    pub lockout_after: u32,
    /// Lockout duration.
    pub lockout_for: Duration,
    /// Counting window.
    pub window: Duration,
}

/// The validated `identity` section.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IdentityConfig {
    /// The store.
    pub store: StoreSettings,
    /// Cluster state, if any.
    pub cluster: Option<ClusterSettings>,
    /// API key hashing secret.
    pub key_secret: Secret,
    /// Identity header signing secret.
    pub upstream_signing_secret: Option<Secret>,
    /// Credential cache TTL.
    pub cache_ttl: Duration,
    /// API key header.
    pub api_key_header: HeaderName,
    /// JWT issuers by name.
    pub issuers: BTreeMap<String, IssuerSettings>,
    /// Introspection endpoints by name.
    pub introspection: BTreeMap<String, IntrospectionSettings>,
    /// HMAC signature timestamp window.
    pub hmac_window: Duration,
    /// Brute-force settings.
    pub brute_force: BruteForceSettings,
    /// SHA-256 of the admin token.
    pub admin_token_sha256: Option<[u8; 32]>,
}

/// An authentication method a route accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// A portcullis API key.
    ApiKey,
    /// A JWT from one of these issuers.
    Jwt {
        /// Issuer names.
        issuers: Vec<String>,
    },
    /// An opaque token checked at this introspection endpoint.
    Introspection {
        /// Endpoint name.
        endpoint: String,
    },
    /// An HMAC-signed request.
    Hmac,
    /// A client certificate.
    Mtls,
    /// HTTP Basic.
    Basic,
}

/// Where an ownership rule reads the object's owner from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OwnerSource {
    /// A path template parameter.
    PathParam(String),
    /// A query parameter.
    Query(String),
    /// A JSON pointer into the body.
    Body(String),
    /// A path parameter of the matched OpenAPI operation's template (`x-portcullis-owner`).
    OperationParam(String),
}

/// What an ownership rule compares against.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OwnerValue {
    /// The caller's organization id.
    OrgId,
    /// The caller's organization name.
    OrgName,
    /// The caller's consumer id.
    ConsumerId,
    /// The caller's consumer name.
    ConsumerName,
    /// The token's subject (or the consumer's external subject).
    Subject,
    /// A JWT claim.
    Claim(String),
}

/// One ownership rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRule {
    /// Where the owner comes from.
    pub source: OwnerSource,
    /// What it must equal.
    pub equals: OwnerValue,
}

/// What to do when an identity provider is unreachable and nothing is cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdpOutage {
    /// Answer 503.
    #[default]
    Closed,
    /// Go on unauthenticated.
    Open,
}

/// A route's validated auth policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteAuth {
    /// No credential needed.
    pub public: bool,
    /// Accepted methods (any of them).
    pub methods: Vec<AuthMethod>,
    /// API key query parameter, if allowed.
    pub api_key_query_param: Option<String>,
    /// Required scopes (all).
    pub scopes: Vec<String>,
    /// Required roles (any).
    pub roles: Vec<String>,
    /// Ownership rules (all).
    pub owner: Vec<OwnerRule>,
    /// IdP outage policy.
    pub on_idp_outage: IdpOutage,
    /// Username pointer on login routes.
    pub login_username: Option<String>,
}

impl RouteAuth {
    /// Whether the body must be seen (ownership rules on the body, HMAC body digests, login usernames).
    pub fn needs_body(&self) -> bool {
        self.methods.contains(&AuthMethod::Hmac)
            || self.login_username.is_some()
            || self.owner.iter().any(|r| matches!(r.source, OwnerSource::Body(_)))
    }
}

fn is_json_pointer(s: &str) -> bool {
    s.starts_with('/')
}

impl Builder<'_> {
    /// Ownership rules at key path `p` (`…owner`). `path`: the path template `path_param` rules
    /// name a parameter of; `operation`: the rules come from an OpenAPI operation
    /// (`x-portcullis-owner`), so `path_param` reads the operation's template.
    pub(crate) fn owner_rules(
        &mut self,
        p: &str,
        rules: &[FileOwnerRule],
        path: Option<&PathPattern>,
        operation: bool,
    ) -> Vec<OwnerRule> {
        let mut owner = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            let rp = format!("{p}[{i}]");
            let source = match (&r.path_param, &r.query, &r.body) {
                (Some(n), None, None) => {
                    let what = if operation { "operation's" } else { "route's" };
                    if path.is_some_and(|pp| !pp.param_names().any(|x| x == n)) {
                        self.c.error(
                            format!("{rp}.path_param"),
                            format!("the {what} path has no {{{n}}} parameter"),
                            format!("name a {{param}} of the {what} path"),
                        );
                    }
                    Some(if operation {
                        OwnerSource::OperationParam(n.clone())
                    } else {
                        OwnerSource::PathParam(n.clone())
                    })
                }
                (None, Some(q), None) => Some(OwnerSource::Query(q.clone())),
                (None, None, Some(b)) if is_json_pointer(b) => Some(OwnerSource::Body(b.clone())),
                (None, None, Some(b)) => {
                    self.c.error(format!("{rp}.body"), format!("{b:?} is not a JSON pointer"), "write /field/sub");
                    None
                }
                _ => {
                    self.c.error(&rp, "exactly one of path_param, query and body", "pick where the owner id is");
                    None
                }
            };
            let equals = match r.equals.as_str() {
                "org_id" => Some(OwnerValue::OrgId),
                "org_name" => Some(OwnerValue::OrgName),
                "consumer_id" => Some(OwnerValue::ConsumerId),
                "consumer_name" => Some(OwnerValue::ConsumerName),
                "subject" => Some(OwnerValue::Subject),
                c if c.strip_prefix("claim:").is_some_and(|n| !n.is_empty()) => {
                    Some(OwnerValue::Claim(c["claim:".len()..].to_owned()))
                }
                other => {
                    self.c.error(
                        format!("{rp}.equals"),
                        format!("unknown value {other:?}"),
                        "use org_id, org_name, consumer_id, consumer_name, subject or claim:<name>",
                    );
                    None
                }
            };
            if let (Some(source), Some(equals)) = (source, equals) {
                owner.push(OwnerRule { source, equals });
            }
        }
        owner
    }

    fn secret(&mut self, path: &str, reference: &str) -> Option<Secret> {
        match resolve_secret(reference, self.base_dir) {
            Ok(s) => Some(s),
            Err(e) => {
                self.c.error(path, e.to_string(), "write ${env:NAME} or ${file:path} and make sure it resolves");
                None
            }
        }
    }

    fn url(&mut self, path: &str, url: &str, danger_allow_http: bool) {
        let Ok(uri) = url.parse::<http::Uri>() else {
            self.c.error(path, format!("invalid URL {url:?}"), "write an absolute https:// URL");
            return;
        };
        let loopback = uri.host().is_some_and(|h| {
            h == "localhost" || h.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        });
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if loopback => {}
            Some("http") if danger_allow_http => {
                self.c.warn(path, "keys are fetched over plain HTTP: anyone on the path can replace them")
            }
            _ => self.c.error(
                path,
                format!("{url:?} must be an https:// URL (http:// only on loopback)"),
                "use https://, or set danger_allow_http: true (never in production)",
            ),
        }
    }

    pub(crate) fn identity(&mut self, f: &FileIdentity) -> Option<IdentityConfig> {
        let p = "identity";
        let store = match &f.store {
            None => Some(StoreSettings::Sqlite { path: self.base_dir.join("data/portcullis.db") }),
            Some(FileStore { sqlite: Some(s), postgres: None }) => {
                Some(StoreSettings::Sqlite { path: self.base_dir.join(&s.path) })
            }
            Some(FileStore { sqlite: None, postgres: Some(pg) }) => {
                let url = self.secret(&format!("{p}.store.postgres.url"), &pg.url);
                let pool_size = pg.pool_size.unwrap_or(8);
                if pool_size == 0 {
                    self.c.error(format!("{p}.store.postgres.pool_size"), "must be at least 1", "remove it for 8");
                }
                if let Some(s) = &pg.schema
                    && (s.is_empty()
                        || s.len() > 63
                        || s.starts_with(|c: char| c.is_ascii_digit())
                        || !s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                {
                    self.c.error(
                        format!("{p}.store.postgres.schema"),
                        format!("invalid schema name {s:?}"),
                        "use up to 63 lower-case letters, digits and _, not starting with a digit",
                    );
                }
                url.map(|url| StoreSettings::Postgres { url, pool_size, schema: pg.schema.clone() })
            }
            Some(_) => {
                self.c.error(
                    format!("{p}.store"),
                    "exactly one of `sqlite` and `postgres` must be set",
                    "write store: { sqlite: { path: data/portcullis.db } } or store: { postgres: { url: \"${env:PG_URL}\" } }",
                );
                None
            }
        };
        let cluster = f.cluster.as_ref().and_then(|c| {
            let redis_url = self.secret(&format!("{p}.cluster.redis_url"), &c.redis_url)?;
            let namespace = c.namespace.clone().unwrap_or_else(|| "default".into());
            if namespace.is_empty() || !namespace.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch)) {
                self.c.error(
                    format!("{p}.cluster.namespace"),
                    format!("invalid namespace {namespace:?}"),
                    "use letters, digits, - _ .",
                );
            }
            Some(ClusterSettings { redis_url, namespace })
        });
        if cluster.is_some() && matches!(store, Some(StoreSettings::Sqlite { .. })) {
            self.c.warn(
                format!("{p}.cluster"),
                "cluster state is on Redis but the store is a local SQLite file: nodes will not share consumers",
            );
        }
        let key_secret = self.secret(&format!("{p}.key_secret"), &f.key_secret);
        if let Some(s) = &key_secret
            && s.expose().len() < 32
        {
            self.c.error(
                format!("{p}.key_secret"),
                "the secret is shorter than 32 bytes",
                "use at least 32 random bytes, e.g. `openssl rand -hex 32`",
            );
        }
        let upstream_signing_secret =
            f.upstream_signing_secret.as_deref().and_then(|r| self.secret(&format!("{p}.upstream_signing_secret"), r));
        if f.upstream_signing_secret.is_none() {
            self.c.warn(
                format!("{p}.upstream_signing_secret"),
                "identity headers sent upstream are not signed: the upstream cannot tell them from forged ones",
            );
        }
        let cache_ttl = self.duration(&format!("{p}.cache_ttl"), f.cache_ttl.as_deref(), Duration::from_secs(30));
        let api_key_header = match f.api_key_header.as_deref().unwrap_or("x-api-key").parse::<HeaderName>() {
            Ok(h) => h,
            Err(_) => {
                self.c.error(
                    format!("{p}.api_key_header"),
                    "invalid header name",
                    "write a header name such as x-api-key",
                );
                HeaderName::from_static("x-api-key")
            }
        };

        let mut issuers = BTreeMap::new();
        for (name, fi) in &f.issuers {
            let ip = format!("{p}.issuers.{name}");
            if fi.audiences.is_empty() {
                self.c.error(format!("{ip}.audiences"), "no audience", "list the `aud` values this gateway accepts");
            }
            let mut algorithms = Vec::new();
            let src =
                if fi.algorithms.is_empty() { vec!["RS256".into(), "ES256".into()] } else { fi.algorithms.clone() };
            for (i, a) in src.iter().enumerate() {
                let up = a.to_ascii_uppercase();
                const KNOWN: [&str; 12] = [
                    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EDDSA", "HS256", "HS384",
                    "HS512",
                ];
                if !KNOWN.contains(&up.as_str()) {
                    self.c.error(
                        format!("{ip}.algorithms[{i}]"),
                        format!("unsupported algorithm {a:?}"),
                        "use RS256/384/512, PS256/384/512, ES256/384, EdDSA or HS256/384/512 (never none)",
                    );
                    continue;
                }
                algorithms.push(if up == "EDDSA" { "EdDSA".to_owned() } else { up });
            }
            let hmac_algs = algorithms.iter().any(|a| a.starts_with("HS"));
            let hmac_secret = fi.hmac_secret.as_deref().and_then(|r| self.secret(&format!("{ip}.hmac_secret"), r));
            if hmac_algs && hmac_secret.is_none() {
                self.c.error(
                    format!("{ip}.hmac_secret"),
                    "HS* algorithms need a secret",
                    "set hmac_secret: ${env:NAME}",
                );
            }
            if let Some(s) = &hmac_secret
                && s.expose().len() < 32
            {
                self.c.error(
                    format!("{ip}.hmac_secret"),
                    "HMAC secrets shorter than 32 bytes can be brute-forced offline",
                    "use at least 32 random bytes",
                );
            }
            if let Some(u) = &fi.jwks_url {
                self.url(&format!("{ip}.jwks_url"), u, fi.danger_allow_http);
            }
            if let Some(u) = &fi.discovery_url {
                self.url(&format!("{ip}.discovery_url"), u, fi.danger_allow_http);
            }
            let jwks_static = fi.jwks_file.as_deref().and_then(|f| {
                let (_, bytes) = self.file(&format!("{ip}.jwks_file"), f)?;
                match String::from_utf8(bytes) {
                    Ok(s) => Some(s),
                    Err(_) => {
                        self.c.error(format!("{ip}.jwks_file"), "not UTF-8", "use a JSON JWKS file");
                        None
                    }
                }
            });
            let asym = algorithms.iter().any(|a| !a.starts_with("HS"));
            if asym && fi.jwks_url.is_none() && fi.discovery_url.is_none() && jwks_static.is_none() {
                self.c.error(
                    &ip,
                    "no key source for its public-key algorithms",
                    "set jwks_url, discovery_url or jwks_file",
                );
            }
            issuers.insert(
                name.clone(),
                IssuerSettings {
                    name: name.clone(),
                    issuer: fi.issuer.clone(),
                    audiences: fi.audiences.clone(),
                    algorithms,
                    jwks_url: fi.jwks_url.clone(),
                    discovery_url: fi.discovery_url.clone(),
                    jwks_static,
                    hmac_secret,
                    leeway: self.duration(&format!("{ip}.leeway"), fi.leeway.as_deref(), Duration::from_secs(60)),
                    refresh_interval: self.duration(
                        &format!("{ip}.refresh_interval"),
                        fi.refresh_interval.as_deref(),
                        Duration::from_secs(300),
                    ),
                    subject_claim: fi.subject_claim.clone().unwrap_or_else(|| "sub".into()),
                    danger_allow_http: fi.danger_allow_http,
                },
            );
        }

        let mut introspection = BTreeMap::new();
        for (name, fi) in &f.introspection {
            let ip = format!("{p}.introspection.{name}");
            self.url(&format!("{ip}.endpoint"), &fi.endpoint, false);
            let secret = self.secret(&format!("{ip}.client_secret"), &fi.client_secret);
            let cache_max_ttl =
                self.duration(&format!("{ip}.cache_max_ttl"), fi.cache_max_ttl.as_deref(), Duration::from_secs(300));
            let negative_ttl =
                self.duration(&format!("{ip}.negative_ttl"), fi.negative_ttl.as_deref(), Duration::from_secs(30));
            if let Some(client_secret) = secret {
                introspection.insert(
                    name.clone(),
                    IntrospectionSettings {
                        name: name.clone(),
                        endpoint: fi.endpoint.clone(),
                        client_id: fi.client_id.clone(),
                        client_secret,
                        cache_max_ttl,
                        negative_ttl,
                    },
                );
            }
        }

        let bf = &f.brute_force;
        let brute_force = BruteForceSettings {
            ip_threshold: bf.ip_threshold.unwrap_or(10).max(1),
            credential_threshold: bf.credential_threshold.unwrap_or(5).max(1),
            lockout_after: bf.lockout_after.unwrap_or(20).max(1),
            lockout_for: self.duration(&format!("{p}.brute_force.lockout_for"), bf.lockout_for.as_deref(), MIN15),
            window: self.duration(&format!("{p}.brute_force.window"), bf.window.as_deref(), MIN15),
        };
        let admin_token_sha256 = f.admin_token_sha256.as_deref().and_then(|h| {
            let parsed = parse_hex32(h);
            if parsed.is_none() {
                self.c.error(
                    format!("{p}.admin_token_sha256"),
                    "not 64 lower-case hex digits",
                    "run `portcullis admin-token` and paste the sha256 it prints",
                );
            }
            parsed
        });
        Some(IdentityConfig {
            store: store?,
            cluster,
            key_secret: key_secret?,
            upstream_signing_secret,
            cache_ttl,
            api_key_header,
            issuers,
            introspection,
            hmac_window: self.duration(&format!("{p}.hmac.window"), f.hmac.window.as_deref(), Duration::from_secs(300)),
            brute_force,
            admin_token_sha256,
        })
    }

    /// Validates a route's `policy.auth` against the identity section. `identity` is `None` when
    /// the gateway runs without one: then only the absence of an auth block is allowed.
    pub(crate) fn route_auth(
        &mut self,
        p: &str,
        fa: Option<&FileRouteAuth>,
        identity: Option<&IdentityConfig>,
        path: Option<&PathPattern>,
    ) -> RouteAuth {
        let p = format!("{p}.policy.auth");
        let Some(fa) = fa else {
            if identity.is_some() {
                self.c.error(
                    &p,
                    "the route says nothing about authentication; with `identity` configured, routes are closed by default",
                    "add policy.auth: { methods: [api_key] } (or jwt, hmac, mtls, basic, introspection), or policy.auth: { public: true }",
                );
            }
            return RouteAuth { public: true, ..RouteAuth::default() };
        };
        let Some(identity) = identity else {
            if !fa.public || !fa.methods.is_empty() {
                self.c.error(&p, "authentication needs the `identity` section", "add identity: { key_secret: ... }");
            }
            return RouteAuth { public: true, ..RouteAuth::default() };
        };
        if fa.public && !fa.methods.is_empty() {
            self.c.error(&p, "a route cannot be both public and list methods", "remove `public` or `methods`");
        }
        if !fa.public && fa.methods.is_empty() {
            self.c.error(&p, "no authentication method", "list methods, or say public: true");
        }
        let mut methods = Vec::new();
        let mut seen = HashSet::new();
        for (i, m) in fa.methods.iter().enumerate() {
            if !seen.insert(m.as_str()) {
                self.c.error(format!("{p}.methods[{i}]"), format!("{m:?} listed twice"), "list each method once");
                continue;
            }
            match m.as_str() {
                "api_key" => methods.push(AuthMethod::ApiKey),
                "jwt" => {
                    let issuers = if fa.issuers.is_empty() {
                        identity.issuers.keys().cloned().collect()
                    } else {
                        fa.issuers.clone()
                    };
                    if issuers.is_empty() {
                        self.c.error(
                            format!("{p}.methods[{i}]"),
                            "no JWT issuer is configured",
                            "add identity.issuers",
                        );
                    }
                    for (j, iss) in fa.issuers.iter().enumerate() {
                        if !identity.issuers.contains_key(iss) {
                            self.c.error(
                                format!("{p}.issuers[{j}]"),
                                format!("unknown issuer {iss:?}"),
                                "use a name from identity.issuers",
                            );
                        }
                    }
                    methods.push(AuthMethod::Jwt { issuers });
                }
                "introspection" => {
                    let endpoint = match &fa.introspection {
                        Some(n) if identity.introspection.contains_key(n) => Some(n.clone()),
                        Some(n) => {
                            self.c.error(
                                format!("{p}.introspection"),
                                format!("unknown introspection endpoint {n:?}"),
                                "use a name from identity.introspection",
                            );
                            None
                        }
                        None if identity.introspection.len() == 1 => identity.introspection.keys().next().cloned(),
                        None => {
                            self.c.error(
                                format!("{p}.introspection"),
                                "say which introspection endpoint",
                                "set introspection: <name from identity.introspection>",
                            );
                            None
                        }
                    };
                    if let Some(endpoint) = endpoint {
                        methods.push(AuthMethod::Introspection { endpoint });
                    }
                }
                "hmac" => methods.push(AuthMethod::Hmac),
                "mtls" => methods.push(AuthMethod::Mtls),
                "basic" => methods.push(AuthMethod::Basic),
                other => self.c.error(
                    format!("{p}.methods[{i}]"),
                    format!("unknown method {other:?}"),
                    "use api_key, jwt, introspection, hmac, mtls or basic",
                ),
            }
        }
        if fa.api_key_query_param.is_some() {
            if methods.contains(&AuthMethod::ApiKey) {
                self.c.warn(
                    format!("{p}.api_key_query_param"),
                    "API keys in URLs end up in logs, proxies and browser history",
                );
            } else {
                self.c.error(format!("{p}.api_key_query_param"), "the route does not accept api_key", "add api_key");
            }
        }
        let owner = self.owner_rules(&format!("{p}.owner"), &fa.owner, path, false);
        if fa.public && (!fa.scopes.is_empty() || !fa.roles.is_empty() || !owner.is_empty()) {
            self.c.error(&p, "a public route cannot require scopes, roles or ownership", "remove `public`");
        }
        let on_idp_outage = match fa.on_idp_outage.as_deref() {
            None | Some("closed") => IdpOutage::Closed,
            Some("open") => {
                self.c.warn(
                    format!("{p}.on_idp_outage"),
                    "when the identity provider is down, requests go on unauthenticated",
                );
                IdpOutage::Open
            }
            Some(o) => {
                self.c.error(format!("{p}.on_idp_outage"), format!("unknown value {o:?}"), "use closed or open");
                IdpOutage::Closed
            }
        };
        if let Some(u) = &fa.login_username
            && !is_json_pointer(u)
        {
            self.c.error(format!("{p}.login_username"), format!("{u:?} is not a JSON pointer"), "write /username");
        }
        RouteAuth {
            public: fa.public,
            methods,
            api_key_query_param: fa.api_key_query_param.clone(),
            scopes: fa.scopes.clone(),
            roles: fa.roles.clone(),
            owner,
            on_idp_outage,
            login_username: fa.login_username.clone(),
        }
    }
}

const MIN15: Duration = Duration::from_secs(15 * 60);

/// Parses 64 lower-case hex digits.
pub fn parse_hex32(h: &str) -> Option<[u8; 32]> {
    if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in h.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}
