//! Durable runs: an agent stores its paused execution (an opaque serialized
//! state, sealed with the data encryption key) with the approvals and
//! questions it waits on; the run becomes `ready` when the approvals are all
//! settled and the questions answered or expired; a worker claims it
//! with a lease, resumes it, and pauses it again or completes it.
//!
//! Every change is one [`WriteTx`] with its audit entry: `run.paused`,
//! `run.ready`, `run.resumed`, `run.completed` (each with the SHA-256 of the
//! stored state, so a resumer can prove the state it loaded is the one the
//! audit log recorded). Webhook events (`approval.decided`, `run.ready`) are
//! queued in the outbox in the same transaction (`crate::webhooks`).

use super::{ControlPlane, FieldError, ServiceError};
use crate::approval::{Actor, Approval};
use crate::audit_event::AuditEvent;
use crate::encryption::DataKey;
use crate::run::{Outcome, Run, RunConflict, RunStatus};
use crate::store::{format_time, StoreError, WriteTx};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Prefix of a run lease token (a secret: only its SHA-256 is stored).
pub const LEASE_TOKEN_PREFIX: &str = "pliuz_rl_";
/// Prefix of a webhook signing secret (Standard Webhooks).
pub const WEBHOOK_SECRET_PREFIX: &str = "whsec_";

#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    #[error("no run with id {0}")]
    NotFound(String),
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Validation(Vec<FieldError>),
    #[error("the state is {size} bytes, over this server's limit of {limit} bytes (max_run_state_bytes)")]
    StateTooLarge { size: usize, limit: usize },
    #[error(transparent)]
    Conflict(#[from] RunConflict),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("the data encryption key is not usable: {0}")]
    Key(String),
}

impl From<StoreError> for RunsError {
    fn from(e: StoreError) -> RunsError {
        RunsError::Service(ServiceError::Store(e))
    }
}

pub type Result<T> = std::result::Result<T, RunsError>;

/// A state to store (`POST /runs`, `PUT /runs/{id}`).
#[derive(Debug, Clone)]
pub struct NewRunState {
    pub state: String,
    pub approval_ids: Vec<String>,
    pub question_ids: Vec<String>,
    pub metadata: Option<Value>,
}

/// What a successful claim hands the resumer.
#[derive(Debug)]
pub struct Claimed {
    pub run: Run,
    pub lease_token: String,
    pub state: String,
    pub approvals: Vec<Approval>,
    pub questions: Vec<crate::question::Question>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn state_context(run_id: &str) -> String {
    format!("run-state:{run_id}")
}

fn webhook_context(agent: &str) -> String {
    format!("webhook-secret:{agent}")
}

/// A heartbeat of the same lease landed in between: harmless, but the
/// caller should retry with the run as it is now.
fn concurrent(e: StoreError) -> RunsError {
    match e {
        StoreError::Conflict => RunsError::Service(ServiceError::Conflict(
            "the run's lease was extended at the same moment; retry".into(),
        )),
        e => e.into(),
    }
}

fn lease_ms(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX / 2)
}

/// Refuses the `foreign` ids given in `field`: they name no `noun` of
/// `agent` (`plural` in the hint).
fn refuse_foreign(
    field: &str,
    noun: &str,
    plural: &str,
    agent: &str,
    foreign: &[String],
) -> Result<()> {
    if foreign.is_empty() {
        return Ok(());
    }
    Err(RunsError::Validation(vec![FieldError::new(
        field,
        format!(
            "no {noun} of agent '{agent}' with id {}; pass the ids of this agent's own {plural}",
            foreign.join(", ")
        ),
    )]))
}

impl ControlPlane {
    fn data_key(&self) -> Result<Arc<DataKey>> {
        DataKey::load(
            self.settings.encryption_key.as_ref(),
            &self.settings.encryption_key_file,
        )
        .map_err(|e| RunsError::Key(e.to_string()))
    }

    fn check_state(&self, s: &NewRunState) -> Result<()> {
        let limit = self.settings.max_run_state_bytes;
        if s.state.len() > limit {
            return Err(RunsError::StateTooLarge {
                size: s.state.len(),
                limit,
            });
        }
        Ok(())
    }

    /// The approvals and questions the run waits on must exist and belong
    /// to this agent.
    async fn check_waits_on(&self, tx: &mut WriteTx, agent: &str, s: &NewRunState) -> Result<()> {
        let approvals = tx.foreign_approvals(agent, &s.approval_ids).await?;
        refuse_foreign(
            "approval_ids",
            "approval request",
            "requests",
            agent,
            &approvals,
        )?;
        let questions = tx.foreign_questions(agent, &s.question_ids).await?;
        refuse_foreign("question_ids", "question", "questions", agent, &questions)
    }

    /// Loads a run of `agent` inside a transaction (others' runs are "not found").
    async fn run_of(&self, tx: &mut WriteTx, agent: &str, id: &str) -> Result<Run> {
        match tx.get_run(id).await? {
            Some(r) if r.agent == agent => Ok(r),
            _ => Err(RunsError::NotFound(id.to_owned())),
        }
    }

    /// Commits a run change and wakes run long-polls here and on other replicas.
    async fn commit_run_change(&self, mut tx: WriteTx, agent: &str) -> Result<()> {
        tx.notify_run_change(agent).await?;
        tx.commit().await?;
        self.notifier.runs_changed(Some(agent));
        self.notifier.outbox.notify_one();
        Ok(())
    }

    /// Stores a paused run (`POST /api/v1/runs`).
    pub async fn create_run(&self, agent: &str, input: NewRunState) -> Result<Run> {
        self.check_state(&input)?;
        let key = self.data_key()?;
        let now = crate::store::now_millis();
        let id = uuid::Uuid::now_v7().to_string();
        let sha = sha256_hex(input.state.as_bytes());
        let sealed = key.seal(&state_context(&id), input.state.as_bytes());
        let mut tx = self.store.begin_write().await?;
        self.check_waits_on(&mut tx, agent, &input).await?;
        let mut run = Run {
            id,
            agent: agent.to_owned(),
            status: RunStatus::Waiting,
            approval_ids: input.approval_ids,
            question_ids: input.question_ids,
            state_sha256: sha,
            state_bytes: i64::try_from(input.state.len()).unwrap_or(i64::MAX),
            metadata: input.metadata,
            lease_token_hash: None,
            lease_expires_at: None,
            pause_count: 1,
            output_sha256: None,
            error: None,
            created_at: now,
            updated_at: now,
        };
        tx.insert_run(&run, &sealed).await?;
        self.audit_paused(&mut tx, &run).await?;
        if tx.pending_of_run(&run.id).await? == 0 {
            self.make_ready(&mut tx, &mut run, now).await?;
        }
        self.commit_run_change(tx, agent).await?;
        Ok(run)
    }

    async fn audit_paused(&self, tx: &mut WriteTx, run: &Run) -> Result<()> {
        let paused = AuditEvent::RunPaused {
            run_id: run.id.clone(),
            state_sha256: run.state_sha256.clone(),
            state_bytes: run.state_bytes,
            approval_ids: run.approval_ids.clone(),
            pause_count: run.pause_count,
            question_ids: run.question_ids.clone(),
        };
        tx.audit(Actor::Agent(run.agent.clone()), None, paused)
            .await?;
        Ok(())
    }

    /// Everything it waits on is settled: mark the run ready, audit it, queue its webhook.
    async fn make_ready(&self, tx: &mut WriteTx, run: &mut Run, now: i64) -> Result<()> {
        let prev = run.clone();
        if !run.mark_ready(now) {
            return Ok(());
        }
        tx.update_run(run, &prev).await?;
        let ready = AuditEvent::RunReady {
            run_id: run.id.clone(),
            approval_ids: run.approval_ids.clone(),
            state_sha256: run.state_sha256.clone(),
            question_ids: run.question_ids.clone(),
        };
        tx.audit(Actor::System, None, ready).await?;
        crate::service::webhooks::enqueue(
            tx,
            &run.agent,
            "run.ready",
            None,
            &format!("run.ready:{}:{}", run.id, run.pause_count),
            json!({"run_id": run.id, "agent": run.agent, "approval_ids": run.approval_ids, "question_ids": run.question_ids}),
        )
        .await?;
        Ok(())
    }

    /// Part of every approval change's transaction (`commit_change`): runs
    /// waiting on a request that just settled may become ready, and the
    /// agent's webhook hears of the decision. Returns whether a run changed.
    /// `created`: `a` was inserted by this transaction.
    pub(crate) async fn on_approval_change(
        &self,
        tx: &mut WriteTx,
        a: &Approval,
        created: bool,
    ) -> std::result::Result<bool, StoreError> {
        if !a.status.is_settled() {
            return Ok(false);
        }
        // No run can wait on a request inserted in this very transaction
        // (a run lists only requests that exist): one read saved per create.
        let runs = if created {
            vec![]
        } else {
            tx.runs_with_approval(&a.id).await?
        };
        let changed = self.ready_if_settled(tx, &runs).await?;
        let status = a.settlement.as_ref().map(|s| s.status).unwrap_or(a.status);
        crate::service::webhooks::enqueue(
            tx,
            &a.agent,
            "approval.decided",
            Some(&a.id),
            &format!("approval.decided:{}", a.id),
            json!({"approval_id": a.id, "status": status, "run_id": runs.first().map(|(id, _)| id)}),
        )
        .await?;
        if changed {
            tx.notify_run_change(&a.agent).await?;
        }
        Ok(changed)
    }

    /// Of these runs (id, status), those waiting on nothing pending any
    /// more become ready. Returns whether one did.
    async fn ready_if_settled(
        &self,
        tx: &mut WriteTx,
        runs: &[(String, String)],
    ) -> std::result::Result<bool, StoreError> {
        let now = crate::store::now_millis();
        let mut changed = false;
        for (run_id, status) in runs {
            if status != RunStatus::Waiting.as_str() || tx.pending_of_run(run_id).await? > 0 {
                continue;
            }
            if let Some(mut run) = tx.get_run(run_id).await? {
                match self.make_ready(tx, &mut run, now).await {
                    Ok(()) => changed = true,
                    Err(RunsError::Service(ServiceError::Store(e))) => return Err(e),
                    Err(e) => return Err(StoreError::Corrupt(e.to_string())),
                }
            }
        }
        Ok(changed)
    }

    /// Part of a question's answer or expiry transaction: runs waiting on
    /// it may become ready (the same check a decided approval triggers).
    pub(crate) async fn on_question_change(
        &self,
        tx: &mut WriteTx,
        q: &crate::question::Question,
    ) -> std::result::Result<bool, StoreError> {
        if q.status == crate::question::QuestionStatus::Pending {
            return Ok(false);
        }
        let runs = tx.runs_with_question(&q.id).await?;
        let changed = self.ready_if_settled(tx, &runs).await?;
        if changed {
            tx.notify_run_change(&q.agent).await?;
        }
        Ok(changed)
    }

    /// A run of this agent, or `NotFound`.
    pub async fn get_run_for(&self, agent: &str, id: &str) -> Result<Run> {
        match self.store.get_run(id).await? {
            Some(r) if r.agent == agent => Ok(r),
            _ => Err(RunsError::NotFound(id.to_owned())),
        }
    }

    /// Claims a ready run (or one whose lease expired) for `lease_seconds`.
    pub async fn claim_run(&self, agent: &str, id: &str, lease_seconds: u64) -> Result<Claimed> {
        let key = self.data_key()?;
        let token = crate::auth::new_secret(LEASE_TOKEN_PREFIX);
        let now = crate::store::now_millis();
        let mut tx = self.store.begin_write().await?;
        let mut run = self.run_of(&mut tx, agent, id).await?;
        let prev = run.clone();
        let taken_over = run.status == RunStatus::Running;
        run.claim(
            crate::auth::hash_secret(&token),
            now,
            lease_ms(lease_seconds),
            format_time,
        )?;
        let sealed = tx
            .run_state(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("run {id} has no stored state")))?;
        let plain = key
            .open(&state_context(id), &sealed)
            .map_err(|e| StoreError::Corrupt(format!("run {id}: {e}")))?;
        if sha256_hex(&plain) != run.state_sha256 {
            return Err(StoreError::Corrupt(format!(
                "run {id}: the stored state does not match its recorded SHA-256"
            ))
            .into());
        }
        let state = String::from_utf8(plain)
            .map_err(|_| StoreError::Corrupt(format!("run {id}: the state is not UTF-8")))?;
        let mut approvals = Vec::with_capacity(run.approval_ids.len());
        for aid in &run.approval_ids {
            if let Some(a) = tx.get_approval(aid).await? {
                approvals.push(a);
            }
        }
        let mut questions = Vec::with_capacity(run.question_ids.len());
        for qid in &run.question_ids {
            if let Some(q) = tx.get_question(qid).await? {
                questions.push(q);
            }
        }
        tx.update_run(&run, &prev).await.map_err(|e| match e {
            // Its holder extended the lease at this very moment.
            StoreError::Conflict => RunsError::Conflict(RunConflict::Claimed {
                id: id.to_owned(),
                until: format_time(now),
            }),
            e => e.into(),
        })?;
        let resumed = AuditEvent::RunResumed {
            run_id: run.id.clone(),
            state_sha256: run.state_sha256.clone(),
            lease_expires_at: run.lease_expires_at.map(format_time),
            after_expired_lease: taken_over,
        };
        tx.audit(Actor::Agent(agent.to_owned()), None, resumed)
            .await?;
        self.commit_run_change(tx, agent).await?;
        Ok(Claimed {
            run,
            lease_token: token,
            state,
            approvals,
            questions,
        })
    }

    /// Extends the caller's lease. Only the lease moves (no state change),
    /// so this is a compare-and-set on the token rather than an audited write.
    pub async fn heartbeat_run(
        &self,
        agent: &str,
        id: &str,
        lease_token: &str,
        lease_seconds: u64,
    ) -> Result<Run> {
        let mut run = self.get_run_for(agent, id).await?;
        let hash = crate::auth::hash_secret(lease_token);
        let now = crate::store::now_millis();
        run.heartbeat(&hash, now, lease_ms(lease_seconds))?;
        let until = run.lease_expires_at.unwrap_or(now);
        if !self.store.extend_run_lease(id, &hash, until, now).await? {
            // Changed between the read and the update: re-read to say why.
            let run = self.get_run_for(agent, id).await?;
            run.check_lease(&hash)?;
            return Err(RunConflict::LeaseLost { id: id.to_owned() }.into());
        }
        Ok(run)
    }

    /// The lease holder stores a new state: the run waits again (same id).
    pub async fn repause_run(
        &self,
        agent: &str,
        id: &str,
        lease_token: &str,
        input: NewRunState,
    ) -> Result<Run> {
        self.check_state(&input)?;
        let key = self.data_key()?;
        let now = crate::store::now_millis();
        let sha = sha256_hex(input.state.as_bytes());
        let sealed = key.seal(&state_context(id), input.state.as_bytes());
        let hash = crate::auth::hash_secret(lease_token);
        let mut tx = self.store.begin_write().await?;
        let mut run = self.run_of(&mut tx, agent, id).await?;
        let prev = run.clone();
        run.check_lease(&hash)?;
        self.check_waits_on(&mut tx, agent, &input).await?;
        run.repause(
            &hash,
            sha,
            i64::try_from(input.state.len()).unwrap_or(i64::MAX),
            input.approval_ids,
            input.question_ids,
            false,
            now,
        )?;
        if input.metadata.is_some() {
            run.metadata = input.metadata;
        }
        tx.update_run(&run, &prev).await.map_err(concurrent)?;
        tx.set_run_approvals(id, &run.approval_ids).await?;
        tx.set_run_questions(id, &run.question_ids).await?;
        tx.set_run_state(id, Some(&sealed)).await?;
        self.audit_paused(&mut tx, &run).await?;
        if tx.pending_of_run(id).await? == 0 {
            self.make_ready(&mut tx, &mut run, now).await?;
        }
        self.commit_run_change(tx, agent).await?;
        Ok(run)
    }

    /// The lease holder finishes the run; its stored state is deleted (it
    /// holds the whole conversation and nobody may resume it any more).
    pub async fn complete_run(
        &self,
        agent: &str,
        id: &str,
        lease_token: &str,
        outcome: Outcome,
        output_sha256: Option<String>,
        error: Option<String>,
    ) -> Result<Run> {
        let hash = crate::auth::hash_secret(lease_token);
        let now = crate::store::now_millis();
        let mut tx = self.store.begin_write().await?;
        let mut run = self.run_of(&mut tx, agent, id).await?;
        let prev = run.clone();
        run.complete(&hash, outcome, output_sha256, error, now)?;
        tx.update_run(&run, &prev).await.map_err(concurrent)?;
        tx.set_run_state(id, None).await?;
        let completed = AuditEvent::RunCompleted {
            run_id: run.id.clone(),
            outcome: run.status,
            state_sha256: run.state_sha256.clone(),
            output_sha256: run.output_sha256.clone(),
            error: run.error.clone(),
        };
        tx.audit(Actor::Agent(agent.to_owned()), None, completed)
            .await?;
        self.commit_run_change(tx, agent).await?;
        Ok(run)
    }

    /// Sets (or replaces) an agent's webhook endpoint with a new signing
    /// secret, which is returned once and stored only sealed.
    pub async fn set_agent_webhook(&self, actor: &Actor, agent: &str, url: &str) -> Result<String> {
        crate::service::webhooks::check_url(url)
            .map_err(|m| RunsError::Validation(vec![FieldError::new("webhook_url", m)]))?;
        let key = self.data_key()?;
        let secret = crate::service::webhooks::new_secret();
        let sealed = key.seal(&webhook_context(agent), secret.as_bytes());
        let mut tx = self.store.begin_write().await?;
        if !tx.agent_exists(agent).await? {
            return Err(ServiceError::NoSuch(format!("active agent '{agent}'")).into());
        }
        let replaced = tx.get_webhook_tx(agent).await?.is_some();
        tx.set_webhook(agent, url, &sealed).await?;
        let webhook_set = AuditEvent::AgentWebhookSet {
            name: agent.to_owned(),
            url: url.to_owned(),
            secret_rotated: replaced,
        };
        tx.audit(actor, None, webhook_set).await?;
        tx.commit().await?;
        Ok(secret)
    }

    /// An agent's webhook URL, if it has one (the secret stays sealed).
    pub async fn agent_webhook_url(&self, agent: &str) -> super::Result<Option<String>> {
        Ok(self.store.get_webhook(agent).await?.map(|w| w.url))
    }

    /// A new signing secret for an agent's webhook, at the same URL; the
    /// old secret stops signing at once.
    pub async fn rotate_agent_webhook_secret(&self, actor: &Actor, agent: &str) -> Result<String> {
        let Some(url) = self.agent_webhook_url(agent).await? else {
            return Err(ServiceError::NoSuch(format!(
                "webhook for agent '{agent}'; set its URL first"
            ))
            .into());
        };
        self.set_agent_webhook(actor, agent, &url).await
    }

    /// An agent's webhook URL and signing secret (opened), if it has one.
    pub async fn agent_webhook(&self, agent: &str) -> Result<Option<(String, String)>> {
        let Some(w) = self.store.get_webhook(agent).await? else {
            return Ok(None);
        };
        let key = self.data_key()?;
        let secret = key
            .open(&webhook_context(&w.agent), &w.sealed_secret)
            .map_err(|e| StoreError::Corrupt(format!("webhook secret of {agent}: {e}")))?;
        let secret = String::from_utf8(secret)
            .map_err(|_| StoreError::Corrupt(format!("webhook secret of {agent} is not UTF-8")))?;
        Ok(Some((w.url, secret)))
    }
}
