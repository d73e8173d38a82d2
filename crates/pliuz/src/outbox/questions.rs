//! Slack messages for questions from agents: the post to the policy's
//! channel and its update once answered or expired, recorded like a
//! request's (`slack_messages` keyed by the question id, a
//! `notification.sent` entry per delivery).

use super::{post_blocks, post_target, posted_messages, unless_gone, update_messages, Failure};
use crate::audit_event::{AuditEvent, SlackDelivery};
use crate::question::Question;
use crate::service::deliveries::Posted;
use crate::service::{ControlPlane, OutboxMessage};
use crate::slack::{question_blocks, Slack};
use serde_json::Value;

fn question_id(row: &OutboxMessage) -> Option<&str> {
    row.payload.get("question_id").and_then(Value::as_str)
}

/// The question a row is about; `None` (and the row closed) if it is gone.
async fn load(cp: &ControlPlane, row: &OutboxMessage) -> Result<Option<Question>, Failure> {
    let q = match question_id(row) {
        Some(id) => cp.question_by_id(id).await?,
        None => None,
    };
    unless_gone(cp, row, q, "question").await
}

async fn record(
    cp: &ControlPlane,
    row: &OutboxMessage,
    posted: Option<Posted<'_>>,
    message: SlackDelivery,
) -> Result<(), Failure> {
    cp.record_notification_sent(
        &row.id,
        None,
        posted,
        true,
        AuditEvent::NotificationSent {
            outbox_id: row.id.clone(),
            kind: row.kind.clone(),
            message,
        },
    )
    .await?;
    Ok(())
}

/// What a question's row asks for.
pub(super) enum Delivery {
    /// `slack.question.post`: the question to the policy's channel.
    Post,
    /// `slack.question.update`: its posted messages edited once answered
    /// or expired.
    Update,
}

/// Delivers a question's row: the message as the question stands now,
/// posted or edited in place.
pub(super) async fn deliver(
    cp: &ControlPlane,
    slack: &Slack,
    row: &OutboxMessage,
    delivery: Delivery,
) -> Result<(), Failure> {
    let Some(q) = load(cp, row).await? else {
        return Ok(());
    };
    let body = question_blocks::message(&q, &cp.settings.public_url, crate::service::now_millis());
    let (posted, message) = match delivery {
        Delivery::Post => {
            let Some(target) = post_target(cp, row).await? else {
                return Ok(());
            };
            let (channel, ts) = post_blocks(slack, body, target).await?;
            tracing::info!(question = %q.id, %channel, %ts, "posted the question to Slack");
            let message = SlackDelivery::QuestionPosted {
                question_id: q.id.clone(),
                target: target.to_owned(),
                channel: channel.clone(),
                ts: ts.clone(),
            };
            (Some((target, channel, ts)), message)
        }
        Delivery::Update => {
            let Some(messages) = posted_messages(cp, row, &q.id, "question").await? else {
                return Ok(());
            };
            let updated = update_messages(slack, &body, &messages).await?;
            let message = SlackDelivery::QuestionUpdated {
                question_id: q.id.clone(),
                status: q.status,
                messages: updated,
            };
            (None, message)
        }
    };
    let posted = posted.as_ref().map(|(target, channel, ts)| Posted {
        target,
        approval_id: &q.id,
        channel,
        ts,
    });
    record(cp, row, posted, message).await
}
