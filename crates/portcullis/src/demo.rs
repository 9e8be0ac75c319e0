//! `portcullis demo`: the sample CRM API behind the gateway, with two organizations, their
//! consumers and keys, and a small JWT issuer whose keys the demo serves itself.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use portcullis_identity::admin::ConsumerSpec;
use portcullis_identity::apikey::KeyEnv;
use portcullis_identity::jwt::b64;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};

use crate::{DEMO_YAML, LogFormat, init_logging};

/// One demo consumer: (org, name, kind, scopes, roles, external subject = sample customer id).
type DemoConsumer =
    (&'static str, &'static str, &'static str, &'static [&'static str], &'static [&'static str], Option<&'static str>);

/// The demo's consumers.
const CONSUMERS: &[DemoConsumer] = &[
    ("acme", "acme-billing", "app", &["customers:read", "orders:read"], &[], None),
    ("acme", "alice", "user", &["customers:read", "orders:read"], &[], Some("1")),
    ("globex", "globex-partner", "app", &["customers:read"], &[], None),
    ("globex", "bob", "user", &["customers:read"], &[], Some("2")),
    ("acme", "ops-admin", "user", &["customers:read", "orders:read"], &["admin"], None),
];

/// Writes a file readable by its owner only.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut buf).map_err(|_| anyhow::anyhow!("no randomness"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The demo's identity provider: one ES256 key, served as a JWKS, and a token endpoint that
/// mints short-lived tokens for the demo users (loopback only; a real IdP replaces it).
struct DemoIdp {
    key: EcdsaKeyPair,
    issuer: String,
}

impl DemoIdp {
    fn new(issuer: String) -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("cannot generate the demo IdP key"))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| anyhow::anyhow!("cannot load the demo IdP key"))?;
        Ok(Self { key, issuer })
    }

    fn jwks(&self) -> String {
        let point = self.key.public_key().as_ref();
        let (x, y) = (&point[1..33], &point[33..65]);
        serde_json::json!({ "keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "demo-1",
            "x": b64::encode(x), "y": b64::encode(y),
        }]})
        .to_string()
    }

    fn token(&self, sub: &str, scope: &str) -> anyhow::Result<String> {
        let now = portcullis_identity::service::unix_now();
        let header = b64::encode(br#"{"alg":"ES256","typ":"JWT","kid":"demo-1"}"#);
        let claims = serde_json::json!({
            "iss": self.issuer, "aud": "crm-api", "sub": sub, "scope": scope,
            "iat": now, "exp": now + 3600,
        });
        let input = format!("{header}.{}", b64::encode(claims.to_string().as_bytes()));
        let sig = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .map_err(|_| anyhow::anyhow!("cannot sign the demo token"))?;
        Ok(format!("{input}.{}", b64::encode(sig.as_ref())))
    }
}

async fn serve_idp(listener: tokio::net::TcpListener, idp: Arc<DemoIdp>) {
    use axum::extract::{Query, State};
    use axum::routing::get;
    #[derive(serde::Deserialize)]
    struct TokenQuery {
        sub: String,
        #[serde(default)]
        scope: String,
    }
    async fn token(
        State(idp): State<Arc<DemoIdp>>,
        Query(q): Query<TokenQuery>,
    ) -> Result<String, axum::http::StatusCode> {
        let ok = q.sub.len() <= 64 && q.scope.len() <= 256;
        if !ok {
            return Err(axum::http::StatusCode::BAD_REQUEST);
        }
        idp.token(&q.sub, &q.scope).map(|t| t + "\n").map_err(|_| axum::http::StatusCode::INTERNAL_SERVER_ERROR)
    }
    let app = axum::Router::new()
        .route("/jwks.json", get(|State(idp): State<Arc<DemoIdp>>| async move { idp.jwks() }))
        .route("/token", get(token))
        .with_state(idp);
    let _ = axum::serve(listener, app).await;
}

pub(crate) async fn demo(
    listen: SocketAddr,
    admin: SocketAddr,
    data_dir: PathBuf,
    log_format: LogFormat,
) -> anyhow::Result<()> {
    init_logging(log_format);
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    // The demo starts fresh every time: remove what an earlier run left (only the demo's files).
    for f in ["portcullis.db", "portcullis.db-wal", "portcullis.db-shm"] {
        let _ = std::fs::remove_file(data_dir.join(f));
    }
    write_private(&data_dir.join("key.secret"), &random_hex(32)?)?;
    write_private(&data_dir.join("signing.secret"), &random_hex(32)?)?;
    // A fresh admin API token per run, so the CLI can drive the demo's admin listener.
    let admin_token = portcullis_admin::api::generate_admin_token().context("cannot generate the admin token")?;
    let admin_token_file = data_dir.join("admin.token");
    write_private(&admin_token_file, &format!("{}\n", admin_token.token))?;

    let sample = portcullis_sample::SampleApi::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("cannot start the sample API")?;
    let idp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("cannot start the demo IdP")?;
    let idp_addr = idp_listener.local_addr()?;
    let idp = Arc::new(DemoIdp::new(format!("http://{idp_addr}"))?);
    tokio::spawn(serve_idp(idp_listener, idp.clone()));

    let mut file =
        portcullis_config::parse_yaml(DEMO_YAML).map_err(|e| anyhow::anyhow!("embedded demo config: {e}"))?;
    for l in &mut file.listeners {
        l.bind = listen.to_string();
    }
    file.admin.bind = admin.to_string();
    if let Some(up) = file.upstreams.get_mut("crm") {
        up.targets = vec![format!("http://{}", sample.addr())];
    }
    // The contract: the sample API's own OpenAPI document, copied next to the demo's data (the
    // embedded config points at the source tree, which an installed binary does not have).
    std::fs::write(data_dir.join("crm-openapi.yaml"), portcullis_sample::OPENAPI_YAML)
        .with_context(|| format!("cannot write {}", data_dir.join("crm-openapi.yaml").display()))?;
    for r in &mut file.routes {
        if let Some(c) = &mut r.policy.contract {
            c.specs = vec!["crm-openapi.yaml".into()];
        }
    }
    if let Some(id) = &mut file.identity {
        id.store = Some(portcullis_config::FileStore {
            sqlite: Some(portcullis_config::FileSqlite { path: "portcullis.db".into() }),
            postgres: None,
        });
        id.key_secret = "${file:key.secret}".into();
        id.upstream_signing_secret = Some("${file:signing.secret}".into());
        id.admin_token_sha256 = Some(admin_token.sha256_hex.clone());
        if let Some(iss) = id.issuers.get_mut("demo-idp") {
            iss.issuer = format!("http://{idp_addr}");
            iss.jwks_url = Some(format!("http://{idp_addr}/jwks.json"));
        }
    }
    let config = portcullis_config::build(&file, &data_dir).map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let gateway = portcullis_proxy::Gateway::start(config, Default::default()).await?;
    let admin = portcullis_admin::AdminServer::start(admin, gateway.handle())
        .await
        .with_context(|| format!("cannot bind the admin listener on {admin}"))?;

    let svc = gateway.handle().identity().context("the demo config has no identity section")?.clone();
    let mut keys = Vec::new();
    for org in ["acme", "globex"] {
        svc.create_org("demo", org, Some(if org == "acme" { "pro" } else { "free" }.into())).await?;
    }
    for (org, name, kind, scopes, roles, subject) in CONSUMERS {
        let spec = ConsumerSpec {
            org: (*org).into(),
            name: (*name).into(),
            kind: Some((*kind).into()),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            roles: roles.iter().map(|s| (*s).to_owned()).collect(),
            plan: None,
            external_subject: subject.map(str::to_owned),
        };
        svc.create_consumer("demo", spec).await?;
        let issued = svc.issue_api_key("demo", name, None, None, Some("demo".into()), KeyEnv::Test).await?;
        keys.push((*org, *name, issued.key.expose().to_owned()));
    }
    let keys_file = data_dir.join("demo-keys.txt");
    let mut listing = String::from("# portcullis demo API keys (shown once; only their HMAC is stored)\n");
    for (org, name, key) in &keys {
        listing.push_str(&format!("{name}\t{org}\t{key}\n"));
    }
    write_private(&keys_file, &listing)?;

    let gw = gateway.listener_addr("public").unwrap_or(listen);
    let alice_token = idp.token("1", "customers:read orders:read")?;
    let files = BannerFiles { keys: &keys_file, admin_token: &admin_token_file };
    println!("{}", demo_banner(gw, admin.addr(), sample.addr(), idp_addr, &keys, files, &alice_token));
    gateway.wait_for_shutdown_signal().await;
    gateway.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

/// The files the banner points at.
struct BannerFiles<'a> {
    keys: &'a Path,
    admin_token: &'a Path,
}

fn demo_banner(
    gw: SocketAddr,
    admin: SocketAddr,
    upstream: SocketAddr,
    idp: SocketAddr,
    keys: &[(&str, &str, String)],
    files: BannerFiles<'_>,
    alice_token: &str,
) -> String {
    let key = |n: &str| keys.iter().find(|k| k.1 == n).map(|k| k.2.clone()).unwrap_or_default();
    let mut listing = String::new();
    for (org, name, k) in keys {
        listing.push_str(&format!("  {name:<15} {org:<7} {k}\n"));
    }
    let (alice, billing, bob) = (key("alice"), key("acme-billing"), key("bob"));
    format!(
        r#"portcullis demo is running.
  gateway      http://{gw}
  admin        http://{admin}   (/metrics, /healthz, /readyz)
  sample API   http://{upstream}  (the over-sharing CRM; only the gateway should face clients)
  demo IdP     http://{idp}   (/jwks.json; /token?sub=1&scope=customers:read mints a test JWT)

API keys (also in {keys_file}, mode 0600; shown once, only their HMAC is stored):
{listing}
Try:
  curl -i http://{gw}/customers/1                                  # 401: a credential is required
  curl -i -H 'x-api-key: {alice}' http://{gw}/customers/1
                                                                    # 200: alice is customer 1
  curl -i -H 'x-api-key: {alice}' http://{gw}/customers/2
                                                                    # 403 not-owner: BOLA stopped at the gateway
  curl -i -H 'x-api-key: {bob}' http://{gw}/orders/1
                                                                    # 403 insufficient-scope: bob lacks orders:read
  curl -i -H 'x-api-key: {billing}' http://{gw}/customers
                                                                    # 200: the acme-billing app lists customers
  curl -i -H 'x-api-key: {billing}' http://{gw}/admin/export
                                                                    # 403: only the admin role may export
  curl -i -H "authorization: Bearer $(curl -s 'http://{idp}/token?sub=1&scope=customers:read')" http://{gw}/customers/1
                                                                    # 200 with a JWT from the demo IdP
  curl -i --path-as-is http://{gw}/%2e%2e/etc/passwd                # 400: escapes the root
  curl -i http://{gw}/nope                                         # 404 problem+json, upstream never contacted
  curl -i 'http://{gw}/playground/echo?q=1%27%20OR%201=1--'           # 403 attack-detected, names the rule
  curl -i -H 'content-type: application/json' -d '{{"name":"O'"'"'Brien"}}' http://{gw}/playground/echo
                                                                    # 200: an apostrophe is not an attack
  curl -s http://{admin}/metrics | grep portcullis_auth

API contract (the sample API's OpenAPI document is enforced; refusals list each violation):
  curl -i -H 'x-api-key: {billing}' 'http://{gw}/customers?page=2&limit=5'
                                                                    # 200: matches the contract
  curl -i -H 'x-api-key: {billing}' 'http://{gw}/customers?limit=ten'
                                                                    # 400 /query/limit: not an integer
  curl -i -H 'x-api-key: {billing}' 'http://{gw}/customers?debug=true'
                                                                    # 400 /query/debug: undeclared parameter
  curl -i -H 'x-api-key: {billing}' -H 'content-type: application/json' -d '{{"name":"Eve","email":"eve@example.com","is_admin":true}}' http://{gw}/customers
                                                                    # 400 /body/is_admin: mass assignment refused
  curl -i -H 'x-api-key: {billing}' -H 'content-type: text/plain' -d 'hi' http://{gw}/customers
                                                                    # 415: media type not declared
  curl -i -H 'x-api-key: {billing}' http://{gw}/orders              # 405: the contract declares only POST /orders

Admin CLI (the admin token is in {admin_token_file}, mode 0600):
  PORTCULLIS_ADMIN=http://{admin} portcullis keys list --consumer alice --token-file {admin_token_file}
  PORTCULLIS_ADMIN=http://{admin} portcullis credentials hmac --consumer acme-billing --token-file {admin_token_file}

A JWT for alice (1 h): {alice_token}

Access log lines (one JSON object per request) go to stdout. Ctrl-C stops."#,
        keys_file = files.keys.display(),
        admin_token_file = files.admin_token.display(),
    )
}
