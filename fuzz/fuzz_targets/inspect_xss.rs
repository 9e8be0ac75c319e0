//! The HTML/attribute tokeniser and the JavaScript-sink check: no panic, rule ids from the
//! catalogue only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_inspect::{rules, xss};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(r) = xss::detect(s) {
        assert!(rules::rule(r).is_some(), "{r}");
    }
    let _ = xss::js_sink(s);
});
