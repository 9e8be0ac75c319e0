#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]
//! End-to-end HTTP hygiene: request smuggling shapes and path normalisation, on the wire.
//! Every refused request must never reach the upstream; every accepted spelling of a path must
//! reach the same route as its canonical form, and the upstream must see the canonical form.

use portcullis_testkit::{TestGateway, Upstream, raw_request, status_of};

#[tokio::test]
async fn smuggling_shapes_are_refused_before_the_upstream() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&TestGateway::yaml(&upstream, "")).await;
    let cases: &[(&str, &[u8])] = &[
        (
            "CL and TE",
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "TE and CL",
            b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        ),
        ("duplicate CL, same", b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"),
        (
            "duplicate CL, different",
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        ),
        ("CL list", b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc"),
        ("CL with sign", b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc"),
        ("CL negative", b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
        ("CL not a number", b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3a\r\n\r\nabc"),
        ("CL hex", b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\nabc"),
        ("TE gzip, chunked", b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
        ("TE identity", b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n"),
        ("TE xchunked", b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
        (
            "TE chunked twice",
            b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        ("TE space before colon", b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
        ("TE in HTTP/1.0", b"POST /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("TE vertical tab", b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n"),
        ("obs-fold", b"GET /a HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n"),
        ("obs-fold on TE", b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"),
        ("control char in value", b"GET /a HTTP/1.1\r\nHost: x\r\nX-Ctl: a\x01b\r\n\r\n"),
        ("NUL in value", b"GET /a HTTP/1.1\r\nHost: x\r\nX-Ctl: a\x00b\r\n\r\n"),
        ("DEL in value", b"GET /a HTTP/1.1\r\nHost: x\r\nX-Ctl: a\x7fb\r\n\r\n"),
        ("bare CR in value", b"GET /a HTTP/1.1\r\nHost: x\r\nX-Ctl: a\rb\r\n\r\n"),
        ("control char in name", b"GET /a HTTP/1.1\r\nHost: x\r\nX\x01Ctl: a\r\n\r\n"),
        ("space in name", b"GET /a HTTP/1.1\r\nHost: x\r\nX Ctl: a\r\n\r\n"),
        ("duplicate Host", b"GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"),
        ("missing Host", b"GET /a HTTP/1.1\r\n\r\n"),
        ("CONNECT", b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n"),
        ("TRACE", b"TRACE /a HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("space in request target", b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("HTTP/0.9 style", b"GET /a\r\n\r\n"),
    ];
    let mut failures = Vec::new();
    for (name, bytes) in cases {
        let resp = raw_request(gw.addr(), bytes).await;
        match status_of(&resp) {
            None | Some(400..=499) | Some(501) => {}
            other => failures.push(format!("{name}: got {other:?}: {:?}", resp.lines().next())),
        }
    }
    assert!(failures.is_empty(), "accepted smuggling shapes:\n{}", failures.join("\n"));
    assert_eq!(upstream.hits(), 0, "a refused request reached the upstream: {:?}", upstream.requests());
}

#[tokio::test]
async fn well_formed_bodies_pass_intact() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&TestGateway::yaml(&upstream, "")).await;
    let resp = raw_request(
        gw.addr(),
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert_eq!(status_of(&resp), Some(200), "{resp}");
    assert!(resp.ends_with("hello"), "{resp}");
    let chunked = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    let resp = raw_request(gw.addr(), chunked).await;
    assert_eq!(status_of(&resp), Some(200), "{resp}");
    let reqs = upstream.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(&reqs[0].body[..], b"hello");
    assert_eq!(&reqs[1].body[..], b"abcde");
}

#[tokio::test]
async fn a_pipelined_second_request_cannot_hide_in_a_body() {
    // A classic CL.TE desync: the front end must not read the trailing bytes as a second request
    // to a different route than the upstream would.
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&TestGateway::yaml(&upstream, "")).await;
    let attack = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n";
    let resp = raw_request(gw.addr(), attack).await;
    assert_eq!(status_of(&resp), Some(400), "{resp}");
    assert!(!upstream.requests().iter().any(|r| r.path.contains("admin")), "{:?}", upstream.requests());
}

/// Two routes: `/admin` (GET only) to one upstream, everything else to another. Every spelling
/// of `/admin` must be refused or reach the admin route with the canonical path.
#[tokio::test]
async fn every_spelling_of_a_path_reaches_the_same_policy() {
    let admin = Upstream::start().await;
    let public = Upstream::start().await;
    let yaml = format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams:
  adm: {{ targets: ["http://{}"] }}
  pub: {{ targets: ["http://{}"] }}
routes:
  - {{ name: admin, prefix: /admin, methods: [GET], upstream: adm }}
  - {{ name: public, prefix: /, upstream: pub }}
"#,
        admin.addr(),
        public.addr()
    );
    let gw = TestGateway::start(&yaml).await;
    // (raw target, expected: Some(canonical path at the admin upstream) or None = refused with 400)
    let table: &[(&str, Option<&str>)] = &[
        ("/admin", Some("/admin")),
        ("/%61dmin", Some("/admin")),
        ("/%61%64%6D%69%6E", Some("/admin")),
        ("/adm%69n/export", Some("/admin/export")),
        ("/x/../admin", Some("/admin")),
        ("/admin/.", Some("/admin/")),
        ("/admin/./export", Some("/admin/export")),
        ("/./admin", Some("/admin")),
        ("//admin", Some("/admin")),
        ("/x//../admin", Some("/admin")),
        ("/%2e/admin", Some("/admin")),
        ("/x/%2e%2e/admin", Some("/admin")),
        ("/x/.%2E/admin", Some("/admin")),
        ("/admin/export/..", Some("/admin/")),
        ("/admin?x=1", Some("/admin?x=1")),
        ("/%2e%2e/admin", None),
        ("/../admin", None),
        ("/admin/../../admin", None),
        ("/%2561dmin", None),
        ("/%252e%252e/admin", None),
        ("/x%2F..%2Fadmin", None),
        ("/x%2f..%2fadmin", None),
        ("/x/..%5Cadmin", None),
        ("/x\\..\\admin", None),
        ("/admin%00", None),
        ("/admin%00.json", None),
        ("/%c0%ae%c0%ae/admin", None),
        ("/%e0%80%ae%e0%80%ae/admin", None),
        ("/admin%", None),
        ("/admin%zz", None),
        ("/admin%0a", None),
    ];
    let mut failures = Vec::new();
    for (target, expected) in table {
        let before_admin = admin.hits();
        let before_public = public.hits();
        let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let resp = raw_request(gw.addr(), req.as_bytes()).await;
        let status = status_of(&resp);
        match expected {
            Some(canonical) => {
                if status != Some(200) || admin.hits() != before_admin + 1 {
                    failures.push(format!("{target}: expected the admin route, got {status:?}"));
                } else if admin.requests().last().map(|r| r.path.as_str()) != Some(*canonical) {
                    failures.push(format!(
                        "{target}: admin upstream saw {:?}, want {canonical}",
                        admin.requests().last().map(|r| r.path.clone())
                    ));
                }
            }
            None => {
                if status != Some(400) {
                    failures.push(format!("{target}: expected 400, got {status:?}"));
                }
            }
        }
        if public.hits() != before_public {
            failures.push(format!(
                "{target}: reached the public route ({:?})",
                public.requests().last().map(|r| r.path.clone())
            ));
        }
    }
    assert!(failures.is_empty(), "path confusion:\n{}", failures.join("\n"));
    // Method matching sees the canonical path too: a DELETE falls through the GET-only admin
    // route to the catch-all, the same way for every spelling.
    for target in ["/admin", "/x/../%61dmin", "//admin/."] {
        let req = format!("DELETE {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let resp = raw_request(gw.addr(), req.as_bytes()).await;
        assert_eq!(status_of(&resp), Some(200), "{resp}");
        let seen = public.requests().last().map(|r| r.path.clone()).unwrap();
        assert!(seen == "/admin" || seen == "/admin/", "{target} -> {seen}");
    }
}

#[tokio::test]
async fn path_refusals_are_problem_json_with_the_request_id() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&TestGateway::yaml(&upstream, "")).await;
    let resp = raw_request(gw.addr(), b"GET /%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_of(&resp), Some(400));
    let lower = resp.to_ascii_lowercase();
    assert!(lower.contains("content-type: application/problem+json"), "{resp}");
    let rid = lower.lines().find_map(|l| l.strip_prefix("x-request-id: ")).unwrap().trim().to_owned();
    let body: serde_json::Value = serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["request_id"], rid);
    assert_eq!(body["type"], "urn:portcullis:problem:bad-request");
    assert!(!resp.contains("passwd"), "the refusal must not echo the path: {resp}");
    let log = gw.access_log();
    assert_eq!(log[0]["reason"], "escapes-root");
    assert!(log[0]["path_template"].is_null());
}

#[tokio::test]
async fn absolute_form_targets_never_choose_the_destination() {
    // SSRF through the request line: the authority in an absolute-form target is a routing input
    // at most, never where the gateway connects.
    let configured = Upstream::start().await;
    let victim = Upstream::start().await;
    let gw = TestGateway::start(&TestGateway::yaml(&configured, "")).await;
    let req = format!("GET http://{}/internal/secrets HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", victim.addr());
    let resp = raw_request(gw.addr(), req.as_bytes()).await;
    assert_eq!(status_of(&resp), Some(200), "{resp}");
    assert_eq!(victim.hits(), 0, "the gateway connected where the client asked");
    assert_eq!(configured.requests()[0].path, "/internal/secrets", "origin-form upstream, canonical path");
}
