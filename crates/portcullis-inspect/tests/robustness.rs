#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]

//! Never panic, bounded output, linear time.
//!
//! Property tests stand in for cargo-fuzz where nightly is missing (the fuzz targets in
//! `fuzz/fuzz_targets/inspect_*.rs` drive the same entry points).

use std::time::{Duration, Instant};

use portcullis_inspect::normalize::{self, MAX_VARIANTS};
use portcullis_inspect::{
    InspectPolicy, Inspector, RequestView, cmdi, crlf, extract, ldap, log4shell, nosql, proto, scanner, sqli, ssti,
    traversal, xpath, xss, xxe,
};
use proptest::prelude::*;

/// Strings rich in the characters the decoders and tokenisers care about.
fn payloadish() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "'",
        "\"",
        "`",
        "<",
        ">",
        "/",
        "\\",
        "%",
        "%2",
        "%25",
        "%c0%ae",
        "%u00",
        "&",
        "&#",
        "&#x",
        "&lt;",
        ";",
        "|",
        "$",
        "${",
        "}",
        "{{",
        "(",
        ")",
        "[",
        "]",
        "*",
        "=",
        "-",
        "--",
        "#",
        "/*",
        "*/",
        "/*!",
        "\\u",
        "\\x",
        "\n",
        "\r",
        "\t",
        " ",
        "..",
        "union",
        "select",
        "or",
        "and",
        "1",
        "0x",
        "a",
        "é",
        "\u{560d}",
        "\u{ff1c}",
        "\0",
        "@@",
        "<script",
        "onerror=",
        "javascript:",
        "jndi:",
        "lower:",
        "::-",
        "<!ENTITY",
        "SYSTEM",
        "$where",
        "__proto__",
        "(|(",
        ")(",
        "::",
        "IFS",
        "=",
        "+",
        "QUIT",
        "Set-Cookie:",
    ]);
    prop::collection::vec(atoms, 0..64).prop_map(|v| v.concat())
}

fn all_detectors(s: &str) {
    let _ = sqli::detect(s);
    let _ = sqli::tokens(s, sqli::Context::SingleQuote);
    let _ = xss::detect(s);
    let _ = cmdi::detect(s);
    let _ = cmdi::code::detect(s);
    let _ = traversal::detect(s);
    let _ = nosql::detect(s);
    let _ = nosql::operator_key(s);
    let _ = ssti::detect(s);
    let _ = ldap::detect(s);
    let _ = xpath::detect(s);
    let _ = xxe::detect(s);
    let _ = crlf::detect(s, true);
    let _ = log4shell::detect(s);
    let _ = proto::detect(s);
    let _ = proto::key(s, Some("constructor"));
    let _ = scanner::user_agent(s);
    let _ = scanner::graphql_introspection(s);
}

fn check_normalize(s: &str) {
    for transport in [false, true] {
        let n = normalize::normalize(s, transport);
        assert!(!n.variants.is_empty() && n.variants.len() <= MAX_VARIANTS);
        assert_eq!(&*n.variants[0], s);
        for v in &n.variants {
            assert!(v.len() <= s.len().max(1), "variant longer than input: {} > {}", v.len(), s.len());
        }
    }
    assert!(normalize::url_decode(s, true).len() <= s.len());
    assert!(normalize::html_decode(s).len() <= s.len());
    assert!(normalize::js_unescape(s).len() <= s.len());
    assert!(normalize::fold_unicode(s).len() <= s.len());
    if let Some(b) = normalize::base64_text(s) {
        assert!(b.len() <= s.len());
    }
}

fn scan_everywhere(s: &str) {
    let ins = Inspector::new(
        InspectPolicy { headers: vec!["*".into()], paranoia: 4, ..InspectPolicy::default() }.compile().unwrap(),
    );
    for ct in [
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=a",
        "text/xml",
        "text/plain",
    ] {
        let req = RequestView::new("POST")
            .with_path_segments([s, "x"])
            .with_query(Some(s))
            .with_header("user-agent", s.as_bytes())
            .with_header("x-note", s.as_bytes())
            .with_header("cookie", s.as_bytes())
            .with_body(Some(ct), s.as_bytes(), false);
        let r = ins.scan_request(&req);
        assert!(r.findings.len() <= portcullis_inspect::MAX_FINDINGS);
        for f in &r.findings {
            // Display never echoes more than a short, redacted location.
            assert!(f.to_string().chars().count() < 200);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn detectors_never_panic_on_payloadish(s in payloadish()) {
        all_detectors(&s);
        check_normalize(&s);
    }

    #[test]
    fn detectors_never_panic_on_any_string(s in any::<String>()) {
        all_detectors(&s);
        check_normalize(&s);
    }

    #[test]
    #[cfg_attr(debug_assertions, ignore = "slow in debug; run with --release or --include-ignored")]
    fn request_scan_never_panics(s in payloadish()) {
        scan_everywhere(&s);
    }

    #[test]
    fn json_walker_never_panics(s in any::<String>()) {
        struct Nop;
        impl<'a> extract::JsonVisitor<'a> for Nop {
            fn key(&mut self, _: &[extract::Seg<'a>]) {}
            fn string(&mut self, _: &[extract::Seg<'a>], _: &str) {}
        }
        let _ = extract::walk_json(&s, &mut Nop);
    }
}

#[test]
fn pathological_inputs_stay_linear() {
    // Linearity, not speed: each pathological pattern is scanned at two sizes, side by side in
    // one run, and the larger (4× the bytes) must cost under 10× the smaller (a quadratic pass
    // costs 16×). The fastest of two runs of each size is kept, so a neighbour stealing the CPU
    // inflates neither side alone; a small absolute slack absorbs timer noise on tiny inputs.
    let n = 1 << 12;
    let patterns: [(&str, usize); 20] = [
        ("<a ", 1),
        ("<a x=\"", 1),
        ("${", 1),
        ("${lower:a}", 1),
        ("'", 4),
        ("(", 4),
        ("a /*", 1),
        ("%25", 1),
        ("&#", 2),
        ("\\u", 2),
        ("; ", 2),
        ("`", 4),
        ("../", 1),
        ("\n", 4),
        ("<!--#", 1),
        ("{{1*", 1),
        ("or 1=1 ", 1),
        ("<<<<", 1),
        ("\u{560d}", 1),
        ("[", 4),
    ];
    let ins = Inspector::new(InspectPolicy { paranoia: 4, ..InspectPolicy::default() }.compile().unwrap());
    let cost = |s: &str| {
        (0..2)
            .map(|_| {
                let start = Instant::now();
                all_detectors(s);
                let _ = ins.scan_request(&RequestView::new("POST").with_body(Some("text/plain"), s.as_bytes(), false));
                let _ =
                    ins.scan_request(&RequestView::new("POST").with_body(Some("application/xml"), s.as_bytes(), false));
                start.elapsed()
            })
            .min()
            .unwrap_or_default()
    };
    for (unit, times) in patterns {
        let small = unit.repeat(n * times);
        let large = unit.repeat(4 * n * times);
        let (t_small, t_large) = (cost(&small), cost(&large));
        println!("{unit:?}: {} B {t_small:?}, {} B {t_large:?}", small.len(), large.len());
        assert!(
            t_large < t_small * 10 + Duration::from_millis(20),
            "{unit:?}: {} B took {t_small:?} but {} B took {t_large:?} (superlinear)",
            small.len(),
            large.len()
        );
    }
}
