//! Read-only queries behind the inbox overview. Each one is bounded: the
//! waiting list by a row limit, settled requests by a time window (the
//! `approvals_settled_at` index) and a row limit.

use super::sql::{self, col, from_columns, Record, Statement};
use super::{Result, Store};
use std::ops::Range;

/// The most waiting requests the overview lists.
pub const WAITING_LIMIT: i64 = 1000;
/// The most settled requests one overview window reads.
pub const SETTLED_LIMIT: i64 = 200_000;

/// A request waiting for a decision.
#[derive(Debug, Clone)]
pub struct WaitingRow {
    pub id: String,
    pub policy: String,
    pub tool_name: String,
    pub created_at: i64,
}

/// A request settled inside the window.
#[derive(Debug, Clone)]
pub struct SettledRow {
    pub policy: String,
    pub settled_status: String,
    pub settled_by: String,
    pub created_at: i64,
    pub settled_at: i64,
}

from_columns!(WaitingRow: id, policy, tool_name, created_at);

impl Record for SettledRow {
    fn from_row(r: &sqlx::any::AnyRow) -> Result<SettledRow> {
        Ok(SettledRow {
            policy: col(r, "policy")?,
            settled_status: col::<Option<String>>(r, "settled_status")?.unwrap_or_default(),
            settled_by: col::<Option<String>>(r, "settled_by")?.unwrap_or_default(),
            created_at: col(r, "created_at")?,
            settled_at: col::<Option<i64>>(r, "settled_at")?.unwrap_or_default(),
        })
    }
}

/// Appends ` AND policy IN (...)` for a scope (`None`: all policies). An
/// empty scope matches nothing: it binds the one name no policy has.
fn push_scope(st: &mut Statement, policies: Option<&[String]>) {
    if let Some(ps) = policies {
        let list = if ps.is_empty() {
            st.arg("")
        } else {
            st.args_list(ps)
        };
        st.push(&format!(" AND policy IN ({list})"));
    }
}

/// The waiting requests [`Store::overview_rows`] reads.
pub(crate) fn waiting_statement(policies: Option<&[String]>, limit: i64) -> Statement {
    let mut st = Statement::new(
        "SELECT id, policy, tool_name, created_at FROM approvals WHERE status = 'pending'",
    );
    push_scope(&mut st, policies);
    let p = st.arg(limit);
    st.push(&format!(" ORDER BY created_at, id LIMIT {p}"));
    st
}

/// The counts [`Store::overview_rows`] reads: an index-only count per policy.
pub(crate) fn waiting_counts_statement(policies: Option<&[String]>) -> Statement {
    let mut st =
        Statement::new("SELECT policy, COUNT(*) AS n FROM approvals WHERE status = 'pending'");
    push_scope(&mut st, policies);
    st.push(" GROUP BY policy ORDER BY policy");
    st
}

/// The settled requests [`Store::overview_rows`] reads.
pub(crate) fn settled_statement(
    policies: Option<&[String]>,
    from: i64,
    to: i64,
    limit: i64,
) -> Statement {
    let mut st = Statement::new(
        "SELECT policy, settled_status, settled_by, created_at, settled_at FROM approvals",
    );
    let (f, t) = (st.arg(from), st.arg(to));
    st.push(&format!(" WHERE settled_at >= {f} AND settled_at < {t}"));
    push_scope(&mut st, policies);
    let p = st.arg(limit);
    st.push(&format!(" ORDER BY settled_at LIMIT {p}"));
    st
}

/// The overview's rows for one scope and window, each read bounded.
#[derive(Debug, Clone, Default)]
pub struct OverviewRows {
    /// Waiting requests, oldest first, at most [`WAITING_LIMIT`].
    pub waiting: Vec<WaitingRow>,
    /// How many requests wait, per policy (all of them, listed or not).
    pub waiting_counts: Vec<(String, i64)>,
    /// Requests settled in the window, in settlement order, at most
    /// [`SETTLED_LIMIT`].
    pub settled: Vec<SettledRow>,
    /// More than [`SETTLED_LIMIT`] were settled in the window.
    pub truncated: bool,
}

impl Store {
    /// What the overview shows: `policies` scopes it (`None`: all), and
    /// requests settled in `settled_in` (Unix milliseconds) count.
    pub async fn overview_rows(
        &self,
        policies: Option<&[String]>,
        settled_in: Range<i64>,
    ) -> Result<OverviewRows> {
        let st = waiting_statement(policies, WAITING_LIMIT);
        let waiting = sql::fetch_all(&self.pool, &st.sql, &st.args[..]).await?;
        let st = waiting_counts_statement(policies);
        let waiting_counts = sql::fetch_rows(&self.pool, &st.sql, &st.args[..])
            .await?
            .iter()
            .map(|r| Ok((col(r, "policy")?, col(r, "n")?)))
            .collect::<Result<_>>()?;
        // One row more than kept tells a truncated window from a full one.
        let (from, to) = (settled_in.start, settled_in.end);
        let st = settled_statement(policies, from, to, SETTLED_LIMIT + 1);
        let mut settled: Vec<SettledRow> =
            sql::fetch_all(&self.pool, &st.sql, &st.args[..]).await?;
        let kept = usize::try_from(SETTLED_LIMIT).unwrap_or(usize::MAX);
        let truncated = settled.len() > kept;
        settled.truncate(kept);
        Ok(OverviewRows {
            waiting,
            waiting_counts,
            settled,
            truncated,
        })
    }
}
