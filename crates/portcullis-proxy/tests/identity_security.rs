#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]
//! Identity end to end: API keys, scopes, object ownership, kill switches, rotation and
//! revocation, identity headers, and the uniform answer to every authentication failure.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use portcullis_identity::IdentityService;
use portcullis_identity::admin::{ConsumerSpec, TargetRef};
use portcullis_identity::apikey::KeyEnv;
use portcullis_testkit::{Resp, TestGateway, Upstream};

const SECRET: &str = "an-identity-test-secret-of-32-bytes-or-more";
const JWT_SECRET: &str = "a-jwt-hmac-secret-that-is-long-enough-0123";

fn config(up: &Upstream) -> String {
    format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams: {{ up: {{ targets: ["http://{addr}"] }} }}
identity:
  store: {{ sqlite: {{ path: ids.db }} }}
  key_secret: "${{file:key.secret}}"
  upstream_signing_secret: "${{file:sign.secret}}"
  brute_force: {{ ip_threshold: 1000, credential_threshold: 1000, lockout_after: 3 }}
  issuers:
    corp:
      issuer: "https://idp.corp.test"
      audiences: [crm-api]
      algorithms: [HS256]
      hmac_secret: "${{file:jwt.secret}}"
routes:
  - name: login
    path: /status/{{code}}
    methods: [POST]
    upstream: up
    policy: {{ auth: {{ public: true, login_username: /username }} }}
  - name: signed
    prefix: /signed
    upstream: up
    policy: {{ auth: {{ methods: [hmac], scopes: [orders:read] }} }}
  - name: basic
    path: /basic
    upstream: up
    policy: {{ auth: {{ methods: [basic] }} }}
  - name: tokens
    prefix: /tokens
    upstream: up
    policy: {{ auth: {{ methods: [jwt], scopes: [reports:read] }} }}
  - name: health
    path: /health
    upstream: up
    policy: {{ auth: {{ public: true }} }}
  - name: orders
    prefix: /orders
    upstream: up
    policy: {{ auth: {{ methods: [api_key], scopes: [orders:read] }} }}
  - name: customer
    path: /customers/{{customerId}}
    upstream: up
    policy: {{ auth: {{ methods: [api_key], owner: [{{ path_param: customerId, equals: org_name }}] }} }}
  - name: invoices
    path: /invoices
    methods: [POST]
    upstream: up
    policy: {{ auth: {{ methods: [api_key], owner: [{{ body: /customer, equals: org_name }}] }} }}
  - name: legacy
    path: /legacy
    upstream: up
    policy: {{ auth: {{ methods: [api_key], api_key_query_param: api_key }} }}
"#,
        addr = up.addr()
    )
}

async fn start(up: &Upstream) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.secret"), SECRET).unwrap();
    std::fs::write(dir.path().join("sign.secret"), "identity-header-signing-secret-0123456789").unwrap();
    std::fs::write(dir.path().join("jwt.secret"), JWT_SECRET).unwrap();
    TestGateway::start_in(dir, &config(up)).await
}

fn svc(gw: &TestGateway) -> IdentityService {
    gw.handle().identity().unwrap().clone()
}

/// Two organizations, each with one consumer and one key.
async fn seed(gw: &TestGateway) -> (String, String) {
    let s = svc(gw);
    s.create_org("test", "acme", None).await.unwrap();
    s.create_org("test", "globex", None).await.unwrap();
    for (org, name, scopes) in [("acme", "acme-billing", vec!["orders:read"]), ("globex", "globex-app", vec![])] {
        s.create_consumer(
            "test",
            ConsumerSpec {
                org: org.into(),
                name: name.into(),
                scopes: scopes.into_iter().map(String::from).collect(),
                ..ConsumerSpec::default()
            },
        )
        .await
        .unwrap();
    }
    let a = s.issue_api_key("test", "acme-billing", None, None, None, KeyEnv::Live).await.unwrap();
    let g = s.issue_api_key("test", "globex-app", None, None, None, KeyEnv::Live).await.unwrap();
    (a.key.expose().to_owned(), g.key.expose().to_owned())
}

async fn call(gw: &TestGateway, method: &str, path: &str, key: Option<&str>, body: &str) -> Resp {
    let mut b = http::Request::builder().method(method).uri(path).header("host", "api.test");
    if let Some(k) = key {
        b = b.header("x-api-key", k);
    }
    if !body.is_empty() {
        b = b.header("content-type", "application/json");
    }
    gw.request(b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await
}

/// The problem type of a response.
fn problem_type(r: &Resp) -> String {
    r.json()["type"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn api_key_is_required_verified_and_never_forwarded() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let (acme, _) = seed(&gw).await;

    let r = call(&gw, "GET", "/orders/1", None, "").await;
    assert_eq!(r.status, 401);
    assert_eq!(problem_type(&r), "urn:portcullis:problem:unauthorized");
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    assert_eq!(up.hits(), 0, "a request without a credential never reaches the upstream");

    let r = call(&gw, "GET", "/orders/1", Some(&acme), "").await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let seen = &up.requests()[0];
    assert!(seen.headers.get("x-api-key").is_none(), "the raw key must not travel upstream");
    assert_eq!(seen.headers["x-portcullis-consumer"], "acme-billing");
    assert_eq!(seen.headers["x-portcullis-org"], "acme");
    assert_eq!(seen.headers["x-portcullis-scopes"], "orders:read");
    assert_eq!(seen.headers["x-portcullis-auth-method"], "api_key");

    // The upstream can check the signature with the shared secret.
    let h = |n: &str| seen.headers.get(n).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let input = portcullis_identity::stage::identity_signature_input(
        &h("x-request-id"),
        &h("x-portcullis-identity-ts"),
        "GET",
        "/orders/1",
        [
            &h("x-portcullis-auth-method"),
            &h("x-portcullis-org"),
            &h("x-portcullis-consumer"),
            &h("x-portcullis-consumer-id"),
            &h("x-portcullis-subject"),
            &h("x-portcullis-scopes"),
        ],
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"identity-header-signing-secret-0123456789");
    let tag = ring::hmac::sign(&key, input.as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(h("x-portcullis-identity-signature"), format!("v1={hex}"));

    // Public routes need nothing.
    assert_eq!(call(&gw, "GET", "/health", None, "").await.status, 200);
}

#[tokio::test]
async fn every_authentication_failure_looks_the_same() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let (acme, _) = seed(&gw).await;
    let s = svc(&gw);

    // A well-formed key that was never issued, garbage, a key with a broken checksum, a revoked key
    // and an expired key: one status, one problem type, one detail.
    let unknown = portcullis_identity::apikey::generate(KeyEnv::Live).unwrap();
    let mut broken = acme.clone();
    broken.pop();
    broken.push(if acme.ends_with('A') { 'B' } else { 'A' });
    let revoked = s.issue_api_key("test", "acme-billing", None, None, None, KeyEnv::Live).await.unwrap();
    s.revoke_credential("test", &revoked.credential.id, "leaked").await.unwrap();
    let expired =
        s.issue_api_key("test", "acme-billing", None, Some(Duration::from_secs(1)), None, KeyEnv::Live).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let mut shapes = Vec::new();
    for k in [unknown.expose(), "hunter2", &broken, revoked.key.expose(), expired.key.expose()] {
        let r = call(&gw, "GET", "/orders/1", Some(k), "").await;
        assert_eq!(r.status, 401, "{k}");
        let mut doc = r.json();
        doc.as_object_mut().unwrap().remove("request_id");
        shapes.push((doc, r.header("www-authenticate").map(str::to_owned)));
    }
    assert!(shapes.windows(2).all(|w| w[0] == w[1]), "{shapes:?}");
    assert_eq!(up.hits(), 0);
    // Still fine with the good key.
    assert_eq!(call(&gw, "GET", "/orders/1", Some(&acme), "").await.status, 200);
}

#[tokio::test]
async fn scopes_are_enforced() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let (acme, globex) = seed(&gw).await;
    assert_eq!(call(&gw, "GET", "/orders", Some(&acme), "").await.status, 200);
    let r = call(&gw, "GET", "/orders", Some(&globex), "").await;
    assert_eq!(r.status, 403);
    assert_eq!(problem_type(&r), "urn:portcullis:problem:insufficient-scope");
    assert!(r.header("www-authenticate").unwrap().contains("insufficient_scope"));
    assert_eq!(up.hits(), 1);

    // A key narrowed to fewer scopes than its consumer holds gets only those.
    let s = svc(&gw);
    let narrow = s.issue_api_key("test", "acme-billing", Some(vec![]), None, None, KeyEnv::Test).await.unwrap();
    assert_eq!(call(&gw, "GET", "/orders", Some(narrow.key.expose()), "").await.status, 403);
}

#[tokio::test]
async fn object_ownership_stops_bola_in_path_and_body() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let (acme, globex) = seed(&gw).await;
    assert_eq!(call(&gw, "GET", "/customers/acme", Some(&acme), "").await.status, 200);
    let r = call(&gw, "GET", "/customers/globex", Some(&acme), "").await;
    assert_eq!(r.status, 403);
    assert_eq!(problem_type(&r), "urn:portcullis:problem:not-owner");
    assert_eq!(call(&gw, "GET", "/customers/globex", Some(&globex), "").await.status, 200);
    // Encoded forms of another id do not slip through.
    assert_eq!(call(&gw, "GET", "/customers/%61cme", Some(&globex), "").await.status, 403);

    assert_eq!(call(&gw, "POST", "/invoices", Some(&acme), r#"{"customer":"acme","amount":5}"#).await.status, 200);
    for bad in [r#"{"customer":"globex"}"#, r#"{"amount":5}"#, "not json", ""] {
        let r = call(&gw, "POST", "/invoices", Some(&acme), bad).await;
        assert_eq!(r.status, 403, "{bad}");
    }
    assert_eq!(up.hits(), 3, "only the owned requests reached the upstream");
}

#[tokio::test]
async fn kill_switches_stop_one_consumer_key_org_or_route_and_are_audited() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let (acme, globex) = seed(&gw).await;
    let s = svc(&gw);

    s.suspend("ops", &TargetRef::Consumer("acme-billing".into()), "scraping", None).await.unwrap();
    let r = call(&gw, "GET", "/customers/acme", Some(&acme), "").await;
    assert_eq!(r.status, 403);
    assert_eq!(problem_type(&r), "urn:portcullis:problem:suspended");
    assert_eq!(call(&gw, "GET", "/customers/globex", Some(&globex), "").await.status, 200, "others keep working");
    assert!(s.resume("ops", &TargetRef::Consumer("acme-billing".into())).await.unwrap());
    assert_eq!(call(&gw, "GET", "/customers/acme", Some(&acme), "").await.status, 200);

    s.suspend("ops", &TargetRef::Organization("globex".into()), "unpaid", Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(call(&gw, "GET", "/customers/globex", Some(&globex), "").await.status, 403);
    assert_eq!(call(&gw, "GET", "/customers/acme", Some(&acme), "").await.status, 200);

    s.suspend("ops", &TargetRef::Route("customer".into()), "incident 42", None).await.unwrap();
    let r = call(&gw, "GET", "/customers/acme", Some(&acme), "").await;
    assert_eq!(r.status, 503);
    assert_eq!(problem_type(&r), "urn:portcullis:problem:route-suspended");
    assert_eq!(call(&gw, "GET", "/orders", Some(&acme), "").await.status, 200, "other routes keep working");

    let trail = s.audit_trail(0, 100).await.unwrap();
    let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"suspend") && actions.contains(&"resume"), "{actions:?}");
    let suspend = trail.iter().find(|e| e.action == "suspend").unwrap();
    assert_eq!(suspend.actor, "ops");
    assert_eq!(suspend.detail["reason"], "scraping");
    // The audit trail never holds a key.
    let dump = serde_json::to_string(&trail).unwrap();
    assert!(!dump.contains(&acme) && !dump.contains(&globex));
}

#[tokio::test]
async fn rotation_keeps_the_old_key_for_the_overlap_and_revocation_is_immediate() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let (acme, _) = seed(&gw).await;
    let s = svc(&gw);
    let cred = s.list_credentials("acme-billing").await.unwrap().remove(0);
    // Warm the cache with the old key, so the test proves invalidation, not a cold lookup.
    assert_eq!(call(&gw, "GET", "/orders", Some(&acme), "").await.status, 200);

    let new = s.rotate_api_key("ops", &cred.id, Duration::from_secs(3600)).await.unwrap();
    assert_eq!(call(&gw, "GET", "/orders", Some(&acme), "").await.status, 200, "old key works in the overlap");
    assert_eq!(call(&gw, "GET", "/orders", Some(new.key.expose()), "").await.status, 200);

    let new2 = s.rotate_api_key("ops", &new.credential.id, Duration::ZERO).await.unwrap();
    assert_eq!(call(&gw, "GET", "/orders", Some(new.key.expose()), "").await.status, 401, "no overlap: stops now");
    s.revoke_credential("ops", &new2.credential.id, "test").await.unwrap();
    assert_eq!(call(&gw, "GET", "/orders", Some(new2.key.expose()), "").await.status, 401);
}

#[tokio::test]
async fn keys_in_query_only_where_allowed_and_stripped() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let (acme, _) = seed(&gw).await;
    assert_eq!(call(&gw, "GET", &format!("/orders?api_key={acme}"), None, "").await.status, 401);
    let r = call(&gw, "GET", &format!("/legacy?a=1&api_key={acme}&b=2"), None, "").await;
    assert_eq!(r.status, 200);
    let seen = up.requests().pop().unwrap();
    assert_eq!(seen.path, "/legacy?a=1&b=2");
    assert!(!seen.path.contains(&acme));
}

#[tokio::test]
async fn spoofed_identity_headers_are_removed() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let (_, globex) = seed(&gw).await;
    let req = http::Request::get("/health")
        .header("host", "x")
        .header("x-portcullis-consumer", "admin")
        .header("x-portcullis-scopes", "everything")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(gw.request(req).await.status, 200);
    let seen = up.requests().pop().unwrap();
    assert!(seen.headers.keys().all(|k| !k.as_str().starts_with("x-portcullis-")), "{:?}", seen.headers);

    let req = http::Request::get("/customers/globex")
        .header("host", "x")
        .header("x-api-key", &globex)
        .header("x-portcullis-consumer", "acme-billing")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(gw.request(req).await.status, 200);
    assert_eq!(up.requests().pop().unwrap().headers["x-portcullis-consumer"], "globex-app");
}

#[tokio::test]
async fn the_access_log_names_the_caller_and_never_the_key() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let (acme, _) = seed(&gw).await;
    assert_eq!(call(&gw, "GET", "/orders", Some(&acme), "").await.status, 200);
    assert_eq!(call(&gw, "GET", "/orders", Some("pc_live_nope"), "").await.status, 401);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let raw = gw.access_log_raw().join("\n");
    assert!(!raw.contains(&acme) && !raw.contains("pc_live_nope"), "{raw}");
    let log = gw.access_log();
    assert!(log.iter().any(|l| l["consumer"] == "acme-billing"), "{log:?}");
    assert!(log.iter().any(|l| l["stage"] == "authn" && l["reason"] == "credential-invalid"), "{log:?}");
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Builds an HMAC-signed request.
fn signed(
    key_id: &str,
    secret_b64: &str,
    method: &str,
    path: &str,
    body: &str,
    nonce: &str,
    ts: u64,
) -> http::Request<Full<Bytes>> {
    use portcullis_identity::hmac_sig;
    let secret = hmac_sig::SigningSecret::from_base64(secret_b64).unwrap();
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "api.test")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let (parts, b) = req.into_parts();
    let params = hmac_sig::sign(
        &secret,
        key_id,
        ts,
        nonce,
        &["host", "content-type"],
        hmac_sig::RequestParts::from(&parts),
        &hmac_sig::BodyDigest::of(body.as_bytes()),
    )
    .unwrap();
    req = http::Request::from_parts(parts, b);
    req.headers_mut().insert("authorization", params.to_header_value().unwrap());
    req
}

#[tokio::test]
async fn hmac_signed_requests_are_verified_over_the_body_and_never_replayed() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    seed(&gw).await;
    let (cred, secret) = svc(&gw).issue_hmac_key("test", "acme-billing").await.unwrap();
    let kid = cred.lookup.clone();
    let body = r#"{"order":1}"#;

    let r = gw
        .request(signed(&kid, &secret, "POST", "/signed/orders?b=2&a=1", body, "nonce-1-0123456789abcdef", now_secs()))
        .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let seen = up.requests().pop().unwrap();
    assert!(seen.headers.get("authorization").is_none());
    assert_eq!(seen.headers["x-portcullis-consumer"], "acme-billing");
    assert_eq!(seen.headers["x-portcullis-auth-method"], "hmac");
    assert_eq!(seen.body, body.as_bytes());

    // A GET with no body is signed over the empty body.
    let r = gw.request(signed(&kid, &secret, "GET", "/signed/x", "", "nonce-2-0123456789abcdef", now_secs())).await;
    assert_eq!(r.status, 200);

    // Replay, tampered body, stale timestamp, wrong key, unknown key id: the same 401.
    let replay = signed(&kid, &secret, "POST", "/signed/orders?b=2&a=1", body, "nonce-1-0123456789abcdef", now_secs());
    assert_eq!(gw.request(replay).await.status, 401);
    let mut tampered = signed(&kid, &secret, "POST", "/signed/orders", body, "nonce-3-0123456789abcdef", now_secs());
    *tampered.body_mut() = Full::new(Bytes::from_static(br#"{"order":2}"#));
    assert_eq!(gw.request(tampered).await.status, 401);
    let stale = signed(&kid, &secret, "POST", "/signed/orders", body, "nonce-4-0123456789abcdef", now_secs() - 3600);
    assert_eq!(gw.request(stale).await.status, 401);
    let (_, other_secret) = svc(&gw).issue_hmac_key("test", "acme-billing").await.unwrap();
    let wrong_key = signed(&kid, &other_secret, "POST", "/signed/orders", body, "nonce-5-0123456789abcdef", now_secs());
    // Three failures on this key id (lockout_after: 3): it is locked out for a while.
    let locked = gw.request(wrong_key).await;
    assert_eq!(locked.status, 429);
    assert_eq!(problem_type(&locked), "urn:portcullis:problem:auth-locked-out");
    let unknown =
        signed("pchk_doesnotexist00000000", &secret, "GET", "/signed/x", "", "nonce-6-0123456789abcdef", now_secs());
    assert_eq!(gw.request(unknown).await.status, 401);
    assert_eq!(up.hits(), 2);

    // Scopes still apply to signed requests.
    svc(&gw)
        .create_consumer(
            "test",
            ConsumerSpec { org: "globex".into(), name: "globex-batch".into(), ..ConsumerSpec::default() },
        )
        .await
        .unwrap();
    let (cred2, secret2) = svc(&gw).issue_hmac_key("test", "globex-batch").await.unwrap();
    let r = gw
        .request(signed(&cred2.lookup, &secret2, "GET", "/signed/x", "", "nonce-7-0123456789abcdef", now_secs()))
        .await;
    assert_eq!(r.status, 403);
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
}

#[tokio::test]
async fn basic_auth_uses_argon2_hides_unknown_users_and_locks_out_guessers() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    seed(&gw).await;
    svc(&gw).set_password("test", "globex-app", "legacy-user", "correct horse battery").await.unwrap();
    let req = |auth: String| {
        http::Request::get("/basic")
            .header("host", "x")
            .header("authorization", auth)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    assert_eq!(gw.request(req(basic("legacy-user", "correct horse battery"))).await.status, 200);
    assert!(up.requests().pop().unwrap().headers.get("authorization").is_none());

    let wrong = gw.request(req(basic("legacy-user", "wrong password!"))).await;
    let unknown = gw.request(req(basic("nobody-at-all", "wrong password!"))).await;
    assert_eq!((wrong.status, unknown.status), (401, 401));
    let strip = |r: &Resp| {
        let mut d = r.json();
        d.as_object_mut().unwrap().remove("request_id");
        d
    };
    assert_eq!(strip(&wrong), strip(&unknown), "no user enumeration");
    assert!(wrong.header("www-authenticate").unwrap().starts_with("Basic"));

    // The third failure for this username locks it: even the right password is refused for now.
    assert_eq!(gw.request(req(basic("legacy-user", "still wrong"))).await.status, 401);
    assert_eq!(gw.request(req(basic("legacy-user", "third wrong"))).await.status, 401);
    let locked = gw.request(req(basic("legacy-user", "another guess"))).await;
    assert_eq!(locked.status, 429);
    assert_eq!(problem_type(&locked), "urn:portcullis:problem:auth-locked-out");
    assert!(locked.header("retry-after").is_some());
    assert_eq!(gw.request(req(basic("legacy-user", "correct horse battery"))).await.status, 429);
    assert_eq!(up.hits(), 1);
}

fn hs256(claims: serde_json::Value) -> String {
    use portcullis_identity::jwt::b64;
    let header = b64::encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = b64::encode(claims.to_string().as_bytes());
    let input = format!("{header}.{payload}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, JWT_SECRET.as_bytes());
    format!("{input}.{}", b64::encode(ring::hmac::sign(&key, input.as_bytes()).as_ref()))
}

#[tokio::test]
async fn jwt_bearer_tokens_are_verified_and_mapped_to_consumers() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    seed(&gw).await;
    svc(&gw)
        .create_consumer(
            "test",
            ConsumerSpec {
                org: "acme".into(),
                name: "acme-analyst".into(),
                kind: Some("user".into()),
                external_subject: Some("user-1234".into()),
                ..ConsumerSpec::default()
            },
        )
        .await
        .unwrap();
    let now = now_secs();
    let good = serde_json::json!({"iss":"https://idp.corp.test","aud":"crm-api","sub":"user-1234","exp":now+300,"iat":now,"scp":["reports:read"]});
    let call_tok = |t: String| {
        http::Request::get("/tokens/r")
            .header("host", "x")
            .header("authorization", format!("Bearer {t}"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let r = gw.request(call_tok(hs256(good.clone()))).await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let seen = up.requests().pop().unwrap();
    assert_eq!(seen.headers["x-portcullis-consumer"], "acme-analyst");
    assert_eq!(seen.headers["x-portcullis-org"], "acme");
    assert_eq!(seen.headers["x-portcullis-subject"], "user-1234");
    assert!(seen.headers.get("authorization").is_none());

    // A subject that maps to no consumer is still the token's subject, with the token's scopes.
    let mut unmapped = good.clone();
    unmapped["sub"] = "service-77".into();
    assert_eq!(gw.request(call_tok(hs256(unmapped))).await.status, 200);

    let mut cases = Vec::new();
    let mut expired = good.clone();
    expired["exp"] = (now - 3600).into();
    cases.push(("expired", hs256(expired)));
    let mut aud = good.clone();
    aud["aud"] = "other-api".into();
    cases.push(("wrong aud", hs256(aud)));
    let mut iss = good.clone();
    iss["iss"] = "https://evil.test".into();
    cases.push(("wrong iss", hs256(iss)));
    let t = hs256(good.clone());
    let (head, rest) = t.split_once('.').unwrap();
    let none_head = portcullis_identity::jwt::b64::encode(br#"{"alg":"none"}"#);
    cases.push(("alg none", format!("{none_head}.{}", rest.rsplit_once('.').unwrap().0) + "."));
    cases.push(("tampered", format!("{head}.{}x", rest)));
    cases.push(("garbage", "not.a.jwt".into()));
    for (what, tok) in cases {
        assert_eq!(gw.request(call_tok(tok)).await.status, 401, "{what}");
    }
    let mut no_scope = good.clone();
    no_scope["scp"] = serde_json::json!([]);
    assert_eq!(gw.request(call_tok(hs256(no_scope))).await.status, 403);

    // Suspending the mapped consumer stops its tokens too.
    svc(&gw).suspend("ops", &TargetRef::Consumer("acme-analyst".into()), "offboarding", None).await.unwrap();
    assert_eq!(gw.request(call_tok(hs256(good))).await.status, 403);
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn login_failures_look_the_same_take_the_same_time_and_lock_the_username() {
    let up = Upstream::start().await;
    let gw = start(&up).await;
    let login = |status: u16, user: &str| {
        http::Request::post(format!("/status/{status}"))
            .header("host", "x")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(format!(r#"{{"username":"{user}","password":"x"}}"#))))
            .unwrap()
    };
    assert_eq!(gw.request(login(200, "carol")).await.status, 200);

    // The upstream says "no such user" (404) or "wrong password" (401): the caller cannot tell.
    let started = std::time::Instant::now();
    let no_user = gw.request(login(404, "mallory")).await;
    let elapsed = started.elapsed();
    let wrong_pw = gw.request(login(401, "carol")).await;
    assert_eq!((no_user.status, wrong_pw.status), (401, 401));
    let strip = |r: &Resp| {
        let mut d = r.json();
        d.as_object_mut().unwrap().remove("request_id");
        d
    };
    assert_eq!(strip(&no_user), strip(&wrong_pw));
    assert!(elapsed >= Duration::from_millis(250), "failures are answered no sooner than the floor: {elapsed:?}");

    // Third failure for carol locks carol (lockout_after: 3), not mallory.
    assert_eq!(gw.request(login(401, "carol")).await.status, 401);
    assert_eq!(gw.request(login(401, "carol")).await.status, 401);
    let locked = gw.request(login(200, "carol")).await;
    assert_eq!(locked.status, 429);
    assert_eq!(problem_type(&locked), "urn:portcullis:problem:auth-locked-out");
    assert_eq!(gw.request(login(200, "mallory")).await.status, 200);
}
