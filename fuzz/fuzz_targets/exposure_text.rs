//! `portcullis_exposure` text scanner and error-body classifier: no input makes them panic; the
//! masked text is a fixed point and nothing detected survives it.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portcullis_exposure::{Action, CompiledPolicy, DataClass, ExposurePolicy, NamedDetector, classify_error_body};

fn policy(action: Action) -> CompiledPolicy {
    ExposurePolicy {
        class_actions: DataClass::ALL.iter().map(|&c| (c, action)).collect(),
        named_detectors: vec![NamedDetector::uk_nino()],
        ..ExposurePolicy::default()
    }
    .compile()
    .unwrap()
}

static MASK: LazyLock<CompiledPolicy> = LazyLock::new(|| policy(Action::Mask));
static REPORT: LazyLock<CompiledPolicy> = LazyLock::new(|| policy(Action::Report));

fuzz_target!(|data: &[u8]| {
    let _ = classify_error_body(Some("application/json"), data);
    let _ = classify_error_body(None, data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    let once = MASK.apply_text(text).unwrap();
    let out = std::str::from_utf8(&once.body).unwrap();
    assert_eq!(MASK.apply_text(out).unwrap().body, once.body, "not a fixed point");
    assert!(REPORT.apply_text(out).unwrap().findings.is_empty(), "detected values survive");
});
