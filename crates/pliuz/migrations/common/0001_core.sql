-- The shared core: users, agents, approvals, the outbox and the audit log.
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
