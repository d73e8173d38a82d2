//! Slack messages for questions from agents: the post to the policy's
//! channel and its update once answered or expired, recorded like a
//! request's (`slack_messages` keyed by the question id, a
//! `notification.sent` entry per delivery).

use super::Failure;
use crate::audit_event::{AuditEvent, SlackDelivery};
use crate::question::Question;
use crate::service::deliveries::Posted;
use crate::service::{ControlPlane, OutboxMessage};
use crate::slack::api::SlackError;
use crate::slack::{question_blocks, Slack};
use serde_json::{json, Value};

fn question_id(row: &OutboxMessage) -> Option<&str> {
    row.payload.get("question_id").and_then(Value::as_str)
}

/// The question a row is about; `None` (and the row closed) if it is gone.
async fn load(cp: &ControlPlane, row: &OutboxMessage) -> Result<Option<Question>, Failure> {
    let q = match question_id(row) {
        Some(id) => cp.question_by_id(id).await?,
        None => None,
    };
    if q.is_none() {
        tracing::warn!(outbox = %row.id, "the question of this notification no longer exists");
        cp.close_delivery(&row.id).await?;
    }
    Ok(q)
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
    let Some(target) = row.payload.get("channel").and_then(Value::as_str) else {
        cp.close_delivery(&row.id).await?;
        return Ok(());
    };
    if cp.slack_already_sent(&row.id, target).await? {
        cp.close_delivery(&row.id).await?;
        return Ok(());
    }
    let mut body =
        question_blocks::message(&q, &cp.settings.public_url, crate::service::now_millis());
    body["channel"] = json!(target);
    body["unfurl_links"] = json!(false);
    let v = slack.client.call("chat.postMessage", &body).await?;
    let channel = v
        .get("channel")
        .and_then(Value::as_str)
        .unwrap_or(target)
        .to_owned();
    let ts = v
        .get("ts")
        .and_then(Value::as_str)
        .ok_or_else(|| SlackError::Decode("chat.postMessage answered without a ts".into()))?
        .to_owned();
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
    let messages = cp.slack_messages_for(&q.id).await?;
    if messages.is_empty() {
        if cp.slack_pending_posts(&q.id).await? > 0 {
            return Err(Failure::Waiting(
                "waiting for the question message to be posted".into(),
            ));
        }
        cp.close_delivery(&row.id).await?;
        return Ok(());
    }
    let body = question_blocks::message(&q, &cp.settings.public_url, crate::service::now_millis());
    let mut updated = Vec::new();
    for m in &messages {
        let mut b = body.clone();
        b["channel"] = json!(m.channel);
        b["ts"] = json!(m.ts);
        match slack.client.call("chat.update", &b).await {
            Ok(_) => updated.push(json!({"channel": m.channel, "ts": m.ts})),
            Err(SlackError::Api(code))
                if code == "message_not_found" || code == "cant_update_message" =>
            {
                tracing::warn!(channel = %m.channel, ts = %m.ts, %code, "cannot update a Slack message; skipping it");
            }
            Err(e) => return Err(e.into()),
        }
    }
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
