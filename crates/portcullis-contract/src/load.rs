//! Loading OpenAPI documents: YAML or JSON, local `$ref`s across files (never remote), and the
//! translation of OpenAPI schemas into self-contained JSON Schema 2020-12 documents that the
//! `jsonschema` crate compiles once.
//!
//! Every schema an operation uses is *bundled*: each `$ref` target (in this file or another) is
//! copied once into the bundle's `$defs` and the reference rewritten to `#/$defs/…`, so recursion
//! works and the compiled validator never resolves anything at run time. While copying, the
//! OpenAPI dialect is translated:
//!
//! - 3.0 `nullable: true` adds `null` to `type` (and to `enum`);
//! - 3.0 boolean `exclusiveMinimum`/`exclusiveMaximum` become the 2020-12 numeric form;
//! - 3.0 `$ref` siblings are ignored (as 3.0 says); 3.1 keeps them;
//! - `format: int32`/`int64` add the range bounds;
//! - requests: a `readOnly` property becomes the `false` schema (sending it is refused, mass
//!   assignment) and leaves `required`; responses: the same for `writeOnly`;
//! - strict mode: an object schema that declares properties and says nothing about others gets
//!   `unevaluatedProperties: false` (which, unlike `additionalProperties`, sees through `allOf`).
//!   Members of `allOf`/`anyOf`/`oneOf` stay open: their parent closes them. A bare
//!   `{type: object}` declares nothing and stays free-form.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// One problem in a document, with the file and the JSON pointer of the faulty node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The document's path as given.
    pub file: String,
    /// A JSON pointer into that document.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}: {}", self.file, self.pointer, self.message)
    }
}

/// Largest document accepted, and most files one contract may pull in through `$ref`.
const MAX_DOC_BYTES: usize = 16 << 20;
const MAX_FILES: usize = 64;
/// `$ref` chains longer than this are refused (a cycle of plain references).
const MAX_REF_HOPS: usize = 32;

/// Which OpenAPI dialect a document speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    V30,
    V31,
}

pub(crate) struct Doc {
    pub(crate) name: String,
    dir: PathBuf,
    canonical: PathBuf,
    pub(crate) value: Value,
}

/// Every document of one contract: the roots given in the config and the files they reference.
pub(crate) struct Docs {
    pub(crate) docs: Vec<Doc>,
    pub(crate) dialect: Dialect,
}

/// Parses YAML or JSON (JSON is YAML, but the JSON parser is faster and stricter).
pub(crate) fn parse_document(text: &str) -> Result<Value, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        serde_json::from_str(text).map_err(|e| e.to_string())
    } else {
        serde_saphyr::from_str::<Value>(text).map_err(|e| e.to_string())
    }
}

fn read(path: &Path) -> Result<Value, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() > MAX_DOC_BYTES {
        return Err(format!("{} is larger than {MAX_DOC_BYTES} bytes", path.display()));
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8", path.display()))?;
    parse_document(&text)
}

impl Docs {
    /// Loads one root document from a file.
    pub(crate) fn load(path: &Path, name: &str) -> Result<Self, SpecError> {
        let err = |m: String| SpecError { file: name.to_owned(), pointer: String::new(), message: m };
        let value = read(path).map_err(err)?;
        Self::from_value(value, path, name)
    }

    /// A root document already parsed (`path` only gives the directory for relative refs).
    pub(crate) fn from_value(value: Value, path: &Path, name: &str) -> Result<Self, SpecError> {
        let err = |p: &str, m: String| SpecError { file: name.to_owned(), pointer: p.to_owned(), message: m };
        let version = value.get("openapi").and_then(Value::as_str).ok_or_else(|| {
            err(
                "/openapi",
                "not an OpenAPI 3 document: no `openapi` version string (Swagger 2.0 is not supported)".into(),
            )
        })?;
        let dialect = if version.starts_with("3.0.") || version == "3.0" {
            Dialect::V30
        } else if version.starts_with("3.1.") || version == "3.1" {
            Dialect::V31
        } else {
            return Err(err("/openapi", format!("unsupported OpenAPI version {version:?}: use 3.0.x or 3.1.x")));
        };
        if !value.get("paths").is_none_or(Value::is_object) {
            return Err(err("/paths", "must be an object".into()));
        }
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Self { docs: vec![Doc { name: name.to_owned(), dir, canonical, value }], dialect })
    }

    /// Resolves a `$ref` string found in document `from` to (document, pointer), loading the
    /// referenced file if needed. Remote references are refused.
    pub(crate) fn resolve_ref(&mut self, from: usize, reference: &str) -> Result<(usize, String), String> {
        let (file, fragment) = match reference.split_once('#') {
            Some((f, frag)) => (f, frag),
            None => (reference, ""),
        };
        if file.contains("://") || file.starts_with("//") || file.split('/').next().is_some_and(|s| s.contains(':')) {
            return Err(format!("remote $ref {reference:?} is not allowed: copy the document next to this one"));
        }
        let pointer = percent_decode(fragment);
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(format!("$ref {reference:?}: only JSON-pointer fragments are supported"));
        }
        let doc = if file.is_empty() {
            from
        } else {
            let full = self.docs[from].dir.join(percent_decode(file));
            let canonical = std::fs::canonicalize(&full)
                .map_err(|e| format!("$ref {reference:?}: cannot read {}: {e}", full.display()))?;
            match self.docs.iter().position(|d| d.canonical == canonical) {
                Some(i) => i,
                None => {
                    if self.docs.len() >= MAX_FILES {
                        return Err(format!("more than {MAX_FILES} files referenced"));
                    }
                    let value = read(&full).map_err(|e| format!("$ref {reference:?}: {e}"))?;
                    let dir = full.parent().map(Path::to_path_buf).unwrap_or_default();
                    self.docs.push(Doc { name: full.display().to_string(), dir, canonical, value });
                    self.docs.len() - 1
                }
            }
        };
        if self.docs[doc].value.pointer(&pointer).is_none() {
            return Err(format!("$ref {reference:?} points at nothing"));
        }
        Ok((doc, pointer))
    }

    pub(crate) fn get(&self, doc: usize, pointer: &str) -> Option<&Value> {
        self.docs.get(doc)?.value.pointer(pointer)
    }

    /// Follows `$ref` chains (parameters, responses, request bodies, path items) to the object.
    pub(crate) fn deref(&mut self, mut doc: usize, mut pointer: String) -> Result<(usize, String), String> {
        for _ in 0..MAX_REF_HOPS {
            let Some(r) = self.get(doc, &pointer).and_then(|v| v.get("$ref")).and_then(Value::as_str) else {
                return Ok((doc, pointer));
            };
            let r = r.to_owned();
            (doc, pointer) = self.resolve_ref(doc, &r)?;
        }
        Err("$ref chain too long (a cycle?)".into())
    }
}

/// Decodes `%XX` escapes (URI fragments and file names of `$ref`s).
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    if !b.contains(&b'%') {
        return s.to_owned();
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Escapes one JSON pointer token.
pub(crate) fn escape_token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Which way a schema is used: readOnly applies to requests, writeOnly to responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Request,
    Response,
}

/// Builds one self-contained JSON Schema from schemas of the documents.
pub(crate) struct Bundler<'a> {
    docs: &'a mut Docs,
    direction: Direction,
    strict: bool,
    defs: Map<String, Value>,
    keys: HashMap<(usize, String, bool), String>,
    pending: Vec<(usize, String, bool, String)>,
    pub(crate) errors: Vec<SpecError>,
}

/// Keywords whose value is one subschema.
const ONE: &[&str] = &[
    "additionalProperties",
    "unevaluatedProperties",
    "items",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "propertyNames",
    "unevaluatedItems",
    "additionalItems",
];
/// Keywords whose value maps names to subschemas.
const MAP: &[&str] = &["properties", "patternProperties", "dependentSchemas"];
/// Keywords whose value is an array of subschemas; `true` for the applicators whose members a
/// parent's `unevaluatedProperties` sees through.
const LIST: &[(&str, bool)] = &[("allOf", true), ("anyOf", true), ("oneOf", true), ("prefixItems", false)];
/// OpenAPI-only or annotation keywords dropped from the compiled schema.
const DROP: &[&str] = &[
    "nullable",
    "discriminator",
    "xml",
    "externalDocs",
    "example",
    "examples",
    "$id",
    "$schema",
    "$defs",
    "definitions",
    "$anchor",
    "$dynamicAnchor",
    "$comment",
];

impl<'a> Bundler<'a> {
    pub(crate) fn new(docs: &'a mut Docs, direction: Direction, strict: bool) -> Self {
        Self {
            docs,
            direction,
            strict,
            defs: Map::new(),
            keys: HashMap::new(),
            pending: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn error(&mut self, doc: usize, pointer: &str, message: impl Into<String>) {
        let file = self.docs.docs.get(doc).map(|d| d.name.clone()).unwrap_or_default();
        let e = SpecError { file, pointer: pointer.to_owned(), message: message.into() };
        if !self.errors.contains(&e) {
            self.errors.push(e);
        }
    }

    /// The raw value at (doc, pointer), `null` when missing.
    pub(crate) fn peek_value(&self, doc: usize, pointer: &str) -> Value {
        self.docs.get(doc, pointer).cloned().unwrap_or(Value::Null)
    }

    pub(crate) fn push_error(&mut self, doc: usize, pointer: &str, message: &str) {
        self.error(doc, pointer, message);
    }

    /// Translates the schema at (doc, pointer); call [`finish`](Self::finish) after the last one.
    pub(crate) fn schema_at(&mut self, doc: usize, pointer: &str) -> Value {
        let Some(v) = self.docs.get(doc, pointer).cloned() else {
            self.error(doc, pointer, "schema missing");
            return Value::Bool(false);
        };
        self.translate(doc, pointer, &v, false)
    }

    /// Adds the `$defs` that the translated schemas refer to.
    pub(crate) fn finish(mut self, mut root: Value) -> (Value, Vec<SpecError>) {
        while let Some((doc, pointer, loose, key)) = self.pending.pop() {
            let v = self.docs.get(doc, &pointer).cloned().unwrap_or(Value::Bool(false));
            let t = self.translate(doc, &pointer, &v, loose);
            self.defs.insert(key, t);
        }
        if !self.defs.is_empty() {
            if let Value::Object(m) = &mut root {
                m.insert("$defs".into(), Value::Object(std::mem::take(&mut self.defs)));
            } else {
                // A boolean root with definitions cannot happen: refs only come from objects.
                root = serde_json::json!({ "allOf": [root], "$defs": Value::Object(std::mem::take(&mut self.defs)) });
            }
        }
        (root, self.errors)
    }

    fn ref_key(&mut self, doc: usize, pointer: &str, reference: &str, loose: bool) -> Option<String> {
        let (tdoc, tptr) = match self.docs.resolve_ref(doc, reference) {
            Ok(t) => t,
            Err(e) => {
                self.error(doc, pointer, e);
                return None;
            }
        };
        let k = (tdoc, tptr.clone(), loose);
        if let Some(key) = self.keys.get(&k) {
            return Some(key.clone());
        }
        let key = format!("d{}", self.keys.len());
        self.keys.insert(k, key.clone());
        self.pending.push((tdoc, tptr, loose, key.clone()));
        Some(key)
    }

    /// The schema a property points at, one `$ref` deep (for readOnly/writeOnly and strictness).
    fn peek(&mut self, doc: usize, v: &Value) -> Option<Value> {
        let r = v.get("$ref")?.as_str()?.to_owned();
        let (d, p) = self.docs.resolve_ref(doc, &r).ok()?;
        let (d, p) = self.docs.deref(d, p).ok()?;
        self.docs.get(d, &p).cloned()
    }

    fn hidden(&mut self, doc: usize, v: &Value) -> bool {
        let flag = match self.direction {
            Direction::Request => "readOnly",
            Direction::Response => "writeOnly",
        };
        let own = v.get(flag).and_then(Value::as_bool);
        if let Some(b) = own {
            return b;
        }
        self.peek(doc, v).and_then(|t| t.get(flag).and_then(Value::as_bool)).unwrap_or(false)
    }

    fn declares_properties(&mut self, doc: usize, v: &Value, depth: usize) -> bool {
        if depth > 8 {
            return false;
        }
        if v.get("properties").is_some() || v.get("patternProperties").is_some() {
            return true;
        }
        if let Some(t) = self.peek(doc, v)
            && self.declares_properties(doc, &t, depth + 1)
        {
            return true;
        }
        for (k, _) in LIST.iter().filter(|(_, a)| *a) {
            if let Some(Value::Array(items)) = v.get(*k) {
                for i in items.clone() {
                    if self.declares_properties(doc, &i, depth + 1) {
                        return true;
                    }
                }
            }
        }
        false
    }

    fn translate(&mut self, doc: usize, pointer: &str, v: &Value, applicator: bool) -> Value {
        let obj = match v {
            Value::Bool(_) => return v.clone(),
            Value::Object(o) => o,
            _ => {
                self.error(doc, pointer, "a schema must be an object or a boolean");
                return Value::Bool(false);
            }
        };
        let v30 = self.docs.dialect == Dialect::V30;
        if let Some(r) = obj.get("$ref") {
            let Some(r) = r.as_str() else {
                self.error(doc, &format!("{pointer}/$ref"), "$ref must be a string");
                return Value::Bool(false);
            };
            let siblings_declare = obj.contains_key("properties") || obj.contains_key("patternProperties");
            if v30 || obj.keys().all(|k| k == "$ref" || k.starts_with("x-") || k == "description" || k == "summary") {
                let key = self.ref_key(doc, pointer, r, applicator);
                return key.map_or(Value::Bool(false), |k| serde_json::json!({ "$ref": format!("#/$defs/{k}") }));
            }
            // 3.1: `$ref` applies in place next to its siblings.
            let key = self.ref_key(doc, pointer, r, applicator || siblings_declare);
            let mut rest = obj.clone();
            rest.remove("$ref");
            let mut out = self.translate(doc, pointer, &Value::Object(rest), applicator);
            if let (Value::Object(m), Some(k)) = (&mut out, key) {
                m.insert("$ref".into(), Value::String(format!("#/$defs/{k}")));
            }
            return out;
        }
        let mut out = Map::new();
        let mut hidden_required: Vec<String> = Vec::new();
        for (k, val) in obj {
            let here = format!("{pointer}/{}", escape_token(k));
            // Extensions are annotations, except the SSRF mark the contract reads after bundling.
            if DROP.contains(&k.as_str()) || (k.starts_with("x-") && k != "x-portcullis-ssrf") {
                continue;
            }
            if ONE.contains(&k.as_str()) && (val.is_object() || val.is_boolean()) {
                out.insert(k.clone(), self.translate(doc, &here, val, false));
            } else if MAP.contains(&k.as_str()) {
                let Some(m) = val.as_object() else {
                    self.error(doc, &here, "must be an object of schemas");
                    continue;
                };
                let mut tm = Map::new();
                for (name, s) in m {
                    let sp = format!("{here}/{}", escape_token(name));
                    if k == "properties" && self.hidden(doc, s) {
                        tm.insert(name.clone(), Value::Bool(false));
                        hidden_required.push(name.clone());
                    } else {
                        tm.insert(name.clone(), self.translate(doc, &sp, s, false));
                    }
                }
                out.insert(k.clone(), Value::Object(tm));
            } else if let Some((_, app)) = LIST.iter().find(|(n, _)| *n == k) {
                let Some(items) = val.as_array() else {
                    self.error(doc, &here, "must be an array of schemas");
                    continue;
                };
                let t: Vec<Value> = items
                    .iter()
                    .enumerate()
                    .map(|(i, s)| self.translate(doc, &format!("{here}/{i}"), s, *app))
                    .collect();
                out.insert(k.clone(), Value::Array(t));
            } else if k == "items" && val.is_array() {
                // Draft-4 tuple form (not valid OpenAPI, seen in the wild): read as prefixItems.
                let t: Vec<Value> = val
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, s)| self.translate(doc, &format!("{here}/{i}"), s, false))
                    .collect();
                out.insert("prefixItems".into(), Value::Array(t));
            } else {
                out.insert(k.clone(), val.clone());
            }
        }
        if !hidden_required.is_empty()
            && let Some(Value::Array(req)) = out.get_mut("required")
        {
            req.retain(|r| r.as_str().is_none_or(|s| !hidden_required.iter().any(|h| h == s)));
        }
        if v30 {
            translate_30(&mut out, obj);
        }
        add_format_bounds(&mut out);
        if self.strict
            && !applicator
            && !out.contains_key("additionalProperties")
            && !out.contains_key("unevaluatedProperties")
            && self.declares_properties(doc, v, 0)
        {
            // Without in-place applicators both say the same, and `additionalProperties` is the
            // cheaper one to evaluate (no annotation tracking).
            let composed =
                ["allOf", "anyOf", "oneOf", "$ref", "if", "dependentSchemas"].iter().any(|k| out.contains_key(*k));
            let key = if composed { "unevaluatedProperties" } else { "additionalProperties" };
            out.insert(key.into(), Value::Bool(false));
        }
        Value::Object(out)
    }
}

/// OpenAPI 3.0 → JSON Schema 2020-12.
fn translate_30(out: &mut Map<String, Value>, original: &Map<String, Value>) {
    if original.get("nullable").and_then(Value::as_bool) == Some(true) {
        match out.get_mut("type") {
            Some(Value::String(t)) => {
                let t = t.clone();
                out.insert("type".into(), serde_json::json!([t, "null"]));
            }
            Some(Value::Array(a)) if !a.iter().any(|x| x == "null") => a.push(Value::from("null")),
            _ => {}
        }
        if let Some(Value::Array(e)) = out.get_mut("enum")
            && !e.contains(&Value::Null)
        {
            e.push(Value::Null);
        }
    }
    for (flag, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
        if let Some(Value::Bool(b)) = out.get(flag).cloned() {
            out.remove(flag);
            if b && let Some(limit) = out.remove(bound) {
                out.insert(flag.into(), limit);
            }
        }
    }
}

/// `format: int32` / `int64` carry a range: add it as bounds when the schema sets none.
fn add_format_bounds(out: &mut Map<String, Value>) {
    let (lo, hi): (Value, Value) = match out.get("format").and_then(Value::as_str) {
        Some("int32") => (i32::MIN.into(), i32::MAX.into()),
        Some("int64") => (i64::MIN.into(), i64::MAX.into()),
        _ => return,
    };
    // The bounds alone are not enough: a literal past 64 bits (`-9223372036854775809`) parses as
    // the nearest double, which equals i64::MIN and passes `minimum`. The keyword refuses any
    // number that did not parse as an exact 64-bit integer (see `contract::ExactInteger`).
    out.insert(crate::contract::EXACT_INTEGER_KEYWORD.into(), Value::Bool(true));
    if !out.contains_key("minimum") && !out.contains_key("exclusiveMinimum") {
        out.insert("minimum".into(), lo);
    }
    if !out.contains_key("maximum") && !out.contains_key("exclusiveMaximum") {
        out.insert("maximum".into(), hi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(v: Value) -> Docs {
        Docs::from_value(v, Path::new("spec.yaml"), "spec.yaml").unwrap()
    }

    fn bundle(d: &mut Docs, dir: Direction, strict: bool, ptr: &str) -> Value {
        let mut b = Bundler::new(d, dir, strict);
        let s = b.schema_at(0, ptr);
        let (v, errors) = b.finish(s);
        assert!(errors.is_empty(), "{errors:?}");
        v
    }

    #[test]
    fn nullable_and_exclusive_bounds_of_3_0_are_translated() {
        let mut d = docs(serde_json::json!({"openapi": "3.0.3", "paths": {}, "components": {"schemas": {
            "A": {"type": "integer", "nullable": true, "minimum": 1, "exclusiveMinimum": true, "enum": [1, 2]}}}}));
        let v = bundle(&mut d, Direction::Request, true, "/components/schemas/A");
        assert_eq!(v["type"], serde_json::json!(["integer", "null"]));
        assert_eq!(v["exclusiveMinimum"], 1);
        assert!(v.get("minimum").is_none());
        assert_eq!(v["enum"], serde_json::json!([1, 2, null]));
    }

    #[test]
    fn read_only_properties_become_false_in_requests_only() {
        let spec = serde_json::json!({"openapi": "3.1.0", "paths": {}, "components": {"schemas": {
            "U": {"type": "object", "required": ["id", "name"], "properties": {
                "id": {"type": "integer", "readOnly": true}, "name": {"type": "string"}}}}}});
        let mut d = docs(spec);
        let req = bundle(&mut d, Direction::Request, true, "/components/schemas/U");
        assert_eq!(req["properties"]["id"], Value::Bool(false));
        assert_eq!(req["required"], serde_json::json!(["name"]));
        assert_eq!(req["additionalProperties"], Value::Bool(false));
        let resp = bundle(&mut d, Direction::Response, true, "/components/schemas/U");
        assert_eq!(resp["properties"]["id"]["type"], "integer");
    }

    #[test]
    fn remote_refs_are_refused_and_missing_ones_reported() {
        let mut d = docs(serde_json::json!({"openapi": "3.0.0", "paths": {}, "components": {"schemas": {
            "A": {"properties": {"r": {"$ref": "https://evil.example/s.json"}, "m": {"$ref": "#/components/schemas/Nope"}}}}}}));
        let mut b = Bundler::new(&mut d, Direction::Request, true);
        let s = b.schema_at(0, "/components/schemas/A");
        let (_, errors) = b.finish(s);
        assert_eq!(errors.len(), 2, "{errors:?}");
        let remote = errors.iter().find(|e| e.message.contains("remote")).unwrap();
        assert_eq!(remote.pointer, "/components/schemas/A/properties/r");
        let missing = errors.iter().find(|e| e.message.contains("points at nothing")).unwrap();
        assert_eq!(missing.pointer, "/components/schemas/A/properties/m");
    }

    #[test]
    fn all_of_members_stay_open_and_the_parent_is_closed() {
        let mut d = docs(serde_json::json!({"openapi": "3.0.0", "paths": {}, "components": {"schemas": {
            "Base": {"type": "object", "properties": {"a": {"type": "string"}}},
            "Both": {"allOf": [{"$ref": "#/components/schemas/Base"}, {"properties": {"b": {"type": "string"}}}]}}}}));
        let v = bundle(&mut d, Direction::Request, true, "/components/schemas/Both");
        assert_eq!(v["unevaluatedProperties"], Value::Bool(false));
        assert!(v["allOf"][1].get("unevaluatedProperties").is_none());
        let validator = jsonschema::draft202012::options().build(&v).unwrap();
        assert!(validator.is_valid(&serde_json::json!({"a": "x", "b": "y"})));
        assert!(!validator.is_valid(&serde_json::json!({"a": "x", "c": "y"})));
    }

    #[test]
    fn recursive_schemas_bundle() {
        let mut d = docs(serde_json::json!({"openapi": "3.1.0", "paths": {}, "components": {"schemas": {
            "Node": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}}}}}}));
        let v = bundle(&mut d, Direction::Request, true, "/components/schemas/Node");
        let validator = jsonschema::draft202012::options().build(&v).unwrap();
        assert!(validator.is_valid(&serde_json::json!({"kids": [{"kids": []}]})));
        assert!(!validator.is_valid(&serde_json::json!({"kids": [{"x": 1}]})));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/paths/~1a%7Bb%7D"), "/paths/~1a{b}");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
