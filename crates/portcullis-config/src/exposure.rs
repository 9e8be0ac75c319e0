//! Each route's `policy.exposure` block: which sensitive data is masked, redacted, hashed or
//! blocked in responses, per-consumer response shaping, safe upstream errors. Compiled at load
//! time into a [`RouteExposure`]; errors name the config item.
//!
//! ```yaml
//! policy:
//!   exposure:
//!     actions: { card_number: mask, password_hash: block }
//!     fields:
//!       - { name: internal_credit_score, action: redact }
//!       - { pointer: /support/email, action: allow }
//!     shaping:
//!       - { consumer: partner-x, allow: [/items/*/id], max_items_everywhere: 20 }
//!     safe_errors: true
//!     max_body_bytes: 1048576
//!     on_compressed: refuse
//!     hash_key: ${env:EXPOSURE_HASH_KEY}
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use portcullis_exposure::{
    Action, ArrayCap, DataClass, ExposurePolicy, FieldRule, FieldTarget, HashKey, OnCompressed, RouteExposure,
    ShapeConfig, ShapeSubject, ShapingRule,
};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::typed::Builder;

pub use portcullis_exposure::RouteExposure as ExposureConfig;

/// A route's data-exposure policy (response scanning, masking, shaping, safe errors).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileExposure {
    /// Classes whose detectors run (e.g. `card_number`, `email`). Default: all.
    #[serde(default)]
    pub detectors: Option<Vec<String>>,
    /// Action per class: `allow`, `report`, `mask`, `mask_keep_last:N`, `redact`, `hash`, `block`.
    #[serde(default)]
    pub actions: BTreeMap<String, String>,
    /// Field rules, by JSON pointer pattern or by member name.
    #[serde(default)]
    pub fields: Vec<FileFieldRule>,
    /// Extra field names that are always sensitive (masked whatever their value).
    #[serde(default)]
    pub sensitive_fields: Vec<String>,
    /// Response shaping per consumer, organization or plan; consumer rules win over org rules,
    /// org over plan.
    #[serde(default)]
    pub shaping: Vec<FileShapingRule>,
    /// Replace upstream 4xx/5xx bodies that leak internals (stack traces, SQL, paths) by a
    /// problem with the same status. Default `true`.
    #[serde(default)]
    pub safe_errors: Option<bool>,
    /// Largest response body scanned; larger responses are refused (502). Default 8 MiB.
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// A response the upstream compressed despite `Accept-Encoding: identity`: `refuse` (502,
    /// default) or `pass` (served unscanned, counted).
    #[serde(default)]
    pub on_compressed: Option<String>,
    /// Reference to the key for `hash` (`${env:NAME}` or `${file:path}`, at least 16 bytes).
    #[serde(default)]
    pub hash_key: Option<String>,
}

/// A field rule: exactly one of `pointer` or `name`, and an action.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileFieldRule {
    /// A JSON pointer pattern (`/items/*/email`).
    #[serde(default)]
    pub pointer: Option<String>,
    /// A member name anywhere (case- and separator-insensitive).
    #[serde(default)]
    pub name: Option<String>,
    /// The action.
    pub action: String,
}

/// A shaping rule: exactly one of `consumer`, `org`, `plan`, and the shape.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileShapingRule {
    /// A consumer name.
    #[serde(default)]
    pub consumer: Option<String>,
    /// An organization name.
    #[serde(default)]
    pub org: Option<String>,
    /// A plan name.
    #[serde(default)]
    pub plan: Option<String>,
    /// JSON pointer patterns of the members this caller may see; empty keeps every member.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Caps on array lengths by pointer.
    #[serde(default)]
    pub max_items: Vec<FileArrayCap>,
    /// A cap on every array.
    #[serde(default)]
    pub max_items_everywhere: Option<usize>,
}

/// An array cap.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileArrayCap {
    /// The array's pointer pattern.
    pub pointer: String,
    /// The most items kept.
    pub max: usize,
}

/// Compiles one shaping rule; used by the config loader and by run-time policy updates.
pub fn compile_shaping_rule(r: &FileShapingRule) -> Result<ShapingRule, String> {
    let subject = match (&r.consumer, &r.org, &r.plan) {
        (Some(c), None, None) => ShapeSubject::Consumer(Arc::from(c.as_str())),
        (None, Some(o), None) => ShapeSubject::Org(Arc::from(o.as_str())),
        (None, None, Some(p)) => ShapeSubject::Plan(Arc::from(p.as_str())),
        _ => return Err("a shaping rule names exactly one of consumer, org or plan".into()),
    };
    let shape = ShapeConfig {
        allow: r.allow.clone(),
        max_items: r.max_items.iter().map(|c| ArrayCap { pointer: c.pointer.clone(), max: c.max }).collect(),
        max_items_everywhere: r.max_items_everywhere,
    }
    .compile()
    .map_err(|e| e.to_string())?;
    Ok(ShapingRule { subject, shape: Arc::new(shape) })
}

/// An operation's `x-portcullis-exposure` merged over its route's `policy.exposure`: the
/// operation's `actions` win per class, its `fields` and `shaping` rules come first (the first
/// matching rule wins), `sensitive_fields` add up, and each setting it gives replaces the route's.
pub(crate) fn merge(route: Option<&FileExposure>, op: FileExposure) -> FileExposure {
    let Some(route) = route else { return op };
    let mut out = route.clone();
    if op.detectors.is_some() {
        out.detectors = op.detectors;
    }
    out.actions.extend(op.actions);
    out.fields = op.fields.into_iter().chain(route.fields.iter().cloned()).collect();
    out.sensitive_fields.extend(op.sensitive_fields);
    out.shaping = op.shaping.into_iter().chain(route.shaping.iter().cloned()).collect();
    out.safe_errors = op.safe_errors.or(route.safe_errors);
    out.max_body_bytes = op.max_body_bytes.or(route.max_body_bytes);
    out.on_compressed = op.on_compressed.or_else(|| route.on_compressed.clone());
    out.hash_key = op.hash_key.or_else(|| route.hash_key.clone());
    out
}

impl Builder<'_> {
    pub(crate) fn route_exposure(&mut self, p: &str, fe: Option<&FileExposure>) -> Option<Arc<RouteExposure>> {
        let fe = fe?;
        self.exposure_block(&format!("{p}.policy.exposure"), fe)
    }

    /// Compiles one exposure block written at key path `p`.
    pub(crate) fn exposure_block(&mut self, p: &str, fe: &FileExposure) -> Option<Arc<RouteExposure>> {
        let p = p.to_owned();
        let mut policy = ExposurePolicy::default();
        if let Some(ds) = &fe.detectors {
            policy.detectors = ds
                .iter()
                .filter_map(|d| {
                    let c = DataClass::from_name(d);
                    if c.is_none() {
                        self.unknown_class(&format!("{p}.detectors"), d);
                    }
                    c
                })
                .collect();
        }
        for (class, action) in &fe.actions {
            let c = DataClass::from_name(class);
            if c.is_none() {
                self.unknown_class(&format!("{p}.actions"), class);
            }
            let a = self.action(&format!("{p}.actions.{class}"), action);
            if let (Some(c), Some(a)) = (c, a) {
                policy.class_actions.push((c, a));
            }
        }
        for (i, f) in fe.fields.iter().enumerate() {
            let fp = format!("{p}.fields[{i}]");
            let target = match (&f.pointer, &f.name) {
                (Some(ptr), None) => Some(FieldTarget::Pointer(ptr.clone())),
                (None, Some(n)) => Some(FieldTarget::Name(n.clone())),
                _ => {
                    self.c.error(
                        &fp,
                        "a field rule needs exactly one of `pointer` or `name`",
                        "write pointer: /a/b or name: x",
                    );
                    None
                }
            };
            if let (Some(target), Some(action)) = (target, self.action(&format!("{fp}.action"), &f.action)) {
                policy.field_rules.push(FieldRule { target, action });
            }
        }
        policy.extra_sensitive_fields = fe.sensitive_fields.clone();
        if let Some(reference) = &fe.hash_key
            && let Some(s) = self.secret_ref(&format!("{p}.hash_key"), reference)
        {
            policy.hash_key = Some(HashKey::new(s.expose().as_bytes().to_vec()));
        }
        let max_body_bytes = match fe.max_body_bytes.map(usize::try_from) {
            None => policy.max_body_bytes,
            Some(Ok(n)) if n > 0 => n,
            Some(_) => {
                self.c.error(format!("{p}.max_body_bytes"), "must be a positive size", "e.g. 1048576");
                policy.max_body_bytes
            }
        };
        policy.max_body_bytes = max_body_bytes;
        let on_compressed = match fe.on_compressed.as_deref() {
            None | Some("refuse") => OnCompressed::Refuse,
            Some("pass") => OnCompressed::Pass,
            Some(other) => {
                self.c.error(format!("{p}.on_compressed"), format!("unknown value {other:?}"), "write refuse or pass");
                OnCompressed::Refuse
            }
        };
        if on_compressed == OnCompressed::Pass {
            self.c.warn(format!("{p}.on_compressed"), "compressed responses are served unscanned");
        }
        let mut shaping = Vec::new();
        for (i, r) in fe.shaping.iter().enumerate() {
            match compile_shaping_rule(r) {
                Ok(rule) => shaping.push(rule),
                Err(e) => self.c.error(format!("{p}.shaping[{i}]"), e, "fix the rule"),
            }
        }
        let compiled = match policy.compile() {
            Ok(c) => c,
            Err(e) => {
                self.c.error(&p, e.to_string(), "fix the exposure policy");
                return None;
            }
        };
        let mut out = RouteExposure {
            policy: Arc::new(compiled),
            shaping,
            safe_errors: fe.safe_errors.unwrap_or(true),
            max_body_bytes,
            on_compressed,
        };
        out.sort_shaping();
        Some(Arc::new(out))
    }

    fn unknown_class(&mut self, path: &str, name: &str) {
        let known: Vec<&str> = DataClass::ALL.iter().map(|c| c.as_str()).collect();
        self.c.error(path, format!("unknown data class {name:?}"), format!("use one of: {}", known.join(", ")));
    }

    fn action(&mut self, path: &str, name: &str) -> Option<Action> {
        let a = Action::from_name(name);
        if a.is_none() {
            self.c.error(
                path,
                format!("unknown action {name:?}"),
                "use allow, report, mask, mask_keep_last:N, redact, hash or block",
            );
        }
        a
    }

    fn secret_ref(&mut self, path: &str, reference: &str) -> Option<crate::Secret> {
        match crate::resolve_secret(reference, self.base_dir) {
            Ok(s) => Some(s),
            Err(e) => {
                self.c.error(path, e.to_string(), "write ${env:NAME} or ${file:path} and make sure it resolves");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::from_yaml;

    fn yaml(exposure: &str) -> String {
        format!(
            r#"
listeners: [{{ name: public, bind: "127.0.0.1:8080" }}]
upstreams: {{ crm: {{ targets: ["http://127.0.0.1:3000"] }} }}
routes: [{{ name: all, prefix: /, upstream: crm, policy: {{ exposure: {exposure} }} }}]
"#
        )
    }

    #[test]
    fn a_valid_block_compiles_with_safe_defaults() {
        let c = from_yaml(
            &yaml("{ actions: { card_number: block }, fields: [{ name: ssn, action: redact }], shaping: [{ plan: free, allow: [/id] }] }"),
            Path::new("."),
        )
        .unwrap();
        let e = c.routes[0].exposure.as_ref().unwrap();
        assert!(e.safe_errors);
        assert_eq!(e.on_compressed, portcullis_exposure::OnCompressed::Refuse);
        assert_eq!(e.shaping.len(), 1);
        let out = e.policy.apply_json(br#"{"c":"4242 4242 4242 4242"}"#, None).unwrap();
        assert!(out.blocked);
    }

    #[test]
    fn mistakes_are_rejected_with_their_path() {
        for (bad, path) in [
            ("{ actions: { credit_card: mask } }", "routes[0].policy.exposure.actions"),
            ("{ actions: { email: scramble } }", "routes[0].policy.exposure.actions.email"),
            ("{ fields: [{ name: a, pointer: /a, action: mask }] }", "routes[0].policy.exposure.fields[0]"),
            ("{ shaping: [{ consumer: a, org: b, allow: [/id] }] }", "routes[0].policy.exposure.shaping[0]"),
            ("{ on_compressed: ignore }", "routes[0].policy.exposure.on_compressed"),
            ("{ max_body_bytes: 0 }", "routes[0].policy.exposure.max_body_bytes"),
            ("{ actions: { email: hash } }", "routes[0].policy.exposure"),
        ] {
            let errs = from_yaml(&yaml(bad), Path::new(".")).unwrap_err().0;
            assert!(errs.iter().any(|e| e.path.starts_with(path)), "{bad}: {errs:?}");
        }
    }
}
