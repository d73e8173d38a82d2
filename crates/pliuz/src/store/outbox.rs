//! The outbox: notifications (Slack messages, updates) written in the same
//! transaction as the change they announce, delivered later by a worker.
//! A unique `dedupe_key` makes enqueueing idempotent, so one change never
//! yields two messages.

use super::slack::GAVE_UP_AT;
use super::sql::{self, col, Record, Statement};
use super::{Result, Store, StoreError, WriteTx};
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

const DELIVERED_SQL: &str =
    "UPDATE outbox SET delivered_at = $1, attempts = attempts + 1, last_error = NULL WHERE id = $2";
const RETRY_SQL: &str = "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2 WHERE id = $3";

impl Record for OutboxMessage {
    fn from_row(r: &AnyRow) -> Result<OutboxMessage> {
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
        // No agent has a webhook (read under this batch's write lock): no
        // row would be inserted, so none is sent, and nobody is woken.
        if !self.webhooks_may_exist() {
            return Ok(());
        }
        self.hold_outbox_row(kind, approval_id, dedupe_key, payload, Some(agent));
        self.queued_webhook = true;
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
        let key = dedupe_key;
        let id = st.arg(uuid::Uuid::now_v7().to_string());
        let kind = st.arg(kind);
        let approval_id = st.arg(approval_id);
        let dedupe_key = st.arg(key);
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
        self.held.push_unless_exists(st, key);
    }

    /// Marks an outbox row delivered inside a write transaction, so the
    /// record of what was sent and the "done" flag land together.
    pub async fn mark_outbox_delivered(&mut self, id: &str) -> Result<()> {
        let values = (super::now_millis(), id);
        sql::execute(&mut *self.tx, DELIVERED_SQL, values).await?;
        Ok(())
    }

    /// Gives up on an outbox row: it stays undelivered with its last
    /// error, and is never due again.
    pub async fn give_up_outbox(&mut self, id: &str, error: &str) -> Result<()> {
        sql::execute(&mut *self.tx, RETRY_SQL, (GAVE_UP_AT, error, id)).await?;
        Ok(())
    }
}

impl Store {
    /// Undelivered messages whose time has come, oldest first.
    pub async fn due_outbox(&self, now: i64, limit: i64) -> Result<Vec<OutboxMessage>> {
        sql::fetch_all(&self.pool, DUE_OUTBOX_SQL, (now, limit)).await
    }

    /// When the next undelivered message is due, if any.
    pub async fn next_outbox_due(&self) -> Result<Option<i64>> {
        sql::fetch_scalar(&self.pool, NEXT_OUTBOX_DUE_SQL, ()).await
    }

    pub async fn mark_delivered(&self, id: &str) -> Result<()> {
        sql::execute(&self.pool, DELIVERED_SQL, (super::now_millis(), id)).await?;
        Ok(())
    }

    /// Records a failed attempt and when to try again.
    pub async fn mark_retry(&self, id: &str, next_attempt_at: i64, error: &str) -> Result<()> {
        sql::execute(&self.pool, RETRY_SQL, (next_attempt_at, error, id)).await?;
        Ok(())
    }

    /// Replaces a message's payload (e.g. remember a Slack `ts` for later updates).
    pub async fn update_outbox_payload(&self, id: &str, payload: &Value) -> Result<()> {
        let q = "UPDATE outbox SET payload = $1 WHERE id = $2";
        sql::execute(&self.pool, q, (payload.to_string(), id)).await?;
        Ok(())
    }
}
