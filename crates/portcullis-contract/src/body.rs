//! Request and response bodies: media-type matching and the three body formats a schema can
//! validate (JSON, `application/x-www-form-urlencoded`, `multipart/form-data`).

use serde_json::{Map, Value};

use crate::Violation;
use crate::params::{Shape, coerce, form_pairs, prop_kinds};

/// How a declared media type's body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MediaKind {
    Json,
    Form,
    Multipart,
    /// Anything else: only the Content-Type is checked.
    Opaque,
}

/// A declared media range (`application/json`, `image/*`, `*/*`), lower case, no parameters.
#[derive(Debug, Clone)]
pub(crate) struct MediaRange {
    pub(crate) range: String,
}

/// `type/subtype`, lower case, parameters stripped.
pub(crate) fn essence(ct: &str) -> String {
    ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

pub(crate) fn kind_of(essence: &str) -> MediaKind {
    if essence == "application/json" || essence.ends_with("+json") {
        MediaKind::Json
    } else if essence == "application/x-www-form-urlencoded" {
        MediaKind::Form
    } else if essence == "multipart/form-data" {
        MediaKind::Multipart
    } else {
        MediaKind::Opaque
    }
}

impl MediaRange {
    /// How specific a match of this range is: exact 2, `type/*` 1, `*/*` 0.
    fn matches(&self, essence: &str) -> Option<u8> {
        if self.range == essence {
            return Some(2);
        }
        if self.range == "*/*" {
            return Some(0);
        }
        let (t, s) = self.range.split_once('/')?;
        if s == "*" && essence.split_once('/').is_some_and(|(et, _)| et == t) {
            return Some(1);
        }
        None
    }
}

/// The index of the most specific declared range matching `essence`.
pub(crate) fn best_match<'a, T>(ranges: impl Iterator<Item = (&'a MediaRange, T)>, essence: &str) -> Option<T> {
    let mut best: Option<(u8, T)> = None;
    for (r, t) in ranges {
        if let Some(score) = r.matches(essence)
            && best.as_ref().is_none_or(|(b, _)| score > *b)
        {
            best = Some((score, t));
        }
    }
    best.map(|(_, t)| t)
}

/// Parses a JSON body with the strict parser ([`crate::json`]): limits on size, depth, string and
/// array length and object members, duplicate keys refused. Errors point into the body.
pub(crate) fn parse_json(bytes: &[u8], limits: &crate::json::JsonLimits) -> Result<Value, Violation> {
    crate::json::parse(bytes, limits).map_err(|e| Violation::new(format!("/body{}", e.pointer), e.kind.to_string()))
}

/// A form body read into an object as its schema's shape says (repeated names become arrays
/// where the property is an array).
pub(crate) fn form_object(body: &[u8], shape: &Shape) -> Result<Value, Violation> {
    let text = std::str::from_utf8(body).map_err(|_| Violation::new("/body", "form body is not UTF-8"))?;
    let mut m = Map::new();
    for (k, v) in form_pairs(text) {
        put_field(&mut m, k, FieldValue::Text(v), shape)?;
    }
    Ok(Value::Object(m))
}

enum FieldValue {
    Text(String),
    Json(Value),
}

fn put_field(m: &mut Map<String, Value>, name: String, value: FieldValue, shape: &Shape) -> Result<(), Violation> {
    let (props, _) = match shape {
        Shape::Object(p, open) => (p.as_slice(), *open),
        _ => (&[][..], true),
    };
    let declared_kinds = prop_kinds(props, &name);
    let is_array = array_props(shape).iter().any(|n| *n == name);
    let v = match value {
        FieldValue::Json(v) => v,
        FieldValue::Text(t) => coerce(&t, declared_kinds),
    };
    if is_array {
        if let Value::Array(a) = m.entry(name).or_insert_with(|| Value::Array(Vec::new())) {
            a.push(v);
        }
        return Ok(());
    }
    if m.contains_key(&name) {
        return Err(Violation::new(
            format!("/body/{}", crate::load::escape_token(&name)),
            "field given more than once",
        ));
    }
    m.insert(name, v);
    Ok(())
}

fn array_props(shape: &Shape) -> Vec<&str> {
    match shape {
        Shape::Object(p, _) => {
            p.iter().filter(|(_, k)| *k & crate::params::ARRAY_MARK != 0).map(|(n, _)| n.as_str()).collect()
        }
        _ => Vec::new(),
    }
}

/// Largest number of parts read from a multipart body.
const MAX_PARTS: usize = 1000;

/// A `multipart/form-data` body read into an object: text parts as their property's type,
/// `application/json` parts parsed, file parts (with a filename) as strings.
pub(crate) fn multipart_object(
    body: &[u8],
    content_type: &str,
    shape: &Shape,
    limits: &crate::json::JsonLimits,
) -> Result<Value, Violation> {
    let bad = |m: &str| Violation::new("/body", m.to_owned());
    let boundary = content_type
        .split(';')
        .skip(1)
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or_else(|| bad("multipart body without a boundary"))?;
    let delim = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(delim.as_bytes());
    let mut m = Map::new();
    let mut pos = finder.find(body).ok_or_else(|| bad("multipart boundary not found"))? + delim.len();
    let mut parts = 0;
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            return Ok(Value::Object(m));
        }
        let rest = rest.strip_prefix(b"\r\n").ok_or_else(|| bad("malformed multipart body"))?;
        let start = body.len() - rest.len();
        let next = finder.find(rest).ok_or_else(|| bad("multipart body not terminated"))?;
        let part = &rest[..next];
        let part = part.strip_suffix(b"\r\n").ok_or_else(|| bad("malformed multipart body"))?;
        parts += 1;
        if parts > MAX_PARTS {
            return Err(bad("too many multipart parts"));
        }
        let split = memchr::memmem::find(part, b"\r\n\r\n");
        let (head, content) = match split {
            Some(i) => (&part[..i], &part[i + 4..]),
            None if part.starts_with(b"\r\n") => (&[][..], &part[2..]),
            None => return Err(bad("malformed multipart part")),
        };
        let head = std::str::from_utf8(head).map_err(|_| bad("multipart part headers are not UTF-8"))?;
        let mut name = None;
        let mut filename = false;
        let mut part_type = String::from("text/plain");
        for line in head.split("\r\n") {
            let Some((h, v)) = line.split_once(':') else { continue };
            if h.trim().eq_ignore_ascii_case("content-disposition") {
                for p in v.split(';').skip(1) {
                    if let Some((k, val)) = p.trim().split_once('=') {
                        let val = val.trim().trim_matches('"');
                        match k.trim().to_ascii_lowercase().as_str() {
                            "name" => name = Some(val.to_owned()),
                            "filename" | "filename*" => filename = true,
                            _ => {}
                        }
                    }
                }
            } else if h.trim().eq_ignore_ascii_case("content-type") {
                part_type = essence(v);
            }
        }
        let name = name.ok_or_else(|| bad("multipart part without a name"))?;
        let value = if filename {
            FieldValue::Json(Value::String(String::from_utf8_lossy(content).into_owned()))
        } else if kind_of(&part_type) == MediaKind::Json {
            let v = parse_json(content, limits).map_err(|mut v| {
                v.pointer = format!("/body/{}{}", crate::load::escape_token(&name), &v.pointer["/body".len()..]);
                v
            })?;
            FieldValue::Json(v)
        } else {
            FieldValue::Text(String::from_utf8_lossy(content).into_owned())
        };
        put_field(&mut m, name, value, shape)?;
        pos = start + next + delim.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{ARRAY_MARK, INT, STR};

    fn shape() -> Shape {
        Shape::Object(vec![("n".into(), INT), ("s".into(), STR), ("tags".into(), ARRAY_MARK)], false)
    }

    #[test]
    fn media_ranges_pick_the_most_specific() {
        let ranges = [MediaRange { range: "*/*".into() }, MediaRange { range: "application/json".into() }];
        assert_eq!(best_match(ranges.iter().zip(0..), "application/json"), Some(1));
        assert_eq!(best_match(ranges.iter().zip(0..), "text/plain"), Some(0));
        let only = [MediaRange { range: "image/*".into() }];
        assert_eq!(best_match(only.iter().zip(0..), "image/png"), Some(0));
        assert_eq!(best_match(only.iter().zip(0..), "text/plain"), None);
    }

    #[test]
    fn forms_are_typed_by_the_schema_and_repeats_refused() {
        assert_eq!(
            form_object(b"n=5&s=5&tags=a&tags=b", &shape()).unwrap(),
            serde_json::json!({"n": 5, "s": "5", "tags": ["a", "b"]})
        );
        assert!(form_object(b"n=5&n=6", &shape()).is_err());
    }

    #[test]
    fn multipart_parts_are_read() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\n42\r\n--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XX--\r\n";
        let v =
            multipart_object(body, "multipart/form-data; boundary=XX", &shape(), &crate::json::JsonLimits::default())
                .unwrap();
        assert_eq!(v, serde_json::json!({"n": 42, "f": "hello"}));
        assert!(
            multipart_object(
                b"garbage",
                "multipart/form-data; boundary=XX",
                &shape(),
                &crate::json::JsonLimits::default()
            )
            .is_err()
        );
        assert!(multipart_object(body, "multipart/form-data", &shape(), &crate::json::JsonLimits::default()).is_err());
    }
}
