//! Parameters on the wire (path, query, header, cookie) turned into JSON values that the
//! parameter schema validates: OpenAPI `style` and `explode` decide how a value is split, the
//! schema's types decide how each piece is read (`"7"` is the integer 7 where the schema wants an
//! integer, and stays the string `"7"` where it wants a string).

use serde_json::{Map, Value};

/// Where a parameter lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum In {
    Path,
    Query,
    Header,
    Cookie,
}

impl In {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "path" => In::Path,
            "query" => In::Query,
            "header" => In::Header,
            "cookie" => In::Cookie,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            In::Path => "path",
            In::Query => "query",
            In::Header => "header",
            In::Cookie => "cookie",
        }
    }
}

/// OpenAPI serialization styles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Simple,
    Label,
    Matrix,
    Form,
    SpaceDelimited,
    PipeDelimited,
    DeepObject,
}

impl Style {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "simple" => Style::Simple,
            "label" => Style::Label,
            "matrix" => Style::Matrix,
            "form" => Style::Form,
            "spaceDelimited" => Style::SpaceDelimited,
            "pipeDelimited" => Style::PipeDelimited,
            "deepObject" => Style::DeepObject,
            _ => return None,
        })
    }

    pub(crate) fn default_for(loc: In) -> Self {
        match loc {
            In::Path | In::Header => Style::Simple,
            In::Query | In::Cookie => Style::Form,
        }
    }
}

/// The JSON types a schema allows, as bits.
pub(crate) type Kinds = u8;
pub(crate) const INT: Kinds = 1;
pub(crate) const NUM: Kinds = 2;
pub(crate) const BOOL: Kinds = 4;
pub(crate) const STR: Kinds = 8;
pub(crate) const NULL: Kinds = 16;
/// On an object's property: the property is an array (of the other kinds).
pub(crate) const ARRAY_MARK: Kinds = 32;

/// What a parameter (or a form field) holds, enough to read its text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    Scalar(Kinds),
    Array(Kinds),
    /// Properties with their kinds; `open` when other names are allowed too.
    Object(Vec<(String, Kinds)>, bool),
}

fn kinds_of(types: &Value) -> Kinds {
    let one = |t: &str| match t {
        "integer" => INT,
        "number" => NUM | INT,
        "boolean" => BOOL,
        "string" => STR,
        "null" => NULL,
        _ => 0,
    };
    match types {
        Value::String(t) => one(t),
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(one).fold(0, |x, y| x | y),
        _ => 0,
    }
}

/// Follows `#/$defs/…` references inside a bundled schema.
pub(crate) fn follow<'a>(root: &'a Value, mut s: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match s.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
            Some(k) => match root.get("$defs").and_then(|d| d.get(k)) {
                Some(t) => s = t,
                None => return s,
            },
            None => return s,
        }
    }
    s
}

/// The first member of `allOf`/`anyOf`/`oneOf` that says something about `key`, or the schema.
fn find<'a>(root: &'a Value, s: &'a Value, key: &str, depth: usize) -> Option<&'a Value> {
    let s = follow(root, s);
    if let Some(v) = s.get(key) {
        return Some(v);
    }
    if depth > 6 {
        return None;
    }
    for k in ["allOf", "anyOf", "oneOf"] {
        for m in s.get(k).and_then(Value::as_array).into_iter().flatten() {
            if let Some(v) = find(root, m, key, depth + 1) {
                return Some(v);
            }
        }
    }
    None
}

fn scalar_kinds(root: &Value, s: &Value) -> Kinds {
    find(root, s, "type", 0).map_or(0, kinds_of)
}

/// A property's kinds, with [`ARRAY_MARK`] and the item kinds when it is an array.
fn prop_shape_kinds(root: &Value, s: &Value) -> Kinds {
    match shape_of_inner(root, s, false) {
        Shape::Array(k) => ARRAY_MARK | k,
        Shape::Scalar(k) => k,
        Shape::Object(..) => 0,
    }
}

/// The shape of a (bundled) schema.
pub(crate) fn shape_of(root: &Value, s: &Value) -> Shape {
    shape_of_inner(root, s, true)
}

fn shape_of_inner(root: &Value, s: &Value, objects: bool) -> Shape {
    let t = find(root, s, "type", 0);
    let is = |name: &str| match t {
        Some(Value::String(x)) => x == name,
        Some(Value::Array(a)) => a.iter().any(|x| x == name),
        _ => false,
    };
    if is("array") {
        let items = find(root, s, "items", 0).map_or(0, |i| scalar_kinds(root, i));
        return Shape::Array(items);
    }
    if objects && (is("object") || find(root, s, "properties", 0).is_some()) {
        let props = find(root, s, "properties", 0)
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), prop_shape_kinds(root, v))).collect::<Vec<_>>())
            .unwrap_or_default();
        let closed = matches!(find(root, s, "additionalProperties", 0), Some(Value::Bool(false)))
            || matches!(find(root, s, "unevaluatedProperties", 0), Some(Value::Bool(false)));
        let open = !closed || props.is_empty();
        return Shape::Object(props, open);
    }
    Shape::Scalar(t.map_or(0, kinds_of))
}

/// Reads one piece of text as the JSON value the kinds ask for.
pub(crate) fn coerce(s: &str, kinds: Kinds) -> Value {
    if kinds & INT != 0
        && let Ok(i) = s.parse::<i64>()
    {
        return Value::from(i);
    }
    if kinds & NUM != 0
        && let Ok(f) = s.parse::<f64>()
        && f.is_finite()
        && s.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
        && let Some(n) = serde_json::Number::from_f64(f)
    {
        return Value::Number(n);
    }
    if kinds & BOOL != 0 {
        match s {
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            _ => {}
        }
    }
    if kinds & NULL != 0 && kinds & STR == 0 && s.is_empty() {
        return Value::Null;
    }
    Value::String(s.to_owned())
}

/// A delimited value (`a,b,c`) read as the shape asks: array items, or object `k,v` pairs.
pub(crate) fn split_value(s: &str, sep: char, shape: &Shape, explode_pairs: bool) -> Value {
    match shape {
        Shape::Scalar(k) => coerce(s, *k),
        Shape::Array(k) => {
            if s.is_empty() {
                return Value::Array(Vec::new());
            }
            Value::Array(s.split(sep).map(|p| coerce(p, *k)).collect())
        }
        Shape::Object(props, _) => {
            let mut m = Map::new();
            if explode_pairs {
                // `k=v,k2=v2`
                for pair in s.split(sep).filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    m.insert(k.to_owned(), coerce(v, prop_kinds(props, k)));
                }
            } else {
                // `k,v,k2,v2`
                let parts: Vec<&str> = s.split(sep).collect();
                for kv in parts.chunks(2) {
                    let k = kv[0];
                    let v = kv.get(1).copied().unwrap_or("");
                    m.insert(k.to_owned(), coerce(v, prop_kinds(props, k)));
                }
            }
            Value::Object(m)
        }
    }
}

pub(crate) fn prop_kinds(props: &[(String, Kinds)], name: &str) -> Kinds {
    props.iter().find(|(n, _)| n == name).map_or(STR, |(_, k)| if *k == 0 { STR } else { *k })
}

/// Decodes `application/x-www-form-urlencoded` text (query strings and form bodies): `+` is a
/// space, `%XX` a byte. Invalid UTF-8 is replaced (the schema then sees what the upstream would).
pub(crate) fn form_decode(s: &str) -> String {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return s.to_owned();
    }
    crate::load::percent_decode(&s.replace('+', " "))
}

/// Splits a query string or form body into decoded (name, value) pairs, in order.
pub(crate) fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

/// Parses a `Cookie` header into (name, value) pairs.
pub(crate) fn cookie_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for v in headers.get_all(http::header::COOKIE) {
        let Ok(s) = v.to_str() else { continue };
        for c in s.split(';') {
            let c = c.trim();
            if c.is_empty() {
                continue;
            }
            let (k, v) = c.split_once('=').unwrap_or((c, ""));
            out.push((k.trim().to_owned(), v.trim().trim_matches('"').to_owned()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coercion_follows_the_schema_types() {
        assert_eq!(coerce("7", INT), Value::from(7));
        assert_eq!(coerce("7", STR), Value::from("7"));
        assert_eq!(coerce("7.5", NUM | INT), serde_json::json!(7.5));
        assert_eq!(coerce("abc", INT), Value::from("abc"));
        assert_eq!(coerce("true", BOOL), Value::Bool(true));
        assert_eq!(coerce("inf", NUM), Value::from("inf"));
    }

    #[test]
    fn styles_split_arrays_and_objects() {
        assert_eq!(split_value("1,2,3", ',', &Shape::Array(INT), false), serde_json::json!([1, 2, 3]));
        assert_eq!(split_value("1|2", '|', &Shape::Array(INT), false), serde_json::json!([1, 2]));
        let obj = Shape::Object(vec![("r".into(), INT), ("g".into(), STR)], false);
        assert_eq!(split_value("r,100,g,x", ',', &obj, false), serde_json::json!({"r": 100, "g": "x"}));
        assert_eq!(split_value("r=1,g=y", ',', &obj, true), serde_json::json!({"r": 1, "g": "y"}));
    }

    #[test]
    fn form_pairs_decode() {
        assert_eq!(
            form_pairs("a=1&b=x+y&c=%41&d"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "A".into()),
                ("d".into(), String::new())
            ]
        );
    }
}
