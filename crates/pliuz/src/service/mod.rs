//! The control plane's use cases. Each one loads state, asks the pure domain
//! (`approval`, `policy`) what to do, and persists the outcome together with
//! its audit entry and notifications in one [`WriteTx`].

pub mod audit_log;
pub mod conditions;
pub mod deliveries;
pub mod directory;
pub mod email;
pub mod policies;
pub mod queries;
pub mod question_email;
pub mod questions;
pub mod reminders;
pub mod runs;
pub mod sessions;
pub mod sso;
pub mod webhooks;

use crate::approval::{
    check_reason, Action, Actor, Approval, Decision, DecisionEffect, DecisionKind, Execution,
    Millis, Refusal, RequestedCall, Standing, Status, TransitionError,
};
use crate::audit_event::{AuditEvent, VoteCount};
use crate::auth::{Principal, Role};
use crate::config::Settings;
use crate::notify::{ApprovalChanged, Notifier};
use crate::policy::{AutoDecision, MatchError, Policy};
use crate::store::{Store, WriteTx};

// The store's types the edges handle (rows, pages, errors, the clock), so
// that nothing outside `service` names the store.
pub use crate::store::audit_copy::CopyError;
pub use crate::store::oidc::PendingLogin;
pub use crate::store::overview::{SettledRow, WaitingRow, SETTLED_LIMIT};
pub use crate::store::runs::{DueWebhook, RunFilter};
pub use crate::store::slack::PostedMessage;
pub use crate::store::AgentRecord;
pub use crate::store::Opener;
pub use crate::store::{
    format_time, now_millis, ApprovalFilter, OutboxMessage, SessionRecord, StoreError, StoredEntry,
};
pub use queries::users_in;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Queues outbox row `kind` about request or question `id` (the row's
/// `approval_id` column names either: it has no foreign key), once per
/// kind, subject and `step` (`None`: once per kind and subject).
async fn enqueue_once(
    tx: &mut WriteTx,
    kind: &str,
    id: &str,
    step: Option<&str>,
    payload: &Value,
) -> Result<()> {
    let dedupe_key = match step {
        Some(step) => format!("{kind}:{id}:{step}"),
        None => format!("{kind}:{id}"),
    };
    tx.enqueue(kind, Some(id), &dedupe_key, payload).await?;
    Ok(())
}

/// A field-level problem in a request, reported back to the caller.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Text no store can keep the same way: PostgreSQL refuses NUL in text, and
/// control characters (other than tab and newline) are refused too, so that
/// behaviour does not depend on the store.
pub fn unstorable(field: &str, s: &str) -> Option<FieldError> {
    s.chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        .map(|c| {
            FieldError::new(
                field,
                format!(
                    "contains the control character U+{:04X}; remove it",
                    u32::from(c)
                ),
            )
        })
}

/// Refuses arguments nested deeper than the API accepts (they sit one level
/// inside a request body) or whose canonical JSON is over the size every
/// verifier accepts (`pliuz_audit::limits`, docs/limits.md). The API's
/// extractor checks nesting already; this also covers the inbox and Slack.
pub fn check_args_size(field: &str, args: &Map<String, Value>) -> Result<()> {
    use pliuz_audit::limits::{canonical_size, value_depth, MAX_ARGS_BYTES, MAX_JSON_DEPTH};
    let depth = 1 + args.values().map(value_depth).max().unwrap_or(0);
    if depth > MAX_JSON_DEPTH - 1 {
        return Err(ServiceError::invalid(
            field,
            format!(
                "nests {depth} levels of arrays and objects; at most {} are accepted (see docs/limits.md)",
                MAX_JSON_DEPTH - 1
            ),
        ));
    }
    let size = canonical_size(args);
    if size > MAX_ARGS_BYTES {
        return Err(ServiceError::TooLarge(format!(
            "{field} is {size} bytes as canonical JSON; at most {MAX_ARGS_BYTES} bytes are accepted (see docs/limits.md)"
        )));
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is over a documented limit (docs/limits.md).
    #[error("{0}")]
    TooLarge(String),
    #[error("no approval with id {0}")]
    NotFound(String),
    #[error("no question with id {0}")]
    QuestionNotFound(String),
    /// Something other than an approval is missing; the text names it
    /// ("user a@example.com").
    #[error("no {0}")]
    NoSuch(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    NoPolicy(MatchError),
    #[error("idempotency_key '{0}' was already used for a request with different arguments; use a new key for a new call")]
    IdempotencyConflict(String),
    #[error("final_args do not match the tool's schema: {}", .0.join("; "))]
    SchemaViolation(Vec<String>),
    #[error("{0}")]
    Conflict(String),
    /// 409 with its own problem `code` (docs/api.md): a name already
    /// taken, a policy write refused in file mode, and the like.
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    #[error("the arguments of approval {0} changed since you reviewed them (an approver edited them): reload the request, review the current arguments and decide again")]
    ArgsChanged(String),
    #[error("a request with this idempotency_key was created at the same moment; retry to get it")]
    ConcurrentCreate,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T> = std::result::Result<T, ServiceError>;

/// What an agent sends to open a request (validated by the API layer).
#[derive(Debug, Clone, Default)]
pub struct NewApproval {
    pub call: RequestedCall,
    /// The policy the agent names; without one it is found by tool
    /// (`policy::PolicySet::resolve`).
    pub policy: Option<String>,
    /// Claims the execution for this id in the same commit when the policy
    /// approves the request on creation (issue #13: one durable write before
    /// the tool runs instead of two); otherwise ignored.
    pub claim_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DecisionInput {
    pub kind: DecisionKind,
    pub reason: Option<String>,
    pub final_args: Option<Map<String, Value>>,
    /// The [`review_digest`] of the request as the decider saw it: a
    /// decision applies only to the arguments that were reviewed.
    pub args_digest: String,
}

/// Shared by the HTTP API, the inbox, Slack and the workers. One shared
/// allocation: handlers clone it several times a request (axum's state
/// extractors), and cloning its parts one by one was dozens of atomic
/// counts each time, a few per cent of a create's CPU under load (#13).
#[derive(Clone)]
pub struct ControlPlane(Arc<ControlPlaneParts>);

/// What a [`ControlPlane`] holds (reached through it: `cp.notifier`).
pub struct ControlPlaneParts {
    /// Private: every read and write goes through a use case here.
    store: Store,
    /// The policies in force, swapped whole when they change (`policies()`).
    policy_cell: Arc<policies::PolicyCell>,
    pub notifier: Notifier,
    pub settings: Arc<Settings>,
    /// What `GET /metrics` reports; changes are counted where they commit.
    pub metrics: crate::metrics::Metrics,
}

impl std::ops::Deref for ControlPlane {
    type Target = ControlPlaneParts;
    fn deref(&self) -> &ControlPlaneParts {
        &self.0
    }
}

/// SHA-256 over the canonical JSON of the tool name and arguments: what
/// idempotency compares and what the audit log can cite.
pub fn args_digest(tool_name: &str, args: &Map<String, Value>) -> String {
    let v = json!({"tool_name": tool_name, "tool_args": args});
    let canonical = pliuz_audit::canonical_json(&v);
    hex::encode(Sha256::digest(&canonical))
}

/// The digest of what a decider reviews: the tool name and the arguments
/// approvals currently count towards (the proposed ones once edited). Equal
/// to the creation digest until someone edits.
pub fn review_digest(a: &Approval) -> String {
    args_digest(&a.call.tool_name, a.args_under_review())
}

/// Checks `args` against a JSON Schema; returns each violation.
pub fn schema_errors(
    schema: &Value,
    args: &Map<String, Value>,
) -> std::result::Result<(), Vec<String>> {
    let validator = jsonschema::validator_for(schema).map_err(|e| {
        vec![format!(
            "the request's tool_schema is not a valid JSON Schema: {e}"
        )]
    })?;
    let instance = Value::Object(args.clone());
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| {
            let path = e.instance_path().to_string();
            if path.is_empty() {
                e.to_string()
            } else {
                format!("{path}: {e}")
            }
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// A reason must be storable text and meet the action's rule (e.g. required
/// to reject), checked before the request is looked up.
fn check_reason_text(action: Action, reason: Option<&str>) -> Result<()> {
    if let Some(e) = reason.and_then(|r| unstorable("reason", r)) {
        return Err(ServiceError::Validation(vec![e]));
    }
    check_reason(action, reason)?;
    Ok(())
}

impl ControlPlane {
    /// Prepares the data directory and opens (and migrates) the store for
    /// these settings: what `serve` and the admin commands start from.
    pub async fn open(settings: Settings) -> anyhow::Result<ControlPlane> {
        ControlPlane::open_for(settings, Opener::Server).await
    }

    /// [`ControlPlane::open`] for `opener` (a one-shot command needs fewer
    /// connections and less set-up than the server).
    pub async fn open_for(settings: Settings, opener: Opener) -> anyhow::Result<ControlPlane> {
        crate::file_modes::prepare(&settings)?;
        let store = Store::open_for(&settings.database_url, opener).await?;
        Ok(ControlPlane::new(
            store,
            Arc::new(settings),
            Notifier::new(),
        ))
    }

    pub fn new(store: Store, settings: Arc<Settings>, notifier: Notifier) -> ControlPlane {
        ControlPlane(Arc::new(ControlPlaneParts {
            store,
            policy_cell: Arc::new(policies::PolicyCell::new(settings.policies.clone())),
            notifier,
            settings,
            metrics: crate::metrics::Metrics::new(),
        }))
    }

    /// Commits a change to `a` and tells everyone waiting on it: in-process
    /// waiters at once, other replicas through PostgreSQL NOTIFY (sent
    /// inside the transaction, so it is delivered exactly when it commits).
    /// `before` is the status before the change (`None`: it created `a`).
    async fn commit_change(
        &self,
        mut tx: WriteTx,
        before: Option<Status>,
        a: &Approval,
    ) -> Result<()> {
        let change = ApprovalChanged {
            id: a.id.clone(),
            status: a.status,
            policy: a.policy.clone(),
        };
        // Runs waiting on it may become ready; webhooks hear of it (same tx).
        let runs_changed = self
            .on_approval_change(&mut tx, a, before.is_none())
            .await?;
        tx.notify_replicas(&change).await?;
        tx.commit().await?;
        self.metrics.approval_changed(before, a);
        // Waiters get the committed record itself: no re-read.
        self.notifier.publish_committed(a);
        // A run's approvals are all its agent's own. Only now can the
        // delivery workers see what this change queued.
        self.notifier.change_committed(&a.agent, runs_changed);
        Ok(())
    }

    /// Queues the Slack messages and e-mails a change calls for, in the
    /// same transaction (delivered by the outbox and mail workers).
    async fn queue_notifications(
        &self,
        tx: &mut WriteTx,
        a: &Approval,
        policy: Option<&Policy>,
        created: bool,
    ) -> Result<()> {
        let channel = policy.and_then(|p| p.slack_channel.clone());
        self.queue_slack(tx, a, channel, created).await?;
        let mails = policy.is_some_and(|p| p.email.is_some());
        self.queue_email(tx, a, mails, created).await
    }

    /// Queues a change's Slack messages: posted to the policy's `channel`
    /// (or the default one) and DMed when created, updated after.
    async fn queue_slack(
        &self,
        tx: &mut WriteTx,
        a: &Approval,
        channel: Option<String>,
        created: bool,
    ) -> Result<()> {
        let Some(slack) = &self.settings.slack else {
            return Ok(());
        };
        let channel = channel.or_else(|| slack.default_channel.clone());
        if created {
            if let Some(channel) = channel {
                let payload = json!({"approval_id": a.id, "channel": channel});
                enqueue_once(tx, "slack.post", &a.id, Some(&channel), &payload).await?;
            }
            if slack.dm_approvers {
                let payload = json!({"approval_id": a.id});
                enqueue_once(tx, "slack.dm", &a.id, None, &payload).await?;
            }
        }
        // Settled: show the outcome. Still pending after a vote or an edit
        // (quorum > 1): show the progress and the arguments under review.
        if a.status.is_settled() || !created {
            let step = if a.status.is_settled() {
                a.status.to_string()
            } else {
                format!("pending-v{}", a.version)
            };
            let payload = json!({"approval_id": a.id, "status": a.status});
            enqueue_once(tx, "slack.update", &a.id, Some(&step), &payload).await?;
        }
        Ok(())
    }

    /// Opens a request (or returns the earlier one for a repeated
    /// idempotency key). Returns the approval and whether it is new.
    pub async fn create(&self, agent: &str, req: NewApproval) -> Result<(Approval, bool)> {
        let mut call = req.call;
        check_args_size("tool_args", &call.tool_args)?;
        call.originator = match call.originator.as_deref() {
            Some(raw) => crate::originator::normalise(raw)
                .map_err(|m| ServiceError::invalid("originator", m))?,
            None => None,
        };
        let digest = args_digest(&call.tool_name, &call.tool_args);
        if let Some(key) = &call.idempotency_key {
            if let Some(existing) = self.store.find_by_idempotency(agent, key).await? {
                return replay(existing, &digest, key);
            }
        }
        let policy = self
            .policies()
            .resolve(req.policy.as_deref(), &call.tool_name)
            .map_err(ServiceError::NoPolicy)?;
        if let Some(schema) = &call.tool_schema {
            if let Err(e) = jsonschema::validator_for(schema) {
                return Err(ServiceError::invalid(
                    "tool_schema",
                    format!("not a valid JSON Schema: {e}"),
                ));
            }
        }
        let now = crate::store::now_millis();
        let expires_in = i64::try_from(policy.expires_in.as_millis()).unwrap_or(i64::MAX / 2);
        let mut a = Approval {
            id: uuid::Uuid::now_v7().to_string(),
            status: Status::Pending,
            call,
            proposed_args: None,
            final_args: None,
            policy: policy.name.clone(),
            agent: agent.to_owned(),
            args_digest: digest,
            required_approvals: policy.required_approvals,
            allowed_decisions: policy.decisions.clone(),
            votes: vec![],
            settlement: None,
            edited: false,
            execute_within_ms: i64::try_from(policy.execute_within.as_millis())
                .unwrap_or(i64::MAX / 2),
            claim: None,
            execution: None,
            created_at: now,
            expires_at: now.saturating_add(expires_in),
            escalated_at: None,
            version: 0,
        };
        let auto = conditions::auto_decision(
            policy.clone(),
            conditions::Facts {
                tool: a.call.tool_name.clone(),
                args: a.call.tool_args.clone(),
                agent: agent.to_owned(),
                policy: policy.name.clone(),
                originator: a.call.originator.clone(),
                metadata: a.call.client_metadata.clone(),
            },
        )
        .await;
        let condition_errors = match &auto {
            AutoDecision::Human { errors } => errors.clone(),
            _ => vec![],
        };
        // Recorded as created before the policy's own decision is applied.
        let created = AuditEvent::ApprovalCreated {
            tool_name: a.call.tool_name.clone(),
            tool_args: a.call.tool_args.clone(),
            args_digest: a.args_digest.clone(),
            policy: a.policy.clone(),
            agent: a.agent.clone(),
            originator: a.call.originator.clone(),
            call_id: a.call.call_id.clone(),
            session_id: a.call.session_id.clone(),
            idempotency_key: a.call.idempotency_key.clone(),
            required_approvals: a.required_approvals,
            expires_at: crate::store::format_time(a.expires_at),
            condition_errors,
        };
        let auto_outcome = match auto {
            AutoDecision::Approve { condition } => Some((true, condition)),
            AutoDecision::Reject { condition } => Some((false, condition)),
            AutoDecision::Human { .. } => None,
        };
        // A request the policy decides is stored once, in its decided state,
        // instead of stored pending and then updated (issue #13): the same
        // row (`version` 1, as after that update) and the same two entries.
        let decided = auto_outcome.map(|(approve, condition)| {
            let reason = format!(
                "{} by policy '{}': {condition}",
                if approve {
                    "auto-approved"
                } else {
                    "auto-rejected"
                },
                policy.name
            );
            a.auto_decide(approve, reason.clone(), now);
            a.version += 1;
            AuditEvent::ApprovalDecided {
                decision: if approve {
                    DecisionKind::Approve
                } else {
                    DecisionKind::Reject
                },
                outcome: a.status,
                reason: Some(reason),
                condition: Some(condition),
                original_args: a.call.tool_args.clone(),
                args_digest: None,
                final_args: a.final_args.clone(),
                edited: false,
            }
        });
        let claimed = match (&decided, req.claim_id) {
            (Some(_), Some(claim_id)) => claim_on_create(&mut a, claim_id, now),
            _ => None,
        };
        let mut tx = self.store.begin_write().await?;
        tx.insert_approval(&a).await?;
        tx.audit(Actor::Agent(agent.to_owned()), Some(&a.id), created)
            .await?;
        if let Some(decided) = decided {
            tx.audit(Actor::Policy(policy.name.clone()), Some(&a.id), decided)
                .await?;
        }
        if let Some(claimed) = claimed {
            tx.audit(Actor::Agent(agent.to_owned()), Some(&a.id), claimed)
                .await?;
        }
        self.queue_notifications(&mut tx, &a, Some(&policy), true)
            .await?;
        reminders::set_timers(&mut tx, &a, &policy).await?;
        // The insert is sent at commit: a request made at the same moment
        // with the same idempotency key shows there.
        self.commit_change(tx, None, &a)
            .await
            .map_err(|e| match e {
                ServiceError::Store(e) if e.is_unique_violation() => ServiceError::ConcurrentCreate,
                other => other,
            })?;
        Ok((a, true))
    }

    /// Loads an approval the principal may see.
    pub async fn get_for(&self, principal: &Principal, id: &str) -> Result<Approval> {
        check_id(id)?;
        let a = self
            .store
            .get_approval(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(id.to_owned()))?;
        self.check_visible(principal, &a)?;
        Ok(a)
    }

    /// `NotFound` unless the principal may see `a` (not "forbidden": do not
    /// confirm the request exists).
    fn check_visible(&self, principal: &Principal, a: &Approval) -> Result<()> {
        if self.can_see(principal, a) {
            Ok(())
        } else {
            Err(ServiceError::NotFound(a.id.clone()))
        }
    }

    /// Whether `principal` may do `action` on `a`, checked in the order that
    /// keeps other agents' requests hidden: visibility first (`NotFound`),
    /// then the decision rules (`Forbidden` and friends).
    fn check_may(&self, principal: &Principal, a: &Approval, action: Action) -> Result<()> {
        self.check_visible(principal, a)?;
        Ok(self.allows(principal, a, action)?)
    }

    pub fn can_see(&self, principal: &Principal, a: &Approval) -> bool {
        match principal {
            Principal::Agent { name } => *name == a.agent,
            Principal::User(_) => {
                principal.sees_everything() || a.may_approve_with(self.standing(principal, a))
            }
        }
    }

    /// Whether this principal may decide on requests of this policy.
    pub fn may_decide(&self, principal: &Principal, policy: &str) -> bool {
        match principal {
            Principal::Agent { .. } => false,
            Principal::User(u) => self
                .policies()
                .get(policy)
                .is_some_and(|p| p.is_approver(&u.email, &u.groups)),
        }
    }

    /// Policies whose requests this user may decide.
    pub fn policies_for(&self, principal: &Principal) -> Vec<String> {
        self.policies()
            .iter()
            .filter(|p| self.may_decide(principal, &p.name))
            .map(|p| p.name.clone())
            .collect()
    }

    /// What this principal's account entitles them to on `a`.
    pub fn standing(&self, principal: &Principal, a: &Approval) -> Standing {
        Standing {
            approver: self.may_decide(principal, &a.policy),
            escalation_approver: match principal {
                Principal::User(u) => self
                    .policies()
                    .get(&a.policy)
                    .is_some_and(|p| p.is_escalation_approver(&u.email, &u.groups)),
                Principal::Agent { .. } => false,
            },
            admin: matches!(principal, Principal::User(u) if u.role == Role::Admin && !u.disabled),
        }
    }

    /// Whether `principal` may do `action` on `a` now: the one question the
    /// API, the inbox and Slack ask (the domain's [`Approval::allows`]).
    pub fn allows(
        &self,
        principal: &Principal,
        a: &Approval,
        action: Action,
    ) -> std::result::Result<(), Refusal> {
        a.allows(&principal.actor(), self.standing(principal, a), action)
    }

    /// Load → transition → audit → notifications → commit: the one shape of
    /// every change to a request. `transition` is the use case's own part:
    /// it changes the loaded request through the domain and says what to
    /// record, or `None` when there is nothing to write (a repeated claim or
    /// report, a request not yet due). Returns the request and whether it
    /// changed.
    async fn change_request(
        &self,
        id: &str,
        transition: impl FnOnce(&mut Approval) -> Result<Option<Step>>,
    ) -> Result<(Approval, bool)> {
        let mut tx = self.store.begin_write().await?;
        let mut a = tx
            .get_approval(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(id.to_owned()))?;
        let before = a.status;
        let votes_before = a.votes.clone();
        let Some(step) = transition(&mut a)? else {
            return Ok((a, false));
        };
        if let Err(e) = tx.update_approval(&mut a, &votes_before).await {
            return Err(match (e, step.on_conflict) {
                (StoreError::Conflict, Some(answer)) => answer,
                (other, _) => other.into(),
            });
        }
        let escalated = matches!(step.event, AuditEvent::ApprovalEscalated { .. });
        tx.audit(step.actor, Some(&a.id), step.event).await?;
        let policy = self.policies().get(&a.policy).cloned();
        self.queue_notifications(&mut tx, &a, policy.as_deref(), false)
            .await?;
        if escalated {
            self.queue_escalation(&mut tx, &a).await?;
        }
        self.commit_change(tx, Some(before), &a).await?;
        Ok((a, true))
    }

    /// A human decides.
    pub async fn decide(
        &self,
        principal: &Principal,
        id: &str,
        input: DecisionInput,
    ) -> Result<Approval> {
        // Before the lookup: an agent key learns nothing about other agents'
        // requests (it would see "not found" for them).
        if matches!(principal, Principal::Agent { .. }) {
            return Err(Refusal::AgentCannotDecide.into());
        }
        let action = Action::Decide(input.kind);
        check_reason_text(action, input.reason.as_deref())?;
        if let Some(args) = &input.final_args {
            check_args_size("final_args", args)?;
        }
        check_id(id)?;
        let actor = principal.actor();
        let now = crate::store::now_millis();
        // Checked on the request as read under the write lock, not on an
        // earlier read of it: one read fewer, and never a stale answer.
        let (a, _) = self
            .change_request(id, |a| {
                self.check_may(principal, a, action)?;
                if let (DecisionKind::Edit, Some(args), Some(schema)) =
                    (input.kind, &input.final_args, &a.call.tool_schema)
                {
                    schema_errors(schema, args).map_err(ServiceError::SchemaViolation)?;
                }
                // Bound to what was reviewed: an edit in between (quorum > 1)
                // must not let an approval of the old arguments settle the new ones.
                let reviewed = review_digest(a);
                if a.status == Status::Pending && reviewed != input.args_digest {
                    return Err(ServiceError::ArgsChanged(id.to_owned()));
                }
                let original = a.args_under_review().clone();
                let effect = a.decide(
                    Decision {
                        kind: input.kind,
                        by: actor.clone(),
                        reason: input.reason.clone(),
                        final_args: input.final_args.clone(),
                    },
                    now,
                )?;
                let final_args = input.final_args.or_else(|| a.final_args.clone());
                let edited = input.kind == DecisionKind::Edit;
                let event = match effect {
                    DecisionEffect::Settled(outcome) => AuditEvent::ApprovalDecided {
                        decision: input.kind,
                        outcome,
                        reason: input.reason,
                        condition: None,
                        original_args: original,
                        args_digest: Some(reviewed),
                        final_args,
                        edited,
                    },
                    DecisionEffect::Voted {
                        approvals,
                        required,
                    } => AuditEvent::ApprovalVoted {
                        decision: input.kind,
                        outcome: VoteCount {
                            approvals,
                            required,
                        },
                        reason: input.reason,
                        original_args: original,
                        args_digest: reviewed,
                        final_args,
                        edited,
                    },
                };
                Ok(Some(Step {
                    actor,
                    event,
                    on_conflict: Some(ServiceError::Conflict(format!(
                        "approval {id} was decided by someone else at the same moment; reload it"
                    ))),
                }))
            })
            .await?;
        Ok(a)
    }

    /// The requesting agent (or an admin) withdraws a pending request.
    pub async fn cancel(
        &self,
        principal: &Principal,
        id: &str,
        reason: Option<String>,
    ) -> Result<Approval> {
        check_reason_text(Action::Cancel, reason.as_deref())?;
        check_id(id)?;
        let actor = principal.actor();
        let now = crate::store::now_millis();
        let (a, _) = self
            .change_request(id, |a| {
                self.check_may(principal, a, Action::Cancel)?;
                a.cancel(actor.clone(), reason.clone(), now)?;
                Ok(Some(Step::new(
                    actor,
                    AuditEvent::ApprovalCancelled { reason },
                )))
            })
            .await?;
        Ok(a)
    }

    /// The requesting agent claims the right to run the approved tool
    /// (`approved → executing`). Exactly one claim succeeds; a repeat of the
    /// same `claim_id` (a retry after a lost answer) returns the request
    /// unchanged.
    pub async fn claim_execution(
        &self,
        principal: &Principal,
        id: &str,
        claim_id: String,
    ) -> Result<Approval> {
        only_agents(principal)?;
        check_id(id)?;
        let now = crate::store::now_millis();
        // Slack shows it too: started, and "outcome unknown" if no report follows.
        let (a, _) = self
            .change_request(id, |a| {
                self.check_visible(principal, a)?;
                if !a.claim_execution(&claim_id, now)? {
                    return Ok(None); // already this caller's claim: nothing to write
                }
                let claimed_at = a.claim.as_ref().map(|c| c.claimed_at).unwrap_or_default();
                let event = AuditEvent::ApprovalExecutionClaimed {
                    claim_id,
                    execute_before: a.execute_before().map(crate::store::format_time),
                    final_args: a.final_args.clone(),
                };
                Ok(Some(Step {
                    actor: principal.actor(),
                    event,
                    // Writers are serialised, so this is not expected; if it
                    // happens someone else changed the request first: never
                    // a second claim.
                    on_conflict: Some(ServiceError::Transition(
                        TransitionError::ExecutionClaimed {
                            id: id.to_owned(),
                            claimed_at: crate::store::format_time(claimed_at),
                        },
                    )),
                }))
            })
            .await?;
        Ok(a)
    }

    /// The claim holder reports how running the approved tool went.
    pub async fn report_execution(
        &self,
        principal: &Principal,
        id: &str,
        claim_id: Option<String>,
        exec: Execution,
    ) -> Result<Approval> {
        only_agents(principal)?;
        check_id(id)?;
        let (a, _) = self
            .change_request(id, |a| {
                self.check_visible(principal, a)?;
                if !a.report_execution(claim_id.as_deref(), exec.clone(), exec.reported_at)? {
                    return Ok(None); // the same report again: already recorded
                }
                let event = AuditEvent::ApprovalExecuted {
                    claim_id,
                    outcome: exec.outcome.as_str(),
                    latency_ms: exec.latency_ms,
                    output_excerpt: exec.output_excerpt,
                    final_args: a.final_args.clone(),
                };
                Ok(Some(Step::new(principal.actor(), event)))
            })
            .await?;
        Ok(a)
    }

    /// Expires one request if it is still pending and due. Returns whether it did.
    pub async fn expire(&self, id: &str) -> Result<bool> {
        let now = crate::store::now_millis();
        let changed = self
            .change_request(id, |a| {
                if !a.is_due_to_expire(now) {
                    return Ok(None);
                }
                a.expire(now)?;
                let event = AuditEvent::ApprovalExpired {
                    expires_at: crate::store::format_time(a.expires_at),
                };
                Ok(Some(Step::new(Actor::System, event)))
            })
            .await;
        match changed {
            Ok((_, changed)) => Ok(changed),
            // Deleted meanwhile: nothing to expire.
            Err(ServiceError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Records the loaded policy set in the audit log when it changed since
    /// the last start.
    pub async fn record_policy_load(&self) -> Result<()> {
        let set = self.policies();
        let hash = &set.source_hash;
        if self.store.get_meta("policy_hash").await?.as_deref() == Some(hash.as_str()) {
            return Ok(());
        }
        let mut tx = self.store.begin_write().await?;
        // Again under the write lock: a replica starting beside this one may
        // have recorded the same policies a moment ago.
        if tx.get_meta("policy_hash").await?.as_deref() == Some(hash.as_str()) {
            tx.rollback().await;
            return Ok(());
        }
        let loaded = AuditEvent::PolicyLoaded {
            source_sha256: hash.clone(),
            config_path: self
                .settings
                .config_path
                .as_ref()
                .map(|p| p.display().to_string()),
            default_policy: set.default_policy().map(str::to_owned),
            policies: set.iter().map(|p| p.summary()).collect(),
        };
        tx.audit(Actor::System, None, loaded).await?;
        tx.set_meta("policy_hash", hash).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// What a use case asks [`ControlPlane::change_request`] to record.
struct Step {
    actor: Actor,
    event: AuditEvent,
    /// The answer when someone else changed the request first; `None`
    /// passes the store's conflict on.
    on_conflict: Option<ServiceError>,
}

impl Step {
    fn new(actor: Actor, event: AuditEvent) -> Step {
        Step {
            actor,
            event,
            on_conflict: None,
        }
    }
}

impl ServiceError {
    /// One field of the request refused, with what to fix.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ServiceError {
        ServiceError::Validation(vec![FieldError::new(field, message)])
    }
}

impl From<Refusal> for ServiceError {
    fn from(r: Refusal) -> ServiceError {
        match r {
            Refusal::Transition(t) => ServiceError::Transition(t),
            Refusal::ReasonRequired => ServiceError::invalid(
                "reason",
                "is required to reject: say why, the agent's model receives it",
            ),
            Refusal::MessageRequired => ServiceError::invalid(
                "reason",
                "is required to respond: it is the message the agent's model receives instead of the tool's result",
            ),
            Refusal::ReasonTooLong { max } => ServiceError::invalid(
                "reason",
                format!("must be at most {max} characters"),
            ),
            Refusal::AgentCannotDecide | Refusal::NotApprover { .. } | Refusal::MayNotCancel => {
                ServiceError::Forbidden(r.to_string())
            }
        }
    }
}

/// No stored id holds a control character; PostgreSQL would refuse the
/// query, so answer as SQLite does.
fn check_id(id: &str) -> Result<()> {
    match unstorable("id", id) {
        Some(_) => Err(ServiceError::NotFound(id.to_owned())),
        None => Ok(()),
    }
}

fn only_agents(principal: &Principal) -> Result<()> {
    if matches!(principal, Principal::Agent { .. }) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(
            "only the agent that made the request claims and reports its execution".into(),
        ))
    }
}

/// The execution claim of a request the policy has just approved, as
/// `claim_execution` would make it: the same state, one more `version`, the
/// same entry. `None` (nothing claimed, the agent claims as usual) when the
/// claim is refused, e.g. a policy with no time to execute.
fn claim_on_create(a: &mut Approval, claim_id: String, now: Millis) -> Option<AuditEvent> {
    if !a.claim_execution(&claim_id, now).ok()? {
        return None;
    }
    a.version += 1;
    Some(AuditEvent::ApprovalExecutionClaimed {
        claim_id,
        execute_before: a.execute_before().map(crate::store::format_time),
        final_args: a.final_args.clone(),
    })
}

fn replay(existing: Approval, digest: &str, key: &str) -> Result<(Approval, bool)> {
    if existing.args_digest == digest {
        Ok((existing, false))
    } else {
        Err(ServiceError::IdempotencyConflict(key.to_owned()))
    }
}
