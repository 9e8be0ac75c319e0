//! Per data class: real instances are found (also inside sentences and JSON), near-misses are not.

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] functions unwrap too")]

use portcullis_exposure::{DataClass, ExposurePolicy, NamedDetector};

fn classes(text: &str) -> Vec<DataClass> {
    let policy = ExposurePolicy { named_detectors: vec![NamedDetector::uk_nino()], ..ExposurePolicy::default() }
        .compile()
        .unwrap();
    policy.apply_text(text).unwrap().findings.into_iter().map(|f| f.class).collect()
}

fn found(text: &str, class: DataClass) {
    let got = classes(text);
    assert!(got.contains(&class), "{class} not found in {text:?}: {got:?}");
}

fn clean(text: &str) {
    let got = classes(text);
    assert!(got.is_empty(), "false positive in {text:?}: {got:?}");
}

#[test]
fn cards_accepted() {
    for t in [
        "4242424242424242",
        "pay with 4242 4242 4242 4242 today",
        "5555-5555-5555-4444",
        "amex 378282246310005.",
        "6011111111111117",
        "3566002020360505",
    ] {
        found(t, DataClass::CardNumber);
    }
}

#[test]
fn card_near_misses_rejected() {
    for t in [
        "4242424242424241",            // Luhn-invalid
        "order 1234567812345678",      // Luhn-invalid id
        "id 9999999999999995",         // Luhn-valid, no such IIN
        "ORD-4242424242424242-X",      // part of a longer token
        "ts 1700000000000",            // millisecond timestamp
        "2024-01-15T10:30:00.123456Z", // timestamp
        "price 1,234,567.89",
        "uuid 550e8400-e29b-41d4-a716-446655440000",
        "ghi4242424242424242",
    ] {
        clean(t);
    }
}

#[test]
fn ibans() {
    found("IBAN DE89 3704 0044 0532 0130 00, thanks", DataClass::Iban);
    found("GB82WEST12345698765432", DataClass::Iban);
    found("FR1420041010050500013M02606", DataClass::Iban);
    clean("IBAN DE89 3704 0044 0532 0130 01"); // checksum off by one
    clean("GB82WEST1234569876543"); // one short for GB
    clean("XX89370400440532013000"); // no such country
}

#[test]
fn ssns() {
    found("SSN 536-22-6789 on file", DataClass::Ssn);
    found("123-45-6789", DataClass::Ssn);
    for t in ["000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567", "123-45-0000", "078-05-1120"] {
        clean(t);
    }
    clean("part 123-45-6789-01");
    clean("2024-01-15");
}

#[test]
fn national_ids_via_named_detector() {
    found("NINO: AB 12 34 56 C", DataClass::NationalId);
    clean("NINO: BG 12 34 56 C"); // never issued prefix
}

#[test]
fn emails() {
    found("write to john.doe+tag@example.co.uk please", DataClass::Email);
    clean("icon@2x.png");
    clean("j***@example.com");
    clean("user at example dot com");
    clean("@handle");
}

#[test]
fn phones() {
    for t in [
        "+1 415 555 2671",
        "+14155552671",
        "call (415) 555-2671",
        "415-555-2671",
        "+44 20 7946 0958",
        "020 7946 0958",
        "01 23 45 67 89",
    ] {
        found(t, DataClass::Phone);
    }
    for t in [
        "order 4155552671",
        "id 12345678",
        "2024-01-15 10:30:00",
        "total 1234567.89",
        "v1.2.3",
        "build 20240115103000",
        "550e8400-e29b-41d4-a716-446655440000",
        "05-12-2024",
        "123-456-7890", // area code cannot start with 1
        "1700000000",
    ] {
        clean(t);
    }
}

#[test]
fn secrets() {
    found("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", DataClass::PrivateKey);
    found("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n", DataClass::PrivateKey);
    clean("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----");
    found(
        "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        DataClass::Jwt,
    );
    clean("eyJhbGciOiJIUzI1NiJ9"); // a header alone
    found("key AKIAIOSFODNN7EXAMPLE", DataClass::AwsAccessKeyId);
    clean("AKIAIOSFODNN7EXAMPL"); // too short
    found("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", DataClass::AwsSecretKey);
    clean("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"); // no label: too ambiguous alone
    found("token ghp_16C7e42F292c6912E7710c838347Ae178B4a", DataClass::GithubToken);
    found("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", DataClass::GithubToken);
    clean("ghp_short");
    found("xoxb-123456789012-1234567890123-AbCdEfGhIjKl", DataClass::SlackToken);
    found("sk_live_4eC39HqLyjWDarjtT1zdp7dc", DataClass::StripeKey);
    clean("sk_test_4eC39HqLyjWDarjtT1zdp7dc");
    found("pc_live_abcdefghijklmnopqrstuvwxyz0123456789", DataClass::PortcullisKey);
    found("pc_test_abcdefghijklmnopqrstuvwxyz0123456789", DataClass::PortcullisKey);
    clean("pc_live_"); // prefix alone
}

#[test]
fn password_hashes() {
    found("$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", DataClass::PasswordHash);
    found("$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG", DataClass::PasswordHash);
    let sha512 = format!("$6$saltsalt${}", "a".repeat(86));
    found(&sha512, DataClass::PasswordHash);
    found("pbkdf2_sha256$260000$abcdefghijkl$0123456789abcdefghijABCDEFGHIJ0123456789ab=", DataClass::PasswordHash);
    found(
        "$pbkdf2-sha256$29000$N2ZMqRUiZMz5X.v9H8OH0A$7KXmTCxWb7I2nDmAnIbMDDVHX8V6Ym9XTl0g3M5PR6c",
        DataClass::PasswordHash,
    );
    clean("$2b$12$tooshort");
    clean("it costs $6$ and $5$");
}

#[test]
fn ordinary_records_are_clean() {
    clean("Order 100023 shipped 2024-01-15T10:30:00Z to Berlin, total EUR 1,299.00, SKU AB-1234-XY");
    clean("id 7f9c2ba4-e88f-11ee-a506-0242ac120002 version 3.14.159 port 8080 zip 10115");
}

/// Masking one value can uncover another that its match covered (`a@4242…4242.com`: the card
/// number is part of the address until the address is masked): the masked string is scanned
/// again and what it uncovers is masked too. A masked value that uncovers nothing gives one
/// finding.
#[test]
fn a_mask_that_uncovers_a_value_is_followed_by_its_mask() {
    let policy = ExposurePolicy::default().compile().unwrap();
    let out = policy.apply_json(br#"{"contact":"a@4242424242424242.com","n":1}"#, None).unwrap();
    let body = String::from_utf8(out.body).unwrap();
    assert_eq!(body, r#"{"contact":"a***@************4242.com","n":1}"#);
    let classes: Vec<DataClass> = out.findings.iter().map(|f| f.class).collect();
    assert_eq!(classes, [DataClass::Email, DataClass::CardNumber]);
    let out = policy.apply_json(br#"{"contact":"jane@example.com","tel":"+1 415 555 2671"}"#, None).unwrap();
    assert_eq!(String::from_utf8(out.body).unwrap(), r#"{"contact":"j***@example.com","tel":"+* *** *** 2671"}"#);
    assert_eq!(out.findings.len(), 2);
}
