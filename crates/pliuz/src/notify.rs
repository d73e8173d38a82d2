//! In-process wake-ups: long-polls, live inbox pages and background workers
//! learn about changes the moment they are committed, without polling the
//! database. (With several replicas, PostgreSQL LISTEN/NOTIFY feeds the same
//! channel.)

use crate::approval::Status;
use std::sync::Arc;
use tokio::sync::{broadcast, watch, Notify};

/// A committed change to one approval.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApprovalChanged {
    pub id: String,
    pub status: Status,
    pub policy: String,
}

#[derive(Clone)]
pub struct Notifier {
    changes: broadcast::Sender<ApprovalChanged>,
    /// Wakes the expiry worker when a new deadline may be sooner.
    pub expiry: Arc<Notify>,
    /// Wakes the outbox worker when a message was queued.
    pub outbox: Arc<Notify>,
    /// Bumped when runs change (`crate::service::runs`): wakes run long-polls.
    runs: Arc<watch::Sender<u64>>,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier::new()
    }
}

impl Notifier {
    pub fn new() -> Notifier {
        let (changes, _) = broadcast::channel(1024);
        Notifier {
            changes,
            expiry: Arc::new(Notify::new()),
            outbox: Arc::new(Notify::new()),
            runs: Arc::new(watch::channel(0).0),
        }
    }

    /// A receiver that sees every later [`Notifier::runs_changed`].
    pub fn subscribe_runs(&self) -> watch::Receiver<u64> {
        self.runs.subscribe()
    }

    pub fn runs_changed(&self) {
        self.runs.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ApprovalChanged> {
        self.changes.subscribe()
    }

    /// Announces a committed change (from this process or, via PostgreSQL
    /// NOTIFY, another replica). Duplicates are harmless: waiters re-read.
    pub fn publish(&self, change: ApprovalChanged) {
        // No receivers is fine: nobody is waiting.
        let _ = self.changes.send(change);
        // A new pending request may be due sooner than the worker thinks.
        self.expiry.notify_one();
    }
}
