//! In-process wake-ups: long-polls, live inbox pages and background workers
//! learn about changes the moment they are committed, without polling the
//! database. (With several replicas, PostgreSQL LISTEN/NOTIFY feeds the same
//! notifier.)
//!
//! Long-polls wait on *one* thing, so their waiters are keyed: a request's
//! long-poll by approval id, run long-polls by agent. A change wakes only
//! the waiters of its key, so the cost of a change does not grow with the
//! number of open long-polls, and a key's entry is removed when its last
//! waiter leaves. The few subscribers that want every change (the live
//! inbox feed, background workers) use one broadcast channel.

use crate::approval::{Approval, Status};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{broadcast, watch, Notify};

/// A committed change to one approval.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApprovalChanged {
    pub id: String,
    pub status: Status,
    pub policy: String,
}

/// What a woken approval waiter learns: the committed record when the change
/// was made in this process (no re-read needed), `None` when it came from
/// another replica (the notification is too small to carry it: re-read).
pub type Committed = Option<Arc<Approval>>;

/// Waiters keyed by `K`; each key has one watch channel while anyone waits
/// on it.
struct Keyed<K, V> {
    senders: Mutex<HashMap<K, watch::Sender<V>>>,
}

impl<K: Hash + Eq + Clone, V: Clone + Default> Keyed<K, V> {
    fn new() -> Self {
        Keyed {
            senders: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, watch::Sender<V>>> {
        // The map is never left half-updated, so a panic elsewhere while it
        // was locked does not make it unusable.
        self.senders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A receiver that sees every later `send` for `key`. Subscribing under
    /// the lock keeps the receiver count right for [`Keyed::leave`].
    fn subscribe(&self, key: &K) -> watch::Receiver<V> {
        self.lock()
            .entry(key.clone())
            .or_insert_with(|| watch::channel(V::default()).0)
            .subscribe()
    }

    /// Wakes the waiters of `key`, if any; `value` is only built then.
    fn send(&self, key: &K, value: impl FnOnce() -> V) {
        if let Some(tx) = self.lock().get(key) {
            tx.send_replace(value());
        }
    }

    fn send_all(&self, value: impl Fn() -> V) {
        for tx in self.lock().values() {
            tx.send_replace(value());
        }
    }

    /// Called by a departing waiter with its receiver, dropped under the
    /// lock so that two waiters leaving at once cannot both see the other
    /// and both keep the entry: the last one out removes the key.
    fn leave(&self, key: &K, rx: watch::Receiver<V>) {
        let mut map = self.lock();
        drop(rx);
        if map.get(key).is_some_and(|tx| tx.receiver_count() == 0) {
            map.remove(key);
            // A burst of waiters grew the table; give the space back once
            // most of them have left (a quarter: no shrink-grow see-saw).
            if map.capacity() > 64 && map.len() < map.capacity() / 4 {
                map.shrink_to_fit();
            }
        }
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.lock().capacity()
    }
}

/// A registered wait for one key; leaving (drop) returns its memory.
pub struct Waiter<K: Hash + Eq + Clone, V: Clone + Default> {
    key: K,
    // `Option` so that drop can hand the receiver to `leave`.
    rx: Option<watch::Receiver<V>>,
    keyed: Arc<Keyed<K, V>>,
}

impl<K: Hash + Eq + Clone, V: Clone + Default> Waiter<K, V> {
    fn new(keyed: &Arc<Keyed<K, V>>, key: K) -> Self {
        Waiter {
            rx: Some(keyed.subscribe(&key)),
            key,
            keyed: keyed.clone(),
        }
    }

    /// Waits for the next change of this key (changes made since the waiter
    /// was created count) and returns what it carried.
    pub async fn changed(&mut self) -> V {
        let Some(rx) = self.rx.as_mut() else {
            return std::future::pending().await;
        };
        // The sender lives in the map as long as this receiver does, so
        // `changed` cannot fail; if it ever did, wait for nothing rather
        // than spin.
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
        rx.borrow_and_update().clone()
    }
}

impl<K: Hash + Eq + Clone, V: Clone + Default> Drop for Waiter<K, V> {
    fn drop(&mut self) {
        if let Some(rx) = self.rx.take() {
            self.keyed.leave(&self.key, rx);
        }
    }
}

/// Waits for changes to one approval.
pub type ApprovalWaiter = Waiter<String, Committed>;
/// Waits for run changes of one agent (the value only counts changes).
pub type RunsWaiter = Waiter<String, u64>;
/// Waits for changes to one question (the value only counts changes).
pub type QuestionWaiter = Waiter<String, u64>;

#[derive(Clone)]
pub struct Notifier {
    changes: broadcast::Sender<ApprovalChanged>,
    approvals: Arc<Keyed<String, Committed>>,
    /// Wakes the expiry worker when a new deadline may be sooner.
    pub expiry: Arc<Notify>,
    /// Wakes the outbox worker when a message was queued.
    pub outbox: Arc<Notify>,
    /// Wakes the mail worker when a message was queued (its own, since a
    /// `Notify` wakes one waiter).
    pub mail: Arc<Notify>,
    /// Wakes the webhook worker when another replica settled a request
    /// (which may have queued a webhook event; this process's own commits
    /// say whether theirs did).
    pub settled_elsewhere: Arc<Notify>,
    /// Bumped when any run changes (`crate::service::runs`): the webhook
    /// worker.
    runs: Arc<watch::Sender<u64>>,
    /// Run long-polls, by agent.
    agent_runs: Arc<Keyed<String, u64>>,
    /// Question long-polls, by question id.
    questions: Arc<Keyed<String, u64>>,
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
            approvals: Arc::new(Keyed::new()),
            expiry: Arc::new(Notify::new()),
            outbox: Arc::new(Notify::new()),
            mail: Arc::new(Notify::new()),
            settled_elsewhere: Arc::new(Notify::new()),
            runs: Arc::new(watch::channel(0).0),
            agent_runs: Arc::new(Keyed::new()),
            questions: Arc::new(Keyed::new()),
        }
    }

    /// Waits for changes to question `id` (register before reading).
    pub fn wait_for_question(&self, id: &str) -> QuestionWaiter {
        Waiter::new(&self.questions, id.to_owned())
    }

    /// Messages were queued for delivery (committed): wakes the Slack and
    /// the mail worker.
    pub fn queued(&self) {
        self.outbox.notify_one();
        self.mail.notify_one();
    }

    /// A change to one of `agent`'s requests or questions committed: its
    /// runs' waiters wake when a run changed with it (`runs_changed`), and
    /// the delivery workers do, as it may have queued messages.
    pub fn change_committed(&self, agent: &str, runs_changed: bool) {
        if runs_changed {
            self.runs_changed(Some(agent));
        }
        self.queued();
    }

    /// Question `id` was answered or expired (committed in this process;
    /// waiters on other replicas re-read on their own schedule).
    pub fn question_changed(&self, id: &str) {
        self.questions.send(&id.to_owned(), || 0);
    }

    /// A receiver that sees every later run change of any agent.
    pub fn subscribe_runs(&self) -> watch::Receiver<u64> {
        self.runs.subscribe()
    }

    /// Waits for run changes of `agent` (register before reading, so a
    /// change in between is not missed).
    pub fn wait_for_runs(&self, agent: &str) -> RunsWaiter {
        Waiter::new(&self.agent_runs, agent.to_owned())
    }

    /// Runs of `agent` changed; `None` when which agent is unknown (a
    /// change relayed from another replica, or after a lost connection):
    /// then every run waiter re-reads.
    pub fn runs_changed(&self, agent: Option<&str>) {
        self.runs.send_modify(|n| *n = n.wrapping_add(1));
        let bump = || 0; // the value is unused: waking is the message
        match agent {
            Some(agent) => self.agent_runs.send(&agent.to_owned(), bump),
            None => self.agent_runs.send_all(bump),
        }
    }

    /// Every change, for the few that follow all of them (see the module
    /// docs; long-polls use [`Notifier::wait_for`]).
    pub fn subscribe(&self) -> broadcast::Receiver<ApprovalChanged> {
        self.changes.subscribe()
    }

    /// Waits for changes to approval `id` (register before reading, so a
    /// change in between is not missed).
    pub fn wait_for(&self, id: &str) -> ApprovalWaiter {
        Waiter::new(&self.approvals, id.to_owned())
    }

    /// Announces a change committed in this process, with the committed
    /// record for the request's waiters.
    pub fn publish_committed(&self, record: &Approval) {
        let change = ApprovalChanged {
            id: record.id.clone(),
            status: record.status,
            policy: record.policy.clone(),
        };
        self.approvals
            .send(&change.id, || Some(Arc::new(record.clone())));
        self.announce(change);
    }

    /// Announces a change another replica committed (PostgreSQL NOTIFY).
    /// Duplicates are harmless: waiters re-read.
    pub fn publish(&self, change: ApprovalChanged) {
        if change.status.is_settled() {
            self.settled_elsewhere.notify_one();
        }
        self.approvals.send(&change.id, || None);
        self.announce(change);
    }

    fn announce(&self, change: ApprovalChanged) {
        // A new pending request may be due sooner than the worker thinks; a
        // settled one cannot make any deadline sooner (issue #13: a wake-up
        // costs the worker four reads).
        let pending = change.status == Status::Pending;
        // No receivers is fine: nobody is waiting.
        let _ = self.changes.send(change);
        if pending {
            self.expiry.notify_one();
        }
    }

    /// Waits for the next change that `wanted` picks, or for a sign that one
    /// may have been missed (the receiver lagged): for workers that care
    /// about some changes only, each wake-up costing them reads (issue #13).
    pub async fn next_change(
        changes: &mut broadcast::Receiver<ApprovalChanged>,
        wanted: impl Fn(&ApprovalChanged) -> bool,
    ) {
        loop {
            match changes.recv().await {
                Ok(c) if !wanted(&c) => continue,
                _ => return,
            }
        }
    }

    /// Skips the changes already queued for this receiver. A worker calls it
    /// before a pass over the store: every change published so far has
    /// committed, so that one pass sees them all, instead of one pass per
    /// change under load (issue #13).
    pub fn skip_queued(changes: &mut broadcast::Receiver<ApprovalChanged>) {
        use broadcast::error::TryRecvError;
        while let Ok(_) | Err(TryRecvError::Lagged(_)) = changes.try_recv() {}
    }

    /// How many approval ids and agents have waiters (each is an entry).
    pub fn waited_on(&self) -> (usize, usize) {
        (self.approvals.len(), self.agent_runs.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_skips_the_changes_queued_before_its_pass_only() {
        let n = Notifier::new();
        let mut changes = n.subscribe();
        let change = |id: &str| ApprovalChanged {
            id: id.into(),
            status: Status::Approved,
            policy: "p".into(),
        };
        for i in 0..3 {
            n.publish(change(&format!("apr_{i}")));
        }
        Notifier::skip_queued(&mut changes);
        assert!(changes.try_recv().is_err(), "a queued change was left");
        n.publish(change("apr_late"));
        assert_eq!(
            changes.try_recv().map(|c| c.id).ok().as_deref(),
            Some("apr_late")
        );
    }

    #[tokio::test]
    async fn a_change_wakes_only_the_waiters_of_its_key() {
        let n = Notifier::new();
        let mut a = n.wait_for("apr_a");
        let mut b = n.wait_for("apr_b");
        n.publish(ApprovalChanged {
            id: "apr_a".into(),
            status: Status::Approved,
            policy: "p".into(),
        });
        let woke = tokio::time::timeout(std::time::Duration::from_secs(5), a.changed()).await;
        assert_eq!(woke.ok(), Some(None), "a relayed change carries no record");
        let not_woken =
            tokio::time::timeout(std::time::Duration::from_millis(50), b.changed()).await;
        assert!(not_woken.is_err(), "b was woken by a change to a");
    }

    #[tokio::test]
    async fn waiters_of_one_agent_wake_on_its_runs_and_on_unknown_ones() {
        let n = Notifier::new();
        let mut mine = n.wait_for_runs("bot-a");
        let mut other = n.wait_for_runs("bot-b");
        n.runs_changed(Some("bot-a"));
        let short = std::time::Duration::from_millis(50);
        assert!(tokio::time::timeout(short, mine.changed()).await.is_ok());
        assert!(tokio::time::timeout(short, other.changed()).await.is_err());
        n.runs_changed(None);
        assert!(tokio::time::timeout(short, other.changed()).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn waiters_leaving_at_the_same_time_leave_no_entry_behind() {
        let n = Notifier::new();
        let mut tasks = Vec::new();
        for i in 0..400 {
            let n = n.clone();
            tasks.push(tokio::spawn(async move {
                // Few ids, many waiters each: every leave races others.
                let mut w = n.wait_for(&format!("apr_{}", i % 5));
                let _ =
                    tokio::time::timeout(std::time::Duration::from_millis(1), w.changed()).await;
            }));
        }
        for t in tasks {
            t.await.expect("waiter task");
        }
        assert_eq!(n.waited_on(), (0, 0));
    }

    #[test]
    fn entries_are_removed_when_the_last_waiter_leaves() {
        let n = Notifier::new();
        let mut held = Vec::new();
        let mut held_runs = Vec::new();
        for i in 0..1000 {
            // Two waiters on some ids, one on others.
            held.push(n.wait_for(&format!("apr_{}", i % 600)));
            held_runs.push(n.wait_for_runs(&format!("bot-{}", i % 7)));
        }
        assert_eq!(n.waited_on(), (600, 7));
        // Leaving one of two keeps the entry; leaving the last removes it.
        held.swap_remove(0);
        let first_again = n.wait_for("apr_0");
        assert_eq!(n.waited_on(), (600, 7));
        drop(held);
        drop(held_runs);
        assert_eq!(n.waited_on(), (1, 0));
        drop(first_again);
        assert_eq!(n.waited_on(), (0, 0));
        // The table the 600 keys grew is given back, not just emptied.
        assert!(n.approvals.capacity() <= 64, "{}", n.approvals.capacity());
    }
}
