#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]
//! The OpenAPI contract on the wire: a gateway with `policy.contract` in front of a recording
//! upstream. What the contract does not allow never reaches the upstream; what the upstream
//! returns beyond the contract never reaches the client.

use bytes::Bytes;
use http_body_util::Full;
use portcullis_testkit::{Resp, TestGateway, Upstream};

const SPEC: &str = r#"
openapi: 3.1.0
info: { title: e2e, version: "1" }
paths:
  /items/{id}:
    get:
      operationId: getItem
      x-portcullis-public: true
      parameters:
        - { name: id, in: path, required: true, schema: { type: integer, minimum: 1 } }
        - { name: limit, in: query, schema: { type: integer, maximum: 50 } }
      responses:
        "200":
          description: the upstream's echo, of which only `method` is declared
          content:
            application/json:
              schema: { type: object, required: [method], properties: { method: { type: string } } }
  /items:
    post:
      operationId: createItem
      x-portcullis-public: true
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [name]
              properties:
                id: { type: integer, readOnly: true }
                name: { type: string, minLength: 1 }
                homepage: { type: string, format: uri }
                callback: { type: string, x-portcullis-ssrf: true }
      responses:
        "200":
          description: echo
          content:
            application/json:
              schema: { type: object, properties: { method: { type: string }, path: { type: string } } }
  /status/{code}:
    get:
      operationId: status
      x-portcullis-public: true
      parameters: [{ name: code, in: path, required: true, schema: { type: integer } }]
      responses:
        "200":
          description: ok
          content: { application/json: { schema: { type: object, properties: { status: { type: integer } } } } }
  /fetch:
    get:
      operationId: fetch
      x-portcullis-public: true
      parameters:
        - { name: url, in: query, required: true, schema: { type: string, format: uri } }
        - { name: mirrors, in: query, schema: { type: array, items: { type: string, format: uri } } }
        - { name: x-callback, in: header, schema: { type: string, x-portcullis-ssrf: true } }
      responses: { "200": { description: ok, content: { application/json: { schema: { type: object } } } } }
  /admin:
    get:
      operationId: admin
      security: [{ bearer: [] }]
      responses: { "200": { description: ok } }
components:
  securitySchemes:
    bearer: { type: http, scheme: bearer }
"#;

fn config(up: &Upstream) -> String {
    format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams: {{ up: {{ targets: ["http://{addr}"] }} }}
routes:
  - name: monitored
    prefix: /m
    upstream: up
    policy: {{ contract: {{ specs: [api.yaml], base_path: /m, mode: monitor, detail: full }} }}
  - name: api
    prefix: /
    upstream: up
    policy: {{ contract: {{ specs: [api.yaml], detail: full }} }}
"#,
        addr = up.addr()
    )
}

async fn start(up: &Upstream) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api.yaml"), SPEC).unwrap();
    TestGateway::start_in(dir, &config(up)).await
}

fn request(method: &str, path: &str, ct: Option<&str>, body: &str) -> http::Request<Full<Bytes>> {
    let mut b = http::Request::builder().method(method).uri(path).header("host", "api.test");
    if let Some(ct) = ct {
        b = b.header("content-type", ct);
    }
    b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
}

fn pointers(r: &Resp) -> Vec<String> {
    r.json()["violations"]
        .as_array()
        .map(|a| a.iter().map(|v| v["pointer"].as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn valid_requests_pass_and_responses_lose_undeclared_properties() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let r = gw.get("/items/7?limit=10").await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    // The upstream echoes {"method","path"}; only `method` is declared.
    assert_eq!(r.json(), serde_json::json!({"method": "GET"}));
    let r = gw.request(request("POST", "/items", Some("application/json"), r#"{"name":"box"}"#)).await;
    assert_eq!(r.status, 200);
    let body = r#"{"name":"box","callback":"https://93.184.216.34/hook"}"#;
    assert_eq!(gw.request(request("POST", "/items", Some("application/json"), body)).await.status, 200);
    assert_eq!(up.hits(), 3);
    assert_eq!(up.requests()[1].headers["accept-encoding"], "identity");
}

/// A request, the status it must get, and the violation pointers the problem must list.
type Case = (http::Request<Full<Bytes>>, u16, Vec<&'static str>);

#[tokio::test]
async fn requests_that_break_the_contract_never_reach_the_upstream() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let json = Some("application/json");
    let cases: Vec<Case> = vec![
        (request("GET", "/items/abc", None, ""), 400, vec!["/path/id"]),
        (request("GET", "/items/7?limit=500", None, ""), 400, vec!["/query/limit"]),
        (request("GET", "/items/7?debug=true", None, ""), 400, vec!["/query/debug"]),
        (request("GET", "/items/7?limit=1&limit=2", None, ""), 400, vec!["/query/limit"]),
        (request("GET", "/internal/metrics", None, ""), 404, vec!["/path"]),
        (request("DELETE", "/items/7", None, ""), 405, vec!["/method"]),
        (request("POST", "/items", json, r#"{"name":"box","id":1}"#), 400, vec!["/body/id"]),
        (request("POST", "/items", json, r#"{"name":"box","admin":true}"#), 400, vec!["/body/admin"]),
        (request("POST", "/items", json, r#"{"name":""}"#), 400, vec!["/body/name"]),
        (request("POST", "/items", json, r#"{"name":"box","homepage":"not a uri"}"#), 400, vec!["/body/homepage"]),
        (request("POST", "/items", json, r#"{"name": "box""#), 400, vec!["/body"]),
        (request("POST", "/items", json, r#"{"name":"box","name":"admin"}"#), 400, vec!["/body/name"]),
        (
            request("POST", "/items", json, r#"{"name":"box","homepage":"http://169.254.169.254/latest"}"#),
            400,
            vec!["/body/homepage"],
        ),
        (
            request("POST", "/items", json, r#"{"name":"box","callback":"http://[::1]:8080/hook"}"#),
            400,
            vec!["/body/callback"],
        ),
        (request("POST", "/items", Some("application/xml"), "<name>box</name>"), 415, vec!["/header/content-type"]),
        (request("POST", "/items", None, ""), 400, vec!["/body"]),
        (request("GET", "/admin", None, ""), 401, vec!["/security"]),
    ];
    for (req, status, want) in cases {
        let label = format!("{} {}", req.method(), req.uri());
        let r = gw.request(req).await;
        assert_eq!(r.status, status, "{label}: {:?}", r.json());
        assert_eq!(pointers(&r), want, "{label}");
        assert!(r.header("content-type").unwrap().starts_with("application/problem+json"), "{label}");
        assert_eq!(r.json()["request_id"], r.header("x-request-id").unwrap(), "{label}");
    }
    assert_eq!(up.hits(), 0, "{:?}", up.requests().iter().map(|r| &r.path).collect::<Vec<_>>());
    let log = gw.access_log();
    assert!(log.iter().any(|l| l["decision"] == "deny" && l.to_string().contains("contract")), "{log:?}");
}

#[tokio::test]
async fn an_upstream_answer_the_contract_does_not_declare_becomes_a_502() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    assert_eq!(gw.get("/status/200").await.status, 200);
    let r = gw.get("/status/500").await;
    assert_eq!(r.status, 502);
    // The upstream's body is not passed on.
    assert!(!String::from_utf8_lossy(&r.body).contains("\"status\":500"));
}

#[tokio::test]
async fn monitor_mode_lets_violations_through() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let r = gw.get("/m/items/abc?debug=1").await;
    assert_eq!(r.status, 200);
    let r = gw.get("/m/items/7").await;
    // Monitor mode does not rewrite responses either.
    assert_eq!(r.json()["path"], "/m/items/7");
    assert_eq!(up.hits(), 2);
}

/// `url`, percent-encoded for a query string.
fn q(url: &str) -> String {
    url.replace(':', "%3A").replace('/', "%2F")
}

#[tokio::test]
async fn url_parameters_go_through_the_ssrf_guard() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    // A literal public address needs no resolution.
    let ok = format!("/fetch?url={}", q("https://93.184.216.34/feed"));
    assert_eq!(gw.get(&ok).await.status, 200);
    let with_mirrors = format!("{ok}&mirrors={}", q("https://93.184.216.34/a"));
    assert_eq!(gw.get(&with_mirrors).await.status, 200);
    let mut cases: Vec<(http::Request<Full<Bytes>>, &str)> = Vec::new();
    for bad in [
        "http://169.254.169.254/latest/meta-data",
        "http://127.0.0.1:6379/",
        "gopher://93.184.216.34/",
        "http://0x7f000001/",
    ] {
        cases.push((request("GET", &format!("/fetch?url={}", q(bad)), None, ""), "/query/url"));
    }
    let mirror = format!("{ok}&mirrors={}&mirrors={}", q("https://93.184.216.34/a"), q("http://10.0.0.8/b"));
    cases.push((request("GET", &mirror, None, ""), "/query/mirrors/1"));
    let mut hdr = request("GET", &ok, None, "");
    hdr.headers_mut().insert("x-callback", http::HeaderValue::from_static("http://localhost/hook"));
    cases.push((hdr, "/header/x-callback"));
    for (req, pointer) in cases {
        let label = format!("{} {:?}", req.uri(), req.headers().get("x-callback"));
        let r = gw.request(req).await;
        assert_eq!(r.status, 400, "{label}: {:?}", r.json());
        assert_eq!(pointers(&r), [pointer], "{label}");
        assert!(r.json()["violations"][0]["reason"].as_str().unwrap().contains("SSRF"), "{label}");
    }
    assert_eq!(up.hits(), 2, "only the two safe requests reached the upstream");
}

/// An upstream that answers every request with a chunked JSON body (no Content-Length) of
/// about `n` bytes, with a property the contract does not declare.
async fn chunked_upstream(n: usize) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
                let body = format!(r#"{{"name":"feed","internal":"{}"}}"#, "x".repeat(n));
                let mut out = String::from(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
                );
                for part in body.as_bytes().chunks(40) {
                    out.push_str(&format!("{:x}\r\n{}\r\n", part.len(), String::from_utf8_lossy(part)));
                }
                out.push_str("0\r\n\r\n");
                let _ = sock.write_all(out.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    addr
}

const FEED_SPEC: &str = r#"
openapi: 3.1.0
info: { title: feed, version: "1" }
paths:
  /feed:
    get:
      operationId: feed
      x-portcullis-public: true
      responses:
        "200":
          description: ok
          content: { application/json: { schema: { type: object, properties: { name: { type: string } } } } }
"#;

#[tokio::test]
async fn a_chunked_response_over_the_cap_is_passed_or_refused_as_configured() {
    let small = chunked_upstream(4).await;
    let big = chunked_upstream(400).await;
    let yaml = format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams:
  small: {{ targets: ["http://{small}"] }}
  big: {{ targets: ["http://{big}"] }}
routes:
  - {{ name: small-pass, prefix: /small, upstream: small, policy: {{ contract: {{ specs: [feed.yaml], base_path: /small, responses: {{ max_body_bytes: 128, on_body_over_cap: pass }} }} }} }}
  - {{ name: big-pass, prefix: /pass, upstream: big, policy: {{ contract: {{ specs: [feed.yaml], base_path: /pass, responses: {{ max_body_bytes: 128, on_body_over_cap: pass }} }} }} }}
  - {{ name: big-reject, prefix: /reject, upstream: big, policy: {{ contract: {{ specs: [feed.yaml], base_path: /reject, responses: {{ max_body_bytes: 128 }} }} }} }}
"#
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feed.yaml"), FEED_SPEC).unwrap();
    let gw = TestGateway::start_in(dir, &yaml).await;
    // Under the cap: validated, the undeclared property removed.
    let r = gw.get("/small/feed").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({"name": "feed"}));
    // Over the cap with `pass`: served whole, unvalidated (the undeclared property stays).
    let r = gw.get("/pass/feed").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["internal"].as_str().unwrap().len(), 400);
    // Over the cap with `reject` (the default): a 502, none of the body.
    let r = gw.get("/reject/feed").await;
    assert_eq!(r.status, 502);
    assert!(!String::from_utf8_lossy(&r.body).contains("internal"));
}
