-- Durable runs' sealed states and agent webhooks (sealed as BYTEA), after
-- the common part.
CREATE TABLE run_states (
    run_id TEXT PRIMARY KEY REFERENCES runs(id),
    sealed BYTEA NOT NULL
);
CREATE TABLE agent_webhooks (
    agent TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    sealed_secret BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
