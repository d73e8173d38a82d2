//! Reminders and escalation: the timers set when a request is created
//! (policy `remind_after`, `escalate_after`), and what firing one does. The
//! worker (`crate::reminders`) only asks what is due and fires it.

use super::{enqueue_once, ControlPlane, Result, ServiceError, Step};
use crate::approval::{Actor, Approval, Status};
use crate::audit_event::AuditEvent;
use crate::policy::Policy;
use crate::store::timers::DueTimer;
use crate::store::{StoreError, WriteTx};
use serde_json::json;

/// The timer kinds.
pub const REMIND: &str = "remind";
pub const ESCALATE: &str = "escalate";

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

/// Sets the policy's timers for a request just created, in its
/// transaction. A request the policy decided at once needs none.
pub(super) async fn set_timers(
    tx: &mut WriteTx,
    a: &Approval,
    policy: &Policy,
) -> std::result::Result<(), StoreError> {
    if a.status != Status::Pending {
        return Ok(());
    }
    if let Some(d) = policy.remind_after {
        tx.insert_timer(&a.id, REMIND, a.created_at.saturating_add(millis(d)))
            .await?;
    }
    if let Some(e) = &policy.escalation {
        tx.insert_timer(
            &a.id,
            ESCALATE,
            a.created_at.saturating_add(millis(e.after)),
        )
        .await?;
    }
    Ok(())
}

/// Most escalated requests the inbox lists apart (the oldest pending first).
pub const ESCALATED_LISTED: u32 = 50;

impl ControlPlane {
    /// Pending requests escalated to this person under policies they do
    /// not otherwise approve: the inbox lists them apart, as the queue
    /// lists a person's own policies. Read through the indexed listing of
    /// pending requests of those policies.
    pub async fn escalated_to(&self, principal: &crate::auth::Principal) -> Result<Vec<Approval>> {
        let crate::auth::Principal::User(u) = principal else {
            return Ok(vec![]);
        };
        let policies: Vec<String> = self
            .policies()
            .iter()
            .filter(|p| {
                p.is_escalation_approver(&u.email, &u.groups) && !p.is_approver(&u.email, &u.groups)
            })
            .map(|p| p.name.clone())
            .collect();
        if policies.is_empty() {
            return Ok(vec![]);
        }
        let page = self
            .store
            .list_approvals(&crate::store::ApprovalFilter {
                status: Some(Status::Pending),
                policies_in: Some(policies),
                oldest_first: true,
                limit: ESCALATED_LISTED,
                ..Default::default()
            })
            .await?;
        Ok(page
            .items
            .into_iter()
            .filter(|a| a.escalated_at.is_some())
            .collect())
    }

    /// Timers due by `now`, earliest first.
    pub async fn due_timers(&self, now: i64, limit: i64) -> Result<Vec<DueTimer>> {
        Ok(self.store.due_timers(now, limit).await?)
    }

    /// When the next timer is due.
    pub async fn next_timer(&self) -> Result<Option<i64>> {
        Ok(self.store.next_timer().await?)
    }

    /// Fires one due timer: a reminder or the escalation, each with its
    /// audit entry and notifications in one transaction. A timer of a
    /// request no longer pending (or of a policy that no longer asks for
    /// it) is closed without effect. Returns whether it did something.
    pub async fn fire_timer(&self, t: &DueTimer) -> Result<bool> {
        let fired = match t.kind.as_str() {
            REMIND => self.remind(&t.approval_id).await,
            ESCALATE => self.escalate(&t.approval_id).await,
            other => {
                tracing::warn!(kind = %other, approval = %t.approval_id, "unknown timer kind; closing it");
                Ok(false)
            }
        };
        let fired = match fired {
            Err(ServiceError::NotFound(_)) => false,
            other => other?,
        };
        if !fired {
            self.store.close_timer(&t.approval_id, &t.kind).await?;
        }
        Ok(fired)
    }

    /// The reminder: the same people are notified again (a Slack thread
    /// reply, another e-mail), recorded as `approval.reminded`.
    async fn remind(&self, id: &str) -> Result<bool> {
        let mut tx = self.store.begin_write().await?;
        let Some(a) = tx.get_approval(id).await? else {
            tx.rollback().await;
            return Ok(false);
        };
        let policy = self.policies().get(&a.policy).cloned();
        let Some(after) = policy.as_ref().and_then(|p| p.remind_after) else {
            tx.rollback().await;
            return Ok(false);
        };
        if a.status != Status::Pending {
            tx.rollback().await;
            return Ok(false);
        }
        let event = AuditEvent::ApprovalReminded {
            remind_after_seconds: after.as_secs(),
        };
        tx.audit(Actor::System, Some(&a.id), event).await?;
        self.queue_thread_notice(&mut tx, &a, REMIND).await?;
        if policy.as_ref().is_some_and(|p| p.email.is_some()) {
            self.queue_email_kind(&mut tx, &a, "email.reminder").await?;
        }
        tx.timer_fired(&a.id, REMIND).await?;
        tx.commit().await?;
        self.notifier.queued();
        Ok(true)
    }

    /// The escalation: the policy's `escalate_to` may decide from now on
    /// (`Approval::escalate`), through the one shape of every change to a
    /// request; `change_request` queues their notices.
    async fn escalate(&self, id: &str) -> Result<bool> {
        let now = crate::store::now_millis();
        let (_, changed) = self
            .change_request(id, |a| {
                let Some(e) = self
                    .policies()
                    .get(&a.policy)
                    .and_then(|p| p.escalation.clone())
                else {
                    return Ok(None);
                };
                if a.status != Status::Pending || !a.escalate(now)? {
                    return Ok(None);
                }
                Ok(Some(Step::new(
                    Actor::System,
                    AuditEvent::ApprovalEscalated {
                        escalate_after_seconds: e.after.as_secs(),
                        escalate_to: e.to.iter().map(|t| t.to_string()).collect(),
                    },
                )))
            })
            .await?;
        Ok(changed)
    }

    /// What an escalation queues beside the usual update: a Slack thread
    /// notice, an e-mail to the `escalate_to`, and the timer closed.
    pub(super) async fn queue_escalation(&self, tx: &mut WriteTx, a: &Approval) -> Result<()> {
        self.queue_thread_notice(tx, a, ESCALATE).await?;
        let email = self
            .policies()
            .get(&a.policy)
            .is_some_and(|p| p.email.is_some());
        if email {
            self.queue_email_kind(tx, a, "email.escalated").await?;
        }
        tx.timer_fired(&a.id, ESCALATE).await?;
        Ok(())
    }

    /// A reply in the thread of each Slack message of the request, when
    /// Slack is on (`crate::outbox` delivers it).
    async fn queue_thread_notice(&self, tx: &mut WriteTx, a: &Approval, what: &str) -> Result<()> {
        if self.settings.slack.is_none() {
            return Ok(());
        }
        let payload = json!({"approval_id": a.id, "notice": what});
        enqueue_once(tx, "slack.thread", &a.id, Some(what), &payload).await
    }
}
