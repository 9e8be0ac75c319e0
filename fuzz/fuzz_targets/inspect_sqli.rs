//! The SQL tokeniser and its grammar rules: no panic in any of the three quote contexts, and a
//! reported fingerprint is short and made of token kinds only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_inspect::sqli;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(f) = sqli::detect(s) {
        assert!(f.tokens.len() <= 16);
        assert!(portcullis_inspect::rules::rule(f.rule_id).is_some());
        assert!(f.tokens.bytes().all(|c| b"s1nkUEDFWIBfv&o!c(),;".contains(&c)), "{:?}", f.tokens);
    }
    for ctx in [sqli::Context::None, sqli::Context::SingleQuote, sqli::Context::DoubleQuote] {
        assert!(sqli::tokens(s, ctx).len() <= 64);
    }
    // The prefilter never hides a detection.
    if sqli::detect(s).is_some() {
        assert!(sqli::may_match(s));
    }
});
