//! Every verification rule with an accept and a reject case, and the attacks of issue 3.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]

mod jwt_support;

use std::time::Duration;

use jwt_support::*;
use portcullis_identity::jwt::{
    self, Alg, IssuerPolicy, JwkSet, JwtError, KeySource, TokenSource, Verifier, b64, verify_signature,
};
use serde_json::{Value, json};

fn set_of(keys: &[Value]) -> JwkSet {
    JwkSet::from_json(&json!({ "keys": keys }).to_string()).unwrap()
}

fn policy(keys: JwkSet, algs: &[Alg]) -> IssuerPolicy {
    IssuerPolicy::new(ISS, vec![AUD.into()], algs.to_vec(), vec![KeySource::Static(keys)])
}

fn verifier(keys: JwkSet, algs: &[Alg]) -> Verifier {
    Verifier::new(policy(keys, algs)).unwrap()
}

fn hmac_verifier(key: &[u8], algs: &[Alg]) -> Verifier {
    let jwks = json!({"keys": [{"kty": "oct", "kid": "hs-1", "k": b64::encode(key)}]}).to_string();
    verifier(JwkSet::from_secret_json(&secret(&jwks)).unwrap(), algs)
}

fn rsa() -> (Signer, Verifier) {
    let s = Signer::rsa("rsa2048-a");
    let v = verifier(set_of(&[s.jwk("rsa-1")]), &[Alg::Rs256]);
    (s, v)
}

async fn check(v: &Verifier, token: &str) -> Result<jwt::VerifiedToken, JwtError> {
    v.verify(token, t0()).await
}

/// An error's text must never echo the token or any of its segments.
fn assert_quiet(err: &JwtError, token: &str) {
    let text = format!("{err} {err:?}");
    for part in token.split('.').filter(|p| p.len() > 8) {
        assert!(!text.contains(part), "error text leaks the token: {text}");
    }
}

async fn rejects(v: &Verifier, token: &str, want: JwtError) {
    let err = check(v, token).await.expect_err("token must be rejected");
    assert_eq!(err, want);
    assert_quiet(&err, token);
}

const HMAC_KEY: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn accepts_every_supported_algorithm() {
    let claims = good_claims(t0());
    let rsa = Signer::rsa("rsa2048-a");
    for alg in [Alg::Rs256, Alg::Rs384, Alg::Rs512, Alg::Ps256, Alg::Ps384, Alg::Ps512] {
        let v = verifier(set_of(&[rsa.jwk("r")]), &[alg]);
        let t = check(&v, &mint(&rsa, alg.name(), "r", &claims)).await.unwrap();
        assert_eq!(t.source(), &TokenSource::Jwt { alg, kid: Some("r".into()) });
    }
    for (signer, alg) in [(Signer::p256(), Alg::Es256), (Signer::p384(), Alg::Es384), (Signer::ed25519(), Alg::EdDsa)] {
        let v = verifier(set_of(&[signer.jwk("k")]), &[alg]);
        check(&v, &mint(&signer, alg.name(), "k", &claims)).await.unwrap();
    }
    let h = Signer::Hmac(HMAC_KEY.to_vec());
    for alg in [Alg::Hs256, Alg::Hs384, Alg::Hs512] {
        let v = hmac_verifier(HMAC_KEY, &[alg]);
        check(&v, &mint(&h, alg.name(), "hs-1", &claims)).await.unwrap();
    }
}

#[tokio::test]
async fn exposes_subject_scopes_audiences_client_and_raw_claims() {
    let (s, v) = rsa();
    let mut c = good_claims(t0());
    c["scp"] = json!(["admin", "orders:read"]);
    c["aud"] = json!(["other", AUD]);
    let t = check(&v, &mint(&s, "RS256", "rsa-1", &c)).await.unwrap();
    assert_eq!(t.subject(), Some("alice"));
    assert_eq!(t.issuer(), Some(ISS));
    assert_eq!(t.audiences(), ["other", AUD]);
    assert_eq!(t.scopes(), ["orders:read", "orders:write", "admin"]);
    assert_eq!(t.client_id(), Some("web-app"));
    assert_eq!(t.claims()["tenant"], "acme");
    assert_eq!(t.expires_at(), Some(t0() + Duration::from_secs(600)));

    let mut c = good_claims(t0());
    c.as_object_mut().unwrap().remove("client_id");
    c.as_object_mut().unwrap().remove("scope");
    c["azp"] = json!("mobile");
    c["scp"] = json!("a b");
    let t = check(&v, &mint(&s, "RS256", "rsa-1", &c)).await.unwrap();
    assert_eq!(t.client_id(), Some("mobile"));
    assert_eq!(t.scopes(), ["a", "b"]);
    assert!(t.has_scope("a") && !t.has_scope("c"));

    c["scope"] = json!(42);
    rejects(&v, &mint(&s, "RS256", "rsa-1", &c), JwtError::InvalidClaim("scope")).await;
}

#[tokio::test]
async fn alg_none_is_refused_in_any_casing() {
    let (s, v) = rsa();
    let claims = good_claims(t0());
    for none in ["none", "None", "NONE", "nOnE"] {
        let input = signing_input(&json!({"alg": none, "kid": "rsa-1"}), &claims);
        rejects(&v, &format!("{input}."), JwtError::Malformed("empty header or signature segment")).await;
        let with_sig = format!("{input}.{}", b64::encode(&s.sign("RS256", input.as_bytes())));
        rejects(&v, &with_sig, JwtError::AlgNone).await;
    }
    let input = signing_input(&json!({"kid": "rsa-1"}), &claims);
    let token = format!("{input}.{}", b64::encode(&s.sign("RS256", input.as_bytes())));
    rejects(&v, &token, JwtError::Malformed("alg is missing")).await;
    let input = signing_input(&json!({"alg": "rs256", "kid": "rsa-1"}), &claims);
    let token = format!("{input}.{}", b64::encode(&s.sign("RS256", input.as_bytes())));
    rejects(&v, &token, JwtError::UnsupportedAlg).await;
}

#[tokio::test]
async fn alg_must_be_in_the_allow_list() {
    let s = Signer::rsa("rsa2048-a");
    let token = mint(&s, "PS256", "rsa-1", &good_claims(t0()));
    let only_rs = verifier(set_of(&[s.jwk("rsa-1")]), &[Alg::Rs256]);
    rejects(&only_rs, &token, JwtError::AlgNotAllowed(Alg::Ps256)).await;
    let both = verifier(set_of(&[s.jwk("rsa-1")]), &[Alg::Rs256, Alg::Ps256]);
    check(&both, &token).await.unwrap();
}

#[tokio::test]
async fn hmac_signed_with_the_issuers_public_key_is_refused() {
    let claims = good_claims(t0());
    for (signer, alg) in [(Signer::rsa("rsa2048-a"), Alg::Rs256), (Signer::p256(), Alg::Es256)] {
        let keys = set_of(&[signer.jwk("pub-1")]);
        let v = verifier(keys.clone(), &[alg]);
        for public in signer.public_bytes() {
            let forged = mint(&Signer::Hmac(public.clone()), "HS256", "pub-1", &claims);
            // Not in the allow-list…
            rejects(&v, &forged, JwtError::AlgNotAllowed(Alg::Hs256)).await;
            // …and a policy that would allow both is refused outright…
            let mixed = Verifier::new(policy(keys.clone(), &[alg, Alg::Hs256])).unwrap_err();
            assert!(matches!(mixed, JwtError::Config(_)), "{mixed}");
            assert!(matches!(verify_signature(&forged, &keys, &[alg, Alg::Hs256], 8192), Err(JwtError::Config(_))));
            // …and even with HS256 alone, a public key never serves as an HMAC secret.
            assert!(matches!(Verifier::new(policy(keys.clone(), &[Alg::Hs256])), Err(JwtError::Config(_))));
            assert_eq!(
                verify_signature(&forged, &keys, &[Alg::Hs256], 8192).unwrap_err(),
                JwtError::KeyAlgMismatch(Alg::Hs256)
            );
        }
        // The genuine token still verifies.
        check(&v, &mint(&signer, alg.name(), "pub-1", &claims)).await.unwrap();
    }
}

#[tokio::test]
async fn key_type_curve_and_declared_alg_must_fit() {
    let rsa = Signer::rsa("rsa2048-a");
    let ec = Signer::p256();
    let claims = good_claims(t0());
    // An ES256 token naming the RSA key's kid.
    let v = verifier(set_of(&[rsa.jwk("rsa-1"), ec.jwk("ec-1")]), &[Alg::Rs256, Alg::Es256]);
    rejects(&v, &mint(&ec, "ES256", "rsa-1", &claims), JwtError::KeyAlgMismatch(Alg::Es256)).await;
    check(&v, &mint(&ec, "ES256", "ec-1", &claims)).await.unwrap();
    // An ES384 token naming a P-256 key.
    let v = verifier(set_of(&[ec.jwk("ec-1")]), &[Alg::Es256, Alg::Es384]);
    rejects(&v, &mint(&Signer::p384(), "ES384", "ec-1", &claims), JwtError::KeyAlgMismatch(Alg::Es384)).await;
    // A JWK that declares RS256 cannot verify PS256, even when both are allowed.
    let mut declared = rsa.jwk("rsa-1");
    declared["alg"] = json!("RS256");
    let v = verifier(set_of(&[declared]), &[Alg::Rs256, Alg::Ps256]);
    rejects(&v, &mint(&rsa, "PS256", "rsa-1", &claims), JwtError::KeyAlgMismatch(Alg::Ps256)).await;
    check(&v, &mint(&rsa, "RS256", "rsa-1", &claims)).await.unwrap();
}

#[tokio::test]
async fn crit_is_refused() {
    let (s, v) = rsa();
    let c = good_claims(t0());
    for crit in [json!(["exp"]), json!(["b64"]), json!([]), json!("x")] {
        let token = mint_with_header(&s, &json!({"alg": "RS256", "kid": "rsa-1", "crit": crit, "exp": 1}), &c);
        rejects(&v, &token, JwtError::UnknownCrit).await;
    }
    check(&v, &mint_with_header(&s, &json!({"alg": "RS256", "kid": "rsa-1"}), &c)).await.unwrap();
}

#[tokio::test]
async fn embedded_keys_and_key_urls_are_refused() {
    let (s, v) = rsa();
    let attacker = Signer::rsa("rsa2048-b");
    let c = good_claims(t0());
    let header = json!({"alg": "RS256", "kid": "rsa-1", "jwk": attacker.jwk("rsa-1")});
    rejects(&v, &mint_with_header(&attacker, &header, &c), JwtError::ForbiddenHeader("jwk")).await;
    for (name, url) in [("jku", "https://evil.example/jwks.json"), ("x5u", "https://evil.example/cert.pem")] {
        let header = json!({"alg": "RS256", "kid": "rsa-1", name: url});
        rejects(&v, &mint_with_header(&attacker, &header, &c), JwtError::ForbiddenHeader(name)).await;
        // Even signed with our own key, the header is refused.
        let header = json!({"alg": "RS256", "kid": "rsa-1", name: url});
        let own = mint_with_header(&s, &header, &c);
        assert!(matches!(check(&v, &own).await, Err(JwtError::ForbiddenHeader(_))));
    }
    // x5c is tolerated but never used: the attacker's chain does not make their signature good…
    let header = json!({"alg": "RS256", "kid": "rsa-1", "x5c": ["MIIBfake"]});
    rejects(&v, &mint_with_header(&attacker, &header, &c), JwtError::BadSignature).await;
    // …and our own token carrying one still verifies against our key.
    check(&v, &mint_with_header(&s, &header, &c)).await.unwrap();
}

#[tokio::test]
async fn kid_is_only_a_map_key() {
    let (s, v) = rsa();
    let c = good_claims(t0());
    for kid in ["../../dev/null", "/dev/null", "x' OR '1'='1", "rsa-1' --", "", "rsa-1\0", "RSA-1", "*"] {
        rejects(&v, &mint(&s, "RS256", kid, &c), JwtError::UnknownKey).await;
    }
    // The classic /dev/null attack: an HMAC over the empty key, kid pointing at /dev/null.
    let h = hmac_verifier(HMAC_KEY, &[Alg::Hs256]);
    let forged = mint(&Signer::Hmac(Vec::new()), "HS256", "../../../../../../dev/null", &c);
    rejects(&h, &forged, JwtError::UnknownKey).await;
    let forged = mint(&Signer::Hmac(Vec::new()), "HS256", "hs-1", &c);
    rejects(&h, &forged, JwtError::BadSignature).await;
    check(&v, &mint(&s, "RS256", "rsa-1", &c)).await.unwrap();
}

#[tokio::test]
async fn kid_may_be_absent_only_when_one_key_fits() {
    let a = Signer::rsa("rsa2048-a");
    let b = Signer::rsa("rsa2048-b");
    let c = good_claims(t0());
    let no_kid = |s: &Signer| mint_with_header(s, &json!({"alg": "RS256"}), &c);
    let one = verifier(set_of(&[a.jwk("a")]), &[Alg::Rs256]);
    check(&one, &no_kid(&a)).await.unwrap();
    let two = verifier(set_of(&[a.jwk("a"), b.jwk("b")]), &[Alg::Rs256]);
    rejects(&two, &no_kid(&a), JwtError::AmbiguousKey).await;
    check(&two, &mint(&b, "RS256", "b", &c)).await.unwrap();
}

#[tokio::test]
async fn psychic_signature_fails() {
    let c = good_claims(t0());
    for (signer, alg, len) in [(Signer::p256(), "ES256", 64), (Signer::p384(), "ES384", 96)] {
        let v = verifier(set_of(&[signer.jwk("ec")]), &[Alg::from_name(alg).unwrap()]);
        let input = signing_input(&json!({"alg": alg, "kid": "ec"}), &c);
        rejects(&v, &format!("{input}.{}", b64::encode(&vec![0u8; len])), JwtError::BadSignature).await;
        // r = 0, s = 1 fails too; a genuine fixed-form signature passes.
        let mut r0s1 = vec![0u8; len];
        r0s1[len - 1] = 1;
        rejects(&v, &format!("{input}.{}", b64::encode(&r0s1)), JwtError::BadSignature).await;
        check(&v, &format!("{input}.{}", b64::encode(&signer.sign(alg, input.as_bytes())))).await.unwrap();
    }
}

#[tokio::test]
async fn expiry_not_before_and_issued_at_with_leeway() {
    let (s, v) = rsa();
    let n = secs(t0());
    let with = |k: &str, val: Value| {
        let mut c = good_claims(t0());
        c[k] = val;
        mint(&s, "RS256", "rsa-1", &c)
    };
    rejects(&v, &with("exp", json!(n - 61)), JwtError::Expired).await;
    rejects(&v, &with("exp", json!(n - 60)), JwtError::Expired).await;
    check(&v, &with("exp", json!(n - 59))).await.unwrap();
    check(&v, &with("exp", json!(n as f64 + 0.5))).await.unwrap();
    rejects(&v, &with("exp", json!("soon")), JwtError::InvalidClaim("exp")).await;
    rejects(&v, &with("exp", json!(-5)), JwtError::InvalidClaim("exp")).await;
    rejects(&v, &with("nbf", json!(n + 61)), JwtError::NotYetValid).await;
    check(&v, &with("nbf", json!(n + 30))).await.unwrap();
    rejects(&v, &with("iat", json!(n + 120)), JwtError::IssuedInFuture).await;
    check(&v, &with("iat", json!(n + 30))).await.unwrap();

    let mut c = good_claims(t0());
    c.as_object_mut().unwrap().remove("exp");
    let no_exp = mint(&s, "RS256", "rsa-1", &c);
    rejects(&v, &no_exp, JwtError::MissingClaim("exp")).await;
    let mut p = policy(set_of(&[s.jwk("rsa-1")]), &[Alg::Rs256]);
    p.require_exp = false;
    check(&Verifier::new(p).unwrap(), &no_exp).await.unwrap();

    let mut p = policy(set_of(&[s.jwk("rsa-1")]), &[Alg::Rs256]);
    p.leeway = Duration::ZERO;
    let strict = Verifier::new(p).unwrap();
    rejects(&strict, &with("exp", json!(n)), JwtError::Expired).await;
    check(&strict, &with("exp", json!(n + 1))).await.unwrap();
}

#[tokio::test]
async fn issuer_and_audience_are_required() {
    let (s, v) = rsa();
    let with = |k: &str, val: Option<Value>| {
        let mut c = good_claims(t0());
        match val {
            Some(val) => c[k] = val,
            None => {
                c.as_object_mut().unwrap().remove(k);
            }
        }
        mint(&s, "RS256", "rsa-1", &c)
    };
    rejects(&v, &with("iss", Some(json!("https://evil.test"))), JwtError::WrongIssuer).await;
    rejects(&v, &with("iss", Some(json!("https://idp.test/"))), JwtError::WrongIssuer).await;
    rejects(&v, &with("iss", None), JwtError::MissingClaim("iss")).await;
    rejects(&v, &with("iss", Some(json!(["https://idp.test"]))), JwtError::InvalidClaim("iss")).await;
    rejects(&v, &with("aud", Some(json!("billing-api"))), JwtError::WrongAudience).await;
    rejects(&v, &with("aud", Some(json!(["billing-api", "x"]))), JwtError::WrongAudience).await;
    rejects(&v, &with("aud", Some(json!([]))), JwtError::WrongAudience).await;
    rejects(&v, &with("aud", None), JwtError::MissingClaim("aud")).await;
    rejects(&v, &with("aud", Some(json!(7))), JwtError::InvalidClaim("aud")).await;
    check(&v, &with("aud", Some(json!(["billing-api", AUD])))).await.unwrap();
    rejects(&v, &with("sub", Some(json!({"id": 1}))), JwtError::InvalidClaim("sub")).await;
}

#[tokio::test]
async fn tampering_breaks_the_signature() {
    let (s, v) = rsa();
    let token = mint(&s, "RS256", "rsa-1", &good_claims(t0()));
    let parts: Vec<&str> = token.split('.').collect();
    let mut evil = good_claims(t0());
    evil["sub"] = json!("admin");
    let swapped = format!("{}.{}.{}", parts[0], b64::encode(evil.to_string().as_bytes()), parts[2]);
    rejects(&v, &swapped, JwtError::BadSignature).await;
    let header = b64::encode(br#"{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}"#);
    rejects(&v, &format!("{header}.{}.{}", parts[1], parts[2]), JwtError::BadSignature).await;
    let mut sig = b64::decode(parts[2].as_bytes()).unwrap();
    sig[10] ^= 1;
    rejects(&v, &format!("{}.{}.{}", parts[0], parts[1], b64::encode(&sig)), JwtError::BadSignature).await;
    sig[10] ^= 1;
    sig.push(0);
    rejects(&v, &format!("{}.{}.{}", parts[0], parts[1], b64::encode(&sig)), JwtError::BadSignature).await;
    check(&v, &token).await.unwrap();
}

#[tokio::test]
async fn malformed_tokens_are_refused_without_panicking() {
    let (s, v) = rsa();
    let token = mint(&s, "RS256", "rsa-1", &good_claims(t0()));
    let p: Vec<&str> = token.split('.').collect();
    let cases = [
        String::new(),
        "a".into(),
        "a.b".into(),
        format!("{}.{}", p[0], p[1]),
        format!("{token}."),
        format!("{token}.{}", p[2]),
        format!(".{}.{}", p[1], p[2]),
        format!("{}=.{}.{}", p[0], p[1], p[2]),
        format!("{}.{}.{}=", p[0], p[1], p[2]),
        format!("{} .{}.{}", p[0], p[1], p[2]),
        format!("{}.{}.{}", p[0].replace('J', "+"), p[1], p[2]),
        format!("{}.{}.{}", p[0], p[1], p[2].replacen('A', "/", 1)),
        format!("{}.{}.{}", b64::encode(b"not json"), p[1], p[2]),
        format!("{}.{}.{}", b64::encode(b"[\"RS256\"]"), p[1], p[2]),
        format!("{}.{}.{}", b64::encode(&[0xff, 0xfe, 0x7b]), p[1], p[2]),
        "\u{1F600}.\u{1F600}.\u{1F600}".into(),
    ];
    for bad in &cases {
        let err = check(&v, bad).await.expect_err(bad);
        assert!(matches!(err, JwtError::Malformed(_)), "{bad:?}: {err:?}");
        assert_quiet(&err, bad);
    }
    // Correctly signed, but the payload is not a JSON object, or repeats a member.
    for payload in [&b"[1,2]"[..], b"\"str\"", b"", b"{\"exp\":1}{}", br#"{"exp":1,"exp":99999999999}"#] {
        let input = format!("{}.{}", b64::encode(br#"{"alg":"RS256","kid":"rsa-1"}"#), b64::encode(payload));
        let t = format!("{input}.{}", b64::encode(&s.sign("RS256", input.as_bytes())));
        rejects(&v, &t, JwtError::Malformed("payload is not a JSON object")).await;
    }
    // A header that repeats alg (a parser-differential trick).
    let header = br#"{"alg":"none","alg":"RS256","kid":"rsa-1"}"#;
    let input = format!("{}.{}", b64::encode(header), b64::encode(good_claims(t0()).to_string().as_bytes()));
    let t = format!("{input}.{}", b64::encode(&s.sign("RS256", input.as_bytes())));
    rejects(&v, &t, JwtError::Malformed("header is not a JSON object")).await;
}

#[tokio::test]
async fn oversized_tokens_are_refused_before_decoding() {
    let (s, v) = rsa();
    let mut c = good_claims(t0());
    c["pad"] = json!("x".repeat(9000));
    let big = mint(&s, "RS256", "rsa-1", &c);
    rejects(&v, &big, JwtError::TooLarge { max: 8192 }).await;
    // Garbage of the same size is refused for its size, not its shape.
    rejects(&v, &"!".repeat(8193), JwtError::TooLarge { max: 8192 }).await;
    let mut p = policy(set_of(&[s.jwk("rsa-1")]), &[Alg::Rs256]);
    p.max_token_bytes = 64 * 1024;
    check(&Verifier::new(p).unwrap(), &big).await.unwrap();
}

#[tokio::test]
async fn every_single_character_change_is_rejected() {
    let (s, v) = rsa();
    let token = mint(&s, "RS256", "rsa-1", &good_claims(t0()));
    let alphabet = b"Aa0-_.=+/ ";
    let bytes = token.as_bytes();
    for i in (0..bytes.len()).step_by(3) {
        for &c in alphabet.iter().filter(|&&c| c != bytes[i]) {
            let mut changed = bytes.to_vec();
            changed[i] = c;
            let changed = String::from_utf8(changed).unwrap();
            assert!(check(&v, &changed).await.is_err(), "accepted a token changed at {i}");
        }
    }
}

#[test]
fn weak_and_ambiguous_keys_are_skipped() {
    let wyche = wycheproof("json_web_key_test.json");
    let small =
        wyche["testGroups"].as_array().unwrap().iter().find(|g| g["comment"] == "keysize_too_small").unwrap()["public"]
            .clone();
    let set = JwkSet::from_json(&small.to_string()).unwrap();
    assert!(set.is_empty());
    assert_eq!(set.skipped()[0].reason, "RSA modulus shorter than 2048 bits");
    assert!(matches!(Verifier::new(policy(set, &[Alg::Rs256])), Err(JwtError::Config(_))));

    let a = Signer::rsa("rsa2048-a");
    let b = Signer::rsa("rsa2048-b");
    let set = set_of(&[a.jwk("same"), b.jwk("same"), a.jwk("other")]);
    assert_eq!(set.len(), 1);
    assert!(!set.contains_kid("same"));
    assert!(set.skipped().iter().any(|s| s.reason == "duplicate kid"));

    let oct = json!({"keys": [{"kty": "oct", "kid": "h", "k": b64::encode(HMAC_KEY)}, a.jwk("r")]}).to_string();
    let public = JwkSet::from_json(&oct).unwrap();
    assert_eq!(public.len(), 1, "a published key set never yields a shared secret");
    assert!(matches!(JwkSet::from_secret_json(&secret(&oct)), Err(jwt::JwkError::MixedKeySet)));
    let short = json!({"keys": [{"kty": "oct", "kid": "h", "k": b64::encode(&HMAC_KEY[..31])}]}).to_string();
    assert!(JwkSet::from_secret_json(&secret(&short)).unwrap().is_empty());
    let hs512 = json!({"keys": [{"kty": "oct", "kid": "h", "alg": "HS512", "k": b64::encode(&HMAC_KEY[..48])}]});
    assert!(JwkSet::from_secret_json(&secret(&hs512.to_string())).unwrap().is_empty());
    let hs = jwt::Jwk::hmac(Some("k"), Some(Alg::Hs384), &secret(&"s".repeat(48))).unwrap();
    assert!(!format!("{hs:?}").contains("sss"), "Debug must not print the secret");

    let mut enc = a.jwk("enc");
    enc["use"] = json!("enc");
    let mut ops = a.jwk("ops");
    ops["key_ops"] = json!(["encrypt"]);
    let mut wrong_alg = a.jwk("es");
    wrong_alg["alg"] = json!("ES256");
    let set = set_of(&[enc, ops, wrong_alg, json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}), json!(5)]);
    assert!(set.is_empty());
    assert_eq!(set.skipped().len(), 5);
}

#[tokio::test]
async fn verified_tokens_are_cached_until_exp_or_ttl() {
    let s = Signer::rsa("rsa2048-a");
    let mut p = policy(set_of(&[s.jwk("rsa-1")]), &[Alg::Rs256]);
    p.cache.ttl = Duration::from_secs(120);
    let v = Verifier::new(p).unwrap();
    let token = mint(&s, "RS256", "rsa-1", &good_claims(t0()));
    let first = check(&v, &token).await.unwrap();
    assert_eq!(v.cached_tokens(), 1);
    let again = check(&v, &token).await.unwrap();
    assert_eq!(first.claims(), again.claims());
    // Past the cache ttl: verified again (and still valid).
    v.verify(&token, t0() + Duration::from_secs(200)).await.unwrap();
    // Past exp + leeway: the cache never serves an expired token.
    assert_eq!(v.verify(&token, t0() + Duration::from_secs(661)).await.unwrap_err(), JwtError::Expired);
    v.verify(&token, t0() + Duration::from_secs(650)).await.unwrap();
    assert_eq!(v.verify(&token, t0() + Duration::from_secs(661)).await.unwrap_err(), JwtError::Expired);
    // A different token (one bit of signature) is not a hit.
    let mut bad = token.clone();
    bad.pop();
    bad.push(if token.ends_with('A') { 'E' } else { 'A' });
    assert!(check(&v, &bad).await.is_err());
}

#[tokio::test]
async fn typ_is_checked_when_the_policy_lists_it() {
    let s = Signer::rsa("rsa2048-a");
    let c = good_claims(t0());
    let mut p = policy(set_of(&[s.jwk("rsa-1")]), &[Alg::Rs256]);
    p.typ = vec!["at+jwt".into()];
    let v = Verifier::new(p).unwrap();
    for ok in ["at+jwt", "AT+JWT", "application/at+jwt"] {
        check(&v, &mint_with_header(&s, &json!({"alg": "RS256", "kid": "rsa-1", "typ": ok}), &c)).await.unwrap();
    }
    // An ID token (typ JWT) replayed as an access token, or no typ at all.
    rejects(&v, &mint(&s, "RS256", "rsa-1", &c), JwtError::WrongType).await;
    rejects(&v, &mint_with_header(&s, &json!({"alg": "RS256", "kid": "rsa-1"}), &c), JwtError::WrongType).await;
    // Without a typ list, typ is not checked.
    let (_, plain) = rsa();
    check(&plain, &mint_with_header(&s, &json!({"alg": "RS256", "kid": "rsa-1", "typ": "whatever"}), &c))
        .await
        .unwrap();
}

#[tokio::test]
async fn random_inputs_never_panic_and_never_pass() {
    use ring::rand::{SecureRandom, SystemRandom};
    let (s, v) = rsa();
    let valid = mint(&s, "RS256", "rsa-1", &good_claims(t0()));
    let rng = SystemRandom::new();
    let alphabet = b"eyJhbGciOiJSUzI1NiJ9.-_=+/ {}\"\\\0\xff";
    for _ in 0..2000 {
        let mut seed = [0u8; 64];
        rng.fill(&mut seed).unwrap();
        // Random strings over a JWS-ish alphabet, and random splices into a valid token.
        let random: String = seed.iter().map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()])).collect();
        let cut = usize::from(seed[0]) * valid.len() / 256;
        let insert: String = random.chars().take(usize::from(seed[1] % 8)).collect();
        let spliced = format!("{}{insert}{}", &valid[..cut], &valid[cut..]);
        for candidate in [random, spliced] {
            if candidate != valid {
                assert!(check(&v, &candidate).await.is_err(), "{candidate}");
            }
        }
    }
}
