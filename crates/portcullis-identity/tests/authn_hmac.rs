//! PC-HMAC-SHA256 request signing: every part of the request is bound by the signature.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]

use std::time::Duration;

use http::{HeaderValue, Request};
use portcullis_config::Secret;
use portcullis_identity::hmac_sig::{
    self, BodyDigest, BodyHash, DEFAULT_WINDOW, HmacError, NonceCache, RequestParts, SignatureParams, SigningSecret,
};

const NOW: u64 = 1_767_225_600;
const NONCE: &str = "n0nce-0123456789abcdef";

fn server_secret(value: &str) -> Secret {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("pc-authn-hmac-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("s"), value).unwrap();
    portcullis_config::resolve_secret("${file:s}", &dir).unwrap()
}

struct Fixture {
    key_id: String,
    secret: SigningSecret,
    body: Vec<u8>,
}

fn fixture() -> Fixture {
    let server = server_secret("0123456789abcdef0123456789abcdef-server");
    let key_id = hmac_sig::new_key_id().unwrap();
    let salt = hmac_sig::new_salt().unwrap();
    let secret = hmac_sig::derive_signing_secret(&server, &key_id, &salt).unwrap();
    Fixture { key_id, secret, body: vec![b'x'; 1024] }
}

fn request() -> http::request::Parts {
    let (parts, ()) = Request::post("/v1/orders/42?b=2&a=1")
        .header("host", "api.example.com")
        .header("content-type", "application/json")
        .header("x-extra", "not signed")
        .body(())
        .unwrap()
        .into_parts();
    parts
}

fn signed(f: &Fixture, parts: &http::request::Parts, headers: &[&str]) -> SignatureParams {
    hmac_sig::sign(&f.secret, &f.key_id, NOW, NONCE, headers, RequestParts::from(parts), &BodyDigest::of(&f.body))
        .unwrap()
}

/// Sends `parts` with its signature through the header, as a client would, and verifies.
fn round_trip(
    f: &Fixture,
    signed_parts: &http::request::Parts,
    received: &http::request::Parts,
    body: &BodyHash,
) -> Result<(), HmacError> {
    let header = signed(f, signed_parts, &["host", "content-type"]).to_header_value().unwrap();
    let params = hmac_sig::parse_authorization(&header)?;
    hmac_sig::verify(&f.secret, &params, RequestParts::from(received), body, NOW + 10, DEFAULT_WINDOW)
}

#[test]
fn a_correct_signature_is_accepted_and_survives_the_header_round_trip() {
    let f = fixture();
    let parts = request();
    let mut d = BodyDigest::new();
    for chunk in f.body.chunks(100) {
        d.update(chunk);
    }
    let body = d.finish();
    assert_eq!(body, BodyDigest::of(&f.body), "chunked and whole digests agree");
    assert_eq!(round_trip(&f, &parts, &parts, &body), Ok(()));

    let header = signed(&f, &parts, &["Host", "Content-Type"]).to_header_value().unwrap();
    let s = header.to_str().unwrap();
    assert!(s.starts_with("PC-HMAC-SHA256 keyId=\""), "{s}");
    let p = hmac_sig::parse_authorization(&header).unwrap();
    assert_eq!(p.key_id, f.key_id);
    assert_eq!(p.ts, NOW);
    assert_eq!(p.nonce, NONCE);
    assert_eq!(p.headers_param(), "host;content-type");
    assert!(!format!("{p:?}").contains(s.rsplit("sig=\"").next().unwrap().trim_end_matches('"')), "Debug hides sig");
}

#[test]
fn equivalent_encodings_of_the_target_verify_and_unsigned_headers_may_change() {
    let f = fixture();
    let parts = request();
    let mut received = request();
    received.uri = "/v1/%6Frders/42?a=1&b=%32".parse().unwrap();
    received.headers.insert("x-extra", HeaderValue::from_static("changed by a proxy"));
    received.headers.insert("content-type", HeaderValue::from_static("  application/json\t"));
    assert_eq!(round_trip(&f, &parts, &received, &BodyDigest::of(&f.body)), Ok(()));
}

#[test]
fn http2_authority_stands_in_for_a_missing_host_header() {
    let f = fixture();
    let parts = request();
    let mut received = request();
    received.headers.remove("host");
    received.uri = "https://api.example.com/v1/orders/42?b=2&a=1".parse().unwrap();
    assert_eq!(round_trip(&f, &parts, &received, &BodyDigest::of(&f.body)), Ok(()));
    received.uri = "https://evil.example.com/v1/orders/42?b=2&a=1".parse().unwrap();
    assert_eq!(round_trip(&f, &parts, &received, &BodyDigest::of(&f.body)), Err(HmacError::BadSignature));
}

#[test]
fn tampering_with_any_signed_part_is_rejected() {
    let f = fixture();
    let parts = request();
    let body = BodyDigest::of(&f.body);

    let mut m = request();
    m.method = http::Method::PUT;
    assert_eq!(round_trip(&f, &parts, &m, &body), Err(HmacError::BadSignature), "method");

    let mut p = request();
    p.uri = "/v1/orders/43?b=2&a=1".parse().unwrap();
    assert_eq!(round_trip(&f, &parts, &p, &body), Err(HmacError::BadSignature), "path");

    let mut q = request();
    q.uri = "/v1/orders/42?b=2&a=1&admin=true".parse().unwrap();
    assert_eq!(round_trip(&f, &parts, &q, &body), Err(HmacError::BadSignature), "query");

    let mut q2 = request();
    q2.uri = "/v1/orders/42?b=3&a=1".parse().unwrap();
    assert_eq!(round_trip(&f, &parts, &q2, &body), Err(HmacError::BadSignature), "query value");

    let mut h = request();
    h.headers.insert("content-type", HeaderValue::from_static("text/plain"));
    assert_eq!(round_trip(&f, &parts, &h, &body), Err(HmacError::BadSignature), "signed header");

    let mut host = request();
    host.headers.insert("host", HeaderValue::from_static("other.example.com"));
    assert_eq!(round_trip(&f, &parts, &host, &body), Err(HmacError::BadSignature), "host");

    let mut dup = request();
    dup.headers.append("content-type", HeaderValue::from_static("text/html"));
    assert_eq!(round_trip(&f, &parts, &dup, &body), Err(HmacError::BadSignature), "added value");

    let mut gone = request();
    gone.headers.remove("content-type");
    assert_eq!(
        round_trip(&f, &parts, &gone, &body),
        Err(HmacError::MissingSignedHeader("content-type".into())),
        "signed header removed"
    );

    let mut other_body = f.body.clone();
    other_body[1000] = b'y';
    assert_eq!(round_trip(&f, &parts, &parts, &BodyDigest::of(&other_body)), Err(HmacError::BadSignature), "body");
}

#[test]
fn tampering_with_the_parameters_is_rejected() {
    let f = fixture();
    let parts = request();
    let body = BodyDigest::of(&f.body);
    let good = signed(&f, &parts, &["host", "content-type"]).to_header_value().unwrap();
    let good = good.to_str().unwrap();
    let verify = |h: String| {
        let p = hmac_sig::parse_authorization(&HeaderValue::from_str(&h).unwrap())?;
        hmac_sig::verify(&f.secret, &p, RequestParts::from(&parts), &body, NOW, DEFAULT_WINDOW)
    };
    assert_eq!(verify(good.to_owned()), Ok(()));
    let ts = format!("ts=\"{NOW}\"");
    assert_eq!(verify(good.replace(&ts, &format!("ts=\"{}\"", NOW + 1))), Err(HmacError::BadSignature), "ts");
    assert_eq!(verify(good.replace(NONCE, "another-nonce-0123456")), Err(HmacError::BadSignature), "nonce");
    assert_eq!(
        verify(good.replace("headers=\"host;content-type\"", "headers=\"host\"")),
        Err(HmacError::BadSignature),
        "dropping a signed header"
    );
}

#[test]
fn timestamps_outside_the_window_are_rejected() {
    let f = fixture();
    let parts = request();
    let body = BodyDigest::of(&f.body);
    let p = signed(&f, &parts, &["host"]);
    let check = |now| hmac_sig::verify(&f.secret, &p, RequestParts::from(&parts), &body, now, DEFAULT_WINDOW);
    assert_eq!(check(NOW + 300), Ok(()));
    assert_eq!(check(NOW - 300), Ok(()));
    assert_eq!(check(NOW + 301), Err(HmacError::Expired));
    assert_eq!(check(NOW - 301), Err(HmacError::Expired), "from the future");
    let narrow = hmac_sig::verify(&f.secret, &p, RequestParts::from(&parts), &body, NOW + 31, Duration::from_secs(30));
    assert_eq!(narrow, Err(HmacError::Expired));
}

#[test]
fn replayed_nonces_are_rejected_per_key_until_they_expire() {
    let cache = NonceCache::new(1000, DEFAULT_WINDOW);
    assert!(cache.check_and_insert("k1", NONCE, NOW));
    assert!(!cache.check_and_insert("k1", NONCE, NOW + 1), "replay");
    assert!(!cache.check_and_insert("k1", NONCE, NOW + 599), "still within twice the window");
    assert!(cache.check_and_insert("k2", NONCE, NOW + 1), "same nonce, other key");
    assert!(cache.check_and_insert("k1", NONCE, NOW + 600), "expired: the timestamp check now refuses it");
    assert_eq!(cache.len(), 2, "the first k1 entry expired and was dropped; k2 and the new k1 remain");
}

#[test]
fn nonce_cache_stays_bounded_and_fails_closed_when_full() {
    let cache = NonceCache::new(100, Duration::from_secs(10));
    for i in 0..100 {
        assert!(cache.check_and_insert("k", &format!("nonce-{i:016}"), NOW));
    }
    assert!(!cache.check_and_insert("k", "nonce-new-000000000", NOW + 1), "full of live nonces");
    assert_eq!(cache.refused_full(), 1);
    assert_eq!(cache.len(), 100);
    assert!(cache.check_and_insert("k", "nonce-new-000000000", NOW + 20), "room again once they expire");
    assert_eq!(cache.len(), 1);
}

#[test]
fn host_must_be_signed() {
    let f = fixture();
    let parts = request();
    let err = hmac_sig::sign(
        &f.secret,
        &f.key_id,
        NOW,
        NONCE,
        &["content-type"],
        RequestParts::from(&parts),
        &BodyDigest::of(b""),
    );
    assert_eq!(err.unwrap_err(), HmacError::HostNotSigned);
    let header = signed(&f, &parts, &["host", "content-type"]).to_header_value().unwrap();
    let no_host = header.to_str().unwrap().replace("headers=\"host;content-type\"", "headers=\"content-type\"");
    assert_eq!(hmac_sig::parse_authorization(&HeaderValue::from_str(&no_host).unwrap()), Err(HmacError::HostNotSigned));
}

#[test]
fn malformed_headers_are_rejected() {
    let f = fixture();
    let parts = request();
    let good = signed(&f, &parts, &["host"]).to_header_value().unwrap();
    let good = good.to_str().unwrap().to_owned();
    let sig = good.rsplit("sig=\"").next().unwrap().trim_end_matches('"').to_owned();
    let ok = hmac_sig::parse_authorization(&HeaderValue::from_str(&good).unwrap());
    assert!(ok.is_ok());
    // Scheme is case-insensitive, spacing is flexible.
    let spaced = good.replace(", ", " ,  ").replacen("PC-HMAC-SHA256", "pc-hmac-sha256", 1);
    assert!(hmac_sig::parse_authorization(&HeaderValue::from_str(&spaced).unwrap()).is_ok(), "{spaced}");

    let bad = [
        String::new(),
        "PC-HMAC-SHA256".into(),
        "PC-HMAC-SHA256 ".into(),
        good.replacen("PC-HMAC-SHA256", "Bearer", 1),
        good.replacen("PC-HMAC-SHA256", "PC-HMAC-SHA1", 1),
        good.replace(", sig=", ", sig=\"x\", sig="),
        good.replace(", sig=", ", extra=\"1\", sig="),
        good.replace(&format!(", sig=\"{sig}\""), ""),
        good.replace(&sig, "not base64!"),
        good.replace(&sig, &sig[4..]),
        good.replace(&format!("sig=\"{sig}\""), &format!("sig={sig}")),
        good.replace(&format!("ts=\"{NOW}\""), "ts=\"-5\""),
        good.replace(&format!("ts=\"{NOW}\""), "ts=\"99999999999999999999\""),
        good.replace(&format!("ts=\"{NOW}\""), "ts=\"\""),
        good.replace(NONCE, "short"),
        good.replace(NONCE, "has space 0123456789"),
        good.replace(&f.key_id, "key:with:colons"),
        good.replace(&f.key_id, ""),
        good.replace("headers=\"host\"", "headers=\"Host\""),
        good.replace("headers=\"host\"", "headers=\"host;host\""),
        good.replace("headers=\"host\"", "headers=\"host;\""),
        good.replace("headers=\"host\"", "headers=\"ho st\""),
        format!("{good},"),
        format!("{good} trailing"),
        good.replace(", nonce", " nonce"),
        good.replace(NONCE, "ab\\\"cdefghijklmnopq"),
        format!("{good}{}", ", x=\"y\"".repeat(1000)),
    ];
    for b in bad {
        let Ok(v) = HeaderValue::from_str(&b) else { continue };
        let got = hmac_sig::parse_authorization(&v);
        assert!(got.is_err(), "accepted malformed header: {b}");
        let msg = got.unwrap_err().to_string();
        assert!(!msg.contains(&sig), "error messages never echo the signature");
    }
    let non_utf8 = HeaderValue::from_bytes(b"PC-HMAC-SHA256 keyId=\"\xff\"").unwrap();
    assert!(hmac_sig::parse_authorization(&non_utf8).is_err());
}

#[test]
fn the_wrong_key_is_rejected() {
    let f = fixture();
    let parts = request();
    let body = BodyDigest::of(&f.body);
    let p = signed(&f, &parts, &["host"]);
    let other = fixture();
    assert_eq!(
        hmac_sig::verify(&other.secret, &p, RequestParts::from(&parts), &body, NOW, DEFAULT_WINDOW),
        Err(HmacError::BadSignature)
    );
}

#[test]
fn derivation_depends_on_server_secret_key_id_and_salt_and_round_trips() {
    let server = server_secret("0123456789abcdef0123456789abcdef-server");
    let other_server = server_secret("another-server-secret-of-enough-length!!");
    let s = |srv: &Secret, k: &str, salt: &str| hmac_sig::derive_signing_secret(srv, k, salt).unwrap().to_base64();
    let base = s(&server, "pchk_a", "salt1");
    assert_eq!(base, s(&server, "pchk_a", "salt1"), "deterministic");
    assert_ne!(base, s(&other_server, "pchk_a", "salt1"));
    assert_ne!(base, s(&server, "pchk_b", "salt1"));
    assert_ne!(base, s(&server, "pchk_a", "salt2"));
    assert_eq!(SigningSecret::from_base64(&base).unwrap().to_base64(), base);
    assert!(SigningSecret::from_base64("c2hvcnQ").is_err());
    assert!(!format!("{:?}", SigningSecret::from_base64(&base).unwrap()).contains(&base));
    assert_eq!(
        hmac_sig::derive_signing_secret(&server_secret("short"), "k", "s").unwrap_err(),
        HmacError::WeakServerSecret
    );
    assert!(
        matches!(hmac_sig::derive_signing_secret(&server, "a:b", "c").unwrap_err(), HmacError::Malformed(_)),
        "a key id with ':' could collide with another key id and salt"
    );
    let ids: std::collections::HashSet<String> = (0..100).map(|_| hmac_sig::new_key_id().unwrap()).collect();
    assert_eq!(ids.len(), 100);
    assert!(ids.iter().all(|k| k.starts_with("pchk_") && k.len() == 27));
    assert_ne!(hmac_sig::new_salt().unwrap(), hmac_sig::new_salt().unwrap());
}

#[test]
fn the_canonical_string_matches_the_documented_layout() {
    let (parts, ()) = Request::get("/a%20b/c?z=1&y=%7e")
        .header("host", " h.example ")
        .header("x-multi", "1")
        .header("x-multi", " 2 ")
        .body(())
        .unwrap()
        .into_parts();
    let names = [http::header::HOST, http::HeaderName::from_static("x-multi")];
    let c = hmac_sig::canonical_string(RequestParts::from(&parts), &names, &BodyDigest::of(b""), 42, NONCE).unwrap();
    let expected = format!(
        "PC-HMAC-SHA256\nGET\n/a%20b/c\ny=~&z=1\nhost:h.example\nx-multi:1,2\nhost;x-multi\n{}\n42\n{NONCE}",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(String::from_utf8(c).unwrap(), expected);
}
