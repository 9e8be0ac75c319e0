//! The per-request cost of identity on the hot path: the authentication and authorization stages
//! for an API key whose lookup is cached (the steady state), from header to identity headers.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark setup")]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_core::{RequestCtx, RequestId, Stage};
use portcullis_identity::admin::ConsumerSpec;
use portcullis_identity::apikey::KeyEnv;
use portcullis_identity::{AuthnStage, AuthzStage, IdentityService, route_policies};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.secret"), "a-benchmark-key-secret-of-32-bytes-or-more").unwrap();
    std::fs::write(dir.path().join("sign.secret"), "a-benchmark-signing-secret-0123456789").unwrap();
    let yaml = r#"
listeners: [{ name: public, bind: "127.0.0.1:0" }]
upstreams: { up: { targets: ["http://127.0.0.1:9"] } }
identity:
  store: { sqlite: { path: ids.db } }
  key_secret: "${file:key.secret}"
  upstream_signing_secret: "${file:sign.secret}"
routes:
  - name: orders
    path: /customers/{customerId}/orders
    upstream: up
    policy: { auth: { methods: [api_key], scopes: [orders:read], owner: [{ path_param: customerId, equals: org_name }] } }
"#;
    let config = portcullis_config::from_yaml(yaml, dir.path()).unwrap();
    let (svc, key) = rt.block_on(async {
        let svc = IdentityService::start(config.identity.clone().unwrap()).await.unwrap();
        svc.create_org("b", "acme", None).await.unwrap();
        svc.create_consumer(
            "b",
            ConsumerSpec {
                org: "acme".into(),
                name: "acme-billing".into(),
                scopes: vec!["orders:read".into()],
                ..ConsumerSpec::default()
            },
        )
        .await
        .unwrap();
        let k = svc.issue_api_key("b", "acme-billing", None, None, None, KeyEnv::Live).await.unwrap();
        (svc, k.key.expose().to_owned())
    });
    let routes = route_policies(&config);
    let authn = AuthnStage::new(svc.clone(), routes.clone());
    let authz = AuthzStage::new(&svc, routes);
    let route: Arc<str> = Arc::from("orders");
    let one = |key: &str| {
        let req = http::Request::get("/customers/acme/orders").header("x-api-key", key).body(()).unwrap();
        let (mut parts, ()) = req.into_parts();
        let mut ctx =
            RequestCtx::new(RequestId::generate(), "127.0.0.1:1".parse().unwrap(), Arc::from("public"), false);
        ctx.route = Some(route.clone());
        ctx.path = "/customers/acme/orders".into();
        rt.block_on(async {
            let a = authn.on_request(&mut parts, &mut ctx).await.unwrap();
            let b = authz.on_request(&mut parts, &mut ctx).await.unwrap();
            (a, b, ctx.upstream_headers.len())
        })
    };
    // Warm the cache, and check the bench measures the accepted path.
    let (a, b, n) = one(&key);
    assert!(matches!(a, portcullis_core::Flow::Continue) && matches!(b, portcullis_core::Flow::Continue) && n >= 6);

    let mut g = c.benchmark_group("identity_stage");
    g.bench_function("api_key_cached_authn_authz", |bn| bn.iter(|| black_box(one(black_box(&key)))));
    g.bench_function("request_ctx_only_baseline", |bn| {
        bn.iter(|| {
            let req = http::Request::get("/customers/acme/orders").header("x-api-key", &key).body(()).unwrap();
            let (parts, ()) = req.into_parts();
            let ctx =
                RequestCtx::new(RequestId::generate(), "127.0.0.1:1".parse().unwrap(), Arc::from("public"), false);
            black_box((parts, ctx))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
