//! The admin subcommands (`admin-token`, `orgs`, `consumers`, `keys`, `credentials`, `routes`,
//! `suspensions`, `policies`, `audit`): thin clients of the admin API's `/v1/` endpoints over HTTP; and `sign`,
//! which computes a `PC-HMAC-SHA256` header offline so curl users can call HMAC routes.
//!
//! The token comes from `PORTCULLIS_ADMIN_TOKEN` or `--token-file`, never from a flag value (it
//! would show in `ps` and in shell history); so do passwords (stdin or `PORTCULLIS_PASSWORD`)
//! and signing secrets (`--secret-file`). Output is a table for people, `--json` for
//! programs. Exit codes: 0 done, 1 the API (or the network) said no, 2 usage.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Args, Subcommand};
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// Where the admin API listens unless told otherwise.
const DEFAULT_ADMIN: &str = "http://127.0.0.1:9901";
/// How long one API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read from the API.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
const TOKEN_ENV: &str = "PORTCULLIS_ADMIN_TOKEN";
const SHOWN_ONCE: &str = "this key is shown once and not again: store it now, it cannot be recovered";
const SECRET_SHOWN_ONCE: &str =
    "this signing secret is shown once and not again: store it now (e.g. in a 0600 file), it cannot be recovered";
const PASSWORD_ENV: &str = "PORTCULLIS_PASSWORD";
/// Largest PEM file or request body `sign` and `credentials cert` read.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The admin subcommands, flattened into the top-level command.
#[derive(Subcommand)]
pub(crate) enum AdminCommand {
    /// Generate an admin API token (256 random bits) and print the SHA-256 to put in the config.
    AdminToken {
        /// Write the token to this new file (mode 0600) instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Organizations: create, list, suspend, resume.
    Orgs {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: OrgsCmd,
    },
    /// Consumers (users, apps, services): create, list, show, suspend, resume.
    Consumers {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: ConsumersCmd,
    },
    /// API keys: create (shown once), list, rotate, revoke, suspend, resume.
    Keys {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Other credentials: passwords (HTTP Basic), HMAC signing keys, client certificates.
    Credentials {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: CredentialsCmd,
    },
    /// Print an `Authorization: PC-HMAC-SHA256 …` header for one request (offline; for curl).
    Sign(SignArgs),
    /// Route kill switches: suspend, resume.
    Routes {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: RoutesCmd,
    },
    /// List the suspensions in force.
    Suspensions {
        #[command(flatten)]
        conn: Conn,
    },
    /// Run-time response-shaping policies: set, show, list, delete (every node within a second).
    Policies {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: PoliciesCmd,
    },
    /// Show the admin audit trail, oldest first.
    Audit {
        #[command(flatten)]
        conn: Conn,
        /// Only entries after this sequence number.
        #[arg(long, default_value_t = 0)]
        since: i64,
        /// At most this many entries (1-1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

/// How to reach the admin API.
#[derive(Args)]
pub(crate) struct Conn {
    /// The admin listener's URL.
    #[arg(long, global = true, env = "PORTCULLIS_ADMIN", default_value = DEFAULT_ADMIN)]
    admin: String,
    /// Read the admin token from this file (default: the PORTCULLIS_ADMIN_TOKEN variable).
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
pub(crate) enum OrgsCmd {
    /// Create an organization.
    Create {
        /// Its name ([a-z0-9-_.], 1-64).
        name: String,
        /// Rate-limit/quota plan.
        #[arg(long)]
        plan: Option<String>,
    },
    /// List organizations.
    List,
    /// Suspend an organization: every consumer in it is refused.
    Suspend(SuspendArgs),
    /// Lift an organization's suspension.
    Resume {
        /// The organization's name.
        name: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum ConsumersCmd {
    /// Create a consumer in an organization.
    Create {
        /// Its name ([a-z0-9-_.], 1-64).
        name: String,
        /// Its organization.
        #[arg(long)]
        org: String,
        /// Granted scopes, comma-separated.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Roles, comma-separated.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// user, app or service.
        #[arg(long)]
        kind: Option<String>,
        /// Rate-limit/quota plan (overrides the organization's).
        #[arg(long)]
        plan: Option<String>,
        /// JWT `sub` or certificate subject mapped to this consumer.
        #[arg(long)]
        external_subject: Option<String>,
    },
    /// List consumers.
    List {
        /// Only this organization's.
        #[arg(long)]
        org: Option<String>,
    },
    /// Show one consumer.
    Show {
        /// Its name.
        name: String,
    },
    /// Suspend a consumer: all its credentials are refused.
    Suspend(SuspendArgs),
    /// Lift a consumer's suspension.
    Resume {
        /// Its name.
        name: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum KeysCmd {
    /// Issue an API key; it is printed once.
    Create {
        /// The consumer it authenticates.
        #[arg(long)]
        consumer: String,
        /// Narrower scopes than the consumer's, comma-separated (default: inherit).
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        /// Expire after this long (e.g. 30d).
        #[arg(long)]
        ttl: Option<String>,
        /// A label for people.
        #[arg(long)]
        label: Option<String>,
        /// A test key (`pc_test_` prefix) instead of a live one.
        #[arg(long)]
        test: bool,
    },
    /// List a consumer's keys (hints only).
    List {
        /// The consumer.
        #[arg(long)]
        consumer: String,
    },
    /// Issue a successor key; the old one keeps working for the overlap.
    Rotate {
        /// The key's id.
        id: String,
        /// How long the old key keeps working (default 24h; 0s stops it now).
        #[arg(long)]
        overlap: Option<String>,
    },
    /// Revoke a key now, for good.
    Revoke {
        /// The key's id.
        id: String,
        /// Why (kept in the audit trail).
        #[arg(long)]
        reason: String,
    },
    /// Suspend a key (reversible).
    Suspend(SuspendArgs),
    /// Lift a key's suspension.
    Resume {
        /// The key's id.
        id: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum CredentialsCmd {
    /// Give a consumer a username and password for HTTP Basic. The password is read from
    /// PORTCULLIS_PASSWORD or, if unset, the first line of stdin (at least 12 characters).
    Password {
        /// The consumer it authenticates.
        #[arg(long)]
        consumer: String,
        /// The Basic username (unique).
        #[arg(long)]
        username: String,
    },
    /// Issue an HMAC request-signing key; the key id and secret are printed once.
    Hmac {
        /// The consumer it authenticates.
        #[arg(long)]
        consumer: String,
    },
    /// Register a client certificate (mTLS) by its SHA-256 fingerprint.
    Cert {
        /// The consumer it authenticates.
        #[arg(long)]
        consumer: String,
        /// The SHA-256 fingerprint of the certificate (64 hex digits, colons allowed).
        #[arg(long, required_unless_present = "cert_file", conflicts_with = "cert_file")]
        fingerprint: Option<String>,
        /// Or: a PEM file; the fingerprint of its first certificate is registered.
        #[arg(long, value_name = "PEM")]
        cert_file: Option<PathBuf>,
    },
    /// List a consumer's credentials of every kind (hints only).
    List {
        /// The consumer.
        #[arg(long)]
        consumer: String,
    },
}

/// `portcullis sign`: what to sign.
#[derive(Args)]
pub(crate) struct SignArgs {
    /// The HMAC key id (from `credentials hmac`).
    #[arg(long)]
    key_id: String,
    /// A file holding the signing secret (base64url, as `credentials hmac` printed it).
    #[arg(long)]
    secret_file: PathBuf,
    /// The request method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// The full URL the request goes to (its host:port is signed as `host`).
    #[arg(long)]
    url: String,
    /// A header to sign, `name: value` (repeatable); send it with exactly this value.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// The request body, if any (signed as its SHA-256).
    #[arg(long)]
    body_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum RoutesCmd {
    /// Switch a route off: it answers 503 for everyone.
    Suspend(SuspendArgs),
    /// Switch a route back on.
    Resume {
        /// The route's configured name.
        name: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum PoliciesCmd {
    /// Set the response shape a consumer, organization or plan gets on a route (replaces the one
    /// it had, and the configuration's rule for that subject).
    Set(PolicySetArgs),
    /// Show the policy of a subject on a route.
    Show(PolicyKey),
    /// List the policies in force.
    List {
        /// Only this route's.
        #[arg(long)]
        route: Option<String>,
    },
    /// Delete a policy: the route's configured shaping applies again.
    Delete {
        #[command(flatten)]
        key: PolicyKey,
        /// Why (kept in the audit trail).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Whom a policy applies to: exactly one of the three.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub(crate) struct PolicySubjectArgs {
    /// A consumer's name.
    #[arg(long)]
    consumer: Option<String>,
    /// An organization's name.
    #[arg(long)]
    org: Option<String>,
    /// A plan's name.
    #[arg(long)]
    plan: Option<String>,
}

impl PolicySubjectArgs {
    fn path(&self) -> (&'static str, &str) {
        match (&self.consumer, &self.org, &self.plan) {
            (Some(c), _, _) => ("consumer", c),
            (_, Some(o), _) => ("organization", o),
            (_, _, Some(p)) => ("plan", p),
            // clap's group makes one of them required.
            _ => ("consumer", ""),
        }
    }
}

#[derive(Args)]
pub(crate) struct PolicyKey {
    /// The route's configured name.
    route: String,
    #[command(flatten)]
    subject: PolicySubjectArgs,
}

#[derive(Args)]
pub(crate) struct PolicySetArgs {
    #[command(flatten)]
    key: PolicyKey,
    /// A JSON pointer pattern the subject may see (repeat; `*` matches any key or index).
    #[arg(long = "allow", value_name = "POINTER")]
    allow: Vec<String>,
    /// Cap an array: POINTER=N (repeat), e.g. /items=20.
    #[arg(long = "max-items", value_name = "POINTER=N")]
    max_items: Vec<String>,
    /// Cap every other array at N items.
    #[arg(long, value_name = "N")]
    max_items_everywhere: Option<u32>,
    /// Why (kept in the audit trail).
    #[arg(long)]
    reason: String,
    /// Lapse by itself after this long (e.g. 1h); default: until deleted.
    #[arg(long = "for", value_name = "DURATION")]
    duration: Option<String>,
}

#[derive(Args)]
pub(crate) struct SuspendArgs {
    /// Name (organization, consumer, route) or id (key).
    target: String,
    /// Why (kept in the audit trail).
    #[arg(long)]
    reason: String,
    /// Lift by itself after this long (e.g. 1h); default: until resumed.
    #[arg(long = "for", value_name = "DURATION")]
    duration: Option<String>,
}

/// Why a command failed, and so its exit code.
#[derive(Debug)]
enum CliError {
    /// Bad arguments or environment: exit 2.
    Usage(String),
    /// The API refused, or could not be reached: exit 1.
    Failed(String),
}

type Result<T> = std::result::Result<T, CliError>;

/// Runs an admin subcommand and returns the process's exit code.
pub(crate) fn main(cmd: AdminCommand) -> ExitCode {
    let result = match cmd {
        AdminCommand::AdminToken { out, json } => admin_token(out.as_deref(), json),
        AdminCommand::Sign(args) => sign(&args),
        other => match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(run(other)),
            Err(e) => Err(CliError::Failed(format!("cannot start the async runtime: {e}"))),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(CliError::Failed(m)) => {
            eprintln!("error: {m}");
            ExitCode::FAILURE
        }
    }
}

// ---- admin-token ----------------------------------------------------------------------------

fn admin_token(out: Option<&Path>, as_json: bool) -> Result<()> {
    let new = portcullis_admin::api::generate_admin_token().map_err(|e| CliError::Failed(e.to_string()))?;
    let (token, sha) = (new.token, new.sha256_hex);
    if let Some(path) = out {
        write_private(path, &format!("{token}\n"))?;
    }
    if as_json {
        let mut doc = json!({ "sha256": sha });
        if let Some(map) = doc.as_object_mut() {
            match out {
                Some(path) => map.insert("token_file".into(), json!(path.display().to_string())),
                None => map.insert("token".into(), json!(token)),
            };
        }
        println!("{doc}");
        return Ok(());
    }
    match out {
        Some(path) => println!("wrote a new admin token to {} (mode 0600)", path.display()),
        None => {
            println!("admin token (shown once; keep it where only you can read it):");
            println!("  {token}");
        }
    }
    println!("add its SHA-256 to the configuration, then restart the gateway:");
    println!("  identity:");
    println!("    admin_token_sha256: \"{sha}\"");
    println!("use it with:  export {TOKEN_ENV}=…   or   --token-file FILE");
    Ok(())
}

/// Creates `path` (never overwriting) readable and writable by the owner only.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .map_err(|e| CliError::Failed(format!("cannot create {} ({e}); it must not exist yet", path.display())))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", path.display())))
}

// ---- the API client -------------------------------------------------------------------------

struct Api {
    base: String,
    token: String,
    actor: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    fn new(conn: &Conn) -> Result<Self> {
        let uri: http::Uri =
            conn.admin.parse().map_err(|_| CliError::Usage(format!("--admin {:?} is not a URL", conn.admin)))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() || !matches!(uri.path(), "" | "/") {
            return Err(CliError::Usage(format!(
                "--admin must look like {DEFAULT_ADMIN} (plain HTTP: the admin listener is on loopback), not {:?}",
                conn.admin
            )));
        }
        let base = format!("http://{}", uri.authority().map(|a| a.as_str()).unwrap_or_default());
        let token = read_token(conn.token_file.as_deref())?;
        // Who is acting, for the audit trail (the server keeps only [A-Za-z0-9_.@-]).
        let actor = std::env::var("PORTCULLIS_ACTOR").or_else(|_| std::env::var("USER")).ok();
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Self { base, token, actor, client })
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::ACCEPT, "application/json");
        if let Some(actor) = self.actor.as_deref().filter(|a| http::HeaderValue::from_str(a).is_ok()) {
            req = req.header("x-portcullis-actor", actor);
        }
        let bytes = match &body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(bytes)).map_err(|e| CliError::Usage(format!("cannot build the request: {e}")))?;
        let unreachable =
            |e: &dyn std::fmt::Display| CliError::Failed(format!("cannot reach the admin API at {}: {e}", self.base));
        let resp = tokio::time::timeout(CALL_TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| unreachable(&"timed out"))?
            .map_err(|e| unreachable(&e))?;
        let status = resp.status();
        let body =
            Limited::new(resp.into_body(), MAX_RESPONSE_BYTES).collect().await.map_err(|e| unreachable(&e))?.to_bytes();
        let doc: Value =
            if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
        if status.is_success() {
            return Ok(doc);
        }
        let title = doc["title"].as_str().map(clean).unwrap_or_else(|| status.to_string());
        Err(CliError::Failed(match doc["detail"].as_str() {
            Some(detail) => format!("{title} ({}): {}", status.as_u16(), clean(detail)),
            None => format!("{title} ({})", status.as_u16()),
        }))
    }
}

fn read_token(file: Option<&Path>) -> Result<String> {
    let token = match file {
        Some(path) => {
            warn_if_shared(path);
            std::fs::read_to_string(path)
                .map_err(|e| CliError::Usage(format!("cannot read the token file {}: {e}", path.display())))?
        }
        None => std::env::var(TOKEN_ENV).unwrap_or_default(),
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(CliError::Usage(format!(
            "no admin token: set {TOKEN_ENV} or pass --token-file FILE (run `portcullis admin-token` to make one)"
        )));
    }
    if token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(CliError::Usage("the admin token holds spaces or control characters".into()));
    }
    Ok(token)
}

#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!("warning: {} is readable by other users; chmod 600 it", path.display());
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_: &Path) {}

/// One path segment, percent-encoded (names are slugs, but route names and ids come from users).
fn seg(s: &str) -> String {
    s.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

fn check_duration(flag: &str, d: Option<&str>) -> Result<()> {
    match d {
        Some(text) if humantime::parse_duration(text.trim()).is_err() => {
            Err(CliError::Usage(format!("{flag} {text:?} is not a duration; write e.g. 30d, 24h, 15m")))
        }
        _ => Ok(()),
    }
}

// ---- commands -------------------------------------------------------------------------------

async fn run(cmd: AdminCommand) -> Result<()> {
    match cmd {
        AdminCommand::AdminToken { out, json } => admin_token(out.as_deref(), json),
        AdminCommand::Orgs { conn, cmd } => orgs(&conn, cmd).await,
        AdminCommand::Consumers { conn, cmd } => consumers(&conn, cmd).await,
        AdminCommand::Keys { conn, cmd } => keys(&conn, cmd).await,
        AdminCommand::Credentials { conn, cmd } => credentials(&conn, cmd).await,
        AdminCommand::Sign(args) => sign(&args),
        AdminCommand::Routes { conn, cmd } => match cmd {
            RoutesCmd::Suspend(a) => suspend(&conn, "route", a).await,
            RoutesCmd::Resume { name } => resume(&conn, "route", &name).await,
        },
        AdminCommand::Suspensions { conn } => {
            let api = Api::new(&conn)?;
            let doc = api.call(Method::GET, "/v1/suspensions", None).await?;
            print_list(&conn, &doc, &["KIND", "TARGET", "REASON", "UNTIL", "BY", "SINCE"], |s| {
                vec![
                    text(&s["target"]["kind"]),
                    text(&s["target"]["id"]),
                    text(&s["reason"]),
                    time_or(&s["expires_at"], "resumed"),
                    text(&s["created_by"]),
                    time_or(&s["created_at"], "-"),
                ]
            });
            Ok(())
        }
        AdminCommand::Policies { conn, cmd } => policies(&conn, cmd).await,
        AdminCommand::Audit { conn, since, limit } => {
            let api = Api::new(&conn)?;
            let doc = api.call(Method::GET, &format!("/v1/audit?since={since}&limit={limit}"), None).await?;
            print_list(&conn, &doc, &["SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "DETAIL"], |e| {
                vec![
                    text(&e["seq"]),
                    time_or(&e["at"], "-"),
                    text(&e["actor"]),
                    text(&e["action"]),
                    text(&e["target"]),
                    clean(&e["detail"].to_string()),
                ]
            });
            let shown = doc["items"].as_array().map_or(0, Vec::len);
            if !conn.json && shown == limit as usize {
                eprintln!("(more may follow: --since {})", text(&doc["next_since"]));
            }
            Ok(())
        }
    }
}

async fn orgs(conn: &Conn, cmd: OrgsCmd) -> Result<()> {
    match cmd {
        OrgsCmd::Create { name, plan } => {
            let api = Api::new(conn)?;
            let o = api.call(Method::POST, "/v1/orgs", Some(json!({ "name": name, "plan": plan }))).await?;
            print_one(conn, &o, || format!("created organization {} (id {})", text(&o["name"]), text(&o["id"])));
            Ok(())
        }
        OrgsCmd::List => {
            let api = Api::new(conn)?;
            let doc = api.call(Method::GET, "/v1/orgs", None).await?;
            print_list(conn, &doc, &["NAME", "STATUS", "PLAN", "CREATED", "ID"], |o| {
                vec![
                    text(&o["name"]),
                    text(&o["status"]),
                    text(&o["plan"]),
                    time_or(&o["created_at"], "-"),
                    text(&o["id"]),
                ]
            });
            Ok(())
        }
        OrgsCmd::Suspend(a) => suspend(conn, "organization", a).await,
        OrgsCmd::Resume { name } => resume(conn, "organization", &name).await,
    }
}

async fn consumers(conn: &Conn, cmd: ConsumersCmd) -> Result<()> {
    match cmd {
        ConsumersCmd::Create { name, org, scopes, roles, kind, plan, external_subject } => {
            let api = Api::new(conn)?;
            let body = json!({
                "org": org, "name": name, "kind": kind, "scopes": scopes, "roles": roles,
                "plan": plan, "external_subject": external_subject,
            });
            let c = api.call(Method::POST, "/v1/consumers", Some(body)).await?;
            print_one(conn, &c, || {
                format!(
                    "created consumer {} in {org} (id {}, scopes: {})",
                    text(&c["name"]),
                    text(&c["id"]),
                    list(&c["scopes"])
                )
            });
            Ok(())
        }
        ConsumersCmd::List { org } => {
            let api = Api::new(conn)?;
            let path = match &org {
                Some(o) => format!("/v1/consumers?org={}", seg(o)),
                None => "/v1/consumers".to_owned(),
            };
            let doc = api.call(Method::GET, &path, None).await?;
            print_list(conn, &doc, &["NAME", "KIND", "STATUS", "SCOPES", "ROLES", "ID"], |c| {
                vec![
                    text(&c["name"]),
                    text(&c["kind"]),
                    text(&c["status"]),
                    list(&c["scopes"]),
                    list(&c["roles"]),
                    text(&c["id"]),
                ]
            });
            Ok(())
        }
        ConsumersCmd::Show { name } => {
            let api = Api::new(conn)?;
            let c = api.call(Method::GET, &format!("/v1/consumers/{}", seg(&name)), None).await?;
            print_one(conn, &c, || {
                let mut rows = Vec::new();
                for (k, v) in c.as_object().into_iter().flatten() {
                    let shown = if v.is_array() { list(v) } else { text(v) };
                    rows.push(vec![format!("{k}:"), shown]);
                }
                table(&[], &rows)
            });
            Ok(())
        }
        ConsumersCmd::Suspend(a) => suspend(conn, "consumer", a).await,
        ConsumersCmd::Resume { name } => resume(conn, "consumer", &name).await,
    }
}

async fn keys(conn: &Conn, cmd: KeysCmd) -> Result<()> {
    match cmd {
        KeysCmd::Create { consumer, scopes, ttl, label, test } => {
            check_duration("--ttl", ttl.as_deref())?;
            let api = Api::new(conn)?;
            let body =
                json!({ "scopes": scopes, "ttl": ttl, "label": label, "env": if test { "test" } else { "live" } });
            let k = api.call(Method::POST, &format!("/v1/consumers/{}/keys", seg(&consumer)), Some(body)).await?;
            print_key(conn, &k);
            Ok(())
        }
        KeysCmd::List { consumer } => list_credentials(conn, &consumer).await,
        KeysCmd::Rotate { id, overlap } => {
            check_duration("--overlap", overlap.as_deref())?;
            let api = Api::new(conn)?;
            let k = api
                .call(Method::POST, &format!("/v1/keys/{}/rotate", seg(&id)), Some(json!({ "overlap": overlap })))
                .await?;
            print_key(conn, &k);
            if !conn.json {
                println!(
                    "old key {} works until {}",
                    text(&k["replaces"]["id"]),
                    time_or(&k["replaces"]["expires_at"], "-")
                );
            }
            Ok(())
        }
        KeysCmd::Revoke { id, reason } => {
            let api = Api::new(conn)?;
            let c = api
                .call(Method::POST, &format!("/v1/keys/{}/revoke", seg(&id)), Some(json!({ "reason": reason })))
                .await?;
            print_one(conn, &c, || format!("revoked key {} ({})", text(&c["id"]), text(&c["hint"])));
            Ok(())
        }
        KeysCmd::Suspend(a) => suspend(conn, "credential", a).await,
        KeysCmd::Resume { id } => resume(conn, "credential", &id).await,
    }
}

/// Every credential of a consumer, whatever its kind.
async fn list_credentials(conn: &Conn, consumer: &str) -> Result<()> {
    let api = Api::new(conn)?;
    let doc = api.call(Method::GET, &format!("/v1/consumers/{}/keys", seg(consumer)), None).await?;
    print_list(conn, &doc, &["ID", "KIND", "HINT", "STATUS", "SCOPES", "EXPIRES", "LABEL"], |c| {
        let scopes = if c["scopes"].is_array() { list(&c["scopes"]) } else { "(inherited)".into() };
        vec![
            text(&c["id"]),
            text(&c["kind"]),
            text(&c["hint"]),
            text(&c["status"]),
            scopes,
            time_or(&c["expires_at"], "never"),
            text(&c["label"]),
        ]
    });
    Ok(())
}

async fn credentials(conn: &Conn, cmd: CredentialsCmd) -> Result<()> {
    match cmd {
        CredentialsCmd::Password { consumer, username } => {
            let api = Api::new(conn)?;
            let password = read_password()?;
            let body = json!({ "username": username, "password": password });
            drop(password);
            let c = api.call(Method::POST, &format!("/v1/consumers/{}/passwords", seg(&consumer)), Some(body)).await?;
            print_one(conn, &c, || {
                format!("set a password for {consumer} (username {}, id {})", text(&c["hint"]), text(&c["id"]))
            });
            Ok(())
        }
        CredentialsCmd::Hmac { consumer } => {
            let api = Api::new(conn)?;
            let k =
                api.call(Method::POST, &format!("/v1/consumers/{}/hmac-keys", seg(&consumer)), Some(json!({}))).await?;
            if conn.json {
                println!("{k}");
            } else {
                println!("key_id: {}", text(&k["key_id"]));
                println!("secret: {}", text(&k["secret"]));
                println!("id:     {}", text(&k["credential"]["id"]));
            }
            eprintln!("warning: {SECRET_SHOWN_ONCE}");
            eprintln!("sign requests with: portcullis sign --key-id KEY_ID --secret-file FILE --method M --url URL");
            Ok(())
        }
        CredentialsCmd::Cert { consumer, fingerprint, cert_file } => {
            let fingerprint = match (fingerprint, cert_file) {
                (Some(f), _) => f,
                (None, Some(path)) => pem_fingerprint(&read_bounded(&path)?)?,
                (None, None) => return Err(CliError::Usage("give --fingerprint HEX or --cert-file PEM".into())),
            };
            let api = Api::new(conn)?;
            let body = json!({ "fingerprint": fingerprint });
            let c =
                api.call(Method::POST, &format!("/v1/consumers/{}/certificates", seg(&consumer)), Some(body)).await?;
            print_one(conn, &c, || {
                format!("registered certificate {} for {consumer} (id {})", text(&c["hint"]), text(&c["id"]))
            });
            Ok(())
        }
        CredentialsCmd::List { consumer } => list_credentials(conn, &consumer).await,
    }
}

/// The password from `PORTCULLIS_PASSWORD`, else the first line of stdin.
fn read_password() -> Result<String> {
    use std::io::{BufRead as _, IsTerminal as _, Read as _};
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(p);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password (echoed; prefer a pipe or {PASSWORD_ENV}): ");
    }
    let mut line = String::new();
    stdin
        .lock()
        .take(64 * 1024)
        .read_line(&mut line)
        .map_err(|e| CliError::Usage(format!("cannot read the password from stdin: {e}")))?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(CliError::Usage(format!("no password: pipe it on stdin or set {PASSWORD_ENV}")));
    }
    Ok(password)
}

fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let f = std::fs::File::open(path).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
    let mut out = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
    if out.len() as u64 > MAX_FILE_BYTES {
        return Err(CliError::Usage(format!("{} is over {MAX_FILE_BYTES} bytes", path.display())));
    }
    Ok(out)
}

/// The lower-case hex SHA-256 of the DER of the first `CERTIFICATE` block in a PEM file.
fn pem_fingerprint(pem: &[u8]) -> Result<String> {
    use base64::Engine as _;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let text = String::from_utf8_lossy(pem);
    let body = text
        .split_once(BEGIN)
        .and_then(|(_, rest)| rest.split_once(END))
        .map(|(b64, _)| b64)
        .ok_or_else(|| CliError::Usage("no -----BEGIN CERTIFICATE----- block in the PEM file".into()))?;
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| CliError::Usage(format!("the certificate block is not valid base64: {e}")))?;
    if der.is_empty() {
        return Err(CliError::Usage("the certificate block is empty".into()));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &der);
    Ok(digest.as_ref().iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

// ---- sign -----------------------------------------------------------------------------------

fn sign(args: &SignArgs) -> Result<()> {
    let line = signed_header_line(args, std::time::SystemTime::now())?;
    println!("{line}");
    Ok(())
}

/// `Authorization: PC-HMAC-SHA256 …` for the request `args` describes, signed at `now` with a
/// fresh nonce. Signs `host` (from the URL) and every `--header`.
fn signed_header_line(args: &SignArgs, now: std::time::SystemTime) -> Result<String> {
    use portcullis_identity::hmac_sig::{self, BodyDigest, RequestParts, SigningSecret};
    let usage = CliError::Usage;
    let secret_text = String::from_utf8(read_bounded(&args.secret_file)?)
        .map_err(|_| usage(format!("{} is not text", args.secret_file.display())))?;
    let secret = SigningSecret::from_base64(secret_text.trim())
        .map_err(|e| usage(format!("{} does not hold a signing secret: {e}", args.secret_file.display())))?;
    let method = Method::from_bytes(args.method.trim().to_ascii_uppercase().as_bytes())
        .map_err(|_| usage(format!("--method {:?} is not an HTTP method", args.method)))?;
    let url: http::Uri = args.url.parse().map_err(|_| usage(format!("--url {:?} is not a URL", args.url)))?;
    let authority = url
        .authority()
        .filter(|_| matches!(url.scheme_str(), Some("http" | "https")))
        .ok_or_else(|| usage(format!("--url must be absolute, e.g. http://host:8080/path, not {:?}", args.url)))?;
    let mut req = Request::builder().method(method).uri(url.path_and_query().map_or("/", |p| p.as_str()));
    req = req.header(header::HOST, authority.as_str());
    let mut names: Vec<String> = vec!["host".to_owned()];
    for h in &args.headers {
        let (name, value) =
            h.split_once(':').ok_or_else(|| usage(format!("--header {h:?} must look like 'name: value'")))?;
        let name = name.trim().to_ascii_lowercase();
        if name == "host" || name == "authorization" {
            return Err(usage(format!("--header {name} is set by sign itself")));
        }
        if names.contains(&name) {
            return Err(usage(format!("--header {name} is given twice")));
        }
        req = req.header(name.as_str(), value.trim());
        names.push(name);
    }
    let (parts, ()) = req.body(()).map_err(|e| usage(format!("invalid request: {e}")))?.into_parts();
    let body = match &args.body_file {
        Some(path) => BodyDigest::of(&read_bounded(path)?),
        None => BodyDigest::of(b""),
    };
    let ts = now.duration_since(UNIX_EPOCH).map_err(|_| CliError::Failed("the clock is before 1970".into()))?.as_secs();
    let nonce = hmac_sig::new_nonce().map_err(|e| CliError::Failed(e.to_string()))?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let params = hmac_sig::sign(&secret, &args.key_id, ts, &nonce, &names, RequestParts::from(&parts), &body)
        .map_err(|e| usage(format!("cannot sign: {e}")))?;
    let value = params.to_header_value().map_err(|e| usage(format!("cannot sign: {e}")))?;
    let value = value.to_str().map_err(|_| CliError::Failed("the signature header is not ASCII".into()))?;
    Ok(format!("Authorization: {value}"))
}

async fn suspend(conn: &Conn, kind: &str, a: SuspendArgs) -> Result<()> {
    check_duration("--for", a.duration.as_deref())?;
    let api = Api::new(conn)?;
    let body =
        json!({ "target": { "kind": kind, "name_or_id": a.target }, "reason": a.reason, "duration": a.duration });
    let s = api.call(Method::POST, "/v1/suspensions", Some(body)).await?;
    print_one(conn, &s, || {
        format!(
            "suspended {kind} {} until {} (reason: {})",
            a.target,
            time_or(&s["expires_at"], "resumed"),
            text(&s["reason"])
        )
    });
    Ok(())
}

async fn resume(conn: &Conn, kind: &str, target: &str) -> Result<()> {
    let api = Api::new(conn)?;
    let r = api.call(Method::DELETE, &format!("/v1/suspensions/{kind}/{}", seg(target)), None).await?;
    print_one(conn, &r, || {
        if r["lifted"] == true {
            format!("resumed {kind} {target}")
        } else {
            format!("{kind} {target} was not suspended")
        }
    });
    Ok(())
}

fn policy_path(key: &PolicyKey) -> String {
    let (kind, name) = key.subject.path();
    format!("/v1/policies/{}/{kind}/{}", seg(&key.route), seg(name))
}

fn max_items(specs: &[String]) -> Result<Vec<Value>> {
    specs
        .iter()
        .map(|s| match s.rsplit_once('=').and_then(|(p, n)| Some((p, n.trim().parse::<u32>().ok()?))) {
            Some((pointer, max)) => Ok(json!({ "pointer": pointer, "max": max })),
            None => Err(CliError::Usage(format!("--max-items {s:?}: write POINTER=N, e.g. /items=20"))),
        })
        .collect()
}

fn shape_summary(p: &Value) -> String {
    let shape = &p["shape"];
    let mut parts = Vec::new();
    if shape["allow"].as_array().is_some_and(|a| !a.is_empty()) {
        parts.push(format!("allow {}", list(&shape["allow"])));
    }
    for c in shape["max_items"].as_array().into_iter().flatten() {
        parts.push(format!("{}<={}", text(&c["pointer"]), text(&c["max"])));
    }
    if !shape["max_items_everywhere"].is_null() {
        parts.push(format!("arrays<={}", text(&shape["max_items_everywhere"])));
    }
    if parts.is_empty() { "(no shaping)".to_owned() } else { parts.join("; ") }
}

async fn policies(conn: &Conn, cmd: PoliciesCmd) -> Result<()> {
    let api = Api::new(conn)?;
    match cmd {
        PoliciesCmd::Set(a) => {
            check_duration("--for", a.duration.as_deref())?;
            let body = json!({
                "allow": a.allow,
                "max_items": max_items(&a.max_items)?,
                "max_items_everywhere": a.max_items_everywhere,
                "reason": a.reason,
                "duration": a.duration,
            });
            let p = api.call(Method::PUT, &policy_path(&a.key), Some(body)).await?;
            print_one(conn, &p, || {
                let (kind, name) = a.key.subject.path();
                format!(
                    "route {}: {kind} {name} gets {} until {} (reason: {})",
                    a.key.route,
                    shape_summary(&p),
                    time_or(&p["expires_at"], "deleted"),
                    text(&p["reason"])
                )
            });
        }
        PoliciesCmd::Show(key) => {
            let p = api.call(Method::GET, &policy_path(&key), None).await?;
            print_one(conn, &p, || {
                format!(
                    "route:   {}\nsubject: {} {}\nshape:   {}\nreason:  {}\nuntil:   {}\nby:      {}",
                    text(&p["route"]),
                    text(&p["subject"]["kind"]),
                    text(&p["subject"]["name"]),
                    shape_summary(&p),
                    text(&p["reason"]),
                    time_or(&p["expires_at"], "deleted"),
                    text(&p["created_by"])
                )
            });
        }
        PoliciesCmd::List { route } => {
            let path = match &route {
                Some(r) => format!("/v1/policies?route={}", seg(r)),
                None => "/v1/policies".to_owned(),
            };
            let doc = api.call(Method::GET, &path, None).await?;
            print_list(conn, &doc, &["ROUTE", "KIND", "NAME", "SHAPE", "REASON", "UNTIL", "BY"], |p| {
                vec![
                    text(&p["route"]),
                    text(&p["subject"]["kind"]),
                    text(&p["subject"]["name"]),
                    shape_summary(p),
                    text(&p["reason"]),
                    time_or(&p["expires_at"], "deleted"),
                    text(&p["created_by"]),
                ]
            });
        }
        PoliciesCmd::Delete { key, reason } => {
            let path = match &reason {
                Some(r) => format!("{}?reason={}", policy_path(&key), seg(r)),
                None => policy_path(&key),
            };
            let r = api.call(Method::DELETE, &path, None).await?;
            print_one(conn, &r, || {
                let (kind, name) = key.subject.path();
                if r["deleted"] == true {
                    format!("deleted the policy of {kind} {name} on route {}", key.route)
                } else {
                    format!("{kind} {name} had no policy on route {}", key.route)
                }
            });
        }
    }
    Ok(())
}

// ---- output ---------------------------------------------------------------------------------

fn print_key(conn: &Conn, k: &Value) {
    if conn.json {
        println!("{k}");
    } else {
        let c = &k["credential"];
        println!("key:     {}", text(&k["key"]));
        println!("id:      {}", text(&c["id"]));
        println!("hint:    {}", text(&c["hint"]));
        println!("expires: {}", time_or(&c["expires_at"], "never"));
    }
    eprintln!("warning: {SHOWN_ONCE}");
}

fn print_one(conn: &Conn, doc: &Value, human: impl FnOnce() -> String) {
    if conn.json {
        println!("{doc}");
    } else {
        println!("{}", human().trim_end());
    }
}

fn print_list(conn: &Conn, doc: &Value, headers: &[&str], row: impl Fn(&Value) -> Vec<String>) {
    if conn.json {
        println!("{doc}");
        return;
    }
    let rows: Vec<Vec<String>> = doc["items"].as_array().into_iter().flatten().map(row).collect();
    if rows.is_empty() {
        println!("(none)");
    } else {
        print!("{}", table(headers, &rows));
    }
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let head: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    let all: Vec<&Vec<String>> = std::iter::once(&head).filter(|h| !h.is_empty()).chain(rows).collect();
    let cols = all.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|i| all.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in all {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Text safe for a terminal: control characters (escape sequences) become `?`.
fn clean(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => clean(s),
        other => clean(&other.to_string()),
    }
}

fn list(v: &Value) -> String {
    let items: Vec<String> = v.as_array().into_iter().flatten().map(text).collect();
    if items.is_empty() { "-".to_owned() } else { items.join(",") }
}

fn time_or(v: &Value, none: &str) -> String {
    match v.as_i64().and_then(|s| u64::try_from(s).ok()) {
        Some(secs) => humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string(),
        None => none.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(seg("acme-app"), "acme-app");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
        assert_eq!(seg(".."), "..");
    }

    #[test]
    fn tables_align_and_strip_control_characters() {
        let t = table(&["A", "B"], &[vec!["xx".into(), clean("1\u{1b}[2J")], vec!["y".into(), "2".into()]]);
        assert_eq!(t, "A   B\nxx  1?[2J\ny   2\n");
    }

    #[test]
    fn pem_fingerprint_hashes_the_first_certificate() {
        use base64::Engine as _;
        let der_a = b"first certificate der";
        let der_b = b"second";
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        let pem = format!(
            "junk\n-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            b64(der_a),
            b64(der_b)
        );
        let want: String =
            ring::digest::digest(&ring::digest::SHA256, der_a).as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(pem_fingerprint(pem.as_bytes()).unwrap(), want);
        assert!(pem_fingerprint(b"no pem here").is_err());
        assert!(pem_fingerprint(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----").is_err());
    }

    #[test]
    fn sign_signs_what_the_gateway_verifies() {
        use portcullis_identity::hmac_sig::{self, BodyDigest, RequestParts, SigningSecret};
        let dir = tempfile::tempdir().unwrap();
        let secret = SigningSecret::from_base64(&"A".repeat(43)).unwrap();
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, format!("{}\n", secret.to_base64())).unwrap();
        let body_file = dir.path().join("body");
        std::fs::write(&body_file, br#"{"a":1}"#).unwrap();
        let args = SignArgs {
            key_id: "pchk_test".into(),
            secret_file,
            method: "post".into(),
            url: "http://127.0.0.1:8080/orders?b=2&a=1".into(),
            headers: vec!["Content-Type: application/json".into()],
            body_file: Some(body_file),
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let line = signed_header_line(&args, now).unwrap();
        let value = http::HeaderValue::from_str(line.strip_prefix("Authorization: ").unwrap()).unwrap();
        let got = hmac_sig::parse_authorization(&value).unwrap();
        assert_eq!(got.key_id, "pchk_test");
        assert_eq!(got.headers_param(), "host;content-type");
        let (parts, ()) = Request::post("/orders?a=1&b=2")
            .header("host", "127.0.0.1:8080")
            .header("content-type", "application/json")
            .body(())
            .unwrap()
            .into_parts();
        let body = BodyDigest::of(br#"{"a":1}"#);
        let window = hmac_sig::DEFAULT_WINDOW;
        hmac_sig::verify(&secret, &got, RequestParts::from(&parts), &body, 1_767_225_600, window).unwrap();
        // Reject: another body, another secret.
        let other = BodyDigest::of(b"{}");
        assert!(hmac_sig::verify(&secret, &got, RequestParts::from(&parts), &other, 1_767_225_600, window).is_err());
        let wrong = SigningSecret::from_base64(&format!("{}A", "B".repeat(42))).unwrap();
        assert!(hmac_sig::verify(&wrong, &got, RequestParts::from(&parts), &body, 1_767_225_600, window).is_err());
        // Usage errors.
        let relative = SignArgs { url: "/orders".into(), ..args };
        assert!(matches!(signed_header_line(&relative, now), Err(CliError::Usage(_))));
    }

    #[test]
    fn times_and_values() {
        assert_eq!(time_or(&json!(0), "-"), "1970-01-01T00:00:00Z");
        assert_eq!(time_or(&Value::Null, "never"), "never");
        assert_eq!(list(&json!(["a", "b"])), "a,b");
        assert_eq!(text(&Value::Null), "-");
    }
}
