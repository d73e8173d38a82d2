//! Counts behind the gauges of `GET /metrics`, read at scrape time. Each
//! is bounded by an index, not by the size of the history: live requests
//! by `approvals_status_created`, undelivered messages by `outbox_due`, the
//! latest checkpoint by its primary key. No placeholders: nothing here
//! comes from a caller.

use super::sql::col;
use super::{Result, Store};

/// Statuses of a request still in play; settled ones are history.
const LIVE_STATUSES_SQL: &str = "('pending', 'approved', 'executing')";

impl Store {
    /// `(status, policy, count)` of the requests still in play.
    pub async fn live_approval_counts(&self) -> Result<Vec<(String, String, i64)>> {
        let sql = format!(
            "SELECT status, policy, COUNT(*) AS n FROM approvals WHERE status IN {LIVE_STATUSES_SQL} GROUP BY status, policy"
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((col(r, "status")?, col(r, "policy")?, col(r, "n")?)))
            .collect()
    }

    /// `(kind, count)` of outbox rows not delivered and not given up.
    pub async fn outbox_depth(&self) -> Result<Vec<(String, i64)>> {
        let sql = format!(
            "SELECT kind, COUNT(*) AS n FROM outbox WHERE delivered_at IS NULL AND next_attempt_at < {} GROUP BY kind",
            super::slack::GAVE_UP_AT
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((col(r, "kind")?, col(r, "n")?)))
            .collect()
    }

    /// When the latest checkpoint was signed (Unix milliseconds).
    pub async fn latest_checkpoint_at(&self) -> Result<Option<i64>> {
        let sql = "SELECT created_at FROM audit_checkpoints ORDER BY size DESC LIMIT 1";
        Ok(sqlx::query_scalar(sql).fetch_optional(&self.pool).await?)
    }
}
