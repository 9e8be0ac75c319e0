//! Persistent and shared state for portcullis: organizations, consumers, credentials, suspensions,
//! run-time shaping policies and the audit log in SQLite (one node) or PostgreSQL (a cluster), plus cluster-shared state on
//! Redis ([`shared`]): a change bus, an HMAC nonce cache and failure counters.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use portcullis_store::*;
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(&StoreConfig::Sqlite { path: dir.path().join("portcullis.db") }).await?;
//! let now = 1_700_000_000;
//!
//! let org = store.create_org(NewOrg { name: "acme".into(), plan: None, created_at: now }).await?;
//! let app = store
//!     .create_consumer(NewConsumer {
//!         org_id: org.id.clone(),
//!         name: "acme-billing".into(),
//!         kind: ConsumerKind::App,
//!         scopes: vec!["invoices:read".into()],
//!         roles: vec![],
//!         plan: None,
//!         external_subject: None,
//!         created_at: now,
//!     })
//!     .await?;
//! // The caller hashes the API key (HMAC under the server secret) and stores only the hex digest.
//! let lookup = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
//! store
//!     .create_credential(NewCredential {
//!         consumer_id: app.id.clone(),
//!         kind: CredentialKind::ApiKey,
//!         lookup: lookup.into(),
//!         hint: "pc_live_AbCd…".into(),
//!         secret: None,
//!         scopes: None,
//!         expires_at: None,
//!         label: Some("billing job".into()),
//!         created_at: now,
//!     })
//!     .await?;
//!
//! // Authentication: one read, then a decision against the suspensions in force.
//! let owner = store.credential_with_owner(CredentialKind::ApiKey, lookup).await?.ok_or("no such key")?;
//! assert_eq!(owner.consumer.name, "acme-billing");
//! assert_eq!(owner.refusal_at(now, &store.active_suspensions(now).await?), None);
//! assert_eq!(owner.credential.effective_scopes(&owner.consumer), ["invoices:read"]);
//! assert!(matches!(
//!     store.create_org(NewOrg { name: "acme".into(), plan: None, created_at: now }).await,
//!     Err(StoreError::Conflict("organization name"))
//! ));
//! assert_eq!(store.change_seq().await?, 3, "three writes so far");
//! # Ok(())
//! # }
//! ```
//!
//! # Design
//!
//! **A closed enum, not a trait object.** [`Store`] is `enum { Sqlite, Postgres }`: there are
//! exactly two backends, both in this crate, so a `match` is all the dispatch needed. It keeps the
//! methods plain `async fn`s (no boxed futures, no `async_trait`), lets the compiler check that
//! every backend implements every method, and keeps test doubles out: tests run the one suite
//! against both real databases instead.
//!
//! **Migrations.** [`Store::open`] applies the versioned scripts in `migrations.rs` that are not yet
//! recorded in the `schema_migrations` table, each with its row in one transaction, so opening is
//! idempotent and a crash leaves the last complete version. On PostgreSQL the whole run holds a
//! transaction-scoped advisory lock keyed by the schema name, so nodes starting together migrate
//! once; on SQLite a `BEGIN IMMEDIATE` transaction does the same. A database newer than this build
//! is refused rather than used.
//!
//! **Cluster invalidation.** Nodes cache identity rows. Every write bumps a counter in the same
//! transaction ([`Store::change_seq`]), so a node can poll one cheap row and refresh when it moved;
//! that alone is correct, only slower. For quick invalidation the writer also publishes a
//! [`shared::Change`] on Redis (`portcullis:changes`), which every node receives and turns into
//! cache evictions; after a Redis reconnect or a slow subscriber's lag, the bus emits
//! [`shared::ChangeKind::Any`] so subscribers flush everything instead of trusting a stream with
//! holes. The audit log is not identity state and does not bump the counter: readers page it with
//! its own `seq`.
//!
//! **Secrets.** The store never receives a usable secret: API keys arrive as the caller's HMAC
//! (the lookup must be hex, so a raw key is refused), passwords as argon2 PHC strings, HMAC keys as
//! a salt. `Credential`'s `Debug` hides `secret` and serialization skips it. Audit entries must
//! never hold secrets; that is the caller's duty, backed by a guard that refuses details with
//! secret-looking keys. The PostgreSQL URL and Redis URL are [`portcullis_config::Secret`]s and
//! are never echoed in errors.
//!
//! **The authentication hot path** is [`Store::credential_with_owner`]: one indexed, joined read
//! of the credential, its consumer and its organization, then
//! [`CredentialOwner::refusal_at`]`(now, &suspensions)` with the suspensions the caller keeps
//! cached from [`Store::active_suspensions`]. Without a cache that is one database round trip per
//! request (see the `lookup` bench); the identity stage is expected to cache by lookup and evict on
//! change events.
//!
//! **Throughput.** Writes are admin-paced: every write serialises on the `changes` row, and audit
//! appends on PostgreSQL serialise on an advisory lock so that entries become visible in `seq`
//! order (a reader paging by `since_seq` never skips one). SQLite uses one connection behind a
//! mutex, run on tokio's blocking pool.
//!
//! **Time** is always given by the caller (`created_at`, `now`), never read from the clock.

mod error;
mod migrations;
mod model;
mod pg;
pub mod shared;
mod sqlite;
mod usage;

use std::path::PathBuf;

pub use error::StoreError;
pub use model::*;
pub use pg::PgStore;
use portcullis_config::Secret;
pub use sqlite::SqliteStore;
pub use usage::{UsageFilter, UsageLine, UsageRecord};

const CREDENTIAL_COL_COUNT: usize = 11;
const CONSUMER_COL_COUNT: usize = 10;

/// `SELECT cr.…, co.…, o.… FROM credentials JOIN consumers JOIN organizations WHERE kind/lookup`,
/// from each backend's column lists and placeholders.
fn owner_sql(credential: &str, consumer: &str, org: &str, p1: &str, p2: &str) -> String {
    let cols =
        |list: &str, alias: &str| list.split(", ").map(|c| format!("{alias}.{c}")).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT {}, {}, {} FROM credentials cr
         JOIN consumers co ON co.id = cr.consumer_id
         JOIN organizations o ON o.id = co.org_id
         WHERE cr.kind = {p1} AND cr.lookup = {p2}",
        cols(credential, "cr"),
        cols(consumer, "co"),
        cols(org, "o")
    )
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// One SQLite file, created with mode 0600 if missing.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A PostgreSQL database.
    Postgres {
        /// `postgres://user@host:port/db` or key=value form; may carry a password, hence `Secret`.
        url: Secret,
        /// Most connections the pool opens (at least 1).
        pool_size: usize,
        /// A schema to keep the tables in (created if missing, used as `search_path` on every
        /// pooled connection); `None` uses the connection's default search path.
        schema: Option<String>,
    },
}

/// The persistent store: SQLite or PostgreSQL. Cheap to clone (both hold shared handles).
#[derive(Debug, Clone)]
pub enum Store {
    /// SQLite.
    Sqlite(SqliteStore),
    /// PostgreSQL.
    Postgres(PgStore),
}

macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Store::Sqlite(s) => s.$method($($arg),*).await,
            Store::Postgres(s) => s.$method($($arg),*).await,
        }
    };
}

impl Store {
    /// Opens the store and runs pending migrations.
    pub async fn open(config: &StoreConfig) -> Result<Store> {
        Ok(match config {
            StoreConfig::Sqlite { path } => Store::Sqlite(SqliteStore::open(path).await?),
            StoreConfig::Postgres { url, pool_size, schema } => {
                Store::Postgres(PgStore::open(url, *pool_size, schema.as_deref()).await?)
            }
        })
    }

    // --- organizations --------------------------------------------------------------------------

    /// Creates an organization (status active). `Conflict("organization name")` if the name is taken.
    pub async fn create_org(&self, new: NewOrg) -> Result<Organization> {
        dispatch!(self.create_org(new))
    }

    /// The organization with this id, if any.
    pub async fn org(&self, id: &str) -> Result<Option<Organization>> {
        dispatch!(self.org(id))
    }

    /// The organization with this name, if any.
    pub async fn org_by_name(&self, name: &str) -> Result<Option<Organization>> {
        dispatch!(self.org_by_name(name))
    }

    /// Organizations matching the filter, oldest first.
    pub async fn list_orgs(&self, filter: &OrgFilter) -> Result<Vec<Organization>> {
        dispatch!(self.list_orgs(filter))
    }

    /// Sets an organization's status; returns the updated row. `NotFound("organization")`.
    pub async fn set_org_status(&self, id: &str, status: Status) -> Result<Organization> {
        dispatch!(self.set_org_status(id, status))
    }

    // --- consumers ------------------------------------------------------------------------------

    /// Creates a consumer (status active) in an existing organization (`NotFound("organization")`
    /// otherwise). `Conflict("consumer name")` or `Conflict("consumer external subject")`.
    pub async fn create_consumer(&self, new: NewConsumer) -> Result<Consumer> {
        dispatch!(self.create_consumer(new))
    }

    /// The consumer with this id, if any.
    pub async fn consumer(&self, id: &str) -> Result<Option<Consumer>> {
        dispatch!(self.consumer(id))
    }

    /// The consumer with this name, if any.
    pub async fn consumer_by_name(&self, name: &str) -> Result<Option<Consumer>> {
        dispatch!(self.consumer_by_name(name))
    }

    /// The consumer mapped to this JWT `sub` or certificate subject, if any.
    pub async fn consumer_by_subject(&self, subject: &str) -> Result<Option<Consumer>> {
        dispatch!(self.consumer_by_subject(subject))
    }

    /// Consumers matching the filter, oldest first.
    pub async fn list_consumers(&self, filter: &ConsumerFilter) -> Result<Vec<Consumer>> {
        dispatch!(self.list_consumers(filter))
    }

    /// Sets a consumer's status; returns the updated row. `NotFound("consumer")`.
    pub async fn set_consumer_status(&self, id: &str, status: Status) -> Result<Consumer> {
        dispatch!(self.set_consumer_status(id, status))
    }

    /// Replaces a consumer's scopes; returns the updated row. Credentials that listed a scope the
    /// consumer no longer has lose it too ([`Credential::effective_scopes`]).
    pub async fn set_consumer_scopes(&self, id: &str, scopes: Vec<String>) -> Result<Consumer> {
        dispatch!(self.set_consumer_scopes(id, scopes))
    }

    // --- credentials ----------------------------------------------------------------------------

    /// Creates a credential for an existing consumer (`NotFound("consumer")` otherwise); its scopes,
    /// if given, must be a subset of the consumer's (`Invalid`). `Conflict("credential lookup")`
    /// if that kind and lookup exist.
    pub async fn create_credential(&self, new: NewCredential) -> Result<Credential> {
        dispatch!(self.create_credential(new))
    }

    /// The credential with this id, if any.
    pub async fn credential(&self, id: &str) -> Result<Option<Credential>> {
        dispatch!(self.credential(id))
    }

    /// The credential of this kind with this lookup value (see [`CredentialKind`]), if any. The
    /// authentication hot path: one indexed read. Check [`Credential::is_usable_at`] on the result.
    pub async fn credential_by_lookup(&self, kind: CredentialKind, lookup: &str) -> Result<Option<Credential>> {
        dispatch!(self.credential_by_lookup(kind, lookup))
    }

    /// The credential of this kind and lookup together with its consumer and organization, in one
    /// query: the authentication hot path. Decide with [`CredentialOwner::refusal_at`].
    pub async fn credential_with_owner(&self, kind: CredentialKind, lookup: &str) -> Result<Option<CredentialOwner>> {
        dispatch!(self.credential_with_owner(kind, lookup))
    }

    /// A consumer's credentials, oldest first, revoked and expired ones included.
    pub async fn list_credentials(&self, consumer_id: &str) -> Result<Vec<Credential>> {
        dispatch!(self.list_credentials(consumer_id))
    }

    /// Revokes a credential from `at` (the earliest revocation time wins); returns the updated row.
    pub async fn revoke_credential(&self, id: &str, at: i64) -> Result<Credential> {
        dispatch!(self.revoke_credential(id, at))
    }

    /// Sets or clears a credential's expiry; returns the updated row. Rotation: issue the new
    /// credential, then give the old one `expires_at = now + overlap`.
    pub async fn set_credential_expiry(&self, id: &str, expires_at: Option<i64>) -> Result<Credential> {
        dispatch!(self.set_credential_expiry(id, expires_at))
    }

    // --- suspensions ----------------------------------------------------------------------------

    /// Suspends a target, replacing any suspension it already had. Organizations, consumers and
    /// credentials must exist (`NotFound`); routes are names from the config and are not checked.
    pub async fn suspend(&self, new: NewSuspension) -> Result<Suspension> {
        dispatch!(self.suspend(new))
    }

    /// Lifts the target's suspension; `false` if it had none.
    pub async fn lift(&self, target: &SuspensionTarget) -> Result<bool> {
        dispatch!(self.lift(target))
    }

    /// Suspensions in force at `now` (no expiry, or expiring later), oldest first.
    pub async fn active_suspensions(&self, now: i64) -> Result<Vec<Suspension>> {
        dispatch!(self.active_suspensions(now))
    }

    // --- shaping policies -----------------------------------------------------------------------

    /// Sets the run-time shaping policy of a subject on a route, replacing the one it had. Names
    /// are not checked here (routes live in the configuration; the admin layer checks consumers
    /// and organizations). Bumps the change counter.
    pub async fn put_shaping_policy(&self, new: NewShapingPolicy) -> Result<ShapingPolicy> {
        dispatch!(self.put_shaping_policy(new))
    }

    /// Deletes the subject's policy on the route; `false` if it had none.
    pub async fn delete_shaping_policy(&self, route: &str, subject: &PolicySubject) -> Result<bool> {
        dispatch!(self.delete_shaping_policy(route, subject))
    }

    /// Shaping policies in force at `now` (no expiry, or expiring later), oldest first.
    pub async fn active_shaping_policies(&self, now: i64) -> Result<Vec<ShapingPolicy>> {
        dispatch!(self.active_shaping_policies(now))
    }

    // --- audit and changes ----------------------------------------------------------------------

    /// Appends to the audit log; returns the entry's `seq`. Refuses (`Invalid`) a detail with a
    /// secret-looking key (see [`NewAuditEntry`]).
    pub async fn append_audit(&self, entry: NewAuditEntry) -> Result<i64> {
        dispatch!(self.append_audit(entry))
    }

    /// Audit entries after `since_seq`, oldest first.
    pub async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        dispatch!(self.list_audit(filter))
    }

    /// A counter bumped by every write to identity state (not by audit appends), in the same
    /// transaction: poll it and refresh caches when it moves.
    pub async fn change_seq(&self) -> Result<i64> {
        dispatch!(self.change_seq())
    }

    // --- usage ----------------------------------------------------------------------------------

    /// Adds each row's count to the stored (day, consumer, route) row, creating it if needed, in
    /// one transaction (all or nothing). Usage is not identity state: no change-counter bump.
    pub async fn record_usage(&self, rows: Vec<UsageRecord>) -> Result<()> {
        for r in &rows {
            r.validate()?;
        }
        if rows.is_empty() {
            return Ok(());
        }
        dispatch!(self.record_usage(rows))
    }

    /// Totals per consumer and route over `filter.period` (a month or a day), sorted by consumer
    /// id then route.
    pub async fn usage_report(&self, filter: &UsageFilter) -> Result<Vec<UsageLine>> {
        filter.checked_period()?;
        dispatch!(self.usage_report(filter))
    }
}
