//! A whole request through `Inspector::scan_request`: the body parsers (JSON walker, form,
//! multipart, XML) and every location. No panic, bounded findings, a consistent score.
//!
//! Input layout: byte 0 picks the content type, then `path \n query \n header-value \n body…`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_inspect::{InspectPolicy, Inspector, MAX_FINDINGS, RequestView, Verdict};

const TYPES: [&str; 6] = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=b",
    "application/xml",
    "text/plain",
    "application/vnd.api+json",
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(4, |c| *c == b'\n');
    let path = std::str::from_utf8(parts.next().unwrap_or_default()).unwrap_or("");
    let query = std::str::from_utf8(parts.next().unwrap_or_default()).ok();
    let header = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let policy = InspectPolicy {
        paranoia: sel % 4 + 1,
        headers: vec!["*".into()],
        body_cap: 1 << 16,
        ..InspectPolicy::default()
    };
    let Ok(compiled) = policy.compile() else {
        return;
    };
    let ins = Inspector::new(compiled);
    let req = RequestView::new("POST")
        .with_path_segments(path.split('/'))
        .with_query(query)
        .with_header("user-agent", header)
        .with_header("x-custom", header)
        .with_header("cookie", header)
        .with_body(Some(TYPES[usize::from(sel >> 2) % TYPES.len()]), body, sel & 0x80 != 0);
    let r = ins.scan_request(&req);
    assert!(r.findings.len() <= MAX_FINDINGS);
    assert!(r.findings.iter().map(|f| f.score).sum::<u32>() <= r.score);
    assert_eq!(r.verdict == Verdict::Allow, r.score < 5);
});
