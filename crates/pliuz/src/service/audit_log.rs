//! Writes that belong to the audit log itself: the verifier keys it has
//! used, signed checkpoints, and entries that record an event of the log
//! (a key rotation, an accepted rollback) rather than a change elsewhere.

use super::ControlPlane;
use crate::approval::Actor;
use crate::audit_event::AuditEvent;
use crate::store::StoreError;

impl ControlPlane {
    /// Remembers a verifier key the log is (or was) signed with.
    pub async fn record_verifier_key(&self, key: &str) -> Result<(), StoreError> {
        self.store.record_verifier_key(key).await
    }

    /// Stores a signed checkpoint note over the first `size` entries.
    pub async fn save_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        self.store.save_checkpoint(size, note).await
    }

    /// Appends an entry that is itself the whole change, and commits it.
    pub async fn record_event(&self, event: AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.store.begin_write().await?;
        tx.audit(Actor::System, None, event).await?;
        tx.commit().await.map(drop)
    }
}
