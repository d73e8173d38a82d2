-- The management API lists one user's tokens.
CREATE INDEX user_tokens_by_user ON user_tokens (user_id, created_at);
-- Policies managed over the API (policy_source = "database"): each row is
-- one policy, its definition as the JSON the API took; `position` keeps
-- the order in which tools are matched (first match wins).
CREATE TABLE policies (
    name TEXT PRIMARY KEY,
    position BIGINT NOT NULL,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
