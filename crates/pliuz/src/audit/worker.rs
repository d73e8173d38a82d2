//! Signs checkpoints in the background: as soon as `checkpoint_every` entries
//! are unsigned, or when the oldest unsigned entry is `checkpoint_interval`
//! old. It wakes on every committed approval change and otherwise checks the
//! (one-row) log size about once a second, which also catches entries written
//! by the admin CLI or other replicas. The final checkpoint at shutdown is
//! signed by `server::serve` after every writer has stopped.

use super::Signer;
use crate::service::ControlPlane;
use std::sync::Arc;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_secs(1);

pub async fn run(cp: ControlPlane, signer: Arc<Signer>, shutdown: crate::shutdown::Shutdown) {
    let every = cp.settings.audit.checkpoint_every.max(1);
    let interval = cp.settings.audit.checkpoint_interval;
    let mut changes = cp.notifier.subscribe();
    // Entries left unsigned from before this start are signed at once.
    let mut dirty_since: Option<Instant> = Some(Instant::now() - interval);
    loop {
        match check(&cp, &signer, every, interval, &mut dirty_since).await {
            Ok(()) => {}
            Err(e) => tracing::error!(error = %e, "could not sign an audit checkpoint"),
        }
        let sleep = match dirty_since {
            Some(t) => interval.saturating_sub(t.elapsed()).min(POLL),
            None => POLL.min(interval),
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            r = changes.recv() => {
                if let Err(tokio::sync::broadcast::error::RecvError::Closed) = r {
                    // Cannot happen while the notifier lives; fall back to polling.
                    changes = cp.notifier.subscribe();
                }
            }
            _ = shutdown.wait() => return,
        }
    }
}

async fn check(
    cp: &ControlPlane,
    signer: &Signer,
    every: u64,
    interval: Duration,
    dirty_since: &mut Option<Instant>,
) -> super::AuditResult<()> {
    let size = cp.audit_size().await?;
    let signed = cp.latest_checkpoint().await?.map(|(s, _)| s).unwrap_or(0);
    if size <= signed {
        *dirty_since = None;
        return Ok(());
    }
    let since = *dirty_since.get_or_insert_with(Instant::now);
    if size - signed >= every || since.elapsed() >= interval {
        let c = super::sign_at(cp, signer, size).await?;
        tracing::debug!(size = c.size, "signed audit checkpoint");
        *dirty_since = None;
    }
    Ok(())
}
