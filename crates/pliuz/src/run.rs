//! The durable run state machine (pure, no I/O).
//!
//! A run is an agent's paused execution: an opaque serialized state (stored
//! encrypted by `service::runs`) and the approvals and questions it waits on.
//!
//! ```text
//! waiting --(every approval settled, every question answered or expired)--> ready --claim--> running
//! running --PUT (paused again)--> waiting | ready
//! running --complete--> completed | failed
//! running, lease past its expiry --claim by anyone of the agent--> running
//! ```
//!
//! A lease past its expiry stays usable by its holder (heartbeat, PUT,
//! complete) until someone else claims the run: only one token is ever
//! current, so two holders can never both be accepted.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Waiting,
    Ready,
    Running,
    Completed,
    Failed,
}

crate::enum_names::names!(RunStatus {
    Waiting => "waiting",
    Ready => "ready",
    Running => "running",
    Completed => "completed",
    Failed => "failed",
});

impl RunStatus {
    pub fn is_finished(self) -> bool {
        matches!(self, RunStatus::Completed | RunStatus::Failed)
    }
}

/// Why a run operation is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunConflict {
    #[error("run {id} is being resumed by another worker; its lease runs until {until}")]
    Claimed { id: String, until: String },
    #[error("run {id} is still waiting for approvals to be decided or questions to be answered; wait for it to become ready (GET /api/v1/runs/{id}?wait=60)")]
    NotReady { id: String },
    #[error("run {id} is already {status}; it cannot be resumed or changed again")]
    Finished { id: String, status: RunStatus },
    #[error("the lease_token is not the current lease of run {id} (it expired and the run was claimed by another worker, or the run was paused or completed since); stop working on this run")]
    LeaseLost { id: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Failed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: String,
    pub agent: String,
    /// As stored; see [`Run::effective_status`] for what callers see.
    pub status: RunStatus,
    pub approval_ids: Vec<String>,
    /// Questions ("human as a tool") the run waits on as well.
    pub question_ids: Vec<String>,
    pub state_sha256: String,
    pub state_bytes: i64,
    pub metadata: Option<Value>,
    pub lease_token_hash: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub pause_count: i64,
    pub output_sha256: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Run {
    /// A running run whose lease ran out is claimable again: callers see it
    /// as `ready`.
    pub fn effective_status(&self, now: i64) -> RunStatus {
        match (self.status, self.lease_expires_at) {
            (RunStatus::Running, Some(until)) if until <= now => RunStatus::Ready,
            (s, _) => s,
        }
    }

    /// Takes the lease for `token_hash` until `now + lease_ms`.
    pub fn claim(
        &mut self,
        token_hash: String,
        now: i64,
        lease_ms: i64,
        format_time: impl Fn(i64) -> String,
    ) -> Result<(), RunConflict> {
        match self.effective_status(now) {
            RunStatus::Waiting => Err(RunConflict::NotReady {
                id: self.id.clone(),
            }),
            RunStatus::Running => Err(RunConflict::Claimed {
                id: self.id.clone(),
                until: format_time(self.lease_expires_at.unwrap_or(now)),
            }),
            s @ (RunStatus::Completed | RunStatus::Failed) => Err(RunConflict::Finished {
                id: self.id.clone(),
                status: s,
            }),
            RunStatus::Ready => {
                self.status = RunStatus::Running;
                self.lease_token_hash = Some(token_hash);
                self.lease_expires_at = Some(now.saturating_add(lease_ms));
                self.updated_at = now;
                Ok(())
            }
        }
    }

    /// Checks that `token_hash` is the current lease.
    pub fn check_lease(&self, token_hash: &str) -> Result<(), RunConflict> {
        if self.status.is_finished() {
            return Err(RunConflict::Finished {
                id: self.id.clone(),
                status: self.status,
            });
        }
        if self.status == RunStatus::Running && self.lease_token_hash.as_deref() == Some(token_hash)
        {
            Ok(())
        } else {
            Err(RunConflict::LeaseLost {
                id: self.id.clone(),
            })
        }
    }

    pub fn heartbeat(
        &mut self,
        token_hash: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<(), RunConflict> {
        self.check_lease(token_hash)?;
        self.lease_expires_at = Some(now.saturating_add(lease_ms));
        self.updated_at = now;
        Ok(())
    }

    /// Paused again (by the lease holder) with a new state, approvals and questions.
    #[allow(clippy::too_many_arguments)]
    pub fn repause(
        &mut self,
        token_hash: &str,
        state_sha256: String,
        state_bytes: i64,
        approval_ids: Vec<String>,
        question_ids: Vec<String>,
        all_settled: bool,
        now: i64,
    ) -> Result<(), RunConflict> {
        self.check_lease(token_hash)?;
        self.status = if all_settled {
            RunStatus::Ready
        } else {
            RunStatus::Waiting
        };
        self.state_sha256 = state_sha256;
        self.state_bytes = state_bytes;
        self.approval_ids = approval_ids;
        self.question_ids = question_ids;
        self.lease_token_hash = None;
        self.lease_expires_at = None;
        self.pause_count += 1;
        self.updated_at = now;
        Ok(())
    }

    pub fn complete(
        &mut self,
        token_hash: &str,
        outcome: Outcome,
        output_sha256: Option<String>,
        error: Option<String>,
        now: i64,
    ) -> Result<(), RunConflict> {
        self.check_lease(token_hash)?;
        self.status = match outcome {
            Outcome::Completed => RunStatus::Completed,
            Outcome::Failed => RunStatus::Failed,
        };
        self.output_sha256 = output_sha256;
        self.error = error;
        self.lease_token_hash = None;
        self.lease_expires_at = None;
        self.updated_at = now;
        Ok(())
    }

    /// Everything it waits on was settled: the run may be resumed.
    pub fn mark_ready(&mut self, now: i64) -> bool {
        if self.status == RunStatus::Waiting {
            self.status = RunStatus::Ready;
            self.updated_at = now;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(status: RunStatus) -> Run {
        Run {
            id: "r".into(),
            agent: "a".into(),
            status,
            approval_ids: vec![],
            question_ids: vec![],
            state_sha256: "00".into(),
            state_bytes: 1,
            metadata: None,
            lease_token_hash: None,
            lease_expires_at: None,
            pause_count: 1,
            output_sha256: None,
            error: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn one_lease_at_a_time_and_expired_leases_are_claimable() {
        let mut r = run(RunStatus::Ready);
        r.claim("t1".into(), 100, 50, |t| t.to_string()).unwrap();
        assert_eq!(r.effective_status(120), RunStatus::Running);
        assert!(matches!(
            r.claim("t2".into(), 120, 50, |t| t.to_string()),
            Err(RunConflict::Claimed { .. })
        ));
        assert_eq!(r.effective_status(150), RunStatus::Ready);
        r.claim("t2".into(), 150, 50, |t| t.to_string()).unwrap();
        assert!(matches!(
            r.heartbeat("t1", 160, 50),
            Err(RunConflict::LeaseLost { .. })
        ));
        r.heartbeat("t2", 160, 50).unwrap();
        r.complete("t2", Outcome::Completed, None, None, 170)
            .unwrap();
        assert!(matches!(
            r.claim("t3".into(), 180, 50, |t| t.to_string()),
            Err(RunConflict::Finished { .. })
        ));
    }

    #[test]
    fn waiting_cannot_be_claimed_and_repause_releases_the_lease() {
        let mut r = run(RunStatus::Waiting);
        assert!(matches!(
            r.claim("t".into(), 1, 5, |t| t.to_string()),
            Err(RunConflict::NotReady { .. })
        ));
        assert!(r.mark_ready(2));
        r.claim("t".into(), 3, 5, |t| t.to_string()).unwrap();
        r.repause("t", "11".into(), 2, vec!["x".into()], vec![], false, 4)
            .unwrap();
        assert_eq!(r.status, RunStatus::Waiting);
        assert_eq!(r.pause_count, 2);
        assert!(r.lease_token_hash.is_none());
        assert!(matches!(
            r.heartbeat("t", 5, 5),
            Err(RunConflict::LeaseLost { .. })
        ));
    }
}
