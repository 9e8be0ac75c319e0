//! Recording mode, for tests and fuzzing only: every request the API receives is appended to a
//! file as one JSON line, so a harness can check what actually got past the gateway.
//!
//! A line: `{"method", "path", "query", "headers", "content_type", "request_id", "body_b64"}`;
//! `query` is the raw query string or null, `headers` maps lower-case names to values (repeated
//! headers joined with ", ", credentials replaced by `<redacted>`), `body_b64` is the body in
//! standard base64, or null with `"body_over_cap": true` when it exceeded [`MAX_RECORDED_BODY`]
//! (such a request is answered 413 and not handled). Bodies are recorded in full on purpose:
//! this is test traffic; never point a recording API at real clients.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::StatusCode;
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, PROXY_AUTHORIZATION};
use serde_json::{Map, Value, json};

/// The largest body a recording API reads; larger ones are refused with 413.
pub const MAX_RECORDED_BODY: usize = 16 * 1024 * 1024;

/// Header values never written to the recording.
const REDACTED: &[&str] = &["x-api-key"];

/// Where recorded requests go. Cheap to clone; lines from concurrent requests never interleave.
#[derive(Debug, Clone)]
pub struct Recorder {
    file: Arc<Mutex<File>>,
}

impl Recorder {
    /// Creates (or truncates) the recording file. Lines are appended (`O_APPEND`), so a harness
    /// may truncate the file between phases while the API runs.
    pub fn create(path: &Path) -> io::Result<Recorder> {
        File::create(path)?;
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Recorder { file: Arc::new(Mutex::new(file)) })
    }

    fn append(&self, line: &Value) {
        let mut text = line.to_string();
        text.push('\n');
        // One write per line, under the lock: a reader sees whole lines. A poisoned lock only
        // means another request's write failed; the file is still usable.
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(err) = file.write_all(text.as_bytes()) {
            tracing::warn!(error = %err, "cannot append to the request recording");
        }
    }
}

/// [`crate::router`] with every request recorded by `recorder` before it is handled.
pub fn recording_router(recorder: Recorder) -> Router {
    // Outermost, so requests answered by the fallbacks are recorded too.
    crate::router().layer(middleware::from_fn_with_state(recorder, record))
}

async fn record(State(recorder): State<Recorder>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        let sensitive =
            name == AUTHORIZATION || name == PROXY_AUTHORIZATION || name == COOKIE || REDACTED.contains(&name.as_str());
        let value = if sensitive { "<redacted>".into() } else { String::from_utf8_lossy(value.as_bytes()) };
        match headers.get_mut(name.as_str()) {
            Some(Value::String(joined)) => {
                joined.push_str(", ");
                joined.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value.into_owned()));
            }
        }
    }
    let mut line = json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "content_type": parts.headers.get(CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes())),
        "request_id": parts.headers.get("x-request-id").map(|v| String::from_utf8_lossy(v.as_bytes())),
    });
    let bytes = match axum::body::to_bytes(body, MAX_RECORDED_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            line["body_b64"] = Value::Null;
            line["body_over_cap"] = Value::Bool(true);
            recorder.append(&line);
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        }
    };
    line["body_b64"] = Value::String(STANDARD.encode(&bytes));
    recorder.append(&line);
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[tokio::test]
    async fn every_request_is_recorded_with_its_body_and_without_credentials() {
        let dir = std::env::temp_dir().join(format!("portcullis-record-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("requests.jsonl");
        let recorder = Recorder::create(&path).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(axum::serve(listener, recording_router(recorder)).into_future());

        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = "POST /customers?x=1&y=%20 HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n\
                       authorization: Bearer secret-token\r\nx-api-key: k-secret\r\nx-request-id: rid-7\r\n\
                       x-tag: a\r\nx-tag: b\r\ncontent-length: 13\r\nconnection: close\r\n\r\n{\"name\":\"a\"}\n";
        tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut answer).await.unwrap();
        // The request was still handled (missing email: the API's own 400).
        assert!(answer.starts_with(b"HTTP/1.1 400"), "{}", String::from_utf8_lossy(&answer));
        server.abort();

        let mut text = String::new();
        File::open(&path).unwrap().read_to_string(&mut text).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["method"], "POST");
        assert_eq!(line["path"], "/customers");
        assert_eq!(line["query"], "x=1&y=%20");
        assert_eq!(line["content_type"], "application/json");
        assert_eq!(line["request_id"], "rid-7");
        assert_eq!(line["headers"]["x-tag"], "a, b");
        assert_eq!(line["headers"]["authorization"], "<redacted>");
        assert_eq!(line["headers"]["x-api-key"], "<redacted>");
        assert!(!text.contains("secret"));
        assert_eq!(STANDARD.decode(line["body_b64"].as_str().unwrap()).unwrap(), b"{\"name\":\"a\"}\n");
    }
}
