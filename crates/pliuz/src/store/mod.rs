//! The store: one interface over SQLite (embedded default) and PostgreSQL
//! (several replicas sharing one database).
//!
//! Every state change goes through a [`WriteTx`], which refuses to commit
//! unless it appended at least one audit entry: the change and its record
//! land together or not at all.

mod approvals;
mod audit;
pub mod audit_copy;
pub mod email;
mod gauges;
pub mod health;
mod inline_read;
pub mod oidc;
mod outbox;
pub mod overview;
pub mod policies;
mod principals;
#[cfg(test)]
mod query_plans;
pub mod questions;
pub mod runs;
pub mod schema;
mod sessions;
pub mod slack;
mod sql;
pub mod timers;
mod write_behind;
mod write_conn;
mod writer;

pub use approvals::{ApprovalFilter, Page};
pub use audit::{format_time, AuditEvent, StoredEntry};
pub use outbox::OutboxMessage;
pub use principals::{AgentRecord, UserRecord, UserTokenRecord};
pub use sessions::SessionRecord;
pub use writer::{WriteStats, MAX_BATCH};

use sqlx::any::AnyPoolOptions;
use sqlx::pool::PoolConnection;
use sqlx::AnyConnection;
use sqlx::{Any, AnyPool, Connection, Executor};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

/// The PostgreSQL NOTIFY channel that carries approval changes between replicas.
pub const CHANGES_CHANNEL: &str = "pliuz_approval_changes";

/// How long a write may wait for its turn and for the database's write lock
/// before it is answered `503 unavailable`.
pub const WRITE_WAIT: Duration = Duration::from_secs(5);
/// Writes waiting in this process beyond this many are refused at once
/// (`503` with `Retry-After`) instead of queueing without bound.
pub const MAX_QUEUED_WRITES: usize = 128;
/// The store's own writes (signed checkpoints) waiting for a write turn at
/// once: a queue apart, so that they never take one of the requests' places
/// (issue #13). The readiness probe takes none: it runs one at a time.
pub const MAX_QUEUED_INTERNAL_WRITES: usize = 1;
/// The readiness probe's shorter wait (health checks have short timeouts).
const PROBE_WAIT: Duration = Duration::from_secs(1);
/// PostgreSQL advisory lock key serialising start-up work across replicas
/// ("pliuz" and 1).
const STARTUP_LOCK_KEY: i64 = 0x706c_6975_7a00_0001;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The database cannot serve now (locked, full, damaged, unreachable,
    /// overloaded); `reason` says which. Served as `503` with `Retry-After`.
    /// The change was not made, unless `outcome_unknown` (the connection or
    /// the disk failed during `COMMIT` itself).
    #[error("the database is unavailable: {reason}")]
    Unavailable {
        reason: String,
        retry_after: u64,
        outcome_unknown: bool,
    },
    /// Stored data that cannot be read back (a bug or outside tampering).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Someone else changed the row first (optimistic concurrency).
    #[error("the record was changed concurrently")]
    Conflict,
    #[error("{0}")]
    Audit(String),
    /// An audit entry over `pliuz_audit::limits::MAX_ENTRY_BYTES`: refused,
    /// never written, because verifiers would not read it.
    #[error("the audit entry for this change would be {0} bytes, over the {max} bytes every verifier accepts; send smaller arguments (see docs/limits.md)", max = pliuz_audit::limits::MAX_ENTRY_BYTES)]
    EntryTooLarge(usize),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        match health::unavailable_reason(&e) {
            Some((reason, retry_after)) => {
                health::failed(&reason);
                StoreError::Unavailable {
                    reason,
                    retry_after,
                    outcome_unknown: false,
                }
            }
            None => StoreError::Database(e),
        }
    }
}

impl StoreError {
    fn unavailable(reason: impl Into<String>, retry_after: u64) -> StoreError {
        StoreError::Unavailable {
            reason: reason.into(),
            retry_after,
            outcome_unknown: false,
        }
    }

    /// A failed `COMMIT`. A lost connection or an I/O error at that moment
    /// leaves the outcome unknown, and the reason says so.
    fn commit_failed(e: sqlx::Error) -> StoreError {
        let unknown = match &e {
            sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                if write_conn::is_sqlite(db.as_ref()) {
                    c.parse::<i64>().is_ok_and(|n| n & 0xff == 10)
                } else {
                    c.starts_with("08")
                }
            }),
            _ => false,
        };
        match StoreError::from(e) {
            StoreError::Unavailable {
                reason,
                retry_after,
                ..
            } => StoreError::Unavailable {
                reason,
                retry_after,
                outcome_unknown: unknown,
            },
            other => other,
        }
    }

    /// The same failure again, for each member of a batch that shares it.
    fn share(&self) -> StoreError {
        match self {
            StoreError::Unavailable {
                reason,
                retry_after,
                outcome_unknown,
            } => StoreError::Unavailable {
                reason: reason.clone(),
                retry_after: *retry_after,
                outcome_unknown: *outcome_unknown,
            },
            // Not `Database` (not cloneable): served as unavailable, the
            // change was not made.
            other => StoreError::unavailable(format!("the commit failed: {other}"), 1),
        }
    }

    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The store, shared: one allocation, so that a clone (one per write, and
/// one per handle a worker keeps) is one atomic count, not one per part.
#[derive(Clone)]
pub struct Store(Arc<StoreParts>);

/// What a [`Store`] holds (reached through it: `self.pool`).
#[derive(Clone)]
pub struct StoreParts {
    pool: AnyPool,
    backend: Backend,
    /// Serialises this process's migrations; writes are ordered by the
    /// writer (`writer`), and across processes (admin CLI, other replicas)
    /// by the audit head row lock.
    write_lock: Arc<Mutex<()>>,
    /// Bounds the writes waiting for the writer (`MAX_QUEUED_WRITES`).
    writers: Arc<Semaphore>,
    /// Bounds the store's own writes apart (`MAX_QUEUED_INTERNAL_WRITES`).
    internal_writers: Arc<Semaphore>,
    /// The latest readiness probe and when it ran (`/readyz`).
    probe: Arc<Mutex<Option<Probe>>>,
    /// The SQLite database file (its filesystem's free space is health).
    file: Option<std::path::PathBuf>,
    /// Set when shutdown begins: `/readyz` turns 503 so traffic drains.
    draining: Arc<AtomicBool>,
    /// Set at shutdown: no write may start after the final checkpoint.
    closed: Arc<AtomicBool>,
    /// The writer task that owns the write connection and commits waiting
    /// changes together (`writer`).
    writer: tokio::sync::mpsc::UnboundedSender<writer::Ask>,
    /// Transactions and changes committed by this process.
    stats: Arc<WriteStats>,
    /// SQLite on a file: agent keys looked up without the pool's thread hop.
    inline: Option<Arc<inline_read::InlineReader>>,
    /// Signalled after a commit that queued a webhook event: the webhook
    /// worker's wake-up (not after every change: most agents have no
    /// webhook, and each wake-up costs the worker two reads).
    webhook_queued: Arc<tokio::sync::Notify>,
    /// This store's id in the change notifications it sends (PostgreSQL),
    /// so that it does not hear its own changes back as another replica's.
    origin: Arc<str>,
}

impl std::ops::Deref for Store {
    type Target = StoreParts;
    fn deref(&self) -> &StoreParts {
        &self.0
    }
}

impl Store {
    /// The same store with another inline reader (tests of its fallback).
    #[cfg(test)]
    fn with_inline(&self, inline: Option<Arc<inline_read::InlineReader>>) -> Store {
        Store(Arc::new(StoreParts {
            inline,
            ..StoreParts::clone(&self.0)
        }))
    }
}

/// When a readiness probe ran and what it found.
type Probe = (Instant, std::result::Result<(), String>);

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

/// Who keeps the store open, which decides what each connection is set up
/// with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opener {
    /// `pliuz serve`: a pool for concurrent requests, and SQLite's planner
    /// statistics refreshed as connections open.
    Server,
    /// A one-shot admin command: a few statements one after the other, then
    /// exit. Two connections at most (PostgreSQL's start-up lock holds one),
    /// and no statistics refresh (up to milliseconds a connection on a
    /// growing log; the server keeps them fresh).
    Command,
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub async fn open(database_url: &str) -> anyhow::Result<Store> {
        Store::open_for(database_url, Opener::Server).await
    }

    /// [`Store::open`] with the connections `opener` needs.
    pub async fn open_for(database_url: &str, opener: Opener) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if database_url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if database_url.starts_with("postgres:") || database_url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("database_url must start with sqlite:// or postgres://");
        };
        let (url, shown) = match backend {
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
                (format!("sqlite://{path}?mode=rwc"), path.to_owned())
            }
            Backend::Postgres => (database_url.to_owned(), redact_url(database_url)),
        };
        // One connection by hand first: the pool retries a failing connection
        // until its timeout and then reports only the timeout, hiding the cause.
        let refresh_stats = opener == Opener::Server;
        first_connection(backend, &url, &shown, refresh_stats).await?;
        let pool = AnyPoolOptions::new()
            .max_connections(match (opener, backend) {
                (Opener::Command, _) => 2,
                (Opener::Server, Backend::Sqlite) => 8,
                (Opener::Server, Backend::Postgres) => 16,
            })
            .acquire_timeout(WRITE_WAIT)
            // A SQLite connection is a thread in this process: pinging it
            // before each read proves nothing a read would not, and costs a
            // thread hop on every request (issue #13).
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        prepare_sqlite(conn, refresh_stats).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the database {shown}: {}", describe(&e)))?;
        let stats = Arc::new(WriteStats::default());
        // An in-memory database is the pool's alone: a new connection would
        // see another, empty one.
        let file = (backend == Backend::Sqlite && !shown.is_empty() && shown != ":memory:")
            .then(|| std::path::PathBuf::from(&shown));
        let writer = writer::spawn(url.clone(), backend, file.clone(), stats.clone());
        let store = Store(Arc::new(StoreParts {
            pool,
            backend,
            writer,
            stats,
            write_lock: Arc::new(Mutex::new(())),
            writers: Arc::new(Semaphore::new(MAX_QUEUED_WRITES)),
            internal_writers: Arc::new(Semaphore::new(MAX_QUEUED_INTERNAL_WRITES)),
            probe: Arc::new(Mutex::new(None)),
            file: (backend == Backend::Sqlite).then(|| std::path::PathBuf::from(&shown)),
            inline: file.map(|f| Arc::new(inline_read::InlineReader::new(f))),
            webhook_queued: Arc::new(tokio::sync::Notify::new()),
            origin: format!("{:032x}", rand::random::<u128>()).into(),
            draining: Arc::new(AtomicBool::new(false)),
            closed: Arc::new(AtomicBool::new(false)),
        }));
        let lock = store.startup_lock().await?;
        store.migrate().await?;
        lock.release().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// `(transactions, changes)` this process committed: more changes than
    /// transactions means group commit shared them.
    pub fn write_stats(&self) -> (u64, u64) {
        (
            self.stats.commits.load(Ordering::Relaxed),
            self.stats.changes.load(Ordering::Relaxed),
        )
    }

    /// The audit log's size after this process's latest commit (0 before
    /// any); entries other processes wrote are not counted.
    pub fn committed_audit_size(&self) -> u64 {
        u64::try_from(self.stats.audit_size.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Serialises start-up work (migrations, the first admin, `policy.loaded`)
    /// across replicas starting together: a PostgreSQL advisory lock held on
    /// its own connection until [`StartupLock::release`]. On SQLite there is
    /// one server per file and the file lock orders everything else.
    pub async fn startup_lock(&self) -> anyhow::Result<StartupLock> {
        if self.backend != Backend::Postgres {
            return Ok(StartupLock { conn: None });
        }
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| anyhow::anyhow!("cannot take the start-up lock: {}", describe(&e)))?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(STARTUP_LOCK_KEY)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| anyhow::anyhow!("cannot take the start-up lock: {}", describe(&e)))?;
        if !got {
            tracing::info!("another replica is starting up; waiting for it to finish");
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(STARTUP_LOCK_KEY)
                .execute(&mut *conn)
                .await
                .map_err(|e| anyhow::anyhow!("cannot take the start-up lock: {}", describe(&e)))?;
        }
        Ok(StartupLock { conn: Some(conn) })
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let _guard = self.write_lock.lock().await;
        let mut conn = self.pool.acquire().await?;
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .await?;
        // Every command opens the store (`pliuz audit export`, `users`, ...):
        // when everything is applied, one read says so instead of one
        // transaction per migration. Otherwise each is checked again below,
        // in its own transaction, in case another process is migrating.
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
            .fetch_all(&mut *conn)
            .await?;
        drop(conn);
        if schema::MIGRATIONS
            .iter()
            .all(|m| applied.contains(&m.version))
        {
            return Ok(());
        }
        for m in schema::MIGRATIONS {
            let mut tx = self.pool.begin().await?;
            if self.backend == Backend::Postgres {
                // Also serialised by the start-up lock; this covers admin
                // commands of an older version running at the same time.
                tx.execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
                    .await?;
            }
            let q = "SELECT COUNT(*) FROM schema_migrations WHERE version = $1";
            let done: i64 = sqlx::query_scalar(q)
                .bind(m.version)
                .fetch_one(&mut *tx)
                .await?;
            if done > 0 {
                continue;
            }
            let sql = m.sql(self.backend);
            sqlx::raw_sql(&sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| anyhow::anyhow!("migration {} ({}) failed: {e}", m.version, m.name))?;
            let q = "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)";
            sqlx::query(q)
                .bind(m.version)
                .bind(m.name)
                .bind(now_millis())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Is the database answering reads?
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Can the store take writes right now (`/readyz`)? A real commit a
    /// moment ago is proof enough; otherwise one probe transaction takes the
    /// write lock and commits (it writes the audit head row unchanged), with
    /// a short wait. After a full disk, the disk must also have room again:
    /// a probe's one page can fit where real writes do not. `Err` carries
    /// the reason.
    pub async fn readiness(&self) -> std::result::Result<(), String> {
        if self.draining.load(Ordering::Acquire) || self.closed.load(Ordering::Acquire) {
            return Err("the server is shutting down".into());
        }
        if health::recently_committed() {
            return Ok(());
        }
        let mut last = self.probe.lock().await;
        if let Some((at, result)) = &*last {
            if at.elapsed() < health::PROBE_REUSE {
                return result.clone();
            }
        }
        let earlier = health::failing();
        // No place in a write queue: `probe`, held, admits one at a time.
        let probed = match self.take_turn(PROBE_WAIT, None).await {
            Ok(tx) => tx.commit_unaudited().await,
            Err(e) => Err(e),
        };
        let result = match probed {
            Ok(()) => self.check_free_space(earlier.as_deref()),
            Err(StoreError::Unavailable { reason, .. }) => Err(match earlier {
                Some(e) if !e.starts_with(&reason) => {
                    format!("{reason} (latest failure of a write: {e})")
                }
                _ => reason,
            }),
            Err(other) => Err(other.to_string()),
        };
        *last = Some((Instant::now(), result.clone()));
        result
    }

    fn check_free_space(&self, earlier: Option<&str>) -> std::result::Result<(), String> {
        let (Some(file), Some(e)) = (&self.file, earlier) else {
            return Ok(());
        };
        if !e.starts_with(health::DISK_FULL) {
            return Ok(());
        }
        match health::free_bytes(file.parent().unwrap_or(Path::new("."))) {
            Some(free) if free < health::MIN_FREE_BYTES => Err(format!(
                "{} ({free} bytes free; writes failed: {e})",
                health::DISK_FULL
            )),
            _ => Ok(()),
        }
    }

    /// Shutdown has begun: not ready any more, though in-flight requests
    /// may still write.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Refuses every later write and waits for the one in progress (if any):
    /// after this, nothing this process does can grow the audit log.
    pub async fn stop_writes(&self) {
        self.closed.store(true, Ordering::Release);
        // Served after every turn already asked for: their batches commit,
        // later ones are refused.
        let (ack, done) = tokio::sync::oneshot::channel();
        if self.writer.send(writer::Ask::Stop(ack)).is_ok() {
            let _ = done.await;
        }
        drop(self.write_lock.lock().await);
    }

    /// Starts a write transaction: a turn in the writer's batch (`writer`).
    /// The batch's transaction takes the database's write lock up front (on
    /// SQLite `BEGIN IMMEDIATE`; on PostgreSQL the audit head row lock,
    /// which orders all writers across processes and replicas), so a
    /// transaction never fails half-way for lack of it. Waits at most
    /// [`WRITE_WAIT`] in all; a full queue, a locked, full or unreachable
    /// database is `Unavailable`.
    pub async fn begin_write(&self) -> Result<WriteTx> {
        self.begin(WRITE_WAIT).await
    }

    /// A turn from the writer: this change joins the transaction it has open
    /// (or the next one), waiting at most `wait` for that.
    async fn begin(&self, wait: Duration) -> Result<WriteTx> {
        let permit = self.writers.clone().try_acquire_owned().map_err(|_| {
            StoreError::unavailable(
                format!(
                    "too many writes are already waiting for the database ({MAX_QUEUED_WRITES})"
                ),
                1,
            )
        })?;
        self.take_turn(wait, Some(permit)).await
    }

    /// A write turn for the store's own bookkeeping (a signed checkpoint):
    /// it takes one of [`MAX_QUEUED_INTERNAL_WRITES`] places, never one of
    /// the requests' [`MAX_QUEUED_WRITES`], so that it cannot get a request
    /// refused; it waits for its place (within `wait`) rather than being
    /// refused.
    async fn begin_internal(&self, wait: Duration) -> Result<WriteTx> {
        let started = tokio::time::Instant::now();
        let place = self.internal_writers.clone().acquire_owned();
        let permit = match tokio::time::timeout(wait, place).await {
            Ok(Ok(permit)) => permit,
            // The semaphore is never closed; as if shut down.
            Ok(Err(_)) => return Err(StoreError::unavailable("the server is shutting down", 2)),
            Err(_) => return Err(waited_for_turn(wait)),
        };
        let left = wait.saturating_sub(started.elapsed());
        self.take_turn(left, Some(permit)).await
    }

    /// A turn from the writer, waiting at most `wait`, holding `place` (in
    /// a write queue; `None`: the readiness probe's) until it is answered.
    async fn take_turn(
        &self,
        wait: Duration,
        place: Option<OwnedSemaphorePermit>,
    ) -> Result<WriteTx> {
        let shutting_down = || StoreError::unavailable("the server is shutting down", 2);
        if self.closed.load(Ordering::Acquire) {
            return Err(shutting_down());
        }
        let (reply, lease) = tokio::sync::oneshot::channel();
        let ask = writer::Ask::Turn {
            reply,
            span: tracing::Span::current(),
            deadline: tokio::time::Instant::now() + wait,
        };
        self.writer.send(ask).map_err(|_| shutting_down())?;
        // A lease arriving after this gives up is dropped unused, and goes
        // straight back to the writer.
        let lease = match tokio::time::timeout(wait, lease).await {
            Ok(Ok(answer)) => answer?,
            Ok(Err(_)) => return Err(shutting_down()),
            Err(_) => return Err(waited_for_turn(wait)),
        };
        let mut lease = lease;
        Ok(WriteTx {
            audit_size: lease.audit_size(),
            known_hashes: lease.take_hashes(),
            unwritten: audit::Unwritten::default(),
            held: write_behind::Held::default(),
            queued_webhook: false,
            tx: TxConn(Some(lease)),
            store: self.clone(),
            appended: Vec::new(),
            _place: place,
        })
    }

    /// Signalled after each commit of this process that queued a webhook
    /// event (one stored permit stands for any number since the last wait).
    pub fn webhook_queued(&self) -> Arc<tokio::sync::Notify> {
        self.webhook_queued.clone()
    }

    /// Forwards change notifications from other replicas into `notifier`
    /// until shutdown (PostgreSQL only; reconnects after errors).
    pub async fn relay_changes(
        &self,
        database_url: String,
        notifier: crate::notify::Notifier,
        shutdown: crate::shutdown::Shutdown,
    ) {
        let origin = self.origin.clone();
        let publish = |payload: &str| match foreign_change(payload, &origin) {
            Ok(Some(change)) => notifier.publish(change),
            // Published here when it committed, with the record itself.
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "ignoring a malformed change notification"),
        };
        self.relay_channel(
            &database_url,
            CHANGES_CHANNEL,
            "change",
            &shutdown,
            || {},
            publish,
        )
        .await;
    }

    pub async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        sql::fetch_optional_scalar(&self.pool, GET_META_SQL, (key,)).await
    }
}

const GET_META_SQL: &str = "SELECT value FROM meta WHERE key = $1";

/// An approval change as PostgreSQL notifies it to every listening
/// process, the sender's own included.
#[derive(serde::Serialize, serde::Deserialize)]
struct RelayedChange {
    #[serde(flatten)]
    change: crate::notify::ApprovalChanged,
    /// The sending store's id; absent from senders before it was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    origin: Option<String>,
}

/// The change in a notification's `payload`, unless the store `own` sent
/// it: that process published it as it committed, with the record, and a
/// second wake-up would make its waiters and workers read it again.
fn foreign_change(
    payload: &str,
    own: &str,
) -> serde_json::Result<Option<crate::notify::ApprovalChanged>> {
    let relayed: RelayedChange = serde_json::from_str(payload)?;
    Ok((relayed.origin.as_deref() != Some(own)).then_some(relayed.change))
}

/// A write that waited `wait` for its turn in vain, and the latest reason
/// a write failed, if any.
fn waited_for_turn(wait: Duration) -> StoreError {
    let why = health::failing()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    StoreError::unavailable(
        format!(
            "the database is busy: this write waited {}s for its turn{why}",
            wait.as_secs()
        ),
        1,
    )
}

/// A write transaction that must carry its own audit record.
///
/// It runs on the writer's connection, lent inside the batch's transaction
/// behind a savepoint (`writer`): a change that fails in any way or is
/// dropped half-way is rolled back to its savepoint by the writer before
/// the next change gets the connection.
pub struct WriteTx {
    tx: TxConn,
    store: Store,
    appended: Vec<u64>,
    /// The audit log's size: read by the writer when the batch locks the
    /// head row, passed from change to change, advanced by each append, and
    /// written back to the row at commit (SQLite: once per batch, by the
    /// writer; PostgreSQL: with each change's rows).
    audit_size: i64,
    /// The tree hashes this batch appended or read, and those the previous
    /// commit left at the tree's edge (the writer's), so that entries need
    /// not read them (again).
    known_hashes: std::collections::HashMap<u64, pliuz_audit::Hash>,
    /// Audit rows appended but not yet inserted (sent together at commit).
    unwritten: audit::Unwritten,
    /// Writes held until commit, sent with the audit rows (`write_behind`).
    held: write_behind::Held,
    /// Whether this change queued a webhook event (see
    /// [`Store::webhook_queued`]).
    queued_webhook: bool,
    /// This write's place in a write queue (`MAX_QUEUED_WRITES`, or
    /// `MAX_QUEUED_INTERNAL_WRITES`; `None`: the readiness probe's), kept
    /// until it is answered.
    _place: Option<OwnedSemaphorePermit>,
}

/// The writer's connection, lent to this transaction until it is dropped.
struct TxConn(Option<writer::Lease>);

impl std::ops::Deref for TxConn {
    type Target = write_conn::WriteConn;
    fn deref(&self) -> &write_conn::WriteConn {
        self.0
            .as_ref()
            .map(writer::Lease::conn_ref)
            .expect("a write transaction keeps its connection until dropped")
    }
}

impl std::ops::DerefMut for TxConn {
    fn deref_mut(&mut self) -> &mut write_conn::WriteConn {
        self.0
            .as_mut()
            .map(writer::Lease::conn)
            .expect("a write transaction keeps its connection until dropped")
    }
}

impl WriteTx {
    pub fn conn(&mut self) -> &mut write_conn::WriteConn {
        &mut self.tx
    }

    /// Whether any agent may have a webhook (see [`writer::Lease::webhooks`]).
    fn webhooks_may_exist(&self) -> bool {
        self.tx.0.as_ref().is_none_or(writer::Lease::webhooks)
    }

    /// This change stores an agent's webhook.
    fn stored_webhook(&mut self) {
        if let Some(lease) = self.tx.0.as_mut() {
            lease.stored_webhook();
        }
    }

    /// Commits the change and its audit entries together. Returns the audit
    /// indexes written. Only an `Ok` here means the change is durable.
    pub async fn commit(mut self) -> Result<Vec<u64>> {
        if self.tx.0.is_none() {
            return Err(StoreError::Audit("the transaction is over".into()));
        }
        if self.appended.is_empty() {
            drop(self.tx.0.take()); // back to the writer, rolled back there
            return Err(StoreError::Audit(
                "refusing to commit a change that was not audited".into(),
            ));
        }
        // SQLite: the rows go to the writer, to be sent with its next step;
        // if they are too many for that, now. PostgreSQL: now, with the
        // head's new size, as one statement. On failure the lease goes back
        // with `self`: undone alone.
        let writes = self.writes_in_one();
        if writes.is_none() {
            match self.store.backend {
                Backend::Sqlite => self.flush_audit().await?,
                Backend::Postgres => self.flush_with_head().await?,
            }
        }
        let Some(lease) = self.tx.0.take() else {
            return Err(StoreError::Audit("the transaction is over".into()));
        };
        let hashes = std::mem::take(&mut self.known_hashes);
        lease
            .keep(self.audit_size, hashes, writes)
            .await_outcome()
            .await?;
        health::committed();
        if self.queued_webhook {
            self.store.webhook_queued.notify_one();
        }
        Ok(std::mem::take(&mut self.appended))
    }

    /// A commit with no audit entry, for the store's own writes that are no
    /// change to audit: the readiness probe (it changed nothing) and a
    /// signed checkpoint (it signs the log). Private to the store, so no
    /// service change can use it. It proves less than a real write, so it
    /// is not noted as one for readiness.
    async fn commit_unaudited(mut self) -> Result<()> {
        match self.tx.0.take() {
            Some(lease) => {
                let hashes = std::mem::take(&mut self.known_hashes);
                lease
                    .keep(self.audit_size, hashes, None)
                    .await_outcome()
                    .await?;
                self.store
                    .stats
                    .internal_changes
                    .fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            None => Err(StoreError::Audit("the transaction is over".into())),
        }
    }

    /// Ends the transaction without changing anything.
    pub async fn rollback(mut self) {
        drop(self.tx.0.take()); // rolled back by the writer
    }

    /// Tells other replicas about a change when this transaction commits
    /// (held until then and sent with the change's rows, `write_behind`).
    pub async fn notify_replicas(&mut self, change: &crate::notify::ApprovalChanged) -> Result<()> {
        if self.store.backend == Backend::Postgres {
            let relayed = RelayedChange {
                change: change.clone(),
                origin: Some(self.store.origin.to_string()),
            };
            let payload = serde_json::to_string(&relayed)
                .map_err(|e| StoreError::Corrupt(format!("change notification: {e}")))?;
            self.held.notify(CHANGES_CHANNEL, payload);
        }
        Ok(())
    }

    /// Reads a meta value inside the transaction (under the write lock).
    pub async fn get_meta(&mut self, key: &str) -> Result<Option<String>> {
        sql::fetch_optional_scalar(&mut *self.tx, GET_META_SQL, (key,)).await
    }

    pub async fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        let q = "DELETE FROM meta WHERE key = $1";
        sql::execute(&mut *self.tx, q, (key,)).await?;
        let q = "INSERT INTO meta (key, value) VALUES ($1, $2)";
        sql::execute(&mut *self.tx, q, (key, value)).await?;
        Ok(())
    }
}

/// Held while start-up work runs; see [`Store::startup_lock`].
pub struct StartupLock {
    conn: Option<PoolConnection<Any>>,
}

impl StartupLock {
    pub async fn release(mut self) -> anyhow::Result<()> {
        if let Some(mut conn) = self.conn.take() {
            // The session ends with the connection, and its lock with it.
            conn.close_on_drop();
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(STARTUP_LOCK_KEY)
                .execute(&mut *conn)
                .await
                .map_err(|e| anyhow::anyhow!("cannot release the start-up lock: {e}"))?;
        }
        Ok(())
    }
}

impl Drop for StartupLock {
    fn drop(&mut self) {
        // Start-up failed half-way: closing the session frees the lock for
        // the other replicas.
        if let Some(c) = self.conn.as_mut() {
            c.close_on_drop();
        }
    }
}

/// Settings every SQLite connection needs; with `refresh_stats`, the
/// planner statistics are refreshed too.
async fn prepare_sqlite<C>(
    conn: &mut C,
    refresh_stats: bool,
) -> std::result::Result<(), sqlx::Error>
where
    for<'c> &'c mut C: Executor<'c, Database = Any>,
{
    // WAL lets readers run beside the writer; FULL makes every acknowledged
    // commit survive power loss, not just kill -9.
    conn.execute("PRAGMA journal_mode = WAL").await?;
    conn.execute("PRAGMA synchronous = FULL").await?;
    // Planner statistics: without them SQLite guesses between similar
    // indexes, and at a million rows a wrong guess reads every pending row.
    // Sampled (bounded work), refreshed as the pool replaces connections,
    // and skipped rather than waited for while another writer holds the lock.
    if refresh_stats {
        conn.execute("PRAGMA busy_timeout = 0").await?;
        conn.execute("PRAGMA analysis_limit = 400").await?;
        let _ = conn.execute("PRAGMA optimize = 0x10002").await;
    }
    conn.execute(format!("PRAGMA busy_timeout = {}", WRITE_WAIT.as_millis()).as_str())
        .await?;
    conn.execute("PRAGMA foreign_keys = ON").await?;
    Ok(())
}

/// Connects once and reads, so a damaged file or a wrong address fails
/// start-up at once with its real cause. PostgreSQL that is still starting
/// (connection refused) is waited for up to 10 s.
async fn first_connection(
    backend: Backend,
    url: &str,
    shown: &str,
    refresh_stats: bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = async {
            let mut conn = AnyConnection::connect(url).await?;
            if backend == Backend::Sqlite {
                prepare_sqlite(&mut conn, refresh_stats).await?;
                conn.execute("SELECT COUNT(*) FROM sqlite_master").await?;
            } else {
                conn.execute("SELECT 1").await?;
            }
            let _ = conn.close().await;
            Ok::<(), sqlx::Error>(())
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            Err(sqlx::Error::Io(e))
                if backend == Backend::Postgres
                    && e.kind() == std::io::ErrorKind::ConnectionRefused
                    && Instant::now() < deadline =>
            {
                tracing::warn!(database = %shown, error = %e, "the database is not accepting connections yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => anyhow::bail!("cannot open the database {shown}: {}", describe(&e)),
        }
    }
}

/// A database error as the operator should read it: the driver's own words
/// first, then what it means.
fn describe(e: &sqlx::Error) -> String {
    let own = match e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    };
    match health::unavailable_reason(e) {
        Some((reason, _)) if reason.contains("damaged") => format!(
            "{own} (the file is damaged or is not a Pliuz SQLite database: restore it from a backup)"
        ),
        Some((reason, _)) if !reason.contains(&own) => format!("{own} ({reason})"),
        _ => own,
    }
}

/// The URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user_info = &url[scheme + 3..at];
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Store {
    /// Hands each PostgreSQL notification on `channel` to `on_payload` until
    /// shutdown, reconnecting after errors (on SQLite, with one server per
    /// file, returns at once). `on_connected` runs after every
    /// (re)connection, for listeners that must assume anything changed while
    /// they were not listening. `what` names the notifications in warnings.
    pub(crate) async fn relay_channel(
        &self,
        database_url: &str,
        channel: &str,
        what: &str,
        shutdown: &crate::shutdown::Shutdown,
        on_connected: impl FnMut(),
        on_payload: impl FnMut(&str),
    ) {
        if self.backend == Backend::Postgres {
            relay_postgres_channel(
                database_url,
                channel,
                what,
                shutdown,
                on_connected,
                on_payload,
            )
            .await;
        }
    }
}

async fn relay_postgres_channel(
    database_url: &str,
    channel: &str,
    what: &str,
    shutdown: &crate::shutdown::Shutdown,
    mut on_connected: impl FnMut(),
    mut on_payload: impl FnMut(&str),
) {
    loop {
        let listener = async {
            let mut l = sqlx::postgres::PgListener::connect(database_url).await?;
            l.listen(channel).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = tokio::select! {
            l = listener => match l {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for {what} notifications from other replicas; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                        _ = shutdown.wait() => return,
                    }
                }
            },
            _ = shutdown.wait() => return,
        };
        on_connected();
        loop {
            tokio::select! {
                n = listener.recv() => match n {
                    Ok(n) => on_payload(n.payload()),
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the {what} listener; reconnecting");
                        break;
                    }
                },
                _ = shutdown.wait() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_does_not_hear_its_own_changes_back() -> serde_json::Result<()> {
        let change = crate::notify::ApprovalChanged {
            id: "a1".into(),
            status: crate::approval::Status::Approved,
            policy: "refunds".into(),
        };
        let sent_by = |origin: Option<&str>| {
            serde_json::to_string(&RelayedChange {
                change: change.clone(),
                origin: origin.map(str::to_owned),
            })
        };
        assert_eq!(foreign_change(&sent_by(Some("me"))?, "me")?, None);
        assert_eq!(
            foreign_change(&sent_by(Some("other"))?, "me")?,
            Some(change.clone())
        );
        // From a replica that sends no origin yet: another process's.
        let old = serde_json::to_string(&change)?;
        assert_eq!(foreign_change(&old, "me")?, Some(change.clone()));
        // And such a replica reads ours.
        let read: crate::notify::ApprovalChanged = serde_json::from_str(&sent_by(Some("me"))?)?;
        assert_eq!(read, change);
        assert!(foreign_change("{", "me").is_err());
        Ok(())
    }

    async fn meta_seen_by_another_connection(path: &Path, key: &str) -> Option<String> {
        let mut c = AnyConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .ok()?;
        sqlx::query_scalar::<_, String>("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&mut c)
            .await
            .ok()
            .flatten()
    }

    /// Each key's value as another connection sees it is the one wanted.
    async fn assert_meta(path: &Path, wanted: &[(&str, Option<&str>)]) {
        for (key, want) in wanted {
            assert_eq!(
                meta_seen_by_another_connection(path, key).await.as_deref(),
                *want,
                "{key}"
            );
        }
    }

    async fn audited_commit(mut tx: WriteTx) -> Result<Vec<u64>> {
        tx.audit(
            "system",
            None,
            AuditEvent::AgentCreated {
                name: "test".into(),
            },
        )
        .await?;
        tx.commit().await
    }

    #[tokio::test]
    async fn a_failed_or_abandoned_write_leaves_nothing_for_the_next() -> Result<()> {
        let (_dir, path, store) = temp_store().await?;
        // Abandoned half-way (an error returned early, a dropped request).
        {
            let mut tx = store.begin_write().await?;
            tx.set_meta("k", "abandoned").await?;
        }
        // A statement fails inside the transaction.
        {
            let mut tx = store.begin_write().await?;
            tx.set_meta("k", "failed").await?;
            let bad = sqlx::query("INSERT INTO no_such_table VALUES (1)")
                .execute(tx.conn())
                .await;
            assert!(bad.is_err());
        }
        // Each later write runs in a transaction of its own, and commits.
        for round in 0..3 {
            let mut tx = store.begin_write().await?;
            assert_eq!(
                tx.get_meta("k").await?.as_deref(),
                (round > 0).then_some("kept")
            );
            tx.set_meta("k", "kept").await?;
            audited_commit(tx).await?;
            assert_eq!(
                meta_seen_by_another_connection(&path, "k").await.as_deref(),
                Some("kept")
            );
        }
        assert!(matches!(
            store.begin_write().await?.commit().await,
            Err(StoreError::Audit(_))
        ));
        Ok(())
    }

    // A request dropped while its BEGIN is in flight (the client went
    // away): the database may have begun the transaction anyway. The next
    // writers must not get that connection still inside it ("cannot start a
    // transaction within a transaction", then "database is locked").
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_dropped_while_beginning_leaves_no_open_transaction() -> Result<()> {
        use futures::FutureExt;
        let (_dir, path, store) = temp_store().await?;
        for round in 0..200 {
            // Polled once, then dropped wherever it had got to.
            drop(store.begin_write().now_or_never());
            if round % 4 == 0 {
                tokio::task::yield_now().await;
            }
            let write = async {
                let mut tx = store.begin_write().await?;
                tx.set_meta("k", &round.to_string()).await?;
                audited_commit(tx).await
            };
            tokio::time::timeout(Duration::from_secs(20), write)
                .await
                .map_err(|_| {
                    StoreError::Corrupt(format!("round {round}: the next write hung"))
                })??;
        }
        assert_eq!(
            meta_seen_by_another_connection(&path, "k").await.as_deref(),
            Some("199")
        );
        Ok(())
    }

    async fn temp_store() -> Result<(tempfile::TempDir, std::path::PathBuf, Store)> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let path = dir.path().join("t.db");
        let store = Store::open(&format!("sqlite://{}", path.display()))
            .await
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok((dir, path, store))
    }

    /// Writes `key` = `value` with an audit entry, in one change.
    async fn audited_set(store: &Store, key: &str, value: &str) -> Result<Vec<u64>> {
        let mut tx = store.begin_write().await?;
        tx.set_meta(key, value).await?;
        audited_commit(tx).await
    }

    // Group commit: changes that wait while another one runs join its
    // transaction; all of them are durable, each with its own audit index.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_changes_share_transactions_and_all_commit() -> Result<()> {
        let (_dir, path, store) = temp_store().await?;
        let (commits_before, changes_before) = store.write_stats();
        let n = 40;
        // The first holds the writer while the others queue behind it.
        let mut first = store.begin_write().await?;
        first.set_meta("k0", "v").await?;
        let mut tasks = Vec::new();
        for i in 1..n {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                audited_set(&store, &format!("k{i}"), "v").await
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut indexes = audited_commit(first).await?;
        for t in tasks {
            let got = t.await.map_err(|e| StoreError::Corrupt(e.to_string()))??;
            indexes.extend(got);
        }
        indexes.sort_unstable();
        assert_eq!(indexes, (0..n as u64).collect::<Vec<_>>());
        let (commits, changes) = store.write_stats();
        assert_eq!(changes - changes_before, n as u64);
        // 40 changes: the first alone or with the queued ones, the rest in
        // batches of at most MAX_BATCH.
        assert!(
            commits - commits_before <= 3,
            "{} transactions for {n} changes",
            commits - commits_before
        );
        for i in 0..n {
            assert_eq!(
                meta_seen_by_another_connection(&path, &format!("k{i}"))
                    .await
                    .as_deref(),
                Some("v"),
                "k{i}"
            );
        }
        assert_eq!(store.audit_size().await?, n as u64);
        Ok(())
    }

    // A change that fails inside a batch (a constraint error, an abandoned
    // change) is rolled back alone: its batch-mates commit, in one
    // transaction, and the audit log has no gap.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_change_fails_alone_and_its_batch_mates_commit() -> Result<()> {
        let (_dir, path, store) = temp_store().await?;
        audited_set(&store, "taken", "before").await?;
        let (commits_before, _) = store.write_stats();
        let mut first = store.begin_write().await?;
        first.set_meta("a", "v").await?;
        let queued = |work: u8| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin_write().await?;
                match work {
                    // A unique violation half-way through the change.
                    0 => {
                        tx.set_meta("b", "half").await?;
                        sqlx::query("INSERT INTO meta (key, value) VALUES ('taken', 'again')")
                            .execute(tx.conn())
                            .await?;
                        audited_commit(tx).await
                    }
                    // Abandoned after writing (an error returned early).
                    1 => {
                        tx.set_meta("c", "abandoned").await?;
                        Ok(Vec::new())
                    }
                    _ => {
                        tx.set_meta(&format!("ok{work}"), "v").await?;
                        audited_commit(tx).await
                    }
                }
            })
        };
        let tasks = vec![queued(2), queued(0), queued(3), queued(1), queued(4)];
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(audited_commit(first).await?, vec![1]);
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.map_err(|e| StoreError::Corrupt(e.to_string()))?);
        }
        assert!(results[1]
            .as_ref()
            .is_err_and(StoreError::is_unique_violation));
        assert!(results[3].as_ref().is_ok_and(Vec::is_empty));
        let mut kept: Vec<u64> = [0, 2, 4]
            .iter()
            .flat_map(|&i| results[i].as_ref().cloned().unwrap_or_default())
            .collect();
        kept.sort_unstable();
        assert_eq!(kept, vec![2, 3, 4], "{results:?}");
        let (commits, _) = store.write_stats();
        assert_eq!(commits - commits_before, 1, "one transaction for the batch");
        assert_meta(
            &path,
            &[
                ("a", Some("v")),
                ("ok2", Some("v")),
                ("ok3", Some("v")),
                ("ok4", Some("v")),
                ("b", None),
                ("c", None),
                ("taken", Some("before")),
            ],
        )
        .await;
        assert_eq!(store.audit_size().await?, 5);
        Ok(())
    }

    // A change's held rows (`write_behind`) are sent by the writer with the
    // batch's next step or its `COMMIT`: when they fail (here a timer set
    // twice), that change alone is undone, its own earlier statements too,
    // wherever it stands in the batch; the others commit together, and the
    // audit log has no gap.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_whose_held_rows_fail_fails_alone() -> Result<()> {
        let (_dir, path, store) = temp_store().await?;
        let mut tx = store.begin_write().await?;
        tx.insert_timer("taken", "remind", 1).await?;
        audited_commit(tx).await?;
        let (commits_before, _) = store.write_stats();
        let mut first = store.begin_write().await?;
        first.set_meta("a", "v").await?;
        let queued = |clash: bool, key: &'static str| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin_write().await?;
                tx.set_meta(key, "v").await?;
                if clash {
                    tx.insert_timer("taken", "remind", 2).await?;
                }
                audited_commit(tx).await
            })
        };
        let tasks = vec![
            queued(false, "b"),
            queued(true, "c"),
            queued(false, "d"),
            queued(true, "e"),
        ];
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(audited_commit(first).await?, vec![1]);
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.map_err(|e| StoreError::Corrupt(e.to_string()))?);
        }
        for refused in [&results[1], &results[3]] {
            assert!(
                refused.as_ref().is_err_and(StoreError::is_unique_violation),
                "{refused:?}"
            );
        }
        let mut kept: Vec<u64> = [0, 2]
            .iter()
            .flat_map(|&i| results[i].as_ref().cloned().unwrap_or_default())
            .collect();
        kept.sort_unstable();
        assert_eq!(kept, vec![2, 3], "{results:?}");
        let (commits, _) = store.write_stats();
        assert_eq!(commits - commits_before, 1, "one transaction for the batch");
        // Alone in its batch: nothing to commit.
        let alone = queued(true, "f")
            .await
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        assert!(alone.is_err_and(|e| e.is_unique_violation()));
        // The log goes on without a gap.
        assert_eq!(audited_set(&store, "g", "v").await?, vec![4]);
        assert_meta(
            &path,
            &[
                ("a", Some("v")),
                ("b", Some("v")),
                ("c", None),
                ("d", Some("v")),
                ("e", None),
                ("f", None),
                ("g", Some("v")),
            ],
        )
        .await;
        assert_eq!(store.audit_size().await?, 5);
        Ok(())
    }

    /// Yields to the other tasks until `ready` holds (at most 1000 times).
    async fn yield_until(ready: impl Fn() -> bool) -> bool {
        for _ in 0..1000 {
            if ready() {
                return true;
            }
            tokio::task::yield_now().await;
        }
        ready()
    }

    // A signed checkpoint stored while the writer is busy takes a writer
    // turn of the store's own (issue #13): none of the requests' places, so
    // the request write queue still takes MAX_QUEUED_WRITES changes, all of
    // which commit; and it commits through the writer, with them, instead
    // of waiting beside it for SQLite's lock.
    #[tokio::test]
    async fn a_checkpoint_takes_a_writer_turn_outside_the_request_queue() -> Result<()> {
        let (_dir, _path, store) = temp_store().await?;
        let (commits_before, changes_before) = store.write_stats();
        // The first change holds the writer: its batch's transaction, and
        // SQLite's lock, are open until it commits.
        let mut first = store.begin_write().await?;
        first.set_meta("k0", "v").await?;
        let checkpoint = {
            let store = store.clone();
            tokio::spawn(async move { store.save_checkpoint(1, "a signed note").await })
        };
        // Holding its place, it has asked the writer for its turn: on this
        // one-thread runtime the ask follows in the same poll.
        let internal = store.internal_writers.clone();
        assert!(
            yield_until(|| internal.available_permits() == 0).await,
            "the checkpoint did not ask the writer for a turn"
        );
        // The request queue fills to its bound, the checkpoint not in it.
        let queued: Vec<_> = (1..MAX_QUEUED_WRITES)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { audited_set(&store, &format!("k{i}"), "v").await })
            })
            .collect();
        let writers = store.writers.clone();
        assert!(yield_until(|| writers.available_permits() == 0).await);
        let over = store.begin_write().await.err();
        assert!(
            matches!(&over, Some(StoreError::Unavailable { reason, .. }) if reason.contains("too many writes")),
            "one write over the bound: {over:?}"
        );
        audited_commit(first).await?;
        for (i, t) in queued.into_iter().enumerate() {
            let done = t.await.map_err(|e| StoreError::Corrupt(e.to_string()))?;
            assert!(done.is_ok(), "queued write {}: {done:?}", i + 1);
        }
        checkpoint
            .await
            .map_err(|e| StoreError::Corrupt(e.to_string()))??;
        assert_eq!(
            store.latest_checkpoint().await?,
            Some((1, "a signed note".to_owned()))
        );
        // Through the writer: counted with the changes it made durable.
        let (commits, changes) = store.write_stats();
        assert_eq!(changes - changes_before, MAX_QUEUED_WRITES as u64 + 1);
        assert_eq!(store.stats.internal_changes.load(Ordering::Relaxed), 1);
        assert!(
            commits - commits_before <= (MAX_QUEUED_WRITES / MAX_BATCH + 2) as u64,
            "{} transactions",
            commits - commits_before
        );
        assert_eq!(store.audit_size().await?, MAX_QUEUED_WRITES as u64);
        Ok(())
    }

    /// The outbox rows queued for webhooks.
    async fn webhook_rows(store: &Store) -> Result<Vec<String>> {
        let q = "SELECT dedupe_key FROM outbox WHERE kind = $1 ORDER BY dedupe_key";
        let rows = sqlx::query(q)
            .bind(runs::WEBHOOK_KIND)
            .fetch_all(&store.pool)
            .await?;
        rows.iter()
            .map(|r| sqlx::Row::try_get::<String, _>(r, 0).map_err(StoreError::from))
            .collect()
    }

    async fn queue_webhook_event(store: &Store, key: &str) -> Result<bool> {
        let mut tx = store.begin_write().await?;
        let payload = serde_json::json!({"agent": "bot"});
        tx.enqueue_for_webhook_of("bot", runs::WEBHOOK_KIND, None, key, &payload)
            .await?;
        let queued = tx.queued_webhook;
        audited_commit(tx).await?;
        Ok(queued)
    }

    // A webhook event is queued, and the webhook worker woken, only when an
    // agent may have a webhook, as read under the batch's write lock; an
    // earlier member of the same batch that stores one counts (issue #13:
    // the worker read the outbox twice after every settled change).
    #[tokio::test]
    async fn webhook_events_are_queued_only_when_an_agent_has_a_webhook() -> Result<()> {
        let (_dir, _path, store) = temp_store().await?;
        let woken = store.webhook_queued();
        let woken_now = || {
            let woken = woken.clone();
            async move {
                tokio::time::timeout(Duration::from_millis(50), woken.notified())
                    .await
                    .is_ok()
            }
        };
        assert!(!queue_webhook_event(&store, "webhook:none").await?);
        assert!(webhook_rows(&store).await?.is_empty());
        assert!(!woken_now().await, "woken with nothing queued");

        // The first change holds the writer while the second asks for its
        // turn: both run in one transaction, the webhook stored first.
        let (commits_before, _) = store.write_stats();
        let mut first = store.begin_write().await?;
        let second = {
            let store = store.clone();
            tokio::spawn(async move { queue_webhook_event(&store, "webhook:same-batch").await })
        };
        let writers = store.writers.clone();
        assert!(yield_until(|| writers.available_permits() == MAX_QUEUED_WRITES - 2).await);
        first
            .set_webhook("bot", "https://example.com/hook", b"sealed")
            .await?;
        audited_commit(first).await?;
        let queued = second
            .await
            .map_err(|e| StoreError::Corrupt(e.to_string()))??;
        assert!(queued, "the batch's earlier member stored a webhook");
        let (commits, _) = store.write_stats();
        assert_eq!(commits - commits_before, 1, "not one batch");
        assert_eq!(webhook_rows(&store).await?, ["webhook:same-batch"]);
        assert!(woken_now().await, "not woken for a queued event");

        // A later batch reads it under its own lock.
        assert!(queue_webhook_event(&store, "webhook:later").await?);
        assert_eq!(
            webhook_rows(&store).await?,
            ["webhook:later", "webhook:same-batch"]
        );
        assert!(woken_now().await);
        Ok(())
    }

    // The final checkpoint is stored after writes stop (shutdown), when the
    // writer takes no turn any more: directly, nothing else writing. A
    // second note for a size already signed leaves the first standing.
    #[tokio::test]
    async fn a_checkpoint_is_stored_after_writes_stop() -> Result<()> {
        let (_dir, _path, store) = temp_store().await?;
        audited_set(&store, "k", "v").await?;
        store.save_checkpoint(1, "first").await?;
        store.save_checkpoint(1, "second").await?;
        store.stop_writes().await;
        assert!(store.begin_write().await.is_err());
        store.save_checkpoint(2, "final").await?;
        store.save_checkpoint(2, "again").await?;
        assert_eq!(
            store.all_checkpoints().await?,
            vec![(1, "first".to_owned()), (2, "final".to_owned())]
        );
        // The first through the writer (the second was refused in its turn
        // and undone there); the final ones directly.
        assert_eq!(store.stats.internal_changes.load(Ordering::Relaxed), 1);
        Ok(())
    }

    #[test]
    fn passwords_are_kept_out_of_messages() {
        assert_eq!(
            redact_url("postgres://pliuz:s3cret@db.internal:5432/pliuz"),
            "postgres://pliuz@db.internal:5432/pliuz"
        );
        assert_eq!(redact_url("postgres://db/pliuz"), "postgres://db/pliuz");
    }
}
