//! Each route's `policy.contract` block: the OpenAPI documents the route enforces (see
//! `docs/contract.md`).
//!
//! ```yaml
//! policy:
//!   contract:
//!     specs: [openapi.yaml]        # relative to this file; local $refs across files resolved
//!     mode: enforce                # or monitor
//!     detail: minimal              # or full: the violation list in the problem
//!     operations: { createCustomer: { mode: monitor } }
//!     responses: { max_body_bytes: 1048576, on_body_over_cap: reject }
//! ```
//!
//! The documents are compiled here, once per distinct set, so `portcullis check` reports every
//! problem in them (file and JSON pointer) under the route's key path.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use portcullis_contract::{CompileOptions, Contract, Detail, Mode, OverCap, ResponsePolicy, RouteContract};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::typed::Builder;

/// The default cap on bodies buffered for validation: 1 MiB.
pub const DEFAULT_CONTRACT_BODY_CAP: usize = 1 << 20;

/// A route's OpenAPI contract.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileContract {
    /// OpenAPI 3.0.x or 3.1.x documents (YAML or JSON), relative to the config file. Their
    /// paths are merged; a path declared twice is an error.
    pub specs: Vec<String>,
    /// `enforce` (default: refuse what the contract does not allow) or `monitor` (log and count
    /// in `portcullis_contract_violations_total`, let through).
    #[serde(default)]
    pub mode: Option<FileContractMode>,
    /// Undeclared query parameters and object properties are refused (`additionalProperties`
    /// treated as false unless the schema says otherwise). Default true.
    #[serde(default)]
    pub strict: Option<bool>,
    /// What a refused client sees: `minimal` (default: the number of violations) or `full`
    /// (each violation's JSON pointer and reason). The log always has the full list.
    #[serde(default)]
    pub detail: Option<FileContractDetail>,
    /// Check each operation's `security` requirement (schemes and scopes) and
    /// `x-portcullis-scopes` against the authenticated caller. Default true.
    #[serde(default)]
    pub security: Option<bool>,
    /// Prepended to every path of the documents (e.g. `/api`). Default empty.
    #[serde(default)]
    pub base_path: Option<String>,
    /// Largest request body validated; a larger one is refused with 413. Default 1 MiB.
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// Response validation.
    #[serde(default)]
    pub responses: FileContractResponses,
    /// Per-operation settings, by operationId.
    #[serde(default)]
    pub operations: BTreeMap<String, FileContractOperation>,
    /// Limits of the strict JSON parser for request bodies.
    #[serde(default)]
    pub json: FileJsonLimits,
    /// The SSRF guard for body fields with `format: uri` (or `x-portcullis-ssrf: true`).
    #[serde(default)]
    pub ssrf: FileSsrf,
}

/// Strict JSON parser limits (the size limit is `max_body_bytes`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileJsonLimits {
    /// Deepest nesting of arrays and objects. Default 32 (at most 126).
    #[serde(default)]
    pub max_depth: Option<usize>,
    /// Longest string or key, bytes. Default 65536.
    #[serde(default)]
    pub max_string_bytes: Option<usize>,
    /// Most elements in one array. Default 10000.
    #[serde(default)]
    pub max_array_len: Option<usize>,
    /// Most members in one object. Default 1000.
    #[serde(default)]
    pub max_object_members: Option<usize>,
}

/// SSRF guard settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSsrf {
    /// Check URL fields. Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Also resolve host names and refuse any that resolve to a refused address (fail closed when
    /// resolution fails). Default true; false checks literal addresses and refused names only.
    #[serde(default)]
    pub resolve: Option<bool>,
    /// Schemes accepted. Default `[https, http]`.
    #[serde(default)]
    pub allowed_schemes: Option<Vec<String>>,
}

/// Contract mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileContractMode {
    /// Refuse violating requests; fix or refuse violating responses.
    Enforce,
    /// Log and count only.
    Monitor,
}

/// How much of the violation list a client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileContractDetail {
    /// Each violation's pointer and reason.
    Full,
    /// Only how many.
    Minimal,
}

/// Response validation settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileContractResponses {
    /// Validate responses. Default true.
    #[serde(default)]
    pub validate: Option<bool>,
    /// Largest response body buffered for validation. Default 1 MiB.
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// A response over the cap: `reject` (default: 502 in enforce mode) or `pass` (served
    /// unvalidated when its Content-Length says it is over; counted).
    #[serde(default)]
    pub on_body_over_cap: Option<crate::inspect::FileOverCap>,
}

/// Settings for one operation.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileContractOperation {
    /// This operation's mode (over the document's `x-portcullis-mode` and the route's mode).
    #[serde(default)]
    pub mode: Option<FileContractMode>,
    /// The operation is meant to have no security requirement (silences `check`).
    #[serde(default)]
    pub public: bool,
}

fn mode(m: Option<FileContractMode>) -> Mode {
    match m {
        Some(FileContractMode::Monitor) => Mode::Monitor,
        Some(FileContractMode::Enforce) | None => Mode::Enforce,
    }
}

impl Builder<'_> {
    /// Loads and compiles a route's `policy.contract` block; `p` is the route's key path.
    /// `route_is_open`: the route has no authentication (no identity, or `auth.public`);
    /// `route_path`: its path pattern, to tell which operations it can reach.
    pub(crate) fn route_contract(
        &mut self,
        p: &str,
        fc: Option<&FileContract>,
        route_is_open: bool,
        route_path: Option<&crate::pattern::PathPattern>,
    ) -> Option<Arc<RouteContract>> {
        let fc = fc?;
        let base = format!("{p}.policy.contract");
        if fc.specs.is_empty() {
            self.c.error(format!("{base}.specs"), "no document", "list at least one OpenAPI document");
            return None;
        }
        let opts = {
            let mut o = CompileOptions::default();
            o.strict = fc.strict.unwrap_or(true);
            o.base_path = fc.base_path.clone().unwrap_or_default();
            o
        };
        if !opts.base_path.is_empty() && !opts.base_path.starts_with('/') {
            self.c.error(format!("{base}.base_path"), "must start with /", "write a path such as /api");
        }
        let files: Vec<std::path::PathBuf> = fc.specs.iter().map(|s| self.base_dir.join(s)).collect();
        let key = format!("{:?}|{}|{}", files, opts.strict, opts.base_path);
        let (contract, unsecured, first) = match self.contracts.get(&key) {
            Some((c, u)) => (c.clone(), u.clone(), false),
            None => {
                let paths: Vec<&Path> = files.iter().map(std::path::PathBuf::as_path).collect();
                match Contract::load(&paths, Path::new(""), &opts) {
                    Ok(loaded) => {
                        let c = Arc::new(loaded.contract);
                        let u = Arc::new(loaded.unsecured);
                        self.contracts.insert(key, (c.clone(), u.clone()));
                        (c, u, true)
                    }
                    Err(errors) => {
                        for e in errors {
                            let i = fc
                                .specs
                                .iter()
                                .position(|s| e.file == self.base_dir.join(s).display().to_string())
                                .unwrap_or(0);
                            self.c.error(
                                format!("{base}.specs[{i}]"),
                                e.to_string(),
                                "fix the OpenAPI document at this JSON pointer",
                            );
                        }
                        return None;
                    }
                }
            }
        };
        // Operations this route can reach that declare no security, when the route itself does
        // not authenticate: nothing stands between them and anyone.
        if route_is_open {
            let reachable: Vec<&str> = contract
                .operations()
                .iter()
                .filter(|op| unsecured.iter().any(|u| u == &**op.id()))
                .filter(|op| route_path.is_none_or(|p| p.matches(op.path_template())))
                .filter(|op| !fc.operations.get(&**op.id()).is_some_and(|o| o.public))
                .map(|op| &**op.id())
                .collect();
            if !reachable.is_empty() {
                let shown: Vec<&str> = reachable.iter().take(12).copied().collect();
                let more = reachable.len() - shown.len();
                self.c.warn(
                    format!("{base}.specs"),
                    format!(
                        "{} operation(s) on an unauthenticated route declare no security requirement and are not \
                         marked public: {}{} (add `security`, `x-portcullis-public: true`, or \
                         operations.<id>.public: true)",
                        reachable.len(),
                        shown.join(", "),
                        if more > 0 { format!(" and {more} more") } else { String::new() }
                    ),
                );
            }
        }
        if first {
            self.files.extend(files.iter().cloned());
        }
        let mut operation_modes = HashMap::new();
        for (id, o) in &fc.operations {
            if !contract.operations().iter().any(|op| &**op.id() == id) {
                self.c.error(
                    format!("{base}.operations.{id}"),
                    format!("no operation has the id {id:?}"),
                    "use an operationId from the documents",
                );
                continue;
            }
            if let Some(m) = o.mode {
                operation_modes.insert(id.clone(), mode(Some(m)));
            }
        }
        let max_body_bytes = fc.max_body_bytes.unwrap_or(DEFAULT_CONTRACT_BODY_CAP);
        let resp_cap = fc.responses.max_body_bytes.unwrap_or(DEFAULT_CONTRACT_BODY_CAP);
        for (k, v) in [("max_body_bytes", max_body_bytes), ("responses.max_body_bytes", resp_cap)] {
            if v == 0 {
                self.c.error(format!("{base}.{k}"), "must be at least 1", "write a byte count such as 1048576");
            }
        }
        let mut rc = RouteContract::new(contract);
        rc.mode = mode(fc.mode);
        rc.operation_modes = operation_modes;
        rc.strict = opts.strict;
        rc.detail = match fc.detail {
            Some(FileContractDetail::Full) => Detail::Full,
            _ => Detail::Minimal,
        };
        rc.security = fc.security.unwrap_or(true);
        rc.max_body_bytes = max_body_bytes;
        let mut rp = ResponsePolicy::default();
        rp.validate = fc.responses.validate.unwrap_or(true);
        rp.max_body_bytes = resp_cap;
        rp.over_cap = match fc.responses.on_body_over_cap {
            Some(crate::inspect::FileOverCap::Pass) => OverCap::Pass,
            _ => OverCap::Reject,
        };
        rc.responses = rp;
        let mut jl = portcullis_contract::json::JsonLimits { max_bytes: max_body_bytes, ..Default::default() };
        let j = &fc.json;
        for (k, v, slot) in [
            ("max_depth", j.max_depth, &mut jl.max_depth),
            ("max_string_bytes", j.max_string_bytes, &mut jl.max_string_bytes),
            ("max_array_len", j.max_array_len, &mut jl.max_array_len),
            ("max_object_members", j.max_object_members, &mut jl.max_object_members),
        ] {
            match v {
                Some(0) => {
                    self.c.error(format!("{base}.json.{k}"), "must be at least 1", "raise it, or remove the key")
                }
                Some(n) => *slot = n,
                None => {}
            }
        }
        if jl.max_depth > portcullis_contract::json::MAX_DEPTH_CAP {
            self.c.error(
                format!("{base}.json.max_depth"),
                format!("must be at most {}", portcullis_contract::json::MAX_DEPTH_CAP),
                "lower it",
            );
        }
        rc.json_limits = jl;
        if fc.ssrf.enabled == Some(false) {
            rc.ssrf = None;
        } else if let Some(schemes) = &fc.ssrf.allowed_schemes {
            rc.ssrf = Some(portcullis_contract::ssrf::SsrfPolicy {
                allowed_schemes: schemes.iter().map(|s| s.to_ascii_lowercase()).collect(),
                ..Default::default()
            });
        }
        rc.ssrf_resolve = fc.ssrf.resolve.unwrap_or(true);
        rc.files = files;
        if rc.mode == Mode::Monitor {
            self.c.warn(format!("{base}.mode"), "monitor mode: requests that break the contract reach the upstream");
        }
        Some(Arc::new(rc))
    }
}

/// Gateway policy an OpenAPI operation carries next to it (`x-portcullis-owner`,
/// `x-portcullis-rate-limit`, `x-portcullis-exposure`), merged with its route's: the stages use
/// it instead of the route's policy for requests the router matched to this operation.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OperationPolicy {
    /// The route's auth with the operation's ownership rules added.
    pub auth: Option<crate::identity::RouteAuth>,
    /// The operation's path template, which its `path_param` ownership rules read.
    pub path: Option<crate::pattern::PathPattern>,
    /// The route's rate limits with the operation's added.
    pub rate_limit: Option<Arc<portcullis_traffic::RouteTraffic>>,
    /// The route's exposure policy with the operation's merged in.
    pub exposure: Option<Arc<portcullis_exposure::RouteExposure>>,
}

/// `x-portcullis-rate-limit`: a list of limits, or `{limits, emit_headers}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum FileOperationRateLimit {
    List(Vec<crate::traffic::FileLimit>),
    Block(FileOperationLimits),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOperationLimits {
    limits: Vec<crate::traffic::FileLimit>,
    #[serde(default)]
    emit_headers: Option<bool>,
}

/// Reads an extension's value as `T`; a shape error names the extension.
fn parse_ext<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Result<T, String> {
    serde_json::from_value(v.clone()).map_err(|e| e.to_string())
}

impl Builder<'_> {
    /// The per-operation policies of a route's contract, keyed by operation id. `fr` is the
    /// route as written, `route` as compiled so far (auth, rate limit, exposure); `p` is the
    /// route's key path. Errors are reported at `file#/json/pointer/x-portcullis-…`.
    pub(crate) fn operation_policies(
        &mut self,
        fr: &crate::file::FileRoute,
        route: &crate::RouteConfig,
        identity: bool,
        cluster: bool,
    ) -> HashMap<Arc<str>, OperationPolicy> {
        let mut out = HashMap::new();
        let Some(contract) = route.contract.clone() else { return out };
        for op in contract.contract.operations() {
            if !op.has_policy_extensions() {
                continue;
            }
            let mut policy = OperationPolicy::default();
            if let Some(v) = op.policy_extension("x-portcullis-owner") {
                let at = format!("{}/x-portcullis-owner", op.source());
                if let Some((auth, path)) = self.operation_owner(&at, v, op, route, identity) {
                    policy.auth = Some(auth);
                    policy.path = path;
                }
            }
            if let Some(v) = op.policy_extension("x-portcullis-rate-limit") {
                let at = format!("{}/x-portcullis-rate-limit", op.source());
                policy.rate_limit = self.operation_rate_limit(&at, v, route, identity, cluster);
            }
            if let Some(v) = op.policy_extension("x-portcullis-exposure") {
                let at = format!("{}/x-portcullis-exposure", op.source());
                match parse_ext::<crate::exposure::FileExposure>(v) {
                    Ok(ext) => {
                        let merged = crate::exposure::merge(fr.policy.exposure.as_ref(), ext);
                        policy.exposure = self.exposure_block(&at, &merged);
                    }
                    Err(e) => self.c.error(&at, e, "write the same keys as a route's policy.exposure"),
                }
            }
            out.insert(op.id().clone(), policy);
        }
        out
    }

    fn operation_owner(
        &mut self,
        at: &str,
        v: &serde_json::Value,
        op: &portcullis_contract::Operation,
        route: &crate::RouteConfig,
        identity: bool,
    ) -> Option<(crate::identity::RouteAuth, Option<crate::pattern::PathPattern>)> {
        let rules: Vec<crate::identity::FileOwnerRule> = match parse_ext(v) {
            Ok(r) => r,
            Err(e) => {
                self.c.error(at, e, "write a list of rules such as [{ path_param: id, equals: consumer_id }]");
                return None;
            }
        };
        if !identity || route.auth.public {
            self.c.error(
                at,
                "ownership rules need an authenticated caller, but the route authenticates nobody",
                "configure identity and give the route auth methods, or remove the rules",
            );
            return None;
        }
        // The operation's template, which its `path_param` rules read.
        let pattern = crate::pattern::PathPattern::parse(op.path_template(), false);
        let rules = self.owner_rules(at, &rules, pattern.as_ref().ok(), true);
        if let Err(e) = &pattern
            && rules.iter().any(|r| matches!(r.source, crate::identity::OwnerSource::OperationParam(_)))
        {
            self.c.error(
                at,
                format!("the operation's path cannot be read for path_param rules: {e}"),
                "read the owner from the query or the body",
            );
        }
        let mut auth = route.auth.clone();
        auth.owner.extend(rules);
        Some((auth, pattern.ok()))
    }

    fn operation_rate_limit(
        &mut self,
        at: &str,
        v: &serde_json::Value,
        route: &crate::RouteConfig,
        identity: bool,
        cluster: bool,
    ) -> Option<Arc<portcullis_traffic::RouteTraffic>> {
        let (limits, emit) = match parse_ext::<FileOperationRateLimit>(v) {
            Ok(FileOperationRateLimit::List(l)) => (l, None),
            Ok(FileOperationRateLimit::Block(b)) => (b.limits, b.emit_headers),
            Err(_) => {
                self.c.error(
                    at,
                    "not a list of limits or a { limits, emit_headers } block",
                    "write [{ name: writes, key: consumer, rate: 10, period: 1m }]",
                );
                return None;
            }
        };
        let base = route.rate_limit.as_deref();
        let emit = emit.unwrap_or_else(|| base.is_some_and(|b| b.limits.emit_on_allow()));
        let ctx = crate::traffic::TrafficCtx { identity, cluster };
        let own = self.traffic_limits(at, &limits, &ctx)?;
        let mut specs: Vec<portcullis_traffic::LimitSpec> =
            base.map(|b| b.limits.limits().to_vec()).unwrap_or_default();
        for s in own.limits() {
            if specs.iter().any(|x| x.name() == s.name()) {
                self.c.error(
                    at,
                    format!("the route already has a limit named {:?}", s.name()),
                    "give the operation's limit its own name (names key the counters)",
                );
                return None;
            }
            specs.push(s.clone());
        }
        let limits = portcullis_traffic::RouteLimits::new(specs, emit).ok()?;
        Some(Arc::new(portcullis_traffic::RouteTraffic {
            limits,
            concurrency_per_consumer: base.and_then(|b| b.concurrency_per_consumer),
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::from_yaml;

    const SPEC: &str = r#"
openapi: 3.0.3
info: { title: t, version: "1" }
paths:
  /items/{id}:
    get:
      operationId: getItem
      parameters: [{ name: id, in: path, required: true, schema: { type: integer } }]
      responses: { "200": { description: ok } }
"#;

    fn yaml(contract: &str) -> String {
        format!(
            r#"
listeners: [{{ name: public, bind: "127.0.0.1:8080" }}]
upstreams: {{ crm: {{ targets: ["http://127.0.0.1:3000"] }} }}
routes: [{{ name: all, prefix: /, upstream: crm, policy: {{ contract: {contract} }} }}]
"#
        )
    }

    #[test]
    fn a_contract_compiles_with_secure_defaults_and_flags_unsecured_operations() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("api.yaml"), SPEC).unwrap();
        let c = from_yaml(&yaml("{ specs: [api.yaml] }"), dir.path()).unwrap();
        let rc = c.routes[0].contract.as_ref().unwrap();
        assert_eq!(rc.mode, portcullis_contract::Mode::Enforce);
        assert!(rc.strict && rc.security);
        assert_eq!(rc.detail, portcullis_contract::Detail::Minimal);
        assert!(c.files.iter().any(|f| f.ends_with("api.yaml")));
        assert!(c.warnings.iter().any(|w| w.message.contains("getItem")), "{:?}", c.warnings);
        let c =
            from_yaml(&yaml("{ specs: [api.yaml], operations: { getItem: { public: true } } }"), dir.path()).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn every_problem_of_a_document_is_reported_with_its_pointer() {
        let dir = tempfile::tempdir().unwrap();
        let bad =
            SPEC.replace("required: true, schema: { type: integer }", "required: false, schema: { $ref: '#/nope' }");
        std::fs::write(dir.path().join("api.yaml"), bad).unwrap();
        let e = from_yaml(&yaml("{ specs: [api.yaml] }"), dir.path()).unwrap_err().0;
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e.iter().all(|e| e.path == "routes[0].policy.contract.specs[0]"));
        assert!(e.iter().any(|e| e.message.contains("/paths/~1items~1{id}/get/parameters/0/required")), "{e:?}");
        assert!(e.iter().any(|e| e.message.contains("points at nothing")), "{e:?}");
    }

    #[test]
    fn unknown_operations_and_missing_files_fail() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("api.yaml"), SPEC).unwrap();
        let e = from_yaml(&yaml("{ specs: [api.yaml], operations: { getItme: { mode: monitor } } }"), dir.path())
            .unwrap_err()
            .0;
        assert_eq!(e[0].path, "routes[0].policy.contract.operations.getItme");
        let e = from_yaml(&yaml("{ specs: [nope.yaml] }"), dir.path()).unwrap_err().0;
        assert_eq!(e[0].path, "routes[0].policy.contract.specs[0]");
    }

    /// A config with identity and one route `policy` (YAML flow mapping) over `api.yaml`.
    fn with_identity(policy: &str) -> String {
        format!(
            r#"
listeners: [{{ name: public, bind: "127.0.0.1:8080" }}]
upstreams: {{ crm: {{ targets: ["http://127.0.0.1:3000"] }} }}
identity: {{ store: {{ sqlite: {{ path: ids.db }} }}, key_secret: "${{file:key.secret}}" }}
routes: [{{ name: all, prefix: /, upstream: crm, policy: {policy} }}]
"#
        )
    }

    /// Writes SPEC with `ext` (YAML lines at the operation's indentation) added to getItem.
    fn spec_with(dir: &std::path::Path, ext: &str) {
        let spec = SPEC.replace("      operationId: getItem\n", &format!("      operationId: getItem\n{ext}"));
        std::fs::write(dir.join("api.yaml"), spec).unwrap();
        std::fs::write(dir.join("key.secret"), "a-config-test-secret-of-32-bytes-or-more").unwrap();
    }

    const AUTHED: &str = "{ auth: { methods: [api_key] }, rate_limit: { limits: [{ name: all, key: consumer, rate: 100, period: 1m }] }, exposure: { fields: [{ name: ssn, action: redact }] }, contract: { specs: [api.yaml] } }";

    #[test]
    fn operation_extensions_compile_into_merged_policies() {
        let dir = tempfile::tempdir().unwrap();
        spec_with(
            dir.path(),
            "      x-portcullis-owner: [{ path_param: id, equals: org_name }]\n      x-portcullis-rate-limit: [{ name: item-reads, key: consumer, rate: 5, period: 1m }]\n      x-portcullis-exposure: { fields: [{ pointer: /card, action: mask }] }\n",
        );
        let c = from_yaml(&with_identity(AUTHED), dir.path()).unwrap();
        let op = &c.routes[0].operations["getItem"];
        let auth = op.auth.as_ref().unwrap();
        assert_eq!(auth.owner.len(), 1);
        assert_eq!(auth.owner[0].source, crate::identity::OwnerSource::OperationParam("id".into()));
        assert!(op.path.is_some());
        let names: Vec<&str> = op.rate_limit.as_ref().unwrap().limits.limits().iter().map(|l| l.name()).collect();
        assert_eq!(names, ["all", "item-reads"], "the route's limits, then the operation's");
        let exposure = op.exposure.as_ref().unwrap();
        let out = exposure.policy.apply_json(br#"{"card":"abcd","ssn":"x"}"#, None).unwrap();
        let out: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        assert_ne!(out["card"], "abcd", "the operation's field rule");
        assert!(out.get("ssn").is_none(), "the route's field rule still applies: {out}");
        // The traffic policy and the route without extensions.
        assert!(crate::traffic_enabled(&c));
        let tp = crate::TrafficConfig::policy(&c);
        assert!(tp.operations["all"].contains_key("getItem"));
        std::fs::write(dir.path().join("api.yaml"), SPEC).unwrap();
        let c = from_yaml(&with_identity(AUTHED), dir.path()).unwrap();
        assert!(c.routes[0].operations.is_empty());
    }

    #[test]
    fn mistakes_in_operation_extensions_fail_check_with_their_pointer() {
        for (ext, policy, want) in [
            (
                "      x-portcullis-ratelimit: [{ name: a, key: consumer, rate: 1, period: 1s }]\n",
                AUTHED,
                "unknown extension",
            ),
            ("      x-portcullis-owner: [{ path_param: nope, equals: org_name }]\n", AUTHED, "no {nope} parameter"),
            ("      x-portcullis-owner: [{ path_param: id, equals: owner }]\n", AUTHED, "unknown value"),
            (
                "      x-portcullis-owner: [{ path_param: id, equals: org_name }]\n",
                "{ auth: { public: true }, contract: { specs: [api.yaml] } }",
                "authenticates nobody",
            ),
            (
                "      x-portcullis-rate-limit: [{ name: all, key: consumer, rate: 5, period: 1m }]\n",
                AUTHED,
                "already has a limit",
            ),
            ("      x-portcullis-rate-limit: [{ name: x, key: nobody, rate: 5, period: 1m }]\n", AUTHED, "unknown key"),
            ("      x-portcullis-rate-limit: { limit: 5 }\n", AUTHED, "not a list of limits"),
            ("      x-portcullis-exposure: { actions: { credit_card: mask } }\n", AUTHED, "unknown data class"),
            ("      x-portcullis-exposure: { mask: [card] }\n", AUTHED, "unknown field"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            spec_with(dir.path(), ext);
            let e = from_yaml(&with_identity(policy), dir.path()).unwrap_err().0;
            assert!(e.iter().any(|e| e.to_string().contains(want)), "{ext}: {e:?}");
            assert!(
                e.iter().any(|e| e.to_string().contains("/paths/~1items~1{id}/get")),
                "{ext}: the error names the operation: {e:?}"
            );
        }
    }
}
