//! The writer: group commit, on SQLite and on PostgreSQL. One task owns
//! the write connection.
//! Each write asks it for a turn; the writer lends it the connection inside
//! the open transaction, behind a `SAVEPOINT`, takes it back, and serves the
//! next waiting write in the same transaction. On SQLite a change hands
//! back, with the connection, the rows it never reads back ([`Writes`]):
//! they are sent with the next step (the next change's savepoint, or the
//! `COMMIT`), in one round trip. (PostgreSQL runs a statement with values
//! alone, so there a change sends its rows itself, as one statement.) When nobody is waiting (or [`MAX_BATCH`] changes are in), one
//! `COMMIT` (one fsync) makes all of them durable, and only then is each
//! member answered. A change that fails or is abandoned, or whose rows fail,
//! is rolled back to its savepoint alone; a failed `COMMIT`, or a failure
//! that ends the whole transaction, fails every member of the batch (never
//! a false success).

use super::sql::Statement;
use super::write_conn::WriteConn;
use super::{prepare_sqlite, Backend, StoreError, WRITE_WAIT};
use futures::StreamExt;
use sqlx::{Executor, Row};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::Instrument;

/// The write connection's own wait for SQLite's lock: a little under a
/// write's whole wait, so that a write that did not queue learns why.
const BUSY_TIMEOUT: Duration = Duration::from_millis(WRITE_WAIT.as_millis() as u64 - 1000);
/// How long before its asker gives up a `BEGIN` must be answered (SQLite's
/// busy handler sleeps in steps, and a loaded machine adds its own delay).
const ANSWER_MARGIN: Duration = Duration::from_millis(500);
/// PostgreSQL: the shortest `lock_timeout` a `BEGIN` sets (0 would mean
/// waiting for ever).
const MIN_LOCK_TIMEOUT: Duration = Duration::from_millis(50);
/// A shorter wait is set for one `BEGIN` only when it saves more than this.
const BUSY_TIMEOUT_SLACK: Duration = Duration::from_millis(50);

/// The most changes one transaction carries: enough to share an fsync
/// widely, few enough that the first member is not kept waiting long.
pub const MAX_BATCH: usize = 32;

/// Counts of this process's write transactions (`GET /metrics`, tests).
#[derive(Debug, Default)]
pub struct WriteStats {
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Changes made durable by them.
    pub changes: AtomicU64,
    /// Of `changes`, the store's own writes, with no audit entry (signed
    /// checkpoints, readiness probes): they took a writer turn instead of
    /// waiting beside the writer for SQLite's lock.
    pub internal_changes: AtomicU64,
    /// The audit log's size after this process's latest commit (0 before
    /// any): what the checkpoint worker compares with the signed size
    /// instead of reading the log after every change.
    pub audit_size: AtomicI64,
}

/// What a write sends the writer.
pub(super) enum Ask {
    /// A turn on the connection, answered with a [`Lease`] (or why not).
    Turn {
        reply: oneshot::Sender<Result<Lease, StoreError>>,
        /// The asking request's span: the statements the writer runs for
        /// it (`BEGIN`, `SAVEPOINT`, `COMMIT`) are logged as its own.
        span: tracing::Span,
        /// When the asker stops waiting: a `BEGIN` for it waits for the database's
        /// lock only until shortly before, so that it hears the real reason.
        deadline: Instant,
    },
    /// Finish what is queued, then refuse every later turn.
    Stop(oneshot::Sender<()>),
}

/// The write connection, lent to one change. Dropping it (the change failed
/// or was abandoned anywhere, even before it arrived) hands the connection
/// back to be rolled back to its savepoint.
pub struct Lease {
    conn: Option<WriteConn>,
    audit_size: i64,
    /// Whether any agent may have a webhook: read under the batch's lock
    /// when it began, and set by an earlier member that stored one.
    webhooks: bool,
    /// Audit tree hashes earlier members of the batch wrote: a change that
    /// appends after them need not read them back.
    hashes: Hashes,
    back: Option<oneshot::Sender<Returned>>,
}

/// Audit tree hashes by stored index.
pub type Hashes = std::collections::HashMap<u64, pliuz_audit::Hash>;

/// A lent connection coming back to the writer.
struct Returned {
    conn: WriteConn,
    /// The lease's [`Lease::webhooks`], for the batch's later members.
    webhooks: bool,
    /// `Some` when the change is to be kept.
    kept: Option<Kept>,
}

/// A change to keep.
struct Kept {
    /// The audit log's size after it.
    audit_size: i64,
    /// The tree hashes written so far in the batch, this change's included.
    hashes: Hashes,
    /// Its rows still to send (see [`Writes`]).
    writes: Option<Writes>,
    /// Where to send its outcome.
    outcome: oneshot::Sender<Result<(), StoreError>>,
}

/// The rows a change left for the writer to send with the batch's next
/// step (the next change's savepoint, or the `COMMIT`), saving a round trip
/// per change (issue #13). A failure within them is the change's own: it
/// is rolled back to its savepoint alone and told why.
pub struct Writes {
    /// One multi-statement query.
    pub statement: Statement,
    /// How many statements it holds.
    pub statements: usize,
}

impl Lease {
    /// The audit log's size when this change began (every earlier member of
    /// the batch appended before it).
    pub fn audit_size(&self) -> i64 {
        self.audit_size
    }

    /// Whether an agent may have a webhook: `false` only when none had one
    /// as this batch took the database's write lock and no earlier change
    /// in it stored one, so that a change can skip queueing a webhook event
    /// (and the webhook worker its wake-up) with certainty.
    pub fn webhooks(&self) -> bool {
        self.webhooks
    }

    /// This change stores an agent's webhook: the batch's later members
    /// must queue their events.
    pub fn stored_webhook(&mut self) {
        self.webhooks = true;
    }

    /// The batch's tree hashes so far (see [`Lease::keep`]).
    pub fn take_hashes(&mut self) -> Hashes {
        std::mem::take(&mut self.hashes)
    }

    pub fn conn_ref(&self) -> &WriteConn {
        self.conn
            .as_ref()
            .expect("a lease keeps its connection until returned")
    }

    pub fn conn(&mut self) -> &mut WriteConn {
        self.conn
            .as_mut()
            .expect("a lease keeps its connection until returned")
    }

    /// Keeps the change (the log now has `audit_size` entries; `hashes`: the
    /// batch's tree hashes, this change's included; `writes`: its rows not
    /// sent yet) and returns the connection; the answer arrives once the
    /// batch is durable.
    pub fn keep(mut self, audit_size: i64, hashes: Hashes, writes: Option<Writes>) -> Outcome {
        let (outcome, rx) = oneshot::channel();
        self.give_back(Some(Kept {
            audit_size,
            hashes,
            writes,
            outcome,
        }));
        Outcome(rx)
    }

    fn give_back(&mut self, kept: Option<Kept>) {
        if let (Some(conn), Some(back)) = (self.conn.take(), self.back.take()) {
            // If the writer is gone, dropping the connection closes it, and
            // the database rolls the open transaction back.
            let webhooks = self.webhooks;
            let _ = back.send(Returned {
                conn,
                webhooks,
                kept,
            });
        }
    }
}

/// A kept change's answer: `Ok` only once its batch is durable.
pub struct Outcome(oneshot::Receiver<Result<(), StoreError>>);

impl Outcome {
    pub async fn await_outcome(self) -> Result<(), StoreError> {
        self.0.await.unwrap_or_else(|_| {
            // The writer went away between our change and the commit.
            Err(StoreError::Unavailable {
                reason: "the writer stopped before this change's commit finished".into(),
                retry_after: 1,
                outcome_unknown: true,
            })
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.give_back(None);
    }
}

/// Starts the writer task for the database at `url` (`file`: the SQLite
/// file, if it is one, written through a native connection).
pub(super) fn spawn(
    url: String,
    backend: Backend,
    file: Option<std::path::PathBuf>,
    stats: Arc<WriteStats>,
) -> mpsc::UnboundedSender<Ask> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(
        Writer {
            url,
            backend,
            file,
            conn: None,
            stats,
            stopped: false,
            edge: None,
        }
        .run(rx),
    );
    tx
}

struct Writer {
    url: String,
    backend: Backend,
    /// The SQLite file, written natively (`write_conn`); `None`: through sqlx.
    file: Option<std::path::PathBuf>,
    /// Open between batches too; `None` after a failure, reopened on demand.
    conn: Option<WriteConn>,
    stats: Arc<WriteStats>,
    stopped: bool,
    /// The audit tree's right edge after this writer's last commit, and the
    /// log's size then: the next batch appends without reading it back.
    /// Stored hashes never change, but a size that moved (another process
    /// wrote) or any failure drops it all the same.
    edge: Option<(i64, Hashes)>,
}

type Reply = oneshot::Sender<Result<Lease, StoreError>>;

/// A batch's members waiting for its outcome.
type Members = Vec<oneshot::Sender<Result<(), StoreError>>>;

impl Writer {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Ask>) {
        let mut next = None;
        loop {
            let ask = match next.take() {
                Some(a) => a,
                None => match rx.recv().await {
                    Some(a) => a,
                    None => return, // every Store handle is gone
                },
            };
            match ask {
                Ask::Stop(ack) => {
                    self.stopped = true;
                    let _ = ack.send(());
                }
                Ask::Turn { reply, .. } if self.stopped => {
                    let _ = reply.send(Err(StoreError::unavailable(
                        "the server is shutting down",
                        2,
                    )));
                }
                Ask::Turn {
                    reply,
                    span,
                    deadline,
                } => {
                    next = self.batch(reply, span, deadline, &mut rx).await;
                }
            }
        }
    }

    /// One transaction: the first change, then every change already
    /// waiting (up to [`MAX_BATCH`]), then `COMMIT`. Returns an ask it took
    /// from the queue but did not serve (a `Stop`).
    async fn batch(
        &mut self,
        reply: Reply,
        span: tracing::Span,
        deadline: Instant,
        rx: &mut mpsc::UnboundedReceiver<Ask>,
    ) -> Option<Ask> {
        let edge = self.edge.take();
        let (
            Begun {
                mut audit_size,
                mut webhooks,
            },
            reply,
        ) = self.begin(reply, &span, deadline).await?;
        let mut members: Members = Vec::new();
        // Lost (a cache only) when a change is undone: its hashes are not.
        let mut hashes = match edge {
            Some((size, known)) if size == audit_size => known,
            _ => Hashes::new(),
        };
        let mut pending = Some((reply, span));
        let mut last_span = tracing::Span::none();
        let mut leftover = None;
        // The last change kept, still in the savepoint `change` with its
        // rows unsent: sent and released together with the next step, in
        // one round trip.
        let mut unsent: Option<Kept> = None;
        while let Some((reply, span)) = pending.take() {
            if let Some(kept) = unsent.take() {
                let step = self
                    .release(kept, &span, (&mut audit_size, &mut hashes), &mut members)
                    .await;
                if let Err(e) = step {
                    let _ = reply.send(Err(e.share()));
                    self.fail_all(members, &e.to_string()).await;
                    return None;
                }
            }
            match self
                .serve(reply, audit_size, &mut hashes, &mut webhooks)
                .await
            {
                Served::Kept(kept) => unsent = Some(kept),
                Served::Undone => {
                    // The savepoint stays, empty, for the next change. Failing
                    // here means the database ended the transaction (or the
                    // connection was lost), and the batch with it.
                    if let Err(e) = self.exec("ROLLBACK TO SAVEPOINT change", &span).await {
                        self.fail_all(members, &e.to_string()).await;
                        return None;
                    }
                }
                Served::Broken(e) => {
                    self.fail_all(members, &e).await;
                    return None;
                }
            }
            last_span = span;
            if members.len() + usize::from(unsent.is_some()) >= MAX_BATCH {
                break;
            }
            match rx.try_recv() {
                Ok(Ask::Turn { reply, span, .. }) => pending = Some((reply, span)),
                Ok(stop) => {
                    leftover = Some(stop);
                    break;
                }
                Err(_) => break,
            }
        }
        self.edge = self
            .commit((audit_size, hashes), members, unsent, &last_span)
            .await;
        leftover
    }

    /// Runs `sql` (one or more statements, no values) on the write
    /// connection, logged in `span`.
    async fn exec(&mut self, sql: &str, span: &tracing::Span) -> Result<(), StoreError> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(StoreError::unavailable("the write connection was lost", 1));
        };
        conn.execute(sqlx::raw_sql(sql))
            .instrument(span.clone())
            .await
            .map(|_| ())
            .map_err(StoreError::from)
    }

    /// `BEGIN`, the audit head row lock and the first savepoint, for the
    /// change asking in `reply` (told why not on failure). Returns the
    /// log's size.
    async fn begin(
        &mut self,
        reply: Reply,
        span: &tracing::Span,
        deadline: Instant,
    ) -> Option<(Begun, Reply)> {
        // A connection kept open between batches may have been closed by the
        // server meanwhile (PostgreSQL restarted, an idle timeout): one
        // attempt on a fresh connection then, not a failed write.
        let mut reused = self.conn.is_some();
        let begun = loop {
            match self.try_begin(deadline).instrument(span.clone()).await {
                Err(e) if connection_lost(&e) => {
                    self.conn = None;
                    if std::mem::take(&mut reused) {
                        continue;
                    }
                    break Err(e);
                }
                other => break other,
            }
        };
        match begun {
            Ok(begun) => Some((begun, reply)),
            Err(e) => {
                // Whatever got as far as `BEGIN` is undone (an error, or a
                // warning, if nothing did); a connection that cannot is
                // replaced.
                if let Some(conn) = self.conn.as_mut() {
                    if let Err(rollback) = conn.execute("ROLLBACK").await {
                        if !rollback.to_string().contains("no transaction") {
                            self.conn = None;
                        }
                    }
                }
                let _ = reply.send(Err(StoreError::from(e)));
                None
            }
        }
    }

    /// Opens the connection if needed and begins, waiting for the database's
    /// write lock only until shortly before `deadline`, so that an asker that
    /// waited in the queue hears "locked" before it gives up, not just "busy".
    async fn try_begin(&mut self, deadline: Instant) -> Result<Begun, sqlx::Error> {
        if self.conn.is_none() {
            let mut c = WriteConn::open(&self.url, self.backend, self.file.as_deref()).await?;
            if self.backend == Backend::Sqlite {
                prepare_sqlite(&mut c, true).await?;
                // A native connection waits for the lock only when told to
                // (`WriteConn::fetch_all_waiting`).
                let busy = match c {
                    WriteConn::Native(_) => Duration::ZERO,
                    WriteConn::Sqlx(_) => BUSY_TIMEOUT,
                };
                c.execute(format!("PRAGMA busy_timeout = {}", busy.as_millis()).as_str())
                    .await?;
                // Every change runs behind a savepoint, whose copies of the
                // pages it touches (~64 KB for a create) SQLite otherwise
                // spills to a temporary file per change. The writer sorts
                // nothing large, so its temporary store can live in memory.
                c.execute("PRAGMA temp_store = MEMORY").await?;
            }
            self.conn = Some(c);
        }
        let conn = self.conn.as_mut().expect("just opened");
        let left = deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(ANSWER_MARGIN);
        // Every change runs behind the savepoint `change`, the first too;
        // the head row is locked (across processes and replicas, the lock
        // that orders all writers) and the log's size read in the same
        // round trip, and under that lock whether any agent has a webhook
        // (nobody can store one before this batch commits but its members).
        let rows = match self.backend {
            Backend::Sqlite => {
                let begin = "BEGIN IMMEDIATE; SAVEPOINT change; \
                             UPDATE audit_head SET size = size WHERE id = 1 \
                             RETURNING size, CASE WHEN EXISTS (SELECT 1 FROM agent_webhooks) THEN 1 ELSE 0 END";
                if let WriteConn::Native(_) = conn {
                    // Without waiting first: only another process can hold
                    // the lock, and a wait for it must not hold up this
                    // runtime thread (`write_conn`).
                    match conn.fetch_all(sqlx::raw_sql(begin)).await {
                        Err(e) if super::write_conn::is_busy(&e) => {
                            let wait = left.min(BUSY_TIMEOUT);
                            WriteConn::fetch_all_waiting(&mut self.conn, begin, wait).await?
                        }
                        begun => begun?,
                    }
                } else if left + BUSY_TIMEOUT_SLACK >= BUSY_TIMEOUT {
                    conn.fetch_all(sqlx::raw_sql(begin)).await?
                } else {
                    conn.execute(format!("PRAGMA busy_timeout = {}", left.as_millis()).as_str())
                        .await?;
                    let begun = conn.fetch_all(sqlx::raw_sql(begin)).await;
                    let _ = conn
                        .execute(
                            format!("PRAGMA busy_timeout = {}", BUSY_TIMEOUT.as_millis()).as_str(),
                        )
                        .await;
                    begun?
                }
            }
            Backend::Postgres => {
                // One simple query (no values): PostgreSQL runs its
                // statements in order and stops at the first that fails.
                // The webhooks are read by a statement of their own, after
                // the lock: its snapshot then holds every commit before it
                // (a subquery of the `UPDATE` would see the one taken before
                // waiting for the row).
                let ms = left.max(MIN_LOCK_TIMEOUT).as_millis().min(600_000);
                let begin = format!(
                    "BEGIN; SET LOCAL lock_timeout = '{ms}ms'; \
                     UPDATE audit_head SET size = size WHERE id = 1 RETURNING size; \
                     SELECT CAST(CASE WHEN EXISTS (SELECT 1 FROM agent_webhooks) THEN 1 ELSE 0 END AS BIGINT); \
                     SAVEPOINT change"
                );
                conn.fetch_all(sqlx::raw_sql(&begin)).await?
            }
        };
        let Some(head) = rows.first() else {
            return Err(sqlx::Error::RowNotFound);
        };
        let audit_size = head.try_get::<i64, _>(0)?;
        let webhooks = match self.backend {
            Backend::Sqlite => head.try_get::<i64, _>(1)?,
            Backend::Postgres => match rows.get(1) {
                Some(row) => row.try_get::<i64, _>(0)?,
                None => return Err(sqlx::Error::RowNotFound),
            },
        };
        Ok(Begun {
            audit_size,
            webhooks: webhooks != 0,
        })
    }

    /// Lends the connection to one change (inside the savepoint `change`,
    /// just set) and takes it back.
    async fn serve(
        &mut self,
        reply: Reply,
        audit_size: i64,
        hashes: &mut Hashes,
        webhooks: &mut bool,
    ) -> Served {
        let Some(conn) = self.conn.take() else {
            return Served::Broken("the write connection was lost".into());
        };
        let (back, returned) = oneshot::channel();
        let lease = Lease {
            conn: Some(conn),
            audit_size,
            webhooks: *webhooks,
            hashes: std::mem::take(hashes),
            back: Some(back),
        };
        // If the asker has gone, the lease is dropped right here and comes
        // straight back below.
        if let Err(Ok(lease)) = reply.send(Ok(lease)) {
            drop(lease);
        }
        let Ok(Returned {
            conn,
            webhooks: stored,
            kept,
        }) = returned.await
        else {
            return Served::Broken("the write connection was lost".into());
        };
        self.conn = Some(conn);
        // Kept even if the change is undone: a `true` too many only costs a
        // queued event's check at commit.
        *webhooks |= stored;
        match kept {
            Some(kept) => Served::Kept(kept),
            // Failed or abandoned: undone alone.
            None => Served::Undone,
        }
    }

    /// Sends `writes` (a change's rows) and then `step` (statements whose
    /// one value, `$1` if any, is `value`) in one round trip, and tells a
    /// failure of the rows, the change's own, from one of the step
    /// (`classify` words it).
    async fn run_with(
        &mut self,
        writes: Option<Writes>,
        step: &str,
        value: Option<i64>,
        span: &tracing::Span,
        classify: fn(sqlx::Error) -> StoreError,
    ) -> Result<(), Failed> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(Failed::Step(StoreError::unavailable(
                "the write connection was lost",
                1,
            )));
        };
        let (mut all, rows) =
            writes.map_or((Statement::default(), 0), |w| (w.statement, w.statements));
        if !all.sql.is_empty() {
            all.sql.push_str("; ");
        }
        match value {
            Some(v) if step.contains("$1") => {
                all.sql
                    .push_str(&step.replace("$1", &format!("${}", all.args.len() + 1)));
                all.args.push(v.into());
            }
            _ => all.sql.push_str(step),
        }
        // PostgreSQL runs only one statement of a query with values: its
        // steps (no values, no rows) go as one simple query.
        let simple = self.backend == Backend::Postgres && all.args.is_empty();
        async {
            let mut done = 0;
            let mut results = if simple {
                conn.fetch_many(sqlx::raw_sql(&all.sql))
            } else {
                conn.fetch_many(super::sql::bind_args(sqlx::query(&all.sql), &all.args))
            };
            while let Some(result) = results.next().await {
                match result {
                    Ok(r) => done += usize::from(r.is_left()),
                    Err(e) if done < rows => return Err(Failed::Rows(e)),
                    Err(e) => return Err(Failed::Step(classify(e))),
                }
            }
            Ok(())
        }
        .instrument(span.clone())
        .await
    }

    /// `outcome`'s change failed in its own rows (`why`): rolled back to its
    /// savepoint alone and told. `Err`: even that failed, the batch is lost.
    async fn refuse(
        &mut self,
        outcome: oneshot::Sender<Result<(), StoreError>>,
        why: sqlx::Error,
        span: &tracing::Span,
    ) -> Result<(), StoreError> {
        match self.exec("ROLLBACK TO SAVEPOINT change", span).await {
            Ok(()) => {
                let _ = outcome.send(Err(StoreError::from(why)));
                Ok(())
            }
            Err(e) => {
                let _ = outcome.send(Err(e.share()));
                Err(e)
            }
        }
    }

    /// Sends `kept`'s rows, releases its savepoint and sets the next one,
    /// in one round trip; it joins `members` (and the batch's size and
    /// hashes become its own) or is refused alone. `Err`: the transaction
    /// cannot go on (`RELEASE` fails if SQLite ended it: a full disk, an
    /// I/O error), and `kept` is told so.
    async fn release(
        &mut self,
        kept: Kept,
        span: &tracing::Span,
        (audit_size, hashes): (&mut i64, &mut Hashes),
        members: &mut Members,
    ) -> Result<(), StoreError> {
        let step = "RELEASE SAVEPOINT change; SAVEPOINT change";
        match self
            .run_with(kept.writes, step, None, span, StoreError::from)
            .await
        {
            Ok(()) => {
                *audit_size = kept.audit_size;
                *hashes = kept.hashes;
                members.push(kept.outcome);
                Ok(())
            }
            Err(Failed::Rows(why)) => self.refuse(kept.outcome, why, span).await,
            Err(Failed::Step(e)) => {
                let _ = kept.outcome.send(Err(e.share()));
                Err(e)
            }
        }
    }

    /// Makes the batch durable, `unsent`'s rows sent with the `COMMIT`, then
    /// answers each member. Returns the audit tree's right edge after it
    /// (`None` when nothing was committed).
    async fn commit(
        &mut self,
        (audit_size, hashes): (i64, Hashes),
        mut members: Members,
        unsent: Option<Kept>,
        span: &tracing::Span,
    ) -> Option<(i64, Hashes)> {
        let commit = self.commit_step();
        let mut hashes = hashes;
        if let Some(kept) = unsent {
            let size = Some(kept.audit_size);
            let sent = self
                .run_with(kept.writes, commit, size, span, StoreError::commit_failed)
                .await;
            match sent {
                Ok(()) => {
                    members.push(kept.outcome);
                    return self.answer(members, (kept.audit_size, kept.hashes));
                }
                Err(Failed::Rows(why)) => {
                    if let Err(e) = self.refuse(kept.outcome, why, span).await {
                        self.fail_all(members, &e.to_string()).await;
                        return None;
                    }
                    // Its hashes are gone with it; the others commit alone.
                    hashes = Hashes::new();
                }
                Err(Failed::Step(e)) => {
                    members.push(kept.outcome);
                    self.commit_failed(members, e).await;
                    return None;
                }
            }
        }
        if members.is_empty() {
            // Nothing kept: nothing to make durable.
            if self.exec("ROLLBACK", span).await.is_err() {
                self.conn = None;
            }
            return None;
        }
        let size = Some(audit_size);
        match self
            .run_with(None, commit, size, span, StoreError::commit_failed)
            .await
        {
            Ok(()) => self.answer(members, (audit_size, hashes)),
            // No rows were sent: whatever failed was the commit.
            Err(Failed::Rows(e)) => {
                self.commit_failed(members, StoreError::commit_failed(e))
                    .await;
                None
            }
            Err(Failed::Step(e)) => {
                self.commit_failed(members, e).await;
                None
            }
        }
    }

    /// The statements that end a batch: the head and the commit in one
    /// round trip. Failing leaves the transaction to be rolled back. The
    /// `RELEASE`, redundant before a `COMMIT`, stays as a guard: it fails
    /// when the database already ended the transaction (SQLite), or it
    /// cannot go on (PostgreSQL, after an error), before anything is
    /// written outside of it.
    fn commit_step(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => {
                "RELEASE SAVEPOINT change; UPDATE audit_head SET size = $1 WHERE id = 1; COMMIT"
            }
            // Each change wrote the head's new size with its own rows (one
            // statement with values each); the size the step is given is
            // not used.
            Backend::Postgres => "RELEASE SAVEPOINT change; COMMIT",
        }
    }

    /// The batch is durable: counts it, answers every member, and returns
    /// the tree's right edge for the next batch.
    fn answer(&self, members: Members, (size, hashes): (i64, Hashes)) -> Option<(i64, Hashes)> {
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.stats
            .changes
            .fetch_add(members.len() as u64, Ordering::Relaxed);
        self.stats.audit_size.fetch_max(size, Ordering::Relaxed);
        for m in members {
            let _ = m.send(Ok(()));
        }
        Some((size, right_edge(size, hashes)))
    }

    /// The `COMMIT` failed: every member hears why, and the transaction is
    /// rolled back.
    async fn commit_failed(&mut self, members: Members, e: StoreError) {
        tracing::warn!(error = %e, changes = members.len(), "a batch of writes failed to commit");
        for m in members {
            let _ = m.send(Err(e.share()));
        }
        self.close_failed_transaction().await;
    }

    /// Every kept change of the batch fails with `why`; nothing of it stays.
    async fn fail_all(&mut self, members: Members, why: &str) {
        tracing::warn!(reason = %why, changes = members.len(), "a batch of writes was rolled back");
        let e = StoreError::unavailable(
            format!("the transaction carrying this change was rolled back because another write in it failed: {why}"),
            1,
        );
        for m in members {
            let _ = m.send(Err(e.share()));
        }
        // Rolled back and closed: the next batch starts on a fresh connection.
        self.close_failed_transaction().await;
    }

    async fn close_failed_transaction(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            let _ = conn.execute("ROLLBACK").await;
            let _ = conn.close().await;
        }
    }
}

/// The connection itself failed (rather than a statement on it), or
/// PostgreSQL ended the session (class 57P: shut down, terminated by an
/// operator; class 08: connection exception).
fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
                && db
                    .code()
                    .is_some_and(|c| c.starts_with("57P") || c.starts_with("08"))
        }
        _ => false,
    }
}

/// Of `hashes`, those a later append to a log of `size` entries may need:
/// the root of each perfect subtree the log divides into (one per bit of
/// `size`; `pliuz_audit::append_plan` reads only these).
pub(super) fn right_edge(size: i64, mut hashes: Hashes) -> Hashes {
    let Ok(size) = u64::try_from(size) else {
        return Hashes::new();
    };
    let edge: Vec<u64> = (0..u64::BITS)
        .filter(|level| (size >> level) & 1 == 1)
        .map(|level| pliuz_audit::stored_hash_index(level, (size >> level) - 1))
        .collect();
    hashes.retain(|index, _| edge.contains(index));
    hashes
}

/// What a batch's `BEGIN` read under the write lock.
struct Begun {
    /// The audit log's size.
    audit_size: i64,
    /// Whether any agent has a webhook.
    webhooks: bool,
}

enum Served {
    /// Kept, its rows perhaps still to send; its outcome comes with the
    /// batch's.
    Kept(Kept),
    /// Failed or abandoned: to be rolled back to its savepoint alone.
    Undone,
    /// The transaction cannot go on; the reason.
    Broken(String),
}

/// What failed in [`Writer::run_with`].
enum Failed {
    /// The change's own rows: it alone is undone.
    Rows(sqlx::Error),
    /// The step after them: the transaction cannot go on.
    Step(StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every stored hash index of a log of `size` entries.
    fn all_hashes(size: u64) -> Hashes {
        (0..pliuz_audit::stored_hash_index(0, size))
            .map(|i| (i, [0u8; 32]))
            .collect()
    }

    #[test]
    fn the_right_edge_holds_what_every_later_append_reads() {
        for size in 0..300u64 {
            let edge = right_edge(size as i64, all_hashes(size));
            assert_eq!(edge.len(), size.count_ones() as usize, "size {size}");
            for needed in pliuz_audit::append_plan(size) {
                assert!(edge.contains_key(&needed), "size {size}: {needed} missing");
            }
            // The edge plus what the next append writes is the next edge.
            let mut grown = edge;
            for i in
                pliuz_audit::stored_hash_index(0, size)..pliuz_audit::stored_hash_index(0, size + 1)
            {
                grown.insert(i, [0u8; 32]);
            }
            let next = right_edge(size as i64 + 1, grown);
            let expected = right_edge(size as i64 + 1, all_hashes(size + 1));
            let mut next: Vec<u64> = next.into_keys().collect();
            let mut expected: Vec<u64> = expected.into_keys().collect();
            next.sort_unstable();
            expected.sort_unstable();
            assert_eq!(next, expected, "size {size}");
        }
    }
}
