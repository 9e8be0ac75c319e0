#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]
//! Rate limits, quotas, plans and in-flight caps end to end: real sockets, a real gateway, the
//! real identity store, and real Redis (the shared one on 127.0.0.1:6379 with a unique namespace,
//! or a private redis-server this test starts and kills).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use portcullis_identity::IdentityService;
use portcullis_identity::admin::ConsumerSpec;
use portcullis_identity::apikey::KeyEnv;
use portcullis_testkit::{OwnRedis, Resp, TestGateway, Upstream};

const SECRET: &str = "a-traffic-test-secret-of-32-bytes-or-more";

fn unique(test: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("pctest-{test}-{}-{nanos}", std::process::id())
}

async fn start(yaml: &str, redis_url: Option<&str>) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.secret"), SECRET).unwrap();
    if let Some(url) = redis_url {
        std::fs::write(dir.path().join("redis.url"), url).unwrap();
    }
    TestGateway::start_in(dir, yaml).await
}

fn svc(gw: &TestGateway) -> IdentityService {
    gw.handle().identity().unwrap().clone()
}

/// Creates a consumer (in org `acme`, created if needed) on `plan` and returns its API key.
async fn consumer(gw: &TestGateway, name: &str, plan: Option<&str>) -> String {
    let s = svc(gw);
    let _ = s.create_org("test", "acme", None).await;
    s.create_consumer(
        "test",
        ConsumerSpec { org: "acme".into(), name: name.into(), plan: plan.map(String::from), ..ConsumerSpec::default() },
    )
    .await
    .unwrap();
    s.issue_api_key("test", name, None, None, None, KeyEnv::Live).await.unwrap().key.expose().to_owned()
}

async fn call(gw: &TestGateway, path: &str, key: Option<&str>) -> Resp {
    let mut b = http::Request::builder().uri(path).header("host", "api.test");
    if let Some(k) = key {
        b = b.header("x-api-key", k);
    }
    gw.request(b.body(Full::new(Bytes::new())).unwrap()).await
}

fn problem_type(r: &Resp) -> String {
    r.json()["type"].as_str().unwrap_or_default().to_owned()
}

fn identity_yaml(up: &Upstream, routes: &str, traffic: &str) -> String {
    format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams: {{ up: {{ targets: ["http://{addr}"] }}, dead: {{ targets: ["http://127.0.0.1:9"] }} }}
identity:
  store: {{ sqlite: {{ path: ids.db }} }}
  key_secret: "${{file:key.secret}}"
  admin_token_sha256: fb8c4dc9d7a61c32d6d8668bde022f81ebc6bec2c94cce0e86efa95f24b23d57
{traffic}
routes:
{routes}
"#,
        addr = up.addr()
    )
}

#[tokio::test]
async fn single_node_limit_is_exact_and_headers_are_right() {
    let up = Upstream::start().await;
    let yaml = format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams: {{ up: {{ targets: ["http://{addr}"] }} }}
routes:
  - name: quiet
    prefix: /quiet
    upstream: up
    policy:
      rate_limit:
        limits: [{{ name: quiet-ip, key: client_ip, rate: 1, period: 1h }}]
  - name: all
    prefix: /
    upstream: up
    policy:
      rate_limit:
        emit_headers: true
        limits: [{{ name: per-ip, key: client_ip, rate: 5, period: 1h, burst: 5 }}]
"#,
        addr = up.addr()
    );
    let gw = start(&yaml, None).await;
    assert!(gw.handle().stage_names().contains(&"ratelimit"));

    for i in 0..5u32 {
        let r = gw.get("/x").await;
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.header("ratelimit-policy"), Some("\"per-ip\";q=5;w=3600"));
        let rl = r.header("ratelimit").unwrap();
        assert!(rl.starts_with(&format!("\"per-ip\";r={};t=", 4 - i)), "{rl}");
        assert!(r.header("retry-after").is_none());
    }
    let r = gw.get("/x").await;
    assert_eq!(r.status, 429);
    assert_eq!(problem_type(&r), "urn:portcullis:problem:too-many-requests");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    // One unit comes back every 3600 / 5 = 720 s.
    assert!((700..=720).contains(&retry), "{retry}");
    assert_eq!(r.header("ratelimit").unwrap(), format!("\"per-ip\";r=0;t={retry}"));
    assert_eq!(r.header("ratelimit-policy"), Some("\"per-ip\";q=5;w=3600"));
    assert_eq!(up.hits(), 5, "exactly the limit reached the upstream");

    // Without emit_headers an allowed response carries no RateLimit headers; a 429 always does.
    let r = gw.get("/quiet").await;
    assert_eq!(r.status, 200);
    assert!(r.header("ratelimit").is_none() && r.header("ratelimit-policy").is_none());
    let r = gw.get("/quiet").await;
    assert_eq!(r.status, 429);
    assert!(r.header("ratelimit").is_some() && r.header("retry-after").is_some());
}

#[tokio::test]
async fn limits_are_keyed_by_consumer_or_by_ip() {
    let up = Upstream::start().await;
    let routes = r#"
  - name: per-consumer
    prefix: /c
    upstream: up
    policy:
      auth: { methods: [api_key] }
      rate_limit: { limits: [{ name: pc, key: consumer, rate: 2, period: 1h }] }
  - name: per-ip
    prefix: /i
    upstream: up
    policy:
      auth: { methods: [api_key] }
      rate_limit: { limits: [{ name: pi, key: client_ip, rate: 3, period: 1h }] }
"#;
    let gw = start(&identity_yaml(&up, routes, ""), None).await;
    let a = consumer(&gw, "alice", None).await;
    let b = consumer(&gw, "bob", None).await;

    // Per consumer: alice's limit does not touch bob's, though both come from one address.
    assert_eq!(call(&gw, "/c", Some(&a)).await.status, 200);
    assert_eq!(call(&gw, "/c", Some(&a)).await.status, 200);
    assert_eq!(call(&gw, "/c", Some(&a)).await.status, 429);
    assert_eq!(call(&gw, "/c", Some(&b)).await.status, 200);
    assert_eq!(call(&gw, "/c", Some(&b)).await.status, 200);
    assert_eq!(call(&gw, "/c", Some(&b)).await.status, 429);

    // Per IP: alice and bob share the address, so they share the bucket.
    assert_eq!(call(&gw, "/i", Some(&a)).await.status, 200);
    assert_eq!(call(&gw, "/i", Some(&b)).await.status, 200);
    assert_eq!(call(&gw, "/i", Some(&a)).await.status, 200);
    let r = call(&gw, "/i", Some(&b)).await;
    assert_eq!(r.status, 429);
    assert_eq!(problem_type(&r), "urn:portcullis:problem:too-many-requests");

    // Authentication runs first: an unauthenticated caller is refused before spending a unit.
    assert_eq!(call(&gw, "/c", None).await.status, 401);
}

#[tokio::test]
async fn plans_allow_routes_and_quota_exhaustion_has_its_own_problem_type() {
    let up = Upstream::start().await;
    let routes = r#"
  - name: orders
    prefix: /orders
    upstream: up
    policy: { auth: { methods: [api_key] } }
  - name: admin
    prefix: /admin
    upstream: up
    policy: { auth: { methods: [api_key] } }
"#;
    let traffic = r#"
traffic:
  default_plan: free
  plans:
    free:
      routes: [orders]
      emit_headers: true
      limits: [{ name: burst, rate: 100, period: 1s }]
      quotas: [{ name: daily, limit: 3, period: day }]
    gold:
      time_zone: Europe/Paris
      quotas: [{ name: monthly, limit: 100, period: month }]
"#;
    let gw = start(&identity_yaml(&up, routes, traffic), None).await;
    let free = consumer(&gw, "free-app", None).await; // no plan: the default plan
    let gold = consumer(&gw, "gold-app", Some("gold")).await;
    let ghost = consumer(&gw, "ghost-app", Some("platinum")).await; // a plan the config lacks

    // Route permission: free may call orders, not admin (403, an authorization outcome).
    let r = call(&gw, "/admin", Some(&free)).await;
    assert_eq!(r.status, 403);
    assert_eq!(problem_type(&r), "urn:portcullis:problem:forbidden");
    assert_eq!(call(&gw, "/admin", Some(&gold)).await.status, 200);
    // An unknown plan fails closed.
    assert_eq!(call(&gw, "/orders", Some(&ghost)).await.status, 403);

    for i in 0..3 {
        let r = call(&gw, "/orders", Some(&free)).await;
        assert_eq!(r.status, 200, "request {i}");
        let rl = r.header("ratelimit").unwrap();
        assert!(rl.contains(&format!("\"free/daily\";r={}", 2 - i)), "{rl}");
    }
    let hits = up.hits();
    let r = call(&gw, "/orders", Some(&free)).await;
    assert_eq!(r.status, 429);
    assert_eq!(problem_type(&r), "urn:portcullis:problem:quota-exhausted", "distinct from too-many-requests");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "retry at the end of the UTC day: {retry}");
    assert!(r.header("ratelimit").unwrap().contains("\"free/daily\";r=0"));
    assert_eq!(up.hits(), hits, "an exhausted quota never reaches the upstream");
    // Gold's quota is separate.
    assert_eq!(call(&gw, "/orders", Some(&gold)).await.status, 200);
}

#[tokio::test]
async fn in_flight_limits_per_consumer_and_global_shed() {
    let up = Upstream::start().await;
    let routes = r#"
  - name: slow
    prefix: /slow
    upstream: up
    policy:
      auth: { methods: [api_key] }
      rate_limit: { concurrency_per_consumer: 1 }
  - name: open
    prefix: /status
    upstream: up
    policy: { auth: { public: true } }
"#;
    let traffic = "traffic: { max_inflight: 2, shed_anonymous_at: 1 }";
    let gw = std::sync::Arc::new(start(&identity_yaml(&up, routes, traffic), None).await);
    let a = consumer(&gw, "alice", None).await;
    let b = consumer(&gw, "bob", None).await;

    let (g, k) = (gw.clone(), a.clone());
    let first = tokio::spawn(async move { call(&g, "/slow/1500", Some(&k)).await.status });
    // Wait (bounded) until the first request is at the upstream, i.e. in flight.
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.hits() == 0 {
        assert!(Instant::now() < deadline, "first request never reached the upstream");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Alice has one in flight: her second is refused; bob is admitted.
    let r = call(&gw, "/slow/0", Some(&a)).await;
    assert_eq!(r.status, 429);
    assert_eq!(problem_type(&r), "urn:portcullis:problem:too-many-requests");
    // Anonymous callers are shed first (one request in flight already).
    let r = gw.get("/status/200").await;
    assert_eq!(r.status, 503);
    assert_eq!(problem_type(&r), "urn:portcullis:problem:unavailable");
    assert!(r.header("retry-after").is_some());
    assert_eq!(call(&gw, "/slow/0", Some(&b)).await.status, 200);
    assert_eq!(first.await.unwrap(), 200);
    // Slots come back when requests end (the slot is released just after the last byte is
    // sent, so poll briefly).
    let deadline = Instant::now() + Duration::from_secs(3);
    while call(&gw, "/slow/0", Some(&a)).await.status != 200 {
        assert!(Instant::now() < deadline, "alice's slot never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while gw.get("/status/200").await.status != 200 {
        assert!(Instant::now() < deadline, "the anonymous slot never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn usage_report_equals_what_the_upstream_served_per_consumer_and_route() {
    let up = Upstream::start().await;
    let routes = r#"
  - name: orders
    prefix: /orders
    upstream: up
    policy:
      auth: { methods: [api_key] }
      rate_limit: { limits: [{ name: orders-c, key: consumer, rate: 4, period: 1h }] }
  - name: users
    prefix: /users
    upstream: up
    policy: { auth: { methods: [api_key] } }
  - name: errors
    prefix: /status
    upstream: up
    policy: { auth: { methods: [api_key] } }
  - name: broken
    prefix: /broken
    upstream: dead
    policy: { auth: { methods: [api_key] } }
"#;
    let traffic = "traffic: { usage: { flush_interval: 1h } }";
    let gw = start(&identity_yaml(&up, routes, traffic), None).await;
    let a = consumer(&gw, "alice", None).await;
    let b = consumer(&gw, "bob", None).await;

    for _ in 0..6 {
        call(&gw, "/orders", Some(&a)).await; // 4 served, 2 refused by the limit
    }
    for _ in 0..3 {
        call(&gw, "/users", Some(&a)).await;
        assert_eq!(call(&gw, "/status/500", Some(&b)).await.status, 500); // served, even as a 500
        assert_eq!(call(&gw, "/broken", Some(&b)).await.status, 502); // never served
    }
    call(&gw, "/orders", Some(&b)).await;
    call(&gw, "/users", Some("pc_live_not-a-real-key")).await; // 401: not served

    // What the upstream actually saw, per (consumer name, route).
    let mut seen: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for r in up.requests() {
        let consumer = r.headers["x-portcullis-consumer"].to_str().unwrap().to_owned();
        let route = match &r.path {
            p if p.starts_with("/orders") => "orders",
            p if p.starts_with("/status") => "errors",
            _ => "users",
        };
        *seen.entry((consumer, route.to_owned())).or_default() += 1;
    }
    assert_eq!(seen.values().sum::<u64>(), 4 + 3 + 3 + 1);

    gw.handle().flush_usage().await;
    let store = svc(&gw).store().clone();
    let period = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).strftime("%Y-%m").to_string();
    let report = svc(&gw)
        .io(async move {
            Ok(store.usage_report(&portcullis_store::UsageFilter { period, ..Default::default() }).await.unwrap())
        })
        .await
        .unwrap();
    let got: std::collections::BTreeMap<(String, String), u64> =
        report.iter().map(|l| ((l.consumer_name.clone().unwrap(), l.route.clone()), l.count)).collect();
    assert_eq!(got, seen, "the usage report equals what the upstream served");
    // A second flush with nothing new adds nothing; the admin API reports the same totals.
    gw.handle().flush_usage().await;
    let h1 = portcullis_testkit::http1_client();
    let unauthenticated =
        http::Request::builder().uri("/v1/usage?period=2026-11").body(Full::new(Bytes::new())).unwrap();
    assert_eq!(portcullis_testkit::send(gw.admin_addr(), &h1, unauthenticated).await.status, 401);
    let admin = |q: String| {
        let req = http::Request::builder()
            .uri(format!("/v1/usage?{q}"))
            .header("authorization", "Bearer pc_admin_traffic_test_token_0123456789abcdef")
            .body(Full::new(Bytes::new()))
            .unwrap();
        portcullis_testkit::send(gw.admin_addr(), &h1, req)
    };
    let month = report[0].period.clone();
    let r = admin(format!("period={month}")).await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    let total: u64 = doc["usage"].as_array().unwrap().iter().map(|l| l["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 11);
    let r = admin(format!("period={month}&format=csv&route=errors")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    let csv = String::from_utf8(r.body.to_vec()).unwrap();
    assert_eq!(
        csv,
        format!(
            "period,consumer_id,consumer_name,route,count\r\n{month},{},bob,errors,3\r\n",
            report.iter().find(|l| l.route == "errors").unwrap().consumer_id
        )
    );
    // Malformed periods are refused, not turned into a wildcard.
    for bad in ["period=%25", "period=2026", "nothing=1", "period=2026-11&format=xml"] {
        let r = admin(bad.to_owned()).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json()["type"], "urn:portcullis:problem:bad-request");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fail_closed_answers_503_fail_open_keeps_the_local_share_then_recovers() {
    let up = Upstream::start().await;
    let mut redis = OwnRedis::start();
    let ns = unique("failover");
    let yaml = format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
workers: 1
upstreams: {{ up: {{ targets: ["http://{addr}"] }} }}
traffic:
  cluster: {{ redis_url: "${{file:redis.url}}", namespace: {ns}, expected_nodes: 2, timeout: 500ms, failure_threshold: 2, cooldown: 200ms }}
routes:
  - name: closed
    prefix: /closed
    upstream: up
    policy:
      rate_limit: {{ limits: [{{ name: closed-ip, key: client_ip, rate: 1000, period: 1h }}] }}
  - name: open
    prefix: /open
    upstream: up
    policy:
      rate_limit: {{ limits: [{{ name: open-route, key: route, rate: 10, period: 1h, on_store_failure: open }}] }}
"#,
        addr = up.addr()
    );
    let gw = start(&yaml, Some(&redis.url())).await;
    assert_eq!(gw.get("/closed").await.status, 200);
    assert_eq!(gw.get("/open").await.status, 200);

    redis.kill();
    let started = Instant::now();
    let r = gw.get("/closed").await;
    assert_eq!(r.status, 503, "a client_ip limit fails closed by default");
    assert_eq!(problem_type(&r), "urn:portcullis:problem:rate-limit-unavailable");
    assert!(r.header("retry-after").is_some());
    // Fail open: this node's share of 10 with 2 expected nodes is 5, counted locally from zero.
    let mut open_ok = 0;
    for _ in 0..12 {
        match gw.get("/open").await.status {
            200 => open_ok += 1,
            429 => {}
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!(open_ok, 5, "fail-open keeps serving within the node's share");
    assert!(started.elapsed() < Duration::from_secs(5), "the gateway never stalls on a dead Redis");

    // Redis comes back (empty): the shared limits return once the breaker lets a probe through.
    redis.spawn();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = gw.get("/closed").await.status;
        if s == 200 {
            break;
        }
        assert_eq!(s, 503);
        assert!(Instant::now() < deadline, "limits did not come back with Redis");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Shared again: the open route counts in Redis (fresh, 10 available) rather than locally.
    let mut ok = 0;
    for _ in 0..12 {
        if gw.get("/open").await.status == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 10);
}

#[tokio::test]
async fn shared_redis_limit_holds_across_two_gateways() {
    let up = Upstream::start().await;
    let ns = unique("two-nodes");
    let yaml = format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams: {{ up: {{ targets: ["http://{addr}"] }} }}
traffic:
  cluster: {{ redis_url: "${{file:redis.url}}", namespace: {ns}, expected_nodes: 2, timeout: 1s }}
routes:
  - name: all
    prefix: /
    upstream: up
    policy:
      rate_limit: {{ emit_headers: true, limits: [{{ name: global, key: route, rate: 7, period: 1h }}] }}
"#,
        addr = up.addr()
    );
    let a = start(&yaml, Some("redis://127.0.0.1:6379/")).await;
    let b = start(&yaml, Some("redis://127.0.0.1:6379/")).await;
    let mut ok = 0;
    for i in 0..20 {
        let gw = if i % 2 == 0 { &a } else { &b };
        if gw.get("/x").await.status == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 7, "one limit for the cluster, not one per node");
    assert_eq!(up.hits(), 7);
}
