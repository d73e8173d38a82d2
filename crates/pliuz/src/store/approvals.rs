//! Approval rows. Loading and saving whole aggregates: the state machine in
//! `approval` decides, this file only persists.

use super::sql::{self, col, json_col, with_columns, Arg, Statement};
use super::{Result, Store, StoreError, WriteTx};
use crate::approval::{
    Approval, Claim, DecisionKind, Execution, ExecutionOutcome, RequestedCall, Settlement, Status,
    Vote,
};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

const COLUMNS: &str = "id, status, tool_name, tool_args, proposed_args, final_args, tool_schema, policy, agent, originator, call_id, session_id, context_messages, client_metadata, idempotency_key, args_digest, required_approvals, allowed_decisions, edited, settled_status, settled_by, settled_reason, settled_at, execution_outcome, execution_latency_ms, execution_excerpt, executed_at, created_at, expires_at, version, execute_within_ms, claim_id, claimed_at, escalated_at";

/// Filters for listing approvals (all optional).
#[derive(Debug, Clone, Default)]
pub struct ApprovalFilter {
    pub status: Option<Status>,
    pub policy: Option<String>,
    pub agent: Option<String>,
    pub tool: Option<String>,
    /// Restrict to these policies (approvers see only their own).
    pub policies_in: Option<Vec<String>>,
    /// Keyset cursor: only ids strictly below this one (ids are time-ordered).
    pub before_id: Option<String>,
    /// Keyset cursor for oldest-first listings: ids strictly above this one.
    pub after_id: Option<String>,
    pub oldest_first: bool,
    pub limit: u32,
}

#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Approval>,
    /// The id to continue from, when there may be more.
    pub next: Option<String>,
}

fn obj(v: Option<Value>, name: &str) -> Result<Option<Map<String, Value>>> {
    match v {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(StoreError::Corrupt(format!("{name} is not a JSON object"))),
    }
}

fn text(v: &Option<impl serde::Serialize>) -> Option<String> {
    v.as_ref().and_then(|v| serde_json::to_string(v).ok())
}

fn from_row(row: &AnyRow, votes: Vec<Vote>) -> Result<Approval> {
    let status_s: String = col(row, "status")?;
    let status = Status::parse(&status_s)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown status {status_s}")))?;
    let allowed: String = col(row, "allowed_decisions")?;
    let allowed_decisions = allowed
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| DecisionKind::parse(s).ok_or_else(|| StoreError::Corrupt(format!("decision {s}"))))
        .collect::<Result<Vec<_>>>()?;
    let settlement = match col::<Option<String>>(row, "settled_status")? {
        None => None,
        Some(s) => Some(Settlement {
            status: Status::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("status {s}")))?,
            by: col::<Option<String>>(row, "settled_by")?.unwrap_or_default(),
            reason: col(row, "settled_reason")?,
            at: col::<Option<i64>>(row, "settled_at")?.unwrap_or_default(),
        }),
    };
    let execution = match col::<Option<String>>(row, "execution_outcome")? {
        None => None,
        Some(s) => Some(Execution {
            outcome: ExecutionOutcome::parse(&s)
                .ok_or_else(|| StoreError::Corrupt(format!("execution outcome {s}")))?,
            latency_ms: col(row, "execution_latency_ms")?,
            output_excerpt: col(row, "execution_excerpt")?,
            reported_at: col::<Option<i64>>(row, "executed_at")?.unwrap_or_default(),
        }),
    };
    let claim = match col::<Option<String>>(row, "claim_id")? {
        None => None,
        Some(claim_id) => Some(Claim {
            claim_id,
            claimed_at: col::<Option<i64>>(row, "claimed_at")?.unwrap_or_default(),
        }),
    };
    let call = with_columns!(row => RequestedCall {
        tool_name, originator, call_id, session_id, idempotency_key;
        tool_args: obj(json_col(row, "tool_args")?, "tool_args")?.unwrap_or_default(),
        tool_schema: json_col(row, "tool_schema")?,
        context_messages: json_col(row, "context_messages")?,
        client_metadata: json_col(row, "client_metadata")?,
    });
    Ok(with_columns!(row => Approval {
        id, policy, agent, args_digest, execute_within_ms, created_at, expires_at,
        escalated_at, version;
        status,
        call,
        proposed_args: obj(json_col(row, "proposed_args")?, "proposed_args")?,
        final_args: obj(json_col(row, "final_args")?, "final_args")?,
        required_approvals: u32::try_from(col::<i64>(row, "required_approvals")?).unwrap_or(1),
        allowed_decisions,
        votes,
        settlement,
        edited: col::<i64>(row, "edited")? != 0,
        claim,
        execution,
    }))
}

fn vote_from_row(row: &AnyRow) -> Result<Vote> {
    Ok(Vote {
        voter: col(row, "voter")?,
        at: col(row, "created_at")?,
    })
}

async fn load_votes(conn: &mut AnyConnection, id: &str) -> Result<Vec<Vote>> {
    let q = "SELECT voter, created_at FROM approval_votes WHERE approval_id = $1 ORDER BY created_at, voter";
    let rows = sqlx::query(q).bind(id).fetch_all(conn).await?;
    rows.iter().map(vote_from_row).collect()
}

/// One approval row with its votes.
async fn with_votes(conn: &mut AnyConnection, row: &AnyRow) -> Result<Approval> {
    let id: String = col(row, "id")?;
    let votes = load_votes(conn, &id).await?;
    from_row(row, votes)
}

/// Appends the filter's conditions to `st`; `false` when the filter cannot
/// match anything (an approver of no policy). The cursor bounds apply to
/// listings, not to counts.
fn push_conditions(st: &mut Statement, f: &ApprovalFilter, with_cursor: bool) -> bool {
    st.push(" WHERE 1 = 1");
    if let Some(s) = f.status {
        let p = st.arg(s.as_str());
        st.push(&format!(" AND status = {p}"));
    }
    for (col_name, v) in [
        ("policy", &f.policy),
        ("agent", &f.agent),
        ("tool_name", &f.tool),
    ] {
        if let Some(v) = v {
            let p = st.arg(v.as_str());
            st.push(&format!(" AND {col_name} = {p}"));
        }
    }
    if let Some(ps) = &f.policies_in {
        if ps.is_empty() {
            return false;
        }
        let list = st.args_list(ps);
        st.push(&format!(" AND policy IN ({list})"));
    }
    if with_cursor {
        if let Some(b) = &f.before_id {
            let p = st.arg(b.as_str());
            st.push(&format!(" AND id < {p}"));
        }
        if let Some(a) = &f.after_id {
            let p = st.arg(a.as_str());
            st.push(&format!(" AND id > {p}"));
        }
    }
    // No stored value holds NUL (writes refuse it) and PostgreSQL cannot
    // even bind one: match nothing, on both stores alike.
    !st.args
        .iter()
        .any(|a| matches!(a, Arg::Text(t) if t.contains('\0')))
}

/// What [`Store::list_approvals`] runs for `f` (one more row than the page,
/// to know whether there is a next one); `None` when nothing can match.
pub(crate) fn list_statement(f: &ApprovalFilter) -> Option<Statement> {
    let mut st = Statement::new(format!("SELECT {COLUMNS} FROM approvals"));
    if !push_conditions(&mut st, f, true) {
        return None;
    }
    st.push(if f.oldest_first {
        " ORDER BY id ASC"
    } else {
        " ORDER BY id DESC"
    });
    st.push(&format!(" LIMIT {}", page_limit(f) + 1));
    Some(st)
}

/// What [`Store::count_approvals`] runs for `f`; `None` when nothing can match.
pub(crate) fn count_statement(f: &ApprovalFilter) -> Option<Statement> {
    let mut st = Statement::new("SELECT COUNT(*) FROM approvals");
    push_conditions(&mut st, f, false).then_some(st)
}

fn page_limit(f: &ApprovalFilter) -> u32 {
    f.limit.clamp(1, 500)
}

/// Votes of many approvals in one query (listing pages).
async fn load_votes_of(
    conn: &mut AnyConnection,
    ids: &[String],
) -> Result<std::collections::HashMap<String, Vec<Vote>>> {
    let mut out: std::collections::HashMap<String, Vec<Vote>> = std::collections::HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let mut st = Statement::new("");
    let list = st.args_list(ids);
    st.sql = format!(
        "SELECT approval_id, voter, created_at FROM approval_votes WHERE approval_id IN ({list}) ORDER BY created_at, voter"
    );
    for r in sql::fetch_rows(conn, &st.sql, &st.args[..]).await? {
        out.entry(col(&r, "approval_id")?)
            .or_default()
            .push(vote_from_row(&r)?);
    }
    Ok(out)
}

/// Pending requests whose deadline has passed, soonest first.
pub(crate) const DUE_EXPIRIES_SQL: &str = "SELECT id FROM approvals WHERE status = 'pending' AND expires_at <= $1 ORDER BY expires_at LIMIT $2";
/// The next deadline among pending requests.
pub(crate) const NEXT_EXPIRY_SQL: &str =
    "SELECT MIN(expires_at) FROM approvals WHERE status = 'pending'";

/// Whether an agent used an idempotency key before (index
/// `approvals_idempotency`).
pub(super) const IDEMPOTENCY_KEY_USED_SQL: &str =
    "SELECT 1 FROM approvals WHERE agent = $1 AND idempotency_key = $2";

impl Store {
    pub async fn get_approval(&self, id: &str) -> Result<Option<Approval>> {
        let mut conn = self.pool.acquire().await?;
        get_in(&mut *conn, id).await
    }

    pub async fn find_by_idempotency(&self, agent: &str, key: &str) -> Result<Option<Approval>> {
        // A new key (nearly every call) needs no more than this point read,
        // on SQLite made on this thread (`inline_read`); a key used before
        // is read whole from the pool.
        if let Some(inline) = &self.inline {
            match inline.finds(IDEMPOTENCY_KEY_USED_SQL, [agent, key]) {
                Ok(false) => return Ok(None),
                Ok(true) => {}
                Err(e) => inline.fell_back(&e),
            }
        }
        let q =
            format!("SELECT {COLUMNS} FROM approvals WHERE agent = $1 AND idempotency_key = $2");
        let mut conn = self.pool.acquire().await?;
        match sql::fetch_optional_row(&mut *conn, &q, (agent, key)).await? {
            None => Ok(None),
            Some(r) => Ok(Some(with_votes(&mut conn, &r).await?)),
        }
    }

    pub async fn list_approvals(&self, f: &ApprovalFilter) -> Result<Page> {
        let Some(st) = list_statement(f) else {
            return Ok(Page {
                items: vec![],
                next: None,
            });
        };
        let limit = page_limit(f) as usize;
        let mut conn = self.pool.acquire().await?;
        let rows = sql::fetch_rows(&mut *conn, &st.sql, &st.args[..]).await?;
        let more = rows.len() > limit;
        let rows = &rows[..rows.len().min(limit)];
        let ids = rows
            .iter()
            .map(|r| col::<String>(r, "id"))
            .collect::<Result<Vec<_>>>()?;
        let mut votes = load_votes_of(&mut conn, &ids).await?;
        let mut items = Vec::with_capacity(rows.len());
        for (r, id) in rows.iter().zip(&ids) {
            items.push(from_row(r, votes.remove(id).unwrap_or_default())?);
        }
        let next = if more {
            items.last().map(|a| a.id.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// Counts matching approvals (for the inbox's counters).
    pub async fn count_approvals(&self, f: &ApprovalFilter) -> Result<i64> {
        let Some(st) = count_statement(f) else {
            return Ok(0);
        };
        sql::fetch_scalar(&self.pool, &st.sql, &st.args[..]).await
    }

    /// Pending requests whose deadline has passed.
    pub async fn due_expiries(&self, now: i64, limit: i64) -> Result<Vec<String>> {
        sql::fetch_scalars(&self.pool, DUE_EXPIRIES_SQL, (now, limit)).await
    }

    /// The next deadline among pending requests.
    pub async fn next_expiry(&self) -> Result<Option<i64>> {
        sql::fetch_scalar(&self.pool, NEXT_EXPIRY_SQL, ()).await
    }
}

/// One approval and its votes in one statement: a row per vote (one row
/// with no vote when there are none), each repeating the approval.
/// `conn`: a pool connection, or the writer's inside a write.
async fn get_in<C>(conn: &mut C, id: &str) -> Result<Option<Approval>>
where
    for<'c> &'c mut C: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let columns = sql::qualified("a", COLUMNS);
    let q = format!(
        "SELECT {columns}, v.voter AS vote_voter, v.created_at AS vote_at FROM approvals a LEFT JOIN approval_votes v ON v.approval_id = a.id WHERE a.id = $1 ORDER BY v.created_at, v.voter"
    );
    let rows = sqlx::query(&q).bind(id).fetch_all(&mut *conn).await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut votes = Vec::with_capacity(rows.len());
    for r in &rows {
        if let (Some(voter), Some(at)) = (
            col::<Option<String>>(r, "vote_voter")?,
            col::<Option<i64>>(r, "vote_at")?,
        ) {
            votes.push(Vote { voter, at });
        }
    }
    Ok(Some(from_row(first, votes)?))
}

impl WriteTx {
    /// Reads an approval inside the transaction (after the write lock is held,
    /// so what it reads cannot change before commit).
    pub async fn get_approval(&mut self, id: &str) -> Result<Option<Approval>> {
        get_in(&mut *self.tx, id).await
    }

    /// Held until commit (`write_behind`): a new request is read back by
    /// nobody before then, and what refers to it (votes, timers, audit
    /// entries) is held after it. A repeated idempotency key fails the
    /// commit with a unique violation.
    pub async fn insert_approval(&mut self, a: &Approval) -> Result<()> {
        let mut st = Statement::new("");
        let values = row_args(a)
            .into_iter()
            .map(|v| st.arg(v))
            .collect::<Vec<_>>()
            .join(", ");
        st.sql = format!("INSERT INTO approvals ({COLUMNS}) VALUES ({values})");
        self.held.push(st);
        self.save_votes(&a.id, &a.votes).await
    }

    /// Saves a changed approval if nobody else changed it since it was read;
    /// otherwise `StoreError::Conflict`. Bumps `a.version`. `votes_before`
    /// are the votes as read: when the change only added votes, only those
    /// are inserted.
    pub async fn update_approval(&mut self, a: &mut Approval, votes_before: &[Vote]) -> Result<()> {
        let expected = a.version;
        a.version += 1;
        let mut st = Statement::new("UPDATE approvals SET status = $1, proposed_args = $2, final_args = $3, edited = $4, settled_status = $5, settled_by = $6, settled_reason = $7, settled_at = $8, execution_outcome = $9, execution_latency_ms = $10, execution_excerpt = $11, executed_at = $12, version = $13, claim_id = $14, claimed_at = $15, escalated_at = $16 WHERE id = $17 AND version = $18");
        st.args = vec![
            a.status.as_str().into(),
            text(&a.proposed_args).into(),
            text(&a.final_args).into(),
        ];
        st.args.extend(outcome_args(a));
        st.args.extend([
            a.version.into(),
            a.claim.as_ref().map(|c| c.claim_id.clone()).into(),
            a.claim.as_ref().map(|c| c.claimed_at).into(),
            a.escalated_at.into(),
            a.id.as_str().into(),
            expected.into(),
        ]);
        let done = st.query().execute(&mut *self.tx).await?;
        if done.rows_affected() != 1 {
            a.version = expected;
            return Err(StoreError::Conflict);
        }
        let new_votes = match a.votes.strip_prefix(votes_before) {
            Some(added) => added,
            None => {
                // Votes were withdrawn (an edit starts the count again).
                let q = "DELETE FROM approval_votes WHERE approval_id = $1";
                sqlx::query(q).bind(&a.id).execute(&mut *self.tx).await?;
                &a.votes[..]
            }
        };
        self.save_votes(&a.id, new_votes).await
    }

    /// Held until commit (`write_behind`): nothing reads a change's own
    /// votes back before then.
    async fn save_votes(&mut self, approval_id: &str, votes: &[Vote]) -> Result<()> {
        for v in votes {
            let mut st = Statement::new(
                "INSERT INTO approval_votes (approval_id, voter, created_at) VALUES ($1, $2, $3)",
            );
            st.args = vec![approval_id.into(), v.voter.as_str().into(), v.at.into()];
            self.held.push(st);
        }
        Ok(())
    }
}

/// A request's values in `COLUMNS` order.
fn row_args(a: &Approval) -> Vec<Arg> {
    let allowed = a
        .allowed_decisions
        .iter()
        .map(|d| d.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let mut args: Vec<Arg> = vec![
        a.id.as_str().into(),
        a.status.as_str().into(),
        a.call.tool_name.as_str().into(),
        text(&Some(&a.call.tool_args)).into(),
        text(&a.proposed_args).into(),
        text(&a.final_args).into(),
        text(&a.call.tool_schema).into(),
        a.policy.as_str().into(),
        a.agent.as_str().into(),
        a.call.originator.clone().into(),
        a.call.call_id.clone().into(),
        a.call.session_id.clone().into(),
        text(&a.call.context_messages).into(),
        text(&a.call.client_metadata).into(),
        a.call.idempotency_key.clone().into(),
        a.args_digest.as_str().into(),
        i64::from(a.required_approvals).into(),
        allowed.into(),
    ];
    args.extend(outcome_args(a));
    args.extend([
        a.created_at.into(),
        a.expires_at.into(),
        a.version.into(),
        a.execute_within_ms.into(),
        a.claim.as_ref().map(|c| c.claim_id.clone()).into(),
        a.claim.as_ref().map(|c| c.claimed_at).into(),
        a.escalated_at.into(),
    ]);
    args
}

/// The values of the outcome columns, `edited` through `executed_at`.
fn outcome_args(a: &Approval) -> Vec<Arg> {
    let s = a.settlement.as_ref();
    let e = a.execution.as_ref();
    vec![
        i64::from(a.edited).into(),
        s.map(|s| s.status.as_str()).into(),
        s.map(|s| s.by.clone()).into(),
        s.and_then(|s| s.reason.clone()).into(),
        s.map(|s| s.at).into(),
        e.map(|e| e.outcome.as_str()).into(),
        e.and_then(|e| e.latency_ms).into(),
        e.and_then(|e| e.output_excerpt.clone()).into(),
        e.map(|e| e.reported_at).into(),
    ]
}
