//! The store: one interface over SQLite (embedded default) and PostgreSQL
//! (several replicas sharing one database).
//!
//! Every state change goes through a [`WriteTx`], which refuses to commit
//! unless it appended at least one audit entry: the change and its record
//! land together or not at all.

mod approvals;
mod audit;
pub mod oidc;
mod outbox;
pub mod overview;
mod principals;
pub mod schema;
mod sessions;

pub use approvals::{ApprovalFilter, Page};
pub use audit::{format_time, AuditEvent, StoredEntry};
pub use outbox::OutboxMessage;
pub use sessions::SessionRecord;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};
use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The PostgreSQL NOTIFY channel that carries approval changes between replicas.
pub const CHANGES_CHANNEL: &str = "pliuz_approval_changes";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Stored data that cannot be read back (a bug or outside tampering).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Someone else changed the row first (optimistic concurrency).
    #[error("the record was changed concurrently")]
    Conflict,
    #[error("{0}")]
    Audit(String),
}

impl StoreError {
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Serialises this process's writers; across processes (admin CLI, other
    /// replicas) the audit head row lock does the same job.
    write_lock: Arc<Mutex<()>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub async fn open(database_url: &str) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if database_url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if database_url.starts_with("postgres:") || database_url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("database_url must start with sqlite:// or postgres://");
        };
        let url = match backend {
            Backend::Sqlite => {
                let path = database_url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:");
                let path = path.split('?').next().unwrap_or(path);
                if let Some(dir) = Path::new(path).parent() {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            anyhow::anyhow!("cannot create data directory {}: {e}", dir.display())
                        })?;
                    }
                }
                format!("sqlite://{path}?mode=rwc")
            }
            Backend::Postgres => database_url.to_owned(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; FULL makes every
                        // acknowledged commit survive power loss, not just kill -9.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
        let store = Store {
            pool,
            backend,
            write_lock: Arc::new(Mutex::new(())),
        };
        store.migrate().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Queries are written with `?` placeholders; PostgreSQL wants `$1..`.
    pub fn sql<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        match self.backend {
            Backend::Sqlite => Cow::Borrowed(sql),
            Backend::Postgres => Cow::Owned(numbered_placeholders(sql)),
        }
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let _guard = self.write_lock.lock().await;
        let mut conn = self.pool.acquire().await?;
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .await?;
        drop(conn);
        for m in schema::MIGRATIONS {
            let mut tx = self.pool.begin().await?;
            if self.backend == Backend::Postgres {
                // Replicas starting together must not both migrate.
                tx.execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
                    .await?;
            }
            let q = self.sql("SELECT COUNT(*) FROM schema_migrations WHERE version = ?");
            let done: i64 = sqlx::query_scalar(&q)
                .bind(m.version)
                .fetch_one(&mut *tx)
                .await?;
            if done > 0 {
                continue;
            }
            let sql = schema::full_sql(m, self.backend);
            sqlx::raw_sql(&sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| anyhow::anyhow!("migration {} ({}) failed: {e}", m.version, m.name))?;
            let q = self
                .sql("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)");
            sqlx::query(&q)
                .bind(m.version)
                .bind(m.name)
                .bind(now_millis())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Is the database answering? (`/readyz`)
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Starts a write transaction. Its first statement takes the audit head
    /// row lock, which orders all writers across processes and replicas (and
    /// on SQLite takes the write lock up front, so a transaction never fails
    /// half-way for lack of it).
    pub async fn begin_write(&self) -> Result<WriteTx> {
        let guard = self.write_lock.clone().lock_owned().await;
        let mut tx = self.pool.begin().await?;
        tx.execute("UPDATE audit_head SET size = size WHERE id = 1")
            .await?;
        Ok(WriteTx {
            tx,
            store: self.clone(),
            appended: Vec::new(),
            _guard: guard,
        })
    }

    /// Forwards change notifications from other replicas into `notifier`
    /// until shutdown (PostgreSQL only; reconnects after errors).
    pub async fn relay_changes(
        &self,
        database_url: String,
        notifier: crate::notify::Notifier,
        shutdown: crate::shutdown::Shutdown,
    ) {
        if self.backend != Backend::Postgres {
            return;
        }
        loop {
            let listener = async {
                let mut l = sqlx::postgres::PgListener::connect(&database_url).await?;
                l.listen(CHANGES_CHANNEL).await?;
                Ok::<_, sqlx::Error>(l)
            };
            let mut listener = tokio::select! {
                l = listener => match l {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for changes from other replicas; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                            _ = shutdown.wait() => return,
                        }
                    }
                },
                _ = shutdown.wait() => return,
            };
            loop {
                tokio::select! {
                    n = listener.recv() => match n {
                        Ok(n) => match serde_json::from_str(n.payload()) {
                            Ok(change) => notifier.publish(change),
                            Err(e) => tracing::warn!(error = %e, "ignoring a malformed change notification"),
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "lost the change listener; reconnecting");
                            break;
                        }
                    },
                    _ = shutdown.wait() => return,
                }
            }
        }
    }

    pub async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        let q = self.sql("SELECT value FROM meta WHERE key = ?");
        Ok(sqlx::query_scalar(&q)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }
}

/// A write transaction that must carry its own audit record.
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    store: Store,
    appended: Vec<u64>,
    _guard: OwnedMutexGuard<()>,
}

impl WriteTx {
    pub fn sql<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        self.store.sql(sql)
    }

    pub fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    /// Commits the change and its audit entries together. Returns the audit
    /// indexes written.
    pub async fn commit(self) -> Result<Vec<u64>> {
        if self.appended.is_empty() {
            // A state change without an audit record is a bug: refuse it.
            self.tx.rollback().await?;
            return Err(StoreError::Audit(
                "refusing to commit a change that was not audited".into(),
            ));
        }
        self.tx.commit().await?;
        Ok(self.appended)
    }

    /// Tells other replicas about a change when this transaction commits.
    pub async fn notify_replicas(&mut self, change: &crate::notify::ApprovalChanged) -> Result<()> {
        if self.store.backend == Backend::Postgres {
            let payload = serde_json::to_string(change)
                .map_err(|e| StoreError::Corrupt(format!("change notification: {e}")))?;
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGES_CHANNEL)
                .bind(payload)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    pub async fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        let q = self.sql("DELETE FROM meta WHERE key = ?");
        sqlx::query(&q).bind(key).execute(&mut *self.tx).await?;
        let q = self.sql("INSERT INTO meta (key, value) VALUES (?, ?)");
        sqlx::query(&q)
            .bind(key)
            .bind(value)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}

pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut in_string = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                in_string = !in_string;
                out.push(c);
            }
            '?' if !in_string => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

/// Reads helpers for `AnyRow`, mapping decode failures to `Corrupt`.
pub(crate) fn col<T>(row: &AnyRow, name: &str) -> Result<T>
where
    T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get::<T, _>(name)
        .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
}

pub(crate) fn json_col(row: &AnyRow, name: &str) -> Result<Option<serde_json::Value>> {
    match col::<Option<String>>(row, name)? {
        None => Ok(None),
        Some(s) => serde_json::from_str(&s)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_strings() {
        assert_eq!(
            numbered_placeholders("SELECT '?' FROM t WHERE a = ? AND b = ?"),
            "SELECT '?' FROM t WHERE a = $1 AND b = $2"
        );
    }
}
