use proptest::prelude::*;
use serde_json::json;

use super::*;

fn limits() -> JsonLimits {
    JsonLimits { max_bytes: 256, max_depth: 3, max_string_bytes: 8, max_array_len: 3, max_object_members: 3 }
}

fn reject(input: &str, limits: &JsonLimits) -> JsonError {
    match parse(input.as_bytes(), limits) {
        Ok(value) => panic!("{input} was accepted as {value}"),
        Err(err) => err,
    }
}

#[test]
fn accepts_a_document_at_every_limit() {
    let input = r#"{"a": [1, 2, {"k": "12345678"}], "b": null, "c": -1.5e3}"#;
    let value = parse(input.as_bytes(), &limits()).unwrap();
    assert_eq!(value, json!({"a": [1, 2, {"k": "12345678"}], "b": null, "c": -1500.0}));
}

#[test]
fn accepts_scalars_at_the_root() {
    for (input, expected) in [
        ("true", json!(true)),
        ("null", json!(null)),
        ("18446744073709551615", json!(u64::MAX)),
        ("-9223372036854775808", json!(i64::MIN)),
        (r#""x\u00e9""#, json!("xé")),
    ] {
        assert_eq!(parse(input.as_bytes(), &limits()).unwrap(), expected);
    }
}

#[test]
fn size_limit() {
    let limits = JsonLimits { max_bytes: 10, ..limits() };
    assert!(parse(b"[12,3,456]", &limits).is_ok());
    let err = reject("[12,3,4567]", &limits);
    assert_eq!(err.kind, JsonErrorKind::TooLarge { max: 10 });
    assert_eq!(err.pointer, "");
}

#[test]
fn depth_limit() {
    assert!(parse(br#"{"a": [{}]}"#, &limits()).is_ok());
    let err = reject(r#"{"a": [{"b": []}]}"#, &limits());
    assert_eq!(err.kind, JsonErrorKind::TooDeep { max: 3 });
    assert_eq!(err.pointer, "/a/0/b");
}

#[test]
fn depth_limit_is_capped_and_deep_input_does_not_overflow_the_stack() {
    let limits = JsonLimits { max_depth: usize::MAX, max_bytes: usize::MAX, ..limits() };
    let ok = format!("{}{}", "[".repeat(MAX_DEPTH_CAP), "]".repeat(MAX_DEPTH_CAP));
    assert!(parse(ok.as_bytes(), &limits).is_ok());
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let err = reject(&deep, &limits);
    assert_eq!(err.kind, JsonErrorKind::TooDeep { max: MAX_DEPTH_CAP });
    assert_eq!(err.pointer, "/0".repeat(MAX_DEPTH_CAP));
    let unclosed = "{\"a\":".repeat(100_000);
    assert_eq!(reject(&unclosed, &limits).kind, JsonErrorKind::TooDeep { max: MAX_DEPTH_CAP });
}

#[test]
fn string_limit_on_values_and_keys_counts_unescaped_bytes() {
    assert!(parse(br#"["12345678"]"#, &limits()).is_ok());
    // Eight bytes once unescaped: é is two bytes, \u0041 is one.
    assert!(parse(br#"["\u00e9\u0041bcde"]"#, &limits()).is_ok());

    let err = reject(r#"{"a": ["x", "123456789"]}"#, &limits());
    assert_eq!(err.kind, JsonErrorKind::StringTooLong { max: 8 });
    assert_eq!(err.pointer, "/a/1");

    let err = reject(r#"["\u00e9\u00e9\u00e9\u00e9\u00e9"]"#, &limits());
    assert_eq!(err.kind, JsonErrorKind::StringTooLong { max: 8 });

    let err = reject(r#"{"a": {"123456789": 1}}"#, &limits());
    assert_eq!(err.kind, JsonErrorKind::StringTooLong { max: 8 });
    assert_eq!(err.pointer, "/a");
}

#[test]
fn array_limit() {
    assert!(parse(b"[[1, 2, 3]]", &limits()).is_ok());
    let err = reject("[[1, 2, 3, 4]]", &limits());
    assert_eq!(err.kind, JsonErrorKind::ArrayTooLong { max: 3 });
    assert_eq!(err.pointer, "/0/3");
}

#[test]
fn member_limit() {
    assert!(parse(br#"{"o": {"a": 1, "b": 2, "c": 3}}"#, &limits()).is_ok());
    let err = reject(r#"{"o": {"a": 1, "b": 2, "c": 3, "d": 4}}"#, &limits());
    assert_eq!(err.kind, JsonErrorKind::TooManyMembers { max: 3 });
    assert_eq!(err.pointer, "/o/d");
}

#[test]
fn duplicate_keys_are_rejected_at_every_level() {
    let cases = [
        (r#"{"role": "user", "role": "admin"}"#, "/role"),
        (r#"{"u": {"id": 1, "id": 1}}"#, "/u/id"),
        (r#"[{}, {"a": 1}, {"x": {"b": 1, "b": 2}}]"#, "/2/x/b"),
        // The same key after unescaping is the same key.
        (r#"{"admin": 1, "\u0061dmin": 2}"#, "/admin"),
        (r#"{"a/b~c": {"k": 1, "k": 2}}"#, "/a~1b~0c/k"),
    ];
    let limits = JsonLimits::default();
    for (input, pointer) in cases {
        let err = reject(input, &limits);
        assert_eq!(err.kind, JsonErrorKind::DuplicateKey, "{input}");
        assert_eq!(err.pointer, pointer, "{input}");
    }
    // Same key in sibling objects is fine.
    assert!(parse(br#"[{"a": 1}, {"a": 2}]"#, &limits).is_ok());
}

#[test]
fn syntax_errors_name_where_they_are() {
    let limits = JsonLimits::default();
    for (input, pointer) in [
        ("", ""),
        ("{", ""),
        (r#"{"a": [1, 2 3]}"#, "/a"),
        (r#"{"a": [1, {"b": tru}]}"#, "/a/1/b"),
        (r#"{"a": 1} x"#, ""),
        ("\u{feff}{}", ""),
        (r#"["\ud800"]"#, "/0"),
        ("[1,]", ""),
        ("{\"a\": \"\u{1}\"}", "/a"),
        ("[NaN]", "/0"),
    ] {
        let err = reject(input, &limits);
        assert!(matches!(err.kind, JsonErrorKind::Syntax { .. }), "{input}: {err}");
        assert_eq!(err.pointer, pointer, "{input}");
    }
    assert!(matches!(parse(&[b'"', 0xff, b'"'], &limits), Err(JsonError { kind: JsonErrorKind::Syntax { .. }, .. })));
}

#[test]
fn error_messages_do_not_quote_the_input() {
    let err = reject(r#"{"password": secret}"#, &JsonLimits::default());
    assert!(!err.to_string().contains("secret"), "{err}");
}

/// Any JSON value, nested a little.
fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse(&bytes, &limits());
        let _ = parse(&bytes, &JsonLimits::default());
    }

    #[test]
    fn never_panics_on_json_like_text(text in r#"[\[\]{}",:0-9a-z\\ .eE+-]{0,128}"#) {
        let _ = parse(text.as_bytes(), &limits());
    }

    #[test]
    fn agrees_with_serde_json_within_limits(value in arb_value(), pretty in any::<bool>()) {
        let text = if pretty {
            serde_json::to_string_pretty(&value).unwrap()
        } else {
            serde_json::to_string(&value).unwrap()
        };
        let ours = parse(text.as_bytes(), &JsonLimits::default()).unwrap();
        let theirs: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&ours, &theirs);
    }

    #[test]
    fn agrees_with_serde_json_on_what_is_json(text in r#"[\[\]{}",:0-9a-c .-]{0,48}"#) {
        // Inputs here have no duplicates only by chance; compare when ours accepts, and when
        // serde_json refuses, ours must refuse too.
        let ours = parse(text.as_bytes(), &JsonLimits::default());
        let theirs = serde_json::from_str::<Value>(&text);
        match (ours, theirs) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Ok(a), Err(e)) => prop_assert!(false, "accepted {} that serde_json refuses: {}", a, e),
            (Err(_), _) => {}
        }
    }
}
