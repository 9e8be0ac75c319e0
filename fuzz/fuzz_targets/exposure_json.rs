//! `portcullis_exposure` JSON walker: no input makes it panic; whatever it accepts comes out as
//! valid JSON, is a fixed point (applying the policy again changes nothing), and a re-scan of the
//! output finds nothing the policy masks, redacts or hashes. Byte 0 picks the policy and whether a
//! shape (projection and array caps) is applied.
//! Output validity is checked whenever `serde_json::Value` accepts the input.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portcullis_exposure::{
    Action, CompiledPolicy, DataClass, ExposurePolicy, FieldRule, FieldTarget, HashKey, NamedDetector, Shape,
    ShapeConfig,
};

fn policy(action: Action) -> CompiledPolicy {
    ExposurePolicy {
        class_actions: DataClass::ALL.iter().map(|&c| (c, action)).collect(),
        field_rules: vec![
            FieldRule { target: FieldTarget::Name("note".into()), action: Action::Mask },
            FieldRule { target: FieldTarget::Pointer("/items/*/city".into()), action: Action::Hash },
            FieldRule { target: FieldTarget::Pointer("/public".into()), action: Action::Allow },
        ],
        named_detectors: vec![NamedDetector::uk_nino()],
        hash_key: Some(HashKey::new(*b"fuzz-key-fuzz-key-fuzz-key-32byt")),
        max_depth: 32,
        ..ExposurePolicy::default()
    }
    .compile()
    .unwrap()
}

static POLICIES: LazyLock<[CompiledPolicy; 3]> =
    LazyLock::new(|| [policy(Action::Mask), policy(Action::Redact), policy(Action::Hash)]);
static REPORT: LazyLock<CompiledPolicy> = LazyLock::new(|| policy(Action::Report));
static SHAPE: LazyLock<Shape> = LazyLock::new(|| {
    ShapeConfig {
        allow: vec!["/items/*/id".into(), "/items/*/name".into(), "/*/email".into(), "/public".into()],
        max_items_everywhere: Some(3),
        ..ShapeConfig::default()
    }
    .compile()
    .unwrap()
});

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else { return };
    let policy = &POLICIES[usize::from(sel % 3)];
    let shape = (sel & 0x80 != 0).then(|| &*SHAPE);
    let Ok(once) = policy.apply_json(body, shape) else { return };
    if once.blocked {
        assert!(once.body.is_empty());
        return;
    }
    // Same parser on both sides: serde_json::Value refuses some grammatical JSON (`1E400`), which
    // the walker copies through untouched.
    if serde_json::from_slice::<serde_json::Value>(body).is_ok() {
        assert!(serde_json::from_slice::<serde_json::Value>(&once.body).is_ok(), "invalid JSON out");
    }
    let twice = policy.apply_json(&once.body, shape).unwrap();
    assert_eq!(twice.body, once.body, "not a fixed point");
    let left = REPORT.apply_json(&once.body, None).unwrap();
    assert!(
        left.findings.iter().all(|f| f.class == DataClass::SensitiveField || f.location.to_string().starts_with("/public")),
        "detected values survive: {:?}",
        left.findings
    );
});
