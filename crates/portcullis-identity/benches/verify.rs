//! Token verification costs: RS256, ES256 and HS256 uncached, a cached token, and API key
//! hash + verify. Run: `cargo bench -p portcullis-identity --bench verify`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "benchmark set-up")]

#[path = "../tests/jwt_support/mod.rs"]
mod jwt_support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use jwt_support::*;
use portcullis_identity::apikey::{self, KeyEnv, KeyHasher};
use portcullis_identity::jwt::{Alg, IssuerPolicy, JwkSet, KeySource, Verifier, b64};
use serde_json::json;

fn verifier(keys: JwkSet, alg: Alg, cache: bool) -> Verifier {
    let mut p = IssuerPolicy::new(ISS, vec![AUD.into()], vec![alg], vec![KeySource::Static(keys)]);
    if !cache {
        p.cache.ttl = Duration::ZERO;
    }
    Verifier::new(p).unwrap()
}

fn public(signer: &Signer, kid: &str) -> JwkSet {
    JwkSet::from_json(&json!({ "keys": [signer.jwk(kid)] }).to_string()).unwrap()
}

fn bench(c: &mut Criterion) {
    let now = t0();
    let claims = good_claims(now);
    // `verify` never waits with a static key set, so one poll completes it.
    let run = |v: &Verifier, token: &str| v.verify(token, now).now_or_never().unwrap().unwrap();

    let rsa = Signer::rsa("rsa2048-a");
    let rs = verifier(public(&rsa, "r"), Alg::Rs256, false);
    let rs_token = mint(&rsa, "RS256", "r", &claims);
    c.bench_function("jwt_verify_rs256_uncached", |b| b.iter(|| run(&rs, black_box(&rs_token))));

    let ec = Signer::p256();
    let es = verifier(public(&ec, "e"), Alg::Es256, false);
    let es_token = mint(&ec, "ES256", "e", &claims);
    c.bench_function("jwt_verify_es256_uncached", |b| b.iter(|| run(&es, black_box(&es_token))));

    let key = b"0123456789abcdef0123456789abcdef";
    let hs_keys = json!({"keys": [{"kty": "oct", "kid": "h", "k": b64::encode(key)}]}).to_string();
    let hs = verifier(JwkSet::from_secret_json(&secret(&hs_keys)).unwrap(), Alg::Hs256, false);
    let hs_token = mint(&Signer::Hmac(key.to_vec()), "HS256", "h", &claims);
    c.bench_function("jwt_verify_hs256_uncached", |b| b.iter(|| run(&hs, black_box(&hs_token))));

    let cached = verifier(public(&rsa, "r"), Alg::Rs256, true);
    run(&cached, &rs_token);
    c.bench_function("jwt_verify_rs256_cached", |b| b.iter(|| run(&cached, black_box(&rs_token))));

    let hasher = KeyHasher::new(&secret("a server secret of at least 32 bytes!")).unwrap();
    let issued = apikey::generate(KeyEnv::Live).unwrap();
    let stored = hasher.hash(issued.expose());
    c.bench_function("apikey_parse_hash_verify", |b| {
        b.iter(|| {
            let k = black_box(issued.expose());
            apikey::parse(k).unwrap();
            let h = hasher.hash(k);
            assert!(hasher.verify(k, &stored) && h == stored);
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
