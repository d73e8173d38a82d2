//! The writer's connection. On PostgreSQL (and an in-memory SQLite) it is
//! sqlx's; on a SQLite file it is a native one (`rusqlite`, on the same
//! SQLite library sqlx links), whose statements run right where they are
//! asked, on the writer's and the changes' own tasks.
//!
//! Through sqlx, each SQLite statement is handed to the connection's worker
//! thread and its answer handed back: two thread switches a statement, and
//! with the writer's `BEGIN`, a change's own statements and the `COMMIT`,
//! they were most of an auto-approved create's server time (issue #13). A
//! statement inside the open write transaction takes microseconds and
//! never waits for a lock (the transaction holds it). The `COMMIT` blocks
//! its runtime thread for the fsync; measured against a writer on a thread
//! of its own, that was faster both alone and under load
//! (`docs/benchmarks.md`): the runtime's other threads serve meanwhile,
//! and no change waits for a thread to be woken. A `BEGIN` is tried without
//! waiting; only when another process holds SQLite's lock is it retried on
//! a blocking thread that waits ([`WriteConn::fetch_all_waiting`]).
//!
//! Both kinds serve the store's statements through sqlx's [`Executor`] (the
//! same binding by `$N`, rows as [`AnyRow`], errors as [`sqlx::Error`]),
//! so every statement of a write is written once for both databases, and a
//! native SQLite error is sorted (locked, full, damaged) like sqlx's own.

use super::Backend;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo, AnyTypeInfoKind, AnyValue};
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::{Any, AnyConnection, Connection, Describe, Either, Execute, Executor};
use sqlx_core::any::{AnyColumn, AnyValueKind};
use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many prepared statements the native connection keeps: every
/// statement a write runs, with room (sqlx keeps 100 a connection).
const STATEMENT_CACHE: usize = 256;

/// A statement slower than this is logged as a warning, as sqlx does.
const SLOW_STATEMENT: Duration = Duration::from_secs(1);

/// The target of the native connection's statement log (DEBUG, like sqlx's
/// `sqlx::query`).
pub(super) const LOG_TARGET: &str = "pliuz::sql";

/// The writer's connection.
pub enum WriteConn {
    /// sqlx's: PostgreSQL, or an in-memory SQLite database (a second
    /// connection would open another, empty one).
    Sqlx(AnyConnection),
    /// A native connection to a SQLite file.
    Native(rusqlite::Connection),
}

impl std::fmt::Debug for WriteConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteConn::Sqlx(_) => f.write_str("WriteConn::Sqlx"),
            WriteConn::Native(_) => f.write_str("WriteConn::Native"),
        }
    }
}

impl WriteConn {
    /// Opens the writer's connection to `url` (sqlx's form); `file` is the
    /// SQLite file, when the database is one.
    pub async fn open(
        url: &str,
        backend: Backend,
        file: Option<&Path>,
    ) -> Result<WriteConn, sqlx::Error> {
        match (backend, file) {
            (Backend::Sqlite, Some(file)) => {
                use rusqlite::OpenFlags;
                let conn = rusqlite::Connection::open_with_flags(
                    file,
                    OpenFlags::SQLITE_OPEN_READ_WRITE
                        | OpenFlags::SQLITE_OPEN_CREATE
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(to_sqlx)?;
                conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                Ok(WriteConn::Native(conn))
            }
            _ => Ok(WriteConn::Sqlx(AnyConnection::connect(url).await?)),
        }
    }

    /// Runs `sql` (no values) on the native connection in `slot`, waiting up
    /// to `wait` for SQLite's lock, on a thread of its own so that the wait
    /// holds up no runtime thread. The connection is back in `slot` after,
    /// and waits for no lock again. Only a native connection is ever told
    /// not to wait, so only one is taken here.
    pub async fn fetch_all_waiting(
        slot: &mut Option<WriteConn>,
        sql: &'static str,
        wait: Duration,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        let native = match slot.take() {
            Some(WriteConn::Native(native)) => native,
            other => {
                *slot = other;
                return Err(unsupported("wait here"));
            }
        };
        // A thread of its own rather than the runtime's blocking pool: a
        // runtime shutting down waits for its blocking tasks, and this one
        // may wait seconds for the lock (the writer's task is dropped then,
        // and the connection with the thread's answer).
        let (answer, waited) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("pliuz-write-lock-wait".into())
            .spawn(move || {
                let rows = native
                    .busy_timeout(wait)
                    .map_err(to_sqlx)
                    .and_then(|()| rows_of(run(&native, sql, None)));
                // No wait again, whatever happened.
                let reset = native.busy_timeout(Duration::ZERO).map_err(to_sqlx);
                let rows = rows.and_then(|rows| reset.map(|()| rows));
                let _ = answer.send((native, rows));
            });
        if let Err(e) = spawned {
            return Err(sqlx::Error::Io(e));
        }
        match waited.await {
            Ok((native, rows)) => {
                *slot = Some(WriteConn::Native(native));
                rows
            }
            // The connection went with the thread: a new one is opened.
            Err(_) => Err(sqlx::Error::WorkerCrashed),
        }
    }

    /// Closes the connection (a native one at once).
    pub async fn close(self) -> Result<(), sqlx::Error> {
        match self {
            WriteConn::Sqlx(conn) => conn.close().await,
            WriteConn::Native(conn) => conn.close().map_err(|(_, e)| to_sqlx(e)),
        }
    }
}

impl<'c> Executor<'c> for &'c mut WriteConn {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        mut query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match self {
            WriteConn::Sqlx(conn) => conn.fetch_many(query),
            WriteConn::Native(conn) => stream::iter(run_query(conn, &mut query)).boxed(),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        mut query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match self {
            WriteConn::Sqlx(conn) => conn.fetch_optional(query),
            WriteConn::Native(conn) => {
                Box::pin(std::future::ready(first_row(run_query(conn, &mut query))))
            }
        }
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &[AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        // Nothing prepares on the writer's connection.
        let _ = (self, sql, parameters);
        Box::pin(std::future::ready(Err(unsupported("prepare"))))
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Any>, sqlx::Error>>
    where
        'c: 'e,
    {
        match self {
            WriteConn::Sqlx(conn) => conn.describe(sql),
            WriteConn::Native(_) => Box::pin(std::future::ready(Err(unsupported("describe")))),
        }
    }
}

/// Runs what sqlx asks to run, with its values.
fn run_query<'q>(
    conn: &rusqlite::Connection,
    query: &mut impl Execute<'q, Any>,
) -> Vec<Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>> {
    match query.take_arguments() {
        Ok(args) => run(conn, query.sql(), args.map(|a| a.values.0)),
        Err(e) => vec![Err(sqlx::Error::Encode(e))],
    }
}

fn unsupported(what: &str) -> sqlx::Error {
    sqlx::Error::AnyDriverError(format!("the write connection does not {what}").into())
}

/// Every row `results` hold, or their first error.
fn rows_of(
    results: Vec<Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>,
) -> Result<Vec<AnyRow>, sqlx::Error> {
    let mut rows = Vec::new();
    for r in results {
        if let Either::Right(row) = r? {
            rows.push(row);
        }
    }
    Ok(rows)
}

/// The first row `results` hold, or their first error.
fn first_row(
    results: Vec<Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>,
) -> Result<Option<AnyRow>, sqlx::Error> {
    for r in results {
        if let Either::Right(row) = r? {
            return Ok(Some(row));
        }
    }
    Ok(None)
}

/// Runs `sql` (one statement or several) with `args` bound as sqlx's SQLite
/// driver binds them: `$N` is the N-th value, a bare `?` the next one, and a
/// placeholder with no value is NULL. Yields each statement's rows, then its
/// result, and stops at the first error, as sqlx does.
fn run(
    conn: &rusqlite::Connection,
    sql: &str,
    args: Option<Vec<AnyValueKind<'_>>>,
) -> Vec<Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>> {
    let started = Instant::now();
    let args = args.unwrap_or_default();
    let mut out = Vec::new();
    let mut positional = 0;
    let mut rows_returned = 0usize;
    for piece in statements(sql) {
        let done = run_one(conn, piece, &args, &mut positional, &mut out);
        match done {
            Ok(returned) => rows_returned += returned,
            Err(e) => {
                out.push(Err(e));
                break;
            }
        }
    }
    log(sql, started.elapsed(), rows_returned, &out);
    out
}

/// One statement: its rows, then its result, into `out`. Returns how many
/// rows it returned.
fn run_one(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[AnyValueKind<'_>],
    positional: &mut usize,
    out: &mut Vec<Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>,
) -> Result<usize, sqlx::Error> {
    let mut stmt = conn.prepare_cached(sql).map_err(to_sqlx)?;
    for i in 1..=stmt.parameter_count() {
        let n = match stmt.parameter_name(i) {
            Some(name) => match name
                .strip_prefix('$')
                .or_else(|| name.strip_prefix('?'))
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(n) => n,
                None => {
                    return Err(sqlx::Error::Protocol(format!(
                        "unsupported SQL parameter format: {name}"
                    )))
                }
            },
            None => {
                *positional += 1;
                *positional
            }
        };
        // An unbound placeholder is NULL, as in sqlx.
        let Some(value) = n.checked_sub(1).and_then(|n| args.get(n)) else {
            break;
        };
        stmt.raw_bind_parameter(i, rusqlite::types::ToSqlOutput::Borrowed(bound(value)))
            .map_err(to_sqlx)?;
    }
    let names: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let index: Arc<ColumnIndex> = Arc::new(
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone().into(), i))
            .collect(),
    );
    let mut returned = 0;
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next().map_err(to_sqlx)? {
        out.push(Ok(Either::Right(any_row(row, &names, &index)?)));
        returned += 1;
    }
    drop(rows);
    out.push(Ok(Either::Left(AnyQueryResult {
        // As sqlx: the changes of the latest INSERT, UPDATE or DELETE.
        rows_affected: conn.changes(),
        last_insert_id: None,
    })));
    Ok(returned)
}

/// A row's column positions by name, as `AnyRow` holds them.
type ColumnIndex = sqlx_core::HashMap<sqlx_core::ext::ustr::UStr, usize>;

/// A value as SQLite stores it.
fn bound<'a>(value: &'a AnyValueKind<'_>) -> rusqlite::types::ValueRef<'a> {
    use rusqlite::types::ValueRef;
    match value {
        AnyValueKind::Bool(b) => ValueRef::Integer(i64::from(*b)),
        AnyValueKind::SmallInt(i) => ValueRef::Integer(i64::from(*i)),
        AnyValueKind::Integer(i) => ValueRef::Integer(i64::from(*i)),
        AnyValueKind::BigInt(i) => ValueRef::Integer(*i),
        AnyValueKind::Real(r) => ValueRef::Real(f64::from(*r)),
        AnyValueKind::Double(d) => ValueRef::Real(*d),
        AnyValueKind::Text(t) => ValueRef::Text(t.as_bytes()),
        AnyValueKind::Blob(b) => ValueRef::Blob(b),
        // `Null`, and any kind a later sqlx adds.
        _ => ValueRef::Null,
    }
}

/// A row as sqlx's SQLite driver maps it to `Any`: by each value's storage
/// class (INTEGER → BigInt, REAL → Double, TEXT, BLOB, NULL).
fn any_row(
    row: &rusqlite::Row<'_>,
    names: &[String],
    index: &Arc<ColumnIndex>,
) -> Result<AnyRow, sqlx::Error> {
    use rusqlite::types::ValueRef;
    let mut columns = Vec::with_capacity(names.len());
    let mut values = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let value = row.get_ref(i).map_err(to_sqlx)?;
        let (kind, value) = match value {
            ValueRef::Null => (
                AnyTypeInfoKind::Null,
                AnyValueKind::Null(AnyTypeInfoKind::Null),
            ),
            ValueRef::Integer(v) => (AnyTypeInfoKind::BigInt, AnyValueKind::BigInt(v)),
            ValueRef::Real(v) => (AnyTypeInfoKind::Double, AnyValueKind::Double(v)),
            ValueRef::Text(t) => {
                let text = std::str::from_utf8(t).map_err(|e| sqlx::Error::ColumnDecode {
                    index: format!("{name:?}"),
                    source: Box::new(e),
                })?;
                (
                    AnyTypeInfoKind::Text,
                    AnyValueKind::Text(Cow::Owned(text.to_owned())),
                )
            }
            ValueRef::Blob(b) => (
                AnyTypeInfoKind::Blob,
                AnyValueKind::Blob(Cow::Owned(b.to_vec())),
            ),
        };
        columns.push(AnyColumn {
            ordinal: i,
            name: name.clone().into(),
            type_info: AnyTypeInfo { kind },
        });
        values.push(AnyValue { kind: value });
    }
    Ok(AnyRow {
        column_names: index.clone(),
        columns,
        values,
    })
}

/// The statements of `sql`, split where SQLite itself would end one
/// (`sqlite3_complete`: a `;` in a string or a trigger body does not end it).
fn statements(sql: &str) -> Vec<&str> {
    let body = sql.trim_end().trim_end_matches(';');
    if !body.contains(';') {
        return vec![sql];
    }
    let mut out = Vec::new();
    let mut start = 0;
    for (end, _) in sql.match_indices(';') {
        let candidate = &sql[start..=end];
        if complete(candidate) {
            if !candidate
                .trim_start_matches([' ', '\n', '\t', '\r', ';'])
                .is_empty()
            {
                out.push(candidate);
            }
            start = end + 1;
        }
    }
    if !sql[start..].trim().is_empty() {
        out.push(&sql[start..]);
    }
    out
}

/// Whether `sql` ends with a complete statement, by SQLite's own reading
/// (rusqlite offers no safe call for it).
#[allow(unsafe_code)]
fn complete(sql: &str) -> bool {
    match std::ffi::CString::new(sql) {
        // SAFETY: `sqlite3_complete` only reads the NUL-terminated string,
        // which `c` keeps alive across the call.
        Ok(c) => unsafe { rusqlite::ffi::sqlite3_complete(c.as_ptr()) != 0 },
        Err(_) => false,
    }
}

/// Logs a query like sqlx logs its own: every one at DEBUG (inside the
/// asking request's span), a slow one as a warning.
fn log(
    sql: &str,
    elapsed: Duration,
    rows_returned: usize,
    out: &[Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>],
) {
    // The summary is made only for an event that is logged (tracing builds
    // fields only then): this runs for every statement.
    let failed = matches!(out.last(), Some(Err(_)));
    if elapsed >= SLOW_STATEMENT {
        tracing::warn!(target: LOG_TARGET, summary = %Summary(sql), ?elapsed, rows_returned, failed, "slow statement");
    } else {
        tracing::debug!(target: LOG_TARGET, summary = %Summary(sql), ?elapsed, rows_returned, failed, "statement");
    }
}

/// A statement's first words, for its log line.
struct Summary<'a>(&'a str);

impl std::fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, word) in self.0.split_whitespace().take(6).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(word)?;
        }
        Ok(())
    }
}

/// A native SQLite error as sqlx shows one.
fn to_sqlx(e: rusqlite::Error) -> sqlx::Error {
    match e {
        rusqlite::Error::SqliteFailure(failure, message) => {
            sqlx::Error::Database(Box::new(NativeSqliteError {
                code: failure.extended_code,
                message: message.unwrap_or_else(|| failure.to_string()),
            }))
        }
        other => sqlx::Error::AnyDriverError(Box::new(other)),
    }
}

/// An error SQLite returned on the native connection: its extended result
/// code and message, shown and sorted as sqlx shows and sorts its own.
#[derive(Debug)]
pub struct NativeSqliteError {
    code: std::os::raw::c_int,
    message: String,
}

impl std::fmt::Display for NativeSqliteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for NativeSqliteError {}

impl DatabaseError for NativeSqliteError {
    fn message(&self) -> &str {
        &self.message
    }

    /// The extended result code, as sqlx's SQLite driver gives it.
    fn code(&self) -> Option<Cow<'_, str>> {
        Some(self.code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        use rusqlite::ffi;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

/// Whether `e` is SQLite's "the database is locked" (by another connection
/// or process: `SQLITE_BUSY`, `SQLITE_LOCKED`).
pub(super) fn is_busy(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) if is_sqlite(db.as_ref()) => db
            .code()
            .and_then(|c| c.parse::<i64>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6)),
        _ => false,
    }
}

/// Whether a database error is SQLite's, through sqlx or natively: its
/// code is then SQLite's extended result code.
pub(super) fn is_sqlite(db: &dyn DatabaseError) -> bool {
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
        || db.try_downcast_ref::<NativeSqliteError>().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row;

    /// A native connection to a new database, `setup` run on it.
    async fn native(setup: &str) -> (tempfile::TempDir, WriteConn) {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = rusqlite::Connection::open(dir.path().join("t.db")).expect("open");
        let mut conn = WriteConn::Native(conn);
        conn.execute(sqlx::raw_sql(setup)).await.expect("set up");
        (dir, conn)
    }

    #[tokio::test]
    async fn a_wait_for_the_lock_holds_up_no_runtime_thread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let holder = rusqlite::Connection::open(&path).expect("open");
        holder
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x); BEGIN EXCLUSIVE")
            .expect("take the write lock");
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.busy_timeout(Duration::ZERO).expect("no wait");
        let mut slot = Some(WriteConn::Native(conn));
        // This test's runtime has one thread: the ticker runs only if the
        // wait does not hold that thread.
        let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let ticker = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
        let started = Instant::now();
        let Err(e) =
            WriteConn::fetch_all_waiting(&mut slot, "BEGIN IMMEDIATE", Duration::from_millis(400))
                .await
        else {
            panic!("begun while locked")
        };
        assert!(is_busy(&e), "{e}");
        assert!(
            started.elapsed() >= Duration::from_millis(350),
            "{:?}",
            started.elapsed()
        );
        let ticked = ticks.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            ticked >= 10,
            "the runtime ran {ticked} ticks during the wait"
        );
        ticker.abort();
        // The connection is back, and waits for nothing again.
        let conn = slot.as_mut().expect("the connection is back");
        let started = Instant::now();
        let e = conn
            .execute("BEGIN IMMEDIATE")
            .await
            .expect_err("still locked");
        assert!(is_busy(&e), "{e}");
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
        // Released, the lock is taken.
        holder.execute_batch("COMMIT").expect("release");
        WriteConn::fetch_all_waiting(&mut slot, "BEGIN IMMEDIATE", Duration::from_millis(400))
            .await
            .expect("begun");
    }

    #[test]
    fn statements_split_where_sqlite_ends_them() {
        assert_eq!(statements("SELECT 1"), vec!["SELECT 1"]);
        assert_eq!(statements("SELECT 1;"), vec!["SELECT 1;"]);
        assert_eq!(
            statements("BEGIN; SELECT ';'; SELECT 2"),
            vec!["BEGIN;", " SELECT ';';", " SELECT 2"]
        );
        assert_eq!(statements("SELECT 1;; ;"), vec!["SELECT 1;"]);
    }

    #[tokio::test]
    async fn values_bind_and_rows_read_as_through_sqlx() {
        let (_dir, mut conn) =
            native("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, data BLOB, score REAL)")
                .await;
        // Numbered placeholders out of order, a NULL, a blob, several
        // statements with values in one query.
        let inserted = sqlx::query(
            "INSERT INTO t (id, name, data, score) VALUES ($2, $1, $3, NULL); \
             INSERT INTO t (id, name) VALUES ($4, 'b')",
        )
        .bind("a")
        .bind(7_i64)
        .bind(vec![1_u8, 2, 3])
        .bind(8_i64)
        .execute(&mut conn)
        .await
        .expect("insert");
        assert_eq!(
            inserted.rows_affected(),
            2,
            "summed over the statements, as sqlx sums"
        );
        let rows = sqlx::query("SELECT id, name, data, score FROM t ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .expect("select");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].try_get::<i64, _>("id").expect("id"), 7);
        assert_eq!(rows[0].try_get::<String, _>("name").expect("name"), "a");
        assert_eq!(
            rows[0].try_get::<Vec<u8>, _>("data").expect("data"),
            vec![1, 2, 3]
        );
        assert_eq!(
            rows[0].try_get::<Option<f64>, _>("score").expect("score"),
            None
        );
        assert_eq!(
            rows[1].try_get::<Option<Vec<u8>>, _>("data").expect("data"),
            None
        );
        let missing = sqlx::query("SELECT name FROM t WHERE id = $1")
            .bind(99_i64)
            .fetch_optional(&mut conn)
            .await
            .expect("select");
        assert!(missing.is_none());
    }

    #[tokio::test]
    async fn errors_are_sorted_as_sqlx_sorts_sqlites() {
        let (_dir, mut conn) =
            native("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t (id) VALUES (1)").await;
        let e = sqlx::query("INSERT INTO t (id) VALUES (1)")
            .execute(&mut conn)
            .await
            .expect_err("a second row with the same key");
        let sqlx::Error::Database(db) = &e else {
            panic!("not a database error: {e}")
        };
        assert!(db.is_unique_violation(), "{e}");
        assert!(is_sqlite(db.as_ref()));
        assert_eq!(
            db.code().as_deref(),
            Some("1555"),
            "SQLITE_CONSTRAINT_PRIMARYKEY"
        );
        assert!(
            e.to_string()
                .contains("(code: 1555) UNIQUE constraint failed"),
            "{e}"
        );
        // A failing statement ends the query: nothing after it runs.
        let mut results = (&mut conn).fetch_many(sqlx::raw_sql(
            "INSERT INTO t (id) VALUES (2); INSERT INTO t (id) VALUES (1); INSERT INTO t (id) VALUES (3)",
        ));
        let mut done = 0;
        let mut failed = false;
        while let Some(r) = results.next().await {
            match r {
                Ok(r) => done += usize::from(r.is_left()),
                Err(_) => failed = true,
            }
        }
        drop(results);
        assert_eq!((done, failed), (1, true));
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM t ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .expect("select");
        assert_eq!(ids, vec![1, 2]);
    }
}
