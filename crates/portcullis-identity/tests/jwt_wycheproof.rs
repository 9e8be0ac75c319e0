//! Wycheproof JWS, JWK and ECDSA P-256 (IEEE P1363) vectors. Every "invalid" vector must be
//! rejected. "Valid" vectors must be accepted, except a short, named list of ones we refuse on
//! purpose or cannot support; that list is asserted exactly, so a change either way shows.
//!
//! The corpus lives in `/work/shared/corpora/wycheproof` (found relative to this crate, from any
//! checkout next to `shared/`); if it is missing the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]

mod jwt_support;

use std::collections::BTreeMap;

use jwt_support::{secret, wycheproof};
use portcullis_identity::jwt::{Alg, JwkSet, b64, check_signature, verify_signature};
use serde_json::{Value, json};

/// Valid vectors we refuse, by tcId, and why.
fn refused_valid_jws() -> BTreeMap<u64, &'static str> {
    BTreeMap::from([
        (347, "ES512 on P-521 is not supported (ring has no P-521)"),
        (351, "ES512 on P-521 is not supported (ring has no P-521)"),
        (346, "the JWK declares PS256, the token says PS384: a declared alg must match"),
        (350, "the JWK declares PS256, the token says PS384: a declared alg must match"),
        (372, "strict base64url: a '?' inside the header segment is not skipped"),
        (373, "strict base64url: a '?' inside the payload segment is not skipped"),
    ])
}

/// Invalid vectors whose token is byte-for-byte a valid vector's token in this copy of the
/// corpus (their padding was evidently lost): accepting them is right. Their padded forms are
/// checked separately below.
fn identical_to_valid() -> BTreeMap<u64, u64> {
    BTreeMap::from([(367, 357), (370, 357)])
}

/// The allow-list for a key: its `alg`, or the usual one for its type.
fn alg_for(key: &Value) -> Option<Alg> {
    match key.get("alg").and_then(Value::as_str) {
        Some(name) => Alg::from_name(name),
        None => match (key["kty"].as_str(), key.get("crv").and_then(Value::as_str)) {
            (Some("RSA"), _) => Some(Alg::Rs256),
            (Some("EC"), Some("P-256")) => Some(Alg::Es256),
            (Some("EC"), Some("P-384")) => Some(Alg::Es384),
            (Some("OKP"), _) => Some(Alg::EdDsa),
            (Some("oct"), _) => Some(Alg::Hs256),
            _ => None,
        },
    }
}

/// A key set from a list of JWKs: public keys as published, shared secrets via a secret.
fn key_set(keys: &[Value]) -> Result<JwkSet, String> {
    let doc = json!({ "keys": keys }).to_string();
    if keys.iter().any(|k| k["kty"] == "oct") {
        JwkSet::from_secret_json(&secret(&doc)).map_err(|e| e.to_string())
    } else {
        JwkSet::from_json(&doc).map_err(|e| e.to_string())
    }
}

#[derive(Default, Debug)]
struct Counts {
    valid_accepted: usize,
    valid_refused: usize,
    invalid_rejected: usize,
    unsupported: usize,
    corpus_copies: usize,
}

fn run_jws_file(name: &str, counts: &mut Counts, refused: &mut BTreeMap<u64, String>) {
    let doc = wycheproof(name);
    let mut seen = 0;
    let by_id: BTreeMap<u64, &Value> = doc["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["tests"].as_array().unwrap())
        .map(|t| (t["tcId"].as_u64().unwrap(), t))
        .collect();
    for group in doc["testGroups"].as_array().unwrap() {
        // JWS groups carry one key; JWK groups a set ("keys"). Public keys when given.
        let holder = group.get("public").unwrap_or(&group["private"]);
        let keys: Vec<Value> = match holder.get("keys") {
            Some(list) => list.as_array().unwrap().clone(),
            None => vec![holder.clone()],
        };
        let algs: Vec<Alg> = keys.iter().filter_map(alg_for).collect();
        let set = key_set(&keys);
        for test in group["tests"].as_array().unwrap() {
            seen += 1;
            let id = test["tcId"].as_u64().unwrap();
            // JSON serialization is a JSON object, not a string: we only do compact.
            let jws = match &test["jws"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let outcome = match &set {
                Err(e) => Err(e.clone()),
                Ok(_) if algs.is_empty() => Err("no supported alg for this key".to_owned()),
                Ok(set) => verify_signature(&jws, set, &algs, 1 << 16).map_err(|e| e.to_string()),
            };
            match (test["result"].as_str().unwrap(), outcome) {
                ("invalid", Ok(_))
                    if name.starts_with("json_web_signature") && identical_to_valid().contains_key(&id) =>
                {
                    let twin = by_id[&identical_to_valid()[&id]];
                    assert_eq!(twin["jws"], test["jws"], "tcId {id} is listed as a copy of a valid vector");
                    assert_eq!(twin["result"], "valid");
                    counts.corpus_copies += 1;
                }
                ("invalid", Ok(_)) => panic!("{name} tcId {id} ({}) is invalid but was accepted", test["comment"]),
                ("invalid", Err(_)) => counts.invalid_rejected += 1,
                ("valid" | "acceptable", Ok(_)) => counts.valid_accepted += 1,
                ("valid" | "acceptable", Err(e)) => {
                    if e.contains("P-521") || algs.is_empty() || e.contains("unsupported") {
                        counts.unsupported += 1;
                    } else {
                        counts.valid_refused += 1;
                    }
                    refused.insert(id, e);
                }
                (other, _) => panic!("unknown result {other}"),
            }
        }
    }
    assert_eq!(seen, doc["numberOfTests"].as_u64().unwrap() as usize, "{name}: every vector ran");
}

#[test]
fn json_web_signature_vectors() {
    let mut counts = Counts::default();
    let mut refused = BTreeMap::new();
    run_jws_file("json_web_signature_test.json", &mut counts, &mut refused);
    let expected = refused_valid_jws();
    assert_eq!(
        refused.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "valid vectors refused: {refused:#?}"
    );
    println!("json_web_signature_test.json: {counts:?}");
    // 401 vectors: 355 invalid (2 of them copies of a valid one), 46 valid.
    assert_eq!((counts.invalid_rejected, counts.corpus_copies), (353, 2));
    assert_eq!((counts.valid_accepted, counts.valid_refused, counts.unsupported), (40, 4, 2));
}

#[test]
fn json_web_key_vectors() {
    let mut counts = Counts::default();
    let mut refused = BTreeMap::new();
    run_jws_file("json_web_key_test.json", &mut counts, &mut refused);
    println!("json_web_key_test.json: {counts:?}");
    assert!(refused.is_empty(), "valid vectors refused: {refused:#?}");
    assert_eq!((counts.valid_accepted, counts.invalid_rejected), (5, 21));
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn ecdsa_p256_p1363_vectors_through_the_es256_path() {
    let doc = wycheproof("ecdsa_secp256r1_sha256_p1363_test.json");
    let (mut valid, mut invalid) = (0, 0);
    for group in doc["testGroups"].as_array().unwrap() {
        // Coordinates as fixed 32-byte big-endian values (the hex may carry a sign byte).
        let coord = |name: &str| {
            let raw = hex(group["publicKey"][name].as_str().unwrap());
            let trimmed: Vec<u8> = raw.iter().copied().skip_while(|&b| b == 0).collect();
            let mut out = vec![0u8; 32 - trimmed.len()];
            out.extend_from_slice(&trimmed);
            b64::encode(&out)
        };
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": "k", "x": coord("wx"), "y": coord("wy")});
        let set = JwkSet::from_json(&json!({ "keys": [jwk] }).to_string()).unwrap();
        let key = set.get("k").expect("every P-256 key parses");
        for test in group["tests"].as_array().unwrap() {
            let ok = check_signature(
                key,
                Alg::Es256,
                &hex(test["msg"].as_str().unwrap()),
                &hex(test["sig"].as_str().unwrap()),
            )
            .is_ok();
            match test["result"].as_str().unwrap() {
                "valid" => {
                    assert!(ok, "tcId {} valid but refused", test["tcId"]);
                    valid += 1;
                }
                "invalid" => {
                    assert!(!ok, "tcId {} ({}) invalid but accepted", test["tcId"], test["comment"]);
                    invalid += 1;
                }
                other => panic!("unknown result {other}"),
            }
        }
    }
    println!("ecdsa_secp256r1_sha256_p1363_test.json: valid accepted {valid}, invalid rejected {invalid}");
    assert_eq!((valid, invalid), (173, 89));
}

#[test]
fn padded_base64_is_rejected() {
    // What vectors 367 and 370 were meant to be: vector 357 with '=' padding.
    let doc = wycheproof("json_web_signature_test.json");
    let group = doc["testGroups"].as_array().unwrap().iter().find(|g| g["comment"] == "base64").unwrap();
    let set = key_set(std::slice::from_ref(&group["private"])).unwrap();
    let valid = "eyJraWQiOiJoczI1Ni1rZXkiLCJhbGciOiJIUzI1NiJ9.VGVzdA.c1LROH7eNQwUT8KMVEO52VC3WZ9e_AnDWbZ7aMmowV8";
    assert!(verify_signature(valid, &set, &[Alg::Hs256], 8192).is_ok());
    for padded in [format!("{valid}="), valid.replace(".VGVzdA.", ".VGVzdA==.")] {
        assert!(verify_signature(&padded, &set, &[Alg::Hs256], 8192).is_err(), "{padded}");
    }
}

#[test]
fn the_psychic_signature_vector_also_fails_as_a_token() {
    // Wycheproof tcId 386 is r = s = 0; check it through the full JWS path too.
    let doc = wycheproof("json_web_signature_test.json");
    let group = doc["testGroups"].as_array().unwrap().iter().find(|g| g["comment"] == "SpecialCaseEs256").unwrap();
    let set = key_set(std::slice::from_ref(&group["public"])).unwrap();
    let input = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImtpZC1lYy1zaWduIn0.Zm9v";
    let zero = format!("{input}.{}", b64::encode(&[0u8; 64]));
    assert!(verify_signature(&zero, &set, &[Alg::Es256], 8192).is_err());
}
