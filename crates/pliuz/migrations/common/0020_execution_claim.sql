-- Exactly-once execution: the approved -> executing claim and its window.
-- Requests from before it get the default execution window of 24 hours.
ALTER TABLE approvals ADD COLUMN execute_within_ms BIGINT NOT NULL DEFAULT 86400000;
ALTER TABLE approvals ADD COLUMN claim_id TEXT;
ALTER TABLE approvals ADD COLUMN claimed_at BIGINT;
