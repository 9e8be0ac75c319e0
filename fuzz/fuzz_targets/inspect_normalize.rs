//! The decoding layers of `portcullis-inspect` run on every value of every request: they must
//! never panic, never grow their input, and stay bounded in the number of views they return.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_inspect::normalize;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for transport in [false, true] {
        let n = normalize::normalize(s, transport);
        assert!(!n.variants.is_empty() && n.variants.len() <= normalize::MAX_VARIANTS);
        assert_eq!(&*n.variants[0], s);
        for v in &n.variants {
            assert!(v.len() <= s.len(), "a decoded view is longer than its input");
        }
    }
    assert!(normalize::url_decode(s, true).len() <= s.len());
    assert!(normalize::html_decode(s).len() <= s.len());
    assert!(normalize::js_unescape(s).len() <= s.len());
    assert!(normalize::fold_unicode(s).len() <= s.len());
    let (folded, _) = normalize::fold_overlong(data);
    assert!(folded.chars().count() <= data.len());
    if let Some(b) = normalize::base64_text(s) {
        assert!(b.len() <= s.len());
    }
});
