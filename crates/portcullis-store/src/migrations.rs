//! Versioned schema migrations, one SQL script per backend for each version.
//!
//! Each version runs once, inside a transaction that also records it in `schema_migrations`, so a
//! crash mid-way leaves the previous version intact (both SQLite and PostgreSQL have transactional
//! DDL). Append new versions at the end; never edit one that has shipped.

/// One schema version.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    pub(crate) sqlite: &'static str,
    pub(crate) postgres: &'static str,
}

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "identity",
        sqlite: r#"
CREATE TABLE organizations (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    plan       TEXT,
    status     TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at INTEGER NOT NULL
);
CREATE TABLE consumers (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations (id),
    name             TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL CHECK (kind IN ('user', 'app', 'service')),
    scopes           TEXT NOT NULL,
    roles            TEXT NOT NULL,
    plan             TEXT,
    external_subject TEXT UNIQUE,
    status           TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at       INTEGER NOT NULL
);
CREATE INDEX consumers_org_id ON consumers (org_id);
CREATE TABLE credentials (
    id          TEXT PRIMARY KEY,
    consumer_id TEXT NOT NULL REFERENCES consumers (id),
    kind        TEXT NOT NULL CHECK (kind IN ('api_key', 'password', 'certificate', 'hmac_key')),
    lookup      TEXT NOT NULL,
    hint        TEXT NOT NULL,
    secret      TEXT,
    scopes      TEXT,
    expires_at  INTEGER,
    revoked_at  INTEGER,
    created_at  INTEGER NOT NULL,
    label       TEXT,
    UNIQUE (kind, lookup)
);
CREATE INDEX credentials_consumer_id ON credentials (consumer_id);
CREATE TABLE suspensions (
    id          TEXT PRIMARY KEY,
    target_kind TEXT NOT NULL CHECK (target_kind IN ('organization', 'consumer', 'credential', 'route')),
    target_id   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    expires_at  INTEGER,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    UNIQUE (target_kind, target_id)
);
CREATE TABLE audit_log (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TABLE changes (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO changes (id, seq) VALUES (1, 0);
"#,
        postgres: r#"
CREATE TABLE organizations (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    plan       TEXT,
    status     TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at BIGINT NOT NULL,
    CONSTRAINT organizations_name_key UNIQUE (name)
);
CREATE TABLE consumers (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations (id),
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('user', 'app', 'service')),
    scopes           TEXT[] NOT NULL,
    roles            TEXT[] NOT NULL,
    plan             TEXT,
    external_subject TEXT,
    status           TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at       BIGINT NOT NULL,
    CONSTRAINT consumers_name_key UNIQUE (name),
    CONSTRAINT consumers_external_subject_key UNIQUE (external_subject)
);
CREATE INDEX consumers_org_id ON consumers (org_id);
CREATE TABLE credentials (
    id          TEXT PRIMARY KEY,
    consumer_id TEXT NOT NULL REFERENCES consumers (id),
    kind        TEXT NOT NULL CHECK (kind IN ('api_key', 'password', 'certificate', 'hmac_key')),
    lookup      TEXT NOT NULL,
    hint        TEXT NOT NULL,
    secret      TEXT,
    scopes      TEXT[],
    expires_at  BIGINT,
    revoked_at  BIGINT,
    created_at  BIGINT NOT NULL,
    label       TEXT,
    CONSTRAINT credentials_kind_lookup_key UNIQUE (kind, lookup)
);
CREATE INDEX credentials_consumer_id ON credentials (consumer_id);
CREATE TABLE suspensions (
    id          TEXT PRIMARY KEY,
    target_kind TEXT NOT NULL CHECK (target_kind IN ('organization', 'consumer', 'credential', 'route')),
    target_id   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    expires_at  BIGINT,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    CONSTRAINT suspensions_target_key UNIQUE (target_kind, target_id)
);
CREATE TABLE audit_log (
    seq    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     BIGINT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail JSONB NOT NULL
);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TABLE changes (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO changes (id, seq) VALUES (1, 0);
"#,
    },
    Migration {
        version: 2,
        name: "usage",
        sqlite: r#"
CREATE TABLE usage (
    day         TEXT NOT NULL,
    consumer_id TEXT NOT NULL,
    route       TEXT NOT NULL,
    count       INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (day, consumer_id, route)
);
"#,
        postgres: r#"
CREATE TABLE usage (
    day         TEXT NOT NULL,
    consumer_id TEXT NOT NULL,
    route       TEXT NOT NULL,
    count       BIGINT NOT NULL CHECK (count >= 0),
    PRIMARY KEY (day, consumer_id, route)
);
"#,
    },
    Migration {
        version: 3,
        name: "shaping_policies",
        sqlite: r#"
CREATE TABLE shaping_policies (
    id           TEXT PRIMARY KEY,
    route        TEXT NOT NULL,
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('consumer', 'organization', 'plan')),
    subject_name TEXT NOT NULL,
    shape        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    expires_at   INTEGER,
    created_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    UNIQUE (route, subject_kind, subject_name)
);
"#,
        postgres: r#"
CREATE TABLE shaping_policies (
    id           TEXT PRIMARY KEY,
    route        TEXT NOT NULL,
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('consumer', 'organization', 'plan')),
    subject_name TEXT NOT NULL,
    shape        JSONB NOT NULL,
    reason       TEXT NOT NULL,
    expires_at   BIGINT,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    CONSTRAINT shaping_policies_subject_key UNIQUE (route, subject_kind, subject_name)
);
"#,
    },
];

/// The newest schema version this build knows.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_by_one_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.name);
        }
        assert_eq!(latest_version(), MIGRATIONS.len() as i64);
    }
}
