//! Costs of the authentication primitives on the request path.
//!
//! `cargo bench -p portcullis-identity --bench signing -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "benchmark setup")]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_identity::basic::{Argon2Config, PasswordHasher};
use portcullis_identity::bruteforce::{FailureKey, FailureTracker, Policies};
use portcullis_identity::hmac_sig::{self, BodyDigest, DEFAULT_WINDOW, NonceCache, RequestParts};

const NOW: u64 = 1_767_225_600;

fn server_secret() -> portcullis_config::Secret {
    let dir = std::env::temp_dir().join(format!("pc-bench-signing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("s"), "0123456789abcdef0123456789abcdef-bench").unwrap();
    portcullis_config::resolve_secret("${file:s}", &dir).unwrap()
}

fn hmac(c: &mut Criterion) {
    let server = server_secret();
    let key_id = hmac_sig::new_key_id().unwrap();
    let salt = hmac_sig::new_salt().unwrap();
    let secret = hmac_sig::derive_signing_secret(&server, &key_id, &salt).unwrap();
    let (mut parts, ()) = http::Request::post("/v1/customers/1234/orders?expand=items&page=2")
        .header("host", "api.example.com")
        .header("content-type", "application/json")
        .header("user-agent", "bench/1.0")
        .body(())
        .unwrap()
        .into_parts();
    let body = vec![b'{'; 1024];
    let nonce = hmac_sig::new_nonce().unwrap();
    let params = hmac_sig::sign(
        &secret,
        &key_id,
        NOW,
        &nonce,
        &["host", "content-type"],
        RequestParts::from(&parts),
        &BodyDigest::of(&body),
    )
    .unwrap();
    parts.headers.insert(http::header::AUTHORIZATION, params.to_header_value().unwrap());
    let header = parts.headers[http::header::AUTHORIZATION].clone();

    c.bench_function("hmac/parse_authorization", |b| {
        b.iter(|| hmac_sig::parse_authorization(black_box(&header)).unwrap())
    });
    c.bench_function("hmac/derive_signing_secret", |b| {
        b.iter(|| hmac_sig::derive_signing_secret(&server, black_box(&key_id), black_box(&salt)).unwrap())
    });
    // What a pipeline stage does per request once the credential's salt is looked up.
    c.bench_function("hmac/verify_request_1KiB_body", |b| {
        b.iter(|| {
            let p = hmac_sig::parse_authorization(black_box(&header)).unwrap();
            let s = hmac_sig::derive_signing_secret(&server, &p.key_id, &salt).unwrap();
            let mut d = BodyDigest::new();
            d.update(black_box(&body));
            hmac_sig::verify(&s, &p, RequestParts::from(&parts), &d.finish(), NOW + 1, DEFAULT_WINDOW).unwrap();
        })
    });

    let cache = NonceCache::new(10_000_000, Duration::from_secs(10));
    let mut i: u64 = 0;
    c.bench_function("hmac/nonce_cache_insert", |b| {
        b.iter(|| {
            i += 1;
            // ~1000 requests a second of simulated time: the cache holds ~20k live entries.
            let n = format!("nonce-{i:016}");
            cache.check_and_insert("pchk_bench", &n, NOW + i / 1000)
        })
    });
}

fn argon2(c: &mut Criterion) {
    let hasher = PasswordHasher::new(Argon2Config::default()).unwrap();
    let stored = hasher.hash_password("correct horse battery staple").unwrap();
    let mut g = c.benchmark_group("basic");
    g.sample_size(10);
    g.bench_function("argon2id_verify_owasp_m19456_t2_p1", |b| {
        b.iter(|| assert!(hasher.verify_password(black_box("correct horse battery staple"), Some(&stored))))
    });
    g.bench_function("argon2id_verify_unknown_user", |b| {
        b.iter(|| assert!(!hasher.verify_password(black_box("correct horse battery staple"), None)))
    });
    g.finish();
}

fn bruteforce(c: &mut Criterion) {
    let tracker = FailureTracker::new(Policies::default());
    let mut i: u32 = 0;
    c.bench_function("bruteforce/record_failure_then_check", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let k = FailureKey::client_ip(std::net::IpAddr::from(std::net::Ipv4Addr::from(i % 50_000)));
            tracker.record_failure(&k, u64::from(i));
            tracker.check(&k, u64::from(i))
        })
    });
}

criterion_group!(benches, hmac, argon2, bruteforce);
criterion_main!(benches);
