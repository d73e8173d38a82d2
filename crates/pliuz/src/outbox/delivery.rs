//! What the outbox's delivery workers share, whatever their channel (Slack
//! here, e-mail in `crate::mailer`): the worker loop, the pass that claims
//! each due row of the channel with a lease and delivers it, a failure
//! retried with backoff or given up, and a delivery's record committed
//! however briefly the database falters. The webhook worker
//! (`crate::webhooks`), with rows and failures of its own, shares the claim
//! and the commit retry.

use super::{pause_after_pass, Tuning, BATCH};
use crate::metrics::{Channel as Metric, DeliveryOutcome};
use crate::service::{ControlPlane, OutboxMessage, ServiceError, StoreError};
use std::future::Future;
use std::time::Duration;
use tokio::sync::Notify;

/// Why one delivery did not happen.
#[derive(Debug)]
pub(crate) enum Failure<E> {
    /// The channel failed (its own error says whether to retry).
    Channel(E),
    /// Not yet: another row must go first (an update before its post).
    Waiting(String),
    Store(String),
}

impl<E> From<StoreError> for Failure<E> {
    fn from(e: StoreError) -> Failure<E> {
        Failure::Store(e.to_string())
    }
}

impl<E> From<ServiceError> for Failure<E> {
    fn from(e: ServiceError) -> Failure<E> {
        Failure::Store(e.to_string())
    }
}

impl<E: std::fmt::Display> std::fmt::Display for Failure<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Channel(e) => write!(f, "{e}"),
            Failure::Waiting(m) | Failure::Store(m) => f.write_str(m),
        }
    }
}

/// When a failed row is tried again.
pub(crate) enum Retry {
    /// After the backoff, for as long as it takes (the failure passes).
    Backoff,
    /// After the backoff, but only up to `max_attempts` in all (the request
    /// itself may be wrong; an operator may fix the configuration).
    Limited,
    /// At this time (the receiver said when).
    At(i64),
}

/// One delivery channel of the outbox.
pub(crate) trait Channel: Sync {
    type Error: std::fmt::Display + Send;
    /// The outbox kinds this channel delivers start with this.
    const KIND_PREFIX: &'static str;
    const METRIC: Metric;
    /// What a row delivers, for the log ("notification", "e-mail").
    const NOUN: &'static str;
    /// The worker, for the log and the warning when the queue is unreadable.
    const WORKER: &'static str;
    const QUEUE: &'static str;

    /// Poked when rows of this channel are queued.
    fn queued(cp: &ControlPlane) -> &Notify;
    fn deliver(
        &self,
        cp: &ControlPlane,
        row: &OutboxMessage,
    ) -> impl Future<Output = Result<(), Failure<Self::Error>>> + Send;
    fn retry(error: &Self::Error, now: i64) -> Retry;
    /// The request a given-up row's audit entry names.
    fn audited_request(row: &OutboxMessage) -> Option<String>;
}

/// Delivers the channel's rows until `shutdown`.
pub(crate) async fn run<C: Channel>(
    cp: ControlPlane,
    channel: C,
    shutdown: crate::shutdown::Shutdown,
) {
    let tuning = Tuning::from_env();
    tracing::info!(?tuning, "{} worker started", C::WORKER);
    // The channel's notify is poked while the queueing transaction is still
    // open, so a pass it triggers may not see the row yet; the change
    // broadcast fires after the commit, so listen to both.
    let mut changes = cp.notifier.subscribe();
    loop {
        crate::notify::Notifier::skip_queued(&mut changes);
        let handled = deliver_due(&cp, &channel, &tuning).await;
        let next_due = cp.next_outbox_due().await;
        // Rows due that this pass did not handle are not ours to deliver
        // (another channel's, unknown kinds).
        let sleep = pause_after_pass(next_due, handled, Duration::from_secs(1), C::QUEUE);
        if sleep.is_zero() {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = C::queued(&cp).notified() => {}
            _ = changes.recv() => {}
            _ = shutdown.wait() => return,
        }
    }
}

/// One pass over the channel's due rows. Returns how many were attempted.
pub(crate) async fn deliver_due<C: Channel>(
    cp: &ControlPlane,
    channel: &C,
    tuning: &Tuning,
) -> usize {
    let now = crate::service::now_millis();
    // Unreadable: nothing handled this pass.
    let rows = cp.due_outbox(now, BATCH).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "could not read due outbox rows");
        Vec::new()
    });
    let mut handled = 0;
    let what = "an outbox row";
    for row in rows.iter().filter(|r| r.kind.starts_with(C::KIND_PREFIX)) {
        if !claimed(cp, &row.id, row.next_attempt_at, now, tuning, what).await {
            continue;
        }
        handled += 1;
        if let Err(f) = channel.deliver(cp, row).await {
            failed::<C>(cp, row, f, tuning).await;
        }
    }
    handled
}

/// Takes the lease on a due outbox row (Slack, e-mail or webhook) from
/// `now`: `false` when another worker has it, or the claim could not be
/// made (logged; the row stays due).
pub(crate) async fn claimed(
    cp: &ControlPlane,
    id: &str,
    seen_due_at: i64,
    now: i64,
    tuning: &Tuning,
    what: &str,
) -> bool {
    match cp
        .claim_delivery(id, seen_due_at, now + tuning.lease_ms)
        .await
    {
        Ok(claimed) => claimed,
        Err(e) => {
            tracing::warn!(error = %e, "could not claim {what}");
            false
        }
    }
}

async fn failed<C: Channel>(
    cp: &ControlPlane,
    row: &OutboxMessage,
    f: Failure<C::Error>,
    tuning: &Tuning,
) {
    let attempts = row.attempts + 1;
    let now = crate::service::now_millis();
    let error = f.to_string();
    let retry = match &f {
        Failure::Channel(e) => C::retry(e, now),
        Failure::Waiting(_) | Failure::Store(_) => Retry::Backoff,
    };
    let next = match retry {
        Retry::At(at) => at,
        Retry::Limited if attempts >= tuning.max_attempts => {
            give_up::<C>(
                cp,
                row,
                &format!("gave up after {attempts} attempts: {error}"),
            )
            .await;
            return;
        }
        Retry::Limited | Retry::Backoff => now + tuning.delay_ms(attempts),
    };
    match &f {
        Failure::Waiting(_) => {
            tracing::debug!(outbox = %row.id, kind = %row.kind, attempts, %error, "waiting")
        }
        _ => {
            cp.metrics.delivery(C::METRIC, DeliveryOutcome::Failed);
            tracing::warn!(outbox = %row.id, kind = %row.kind, attempts, %error, retry_in_ms = next - now, "{} not delivered; will retry", C::NOUN)
        }
    }
    if let Err(e) = cp.retry_delivery(&row.id, next, &error).await {
        tracing::warn!(error = %e, outbox = %row.id, "could not record a failed delivery");
    }
}

/// Closes the row undelivered, with its `notification.failed` entry.
pub(crate) async fn give_up<C: Channel>(cp: &ControlPlane, row: &OutboxMessage, error: &str) {
    tracing::error!(outbox = %row.id, kind = %row.kind, %error, "giving up on the {}", C::NOUN);
    let result = cp
        .give_up_delivery(
            C::METRIC,
            &row.id,
            C::audited_request(row),
            &row.kind,
            row.attempts + 1,
            error,
        )
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, outbox = %row.id, "could not record giving up");
    }
}

/// Commits the record of a delivery, retrying a failing commit in place:
/// the message is already out, and a row delivered again sends it twice.
pub(crate) async fn record_delivered<E, X, Fut>(
    row: &OutboxMessage,
    what: &str,
    commit: impl FnMut() -> Fut,
) -> Result<(), Failure<E>>
where
    X: std::fmt::Display,
    Failure<E>: From<X>,
    Fut: Future<Output = Result<(), X>>,
{
    commit_retrying(&row.id, what, commit)
        .await
        .map_err(Failure::from)
}

/// How often the record of a delivery is tried before the row is left to
/// be retried (and the message sent again).
const RECORD_ATTEMPTS: u32 = 5;

/// Runs `commit` until it succeeds, at most `RECORD_ATTEMPTS` times with a
/// growing pause, each failure logged; the last failure when none did.
pub(crate) async fn commit_retrying<X, Fut>(
    outbox_id: &str,
    what: &str,
    mut commit: impl FnMut() -> Fut,
) -> Result<(), X>
where
    X: std::fmt::Display,
    Fut: Future<Output = Result<(), X>>,
{
    let mut attempt = 1u32;
    loop {
        match commit().await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, outbox = %outbox_id, "could not record {what}; retrying");
                if attempt == RECORD_ATTEMPTS {
                    return Err(e);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        attempt += 1;
    }
}
