//! One accept and one reject test per OpenAPI feature the contract enforces.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use portcullis_core::{AuthMethodUsed, Flow, Principal, RequestCtx, RequestId, Stage};

use crate::*;

const SPEC: &str = r#"
openapi: 3.0.3
info: { title: test, version: "1" }
security: [{ bearer: [] }]
paths:
  /users/me:
    get:
      operationId: me
      responses: { "200": { description: ok } }
  /users/{id}:
    parameters:
      - { name: id, in: path, required: true, schema: { type: integer, minimum: 1 } }
    get:
      operationId: getUser
      parameters:
        - { name: fields, in: query, schema: { type: array, items: { type: string, enum: [name, email] } } }
        - { name: ids, in: query, style: form, explode: false, schema: { type: array, items: { type: integer } } }
        - { name: tags, in: query, style: pipeDelimited, schema: { type: array, items: { type: string } } }
        - { name: filter, in: query, style: deepObject, schema: { type: object, properties: { age: { type: integer } } } }
        - { name: X-Trace, in: header, schema: { type: string, format: uuid } }
        - { name: session, in: cookie, schema: { type: string, minLength: 4 } }
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: { $ref: '#/components/schemas/User' }
        4XX:
          description: error
          content: { application/problem+json: { schema: { type: object } } }
    put:
      operationId: updateUser
      security: [{ oauth: [users:write] }]
      x-portcullis-scopes: [users:admin]
      requestBody:
        required: true
        content:
          application/json: { schema: { $ref: '#/components/schemas/User' } }
          application/x-www-form-urlencoded: { schema: { $ref: '#/components/schemas/User' } }
          multipart/form-data:
            schema:
              type: object
              properties: { name: { type: string }, avatar: { type: string, format: binary }, age: { type: integer } }
              required: [name]
      responses: { "204": { description: done } }
  /search:
    get:
      operationId: search
      x-portcullis-public: true
      parameters:
        - { name: q, in: query, required: true, schema: { type: string, maxLength: 10 } }
        - { name: limit, in: query, schema: { type: integer, format: int32, minimum: 1, maximum: 100 } }
      responses: { "200": { description: ok } }
components:
  securitySchemes:
    bearer: { type: http, scheme: bearer }
    oauth: { type: oauth2, flows: { clientCredentials: { tokenUrl: /t, scopes: { users:write: w } } } }
  schemas:
    User:
      type: object
      required: [id, name]
      properties:
        id: { type: integer, readOnly: true }
        name: { type: string, minLength: 1 }
        nickname: { type: string, nullable: true }
        password: { type: string, writeOnly: true }
        age: { type: integer, minimum: 0, exclusiveMinimum: true }
        homepage: { type: string, format: uri }
        balance: { type: integer, format: int64 }
"#;

fn contract() -> Contract {
    Contract::from_text(SPEC, Path::new("."), &CompileOptions::default()).unwrap().contract
}

fn head_violations(
    c: &Contract,
    method: Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Vec<Violation> {
    let Lookup::Found(op, params) = c.find(&method, path) else { panic!("{path} not found") };
    op.check_head(&RequestHead::new(query, headers, &params), true)
}

fn pointers(v: &[Violation]) -> Vec<&str> {
    v.iter().map(|v| v.pointer.as_str()).collect()
}

#[test]
fn undeclared_paths_and_methods_are_not_found() {
    let c = contract();
    assert!(matches!(c.find(&Method::GET, "/users/1"), Lookup::Found(..)));
    assert!(matches!(c.find(&Method::GET, "/admin"), Lookup::NotFound));
    assert!(matches!(c.find(&Method::GET, "/users/1/extra"), Lookup::NotFound));
    match c.find(&Method::DELETE, "/users/1") {
        Lookup::MethodNotAllowed(m) => assert_eq!(m, vec![Method::GET, Method::PUT]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn literal_paths_win_over_templates() {
    let c = contract();
    let Lookup::Found(op, _) = c.find(&Method::GET, "/users/me") else { panic!() };
    assert_eq!(&**op.id(), "me");
}

#[test]
fn path_parameters_are_typed() {
    let c = contract();
    let h = HeaderMap::new();
    assert!(head_violations(&c, Method::GET, "/users/7", None, &h).is_empty());
    assert_eq!(pointers(&head_violations(&c, Method::GET, "/users/abc", None, &h)), vec!["/path/id"]);
    assert_eq!(pointers(&head_violations(&c, Method::GET, "/users/0", None, &h)), vec!["/path/id"]);
}

#[test]
fn query_parameters_follow_style_and_explode() {
    let c = contract();
    let h = HeaderMap::new();
    let ok = "fields=name&fields=email&ids=1,2,3&tags=a|b&filter[age]=30";
    assert!(head_violations(&c, Method::GET, "/users/7", Some(ok), &h).is_empty());
    let v = head_violations(&c, Method::GET, "/users/7", Some("fields=phone&ids=1,x&filter[age]=old"), &h);
    let mut p = pointers(&v);
    p.sort_unstable();
    assert_eq!(p, vec!["/query/fields/0", "/query/filter/age", "/query/ids/1"], "{v:?}");
}

#[test]
fn required_and_bounded_query_parameters() {
    let c = contract();
    let h = HeaderMap::new();
    assert!(head_violations(&c, Method::GET, "/search", Some("q=shoes&limit=10"), &h).is_empty());
    let v = head_violations(&c, Method::GET, "/search", Some("limit=1000"), &h);
    assert_eq!(pointers(&v), vec!["/query", "/query/limit"], "{v:?}");
    assert!(v[0].reason.contains("\"q\""), "{v:?}");
    let v = head_violations(&c, Method::GET, "/search", Some("q=a-very-long-query"), &h);
    assert_eq!(pointers(&v), vec!["/query/q"]);
    // The reason never quotes the value.
    assert!(!v[0].reason.contains("a-very-long-query"), "{v:?}");
}

#[test]
fn undeclared_and_repeated_query_parameters_are_refused_in_strict_mode() {
    let c = contract();
    let h = HeaderMap::new();
    let v = head_violations(&c, Method::GET, "/search", Some("q=a&debug=1"), &h);
    assert_eq!(pointers(&v), vec!["/query/debug"]);
    assert_eq!(v[0].reason, "undeclared query parameter");
    let v = head_violations(&c, Method::GET, "/search", Some("q=a&q=b"), &h);
    assert_eq!(pointers(&v), vec!["/query/q"]);
    let Lookup::Found(op, params) = c.find(&Method::GET, "/search") else { panic!() };
    assert!(op.check_head(&RequestHead::new(Some("q=a&debug=1"), &h, &params), false).is_empty());
}

#[test]
fn header_and_cookie_parameters_are_validated() {
    let c = contract();
    let mut h = HeaderMap::new();
    h.insert("x-trace", HeaderValue::from_static("0b1d7c1e-39a1-4a5b-9b8e-0d1f2a3b4c5d"));
    h.insert(http::header::COOKIE, HeaderValue::from_static("session=abcdef; other=1"));
    assert!(head_violations(&c, Method::GET, "/users/7", None, &h).is_empty());
    h.insert("x-trace", HeaderValue::from_static("not-a-uuid"));
    h.insert(http::header::COOKIE, HeaderValue::from_static("session=ab"));
    let mut v = head_violations(&c, Method::GET, "/users/7", None, &h);
    v.sort_by(|a, b| a.pointer.cmp(&b.pointer));
    assert_eq!(pointers(&v), vec!["/cookie/session", "/header/x-trace"], "{v:?}");
}

fn put_op(c: &Contract) -> &Operation {
    let Lookup::Found(op, _) = c.find(&Method::PUT, "/users/7") else { panic!() };
    op
}

fn json_body(c: &Contract, body: &str) -> Vec<Violation> {
    let op = put_op(c);
    let choice = op.body_media(Some("application/json; charset=utf-8")).unwrap();
    op.check_body(choice, "application/json", body.as_bytes())
}

#[test]
fn json_bodies_are_validated() {
    let c = contract();
    assert!(json_body(&c, r#"{"name": "ann", "nickname": null, "age": 3}"#).is_empty());
    let v = json_body(&c, r#"{"name": "", "age": 0}"#);
    let mut p = pointers(&v);
    p.sort_unstable();
    assert_eq!(p, vec!["/body/age", "/body/name"], "{v:?}");
    assert_eq!(pointers(&json_body(&c, r#"{"nickname": "x"}"#)), vec!["/body"]);
    assert_eq!(pointers(&json_body(&c, "{not json")), vec!["/body"]);
}

#[test]
fn undeclared_and_read_only_properties_are_refused() {
    let c = contract();
    let v = json_body(&c, r#"{"name": "ann", "admin": true}"#);
    assert_eq!(pointers(&v), vec!["/body/admin"]);
    assert_eq!(v[0].reason, "undeclared property");
    let v = json_body(&c, r#"{"name": "ann", "id": 1}"#);
    assert_eq!(pointers(&v), vec!["/body/id"]);
    assert!(v[0].reason.contains("read-only"), "{v:?}");
    // writeOnly is fine in a request.
    assert!(json_body(&c, r#"{"name": "ann", "password": "x"}"#).is_empty());
}

#[test]
fn int64_fields_refuse_numbers_past_64_bits_before_rounding() {
    let c = contract();
    for ok in ["9223372036854775807", "-9223372036854775808", "0", "1e3", "1277.0", "-9.2e18"] {
        let v = json_body(&c, &format!(r#"{{"name": "ann", "balance": {ok}}}"#));
        assert!(v.is_empty(), "{ok}: {v:?}");
    }
    // Past 64 bits a literal parses as the nearest double (i64::MIN for the first), which the
    // bounds alone would let through; so does any double on or past ±2^63, and a fraction.
    for bad in ["-9223372036854775809", "9223372036854775808", "18446744073709551616", "-9.3e18", "1e300", "2.5"] {
        let v = json_body(&c, &format!(r#"{{"name": "ann", "balance": {bad}}}"#));
        assert!(!v.is_empty() && pointers(&v).iter().all(|p| *p == "/body/balance"), "{bad}: {v:?}");
    }
}

#[test]
fn content_type_must_be_declared() {
    let c = contract();
    let op = put_op(&c);
    assert!(op.body_media(Some("application/json")).is_ok());
    assert_eq!(op.body_media(Some("text/xml")).unwrap_err().pointer, "/header/content-type");
    assert_eq!(op.body_media(None).unwrap_err().pointer, "/header/content-type");
    let Lookup::Found(get, _) = c.find(&Method::GET, "/users/7") else { panic!() };
    assert_eq!(get.body_media(Some("application/json")).unwrap_err().pointer, "/body");
}

#[test]
fn form_bodies_are_validated() {
    let c = contract();
    let op = put_op(&c);
    let ct = "application/x-www-form-urlencoded";
    let choice = op.body_media(Some(ct)).unwrap();
    assert!(op.check_body(choice, ct, b"name=ann&age=4").is_empty());
    let v = op.check_body(choice, ct, b"name=ann&age=old&role=admin");
    let mut p = pointers(&v);
    p.sort_unstable();
    assert_eq!(p, vec!["/body/age", "/body/role"], "{v:?}");
}

#[test]
fn multipart_bodies_are_validated() {
    let c = contract();
    let op = put_op(&c);
    let ct = "multipart/form-data; boundary=b0";
    let choice = op.body_media(Some(ct)).unwrap();
    let ok = b"--b0\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nann\r\n--b0\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--b0--\r\n";
    assert!(op.check_body(choice, ct, ok).is_empty());
    let bad = b"--b0\r\nContent-Disposition: form-data; name=\"age\"\r\n\r\nold\r\n--b0--\r\n";
    let mut v = op.check_body(choice, ct, bad);
    v.sort_by(|a, b| a.pointer.cmp(&b.pointer));
    assert_eq!(pointers(&v), vec!["/body", "/body/age"], "{v:?}");
}

fn get_op(c: &Contract) -> &Operation {
    let Lookup::Found(op, _) = c.find(&Method::GET, "/users/7") else { panic!() };
    op
}

#[test]
fn responses_are_validated_per_status_and_media_type() {
    let c = contract();
    let op = get_op(&c);
    let ok = br#"{"id": 1, "name": "ann"}"#;
    assert!(op.check_response(200, Some("application/json"), ok, false).violations.is_empty());
    assert_eq!(pointers(&op.check_response(500, Some("application/json"), ok, false).violations), vec!["/status"]);
    // 4XX range with its own media type.
    assert!(op.check_response(404, Some("application/problem+json"), b"{}", false).violations.is_empty());
    assert_eq!(
        pointers(&op.check_response(404, Some("text/html"), b"<h1>", false).violations),
        vec!["/header/content-type"]
    );
    let bad = br#"{"id": "one", "name": "ann"}"#;
    assert_eq!(pointers(&op.check_response(200, Some("application/json"), bad, false).violations), vec!["/body/id"]);
}

#[test]
fn enforce_removes_undeclared_and_write_only_response_properties() {
    let c = contract();
    let op = get_op(&c);
    let leaky = br#"{"id": 1, "name": "ann", "password": "hunter2", "password_hash": "$2b$..."}"#;
    let monitor = op.check_response(200, Some("application/json"), leaky, false);
    assert_eq!(monitor.violations.len(), 2, "{:?}", monitor.violations);
    assert!(monitor.rewritten.is_none());
    let enforce = op.check_response(200, Some("application/json"), leaky, true);
    assert!(enforce.violations.is_empty(), "{:?}", enforce.violations);
    let body: serde_json::Value = serde_json::from_slice(enforce.rewritten.as_deref().unwrap()).unwrap();
    assert_eq!(body, serde_json::json!({"id": 1, "name": "ann"}));
    // What removal cannot fix stays a violation.
    let broken = op.check_response(200, Some("application/json"), br#"{"name": "ann", "extra": 1}"#, true);
    assert_eq!(pointers(&broken.violations), vec!["/body"]);
}

#[test]
fn constrained_fields_are_exposed_for_inspection() {
    let c = contract();
    let get = get_op(&c);
    assert!(get.constrained_fields().contains(&"path:1".to_owned()), "{:?}", get.constrained_fields());
    assert!(get.constrained_fields().contains(&"header:x-trace".to_owned()));
    assert!(!get.constrained_fields().iter().any(|f| f == "cookie:session"));
    let put = put_op(&c);
    assert!(put.constrained_fields().contains(&"body:/age".to_owned()), "{:?}", put.constrained_fields());
    assert!(!put.constrained_fields().contains(&"body:/name".to_owned()));
}

#[test]
fn unsecured_operations_are_listed_unless_public() {
    let spec = SPEC.replace("security: [{ bearer: [] }]\n", "");
    let l = Contract::from_text(&spec, Path::new("."), &CompileOptions::default()).unwrap();
    assert!(l.unsecured.contains(&"getUser".to_owned()));
    assert!(!l.unsecured.contains(&"search".to_owned()));
    assert!(!l.unsecured.contains(&"updateUser".to_owned()));
    assert!(contract().operations().iter().all(|o| o.security().is_some() || o.is_public()));
}

#[test]
fn spec_errors_are_all_reported() {
    let bad = SPEC
        .replace("operationId: me", "operationId: getUser")
        .replace("schema: { type: string, maxLength: 10 }", "schema: { type: string, maxLength: 10 }, style: weird");
    let e = Contract::from_text(&bad, Path::new("."), &CompileOptions::default()).unwrap_err();
    assert!(e.iter().any(|e| e.message.contains("also used")), "{e:?}");
    assert!(e.iter().any(|e| e.message.contains("unknown style")), "{e:?}");
    let e = Contract::from_text("swagger: '2.0'", Path::new("."), &CompileOptions::default()).unwrap_err();
    assert_eq!(e[0].pointer, "/openapi");
}

// ---- the stage ----

fn stage(detail: Detail, mode: Mode) -> ContractStage {
    let mut rc = RouteContract::new(Arc::new(contract()));
    rc.detail = detail;
    rc.mode = mode;
    ContractStage::new([(Arc::from("api"), Arc::new(rc))])
}

fn ctx(method: Method, path: &str, query: Option<&str>, principal: Option<Principal>) -> RequestCtx {
    let mut c = RequestCtx::new(RequestId::generate(), "127.0.0.1:1".parse().unwrap(), "l".into(), false);
    c.method = method;
    c.path = path.into();
    c.query = query.map(Into::into);
    c.route = Some("api".into());
    c.principal = principal.map(Arc::new);
    c
}

fn parts(method: Method, headers: &[(&'static str, &'static str)]) -> http::request::Parts {
    let mut b = http::Request::builder().method(method).uri("/");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

fn caller(method: AuthMethodUsed, scopes: &[&str]) -> Principal {
    let mut p = Principal::new(method);
    p.scopes = scopes.iter().map(|s| Arc::from(*s)).collect();
    p
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
}

fn status(f: &Flow) -> u16 {
    match f {
        Flow::Respond(r) => r.status().as_u16(),
        Flow::Continue => 0,
    }
}

#[test]
fn the_stage_refuses_with_a_problem_listing_violations_in_full_mode() {
    let s = stage(Detail::Full, Mode::Enforce);
    let mut c = ctx(Method::GET, "/search", Some("q=a&limit=0&debug=1"), None);
    let f = run(s.on_request(&mut parts(Method::GET, &[]), &mut c)).unwrap();
    let Flow::Respond(r) = f else { panic!() };
    assert_eq!(r.status(), 400);
    let doc: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(doc["type"], "urn:portcullis:problem:contract-violation");
    assert_eq!(doc["request_id"], c.request_id.as_str());
    let ptrs: Vec<&str> =
        doc["violations"].as_array().unwrap().iter().map(|v| v["pointer"].as_str().unwrap()).collect();
    assert_eq!(ptrs, vec!["/query/debug", "/query/limit"]);
    assert_eq!(c.decision, portcullis_core::Decision::Deny { stage: "contract", reason: "contract-violation" });
}

#[test]
fn minimal_detail_hides_the_list_and_monitor_mode_lets_through() {
    let s = stage(Detail::Minimal, Mode::Enforce);
    let mut c = ctx(Method::GET, "/search", Some("limit=0"), None);
    let Flow::Respond(r) = run(s.on_request(&mut parts(Method::GET, &[]), &mut c)).unwrap() else { panic!() };
    let doc: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert!(doc.get("violations").is_none());
    assert_eq!(doc["detail"], "2 violations of the API contract");
    let s = stage(Detail::Full, Mode::Monitor);
    let mut c = ctx(Method::GET, "/search", Some("limit=0"), None);
    assert!(matches!(run(s.on_request(&mut parts(Method::GET, &[]), &mut c)).unwrap(), Flow::Continue));
    assert_eq!(c.decision, portcullis_core::Decision::Allow);
}

#[test]
fn the_stage_answers_404_and_405_for_what_the_contract_does_not_declare() {
    let s = stage(Detail::Full, Mode::Enforce);
    let mut c = ctx(Method::GET, "/internal/debug", None, None);
    assert_eq!(status(&run(s.on_request(&mut parts(Method::GET, &[]), &mut c)).unwrap()), 404);
    let mut c = ctx(Method::DELETE, "/users/1", None, None);
    let Flow::Respond(r) = run(s.on_request(&mut parts(Method::DELETE, &[]), &mut c)).unwrap() else { panic!() };
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()[http::header::ALLOW], "GET, PUT");
}

#[test]
fn operation_security_is_checked_against_the_caller() {
    let s = stage(Detail::Full, Mode::Enforce);
    let ok = || caller(AuthMethodUsed::Jwt, &[]);
    // Document-level bearer: any bearer-like credential, no credential refused.
    let mut c = ctx(Method::GET, "/users/1", None, Some(ok()));
    assert_eq!(status(&run(s.on_request(&mut parts(Method::GET, &[]), &mut c)).unwrap()), 0);
    let mut c = ctx(Method::GET, "/users/1", None, None);
    assert_eq!(status(&run(s.on_request(&mut parts(Method::GET, &[]), &mut c)).unwrap()), 401);
    // Public operation.
    let mut c = ctx(Method::GET, "/search", Some("q=x"), None);
    assert_eq!(status(&run(s.on_request(&mut parts(Method::GET, &[]), &mut c)).unwrap()), 0);
    // OAuth scopes plus x-portcullis-scopes, and a scheme the method does not satisfy.
    let put = || parts(Method::PUT, &[("content-type", "application/json"), ("content-length", "2")]);
    let mut c = ctx(Method::PUT, "/users/1", None, Some(caller(AuthMethodUsed::Jwt, &["users:write", "users:admin"])));
    assert_eq!(status(&run(s.on_request(&mut put(), &mut c)).unwrap()), 0);
    let mut c = ctx(Method::PUT, "/users/1", None, Some(caller(AuthMethodUsed::Jwt, &["users:write"])));
    assert_eq!(status(&run(s.on_request(&mut put(), &mut c)).unwrap()), 403);
    let mut c =
        ctx(Method::PUT, "/users/1", None, Some(caller(AuthMethodUsed::Basic, &["users:write", "users:admin"])));
    assert_eq!(status(&run(s.on_request(&mut put(), &mut c)).unwrap()), 401);
}

#[test]
fn the_stage_validates_bodies_and_media_types() {
    let s = stage(Detail::Full, Mode::Enforce);
    let who = || Some(caller(AuthMethodUsed::Jwt, &["users:write", "users:admin"]));
    let mut c = ctx(Method::PUT, "/users/1", None, who());
    let mut p = parts(Method::PUT, &[("content-type", "text/csv"), ("content-length", "3")]);
    assert_eq!(status(&run(s.on_request(&mut p, &mut c)).unwrap()), 415);
    let mut c = ctx(Method::PUT, "/users/1", None, who());
    let mut p = parts(Method::PUT, &[]);
    assert_eq!(status(&run(s.on_request(&mut p, &mut c)).unwrap()), 400, "a required body is missing");
    let mut c = ctx(Method::PUT, "/users/1", None, who());
    let mut p = parts(Method::PUT, &[("content-type", "application/json"), ("content-length", "30")]);
    assert_eq!(status(&run(s.on_request(&mut p, &mut c)).unwrap()), 0);
    assert!(c.buffer_request_body.is_some());
    let mut body = Bytes::from_static(br#"{"name": "x", "id": 5}"#);
    assert_eq!(status(&run(s.on_request_body(&mut body, &mut c)).unwrap()), 400);
    let mut c = ctx(Method::PUT, "/users/1", None, who());
    let mut p = parts(Method::PUT, &[("content-type", "application/json"), ("content-length", "30")]);
    run(s.on_request(&mut p, &mut c)).unwrap();
    let mut body = Bytes::from_static(br#"{"name": "x"}"#);
    assert_eq!(status(&run(s.on_request_body(&mut body, &mut c)).unwrap()), 0);
}

#[test]
fn the_stage_fixes_or_refuses_responses() {
    let s = stage(Detail::Full, Mode::Enforce);
    let run_response = |status_code: u16, body: &'static [u8]| {
        let mut c = ctx(Method::GET, "/users/1", None, Some(caller(AuthMethodUsed::Jwt, &[])));
        let mut p = parts(Method::GET, &[]);
        run(s.on_request(&mut p, &mut c)).unwrap();
        assert_eq!(p.headers[http::header::ACCEPT_ENCODING], "identity");
        let mut rp = http::Response::builder()
            .status(status_code)
            .header("content-type", "application/json")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert_eq!(status(&run(s.on_response(&mut rp, &mut c)).unwrap()), 0);
        let mut b = Bytes::from_static(body);
        let f = run(s.on_response_body(&mut b, &mut c)).unwrap();
        (status(&f), b)
    };
    let (st, b) = run_response(200, br#"{"id": 1, "name": "ann", "ssn": "078-05-1120"}"#);
    assert_eq!(st, 0);
    assert_eq!(&b[..], br#"{"id":1,"name":"ann"}"#);
    let (st, _) = run_response(200, br#"{"id": "x", "name": "ann"}"#);
    assert_eq!(st, 502);
    let (st, _) = run_response(500, br#"{"trace": "at db.rs:42"}"#);
    assert_eq!(st, 502);
}

#[test]
fn duplicate_keys_and_parser_limits_are_refused() {
    let c = contract();
    let v = json_body(&c, r#"{"name": "ann", "name": "admin"}"#);
    assert_eq!(pointers(&v), vec!["/body/name"]);
    assert!(v[0].reason.contains("duplicate"), "{v:?}");
    let op = put_op(&c);
    let choice = op.body_media(Some("application/json")).unwrap();
    let limits = json::JsonLimits { max_depth: 2, ..json::JsonLimits::default() };
    let (v, _) = op.check_body_value(choice, "application/json", br#"{"name": "a", "x": {"y": {}}}"#, &limits);
    assert_eq!(pointers(&v), vec!["/body/x/y"], "{v:?}");
}

#[test]
fn url_fields_go_through_the_ssrf_guard() {
    let s = stage(Detail::Full, Mode::Enforce);
    let who = || Some(caller(AuthMethodUsed::Jwt, &["users:write", "users:admin"]));
    let put_body = |body: &[u8]| {
        let mut c = ctx(Method::PUT, "/users/1", None, who());
        let mut p = parts(Method::PUT, &[("content-type", "application/json"), ("content-length", "80")]);
        run(s.on_request(&mut p, &mut c)).unwrap();
        let mut b = Bytes::copy_from_slice(body);
        match run(s.on_request_body(&mut b, &mut c)).unwrap() {
            Flow::Respond(r) => serde_json::from_slice::<serde_json::Value>(r.body()).unwrap(),
            Flow::Continue => serde_json::Value::Null,
        }
    };
    assert_eq!(put_body(br#"{"name": "a", "homepage": "https://93.184.215.14/about"}"#), serde_json::Value::Null);
    for bad in [
        &br#"{"name": "a", "homepage": "http://169.254.169.254/latest/meta-data/"}"#[..],
        br#"{"name": "a", "homepage": "http://127.0.0.1:9901/metrics"}"#,
        br#"{"name": "a", "homepage": "gopher://93.184.215.14/"}"#,
        br#"{"name": "a", "homepage": "http://localhost/"}"#,
    ] {
        let doc = put_body(bad);
        assert_eq!(doc["violations"][0]["pointer"], "/body/homepage", "{doc}");
        let reason = doc["violations"][0]["reason"].as_str().unwrap();
        assert!(reason.starts_with("URL refused"), "{reason}");
        assert!(!reason.contains("169.254") && !reason.contains("127.0") && !reason.contains("localhost"), "{reason}");
    }
}
