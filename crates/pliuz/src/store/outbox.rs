//! The outbox: notifications (Slack messages, updates) written in the same
//! transaction as the change they announce, delivered later by a worker.
//! A unique `dedupe_key` makes enqueueing idempotent, so one change never
//! yields two messages.

use super::{col, Result, Statement, Store, StoreError, WriteTx};
use serde_json::Value;
use sqlx::any::AnyRow;

#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub id: String,
    pub kind: String,
    pub approval_id: Option<String>,
    pub dedupe_key: String,
    pub payload: Value,
    pub attempts: i64,
    pub next_attempt_at: i64,
}

/// The columns [`outbox_from_row`] reads (a macro, so `concat!` can build
/// constant statements from it).
macro_rules! outbox_columns {
    () => {
        "id, kind, approval_id, dedupe_key, payload, attempts, next_attempt_at"
    };
}
pub(crate) use outbox_columns;

pub(crate) const DUE_OUTBOX_SQL: &str = concat!(
    "SELECT ",
    outbox_columns!(),
    " FROM outbox WHERE delivered_at IS NULL AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2"
);
pub(crate) const NEXT_OUTBOX_DUE_SQL: &str =
    "SELECT MIN(next_attempt_at) FROM outbox WHERE delivered_at IS NULL";

pub(crate) fn outbox_from_row(r: &AnyRow) -> Result<OutboxMessage> {
    let payload: String = col(r, "payload")?;
    Ok(OutboxMessage {
        id: col(r, "id")?,
        kind: col(r, "kind")?,
        approval_id: col(r, "approval_id")?,
        dedupe_key: col(r, "dedupe_key")?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("outbox payload: {e}")))?,
        attempts: col(r, "attempts")?,
        next_attempt_at: col(r, "next_attempt_at")?,
    })
}

impl WriteTx {
    /// Queues a message; does nothing if one with this `dedupe_key` exists.
    /// Sent at commit with the audit rows (`write_behind`).
    pub async fn enqueue(
        &mut self,
        kind: &str,
        approval_id: Option<&str>,
        dedupe_key: &str,
        payload: &Value,
    ) -> Result<()> {
        self.hold_outbox_row(kind, approval_id, dedupe_key, payload, None);
        Ok(())
    }

    /// Queues a message only if `agent` has a webhook: the lookup is part
    /// of the held insert, so a change without a webhook costs no round trip.
    pub async fn enqueue_for_webhook_of(
        &mut self,
        agent: &str,
        kind: &str,
        approval_id: Option<&str>,
        dedupe_key: &str,
        payload: &Value,
    ) -> Result<()> {
        self.hold_outbox_row(kind, approval_id, dedupe_key, payload, Some(agent));
        Ok(())
    }

    fn hold_outbox_row(
        &mut self,
        kind: &str,
        approval_id: Option<&str>,
        dedupe_key: &str,
        payload: &Value,
        webhook_of: Option<&str>,
    ) {
        let now = super::now_millis();
        let mut st = Statement::new("");
        let id = st.arg(uuid::Uuid::now_v7().to_string());
        let kind = st.arg(kind);
        let approval_id = st.arg(approval_id);
        let dedupe_key = st.arg(dedupe_key);
        let payload = st.arg(payload.to_string());
        let now = st.arg(now);
        let only_if = match webhook_of {
            Some(agent) => format!(" FROM agent_webhooks WHERE agent = {} AND", st.arg(agent)),
            None => " WHERE".to_owned(),
        };
        // The dedupe check and the insert in one statement (we hold the
        // write lock, so nothing can slip in between either way).
        st.sql = format!(
            "INSERT INTO outbox (id, kind, approval_id, dedupe_key, payload, attempts, next_attempt_at, created_at) \
             SELECT {id}, {kind}, {approval_id}, {dedupe_key}, {payload}, 0, {now}, {now}{only_if} \
             NOT EXISTS (SELECT 1 FROM outbox WHERE dedupe_key = {dedupe_key})"
        );
        self.held.push(st);
    }
}

impl Store {
    /// Undelivered messages whose time has come, oldest first.
    pub async fn due_outbox(&self, now: i64, limit: i64) -> Result<Vec<OutboxMessage>> {
        let rows = sqlx::query(DUE_OUTBOX_SQL)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(outbox_from_row).collect()
    }

    /// When the next undelivered message is due, if any.
    pub async fn next_outbox_due(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(NEXT_OUTBOX_DUE_SQL)
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn mark_delivered(&self, id: &str) -> Result<()> {
        let q = "UPDATE outbox SET delivered_at = $1, attempts = attempts + 1, last_error = NULL WHERE id = $2";
        sqlx::query(q)
            .bind(super::now_millis())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a failed attempt and when to try again.
    pub async fn mark_retry(&self, id: &str, next_attempt_at: i64, error: &str) -> Result<()> {
        let q = "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2 WHERE id = $3";
        sqlx::query(q)
            .bind(next_attempt_at)
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Replaces a message's payload (e.g. remember a Slack `ts` for later updates).
    pub async fn update_outbox_payload(&self, id: &str, payload: &Value) -> Result<()> {
        let q = "UPDATE outbox SET payload = $1 WHERE id = $2";
        sqlx::query(q)
            .bind(payload.to_string())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
