//! Reminder and escalation timers of requests (migration 90): when each is
//! due, and whether it fired. Kept in the database so they hold across
//! restarts and replicas; the reminders worker fires them.

use super::sql::{self, from_columns, Statement};
use super::{Result, Store, WriteTx};

/// A timer whose time has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTimer {
    pub approval_id: String,
    /// `remind` or `escalate`.
    pub kind: String,
    pub due_at: i64,
}

from_columns!(DueTimer: approval_id, kind, due_at);

pub(crate) const DUE_TIMERS_SQL: &str = "SELECT approval_id, kind, due_at FROM approval_timers WHERE fired_at IS NULL AND due_at <= $1 ORDER BY due_at LIMIT $2";
pub(crate) const NEXT_TIMER_SQL: &str =
    "SELECT MIN(due_at) FROM approval_timers WHERE fired_at IS NULL";
const FIRED_SQL: &str = "UPDATE approval_timers SET fired_at = $1 WHERE approval_id = $2 AND kind = $3 AND fired_at IS NULL";

impl WriteTx {
    /// Sets a timer for a request, in the transaction that creates it.
    /// Held until commit, after the request's own insert (`write_behind`).
    pub async fn insert_timer(&mut self, approval_id: &str, kind: &str, due_at: i64) -> Result<()> {
        let mut st = Statement::new(
            "INSERT INTO approval_timers (approval_id, kind, due_at) VALUES ($1, $2, $3)",
        );
        st.args = vec![approval_id.into(), kind.into(), due_at.into()];
        self.held.push(st);
        Ok(())
    }

    /// Marks a timer fired, in the transaction of what it did.
    pub async fn timer_fired(&mut self, approval_id: &str, kind: &str) -> Result<()> {
        let values = (super::now_millis(), approval_id, kind);
        sql::execute(self.conn(), FIRED_SQL, values).await?;
        Ok(())
    }
}

impl Store {
    /// Timers due by `now`, earliest first.
    pub async fn due_timers(&self, now: i64, limit: i64) -> Result<Vec<DueTimer>> {
        sql::fetch_all(&self.pool, DUE_TIMERS_SQL, (now, limit)).await
    }

    /// When the next unfired timer is due, if any.
    pub async fn next_timer(&self) -> Result<Option<i64>> {
        sql::fetch_scalar(&self.pool, NEXT_TIMER_SQL, ()).await
    }

    /// Closes a timer that has nothing to do (its request was settled or
    /// is gone): bookkeeping, no change to any request.
    pub async fn close_timer(&self, approval_id: &str, kind: &str) -> Result<()> {
        let values = (super::now_millis(), approval_id, kind);
        sql::execute(&self.pool, FIRED_SQL, values).await?;
        Ok(())
    }
}
