//! The typed configuration the gateway runs on, built once from a [`FileConfig`].

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use portcullis_core::path::PathOptions;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;

use crate::error::{Collector, ConfigWarning};
use crate::file::{FileConfig, FileListenerTls, FileRoute, FileUpstream};
use crate::pattern::{HostMatch, PathPattern};

/// The whole, validated configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Client-facing listeners.
    pub listeners: Vec<ListenerConfig>,
    /// Worker threads (event loops).
    pub workers: usize,
    /// The admin listener's address.
    pub admin_bind: SocketAddr,
    /// Request limits.
    pub limits: Limits,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Proxies whose forwarding headers are trusted.
    pub trusted_proxies: Vec<IpNet>,
    /// Path canonicalisation options.
    pub paths: PathOptions,
    /// Access log settings.
    pub access_log: AccessLogConfig,
    /// Upstreams by name.
    pub upstreams: BTreeMap<String, Arc<UpstreamConfig>>,
    /// Routes in match order.
    pub routes: Vec<RouteConfig>,
    /// Identity, if configured.
    pub identity: Option<Arc<crate::identity::IdentityConfig>>,
    /// Traffic control (plans, cluster counters, usage), if configured.
    pub traffic: Option<Arc<crate::traffic::TrafficConfig>>,
    /// Files the configuration depends on (itself, certificates, keys, CA bundles): watched for reload.
    pub files: Vec<PathBuf>,
    /// Risky settings `check` reports.
    pub warnings: Vec<ConfigWarning>,
}

/// A client-facing listener.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Its name.
    pub name: Arc<str>,
    /// Its address.
    pub bind: SocketAddr,
    /// TLS termination, if any.
    pub tls: Option<ListenerTls>,
    /// Whether h2c (HTTP/2 prior knowledge without TLS) is accepted.
    pub h2c: bool,
}

/// A loaded TLS certificate and key.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    /// The certificate chain and signing key.
    pub certified_key: Arc<CertifiedKey>,
    /// HSTS max-age; `None` sends no HSTS header.
    pub hsts_max_age: Option<Duration>,
    /// Mutual TLS settings.
    pub client_auth: Option<ClientAuth>,
}

/// Mutual TLS: what client certificates are verified against.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    /// PEM CA bundle.
    pub ca_pem: Vec<u8>,
    /// PEM CRLs.
    pub crl_pems: Vec<Vec<u8>>,
    /// A certificate is required at the handshake.
    pub required: bool,
}

/// Request limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Request line and headers, bytes.
    pub max_header_bytes: usize,
    /// Number of headers.
    pub max_headers: usize,
    /// Request target length.
    pub max_uri_bytes: usize,
    /// Default request body limit.
    pub max_request_body_bytes: u64,
    /// Concurrent connections.
    pub max_connections: usize,
    /// Requests in flight.
    pub max_inflight_requests: usize,
}

/// Timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// Request head.
    pub header_read: Duration,
    /// Whole request body.
    pub request_body: Duration,
    /// Upstream connect.
    pub upstream_connect: Duration,
    /// Upstream response head (default for routes).
    pub upstream_response: Duration,
    /// Client keep-alive idle.
    pub idle: Duration,
}

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// Appended to a file.
    File(PathBuf),
}

/// Access log settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    /// Whether lines are written.
    pub enabled: bool,
    /// Where.
    pub target: AccessLogTarget,
    /// Whether the query string is logged.
    pub log_query: bool,
}

/// HTTP version spoken to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (the default).
    Http1,
    /// HTTP/2 (prior knowledge over cleartext, ALPN over TLS).
    Http2,
}

/// One upstream target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Whether it is spoken to over TLS.
    pub tls: bool,
    /// `host:port`, as sent in the URI authority.
    pub authority: Arc<str>,
}

/// An upstream service.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Its name.
    pub name: Arc<str>,
    /// Targets, served round-robin.
    pub targets: Vec<Target>,
    /// HTTP version.
    pub protocol: UpstreamProtocol,
    /// Roots to verify upstream certificates with; `None` uses the built-in web roots.
    pub ca_roots: Option<Arc<RootCertStore>>,
    /// The name verified in the upstream certificate, if not the target's host.
    pub server_name: Option<ServerName<'static>>,
    /// Certificate verification is off (warned about).
    pub danger_skip_verify: bool,
    /// Consecutive connect failures before ejection.
    pub eject_after_failures: u32,
    /// How long an ejected target stays out.
    pub eject_for: Duration,
    /// Retry idempotent requests once on another target after a connect failure.
    pub retry_idempotent: bool,
}

/// A route.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Its name.
    pub name: Arc<str>,
    /// Host matchers; empty matches any host.
    pub hosts: Vec<HostMatch>,
    /// The path matcher.
    pub path: PathPattern,
    /// Allowed methods; empty allows any.
    pub methods: Vec<http::Method>,
    /// The upstream.
    pub upstream: Arc<UpstreamConfig>,
    /// Body limit.
    pub max_request_body_bytes: u64,
    /// Upstream response timeout.
    pub upstream_timeout: Duration,
    /// Authentication and authorization.
    pub auth: crate::identity::RouteAuth,
    /// Rate limits and in-flight limits.
    pub rate_limit: Option<Arc<portcullis_traffic::RouteTraffic>>,
    /// Attack detection, if the route turns it on.
    pub inspect: Option<Arc<crate::inspect::InspectConfig>>,
    /// Data exposure (response masking, shaping, safe errors), when configured.
    pub exposure: Option<Arc<portcullis_exposure::RouteExposure>>,
    /// CORS answered by the gateway, when configured.
    pub cors: Option<Arc<crate::browser::CorsPolicy>>,
    /// Attributes forced onto upstream cookies, when configured.
    pub cookies: Option<crate::browser::CookiePolicy>,
    /// The OpenAPI contract, when configured.
    pub contract: Option<Arc<portcullis_contract::RouteContract>>,
    /// Per-operation policy from the contract's `x-portcullis-*` extensions, by operation id
    /// (only operations that carry some).
    pub operations: std::collections::HashMap<Arc<str>, crate::contract::OperationPolicy>,
}

/// Parses a duration such as `250ms`, `10s`, `2m`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| e.to_string())
}

pub(crate) struct Builder<'a> {
    pub(crate) base_dir: &'a Path,
    pub(crate) c: Collector,
    pub(crate) files: Vec<PathBuf>,
    /// Contracts compiled so far, by documents and options: routes sharing documents share one.
    pub(crate) contracts: std::collections::HashMap<String, (Arc<portcullis_contract::Contract>, Arc<Vec<String>>)>,
}

impl Builder<'_> {
    pub(crate) fn duration(&mut self, path: &str, value: Option<&str>, default: Duration) -> Duration {
        match value {
            None => default,
            Some(v) => match parse_duration(v) {
                Ok(d) if d.is_zero() => {
                    self.c.error(
                        path,
                        "must be longer than 0",
                        "set a positive duration, or remove the key for the default",
                    );
                    default
                }
                Ok(d) => d,
                Err(e) => {
                    self.c.error(
                        path,
                        format!("invalid duration {v:?}: {e}"),
                        "write a duration such as 500ms, 10s or 2m",
                    );
                    default
                }
            },
        }
    }

    fn positive(&mut self, path: &str, value: Option<usize>, default: usize) -> usize {
        match value {
            Some(0) => {
                self.c.error(
                    path,
                    "must be greater than 0",
                    "remove the key to use the default, or set a positive number",
                );
                default
            }
            Some(v) => v,
            None => default,
        }
    }

    fn socket(&mut self, path: &str, value: &str) -> Option<SocketAddr> {
        match value.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.c.error(
                    path,
                    format!("invalid address {value:?}"),
                    "write an IP address and port, e.g. 127.0.0.1:8080 or [::1]:8443",
                );
                None
            }
        }
    }

    pub(crate) fn file(&mut self, path: &str, value: &str) -> Option<(PathBuf, Vec<u8>)> {
        let full = self.base_dir.join(value);
        match std::fs::read(&full) {
            Ok(bytes) => {
                self.files.push(full.clone());
                Some((full, bytes))
            }
            Err(e) => {
                self.c.error(
                    path,
                    format!("cannot read {}: {e}", full.display()),
                    "point it at a readable file (relative paths are relative to the config file)",
                );
                None
            }
        }
    }

    pub(crate) fn build(mut self, f: &FileConfig) -> Result<Config, crate::ConfigErrors> {
        let defaults = Timeouts {
            header_read: Duration::from_secs(10),
            request_body: Duration::from_secs(30),
            upstream_connect: Duration::from_secs(2),
            upstream_response: Duration::from_secs(30),
            idle: Duration::from_secs(60),
        };
        let t = &f.timeouts;
        let timeouts = Timeouts {
            header_read: self.duration("timeouts.header_read", t.header_read.as_deref(), defaults.header_read),
            request_body: self.duration("timeouts.request_body", t.request_body.as_deref(), defaults.request_body),
            upstream_connect: self.duration(
                "timeouts.upstream_connect",
                t.upstream_connect.as_deref(),
                defaults.upstream_connect,
            ),
            upstream_response: self.duration(
                "timeouts.upstream_response",
                t.upstream_response.as_deref(),
                defaults.upstream_response,
            ),
            idle: self.duration("timeouts.idle", t.idle.as_deref(), defaults.idle),
        };
        let l = &f.limits;
        let limits = Limits {
            max_header_bytes: self.positive("limits.max_header_bytes", l.max_header_bytes, 32 * 1024),
            max_headers: self.positive("limits.max_headers", l.max_headers, 100),
            max_uri_bytes: self.positive("limits.max_uri_bytes", l.max_uri_bytes, 8192),
            max_request_body_bytes: l.max_request_body_bytes.unwrap_or(1024 * 1024),
            max_connections: self.positive("limits.max_connections", l.max_connections, 10_000),
            max_inflight_requests: self.positive("limits.max_inflight_requests", l.max_inflight_requests, 10_000),
        };
        if limits.max_header_bytes < 8192 {
            self.c.error(
                "limits.max_header_bytes",
                "must be at least 8192",
                "raise it to 8192 or more (HTTP/1 parsing needs a buffer this large)",
            );
        }

        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let workers = match f.workers {
            None => cpus,
            Some(n @ 1..=1024) => n,
            Some(_) => {
                self.c.error("workers", "must be between 1 and 1024", "remove it to use one worker per CPU");
                cpus
            }
        };
        let mut listeners = Vec::new();
        if f.listeners.is_empty() {
            self.c.error("listeners", "no listener", "add a listener, e.g. { name: public, bind: 127.0.0.1:8080 }");
        }
        let mut listener_names = HashSet::new();
        for (i, fl) in f.listeners.iter().enumerate() {
            let p = format!("listeners[{i}]");
            if !listener_names.insert(fl.name.clone()) {
                self.c.error(
                    format!("{p}.name"),
                    format!("duplicate listener name {:?}", fl.name),
                    "give every listener its own name",
                );
            }
            let bind = self.socket(&format!("{p}.bind"), &fl.bind);
            let tls = fl.tls.as_ref().and_then(|t| self.listener_tls(&format!("{p}.tls"), t));
            if let Some(bind) = bind {
                listeners.push(ListenerConfig { name: Arc::from(fl.name.as_str()), bind, tls, h2c: fl.h2c });
            }
        }

        let admin_bind = self.socket("admin.bind", &f.admin.bind).unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9901)));
        if !admin_bind.ip().is_loopback() {
            if f.admin.danger_public_admin {
                self.c.warn("admin.bind", "the admin listener is reachable from other hosts");
            } else {
                self.c.error(
                    "admin.bind",
                    "the admin listener must be bound to a loopback address",
                    "bind it to 127.0.0.1 or [::1], or set admin.danger_public_admin: true",
                );
            }
        }

        let mut trusted_proxies = Vec::new();
        for (i, s) in f.trusted_proxies.iter().enumerate() {
            let parsed = s.parse::<IpNet>().or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from));
            match parsed {
                Ok(n) => trusted_proxies.push(n),
                Err(_) => self.c.error(
                    format!("trusted_proxies[{i}]"),
                    format!("invalid address or CIDR {s:?}"),
                    "write an address (10.0.0.1) or a CIDR (10.0.0.0/8)",
                ),
            }
        }

        let paths = PathOptions {
            merge_slashes: f.paths.merge_slashes.unwrap_or(true),
            danger_allow_encoded_slash: f.paths.danger_allow_encoded_slash,
        };
        if paths.danger_allow_encoded_slash {
            self.c.warn(
                "paths.danger_allow_encoded_slash",
                "encoded slashes reach the upstream; it may decode them and see a different path than the policy did",
            );
        }

        let access_log = AccessLogConfig {
            enabled: f.access_log.enabled.unwrap_or(true),
            target: match f.access_log.target.as_deref() {
                None | Some("stdout") => AccessLogTarget::Stdout,
                Some("stderr") => AccessLogTarget::Stderr,
                Some(p) => AccessLogTarget::File(self.base_dir.join(p)),
            },
            log_query: f.access_log.log_query,
        };
        if access_log.log_query {
            self.c.warn(
                "access_log.log_query",
                "query strings often carry tokens and personal data; they will be logged",
            );
        }

        let mut upstreams = BTreeMap::new();
        for (name, fu) in &f.upstreams {
            if let Some(u) = self.upstream(name, fu, &timeouts) {
                upstreams.insert(name.clone(), Arc::new(u));
            }
        }

        let identity = f.identity.as_ref().and_then(|i| self.identity(i)).map(Arc::new);
        let all_route_names: HashSet<String> = f.routes.iter().map(|r| r.name.clone()).collect();
        let traffic =
            f.traffic.as_ref().and_then(|t| self.traffic(t, &all_route_names, identity.is_some())).map(Arc::new);
        let cluster = f.traffic.as_ref().is_some_and(|t| t.cluster.is_some());
        let mut routes = Vec::new();
        let mut route_names = HashSet::new();
        if f.routes.is_empty() {
            self.c.error("routes", "no route", "add a route; requests matching no route are answered 404");
        }
        for (i, fr) in f.routes.iter().enumerate() {
            let p = format!("routes[{i}]");
            if !route_names.insert(fr.name.clone()) {
                self.c.error(
                    format!("{p}.name"),
                    format!("duplicate route name {:?}", fr.name),
                    "give every route its own name",
                );
            }
            let rate_limit = self.route_rate_limit(&p, fr.policy.rate_limit.as_ref(), identity.is_some(), cluster);
            if let Some(mut r) = self.route(&p, fr, &upstreams, &limits, &timeouts, identity.as_deref()) {
                r.rate_limit = rate_limit;
                r.operations = self.operation_policies(fr, &r, identity.is_some(), cluster);
                routes.push(r);
            }
        }

        if !self.c.errors.is_empty() {
            return Err(crate::ConfigErrors(self.c.errors));
        }
        Ok(Config {
            listeners,
            workers,
            admin_bind,
            limits,
            timeouts,
            trusted_proxies,
            paths,
            access_log,
            upstreams,
            routes,
            identity,
            traffic,
            files: self.files,
            warnings: self.c.warnings,
        })
    }

    fn listener_tls(&mut self, p: &str, t: &FileListenerTls) -> Option<ListenerTls> {
        let cert = self.file(&format!("{p}.cert_file"), &t.cert_file);
        let key = self.file(&format!("{p}.key_file"), &t.key_file);
        let hsts_max_age = match t.hsts_max_age.as_deref() {
            None => Some(Duration::from_secs(365 * 24 * 3600)),
            Some(v) => match parse_duration(v) {
                Ok(d) if d.is_zero() => None,
                Ok(d) => Some(d),
                Err(e) => {
                    self.c.error(
                        format!("{p}.hsts_max_age"),
                        format!("invalid duration {v:?}: {e}"),
                        "write a duration such as 365d, or 0s to turn HSTS off",
                    );
                    None
                }
            },
        };
        let client_auth = t.client_auth.as_ref().and_then(|ca| {
            let (_, ca_pem) = self.file(&format!("{p}.client_auth.ca_file"), &ca.ca_file)?;
            let mut crl_pems = Vec::new();
            for (i, f) in ca.crl_files.iter().enumerate() {
                let (_, pem) = self.file(&format!("{p}.client_auth.crl_files[{i}]"), f)?;
                crl_pems.push(pem);
            }
            Some(ClientAuth { ca_pem, crl_pems, required: ca.required })
        });
        let ((_, cert), (_, key)) = (cert?, key?);
        let chain: Vec<CertificateDer<'static>> =
            match CertificateDer::pem_slice_iter(&cert).collect::<Result<Vec<_>, _>>() {
                Ok(c) if !c.is_empty() => c,
                _ => {
                    self.c.error(
                        format!("{p}.cert_file"),
                        "no PEM certificate found",
                        "use a PEM file with the leaf certificate first, then intermediates",
                    );
                    return None;
                }
            };
        let key = match PrivateKeyDer::from_pem_slice(&key) {
            Ok(k) => k,
            Err(_) => {
                self.c.error(
                    format!("{p}.key_file"),
                    "no PEM private key found",
                    "use a PEM PKCS#8, PKCS#1 or SEC1 private key",
                );
                return None;
            }
        };
        let signing_key = match rustls::crypto::ring::sign::any_supported_type(&key) {
            Ok(k) => k,
            Err(e) => {
                self.c.error(
                    format!("{p}.key_file"),
                    format!("unsupported private key: {e}"),
                    "use an RSA, ECDSA (P-256/P-384) or Ed25519 key",
                );
                return None;
            }
        };
        let ck = CertifiedKey::new(chain, signing_key);
        if let Err(e) = ck.keys_match()
            && !matches!(e, rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown))
        {
            self.c.error(
                format!("{p}.key_file"),
                "the private key does not match the certificate",
                "use the key the certificate was issued for",
            );
            return None;
        }
        Some(ListenerTls { certified_key: Arc::new(ck), hsts_max_age, client_auth })
    }

    fn upstream(&mut self, name: &str, fu: &FileUpstream, timeouts: &Timeouts) -> Option<UpstreamConfig> {
        let p = format!("upstreams.{name}");
        let _ = timeouts;
        let mut targets = Vec::new();
        if fu.targets.is_empty() {
            self.c.error(format!("{p}.targets"), "no target", "add at least one target such as http://127.0.0.1:3000");
        }
        for (i, t) in fu.targets.iter().enumerate() {
            match parse_target(t) {
                Ok(t) => targets.push(t),
                Err(msg) => self.c.error(
                    format!("{p}.targets[{i}]"),
                    msg,
                    "write http://host:port or https://host:port with no path",
                ),
            }
        }
        let protocol = match fu.protocol.as_deref() {
            None | Some("http1") => UpstreamProtocol::Http1,
            Some("http2") => UpstreamProtocol::Http2,
            Some(other) => {
                self.c.error(format!("{p}.protocol"), format!("unknown protocol {other:?}"), "use http1 or http2");
                UpstreamProtocol::Http1
            }
        };
        let ca_roots = fu.tls.ca_file.as_deref().and_then(|ca| {
            let path = format!("{p}.tls.ca_file");
            let (_, pem) = self.file(&path, ca)?;
            let mut store = RootCertStore::empty();
            let mut added = 0;
            for c in CertificateDer::pem_slice_iter(&pem).flatten() {
                if store.add(c).is_ok() {
                    added += 1;
                }
            }
            if added == 0 {
                self.c.error(path, "no usable CA certificate found", "use a PEM bundle of CA certificates");
                return None;
            }
            Some(Arc::new(store))
        });
        let server_name = fu.tls.server_name.as_deref().and_then(|s| match ServerName::try_from(s.to_owned()) {
            Ok(n) => Some(n),
            Err(_) => {
                self.c.error(
                    format!("{p}.tls.server_name"),
                    format!("invalid server name {s:?}"),
                    "write a DNS name or an IP address",
                );
                None
            }
        });
        if fu.tls.danger_skip_verify {
            self.c.warn(
                format!("{p}.tls.danger_skip_verify"),
                "upstream certificates are not verified: anyone on the path can impersonate the upstream",
            );
        }
        let eject_after_failures = fu.health.eject_after_failures.unwrap_or(3);
        if eject_after_failures == 0 {
            self.c.error(format!("{p}.health.eject_after_failures"), "must be at least 1", "set 1 or more");
        }
        let eject_for =
            self.duration(&format!("{p}.health.eject_for"), fu.health.eject_for.as_deref(), Duration::from_secs(10));
        Some(UpstreamConfig {
            name: Arc::from(name),
            targets,
            protocol,
            ca_roots,
            server_name,
            danger_skip_verify: fu.tls.danger_skip_verify,
            eject_after_failures,
            eject_for,
            retry_idempotent: fu.retry_idempotent.unwrap_or(true),
        })
    }

    fn route(
        &mut self,
        p: &str,
        fr: &FileRoute,
        upstreams: &BTreeMap<String, Arc<UpstreamConfig>>,
        limits: &Limits,
        timeouts: &Timeouts,
        identity: Option<&crate::identity::IdentityConfig>,
    ) -> Option<RouteConfig> {
        let mut hosts = Vec::new();
        for (i, h) in fr.hosts.iter().enumerate() {
            match HostMatch::parse(h) {
                Some(m) => hosts.push(m),
                None => self.c.error(
                    format!("{p}.hosts[{i}]"),
                    format!("invalid host {h:?}"),
                    "write a host name such as api.example.com or *.example.com, without port",
                ),
            }
        }
        let path = match (&fr.path, &fr.prefix) {
            (Some(path), None) => PathPattern::parse(path, false).map_err(|e| (format!("{p}.path"), e)),
            (None, Some(prefix)) => PathPattern::parse(prefix, true).map_err(|e| (format!("{p}.prefix"), e)),
            _ => {
                self.c.error(
                    p,
                    "a route needs exactly one of `path` and `prefix`",
                    "set path: /customers/{id} or prefix: /api",
                );
                return None;
            }
        };
        let path = match path {
            Ok(pp) => Some(pp),
            Err((key, e)) => {
                self.c.error(key, e.to_string(), "write a canonical path such as /customers/{id}");
                None
            }
        };
        let mut methods = Vec::new();
        for (i, m) in fr.methods.iter().enumerate() {
            match http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                Ok(m) => methods.push(m),
                Err(_) => self.c.error(
                    format!("{p}.methods[{i}]"),
                    format!("invalid method {m:?}"),
                    "write GET, POST, PUT, PATCH, DELETE, ...",
                ),
            }
        }
        let upstream = upstreams.get(&fr.upstream).cloned();
        if upstream.is_none() {
            let known: Vec<&str> = upstreams.keys().map(String::as_str).collect();
            self.c.error(
                format!("{p}.upstream"),
                format!("unknown upstream {:?}", fr.upstream),
                format!("use one of the names under `upstreams`: {}", known.join(", ")),
            );
        }
        let upstream_timeout = self.duration(
            &format!("{p}.policy.upstream_timeout"),
            fr.policy.upstream_timeout.as_deref(),
            timeouts.upstream_response,
        );
        let auth = self.route_auth(p, fr.policy.auth.as_ref(), identity, path.as_ref());
        let inspect = self.route_inspect(p, fr.policy.inspect.as_ref()).map(Arc::new);
        let exposure = self.route_exposure(p, fr.policy.exposure.as_ref());
        let cors = self.route_cors(p, fr.policy.cors.as_ref());
        let cookies = self.route_cookies(p, fr.policy.cookies.as_ref());
        let route_is_open = identity.is_none() || auth.public;
        let contract = self.route_contract(p, fr.policy.contract.as_ref(), route_is_open, path.as_ref());
        Some(RouteConfig {
            name: Arc::from(fr.name.as_str()),
            hosts,
            path: path?,
            methods,
            upstream: upstream?,
            max_request_body_bytes: fr.policy.max_request_body_bytes.unwrap_or(limits.max_request_body_bytes),
            upstream_timeout,
            auth,
            rate_limit: None,
            inspect,
            exposure,
            cors,
            cookies,
            contract,
            operations: std::collections::HashMap::new(),
        })
    }
}

/// Parses `http://host:port` / `https://host:port` (port defaults to 80/443).
fn parse_target(s: &str) -> Result<Target, String> {
    let uri: http::Uri = s.parse().map_err(|_| format!("invalid URL {s:?}"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("{s:?} must start with http:// or https://")),
    };
    let authority = uri.authority().ok_or_else(|| format!("{s:?} has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("{s:?} must not contain credentials"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!("{s:?} must not have a path or query"));
    }
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let host = authority.host();
    Ok(Target { tls, authority: Arc::from(format!("{host}:{port}")) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("http://127.0.0.1:3000").unwrap(),
            Target { tls: false, authority: Arc::from("127.0.0.1:3000") }
        );
        assert_eq!(
            parse_target("https://api.internal").unwrap(),
            Target { tls: true, authority: Arc::from("api.internal:443") }
        );
        assert!(parse_target("ftp://x").is_err());
        assert!(parse_target("http://u:p@x").is_err());
        assert!(parse_target("http://x/path").is_err());
        assert!(parse_target("x:80").is_err());
    }
}
