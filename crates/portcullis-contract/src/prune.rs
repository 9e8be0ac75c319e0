//! Removing what a response schema does not declare (object-property level authorization: the
//! client sees only the properties the contract lists).
//!
//! The walk follows the bundled response schema: an object keeps the properties named by its
//! schema and by every `allOf`/`anyOf`/`oneOf` member; a schema that allows other properties
//! (`additionalProperties` other than `false`, `patternProperties`, or one that declares no
//! properties at all) keeps everything. A property whose schema is `false` (write-only in a
//! response) is removed even when declared.

use serde_json::{Map, Value};

use crate::load::escape_token;
use crate::params::follow;

const MAX_DEPTH: usize = 64;

/// What an object schema (and its composition members) declares.
#[derive(Default)]
struct Declared<'a> {
    props: Vec<(&'a str, &'a Value)>,
    open: bool,
    any_props: bool,
}

fn gather<'a>(root: &'a Value, s: &'a Value, d: &mut Declared<'a>, depth: usize) {
    if depth > 16 {
        d.open = true;
        return;
    }
    let Value::Object(m) = s else {
        if *s == Value::Bool(true) {
            d.open = true;
        }
        return;
    };
    // `$ref` applies in place (3.1 allows siblings next to it).
    if let Some(target) = m
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .and_then(|k| root.get("$defs")?.get(k))
    {
        gather(root, target, d, depth + 1);
    }
    if let Some(Value::Object(p)) = m.get("properties") {
        d.any_props = true;
        for (k, v) in p {
            d.props.push((k.as_str(), v));
        }
    }
    if m.contains_key("patternProperties") {
        d.open = true;
        d.any_props = true;
    }
    match m.get("additionalProperties") {
        Some(Value::Bool(false)) | None => {}
        Some(_) => d.open = true,
    }
    if matches!(m.get("unevaluatedProperties"), Some(v) if *v != Value::Bool(false)) {
        d.open = true;
    }
    for k in ["allOf", "anyOf", "oneOf"] {
        for member in m.get(k).and_then(Value::as_array).into_iter().flatten() {
            gather(root, member, d, depth + 1);
        }
    }
}

/// Removes undeclared properties from `value` in place, recording their pointers.
pub(crate) fn prune(
    root: &Value,
    schema: &Value,
    value: &mut Value,
    at: String,
    depth: usize,
    removed: &mut Vec<String>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(obj) => {
            let mut d = Declared::default();
            gather(root, schema, &mut d, 0);
            let keep_unknown = d.open || !d.any_props;
            let names: Vec<String> = obj.keys().cloned().collect();
            let mut kept = Map::new();
            for name in names {
                let Some(mut v) = obj.remove(&name) else { continue };
                let here = format!("{at}/{}", escape_token(&name));
                match d.props.iter().find(|(n, _)| *n == name) {
                    Some((_, s)) if **s == Value::Bool(false) => removed.push(here),
                    Some((_, s)) => {
                        prune(root, s, &mut v, here, depth + 1, removed);
                        kept.insert(name, v);
                    }
                    None if keep_unknown => {
                        kept.insert(name, v);
                    }
                    None => removed.push(here),
                }
            }
            *obj = kept;
        }
        Value::Array(items) => {
            let s = follow(root, schema);
            let item_schema = s.get("items").or_else(|| {
                ["allOf", "anyOf", "oneOf"]
                    .iter()
                    .filter_map(|k| s.get(*k).and_then(Value::as_array))
                    .flatten()
                    .find_map(|m| follow(root, m).get("items"))
            });
            if let Some(is) = item_schema {
                for (i, it) in items.iter_mut().enumerate() {
                    prune(root, is, it, format!("{at}/{i}"), depth + 1, removed);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undeclared_and_write_only_properties_are_removed_everywhere() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {"id": {"type": "integer"}, "pw": false, "items": {"type": "array", "items": {"$ref": "#/$defs/d0"}}},
            "$defs": {"d0": {"allOf": [{"properties": {"a": {}}}, {"properties": {"b": {}}}]}}
        });
        let mut v = serde_json::json!({"id": 1, "pw": "x", "secret": 2, "items": [{"a": 1, "b": 2, "c": 3}]});
        let mut removed = Vec::new();
        prune(&schema, &schema, &mut v, String::new(), 0, &mut removed);
        assert_eq!(v, serde_json::json!({"id": 1, "items": [{"a": 1, "b": 2}]}));
        removed.sort();
        assert_eq!(removed, vec!["/items/0/c", "/pw", "/secret"]);
    }

    #[test]
    fn open_schemas_keep_everything() {
        let schema = serde_json::json!({"type": "object", "additionalProperties": {"type": "string"}});
        let mut v = serde_json::json!({"x": "1"});
        let mut removed = Vec::new();
        prune(&schema, &schema, &mut v, String::new(), 0, &mut removed);
        assert!(removed.is_empty());
        let free = serde_json::json!({"type": "object"});
        prune(&free, &free, &mut v, String::new(), 0, &mut removed);
        assert!(removed.is_empty());
    }
}
