//! Slack bookkeeping in the database (migration 3, "slack"): which messages
//! were posted for which request (`channel` + `ts`, so `chat.update` can find
//! them after a restart), plus the outbox claims and give-ups the delivery
//! worker needs. Written through the same `Store` / `WriteTx` as the rest.

use super::sql::{self, from_columns};
use super::{Result, Store, WriteTx};

/// `next_attempt_at` of a message the worker gave up on: never due again.
pub const GAVE_UP_AT: i64 = i64::MAX;

/// A posted message that later updates must edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedMessage {
    pub target: String,
    pub channel: String,
    pub ts: String,
}

from_columns!(PostedMessage: target, channel, ts);

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
    let values = (
        outbox_id,
        target,
        approval_id,
        channel,
        ts,
        super::now_millis(),
    );
    sql::execute(tx.conn(), q, values).await?;
    Ok(())
}

/// Marks an outbox row delivered inside a write transaction, so the record
/// of what was sent and the "done" flag land together.
pub async fn mark_delivered_tx(tx: &mut WriteTx, outbox_id: &str) -> Result<()> {
    tx.mark_outbox_delivered(outbox_id).await
}

/// Gives up on a message: it stays undelivered with its last error, and is
/// never due again.
pub async fn give_up_tx(tx: &mut WriteTx, outbox_id: &str, error: &str) -> Result<()> {
    tx.give_up_outbox(outbox_id, error).await
}

/// Messages posted for a request (channel posts and DMs).
pub async fn messages_for(store: &Store, approval_id: &str) -> Result<Vec<PostedMessage>> {
    sql::fetch_all(store.pool(), MESSAGES_FOR_SQL, (approval_id,)).await
}

/// Whether this outbox row already produced a message to `target`.
pub async fn already_sent(store: &Store, outbox_id: &str, target: &str) -> Result<bool> {
    let q = "SELECT COUNT(*) FROM slack_messages WHERE outbox_id = $1 AND target = $2";
    let n: i64 = sql::fetch_scalar(store.pool(), q, (outbox_id, target)).await?;
    Ok(n > 0)
}

pub(crate) const PENDING_POSTS_SQL: &str = "SELECT COUNT(*) FROM outbox WHERE approval_id = $1 AND kind IN ('slack.post', 'slack.dm', 'slack.question.post') AND delivered_at IS NULL AND next_attempt_at < $2";

/// Posts (channel or DM) for this request still waiting to be delivered.
pub async fn pending_posts(store: &Store, approval_id: &str) -> Result<i64> {
    sql::fetch_scalar(store.pool(), PENDING_POSTS_SQL, (approval_id, GAVE_UP_AT)).await
}

/// Claims a due row for `lease_until` (compare-and-set on its due time), so
/// two workers (replicas) never deliver the same row at once, and a worker
/// that dies mid-delivery releases it when the lease runs out.
pub async fn claim(store: &Store, outbox_id: &str, due_at: i64, lease_until: i64) -> Result<bool> {
    let q = "UPDATE outbox SET next_attempt_at = $1 WHERE id = $2 AND next_attempt_at = $3 AND delivered_at IS NULL";
    let values = (lease_until, outbox_id, due_at);
    Ok(sql::execute(store.pool(), q, values).await? == 1)
}
