//! `portcullis_core::path::canonicalize` never panics, and whatever it accepts is canonical:
//! ASCII, free of dot segments, NUL and (unless allowed) encoded slashes, and a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::path::{PathOptions, canonicalize};

fn check(raw: &str, opts: &PathOptions) {
    let Ok(out) = canonicalize(raw, opts) else {
        return;
    };
    assert!(out.is_ascii(), "non-ASCII output {out:?} for {raw:?} ({opts:?})");
    assert!(out.starts_with('/'), "output {out:?} does not start with '/' for {raw:?} ({opts:?})");
    for bad in ["/../", "/./"] {
        assert!(!out.contains(bad), "output {out:?} contains {bad:?} for {raw:?} ({opts:?})");
    }
    assert!(
        !out.ends_with("/..") && !out.ends_with("/."),
        "output {out:?} ends in a dot segment for {raw:?} ({opts:?})"
    );
    assert!(!out.contains("%00"), "output {out:?} contains %00 for {raw:?} ({opts:?})");
    assert!(!out.contains('\\'), "output {out:?} contains a backslash for {raw:?} ({opts:?})");
    if !opts.danger_allow_encoded_slash {
        let upper = out.to_ascii_uppercase();
        assert!(
            !upper.contains("%2F") && !upper.contains("%5C"),
            "output {out:?} contains an encoded slash for {raw:?} ({opts:?})"
        );
    }
    if opts.merge_slashes {
        assert!(!out.contains("//"), "output {out:?} contains '//' for {raw:?} ({opts:?})");
    }
    // Every escape left in the output is '%' and two uppercase hex digits.
    let bytes = out.as_bytes();
    for (i, _) in out.match_indices('%') {
        let ok =
            bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b)));
        assert!(ok, "output {out:?} has a malformed escape at {i} for {raw:?} ({opts:?})");
    }
    let again = canonicalize(&out, opts);
    assert_eq!(again.as_deref(), Ok(out.as_str()), "not idempotent for {raw:?} ({opts:?})");
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    check(raw, &PathOptions::default());
    check(raw, &PathOptions { merge_slashes: false, ..PathOptions::default() });
    check(raw, &PathOptions { danger_allow_encoded_slash: true, ..PathOptions::default() });
    check(raw, &PathOptions { merge_slashes: false, danger_allow_encoded_slash: true });
});
