//! Outbound webhooks: `approval.decided` and `run.ready` events POSTed to
//! an agent's webhook URL, signed per Standard Webhooks
//! (<https://www.standardwebhooks.com>).
//!
//! Events are queued in the outbox (kind `webhook.event`, by
//! `crate::service::webhooks`) in the same
//! transaction as the change they announce, so none is lost and none is
//! sent for a change that did not commit; the queued row holds the exact
//! body, so every retry sends (and signs) the same bytes under the same
//! `webhook-id`, which lets receivers de-duplicate. A worker delivers due
//! rows: claims one with a lease (two replicas never send it at once),
//! POSTs it, and on a 2xx marks it delivered together with a
//! `webhook.delivered` audit entry. Failures are retried with exponential
//! backoff and jitter (the outbox's `PLIUZ_OUTBOX_*` tuning): network
//! errors, timeouts, 408, 429 and 5xx for as long as it takes (the receiver
//! may be down for a while); other answers up to `PLIUZ_OUTBOX_MAX_ATTEMPTS`
//! attempts, then the row is given up with a `webhook.failed` audit entry.
//!
//! Signature: `webhook-signature: v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>`
//! where the key is the base64-decoded part of the agent's `whsec_` secret.

use crate::audit_event::AuditEvent;
use crate::outbox::delivery::{claimed, commit_retrying};
use crate::outbox::{pause_after_pass, Tuning, BATCH};
use crate::service::deliveries::WebhookEnd;
use crate::service::ControlPlane;
use crate::service::DueWebhook;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::Value;
use sha2::Sha256;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a receiver's answer is kept in the outbox's `last_error`.
const MAX_ERROR_CHARS: usize = 300;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The `webhook-signature` header value for one message.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Result<String, String> {
    let key = secret
        .strip_prefix(crate::service::runs::WEBHOOK_SECRET_PREFIX)
        .unwrap_or(secret);
    let key = b64()
        .decode(key)
        .map_err(|_| "the webhook secret is not whsec_<base64>".to_owned())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|_| "the webhook secret is unusable".to_owned())?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Ok(format!("v1,{}", b64().encode(mac.finalize().into_bytes())))
}

/// Why one delivery did not happen.
enum Failure {
    /// Worth retrying for as long as it takes.
    Transient(String),
    /// The receiver refused it; retried only up to the attempt limit.
    Refused(String),
    /// Nothing to deliver to (the agent has no webhook any more, a corrupt row).
    Undeliverable(String),
}

pub async fn run(cp: ControlPlane, shutdown: crate::shutdown::Shutdown) {
    let tuning = Tuning::from_env();
    let client = match reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("pliuz-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; webhooks are not delivered");
            return;
        }
    };
    let queued = cp.webhook_queued();
    let settled_elsewhere = cp.notifier.settled_elsewhere.clone();
    let mut runs = cp.notifier.subscribe_runs();
    loop {
        let handled = deliver_due(&cp, &client, &tuning).await;
        let sleep = pause_after_pass(
            cp.next_webhook_due().await,
            handled,
            Duration::from_millis(200),
            "the webhook outbox",
        );
        if sleep.is_zero() {
            continue;
        }
        // Queued events are visible once their transaction committed. This
        // process signals the commits that queued one (most changes queue
        // none: their agent has no webhook); another replica's settled
        // request or ready run may have queued one.
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = queued.notified() => {}
            _ = settled_elsewhere.notified() => {}
            _ = runs.changed() => {}
            _ = shutdown.wait() => return,
        }
    }
}

async fn deliver_due(cp: &ControlPlane, client: &reqwest::Client, tuning: &Tuning) -> usize {
    let now = crate::service::now_millis();
    let rows = match cp.due_webhooks(now, BATCH).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "could not read due webhook deliveries");
            return 0;
        }
    };
    let mut handled = 0;
    let what = "a webhook delivery";
    for row in rows {
        if !claimed(cp, &row.id, row.next_attempt_at, now, tuning, what).await {
            continue;
        }
        handled += 1;
        match deliver(cp, client, &row).await {
            Ok(()) => {}
            Err(f) => failed(cp, &row, f, tuning).await,
        }
    }
    handled
}

fn field<'a>(row: &'a DueWebhook, name: &str) -> Result<&'a str, Failure> {
    row.payload
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| Failure::Undeliverable(format!("the queued event has no {name}")))
}

async fn deliver(
    cp: &ControlPlane,
    client: &reqwest::Client,
    row: &DueWebhook,
) -> Result<(), Failure> {
    let agent = field(row, "agent")?;
    let event_type = field(row, "type")?;
    let webhook_id = field(row, "webhook_id")?;
    let body = field(row, "body")?;
    let (url, secret) = match cp.agent_webhook(agent).await {
        Ok(Some(w)) => w,
        Ok(None) => {
            return Err(Failure::Undeliverable(format!(
                "agent '{agent}' has no webhook URL any more"
            )))
        }
        Err(e) => return Err(Failure::Transient(e.to_string())),
    };
    let timestamp = chrono::Utc::now().timestamp();
    let signature = sign(&secret, webhook_id, timestamp, body).map_err(Failure::Undeliverable)?;
    let sent = client
        .post(&url)
        .header("content-type", "application/json")
        .header("webhook-id", webhook_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.to_owned())
        .send()
        .await;
    let resp = sent.map_err(|e| Failure::Transient(format!("POST {url}: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        let text: String = resp
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(MAX_ERROR_CHARS)
            .collect();
        let msg = format!("POST {url} answered {status}: {text}");
        return Err(
            if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
                Failure::Transient(msg)
            } else {
                Failure::Refused(msg)
            },
        );
    }
    tracing::info!(outbox = %row.id, %event_type, %url, status = status.as_u16(), "delivered a webhook");
    let delivered = AuditEvent::WebhookDelivered {
        outbox_id: row.id.clone(),
        webhook_id: webhook_id.to_string(),
        event_type: event_type.to_string(),
        agent: agent.to_string(),
        url: url.to_string(),
        status: status.as_u16(),
        attempts: row.attempts + 1,
    };
    // The receiver has it: record that, retrying the commit in place so a
    // brief database hiccup does not cause a duplicate delivery.
    commit_retrying(&row.id, "a delivered webhook", || {
        let end = WebhookEnd::Delivered;
        cp.record_webhook_end(&row.id, row.approval_id.clone(), end, delivered.clone())
    })
    .await
    .map_err(|e| Failure::Transient(e.to_string()))
}

async fn failed(cp: &ControlPlane, row: &DueWebhook, f: Failure, tuning: &Tuning) {
    let attempts = row.attempts + 1;
    let (error, give_up) = match f {
        Failure::Transient(e) => (e, false),
        Failure::Refused(e) => {
            let over = attempts >= tuning.max_attempts;
            (e, over)
        }
        Failure::Undeliverable(e) => (e, true),
    };
    if give_up {
        tracing::error!(outbox = %row.id, attempts, %error, "giving up on a webhook delivery");
        let result = async {
            let failed = AuditEvent::WebhookFailed {
                outbox_id: row.id.clone(),
                event_type: row.payload.get("type").cloned(),
                agent: row.payload.get("agent").cloned(),
                attempts,
                error: error.clone(),
            };
            let end = WebhookEnd::GivenUp { error: &error };
            cp.record_webhook_end(&row.id, row.approval_id.clone(), end, failed)
                .await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, outbox = %row.id, "could not record giving up on a webhook");
        }
        return;
    }
    let now = crate::service::now_millis();
    let next = now + tuning.delay_ms(attempts) + rand::thread_rng().gen_range(0..=10);
    cp.metrics.delivery(
        crate::metrics::Channel::Webhook,
        crate::metrics::DeliveryOutcome::Failed,
    );
    tracing::warn!(outbox = %row.id, attempts, %error, retry_in_ms = next - now, "webhook not delivered; will retry");
    if let Err(e) = cp.retry_delivery(&row.id, next, &error).await {
        tracing::warn!(error = %e, outbox = %row.id, "could not record a failed webhook delivery");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example from the Standard Webhooks specification.
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
