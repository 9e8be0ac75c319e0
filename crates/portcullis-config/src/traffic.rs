//! Traffic control: the top-level `traffic:` section (plans, cluster, in-flight cap, usage) and a
//! route's `policy.rate_limit:`. Everything becomes `portcullis_traffic` values at load, so the
//! request path never re-parses a rate, a period or a key.
//!
//! ```yaml
//! traffic:
//!   cluster:                                  # counters in Redis, shared by every node
//!     redis_url: ${env:PORTCULLIS_REDIS_URL}  # a secret reference, never inline
//!     namespace: prod                          # default "portcullis"
//!     expected_nodes: 3                        # fail-open share = limit / 3. Default 1
//!     timeout: 50ms                            # per Redis call. Default 50ms
//!     batching: { size: 10, max_hold: 250ms }  # optional local batching
//!   max_inflight: 5000                         # optional global cap (503 past it)
//!   shed_anonymous_at: 4000                    # anonymous callers shed first. Default = max_inflight
//!   default_plan: free                         # plan of callers whose consumer names none
//!   usage: { enabled: true, flush_interval: 10s, time_zone: UTC }
//!   plans:
//!     free:
//!       time_zone: Europe/Paris                # quota days and months. Default UTC
//!       routes: [orders]                       # allowed routes. Default: all
//!       emit_headers: true                     # RateLimit headers on allowed responses. Default false
//!       limits: [{ name: burst, rate: 10, period: 1s }]           # key defaults to consumer
//!       quotas: [{ name: daily, limit: 1000, period: day }]
//! routes:
//!   - name: login
//!     policy:
//!       rate_limit:
//!         emit_headers: true
//!         concurrency_per_consumer: 4
//!         limits:
//!           - { name: login-ip, key: client_ip, rate: 5, period: 1m, burst: 5, on_store_failure: closed }
//! ```
//!
//! Keys: `org`, `consumer`, `credential`, `client_ip`, `route`, `header:NAME`, `claim:NAME`.
//! `on_store_failure` (cluster mode only): `open` falls back to a local limiter at this node's
//! share (`limit / expected_nodes`); `closed` answers 503. **Default: `closed` for limits keyed by
//! `client_ip` or `credential`** (they guard against brute force and scraping), `open` otherwise;
//! `check` warns when such a limit is set to `open`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use portcullis_traffic::{
    AllowedRoutes, BatchConfig, KeySpec, LimitSpec, OnStoreFailure, Plan, QuotaPeriod, QuotaSpec, RouteLimits,
    RouteTraffic, TrafficPolicy,
};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::secret::Secret;
use crate::typed::Builder;

/// The `traffic:` section.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileTraffic {
    /// Plans by name: rates, quotas and allowed routes. A consumer's (or its organization's)
    /// `plan` names one.
    #[serde(default)]
    pub plans: BTreeMap<String, FilePlan>,
    /// The plan of callers whose principal names none. Default: none (route limits only).
    #[serde(default)]
    pub default_plan: Option<String>,
    /// Keep counters in Redis, shared by every gateway node. Default: in this process.
    #[serde(default)]
    pub cluster: Option<FileTrafficCluster>,
    /// Requests in flight across the gateway past which new ones get 503. Default: no cap here
    /// (`limits.max_inflight_requests` still applies).
    #[serde(default)]
    pub max_inflight: Option<usize>,
    /// In-flight level from which anonymous callers are shed. Default `max_inflight`.
    #[serde(default)]
    pub shed_anonymous_at: Option<usize>,
    /// Usage metering.
    #[serde(default)]
    pub usage: FileUsage,
}

/// A plan.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilePlan {
    /// Rate limits; `key` defaults to `consumer`.
    #[serde(default)]
    pub limits: Vec<FileLimit>,
    /// Quotas per day or month; `key` defaults to `consumer`.
    #[serde(default)]
    pub quotas: Vec<FileQuota>,
    /// IANA time zone of quota days and months. Default `UTC`.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Route names the plan may call. Default: every route. Others are refused with 403.
    #[serde(default)]
    pub routes: Option<Vec<String>>,
    /// Send `RateLimit-Policy`/`RateLimit` on allowed responses too. Default false.
    #[serde(default)]
    pub emit_headers: Option<bool>,
}

/// One rate limit.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileLimit {
    /// Stable name: names the policy in headers and prefixes the counter keys (two routes using
    /// the same name share counters). `A-Z a-z 0-9 - _ . : /`, at most 64.
    pub name: String,
    /// What it is counted per: `org`, `consumer`, `credential`, `client_ip`, `route`,
    /// `header:NAME`, `claim:NAME`. Required on routes; default `consumer` in plans.
    #[serde(default)]
    pub key: Option<String>,
    /// Units admitted per `period` (sustained rate).
    pub rate: u32,
    /// e.g. `1s`, `1m`, `1h`.
    pub period: String,
    /// Units admitted at once from idle. Default `rate`.
    #[serde(default)]
    pub burst: Option<u32>,
    /// `open` or `closed` (cluster mode). See the module docs for the defaults.
    #[serde(default)]
    pub on_store_failure: Option<String>,
}

/// One quota.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileQuota {
    /// Stable name.
    pub name: String,
    /// Counted per; default `consumer`.
    #[serde(default)]
    pub key: Option<String>,
    /// Units per window.
    pub limit: u64,
    /// `day` or `month` (calendar, in the plan's time zone).
    pub period: String,
    /// `open` (default) or `closed` (cluster mode).
    #[serde(default)]
    pub on_store_failure: Option<String>,
}

/// Redis for shared counters.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileTrafficCluster {
    /// Reference to the Redis URL: `${env:NAME}` or `${file:path}`.
    pub redis_url: String,
    /// Key prefix keeping deployments apart on one Redis. Default `portcullis`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Gateway nodes sharing the counters; a limit failing open allows `limit / expected_nodes`
    /// per node. Default 1.
    #[serde(default)]
    pub expected_nodes: Option<u32>,
    /// Longest wait for one Redis call. Default `50ms`.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Consecutive failures that open the circuit breaker. Default 5.
    #[serde(default)]
    pub failure_threshold: Option<u32>,
    /// How long an open circuit skips Redis. Default `2s`.
    #[serde(default)]
    pub cooldown: Option<String>,
    /// Reserve units in batches (fewer Redis calls, bounded over-admission). Default off.
    #[serde(default)]
    pub batching: Option<FileBatching>,
}

/// Local batching.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileBatching {
    /// Units per reservation (2 or more). Over-admission is at most `nodes × (size − 1)`.
    pub size: u32,
    /// How long reserved units may wait locally. Default `250ms`.
    #[serde(default)]
    pub max_hold: Option<String>,
}

/// Usage metering (needs `identity`: usage is per consumer, stored in the identity store).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileUsage {
    /// Meter requests served per consumer, route and day. Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// How often counts are written to the store. Default `10s`.
    #[serde(default)]
    pub flush_interval: Option<String>,
    /// Time zone of usage days. Default `UTC`.
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// A route's `policy.rate_limit`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRouteRateLimit {
    /// Limits, all checked (a burst and a sustained rate, per IP and per consumer…).
    #[serde(default)]
    pub limits: Vec<FileLimit>,
    /// Send `RateLimit-Policy`/`RateLimit` on allowed responses too. Default false (429s always
    /// carry them).
    #[serde(default)]
    pub emit_headers: Option<bool>,
    /// Requests in flight at once per consumer (per client IP when anonymous). Default: no limit.
    #[serde(default)]
    pub concurrency_per_consumer: Option<u32>,
}

/// The typed `traffic:` section.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TrafficConfig {
    /// Plans by name.
    pub plans: BTreeMap<String, Arc<Plan>>,
    /// The plan of callers whose principal names none.
    pub default_plan: Option<String>,
    /// Redis cluster settings.
    pub cluster: Option<TrafficCluster>,
    /// Global in-flight cap and the anonymous shedding level.
    pub inflight: Option<(usize, usize)>,
    /// Usage metering, if on.
    pub usage: Option<UsageSettings>,
}

/// Redis settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TrafficCluster {
    /// The Redis URL.
    pub redis_url: Secret,
    /// Key prefix.
    pub namespace: String,
    /// Nodes sharing the counters.
    pub expected_nodes: u32,
    /// Per-call timeout.
    pub timeout: Duration,
    /// Breaker threshold.
    pub failure_threshold: u32,
    /// Breaker cooldown.
    pub cooldown: Duration,
    /// Batching, if on.
    pub batching: Option<BatchConfig>,
}

/// Usage metering settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct UsageSettings {
    /// Store flush period.
    pub flush_interval: Duration,
    /// Time zone of usage days.
    pub time_zone: jiff::tz::TimeZone,
}

impl TrafficConfig {
    /// The per-generation policy the rate-limit stage runs with.
    pub fn policy(config: &crate::Config) -> TrafficPolicy {
        let t = config.traffic.as_deref();
        TrafficPolicy {
            plans: t
                .map(|t| t.plans.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>())
                .unwrap_or_default(),
            default_plan: t.and_then(|t| t.default_plan.clone()),
            routes: config
                .routes
                .iter()
                .filter_map(|r| Some((r.name.clone(), r.rate_limit.clone()?)))
                .collect::<HashMap<_, _>>(),
            operations: config
                .routes
                .iter()
                .map(|r| {
                    let ops: HashMap<Arc<str>, Arc<RouteTraffic>> =
                        r.operations.iter().filter_map(|(id, op)| Some((id.clone(), op.rate_limit.clone()?))).collect();
                    (r.name.clone(), ops)
                })
                .filter(|(_, ops)| !ops.is_empty())
                .collect(),
            usage_time_zone: t.and_then(|t| t.usage.as_ref()).map(|u| u.time_zone.clone()),
        }
    }
}

/// Whether the config turns the rate-limit stage on.
pub fn traffic_enabled(config: &crate::Config) -> bool {
    config.traffic.is_some()
        || config.routes.iter().any(|r| r.rate_limit.is_some() || r.operations.values().any(|o| o.rate_limit.is_some()))
}

fn parse_key(s: &str) -> Result<KeySpec, String> {
    let bad = || format!("unknown key {s:?}");
    match s {
        "org" => Ok(KeySpec::Org),
        "consumer" => Ok(KeySpec::Consumer),
        "credential" => Ok(KeySpec::Credential),
        "client_ip" => Ok(KeySpec::ClientIp),
        "route" => Ok(KeySpec::Route),
        _ => {
            if let Some(h) = s.strip_prefix("header:") {
                KeySpec::header(h).map_err(|e| e.to_string())
            } else if let Some(c) = s.strip_prefix("claim:").filter(|c| !c.is_empty()) {
                Ok(KeySpec::Claim(c.to_owned()))
            } else {
                Err(bad())
            }
        }
    }
}

const KEY_FIX: &str = "use org, consumer, credential, client_ip, route, header:NAME or claim:NAME";

/// Whether a key guards against brute force or scraping (its limit defaults to fail closed).
fn sensitive(key: &KeySpec) -> bool {
    matches!(key, KeySpec::ClientIp | KeySpec::Credential)
}

impl Builder<'_> {
    fn failure_mode(&mut self, path: &str, value: Option<&str>, default: OnStoreFailure) -> OnStoreFailure {
        match value {
            None => default,
            Some("open") => OnStoreFailure::Open,
            Some("closed") => OnStoreFailure::Closed,
            Some(v) => {
                self.c.error(path, format!("invalid value {v:?}"), "write open or closed");
                default
            }
        }
    }

    /// One limit; `name_prefix` keeps plan buckets apart (`free/burst`).
    fn limit(
        &mut self,
        p: &str,
        fl: &FileLimit,
        default_key: Option<&str>,
        name_prefix: Option<&str>,
        ctx: &TrafficCtx,
    ) -> Option<LimitSpec> {
        let key = match fl.key.as_deref().or(default_key) {
            None => {
                self.c.error(format!("{p}.key"), "a route limit needs a key", KEY_FIX);
                return None;
            }
            Some(k) => match parse_key(k) {
                Ok(k) => k,
                Err(e) => {
                    self.c.error(format!("{p}.key"), e, KEY_FIX);
                    return None;
                }
            },
        };
        if !ctx.identity && matches!(key, KeySpec::Org | KeySpec::Consumer | KeySpec::Credential | KeySpec::Claim(_)) {
            self.c.error(
                format!("{p}.key"),
                "keyed by an identity, but no `identity` section is configured: every caller would share one bucket",
                "configure identity, or key the limit by client_ip, route or header:NAME",
            );
        }
        let period = self.duration(&format!("{p}.period"), Some(&fl.period), Duration::from_secs(1));
        let default_mode = if sensitive(&key) { OnStoreFailure::Closed } else { OnStoreFailure::Open };
        let mode = self.failure_mode(&format!("{p}.on_store_failure"), fl.on_store_failure.as_deref(), default_mode);
        if ctx.cluster && mode == OnStoreFailure::Open && sensitive(&key) {
            self.c.warn(
                format!("{p}.on_store_failure"),
                "this limit guards against brute force or scraping but fails open: while Redis is down each node \
                 enforces only its share, which is only right if expected_nodes is",
            );
        }
        if fl.burst == Some(0) {
            self.c.error(
                format!("{p}.burst"),
                "must be greater than 0",
                "remove it (defaults to rate) or set 1 or more",
            );
            return None;
        }
        let name = match name_prefix {
            Some(pre) => format!("{pre}/{}", fl.name),
            None => fl.name.clone(),
        };
        match LimitSpec::new(&name, key, fl.rate, period, fl.burst.unwrap_or(fl.rate), mode) {
            Ok(s) => Some(s),
            Err(e) => {
                let field = match &e {
                    portcullis_traffic::ConfigError::BadName { .. } => "name",
                    portcullis_traffic::ConfigError::Zero { field } => field,
                    _ => "burst",
                };
                self.c.error(format!("{p}.{field}"), e.to_string(), "fix the value as the message says");
                None
            }
        }
    }

    fn limits(
        &mut self,
        p: &str,
        list: &[FileLimit],
        default_key: Option<&str>,
        prefix: Option<&str>,
        emit: bool,
        ctx: &TrafficCtx,
    ) -> Option<RouteLimits> {
        let mut specs = Vec::new();
        let mut seen = HashSet::new();
        let mut ok = true;
        for (i, fl) in list.iter().enumerate() {
            let lp = format!("{p}[{i}]");
            if !seen.insert(fl.name.as_str()) {
                self.c.error(
                    format!("{lp}.name"),
                    format!("duplicate limit name {:?}", fl.name),
                    "give every limit its own name",
                );
                ok = false;
                continue;
            }
            match self.limit(&lp, fl, default_key, prefix, ctx) {
                Some(s) => specs.push(s),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        RouteLimits::new(specs, emit).ok()
    }

    /// The limits of an operation's `x-portcullis-rate-limit` (`p`: where they are written).
    pub(crate) fn traffic_limits(&mut self, p: &str, list: &[FileLimit], ctx: &TrafficCtx) -> Option<RouteLimits> {
        self.limits(p, list, None, None, false, ctx)
    }

    /// A route's `policy.rate_limit`.
    pub(crate) fn route_rate_limit(
        &mut self,
        p: &str,
        f: Option<&FileRouteRateLimit>,
        identity: bool,
        cluster: bool,
    ) -> Option<Arc<RouteTraffic>> {
        let f = f?;
        let p = format!("{p}.policy.rate_limit");
        let ctx = TrafficCtx { identity, cluster };
        let limits =
            self.limits(&format!("{p}.limits"), &f.limits, None, None, f.emit_headers.unwrap_or(false), &ctx)?;
        if f.concurrency_per_consumer == Some(0) {
            self.c.error(
                format!("{p}.concurrency_per_consumer"),
                "must be greater than 0",
                "remove it or set 1 or more",
            );
            return None;
        }
        if f.limits.is_empty() && f.concurrency_per_consumer.is_none() {
            self.c.warn(&p, "rate_limit sets no limit and no concurrency: it does nothing");
        }
        Some(Arc::new(RouteTraffic { limits, concurrency_per_consumer: f.concurrency_per_consumer }))
    }

    /// The `traffic:` section. `routes` are the configured route names (plans may name only these).
    pub(crate) fn traffic(
        &mut self,
        f: &FileTraffic,
        routes: &HashSet<String>,
        identity: bool,
    ) -> Option<TrafficConfig> {
        let cluster = f.cluster.as_ref().and_then(|c| self.traffic_cluster(c));
        let ctx = TrafficCtx { identity, cluster: f.cluster.is_some() };
        let mut plans = BTreeMap::new();
        for (name, fp) in &f.plans {
            let p = format!("traffic.plans.{name}");
            let tz = fp.time_zone.as_deref().unwrap_or("UTC");
            let limits = self.limits(&format!("{p}.limits"), &fp.limits, Some("consumer"), Some(name), false, &ctx);
            let mut quotas = Vec::new();
            let mut quota_names = HashSet::new();
            for (i, fq) in fp.quotas.iter().enumerate() {
                let qp = format!("{p}.quotas[{i}]");
                if !quota_names.insert(fq.name.as_str()) {
                    self.c.error(
                        format!("{qp}.name"),
                        format!("duplicate quota name {:?}", fq.name),
                        "give every quota its own name",
                    );
                    continue;
                }
                if let Some(q) = self.quota(&qp, fq, name, tz, &ctx) {
                    quotas.push(q);
                }
            }
            if !identity && !fp.quotas.is_empty() {
                self.c.error(
                    format!("{p}.quotas"),
                    "quotas are counted per consumer, but no `identity` section is configured",
                    "configure identity, or remove the quotas",
                );
            }
            let allowed = match &fp.routes {
                None => AllowedRoutes::All,
                Some(list) => {
                    for (i, r) in list.iter().enumerate() {
                        if !routes.contains(r) {
                            self.c.error(
                                format!("{p}.routes[{i}]"),
                                format!("unknown route {r:?}"),
                                "name a route from `routes` (by its name)",
                            );
                        }
                    }
                    AllowedRoutes::Only(list.iter().cloned().collect())
                }
            };
            let Some(limits) = limits else { continue };
            let emit = fp.emit_headers.unwrap_or(false);
            match Plan::new(name, limits.limits().to_vec(), emit, quotas, allowed) {
                Ok(plan) => {
                    plans.insert(name.clone(), Arc::new(plan));
                }
                Err(e) => self.c.error(&p, e.to_string(), "plan names are 1-64 characters of A-Z a-z 0-9 - _ . : /"),
            }
        }
        if let Some(d) = &f.default_plan
            && !f.plans.contains_key(d)
        {
            self.c.error("traffic.default_plan", format!("unknown plan {d:?}"), "name a plan under traffic.plans");
        }
        let inflight = match (f.max_inflight, f.shed_anonymous_at) {
            (None, None) => None,
            (None, Some(_)) => {
                self.c.error("traffic.shed_anonymous_at", "needs traffic.max_inflight", "set max_inflight too");
                None
            }
            (Some(0), _) => {
                self.c.error("traffic.max_inflight", "must be greater than 0", "remove it or set a positive number");
                None
            }
            (Some(max), shed) => {
                let shed = shed.unwrap_or(max);
                if shed > max {
                    self.c.error(
                        "traffic.shed_anonymous_at",
                        "must not be above max_inflight",
                        "set it at or below max_inflight",
                    );
                }
                Some((max, shed.min(max)))
            }
        };
        let usage = if f.usage.enabled.unwrap_or(true) {
            let flush_interval = self.duration(
                "traffic.usage.flush_interval",
                f.usage.flush_interval.as_deref(),
                Duration::from_secs(10),
            );
            let tz_name = f.usage.time_zone.as_deref().unwrap_or("UTC");
            match jiff::tz::TimeZone::get(tz_name) {
                Ok(time_zone) => Some(UsageSettings { flush_interval, time_zone }),
                Err(_) => {
                    self.c.error(
                        "traffic.usage.time_zone",
                        format!("unknown time zone {tz_name:?}"),
                        "use an IANA name such as UTC or Europe/Paris",
                    );
                    None
                }
            }
        } else {
            None
        };
        Some(TrafficConfig { plans, default_plan: f.default_plan.clone(), cluster, inflight, usage })
    }

    fn quota(&mut self, p: &str, fq: &FileQuota, plan: &str, tz: &str, ctx: &TrafficCtx) -> Option<QuotaSpec> {
        let key = match parse_key(fq.key.as_deref().unwrap_or("consumer")) {
            Ok(k) => k,
            Err(e) => {
                self.c.error(format!("{p}.key"), e, KEY_FIX);
                return None;
            }
        };
        let period = match fq.period.as_str() {
            "day" => QuotaPeriod::Day,
            "month" => QuotaPeriod::Month,
            other => {
                self.c.error(format!("{p}.period"), format!("invalid period {other:?}"), "write day or month");
                return None;
            }
        };
        if fq.limit == 0 {
            self.c.error(format!("{p}.limit"), "must be greater than 0", "set a positive limit, or remove the quota");
            return None;
        }
        let mode =
            self.failure_mode(&format!("{p}.on_store_failure"), fq.on_store_failure.as_deref(), OnStoreFailure::Open);
        let _ = ctx;
        match QuotaSpec::new(&format!("{plan}/{}", fq.name), key, fq.limit, period, tz, mode) {
            Ok(q) => Some(q),
            Err(e @ portcullis_traffic::ConfigError::BadTimeZone { .. }) => {
                let plan_path = p.rsplit_once(".quotas").map_or(p, |(a, _)| a);
                self.c.error(
                    format!("{plan_path}.time_zone"),
                    e.to_string(),
                    "use an IANA name such as UTC or Europe/Paris",
                );
                None
            }
            Err(e) => {
                self.c.error(format!("{p}.name"), e.to_string(), "names are 1-64 characters of A-Z a-z 0-9 - _ . : /");
                None
            }
        }
    }

    fn traffic_cluster(&mut self, c: &FileTrafficCluster) -> Option<TrafficCluster> {
        let p = "traffic.cluster";
        let redis_url = match crate::secret::resolve_secret(&c.redis_url, self.base_dir) {
            Ok(s) => match portcullis_traffic::RedisTarget::parse(s.expose()) {
                Ok(_) => Some(s),
                Err(e) => {
                    // The message never repeats the URL: it may carry a password.
                    self.c.error(
                        format!("{p}.redis_url"),
                        e.to_string(),
                        "write redis://host:port, redis+sentinel://s1:port,s2:port/master or \
                         redis+cluster://n1:port,n2:port",
                    );
                    None
                }
            },
            Err(e) => {
                self.c.error(
                    format!("{p}.redis_url"),
                    e.to_string(),
                    "write ${env:NAME} or ${file:path} and make sure it resolves",
                );
                None
            }
        };
        let namespace = c.namespace.clone().unwrap_or_else(|| "portcullis".into());
        if namespace.is_empty()
            || namespace.len() > 64
            || !namespace.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            self.c.error(
                format!("{p}.namespace"),
                "must be 1-64 characters of A-Z a-z 0-9 - _ .",
                "write e.g. prod-eu",
            );
        }
        let expected_nodes = match c.expected_nodes {
            None => 1,
            Some(n @ 1..=1000) => n,
            Some(_) => {
                self.c.error(
                    format!("{p}.expected_nodes"),
                    "must be between 1 and 1000",
                    "set the number of gateway nodes",
                );
                1
            }
        };
        let timeout = self.duration(&format!("{p}.timeout"), c.timeout.as_deref(), Duration::from_millis(50));
        let cooldown = self.duration(&format!("{p}.cooldown"), c.cooldown.as_deref(), Duration::from_secs(2));
        let failure_threshold = match c.failure_threshold {
            Some(0) => {
                self.c.error(format!("{p}.failure_threshold"), "must be greater than 0", "remove it (default 5)");
                5
            }
            Some(n) => n,
            None => 5,
        };
        let batching = c.batching.as_ref().and_then(|b| {
            if b.size < 2 {
                self.c.error(format!("{p}.batching.size"), "must be 2 or more", "set 2 or more, or remove batching");
                return None;
            }
            let max_hold =
                self.duration(&format!("{p}.batching.max_hold"), b.max_hold.as_deref(), Duration::from_millis(250));
            Some(BatchConfig { size: b.size, max_hold })
        });
        Some(TrafficCluster {
            redis_url: redis_url?,
            namespace,
            expected_nodes,
            timeout,
            failure_threshold,
            cooldown,
            batching,
        })
    }
}

pub(crate) struct TrafficCtx {
    pub(crate) identity: bool,
    pub(crate) cluster: bool,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    const BASE: &str = r#"
listeners: [{ name: public, bind: "127.0.0.1:8080" }]
upstreams: { up: { targets: ["http://127.0.0.1:3000"] } }
"#;

    fn build(extra: &str, routes: &str) -> Result<crate::Config, crate::ConfigErrors> {
        crate::from_yaml(&format!("{BASE}{extra}\nroutes:\n{routes}"), Path::new("."))
    }

    fn paths(e: &crate::ConfigErrors) -> Vec<&str> {
        e.iter().map(|e| e.path.as_str()).collect()
    }

    const ROUTE: &str = "  - { name: orders, prefix: /orders, upstream: up }";

    #[test]
    fn a_valid_section_becomes_typed_values() {
        let routes = r#"
  - name: orders
    prefix: /orders
    upstream: up
    policy:
      rate_limit:
        emit_headers: true
        concurrency_per_consumer: 3
        limits:
          - { name: burst, key: client_ip, rate: 10, period: 1s, burst: 20 }
          - { name: tenant, key: "header:X-Tenant", rate: 100, period: 1m }
"#;
        let c = build("traffic: { max_inflight: 100, shed_anonymous_at: 80 }", routes).unwrap();
        let rl = c.routes[0].rate_limit.as_ref().unwrap();
        assert_eq!(rl.limits.limits().len(), 2);
        assert!(rl.limits.emit_on_allow());
        assert_eq!(rl.concurrency_per_consumer, Some(3));
        let burst = &rl.limits.limits()[0];
        assert_eq!((burst.gcra().rate(), burst.gcra().burst()), (10, 20));
        // client_ip guards against brute force: fails closed unless told otherwise.
        assert_eq!(burst.on_store_failure(), portcullis_traffic::OnStoreFailure::Closed);
        assert_eq!(rl.limits.limits()[1].on_store_failure(), portcullis_traffic::OnStoreFailure::Open);
        assert_eq!(rl.limits.limits()[1].gcra().burst(), 100, "burst defaults to rate");
        let t = c.traffic.as_ref().unwrap();
        assert_eq!(t.inflight, Some((100, 80)));
        assert!(t.usage.is_some(), "usage metering is on by default");
        assert!(crate::traffic_enabled(&c));
        assert!(!crate::traffic_enabled(&build("", ROUTE).unwrap()));
    }

    #[test]
    fn every_mistake_is_reported_with_its_key_path() {
        let routes = r#"
  - name: orders
    prefix: /orders
    upstream: up
    policy:
      rate_limit:
        concurrency_per_consumer: 0
        limits:
          - { name: a, rate: 10, period: 1s }
          - { name: b, key: "cookie:x", rate: 10, period: 1s }
          - { name: c, key: client_ip, rate: 0, period: 1s }
          - { name: d, key: client_ip, rate: 1, period: soon }
          - { name: "bad name", key: route, rate: 1, period: 1s }
          - { name: f, key: route, rate: 1, period: 1s, on_store_failure: maybe }
          - { name: f, key: route, rate: 1, period: 1s }
          - { name: g, key: consumer, rate: 1, period: 1s }
"#;
        let traffic = r#"
traffic:
  default_plan: platinum
  shed_anonymous_at: 5
  usage: { time_zone: Mars/Olympus }
  cluster: { redis_url: "redis://inline-secret@127.0.0.1", expected_nodes: 0, batching: { size: 1 } }
  plans:
    free:
      time_zone: Nowhere/City
      routes: [orders, nope]
      quotas: [{ name: daily, limit: 0, period: day }, { name: weekly, limit: 5, period: week }]
"#;
        let e = build(traffic, routes).unwrap_err();
        let p = paths(&e);
        for want in [
            "routes[0].policy.rate_limit.limits[0].key",
            "routes[0].policy.rate_limit.limits[1].key",
            "routes[0].policy.rate_limit.limits[2].rate",
            "routes[0].policy.rate_limit.limits[3].period",
            "routes[0].policy.rate_limit.limits[4].name",
            "routes[0].policy.rate_limit.limits[5].on_store_failure",
            "routes[0].policy.rate_limit.limits[6].name",
            "routes[0].policy.rate_limit.limits[7].key",
            "traffic.default_plan",
            "traffic.shed_anonymous_at",
            "traffic.usage.time_zone",
            "traffic.cluster.redis_url",
            "traffic.cluster.expected_nodes",
            "traffic.cluster.batching.size",
            "traffic.plans.free.routes[1]",
            "traffic.plans.free.quotas[0].limit",
            "traffic.plans.free.quotas[1].period",
            "traffic.plans.free.quotas",
        ] {
            assert!(p.contains(&want), "missing {want} in {p:#?}");
        }
        // The inline secret is never echoed.
        assert!(!e.to_string().contains("inline-secret"));
        // Unknown keys are refused with their path.
        let e = build("traffic: { plan: {} }", ROUTE).unwrap_err();
        assert!(e.to_string().contains("plan"), "{e}");
    }

    #[test]
    fn bad_time_zone_is_reported_on_the_plan() {
        let e = build(
            "identity: { store: { sqlite: { path: x.db } }, key_secret: \"${env:PATH}\" }\ntraffic: { plans: { free: { time_zone: Nowhere/City, quotas: [{ name: d, limit: 5, period: day }] } } }",
            "  - { name: orders, prefix: /orders, upstream: up, policy: { auth: { public: true } } }",
        );
        let e = e.unwrap_err();
        assert!(paths(&e).contains(&"traffic.plans.free.time_zone"), "{e}");
    }

    #[test]
    fn check_warns_about_fail_open_on_security_sensitive_limits_in_cluster_mode() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r.url"), "redis://127.0.0.1:6379/").unwrap();
        let yaml = format!(
            "{BASE}traffic: {{ cluster: {{ redis_url: \"${{file:r.url}}\" }} }}\nroutes:\n  - name: login\n    prefix: /login\n    upstream: up\n    policy:\n      rate_limit:\n        limits:\n          - {{ name: ip, key: client_ip, rate: 5, period: 1m, on_store_failure: open }}\n          - {{ name: rt, key: route, rate: 5, period: 1m, on_store_failure: open }}\n          - {{ name: ip2, key: client_ip, rate: 5, period: 1m }}\n"
        );
        let c = crate::from_yaml(&yaml, dir.path()).unwrap();
        let warned: Vec<&str> = c.warnings.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(warned, ["routes[0].policy.rate_limit.limits[0].on_store_failure"], "only the sensitive open one");
        let cl = c.traffic.as_ref().unwrap().cluster.as_ref().unwrap();
        assert_eq!((cl.namespace.as_str(), cl.expected_nodes), ("portcullis", 1));
        assert!(!format!("{cl:?}").contains("6379"), "the URL is a secret: never in Debug");
    }

    #[test]
    fn redis_url_accepts_sentinel_and_cluster_and_refuses_unknown_schemes_without_echoing() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!("{BASE}traffic: {{ cluster: {{ redis_url: \"${{file:r.url}}\" }} }}\nroutes:\n{ROUTE}\n");
        for good in [
            "redis://127.0.0.1:6379/",
            "redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26379/main",
            "redis+cluster://10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000",
        ] {
            std::fs::write(dir.path().join("r.url"), good).unwrap();
            let c = crate::from_yaml(&yaml, dir.path());
            assert!(c.is_ok(), "{good}: {:?}", c.err().map(|e| e.to_string()));
        }
        for bad in ["http://s3cret@127.0.0.1:6379", "redis+sentinel://:s3cret@10.0.0.1:26379", "redis+cluster://h"] {
            std::fs::write(dir.path().join("r.url"), bad).unwrap();
            let e = crate::from_yaml(&yaml, dir.path()).unwrap_err();
            assert!(paths(&e).contains(&"traffic.cluster.redis_url"), "{bad}: {e}");
            assert!(!e.to_string().contains("s3cret"), "{e}");
        }
    }
}
