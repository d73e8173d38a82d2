//! E-mail bookkeeping (migration 90): the links sent (only the SHA-256 of
//! each secret), which recipients each outbox row has mailed, and the
//! queries the mail worker needs.

use super::slack::GAVE_UP_AT;
use super::sql::{self, col, Record};
use super::{Result, Store, WriteTx};

/// A link as stored: whose request, to whom, until when, whether used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailLink {
    /// The request's id, or the question's when `target` is a question.
    pub approval_id: String,
    pub target: LinkTarget,
    pub recipient: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// What a link opens (column `target`, migration 91).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkTarget {
    Request,
    Question,
}

impl LinkTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkTarget::Request => "request",
            LinkTarget::Question => "question",
        }
    }
}

/// Everyone mailed about a request, by any outbox row.
pub(crate) const RECIPIENTS_OF_SQL: &str =
    "SELECT DISTINCT recipient FROM email_messages WHERE approval_id = $1 ORDER BY recipient";

/// E-mails asking for a decision that are still to be sent.
pub(crate) const PENDING_ASKS_SQL: &str = "SELECT COUNT(*) FROM outbox WHERE approval_id = $1 AND kind IN ('email.request', 'email.reminder', 'email.escalated', 'email.question') AND delivered_at IS NULL AND next_attempt_at < $2";

pub(crate) const PURGE_LINKS_SQL: &str = "DELETE FROM email_links WHERE expires_at < $1";

impl Store {
    /// Stores a new link (its secret's hash) before the e-mail carrying it
    /// is sent. Expired links are dropped on the way: they only refuse.
    pub async fn insert_email_link(
        &self,
        token_hash: &str,
        target: LinkTarget,
        approval_id: &str,
        recipient: &str,
        expires_at: i64,
    ) -> Result<()> {
        let now = super::now_millis();
        // Kept a day past expiry, so a late click still hears "expired".
        sql::execute(&self.pool, PURGE_LINKS_SQL, (now - 24 * 3600 * 1000,)).await?;
        let q = "INSERT INTO email_links (token_hash, approval_id, recipient, created_at, expires_at, target) VALUES ($1, $2, $3, $4, $5, $6)";
        let values = (
            token_hash,
            approval_id,
            recipient,
            now,
            expires_at,
            target.as_str(),
        );
        sql::execute(&self.pool, q, values).await?;
        Ok(())
    }

    /// Whether this outbox row already mailed `recipient`.
    pub async fn email_already_sent(&self, outbox_id: &str, recipient: &str) -> Result<bool> {
        let q = "SELECT COUNT(*) FROM email_messages WHERE outbox_id = $1 AND recipient = $2";
        let n: i64 = sql::fetch_scalar(&self.pool, q, (outbox_id, recipient)).await?;
        Ok(n > 0)
    }

    /// Everyone mailed about a request so far.
    pub async fn email_recipients_of(&self, approval_id: &str) -> Result<Vec<String>> {
        sql::fetch_scalars(&self.pool, RECIPIENTS_OF_SQL, (approval_id,)).await
    }

    /// E-mails asking for a decision on this request (or an answer to
    /// this question) not yet sent (or given up).
    pub async fn pending_email_asks(&self, approval_id: &str) -> Result<i64> {
        sql::fetch_scalar(&self.pool, PENDING_ASKS_SQL, (approval_id, GAVE_UP_AT)).await
    }
}

impl Record for EmailLink {
    fn from_row(r: &sqlx::any::AnyRow) -> Result<EmailLink> {
        let target: String = col(r, "target")?;
        Ok(EmailLink {
            approval_id: col(r, "approval_id")?,
            target: if target == "question" {
                LinkTarget::Question
            } else {
                LinkTarget::Request
            },
            recipient: col(r, "recipient")?,
            expires_at: col(r, "expires_at")?,
            used_at: col(r, "used_at")?,
        })
    }
}

impl WriteTx {
    /// Reads a link under the write lock, so two clicks cannot both use it.
    pub async fn get_email_link(&mut self, token_hash: &str) -> Result<Option<EmailLink>> {
        let q = "SELECT approval_id, recipient, expires_at, used_at, target FROM email_links WHERE token_hash = $1";
        sql::fetch_optional(self.conn(), q, (token_hash,)).await
    }

    pub async fn use_email_link(&mut self, token_hash: &str, by: &str, now: i64) -> Result<()> {
        let q = "UPDATE email_links SET used_at = $1, used_by = $2 WHERE token_hash = $3 AND used_at IS NULL";
        sql::execute(self.conn(), q, (now, by, token_hash)).await?;
        Ok(())
    }

    /// Records one e-mail sent by an outbox row.
    pub async fn record_email(
        &mut self,
        outbox_id: &str,
        recipient: &str,
        approval_id: &str,
    ) -> Result<()> {
        let q = "INSERT INTO email_messages (outbox_id, recipient, approval_id, created_at) VALUES ($1, $2, $3, $4)";
        let values = (outbox_id, recipient, approval_id, super::now_millis());
        sql::execute(self.conn(), q, values).await?;
        Ok(())
    }
}
