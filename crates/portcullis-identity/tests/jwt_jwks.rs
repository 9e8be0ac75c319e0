//! Remote key sets end to end, against a small JWKS server on 127.0.0.1:0: rotation, outage,
//! single-flight, rate limit, discovery, TLS with an extra CA, size cap and timeout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]

mod jwt_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jwt_support::*;
use portcullis_identity::jwt::{Alg, IssuerPolicy, JwtError, KeySource, SystemClock, Verifier};
use serde_json::{Value, json};

fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

fn claims_for(iss: &str) -> Value {
    let mut c = good_claims(t0());
    c["iss"] = json!(iss);
    c
}

fn remote_policy(iss: &str, source: KeySource) -> IssuerPolicy {
    let mut p = IssuerPolicy::new(iss, vec![AUD.into()], vec![Alg::Rs256, Alg::Es256], vec![source]);
    p.fetch.http.timeout = Duration::from_secs(5);
    p
}

fn verifier_for(iss: &str, url: String) -> Verifier {
    Verifier::new(remote_policy(iss, KeySource::Jwks { url })).unwrap()
}

fn at(s: u64) -> std::time::SystemTime {
    t0() + Duration::from_secs(s)
}

#[tokio::test]
async fn rotation_new_kid_verifies_after_refetch_and_removed_kid_stops_working() {
    let a = Signer::rsa("rsa2048-a");
    let b = Signer::rsa("rsa2048-b");
    let doc = Arc::new(Mutex::new(jwks(&[a.jwk("a")])));
    let server = TestServer::serving(Arc::clone(&doc)).await;
    let iss = "https://rotation.test";
    let v = verifier_for(iss, server.url("/jwks"));
    let c = claims_for(iss);

    let token_a = mint(&a, "RS256", "a", &c);
    v.verify(&token_a, at(0)).await.unwrap();
    assert_eq!(server.hits(), 1);
    v.verify(&token_a, at(1)).await.unwrap();
    assert_eq!(server.hits(), 1, "known kid: no fetch");

    // The identity provider publishes a new key and starts signing with it.
    *doc.lock().unwrap() = jwks(&[a.jwk("a"), b.jwk("b")]);
    let token_b = mint(&b, "RS256", "b", &c);
    v.verify(&token_b, at(20)).await.unwrap();
    assert_eq!(server.hits(), 2, "an unknown kid triggers one refetch");

    // It retires the old key: after the next refresh, even a cached token signed with it fails.
    *doc.lock().unwrap() = jwks(&[b.jwk("b")]);
    v.jwks().unwrap().refresh(at(40)).await.unwrap();
    assert_eq!(v.verify(&token_a, at(41)).await.unwrap_err(), JwtError::UnknownKey);
    v.verify(&token_b, at(41)).await.unwrap();
}

#[tokio::test]
async fn unknown_kid_refetches_are_rate_limited() {
    let a = Signer::rsa("rsa2048-a");
    let server = TestServer::serving(Arc::new(Mutex::new(jwks(&[a.jwk("a")])))).await;
    let iss = "https://ratelimit.test";
    let v = verifier_for(iss, server.url("/jwks"));
    let c = claims_for(iss);
    v.verify(&mint(&a, "RS256", "a", &c), at(0)).await.unwrap();
    assert_eq!(server.hits(), 1);
    // A flood of made-up kids: one refetch per 10 s at most.
    for s in 0..10 {
        let t = mint(&a, "RS256", &format!("made-up-{s}"), &c);
        assert_eq!(v.verify(&t, at(s)).await.unwrap_err(), JwtError::UnknownKey);
    }
    assert_eq!(server.hits(), 1, "within 10 s of the last fetch, no refetch");
    let t = mint(&a, "RS256", "made-up-x", &c);
    assert_eq!(v.verify(&t, at(10)).await.unwrap_err(), JwtError::UnknownKey);
    assert_eq!(server.hits(), 2, "after 10 s, one refetch");
    assert_eq!(v.verify(&t, at(15)).await.unwrap_err(), JwtError::UnknownKey);
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn outage_keeps_the_last_good_keys_and_a_fresh_cache_reports_idp_unavailable() {
    recorder::install();
    let a = Signer::rsa("rsa2048-a");
    let server = TestServer::serving(Arc::new(Mutex::new(jwks(&[a.jwk("a")])))).await;
    let iss = "https://outage.test";
    let mut p = remote_policy(iss, KeySource::Jwks { url: server.url("/jwks") });
    p.fetch.http.timeout = Duration::from_millis(300);
    let v = Verifier::new(p).unwrap();
    let c = claims_for(iss);
    v.verify(&mint(&a, "RS256", "a", &c), at(0)).await.unwrap();
    // The identity provider goes dark: connections hang until the fetch timeout.
    server.stop();

    // New tokens (not in the token cache) still verify with the cached keys.
    let metric = format!("portcullis_idp_fetch_errors_total{{issuer={iss}}}");
    let mut c2 = c.clone();
    c2["sub"] = json!("bob");
    v.verify(&mint(&a, "RS256", "a", &c2), at(100)).await.unwrap();
    // A refresh during the outage fails, is counted, and keeps the keys.
    let before = recorder::counter(&metric);
    assert!(v.jwks().unwrap().refresh(at(101)).await.is_ok());
    assert_eq!(recorder::counter(&metric), before + 1);
    // An unknown kid during the outage is a 401 (we have keys), not a 503.
    let err = v.verify(&mint(&a, "RS256", "other", &c), at(200)).await.unwrap_err();
    assert_eq!(err, JwtError::UnknownKey);
    assert!(!err.is_unavailable());
    assert_eq!(recorder::counter(&metric), before + 2);

    // A verifier that never fetched a key set, its identity provider refusing connections
    // (nothing listens on port 1): 503, counted.
    let fresh_iss = "https://fresh-outage.test";
    let fresh = verifier_for(fresh_iss, "http://127.0.0.1:1/jwks".into());
    let fresh_metric = format!("portcullis_idp_fetch_errors_total{{issuer={fresh_iss}}}");
    let err = fresh.verify(&mint(&a, "RS256", "a", &claims_for(fresh_iss)), at(0)).await.unwrap_err();
    assert_eq!(err, JwtError::IdpUnavailable);
    assert!(err.is_unavailable());
    assert_eq!(recorder::counter(&fresh_metric), 1);
    // Within the rate-limit interval it answers at once, without another attempt.
    let err = fresh.verify(&mint(&a, "RS256", "a", &claims_for(fresh_iss)), at(5)).await.unwrap_err();
    assert_eq!(err, JwtError::IdpUnavailable);
    assert_eq!(recorder::counter(&fresh_metric), 1);
}

/// A server whose answers wait until the test opens the gate; it reports each arrival.
async fn gated_server(
    doc: Arc<Mutex<String>>,
) -> (TestServer, Arc<tokio::sync::Semaphore>, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (arrived, arrivals) = tokio::sync::mpsc::unbounded_channel();
    let g = Arc::clone(&gate);
    let server = TestServer::start(Arc::new(move |_seen| {
        let doc = doc.lock().unwrap().clone();
        let g = Arc::clone(&g);
        let arrived = arrived.clone();
        Box::pin(async move {
            let _ = arrived.send(());
            g.acquire().await.unwrap().forget();
            (200, doc)
        })
    }))
    .await;
    (server, gate, arrivals)
}

#[tokio::test]
async fn concurrent_unknown_kids_cause_a_single_fetch() {
    let a = Signer::rsa("rsa2048-a");
    let b = Signer::rsa("rsa2048-b");
    let doc = Arc::new(Mutex::new(jwks(&[a.jwk("a")])));
    let (server, gate, mut arrivals) = gated_server(Arc::clone(&doc)).await;
    let iss = "https://singleflight.test";
    let v = Arc::new(verifier_for(iss, server.url("/jwks")));
    let c = claims_for(iss);
    const N: usize = 32;

    for (round, (signer, kid, when)) in [(&a, "a", 0), (&b, "b", 60)].into_iter().enumerate() {
        if round == 1 {
            *doc.lock().unwrap() = jwks(&[a.jwk("a"), b.jwk("b")]);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..N {
            let mut ci = c.clone();
            ci["jti"] = json!(format!("{round}-{i}"));
            let token = mint(signer, "RS256", kid, &ci);
            let v = Arc::clone(&v);
            tasks.spawn(async move { v.verify(&token, at(when)).await });
        }
        // The first request reached the server; everyone else is queued behind it.
        tokio::time::timeout(Duration::from_secs(10), arrivals.recv()).await.unwrap().unwrap();
        for _ in 0..N {
            tokio::task::yield_now().await;
        }
        gate.add_permits(N);
        while let Some(r) = tasks.join_next().await {
            r.unwrap().unwrap();
        }
        assert_eq!(server.hits(), round + 1, "round {round}: {N} concurrent verifications, one fetch");
    }
}

#[tokio::test]
async fn discovery_finds_the_jwks_uri_and_checks_the_issuer() {
    let a = Signer::p256();
    let keys = jwks(&[a.jwk("ec")]);
    let base: Arc<Mutex<String>> = Arc::default();
    let claimed_issuer: Arc<Mutex<Option<String>>> = Arc::default();
    let (b2, ci2) = (Arc::clone(&base), Arc::clone(&claimed_issuer));
    let server = TestServer::start(Arc::new(move |seen| {
        let base = b2.lock().unwrap().clone();
        let issuer = ci2.lock().unwrap().clone().unwrap_or_else(|| base.clone());
        let body = match seen.path.as_str() {
            "/.well-known/openid-configuration" => {
                json!({"issuer": issuer, "jwks_uri": format!("{base}/keys")}).to_string()
            }
            "/keys" => keys.clone(),
            _ => String::new(),
        };
        Box::pin(async move { if body.is_empty() { (404, body) } else { (200, body) } })
    }))
    .await;
    let issuer = server.url("");
    *base.lock().unwrap() = issuer.clone();
    let v = Verifier::new(remote_policy(&issuer, KeySource::Discovery { issuer_url: issuer.clone() })).unwrap();
    v.verify(&mint(&a, "ES256", "ec", &claims_for(&issuer)), at(0)).await.unwrap();
    assert_eq!(server.hits(), 2, "discovery document, then the key set");

    // A discovery document that names another issuer is not trusted.
    *claimed_issuer.lock().unwrap() = Some("https://evil.test".into());
    let v = Verifier::new(remote_policy(&issuer, KeySource::Discovery { issuer_url: issuer.clone() })).unwrap();
    let err = v.verify(&mint(&a, "ES256", "ec", &claims_for(&issuer)), at(0)).await.unwrap_err();
    assert_eq!(err, JwtError::IdpUnavailable);
}

#[tokio::test]
async fn https_with_an_extra_ca_file_and_not_without() {
    let a = Signer::rsa("rsa2048-a");
    let keys = jwks(&[a.jwk("a")]);
    let (server, ca_pem) = TestServer::start_tls(Arc::new(move |_| {
        let k = keys.clone();
        Box::pin(async move { (200, k) })
    }))
    .await;
    let url = format!("https://localhost:{}/jwks", server.addr.port());
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let iss = "https://tls.test";
    let token = mint(&a, "RS256", "a", &claims_for(iss));

    let untrusted = Verifier::new(remote_policy(iss, KeySource::Jwks { url: url.clone() })).unwrap();
    assert_eq!(untrusted.verify(&token, at(0)).await.unwrap_err(), JwtError::IdpUnavailable);

    let mut p = remote_policy(iss, KeySource::Jwks { url });
    p.fetch.http.extra_ca_file = Some(ca);
    Verifier::new(p).unwrap().verify(&token, at(0)).await.unwrap();
}

#[tokio::test]
async fn oversized_slow_and_broken_answers_are_failures() {
    let a = Signer::rsa("rsa2048-a");
    let token = |iss: &str| mint(&a, "RS256", "a", &claims_for(iss));
    let big = Arc::new(Mutex::new(format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(2 << 20))));
    let server = TestServer::serving(big).await;
    let v = verifier_for("https://big.test", server.url("/jwks"));
    assert_eq!(v.verify(&token("https://big.test"), at(0)).await.unwrap_err(), JwtError::IdpUnavailable);

    for body in ["not json", "{\"keys\": 5}", "{\"keys\": []}", "[1]"] {
        let server = TestServer::serving(Arc::new(Mutex::new(body.to_owned()))).await;
        let v = verifier_for("https://broken.test", server.url("/jwks"));
        assert_eq!(
            v.verify(&token("https://broken.test"), at(0)).await.unwrap_err(),
            JwtError::IdpUnavailable,
            "{body}"
        );
    }

    let status = TestServer::start(Arc::new(|_| Box::pin(async { (500, "{\"keys\":[]}".to_owned()) }))).await;
    let v = verifier_for("https://status.test", status.url("/jwks"));
    assert_eq!(v.verify(&token("https://status.test"), at(0)).await.unwrap_err(), JwtError::IdpUnavailable);

    // A server that never answers: the fetch times out.
    let (slow, _gate, _arrivals) = gated_server(Arc::new(Mutex::new(String::new()))).await;
    let mut p = remote_policy("https://slow.test", KeySource::Jwks { url: slow.url("/jwks") });
    p.fetch.http.timeout = Duration::from_millis(200);
    let v = Verifier::new(p).unwrap();
    assert_eq!(v.verify(&token("https://slow.test"), at(0)).await.unwrap_err(), JwtError::IdpUnavailable);
}

#[tokio::test]
async fn background_refresh_picks_up_new_keys() {
    let a = Signer::rsa("rsa2048-a");
    let b = Signer::rsa("rsa2048-b");
    let doc = Arc::new(Mutex::new(jwks(&[a.jwk("a")])));
    let server = TestServer::serving(Arc::clone(&doc)).await;
    let mut p = remote_policy("https://refresh.test", KeySource::Jwks { url: server.url("/jwks") });
    p.fetch.refresh_interval = Duration::from_millis(50);
    let v = Verifier::new(p).unwrap();
    let cache = Arc::clone(v.jwks().unwrap());
    let task = cache.spawn_refresher(Arc::new(SystemClock));
    // Bounded waits for a condition (the refresher runs on real time).
    async fn wait_for(cond: impl Fn() -> bool) -> bool {
        for _ in 0..500 {
            if cond() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
    assert!(wait_for(|| cache.current().is_some()).await, "the refresher fetches at start-up");
    assert!(!cache.current().unwrap().contains_kid("b"));
    *doc.lock().unwrap() = jwks(&[a.jwk("a"), b.jwk("b")]);
    let found = wait_for(|| cache.current().is_some_and(|k| k.contains_kid("b"))).await;
    task.abort();
    assert!(found, "the background refresh did not pick up the new key");
    assert!(server.hits() >= 2);
}

#[test]
fn plain_http_is_refused_except_to_loopback() {
    let iss = "https://cfg.test";
    let err = Verifier::new(remote_policy(iss, KeySource::Jwks { url: "http://idp.example/jwks".into() })).unwrap_err();
    assert!(matches!(err, JwtError::Config(_)), "{err}");
    assert!(Verifier::new(remote_policy(iss, KeySource::Jwks { url: "http://127.0.0.1:1/jwks".into() })).is_ok());
    assert!(Verifier::new(remote_policy(iss, KeySource::Jwks { url: "https://idp.example/jwks".into() })).is_ok());
    let mut p = remote_policy(iss, KeySource::Jwks { url: "http://idp.example/jwks".into() });
    p.fetch.http.danger_allow_http = true;
    assert!(Verifier::new(p).is_ok());
    // One remote source per issuer, and never for HMAC.
    let two = IssuerPolicy::new(
        iss,
        vec![AUD.into()],
        vec![Alg::Rs256],
        vec![
            KeySource::Jwks { url: "https://a.example/jwks".into() },
            KeySource::Discovery { issuer_url: "https://b.example".into() },
        ],
    );
    assert!(matches!(Verifier::new(two), Err(JwtError::Config(_))));
    let hmac = IssuerPolicy::new(
        iss,
        vec![AUD.into()],
        vec![Alg::Hs256],
        vec![KeySource::Jwks { url: "https://a.example/jwks".into() }],
    );
    assert!(matches!(Verifier::new(hmac), Err(JwtError::Config(_))));
}
