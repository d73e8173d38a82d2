//! Point reads on SQLite that every agent request makes, answered on the
//! caller's own thread: the agent-key lookup, and whether a create's
//! idempotency key was used before (the SDKs send one with every call).
//!
//! Through the sqlx pool each of these indexed reads is handed to the
//! connection's worker thread and back, and those thread hops are most of a
//! request's cost on SQLite (issue #13). A point read of a unique index
//! takes microseconds, so it is run here instead, on a native read-only
//! connection, without leaving the async thread: `busy_timeout` 0, so it
//! never waits on a lock.
//!
//! Each read is a real read in its own read transaction (no cache): a key
//! revoked by the server or by another process (`pliuz agents revoke`) is
//! refused by the very next request. On any error, `SQLITE_BUSY` included,
//! the connection is dropped and the caller asks the pool, as it did before.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Idle connections kept. Lookups never await while holding one, so at
/// most one is busy per runtime thread; a few cover them.
const MAX_IDLE: usize = 4;

/// A few read-only connections to the SQLite file, lent one lookup at a time.
pub(super) struct InlineReader {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
    /// Reads that failed here and went to the pool; the first is logged.
    fallbacks: AtomicU64,
}

impl InlineReader {
    /// Opens nothing yet: the first lookup opens the first connection.
    pub(super) fn new(path: PathBuf) -> InlineReader {
        InlineReader {
            path,
            idle: Mutex::new(Vec::new()),
            fallbacks: AtomicU64::new(0),
        }
    }

    /// The name of the active agent holding the key with this hash
    /// (`sql` is the pool's statement, so the semantics are the same).
    /// `Err`: not read here (the connection is dropped); ask the pool.
    pub(super) fn agent_name(&self, sql: &str, hash: &str) -> rusqlite::Result<Option<String>> {
        use rusqlite::OptionalExtension;
        let name = self.read(|conn| {
            conn.prepare_cached(sql)?
                .query_row([hash], |row| row.get::<_, String>(0))
                .optional()
        })?;
        tracing::trace!("agent key looked up inline");
        Ok(name)
    }

    /// Whether `sql` finds a row with these values. `Err`: not read here;
    /// ask the pool.
    pub(super) fn finds(&self, sql: &str, values: [&str; 2]) -> rusqlite::Result<bool> {
        self.read(|conn| conn.prepare_cached(sql)?.exists(values))
    }

    /// Runs `read` on an idle connection (or a new one), kept for the next
    /// read only when it succeeded.
    fn read<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let conn = match self.take_idle() {
            Some(conn) => conn,
            None => self.open()?,
        };
        let value = read(&conn)?;
        self.put_back(conn);
        Ok(value)
    }

    /// Notes a read that went to the pool instead: logged the first time
    /// (a file this reader cannot open would otherwise log every request).
    pub(super) fn fell_back(&self, e: &rusqlite::Error) {
        if self.fallbacks.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(error = %e, "an inline read fell back to the connection pool");
        } else {
            tracing::debug!(error = %e, "an inline read fell back to the connection pool");
        }
    }

    /// Reads that fell back to the pool so far.
    #[cfg(test)]
    fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        use rusqlite::OpenFlags;
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // rusqlite waits 5 s by default; this thread runs other requests.
        conn.busy_timeout(Duration::ZERO)?;
        Ok(conn)
    }

    // A poisoned lock still holds a valid list: a panic cannot leave it
    // half-changed, so it is used as it is.
    fn take_idle(&self) -> Option<rusqlite::Connection> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
    }

    fn put_back(&self, conn: rusqlite::Connection) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::principals::AGENT_FOR_KEY_HASH_SQL;
    use super::super::{Result, Store, StoreError};
    use super::*;
    use crate::auth::Principal;
    use std::sync::Arc;

    fn failed(e: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt(e.to_string())
    }

    async fn store_with_agents() -> Result<(tempfile::TempDir, Store)> {
        let dir = tempfile::tempdir().map_err(failed)?;
        let path = dir.path().join("t.db");
        let store = Store::open(&format!("sqlite://{}", path.display()))
            .await
            .map_err(failed)?;
        let mut tx = store.begin_write().await?;
        tx.insert_agent("a1", "bot", "hash-bot", 1).await?;
        tx.insert_agent("a2", "gone", "hash-gone", 1).await?;
        tx.audit(
            "system",
            None,
            crate::audit_event::AuditEvent::AgentCreated { name: "bot".into() },
        )
        .await?;
        tx.commit().await?;
        Ok((dir, store))
    }

    async fn revoke(store: &Store, name: &str) -> Result<()> {
        let mut tx = store.begin_write().await?;
        assert!(tx.revoke_agent(name, 2).await?);
        tx.audit(
            "system",
            None,
            crate::audit_event::AuditEvent::AgentRevoked { name: name.into() },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn holder(store: &Store, hash: &str) -> Result<Option<String>> {
        Ok(match store.principal_for_secret_hash(hash, false).await? {
            Some(Principal::Agent { name }) => Some(name),
            Some(other) => Some(format!("not an agent: {other:?}")),
            None => None,
        })
    }

    // The server's store reads keys inline, sees a revocation by the very
    // next lookup (its idle connections kept their cached statement), and
    // never falls back.
    #[tokio::test]
    async fn keys_are_read_inline_and_a_revocation_is_seen_at_once() -> Result<()> {
        let (_dir, store) = store_with_agents().await?;
        let inline = store
            .inline
            .clone()
            .ok_or_else(|| failed("no inline reader"))?;
        for _ in 0..3 {
            assert_eq!(holder(&store, "hash-gone").await?.as_deref(), Some("gone"));
        }
        assert_eq!(inline.idle_count(), 1);
        revoke(&store, "gone").await?;
        assert_eq!(holder(&store, "hash-gone").await?, None);
        assert_eq!(
            inline
                .agent_name(AGENT_FOR_KEY_HASH_SQL, "hash-gone")
                .map_err(failed)?,
            None
        );
        assert_eq!(holder(&store, "hash-bot").await?.as_deref(), Some("bot"));
        assert_eq!(holder(&store, "hash-nobody").await?, None);
        assert_eq!(inline.fallbacks(), 0);
        Ok(())
    }

    /// Stores agent `bot`'s request `a1` made with idempotency key `k1`.
    async fn with_request(store: &Store) -> Result<()> {
        let mut a = crate::approval::sample(1);
        a.call.idempotency_key = Some("k1".into());
        let mut tx = store.begin_write().await?;
        tx.insert_approval(&a).await?;
        tx.audit(
            "agent:bot",
            Some(&a.id),
            crate::audit_event::AuditEvent::AgentCreated { name: "bot".into() },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn found_by_key(store: &Store, agent: &str, key: &str) -> Result<Option<String>> {
        Ok(store.find_by_idempotency(agent, key).await?.map(|a| a.id))
    }

    // Whether an idempotency key was used is read inline: a new key ends
    // there, a used one is then read whole from the pool; only the agent's
    // own keys count. A reader that cannot read leaves it to the pool, with
    // the same answers.
    #[tokio::test]
    async fn idempotency_keys_are_checked_inline_and_fall_back_alike() -> Result<()> {
        let (dir, store) = store_with_agents().await?;
        with_request(&store).await?;
        let inline = store
            .inline
            .clone()
            .ok_or_else(|| failed("no inline reader"))?;
        let broken = Arc::new(InlineReader::new(dir.path().join("missing/t.db")));
        let broken_store = store.with_inline(Some(broken.clone()));
        for s in [&store, &broken_store] {
            assert_eq!(found_by_key(s, "bot", "k1").await?.as_deref(), Some("a1"));
            assert_eq!(found_by_key(s, "bot", "k2").await?, None);
            assert_eq!(found_by_key(s, "other", "k1").await?, None);
        }
        assert_eq!(inline.fallbacks(), 0);
        assert_eq!(broken.fallbacks(), 3);
        assert!(inline
            .finds(
                super::super::approvals::IDEMPOTENCY_KEY_USED_SQL,
                ["bot", "k1"]
            )
            .map_err(failed)?);
        Ok(())
    }

    // A reader that cannot read (a path it cannot open, a file that is not
    // a database) fails, keeps no connection, and the pool answers instead,
    // rightly: active keys found, revoked and unknown ones not.
    #[tokio::test]
    async fn when_the_native_read_fails_the_pool_answers() -> Result<()> {
        let (dir, store) = store_with_agents().await?;
        revoke(&store, "gone").await?;
        let not_a_database = dir.path().join("not-a-database");
        std::fs::write(&not_a_database, vec![b'x'; 4096]).map_err(failed)?;
        for path in [dir.path().join("missing/t.db"), not_a_database] {
            let reader = Arc::new(InlineReader::new(path.clone()));
            let broken = store.with_inline(Some(reader.clone()));
            assert!(
                reader
                    .agent_name(AGENT_FOR_KEY_HASH_SQL, "hash-bot")
                    .is_err(),
                "{}",
                path.display()
            );
            assert_eq!(holder(&broken, "hash-bot").await?.as_deref(), Some("bot"));
            assert_eq!(holder(&broken, "hash-gone").await?, None);
            assert_eq!(holder(&broken, "hash-nobody").await?, None);
            assert_eq!(reader.fallbacks(), 3, "{}", path.display());
            assert_eq!(reader.idle_count(), 0);
        }
        Ok(())
    }
}
