//! The PostgreSQL backend: tokio-postgres through a deadpool pool.
//!
//! TLS: connections use `NoTls`. That is fine for a database on loopback or a Unix socket, which
//! is what the gateway is tested with; a URL asking for `sslmode=require` fails to connect rather
//! than silently going without TLS. A remote database over an untrusted network needs TLS support
//! added here first (not yet).

use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use portcullis_config::Secret;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row, error::SqlState};

use crate::error::{StoreError, conflict_subject};
use crate::migrations::{MIGRATIONS, latest_version};
use crate::model::*;
use crate::usage::{UsageFilter, UsageLine, UsageRecord};

type Result<T> = std::result::Result<T, StoreError>;
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A store in a PostgreSQL database (optionally in its own schema). Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    schema: Option<String>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("schema", &self.schema).finish_non_exhaustive()
    }
}

fn db_err(context: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| {
        if let Some(db) = e.as_db_error() {
            if *db.code() == SqlState::UNIQUE_VIOLATION {
                return StoreError::Conflict(conflict_subject(db.constraint().unwrap_or("")));
            }
            if *db.code() == SqlState::FOREIGN_KEY_VIOLATION {
                return StoreError::NotFound("referenced row");
            }
        }
        StoreError::backend(context, e)
    }
}

fn pool_err(context: &'static str) -> impl Fn(deadpool_postgres::PoolError) -> StoreError {
    move |e| match e {
        deadpool_postgres::PoolError::Backend(e) => db_err(context)(e),
        other => StoreError::backend(context, other),
    }
}

/// A schema name we are willing to splice into SQL: a plain lower-case identifier.
fn check_schema(schema: &str) -> Result<()> {
    let mut bytes = schema.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    if first_ok && schema.len() <= 63 && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        Ok(())
    } else {
        Err(StoreError::invalid("schema must be 1-63 characters of [a-z0-9_], not starting with a digit"))
    }
}

/// The advisory-lock key that serialises migrations of one schema across nodes (FNV-1a, so it is
/// stable across builds and platforms).
fn migration_lock_key(schema: Option<&str>) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "portcullis-store:migrations:".bytes().chain(schema.unwrap_or("public").bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T> {
    row.try_get(idx).map_err(|e| StoreError::backend("decoding a row", e))
}

const ORG_COLS: &str = "id, name, plan, status, created_at";
fn org_row_at(b: usize, row: &Row) -> Result<Organization> {
    Ok(Organization {
        id: get(row, b)?,
        name: get(row, b + 1)?,
        plan: get(row, b + 2)?,
        status: Status::parse(get(row, b + 3)?)?,
        created_at: get(row, b + 4)?,
    })
}
fn org_row(row: &Row) -> Result<Organization> {
    org_row_at(0, row)
}

const CONSUMER_COLS: &str = "id, org_id, name, kind, scopes, roles, plan, external_subject, status, created_at";
fn consumer_row_at(b: usize, row: &Row) -> Result<Consumer> {
    Ok(Consumer {
        id: get(row, b)?,
        org_id: get(row, b + 1)?,
        name: get(row, b + 2)?,
        kind: ConsumerKind::parse(get(row, b + 3)?)?,
        scopes: get(row, b + 4)?,
        roles: get(row, b + 5)?,
        plan: get(row, b + 6)?,
        external_subject: get(row, b + 7)?,
        status: Status::parse(get(row, b + 8)?)?,
        created_at: get(row, b + 9)?,
    })
}
fn consumer_row(row: &Row) -> Result<Consumer> {
    consumer_row_at(0, row)
}

const CREDENTIAL_COLS: &str =
    "id, consumer_id, kind, lookup, hint, secret, scopes, expires_at, revoked_at, created_at, label";
fn credential_row_at(b: usize, row: &Row) -> Result<Credential> {
    Ok(Credential {
        id: get(row, b)?,
        consumer_id: get(row, b + 1)?,
        kind: CredentialKind::parse(get(row, b + 2)?)?,
        lookup: get(row, b + 3)?,
        hint: get(row, b + 4)?,
        secret: get(row, b + 5)?,
        scopes: get(row, b + 6)?,
        expires_at: get(row, b + 7)?,
        revoked_at: get(row, b + 8)?,
        created_at: get(row, b + 9)?,
        label: get(row, b + 10)?,
    })
}
fn credential_row(row: &Row) -> Result<Credential> {
    credential_row_at(0, row)
}

fn owner_row(row: &Row) -> Result<CredentialOwner> {
    Ok(CredentialOwner {
        credential: credential_row_at(0, row)?,
        consumer: consumer_row_at(crate::CREDENTIAL_COL_COUNT, row)?,
        organization: org_row_at(crate::CREDENTIAL_COL_COUNT + crate::CONSUMER_COL_COUNT, row)?,
    })
}

const SUSPENSION_COLS: &str = "id, target_kind, target_id, reason, expires_at, created_at, created_by";
fn suspension_row(row: &Row) -> Result<Suspension> {
    Ok(Suspension {
        id: get(row, 0)?,
        target: SuspensionTarget::from_parts(get(row, 1)?, get(row, 2)?)?,
        reason: get(row, 3)?,
        expires_at: get(row, 4)?,
        created_at: get(row, 5)?,
        created_by: get(row, 6)?,
    })
}

const POLICY_COLS: &str = "id, route, subject_kind, subject_name, shape, reason, expires_at, created_at, created_by";
fn policy_row(row: &Row) -> Result<ShapingPolicy> {
    let shape: serde_json::Value = get(row, 4)?;
    Ok(ShapingPolicy {
        id: get(row, 0)?,
        route: get(row, 1)?,
        subject: PolicySubject::from_parts(get(row, 2)?, get(row, 3)?)
            .map_err(|_| StoreError::backend_msg("decoding a row", "unknown policy subject"))?,
        shape: serde_json::from_value(shape).map_err(|e| StoreError::backend("decoding a row", e))?,
        reason: get(row, 5)?,
        expires_at: get(row, 6)?,
        created_at: get(row, 7)?,
        created_by: get(row, 8)?,
    })
}

const AUDIT_COLS: &str = "seq, at, actor, action, target, detail";
fn audit_row(row: &Row) -> Result<AuditEntry> {
    Ok(AuditEntry {
        seq: get(row, 0)?,
        at: get(row, 1)?,
        actor: get(row, 2)?,
        action: get(row, 3)?,
        target: get(row, 4)?,
        detail: get(row, 5)?,
    })
}

const BUMP: &str = "UPDATE changes SET seq = seq + 1 WHERE id = 1";

impl PgStore {
    /// Connects (lazily, through a pool of at most `pool_size` connections), then migrates.
    /// With a `schema`, every pooled connection uses it as its `search_path`, and the schema is
    /// created if missing.
    pub async fn open(url: &Secret, pool_size: usize, schema: Option<&str>) -> Result<Self> {
        // The parse error could quote the URL (and its password): say only that it is wrong.
        let mut config: tokio_postgres::Config = url
            .expose()
            .parse()
            .map_err(|_| StoreError::invalid("the PostgreSQL URL is not a valid connection string"))?;
        if let Some(schema) = schema {
            check_schema(schema)?;
            let options = match config.get_options() {
                Some(existing) if !existing.is_empty() => format!("{existing} -c search_path={schema}"),
                _ => format!("-c search_path={schema}"),
            };
            config.options(options);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("portcullis");
        }
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::backend("building the PostgreSQL pool", e))?;
        let store = PgStore { pool, schema: schema.map(str::to_owned) };
        store.migrate().await?;
        Ok(store)
    }

    /// The schema this store lives in, if one was configured.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = self.pool.get().await.map_err(pool_err("connecting to PostgreSQL"))?;
        let tx = client.transaction().await.map_err(db_err("starting migrations"))?;
        // Two nodes starting at once: the second waits here until the first commits, then finds
        // every migration applied. The transaction-scoped lock is released by COMMIT or ROLLBACK.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&migration_lock_key(self.schema.as_deref())])
            .await
            .map_err(db_err("taking the migration lock"))?;
        if let Some(schema) = &self.schema {
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}; SET LOCAL search_path TO {schema}"))
                .await
                .map_err(db_err("creating the schema"))?;
        }
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .await
        .map_err(db_err("creating schema_migrations"))?;
        let current: i64 = get(
            &tx.query_one("SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations", &[])
                .await
                .map_err(db_err("reading schema_migrations"))?,
            0,
        )?;
        if current > latest_version() {
            return Err(StoreError::invalid(format!(
                "database schema version {current} is newer than this build knows ({})",
                latest_version()
            )));
        }
        for m in MIGRATIONS.iter().filter(|m| m.version > current) {
            tx.batch_execute(m.postgres).await.map_err(db_err("applying a migration"))?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at)
                 VALUES ($1, $2, EXTRACT(EPOCH FROM now())::BIGINT)",
                &[&m.version, &m.name],
            )
            .await
            .map_err(db_err("recording a migration"))?;
            tracing::info!(version = m.version, name = m.name, "applied PostgreSQL migration");
        }
        tx.commit().await.map_err(db_err("committing migrations"))
    }

    async fn one<T>(
        &self,
        context: &'static str,
        sql: &str,
        params: Params<'_>,
        map: fn(&Row) -> Result<T>,
    ) -> Result<Option<T>> {
        let client = self.pool.get().await.map_err(pool_err(context))?;
        let stmt = client.prepare_cached(sql).await.map_err(db_err(context))?;
        client.query_opt(&stmt, params).await.map_err(db_err(context))?.as_ref().map(map).transpose()
    }

    async fn many<T>(
        &self,
        context: &'static str,
        sql: &str,
        params: Params<'_>,
        map: fn(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let client = self.pool.get().await.map_err(pool_err(context))?;
        let stmt = client.prepare_cached(sql).await.map_err(db_err(context))?;
        client.query(&stmt, params).await.map_err(db_err(context))?.iter().map(map).collect()
    }

    /// One UPDATE … RETURNING in a transaction that bumps the change counter.
    async fn update_one<T>(
        &self,
        context: &'static str,
        what: &'static str,
        sql: &str,
        params: Params<'_>,
        map: fn(&Row) -> Result<T>,
    ) -> Result<T> {
        let mut client = self.pool.get().await.map_err(pool_err(context))?;
        let tx = client.transaction().await.map_err(db_err(context))?;
        let row = tx.query_opt(sql, params).await.map_err(db_err(context))?.ok_or(StoreError::NotFound(what))?;
        let out = map(&row)?;
        tx.execute(BUMP, &[]).await.map_err(db_err(context))?;
        tx.commit().await.map_err(db_err(context))?;
        Ok(out)
    }

    // --- organizations --------------------------------------------------------------------------

    pub(crate) async fn create_org(&self, new: NewOrg) -> Result<Organization> {
        new.validate()?;
        let org = Organization {
            id: new_id(),
            name: new.name,
            plan: new.plan,
            status: Status::Active,
            created_at: new.created_at,
        };
        let context = "creating an organization";
        let mut client = self.pool.get().await.map_err(pool_err(context))?;
        let tx = client.transaction().await.map_err(db_err(context))?;
        tx.execute(
            &format!("INSERT INTO organizations ({ORG_COLS}) VALUES ($1, $2, $3, $4, $5)"),
            &[&org.id, &org.name, &org.plan, &org.status.as_str(), &org.created_at],
        )
        .await
        .map_err(db_err(context))?;
        tx.execute(BUMP, &[]).await.map_err(db_err(context))?;
        tx.commit().await.map_err(db_err(context))?;
        Ok(org)
    }

    pub(crate) async fn org(&self, id: &str) -> Result<Option<Organization>> {
        let sql = format!("SELECT {ORG_COLS} FROM organizations WHERE id = $1");
        self.one("reading an organization", &sql, &[&id], org_row).await
    }

    pub(crate) async fn org_by_name(&self, name: &str) -> Result<Option<Organization>> {
        let sql = format!("SELECT {ORG_COLS} FROM organizations WHERE name = $1");
        self.one("reading an organization", &sql, &[&name], org_row).await
    }

    pub(crate) async fn list_orgs(&self, filter: &OrgFilter) -> Result<Vec<Organization>> {
        let sql = format!("SELECT {ORG_COLS} FROM organizations WHERE $1::TEXT IS NULL OR status = $1 ORDER BY id");
        self.many("listing organizations", &sql, &[&filter.status.map(Status::as_str)], org_row).await
    }

    pub(crate) async fn set_org_status(&self, id: &str, status: Status) -> Result<Organization> {
        let sql = format!("UPDATE organizations SET status = $2 WHERE id = $1 RETURNING {ORG_COLS}");
        self.update_one("setting an organization's status", "organization", &sql, &[&id, &status.as_str()], org_row)
            .await
    }

    // --- consumers ------------------------------------------------------------------------------

    pub(crate) async fn create_consumer(&self, new: NewConsumer) -> Result<Consumer> {
        new.validate()?;
        let c = Consumer {
            id: new_id(),
            org_id: new.org_id,
            name: new.name,
            kind: new.kind,
            scopes: new.scopes,
            roles: new.roles,
            plan: new.plan,
            external_subject: new.external_subject,
            status: Status::Active,
            created_at: new.created_at,
        };
        let context = "creating a consumer";
        let mut client = self.pool.get().await.map_err(pool_err(context))?;
        let tx = client.transaction().await.map_err(db_err(context))?;
        // FOR KEY SHARE: the organization cannot be deleted under us before we commit.
        tx.query_opt("SELECT 1 FROM organizations WHERE id = $1 FOR KEY SHARE", &[&c.org_id])
            .await
            .map_err(db_err(context))?
            .ok_or(StoreError::NotFound("organization"))?;
        tx.execute(
            &format!("INSERT INTO consumers ({CONSUMER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"),
            &[
                &c.id,
                &c.org_id,
                &c.name,
                &c.kind.as_str(),
                &c.scopes,
                &c.roles,
                &c.plan,
                &c.external_subject,
                &c.status.as_str(),
                &c.created_at,
            ],
        )
        .await
        .map_err(db_err(context))?;
        tx.execute(BUMP, &[]).await.map_err(db_err(context))?;
        tx.commit().await.map_err(db_err(context))?;
        Ok(c)
    }

    pub(crate) async fn consumer(&self, id: &str) -> Result<Option<Consumer>> {
        let sql = format!("SELECT {CONSUMER_COLS} FROM consumers WHERE id = $1");
        self.one("reading a consumer", &sql, &[&id], consumer_row).await
    }

    pub(crate) async fn consumer_by_name(&self, name: &str) -> Result<Option<Consumer>> {
        let sql = format!("SELECT {CONSUMER_COLS} FROM consumers WHERE name = $1");
        self.one("reading a consumer", &sql, &[&name], consumer_row).await
    }

    pub(crate) async fn consumer_by_subject(&self, subject: &str) -> Result<Option<Consumer>> {
        let sql = format!("SELECT {CONSUMER_COLS} FROM consumers WHERE external_subject = $1");
        self.one("reading a consumer", &sql, &[&subject], consumer_row).await
    }

    pub(crate) async fn list_consumers(&self, filter: &ConsumerFilter) -> Result<Vec<Consumer>> {
        let sql = format!(
            "SELECT {CONSUMER_COLS} FROM consumers
             WHERE ($1::TEXT IS NULL OR org_id = $1) AND ($2::TEXT IS NULL OR status = $2) ORDER BY id"
        );
        let status = filter.status.map(Status::as_str);
        self.many("listing consumers", &sql, &[&filter.org_id, &status], consumer_row).await
    }

    pub(crate) async fn set_consumer_status(&self, id: &str, status: Status) -> Result<Consumer> {
        let sql = format!("UPDATE consumers SET status = $2 WHERE id = $1 RETURNING {CONSUMER_COLS}");
        self.update_one("setting a consumer's status", "consumer", &sql, &[&id, &status.as_str()], consumer_row).await
    }

    pub(crate) async fn set_consumer_scopes(&self, id: &str, scopes: Vec<String>) -> Result<Consumer> {
        check_scopes("scopes", &scopes)?;
        let sql = format!("UPDATE consumers SET scopes = $2 WHERE id = $1 RETURNING {CONSUMER_COLS}");
        self.update_one("setting a consumer's scopes", "consumer", &sql, &[&id, &scopes], consumer_row).await
    }

    // --- credentials ----------------------------------------------------------------------------

    pub(crate) async fn create_credential(&self, new: NewCredential) -> Result<Credential> {
        new.validate()?;
        let context = "creating a credential";
        let mut client = self.pool.get().await.map_err(pool_err(context))?;
        let tx = client.transaction().await.map_err(db_err(context))?;
        let row = tx
            .query_opt("SELECT scopes FROM consumers WHERE id = $1 FOR KEY SHARE", &[&new.consumer_id])
            .await
            .map_err(db_err(context))?
            .ok_or(StoreError::NotFound("consumer"))?;
        let consumer_scopes: Vec<String> = get(&row, 0)?;
        new.check_scopes_within(&consumer_scopes)?;
        let c = Credential {
            id: new_id(),
            consumer_id: new.consumer_id,
            kind: new.kind,
            lookup: new.lookup,
            hint: new.hint,
            secret: new.secret,
            scopes: new.scopes,
            expires_at: new.expires_at,
            revoked_at: None,
            created_at: new.created_at,
            label: new.label,
        };
        tx.execute(
            &format!(
                "INSERT INTO credentials ({CREDENTIAL_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ),
            &[
                &c.id,
                &c.consumer_id,
                &c.kind.as_str(),
                &c.lookup,
                &c.hint,
                &c.secret,
                &c.scopes,
                &c.expires_at,
                &c.revoked_at,
                &c.created_at,
                &c.label,
            ],
        )
        .await
        .map_err(db_err(context))?;
        tx.execute(BUMP, &[]).await.map_err(db_err(context))?;
        tx.commit().await.map_err(db_err(context))?;
        Ok(c)
    }

    pub(crate) async fn credential(&self, id: &str) -> Result<Option<Credential>> {
        let sql = format!("SELECT {CREDENTIAL_COLS} FROM credentials WHERE id = $1");
        self.one("reading a credential", &sql, &[&id], credential_row).await
    }

    pub(crate) async fn credential_by_lookup(&self, kind: CredentialKind, lookup: &str) -> Result<Option<Credential>> {
        let sql = format!("SELECT {CREDENTIAL_COLS} FROM credentials WHERE kind = $1 AND lookup = $2");
        self.one("reading a credential", &sql, &[&kind.as_str(), &lookup], credential_row).await
    }

    pub(crate) async fn credential_with_owner(
        &self,
        kind: CredentialKind,
        lookup: &str,
    ) -> Result<Option<CredentialOwner>> {
        let sql = crate::owner_sql(CREDENTIAL_COLS, CONSUMER_COLS, ORG_COLS, "$1", "$2");
        self.one("reading a credential and its owner", &sql, &[&kind.as_str(), &lookup], owner_row).await
    }

    pub(crate) async fn list_credentials(&self, consumer_id: &str) -> Result<Vec<Credential>> {
        let sql = format!("SELECT {CREDENTIAL_COLS} FROM credentials WHERE consumer_id = $1 ORDER BY id");
        self.many("listing credentials", &sql, &[&consumer_id], credential_row).await
    }

    pub(crate) async fn revoke_credential(&self, id: &str, at: i64) -> Result<Credential> {
        // The earliest revocation wins: revoking again never extends a credential's life.
        let sql = format!(
            "UPDATE credentials SET revoked_at = LEAST(COALESCE(revoked_at, $2), $2)
             WHERE id = $1 RETURNING {CREDENTIAL_COLS}"
        );
        self.update_one("revoking a credential", "credential", &sql, &[&id, &at], credential_row).await
    }

    pub(crate) async fn set_credential_expiry(&self, id: &str, expires_at: Option<i64>) -> Result<Credential> {
        let sql = format!("UPDATE credentials SET expires_at = $2 WHERE id = $1 RETURNING {CREDENTIAL_COLS}");
        self.update_one("setting a credential's expiry", "credential", &sql, &[&id, &expires_at], credential_row).await
    }

    // --- suspensions ----------------------------------------------------------------------------

    pub(crate) async fn suspend(&self, new: NewSuspension) -> Result<Suspension> {
        new.validate()?;
        let context = "suspending";
        let mut client = self.pool.get().await.map_err(pool_err(context))?;
        let tx = client.transaction().await.map_err(db_err(context))?;
        let exists_sql = match &new.target {
            SuspensionTarget::Organization(_) => Some(("SELECT 1 FROM organizations WHERE id = $1", "organization")),
            SuspensionTarget::Consumer(_) => Some(("SELECT 1 FROM consumers WHERE id = $1", "consumer")),
            SuspensionTarget::Credential(_) => Some(("SELECT 1 FROM credentials WHERE id = $1", "credential")),
            SuspensionTarget::Route(_) => None,
        };
        if let Some((sql, what)) = exists_sql {
            tx.query_opt(sql, &[&new.target.id()]).await.map_err(db_err(context))?.ok_or(StoreError::NotFound(what))?;
        }
        // Housekeeping: expired suspensions are of no use to anyone.
        tx.execute("DELETE FROM suspensions WHERE expires_at IS NOT NULL AND expires_at <= $1", &[&new.created_at])
            .await
            .map_err(db_err(context))?;
        let s = Suspension {
            id: new_id(),
            target: new.target,
            reason: new.reason,
            expires_at: new.expires_at,
            created_at: new.created_at,
            created_by: new.created_by,
        };
        tx.execute(
            &format!(
                "INSERT INTO suspensions ({SUSPENSION_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (target_kind, target_id) DO UPDATE SET id = excluded.id, reason = excluded.reason,
                   expires_at = excluded.expires_at, created_at = excluded.created_at,
                   created_by = excluded.created_by"
            ),
            &[&s.id, &s.target.kind_str(), &s.target.id(), &s.reason, &s.expires_at, &s.created_at, &s.created_by],
        )
        .await
        .map_err(db_err(context))?;
        tx.execute(BUMP, &[]).await.map_err(db_err(context))?;
        tx.commit().await.map_err(db_err(context))?;
        Ok(s)
    }

    pub(crate) async fn lift(&self, target: &SuspensionTarget) -> Result<bool> {
        let context = "lifting a suspension";
        let mut client = self.pool.get().await.map_err(pool_err(context))?;
        let tx = client.transaction().await.map_err(db_err(context))?;
        let n = tx
            .execute(
                "DELETE FROM suspensions WHERE target_kind = $1 AND target_id = $2",
                &[&target.kind_str(), &target.id()],
            )
            .await
            .map_err(db_err(context))?;
        if n > 0 {
            tx.execute(BUMP, &[]).await.map_err(db_err(context))?;
        }
        tx.commit().await.map_err(db_err(context))?;
        Ok(n > 0)
    }

    pub(crate) async fn active_suspensions(&self, now: i64) -> Result<Vec<Suspension>> {
        let sql = format!(
            "SELECT {SUSPENSION_COLS} FROM suspensions WHERE expires_at IS NULL OR expires_at > $1 ORDER BY id"
        );
        self.many("listing suspensions", &sql, &[&now], suspension_row).await
    }

    // --- shaping policies -----------------------------------------------------------------------

    pub(crate) async fn put_shaping_policy(&self, new: NewShapingPolicy) -> Result<ShapingPolicy> {
        new.validate()?;
        let shape = serde_json::to_value(&new.shape).map_err(|e| StoreError::backend("encoding JSON", e))?;
        let context = "setting a shaping policy";
        let mut client = self.pool.get().await.map_err(pool_err(context))?;
        let tx = client.transaction().await.map_err(db_err(context))?;
        // Housekeeping: lapsed policies are of no use to anyone.
        tx.execute(
            "DELETE FROM shaping_policies WHERE expires_at IS NOT NULL AND expires_at <= $1",
            &[&new.created_at],
        )
        .await
        .map_err(db_err(context))?;
        let p = ShapingPolicy {
            id: new_id(),
            route: new.route,
            subject: new.subject,
            shape: new.shape,
            reason: new.reason,
            expires_at: new.expires_at,
            created_at: new.created_at,
            created_by: new.created_by,
        };
        tx.execute(
            &format!(
                "INSERT INTO shaping_policies ({POLICY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (route, subject_kind, subject_name) DO UPDATE SET id = excluded.id,
                   shape = excluded.shape, reason = excluded.reason, expires_at = excluded.expires_at,
                   created_at = excluded.created_at, created_by = excluded.created_by"
            ),
            &[
                &p.id,
                &p.route,
                &p.subject.kind_str(),
                &p.subject.name(),
                &shape,
                &p.reason,
                &p.expires_at,
                &p.created_at,
                &p.created_by,
            ],
        )
        .await
        .map_err(db_err(context))?;
        tx.execute(BUMP, &[]).await.map_err(db_err(context))?;
        tx.commit().await.map_err(db_err(context))?;
        Ok(p)
    }

    pub(crate) async fn delete_shaping_policy(&self, route: &str, subject: &PolicySubject) -> Result<bool> {
        let context = "deleting a shaping policy";
        let mut client = self.pool.get().await.map_err(pool_err(context))?;
        let tx = client.transaction().await.map_err(db_err(context))?;
        let n = tx
            .execute(
                "DELETE FROM shaping_policies WHERE route = $1 AND subject_kind = $2 AND subject_name = $3",
                &[&route, &subject.kind_str(), &subject.name()],
            )
            .await
            .map_err(db_err(context))?;
        if n > 0 {
            tx.execute(BUMP, &[]).await.map_err(db_err(context))?;
        }
        tx.commit().await.map_err(db_err(context))?;
        Ok(n > 0)
    }

    pub(crate) async fn active_shaping_policies(&self, now: i64) -> Result<Vec<ShapingPolicy>> {
        let sql = format!(
            "SELECT {POLICY_COLS} FROM shaping_policies WHERE expires_at IS NULL OR expires_at > $1 ORDER BY id"
        );
        self.many("listing shaping policies", &sql, &[&now], policy_row).await
    }

    // --- audit and changes ----------------------------------------------------------------------

    pub(crate) async fn append_audit(&self, entry: NewAuditEntry) -> Result<i64> {
        entry.validate()?;
        let context = "appending to the audit log";
        let mut client = self.pool.get().await.map_err(pool_err(context))?;
        let tx = client.transaction().await.map_err(db_err(context))?;
        // Identity values are handed out in insert order but become visible in commit order; a
        // reader paging with `since_seq` could then skip an entry that commits late. Serialising
        // appends on a lock (released at COMMIT) makes visibility order equal seq order.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&(migration_lock_key(self.schema.as_deref()) ^ 1)])
            .await
            .map_err(db_err(context))?;
        let row = tx
            .query_one(
                "INSERT INTO audit_log (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5) RETURNING seq",
                &[&entry.at, &entry.actor, &entry.action, &entry.target, &entry.detail],
            )
            .await
            .map_err(db_err(context))?;
        let seq = get(&row, 0)?;
        tx.commit().await.map_err(db_err(context))?;
        Ok(seq)
    }

    pub(crate) async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let sql = format!("SELECT {AUDIT_COLS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
        let limit = i64::from(filter.limit.min(MAX_AUDIT_PAGE));
        self.many("listing the audit log", &sql, &[&filter.since_seq, &limit], audit_row).await
    }

    pub(crate) async fn change_seq(&self) -> Result<i64> {
        self.one("reading change_seq", "SELECT seq FROM changes WHERE id = 1", &[], |r| get(r, 0))
            .await?
            .ok_or(StoreError::NotFound("changes row"))
    }
}

impl PgStore {
    pub(crate) async fn record_usage(&self, rows: Vec<UsageRecord>) -> Result<()> {
        let context = "recording usage";
        let mut client = self.pool.get().await.map_err(pool_err(context))?;
        let tx = client.transaction().await.map_err(db_err(context))?;
        let stmt = tx
            .prepare_cached(
                "INSERT INTO usage (day, consumer_id, route, count) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (day, consumer_id, route) DO UPDATE SET count = usage.count + excluded.count",
            )
            .await
            .map_err(db_err(context))?;
        // Rows in key order, so two nodes flushing at once lock them in the same order.
        let mut rows = rows;
        rows.sort_by(|a, b| (&a.day, &a.consumer_id, &a.route).cmp(&(&b.day, &b.consumer_id, &b.route)));
        for r in &rows {
            let count = i64::try_from(r.count).map_err(|_| StoreError::invalid("usage count too large"))?;
            tx.execute(&stmt, &[&r.day, &r.consumer_id, &r.route, &count]).await.map_err(db_err(context))?;
        }
        tx.commit().await.map_err(db_err(context))
    }

    pub(crate) async fn usage_report(&self, filter: &UsageFilter) -> Result<Vec<UsageLine>> {
        let period = filter.checked_period()?.to_owned();
        let sql = "SELECT u.consumer_id, c.name, u.route, SUM(u.count)::BIGINT FROM usage u \
                   LEFT JOIN consumers c ON c.id = u.consumer_id \
                   WHERE u.day LIKE $1 || '%' AND ($2::TEXT IS NULL OR u.consumer_id = $2) \
                   AND ($3::TEXT IS NULL OR u.route = $3) \
                   GROUP BY u.consumer_id, c.name, u.route ORDER BY u.consumer_id, u.route";
        let rows = self
            .many("reporting usage", sql, &[&period, &filter.consumer_id, &filter.route], |r| {
                let n: i64 = get(r, 3)?;
                Ok(UsageLine {
                    period: String::new(),
                    consumer_id: get(r, 0)?,
                    consumer_name: get(r, 1)?,
                    route: get(r, 2)?,
                    count: u64::try_from(n).unwrap_or(0),
                })
            })
            .await?;
        Ok(rows.into_iter().map(|l| UsageLine { period: period.clone(), ..l }).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for ok in ["portcullis", "t_0123abcd", "_x"] {
            assert!(check_schema(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1abc", "Public", "a-b", "a;drop", "a\"b", &"a".repeat(64)] {
            assert!(check_schema(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn column_counts_match_the_joined_decoder() {
        assert_eq!(CREDENTIAL_COLS.split(", ").count(), crate::CREDENTIAL_COL_COUNT);
        assert_eq!(CONSUMER_COLS.split(", ").count(), crate::CONSUMER_COL_COUNT);
    }

    #[test]
    fn lock_keys_differ_per_schema_and_are_stable() {
        assert_eq!(migration_lock_key(Some("a")), migration_lock_key(Some("a")));
        assert_ne!(migration_lock_key(Some("a")), migration_lock_key(Some("b")));
        assert_eq!(migration_lock_key(None), migration_lock_key(Some("public")), "the default search_path");
    }
}
