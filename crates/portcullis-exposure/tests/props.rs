//! Property tests: masking is idempotent, output stays valid JSON, nothing detected survives a
//! mask/redact/hash pass, and no input makes the walker, the text scanner or the error
//! classifier panic (these also stand in for the fuzz targets when cargo-fuzz cannot run).

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] functions unwrap too")]

use portcullis_exposure::{
    Action, ApplyError, CompiledPolicy, DataClass, ExposurePolicy, FieldRule, FieldTarget, HashKey, NamedDetector,
    ShapeConfig, classify_error_body,
};
use proptest::prelude::*;
use serde_json::{Map, Value};
use std::sync::LazyLock;

const SNIPPETS: &[&str] = &[
    "4242424242424242",
    "4242 4242 4242 4242",
    "378282246310005",
    "jane.doe@example.com",
    "x@y.io",
    "536-22-6789",
    "+1 415 555 2671",
    "(415) 555-2671",
    "020 7946 0958",
    "DE89 3704 0044 0532 0130 00",
    "GB82WEST12345698765432",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKl",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "pc_live_abcdefghijklmnopqrstuvwxyz0123456789",
    "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AB 12 34 56 C",
    "order 100023",
    "2024-01-15T10:30:00Z",
    "1,299.00",
    "550e8400-e29b-41d4-a716-446655440000",
];

const KEYS: &[&str] =
    &["id", "name", "email", "password", "apiKey", "card_number", "note", "items", "ssn", "city", "tok"];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(SNIPPETS).prop_map(str::to_owned),
        (proptest::sample::select(SNIPPETS), "[ a-z,.\\n\"\\\\]{0,8}", proptest::sample::select(SNIPPETS))
            .prop_map(|(a, mid, b)| format!("{a}{mid}{b}")),
        ("[a-z]{0,6}", proptest::sample::select(SNIPPETS), "[ a-z]{0,6}").prop_map(|(a, s, b)| format!("{a} {s} {b}")),
        "\\PC{0,20}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        text().prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        Just(Value::from(4_242_424_242_424_242_u64)),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(
                (prop_oneof![proptest::sample::select(KEYS).prop_map(str::to_owned), text()], inner),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Bytes that turn valid JSON into invalid JSON (or into other valid JSON).
const MUTATIONS: &[u8] = b"\"\\{}[],:0-.eE \n\x01xtn";

fn key() -> Option<HashKey> {
    Some(HashKey::new(*b"0123456789abcdef0123456789abcdef"))
}

/// Every class acted on with `action`; private keys are not generated (they block).
fn policy_with(action: Action) -> CompiledPolicy {
    ExposurePolicy {
        class_actions: DataClass::ALL.iter().map(|&c| (c, action)).collect(),
        named_detectors: vec![NamedDetector::uk_nino()],
        hash_key: key(),
        ..Default::default()
    }
    .compile()
    .unwrap()
}

static REPORT: LazyLock<CompiledPolicy> = LazyLock::new(|| policy_with(Action::Report));
static MASK: LazyLock<CompiledPolicy> = LazyLock::new(|| policy_with(Action::Mask));
static HASH: LazyLock<CompiledPolicy> = LazyLock::new(|| policy_with(Action::Hash));
static REDACT: LazyLock<CompiledPolicy> = LazyLock::new(|| policy_with(Action::Redact));
static MIXED: LazyLock<CompiledPolicy> = LazyLock::new(mixed);

fn acting() -> [&'static CompiledPolicy; 4] {
    [&MASK, &HASH, &REDACT, &MIXED]
}

fn mixed() -> CompiledPolicy {
    ExposurePolicy {
        class_actions: vec![(DataClass::Email, Action::Hash), (DataClass::Phone, Action::Redact)],
        field_rules: vec![
            FieldRule { target: FieldTarget::Name("note".into()), action: Action::Mask },
            FieldRule { target: FieldTarget::Pointer("/items/*/city".into()), action: Action::Hash },
            FieldRule { target: FieldTarget::Name("name".into()), action: Action::MaskKeepLast(2) },
        ],
        named_detectors: vec![NamedDetector::uk_nino()],
        hash_key: key(),
        ..Default::default()
    }
    .compile()
    .unwrap()
}

/// `policy` with a pointer rule that matches nothing the generators produce: pointer rules turn
/// the walker's lean path off, so this is the same policy walked the full way.
fn full_walk(policy: ExposurePolicy) -> (CompiledPolicy, CompiledPolicy) {
    let lean = policy.compile().unwrap();
    let mut full = policy;
    full.field_rules.push(FieldRule { target: FieldTarget::Pointer("/\u{1}never/*".into()), action: Action::Report });
    (lean, full.compile().unwrap())
}

static LEAN_AND_FULL: LazyLock<Vec<(CompiledPolicy, CompiledPolicy)>> = LazyLock::new(|| {
    let every = |action| ExposurePolicy {
        class_actions: DataClass::ALL.iter().map(|&c| (c, action)).collect(),
        hash_key: key(),
        ..Default::default()
    };
    vec![
        full_walk(ExposurePolicy::default()),
        full_walk(every(Action::Mask)),
        full_walk(every(Action::Redact)),
        full_walk(every(Action::Hash)),
        full_walk(every(Action::Report)),
        full_walk(ExposurePolicy { named_detectors: vec![NamedDetector::uk_nino()], ..Default::default() }),
    ]
});

/// Spellings of a sensitive name, or of a near miss, the way APIs write field names.
fn field_name() -> impl Strategy<Value = String> {
    let base = prop_oneof![
        proptest::sample::select(portcullis_exposure::DEFAULT_SENSITIVE_FIELDS).prop_map(str::to_owned),
        proptest::sample::select(KEYS).prop_map(str::to_owned),
        "[a-zA-Z0-9_ .-]{0,12}",
    ];
    (base, any::<u64>(), "[a-z0-9]{0,2}", "[a-z0-9]{0,2}").prop_map(|(name, bits, pre, post)| {
        let mut out = String::new();
        if bits & 1 != 0 {
            out.push_str(&pre);
        }
        for (i, c) in name.chars().enumerate() {
            let b = bits >> (i % 60 + 2);
            match c {
                '_' if b & 1 != 0 => out.push(['-', '.', ' ', '_'][usize::try_from((b >> 1) & 3).unwrap()]),
                '_' if b & 2 != 0 => {}
                c if b & 1 != 0 => out.extend(c.to_uppercase()),
                c => out.push(c),
            }
        }
        if bits & 2 != 0 {
            out.push_str(&post);
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The lean path (no shape, no pointer rule) gives what the full walk gives: same body,
    /// same findings in the same order, same flags, same errors.
    #[test]
    fn lean_path_matches_full_walk(v in json_value(), pretty in any::<bool>(), cut in any::<proptest::sample::Index>()) {
        let body = if pretty { serde_json::to_vec_pretty(&v).unwrap() } else { serde_json::to_vec(&v).unwrap() };
        // A cut body too: the lean path must refuse exactly where the full walk does.
        let cut = &body[..cut.index(body.len() + 1)];
        for (lean, full) in LEAN_AND_FULL.iter() {
            prop_assert_eq!(lean.apply_json(&body, None), full.apply_json(&body, None));
            prop_assert_eq!(lean.apply_json(cut, None), full.apply_json(cut, None));
        }
    }

    /// The field-name filter drops no sensitive name, whatever its case and separators.
    #[test]
    fn name_filter_loses_no_sensitive_name(name in field_name()) {
        let body = serde_json::to_vec(&serde_json::json!({ &name: "v", "k": 1 })).unwrap();
        let out = LEAN_AND_FULL[0].0.apply_json(&body, None).unwrap();
        let norm = portcullis_exposure::normalize_field_name(&name);
        let sensitive = portcullis_exposure::DEFAULT_SENSITIVE_FIELDS
            .iter()
            .any(|n| portcullis_exposure::normalize_field_name(n) == norm);
        prop_assert_eq!(out.changed, sensitive, "{:?} -> {:?}", name, String::from_utf8_lossy(&out.body));
    }

    #[test]
    fn json_masking_is_idempotent_and_valid(v in json_value(), pretty in any::<bool>()) {
        let body = if pretty { serde_json::to_vec_pretty(&v).unwrap() } else { serde_json::to_vec(&v).unwrap() };
        for p in acting() {
            let once = p.apply_json(&body, None).unwrap();
            prop_assert!(!once.blocked);
            let parsed: Result<Value, _> = serde_json::from_slice(&once.body);
            prop_assert!(parsed.is_ok(), "invalid output {:?}", String::from_utf8_lossy(&once.body));
            let twice = p.apply_json(&once.body, None).unwrap();
            prop_assert_eq!(&twice.body, &once.body);
            prop_assert!(!twice.changed);
        }
    }

    #[test]
    fn nothing_detected_survives(v in json_value()) {
        let body = serde_json::to_vec(&v).unwrap();
        let rescan = &*REPORT;
        for p in acting() {
            let out = p.apply_json(&body, None).unwrap();
            let left = rescan.apply_json(&out.body, None).unwrap();
            let detected: Vec<_> = left.findings.iter().filter(|f| f.class != DataClass::SensitiveField).collect();
            prop_assert!(detected.is_empty(), "{:?} left in {:?}", detected, String::from_utf8_lossy(&out.body));
        }
    }

    #[test]
    fn text_masking_is_idempotent_and_leaves_nothing(t in text()) {
        let rescan = &*REPORT;
        for p in [&*MASK, &*HASH, &*REDACT] {
            let once = p.apply_text(&t).unwrap();
            let s = String::from_utf8(once.body.clone()).unwrap();
            let twice = p.apply_text(&s).unwrap();
            prop_assert_eq!(&twice.body, &once.body);
            prop_assert!(rescan.apply_text(&s).unwrap().findings.is_empty(), "left in {:?}", s);
        }
    }

    #[test]
    fn shaped_output_is_valid_json(v in json_value(), cap in 0usize..4) {
        let body = serde_json::to_vec_pretty(&v).unwrap();
        let shape = ShapeConfig {
            allow: vec!["/items/*/id".into(), "/*/name".into(), "/email".into()],
            max_items_everywhere: Some(cap),
            ..Default::default()
        }
        .compile()
        .unwrap();
        let out = MIXED.apply_json(&body, Some(&shape)).unwrap();
        prop_assert!(serde_json::from_slice::<Value>(&out.body).is_ok());
    }

    /// The walker is the only parser: it must accept exactly what a JSON parser accepts, in the
    /// parts it walks and in the parts a shape drops unseen. Valid documents with one byte changed.
    #[test]
    fn walker_accepts_exactly_valid_json(
        v in json_value(),
        at in any::<proptest::sample::Index>(),
        with in proptest::sample::select(MUTATIONS),
        mutate in any::<bool>(),
        shaped in any::<bool>(),
    ) {
        let mut body = serde_json::to_vec(&v).unwrap();
        if mutate && !body.is_empty() {
            let i = at.index(body.len());
            body[i] = with;
        }
        // `\u` escapes of lone surrogates pass a parser that ignores values but fail decoding,
        // and invalid UTF-8 is `NotUtf8` here; both are outside what this property compares.
        prop_assume!(std::str::from_utf8(&body).is_ok() && !body.windows(2).any(|w| w == b"\\u"));
        let shape = ShapeConfig { allow: vec!["/items/*/id".into(), "/*/name".into()], ..Default::default() }
            .compile()
            .unwrap();
        let ours = MIXED.apply_json(&body, shaped.then_some(&shape));
        let json_ok = serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok();
        match ours {
            Ok(_) => prop_assert!(json_ok, "accepted {:?}", String::from_utf8_lossy(&body)),
            Err(ApplyError::InvalidJson { .. }) => prop_assert!(!json_ok, "refused {:?}", String::from_utf8_lossy(&body)),
            Err(e) => prop_assert!(false, "{e} for {:?}", String::from_utf8_lossy(&body)),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let p = &*MIXED;
        let _ = p.apply_json(&bytes, None);
        if let Ok(s) = std::str::from_utf8(&bytes) {
            let _ = p.apply_text(s);
        }
        let _ = classify_error_body(Some("application/json"), &bytes);
    }

    #[test]
    fn json_like_text_never_panics(s in "[\\[\\]{}\",:0-9a-z@\\\\u .+-]{0,64}") {
        let shape = ShapeConfig { allow: vec!["/a".into(), "/*/b".into()], max_items_everywhere: Some(1), ..Default::default() }
            .compile()
            .unwrap();
        let p = &*MIXED;
        if let Ok(out) = p.apply_json(s.as_bytes(), Some(&shape)) {
            prop_assert!(serde_json::from_slice::<Value>(&out.body).is_ok() || out.blocked);
        }
        let _ = p.apply_text(&s);
        let _ = classify_error_body(None, s.as_bytes());
    }
}
