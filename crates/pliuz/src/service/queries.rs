//! Every read of the store from outside the service layer: lists and pages
//! for the API and the inbox, the audit log and its proofs, what the
//! workers have due, account lookups, and the store's lifecycle at start and
//! shutdown. The store itself is private to `service`; these say in one
//! place what the edges may read.

use super::{ControlPlane, CopyError};
use crate::approval::Approval;
use crate::auth::{Principal, User};
use crate::notify::Notifier;
use crate::run::Run;
use crate::shutdown::Shutdown;
use crate::store::overview::OverviewRows;
use crate::store::runs::{DueWebhook, RunFilter};
use crate::store::slack as slack_store;
use crate::store::{
    AgentRecord, ApprovalFilter, OutboxMessage, Page, SessionRecord, StartupLock, Store,
    StoreError, StoredEntry, UserRecord,
};
use pliuz_audit::Hash;
use std::collections::HashMap;
use std::future::Future;
use std::ops::Range;
use std::time::Duration;

type Result<T> = std::result::Result<T, StoreError>;

/// Approvals: pages and counts behind the API list and the inbox.
impl ControlPlane {
    /// A request by id, whoever asks: for the workers and Slack, which
    /// check permissions themselves ([`ControlPlane::get_for`] checks them).
    pub async fn get_approval(&self, id: &str) -> Result<Option<Approval>> {
        self.store.get_approval(id).await
    }

    pub async fn list_approvals(&self, filter: &ApprovalFilter) -> Result<Page> {
        self.store.list_approvals(filter).await
    }

    pub async fn count_approvals(&self, filter: &ApprovalFilter) -> Result<i64> {
        self.store.count_approvals(filter).await
    }

    /// The overview's rows (`policies`: `None` for all), requests settled
    /// in `settled_in`.
    pub async fn overview_rows(
        &self,
        policies: Option<&[String]>,
        settled_in: Range<i64>,
    ) -> Result<OverviewRows> {
        self.store.overview_rows(policies, settled_in).await
    }
}

/// The gauges of `GET /metrics`, read at scrape time.
impl ControlPlane {
    pub async fn store_gauges(&self) -> Result<crate::metrics::StoreGauges> {
        use crate::metrics::Channel;
        let outbox_depth = self
            .store
            .outbox_depth()
            .await?
            .into_iter()
            .map(|(kind, n)| {
                let channel = if kind == crate::store::runs::WEBHOOK_KIND {
                    Channel::Webhook
                } else if kind.starts_with("email.") {
                    Channel::Email
                } else {
                    Channel::Slack
                };
                (channel, n)
            })
            .collect();
        Ok(crate::metrics::StoreGauges {
            live_approvals: self.store.live_approval_counts().await?,
            outbox_depth,
            audit_entries: self.store.audit_size().await?,
            latest_checkpoint_at: self.store.latest_checkpoint_at().await?,
            write_stats: self.store.write_stats(),
        })
    }
}

/// Durable runs.
impl ControlPlane {
    pub async fn list_runs(&self, filter: &RunFilter<'_>) -> Result<Vec<Run>> {
        self.store.list_runs(filter).await
    }

    /// When the agent's next run lease runs out, if any.
    pub async fn next_lease_expiry(&self, agent: &str, now: i64) -> Result<Option<i64>> {
        self.store.next_lease_expiry(agent, now).await
    }
}

/// The audit log, its checkpoints and proofs.
impl ControlPlane {
    pub async fn audit_size(&self) -> Result<u64> {
        self.store.audit_size().await
    }

    /// The log's size after this process's latest commit, read from memory
    /// (entries other processes wrote are not counted).
    pub fn committed_audit_size(&self) -> u64 {
        self.store.committed_audit_size()
    }

    /// Entries `start..end` in log order.
    pub async fn audit_entries(&self, start: u64, end: u64) -> Result<Vec<StoredEntry>> {
        self.store.audit_entries(start, end).await
    }

    /// Copies entries `0..size` as they are stored, one per line, into `out`
    /// (flushed, not synced): the export's `entries.jsonl`.
    pub async fn copy_audit_entries(
        &self,
        size: u64,
        out: std::fs::File,
    ) -> std::result::Result<(u64, std::fs::File), CopyError> {
        self.store.copy_audit_entries(size, out).await
    }

    pub async fn audit_entries_for(&self, approval_id: &str) -> Result<Vec<StoredEntry>> {
        self.store.audit_entries_for(approval_id).await
    }

    pub async fn audit_hashes(&self, indexes: &[u64]) -> Result<HashMap<u64, Hash>> {
        self.store.audit_hashes(indexes).await
    }

    /// The Merkle root of the first `size` entries.
    pub async fn audit_root(&self, size: u64) -> Result<Hash> {
        self.store.audit_root(size).await
    }

    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>> {
        self.store.inclusion_proof(index, size).await
    }

    pub async fn consistency_proof(&self, from: u64, size: u64) -> Result<Vec<Hash>> {
        self.store.consistency_proof(from, size).await
    }

    /// The newest checkpoint: (size, note).
    pub async fn latest_checkpoint(&self) -> Result<Option<(u64, String)>> {
        self.store.latest_checkpoint().await
    }

    /// The smallest checkpoint covering `size` entries.
    pub async fn checkpoint_covering(&self, size: u64) -> Result<Option<(u64, String)>> {
        self.store.checkpoint_covering(size).await
    }

    pub async fn all_checkpoints(&self) -> Result<Vec<(u64, String)>> {
        self.store.all_checkpoints().await
    }

    pub async fn verifier_keys(&self) -> Result<Vec<String>> {
        self.store.verifier_keys().await
    }
}

/// Accounts and credentials.
impl ControlPlane {
    pub async fn list_users(&self) -> Result<Vec<User>> {
        self.store.list_users().await
    }

    pub async fn count_users(&self) -> Result<i64> {
        self.store.count_users().await
    }

    pub async fn list_agents(&self) -> Result<Vec<AgentRecord>> {
        self.store.list_agents().await
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>> {
        self.store.user_by_email(email).await
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>> {
        self.store.user_by_id(id).await
    }

    pub async fn user_by_setup_token_hash(&self, hash: &str, now: i64) -> Result<Option<User>> {
        self.store.user_by_setup_token_hash(hash, now).await
    }

    /// Who holds the API secret with this hash (agent key or user token).
    /// `user_token_first` only orders the lookups (one statement fewer for
    /// a secret shaped like a user token); either kind is still found.
    pub async fn principal_for_secret_hash(
        &self,
        hash: &str,
        user_token_first: bool,
    ) -> Result<Option<Principal>> {
        self.store
            .principal_for_secret_hash(hash, user_token_first)
            .await
    }

    /// The inbox session with this token hash, if it is still open at `now`.
    pub async fn session_by_hash(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<SessionRecord>> {
        self.store.session_by_hash(token_hash, now).await
    }
}

/// What the workers have due.
impl ControlPlane {
    pub async fn due_expiries(&self, now: i64, limit: i64) -> Result<Vec<String>> {
        self.store.due_expiries(now, limit).await
    }

    pub async fn next_expiry(&self) -> Result<Option<i64>> {
        self.store.next_expiry().await
    }

    pub async fn due_outbox(&self, now: i64, limit: i64) -> Result<Vec<OutboxMessage>> {
        self.store.due_outbox(now, limit).await
    }

    pub async fn next_outbox_due(&self) -> Result<Option<i64>> {
        self.store.next_outbox_due().await
    }

    pub async fn due_webhooks(&self, now: i64, limit: i64) -> Result<Vec<DueWebhook>> {
        self.store.due_webhooks(now, limit).await
    }

    pub async fn next_webhook_due(&self) -> Result<Option<i64>> {
        self.store.next_webhook_due().await
    }

    /// Whether this outbox row already reached `target` in Slack.
    pub async fn slack_already_sent(&self, outbox_id: &str, target: &str) -> Result<bool> {
        slack_store::already_sent(&self.store, outbox_id, target).await
    }

    /// The Slack messages posted about a request.
    pub async fn slack_messages_for(
        &self,
        approval_id: &str,
    ) -> Result<Vec<slack_store::PostedMessage>> {
        slack_store::messages_for(&self.store, approval_id).await
    }

    /// Posts and DMs about a request still queued (not yet in Slack).
    pub async fn slack_pending_posts(&self, approval_id: &str) -> Result<i64> {
        slack_store::pending_posts(&self.store, approval_id).await
    }
}

/// The store's lifecycle: start-up, readiness, shutdown.
impl ControlPlane {
    /// Serialises replicas starting on one database (first admin,
    /// `policy.loaded`), until the lock is released.
    pub async fn startup_lock(&self) -> anyhow::Result<StartupLock> {
        self.store.startup_lock().await
    }

    /// Whether the store can serve requests now, and why not.
    pub async fn readiness(&self) -> std::result::Result<(), String> {
        self.store.readiness().await
    }

    /// Refuses new transactions from now on (shutdown).
    pub fn drain(&self) {
        self.store.drain();
    }

    /// Waits until no write is in flight and refuses new ones.
    pub async fn stop_writes(&self) {
        self.store.stop_writes().await;
    }

    /// Signalled after a commit of this process that queued a webhook event.
    pub fn webhook_queued(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.store.webhook_queued()
    }

    /// Relays other replicas' approval changes (PostgreSQL NOTIFY) to this
    /// process's waiters until `shutdown`.
    pub fn relay_changes(&self, shutdown: Shutdown) -> impl Future<Output = ()> + Send + 'static {
        let (store, url, notifier) = self.relay_parts();
        async move { store.relay_changes(url, notifier, shutdown).await }
    }

    /// The same for durable runs.
    pub fn relay_run_changes(
        &self,
        shutdown: Shutdown,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (store, url, notifier) = self.relay_parts();
        async move { store.relay_run_changes(url, notifier, shutdown).await }
    }

    fn relay_parts(&self) -> (Store, String, Notifier) {
        (
            self.store.clone(),
            self.settings.database_url.clone(),
            self.notifier.clone(),
        )
    }
}

/// The users in the database at `database_url`, without starting a control
/// plane (`pliuz policy check`). The error says why they could not be read.
pub async fn users_in(
    database_url: &str,
    open_within: Duration,
) -> std::result::Result<Vec<User>, String> {
    let store = match tokio::time::timeout(open_within, Store::open(database_url)).await {
        Ok(Ok(store)) => store,
        Ok(Err(e)) => return Err(format!("{e:#}")),
        Err(_) => {
            return Err(format!(
                "the database did not answer within {} s",
                open_within.as_secs()
            ))
        }
    };
    store.list_users().await.map_err(|e| e.to_string())
}
