#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]
//! End-to-end behaviour of the proxy core: forwarding headers, request ids, response hygiene,
//! routing, limits, timeouts, upstream failure handling, load shedding, access log and metrics.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use portcullis_testkit::{Mode, TestGateway, Upstream, get, raw_request, send, status_of};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Waits (bounded) until the upstream has seen `n` requests.
async fn wait_for_hits(up: &Upstream, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while up.hits() < n {
        assert!(std::time::Instant::now() < deadline, "the upstream never saw request {n}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A free loopback port with nothing listening (bound, then released).
async fn dead_addr() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn request_id_is_generated_returned_and_propagated() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&TestGateway::yaml(&up, "")).await;
    let resp = gw
        .request(
            http::Request::get("/a")
                .header("host", "x")
                .header("x-request-id", "spoofed-by-client")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(resp.status, 200);
    let rid = resp.header("x-request-id").unwrap().to_owned();
    assert_ne!(rid, "spoofed-by-client", "an untrusted client must not choose the request id");
    assert_eq!(up.requests()[0].headers["x-request-id"], rid.as_str());
    assert_eq!(gw.access_log()[0]["request_id"], rid.as_str());
    let other = gw.get("/b").await;
    assert_ne!(other.header("x-request-id").unwrap(), rid);
}

#[tokio::test]
async fn forwarding_headers_are_trusted_only_from_configured_proxies() {
    let up = Upstream::start().await;
    let untrusted = TestGateway::start(&TestGateway::yaml(&up, "trusted_proxies: [\"10.0.0.0/8\"]\n")).await;
    let req = || {
        http::Request::get("/a")
            .header("host", "x")
            .header("x-forwarded-for", "6.6.6.6")
            .header("forwarded", "for=6.6.6.6")
            .header("x-forwarded-host", "evil.example")
            .header("x-forwarded-proto", "https")
            .header("x-request-id", "from-proxy-42")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let resp = untrusted.request(req()).await;
    let seen = &up.requests()[0].headers;
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert!(seen.get("forwarded").is_none() && seen.get("x-forwarded-host").is_none());
    assert_ne!(resp.header("x-request-id"), Some("from-proxy-42"));
    assert_eq!(untrusted.access_log()[0]["client_ip"], "127.0.0.1");

    let trusted = TestGateway::start(&TestGateway::yaml(&up, "trusted_proxies: [\"127.0.0.1\"]\n")).await;
    let resp = trusted.request(req()).await;
    let seen = &up.requests()[1].headers;
    assert_eq!(seen["x-forwarded-for"], "6.6.6.6, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "https");
    assert_eq!(resp.header("x-request-id"), Some("from-proxy-42"));
    assert_eq!(trusted.access_log()[0]["client_ip"], "6.6.6.6");
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&TestGateway::yaml(&up, "")).await;
    let resp = gw
        .request(
            http::Request::get("/a")
                .header("host", "x")
                .header("connection", "keep-alive, x-hop-secret")
                .header("x-hop-secret", "1")
                .header("keep-alive", "timeout=5")
                .header("te", "trailers")
                .header("proxy-authorization", "Basic Zm9vOmJhcg==")
                .header("upgrade", "h2c")
                .header("x-end-to-end", "kept")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(resp.status, 200);
    let seen = &up.requests()[0].headers;
    for h in ["connection", "x-hop-secret", "keep-alive", "te", "proxy-authorization", "upgrade"] {
        assert!(seen.get(h).is_none(), "{h} reached the upstream");
    }
    assert_eq!(seen["x-end-to-end"], "kept");
}

#[tokio::test]
async fn upstream_fingerprints_are_removed_and_safe_headers_added() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&TestGateway::yaml(&up, "")).await;
    for path in ["/a", "/status/500", "/status/404"] {
        let resp = gw.get(path).await;
        assert!(resp.header("server").is_none(), "{path}: server header leaked");
        assert!(resp.header("x-powered-by").is_none(), "{path}: x-powered-by leaked");
        assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
        assert!(resp.header("strict-transport-security").is_none(), "no HSTS on cleartext");
    }
}

#[tokio::test]
async fn routing_by_host_path_and_method() {
    let a = Upstream::start().await;
    let b = Upstream::start().await;
    let yaml = format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams:
  a: {{ targets: ["http://{}"] }}
  b: {{ targets: ["http://{}"] }}
routes:
  - {{ name: customer, path: "/customers/{{id}}", methods: [GET], upstream: a }}
  - {{ name: partner, prefix: /api, hosts: ["partner.example.com", "*.partners.example.com"], upstream: b }}
"#,
        a.addr(),
        b.addr()
    );
    let gw = TestGateway::start(&yaml).await;
    assert_eq!(gw.get("/customers/42").await.status, 200);
    assert_eq!(gw.access_log()[0]["path_template"], "/customers/{id}");
    assert_eq!(gw.get("/customers/42/orders").await.status, 404);
    let host = |h: &str, p: &str| http::Request::get(p).header("host", h).body(Full::new(Bytes::new())).unwrap();
    assert_eq!(gw.request(host("partner.example.com", "/api/x")).await.status, 200);
    assert_eq!(gw.request(host("EU.Partners.Example.com:8443", "/api/x")).await.status, 200);
    assert_eq!(gw.request(host("evil.example.com", "/api/x")).await.status, 404);
    let denied = gw
        .request(http::Request::post("/customers/1").header("host", "x").body(Full::new(Bytes::new())).unwrap())
        .await;
    assert_eq!(denied.status, 405);
    assert_eq!(denied.header("allow"), Some("GET"));
    assert_eq!((a.hits(), b.hits()), (1, 2), "denied requests must not reach any upstream");
}

#[tokio::test]
async fn unknown_routes_get_404_problem_without_touching_the_upstream() {
    let up = Upstream::start().await;
    let yaml = format!(
        "listeners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\nupstreams: {{ up: {{ targets: [\"http://{}\"] }} }}\nroutes: [{{ name: only, prefix: /only, upstream: up }}]\n",
        up.addr()
    );
    let gw = TestGateway::start(&yaml).await;
    let resp = gw.get("/other").await;
    assert_eq!(resp.status, 404);
    assert_eq!(resp.header("content-type"), Some("application/problem+json"));
    let doc = resp.json();
    assert_eq!(doc["type"], "urn:portcullis:problem:route-not-found");
    assert_eq!(doc["request_id"], resp.header("x-request-id").unwrap());
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn size_limits_are_enforced() {
    let up = Upstream::start().await;
    let extra = "limits: { max_uri_bytes: 64, max_headers: 20, max_header_bytes: 8192, max_request_body_bytes: 16 }\n";
    let gw = TestGateway::start(&TestGateway::yaml(&up, extra)).await;
    let long_uri = format!("/{}", "a".repeat(100));
    assert_eq!(gw.get(&long_uri).await.status, 414);
    let mut many = http::Request::get("/a").header("host", "x");
    for i in 0..30 {
        many = many.header(format!("x-h{i}"), "v");
    }
    let resp = gw.request(many.body(Full::new(Bytes::new())).unwrap()).await;
    assert_eq!(resp.status, 431);
    let big_header = http::Request::get("/a")
        .header("host", "x")
        .header("x-big", "v".repeat(9000))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = gw.request(big_header).await;
    assert_eq!(resp.status, 431);
    assert_eq!(resp.header("content-type"), Some("application/problem+json"), "our own limit, our own problem");
    // Declared length over the limit: refused before the upstream.
    let body = |n: usize| {
        http::Request::post("/echo").header("host", "x").body(Full::new(Bytes::from(vec![b'x'; n]))).unwrap()
    };
    assert_eq!(gw.request(body(17)).await.status, 413);
    assert_eq!(gw.request(body(16)).await.status, 200);
    // Chunked (no declared length) over the limit: cut off, answered 413.
    let resp = raw_request(gw.addr(), b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n").await;
    assert_eq!(status_of(&resp), Some(413), "{resp}");
    assert!(up.requests().iter().all(|r| r.body.len() <= 16));
}

#[tokio::test]
async fn route_body_limit_overrides_the_default() {
    let up = Upstream::start().await;
    let yaml = format!(
        "listeners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\nupstreams: {{ up: {{ targets: [\"http://{}\"] }} }}\nroutes:\n  - {{ name: login, path: /login, upstream: up, policy: {{ max_request_body_bytes: 8 }} }}\n  - {{ name: all, prefix: /, upstream: up }}\n",
        up.addr()
    );
    let gw = TestGateway::start(&yaml).await;
    let body =
        |p: &str| http::Request::post(p).header("host", "x").body(Full::new(Bytes::from(vec![b'x'; 100]))).unwrap();
    assert_eq!(gw.request(body("/login")).await.status, 413);
    assert_eq!(gw.request(body("/other")).await.status, 200);
}

#[tokio::test]
async fn slow_clients_time_out() {
    let up = Upstream::start().await;
    let extra = "timeouts: { header_read: 300ms, request_body: 300ms, idle: 300ms }\n";
    let gw = TestGateway::start(&TestGateway::yaml(&up, extra)).await;

    // Slow headers (slowloris): the connection is closed.
    let mut s = TcpStream::connect(gw.addr()).await.unwrap();
    s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("header timeout did not fire")
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");

    // Slow body: 408.
    let mut s = TcpStream::connect(gw.addr()).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("body timeout did not fire")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");

    // Idle keep-alive connection: closed after the idle timeout.
    let mut s = TcpStream::connect(gw.addr()).await.unwrap();
    s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let closed =
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.expect("idle timeout did not fire");
    assert_eq!(closed.unwrap_or(0), 0);
}

#[tokio::test]
async fn upstream_failures_are_problems_without_internal_detail() {
    let up = Upstream::start().await;
    let dead = dead_addr().await;
    let yaml = format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
timeouts: {{ upstream_connect: 500ms }}
upstreams:
  live: {{ targets: ["http://{}"] }}
  dead: {{ targets: ["http://{dead}"], health: {{ eject_after_failures: 2, eject_for: 10s }} }}
routes:
  - {{ name: slow, prefix: /slow, upstream: live, policy: {{ upstream_timeout: 200ms }} }}
  - {{ name: dead, prefix: /dead, upstream: dead }}
"#,
        up.addr()
    );
    let gw = TestGateway::start(&yaml).await;
    let resp = gw.get("/slow/2000").await;
    assert_eq!(resp.status, 504);
    assert_eq!(resp.json()["type"], "urn:portcullis:problem:gateway-timeout");
    let resp = gw.get("/dead/x").await;
    assert_eq!(resp.status, 502);
    let body = String::from_utf8_lossy(&resp.body).to_string();
    assert!(!body.contains(&dead.port().to_string()) && !body.contains("refused"), "internal detail leaked: {body}");
    assert_eq!(gw.get("/dead/x").await.status, 502);
    // Ejected after two connect failures: answered at once, no connect attempt.
    let resp = gw.get("/dead/x").await;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.json()["type"], "urn:portcullis:problem:unavailable");
    let reasons: Vec<String> =
        gw.access_log().iter().map(|l| l["reason"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(reasons, ["upstream-timeout", "upstream-connect", "upstream-connect", "no-healthy-target"]);
}

#[tokio::test]
async fn round_robin_eject_and_retry() {
    let a = Upstream::start().await;
    let b = Upstream::start().await;
    let dead = dead_addr().await;
    let yaml = format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams:
  rr: {{ targets: ["http://{}", "http://{}"] }}
  flaky: {{ targets: ["http://{dead}", "http://{}"], health: {{ eject_after_failures: 1, eject_for: 30s }} }}
routes:
  - {{ name: rr, prefix: /rr, upstream: rr }}
  - {{ name: flaky, prefix: /flaky, upstream: flaky }}
"#,
        a.addr(),
        b.addr(),
        a.addr()
    );
    let gw = TestGateway::start(&yaml).await;
    for _ in 0..6 {
        assert_eq!(gw.get("/rr").await.status, 200);
    }
    assert_eq!((a.hits(), b.hits()), (3, 3), "round robin");

    // Idempotent requests retry once on the other target after a connect failure; the dead
    // target is then ejected and never tried again.
    for _ in 0..4 {
        assert_eq!(gw.get("/flaky").await.status, 200);
    }
    assert_eq!(a.hits(), 3 + 4);
    let upstreams: Vec<String> =
        gw.access_log().iter().skip(6).map(|l| l["upstream"].as_str().unwrap().to_owned()).collect();
    assert!(upstreams.iter().all(|u| *u == a.addr().to_string()), "{upstreams:?}");
}

#[tokio::test]
async fn non_idempotent_requests_are_not_retried() {
    let a = Upstream::start().await;
    let dead = dead_addr().await;
    let yaml = format!(
        "listeners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\nupstreams: {{ u: {{ targets: [\"http://{dead}\", \"http://{}\"], health: {{ eject_after_failures: 5 }} }} }}\nroutes: [{{ name: all, prefix: /, upstream: u }}]\n",
        a.addr()
    );
    let gw = TestGateway::start(&yaml).await;
    let post =
        || http::Request::post("/orders").header("host", "x").body(Full::new(Bytes::from_static(b"{}"))).unwrap();
    let statuses = [gw.request(post()).await.status, gw.request(post()).await.status];
    assert!(statuses.contains(&502) && statuses.contains(&200), "{statuses:?}");
    assert_eq!(a.hits(), 1, "a POST must reach the upstream at most once");
}

#[tokio::test]
async fn overload_sheds_with_503() {
    let up = Upstream::start().await;
    let gw =
        TestGateway::start(&TestGateway::yaml(&up, "limits: { max_inflight_requests: 1, max_connections: 2 }\n")).await;
    let addr = gw.addr();
    let slow = tokio::spawn(async move { send(addr, &Mode::H1, get("/slow/800")).await });
    wait_for_hits(&up, 1).await;
    let shed = gw.get("/a").await;
    assert_eq!(shed.status, 503);
    assert_eq!(shed.json()["type"], "urn:portcullis:problem:unavailable");
    assert_eq!(slow.await.unwrap().status, 200);
    assert_eq!(gw.access_log().iter().filter(|l| l["reason"] == "inflight-limit").count(), 1);

    // Connections over the cap get a complete 503 and are closed.
    // Two kept-alive connections that have each been served (so both hold a slot); earlier
    // connections may take a moment to be released, so retry until both are in.
    let mut held = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while held.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "could not open two connections");
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).await.unwrap_or(0);
        if String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200") {
            held.push(c);
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let third = raw_request(addr, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status_of(&third), Some(503), "{third}");
}

#[tokio::test]
async fn access_log_is_metadata_only_and_metrics_count_requests() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&TestGateway::yaml(&up, "")).await;
    let req = http::Request::post("/customers/12345?token=sk_live_secret&email=a@b.c")
        .header("host", "x")
        .header("authorization", "Bearer eyJhbGciOi.secret.token")
        .header("cookie", "session=topsecret")
        .body(Full::new(Bytes::from_static(b"{\"card\":\"4111111111111111\"}")))
        .unwrap();
    assert_eq!(gw.request(req).await.status, 200);
    let raw = gw.access_log_raw().join("\n");
    for secret in ["sk_live_secret", "a@b.c", "eyJhbGciOi", "topsecret", "4111111111111111", "12345"] {
        assert!(!raw.contains(secret), "access log leaked {secret}: {raw}");
    }
    let line = &gw.access_log()[0];
    for field in [
        "time",
        "request_id",
        "route",
        "method",
        "path_template",
        "status",
        "latency_ms",
        "bytes_in",
        "bytes_out",
        "upstream",
        "decision",
    ] {
        assert!(line.get(field).is_some(), "missing {field}");
    }
    assert_eq!(line["bytes_in"], 27);
    assert_eq!(line["decision"], "allow");

    let metrics = send(gw.admin_addr(), &Mode::H1, get("/metrics")).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains("portcullis_requests_total"), "{text}");
    assert!(text.contains("portcullis_request_duration_seconds"), "{text}");
    let ready = send(gw.admin_addr(), &Mode::H1, get("/readyz")).await;
    assert_eq!(ready.status, 200);
    assert_eq!(send(gw.admin_addr(), &Mode::H1, get("/healthz")).await.status, 200);
}

#[tokio::test]
async fn graceful_shutdown_finishes_requests_in_flight() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&TestGateway::yaml(&up, "")).await;
    let addr = gw.addr();
    let inflight = tokio::spawn(async move { send(addr, &Mode::H1, get("/slow/300")).await });
    wait_for_hits(&up, 1).await;
    gw.shutdown().await;
    assert_eq!(inflight.await.unwrap().status, 200);
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting after shutdown");
}

#[tokio::test]
async fn idle_keep_alive_is_governed_by_idle_not_header_read() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&TestGateway::yaml(&up, "timeouts: { header_read: 200ms, idle: 5s }\n")).await;
    let mut s = TcpStream::connect(gw.addr()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    for _ in 0..2 {
        s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        // Idle for longer than header_read, shorter than idle: the connection must survive.
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_header_read() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&TestGateway::yaml(&up, "timeouts: { header_read: 300ms, idle: 60s }\n")).await;
    let mut s = TcpStream::connect(gw.addr()).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("a silent connection was kept open");
    assert_eq!(n.unwrap_or(0), 0);
    assert!(started.elapsed() < Duration::from_secs(3), "closed by idle, not header_read");
}

#[tokio::test]
async fn a_second_gateway_cannot_share_a_listening_port() {
    let up = Upstream::start().await;
    let port = dead_addr().await.port();
    let yaml = TestGateway::yaml(&up, "").replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let first = TestGateway::start(&yaml).await;
    let config = portcullis_config::from_yaml(&yaml, std::path::Path::new(".")).unwrap();
    let second = portcullis_proxy::Gateway::start(config, Default::default()).await;
    assert!(matches!(second, Err(portcullis_proxy::StartError::Bind { .. })), "two gateways on one port");
    assert_eq!(first.get("/a").await.status, 200);
}
