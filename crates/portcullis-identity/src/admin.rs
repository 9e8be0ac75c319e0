//! Administrative operations on organizations, consumers, credentials and kill switches. Each
//! mutation writes the store, appends to the audit trail (metadata only: ids, names, reasons,
//! never a secret) and tells every node to drop what it cached, so it applies cluster-wide within
//! a second. The admin API and the CLI are thin layers over these.

use std::time::Duration;

use portcullis_store::shared::ChangeKind;
use portcullis_store::{
    AuditEntry, AuditFilter, Consumer, ConsumerFilter, ConsumerKind, Credential, CredentialKind, NewAuditEntry,
    NewConsumer, NewCredential, NewOrg, NewSuspension, OrgFilter, Organization, StoreError, Suspension,
    SuspensionTarget,
};
use serde_json::json;

use crate::apikey::{self, KeyEnv, PlaintextKey};
use crate::service::{IdentityService, ServiceError, unix_now};

/// Why an admin operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// A named object does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The name or value is taken.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The request is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The store or runtime failed.
    #[error("{0}")]
    Internal(ServiceError),
}

impl From<ServiceError> for AdminError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Store(StoreError::NotFound(w)) => AdminError::NotFound(w),
            ServiceError::Store(StoreError::Conflict(w)) => AdminError::Conflict(w),
            ServiceError::Store(StoreError::Invalid(m)) => AdminError::Invalid(m),
            other => AdminError::Internal(other),
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        ServiceError::Store(e).into()
    }
}

/// What a suspension or resume names, as the admin gives it (names for organizations and
/// consumers, ids for credentials, names for routes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetRef {
    /// An organization by name.
    Organization(String),
    /// A consumer by name.
    Consumer(String),
    /// A credential by id.
    Credential(String),
    /// A route by its configured name.
    Route(String),
}

/// A new consumer, as the admin describes it.
#[derive(Debug, Clone, Default)]
pub struct ConsumerSpec {
    /// Its organization's name.
    pub org: String,
    /// Its unique name.
    pub name: String,
    /// `user`, `app` or `service` (default `app`).
    pub kind: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Roles.
    pub roles: Vec<String>,
    /// Plan.
    pub plan: Option<String>,
    /// JWT `sub` / certificate subject mapped to it.
    pub external_subject: Option<String>,
}

/// A newly issued API key: the credential row and the key, shown once.
#[derive(Debug)]
pub struct IssuedKey {
    /// The stored credential (no secret in it).
    pub credential: Credential,
    /// The key. Show it to the operator once; it is not stored anywhere.
    pub key: PlaintextKey,
}

fn audit(actor: &str, action: &str, target: &str, detail: serde_json::Value) -> NewAuditEntry {
    NewAuditEntry {
        at: unix_now(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        detail,
    }
}

impl IdentityService {
    pub(crate) async fn org_named(&self, name: &str) -> Result<Organization, AdminError> {
        let store = self.store().clone();
        let name = name.to_owned();
        self.io(async move { Ok(store.org_by_name(&name).await?) }).await?.ok_or(AdminError::NotFound("organization"))
    }

    /// The consumer with this name.
    pub async fn consumer_named(&self, name: &str) -> Result<Consumer, AdminError> {
        let store = self.store().clone();
        let name = name.to_owned();
        self.io(async move { Ok(store.consumer_by_name(&name).await?) }).await?.ok_or(AdminError::NotFound("consumer"))
    }

    async fn write_audit(&self, entry: NewAuditEntry) -> Result<(), AdminError> {
        let store = self.store().clone();
        self.io(async move { Ok(store.append_audit(entry).await.map(|_| ())?) }).await?;
        Ok(())
    }

    /// Appends an audit entry for an admin action of another module.
    pub(crate) async fn write_audit_entry(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<(), AdminError> {
        self.write_audit(audit(actor, action, target, detail)).await
    }

    /// Creates an organization.
    pub async fn create_org(&self, actor: &str, name: &str, plan: Option<String>) -> Result<Organization, AdminError> {
        let store = self.store().clone();
        let new = NewOrg { name: name.to_owned(), plan, created_at: unix_now() };
        let org = self.io(async move { Ok(store.create_org(new).await?) }).await?;
        self.write_audit(audit(actor, "organization.create", &org.id, json!({ "name": org.name, "plan": org.plan })))
            .await?;
        self.publish_change(ChangeKind::Organization, Some(org.id.clone())).await;
        Ok(org)
    }

    /// Lists organizations.
    pub async fn list_orgs(&self) -> Result<Vec<Organization>, AdminError> {
        let store = self.store().clone();
        Ok(self.io(async move { Ok(store.list_orgs(&OrgFilter::default()).await?) }).await?)
    }

    /// Creates a consumer in an organization.
    pub async fn create_consumer(&self, actor: &str, spec: ConsumerSpec) -> Result<Consumer, AdminError> {
        let org = self.org_named(&spec.org).await?;
        let kind = match spec.kind.as_deref() {
            None | Some("app") => ConsumerKind::App,
            Some("user") => ConsumerKind::User,
            Some("service") => ConsumerKind::Service,
            Some(other) => {
                return Err(AdminError::Invalid(format!("unknown consumer kind {other:?} (user, app, service)")));
            }
        };
        let new = NewConsumer {
            org_id: org.id.clone(),
            name: spec.name,
            kind,
            scopes: spec.scopes,
            roles: spec.roles,
            plan: spec.plan,
            external_subject: spec.external_subject,
            created_at: unix_now(),
        };
        let store = self.store().clone();
        let c = self.io(async move { Ok(store.create_consumer(new).await?) }).await?;
        self.write_audit(audit(
            actor,
            "consumer.create",
            &c.id,
            json!({ "name": c.name, "org": org.name, "scopes": c.scopes, "roles": c.roles }),
        ))
        .await?;
        self.publish_change(ChangeKind::Consumer, Some(c.id.clone())).await;
        Ok(c)
    }

    /// Lists consumers, optionally of one organization.
    pub async fn list_consumers(&self, org: Option<&str>) -> Result<Vec<Consumer>, AdminError> {
        let org_id = match org {
            Some(name) => Some(self.org_named(name).await?.id),
            None => None,
        };
        let store = self.store().clone();
        Ok(self.io(async move { Ok(store.list_consumers(&ConsumerFilter { org_id, status: None }).await?) }).await?)
    }

    /// Issues an API key for a consumer. `scopes` narrows the consumer's; `ttl` makes it expire.
    pub async fn issue_api_key(
        &self,
        actor: &str,
        consumer: &str,
        scopes: Option<Vec<String>>,
        ttl: Option<Duration>,
        label: Option<String>,
        env: KeyEnv,
    ) -> Result<IssuedKey, AdminError> {
        let c = self.consumer_named(consumer).await?;
        let key = apikey::generate(env).map_err(|e| AdminError::Internal(ServiceError::Key(e)))?;
        let now = unix_now();
        let expires_at = ttl.map(|d| now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)));
        let new = NewCredential {
            consumer_id: c.id.clone(),
            kind: CredentialKind::ApiKey,
            lookup: self.hasher().hash(key.expose()).to_hex(),
            hint: key.hint().to_owned(),
            secret: None,
            scopes,
            expires_at,
            label,
            created_at: now,
        };
        let store = self.store().clone();
        let credential = self.io(async move { Ok(store.create_credential(new).await?) }).await?;
        self.write_audit(audit(
            actor,
            "api_key.create",
            &credential.id,
            json!({ "consumer": c.name, "hint": credential.hint, "scopes": credential.scopes, "expires_at": credential.expires_at }),
        ))
        .await?;
        self.publish_change(ChangeKind::Credential, Some(credential.id.clone())).await;
        Ok(IssuedKey { credential, key })
    }

    /// Rotates an API key: issues a new one with the same scopes and label, and lets the old one
    /// keep working for `overlap` (zero: it stops now).
    pub async fn rotate_api_key(
        &self,
        actor: &str,
        credential_id: &str,
        overlap: Duration,
    ) -> Result<IssuedKey, AdminError> {
        let old = self.credential(credential_id).await?;
        if old.kind != CredentialKind::ApiKey {
            return Err(AdminError::Invalid("only API keys can be rotated".into()));
        }
        let store = self.store().clone();
        let consumer_id = old.consumer_id.clone();
        let consumer = self
            .io(async move { Ok(store.consumer(&consumer_id).await?) })
            .await?
            .ok_or(AdminError::NotFound("consumer"))?;
        let env = if old.hint.starts_with("pc_test_") { KeyEnv::Test } else { KeyEnv::Live };
        let ttl = old.expires_at.map(|at| Duration::from_secs(u64::try_from(at - unix_now()).unwrap_or(0)));
        let issued = self.issue_api_key(actor, &consumer.name, old.scopes.clone(), ttl, old.label.clone(), env).await?;
        let until = unix_now().saturating_add(i64::try_from(overlap.as_secs()).unwrap_or(i64::MAX));
        let until = old.expires_at.map_or(until, |e| e.min(until));
        let store = self.store().clone();
        let id = old.id.clone();
        self.io(async move { Ok(store.set_credential_expiry(&id, Some(until)).await?) }).await?;
        self.write_audit(audit(
            actor,
            "api_key.rotate",
            &old.id,
            json!({ "replaced_by": issued.credential.id, "old_expires_at": until }),
        ))
        .await?;
        self.publish_change(ChangeKind::Credential, Some(old.id)).await;
        Ok(issued)
    }

    #[expect(clippy::too_many_arguments, reason = "one private helper for four credential kinds")]
    async fn add_credential(
        &self,
        actor: &str,
        consumer: &str,
        kind: CredentialKind,
        lookup: String,
        hint: String,
        secret: Option<String>,
        label: Option<String>,
    ) -> Result<Credential, AdminError> {
        let c = self.consumer_named(consumer).await?;
        let new = NewCredential {
            consumer_id: c.id.clone(),
            kind,
            lookup,
            hint,
            secret,
            scopes: None,
            expires_at: None,
            label,
            created_at: unix_now(),
        };
        let store = self.store().clone();
        let credential = self.io(async move { Ok(store.create_credential(new).await?) }).await?;
        self.write_audit(audit(
            actor,
            &format!("{}.create", kind.as_str()),
            &credential.id,
            json!({ "consumer": c.name, "hint": credential.hint }),
        ))
        .await?;
        self.publish_change(ChangeKind::Credential, Some(credential.id.clone())).await;
        Ok(credential)
    }

    /// Gives a consumer a username and password for HTTP Basic; only an Argon2id hash is stored.
    pub async fn set_password(
        &self,
        actor: &str,
        consumer: &str,
        username: &str,
        password: &str,
    ) -> Result<Credential, AdminError> {
        if password.chars().count() < 12 {
            return Err(AdminError::Invalid("passwords must have at least 12 characters".into()));
        }
        let pw = password.to_owned();
        let phc = tokio::task::spawn_blocking(move || crate::basic::hash_password(&pw))
            .await
            .map_err(|e| AdminError::Internal(ServiceError::Runtime(e.to_string())))?
            .map_err(|e| AdminError::Internal(ServiceError::Runtime(format!("password hashing: {e}"))))?;
        self.add_credential(
            actor,
            consumer,
            CredentialKind::Password,
            username.to_owned(),
            username.to_owned(),
            Some(phc),
            None,
        )
        .await
    }

    /// Issues an HMAC signing key: the key id and the secret (shown once; the store keeps only a
    /// salt, the secret is derived from the server secret).
    pub async fn issue_hmac_key(&self, actor: &str, consumer: &str) -> Result<(Credential, String), AdminError> {
        let key_id = crate::hmac_sig::new_key_id().map_err(|e| AdminError::Invalid(e.to_string()))?;
        let salt = crate::hmac_sig::new_salt().map_err(|e| AdminError::Invalid(e.to_string()))?;
        let secret = crate::hmac_sig::derive_signing_secret(&self.config().key_secret, &key_id, &salt)
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
        let cred = self
            .add_credential(actor, consumer, CredentialKind::HmacKey, key_id.clone(), key_id, Some(salt), None)
            .await?;
        Ok((cred, secret.to_base64()))
    }

    /// Registers a client certificate by its SHA-256 fingerprint (lower-case hex).
    pub async fn register_certificate(
        &self,
        actor: &str,
        consumer: &str,
        fingerprint: &str,
    ) -> Result<Credential, AdminError> {
        let fp = fingerprint.to_ascii_lowercase().replace(':', "");
        if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AdminError::Invalid("a certificate fingerprint is 64 hex digits (SHA-256)".into()));
        }
        let hint = format!("sha256:{}…", &fp[..12]);
        self.add_credential(actor, consumer, CredentialKind::Certificate, fp, hint, None, None).await
    }

    /// A credential by id.
    pub async fn credential(&self, id: &str) -> Result<Credential, AdminError> {
        let store = self.store().clone();
        let id = id.to_owned();
        self.io(async move { Ok(store.credential(&id).await?) }).await?.ok_or(AdminError::NotFound("credential"))
    }

    /// The credentials of a consumer (no secrets in them).
    pub async fn list_credentials(&self, consumer: &str) -> Result<Vec<Credential>, AdminError> {
        let c = self.consumer_named(consumer).await?;
        let store = self.store().clone();
        Ok(self.io(async move { Ok(store.list_credentials(&c.id).await?) }).await?)
    }

    /// Revokes a credential now.
    pub async fn revoke_credential(&self, actor: &str, id: &str, reason: &str) -> Result<Credential, AdminError> {
        let store = self.store().clone();
        let cid = id.to_owned();
        let now = unix_now();
        let c = self.io(async move { Ok(store.revoke_credential(&cid, now).await?) }).await?;
        self.write_audit(audit(actor, "credential.revoke", &c.id, json!({ "hint": c.hint, "reason": reason }))).await?;
        self.publish_change(ChangeKind::Credential, Some(c.id.clone())).await;
        Ok(c)
    }

    async fn resolve_target(&self, target: &TargetRef) -> Result<SuspensionTarget, AdminError> {
        Ok(match target {
            TargetRef::Organization(n) => SuspensionTarget::Organization(self.org_named(n).await?.id),
            TargetRef::Consumer(n) => SuspensionTarget::Consumer(self.consumer_named(n).await?.id),
            TargetRef::Credential(id) => SuspensionTarget::Credential(self.credential(id).await?.id),
            TargetRef::Route(name) => SuspensionTarget::Route(name.clone()),
        })
    }

    /// Suspends an organization, consumer, credential or route (a kill switch), with a reason and
    /// an optional duration. Applies on every node within a second.
    pub async fn suspend(
        &self,
        actor: &str,
        target: &TargetRef,
        reason: &str,
        duration: Option<Duration>,
    ) -> Result<Suspension, AdminError> {
        if reason.trim().is_empty() {
            return Err(AdminError::Invalid("a suspension needs a reason".into()));
        }
        let t = self.resolve_target(target).await?;
        let now = unix_now();
        let new = NewSuspension {
            target: t.clone(),
            reason: reason.to_owned(),
            expires_at: duration.map(|d| now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))),
            created_at: now,
            created_by: actor.to_owned(),
        };
        let store = self.store().clone();
        let s = self.io(async move { Ok(store.suspend(new).await?) }).await?;
        self.write_audit(audit(
            actor,
            "suspend",
            t.id(),
            json!({ "target": target_label(target), "reason": reason, "expires_at": s.expires_at }),
        ))
        .await?;
        self.publish_change(ChangeKind::Suspension, Some(s.id.clone())).await;
        Ok(s)
    }

    /// Lifts a suspension. Returns whether there was one.
    pub async fn resume(&self, actor: &str, target: &TargetRef) -> Result<bool, AdminError> {
        let t = self.resolve_target(target).await?;
        let store = self.store().clone();
        let tt = t.clone();
        let lifted = self.io(async move { Ok(store.lift(&tt).await?) }).await?;
        self.write_audit(audit(actor, "resume", t.id(), json!({ "target": target_label(target), "lifted": lifted })))
            .await?;
        self.publish_change(ChangeKind::Suspension, None).await;
        Ok(lifted)
    }

    /// Suspensions in force now.
    pub async fn list_suspensions(&self) -> Result<Vec<Suspension>, AdminError> {
        let store = self.store().clone();
        Ok(self.io(async move { Ok(store.active_suspensions(unix_now()).await?) }).await?)
    }

    /// The audit trail after `since_seq`.
    pub async fn audit_trail(&self, since_seq: i64, limit: u32) -> Result<Vec<AuditEntry>, AdminError> {
        let store = self.store().clone();
        Ok(self.io(async move { Ok(store.list_audit(&AuditFilter { since_seq, limit }).await?) }).await?)
    }

    /// Records an admin action that is not a store write (e.g. a refused admin login).
    pub async fn record(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<(), AdminError> {
        self.write_audit(audit(actor, action, target, detail)).await
    }
}

fn target_label(t: &TargetRef) -> String {
    match t {
        TargetRef::Organization(n) => format!("organization:{n}"),
        TargetRef::Consumer(n) => format!("consumer:{n}"),
        TargetRef::Credential(id) => format!("credential:{id}"),
        TargetRef::Route(n) => format!("route:{n}"),
    }
}
