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
    assert_eq!(up.hits(), 2);
    assert_eq!(up.requests()[1].headers["accept-encoding"], "identity");
}

#[tokio::test]
async fn requests_that_break_the_contract_never_reach_the_upstream() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let json = Some("application/json");
    let cases: Vec<(http::Request<Full<Bytes>>, u16, Vec<&str>)> = vec![
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
