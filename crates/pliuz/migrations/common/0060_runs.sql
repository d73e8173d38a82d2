-- Durable runs and the approvals each waits on (the same on both databases;
-- the sealed states and agent webhooks follow in each one's own part).
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    status TEXT NOT NULL,
    state_sha256 TEXT NOT NULL,
    state_bytes BIGINT NOT NULL,
    metadata TEXT,
    lease_token_hash TEXT,
    lease_expires_at BIGINT,
    pause_count BIGINT NOT NULL,
    output_sha256 TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX runs_agent_status ON runs (agent, status, updated_at);
CREATE TABLE run_approvals (
    run_id TEXT NOT NULL REFERENCES runs(id),
    approval_id TEXT NOT NULL REFERENCES approvals(id),
    position BIGINT NOT NULL,
    PRIMARY KEY (run_id, approval_id)
);
CREATE INDEX run_approvals_approval ON run_approvals (approval_id);
