-- Inbox overview: what it filters and sorts on.
CREATE INDEX approvals_settled_at ON approvals (settled_at);
CREATE INDEX approvals_status_created ON approvals (status, created_at);
