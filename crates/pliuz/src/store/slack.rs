//! Slack bookkeeping in the database (migration 3, "slack"): which messages
//! were posted for which request (`channel` + `ts`, so `chat.update` can find
//! them after a restart), plus the outbox claims and give-ups the delivery
//! worker needs. Written through the same `Store` / `WriteTx` as the rest.

use super::{col, Result, Store, WriteTx};

/// `next_attempt_at` of a message the worker gave up on: never due again.
pub const GAVE_UP_AT: i64 = i64::MAX;

/// A posted message that later updates must edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedMessage {
    pub target: String,
    pub channel: String,
    pub ts: String,
}

/// The messages posted for a request.
pub(crate) const MESSAGES_FOR_SQL: &str =
    "SELECT target, channel, ts FROM slack_messages WHERE approval_id = $1 ORDER BY created_at, target";

/// Records a posted message; part of the delivering transaction.
pub async fn record_message(
    tx: &mut WriteTx,
    outbox_id: &str,
    target: &str,
    approval_id: &str,
    channel: &str,
    ts: &str,
) -> Result<()> {
    let q = "INSERT INTO slack_messages (outbox_id, target, approval_id, channel, ts, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
    sqlx::query(q)
        .bind(outbox_id)
        .bind(target)
        .bind(approval_id)
        .bind(channel)
        .bind(ts)
        .bind(crate::store::now_millis())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Marks an outbox row delivered inside a write transaction, so the record
/// of what was sent and the "done" flag land together.
pub async fn mark_delivered_tx(tx: &mut WriteTx, outbox_id: &str) -> Result<()> {
    let q = "UPDATE outbox SET delivered_at = $1, attempts = attempts + 1, last_error = NULL WHERE id = $2";
    sqlx::query(q)
        .bind(crate::store::now_millis())
        .bind(outbox_id)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Gives up on a message: it stays undelivered with its last error, and is
/// never due again.
pub async fn give_up_tx(tx: &mut WriteTx, outbox_id: &str, error: &str) -> Result<()> {
    let q = "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2 WHERE id = $3";
    sqlx::query(q)
        .bind(GAVE_UP_AT)
        .bind(error)
        .bind(outbox_id)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Messages posted for a request (channel posts and DMs).
pub async fn messages_for(store: &Store, approval_id: &str) -> Result<Vec<PostedMessage>> {
    let q = MESSAGES_FOR_SQL;
    let rows = sqlx::query(q)
        .bind(approval_id)
        .fetch_all(store.pool())
        .await?;
    rows.iter()
        .map(|r| {
            Ok(PostedMessage {
                target: col(r, "target")?,
                channel: col(r, "channel")?,
                ts: col(r, "ts")?,
            })
        })
        .collect()
}

/// Whether this outbox row already produced a message to `target`.
pub async fn already_sent(store: &Store, outbox_id: &str, target: &str) -> Result<bool> {
    let q = "SELECT COUNT(*) FROM slack_messages WHERE outbox_id = $1 AND target = $2";
    let n: i64 = sqlx::query_scalar(q)
        .bind(outbox_id)
        .bind(target)
        .fetch_one(store.pool())
        .await?;
    Ok(n > 0)
}

pub(crate) const PENDING_POSTS_SQL: &str = "SELECT COUNT(*) FROM outbox WHERE approval_id = $1 AND kind IN ('slack.post', 'slack.dm', 'slack.question.post') AND delivered_at IS NULL AND next_attempt_at < $2";

/// Posts (channel or DM) for this request still waiting to be delivered.
pub async fn pending_posts(store: &Store, approval_id: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(PENDING_POSTS_SQL)
        .bind(approval_id)
        .bind(GAVE_UP_AT)
        .fetch_one(store.pool())
        .await?)
}

/// Claims a due row for `lease_until` (compare-and-set on its due time), so
/// two workers (replicas) never deliver the same row at once, and a worker
/// that dies mid-delivery releases it when the lease runs out.
pub async fn claim(store: &Store, outbox_id: &str, due_at: i64, lease_until: i64) -> Result<bool> {
    let q = "UPDATE outbox SET next_attempt_at = $1 WHERE id = $2 AND next_attempt_at = $3 AND delivered_at IS NULL";
    let done = sqlx::query(q)
        .bind(lease_until)
        .bind(outbox_id)
        .bind(due_at)
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected() == 1)
}
