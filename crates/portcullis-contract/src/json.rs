//! Strict JSON parsing for request bodies: limits on size, depth, string length, array length and
//! object members, and duplicate object keys rejected.
//!
//! Why strict: parsers disagree on `{"role": "user", "role": "admin"}` (first wins in some, last
//! wins in serde_json and most others), so a gateway that validates one reading while the
//! upstream acts on the other is bypassed. Rejecting duplicates removes the ambiguity. The limits
//! keep a body from costing more memory or CPU than the route allows before any schema runs.
//!
//! The parser is serde_json driven by a [`DeserializeSeed`] that builds a
//! [`serde_json::Value`] and checks every limit as it goes, so the grammar (escapes, surrogates,
//! numbers, trailing characters) is serde_json's and only the policy is ours. Nesting recursion
//! stops at [`JsonLimits::max_depth`], which is capped at [`MAX_DEPTH_CAP`] (serde_json's own
//! recursion guard), so deep input never exhausts the stack. Nothing here panics on input.
//!
//! ```
//! use portcullis_contract::json::{parse, JsonErrorKind, JsonLimits};
//!
//! let limits = JsonLimits::default();
//! let value = parse(br#"{"name": "ada", "tags": ["x"]}"#, &limits)?;
//! assert_eq!(value["tags"][0], "x");
//!
//! let err = parse(br#"{"user": {"role": "user", "role": "admin"}}"#, &limits).unwrap_err();
//! assert_eq!(err.pointer, "/user/role");
//! assert_eq!(err.kind, JsonErrorKind::DuplicateKey);
//! # Ok::<(), portcullis_contract::json::JsonError>(())
//! ```

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The deepest nesting a configured `max_depth` can allow. serde_json refuses the 128th nested
/// container itself, before our visitor sees it; capping one level below keeps the refusal ours
/// (reported as [`JsonErrorKind::TooDeep`] with a pointer) instead of a generic syntax error.
pub const MAX_DEPTH_CAP: usize = 126;

/// Limits applied while parsing one JSON document.
///
/// The defaults suit typical API request bodies; raise them per route when a contract needs more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Largest accepted document, in bytes. Default 1 MiB.
    pub max_bytes: usize,
    /// Most nested arrays/objects: `{}` and `[]` are depth 1, `{"a": []}` is depth 2. Default 32;
    /// capped at [`MAX_DEPTH_CAP`].
    pub max_depth: usize,
    /// Longest string (values and object keys), in bytes after unescaping. Default 64 KiB.
    pub max_string_bytes: usize,
    /// Most elements in one array. Default 10 000.
    pub max_array_len: usize,
    /// Most members in one object. Default 1 000.
    pub max_object_members: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        Self {
            max_bytes: 1024 * 1024,
            max_depth: 32,
            max_string_bytes: 64 * 1024,
            max_array_len: 10_000,
            max_object_members: 1_000,
        }
    }
}

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonErrorKind {
    /// The document is larger than `max_bytes`.
    TooLarge { max: usize },
    /// A container opens deeper than `max_depth`.
    TooDeep { max: usize },
    /// A string value or object key is longer than `max_string_bytes`.
    StringTooLong { max: usize },
    /// An array has more than `max_array_len` elements.
    ArrayTooLong { max: usize },
    /// An object has more than `max_object_members` members.
    TooManyMembers { max: usize },
    /// The same key appears twice in one object.
    DuplicateKey,
    /// Not JSON (serde_json's reason; it never quotes the input).
    Syntax { message: String },
}

impl fmt::Display for JsonErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { max } => write!(f, "document larger than {max} bytes"),
            Self::TooDeep { max } => write!(f, "nesting deeper than {max} levels"),
            Self::StringTooLong { max } => write!(f, "string longer than {max} bytes"),
            Self::ArrayTooLong { max } => write!(f, "array longer than {max} elements"),
            Self::TooManyMembers { max } => write!(f, "object with more than {max} members"),
            Self::DuplicateKey => f.write_str("duplicate object key"),
            Self::Syntax { message } => write!(f, "invalid JSON: {message}"),
        }
    }
}

/// A refused document: where (an RFC 6901 JSON pointer into the document, `""` for the root) and
/// why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at \"{pointer}\"")]
pub struct JsonError {
    /// RFC 6901 pointer to the offending value (for a duplicate key: the key's own pointer; for a
    /// syntax error: the innermost container or value being read).
    pub pointer: String,
    /// The reason.
    pub kind: JsonErrorKind,
}

/// Parses `bytes` as one JSON document under `limits`.
///
/// # Errors
/// [`JsonError`] with the pointer and reason for the first limit exceeded, duplicate key or
/// syntax error met.
pub fn parse(bytes: &[u8], limits: &JsonLimits) -> Result<Value, JsonError> {
    if bytes.len() > limits.max_bytes {
        return Err(JsonError { pointer: String::new(), kind: JsonErrorKind::TooLarge { max: limits.max_bytes } });
    }
    let mut state = State {
        limits: JsonLimits { max_depth: limits.max_depth.min(MAX_DEPTH_CAP), ..*limits },
        kind: None,
        reversed_path: Vec::new(),
        values_started: 0,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result =
        ValueSeed { state: &mut state, depth: 0 }.deserialize(&mut de).and_then(|value| de.end().map(|()| value));
    match result {
        Ok(value) => Ok(value),
        Err(err) => {
            let kind = state.kind.take().unwrap_or_else(|| JsonErrorKind::Syntax { message: err.to_string() });
            Err(JsonError { pointer: pointer(&state.reversed_path), kind })
        }
    }
}

/// One step of a JSON pointer.
enum Segment {
    Key(String),
    Index(usize),
}

struct State {
    limits: JsonLimits,
    /// Set by our own checks; `None` when serde_json itself failed.
    kind: Option<JsonErrorKind>,
    /// Filled only on failure, innermost first, as the error unwinds: success costs nothing.
    reversed_path: Vec<Segment>,
    /// Values begun so far: tells an error inside an array element from one between elements.
    values_started: u64,
}

impl State {
    fn fail<E: de::Error>(&mut self, kind: JsonErrorKind) -> E {
        self.kind = Some(kind);
        E::custom("limit exceeded")
    }
}

fn pointer(reversed: &[Segment]) -> String {
    let mut out = String::new();
    for segment in reversed.iter().rev() {
        out.push('/');
        match segment {
            Segment::Key(key) => {
                for c in key.chars() {
                    match c {
                        '~' => out.push_str("~0"),
                        '/' => out.push_str("~1"),
                        c => out.push(c),
                    }
                }
            }
            Segment::Index(index) => out.push_str(&index.to_string()),
        }
    }
    out
}

/// Deserializes one value whose enclosing containers number `depth`.
struct ValueSeed<'a> {
    state: &'a mut State,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.state.values_started += 1;
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // As serde_json's own `Value` does; JSON text never yields a non-finite number.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        if v.len() > self.state.limits.max_string_bytes {
            let max = self.state.limits.max_string_bytes;
            return Err(self.state.fail(JsonErrorKind::StringTooLong { max }));
        }
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        if v.len() > self.state.limits.max_string_bytes {
            let max = self.state.limits.max_string_bytes;
            return Err(self.state.fail(JsonErrorKind::StringTooLong { max }));
        }
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.depth + 1;
        let limits = self.state.limits;
        if depth > limits.max_depth {
            return Err(self.state.fail(JsonErrorKind::TooDeep { max: limits.max_depth }));
        }
        let mut items = Vec::new();
        loop {
            let index = items.len();
            let started = self.state.values_started;
            let seed = ValueSeed { state: &mut *self.state, depth };
            match seq.next_element_seed(seed) {
                Ok(Some(item)) => {
                    if index >= limits.max_array_len {
                        self.state.reversed_path.push(Segment::Index(index));
                        return Err(self.state.fail(JsonErrorKind::ArrayTooLong { max: limits.max_array_len }));
                    }
                    items.push(item);
                }
                Ok(None) => return Ok(Value::Array(items)),
                Err(err) => {
                    // A failure inside the element points at it; a failure between elements (a
                    // missing comma) is the array's.
                    if self.state.values_started > started {
                        self.state.reversed_path.push(Segment::Index(index));
                    }
                    return Err(err);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.depth + 1;
        let limits = self.state.limits;
        if depth > limits.max_depth {
            return Err(self.state.fail(JsonErrorKind::TooDeep { max: limits.max_depth }));
        }
        let mut members = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed { state: &mut *self.state })? {
            if members.len() >= limits.max_object_members {
                self.state.reversed_path.push(Segment::Key(key));
                return Err(self.state.fail(JsonErrorKind::TooManyMembers { max: limits.max_object_members }));
            }
            if members.contains_key(&key) {
                self.state.reversed_path.push(Segment::Key(key));
                return Err(self.state.fail(JsonErrorKind::DuplicateKey));
            }
            let seed = ValueSeed { state: &mut *self.state, depth };
            match map.next_value_seed(seed) {
                Ok(value) => {
                    members.insert(key, value);
                }
                Err(err) => {
                    self.state.reversed_path.push(Segment::Key(key));
                    return Err(err);
                }
            }
        }
        Ok(Value::Object(members))
    }
}

/// Deserializes one object key, under the string limit.
struct KeySeed<'a> {
    state: &'a mut State,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        if v.len() > self.state.limits.max_string_bytes {
            let max = self.state.limits.max_string_bytes;
            return Err(self.state.fail(JsonErrorKind::StringTooLong { max }));
        }
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        if v.len() > self.state.limits.max_string_bytes {
            let max = self.state.limits.max_string_bytes;
            return Err(self.state.fail(JsonErrorKind::StringTooLong { max }));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests;
