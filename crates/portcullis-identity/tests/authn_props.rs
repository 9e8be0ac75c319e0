//! Property tests for the parsers and canonicalisers of the authentication methods.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]

use http::HeaderValue;
use portcullis_identity::{basic, hmac_sig};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Canonical forms are fixed points: a client that canonicalises before sending and a gateway
    /// that canonicalises again agree.
    #[test]
    fn canonical_path_is_idempotent(path in "(/[a-zA-Z0-9%~._ +!$&'()*,;=:@-]{0,12}){0,5}") {
        if let Ok(once) = hmac_sig::canonical_path(&path) {
            prop_assert_eq!(hmac_sig::canonical_path(&once).unwrap(), once.clone());
            prop_assert!(once.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/%".contains(&b)));
        }
    }

    #[test]
    fn canonical_query_is_idempotent_and_order_free(pairs in proptest::collection::vec(("[a-z%0-9+]{0,4}", "[a-z%0-9+=]{0,4}"), 0..6)) {
        let q: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let forward = q.join("&");
        let mut rev = q.clone();
        rev.reverse();
        let backward = rev.join("&");
        match (hmac_sig::canonical_query(&forward), hmac_sig::canonical_query(&backward)) {
            (Ok(a), Ok(b)) => {
                prop_assert_eq!(&a, &b);
                prop_assert_eq!(hmac_sig::canonical_query(&a).unwrap(), a);
            }
            (Err(_), Err(_)) => {}
            (a, b) => prop_assert!(false, "order changed the outcome: {a:?} vs {b:?}"),
        }
    }

    /// The header parsers never panic, whatever the bytes.
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(v) = HeaderValue::from_bytes(&bytes) {
            let _ = hmac_sig::parse_authorization(&v);
            let _ = basic::parse_basic(&v);
        }
        let mut prefixed = b"PC-HMAC-SHA256 ".to_vec();
        prefixed.extend_from_slice(&bytes);
        if let Ok(v) = HeaderValue::from_bytes(&prefixed) {
            let _ = hmac_sig::parse_authorization(&v);
        }
    }

    /// Whatever is signed, the header it produces parses back to the same parameters.
    #[test]
    fn signed_headers_round_trip(ts in 0u64..100_000_000_000, nonce in "[A-Za-z0-9._~-]{16,40}", key_id in "[A-Za-z0-9._-]{1,40}") {
        let secret = hmac_sig::SigningSecret::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        let (parts, ()) = http::Request::get("/x").header("host", "h").body(()).unwrap().into_parts();
        let p = hmac_sig::sign(&secret, &key_id, ts, &nonce, &["host"], hmac_sig::RequestParts::from(&parts), &hmac_sig::BodyDigest::of(b"")).unwrap();
        let back = hmac_sig::parse_authorization(&p.to_header_value().unwrap()).unwrap();
        prop_assert_eq!(&back, &p);
        prop_assert!(hmac_sig::verify(&secret, &back, hmac_sig::RequestParts::from(&parts), &hmac_sig::BodyDigest::of(b""), ts, hmac_sig::DEFAULT_WINDOW).is_ok());
    }
}
