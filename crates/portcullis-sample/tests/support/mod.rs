//! A plain HTTP/1.1 client for the sample API and a small checker that holds responses to the
//! schemas in `openapi.yaml`.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test support: a failed request or a spec that does not match should fail the test loudly"
)]

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portcullis_sample::{OPENAPI_YAML, SampleApi};
use serde_json::Value;

pub(crate) struct Harness {
    pub(crate) api: SampleApi,
    client: Client<HttpConnector, Full<Bytes>>,
}

#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!("{} body is not JSON ({err}): {:?}", self.status, String::from_utf8_lossy(&self.body))
        })
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Harness {
    pub(crate) async fn start() -> Harness {
        let api = SampleApi::start(([127, 0, 0, 1], 0).into()).await.unwrap();
        let client = Client::builder(TokioExecutor::new()).build_http();
        Harness { api, client }
    }

    pub(crate) async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut request = Request::builder().method(method).uri(format!("{}{path}", self.api.base_url()));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
        let response = self.client.request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Reply { status: parts.status, headers: parts.headers, body }
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], b"").await
    }

    pub(crate) async fn send_json(&self, method: Method, path: &str, body: &Value) -> Reply {
        let body = serde_json::to_vec(body).unwrap();
        self.send(method, path, &[("content-type", "application/json")], &body).await
    }
}

pub(crate) fn openapi() -> Value {
    serde_saphyr::from_str(OPENAPI_YAML).unwrap()
}

/// Asserts that `reply` is documented for `method path_template` and matches its JSON schema.
pub(crate) fn assert_documented(spec: &Value, method: &Method, path_template: &str, reply: &Reply) {
    let operation = &spec["paths"][path_template][method.as_str().to_ascii_lowercase()];
    assert!(operation.is_object(), "{method} {path_template} is not in openapi.yaml");
    let responses = &operation["responses"];
    let mut response = responses
        .get(reply.status.as_str())
        .or_else(|| responses.get("default"))
        .unwrap_or_else(|| panic!("{method} {path_template}: status {} is not documented", reply.status));
    if let Some(reference) = response.get("$ref").and_then(Value::as_str) {
        response = resolve(spec, reference);
    }
    let Some(content) = response.get("content") else {
        assert!(reply.body.is_empty(), "{method} {path_template}: undocumented body");
        return;
    };
    if let Some(media) = content.get("application/json") {
        let value = reply.json();
        if let Err(problem) = check(spec, &media["schema"], &value, "$") {
            panic!("{method} {path_template} {}: {problem}\n{value:#}", reply.status);
        }
    } else {
        let declared: Vec<_> = content.as_object().unwrap().keys().collect();
        let actual = reply.header("content-type").unwrap_or_default();
        assert!(
            declared.iter().any(|media| actual.starts_with(media.as_str())),
            "{method} {path_template}: content-type {actual} not in {declared:?}"
        );
    }
}

pub(crate) fn resolve<'a>(spec: &'a Value, reference: &str) -> &'a Value {
    let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("external $ref {reference}"));
    spec.pointer(pointer).unwrap_or_else(|| panic!("dangling $ref {reference}"))
}

/// A small JSON Schema checker: `$ref`, `type`, `const`, `enum`, `required`, `properties`,
/// `additionalProperties`, `items`, `minimum`, `maximum`, `minLength`. Undeclared properties are
/// errors, so the schemas must list every field the API returns.
pub(crate) fn check(spec: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        return check(spec, resolve(spec, reference), value, at);
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            other => return Err(format!("{at}: bad type {other}")),
        };
        let matches = |t: &str| match t {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_u64() || value.is_i64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => false,
        };
        if !types.iter().any(|t| matches(t)) {
            return Err(format!("{at}: {value} is not of type {types:?}"));
        }
    }
    if let Some(expected) = schema.get("const")
        && expected != value
    {
        return Err(format!("{at}: {value} is not {expected}"));
    }
    if let Some(Value::Array(options)) = schema.get("enum")
        && !options.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {options:?}"));
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && let Some(n) = value.as_f64()
        && n < min
    {
        return Err(format!("{at}: {n} < minimum {min}"));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && let Some(n) = value.as_f64()
        && n > max
    {
        return Err(format!("{at}: {n} > maximum {max}"));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && let Some(s) = value.as_str()
        && (s.chars().count() as u64) < min
    {
        return Err(format!("{at}: shorter than {min}"));
    }
    if let Value::Object(fields) = value {
        if let Some(Value::Array(required)) = schema.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !fields.contains_key(name) {
                    return Err(format!("{at}: missing required {name}"));
                }
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        for (name, field) in fields {
            let at = format!("{at}.{name}");
            match (properties.and_then(|p| p.get(name)), additional) {
                (Some(sub), _) => check(spec, sub, field, &at)?,
                (None, Some(sub)) if sub.is_object() => check(spec, sub, field, &at)?,
                (None, Some(Value::Bool(true))) => {}
                (None, _) => return Err(format!("{at}: not declared in the schema")),
            }
        }
    }
    if let (Value::Array(elements), Some(items)) = (value, schema.get("items")) {
        for (i, element) in elements.iter().enumerate() {
            check(spec, items, element, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}
