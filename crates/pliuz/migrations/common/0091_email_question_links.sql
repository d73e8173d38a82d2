-- Questions by e-mail (issue #17): a link says what it opens, a request or
-- a question; for a question, approval_id holds the question's id (as the
-- outbox and email_messages rows about questions do).
ALTER TABLE email_links ADD COLUMN target TEXT NOT NULL DEFAULT 'request';
