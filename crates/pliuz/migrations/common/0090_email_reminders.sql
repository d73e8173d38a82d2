-- E-mail, reminders and escalation (issue #17).
-- When a request was escalated (its policy's escalate_to may then decide).
ALTER TABLE approvals ADD COLUMN escalated_at BIGINT;
-- The reminder and escalation deadlines of requests, fired by the reminders
-- worker; kept here so they hold across restarts.
CREATE TABLE approval_timers (
    approval_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    fired_at BIGINT,
    PRIMARY KEY (approval_id, kind)
);
CREATE INDEX approval_timers_due ON approval_timers (fired_at, due_at);
-- Links sent by e-mail: only the SHA-256 of the secret is kept; each is
-- used once, before it expires.
CREATE TABLE email_links (
    token_hash TEXT PRIMARY KEY,
    approval_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    used_by TEXT
);
CREATE INDEX email_links_expiry ON email_links (expires_at);
-- The e-mails each outbox row has sent, so a retry never mails anyone twice
-- and the follow-up reaches the same people.
CREATE TABLE email_messages (
    outbox_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    approval_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (outbox_id, recipient)
);
CREATE INDEX email_messages_approval ON email_messages (approval_id);
