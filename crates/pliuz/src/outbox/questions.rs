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

pub(super) async fn post(
    cp: &ControlPlane,
    slack: &Slack,
    row: &OutboxMessage,
) -> Result<(), Failure> {
    let Some(q) = load(cp, row).await? else {
        return Ok(());
    };
    let Some(target) = post_target(cp, row).await? else {
        return Ok(());
    };
    let body = question_blocks::message(&q, &cp.settings.public_url, crate::service::now_millis());
    let (channel, ts) = post_blocks(slack, body, target).await?;
    tracing::info!(question = %q.id, %channel, %ts, "posted the question to Slack");
    record(
        cp,
        row,
        Some(Posted {
            target,
            approval_id: &q.id,
            channel: &channel,
            ts: &ts,
        }),
        SlackDelivery::QuestionPosted {
            question_id: q.id.clone(),
            target: target.to_owned(),
            channel: channel.clone(),
            ts: ts.clone(),
        },
    )
    .await
}

pub(super) async fn update(
    cp: &ControlPlane,
    slack: &Slack,
    row: &OutboxMessage,
) -> Result<(), Failure> {
    let Some(q) = load(cp, row).await? else {
        return Ok(());
    };
    let Some(messages) = posted_messages(cp, row, &q.id, "question").await? else {
        return Ok(());
    };
    let body = question_blocks::message(&q, &cp.settings.public_url, crate::service::now_millis());
    let updated = update_messages(slack, &body, &messages).await?;
    record(
        cp,
        row,
        None,
        SlackDelivery::QuestionUpdated {
            question_id: q.id.clone(),
            status: q.status,
            messages: updated,
        },
    )
    .await
}
