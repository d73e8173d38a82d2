//! Policies kept in the database (`policy_source = "database"`): one row a
//! policy, its definition the JSON object the management API took.

use super::sql::{self, from_columns};
use super::{Backend, Result, Store, WriteTx};

/// The PostgreSQL NOTIFY channel that tells other replicas the policies
/// changed (they reload them all).
pub const POLICY_CHANGES_CHANNEL: &str = "pliuz_policy_changes";

#[derive(Debug, Clone)]
pub struct PolicyRow {
    pub name: String,
    pub position: i64,
    /// The definition as JSON text (an object with the file's keys).
    pub definition: String,
}

/// Every stored policy in matching order: the whole table is the answer
/// (at most `service::policies::MAX_POLICIES` rows, all of them needed), so
/// it is read whole rather than through an index.
const ALL_SQL: &str = "SELECT name, position, definition FROM policies ORDER BY position, name";

from_columns!(PolicyRow: name, position, definition);

impl Store {
    pub async fn stored_policies(&self) -> Result<Vec<PolicyRow>> {
        sql::fetch_all(&self.pool, ALL_SQL, ()).await
    }

    /// Reloads the policies whenever another replica changed them (and on
    /// every (re)connection), until shutdown (PostgreSQL only).
    pub async fn relay_policy_changes(
        &self,
        database_url: String,
        changed: std::sync::Arc<tokio::sync::Notify>,
        shutdown: crate::shutdown::Shutdown,
    ) {
        self.relay_channel(
            &database_url,
            POLICY_CHANGES_CHANNEL,
            "policy change",
            &shutdown,
            || changed.notify_one(),
            |_| changed.notify_one(),
        )
        .await;
    }
}

impl WriteTx {
    /// The stored policies as this transaction sees them.
    pub async fn stored_policies_tx(&mut self) -> Result<Vec<PolicyRow>> {
        sql::fetch_all(&mut *self.tx, ALL_SQL, ()).await
    }

    pub async fn insert_policy(&mut self, row: &PolicyRow, now: i64) -> Result<()> {
        let q = "INSERT INTO policies (name, position, definition, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)";
        let values = (&row.name, row.position, &row.definition, now);
        sql::execute(&mut *self.tx, q, values).await?;
        Ok(())
    }

    pub async fn update_policy(&mut self, name: &str, definition: &str, now: i64) -> Result<()> {
        let q = "UPDATE policies SET definition = $1, updated_at = $2 WHERE name = $3";
        sql::execute(&mut *self.tx, q, (definition, now, name)).await?;
        Ok(())
    }

    pub async fn delete_policy(&mut self, name: &str) -> Result<()> {
        sql::execute(
            &mut *self.tx,
            "DELETE FROM policies WHERE name = $1",
            (name,),
        )
        .await?;
        Ok(())
    }

    /// Tells other replicas, when this commits, to reload the policies.
    pub async fn notify_policy_change(&mut self) -> Result<()> {
        if self.store.backend == Backend::Postgres {
            let q = "SELECT pg_notify($1, '')";
            sql::execute(&mut *self.tx, q, (POLICY_CHANGES_CHANNEL,)).await?;
        }
        Ok(())
    }
}
