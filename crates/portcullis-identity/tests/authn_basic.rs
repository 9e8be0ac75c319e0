//! HTTP Basic with Argon2id: accept, reject, unknown users cost the same work, parser strictness.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use portcullis_identity::basic::{self, Argon2Config, BasicError, PasswordHasher, PhcStatus};

/// Cheap parameters so that debug-build tests stay fast (unoptimised Argon2 takes seconds at
/// OWASP cost); the OWASP defaults are exercised by one test.
fn cheap() -> Argon2Config {
    Argon2Config { m_kib: 256, t: 1, p: 1, ..Argon2Config::default() }
}

fn header(user_pass: &[u8]) -> HeaderValue {
    HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(user_pass))).unwrap()
}

#[test]
fn the_right_password_is_accepted_and_a_wrong_one_rejected() {
    let h = PasswordHasher::new(cheap()).unwrap();
    let stored = h.hash_password("s3cret pässword").unwrap();
    assert!(stored.starts_with("$argon2id$v=19$m=256,t=1,p=1$"), "{stored}");
    assert!(!stored.contains("s3cret"));
    assert!(h.verify_password("s3cret pässword", Some(&stored)));
    assert!(!h.verify_password("s3cret password", Some(&stored)));
    assert!(!h.verify_password("", Some(&stored)));
    assert_ne!(stored, h.hash_password("s3cret pässword").unwrap(), "fresh salt every time");
}

#[test]
fn unknown_users_are_rejected_after_a_real_argon2_computation() {
    let h = PasswordHasher::new(cheap()).unwrap();
    let stored = h.hash_password("pw").unwrap();
    let before = h.computations();
    assert!(!h.verify_password("pw", None));
    assert_eq!(h.computations(), before + 1, "the unknown-user path runs Argon2");
    assert!(!h.verify_password("pw", Some("not a phc string")));
    assert_eq!(h.computations(), before + 2, "an unreadable stored hash also costs one computation");
    assert!(h.verify_password("pw", Some(&stored)));
    assert_eq!(h.computations(), before + 3, "same cost as a known user");
}

#[test]
fn the_owasp_defaults_are_used_by_the_free_functions() {
    let stored = basic::hash_password("correct horse battery staple").unwrap();
    assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
    assert!(basic::verify_password("correct horse battery staple", Some(&stored)));
    assert!(!basic::verify_password("correct horse battery staple", None));
    assert_eq!(basic::phc_status(&stored), PhcStatus::Current);
}

#[test]
fn stored_hash_parameters_are_classified() {
    let h = PasswordHasher::new(cheap()).unwrap();
    let current = h.hash_password("pw").unwrap();
    assert_eq!(h.phc_status(&current), PhcStatus::Current);
    assert!(h.phc_status(&current).is_acceptable());

    // Status only parses the PHC string: a cheap hash relabelled with other costs will do.
    let alt = current.replacen("m=256,t=1", "m=12288,t=3", 1);
    assert_eq!(basic::phc_status(&alt), PhcStatus::Outdated, "another OWASP configuration");
    assert!(basic::phc_status(&alt).is_acceptable());
    assert_eq!(basic::phc_status(&current), PhcStatus::Weak, "m=256 is below OWASP's minimum");
    assert!(!basic::phc_status(&current).is_acceptable());

    // Above the ceiling: never verified (a planted hash cannot make a login cost gigabytes).
    let costly = current.replacen("m=256", "m=4194304", 1);
    assert_eq!(h.phc_status(&costly), PhcStatus::Unsupported);
    assert!(!h.verify_password("pw", Some(&costly)));
    for other in [
        "$argon2i$v=19$m=256,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        "$argon2id$v=16$m=256,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        "$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHQ",
        "$2b$12$abcdefghijklmnopqrstuv",
        "",
    ] {
        assert_eq!(h.phc_status(other), PhcStatus::Unsupported, "{other}");
        assert!(!h.verify_password("pw", Some(other)));
    }
}

#[test]
fn parameters_out_of_range_are_refused() {
    assert!(matches!(PasswordHasher::new(Argon2Config { m_kib: 4, ..cheap() }), Err(BasicError::Params(_))));
    assert!(matches!(PasswordHasher::new(Argon2Config { t: 0, ..cheap() }), Err(BasicError::Params(_))));
    assert!(matches!(
        PasswordHasher::new(Argon2Config { m_kib: 1 << 20, max_m_kib: 1 << 19, ..cheap() }),
        Err(BasicError::Params(_))
    ));
}

#[test]
fn over_long_passwords_never_verify() {
    let h = PasswordHasher::new(cheap()).unwrap();
    let long = "a".repeat(basic::MAX_PASSWORD_BYTES + 1);
    assert_eq!(h.hash_password(&long), Err(BasicError::PasswordTooLong));
    let stored = h.hash_password(&long[..basic::MAX_PASSWORD_BYTES]).unwrap();
    let before = h.computations();
    assert!(!h.verify_password(&long, Some(&stored)), "a longer password is not its prefix");
    assert_eq!(h.computations(), before + 1);
}

#[test]
fn basic_headers_parse() {
    let c = basic::parse_basic(&header(b"alice:open sesame")).unwrap();
    assert_eq!(c.username, "alice");
    assert_eq!(c.password.expose(), "open sesame");
    assert!(!format!("{c:?}").contains("sesame"), "Debug hides the password");

    let c = basic::parse_basic(&header("jös:pa:ss:wörd".as_bytes())).unwrap();
    assert_eq!((c.username.as_str(), c.password.expose()), ("jös", "pa:ss:wörd"), "split at the first colon");
    let c = basic::parse_basic(&header(b"bob:")).unwrap();
    assert_eq!(c.password.expose(), "", "an empty password parses (and then fails verification)");
    let lower = HeaderValue::from_str(&format!("basic  {}", STANDARD.encode("u:p"))).unwrap();
    assert_eq!(basic::parse_basic(&lower).unwrap().username, "u", "scheme is case-insensitive");
    // RFC 7617's example.
    let rfc = basic::parse_basic(&HeaderValue::from_static("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")).unwrap();
    assert_eq!((rfc.username.as_str(), rfc.password.expose()), ("Aladdin", "open sesame"));
}

#[test]
fn malformed_basic_headers_are_rejected() {
    let long_user = format!("{}:p", "u".repeat(basic::MAX_USERNAME_BYTES + 1));
    let long_pass = format!("u:{}", "p".repeat(basic::MAX_PASSWORD_BYTES + 1));
    let cases: Vec<(HeaderValue, BasicError)> = vec![
        (header(b"no-colon"), BasicError::Malformed("no colon")),
        (header(b":password"), BasicError::UsernameLength),
        (header(long_user.as_bytes()), BasicError::UsernameLength),
        (header(long_pass.as_bytes()), BasicError::PasswordTooLong),
        (header(b"\xff\xfe:pw"), BasicError::Malformed("not UTF-8")),
        (header(b"us\ner:pw"), BasicError::Malformed("control character")),
        (header(b"user:p\x00w"), BasicError::Malformed("control character")),
        (HeaderValue::from_static("Basic !!!notbase64"), BasicError::Malformed("base64")),
        (HeaderValue::from_static("Basic YWxpY2U6cHc"), BasicError::Malformed("base64")),
        (HeaderValue::from_static("Basic"), BasicError::Malformed("no credentials")),
        (HeaderValue::from_static("Bearer YWxpY2U6cHc="), BasicError::Malformed("scheme")),
        (HeaderValue::from_static("Basic YWxp Y2U6cHc="), BasicError::Malformed("base64")),
        (HeaderValue::from_bytes(b"Basic \xff").unwrap(), BasicError::Malformed("not ASCII")),
    ];
    for (h, want) in cases {
        let got = basic::parse_basic(&h);
        assert_eq!(got, Err(want.clone()), "{h:?}");
        assert!(!want.to_string().contains("pw"));
    }
    let huge = HeaderValue::from_str(&format!("Basic {}", "A".repeat(10_000))).unwrap();
    assert_eq!(basic::parse_basic(&huge), Err(BasicError::Malformed("too long")));
}
