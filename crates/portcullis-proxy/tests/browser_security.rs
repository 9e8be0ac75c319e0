#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]
//! Browser-facing rules end to end: CORS answered by the gateway (preflights accepted and
//! refused, actual responses with and without CORS headers, the upstream's own CORS headers
//! replaced) and upstream cookies rewritten with `Secure`/`HttpOnly`/`SameSite`. The upstream
//! here sets two cookies and a permissive `Access-Control-Allow-Origin: *` on every answer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use portcullis_testkit::{Resp, TestGateway};
use tokio::net::TcpListener;

struct Leaky {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

async fn leaky_upstream() -> Leaky {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { break };
            let counter = counter.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req: http::Request<Incoming>| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    async move {
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/json")
                                .header("access-control-allow-origin", "*")
                                .header("access-control-allow-credentials", "true")
                                .header("set-cookie", "sid=s3ss10n; Path=/")
                                .header("set-cookie", "theme=dark; Secure; SameSite=None")
                                .body(Full::new(Bytes::from_static(b"{\"ok\":true}")))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    Leaky { addr, hits }
}

async fn gateway(up: &Leaky) -> TestGateway {
    TestGateway::start(&format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams: {{ up: {{ targets: ["http://{}"] }} }}
routes:
  - name: app
    prefix: /app
    upstream: up
    policy:
      cors:
        allow_origins: [https://app.example.com]
        allow_methods: [GET, PUT]
        allow_headers: [content-type, x-api-key]
        expose_headers: [x-request-id]
        max_age: 10m
        allow_credentials: true
      cookies: {{ secure: true, http_only: true, same_site: strict }}
  - name: orders
    prefix: /orders
    methods: [GET, PUT]
    upstream: up
    policy:
      cors:
        allow_origins: [https://app.example.com]
        allow_methods: [GET, PUT, DELETE]
  - name: public
    prefix: /public
    upstream: up
    policy:
      cors: {{ allow_origins: ["*"] }}
  - name: plain
    prefix: /plain
    upstream: up
"#,
        up.addr
    ))
    .await
}

async fn call(gw: &TestGateway, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut b = http::Request::builder().method(method).uri(path).header("host", "api.test");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    gw.request(b.body(Full::new(Bytes::new())).unwrap()).await
}

fn cors_headers(r: &Resp) -> Vec<String> {
    r.headers.keys().filter(|k| k.as_str().starts_with("access-control-")).map(|k| k.to_string()).collect()
}

const GOOD: &str = "https://app.example.com";

#[tokio::test]
async fn preflights_are_answered_by_the_gateway_and_refused_without_cors_headers() {
    let up = leaky_upstream().await;
    let gw = gateway(&up).await;
    let ok = call(
        &gw,
        "OPTIONS",
        "/app/orders",
        &[
            ("origin", GOOD),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "Content-Type, X-API-Key"),
        ],
    )
    .await;
    assert_eq!(ok.status, 204);
    assert_eq!(ok.header("access-control-allow-origin"), Some(GOOD));
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(ok.header("access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(ok.header("access-control-allow-headers"), Some("content-type, x-api-key"));
    assert_eq!(ok.header("access-control-max-age"), Some("600"));
    assert!(ok.header("vary").unwrap().contains("Origin"));
    assert_eq!(up.hits.load(Ordering::Relaxed), 0, "a preflight never reaches the upstream");

    for (origin, method, headers, reason) in [
        ("https://evil.example.com", "PUT", "", "cors-origin"),
        ("https://app.example.com.evil.test", "GET", "", "cors-origin"),
        ("null", "GET", "", "cors-origin"),
        (GOOD, "DELETE", "", "cors-method"),
        (GOOD, "PUT", "content-type, x-admin", "cors-headers"),
    ] {
        let mut h = vec![("origin", origin), ("access-control-request-method", method)];
        if !headers.is_empty() {
            h.push(("access-control-request-headers", headers));
        }
        let r = call(&gw, "OPTIONS", "/app/orders", &h).await;
        assert_eq!(r.status, 403, "{origin} {method} {headers}");
        assert!(cors_headers(&r).is_empty(), "{origin} {method}: {:?}", cors_headers(&r));
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        let log = gw.access_log();
        assert!(log.iter().any(|l| l["reason"] == reason && l["stage"] == "cors"), "{reason}: {log:?}");
    }
    assert_eq!(up.hits.load(Ordering::Relaxed), 0);

    // A route open to any origin without credentials answers `*`.
    let any =
        call(&gw, "OPTIONS", "/public/x", &[("origin", "https://x.test"), ("access-control-request-method", "GET")])
            .await;
    assert_eq!(any.status, 204);
    assert_eq!(any.header("access-control-allow-origin"), Some("*"));
    assert_eq!(any.header("access-control-allow-credentials"), None);
}

#[tokio::test]
async fn preflights_for_methods_the_route_does_not_serve_are_refused_not_routed() {
    let up = leaky_upstream().await;
    let gw = gateway(&up).await;
    // `/orders` serves GET and PUT; its CORS policy would allow DELETE, the route does not.
    let ok = call(&gw, "OPTIONS", "/orders/7", &[("origin", GOOD), ("access-control-request-method", "PUT")]).await;
    assert_eq!(ok.status, 204);
    assert_eq!(ok.header("access-control-allow-origin"), Some(GOOD));
    assert_eq!(ok.header("access-control-allow-methods"), Some("GET, PUT, DELETE"));

    for (origin, method, reason) in [
        (GOOD, "DELETE", "cors-method"),
        (GOOD, "PATCH", "cors-method"),
        ("https://evil.example.com", "DELETE", "cors-origin"),
    ] {
        let r =
            call(&gw, "OPTIONS", "/orders/7", &[("origin", origin), ("access-control-request-method", method)]).await;
        assert_eq!(r.status, 403, "{origin} {method}");
        assert!(cors_headers(&r).is_empty(), "{origin} {method}: {:?}", cors_headers(&r));
        assert_eq!(r.header("allow"), None);
        let log = gw.access_log();
        assert!(
            log.iter().any(|l| l["reason"] == reason && l["stage"] == "cors" && l["route"] == "orders"),
            "{reason}: {log:?}"
        );
    }
    assert_eq!(up.hits.load(Ordering::Relaxed), 0, "a preflight never reaches the upstream");
    // An ordinary request with that method still gets routing's 405.
    let r = call(&gw, "DELETE", "/orders/7", &[("origin", GOOD)]).await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn actual_responses_carry_cors_headers_only_for_allowed_origins() {
    let up = leaky_upstream().await;
    let gw = gateway(&up).await;
    let ok = call(&gw, "GET", "/app/orders", &[("origin", GOOD)]).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("access-control-allow-origin"), Some(GOOD), "the upstream's `*` is replaced");
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(ok.header("access-control-expose-headers"), Some("x-request-id"));
    assert!(ok.header("vary").unwrap().contains("Origin"));

    for origin in [Some("https://evil.example.com"), None] {
        let h: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
        let r = call(&gw, "GET", "/app/orders", &h).await;
        assert_eq!(r.status, 200);
        assert!(cors_headers(&r).is_empty(), "{origin:?}: {:?}", cors_headers(&r));
    }
    // Refusals of later stages carry them too for an allowed origin (here: routing 405).
    let r = call(&gw, "DELETE", "/public/x", &[("origin", "https://x.test")]).await;
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));

    // A route without a CORS policy passes the upstream's headers untouched (its choice).
    let plain = call(&gw, "GET", "/plain/x", &[("origin", "https://evil.example.com")]).await;
    assert_eq!(plain.header("access-control-allow-origin"), Some("*"));
    // A preflight there is an ordinary OPTIONS request, routed as usual.
    let pre = call(&gw, "OPTIONS", "/plain/x", &[("origin", GOOD), ("access-control-request-method", "GET")]).await;
    assert_eq!(pre.status, 200);
}

#[tokio::test]
async fn upstream_cookies_get_secure_httponly_and_samesite_once() {
    let up = leaky_upstream().await;
    let gw = gateway(&up).await;
    let r = call(&gw, "GET", "/app/orders", &[]).await;
    let cookies: Vec<&str> = r.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(
        cookies,
        ["sid=s3ss10n; Path=/; Secure; HttpOnly; SameSite=Strict", "theme=dark; Secure; HttpOnly; SameSite=Strict"]
    );
    // Without a cookie policy the upstream's cookies pass as they are.
    let plain = call(&gw, "GET", "/plain/x", &[]).await;
    let cookies: Vec<&str> = plain.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(cookies, ["sid=s3ss10n; Path=/", "theme=dark; Secure; SameSite=None"]);
}
