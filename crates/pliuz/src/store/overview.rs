//! Read-only queries behind the inbox overview. Each one is bounded: the
//! waiting list by a row limit, settled requests by a time window (the
//! `approvals_settled_at` index) and a row limit.

use super::{col, Result, Store};

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

fn policy_clause(policies: Option<&[String]>) -> String {
    match policies {
        None => String::new(),
        Some(ps) => format!(" AND policy IN ({})", vec!["?"; ps.len().max(1)].join(", ")),
    }
}

impl Store {
    /// Waiting requests, oldest first, at most `limit`; `policies` scopes
    /// them (`None`: all).
    pub async fn waiting_requests(
        &self,
        policies: Option<&[String]>,
        limit: i64,
    ) -> Result<Vec<WaitingRow>> {
        let sql = format!(
            "SELECT id, policy, tool_name, created_at FROM approvals WHERE status = 'pending'{} ORDER BY created_at, id LIMIT ?",
            policy_clause(policies)
        );
        let q = self.sql(&sql);
        let mut query = sqlx::query(&q);
        if let Some(ps) = policies {
            if ps.is_empty() {
                query = query.bind("");
            }
            for p in ps {
                query = query.bind(p);
            }
        }
        let rows = query.bind(limit).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(WaitingRow {
                    id: col(r, "id")?,
                    policy: col(r, "policy")?,
                    tool_name: col(r, "tool_name")?,
                    created_at: col(r, "created_at")?,
                })
            })
            .collect()
    }

    /// How many requests wait, per policy (an index range scan on
    /// `approvals_status_created`).
    pub async fn waiting_counts(&self, policies: Option<&[String]>) -> Result<Vec<(String, i64)>> {
        let sql = format!(
            "SELECT policy, COUNT(*) AS n FROM approvals WHERE status = 'pending'{} GROUP BY policy ORDER BY policy",
            policy_clause(policies)
        );
        let q = self.sql(&sql);
        let mut query = sqlx::query(&q);
        if let Some(ps) = policies {
            if ps.is_empty() {
                query = query.bind("");
            }
            for p in ps {
                query = query.bind(p);
            }
        }
        let rows = query.fetch_all(&self.pool).await?;
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
        let sql = format!(
            "SELECT policy, settled_status, settled_by, created_at, settled_at FROM approvals WHERE settled_at >= ? AND settled_at < ?{} ORDER BY settled_at LIMIT ?",
            policy_clause(policies)
        );
        let q = self.sql(&sql);
        let mut query = sqlx::query(&q).bind(from).bind(to);
        if let Some(ps) = policies {
            if ps.is_empty() {
                query = query.bind("");
            }
            for p in ps {
                query = query.bind(p);
            }
        }
        let rows = query.bind(limit).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(SettledRow {
                    policy: col(r, "policy")?,
                    settled_status: col::<Option<String>>(r, "settled_status")?.unwrap_or_default(),
                    settled_by: col::<Option<String>>(r, "settled_by")?.unwrap_or_default(),
                    created_at: col(r, "created_at")?,
                    settled_at: col::<Option<i64>>(r, "settled_at")?.unwrap_or_default(),
                })
            })
            .collect()
    }
}
