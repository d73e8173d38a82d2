-- Slack: where each request's messages were posted (channel + ts), so
-- chat.update can find them after a restart.
CREATE TABLE slack_messages (
    outbox_id TEXT NOT NULL,
    target TEXT NOT NULL,
    approval_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    ts TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (outbox_id, target)
);
CREATE INDEX slack_messages_approval ON slack_messages (approval_id);
