//! The configuration file as written: serde types, `deny_unknown_fields`, defaults documented.
//! These become the typed [`Config`](crate::Config) in `typed.rs`; nothing else reads them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// The portcullis configuration file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Where the gateway accepts client traffic. At least one.
    pub listeners: Vec<FileListener>,
    /// Worker threads, each with its own event loop, accept socket (`SO_REUSEPORT`) and upstream
    /// connections. Default: the number of CPUs this process may run on.
    #[serde(default)]
    pub workers: Option<usize>,
    /// The admin listener: `/metrics`, `/healthz`, `/readyz`. Loopback by default.
    #[serde(default)]
    pub admin: FileAdmin,
    /// Size and count limits applied to every request.
    #[serde(default)]
    pub limits: FileLimits,
    /// Timeouts applied to every request.
    #[serde(default)]
    pub timeouts: FileTimeouts,
    /// Addresses or CIDRs of proxies whose `X-Forwarded-For`, `Forwarded` and `X-Request-Id`
    /// headers are trusted. Empty (the default): the TCP peer is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Request-path canonicalisation.
    #[serde(default)]
    pub paths: FilePaths,
    /// The per-request access log.
    #[serde(default)]
    pub access_log: FileAccessLog,
    /// Named upstream services.
    pub upstreams: BTreeMap<String, FileUpstream>,
    /// Routes, matched in order: the first route whose host, path and method match wins.
    pub routes: Vec<FileRoute>,
    /// Consumers, credentials and how callers authenticate. When set, every route must say how
    /// it is authenticated (or that it is public).
    #[serde(default)]
    pub identity: Option<crate::identity::FileIdentity>,
    /// Plans, quotas, shared (Redis) counters, the global in-flight cap and usage metering.
    #[serde(default)]
    pub traffic: Option<crate::traffic::FileTraffic>,
}

/// A client-facing listener.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileListener {
    /// A name used in logs and metrics.
    pub name: String,
    /// Address and port, e.g. `127.0.0.1:8080` or `[::]:443`.
    pub bind: String,
    /// Terminate TLS on this listener (HTTP/2 is offered through ALPN).
    #[serde(default)]
    pub tls: Option<FileListenerTls>,
    /// Accept HTTP/2 without TLS by prior knowledge (h2c). Off by default.
    #[serde(default)]
    pub h2c: bool,
}

/// TLS termination settings: PEM files, reloaded when they change.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileListenerTls {
    /// PEM certificate chain, leaf first. Relative paths are relative to the config file.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// `Strict-Transport-Security` max-age sent on this listener's responses. Default one year; 0 turns it off.
    #[serde(default)]
    pub hsts_max_age: Option<String>,
    /// Ask clients for a certificate (mutual TLS), verified against these CAs and CRLs.
    #[serde(default)]
    pub client_auth: Option<FileClientAuth>,
}

/// Mutual TLS: client certificates verified at the handshake; routes with `methods: [mtls]` map
/// them to consumers.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileClientAuth {
    /// PEM bundle of the CAs that issue client certificates.
    pub ca_file: String,
    /// PEM CRL files; a revoked certificate fails the handshake.
    #[serde(default)]
    pub crl_files: Vec<String>,
    /// Refuse the handshake without a certificate. Default false: routes that need one say so.
    #[serde(default)]
    pub required: bool,
}

/// The admin listener.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileAdmin {
    /// Address and port. Default `127.0.0.1:9901`. A non-loopback address needs
    /// `danger_public_admin: true`.
    #[serde(default = "default_admin_bind")]
    pub bind: String,
    /// Allow binding the admin listener to a non-loopback address.
    #[serde(default)]
    pub danger_public_admin: bool,
}

impl Default for FileAdmin {
    fn default() -> Self {
        Self { bind: default_admin_bind(), danger_public_admin: false }
    }
}

fn default_admin_bind() -> String {
    "127.0.0.1:9901".into()
}

/// Limits. Sizes are bytes.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    /// Total size of the request line and headers. Default 32768.
    pub max_header_bytes: Option<usize>,
    /// Number of request headers. Default 100.
    pub max_headers: Option<usize>,
    /// Length of the request target (path and query). Default 8192.
    pub max_uri_bytes: Option<usize>,
    /// Request body size, unless a route sets its own. Default 1048576 (1 MiB).
    pub max_request_body_bytes: Option<u64>,
    /// Concurrent client connections; more are answered 503 and closed. Default 10000.
    pub max_connections: Option<usize>,
    /// Requests in flight across all connections; more are answered 503. Default 10000.
    pub max_inflight_requests: Option<usize>,
}

/// Timeouts, as durations such as `500ms`, `10s`, `2m`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileTimeouts {
    /// Time to receive the request head. Default `10s`.
    pub header_read: Option<String>,
    /// Time to receive the whole request body. Default `30s`.
    pub request_body: Option<String>,
    /// Time to connect to an upstream target. Default `2s`.
    pub upstream_connect: Option<String>,
    /// Time for the upstream's response head, unless a route sets its own. Default `30s`.
    pub upstream_response: Option<String>,
    /// Idle time on a kept-alive client connection. Default `60s`.
    pub idle: Option<String>,
}

/// Request-path canonicalisation. Every stage, the router and the upstream see the same path.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilePaths {
    /// Collapse `//` into `/`. Default true.
    pub merge_slashes: Option<bool>,
    /// Let `%2F` and `%5C` through (kept encoded). Default false: rejected with 400.
    #[serde(default)]
    pub danger_allow_encoded_slash: bool,
}

/// The access log: one JSON line per request, metadata only.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileAccessLog {
    /// Write access log lines. Default true.
    pub enabled: Option<bool>,
    /// Where: `stdout` (default), `stderr`, or a file path.
    pub target: Option<String>,
    /// Include the raw query string. Default false: query strings carry tokens and personal data.
    #[serde(default)]
    pub log_query: bool,
}

/// An upstream service: one or more targets.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileUpstream {
    /// `http://host:port` or `https://host:port` URLs, served round-robin.
    pub targets: Vec<String>,
    /// `http1` (default) or `http2`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// TLS to the upstream (for `https://` targets).
    #[serde(default)]
    pub tls: FileUpstreamTls,
    /// Passive health checking.
    #[serde(default)]
    pub health: FileHealth,
    /// Retry an idempotent request once on another target after a connect failure. Default true.
    #[serde(default)]
    pub retry_idempotent: Option<bool>,
}

/// TLS to an upstream. Certificates are verified by default.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileUpstreamTls {
    /// PEM bundle of CAs to trust instead of the built-in web roots.
    pub ca_file: Option<String>,
    /// The name to verify the certificate against (default: the target's host).
    pub server_name: Option<String>,
    /// Skip certificate verification. Never do this in production; `check` warns.
    #[serde(default)]
    pub danger_skip_verify: bool,
}

/// Passive health checking: eject a target after repeated connect failures.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileHealth {
    /// Consecutive connect failures before a target is ejected. Default 3.
    pub eject_after_failures: Option<u32>,
    /// How long an ejected target stays out. Default `10s`.
    pub eject_for: Option<String>,
}

/// A route: which requests go to which upstream, and the policy applied on the way.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRoute {
    /// A unique name used in logs and metrics.
    pub name: String,
    /// Host names this route answers (exact, or `*.example.com`). Empty: any host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// An exact path or template, e.g. `/customers/{id}`. Exactly one of `path` and `prefix`.
    #[serde(default)]
    pub path: Option<String>,
    /// A path prefix matched by whole segments: `/api` matches `/api` and `/api/x`, not `/apix`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Allowed methods. Empty: any method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// The upstream's name.
    pub upstream: String,
    /// Security and traffic policy for this route.
    #[serde(default)]
    pub policy: FilePolicy,
}

/// A route's policy block. Later stages add their settings here.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilePolicy {
    /// Request body limit for this route (bytes).
    pub max_request_body_bytes: Option<u64>,
    /// Upstream response timeout for this route.
    pub upstream_timeout: Option<String>,
    /// Authentication and authorization.
    #[serde(default)]
    pub auth: Option<crate::identity::FileRouteAuth>,
    /// Rate limits and in-flight limits for this route.
    #[serde(default)]
    pub rate_limit: Option<crate::traffic::FileRouteRateLimit>,
    /// Attack detection (see `docs/inspection.md`). Absent: no inspection.
    #[serde(default)]
    pub inspect: Option<crate::inspect::FileInspect>,
    /// Data exposure: response scanning, masking, shaping, safe errors (see `docs/exposure.md`).
    #[serde(default)]
    pub exposure: Option<crate::exposure::FileExposure>,
    /// CORS, answered by the gateway (see `docs/exposure.md`). Absent: the gateway adds no CORS
    /// headers and passes the upstream's.
    #[serde(default)]
    pub cors: Option<crate::browser::FileCors>,
    /// Attributes forced onto the upstream's `Set-Cookie` headers. Absent: cookies pass as set.
    #[serde(default)]
    pub cookies: Option<crate::browser::FileCookies>,
    /// The OpenAPI contract this route enforces (see `docs/contract.md`). Absent: none.
    #[serde(default)]
    pub contract: Option<crate::contract::FileContract>,
}
