//! Fires reminders and escalations on time, like `expiry`: the worker
//! sleeps until the next timer (re-read from the store, so timers hold
//! across restarts and are set by any replica) and fires what is due
//! through `ControlPlane::fire_timer`.

use crate::approval::Status;
use crate::notify::Notifier;
use crate::service::ControlPlane;

pub async fn run(cp: ControlPlane, shutdown: crate::shutdown::Shutdown) {
    // Every committed change that leaves a request pending: a new request
    // may carry an earlier timer than the one awaited (`notifier.expiry`
    // wakes only one waiter, the expiry worker).
    let mut changes = cp.notifier.subscribe();
    loop {
        Notifier::skip_queued(&mut changes);
        let now = crate::service::now_millis();
        let mut failed = false;
        match cp.due_timers(now, 100).await {
            Ok(timers) => {
                for t in timers {
                    match cp.fire_timer(&t).await {
                        Ok(true) => {
                            tracing::info!(approval = %t.approval_id, kind = %t.kind, "fired a timer")
                        }
                        Ok(false) => {}
                        Err(e) => {
                            failed = true;
                            tracing::warn!(approval = %t.approval_id, kind = %t.kind, error = %e, "could not fire a timer");
                        }
                    }
                }
            }
            Err(e) => {
                failed = true;
                tracing::warn!(error = %e, "could not read due timers");
            }
        }
        let sleep = crate::expiry::sleep_until(cp.next_timer().await, failed);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = Notifier::next_change(&mut changes, |c| c.status == Status::Pending) => {}
            _ = shutdown.wait() => return,
        }
    }
}
