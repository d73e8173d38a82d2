//! Expires pending requests on time, even when nobody polls: a worker sleeps
//! until the next deadline (re-read from the store, so it holds across
//! restarts) and is woken early when a new request may be due sooner.

use crate::service::ControlPlane;
use std::time::Duration;

/// Upper bound on a sleep, so deadlines set by other processes (the admin
/// CLI, other replicas) are picked up too.
const MAX_SLEEP: Duration = Duration::from_secs(15);

pub async fn run(cp: ControlPlane, shutdown: crate::shutdown::Shutdown) {
    loop {
        let now = crate::service::now_millis();
        let mut failed = false;
        match cp.due_expiries(now, 100).await {
            Ok(ids) => {
                for id in ids {
                    if let Err(e) = cp.expire(&id).await {
                        failed = true;
                        tracing::warn!(approval = %id, error = %e, "could not expire approval");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read due expiries"),
        }
        // Questions expire the same way (no answer in time).
        match cp.due_question_expiries(now, 100).await {
            Ok(ids) => {
                for id in ids {
                    if let Err(e) = cp.expire_question(&id).await {
                        failed = true;
                        tracing::warn!(question = %id, error = %e, "could not expire question");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read due question expiries"),
        }
        let next = match (cp.next_expiry().await, cp.next_question_expiry().await) {
            (Ok(a), Ok(q)) => Ok(a.into_iter().chain(q).min()),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep_until(next, failed)) => {}
            _ = cp.notifier.expiry.notified() => {}
            _ = shutdown.wait() => return,
        }
    }
}

/// How long a timer worker sleeps after a pass: until its next deadline,
/// at most [`MAX_SLEEP`]; a second when the pass failed or the deadline
/// cannot be read (the store cannot write, full or locked: do not spin on
/// it).
pub(crate) fn sleep_until<E>(next: Result<Option<i64>, E>, failed: bool) -> Duration {
    match next {
        _ if failed => Duration::from_secs(1),
        Ok(Some(at)) => {
            Duration::from_millis(u64::try_from(at - crate::service::now_millis()).unwrap_or(0))
                .min(MAX_SLEEP)
        }
        Ok(None) => MAX_SLEEP,
        Err(_) => Duration::from_secs(1),
    }
}
