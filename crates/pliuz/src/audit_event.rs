//! Every kind of audit entry, with its data: the only way an entry's `type`
//! and `data` are made. docs/audit.md's table lists exactly these kinds
//! (checked by `tests/audit_events.rs`); the store only serialises them.
//!
//! Adjacently tagged (`{"type": …, "data": {…}}`), the same shape as the
//! entry itself, so a `data` field may be called `type` too (webhooks).
//! Entries are written as RFC 8785 canonical JSON, so the field order here
//! does not change the bytes; the field *names* and values must never change.

pub use crate::approval::{DecisionKind, Status};
use crate::auth::Role;
use crate::policy::PolicySummary;
use crate::question::Choice;
use crate::run::RunStatus;
use serde::Serialize;
use serde_json::{Map, Value};

/// A request's arguments, as written into entries.
pub type Args = Map<String, Value>;

macro_rules! audit_events {
    ($(
        $(#[$doc:meta])*
        $name:literal => $variant:ident {
            $( $(#[$field_attr:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    )*) => {
        /// One thing that happened, as recorded in the audit log.
        #[derive(Debug, Clone, Serialize)]
        #[serde(tag = "type", content = "data")]
        pub enum AuditEvent {
            $(
                $(#[$doc])*
                #[serde(rename = $name)]
                $variant { $( $(#[$field_attr])* $field: $ty ),* },
            )*
        }

        impl AuditEvent {
            /// Every kind, in docs/audit.md's order.
            pub const KINDS: &'static [&'static str] = &[$($name),*];

            /// The entry's `type`.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(AuditEvent::$variant { .. } => $name,)*
                }
            }
        }
    };
}

audit_events! {
    /// An agent opened a request. `condition_errors`: policy conditions
    /// that failed to evaluate (a human decides instead).
    "approval.created" => ApprovalCreated {
        tool_name: String,
        tool_args: Args,
        args_digest: String,
        policy: String,
        agent: String,
        originator: Option<String>,
        call_id: Option<String>,
        session_id: Option<String>,
        idempotency_key: Option<String>,
        required_approvals: u32,
        expires_at: String,
        condition_errors: Vec<String>,
    }
    /// The request settled: by a human (with the `args_digest` they
    /// reviewed) or by a policy condition (with that `condition`).
    "approval.decided" => ApprovalDecided {
        decision: DecisionKind,
        outcome: Status,
        reason: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        condition: Option<String>,
        original_args: Args,
        #[serde(skip_serializing_if = "Option::is_none")]
        args_digest: Option<String>,
        final_args: Option<Args>,
        edited: bool,
    }
    /// A human's approval counted towards a quorum; still pending.
    "approval.voted" => ApprovalVoted {
        decision: DecisionKind,
        outcome: VoteCount,
        reason: Option<String>,
        original_args: Args,
        args_digest: String,
        final_args: Option<Args>,
        edited: bool,
    }
    "approval.cancelled" => ApprovalCancelled {
        reason: Option<String>,
    }
    "approval.expired" => ApprovalExpired {
        expires_at: String,
    }
    "approval.execution_claimed" => ApprovalExecutionClaimed {
        claim_id: String,
        execute_before: Option<String>,
        final_args: Option<Args>,
    }
    "approval.executed" => ApprovalExecuted {
        claim_id: Option<String>,
        outcome: &'static str,
        latency_ms: Option<i64>,
        output_excerpt: Option<String>,
        final_args: Option<Args>,
    }
    /// Still pending after the policy's `remind_after`: its approvers were
    /// notified again.
    "approval.reminded" => ApprovalReminded {
        remind_after_seconds: u64,
    }
    /// Still pending after the policy's `escalate_after`: its `escalate_to`
    /// may decide from now on.
    "approval.escalated" => ApprovalEscalated {
        escalate_after_seconds: u64,
        escalate_to: Vec<String>,
    }
    /// An agent asked a person a question (`POST /api/v1/questions`).
    "question.asked" => QuestionAsked {
        question_id: String,
        text: String,
        choices: Vec<Choice>,
        allow_free_text: bool,
        policy: String,
        agent: String,
        originator: Option<String>,
        idempotency_key: Option<String>,
        expires_at: String,
    }
    /// A person answered: the chosen option's value and/or free text.
    "question.answered" => QuestionAnswered {
        question_id: String,
        choice: Option<String>,
        text: Option<String>,
    }
    "question.expired" => QuestionExpired {
        question_id: String,
        expires_at: String,
    }
    /// `via`, `issuer`, `idp_groups`: only for accounts made by single sign-on.
    "user.created" => UserCreated {
        email: String,
        role: Role,
        groups: Vec<String>,
        #[serde(flatten)]
        sso: Option<SsoOrigin>,
    }
    "user.password_set" => UserPasswordSet {
        email: String,
    }
    "user.token_issued" => UserTokenIssued {
        email: String,
        token_id: String,
        label: Option<String>,
    }
    "user.tokens_revoked" => UserTokensRevoked {
        email: String,
        count: u64,
    }
    /// One token revoked by id (`user.tokens_revoked`: all of them).
    "user.token_revoked" => UserTokenRevoked {
        email: String,
        token_id: String,
    }
    /// `via`: "oidc" (single sign-on; `idp_groups` granted it) or "admin".
    "user.role_changed" => UserRoleChanged {
        email: String,
        from: Role,
        to: Role,
        via: &'static str,
        idp_groups: Vec<String>,
    }
    "user.group_added" => UserGroupAdded {
        email: String,
        group: String,
        changed: bool,
        #[serde(flatten)]
        sso: Option<SsoGroups>,
    }
    "user.group_removed" => UserGroupRemoved {
        email: String,
        group: String,
        changed: bool,
        #[serde(flatten)]
        sso: Option<SsoGroups>,
    }
    "user.disabled" => UserDisabled {
        email: String,
    }
    "user.enabled" => UserEnabled {
        email: String,
    }
    /// `issuer`, `role`, `groups`: only for single sign-on.
    "user.logged_in" => UserLoggedIn {
        email: String,
        via: String,
        #[serde(flatten)]
        sso: Option<SsoSession>,
        session_expires_at: String,
    }
    "user.logged_out" => UserLoggedOut {
        email: String,
        via: String,
    }
    "agent.created" => AgentCreated {
        name: String,
    }
    "agent.revoked" => AgentRevoked {
        name: String,
    }
    "agent.webhook_set" => AgentWebhookSet {
        name: String,
        url: String,
        secret_rotated: bool,
    }
    "run.paused" => RunPaused {
        run_id: String,
        state_sha256: String,
        state_bytes: i64,
        approval_ids: Vec<String>,
        pause_count: i64,
        /// Only when the run waits on questions (older entries have none).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        question_ids: Vec<String>,
    }
    "run.ready" => RunReady {
        run_id: String,
        approval_ids: Vec<String>,
        state_sha256: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        question_ids: Vec<String>,
    }
    "run.resumed" => RunResumed {
        run_id: String,
        state_sha256: String,
        lease_expires_at: Option<String>,
        after_expired_lease: bool,
    }
    "run.completed" => RunCompleted {
        run_id: String,
        outcome: RunStatus,
        state_sha256: String,
        output_sha256: Option<String>,
        error: Option<String>,
    }
    /// A Slack message went out; `kind` is the outbox row's kind.
    "notification.sent" => NotificationSent {
        outbox_id: String,
        kind: String,
        #[serde(flatten)]
        message: SlackDelivery,
    }
    "notification.failed" => NotificationFailed {
        outbox_id: String,
        kind: String,
        attempts: i64,
        error: String,
    }
    /// An e-mail about a request or a question went to one recipient;
    /// `kind` is the outbox row's kind (`email.request`, `email.reminder`,
    /// `email.escalated`, `email.settled`, `email.question`,
    /// `email.question_settled`). A question's e-mail names the question
    /// (a request's is the entry's request).
    "email.sent" => EmailSent {
        outbox_id: String,
        kind: String,
        to: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        question_id: Option<String>,
    }
    /// A link from an e-mail was opened by a signed-in approver (and so
    /// used up); `sent_to` is the address it was mailed to; a question's
    /// link names the question.
    "email.link_used" => EmailLinkUsed {
        sent_to: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        question_id: Option<String>,
    }
    "webhook.delivered" => WebhookDelivered {
        outbox_id: String,
        webhook_id: String,
        #[serde(rename = "type")]
        event_type: String,
        agent: String,
        url: String,
        status: u16,
        attempts: i64,
    }
    /// `type` and `agent` as queued (null when the row lacks them).
    "webhook.failed" => WebhookFailed {
        outbox_id: String,
        #[serde(rename = "type")]
        event_type: Option<Value>,
        agent: Option<Value>,
        attempts: i64,
        error: String,
    }
    "policy.loaded" => PolicyLoaded {
        source_sha256: String,
        config_path: Option<String>,
        default_policy: Option<String>,
        policies: Vec<PolicySummary>,
    }
    /// Made over the management API (`policy_source = "database"`), or
    /// imported from the file on the first such start: `definition` is the
    /// policy as given, `policy` what it resolved to.
    "policy.created" => PolicyCreated {
        name: String,
        definition: Value,
        policy: PolicySummary,
    }
    /// Replaced whole over the management API; the full new policy.
    "policy.updated" => PolicyUpdated {
        name: String,
        definition: Value,
        policy: PolicySummary,
    }
    "policy.deleted" => PolicyDeleted {
        name: String,
    }
    "audit.key_rotated" => AuditKeyRotated {
        previous_key: String,
        key: String,
        sealed_at_size: u64,
    }
    "audit.rollback_accepted" => AuditRollbackAccepted {
        remembered_size: u64,
        remembered_checkpoint: String,
        remembered_signed_at: String,
        log_size: u64,
        problem: String,
        archived_file: Option<String>,
    }
}

impl AuditEvent {
    /// The entry's `data` object.
    pub fn data(&self) -> Result<Value, serde_json::Error> {
        match serde_json::to_value(self)? {
            Value::Object(mut tagged) => Ok(tagged
                .remove("data")
                .unwrap_or_else(|| Value::Object(Map::new()))),
            other => Ok(other),
        }
    }
}

/// Progress of a quorum: approvals so far and how many are needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VoteCount {
    pub approvals: u32,
    pub required: u32,
}

/// Where a single-sign-on account came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SsoOrigin {
    pub via: &'static str,
    pub issuer: String,
    pub idp_groups: Vec<String>,
}

/// A group change made by single sign-on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SsoGroups {
    pub via: &'static str,
    pub idp_groups: Vec<String>,
}

/// What a single-sign-on log-in granted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SsoSession {
    pub issuer: String,
    pub role: Role,
    pub groups: Vec<String>,
}

/// The Slack side of a sent notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SlackDelivery {
    /// The request message, posted in a channel.
    Posted {
        target: String,
        channel: String,
        ts: String,
    },
    /// A direct message to one approver.
    DirectMessage {
        target: String,
        email: String,
        channel: String,
        ts: String,
    },
    /// The posted messages, updated to the request's new state.
    Updated {
        status: Status,
        messages: Vec<Value>,
    },
    /// A reminder or escalation notice, replied in each posted message's thread.
    ThreadReplies { replies: Vec<Value> },
    /// A question from an agent, posted in a channel.
    QuestionPosted {
        question_id: String,
        target: String,
        channel: String,
        ts: String,
    },
    /// A question's messages, updated once it was answered or expired.
    QuestionUpdated {
        question_id: String,
        status: crate::question::QuestionStatus,
        messages: Vec<Value>,
    },
}

#[cfg(test)]
mod tests {
    //! Each kind's data against the `json!` the server wrote before the enum
    //! existed (copied from the call sites): the log's bytes must not change.

    use super::*;
    use crate::policy::PolicySet;
    use serde_json::json;

    fn args() -> Args {
        json!({"order_id": "A-1", "amount_cents": 1250, "nested": {"b": [1, 2], "a": null}})
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    fn entry_bytes(kind: &str, data: Value) -> Vec<u8> {
        pliuz_audit::Entry {
            index: 7,
            time: "2025-01-31T12:00:00.000Z".into(),
            kind: kind.into(),
            actor: "system".into(),
            approval_id: Some("0190".into()),
            data,
        }
        .to_canonical_bytes()
        .expect("canonical")
    }

    fn same(event: AuditEvent, kind: &str, before: Value) {
        assert_eq!(event.kind(), kind);
        let data = event.data().expect("serialises");
        assert_eq!(
            data, before,
            "{kind}: data differs from what was written before"
        );
        assert_eq!(
            entry_bytes(event.kind(), data),
            entry_bytes(kind, before),
            "{kind}: entry bytes differ"
        );
    }

    #[test]
    fn every_kind_writes_the_same_data_as_before() {
        let a = args();
        let idp = vec!["eng".to_owned()];
        let sso_groups = || {
            Some(SsoGroups {
                via: "oidc",
                idp_groups: idp.clone(),
            })
        };
        same(
            AuditEvent::ApprovalCreated {
                tool_name: "refund".into(),
                tool_args: a.clone(),
                args_digest: "d1".into(),
                policy: "p".into(),
                agent: "bot".into(),
                originator: None,
                call_id: Some("c".into()),
                session_id: None,
                idempotency_key: Some("k".into()),
                required_approvals: 2,
                expires_at: "2025-01-31T12:30:00.000Z".into(),
                condition_errors: vec!["x failed".into()],
            },
            "approval.created",
            json!({
                "tool_name": "refund", "tool_args": a, "args_digest": "d1", "policy": "p",
                "agent": "bot", "originator": null, "call_id": "c", "session_id": null,
                "idempotency_key": "k", "required_approvals": 2,
                "expires_at": "2025-01-31T12:30:00.000Z", "condition_errors": ["x failed"],
            }),
        );
        // By a policy condition.
        same(
            AuditEvent::ApprovalDecided {
                decision: DecisionKind::Reject,
                outcome: Status::Rejected,
                reason: Some("auto-rejected".into()),
                condition: Some("args.amount_cents > 100".into()),
                original_args: a.clone(),
                args_digest: None,
                final_args: None,
                edited: false,
            },
            "approval.decided",
            json!({
                "decision": "reject", "outcome": Status::Rejected, "reason": "auto-rejected",
                "condition": "args.amount_cents > 100", "original_args": a,
                "final_args": null, "edited": false,
            }),
        );
        // By a human.
        same(
            AuditEvent::ApprovalDecided {
                decision: DecisionKind::Edit,
                outcome: Status::Approved,
                reason: None,
                condition: None,
                original_args: a.clone(),
                args_digest: Some("d2".into()),
                final_args: Some(Map::new()),
                edited: true,
            },
            "approval.decided",
            json!({
                "decision": DecisionKind::Edit, "outcome": json!(Status::Approved), "reason": null,
                "original_args": a, "args_digest": "d2", "final_args": {}, "edited": true,
            }),
        );
        same(
            AuditEvent::ApprovalVoted {
                decision: DecisionKind::Approve,
                outcome: VoteCount {
                    approvals: 1,
                    required: 2,
                },
                reason: Some("ok".into()),
                original_args: a.clone(),
                args_digest: "d3".into(),
                final_args: None,
                edited: false,
            },
            "approval.voted",
            json!({
                "decision": DecisionKind::Approve, "outcome": {"approvals": 1, "required": 2},
                "reason": "ok", "original_args": a, "args_digest": "d3", "final_args": null,
                "edited": false,
            }),
        );
        same(
            AuditEvent::ApprovalCancelled { reason: None },
            "approval.cancelled",
            json!({"reason": null}),
        );
        same(
            AuditEvent::ApprovalExpired {
                expires_at: "t".into(),
            },
            "approval.expired",
            json!({"expires_at": "t"}),
        );
        same(
            AuditEvent::ApprovalExecutionClaimed {
                claim_id: "c1".into(),
                execute_before: Some("t".into()),
                final_args: Some(a.clone()),
            },
            "approval.execution_claimed",
            json!({"claim_id": "c1", "execute_before": "t", "final_args": a}),
        );
        same(
            AuditEvent::ApprovalExecuted {
                claim_id: None,
                outcome: "success",
                latency_ms: Some(12),
                output_excerpt: None,
                final_args: None,
            },
            "approval.executed",
            json!({"claim_id": null, "outcome": "success", "latency_ms": 12, "output_excerpt": null, "final_args": null}),
        );
        same(
            AuditEvent::UserCreated {
                email: "a@b".into(),
                role: Role::Admin,
                groups: vec!["g".into()],
                sso: None,
            },
            "user.created",
            json!({"email": "a@b", "role": Role::Admin, "groups": ["g"]}),
        );
        same(
            AuditEvent::UserCreated {
                email: "a@b".into(),
                role: Role::Approver,
                groups: vec![],
                sso: Some(SsoOrigin {
                    via: "oidc",
                    issuer: "https://idp".into(),
                    idp_groups: idp.clone(),
                }),
            },
            "user.created",
            json!({"email": "a@b", "role": Role::Approver, "groups": [], "via": "oidc", "issuer": "https://idp", "idp_groups": idp}),
        );
        same(
            AuditEvent::UserPasswordSet {
                email: "a@b".into(),
            },
            "user.password_set",
            json!({"email": "a@b"}),
        );
        same(
            AuditEvent::UserTokenIssued {
                email: "a@b".into(),
                token_id: "t1".into(),
                label: None,
            },
            "user.token_issued",
            json!({"email": "a@b", "token_id": "t1", "label": null}),
        );
        same(
            AuditEvent::UserTokensRevoked {
                email: "a@b".into(),
                count: 3,
            },
            "user.tokens_revoked",
            json!({"email": "a@b", "count": 3}),
        );
        same(
            AuditEvent::UserRoleChanged {
                email: "a@b".into(),
                from: Role::Approver,
                to: Role::Admin,
                via: "oidc",
                idp_groups: idp.clone(),
            },
            "user.role_changed",
            json!({"email": "a@b", "from": Role::Approver, "to": Role::Admin, "via": "oidc", "idp_groups": idp}),
        );
        same(
            AuditEvent::UserGroupAdded {
                email: "a@b".into(),
                group: "g".into(),
                changed: false,
                sso: None,
            },
            "user.group_added",
            json!({"email": "a@b", "group": "g", "changed": false}),
        );
        same(
            AuditEvent::UserGroupRemoved {
                email: "a@b".into(),
                group: "g".into(),
                changed: true,
                sso: sso_groups(),
            },
            "user.group_removed",
            json!({"email": "a@b", "group": "g", "changed": true, "via": "oidc", "idp_groups": idp}),
        );
        same(
            AuditEvent::UserGroupAdded {
                email: "a@b".into(),
                group: "g".into(),
                changed: true,
                sso: sso_groups(),
            },
            "user.group_added",
            json!({"email": "a@b", "group": "g", "changed": true, "via": "oidc", "idp_groups": idp}),
        );
        same(
            AuditEvent::UserDisabled {
                email: "a@b".into(),
            },
            "user.disabled",
            json!({"email": "a@b"}),
        );
        same(
            AuditEvent::UserEnabled {
                email: "a@b".into(),
            },
            "user.enabled",
            json!({"email": "a@b"}),
        );
        same(
            AuditEvent::UserLoggedIn {
                email: "a@b".into(),
                via: "password".into(),
                sso: None,
                session_expires_at: "t".into(),
            },
            "user.logged_in",
            json!({"email": "a@b", "via": "password", "session_expires_at": "t"}),
        );
        same(
            AuditEvent::UserLoggedIn {
                email: "a@b".into(),
                via: "oidc".into(),
                sso: Some(SsoSession {
                    issuer: "https://idp".into(),
                    role: Role::Auditor,
                    groups: vec!["g".into()],
                }),
                session_expires_at: "t".into(),
            },
            "user.logged_in",
            json!({"email": "a@b", "via": "oidc", "issuer": "https://idp", "role": Role::Auditor, "groups": ["g"], "session_expires_at": "t"}),
        );
        same(
            AuditEvent::UserLoggedOut {
                email: "a@b".into(),
                via: "password".into(),
            },
            "user.logged_out",
            json!({"email": "a@b", "via": "password"}),
        );
        same(
            AuditEvent::AgentCreated { name: "bot".into() },
            "agent.created",
            json!({"name": "bot"}),
        );
        same(
            AuditEvent::AgentRevoked { name: "bot".into() },
            "agent.revoked",
            json!({"name": "bot"}),
        );
        same(
            AuditEvent::AgentWebhookSet {
                name: "bot".into(),
                url: "https://x".into(),
                secret_rotated: true,
            },
            "agent.webhook_set",
            json!({"name": "bot", "url": "https://x", "secret_rotated": true}),
        );
        let ids = vec!["a1".to_owned()];
        same(
            AuditEvent::RunPaused {
                run_id: "r".into(),
                state_sha256: "s".into(),
                state_bytes: 10,
                approval_ids: ids.clone(),
                pause_count: 1,
                question_ids: vec![],
            },
            "run.paused",
            json!({"run_id": "r", "state_sha256": "s", "state_bytes": 10, "approval_ids": ids, "pause_count": 1}),
        );
        same(
            AuditEvent::RunReady {
                run_id: "r".into(),
                approval_ids: ids.clone(),
                state_sha256: "s".into(),
                question_ids: vec![],
            },
            "run.ready",
            json!({"run_id": "r", "approval_ids": ids, "state_sha256": "s"}),
        );
        same(
            AuditEvent::RunResumed {
                run_id: "r".into(),
                state_sha256: "s".into(),
                lease_expires_at: None,
                after_expired_lease: false,
            },
            "run.resumed",
            json!({"run_id": "r", "state_sha256": "s", "lease_expires_at": null, "after_expired_lease": false}),
        );
        same(
            AuditEvent::RunCompleted {
                run_id: "r".into(),
                outcome: RunStatus::Failed,
                state_sha256: "s".into(),
                output_sha256: None,
                error: Some("boom".into()),
            },
            "run.completed",
            json!({"run_id": "r", "outcome": RunStatus::Failed, "state_sha256": "s", "output_sha256": null, "error": "boom"}),
        );
        same(
            AuditEvent::NotificationSent {
                outbox_id: "o".into(),
                kind: "slack.post".into(),
                message: SlackDelivery::Posted {
                    target: "#c".into(),
                    channel: "C1".into(),
                    ts: "1.2".into(),
                },
            },
            "notification.sent",
            json!({"outbox_id": "o", "kind": "slack.post", "target": "#c", "channel": "C1", "ts": "1.2"}),
        );
        same(
            AuditEvent::NotificationSent {
                outbox_id: "o".into(),
                kind: "slack.dm".into(),
                message: SlackDelivery::DirectMessage {
                    target: "U1".into(),
                    email: "a@b".into(),
                    channel: "D1".into(),
                    ts: "1.2".into(),
                },
            },
            "notification.sent",
            json!({"outbox_id": "o", "kind": "slack.dm", "target": "U1", "email": "a@b", "channel": "D1", "ts": "1.2"}),
        );
        same(
            AuditEvent::NotificationSent {
                outbox_id: "o".into(),
                kind: "slack.update".into(),
                message: SlackDelivery::Updated {
                    status: Status::Expired,
                    messages: vec![json!({"channel": "C1", "ts": "1.2"})],
                },
            },
            "notification.sent",
            json!({"outbox_id": "o", "kind": "slack.update", "status": Status::Expired, "messages": [{"channel": "C1", "ts": "1.2"}]}),
        );
        same(
            AuditEvent::ApprovalEscalated {
                escalate_after_seconds: 3600,
                escalate_to: vec!["group:leads".into()],
            },
            "approval.escalated",
            json!({"escalate_after_seconds": 3600, "escalate_to": ["group:leads"]}),
        );
        same(
            AuditEvent::ApprovalReminded {
                remind_after_seconds: 900,
            },
            "approval.reminded",
            json!({"remind_after_seconds": 900}),
        );
        same(
            AuditEvent::EmailSent {
                outbox_id: "o".into(),
                kind: "email.request".into(),
                to: "a@b".into(),
                question_id: None,
            },
            "email.sent",
            json!({"outbox_id": "o", "kind": "email.request", "to": "a@b"}),
        );
        same(
            AuditEvent::EmailSent {
                outbox_id: "o".into(),
                kind: "email.question".into(),
                to: "a@b".into(),
                question_id: Some("q".into()),
            },
            "email.sent",
            json!({"outbox_id": "o", "kind": "email.question", "to": "a@b", "question_id": "q"}),
        );
        same(
            AuditEvent::EmailLinkUsed {
                sent_to: "a@b".into(),
                question_id: None,
            },
            "email.link_used",
            json!({"sent_to": "a@b"}),
        );
        same(
            AuditEvent::NotificationFailed {
                outbox_id: "o".into(),
                kind: "slack.post".into(),
                attempts: 9,
                error: "e".into(),
            },
            "notification.failed",
            json!({"outbox_id": "o", "kind": "slack.post", "attempts": 9, "error": "e"}),
        );
        same(
            AuditEvent::WebhookDelivered {
                outbox_id: "o".into(),
                webhook_id: "w".into(),
                event_type: "approval.decided".into(),
                agent: "bot".into(),
                url: "https://x".into(),
                status: 204,
                attempts: 1,
            },
            "webhook.delivered",
            json!({"outbox_id": "o", "webhook_id": "w", "type": "approval.decided", "agent": "bot", "url": "https://x", "status": 204, "attempts": 1}),
        );
        let payload = json!({"type": "run.ready"});
        same(
            AuditEvent::WebhookFailed {
                outbox_id: "o".into(),
                event_type: payload.get("type").cloned(),
                agent: payload.get("agent").cloned(),
                attempts: 3,
                error: "e".into(),
            },
            "webhook.failed",
            json!({"outbox_id": "o", "type": payload.get("type"), "agent": payload.get("agent"), "attempts": 3, "error": "e"}),
        );
        let policies = PolicySet::default();
        same(
            AuditEvent::PolicyLoaded {
                source_sha256: "h".into(),
                config_path: None,
                default_policy: policies.default_policy().map(str::to_owned),
                policies: policies.iter().map(|p| p.summary()).collect(),
            },
            "policy.loaded",
            json!({
                "source_sha256": "h", "config_path": null,
                "default_policy": policies.default_policy(),
                "policies": policies.iter().map(|p| p.summary()).collect::<Vec<_>>(),
            }),
        );
        same(
            AuditEvent::UserTokenRevoked {
                email: "a@b".into(),
                token_id: "t1".into(),
            },
            "user.token_revoked",
            json!({"email": "a@b", "token_id": "t1"}),
        );
        let summary = PolicySummary {
            name: "deploys".into(),
            description: None,
            tools: vec!["deploy".into()],
            approvers: vec!["group:ops".into()],
            decisions: vec![DecisionKind::Approve],
            required_approvals: 1,
            expires_in_seconds: 60,
            execute_within_seconds: 60,
            auto_approve: None,
            auto_reject: None,
            slack_channel: None,
            reject_reasons: vec![],
            email: false,
            email_to: vec![],
            remind_after_seconds: None,
            escalate_after_seconds: None,
            escalate_to: vec![],
        };
        let definition =
            json!({"name": "deploys", "tools": ["deploy"], "approvers": ["group:ops"]});
        let resolved = json!({
            "name": "deploys", "description": null, "tools": ["deploy"],
            "approvers": ["group:ops"], "decisions": ["approve"], "required_approvals": 1,
            "expires_in_seconds": 60, "execute_within_seconds": 60, "auto_approve": null,
            "auto_reject": null, "slack_channel": null,
        });
        same(
            AuditEvent::PolicyCreated {
                name: "deploys".into(),
                definition: definition.clone(),
                policy: summary.clone(),
            },
            "policy.created",
            json!({"name": "deploys", "definition": definition, "policy": resolved}),
        );
        same(
            AuditEvent::PolicyUpdated {
                name: "deploys".into(),
                definition: definition.clone(),
                policy: summary,
            },
            "policy.updated",
            json!({"name": "deploys", "definition": definition, "policy": resolved}),
        );
        same(
            AuditEvent::PolicyDeleted {
                name: "deploys".into(),
            },
            "policy.deleted",
            json!({"name": "deploys"}),
        );
        same(
            AuditEvent::AuditKeyRotated {
                previous_key: "k0".into(),
                key: "k1".into(),
                sealed_at_size: 5,
            },
            "audit.key_rotated",
            json!({"previous_key": "k0", "key": "k1", "sealed_at_size": 5}),
        );
        same(
            AuditEvent::AuditRollbackAccepted {
                remembered_size: 9,
                remembered_checkpoint: "note".into(),
                remembered_signed_at: "t".into(),
                log_size: 4,
                problem: "p".into(),
                archived_file: None,
            },
            "audit.rollback_accepted",
            json!({"remembered_size": 9, "remembered_checkpoint": "note", "remembered_signed_at": "t", "log_size": 4, "problem": "p", "archived_file": null}),
        );
        same(
            AuditEvent::QuestionAsked {
                question_id: "q1".into(),
                text: "Which?".into(),
                choices: vec![Choice {
                    value: "a".into(),
                    label: "A".into(),
                }],
                allow_free_text: false,
                policy: "p".into(),
                agent: "bot".into(),
                originator: None,
                idempotency_key: Some("k".into()),
                expires_at: "t".into(),
            },
            "question.asked",
            json!({"question_id": "q1", "text": "Which?", "choices": [{"value": "a", "label": "A"}], "allow_free_text": false, "policy": "p", "agent": "bot", "originator": null, "idempotency_key": "k", "expires_at": "t"}),
        );
        same(
            AuditEvent::QuestionAnswered {
                question_id: "q1".into(),
                choice: Some("a".into()),
                text: None,
            },
            "question.answered",
            json!({"question_id": "q1", "choice": "a", "text": null}),
        );
        same(
            AuditEvent::QuestionExpired {
                question_id: "q1".into(),
                expires_at: "t".into(),
            },
            "question.expired",
            json!({"question_id": "q1", "expires_at": "t"}),
        );
    }

    #[test]
    fn every_kind_is_listed_once() {
        let mut kinds = AuditEvent::KINDS.to_vec();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), AuditEvent::KINDS.len());
        assert_eq!(kinds.len(), 43);
    }
}
