//! Schema migrations, one list for both databases. Types are kept to the
//! portable subset (TEXT, BIGINT, blobs) and times are integer milliseconds,
//! so the same queries run on SQLite and PostgreSQL.

use super::Backend;

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

impl Migration {
    pub fn sql(&self, backend: Backend) -> &'static str {
        match backend {
            Backend::Sqlite => self.sqlite,
            Backend::Postgres => self.postgres,
        }
    }
}

const CORE_COMMON: &str = r#"
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    password_hash TEXT,
    setup_token_hash TEXT UNIQUE,
    setup_expires_at BIGINT,
    disabled BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE TABLE user_groups (
    user_id TEXT NOT NULL REFERENCES users(id),
    group_name TEXT NOT NULL,
    PRIMARY KEY (user_id, group_name)
);
CREATE TABLE user_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    token_hash TEXT NOT NULL UNIQUE,
    label TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    tool_name TEXT NOT NULL,
    tool_args TEXT NOT NULL,
    proposed_args TEXT,
    final_args TEXT,
    tool_schema TEXT,
    policy TEXT NOT NULL,
    agent TEXT NOT NULL,
    originator TEXT,
    call_id TEXT,
    session_id TEXT,
    context_messages TEXT,
    client_metadata TEXT,
    idempotency_key TEXT,
    args_digest TEXT NOT NULL,
    required_approvals BIGINT NOT NULL,
    allowed_decisions TEXT NOT NULL,
    edited BIGINT NOT NULL DEFAULT 0,
    settled_status TEXT,
    settled_by TEXT,
    settled_reason TEXT,
    settled_at BIGINT,
    execution_outcome TEXT,
    execution_latency_ms BIGINT,
    execution_excerpt TEXT,
    executed_at BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE UNIQUE INDEX approvals_idempotency ON approvals (agent, idempotency_key);
CREATE INDEX approvals_pending_expiry ON approvals (status, expires_at);
CREATE INDEX approvals_policy ON approvals (policy, id);
CREATE TABLE approval_votes (
    approval_id TEXT NOT NULL REFERENCES approvals(id),
    voter TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (approval_id, voter)
);
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    approval_id TEXT,
    dedupe_key TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    delivered_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (delivered_at, next_attempt_at);
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY,
    size BIGINT NOT NULL
);
INSERT INTO audit_head (id, size) VALUES (1, 0);
CREATE TABLE audit_entries (
    idx BIGINT PRIMARY KEY,
    approval_id TEXT,
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX audit_entries_approval ON audit_entries (approval_id, idx);
CREATE TABLE audit_checkpoints (
    size BIGINT PRIMARY KEY,
    note TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE audit_keys (
    verifier_key TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
"#;

const SQLITE_CORE: &str = r#"
CREATE TABLE audit_hashes (
    idx BIGINT PRIMARY KEY,
    hash BLOB NOT NULL
);
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_hashes_no_update BEFORE UPDATE ON audit_hashes
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_hashes_no_delete BEFORE DELETE ON audit_hashes
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"#;

const POSTGRES_CORE: &str = r#"
CREATE TABLE audit_hashes (
    idx BIGINT PRIMARY KEY,
    hash BYTEA NOT NULL
);
CREATE FUNCTION pliuz_audit_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
FOR EACH ROW EXECUTE FUNCTION pliuz_audit_append_only();
CREATE TRIGGER audit_hashes_append_only BEFORE UPDATE OR DELETE ON audit_hashes
FOR EACH ROW EXECUTE FUNCTION pliuz_audit_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
FOR EACH ROW EXECUTE FUNCTION pliuz_audit_append_only();
"#;

/// Migration 1 is the shared core plus the backend's own part.
pub fn full_sql(m: &Migration, backend: Backend) -> String {
    if m.version == 1 {
        format!("{CORE_COMMON}\n{}", m.sql(backend))
    } else {
        m.sql(backend).to_owned()
    }
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "core",
        sqlite: SQLITE_CORE,
        postgres: POSTGRES_CORE,
    },
    // Web inbox: log-in sessions (crate::store::sessions, crate::inbox).
    Migration {
        version: 2,
        name: "inbox",
        sqlite: INBOX_SQL,
        postgres: INBOX_SQL,
    },
    // Slack: where each request's messages were posted (crate::store::slack).
    Migration {
        version: 3,
        name: "slack",
        sqlite: super::slack::MIGRATION_SQL,
        postgres: super::slack::MIGRATION_SQL,
    },
    // Exactly-once execution: the execution claim and its deadline.
    Migration {
        version: 20,
        name: "execution_claim",
        sqlite: EXECUTION_CLAIM_SQL,
        postgres: EXECUTION_CLAIM_SQL,
    },
    // Durable runs and agent webhooks (crate::store::runs).
    Migration {
        version: 60,
        name: "runs",
        sqlite: super::runs::MIGRATION_SQLITE,
        postgres: super::runs::MIGRATION_POSTGRES,
    },
    // Single sign-on: pending log-ins and linked identities (crate::store::oidc).
    Migration {
        version: 70,
        name: "oidc",
        sqlite: super::oidc::MIGRATION_SQL,
        postgres: super::oidc::MIGRATION_SQL,
    },
    // Inbox overview: settled-at and pending-by-age indexes.
    Migration {
        version: 71,
        name: "overview_indexes",
        sqlite: super::oidc::OVERVIEW_INDEXES_SQL,
        postgres: super::oidc::OVERVIEW_INDEXES_SQL,
    },
];

/// Migration 20: `approved → executing` claims (`crate::approval`). Requests
/// from before it get the default execution window of 24 hours.
const EXECUTION_CLAIM_SQL: &str = r#"
ALTER TABLE approvals ADD COLUMN execute_within_ms BIGINT NOT NULL DEFAULT 86400000;
ALTER TABLE approvals ADD COLUMN claim_id TEXT;
ALTER TABLE approvals ADD COLUMN claimed_at BIGINT;
"#;

/// Migration 2: web inbox sessions. Only the SHA-256 of the session secret
/// is stored; the CSRF token is tied to the session row.
const INBOX_SQL: &str = r#"
CREATE TABLE inbox_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX inbox_sessions_expiry ON inbox_sessions (expires_at);
"#;
