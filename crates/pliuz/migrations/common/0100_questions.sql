-- Questions from agents ("human as a tool") and their typed answers.
CREATE TABLE questions (
    id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    policy TEXT NOT NULL,
    text TEXT NOT NULL,
    choices TEXT NOT NULL,
    allow_free_text BIGINT NOT NULL,
    originator TEXT,
    idempotency_key TEXT,
    digest TEXT NOT NULL,
    status TEXT NOT NULL,
    answer_choice TEXT,
    answer_text TEXT,
    answered_by TEXT,
    answered_at BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE UNIQUE INDEX questions_idempotency ON questions (agent, idempotency_key);
CREATE INDEX questions_pending_expiry ON questions (status, expires_at);
CREATE INDEX questions_status_policy ON questions (status, policy, id);
