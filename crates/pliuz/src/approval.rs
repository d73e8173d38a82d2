//! The approval state machine: a gated tool call waiting for a human (or a
//! policy) to decide. Pure: no I/O, no clock — callers pass `now`.
//!
//! ```text
//! pending ──► approved ──► executing ──► executed
//!    ├──────► rejected
//!    ├──────► responded
//!    ├──────► expired
//!    └──────► cancelled
//! ```
//!
//! `approved → executing` is the execution claim: it succeeds once, for one
//! caller, and only before `execute_before`. That caller alone may run the
//! tool and report `executed`. A request left in `executing` (the caller
//! crashed or its report never arrived) has an unknown outcome: nothing moves
//! it on automatically, so the tool is never run a second time by accident.
//!
//! `responded` is a person answering in the tool's place (where the policy
//! allows `respond`): the tool never runs, and the agent's model gets the
//! person's message instead of the tool's result.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// Milliseconds since the Unix epoch; the store keeps times as integers so
/// SQLite and PostgreSQL agree exactly.
pub type Millis = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Approved,
    Rejected,
    Expired,
    Cancelled,
    Executing,
    Executed,
    Responded,
}

crate::enum_names::names!(Status {
    Pending => "pending",
    Approved => "approved",
    Rejected => "rejected",
    Responded => "responded",
    Expired => "expired",
    Cancelled => "cancelled",
    Executing => "executing",
    Executed => "executed",
});

impl Status {
    /// Settled means a human or the system has answered: nothing more will
    /// change it except the execution claim and report on `approved`.
    pub fn is_settled(self) -> bool {
        self != Status::Pending
    }
}

/// What a decider asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    Approve,
    Reject,
    Edit,
    /// Answer in the tool's place: the tool does not run and the model gets
    /// the decider's message (the `reason`) as the call's result. Only where
    /// the policy lists it in `decisions`.
    Respond,
}

crate::enum_names::names!(DecisionKind {
    Approve => "approve",
    Reject => "reject",
    Edit => "edit",
    Respond => "respond",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionOutcome {
    Success,
    Error,
}

crate::enum_names::names!(ExecutionOutcome {
    Success => "success",
    Error => "error",
});

/// Who acted, as written in the audit log and the API: `user:EMAIL`,
/// `agent:NAME`, `policy:NAME` or `system`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    User(String),
    Agent(String),
    Policy(String),
    System,
}

impl Actor {
    pub fn parse(s: &str) -> Option<Actor> {
        if s == "system" {
            return Some(Actor::System);
        }
        let (kind, name) = s.split_once(':')?;
        match kind {
            "user" => Some(Actor::User(name.to_owned())),
            "agent" => Some(Actor::Agent(name.to_owned())),
            "policy" => Some(Actor::Policy(name.to_owned())),
            _ => None,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User(e) => write!(f, "user:{e}"),
            Actor::Agent(n) => write!(f, "agent:{n}"),
            Actor::Policy(n) => write!(f, "policy:{n}"),
            Actor::System => f.write_str("system"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Vote {
    pub voter: String,
    pub at: Millis,
}

/// A time as the API shows it (RFC 3339, UTC, milliseconds), for messages.
fn rfc3339(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The right to run the tool, handed out once (`approved → executing`).
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub claim_id: String,
    pub claimed_at: Millis,
}

/// The longest `claim_id` a caller may choose.
pub const MAX_CLAIM_ID_CHARS: usize = 100;

/// A caller-chosen claim id: 1-100 of `A-Z a-z 0-9 - _ .`, so it is safe in
/// logs and URLs and a retried claim can present the same one.
pub fn is_valid_claim_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= MAX_CLAIM_ID_CHARS
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub outcome: ExecutionOutcome,
    pub latency_ms: Option<i64>,
    pub output_excerpt: Option<String>,
    pub reported_at: Millis,
}

/// The settled outcome of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    pub status: Status,
    pub by: String,
    pub reason: Option<String>,
    pub at: Millis,
}

/// The tool call an agent asks to make, as it asked: the tool, its
/// arguments and what came with them. Fixed once the request is opened
/// (an edit proposes other arguments beside it, never over it). The
/// policy is not part of it: the agent may name one, the request keeps the
/// one resolved. Serialised as the API's fields (`docs/api.md`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RequestedCall {
    pub tool_name: String,
    pub tool_args: Map<String, Value>,
    #[schema(value_type = Option<Object>)]
    pub tool_schema: Option<Value>,
    // Who the call is for, normalised when the request is opened
    // (`crate::originator`); not `///`, which the API document would show.
    pub originator: Option<String>,
    pub call_id: Option<String>,
    pub session_id: Option<String>,
    #[schema(value_type = Option<Vec<serde_json::Value>>)]
    pub context_messages: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub client_metadata: Option<Value>,
    pub idempotency_key: Option<String>,
}

/// One gated tool call. Field names follow the API (`docs/api.md`).
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    pub id: String,
    pub status: Status,
    pub call: RequestedCall,
    /// Arguments an editor proposed; the ones approvals count towards.
    pub proposed_args: Option<Map<String, Value>>,
    /// Set on approval: exactly what the tool must run with.
    pub final_args: Option<Map<String, Value>>,
    /// The policy in force for the request, resolved on create
    /// (`policy::PolicySet::resolve`: the one named, else by tool).
    pub policy: String,
    pub agent: String,
    pub args_digest: String,
    pub required_approvals: u32,
    pub allowed_decisions: Vec<DecisionKind>,
    pub votes: Vec<Vote>,
    pub settlement: Option<Settlement>,
    pub edited: bool,
    /// How long after approval the tool may still be started (the policy's
    /// `execute_within`, fixed when the request was created).
    pub execute_within_ms: i64,
    /// Set by the execution claim.
    pub claim: Option<Claim>,
    pub execution: Option<Execution>,
    pub created_at: Millis,
    pub expires_at: Millis,
    /// When nobody had decided in time and the policy's `escalate_to` were
    /// brought in (they may decide from then on).
    pub escalated_at: Option<Millis>,
    /// Optimistic-concurrency counter: the store refuses to save over a
    /// newer version, so two racing deciders cannot both win.
    pub version: i64,
}

/// Why a transition was refused. Each message says what state the request is
/// in, so a 409 tells the caller what happened.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransitionError {
    #[error("approval {id} is already {status}; only pending requests can be {action}")]
    NotPending {
        id: String,
        status: Status,
        action: &'static str,
    },
    #[error("approval {id} is {status}; only an approved request can be claimed for execution")]
    NotApproved { id: String, status: Status },
    #[error("approval {id} was already claimed for execution at {claimed_at} and no outcome was reported: the outcome is unknown — check whether the action happened before retrying it as a new request")]
    ExecutionClaimed { id: String, claimed_at: String },
    #[error("approval {id} was already executed (outcome {outcome}); it is not run again")]
    AlreadyExecuted { id: String, outcome: &'static str },
    #[error("approval {id} can no longer be executed: its execution window closed at {execute_before} (policy execute_within); ask for a new approval")]
    ExecutionExpired { id: String, execute_before: String },
    #[error("approval {id} was never claimed for execution: claim it first with outcome 'started', run the tool, then report with the claim_id the claim returned")]
    NotClaimed { id: String },
    #[error("approval {id} is claimed by another caller: this report's claim_id does not match the claim; only the caller holding the claim reports the outcome")]
    ClaimMismatch { id: String },
    #[error("approval {id} is {status}; its execution cannot be reported")]
    NotReportable { id: String, status: Status },
    #[error("approval {id} was already reported as {outcome}; a report cannot be changed")]
    ReportConflict { id: String, outcome: &'static str },
    #[error(
        "{voter} has already approved approval {id}; each person counts once towards the quorum"
    )]
    AlreadyVoted { id: String, voter: String },
    #[error("policy {policy} does not allow the decision '{decision}' (allowed: {allowed})")]
    DecisionNotAllowed {
        policy: String,
        decision: DecisionKind,
        allowed: String,
    },
    #[error("the originator of a request cannot approve or edit it")]
    OriginatorCannotApprove,
    #[error("final_args is required for an edit")]
    EditNeedsArgs,
    #[error("final_args is only accepted with decision 'edit'")]
    ArgsWithoutEdit,
}

/// The longest reason a decision or a cancellation may carry
/// (docs/limits.md), in characters.
pub const MAX_REASON_CHARS: usize = 2000;

/// Something someone asks to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Decide(DecisionKind),
    Cancel,
}

/// What the asker's account entitles them to, as only the service knows it
/// (the policy's approvers, the user's role).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    /// An approver of the request's policy.
    pub approver: bool,
    /// Named by the policy's `escalate_to`: may decide once the request
    /// is escalated, not before.
    pub escalation_approver: bool,
    /// An enabled admin.
    pub admin: bool,
}

/// Why an [`Action`] is refused: the one set of rules the API, the inbox and
/// Slack all ask ([`Approval::allows`], [`check_reason`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("agent keys cannot decide on approvals; a human approver must, with a user token or in the inbox")]
    AgentCannotDecide,
    #[error("{who} is not an approver of policy '{policy}'")]
    NotApprover { who: String, policy: String },
    #[error("only the requesting agent or an admin can cancel a request")]
    MayNotCancel,
    #[error("a reason is required to reject: say why, the agent's model receives it")]
    ReasonRequired,
    #[error("a message is required to respond (in 'reason'): the agent's model receives it instead of the tool's result")]
    MessageRequired,
    #[error("the reason must be at most {max} characters")]
    ReasonTooLong { max: usize },
    /// The request's own rules: its state, its policy's decisions, nobody
    /// approving their own request or approving twice.
    #[error(transparent)]
    Transition(#[from] TransitionError),
}

/// The rules on a reason, the same wherever it is given: required to
/// reject, required to respond (it is the message), at most
/// [`MAX_REASON_CHARS`]. Blank counts as none.
pub fn check_reason(action: Action, reason: Option<&str>) -> Result<(), Refusal> {
    let reason = reason.filter(|r| !r.trim().is_empty());
    match reason {
        None if action == Action::Decide(DecisionKind::Reject) => Err(Refusal::ReasonRequired),
        None if action == Action::Decide(DecisionKind::Respond) => Err(Refusal::MessageRequired),
        Some(r) if r.chars().count() > MAX_REASON_CHARS => Err(Refusal::ReasonTooLong {
            max: MAX_REASON_CHARS,
        }),
        _ => Ok(()),
    }
}

/// A decision by a person entitled to make it (authorisation is checked by
/// the caller against the policy; the state machine checks the rest).
#[derive(Debug, Clone)]
pub struct Decision {
    pub kind: DecisionKind,
    pub by: Actor,
    pub reason: Option<String>,
    pub final_args: Option<Map<String, Value>>,
}

/// What a decision did, for the audit log and notifications.
#[derive(Debug, Clone, PartialEq)]
pub enum DecisionEffect {
    /// Counted towards the quorum; still pending.
    Voted { approvals: u32, required: u32 },
    /// Settled the request.
    Settled(Status),
}

impl Approval {
    fn ensure_pending(&self, action: &'static str) -> Result<(), TransitionError> {
        if self.status == Status::Pending {
            Ok(())
        } else {
            Err(TransitionError::NotPending {
                id: self.id.clone(),
                status: self.status,
                action,
            })
        }
    }

    /// The arguments approvals currently count towards.
    pub fn args_under_review(&self) -> &Map<String, Value> {
        self.proposed_args.as_ref().unwrap_or(&self.call.tool_args)
    }

    /// Whether `actor` originated this request (and so may not approve it).
    pub fn is_originated_by(&self, actor: &Actor) -> bool {
        match (actor, &self.call.originator) {
            (Actor::User(email), Some(orig)) => crate::originator::names_person(orig, email),
            (Actor::Agent(name), _) => *name == self.agent,
            _ => false,
        }
    }

    /// Whether `actor` may do `action` on this request now. Deciding: a
    /// person (not an agent) who approves for the policy (`standing`), on a
    /// pending request whose policy allows the kind, nobody approving (or
    /// editing) their own request, and nobody approving twice. Cancelling:
    /// the requesting agent or an admin, while pending. The API, the inbox
    /// (to offer only the buttons that work) and Slack ask this; `decide`
    /// and `cancel` apply the request's part again under the write lock.
    /// Reasons are [`check_reason`]'s.
    pub fn allows(&self, actor: &Actor, standing: Standing, action: Action) -> Result<(), Refusal> {
        match action {
            Action::Decide(kind) => {
                let who = match actor {
                    Actor::User(email) => email,
                    _ => return Err(Refusal::AgentCannotDecide),
                };
                if !self.may_approve_with(standing) {
                    return Err(Refusal::NotApprover {
                        who: who.clone(),
                        policy: self.policy.clone(),
                    });
                }
                Ok(self.permitted(actor, kind)?)
            }
            Action::Cancel => {
                let requester = matches!(actor, Actor::Agent(name) if *name == self.agent);
                if !requester && !standing.admin {
                    return Err(Refusal::MayNotCancel);
                }
                Ok(self.ensure_pending("cancelled")?)
            }
        }
    }

    /// Whether this standing makes its holder one of the request's deciders:
    /// an approver of the policy, or one of its `escalate_to` once the
    /// request was escalated.
    pub fn may_approve_with(&self, standing: Standing) -> bool {
        standing.approver || (standing.escalation_approver && self.escalated_at.is_some())
    }

    /// Nobody decided in time: the policy's `escalate_to` may decide from
    /// now on. `Ok(false)` when it already was escalated.
    pub fn escalate(&mut self, now: Millis) -> Result<bool, TransitionError> {
        self.ensure_pending("escalated")?;
        if self.escalated_at.is_some() {
            return Ok(false);
        }
        self.escalated_at = Some(now);
        Ok(true)
    }

    /// The request's own rules for a decision of `kind` by `actor`: it is
    /// pending, its policy allows the kind, nobody approves (or edits) their
    /// own request, and nobody approves twice (part of [`Approval::allows`]).
    pub fn permitted(&self, actor: &Actor, kind: DecisionKind) -> Result<(), TransitionError> {
        self.ensure_pending("decided")?;
        self.decision_allowed(kind)?;
        self.actor_may(actor, kind)
    }

    /// Whether `actor` has already approved this request.
    pub fn has_voted(&self, actor: &Actor) -> bool {
        let voter = actor.to_string();
        self.votes.iter().any(|v| v.voter == voter)
    }

    fn decision_allowed(&self, kind: DecisionKind) -> Result<(), TransitionError> {
        if self.allowed_decisions.contains(&kind) {
            return Ok(());
        }
        Err(TransitionError::DecisionNotAllowed {
            policy: self.policy.clone(),
            decision: kind,
            allowed: self
                .allowed_decisions
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    fn actor_may(&self, actor: &Actor, kind: DecisionKind) -> Result<(), TransitionError> {
        // Rejecting or responding runs nothing, so the originator may do it.
        let runs_tool = matches!(kind, DecisionKind::Approve | DecisionKind::Edit);
        if runs_tool && self.is_originated_by(actor) {
            return Err(TransitionError::OriginatorCannotApprove);
        }
        if kind == DecisionKind::Approve && self.has_voted(actor) {
            return Err(TransitionError::AlreadyVoted {
                id: self.id.clone(),
                voter: actor.to_string(),
            });
        }
        Ok(())
    }

    /// Apply a human (or policy) decision.
    pub fn decide(
        &mut self,
        decision: Decision,
        now: Millis,
    ) -> Result<DecisionEffect, TransitionError> {
        self.ensure_pending("decided")?;
        self.decision_allowed(decision.kind)?;
        match decision.kind {
            DecisionKind::Edit if decision.final_args.is_none() => {
                return Err(TransitionError::EditNeedsArgs)
            }
            DecisionKind::Approve | DecisionKind::Reject | DecisionKind::Respond
                if decision.final_args.is_some() =>
            {
                return Err(TransitionError::ArgsWithoutEdit)
            }
            _ => {}
        }
        self.actor_may(&decision.by, decision.kind)?;
        let voter = decision.by.to_string();
        match decision.kind {
            DecisionKind::Reject => {
                self.settle(Status::Rejected, voter, decision.reason, now);
                Ok(DecisionEffect::Settled(Status::Rejected))
            }
            // One person's answer settles it, like a rejection: the tool
            // will not run, so there is nothing for a quorum to guard.
            DecisionKind::Respond => {
                self.settle(Status::Responded, voter, decision.reason, now);
                Ok(DecisionEffect::Settled(Status::Responded))
            }
            DecisionKind::Approve => {
                self.votes.push(Vote {
                    voter: voter.clone(),
                    at: now,
                });
                Ok(self.settle_if_quorum(voter, decision.reason, now))
            }
            DecisionKind::Edit => {
                // Earlier approvals were given to other arguments: they no
                // longer count. The editor approves what they wrote.
                self.votes.clear();
                self.votes.push(Vote {
                    voter: voter.clone(),
                    at: now,
                });
                self.proposed_args = decision.final_args;
                self.edited = true;
                Ok(self.settle_if_quorum(voter, decision.reason, now))
            }
        }
    }

    fn settle_if_quorum(
        &mut self,
        by: String,
        reason: Option<String>,
        now: Millis,
    ) -> DecisionEffect {
        let approvals = self.votes.len() as u32;
        if approvals >= self.required_approvals {
            self.final_args = Some(self.args_under_review().clone());
            self.settle(Status::Approved, by, reason, now);
            DecisionEffect::Settled(Status::Approved)
        } else {
            DecisionEffect::Voted {
                approvals,
                required: self.required_approvals,
            }
        }
    }

    fn settle(&mut self, status: Status, by: String, reason: Option<String>, now: Millis) {
        self.status = status;
        self.settlement = Some(Settlement {
            status,
            by,
            reason,
            at: now,
        });
    }

    /// A policy's `auto_approve` / `auto_reject` condition held at creation.
    pub fn auto_decide(&mut self, approve: bool, reason: String, now: Millis) {
        let by = Actor::Policy(self.policy.clone()).to_string();
        if approve {
            self.final_args = Some(self.call.tool_args.clone());
            self.settle(Status::Approved, by, Some(reason), now);
        } else {
            self.settle(Status::Rejected, by, Some(reason), now);
        }
    }

    /// The deadline passed with no decision.
    pub fn expire(&mut self, now: Millis) -> Result<(), TransitionError> {
        self.ensure_pending("expired")?;
        self.settle(
            Status::Expired,
            Actor::System.to_string(),
            Some("no decision before the request expired".to_owned()),
            now,
        );
        Ok(())
    }

    /// The agent withdrew the request.
    pub fn cancel(
        &mut self,
        by: Actor,
        reason: Option<String>,
        now: Millis,
    ) -> Result<(), TransitionError> {
        self.ensure_pending("cancelled")?;
        self.settle(Status::Cancelled, by.to_string(), reason, now);
        Ok(())
    }

    /// When the tool may last be started: decision time + `execute_within`
    /// (only for requests that were approved).
    pub fn execute_before(&self) -> Option<Millis> {
        match (&self.settlement, self.status) {
            (Some(s), Status::Approved | Status::Executing | Status::Executed)
                if s.status == Status::Approved =>
            {
                Some(s.at.saturating_add(self.execute_within_ms))
            }
            _ => None,
        }
    }

    /// The execution claim: the one caller that gets it may run the tool.
    /// A caller repeating its own claim (same `claim_id`, e.g. a retry after
    /// a lost answer) gets `Ok(false)`: nothing changed, it holds the claim.
    pub fn claim_execution(
        &mut self,
        claim_id: &str,
        now: Millis,
    ) -> Result<bool, TransitionError> {
        match (self.status, &self.claim) {
            (Status::Executing, Some(c)) if c.claim_id == claim_id => return Ok(false),
            (Status::Executing, c) => {
                return Err(TransitionError::ExecutionClaimed {
                    id: self.id.clone(),
                    claimed_at: c
                        .as_ref()
                        .map(|c| rfc3339(c.claimed_at))
                        .unwrap_or_default(),
                })
            }
            (Status::Executed, _) => {
                return Err(TransitionError::AlreadyExecuted {
                    id: self.id.clone(),
                    outcome: self.execution_outcome_str(),
                })
            }
            (Status::Approved, _) => {}
            (status, _) => {
                return Err(TransitionError::NotApproved {
                    id: self.id.clone(),
                    status,
                })
            }
        }
        if let Some(before) = self.execute_before() {
            if now >= before {
                return Err(TransitionError::ExecutionExpired {
                    id: self.id.clone(),
                    execute_before: rfc3339(before),
                });
            }
        }
        self.status = Status::Executing;
        self.claim = Some(Claim {
            claim_id: claim_id.to_owned(),
            claimed_at: now,
        });
        Ok(true)
    }

    fn execution_outcome_str(&self) -> &'static str {
        self.execution
            .as_ref()
            .map(|e| e.outcome.as_str())
            .unwrap_or("unknown")
    }

    /// The claim holder reports how running the tool went. Repeating the
    /// same report (same claim, same outcome: a retry after a lost answer)
    /// gives `Ok(false)` and changes nothing.
    pub fn report_execution(
        &mut self,
        claim_id: Option<&str>,
        execution: Execution,
        now: Millis,
    ) -> Result<bool, TransitionError> {
        let holds_claim =
            matches!((&self.claim, claim_id), (Some(c), Some(id)) if c.claim_id == id);
        match self.status {
            Status::Executing if holds_claim => {
                self.status = Status::Executed;
                self.execution = Some(execution);
                Ok(true)
            }
            Status::Executing => Err(TransitionError::ClaimMismatch {
                id: self.id.clone(),
            }),
            Status::Executed if holds_claim => {
                if self.execution.as_ref().map(|e| e.outcome) == Some(execution.outcome) {
                    Ok(false)
                } else {
                    Err(TransitionError::ReportConflict {
                        id: self.id.clone(),
                        outcome: self.execution_outcome_str(),
                    })
                }
            }
            Status::Executed => Err(TransitionError::ClaimMismatch {
                id: self.id.clone(),
            }),
            Status::Approved => match self.execute_before() {
                Some(before) if now >= before => Err(TransitionError::ExecutionExpired {
                    id: self.id.clone(),
                    execute_before: rfc3339(before),
                }),
                _ => Err(TransitionError::NotClaimed {
                    id: self.id.clone(),
                }),
            },
            status => Err(TransitionError::NotReportable {
                id: self.id.clone(),
                status,
            }),
        }
    }

    pub fn is_due_to_expire(&self, now: Millis) -> bool {
        self.status == Status::Pending && now >= self.expires_at
    }
}

/// A pending request of agent `bot` for `issue_refund` under policy
/// `refunds`, originated by alice, needing `required` approvals, for tests.
#[cfg(test)]
pub(crate) fn sample(required: u32) -> Approval {
    Approval {
        id: "a1".into(),
        status: Status::Pending,
        call: RequestedCall {
            tool_name: "issue_refund".into(),
            tool_args: serde_json::json!({"amount_cents": 5000})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            originator: Some("alice@example.com".into()),
            ..RequestedCall::default()
        },
        proposed_args: None,
        final_args: None,
        policy: "refunds".into(),
        agent: "bot".into(),
        args_digest: String::new(),
        required_approvals: required,
        allowed_decisions: DecisionKind::ALL.to_vec(),
        votes: vec![],
        settlement: None,
        edited: false,
        execute_within_ms: 10_000,
        claim: None,
        execution: None,
        created_at: 0,
        expires_at: 1000,
        escalated_at: None,
        version: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn pending(required: u32) -> Approval {
        sample(required)
    }

    fn by(email: &str, kind: DecisionKind) -> Decision {
        Decision {
            kind,
            by: Actor::User(email.into()),
            reason: None,
            final_args: None,
        }
    }

    #[test]
    fn approve_settles_with_original_args() {
        let mut a = pending(1);
        let eff = a.decide(by("bob@x", DecisionKind::Approve), 5).unwrap();
        assert_eq!(eff, DecisionEffect::Settled(Status::Approved));
        assert_eq!(a.final_args.as_ref(), Some(&a.call.tool_args));
        assert_eq!(
            a.settlement.as_ref().map(|s| s.by.as_str()),
            Some("user:bob@x")
        );
    }

    #[test]
    fn quorum_counts_each_person_once() {
        let mut a = pending(2);
        assert_eq!(
            a.decide(by("bob@x", DecisionKind::Approve), 1).unwrap(),
            DecisionEffect::Voted {
                approvals: 1,
                required: 2
            }
        );
        assert!(matches!(
            a.decide(by("bob@x", DecisionKind::Approve), 2),
            Err(TransitionError::AlreadyVoted { .. })
        ));
        assert_eq!(
            a.decide(by("carol@x", DecisionKind::Approve), 3).unwrap(),
            DecisionEffect::Settled(Status::Approved)
        );
    }

    #[test]
    fn edit_resets_votes_and_fixes_final_args() {
        let mut a = pending(2);
        a.decide(by("bob@x", DecisionKind::Approve), 1).unwrap();
        let mut d = by("carol@x", DecisionKind::Edit);
        d.final_args = Some(args(json!({"amount_cents": 100})));
        assert_eq!(
            a.decide(d, 2).unwrap(),
            DecisionEffect::Voted {
                approvals: 1,
                required: 2
            }
        );
        // bob approves the edited arguments now.
        a.decide(by("bob@x", DecisionKind::Approve), 3).unwrap();
        assert_eq!(a.status, Status::Approved);
        assert_eq!(a.final_args, Some(args(json!({"amount_cents": 100}))));
        assert!(a.edited);
    }

    #[test]
    fn originator_cannot_approve_but_may_reject() {
        let mut a = pending(1);
        assert_eq!(
            a.decide(by("ALICE@example.com", DecisionKind::Approve), 1),
            Err(TransitionError::OriginatorCannotApprove)
        );
        a.decide(by("alice@example.com", DecisionKind::Reject), 1)
            .unwrap();
        assert_eq!(a.status, Status::Rejected);
    }

    #[test]
    fn permitted_answers_what_decide_would() {
        let mut a = pending(2);
        let alice = Actor::User("alice@example.com".into());
        let bob = Actor::User("bob@x".into());
        // The originator may reject, not approve or edit.
        assert_eq!(
            a.permitted(&alice, DecisionKind::Approve),
            Err(TransitionError::OriginatorCannotApprove)
        );
        assert_eq!(
            a.permitted(&alice, DecisionKind::Edit),
            Err(TransitionError::OriginatorCannotApprove)
        );
        assert_eq!(a.permitted(&alice, DecisionKind::Reject), Ok(()));
        // Nobody approves twice; they may still edit or reject.
        assert_eq!(a.permitted(&bob, DecisionKind::Approve), Ok(()));
        a.decide(by("bob@x", DecisionKind::Approve), 1).unwrap();
        assert!(a.has_voted(&bob));
        assert!(matches!(
            a.permitted(&bob, DecisionKind::Approve),
            Err(TransitionError::AlreadyVoted { .. })
        ));
        assert_eq!(a.permitted(&bob, DecisionKind::Reject), Ok(()));
        // The policy's allowed decisions bind everyone.
        a.allowed_decisions = vec![DecisionKind::Approve, DecisionKind::Reject];
        assert!(matches!(
            a.permitted(&bob, DecisionKind::Edit),
            Err(TransitionError::DecisionNotAllowed { .. })
        ));
        // A settled request permits nothing.
        a.decide(by("carol@x", DecisionKind::Reject), 2).unwrap();
        assert!(a.permitted(&bob, DecisionKind::Reject).is_err());
    }

    #[test]
    fn allows_asks_who_then_the_request() {
        let mut a = pending(1);
        let approver = Standing {
            approver: true,
            ..Standing::default()
        };
        let admin = Standing {
            admin: true,
            ..Standing::default()
        };
        let bot = Actor::Agent("bot".into());
        let bob = Actor::User("bob@x".into());
        let decide = |k| Action::Decide(k);
        assert_eq!(
            a.allows(&bot, approver, decide(DecisionKind::Approve)),
            Err(Refusal::AgentCannotDecide)
        );
        assert_eq!(
            a.allows(&bob, admin, decide(DecisionKind::Reject)),
            Err(Refusal::NotApprover {
                who: "bob@x".into(),
                policy: "refunds".into()
            })
        );
        assert_eq!(
            a.allows(&bob, approver, decide(DecisionKind::Approve)),
            Ok(())
        );
        // The request's own rules come through too.
        let alice = Actor::User("alice@example.com".into());
        assert_eq!(
            a.allows(&alice, approver, decide(DecisionKind::Approve)),
            Err(Refusal::Transition(
                TransitionError::OriginatorCannotApprove
            ))
        );
        // Cancelling: the requesting agent or an admin, nobody else.
        assert_eq!(a.allows(&bot, Standing::default(), Action::Cancel), Ok(()));
        assert_eq!(a.allows(&bob, admin, Action::Cancel), Ok(()));
        assert_eq!(
            a.allows(&Actor::Agent("other".into()), admin, Action::Cancel),
            Ok(())
        );
        assert_eq!(
            a.allows(
                &Actor::Agent("other".into()),
                Standing::default(),
                Action::Cancel
            ),
            Err(Refusal::MayNotCancel)
        );
        assert_eq!(
            a.allows(&bob, approver, Action::Cancel),
            Err(Refusal::MayNotCancel)
        );
        // Settled: nothing more, for anyone entitled.
        a.decide(by("bob@x", DecisionKind::Approve), 1).unwrap();
        assert!(matches!(
            a.allows(&bot, Standing::default(), Action::Cancel),
            Err(Refusal::Transition(TransitionError::NotPending { .. }))
        ));
        assert!(matches!(
            a.allows(&bob, approver, decide(DecisionKind::Reject)),
            Err(Refusal::Transition(TransitionError::NotPending { .. }))
        ));
    }

    #[test]
    fn the_escalation_group_decides_only_once_escalated() {
        let mut a = pending(1);
        let lead = Standing {
            escalation_approver: true,
            ..Standing::default()
        };
        let carol = Actor::User("carol@x".into());
        let approve = Action::Decide(DecisionKind::Approve);
        assert!(matches!(
            a.allows(&carol, lead, approve),
            Err(Refusal::NotApprover { .. })
        ));
        assert_eq!(a.escalate(500), Ok(true));
        assert_eq!(a.escalated_at, Some(500));
        assert_eq!(a.escalate(600), Ok(false), "escalated once");
        assert_eq!(a.escalated_at, Some(500));
        assert_eq!(a.allows(&carol, lead, approve), Ok(()));
        // Nobody else gains anything by it.
        assert!(a.allows(&carol, Standing::default(), approve).is_err());
        a.decide(by("carol@x", DecisionKind::Approve), 700).unwrap();
        assert!(matches!(
            a.escalate(800),
            Err(TransitionError::NotPending { .. })
        ));
    }

    #[test]
    fn a_reject_needs_a_reason_and_every_reason_has_a_limit() {
        let reject = Action::Decide(DecisionKind::Reject);
        assert_eq!(check_reason(reject, None), Err(Refusal::ReasonRequired));
        assert_eq!(
            check_reason(reject, Some(" \n ")),
            Err(Refusal::ReasonRequired)
        );
        assert_eq!(check_reason(reject, Some("duplicate")), Ok(()));
        let longest = "é".repeat(MAX_REASON_CHARS);
        assert_eq!(check_reason(reject, Some(&longest)), Ok(()));
        let over = format!("{longest}x");
        for action in [
            reject,
            Action::Decide(DecisionKind::Approve),
            Action::Cancel,
        ] {
            assert_eq!(
                check_reason(action, Some(&over)),
                Err(Refusal::ReasonTooLong {
                    max: MAX_REASON_CHARS
                })
            );
        }
        assert_eq!(
            check_reason(Action::Decide(DecisionKind::Approve), None),
            Ok(())
        );
        assert_eq!(check_reason(Action::Cancel, None), Ok(()));
    }

    fn exec(outcome: ExecutionOutcome) -> Execution {
        Execution {
            outcome,
            latency_ms: Some(3),
            output_excerpt: None,
            reported_at: 4,
        }
    }

    fn approved() -> Approval {
        let mut a = pending(1);
        a.decide(by("bob@x", DecisionKind::Approve), 1).unwrap();
        a
    }

    #[test]
    fn settled_requests_refuse_everything_but_the_execution_claim() {
        let mut a = approved();
        assert!(matches!(
            a.decide(by("carol@x", DecisionKind::Reject), 2),
            Err(TransitionError::NotPending { .. })
        ));
        assert!(a.expire(3).is_err());
        assert!(a.cancel(Actor::Agent("bot".into()), None, 3).is_err());
        assert_eq!(a.execute_before(), Some(1 + 10_000));
        assert_eq!(a.claim_execution("c1", 3), Ok(true));
        assert_eq!(a.status, Status::Executing);
        assert_eq!(
            a.report_execution(Some("c1"), exec(ExecutionOutcome::Success), 4),
            Ok(true)
        );
        assert_eq!(a.status, Status::Executed);
    }

    #[test]
    fn only_one_claim_ever_succeeds() {
        let mut a = approved();
        assert_eq!(a.claim_execution("first", 2), Ok(true));
        // The same holder retrying its claim keeps it; nothing changes.
        assert_eq!(a.claim_execution("first", 3), Ok(false));
        assert_eq!(a.claim.as_ref().map(|c| c.claimed_at), Some(2));
        assert!(matches!(
            a.claim_execution("second", 3),
            Err(TransitionError::ExecutionClaimed { .. })
        ));
        a.report_execution(Some("first"), exec(ExecutionOutcome::Error), 4)
            .unwrap();
        assert!(matches!(
            a.claim_execution("third", 5),
            Err(TransitionError::AlreadyExecuted { .. })
        ));
        assert!(matches!(
            a.claim_execution("first", 5),
            Err(TransitionError::AlreadyExecuted { .. })
        ));
    }

    #[test]
    fn only_approved_requests_can_be_claimed() {
        let mut a = pending(1);
        assert!(matches!(
            a.claim_execution("c", 1),
            Err(TransitionError::NotApproved {
                status: Status::Pending,
                ..
            })
        ));
        a.decide(by("bob@x", DecisionKind::Reject), 1).unwrap();
        assert!(matches!(
            a.claim_execution("c", 2),
            Err(TransitionError::NotApproved {
                status: Status::Rejected,
                ..
            })
        ));
        assert_eq!(a.status, Status::Rejected);
    }

    #[test]
    fn respond_settles_without_running_the_tool() {
        let mut a = pending(2);
        // Not allowed unless the policy lists it.
        a.allowed_decisions = vec![DecisionKind::Approve, DecisionKind::Reject];
        assert!(matches!(
            a.decide(by("bob@x", DecisionKind::Respond), 1),
            Err(TransitionError::DecisionNotAllowed { .. })
        ));
        a.allowed_decisions = DecisionKind::ALL.to_vec();
        // Arguments belong to edits only.
        let mut with_args = by("bob@x", DecisionKind::Respond);
        with_args.final_args = Some(Map::new());
        assert_eq!(
            a.decide(with_args, 1),
            Err(TransitionError::ArgsWithoutEdit)
        );
        // The originator may answer (nothing runs); one answer settles it
        // even under a quorum of two.
        let mut d = by("alice@example.com", DecisionKind::Respond);
        d.reason = Some("use the sandbox account".into());
        assert_eq!(
            a.decide(d, 2).unwrap(),
            DecisionEffect::Settled(Status::Responded)
        );
        assert_eq!(
            a.settlement.as_ref().and_then(|s| s.reason.as_deref()),
            Some("use the sandbox account")
        );
        assert_eq!(a.final_args, None);
        assert_eq!(a.execute_before(), None);
        // A responded request can never be claimed for execution.
        assert!(matches!(
            a.claim_execution("c", 3),
            Err(TransitionError::NotApproved {
                status: Status::Responded,
                ..
            })
        ));
        assert!(matches!(
            a.report_execution(None, exec(ExecutionOutcome::Success), 3),
            Err(TransitionError::NotReportable { .. })
        ));
        assert_eq!(a.status, Status::Responded);
        // The message is required.
        assert_eq!(
            check_reason(Action::Decide(DecisionKind::Respond), Some("  ")),
            Err(Refusal::MessageRequired)
        );
    }

    #[test]
    fn the_claim_closes_at_execute_before() {
        let mut a = approved(); // decided at 1, execute_within 10 000
        assert!(matches!(
            a.claim_execution("late", 10_001),
            Err(TransitionError::ExecutionExpired { .. })
        ));
        assert_eq!(a.status, Status::Approved);
        assert!(a.claim.is_none());
        // Nor can the outcome of an unclaimed run be reported after it.
        assert!(matches!(
            a.report_execution(None, exec(ExecutionOutcome::Success), 10_001),
            Err(TransitionError::ExecutionExpired { .. })
        ));
    }

    #[test]
    fn a_claim_made_in_time_can_report_after_the_window() {
        let mut a = approved();
        assert_eq!(a.claim_execution("c", 10_000), Ok(true));
        // The tool was started in time; its outcome is recorded, not lost.
        assert_eq!(
            a.report_execution(Some("c"), exec(ExecutionOutcome::Success), 50_000),
            Ok(true)
        );
    }

    #[test]
    fn reports_need_the_claim() {
        let mut a = approved();
        assert!(matches!(
            a.report_execution(Some("c"), exec(ExecutionOutcome::Success), 2),
            Err(TransitionError::NotClaimed { .. })
        ));
        a.claim_execution("c", 2).unwrap();
        for wrong in [None, Some("other")] {
            assert!(matches!(
                a.report_execution(wrong, exec(ExecutionOutcome::Success), 3),
                Err(TransitionError::ClaimMismatch { .. })
            ));
        }
        assert_eq!(a.status, Status::Executing);
        assert_eq!(
            a.report_execution(Some("c"), exec(ExecutionOutcome::Success), 3),
            Ok(true)
        );
        // A retried identical report is accepted without change; a different one is not.
        assert_eq!(
            a.report_execution(Some("c"), exec(ExecutionOutcome::Success), 4),
            Ok(false)
        );
        assert!(matches!(
            a.report_execution(Some("c"), exec(ExecutionOutcome::Error), 4),
            Err(TransitionError::ReportConflict { .. })
        ));
        assert!(matches!(
            a.report_execution(Some("x"), exec(ExecutionOutcome::Success), 4),
            Err(TransitionError::ClaimMismatch { .. })
        ));
        let mut p = pending(1);
        assert!(matches!(
            p.report_execution(None, exec(ExecutionOutcome::Success), 1),
            Err(TransitionError::NotReportable { .. })
        ));
    }

    #[test]
    fn claim_ids_are_restricted() {
        assert!(is_valid_claim_id("0193a5b2-7c1e_x.1"));
        for bad in ["", "a b", "a/b", "é", &"x".repeat(101)] {
            assert!(!is_valid_claim_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn decisions_outside_policy_are_refused() {
        let mut a = pending(1);
        a.allowed_decisions = vec![DecisionKind::Approve, DecisionKind::Reject];
        let mut d = by("bob@x", DecisionKind::Edit);
        d.final_args = Some(Map::new());
        assert!(matches!(
            a.decide(d, 1),
            Err(TransitionError::DecisionNotAllowed { .. })
        ));
        assert_eq!(a.status, Status::Pending);
    }

    #[test]
    fn expiry_only_from_pending() {
        let mut a = pending(1);
        assert!(!a.is_due_to_expire(999));
        assert!(a.is_due_to_expire(1000));
        a.expire(1000).unwrap();
        assert_eq!(a.status, Status::Expired);
    }
}
