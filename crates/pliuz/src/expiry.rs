//! Expires pending requests on time, even when nobody polls: a worker sleeps
//! until the next deadline (re-read from the store, so it holds across
//! restarts) and is woken early when a new request may be due sooner.

use crate::service::ControlPlane;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// Upper bound on a sleep, so deadlines set by other processes (the admin
/// CLI, other replicas) are picked up too.
const MAX_SLEEP: Duration = Duration::from_secs(15);

pub async fn run(cp: ControlPlane, shutdown: crate::shutdown::Shutdown) {
    let cp = &cp;
    loop {
        let now = crate::service::now_millis();
        let approvals = cp.due_expiries(now, 100).await;
        let approvals_ok = expire_each(
            "approval",
            approvals,
            |id| async move { cp.expire(&id).await },
        )
        .await;
        // Questions expire the same way (no answer in time).
        let questions = cp.due_question_expiries(now, 100).await;
        let questions_ok = expire_each("question", questions, |id| async move {
            cp.expire_question(&id).await
        })
        .await;
        let next = match (cp.next_expiry().await, cp.next_question_expiry().await) {
            (Ok(a), Ok(q)) => Ok(a.into_iter().chain(q).min()),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        let failed = !(approvals_ok && questions_ok);
        tokio::select! {
            _ = tokio::time::sleep(sleep_until(next, failed)) => {}
            _ = cp.notifier.expiry.notified() => {}
            _ = shutdown.wait() => return,
        }
    }
}

/// Expires each overdue `what` (approval or question) that `due` lists;
/// false when one could not be expired (the next pass comes sooner). A
/// list that could not be read is only logged: the deadline read after it
/// decides when to try again.
async fn expire_each<E, F, Fut>(what: &str, due: Result<Vec<String>, E>, expire: F) -> bool
where
    E: Display,
    F: Fn(String) -> Fut,
    Fut: Future<Output = crate::service::Result<bool>>,
{
    let ids = match due {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "could not read due {what} expiries");
            return true;
        }
    };
    let mut all_expired = true;
    for id in ids {
        if let Err(e) = expire(id.clone()).await {
            all_expired = false;
            tracing::warn!(id = %id, error = %e, "could not expire {what}");
        }
    }
    all_expired
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
