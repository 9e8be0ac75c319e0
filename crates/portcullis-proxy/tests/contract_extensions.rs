#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]
//! Gateway policy carried by the OpenAPI document next to each operation: `x-portcullis-owner`
//! (object ownership), `x-portcullis-rate-limit` and `x-portcullis-exposure` (masking), merged
//! with the route's own policy and applied only to the operation that carries them.

use bytes::Bytes;
use http_body_util::Full;
use portcullis_identity::admin::ConsumerSpec;
use portcullis_identity::apikey::KeyEnv;
use portcullis_testkit::{Resp, TestGateway, Upstream};

const SPEC: &str = r#"
openapi: 3.1.0
info: { title: billing, version: "1" }
security: [{ key: [] }]
paths:
  /orgs/{org}/invoices:
    parameters: [{ name: org, in: path, required: true, schema: { type: string } }]
    get:
      operationId: listInvoices
      x-portcullis-owner: [{ path_param: org, equals: org_name }]
      x-portcullis-rate-limit: [{ name: invoice-list, key: consumer, rate: 3, period: 1m }]
      responses: { "200": { description: ok } }
    post:
      operationId: createInvoice
      x-portcullis-owner: [{ body: /org, equals: org_name }]
      requestBody:
        required: true
        content:
          application/json:
            schema: { type: object, required: [org], properties: { org: { type: string }, amount: { type: integer } } }
      responses: { "200": { description: ok } }
  /orgs/{org}/profile:
    parameters: [{ name: org, in: path, required: true, schema: { type: string } }]
    get:
      operationId: orgProfile
      x-portcullis-exposure: { fields: [{ pointer: /path, action: redact }] }
      responses: { "200": { description: ok } }
components:
  securitySchemes:
    key: { type: apiKey, in: header, name: x-api-key }
"#;

fn config(up: &Upstream) -> String {
    format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams: {{ up: {{ targets: ["http://{addr}"] }} }}
identity:
  store: {{ sqlite: {{ path: ids.db }} }}
  key_secret: "${{file:key.secret}}"
routes:
  - name: billing
    prefix: /orgs
    upstream: up
    policy:
      auth: {{ methods: [api_key] }}
      contract: {{ specs: [billing.yaml], responses: {{ validate: false }} }}
"#,
        addr = up.addr()
    )
}

async fn start(up: &Upstream) -> (TestGateway, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.secret"), "an-extensions-test-secret-of-32-bytes-or-more").unwrap();
    std::fs::write(dir.path().join("billing.yaml"), SPEC).unwrap();
    let gw = TestGateway::start_in(dir, &config(up)).await;
    let s = gw.handle().identity().unwrap().clone();
    let mut keys = Vec::new();
    for (org, name) in [("acme", "acme-app"), ("globex", "globex-app")] {
        s.create_org("test", org, None).await.unwrap();
        s.create_consumer("test", ConsumerSpec { org: org.into(), name: name.into(), ..ConsumerSpec::default() })
            .await
            .unwrap();
        let k = s.issue_api_key("test", name, None, None, None, KeyEnv::Live).await.unwrap();
        keys.push(k.key.expose().to_owned());
    }
    let globex = keys.pop().unwrap();
    let acme = keys.pop().unwrap();
    (gw, acme, globex)
}

async fn call(gw: &TestGateway, method: &str, path: &str, key: &str, body: &str) -> Resp {
    let mut b = http::Request::builder().method(method).uri(path).header("host", "api.test").header("x-api-key", key);
    if !body.is_empty() {
        b = b.header("content-type", "application/json");
    }
    gw.request(b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await
}

#[tokio::test]
async fn ownership_rules_from_the_document_stop_bola_on_their_operation_only() {
    let up = Upstream::start().await;
    let (gw, acme, globex) = start(&up).await;
    assert_eq!(call(&gw, "GET", "/orgs/acme/invoices", &acme, "").await.status, 200);
    let r = call(&gw, "GET", "/orgs/globex/invoices", &acme, "").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["type"], "urn:portcullis:problem:not-owner");
    // Percent-encoded forms of another organization do not slip through.
    assert_eq!(call(&gw, "GET", "/orgs/%67lobex/invoices", &acme, "").await.status, 403);
    assert_eq!(call(&gw, "GET", "/orgs/globex/invoices", &globex, "").await.status, 200);
    // The body rule of the POST operation.
    assert_eq!(call(&gw, "POST", "/orgs/acme/invoices", &acme, r#"{"org":"acme","amount":5}"#).await.status, 200);
    for bad in [r#"{"org":"globex","amount":5}"#, r#"{"amount":5}"#] {
        assert_eq!(call(&gw, "POST", "/orgs/acme/invoices", &acme, bad).await.status, 403, "{bad}");
    }
    // The profile operation carries no ownership rule: any authenticated caller may read it.
    assert_eq!(call(&gw, "GET", "/orgs/globex/profile", &acme, "").await.status, 200);
    assert_eq!(up.hits(), 4, "{:?}", up.requests().iter().map(|r| &r.path).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_rate_limit_from_the_document_counts_its_operation_only() {
    let up = Upstream::start().await;
    let (gw, acme, globex) = start(&up).await;
    for i in 0..3 {
        assert_eq!(call(&gw, "GET", "/orgs/acme/invoices", &acme, "").await.status, 200, "call {i}");
    }
    let r = call(&gw, "GET", "/orgs/acme/invoices", &acme, "").await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    assert!(r.header("ratelimit").unwrap().contains("invoice-list"), "{:?}", r.header("ratelimit"));
    // Keyed by consumer: another consumer has its own bucket.
    assert_eq!(call(&gw, "GET", "/orgs/globex/invoices", &globex, "").await.status, 200);
    // Other operations of the route are not limited by it.
    for _ in 0..5 {
        assert_eq!(call(&gw, "GET", "/orgs/acme/profile", &acme, "").await.status, 200);
    }
    assert_eq!(up.hits(), 3 + 1 + 5);
}

#[tokio::test]
async fn masking_from_the_document_applies_to_its_operation_only() {
    let up = Upstream::start().await;
    let (gw, acme, _) = start(&up).await;
    // The upstream echoes {"method","path"}; the profile operation redacts `path`.
    let r = call(&gw, "GET", "/orgs/acme/profile", &acme, "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({"method": "GET"}));
    let r = call(&gw, "GET", "/orgs/acme/invoices", &acme, "").await;
    assert_eq!(r.json()["path"], "/orgs/acme/invoices");
}
