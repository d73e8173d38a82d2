//! Read-only queries behind the inbox overview. Each one is bounded: the
//! waiting list by a row limit, settled requests by a time window (the
//! `approvals_settled_at` index) and a row limit.

use super::sql::{self, col, from_columns, Record, Statement};
use super::{Result, Store};

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

/// What [`Store::waiting_requests`] runs.
pub(crate) fn waiting_statement(policies: Option<&[String]>, limit: i64) -> Statement {
    let mut st = Statement::new(
        "SELECT id, policy, tool_name, created_at FROM approvals WHERE status = 'pending'",
    );
    push_scope(&mut st, policies);
    let p = st.arg(limit);
    st.push(&format!(" ORDER BY created_at, id LIMIT {p}"));
    st
}

/// What [`Store::waiting_counts`] runs: an index-only count per policy.
pub(crate) fn waiting_counts_statement(policies: Option<&[String]>) -> Statement {
    let mut st =
        Statement::new("SELECT policy, COUNT(*) AS n FROM approvals WHERE status = 'pending'");
    push_scope(&mut st, policies);
    st.push(" GROUP BY policy ORDER BY policy");
    st
}

/// What [`Store::settled_between`] runs.
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

impl Store {
    /// Waiting requests, oldest first, at most `limit`; `policies` scopes
    /// them (`None`: all).
    pub async fn waiting_requests(
        &self,
        policies: Option<&[String]>,
        limit: i64,
    ) -> Result<Vec<WaitingRow>> {
        let st = waiting_statement(policies, limit);
        sql::fetch_all(&self.pool, &st.sql, &st.args[..]).await
    }

    /// How many requests wait, per policy.
    pub async fn waiting_counts(&self, policies: Option<&[String]>) -> Result<Vec<(String, i64)>> {
        let st = waiting_counts_statement(policies);
        let rows = sql::fetch_rows(&self.pool, &st.sql, &st.args[..]).await?;
        rows.iter()
            .map(|r| Ok((col(r, "policy")?, col(r, "n")?)))
            .collect()
    }

    /// Requests settled in `[from, to)`, at most `limit`.
    pub async fn settled_between(
        &self,
        policies: Option<&[String]>,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<SettledRow>> {
        let st = settled_statement(policies, from, to, limit);
        sql::fetch_all(&self.pool, &st.sql, &st.args[..]).await
    }
}
