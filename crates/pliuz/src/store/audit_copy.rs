//! The export's read of the audit log: every entry below a size, as it is
//! stored, copied into a file in log order. SQLite: one native read-only
//! connection on a blocking thread, each body copied from SQLite's row
//! straight into the file's buffer (no pool, no `Any` value, no joined
//! page). PostgreSQL: pages of bodies joined by the server, on one
//! connection, written by a blocking thread while the next page is read.

use super::{Backend, Store, StoreError};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// PostgreSQL entries per page (one row each, the bodies joined): about a
/// megabyte, enough that the round trips do not count.
const PAGE: u64 = 4_096;

/// The output buffer: large writes, few system calls.
const BUFFER: usize = 1 << 20;

/// Why a copy failed: reading the log, or writing the file.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Write(std::io::Error),
}

impl Store {
    /// Writes the bodies of entries `0..size` exactly as stored, each
    /// followed by "\n", in log order, into `out` (flushed, not synced), and
    /// says how many. A missing or altered entry is copied as it is: finding
    /// it is the verifier's job.
    pub async fn copy_audit_entries(
        &self,
        size: u64,
        out: File,
    ) -> std::result::Result<(u64, File), CopyError> {
        let end = i64::try_from(size).unwrap_or(i64::MAX);
        match (self.backend, &self.file) {
            (Backend::Sqlite, Some(path)) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || copy_from_sqlite(&path, end, out))
                    .await
                    .map_err(|e| StoreError::Audit(format!("the export's reader stopped: {e}")))?
            }
            _ => self.copy_in_pages(size, out).await,
        }
    }

    /// Pages of bodies joined by the database, each written (on a blocking
    /// thread) while the next one is read. Entries are immutable, so pages
    /// read one after the other make a consistent copy of `0..size`.
    async fn copy_in_pages(
        &self,
        size: u64,
        out: File,
    ) -> std::result::Result<(u64, File), CopyError> {
        let (pages, mut to_write) = tokio::sync::mpsc::channel::<String>(2);
        let writer = tokio::task::spawn_blocking(move || {
            let mut buffered = BufWriter::with_capacity(BUFFER, out);
            while let Some(page) = to_write.blocking_recv() {
                buffered.write_all(page.as_bytes())?;
                buffered.write_all(b"\n")?;
            }
            buffered.into_inner().map_err(|e| e.into_error())
        });
        let q = match self.backend {
            Backend::Sqlite => "SELECT count(*), coalesce(group_concat(body, char(10) ORDER BY idx), '') FROM audit_entries WHERE idx >= $1 AND idx < $2",
            Backend::Postgres => "SELECT count(*), coalesce(string_agg(body, E'\\n' ORDER BY idx), '') FROM audit_entries WHERE idx >= $1 AND idx < $2",
        };
        let mut conn = self.pool.acquire().await.map_err(StoreError::from)?;
        let mut written = 0;
        let mut start = 0;
        while start < size {
            let end = (start + PAGE).min(size);
            let (count, bodies): (i64, String) = sqlx::query_as(q)
                .bind(i64::try_from(start).unwrap_or(i64::MAX))
                .bind(i64::try_from(end).unwrap_or(i64::MAX))
                .fetch_one(&mut *conn)
                .await
                .map_err(StoreError::from)?;
            // Refused only when the writer stopped on an error, reported below.
            if count > 0 && pages.send(bodies).await.is_err() {
                break;
            }
            written += u64::try_from(count).unwrap_or(0);
            start = end;
        }
        drop(pages);
        let file = writer
            .await
            .map_err(|e| StoreError::Audit(format!("the export's writer stopped: {e}")))?
            .map_err(CopyError::Write)?;
        Ok((written, file))
    }
}

/// The SQLite copy: one statement, so one snapshot of the log. `CAST`
/// gives each body as the text SQLite holds (what `group_concat` gave
/// before); a NULL body, which the schema forbids, is skipped as it did.
fn copy_from_sqlite(
    path: &Path,
    end: i64,
    out: File,
) -> std::result::Result<(u64, File), CopyError> {
    use rusqlite::{types::ValueRef, OpenFlags};
    let failed = |e: rusqlite::Error| -> CopyError {
        StoreError::unavailable(format!("cannot read the audit log: {e}"), 1).into()
    };
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(failed)?;
    conn.busy_timeout(super::WRITE_WAIT).map_err(failed)?;
    let mut statement = conn
        .prepare(
            "SELECT CAST(body AS TEXT) FROM audit_entries WHERE idx >= 0 AND idx < ?1 ORDER BY idx",
        )
        .map_err(failed)?;
    let mut rows = statement.query([end]).map_err(failed)?;
    let mut buffered = BufWriter::with_capacity(BUFFER, out);
    let mut written = 0;
    while let Some(row) = rows.next().map_err(failed)? {
        let body = match row.get_ref(0).map_err(failed)? {
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => bytes,
            _ => continue,
        };
        buffered.write_all(body).map_err(CopyError::Write)?;
        buffered.write_all(b"\n").map_err(CopyError::Write)?;
        written += 1;
    }
    let file = buffered
        .into_inner()
        .map_err(|e| CopyError::Write(e.into_error()))?;
    Ok((written, file))
}
