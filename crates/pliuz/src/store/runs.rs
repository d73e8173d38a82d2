//! Durable runs and agent webhooks in the database (migration 60, "runs",
//! `migrations/{common,sqlite,postgres}/0060_runs.sql`).
//! Run states and webhook secrets arrive here already sealed
//! (`crate::encryption`); nothing in this file sees them in clear.

use super::outbox::outbox_columns;
use super::sql::{self, col, from_columns, json_col, with_columns, Statement};
use super::{Backend, OutboxMessage, Result, Store, StoreError, WriteTx};
use crate::run::{Run, RunStatus};
use sqlx::any::AnyRow;

/// The PostgreSQL NOTIFY channel that carries run changes between replicas.
pub const RUN_CHANGES_CHANNEL: &str = "pliuz_run_changes";
/// Outbox `kind` of a webhook event.
pub const WEBHOOK_KIND: &str = "webhook.event";
/// `next_attempt_at` of a delivery given up on: never due again.
pub const GAVE_UP_AT: i64 = i64::MAX;

const RUN_COLS: &str = "id, agent, status, state_sha256, state_bytes, metadata, lease_token_hash, lease_expires_at, pause_count, output_sha256, error, created_at, updated_at";

fn run_from_row(
    r: &AnyRow,
    (approval_ids, question_ids): (Vec<String>, Vec<String>),
) -> Result<Run> {
    let status: String = col(r, "status")?;
    Ok(with_columns!(r => Run {
        id, agent, state_sha256, state_bytes, lease_token_hash, lease_expires_at, pause_count,
        output_sha256, error, created_at, updated_at;
        status: RunStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("run status {status}")))?,
        approval_ids,
        question_ids,
        metadata: json_col(r, "metadata")?,
    }))
}

/// A webhook endpoint as stored (the secret still sealed).
#[derive(Debug, Clone)]
pub struct StoredWebhook {
    pub agent: String,
    pub url: String,
    pub sealed_secret: Vec<u8>,
}

/// A due webhook delivery.
#[derive(Debug, Clone)]
pub struct DueWebhook {
    pub id: String,
    pub approval_id: Option<String>,
    pub payload: serde_json::Value,
    pub attempts: i64,
    pub next_attempt_at: i64,
}

impl From<OutboxMessage> for DueWebhook {
    fn from(m: OutboxMessage) -> DueWebhook {
        DueWebhook {
            id: m.id,
            approval_id: m.approval_id,
            payload: m.payload,
            attempts: m.attempts,
            next_attempt_at: m.next_attempt_at,
        }
    }
}

/// Due webhook deliveries (`$1` is [`WEBHOOK_KIND`]), oldest first.
pub(crate) const DUE_WEBHOOKS_SQL: &str = concat!(
    "SELECT ",
    outbox_columns!(),
    " FROM outbox WHERE kind = $1 AND delivered_at IS NULL AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT $3"
);
pub(crate) const NEXT_WEBHOOK_DUE_SQL: &str = "SELECT MIN(next_attempt_at) FROM outbox WHERE kind = $1 AND delivered_at IS NULL AND next_attempt_at < $2";

/// A run's approvals and questions (migration 101), each in their order.
async fn approval_ids_of<C>(conn: &mut C, run_id: &str) -> Result<(Vec<String>, Vec<String>)>
where
    for<'c> &'c mut C: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let q = "SELECT approval_id FROM run_approvals WHERE run_id = $1 ORDER BY position";
    let approvals = sql::fetch_scalars(&mut *conn, q, (run_id,)).await?;
    let q = "SELECT question_id FROM run_questions WHERE run_id = $1 ORDER BY position";
    let questions = sql::fetch_scalars(&mut *conn, q, (run_id,)).await?;
    Ok((approvals, questions))
}

/// Runs that include an approval, newest first.
pub(crate) const RUNS_WITH_APPROVAL_SQL: &str =
    "SELECT r.id, r.status FROM run_approvals ra JOIN runs r ON r.id = ra.run_id WHERE ra.approval_id = $1 ORDER BY r.created_at DESC, r.id DESC";

/// Runs that wait on a question, newest first.
pub(crate) const RUNS_WITH_QUESTION_SQL: &str =
    "SELECT r.id, r.status FROM run_questions rq JOIN runs r ON r.id = rq.run_id WHERE rq.question_id = $1 ORDER BY r.created_at DESC, r.id DESC";

/// Binds the columns a run's life changes, `status` to `error`, in the order
/// both the insert and the update use.
fn bind_run_fields<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    run: &'q Run,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(run.status.as_str())
        .bind(&run.state_sha256)
        .bind(run.state_bytes)
        .bind(run.metadata.as_ref().map(|m| m.to_string()))
        .bind(&run.lease_token_hash)
        .bind(run.lease_expires_at)
        .bind(run.pause_count)
        .bind(&run.output_sha256)
        .bind(&run.error)
}

impl WriteTx {
    pub async fn insert_run(&mut self, run: &Run, sealed_state: &[u8]) -> Result<()> {
        let q = format!("INSERT INTO runs ({RUN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)");
        let q = sqlx::query(&q).bind(&run.id).bind(&run.agent);
        bind_run_fields(q, run)
            .bind(run.created_at)
            .bind(run.updated_at)
            .execute(&mut *self.tx)
            .await?;
        self.set_run_approvals(&run.id, &run.approval_ids).await?;
        self.set_run_questions(&run.id, &run.question_ids).await?;
        self.set_run_state(&run.id, Some(sealed_state)).await
    }

    /// Writes every mutable column of `run` (not its approvals or state),
    /// provided its status and lease are still those of `prev` (a heartbeat
    /// runs outside the write lock); otherwise [`StoreError::Conflict`].
    pub async fn update_run(&mut self, run: &Run, prev: &Run) -> Result<()> {
        let q = "UPDATE runs SET status = $1, state_sha256 = $2, state_bytes = $3, metadata = $4, lease_token_hash = $5, lease_expires_at = $6, pause_count = $7, output_sha256 = $8, error = $9, updated_at = $10 WHERE id = $11 AND status = $12 AND COALESCE(lease_token_hash, '') = $13 AND COALESCE(lease_expires_at, 0) = $14";
        let done = bind_run_fields(sqlx::query(q), run)
            .bind(run.updated_at)
            .bind(&run.id)
            .bind(prev.status.as_str())
            .bind(prev.lease_token_hash.clone().unwrap_or_default())
            .bind(prev.lease_expires_at.unwrap_or(0))
            .execute(&mut *self.tx)
            .await?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    pub async fn set_run_approvals(&mut self, run_id: &str, ids: &[String]) -> Result<()> {
        let delete = "DELETE FROM run_approvals WHERE run_id = $1";
        let insert =
            "INSERT INTO run_approvals (run_id, approval_id, position) VALUES ($1, $2, $3)";
        self.replace_run_ids(delete, insert, run_id, ids).await
    }

    pub async fn set_run_questions(&mut self, run_id: &str, ids: &[String]) -> Result<()> {
        let delete = "DELETE FROM run_questions WHERE run_id = $1";
        let insert =
            "INSERT INTO run_questions (run_id, question_id, position) VALUES ($1, $2, $3)";
        self.replace_run_ids(delete, insert, run_id, ids).await
    }

    /// Replaces a run's list of ids: `delete` (binding the run) then
    /// `insert` (binding the run, each id and its position) for each.
    async fn replace_run_ids(
        &mut self,
        delete: &str,
        insert: &str,
        run_id: &str,
        ids: &[String],
    ) -> Result<()> {
        sql::execute(&mut *self.tx, delete, (run_id,)).await?;
        for (i, id) in ids.iter().enumerate() {
            let position = i64::try_from(i).unwrap_or(i64::MAX);
            sql::execute(&mut *self.tx, insert, (run_id, id, position)).await?;
        }
        Ok(())
    }

    /// Replaces (or with `None` deletes) the sealed state.
    pub async fn set_run_state(&mut self, run_id: &str, sealed: Option<&[u8]>) -> Result<()> {
        let q = "DELETE FROM run_states WHERE run_id = $1";
        sql::execute(&mut *self.tx, q, (run_id,)).await?;
        if let Some(sealed) = sealed {
            let q = "INSERT INTO run_states (run_id, sealed) VALUES ($1, $2)";
            sql::execute(&mut *self.tx, q, (run_id, sealed.to_vec())).await?;
        }
        Ok(())
    }

    pub async fn run_state(&mut self, run_id: &str) -> Result<Option<Vec<u8>>> {
        let q = "SELECT sealed FROM run_states WHERE run_id = $1";
        sql::fetch_optional_scalar(&mut *self.tx, q, (run_id,)).await
    }

    pub async fn get_run(&mut self, id: &str) -> Result<Option<Run>> {
        let Some(row) = sql::fetch_optional_row(&mut *self.tx, &run_by_id_sql(), (id,)).await?
        else {
            return Ok(None);
        };
        let ids = approval_ids_of(&mut *self.tx, id).await?;
        Ok(Some(run_from_row(&row, ids)?))
    }

    /// Of `ids`, those that are not approvals of `agent`.
    pub async fn foreign_approvals(&mut self, agent: &str, ids: &[String]) -> Result<Vec<String>> {
        let q = "SELECT COUNT(*) FROM approvals WHERE id = $1 AND agent = $2";
        self.not_found_for(q, agent, ids).await
    }

    /// Of `ids`, those that are not questions of `agent`.
    pub async fn foreign_questions(&mut self, agent: &str, ids: &[String]) -> Result<Vec<String>> {
        let q = "SELECT COUNT(*) FROM questions WHERE id = $1 AND agent = $2";
        self.not_found_for(q, agent, ids).await
    }

    /// Of `ids`, those for which `count` (binding the id and `agent`) finds
    /// no row.
    async fn not_found_for(
        &mut self,
        count: &str,
        agent: &str,
        ids: &[String],
    ) -> Result<Vec<String>> {
        let mut missing = Vec::new();
        for id in ids {
            let n: i64 = sql::fetch_scalar(&mut *self.tx, count, (id, agent)).await?;
            if n == 0 {
                missing.push(id.clone());
            }
        }
        Ok(missing)
    }

    /// How many of `run_id`'s approvals and questions are still pending.
    pub async fn pending_of_run(&mut self, run_id: &str) -> Result<i64> {
        let q = "SELECT COUNT(*) FROM run_questions rq JOIN questions q ON q.id = rq.question_id WHERE rq.run_id = $1 AND q.status = 'pending'";
        let questions: i64 = sql::fetch_scalar(&mut *self.tx, q, (run_id,)).await?;
        Ok(self.pending_approvals_of(run_id).await? + questions)
    }

    /// Runs that wait on this question, newest first (with their status).
    pub async fn runs_with_question(&mut self, question_id: &str) -> Result<Vec<(String, String)>> {
        self.runs_with(RUNS_WITH_QUESTION_SQL, question_id).await
    }

    /// How many of `run_id`'s approvals are still pending.
    pub async fn pending_approvals_of(&mut self, run_id: &str) -> Result<i64> {
        let q = "SELECT COUNT(*) FROM run_approvals ra JOIN approvals a ON a.id = ra.approval_id WHERE ra.run_id = $1 AND a.status = 'pending'";
        sql::fetch_scalar(&mut *self.tx, q, (run_id,)).await
    }

    /// Runs that include this approval, newest first (with their status).
    pub async fn runs_with_approval(&mut self, approval_id: &str) -> Result<Vec<(String, String)>> {
        self.runs_with(RUNS_WITH_APPROVAL_SQL, approval_id).await
    }

    /// The `(id, status)` of the runs `sql` finds for one approval or question.
    async fn runs_with(&mut self, sql: &str, id: &str) -> Result<Vec<(String, String)>> {
        let rows = sql::fetch_rows(&mut *self.tx, sql, (id,)).await?;
        rows.iter()
            .map(|r| Ok((col(r, "id")?, col(r, "status")?)))
            .collect()
    }

    pub async fn get_webhook_tx(&mut self, agent: &str) -> Result<Option<StoredWebhook>> {
        sql::fetch_optional(&mut *self.tx, WEBHOOK_SQL, (agent,)).await
    }

    pub async fn set_webhook(
        &mut self,
        agent: &str,
        url: &str,
        sealed_secret: &[u8],
    ) -> Result<()> {
        // Before the insert: if it fails half-way, `true` is still safe.
        self.stored_webhook();
        let now = super::now_millis();
        let q = "DELETE FROM agent_webhooks WHERE agent = $1";
        sql::execute(&mut *self.tx, q, (agent,)).await?;
        let q = "INSERT INTO agent_webhooks (agent, url, sealed_secret, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)";
        let values = (agent, url, sealed_secret.to_vec(), now, now);
        sql::execute(&mut *self.tx, q, values).await?;
        Ok(())
    }

    pub async fn agent_exists(&mut self, name: &str) -> Result<bool> {
        let q = "SELECT COUNT(*) FROM agents WHERE name = $1 AND revoked_at IS NULL";
        let n: i64 = sql::fetch_scalar(&mut *self.tx, q, (name,)).await?;
        Ok(n > 0)
    }

    /// Tells other replicas (PostgreSQL) that runs of `agent` changed, when
    /// this commits.
    pub async fn notify_run_change(&mut self, agent: &str) -> Result<()> {
        if self.store.backend == Backend::Postgres {
            let q = "SELECT pg_notify($1, $2)";
            sql::execute(&mut *self.tx, q, (RUN_CHANGES_CHANNEL, agent)).await?;
        }
        Ok(())
    }

    /// Marks a webhook delivery done.
    pub async fn webhook_delivered(&mut self, outbox_id: &str) -> Result<()> {
        self.mark_outbox_delivered(outbox_id).await
    }

    /// Gives up on a webhook delivery: kept with its last error, never due again.
    pub async fn webhook_given_up(&mut self, outbox_id: &str, error: &str) -> Result<()> {
        self.give_up_outbox(outbox_id, error).await
    }
}

from_columns!(StoredWebhook: agent, url, sealed_secret);

const WEBHOOK_SQL: &str = "SELECT agent, url, sealed_secret FROM agent_webhooks WHERE agent = $1";

fn run_by_id_sql() -> String {
    format!("SELECT {RUN_COLS} FROM runs WHERE id = $1")
}

/// Which of an agent's runs to list.
#[derive(Debug, Clone, Copy)]
pub struct RunFilter<'a> {
    pub agent: &'a str,
    /// `None`: all, newest first. `Ready`: those that can be claimed at
    /// `now` (ready, or running with an expired lease), oldest first so a
    /// worker drains them in order. `Running`: leases still held at `now`.
    pub status: Option<RunStatus>,
    /// The instant leases are compared with.
    pub now: i64,
    pub limit: i64,
}

/// What [`Store::list_runs`] runs.
pub(crate) fn list_runs_statement(filter: &RunFilter<'_>) -> Statement {
    let RunFilter {
        agent,
        status,
        now,
        limit,
    } = *filter;
    let mut st = Statement::new(format!("SELECT {RUN_COLS} FROM runs"));
    let a = st.arg(agent);
    st.push(&format!(" WHERE agent = {a}"));
    let order = match status {
        None => "created_at DESC, id DESC",
        Some(RunStatus::Ready) => {
            let n = st.arg(now);
            st.push(&format!(
                " AND (status = 'ready' OR (status = 'running' AND lease_expires_at <= {n}))"
            ));
            "updated_at, id"
        }
        Some(RunStatus::Running) => {
            let n = st.arg(now);
            st.push(&format!(
                " AND status = 'running' AND lease_expires_at > {n}"
            ));
            "updated_at, id"
        }
        Some(s) => {
            let p = st.arg(s.as_str());
            st.push(&format!(" AND status = {p}"));
            "updated_at DESC, id DESC"
        }
    };
    let l = st.arg(limit);
    st.push(&format!(" ORDER BY {order} LIMIT {l}"));
    st
}

impl Store {
    pub async fn get_run(&self, id: &str) -> Result<Option<Run>> {
        let Some(row) = sql::fetch_optional_row(&self.pool, &run_by_id_sql(), (id,)).await? else {
            return Ok(None);
        };
        let mut conn = self.pool.acquire().await?;
        let ids = approval_ids_of(&mut *conn, id).await?;
        Ok(Some(run_from_row(&row, ids)?))
    }

    /// An agent's runs, as `filter` selects and orders them.
    pub async fn list_runs(&self, filter: &RunFilter<'_>) -> Result<Vec<Run>> {
        let st = list_runs_statement(filter);
        let rows = sql::fetch_rows(&self.pool, &st.sql, &st.args[..]).await?;
        let mut conn = self.pool.acquire().await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = col(r, "id")?;
            let ids = approval_ids_of(&mut *conn, &id).await?;
            out.push(run_from_row(r, ids)?);
        }
        Ok(out)
    }

    /// Moves the lease of a running run forward if `token_hash` still holds it.
    pub async fn extend_run_lease(
        &self,
        id: &str,
        token_hash: &str,
        until: i64,
        now: i64,
    ) -> Result<bool> {
        let q = "UPDATE runs SET lease_expires_at = $1, updated_at = $2 WHERE id = $3 AND status = 'running' AND lease_token_hash = $4";
        Ok(sql::execute(&self.pool, q, (until, now, id, token_hash)).await? == 1)
    }

    /// The earliest live lease expiry among this agent's runs.
    pub async fn next_lease_expiry(&self, agent: &str, now: i64) -> Result<Option<i64>> {
        let q = "SELECT MIN(lease_expires_at) FROM runs WHERE agent = $1 AND status = 'running' AND lease_expires_at > $2";
        sql::fetch_scalar(&self.pool, q, (agent, now)).await
    }

    pub async fn get_webhook(&self, agent: &str) -> Result<Option<StoredWebhook>> {
        sql::fetch_optional(&self.pool, WEBHOOK_SQL, (agent,)).await
    }

    pub async fn due_webhooks(&self, now: i64, limit: i64) -> Result<Vec<DueWebhook>> {
        let values = (WEBHOOK_KIND, now, limit);
        let due: Vec<OutboxMessage> = sql::fetch_all(&self.pool, DUE_WEBHOOKS_SQL, values).await?;
        Ok(due.into_iter().map(DueWebhook::from).collect())
    }

    pub async fn next_webhook_due(&self) -> Result<Option<i64>> {
        let values = (WEBHOOK_KIND, GAVE_UP_AT);
        sql::fetch_scalar(&self.pool, NEXT_WEBHOOK_DUE_SQL, values).await
    }

    /// Bumps `notifier.runs` for run changes made by other replicas until
    /// shutdown (PostgreSQL only; reconnects after errors).
    pub async fn relay_run_changes(
        &self,
        database_url: String,
        notifier: crate::notify::Notifier,
        shutdown: crate::shutdown::Shutdown,
    ) {
        // Anything may have changed while not listening.
        let wake_all = || notifier.runs_changed(None);
        // The payload names the agent (empty from an older replica: wake
        // every run waiter).
        let wake_agent =
            |payload: &str| notifier.runs_changed(Some(payload).filter(|a| !a.is_empty()));
        self.relay_channel(
            &database_url,
            RUN_CHANGES_CHANNEL,
            "run change",
            &shutdown,
            wake_all,
            wake_agent,
        )
        .await;
    }
}
