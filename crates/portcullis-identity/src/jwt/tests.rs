use std::time::Duration;

use super::*;

fn rsa_set() -> JwkSet {
    // A 2048-bit modulus-shaped value (odd, top bit set); only parsed, never used to verify.
    let mut n = vec![0xc5u8; 256];
    n[255] = 0x0b;
    let doc = serde_json::json!({"keys": [{"kty": "RSA", "kid": "r", "n": b64::encode(&n), "e": "AQAB"}]});
    JwkSet::from_json(&doc.to_string()).unwrap()
}

fn policy(algs: Vec<Alg>, keys: Vec<KeySource>) -> IssuerPolicy {
    IssuerPolicy::new("https://idp.test", vec!["api".into()], algs, keys)
}

#[test]
fn defaults_are_the_documented_ones() {
    let p = policy(vec![Alg::Rs256], vec![]);
    assert_eq!(p.leeway, Duration::from_secs(60));
    assert_eq!(p.max_token_bytes, 8192);
    assert!(p.require_exp);
    assert_eq!(p.fetch.refresh_interval, Duration::from_secs(300));
    assert_eq!(p.fetch.min_refetch_interval, Duration::from_secs(10));
    assert_eq!(p.fetch.http.max_response_bytes, 1 << 20);
    assert!(!p.fetch.http.danger_allow_http);
    assert_eq!(p.cache.ttl, Duration::from_secs(300));
}

#[test]
fn unusable_policies_are_refused_when_built() {
    let ok = policy(vec![Alg::Rs256], vec![KeySource::Static(rsa_set())]);
    assert!(Verifier::new(ok.clone()).is_ok());
    let cases = [
        IssuerPolicy { issuer: String::new(), ..ok.clone() },
        IssuerPolicy { audiences: vec![], ..ok.clone() },
        IssuerPolicy { algorithms: vec![], ..ok.clone() },
        IssuerPolicy { algorithms: vec![Alg::Rs256, Alg::Hs256], ..ok.clone() },
        IssuerPolicy { algorithms: vec![Alg::Hs512], ..ok.clone() },
        IssuerPolicy { keys: vec![], ..ok.clone() },
        IssuerPolicy { keys: vec![KeySource::Static(JwkSet::default())], ..ok.clone() },
    ];
    for (i, p) in cases.into_iter().enumerate() {
        assert!(matches!(Verifier::new(p), Err(JwtError::Config(_))), "case {i}");
    }
}

#[test]
fn errors_say_401_or_503() {
    assert!(JwtError::IdpUnavailable.is_unavailable());
    for e in [JwtError::Expired, JwtError::BadSignature, JwtError::UnknownKey, JwtError::AlgNone] {
        assert!(!e.is_unavailable());
    }
    assert_eq!(JwtError::TooLarge { max: 8 }.to_string(), "token larger than 8 bytes");
}
