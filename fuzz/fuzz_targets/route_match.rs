//! Route matchers compiled from config and run on every request: `PathPattern` and `HostMatch`
//! must never panic, whatever pattern and input they get.
//!
//! (The HTTP/1 guard in `portcullis-proxy/src/h1_guard.rs` is `pub(crate)`, so it cannot be
//! fuzzed from here; this target covers the public matchers instead.)
//!
//! Input layout: byte 0 holds flags, then `pattern \n subject [\n more subjects]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_config::{HostMatch, PathPattern};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut lines = text.split('\n');
    let pattern = lines.next().unwrap_or_default();
    let subjects: Vec<&str> = lines.collect();
    let prefix = flags & 1 == 1;

    if let Ok(p) = PathPattern::parse(pattern, prefix) {
        assert_eq!(p.is_prefix(), prefix);
        assert_eq!(p.source().as_ref(), pattern);
        // A literal pattern (no parameters) matches its own source.
        if !pattern.contains('{') {
            assert!(p.matches(pattern), "pattern {pattern:?} (prefix {prefix}) does not match itself");
        }
        for s in &subjects {
            let _ = p.matches(s);
        }
    }
    if let Some(h) = HostMatch::parse(pattern) {
        for s in &subjects {
            let _ = h.matches(s);
            let _ = h.matches(&s.to_ascii_lowercase());
        }
        if let HostMatch::Exact(name) = &h {
            assert!(h.matches(name), "host {name:?} does not match itself");
        }
    }
});
