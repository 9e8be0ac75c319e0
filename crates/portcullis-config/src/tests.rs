use std::path::Path;
use std::time::Duration;

use super::*;

const MINIMAL: &str = r#"
listeners: [{ name: public, bind: "127.0.0.1:8080" }]
upstreams: { crm: { targets: ["http://127.0.0.1:3000"] } }
routes: [{ name: all, prefix: /, upstream: crm }]
"#;

fn errors(yaml: &str) -> Vec<ConfigError> {
    from_yaml(yaml, Path::new(".")).unwrap_err().0
}

#[test]
fn minimal_config_gets_secure_defaults() {
    let c = from_yaml(MINIMAL, Path::new(".")).unwrap();
    assert_eq!(c.admin_bind, "127.0.0.1:9901".parse().unwrap());
    assert!(c.trusted_proxies.is_empty());
    assert!(c.paths.merge_slashes && !c.paths.danger_allow_encoded_slash);
    assert!(!c.access_log.log_query);
    assert_eq!(c.timeouts.header_read, Duration::from_secs(10));
    assert_eq!(c.routes[0].max_request_body_bytes, 1024 * 1024);
    assert!(c.warnings.is_empty());
}

#[test]
fn unknown_keys_are_rejected_with_their_path() {
    let yaml = MINIMAL.replace("upstream: crm }", "upstream: crm, methdos: [GET] }");
    let e = errors(&yaml);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].path, "routes[0].methdos");
    assert!(e[0].message.contains("methdos"), "{}", e[0].message);
}

#[test]
fn wrong_types_are_rejected_with_their_path() {
    let yaml = MINIMAL.replace("[{ name: public,", "[{ h2c: maybe, name: public,");
    let e = errors(&yaml);
    assert_eq!(e[0].path, "listeners[0].h2c", "{e:?}");
}

#[test]
fn every_semantic_error_is_collected_with_path_and_fix() {
    let yaml = r#"
listeners: [{ name: a, bind: "nope" }, { name: a, bind: "127.0.0.1:1" }]
admin: { bind: "0.0.0.0:9901" }
timeouts: { idle: "forever", header_read: 0s }
trusted_proxies: ["10.0.0.0/8", "bogus"]
upstreams: { crm: { targets: ["ftp://x"], protocol: "http3" } }
routes:
  - { name: r, path: "/a/../b", upstream: crm }
  - { name: r, prefix: /, upstream: missing, methods: ["G T"] }
  - { name: both, path: /x, prefix: /x, upstream: crm }
"#;
    let e = errors(yaml);
    let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
    for expected in [
        "listeners[0].bind",
        "listeners[1].name",
        "admin.bind",
        "timeouts.idle",
        "timeouts.header_read",
        "trusted_proxies[1]",
        "upstreams.crm.targets[0]",
        "upstreams.crm.protocol",
        "routes[0].path",
        "routes[1].name",
        "routes[1].upstream",
        "routes[1].methods[0]",
        "routes[2]",
    ] {
        assert!(paths.contains(&expected), "missing {expected} in {paths:?}");
    }
    assert!(e.iter().all(|e| !e.fix.is_empty()));
}

#[test]
fn public_admin_needs_a_danger_flag_and_warns() {
    let yaml = format!("{MINIMAL}admin: {{ bind: \"0.0.0.0:9901\", danger_public_admin: true }}\n");
    let c = from_yaml(&yaml, Path::new(".")).unwrap();
    assert!(c.warnings.iter().any(|w| w.path == "admin.bind"));
}

#[test]
fn danger_settings_warn() {
    let yaml = r#"
listeners: [{ name: public, bind: "127.0.0.1:8080" }]
paths: { danger_allow_encoded_slash: true }
upstreams: { crm: { targets: ["https://crm.internal"], tls: { danger_skip_verify: true } } }
routes: [{ name: all, prefix: /, upstream: crm }]
"#;
    let c = from_yaml(yaml, Path::new(".")).unwrap();
    let w: Vec<&str> = c.warnings.iter().map(|w| w.path.as_str()).collect();
    assert!(w.contains(&"upstreams.crm.tls.danger_skip_verify"), "{w:?}");
    assert!(w.contains(&"paths.danger_allow_encoded_slash"), "{w:?}");
}

#[test]
fn tls_files_are_loaded_and_checked() {
    let dir = std::env::temp_dir().join(format!("pc-config-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("garbage.pem"), "not a pem").unwrap();
    let good = MINIMAL.replace(
        "bind: \"127.0.0.1:8080\" }",
        "bind: \"127.0.0.1:8443\", tls: { cert_file: cert.pem, key_file: key.pem } }",
    );
    let c = from_yaml(&good, &dir).unwrap();
    assert!(c.listeners[0].tls.is_some());
    assert!(c.files.iter().any(|f| f.ends_with("cert.pem")));

    let bad = good.replace("key_file: key.pem", "key_file: garbage.pem");
    let e = from_yaml(&bad, &dir).unwrap_err().0;
    assert_eq!(e[0].path, "listeners[0].tls.key_file");
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("other-key.pem"), other.signing_key.serialize_pem()).unwrap();
    let mismatched = good.replace("key_file: key.pem", "key_file: other-key.pem");
    let e = from_yaml(&mismatched, &dir).unwrap_err().0;
    assert_eq!(e[0].path, "listeners[0].tls.key_file");
    let missing = good.replace("cert_file: cert.pem", "cert_file: nope.pem");
    let e = from_yaml(&missing, &dir).unwrap_err().0;
    assert_eq!(e[0].path, "listeners[0].tls.cert_file");
}

#[test]
fn schema_describes_the_file() {
    let schema = json_schema();
    let text = schema.to_string();
    assert!(text.contains("listeners") && text.contains("danger_skip_verify"));
    assert_eq!(schema["additionalProperties"], serde_json::Value::Bool(false));
}

fn identity_yaml(route_auth: &str) -> String {
    format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:8080" }}]
upstreams: {{ crm: {{ targets: ["http://127.0.0.1:3000"] }} }}
identity:
  key_secret: "${{env:PC_TEST_KEY_SECRET}}"
  upstream_signing_secret: "${{env:PC_TEST_KEY_SECRET}}"
  issuers:
    idp: {{ issuer: "https://idp.example", audiences: [api], jwks_url: "https://idp.example/jwks" }}
routes:
  - name: customer
    path: /customers/{{customerId}}
    upstream: crm
    policy:
      auth: {route_auth}
"#
    )
}

#[test]
fn identity_routes_are_closed_by_default() {
    let dir = tempdir_with_secret();
    let yaml = identity_yaml("{}").replace("${env:PC_TEST_KEY_SECRET}", "${file:secret}");
    let e = from_yaml(&yaml, &dir).unwrap_err().0;
    assert!(e.iter().any(|e| e.path == "routes[0].policy.auth" && e.message.contains("no authentication")), "{e:?}");
    let yaml = identity_yaml("{}")
        .replace("${env:PC_TEST_KEY_SECRET}", "${file:secret}")
        .replace("    policy:\n      auth: {}\n", "");
    let e = from_yaml(&yaml, &dir).unwrap_err().0;
    assert!(e.iter().any(|e| e.path == "routes[0].policy.auth" && e.message.contains("closed by default")), "{e:?}");
}

#[test]
fn identity_route_auth_is_typed() {
    let dir = tempdir_with_secret();
    let yaml = identity_yaml(
        "{ methods: [api_key, jwt], scopes: [orders:read], owner: [{ path_param: customerId, equals: org_name }] }",
    )
    .replace("${env:PC_TEST_KEY_SECRET}", "${file:secret}");
    let c = from_yaml(&yaml, &dir).unwrap();
    let auth = &c.routes[0].auth;
    assert_eq!(auth.methods, vec![AuthMethod::ApiKey, AuthMethod::Jwt { issuers: vec!["idp".into()] }]);
    assert_eq!(auth.scopes, ["orders:read"]);
    assert_eq!(
        auth.owner[0],
        OwnerRule { source: OwnerSource::PathParam("customerId".into()), equals: OwnerValue::OrgName }
    );
    let id = c.identity.as_ref().unwrap();
    assert_eq!(id.issuers["idp"].algorithms, ["RS256", "ES256"]);
    assert_eq!(format!("{:?}", id.key_secret), "***");
}

#[test]
fn identity_rejects_unsafe_settings() {
    let dir = tempdir_with_secret();
    std::fs::write(dir.join("short"), "too short").unwrap();
    let yaml = identity_yaml(
        "{ methods: [api_key, magic], owner: [{ path_param: nope, equals: org_name }, { body: customer, equals: x }] }",
    )
    .replace("key_secret: \"${env:PC_TEST_KEY_SECRET}\"", "key_secret: \"${file:short}\"")
    .replace("${env:PC_TEST_KEY_SECRET}", "${file:secret}")
    .replace("jwks_url: \"https://idp.example/jwks\"", "jwks_url: \"http://idp.example/jwks\", algorithms: [none]");
    let e = from_yaml(&yaml, &dir).unwrap_err().0;
    let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
    for want in [
        "identity.key_secret",
        "identity.issuers.idp.algorithms[0]",
        "identity.issuers.idp.jwks_url",
        "routes[0].policy.auth.methods[1]",
        "routes[0].policy.auth.owner[0].path_param",
        "routes[0].policy.auth.owner[1].body",
        "routes[0].policy.auth.owner[1].equals",
    ] {
        assert!(paths.contains(&want), "missing {want} in {paths:?}");
    }
}

#[test]
fn inline_identity_secrets_are_refused() {
    let dir = tempdir_with_secret();
    let yaml = identity_yaml("{ public: true }")
        .replace("\"${env:PC_TEST_KEY_SECRET}\"", "an-inline-secret-that-is-long-enough-1234");
    let e = from_yaml(&yaml, &dir).unwrap_err().0;
    assert!(e.iter().any(|e| e.path == "identity.key_secret"), "{e:?}");
}

fn tempdir_with_secret() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pc-idcfg-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("secret"), "0123456789abcdef0123456789abcdef").unwrap();
    dir
}
