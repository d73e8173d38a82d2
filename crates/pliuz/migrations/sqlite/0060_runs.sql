-- Durable runs' sealed states and agent webhooks (sealed as BLOBs), after
-- the common part.
CREATE TABLE run_states (
    run_id TEXT PRIMARY KEY REFERENCES runs(id),
    sealed BLOB NOT NULL
);
CREATE TABLE agent_webhooks (
    agent TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    sealed_secret BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
