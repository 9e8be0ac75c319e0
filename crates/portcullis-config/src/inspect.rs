//! Each route's `policy.inspect` block: attack detection (SQLi, XSS, command injection, traversal,
//! …) on path segments, query, cookies, chosen headers and the body.
//!
//! Everything is validated at load through [`portcullis_inspect::InspectPolicy::compile`], one
//! exclusion at a time, so a typo in a rule id or a JSON pointer fails `portcullis check` with the
//! key path of the faulty entry instead of silently excluding nothing.

use schemars::JsonSchema;
use serde::Deserialize;

use portcullis_inspect::{CompiledPolicy, Exclusion, InspectPolicy, Mode, Target};

use crate::typed::Builder;

/// The default inspection body cap: 1 MiB.
pub const DEFAULT_INSPECT_BODY_CAP: usize = 1 << 20;

/// A route's attack-detection settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileInspect {
    /// `block` (default: a request over the threshold gets 403) or `monitor` (let through, counted
    /// in `portcullis_inspect_findings_total`).
    #[serde(default)]
    pub mode: Option<FileInspectMode>,
    /// 1 (default, fewest false positives) to 4 (most rules).
    #[serde(default)]
    pub paranoia: Option<u8>,
    /// The score at which a request is blocked. Default 5 (one confident finding).
    #[serde(default)]
    pub threshold: Option<u32>,
    /// Headers scanned besides User-Agent, Referer and Cookie (`*` for every header).
    #[serde(default)]
    pub headers: Vec<String>,
    /// Bytes of body scanned. Default 1 MiB.
    #[serde(default)]
    pub body_cap: Option<usize>,
    /// What happens to a body larger than `body_cap`: `reject` (default, 413 before the upstream
    /// is contacted) or `pass` (the first `body_cap` bytes are scanned, the rest is not; counted in
    /// `portcullis_inspect_body_over_cap_total`).
    #[serde(default)]
    pub on_body_over_cap: Option<FileOverCap>,
    /// Exclusions: a rule (or class) everywhere, a location for every rule, or both.
    #[serde(default)]
    pub exclusions: Vec<FileExclusion>,
    /// Locations never scanned (fields the contract already constrains, such as ids).
    #[serde(default)]
    pub skip: Vec<String>,
}

/// Inspection mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileInspectMode {
    /// Block requests over the threshold.
    Block,
    /// Let them through, counted and logged.
    Monitor,
}

/// What happens to a body over the inspection cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum FileOverCap {
    /// Refuse the request (413) before the upstream is contacted. The secure default.
    #[default]
    Reject,
    /// Scan the first `body_cap` bytes and let the rest through unscanned (counted).
    Pass,
}

/// One exclusion.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileExclusion {
    /// A rule id (e.g. `sqli-tautology`) or a class (e.g. `xss`).
    #[serde(default)]
    pub rule: Option<String>,
    /// A location: `body:/json/pointer` (`*` matches one segment), `query:name`, `form:name`,
    /// `param:name` (query, form or multipart), `header:name`, `cookie:name`, `path:N`.
    #[serde(default)]
    pub target: Option<String>,
}

/// A route's compiled inspection settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InspectConfig {
    /// The policy as written (mode, paranoia, threshold, headers, body cap, exclusions).
    pub policy: InspectPolicy,
    /// The same, validated and compiled.
    pub compiled: CompiledPolicy,
    /// What happens to a body over `policy.body_cap`.
    pub on_body_over_cap: FileOverCap,
}

impl Builder<'_> {
    /// Validates a route's `policy.inspect` block; `p` is the route's key path.
    pub(crate) fn route_inspect(&mut self, p: &str, fi: Option<&FileInspect>) -> Option<InspectConfig> {
        let fi = fi?;
        let base = format!("{p}.policy.inspect");
        let mut ok = true;
        let mut policy = InspectPolicy {
            mode: match fi.mode {
                Some(FileInspectMode::Monitor) => Mode::Monitor,
                Some(FileInspectMode::Block) | None => Mode::Block,
            },
            headers: fi.headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
            ..InspectPolicy::default()
        };
        if let Some(p) = fi.paranoia {
            policy.paranoia = p;
        }
        if let Some(t) = fi.threshold {
            policy.threshold = t;
        }
        policy.body_cap = fi.body_cap.unwrap_or(DEFAULT_INSPECT_BODY_CAP);
        if policy.body_cap == 0 {
            ok = false;
            self.c.error(
                format!("{base}.body_cap"),
                "body_cap must be at least 1",
                "write a byte count such as 1048576",
            );
        }
        for (field, bad) in [
            ("paranoia", InspectPolicy { paranoia: policy.paranoia, ..InspectPolicy::default() }),
            ("threshold", InspectPolicy { threshold: policy.threshold, ..InspectPolicy::default() }),
        ] {
            if let Err(e) = bad.compile() {
                ok = false;
                self.c.error(format!("{base}.{field}"), e.to_string(), "paranoia is 1..=4; threshold is at least 1");
            }
        }
        for (i, h) in fi.headers.iter().enumerate() {
            if h != "*" && (h.is_empty() || !h.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_".contains(&c))) {
                ok = false;
                self.c.error(
                    format!("{base}.headers[{i}]"),
                    format!("invalid header name {h:?}"),
                    "write a header name such as x-search or `*`",
                );
            }
        }
        for (i, s) in fi.skip.iter().enumerate() {
            match Target::parse(s) {
                Ok(t) => policy.skip.push(t),
                Err(e) => {
                    ok = false;
                    self.c.error(format!("{base}.skip[{i}]"), e.to_string(), TARGET_FIX);
                }
            }
        }
        for (i, fe) in fi.exclusions.iter().enumerate() {
            let key = format!("{base}.exclusions[{i}]");
            if fe.rule.is_none() && fe.target.is_none() {
                ok = false;
                self.c.error(
                    &key,
                    "an exclusion needs `rule`, `target` or both",
                    "to turn inspection off, remove the inspect block",
                );
                continue;
            }
            let target = match fe.target.as_deref().map(Target::parse).transpose() {
                Ok(t) => t,
                Err(e) => {
                    ok = false;
                    self.c.error(format!("{key}.target"), e.to_string(), TARGET_FIX);
                    continue;
                }
            };
            let ex = Exclusion { rule: fe.rule.clone(), target };
            // Compiled alone so the error names this entry.
            if let Err(e) = (InspectPolicy { exclusions: vec![ex.clone()], ..InspectPolicy::default() }).compile() {
                ok = false;
                let field = if fe.rule.is_some() { "rule" } else { "target" };
                self.c.error(
                    format!("{key}.{field}"),
                    e.to_string(),
                    "use a rule id or class from docs/inspection.md (e.g. sqli-tautology, xss)",
                );
                continue;
            }
            policy.exclusions.push(ex);
        }
        if !ok {
            return None;
        }
        match policy.compile() {
            Ok(compiled) => {
                Some(InspectConfig { policy, compiled, on_body_over_cap: fi.on_body_over_cap.unwrap_or_default() })
            }
            Err(e) => {
                self.c.error(base, e.to_string(), "see docs/inspection.md");
                None
            }
        }
    }
}

const TARGET_FIX: &str =
    "write body:/json/pointer, query:name, form:name, param:name, header:name, cookie:name or path:N";

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::from_yaml;

    fn yaml(inspect: &str) -> String {
        format!(
            r#"
listeners: [{{ name: public, bind: "127.0.0.1:8080" }}]
upstreams: {{ crm: {{ targets: ["http://127.0.0.1:3000"] }} }}
routes: [{{ name: all, prefix: /, upstream: crm, policy: {{ inspect: {inspect} }} }}]
"#
        )
    }

    #[test]
    fn a_valid_block_compiles_with_secure_defaults() {
        let c = from_yaml(
            &yaml("{ exclusions: [{ rule: sqli-tautology }, { target: 'body:/notes/*' }, { rule: xss, target: 'query:q' }] }"),
            Path::new("."),
        )
        .unwrap();
        let i = c.routes[0].inspect.as_ref().unwrap();
        assert_eq!(i.policy.mode, portcullis_inspect::Mode::Block);
        assert_eq!(i.on_body_over_cap, super::FileOverCap::Reject);
        assert_eq!(i.policy.body_cap, super::DEFAULT_INSPECT_BODY_CAP);
        assert_eq!(i.policy.exclusions.len(), 3);
    }

    #[test]
    fn no_block_means_no_inspection() {
        let y = yaml("{}").replace(", policy: { inspect: {} }", "");
        assert!(from_yaml(&y, Path::new(".")).unwrap().routes[0].inspect.is_none());
    }

    #[test]
    fn a_typo_in_an_exclusion_rule_fails_with_its_key_path() {
        let e = from_yaml(&yaml("{ exclusions: [{ rule: sqli-tautology }, { rule: sqli-tautolgy }] }"), Path::new("."))
            .unwrap_err()
            .0;
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].path, "routes[0].policy.inspect.exclusions[1].rule");
        assert!(e[0].message.contains("sqli-tautolgy"));
    }

    #[test]
    fn a_bad_target_fails_with_its_key_path() {
        for bad in ["'body:notes'", "'bdy:/x'", "'path:x'", "'body:/a~2'"] {
            let e =
                from_yaml(&yaml(&format!("{{ exclusions: [{{ target: {bad} }}] }}")), Path::new(".")).unwrap_err().0;
            assert_eq!(e[0].path, "routes[0].policy.inspect.exclusions[0].target", "{bad}");
        }
    }

    #[test]
    fn bad_levels_and_unknown_keys_fail() {
        let e = from_yaml(&yaml("{ paranoia: 7 }"), Path::new(".")).unwrap_err().0;
        assert_eq!(e[0].path, "routes[0].policy.inspect.paranoia");
        let e = from_yaml(&yaml("{ threshold: 0 }"), Path::new(".")).unwrap_err().0;
        assert_eq!(e[0].path, "routes[0].policy.inspect.threshold");
        let e = from_yaml(&yaml("{ mode: audit }"), Path::new(".")).unwrap_err().0;
        assert!(e[0].path.starts_with("routes[0].policy.inspect"), "{e:?}");
        let e = from_yaml(&yaml("{ exclusions: [{}] }"), Path::new(".")).unwrap_err().0;
        assert_eq!(e[0].path, "routes[0].policy.inspect.exclusions[0]");
    }

    #[test]
    fn monitor_and_pass_are_read() {
        let c = from_yaml(
            &yaml("{ mode: monitor, on_body_over_cap: pass, body_cap: 100, headers: [X-Search] }"),
            Path::new("."),
        )
        .unwrap();
        let i = c.routes[0].inspect.as_ref().unwrap();
        assert_eq!(i.policy.mode, portcullis_inspect::Mode::Monitor);
        assert_eq!(i.on_body_over_cap, super::FileOverCap::Pass);
        assert_eq!(i.policy.headers, vec!["x-search".to_owned()]);
    }
}
