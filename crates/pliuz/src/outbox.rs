//! The outbox worker: delivers queued notifications (Slack posts, DMs and
//! message updates) durably.
//!
//! Rows are written by the control plane in the same transaction as the
//! change they announce, so nothing is lost: a Slack outage only delays
//! delivery, and after a restart the worker picks up where it was (rows are
//! in the database). Each row is:
//!
//! 1. **claimed** with a lease (compare-and-set on its due time), so two
//!    replicas never deliver it at once and a worker that dies mid-delivery
//!    releases it when the lease runs out;
//! 2. **delivered**: one Slack call;
//! 3. **recorded**: the message's `channel` + `ts`, the row's delivered flag
//!    and a `notification.sent` audit entry, in one transaction.
//!
//! Failures are retried with exponential backoff and jitter; a `429` waits
//! exactly as long as Slack's `Retry-After` says; 5xx, network errors and
//! Slack's own transient errors are retried for as long as it takes. Errors
//! that say the request itself is wrong (`channel_not_found`,
//! `not_in_channel`, `invalid_auth`, ...) are retried too — an operator may
//! fix the configuration — but only up to `PLIUZ_OUTBOX_MAX_ATTEMPTS`
//! attempts; then the row is given up with its `last_error` kept and a
//! `notification.failed` audit entry.
//!
//! **At most one message per request.** The unique `dedupe_key` makes
//! queueing idempotent, and a row is marked delivered in the same
//! transaction that records the posted `ts`. One window remains: if the
//! process dies after Slack accepted a post and before that transaction
//! commits (one local commit, normally milliseconds), the row is delivered
//! again after the lease expires and Slack shows a duplicate. Slack's Web
//! API offers no idempotency key to close it; a commit that fails after a
//! successful post is retried in place several times to keep the window to a
//! crash proper.
//!
//! Tuning (environment; the defaults suit production, tests shorten them):
//! `PLIUZ_OUTBOX_BACKOFF_MS` (first retry delay, default 1000),
//! `PLIUZ_OUTBOX_BACKOFF_MAX_MS` (longest delay, default 300000),
//! `PLIUZ_OUTBOX_MAX_ATTEMPTS` (for non-transient errors, default 10),
//! `PLIUZ_OUTBOX_LEASE_MS` (claim lease, default 60000).

pub(crate) mod delivery;
mod questions;

use crate::approval::{Actor, Approval};
use crate::audit_event::{AuditEvent, SlackDelivery};
use crate::service::deliveries::Posted;
use crate::service::ControlPlane;
use crate::service::{OutboxMessage, PostedMessage, StoreError};
use crate::slack::api::SlackError;
use crate::slack::{blocks, Slack};
use delivery::{Channel, Retry};
use rand::Rng;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Longest sleep between passes, so rows queued by other processes (the
/// admin CLI, other replicas) are picked up too.
const MAX_SLEEP: Duration = Duration::from_secs(15);
/// Rows handled per pass.
pub(crate) const BATCH: i64 = 20;

#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    pub backoff_ms: i64,
    pub backoff_max_ms: i64,
    pub max_attempts: i64,
    pub lease_ms: i64,
}

fn env_i64(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|v: &i64| *v > 0)
        .unwrap_or(default)
}

impl Tuning {
    pub fn from_env() -> Tuning {
        let backoff_ms = env_i64("PLIUZ_OUTBOX_BACKOFF_MS", 1000);
        Tuning {
            backoff_ms,
            backoff_max_ms: env_i64("PLIUZ_OUTBOX_BACKOFF_MAX_MS", 300_000).max(backoff_ms),
            max_attempts: env_i64("PLIUZ_OUTBOX_MAX_ATTEMPTS", 10),
            lease_ms: env_i64("PLIUZ_OUTBOX_LEASE_MS", 60_000),
        }
    }

    /// Delay before attempt `attempts + 1`: exponential, capped, with
    /// "equal jitter" (between half and all of it) so many retries spread out.
    pub fn delay_ms(&self, attempts: i64) -> i64 {
        let exp = attempts.clamp(1, 30) - 1;
        let full = self
            .backoff_ms
            .saturating_mul(1i64 << exp)
            .min(self.backoff_max_ms)
            .max(1);
        let half = full / 2;
        half + rand::thread_rng().gen_range(0..=full - half)
    }
}

type Failure = delivery::Failure<SlackError>;

impl From<SlackError> for Failure {
    fn from(e: SlackError) -> Failure {
        Failure::Channel(e)
    }
}

/// The Slack channel of the outbox.
struct SlackChannel(Arc<Slack>);

impl Channel for SlackChannel {
    type Error = SlackError;
    const KIND_PREFIX: &'static str = "slack.";
    const METRIC: crate::metrics::Channel = crate::metrics::Channel::Slack;
    const NOUN: &'static str = "notification";
    const WORKER: &'static str = "outbox";
    const QUEUE: &'static str = "the outbox";

    fn queued(cp: &ControlPlane) -> &Notify {
        &cp.notifier.outbox
    }

    async fn deliver(&self, cp: &ControlPlane, row: &OutboxMessage) -> Result<(), Failure> {
        let slack = &self.0;
        match row.kind.as_str() {
            "slack.post" => post(cp, slack, row).await,
            "slack.dm" => dm(cp, slack, row).await,
            "slack.update" => update(cp, slack, row).await,
            "slack.thread" => thread(cp, slack, row).await,
            "slack.question.post" => {
                questions::deliver(cp, slack, row, questions::Delivery::Post).await
            }
            "slack.question.update" => {
                questions::deliver(cp, slack, row, questions::Delivery::Update).await
            }
            other => {
                let error = format!("unknown notification kind '{other}'");
                delivery::give_up::<Self>(cp, row, &error).await;
                Ok(())
            }
        }
    }

    fn retry(error: &SlackError, now: i64) -> Retry {
        match error {
            // Honour Retry-After exactly (plus a little jitter so a backlog
            // does not stampede back at the same instant).
            SlackError::RateLimited { retry_after_secs } => Retry::At(
                now + i64::try_from(*retry_after_secs).unwrap_or(60) * 1000
                    + rand::thread_rng().gen_range(0..=100),
            ),
            e if !e.is_transient() => Retry::Limited,
            _ => Retry::Backoff,
        }
    }

    /// A question's row names the question in `approval_id`; its entry
    /// names no request (the outbox id and kind say what it was about).
    fn audited_request(row: &OutboxMessage) -> Option<String> {
        row.approval_id
            .clone()
            .filter(|_| !row.kind.starts_with("slack.question."))
    }
}

pub async fn run(cp: ControlPlane, slack: Arc<Slack>, shutdown: crate::shutdown::Shutdown) {
    delivery::run(cp, SlackChannel(slack), shutdown).await;
}

/// How long a delivery worker sleeps after a pass, given when its next row
/// is due: until then; at once if rows are due and this pass handled some;
/// `idle_retry` if rows are due but this pass handled none (so it does not
/// spin on them); never longer than [`MAX_SLEEP`]. `what` names the queue
/// in the warning when the due time cannot be read.
pub(crate) fn pause_after_pass(
    next_due: Result<Option<i64>, StoreError>,
    handled: usize,
    idle_retry: Duration,
    what: &str,
) -> Duration {
    let now = crate::service::now_millis();
    match next_due {
        Ok(Some(at)) if at > now => Duration::from_millis(u64::try_from(at - now).unwrap_or(0)),
        Ok(Some(_)) if handled > 0 => Duration::ZERO,
        Ok(Some(_)) => idle_retry,
        Ok(None) => MAX_SLEEP,
        Err(e) => {
            tracing::warn!(error = %e, "could not read {what}");
            Duration::from_secs(1)
        }
    }
    .min(MAX_SLEEP)
}

fn approval_id(row: &OutboxMessage) -> Option<String> {
    row.approval_id.clone().or_else(|| {
        row.payload
            .get("approval_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
    })
}

/// Loads the request a row is about; `None` (and the row closed) if it is gone.
async fn load(cp: &ControlPlane, row: &OutboxMessage) -> Result<Option<Approval>, Failure> {
    let a = match approval_id(row) {
        Some(id) => cp.get_approval(&id).await?,
        None => None,
    };
    unless_gone(cp, row, a, "request").await
}

/// `found`, or `None` (and the row closed) when the request or question
/// (`what`) the row is about is gone.
async fn unless_gone<T>(
    cp: &ControlPlane,
    row: &OutboxMessage,
    found: Option<T>,
    what: &str,
) -> Result<Option<T>, Failure> {
    if found.is_none() {
        tracing::warn!(outbox = %row.id, "the {what} of this notification no longer exists");
        cp.close_delivery(&row.id).await?;
    }
    Ok(found)
}

/// Records a delivered message: its `channel`/`ts`, optionally the row's
/// delivered flag, and the audit entry, in one transaction. A failing commit
/// is retried in place: the message is already in Slack.
async fn record_sent(
    cp: &ControlPlane,
    row: &OutboxMessage,
    posted: Option<(&str, &str, &str)>,
    close_row: bool,
    message: SlackDelivery,
) -> Result<(), Failure> {
    let message = &message;
    delivery::record_delivered(row, "a delivered message", move || async move {
        let id = approval_id(row);
        let where_ = match (posted, &id) {
            (Some((target, channel, ts)), Some(approval_id)) => Some(Posted {
                target,
                approval_id,
                channel,
                ts,
            }),
            _ => None,
        };
        cp.record_notification_sent(
            &row.id,
            id.clone(),
            where_,
            close_row,
            AuditEvent::NotificationSent {
                outbox_id: row.id.clone(),
                kind: row.kind.clone(),
                message: message.clone(),
            },
        )
        .await
    })
    .await
}

/// The channel a post row names; `None` (and the row closed) when it names
/// none or the message is there already.
async fn post_target<'r>(
    cp: &ControlPlane,
    row: &'r OutboxMessage,
) -> Result<Option<&'r str>, Failure> {
    let Some(target) = row.payload.get("channel").and_then(Value::as_str) else {
        tracing::warn!(outbox = %row.id, kind = %row.kind, "a post without a channel");
        cp.close_delivery(&row.id).await?;
        return Ok(None);
    };
    if cp.slack_already_sent(&row.id, target).await? {
        cp.close_delivery(&row.id).await?;
        return Ok(None);
    }
    Ok(Some(target))
}

/// The messages posted for request or question `id` (the `noun`), to edit
/// or reply to; `None` (and the row closed) when nothing was or ever will
/// be posted; waiting while its post is still queued.
async fn posted_messages(
    cp: &ControlPlane,
    row: &OutboxMessage,
    id: &str,
    noun: &str,
) -> Result<Option<Vec<PostedMessage>>, Failure> {
    let messages = cp.slack_messages_for(id).await?;
    if !messages.is_empty() {
        return Ok(Some(messages));
    }
    if cp.slack_pending_posts(id).await? > 0 {
        return Err(Failure::Waiting(format!(
            "waiting for the {noun} message to be posted"
        )));
    }
    cp.close_delivery(&row.id).await?;
    Ok(None)
}

/// Posts the request message to `target` (a channel, or a user id for a DM).
async fn post_message(
    cp: &ControlPlane,
    slack: &Slack,
    a: &Approval,
    target: &str,
) -> Result<(String, String), Failure> {
    let mut body = blocks::message(a, &cp.settings.public_url, crate::service::now_millis());
    body["unfurl_media"] = json!(false);
    post_blocks(slack, body, target).await
}

/// Posts a Block Kit message to `target`; returns where Slack put it
/// (`channel`, `ts`).
async fn post_blocks(
    slack: &Slack,
    mut body: Value,
    target: &str,
) -> Result<(String, String), Failure> {
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
    Ok((channel, ts))
}

/// Edits each posted message to show `body`; returns those edited.
async fn update_messages(
    slack: &Slack,
    body: &Value,
    messages: &[PostedMessage],
) -> Result<Vec<Value>, Failure> {
    let mut updated = Vec::new();
    for m in messages {
        let mut b = body.clone();
        b["channel"] = json!(m.channel);
        b["ts"] = json!(m.ts);
        match slack.client.call("chat.update", &b).await {
            Ok(_) => updated.push(json!({"channel": m.channel, "ts": m.ts})),
            // Deleted by someone in Slack: nothing left to update.
            Err(SlackError::Api(code))
                if code == "message_not_found" || code == "cant_update_message" =>
            {
                tracing::warn!(channel = %m.channel, ts = %m.ts, %code, "cannot update a Slack message; skipping it");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(updated)
}

async fn post(cp: &ControlPlane, slack: &Slack, row: &OutboxMessage) -> Result<(), Failure> {
    let Some(a) = load(cp, row).await? else {
        return Ok(());
    };
    let Some(target) = post_target(cp, row).await? else {
        return Ok(());
    };
    let (channel, ts) = post_message(cp, slack, &a, target).await?;
    tracing::info!(approval = %a.id, %channel, %ts, "posted the request to Slack");
    record_sent(
        cp,
        row,
        Some((target, &channel, &ts)),
        true,
        SlackDelivery::Posted {
            target: target.to_owned(),
            channel: channel.clone(),
            ts: ts.clone(),
        },
    )
    .await
}

/// A DM to each approver of the policy (but not the originator), one
/// recorded message per person, so a retry never messages anyone twice.
async fn dm(cp: &ControlPlane, slack: &Slack, row: &OutboxMessage) -> Result<(), Failure> {
    let Some(a) = load(cp, row).await? else {
        return Ok(());
    };
    let Some(policy) = cp.policies().get(&a.policy).cloned() else {
        cp.close_delivery(&row.id).await?;
        return Ok(());
    };
    let users = cp.list_users().await?;
    for u in users.iter().filter(|u| {
        !u.disabled
            && policy.is_approver(&u.email, &u.groups)
            && !a.is_originated_by(&Actor::User(u.email.clone()))
    }) {
        let Some(target) = slack.slack_id_for_email(&u.email).await? else {
            tracing::info!(email = %u.email, "approver has no Slack account; no DM");
            continue;
        };
        if cp.slack_already_sent(&row.id, &target).await? {
            continue;
        }
        let (channel, ts) = post_message(cp, slack, &a, &target).await?;
        record_sent(
            cp,
            row,
            Some((&target, &channel, &ts)),
            false,
            SlackDelivery::DirectMessage {
                target: target.clone(),
                email: u.email.clone(),
                channel: channel.clone(),
                ts: ts.clone(),
            },
        )
        .await?;
    }
    cp.close_delivery(&row.id).await?;
    Ok(())
}

/// Edits every message posted for the request to show its outcome.
async fn update(cp: &ControlPlane, slack: &Slack, row: &OutboxMessage) -> Result<(), Failure> {
    let Some(a) = load(cp, row).await? else {
        return Ok(());
    };
    let Some(messages) = posted_messages(cp, row, &a.id, "request").await? else {
        return Ok(());
    };
    let body = blocks::message(&a, &cp.settings.public_url, crate::service::now_millis());
    let updated = update_messages(slack, &body, &messages).await?;
    tracing::info!(approval = %a.id, status = %a.status, messages = updated.len(), "updated the Slack messages");
    record_sent(
        cp,
        row,
        None,
        true,
        SlackDelivery::Updated {
            status: a.status,
            messages: updated,
        },
    )
    .await
}

/// A reminder or escalation notice in the thread of each message posted
/// for the request (nothing when none was posted, or when it was settled
/// meanwhile: the updated message says so). A retry after a partial
/// failure may reply twice in some threads.
async fn thread(cp: &ControlPlane, slack: &Slack, row: &OutboxMessage) -> Result<(), Failure> {
    let Some(a) = load(cp, row).await? else {
        return Ok(());
    };
    let Some(messages) = posted_messages(cp, row, &a.id, "request").await? else {
        return Ok(());
    };
    if a.status != crate::approval::Status::Pending {
        cp.close_delivery(&row.id).await?;
        return Ok(());
    }
    let escalated = row.payload.get("notice").and_then(Value::as_str) == Some("escalate");
    let text = if escalated {
        let to = cp
            .policies()
            .get(&a.policy)
            .and_then(|p| p.escalation.as_ref())
            .map(|e| {
                e.to.iter()
                    .map(|t| blocks::escape(&t.to_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        format!(":arrow_double_up: Escalated: nobody decided in time, so {to} may decide it now.")
    } else {
        ":bell: Reminder: this request is still waiting for a decision.".to_owned()
    };
    let mut replies = Vec::new();
    for m in &messages {
        let body = json!({"channel": m.channel, "thread_ts": m.ts, "text": text});
        let v = slack.client.call("chat.postMessage", &body).await?;
        let ts = v.get("ts").and_then(Value::as_str).unwrap_or_default();
        replies.push(json!({"channel": m.channel, "thread_ts": m.ts, "ts": ts}));
    }
    tracing::info!(approval = %a.id, replies = replies.len(), "replied in the Slack threads");
    record_sent(
        cp,
        row,
        None,
        true,
        SlackDelivery::ThreadReplies { replies },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let t = Tuning {
            backoff_ms: 100,
            backoff_max_ms: 1000,
            max_attempts: 3,
            lease_ms: 1000,
        };
        for _ in 0..100 {
            let d1 = t.delay_ms(1);
            assert!((50..=100).contains(&d1), "{d1}");
            let d3 = t.delay_ms(3);
            assert!((200..=400).contains(&d3), "{d3}");
            let d20 = t.delay_ms(20);
            assert!((500..=1000).contains(&d20), "{d20}");
        }
    }
}
