-- Web inbox log-in sessions. Only the SHA-256 of the session secret is
-- stored; the CSRF token is tied to the session row.
CREATE TABLE inbox_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX inbox_sessions_expiry ON inbox_sessions (expires_at);
