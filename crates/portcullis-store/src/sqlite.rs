//! The SQLite backend: one connection behind a mutex, used from `spawn_blocking`.
//!
//! One connection is enough: the gateway reads identity rows through its own caches (refreshed on
//! [`crate::Store::change_seq`] or a change event), so the store sees admin-paced traffic, and a
//! single writer is what SQLite allows anyway. WAL lets other processes (the CLI, a backup) read
//! while we write.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior, params};

use crate::error::{StoreError, conflict_subject};
use crate::migrations::{MIGRATIONS, latest_version};
use crate::model::*;
use crate::usage::{UsageFilter, UsageLine, UsageRecord};

type Result<T> = std::result::Result<T, StoreError>;

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A store in one SQLite file (WAL mode, `synchronous=NORMAL`, foreign keys on). Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

fn db_err(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| {
        if let rusqlite::Error::SqliteFailure(code, msg) = &e
            && code.code == ErrorCode::ConstraintViolation
        {
            match code.extended_code {
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                    return StoreError::Conflict(conflict_subject(msg.as_deref().unwrap_or("")));
                }
                rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => return StoreError::NotFound("referenced row"),
                _ => {}
            }
        }
        StoreError::backend(context, e)
    }
}

fn conversion(idx: usize, e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
}

fn text_col<T>(row: &Row<'_>, idx: usize, parse: fn(&str) -> Result<T>) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    parse(&text).map_err(|e| conversion(idx, e))
}

fn json_list(row: &Row<'_>, idx: usize) -> rusqlite::Result<Vec<String>> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| conversion(idx, e))
}

fn opt_json_list(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<Vec<String>>> {
    let text: Option<String> = row.get(idx)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| conversion(idx, e))).transpose()
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::backend("encoding JSON", e))
}

const ORG_COLS: &str = "id, name, plan, status, created_at";
fn org_row_at(b: usize, row: &Row<'_>) -> rusqlite::Result<Organization> {
    Ok(Organization {
        id: row.get(b)?,
        name: row.get(b + 1)?,
        plan: row.get(b + 2)?,
        status: text_col(row, b + 3, Status::parse)?,
        created_at: row.get(b + 4)?,
    })
}
fn org_row(row: &Row<'_>) -> rusqlite::Result<Organization> {
    org_row_at(0, row)
}

const CONSUMER_COLS: &str = "id, org_id, name, kind, scopes, roles, plan, external_subject, status, created_at";
fn consumer_row_at(b: usize, row: &Row<'_>) -> rusqlite::Result<Consumer> {
    Ok(Consumer {
        id: row.get(b)?,
        org_id: row.get(b + 1)?,
        name: row.get(b + 2)?,
        kind: text_col(row, b + 3, ConsumerKind::parse)?,
        scopes: json_list(row, b + 4)?,
        roles: json_list(row, b + 5)?,
        plan: row.get(b + 6)?,
        external_subject: row.get(b + 7)?,
        status: text_col(row, b + 8, Status::parse)?,
        created_at: row.get(b + 9)?,
    })
}
fn consumer_row(row: &Row<'_>) -> rusqlite::Result<Consumer> {
    consumer_row_at(0, row)
}

const CREDENTIAL_COLS: &str =
    "id, consumer_id, kind, lookup, hint, secret, scopes, expires_at, revoked_at, created_at, label";
fn credential_row_at(b: usize, row: &Row<'_>) -> rusqlite::Result<Credential> {
    Ok(Credential {
        id: row.get(b)?,
        consumer_id: row.get(b + 1)?,
        kind: text_col(row, b + 2, CredentialKind::parse)?,
        lookup: row.get(b + 3)?,
        hint: row.get(b + 4)?,
        secret: row.get(b + 5)?,
        scopes: opt_json_list(row, b + 6)?,
        expires_at: row.get(b + 7)?,
        revoked_at: row.get(b + 8)?,
        created_at: row.get(b + 9)?,
        label: row.get(b + 10)?,
    })
}
fn credential_row(row: &Row<'_>) -> rusqlite::Result<Credential> {
    credential_row_at(0, row)
}

fn owner_row(row: &Row<'_>) -> rusqlite::Result<CredentialOwner> {
    Ok(CredentialOwner {
        credential: credential_row_at(0, row)?,
        consumer: consumer_row_at(crate::CREDENTIAL_COL_COUNT, row)?,
        organization: org_row_at(crate::CREDENTIAL_COL_COUNT + crate::CONSUMER_COL_COUNT, row)?,
    })
}

const SUSPENSION_COLS: &str = "id, target_kind, target_id, reason, expires_at, created_at, created_by";
fn suspension_row(row: &Row<'_>) -> rusqlite::Result<Suspension> {
    let kind: String = row.get(1)?;
    Ok(Suspension {
        id: row.get(0)?,
        target: SuspensionTarget::from_parts(&kind, row.get(2)?).map_err(|e| conversion(1, e))?,
        reason: row.get(3)?,
        expires_at: row.get(4)?,
        created_at: row.get(5)?,
        created_by: row.get(6)?,
    })
}

const POLICY_COLS: &str = "id, route, subject_kind, subject_name, shape, reason, expires_at, created_at, created_by";
fn policy_row(row: &Row<'_>) -> rusqlite::Result<ShapingPolicy> {
    let kind: String = row.get(2)?;
    let shape: String = row.get(4)?;
    Ok(ShapingPolicy {
        id: row.get(0)?,
        route: row.get(1)?,
        subject: PolicySubject::from_parts(&kind, row.get(3)?).map_err(|e| conversion(2, e))?,
        shape: serde_json::from_str(&shape).map_err(|e| conversion(4, e))?,
        reason: row.get(5)?,
        expires_at: row.get(6)?,
        created_at: row.get(7)?,
        created_by: row.get(8)?,
    })
}

const AUDIT_COLS: &str = "seq, at, actor, action, target, detail";
fn audit_row(row: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    let detail: String = row.get(5)?;
    Ok(AuditEntry {
        seq: row.get(0)?,
        at: row.get(1)?,
        actor: row.get(2)?,
        action: row.get(3)?,
        target: row.get(4)?,
        detail: serde_json::from_str(&detail).map_err(|e| conversion(5, e))?,
    })
}

/// Bumps the change counter; called inside every write transaction.
fn bump(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    tx.execute("UPDATE changes SET seq = seq + 1 WHERE id = 1", []).map_err(db_err("bumping change_seq"))?;
    Ok(())
}

/// Creates the file readable by its owner only, before SQLite opens it (SQLite gives the `-wal`
/// and `-shm` files the same permissions as the database file). An existing file is left as is.
fn create_private_file(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::backend("creating the SQLite file", e)),
    }
}

fn open_blocking(path: &Path) -> Result<Connection> {
    create_private_file(path)?;
    let mut conn = Connection::open(path).map_err(db_err("opening the SQLite file"))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err("setting busy_timeout"))?;
    let mode: String =
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(db_err("setting journal_mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::backend_msg("setting journal_mode", "SQLite refused WAL mode"));
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;").map_err(db_err("setting pragmas"))?;
    // Query-planner stability: without it, the bundled SQLite (built with STAT4) marks statements
    // whose plan could depend on a bound value for re-preparation on every new binding, so a
    // cached statement was parsed and planned again on each call (measured: a 3-table lookup took
    // ~100 µs instead of a few). Our queries are fixed OLTP lookups; one plan per text is right.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map_err(db_err("enabling QPSG"))?;
    migrate(&mut conn)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    // IMMEDIATE takes the write lock up front, so two processes opening the same file at once
    // apply each migration exactly once (the second waits, up to the busy timeout, then sees them).
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err("starting migrations"))?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .map_err(db_err("creating schema_migrations"))?;
    let current: i64 = tx
        .query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))
        .map_err(db_err("reading schema_migrations"))?;
    if current > latest_version() {
        return Err(StoreError::invalid(format!(
            "database schema version {current} is newer than this build knows ({})",
            latest_version()
        )));
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.execute_batch(m.sqlite).map_err(db_err("applying a migration"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, unixepoch())",
            params![m.version, m.name],
        )
        .map_err(db_err("recording a migration"))?;
        tracing::info!(version = m.version, name = m.name, "applied SQLite migration");
    }
    tx.commit().map_err(db_err("committing migrations"))
}

impl SqliteStore {
    /// Opens (creating it with mode 0600 if needed) and migrates the database at `path`.
    pub async fn open(path: &Path) -> Result<Self> {
        let owned = path.to_path_buf();
        let conn = tokio::task::spawn_blocking(move || open_blocking(&owned))
            .await
            .map_err(|e| StoreError::backend("opening the SQLite file", e))??;
        Ok(SqliteStore { conn: Arc::new(Mutex::new(conn)), path: Arc::new(path.to_path_buf()) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn call<T, F>(&self, context: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| StoreError::backend_msg(context, "connection mutex poisoned"))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::backend(context, e))?
    }

    /// Runs `f` in an IMMEDIATE transaction that also bumps the change counter, and commits.
    async fn write<T, F>(&self, context: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T> + Send + 'static,
    {
        self.call(context, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err(context))?;
            let out = f(&tx)?;
            bump(&tx)?;
            tx.commit().map_err(db_err(context))?;
            Ok(out)
        })
        .await
    }

    async fn one<T, P>(
        &self,
        context: &'static str,
        sql: String,
        params: P,
        map: fn(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>>
    where
        T: Send + 'static,
        P: rusqlite::Params + Send + 'static,
    {
        self.call(context, move |conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(db_err(context))?;
            stmt.query_row(params, map).optional().map_err(db_err(context))
        })
        .await
    }

    async fn many<T, P>(
        &self,
        context: &'static str,
        sql: String,
        params: P,
        map: fn(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>>
    where
        T: Send + 'static,
        P: rusqlite::Params + Send + 'static,
    {
        self.call(context, move |conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(db_err(context))?;
            let rows = stmt.query_map(params, map).map_err(db_err(context))?;
            rows.collect::<rusqlite::Result<Vec<T>>>().map_err(db_err(context))
        })
        .await
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
        let row = org.clone();
        self.write("creating an organization", move |tx| {
            tx.execute(
                &format!("INSERT INTO organizations ({ORG_COLS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
                params![row.id, row.name, row.plan, row.status.as_str(), row.created_at],
            )
            .map_err(db_err("creating an organization"))?;
            Ok(())
        })
        .await?;
        Ok(org)
    }

    pub(crate) async fn org(&self, id: &str) -> Result<Option<Organization>> {
        let sql = format!("SELECT {ORG_COLS} FROM organizations WHERE id = ?1");
        self.one("reading an organization", sql, [id.to_owned()], org_row).await
    }

    pub(crate) async fn org_by_name(&self, name: &str) -> Result<Option<Organization>> {
        let sql = format!("SELECT {ORG_COLS} FROM organizations WHERE name = ?1");
        self.one("reading an organization", sql, [name.to_owned()], org_row).await
    }

    pub(crate) async fn list_orgs(&self, filter: &OrgFilter) -> Result<Vec<Organization>> {
        let sql = format!("SELECT {ORG_COLS} FROM organizations WHERE ?1 IS NULL OR status = ?1 ORDER BY id");
        self.many("listing organizations", sql, [filter.status.map(Status::as_str)], org_row).await
    }

    pub(crate) async fn set_org_status(&self, id: &str, status: Status) -> Result<Organization> {
        let id = id.to_owned();
        self.write("setting an organization's status", move |tx| {
            tx.query_row(
                &format!("UPDATE organizations SET status = ?2 WHERE id = ?1 RETURNING {ORG_COLS}"),
                params![id, status.as_str()],
                org_row,
            )
            .optional()
            .map_err(db_err("setting an organization's status"))?
            .ok_or(StoreError::NotFound("organization"))
        })
        .await
    }

    // --- consumers ------------------------------------------------------------------------------

    pub(crate) async fn create_consumer(&self, new: NewConsumer) -> Result<Consumer> {
        new.validate()?;
        let consumer = Consumer {
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
        let row = consumer.clone();
        let (scopes, roles) = (to_json(&row.scopes)?, to_json(&row.roles)?);
        self.write("creating a consumer", move |tx| {
            let org_exists = tx
                .query_row("SELECT 1 FROM organizations WHERE id = ?1", [&row.org_id], |_| Ok(()))
                .optional()
                .map_err(db_err("creating a consumer"))?;
            org_exists.ok_or(StoreError::NotFound("organization"))?;
            tx.execute(
                &format!("INSERT INTO consumers ({CONSUMER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
                params![
                    row.id,
                    row.org_id,
                    row.name,
                    row.kind.as_str(),
                    scopes,
                    roles,
                    row.plan,
                    row.external_subject,
                    row.status.as_str(),
                    row.created_at
                ],
            )
            .map_err(db_err("creating a consumer"))?;
            Ok(())
        })
        .await?;
        Ok(consumer)
    }

    pub(crate) async fn consumer(&self, id: &str) -> Result<Option<Consumer>> {
        let sql = format!("SELECT {CONSUMER_COLS} FROM consumers WHERE id = ?1");
        self.one("reading a consumer", sql, [id.to_owned()], consumer_row).await
    }

    pub(crate) async fn consumer_by_name(&self, name: &str) -> Result<Option<Consumer>> {
        let sql = format!("SELECT {CONSUMER_COLS} FROM consumers WHERE name = ?1");
        self.one("reading a consumer", sql, [name.to_owned()], consumer_row).await
    }

    pub(crate) async fn consumer_by_subject(&self, subject: &str) -> Result<Option<Consumer>> {
        let sql = format!("SELECT {CONSUMER_COLS} FROM consumers WHERE external_subject = ?1");
        self.one("reading a consumer", sql, [subject.to_owned()], consumer_row).await
    }

    pub(crate) async fn list_consumers(&self, filter: &ConsumerFilter) -> Result<Vec<Consumer>> {
        let sql = format!(
            "SELECT {CONSUMER_COLS} FROM consumers
             WHERE (?1 IS NULL OR org_id = ?1) AND (?2 IS NULL OR status = ?2) ORDER BY id"
        );
        let p = (filter.org_id.clone(), filter.status.map(Status::as_str));
        self.many("listing consumers", sql, p, consumer_row).await
    }

    pub(crate) async fn set_consumer_status(&self, id: &str, status: Status) -> Result<Consumer> {
        let id = id.to_owned();
        self.write("setting a consumer's status", move |tx| {
            tx.query_row(
                &format!("UPDATE consumers SET status = ?2 WHERE id = ?1 RETURNING {CONSUMER_COLS}"),
                params![id, status.as_str()],
                consumer_row,
            )
            .optional()
            .map_err(db_err("setting a consumer's status"))?
            .ok_or(StoreError::NotFound("consumer"))
        })
        .await
    }

    pub(crate) async fn set_consumer_scopes(&self, id: &str, scopes: Vec<String>) -> Result<Consumer> {
        check_scopes("scopes", &scopes)?;
        let (id, scopes) = (id.to_owned(), to_json(&scopes)?);
        self.write("setting a consumer's scopes", move |tx| {
            tx.query_row(
                &format!("UPDATE consumers SET scopes = ?2 WHERE id = ?1 RETURNING {CONSUMER_COLS}"),
                params![id, scopes],
                consumer_row,
            )
            .optional()
            .map_err(db_err("setting a consumer's scopes"))?
            .ok_or(StoreError::NotFound("consumer"))
        })
        .await
    }

    // --- credentials ----------------------------------------------------------------------------

    pub(crate) async fn create_credential(&self, new: NewCredential) -> Result<Credential> {
        new.validate()?;
        let scopes_json = new.scopes.as_ref().map(to_json).transpose()?;
        self.write("creating a credential", move |tx| {
            let consumer_scopes: Option<String> = tx
                .query_row("SELECT scopes FROM consumers WHERE id = ?1", [&new.consumer_id], |r| r.get(0))
                .optional()
                .map_err(db_err("creating a credential"))?;
            let consumer_scopes: Vec<String> =
                serde_json::from_str(&consumer_scopes.ok_or(StoreError::NotFound("consumer"))?)
                    .map_err(|e| StoreError::backend("decoding consumer scopes", e))?;
            new.check_scopes_within(&consumer_scopes)?;
            let cred = Credential {
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
                    "INSERT INTO credentials ({CREDENTIAL_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                ),
                params![
                    cred.id,
                    cred.consumer_id,
                    cred.kind.as_str(),
                    cred.lookup,
                    cred.hint,
                    cred.secret,
                    scopes_json,
                    cred.expires_at,
                    cred.revoked_at,
                    cred.created_at,
                    cred.label
                ],
            )
            .map_err(db_err("creating a credential"))?;
            Ok(cred)
        })
        .await
    }

    pub(crate) async fn credential(&self, id: &str) -> Result<Option<Credential>> {
        let sql = format!("SELECT {CREDENTIAL_COLS} FROM credentials WHERE id = ?1");
        self.one("reading a credential", sql, [id.to_owned()], credential_row).await
    }

    pub(crate) async fn credential_by_lookup(&self, kind: CredentialKind, lookup: &str) -> Result<Option<Credential>> {
        let sql = format!("SELECT {CREDENTIAL_COLS} FROM credentials WHERE kind = ?1 AND lookup = ?2");
        self.one("reading a credential", sql, (kind.as_str(), lookup.to_owned()), credential_row).await
    }

    pub(crate) async fn credential_with_owner(
        &self,
        kind: CredentialKind,
        lookup: &str,
    ) -> Result<Option<CredentialOwner>> {
        let sql = crate::owner_sql(CREDENTIAL_COLS, CONSUMER_COLS, ORG_COLS, "?1", "?2");
        self.one("reading a credential and its owner", sql, (kind.as_str(), lookup.to_owned()), owner_row).await
    }

    pub(crate) async fn list_credentials(&self, consumer_id: &str) -> Result<Vec<Credential>> {
        let sql = format!("SELECT {CREDENTIAL_COLS} FROM credentials WHERE consumer_id = ?1 ORDER BY id");
        self.many("listing credentials", sql, [consumer_id.to_owned()], credential_row).await
    }

    pub(crate) async fn revoke_credential(&self, id: &str, at: i64) -> Result<Credential> {
        let id = id.to_owned();
        self.write("revoking a credential", move |tx| {
            // The earliest revocation wins: revoking again never extends a credential's life.
            tx.query_row(
                &format!(
                    "UPDATE credentials SET revoked_at = MIN(COALESCE(revoked_at, ?2), ?2)
                     WHERE id = ?1 RETURNING {CREDENTIAL_COLS}"
                ),
                params![id, at],
                credential_row,
            )
            .optional()
            .map_err(db_err("revoking a credential"))?
            .ok_or(StoreError::NotFound("credential"))
        })
        .await
    }

    pub(crate) async fn set_credential_expiry(&self, id: &str, expires_at: Option<i64>) -> Result<Credential> {
        let id = id.to_owned();
        self.write("setting a credential's expiry", move |tx| {
            tx.query_row(
                &format!("UPDATE credentials SET expires_at = ?2 WHERE id = ?1 RETURNING {CREDENTIAL_COLS}"),
                params![id, expires_at],
                credential_row,
            )
            .optional()
            .map_err(db_err("setting a credential's expiry"))?
            .ok_or(StoreError::NotFound("credential"))
        })
        .await
    }

    // --- suspensions ----------------------------------------------------------------------------

    pub(crate) async fn suspend(&self, new: NewSuspension) -> Result<Suspension> {
        new.validate()?;
        self.write("suspending", move |tx| {
            let exists_sql = match &new.target {
                SuspensionTarget::Organization(_) => {
                    Some(("SELECT 1 FROM organizations WHERE id = ?1", "organization"))
                }
                SuspensionTarget::Consumer(_) => Some(("SELECT 1 FROM consumers WHERE id = ?1", "consumer")),
                SuspensionTarget::Credential(_) => Some(("SELECT 1 FROM credentials WHERE id = ?1", "credential")),
                SuspensionTarget::Route(_) => None,
            };
            if let Some((sql, what)) = exists_sql {
                let found =
                    tx.query_row(sql, [new.target.id()], |_| Ok(())).optional().map_err(db_err("suspending"))?;
                found.ok_or(StoreError::NotFound(what))?;
            }
            // Housekeeping: expired suspensions are of no use to anyone.
            tx.execute("DELETE FROM suspensions WHERE expires_at IS NOT NULL AND expires_at <= ?1", [new.created_at])
                .map_err(db_err("suspending"))?;
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
                    "INSERT INTO suspensions ({SUSPENSION_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (target_kind, target_id) DO UPDATE SET id = excluded.id, reason = excluded.reason,
                       expires_at = excluded.expires_at, created_at = excluded.created_at,
                       created_by = excluded.created_by"
                ),
                params![s.id, s.target.kind_str(), s.target.id(), s.reason, s.expires_at, s.created_at, s.created_by],
            )
            .map_err(db_err("suspending"))?;
            Ok(s)
        })
        .await
    }

    pub(crate) async fn lift(&self, target: &SuspensionTarget) -> Result<bool> {
        let (kind, id) = (target.kind_str(), target.id().to_owned());
        self.call("lifting a suspension", move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err("lifting a suspension"))?;
            let n = tx
                .execute("DELETE FROM suspensions WHERE target_kind = ?1 AND target_id = ?2", params![kind, id])
                .map_err(db_err("lifting a suspension"))?;
            if n > 0 {
                bump(&tx)?;
            }
            tx.commit().map_err(db_err("lifting a suspension"))?;
            Ok(n > 0)
        })
        .await
    }

    pub(crate) async fn active_suspensions(&self, now: i64) -> Result<Vec<Suspension>> {
        let sql = format!(
            "SELECT {SUSPENSION_COLS} FROM suspensions WHERE expires_at IS NULL OR expires_at > ?1 ORDER BY id"
        );
        self.many("listing suspensions", sql, [now], suspension_row).await
    }

    // --- shaping policies -----------------------------------------------------------------------

    pub(crate) async fn put_shaping_policy(&self, new: NewShapingPolicy) -> Result<ShapingPolicy> {
        new.validate()?;
        let shape = to_json(&new.shape)?;
        self.write("setting a shaping policy", move |tx| {
            let context = "setting a shaping policy";
            // Housekeeping: lapsed policies are of no use to anyone.
            tx.execute(
                "DELETE FROM shaping_policies WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                [new.created_at],
            )
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
                    "INSERT INTO shaping_policies ({POLICY_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (route, subject_kind, subject_name) DO UPDATE SET id = excluded.id,
                       shape = excluded.shape, reason = excluded.reason, expires_at = excluded.expires_at,
                       created_at = excluded.created_at, created_by = excluded.created_by"
                ),
                params![
                    p.id,
                    p.route,
                    p.subject.kind_str(),
                    p.subject.name(),
                    shape,
                    p.reason,
                    p.expires_at,
                    p.created_at,
                    p.created_by
                ],
            )
            .map_err(db_err(context))?;
            Ok(p)
        })
        .await
    }

    pub(crate) async fn delete_shaping_policy(&self, route: &str, subject: &PolicySubject) -> Result<bool> {
        let (route, kind, name) = (route.to_owned(), subject.kind_str(), subject.name().to_owned());
        let context = "deleting a shaping policy";
        self.call(context, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err(context))?;
            let n = tx
                .execute(
                    "DELETE FROM shaping_policies WHERE route = ?1 AND subject_kind = ?2 AND subject_name = ?3",
                    params![route, kind, name],
                )
                .map_err(db_err(context))?;
            if n > 0 {
                bump(&tx)?;
            }
            tx.commit().map_err(db_err(context))?;
            Ok(n > 0)
        })
        .await
    }

    pub(crate) async fn active_shaping_policies(&self, now: i64) -> Result<Vec<ShapingPolicy>> {
        let sql = format!(
            "SELECT {POLICY_COLS} FROM shaping_policies WHERE expires_at IS NULL OR expires_at > ?1 ORDER BY id"
        );
        self.many("listing shaping policies", sql, [now], policy_row).await
    }

    // --- audit and changes ----------------------------------------------------------------------

    pub(crate) async fn append_audit(&self, entry: NewAuditEntry) -> Result<i64> {
        entry.validate()?;
        let detail = to_json(&entry.detail)?;
        self.call("appending to the audit log", move |conn| {
            conn.prepare_cached(
                "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING seq",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![entry.at, entry.actor, entry.action, entry.target, detail], |r| r.get(0))
            })
            .map_err(db_err("appending to the audit log"))
        })
        .await
    }

    pub(crate) async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let sql = format!("SELECT {AUDIT_COLS} FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2");
        let limit = i64::from(filter.limit.min(MAX_AUDIT_PAGE));
        self.many("listing the audit log", sql, [filter.since_seq, limit], audit_row).await
    }

    pub(crate) async fn change_seq(&self) -> Result<i64> {
        let sql = "SELECT seq FROM changes WHERE id = 1".to_owned();
        self.one("reading change_seq", sql, [], |r| r.get(0)).await?.ok_or(StoreError::NotFound("changes row"))
    }
}

impl SqliteStore {
    pub(crate) async fn record_usage(&self, rows: Vec<UsageRecord>) -> Result<()> {
        let context = "recording usage";
        self.call(context, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err(context))?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO usage (day, consumer_id, route, count) VALUES (?1, ?2, ?3, ?4) \
                         ON CONFLICT (day, consumer_id, route) DO UPDATE SET count = usage.count + excluded.count",
                    )
                    .map_err(db_err(context))?;
                for r in &rows {
                    let count = i64::try_from(r.count).map_err(|_| StoreError::invalid("usage count too large"))?;
                    stmt.execute(params![r.day, r.consumer_id, r.route, count]).map_err(db_err(context))?;
                }
            }
            tx.commit().map_err(db_err(context))
        })
        .await
    }

    pub(crate) async fn usage_report(&self, filter: &UsageFilter) -> Result<Vec<UsageLine>> {
        let period = filter.checked_period()?.to_owned();
        let sql = "SELECT u.consumer_id, c.name, u.route, SUM(u.count) FROM usage u \
                   LEFT JOIN consumers c ON c.id = u.consumer_id \
                   WHERE u.day LIKE ?1 || '%' AND (?2 IS NULL OR u.consumer_id = ?2) AND (?3 IS NULL OR u.route = ?3) \
                   GROUP BY u.consumer_id, c.name, u.route ORDER BY u.consumer_id, u.route"
            .to_owned();
        let p = (period.clone(), filter.consumer_id.clone(), filter.route.clone());
        let rows: Vec<(String, Option<String>, String, i64)> =
            self.many("reporting usage", sql, p, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).await?;
        Ok(rows
            .into_iter()
            .map(|(consumer_id, consumer_name, route, n)| UsageLine {
                period: period.clone(),
                consumer_id,
                consumer_name,
                route,
                count: u64::try_from(n).unwrap_or(0),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_counts_match_the_joined_decoder() {
        assert_eq!(CREDENTIAL_COLS.split(", ").count(), crate::CREDENTIAL_COL_COUNT);
        assert_eq!(CONSUMER_COLS.split(", ").count(), crate::CONSUMER_COL_COUNT);
    }
}
