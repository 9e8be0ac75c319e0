//! Actions per class and per field, shaping, blocking and the compile-time checks, through
//! `apply_json` and `apply_text`.

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] functions unwrap too")]

use portcullis_exposure::{
    Action, ApplyError, ArrayCap, DataClass, ExposurePolicy, FieldRule, FieldTarget, HashKey, Location, PolicyError,
    ShapeConfig,
};

fn json(policy: &ExposurePolicy, body: &str) -> (String, portcullis_exposure::Applied) {
    let out = policy.compile().unwrap().apply_json(body.as_bytes(), None).unwrap();
    (String::from_utf8(out.body.clone()).unwrap(), out)
}

fn key() -> Option<HashKey> {
    Some(HashKey::new(*b"0123456789abcdef0123456789abcdef"))
}

#[test]
fn clean_body_is_returned_unchanged_byte_for_byte() {
    let body =
        "{ \"id\": 12345678901234567890123, \"name\": \"Ada\",\n \"price\": 12.50, \"tags\": [\"a\", null, true] }";
    let (out, applied) = json(&ExposurePolicy::default(), body);
    assert_eq!(out, body);
    assert!(!applied.changed && applied.findings.is_empty());
}

#[test]
fn defaults_mask_personal_data_and_redact_credentials() {
    let body = r#"{"id":7,"email":"jane@example.com","note":"card 4242 4242 4242 4242 on file","password":"hunter2","big":12345678901234567890123,"tok":"ghp_16C7e42F292c6912E7710c838347Ae178B4a"}"#;
    let (out, a) = json(&ExposurePolicy::default(), body);
    assert_eq!(
        out,
        r#"{"id":7,"email":"j***@example.com","note":"card ************4242 on file","big":12345678901234567890123}"#
    );
    let classes: Vec<_> = a.findings.iter().map(|f| f.class).collect();
    assert_eq!(classes, [DataClass::Email, DataClass::CardNumber, DataClass::SensitiveField, DataClass::GithubToken]);
    assert_eq!(a.findings[2].location, Location::Pointer("/password".into()));
    assert!(a.changed && !a.blocked);
}

#[test]
fn findings_never_display_values() {
    let body = r#"{"a":{"e":"jane@example.com","pw":"$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"}}"#;
    let (_, a) = json(&ExposurePolicy::default(), body);
    assert_eq!(a.findings.len(), 2);
    for f in &a.findings {
        let shown = format!("{f} {f:?}");
        assert!(!shown.contains("jane") && !shown.contains("R9h/"), "{shown}");
    }
    assert_eq!(a.findings[1].to_string(), "password_hash (password_hash) at /a/pw: redact");
}

#[test]
fn card_as_json_number_is_masked_as_a_string() {
    let (out, _) = json(&ExposurePolicy::default(), r#"{"num":4242424242424242,"n":4242424242424241}"#);
    assert_eq!(out, r#"{"num":"************4242","n":4242424242424241}"#);
}

#[test]
fn redact_removes_members_and_nulls_array_elements() {
    let policy = ExposurePolicy { class_actions: vec![(DataClass::Email, Action::Redact)], ..Default::default() };
    let (out, _) =
        json(&policy, r#"{"a":"x@example.com","list":["y@example.com","keep"],"s":"mail x@example.com now"}"#);
    assert_eq!(out, r#"{"list":[null,"keep"],"s":"mail [redacted] now"}"#);
}

#[test]
fn hash_gives_stable_join_tokens_and_is_idempotent() {
    let policy = ExposurePolicy {
        class_actions: vec![(DataClass::Email, Action::Hash)],
        field_rules: vec![FieldRule { target: FieldTarget::Name("customerId".into()), action: Action::Hash }],
        hash_key: key(),
        ..Default::default()
    };
    let compiled = policy.compile().unwrap();
    let body = br#"{"a":{"email":"jane@example.com","customer_id":"c-42"},"b":{"email":"jane@example.com"}}"#;
    let once = compiled.apply_json(body, None).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&once.body).unwrap();
    let t1 = v["a"]["email"].as_str().unwrap();
    assert!(t1.starts_with("tok_") && t1.len() == 28, "{t1}");
    assert_eq!(t1, v["b"]["email"].as_str().unwrap());
    assert!(v["a"]["customer_id"].as_str().unwrap().starts_with("tok_"));
    let twice = compiled.apply_json(&once.body, None).unwrap();
    assert_eq!(twice.body, once.body);
    assert!(!twice.changed);
}

#[test]
fn hash_needs_a_key() {
    let policy = ExposurePolicy { class_actions: vec![(DataClass::Email, Action::Hash)], ..Default::default() };
    assert!(matches!(policy.compile(), Err(PolicyError::HashKey)));
    let short = ExposurePolicy { hash_key: Some(HashKey::new(*b"short")), ..policy };
    assert!(matches!(short.compile(), Err(PolicyError::HashKey)));
    assert_eq!(format!("{:?}", HashKey::new(*b"0123456789abcdef")), "HashKey(***)");
}

#[test]
fn private_key_blocks_by_default() {
    let body = r#"{"debug":{"key":"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n"}}"#;
    let (out, a) = json(&ExposurePolicy::default(), body);
    assert!(a.blocked && a.changed);
    assert!(out.is_empty());
    assert_eq!(a.findings[0].class, DataClass::PrivateKey);
    assert_eq!(a.findings[0].action, Action::Block);
    let t = ExposurePolicy::default().compile().unwrap().apply_text("-----BEGIN EC PRIVATE KEY-----\nabc").unwrap();
    assert!(t.blocked && t.body.is_empty());
}

#[test]
fn field_rules_by_pointer_and_name() {
    let policy = ExposurePolicy {
        field_rules: vec![
            FieldRule { target: FieldTarget::Pointer("/support/email".into()), action: Action::Allow },
            FieldRule { target: FieldTarget::Pointer("/items/*/internal".into()), action: Action::Redact },
            FieldRule { target: FieldTarget::Name("Date-Of-Birth".into()), action: Action::MaskKeepLast(4) },
            FieldRule { target: FieldTarget::Name("debug".into()), action: Action::Report },
        ],
        extra_sensitive_fields: vec!["mothersMaidenName".into()],
        ..Default::default()
    };
    let body = r#"{"support":{"email":"help@example.com"},"items":[{"id":1,"internal":{"x":1}},{"id":2,"internal":"y"}],"date_of_birth":"1990-04-01","MOTHERS_MAIDEN_NAME":"Smith","debug":"ok"}"#;
    let (out, a) = json(&policy, body);
    assert_eq!(
        out,
        r#"{"support":{"email":"help@example.com"},"items":[{"id":1},{"id":2}],"date_of_birth":"********01","debug":"ok"}"#
    );
    let locs: Vec<String> = a.findings.iter().map(|f| f.location.to_string()).collect();
    assert_eq!(locs, ["/items/0/internal", "/items/1/internal", "/date_of_birth", "/MOTHERS_MAIDEN_NAME", "/debug"]);
}

#[test]
fn sensitive_field_mask_is_fixed() {
    let policy =
        ExposurePolicy { class_actions: vec![(DataClass::SensitiveField, Action::Mask)], ..Default::default() };
    let (out, _) = json(&policy, r#"{"password":"correct horse","card_number":"4242424242424242","pin":1234}"#);
    assert_eq!(out, r#"{"password":"********","card_number":"********","pin":"********"}"#);
}

#[test]
fn keys_holding_data_are_masked() {
    let (out, a) = json(&ExposurePolicy::default(), r#"{"byEmail":{"jane@example.com":{"n":1}}}"#);
    assert_eq!(out, r#"{"byEmail":{"j***@example.com":{"n":1}}}"#);
    assert_eq!(a.findings[0].location.to_string(), "/byEmail/j***@example.com");
}

#[test]
fn escaped_strings_are_decoded_before_scanning() {
    let (out, _) = json(&ExposurePolicy::default(), r#"{"e":"jane\u0040example.com","n":"line\nbreak \"q\""}"#);
    assert_eq!(out, r#"{"e":"j***@example.com","n":"line\nbreak \"q\""}"#);
}

#[test]
fn shaping_projects_and_caps() {
    let policy = ExposurePolicy::default().compile().unwrap();
    let items: Vec<String> = (0..30)
        .map(|i| format!(r#"{{"id":{i},"name":"n{i}","city":"c","email":"u{i}@example.com","tags":[1,2,3]}}"#))
        .collect();
    let body = format!(r#"{{"items":[{}],"total":30,"debug":{{"sql":"select"}}}}"#, items.join(","));
    let shape = ShapeConfig {
        allow: vec!["/items/*/id".into(), "/items/*/name".into(), "/items/*/city".into(), "/total".into()],
        max_items: vec![ArrayCap { pointer: "/items".into(), max: 20 }],
        max_items_everywhere: None,
    }
    .compile()
    .unwrap();
    let a = policy.apply_json(body.as_bytes(), Some(&shape)).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 20);
    assert_eq!(v["items"][3], serde_json::json!({"id":3,"name":"n3","city":"c"}));
    assert_eq!(v["total"], 30);
    assert!(v.get("debug").is_none());
    assert!(a.findings.is_empty(), "projected-away e-mails are not findings");

    let cap_all = ShapeConfig { max_items_everywhere: Some(2), ..Default::default() }.compile().unwrap();
    let a = policy.apply_json(br#"{"a":[1,2,3],"b":{"c":[[1,2,3],[4],[5]]}}"#, Some(&cap_all)).unwrap();
    assert_eq!(a.body, br#"{"a":[1,2],"b":{"c":[[1,2],[4]]}}"#);

    // A scalar where the allow-list expects a container is not shown.
    let deep = ShapeConfig { allow: vec!["/a/b".into()], ..Default::default() }.compile().unwrap();
    let a = policy.apply_json(br#"{"a":"secret","x":1}"#, Some(&deep)).unwrap();
    assert_eq!(a.body, br#"{}"#);
}

#[test]
fn invalid_config_is_refused() {
    let bad_ptr = ExposurePolicy {
        field_rules: vec![FieldRule { target: FieldTarget::Pointer("items/0".into()), action: Action::Mask }],
        ..Default::default()
    };
    assert!(matches!(bad_ptr.compile(), Err(PolicyError::Pointer { index: 0, .. })));
    let empty = ExposurePolicy {
        field_rules: vec![FieldRule { target: FieldTarget::Name("_-".into()), action: Action::Mask }],
        ..Default::default()
    };
    assert!(matches!(empty.compile(), Err(PolicyError::EmptyFieldName { .. })));
    let mut nino = portcullis_exposure::NamedDetector::uk_nino();
    nino.pattern = "(unclosed".into();
    let bad_re = ExposurePolicy { named_detectors: vec![nino], ..Default::default() };
    assert!(matches!(bad_re.compile(), Err(PolicyError::Regex { .. })));
    let prefix = ExposurePolicy { token_prefix: "Tok-".into(), ..Default::default() };
    assert!(matches!(prefix.compile(), Err(PolicyError::TokenPrefix)));
    assert!(ShapeConfig { allow: vec!["/a/~2".into()], ..Default::default() }.compile().is_err());
}

#[test]
fn bad_bodies_are_errors_not_panics() {
    let p = ExposurePolicy { max_body_bytes: 64, max_depth: 4, ..Default::default() }.compile().unwrap();
    assert!(matches!(p.apply_json(b"{\"a\":", None), Err(ApplyError::InvalidJson { .. })));
    assert!(matches!(p.apply_json(b"\xff", None), Err(ApplyError::NotUtf8)));
    assert!(matches!(p.apply_json(&[b' '; 65], None), Err(ApplyError::TooLarge { .. })));
    assert!(matches!(p.apply_json(b"[[[[[1]]]]]", None), Err(ApplyError::TooDeep { limit: 4 })));
    assert!(p.apply_json(b"[[[1]]]", None).is_ok());
    let deep = "[".repeat(200) + &"]".repeat(200);
    let big = ExposurePolicy::default().compile().unwrap();
    assert!(matches!(big.apply_json(deep.as_bytes(), None), Err(ApplyError::TooDeep { .. })));
}

#[test]
fn malformed_json_is_refused_also_where_a_shape_drops_it() {
    let p = ExposurePolicy::default().compile().unwrap();
    let shape = ShapeConfig { allow: vec!["/id".into()], ..Default::default() }.compile().unwrap();
    for ok in [
        r#"{"id":1,"x":[1,-0.5e+3,true,false,null,"a\"\\\/\b\f\n\r\t\u00e9"]}"#,
        " [ ] ",
        r#""just a string""#,
        "-0",
        "1E400",
    ] {
        assert!(p.apply_json(ok.as_bytes(), None).is_ok(), "{ok}");
        assert!(p.apply_json(ok.as_bytes(), Some(&shape)).is_ok(), "{ok} (shaped)");
    }
    for (bad, line, column) in [
        (r#"{"id":1,"x":01}"#, 1, 14),
        (r#"{"id":1,"x":1.}"#, 1, 15),
        (r#"{"id":1,"x":-}"#, 1, 14),
        (r#"{"id":1,"x":1e}"#, 1, 15),
        (r#"{"id":1,"x":tru}"#, 1, 13),
        (r#"{"id":1,"x":"\q"}"#, 1, 15),
        (r#"{"id":1,"x":"\u12g4"}"#, 1, 15),
        ("{\"id\":1,\"x\":\"a\u{1}b\"}", 1, 15),
        (r#"{"id":1,"x":[1,]}"#, 1, 16),
        (r#"{"id":1,"x":{"a" 1}}"#, 1, 18),
        (r#"{"id":1,"x":{,}}"#, 1, 14),
        ("{\"id\":1}\n x", 2, 2),
        (r#"{"id":1"#, 1, 8),
        ("", 1, 1),
    ] {
        for s in [None, Some(&shape)] {
            match p.apply_json(bad.as_bytes(), s) {
                Err(ApplyError::InvalidJson { line: l, column: c }) => {
                    assert_eq!((l, c), (line, column), "{bad}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
    // Nesting is bounded where a shape drops it too.
    let shallow = ExposurePolicy { max_depth: 4, ..Default::default() }.compile().unwrap();
    let deep = br#"{"id":1,"x":[[[[1]]]]}"#;
    assert!(matches!(shallow.apply_json(deep, Some(&shape)), Err(ApplyError::TooDeep { limit: 4 })));
    assert!(shallow.apply_json(br#"{"id":1,"x":[[1]]}"#, Some(&shape)).is_ok());
}

#[test]
fn disabled_detectors_do_not_run() {
    let policy = ExposurePolicy { detectors: vec![DataClass::CardNumber], ..Default::default() };
    let (out, a) = json(&policy, r#"{"e":"jane@example.com","password":"x","c":"4242424242424242"}"#);
    assert_eq!(out, r#"{"e":"jane@example.com","password":"x","c":"************4242"}"#);
    assert_eq!(a.findings.len(), 1);
}

#[test]
fn report_records_without_changing() {
    let policy = ExposurePolicy { class_actions: vec![(DataClass::Phone, Action::Report)], ..Default::default() };
    let body = r#"{"phone":"+1 415 555 2671"}"#;
    let (out, a) = json(&policy, body);
    assert_eq!(out, body);
    assert!(!a.changed);
    assert_eq!(a.findings[0].action, Action::Report);
}

#[test]
fn text_bodies_mask_in_place() {
    let p = ExposurePolicy::default().compile().unwrap();
    let a = p.apply_text("Dear jane@example.com, your card 4242-4242-4242-4242 and SSN 536-22-6789.").unwrap();
    assert_eq!(
        String::from_utf8(a.body).unwrap(),
        "Dear j***@example.com, your card ************4242 and SSN ***-**-6789."
    );
    assert_eq!(a.findings[0].location, Location::Text { start: 5, end: 21 });
}

#[test]
fn numbers_serde_value_refuses_pass_through_untouched() {
    // Found by the exposure_json fuzz target: grammatical JSON, copied through as is.
    let body = r#"[42E2424242424242, {"k": 1E400}]"#;
    let (out, a) = json(&ExposurePolicy::default(), body);
    assert_eq!(out, body);
    assert!(!a.changed);
}

#[test]
fn sensitive_names_match_in_any_spelling_and_length() {
    let long = "a".repeat(70);
    let policy = ExposurePolicy {
        extra_sensitive_fields: vec![long.clone(), "Mothers_Maiden_Name".into()],
        ..Default::default()
    };
    let body = format!(
        r#"{{"{long}":"x","mothersMaidenName":"Smith","MOTHERS-MAIDEN-NAME":"Smith","mothers_maiden":"Smith","API_KEY":"k","apikeys":"k","token":"t","title":"t"}}"#
    );
    // Sensitive fields are redacted by default: the members go, the near-misses stay.
    let (out, _) = json(&policy, &body);
    assert_eq!(out, r#"{"mothers_maiden":"Smith","apikeys":"k","title":"t"}"#);
}
