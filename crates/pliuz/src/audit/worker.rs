//! Signs checkpoints in the background: as soon as `checkpoint_every` entries
//! are unsigned, or when the oldest unsigned entry is `checkpoint_interval`
//! old. It wakes on every committed approval change and otherwise checks the
//! (one-row) log size about once a second, which also catches entries written
//! by the admin CLI or other replicas. A change reads the log only when a
//! checkpoint may be due by what this process committed (its size is kept in
//! memory): two reads per change saved (issue #13). The final checkpoint at
//! shutdown is signed by `server::serve` after every writer has stopped.

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
    // The signed size as last read (or signed here); `None`: unknown.
    let mut signed: Option<u64> = None;
    let mut woken_by_change = false;
    let mut last_check = Instant::now();
    loop {
        crate::notify::Notifier::skip_queued(&mut changes);
        // Entries of other processes are found by the read at least once a
        // second, busy or not.
        let due = match signed {
            Some(signed) if woken_by_change && last_check.elapsed() < POLL => {
                cp.committed_audit_size().saturating_sub(signed) >= every
                    || dirty_since.is_some_and(|t| t.elapsed() >= interval)
            }
            _ => true,
        };
        if due {
            last_check = Instant::now();
            match check(&cp, &signer, every, interval, &mut dirty_since).await {
                Ok(size) => signed = Some(size),
                Err(e) => {
                    signed = None;
                    tracing::error!(error = %e, "could not sign an audit checkpoint");
                }
            }
        } else {
            // The change appended entries: unsigned from now at the latest.
            dirty_since.get_or_insert_with(Instant::now);
        }
        woken_by_change = false;
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
                } else {
                    woken_by_change = true;
                }
            }
            _ = shutdown.wait() => return,
        }
    }
}

/// Reads the log's size and the latest checkpoint, and signs one if due.
/// Returns the size signed by now.
async fn check(
    cp: &ControlPlane,
    signer: &Signer,
    every: u64,
    interval: Duration,
    dirty_since: &mut Option<Instant>,
) -> super::AuditResult<u64> {
    let size = cp.audit_size().await?;
    let signed = cp.latest_checkpoint().await?.map(|(s, _)| s).unwrap_or(0);
    if size <= signed {
        *dirty_since = None;
        return Ok(signed);
    }
    let since = *dirty_since.get_or_insert_with(Instant::now);
    if size - signed >= every || since.elapsed() >= interval {
        let c = super::sign_at(cp, signer, size).await?;
        tracing::debug!(size = c.size, "signed audit checkpoint");
        *dirty_since = None;
        return Ok(c.size);
    }
    Ok(signed)
}
