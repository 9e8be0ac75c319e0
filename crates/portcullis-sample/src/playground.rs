//! `/playground/echo`: answers with what it received (method, query, JSON or form body), so a
//! newcomer can see which requests the gateway's attack detection lets through.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, Method, header::CONTENT_TYPE};
use serde_json::{Value, json};

/// Bodies larger than this are summarised, not echoed.
const MAX_ECHO: usize = 64 * 1024;

fn pairs(s: &str) -> BTreeMap<String, String> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex =
            b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(v)) => {
                out.push(v);
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) async fn echo(method: Method, RawQuery(query): RawQuery, headers: HeaderMap, body: Bytes) -> Json<Value> {
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let query = query.as_deref().map(pairs).unwrap_or_default();
    let echoed = if body.is_empty() {
        Value::Null
    } else if body.len() > MAX_ECHO {
        json!({ "bytes": body.len() })
    } else if content_type.starts_with("application/json") {
        serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        json!(pairs(&String::from_utf8_lossy(&body)))
    } else {
        Value::String(String::from_utf8_lossy(&body).into_owned())
    };
    Json(json!({
        "method": method.as_str(),
        "query": query,
        "content_type": content_type,
        "body": echoed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_form_pairs_are_decoded() {
        let p = pairs("q=1%27%20OR%201=1--&name=O%27Brien+Jr&bad=%zz&flag");
        assert_eq!(p["q"], "1' OR 1=1--");
        assert_eq!(p["name"], "O'Brien Jr");
        assert_eq!(p["bad"], "%zz");
        assert_eq!(p["flag"], "");
    }

    #[tokio::test]
    async fn echoes_json_and_form_bodies() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        let Json(v) = echo(Method::POST, RawQuery(Some("a=1".into())), h, Bytes::from_static(br#"{"x":[1]}"#)).await;
        assert_eq!(v["body"]["x"][0], 1);
        assert_eq!(v["query"]["a"], "1");
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, "application/x-www-form-urlencoded".parse().unwrap());
        let Json(v) = echo(Method::POST, RawQuery(None), h, Bytes::from_static(b"n=D%27Arcy")).await;
        assert_eq!(v["body"]["n"], "D'Arcy");
    }
}
