//! Delivery records of the outbox (Slack messages and webhooks): claims,
//! retries, deliveries and give-ups. The workers (`crate::outbox`,
//! `crate::webhooks`) talk to the outside; what they learn is written here,
//! with its audit entry in the same transaction.

use super::ControlPlane;
use crate::approval::Actor;
use crate::audit_event::AuditEvent;
use crate::metrics::{Channel, DeliveryOutcome};
use crate::store::slack as sstore;
use crate::store::{StoreError, WriteTx};

type Result<T> = std::result::Result<T, StoreError>;

/// A Slack message now in Slack: where it was posted.
pub struct Posted<'a> {
    pub target: &'a str,
    pub approval_id: &'a str,
    pub channel: &'a str,
    pub ts: &'a str,
}

/// How a webhook delivery ended: the receiver accepted it, or Pliuz gave
/// up on it after `error`.
pub enum WebhookEnd<'a> {
    Delivered,
    GivenUp { error: &'a str },
}

impl ControlPlane {
    /// Takes the lease on a due outbox row, whatever its channel (`false`:
    /// another worker has it).
    pub async fn claim_delivery(
        &self,
        id: &str,
        seen_due_at: i64,
        lease_until: i64,
    ) -> Result<bool> {
        sstore::claim(&self.store, id, seen_due_at, lease_until).await
    }

    /// Schedules another attempt of an outbox row at `next`.
    pub async fn retry_delivery(&self, id: &str, next: i64, error: &str) -> Result<()> {
        self.store.mark_retry(id, next, error).await
    }

    /// Closes an outbox row with nothing (more) to send.
    pub async fn close_delivery(&self, id: &str) -> Result<()> {
        self.store.mark_delivered(id).await
    }

    /// Gives up on an outbox row of `channel` (Slack, e-mail), with its
    /// `notification.failed` entry.
    pub async fn give_up_delivery(
        &self,
        channel: Channel,
        id: &str,
        approval_id: Option<String>,
        kind: &str,
        attempts: i64,
        error: &str,
    ) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        sstore::give_up_tx(&mut tx, id, error).await?;
        let event = AuditEvent::NotificationFailed {
            outbox_id: id.to_owned(),
            kind: kind.to_owned(),
            attempts,
            error: error.to_owned(),
        };
        self.commit_delivery(tx, approval_id, event, (channel, DeliveryOutcome::GivenUp))
            .await
    }

    /// Records a sent Slack message (where it went, optionally closing the
    /// row) with its `notification.sent` entry, in one transaction.
    pub async fn record_notification_sent(
        &self,
        id: &str,
        approval_id: Option<String>,
        posted: Option<Posted<'_>>,
        close_row: bool,
        event: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        if let Some(p) = posted {
            sstore::record_message(&mut tx, id, p.target, p.approval_id, p.channel, p.ts).await?;
        }
        if close_row {
            sstore::mark_delivered_tx(&mut tx, id).await?;
        }
        let counted = (Channel::Slack, DeliveryOutcome::Delivered);
        self.commit_delivery(tx, approval_id, event, counted).await
    }

    /// Records how a webhook delivery ended, with its `webhook.delivered`
    /// or `webhook.failed` entry.
    pub async fn record_webhook_end(
        &self,
        id: &str,
        approval_id: Option<String>,
        end: WebhookEnd<'_>,
        event: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        let outcome = match end {
            WebhookEnd::Delivered => {
                tx.webhook_delivered(id).await?;
                DeliveryOutcome::Delivered
            }
            WebhookEnd::GivenUp { error } => {
                tx.webhook_given_up(id, error).await?;
                DeliveryOutcome::GivenUp
            }
        };
        self.commit_delivery(tx, approval_id, event, (Channel::Webhook, outcome))
            .await
    }

    /// Commits what a delivery attempt changed with its audit entry (the
    /// system's), then counts its outcome on `channel`.
    async fn commit_delivery(
        &self,
        mut tx: WriteTx,
        approval_id: Option<String>,
        event: AuditEvent,
        (channel, outcome): (Channel, DeliveryOutcome),
    ) -> Result<()> {
        tx.audit(Actor::System, approval_id.as_deref(), event)
            .await?;
        tx.commit().await?;
        self.metrics.delivery(channel, outcome);
        Ok(())
    }
}
