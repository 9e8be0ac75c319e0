#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]
//! One suite, run against both backends: every `async fn case(&Store)` below runs once on a fresh
//! SQLite file and once on a fresh PostgreSQL schema (`t_<uuid>`, dropped afterwards), so the two
//! backends are held to the same behaviour. Needs PostgreSQL on 127.0.0.1:5432 (user postgres,
//! trust auth; `scripts/services` starts it) or `PORTCULLIS_TEST_PG_URL`.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use portcullis_config::{Secret, resolve_secret};
use portcullis_store::*;
use serde_json::json;

const NOW: i64 = 1_700_000_000;

fn pg_url() -> String {
    std::env::var("PORTCULLIS_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn pg_secret() -> Secret {
    secret_of(&pg_url())
}

/// `Secret` is built only from a reference (`${env:…}` or `${file:…}`); tests use a file.
fn secret_of(value: &str) -> Secret {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), value).unwrap();
    resolve_secret("${file:secret}", dir.path()).unwrap()
}

fn pg_config(schema: &str) -> StoreConfig {
    StoreConfig::Postgres { url: pg_secret(), pool_size: 2, schema: Some(schema.to_owned()) }
}

fn new_schema() -> String {
    format!("t_{}", uuid::Uuid::now_v7().simple())
}

async fn pg_admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

async fn drop_schema(schema: &str) {
    pg_admin().await.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await.unwrap();
}

/// Runs `f` on a store in a fresh schema and drops the schema afterwards, even if `f` panics.
async fn with_pg<F, Fut>(f: F)
where
    F: FnOnce(Store, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let schema = new_schema();
    let store = Store::open(&pg_config(&schema)).await.unwrap();
    let outcome = AssertUnwindSafe(f(store, schema.clone())).catch_unwind().await;
    drop_schema(&schema).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn with_sqlite<F, Fut>(f: F)
where
    F: FnOnce(Store, std::path::PathBuf) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = Store::open(&StoreConfig::Sqlite { path: path.clone() }).await.unwrap();
    f(store, path).await;
}

macro_rules! both_backends {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    super::with_sqlite(|store, _| async move { super::$case(&store).await }).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    super::with_pg(|store, _| async move { super::$case(&store).await }).await;
                }
            )+
        }
    };
}

both_backends!(
    organizations,
    consumers,
    credentials,
    rotation_and_revocation,
    credential_with_owner_and_refusals,
    suspensions,
    shaping_policies,
    audit_log,
    change_seq_counts_every_write_and_only_writes,
    concurrent_writes_all_land,
);

// --- helpers -------------------------------------------------------------------------------------

async fn org(store: &Store, name: &str) -> Organization {
    store.create_org(NewOrg { name: name.into(), plan: Some("gold".into()), created_at: NOW }).await.unwrap()
}

fn new_consumer(org_id: &str, name: &str) -> NewConsumer {
    NewConsumer {
        org_id: org_id.into(),
        name: name.into(),
        kind: ConsumerKind::App,
        scopes: vec!["orders:read".into(), "orders:write".into()],
        roles: vec!["billing".into()],
        plan: None,
        external_subject: None,
        created_at: NOW,
    }
}

fn hex(seed: u8) -> String {
    format!("{seed:02x}").repeat(32)
}

fn api_key(consumer_id: &str, seed: u8) -> NewCredential {
    NewCredential {
        consumer_id: consumer_id.into(),
        kind: CredentialKind::ApiKey,
        lookup: hex(seed),
        hint: "pc_live_AbCd…".into(),
        secret: None,
        scopes: None,
        expires_at: None,
        label: None,
        created_at: NOW,
    }
}

// --- cases ---------------------------------------------------------------------------------------

async fn organizations(store: &Store) {
    let acme = org(store, "acme").await;
    assert_eq!(acme.status, Status::Active);
    assert_eq!(acme.plan.as_deref(), Some("gold"));
    assert_eq!(uuid::Uuid::parse_str(&acme.id).unwrap().get_version_num(), 7, "ids are UUIDv7");

    let dup = store.create_org(NewOrg { name: "acme".into(), plan: None, created_at: NOW }).await;
    assert!(matches!(dup, Err(StoreError::Conflict("organization name"))), "{dup:?}");
    let bad = store.create_org(NewOrg { name: "Not A Slug".into(), plan: None, created_at: NOW }).await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");

    assert_eq!(store.org(&acme.id).await.unwrap(), Some(acme.clone()));
    assert_eq!(store.org_by_name("acme").await.unwrap(), Some(acme.clone()));
    assert_eq!(store.org("no-such-id").await.unwrap(), None);
    assert_eq!(store.org_by_name("nobody").await.unwrap(), None);

    let globex = org(store, "globex").await;
    let suspended = store.set_org_status(&globex.id, Status::Suspended).await.unwrap();
    assert_eq!(suspended.status, Status::Suspended);
    assert_eq!(suspended.name, "globex");
    assert!(matches!(
        store.set_org_status("no-such-id", Status::Active).await,
        Err(StoreError::NotFound("organization"))
    ));

    let all = store.list_orgs(&OrgFilter::default()).await.unwrap();
    assert_eq!(all.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["acme", "globex"], "oldest first");
    let active = store.list_orgs(&OrgFilter { status: Some(Status::Active) }).await.unwrap();
    assert_eq!(active, vec![acme]);
    let susp = store.list_orgs(&OrgFilter { status: Some(Status::Suspended) }).await.unwrap();
    assert_eq!(susp, vec![suspended]);
}

async fn consumers(store: &Store) {
    let acme = org(store, "acme").await;
    let globex = org(store, "globex").await;

    let orphan = store.create_consumer(new_consumer("no-such-org", "orphan")).await;
    assert!(matches!(orphan, Err(StoreError::NotFound("organization"))), "{orphan:?}");

    let mut n = new_consumer(&acme.id, "acme-billing");
    n.external_subject = Some("auth0|123".into());
    n.kind = ConsumerKind::Service;
    let billing = store.create_consumer(n.clone()).await.unwrap();
    assert_eq!(billing.scopes, ["orders:read", "orders:write"]);
    assert_eq!(billing.roles, ["billing"]);
    assert_eq!(billing.kind, ConsumerKind::Service);
    assert_eq!(billing.status, Status::Active);

    // Names are globally unique, across organizations too.
    let mut dup = new_consumer(&globex.id, "acme-billing");
    assert!(matches!(store.create_consumer(dup.clone()).await, Err(StoreError::Conflict("consumer name"))));
    // External subjects are unique when set…
    dup.name = "globex-billing".into();
    dup.external_subject = Some("auth0|123".into());
    assert!(matches!(store.create_consumer(dup.clone()).await, Err(StoreError::Conflict("consumer external subject"))));
    // …and any number of consumers may have none.
    dup.external_subject = None;
    let globex_billing = store.create_consumer(dup).await.unwrap();
    let third = store.create_consumer(new_consumer(&acme.id, "acme-web")).await.unwrap();

    assert_eq!(store.consumer(&billing.id).await.unwrap(), Some(billing.clone()));
    assert_eq!(store.consumer_by_name("acme-billing").await.unwrap(), Some(billing.clone()));
    assert_eq!(store.consumer_by_subject("auth0|123").await.unwrap(), Some(billing.clone()));
    assert_eq!(store.consumer_by_subject("auth0|999").await.unwrap(), None);
    assert_eq!(store.consumer("nope").await.unwrap(), None);

    let by_org = store.list_consumers(&ConsumerFilter { org_id: Some(acme.id.clone()), status: None }).await.unwrap();
    assert_eq!(by_org.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["acme-billing", "acme-web"]);
    assert_eq!(store.list_consumers(&ConsumerFilter::default()).await.unwrap().len(), 3);

    let suspended = store.set_consumer_status(&third.id, Status::Suspended).await.unwrap();
    assert_eq!(suspended.status, Status::Suspended);
    let active_acme = store
        .list_consumers(&ConsumerFilter { org_id: Some(acme.id.clone()), status: Some(Status::Active) })
        .await
        .unwrap();
    assert_eq!(active_acme, vec![billing.clone()]);
    let suspended_all =
        store.list_consumers(&ConsumerFilter { org_id: None, status: Some(Status::Suspended) }).await.unwrap();
    assert_eq!(suspended_all, vec![suspended]);

    let rescoped = store.set_consumer_scopes(&globex_billing.id, vec!["orders:read".into()]).await.unwrap();
    assert_eq!(rescoped.scopes, ["orders:read"]);
    assert_eq!(store.consumer(&globex_billing.id).await.unwrap().unwrap().scopes, ["orders:read"]);
    assert!(matches!(
        store.set_consumer_scopes(&billing.id, vec!["has space".into()]).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(store.set_consumer_scopes("nope", vec![]).await, Err(StoreError::NotFound("consumer"))));
    assert!(matches!(store.set_consumer_status("nope", Status::Active).await, Err(StoreError::NotFound("consumer"))));
}

async fn credentials(store: &Store) {
    let acme = org(store, "acme").await;
    let app = store.create_consumer(new_consumer(&acme.id, "app")).await.unwrap();

    let orphan = store.create_credential(api_key("no-such-consumer", 1)).await;
    assert!(matches!(orphan, Err(StoreError::NotFound("consumer"))), "{orphan:?}");

    let mut k1 = api_key(&app.id, 1);
    k1.scopes = Some(vec!["orders:read".into()]);
    k1.expires_at = Some(NOW + 3600);
    k1.label = Some("ci".into());
    let key = store.create_credential(k1.clone()).await.unwrap();
    assert_eq!(key.scopes.as_deref(), Some(&["orders:read".to_owned()][..]));
    assert_eq!(key.expires_at, Some(NOW + 3600));
    assert_eq!(key.revoked_at, None);
    assert_eq!(key.label.as_deref(), Some("ci"));

    // Unique per (kind, lookup)…
    assert!(matches!(store.create_credential(k1.clone()).await, Err(StoreError::Conflict("credential lookup"))));
    // …so the same text under another kind is a different credential.
    let mut hmac = k1.clone();
    hmac.kind = CredentialKind::HmacKey;
    hmac.secret = Some("c2FsdHNhbHRzYWx0".into());
    let hmac = store.create_credential(hmac).await.unwrap();
    assert_eq!(hmac.secret.as_deref(), Some("c2FsdHNhbHRzYWx0"));

    // A credential may narrow its consumer's scopes, never widen them.
    let mut wide = api_key(&app.id, 2);
    wide.scopes = Some(vec!["admin".into()]);
    assert!(matches!(store.create_credential(wide).await, Err(StoreError::Invalid(_))));

    let mut pw = api_key(&app.id, 3);
    pw.kind = CredentialKind::Password;
    pw.lookup = "alice".into();
    pw.secret = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into());
    let pw = store.create_credential(pw).await.unwrap();

    assert_eq!(store.credential_by_lookup(CredentialKind::ApiKey, &hex(1)).await.unwrap(), Some(key.clone()));
    assert_eq!(store.credential_by_lookup(CredentialKind::HmacKey, &hex(1)).await.unwrap(), Some(hmac.clone()));
    assert_eq!(store.credential_by_lookup(CredentialKind::Password, "alice").await.unwrap(), Some(pw.clone()));
    assert_eq!(store.credential_by_lookup(CredentialKind::ApiKey, &hex(9)).await.unwrap(), None);
    assert_eq!(store.credential_by_lookup(CredentialKind::Certificate, &hex(1)).await.unwrap(), None);
    assert_eq!(store.credential(&pw.id).await.unwrap(), Some(pw.clone()));
    assert_eq!(store.credential("nope").await.unwrap(), None);

    let listed = store.list_credentials(&app.id).await.unwrap();
    assert_eq!(listed, vec![key.clone(), hmac, pw]);
    assert!(store.list_credentials("nope").await.unwrap().is_empty());

    // Effective scopes follow the consumer when it shrinks.
    let shrunk = store.set_consumer_scopes(&app.id, vec!["orders:write".into()]).await.unwrap();
    assert!(key.effective_scopes(&shrunk).is_empty());
}

async fn rotation_and_revocation(store: &Store) {
    let acme = org(store, "acme").await;
    let app = store.create_consumer(new_consumer(&acme.id, "app")).await.unwrap();
    let old = store.create_credential(api_key(&app.id, 1)).await.unwrap();
    assert!(old.is_usable_at(NOW));

    // Rotation: issue the new key, give the old one an overlap.
    let new = store.create_credential(api_key(&app.id, 2)).await.unwrap();
    let overlap = 600;
    let old = store.set_credential_expiry(&old.id, Some(NOW + overlap)).await.unwrap();
    assert_eq!(old.expires_at, Some(NOW + overlap));
    let reread = store.credential_by_lookup(CredentialKind::ApiKey, &hex(1)).await.unwrap().unwrap();
    assert!(reread.is_usable_at(NOW + overlap - 1), "accepted during the overlap");
    assert!(!reread.is_usable_at(NOW + overlap), "refused after it");
    assert!(new.is_usable_at(NOW + overlap));
    let cleared = store.set_credential_expiry(&old.id, None).await.unwrap();
    assert_eq!(cleared.expires_at, None);

    let revoked = store.revoke_credential(&new.id, NOW + 10).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(NOW + 10));
    assert!(!revoked.is_usable_at(NOW + 10));
    // Revoking again later never extends its life; earlier moves it back.
    assert_eq!(store.revoke_credential(&new.id, NOW + 99).await.unwrap().revoked_at, Some(NOW + 10));
    assert_eq!(store.revoke_credential(&new.id, NOW + 5).await.unwrap().revoked_at, Some(NOW + 5));
    assert_eq!(
        store.credential(&new.id).await.unwrap().unwrap().revoked_at,
        Some(NOW + 5),
        "persisted, not just returned"
    );

    assert!(matches!(store.revoke_credential("nope", NOW).await, Err(StoreError::NotFound("credential"))));
    assert!(matches!(store.set_credential_expiry("nope", None).await, Err(StoreError::NotFound("credential"))));
}

async fn credential_with_owner_and_refusals(store: &Store) {
    let acme = org(store, "acme").await;
    let app = store.create_consumer(new_consumer(&acme.id, "app")).await.unwrap();
    let key = store.create_credential(api_key(&app.id, 1)).await.unwrap();
    assert_eq!(store.credential_with_owner(CredentialKind::ApiKey, &hex(2)).await.unwrap(), None);
    assert_eq!(store.credential_with_owner(CredentialKind::HmacKey, &hex(1)).await.unwrap(), None, "kind matters");

    let read = |store: &Store| {
        let store = store.clone();
        async move { store.credential_with_owner(CredentialKind::ApiKey, &hex(1)).await.unwrap().unwrap() }
    };
    let owner = read(store).await;
    assert_eq!(owner.credential, key);
    assert_eq!(owner.consumer, app);
    assert_eq!(owner.organization, acme);
    assert_eq!(owner.refusal_at(NOW, &[]), None, "accept: everything active");

    // Each reason to refuse, one at a time, and back.
    let suspend = |target: SuspensionTarget, expires_at: Option<i64>| NewSuspension {
        target,
        reason: "r".into(),
        expires_at,
        created_at: NOW,
        created_by: "t".into(),
    };
    for target in [
        SuspensionTarget::Credential(key.id.clone()),
        SuspensionTarget::Consumer(app.id.clone()),
        SuspensionTarget::Organization(acme.id.clone()),
    ] {
        store.suspend(suspend(target.clone(), Some(NOW + 10))).await.unwrap();
        let active = store.active_suspensions(NOW).await.unwrap();
        assert_eq!(owner.refusal_at(NOW, &active), Some(Refusal::Suspended(target.clone())));
        assert_eq!(owner.refusal_at(NOW + 10, &active), None, "the suspension has run out");
        assert!(store.lift(&target).await.unwrap());
    }
    store.suspend(suspend(SuspensionTarget::Route("orders".into()), None)).await.unwrap();
    assert_eq!(owner.refusal_at(NOW, &store.active_suspensions(NOW).await.unwrap()), None, "routes are not callers");

    store.set_org_status(&acme.id, Status::Suspended).await.unwrap();
    assert_eq!(read(store).await.refusal_at(NOW, &[]), Some(Refusal::OrganizationSuspended));
    store.set_org_status(&acme.id, Status::Active).await.unwrap();
    store.set_consumer_status(&app.id, Status::Suspended).await.unwrap();
    assert_eq!(read(store).await.refusal_at(NOW, &[]), Some(Refusal::ConsumerSuspended));
    store.set_consumer_status(&app.id, Status::Active).await.unwrap();
    store.set_credential_expiry(&key.id, Some(NOW + 5)).await.unwrap();
    let owner = read(store).await;
    assert_eq!(owner.refusal_at(NOW + 4, &[]), None);
    assert_eq!(owner.refusal_at(NOW + 5, &[]), Some(Refusal::CredentialExpired));
    store.revoke_credential(&key.id, NOW + 1).await.unwrap();
    assert_eq!(read(store).await.refusal_at(NOW + 1, &[]), Some(Refusal::CredentialRevoked));
    assert_eq!(read(store).await.refusal_at(NOW, &[]), None, "revoked from NOW+1, not before");
}

async fn suspensions(store: &Store) {
    let acme = org(store, "acme").await;
    let app = store.create_consumer(new_consumer(&acme.id, "app")).await.unwrap();
    let key = store.create_credential(api_key(&app.id, 1)).await.unwrap();
    let suspend = |target: SuspensionTarget, expires_at: Option<i64>| NewSuspension {
        target,
        reason: "credential stuffing".into(),
        expires_at,
        created_at: NOW,
        created_by: "admin:alice".into(),
    };

    let forever = store.suspend(suspend(SuspensionTarget::Consumer(app.id.clone()), None)).await.unwrap();
    let hour = store.suspend(suspend(SuspensionTarget::Credential(key.id.clone()), Some(NOW + 3600))).await.unwrap();
    let route = store.suspend(suspend(SuspensionTarget::Route("orders-write".into()), Some(NOW + 60))).await.unwrap();
    store.suspend(suspend(SuspensionTarget::Organization(acme.id.clone()), None)).await.unwrap();
    assert_eq!(forever.reason, "credential stuffing");
    assert_eq!(forever.created_by, "admin:alice");

    assert_eq!(store.active_suspensions(NOW).await.unwrap().len(), 4);
    let later = store.active_suspensions(NOW + 60).await.unwrap();
    assert!(!later.contains(&route), "expired at NOW+60");
    assert!(later.contains(&hour) && later.contains(&forever));
    let much_later = store.active_suspensions(NOW + 3600).await.unwrap();
    assert_eq!(much_later.len(), 2, "only the ones without expiry");
    assert!(much_later.iter().all(|s| s.expires_at.is_none()));

    // Suspending again replaces the old suspension of that target.
    let mut again = suspend(SuspensionTarget::Consumer(app.id.clone()), Some(NOW + 5));
    again.reason = "cooling off".into();
    let replaced = store.suspend(again).await.unwrap();
    let now_list = store.active_suspensions(NOW).await.unwrap();
    assert_eq!(now_list.iter().filter(|s| s.target == SuspensionTarget::Consumer(app.id.clone())).count(), 1);
    assert!(now_list.contains(&replaced));
    assert!(!store.active_suspensions(NOW + 5).await.unwrap().iter().any(|s| s.target == replaced.target));

    // Targets that are rows must exist; routes are names from the config.
    assert!(matches!(
        store.suspend(suspend(SuspensionTarget::Consumer("nope".into()), None)).await,
        Err(StoreError::NotFound("consumer"))
    ));
    assert!(matches!(
        store.suspend(suspend(SuspensionTarget::Organization("nope".into()), None)).await,
        Err(StoreError::NotFound("organization"))
    ));
    assert!(matches!(
        store.suspend(suspend(SuspensionTarget::Credential("nope".into()), None)).await,
        Err(StoreError::NotFound("credential"))
    ));

    assert!(store.lift(&SuspensionTarget::Credential(key.id.clone())).await.unwrap());
    assert!(!store.lift(&SuspensionTarget::Credential(key.id.clone())).await.unwrap(), "nothing left to lift");
    assert!(!store.active_suspensions(NOW).await.unwrap().contains(&hour));
}

async fn shaping_policies(store: &Store) {
    let new = |route: &str, subject: PolicySubject, expires_at: Option<i64>| NewShapingPolicy {
        route: route.into(),
        subject,
        shape: PolicyShape {
            allow: vec!["/items/*/id".into()],
            max_items: vec![PolicyArrayCap { pointer: "/items".into(), max: 20 }],
            max_items_everywhere: None,
        },
        reason: "scraping".into(),
        expires_at,
        created_at: NOW,
        created_by: "admin:alice".into(),
    };
    let before = store.change_seq().await.unwrap();
    let partner =
        store.put_shaping_policy(new("customers", PolicySubject::Consumer("partner-x".into()), None)).await.unwrap();
    assert!(store.change_seq().await.unwrap() > before, "a policy write bumps the change counter");
    let free =
        store.put_shaping_policy(new("customers", PolicySubject::Plan("free".into()), Some(NOW + 60))).await.unwrap();
    store.put_shaping_policy(new("orders", PolicySubject::Organization("acme".into()), None)).await.unwrap();
    assert_eq!(partner.shape.max_items[0].max, 20);
    assert_eq!(partner.created_by, "admin:alice");

    let all = store.active_shaping_policies(NOW).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.contains(&partner) && all.contains(&free), "round-trips every field, the shape included");
    assert!(!store.active_shaping_policies(NOW + 60).await.unwrap().contains(&free), "lapsed at NOW+60");

    // Setting it again replaces the subject's policy on that route (one per route and subject).
    let mut again = new("customers", PolicySubject::Consumer("partner-x".into()), Some(NOW + 5));
    again.shape = PolicyShape { allow: vec!["/items/*/name".into()], ..PolicyShape::default() };
    let replaced = store.put_shaping_policy(again).await.unwrap();
    let list = store.active_shaping_policies(NOW).await.unwrap();
    assert_eq!(list.iter().filter(|p| p.subject == PolicySubject::Consumer("partner-x".into())).count(), 1);
    assert!(list.contains(&replaced) && !list.contains(&partner));

    // Invalid input is refused before anything is written.
    let mut bad = new("customers", PolicySubject::Plan("gold".into()), None);
    bad.reason = String::new();
    assert!(matches!(store.put_shaping_policy(bad).await, Err(StoreError::Invalid(_))));

    let seq = store.change_seq().await.unwrap();
    assert!(store.delete_shaping_policy("customers", &PolicySubject::Plan("free".into())).await.unwrap());
    assert!(store.change_seq().await.unwrap() > seq);
    assert!(!store.delete_shaping_policy("customers", &PolicySubject::Plan("free".into())).await.unwrap());
    assert!(
        !store.delete_shaping_policy("orders", &PolicySubject::Consumer("acme".into())).await.unwrap(),
        "the subject kind is part of the key"
    );
    assert_eq!(store.active_shaping_policies(NOW).await.unwrap().len(), 2);
}

async fn audit_log(store: &Store) {
    assert!(store.list_audit(&AuditFilter::default()).await.unwrap().is_empty());
    let before = store.change_seq().await.unwrap();
    let mut seqs = Vec::new();
    for i in 0..5 {
        seqs.push(
            store
                .append_audit(NewAuditEntry {
                    at: NOW + i,
                    actor: "admin:alice".into(),
                    action: "credential.revoke".into(),
                    target: format!("cred-{i}"),
                    detail: json!({"reason": "rotation", "key_id": format!("k{i}"), "n": i}),
                })
                .await
                .unwrap(),
        );
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq increases: {seqs:?}");
    assert_eq!(store.change_seq().await.unwrap(), before, "audit appends are not identity changes");

    let all = store.list_audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs, "oldest first");
    assert_eq!(all[2].target, "cred-2");
    assert_eq!(all[2].detail, json!({"reason": "rotation", "key_id": "k2", "n": 2}));
    assert_eq!(all[2].at, NOW + 2);

    let page = store.list_audit(&AuditFilter { since_seq: seqs[1], limit: 2 }).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), &seqs[2..4]);
    assert!(store.list_audit(&AuditFilter { since_seq: seqs[4], limit: 10 }).await.unwrap().is_empty());
    assert!(store.list_audit(&AuditFilter { since_seq: 0, limit: 0 }).await.unwrap().is_empty());

    // The guard: a detail that names a secret is refused, at any depth.
    for detail in [json!({"password": "hunter2"}), json!({"new": {"api_key": "pc_live_x"}}), json!([{"token": 1}])] {
        let refused = store
            .append_audit(NewAuditEntry {
                at: NOW,
                actor: "admin".into(),
                action: "consumer.update".into(),
                target: "c".into(),
                detail: detail.clone(),
            })
            .await;
        assert!(matches!(refused, Err(StoreError::Invalid(_))), "{detail}: {refused:?}");
    }
    assert_eq!(store.list_audit(&AuditFilter::default()).await.unwrap().len(), 5, "nothing refused was written");
}

async fn change_seq_counts_every_write_and_only_writes(store: &Store) {
    let mut last = store.change_seq().await.unwrap();
    assert_eq!(last, 0, "a new store starts at 0");
    let mut expect_bump = |now: i64, label: &str| {
        assert!(now > last, "{label}: {now} > {last}");
        last = now;
    };

    let acme = org(store, "acme").await;
    expect_bump(store.change_seq().await.unwrap(), "create_org");
    let app = store.create_consumer(new_consumer(&acme.id, "app")).await.unwrap();
    expect_bump(store.change_seq().await.unwrap(), "create_consumer");
    let key = store.create_credential(api_key(&app.id, 1)).await.unwrap();
    expect_bump(store.change_seq().await.unwrap(), "create_credential");
    store.set_org_status(&acme.id, Status::Suspended).await.unwrap();
    expect_bump(store.change_seq().await.unwrap(), "set_org_status");
    store.set_consumer_status(&app.id, Status::Suspended).await.unwrap();
    expect_bump(store.change_seq().await.unwrap(), "set_consumer_status");
    store.set_consumer_scopes(&app.id, vec![]).await.unwrap();
    expect_bump(store.change_seq().await.unwrap(), "set_consumer_scopes");
    store.set_credential_expiry(&key.id, Some(NOW)).await.unwrap();
    expect_bump(store.change_seq().await.unwrap(), "set_credential_expiry");
    store.revoke_credential(&key.id, NOW).await.unwrap();
    expect_bump(store.change_seq().await.unwrap(), "revoke_credential");
    let target = SuspensionTarget::Route("r".into());
    store
        .suspend(NewSuspension {
            target: target.clone(),
            reason: "x".into(),
            expires_at: None,
            created_at: NOW,
            created_by: "a".into(),
        })
        .await
        .unwrap();
    expect_bump(store.change_seq().await.unwrap(), "suspend");
    assert!(store.lift(&target).await.unwrap());
    expect_bump(store.change_seq().await.unwrap(), "lift");
    let after_writes = last;

    // Reads, refused writes and no-op lifts leave it alone.
    store.list_orgs(&OrgFilter::default()).await.unwrap();
    store.credential_by_lookup(CredentialKind::ApiKey, &hex(1)).await.unwrap();
    assert!(store.create_org(NewOrg { name: "acme".into(), plan: None, created_at: NOW }).await.is_err());
    assert!(store.set_org_status("nope", Status::Active).await.is_err());
    assert!(!store.lift(&target).await.unwrap());
    assert_eq!(store.change_seq().await.unwrap(), after_writes);
}

async fn concurrent_writes_all_land(store: &Store) {
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store.create_org(NewOrg { name: format!("org-{i}"), plan: None, created_at: NOW }).await.unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.list_orgs(&OrgFilter::default()).await.unwrap().len(), 16);
    assert_eq!(store.change_seq().await.unwrap(), 16, "one bump per write, none lost");
}

// --- backend-specific ----------------------------------------------------------------------------

#[tokio::test]
async fn sqlite_reopen_is_idempotent_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::Sqlite { path: dir.path().join("s.db") };
    let (a, b) = tokio::join!(Store::open(&config), Store::open(&config));
    let (a, b) = (a.unwrap(), b.unwrap());
    org(&a, "acme").await;
    assert!(b.org_by_name("acme").await.unwrap().is_some(), "two handles, one file");
    drop((a, b));
    let c = Store::open(&config).await.unwrap();
    assert!(c.org_by_name("acme").await.unwrap().is_some());
    let conn = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
    let count: i64 = conn.query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0)).unwrap();
    assert_eq!(count, 3, "each migration recorded once (identity, usage, shaping_policies)");
}

#[tokio::test]
async fn sqlite_two_handles_writing_at_once_wait_for_each_other() {
    // Two connections to one file (as two processes would have): BEGIN IMMEDIATE plus the busy
    // timeout make the second writer wait instead of failing with SQLITE_BUSY.
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::Sqlite { path: dir.path().join("s.db") };
    let a = Store::open(&config).await.unwrap();
    let b = Store::open(&config).await.unwrap();
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                store.create_org(NewOrg { name: format!("org-{i}"), plan: None, created_at: NOW }).await.unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(a.list_orgs(&OrgFilter::default()).await.unwrap().len(), 24);
    assert_eq!(b.change_seq().await.unwrap(), 24);
}

#[tokio::test]
async fn sqlite_file_is_private_and_in_wal_mode() {
    use std::os::unix::fs::PermissionsExt;
    with_sqlite(|store, path| async move {
        org(&store, "acme").await;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "database file mode {mode:o}");
        let wal = path.with_extension("db-wal");
        assert!(wal.exists(), "WAL journal in use");
        assert_eq!(std::fs::metadata(&wal).unwrap().permissions().mode() & 0o777, 0o600, "WAL file too");
    })
    .await;
}

#[tokio::test]
async fn sqlite_audit_log_is_append_only_even_for_raw_sql() {
    with_sqlite(|store, path| async move {
        store
            .append_audit(NewAuditEntry {
                at: NOW,
                actor: "a".into(),
                action: "x".into(),
                target: "t".into(),
                detail: json!({}),
            })
            .await
            .unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        for sql in ["UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"] {
            let err = conn.execute(sql, []).unwrap_err();
            assert!(err.to_string().contains("append-only"), "{sql}: {err}");
        }
        assert_eq!(store.list_audit(&AuditFilter::default()).await.unwrap()[0].actor, "a");
    })
    .await;
}

#[tokio::test]
async fn sqlite_refuses_a_newer_schema() {
    with_sqlite(|store, path| async move {
        drop(store);
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute("INSERT INTO schema_migrations VALUES (999, 'future', 0)", [])
            .unwrap();
        let reopened = Store::open(&StoreConfig::Sqlite { path }).await;
        assert!(matches!(reopened, Err(StoreError::Invalid(ref m)) if m.contains("newer")), "{reopened:?}");
    })
    .await;
}

#[tokio::test]
async fn postgres_concurrent_open_migrates_once() {
    let schema = new_schema();
    let outcome = AssertUnwindSafe(async {
        // Two nodes start at once on an empty schema: the advisory lock lets one migrate and the
        // other find the work done; then a third open (a restart) is a no-op.
        let config = pg_config(&schema);
        let (a, b) = tokio::join!(Store::open(&config), Store::open(&config));
        let (a, b) = (a.unwrap(), b.unwrap());
        org(&a, "acme").await;
        assert!(b.org_by_name("acme").await.unwrap().is_some());
        let c = Store::open(&config).await.unwrap();
        assert!(c.org_by_name("acme").await.unwrap().is_some());
        let rows = pg_admin()
            .await
            .query(&format!("SELECT version FROM {schema}.schema_migrations ORDER BY version"), &[])
            .await
            .unwrap();
        assert_eq!(rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>(), [1, 2, 3]);
    })
    .catch_unwind()
    .await;
    drop_schema(&schema).await;
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}

#[tokio::test]
async fn postgres_audit_log_is_append_only_even_for_raw_sql() {
    with_pg(|store, schema| async move {
        store
            .append_audit(NewAuditEntry {
                at: NOW,
                actor: "a".into(),
                action: "x".into(),
                target: "t".into(),
                detail: json!({}),
            })
            .await
            .unwrap();
        let admin = pg_admin().await;
        for sql in
            [format!("UPDATE {schema}.audit_log SET actor = 'mallory'"), format!("DELETE FROM {schema}.audit_log")]
        {
            let err = admin.batch_execute(&sql).await.unwrap_err();
            assert!(err.as_db_error().unwrap().message().contains("append-only"), "{sql}: {err}");
        }
    })
    .await;
}

#[tokio::test]
async fn postgres_refuses_a_newer_schema_and_bad_config() {
    with_pg(|store, schema| async move {
        drop(store);
        pg_admin()
            .await
            .batch_execute(&format!("INSERT INTO {schema}.schema_migrations VALUES (999, 'future', 0)"))
            .await
            .unwrap();
        let reopened = Store::open(&pg_config(&schema)).await;
        assert!(matches!(reopened, Err(StoreError::Invalid(ref m)) if m.contains("newer")), "{reopened:?}");
    })
    .await;
    let bad_schema = Store::open(&pg_config("x; DROP TABLE y")).await;
    assert!(matches!(bad_schema, Err(StoreError::Invalid(_))), "{bad_schema:?}");
}

#[tokio::test]
async fn postgres_unreachable_is_a_backend_error() {
    // Nothing listens on port 1 of loopback.
    let url = secret_of("postgres://postgres:pw-should-not-leak@127.0.0.1:1/postgres");
    let err = Store::open(&StoreConfig::Postgres { url, pool_size: 1, schema: None }).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
    let mut chain = format!("{err} {err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        chain.push_str(&s.to_string());
        source = s.source();
    }
    assert!(!chain.contains("pw-should-not-leak"), "{chain}");
}

// --- dump test -----------------------------------------------------------------------------------

/// The raw values a client would send. The store API never receives them: callers pass the HMAC
/// of the key and the argon2 PHC string of the password. So this test cannot prove the *caller*
/// hashes; what it proves is that nothing on the store's side (a log table, a debug column, a
/// stray copy in an index) holds plaintext, and that the rows we wrote are really in the dump
/// (so the search would have found them if they were there).
const RAW_KEY: &str = "pc_live_Zx9QmW2rT7yB4nK8vL1cF6hJ3pD5sAe0uRwXgY";
const RAW_PASSWORD: &str = "correct-horse-battery-staple-42";
const KEY_HMAC: &str = "5d41402abc4b2a76b9719d911017c5925d41402abc4b2a76b9719d911017c592";
const PASSWORD_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$bXlzYWx0bXlzYWx0$J8NzbG9vZ0V4YW1wbGVIYXNoVmFsdWU";

async fn write_dump_fixture(store: &Store) {
    let acme = org(store, "acme").await;
    let app = store.create_consumer(new_consumer(&acme.id, "dump-app")).await.unwrap();
    let mut key = api_key(&app.id, 0);
    key.lookup = KEY_HMAC.into();
    key.hint = RAW_KEY[..12].to_owned() + "…";
    store.create_credential(key).await.unwrap();
    let mut pw = api_key(&app.id, 0);
    pw.kind = CredentialKind::Password;
    pw.lookup = "alice".into();
    pw.secret = Some(PASSWORD_PHC.into());
    store.create_credential(pw).await.unwrap();
    store
        .append_audit(NewAuditEntry {
            at: NOW,
            actor: "admin".into(),
            action: "credential.create".into(),
            target: "dump-app".into(),
            detail: json!({"hint": "pc_live_Zx9Q", "kind": "api_key"}),
        })
        .await
        .unwrap();
    // A raw key handed over by mistake as a lookup is refused, so it cannot end up in the dump.
    let mut mistake = api_key(&app.id, 0);
    mistake.lookup = RAW_KEY.into();
    assert!(matches!(store.create_credential(mistake).await, Err(StoreError::Invalid(_))));
}

fn assert_dump_clean(dump: &[u8], what: &str) {
    let text = String::from_utf8_lossy(dump);
    assert!(text.contains(KEY_HMAC) && text.contains(PASSWORD_PHC), "{what}: the fixture rows are in the dump");
    assert!(!text.contains(RAW_KEY), "{what}: raw API key found");
    assert!(!text.contains(&RAW_KEY[12..]), "{what}: the secret part of the key found");
    assert!(!text.contains(RAW_PASSWORD), "{what}: raw password found");
}

#[tokio::test]
async fn sqlite_dump_holds_no_plaintext_secret() {
    with_sqlite(|store, path| async move {
        write_dump_fixture(&store).await;
        let dump = match std::process::Command::new("sqlite3").arg(&path).arg(".dump").output() {
            Ok(out) if out.status.success() => out.stdout,
            // No CLI: the raw bytes of the file and its WAL are what an attacker would read anyway.
            _ => {
                let mut bytes = std::fs::read(&path).unwrap();
                bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
                bytes
            }
        };
        assert_dump_clean(&dump, "sqlite");
    })
    .await;
}

#[tokio::test]
async fn postgres_dump_holds_no_plaintext_secret() {
    with_pg(|store, schema| async move {
        write_dump_fixture(&store).await;
        let out = std::process::Command::new("pg_dump")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-n", &schema])
            .output()
            .expect("pg_dump (postgresql-client)");
        assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
        assert_dump_clean(&out.stdout, "postgres");
    })
    .await;
}

#[test]
fn debug_output_hides_secrets() {
    let c = NewCredential {
        consumer_id: "c".into(),
        kind: CredentialKind::Password,
        lookup: "alice".into(),
        hint: "alice".into(),
        secret: Some(PASSWORD_PHC.into()),
        scopes: None,
        expires_at: None,
        label: None,
        created_at: NOW,
    };
    assert!(!format!("{c:?}").contains("argon2"));
    let cfg = pg_config("x");
    assert!(!format!("{cfg:?}").contains("postgres@"), "{cfg:?}");
}
