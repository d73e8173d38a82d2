//! The export's read of the audit log: every entry below a size, as it is
//! stored, copied into a file in log order. SQLite: one native read-only
//! connection on a blocking thread, each body copied from SQLite's row
//! straight into the file's buffer (no pool, no `Any` value, no joined
//! page). PostgreSQL: pages of bodies joined by the server, on one
//! connection, written by a blocking thread while the next page is read.

use super::{Backend, Store, StoreError};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
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
            let mut buffered = BufWriter::with_capacity(BUFFER, WritingBack::new(out));
            while let Some(page) = to_write.blocking_recv() {
                buffered.write_all(page.as_bytes())?;
                buffered.write_all(b"\n")?;
            }
            Ok(buffered.into_inner().map_err(|e| e.into_error())?.file)
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

/// The rows in the order they are stored (rowid order: entries are
/// inserted in log order), with their indexes to prove it.
const IN_STORAGE_ORDER: &str = "SELECT idx, CAST(body AS TEXT) FROM audit_entries";

/// The rows through the index on `idx`: the right order whatever the
/// storage order, but one b-tree search per row.
const IN_INDEX_ORDER: &str =
    "SELECT idx, CAST(body AS TEXT) FROM audit_entries WHERE idx >= 0 AND idx < $1 ORDER BY idx";

/// The SQLite copy, inside one read transaction (one snapshot of the log).
/// The rows are read in storage order, which is log order unless the table
/// was rewritten; if any index comes out of order, the file is emptied and
/// the rows are read again through the index, from the same snapshot.
/// `CAST` gives each body as the text SQLite holds (what `group_concat`
/// gave before); a NULL body, which the schema forbids, is skipped as it did.
fn copy_from_sqlite(
    path: &Path,
    end: i64,
    out: File,
) -> std::result::Result<(u64, File), CopyError> {
    use rusqlite::OpenFlags;
    let mut conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(unreadable)?;
    conn.busy_timeout(super::WRITE_WAIT).map_err(unreadable)?;
    let snapshot = conn.transaction().map_err(unreadable)?;
    let mut buffered = BufWriter::with_capacity(BUFFER, WritingBack::new(out));
    let written = match copy_rows(&snapshot, true, end, &mut buffered)? {
        Some(written) => written,
        None => {
            let mut file = buffered
                .into_inner()
                .map_err(|e| CopyError::Write(e.into_error()))?
                .file;
            file.set_len(0).map_err(CopyError::Write)?;
            file.seek(SeekFrom::Start(0)).map_err(CopyError::Write)?;
            buffered = BufWriter::with_capacity(BUFFER, WritingBack::new(file));
            copy_rows(&snapshot, false, end, &mut buffered)?.unwrap_or_default()
        }
    };
    let file = buffered
        .into_inner()
        .map_err(|e| CopyError::Write(e.into_error()))?
        .file;
    Ok((written, file))
}

/// Writes the bodies of the rows `query` yields, each followed by "\n";
/// how many. With `in_storage_order` the query is [`IN_STORAGE_ORDER`]: rows
/// outside `0 <= idx < end` are skipped here, and `None` is returned as soon
/// as an index is not an integer above the one before.
fn copy_rows(
    conn: &rusqlite::Connection,
    in_storage_order: bool,
    end: i64,
    out: &mut impl Write,
) -> std::result::Result<Option<u64>, CopyError> {
    use rusqlite::types::ValueRef;
    let mut statement;
    let mut rows = if in_storage_order {
        statement = conn.prepare(IN_STORAGE_ORDER).map_err(unreadable)?;
        statement.query([])
    } else {
        statement = conn.prepare(IN_INDEX_ORDER).map_err(unreadable)?;
        statement.query([end])
    }
    .map_err(unreadable)?;
    let mut written = 0;
    let mut previous = -1;
    while let Some(row) = rows.next().map_err(unreadable)? {
        if in_storage_order {
            let ValueRef::Integer(idx) = row.get_ref(0).map_err(unreadable)? else {
                return Ok(None);
            };
            if !(0..end).contains(&idx) {
                continue;
            }
            if idx <= previous {
                return Ok(None);
            }
            previous = idx;
        }
        let body = match row.get_ref(1).map_err(unreadable)? {
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => bytes,
            _ => continue,
        };
        out.write_all(body).map_err(CopyError::Write)?;
        out.write_all(b"\n").map_err(CopyError::Write)?;
        written += 1;
    }
    Ok(Some(written))
}

fn unreadable(e: rusqlite::Error) -> CopyError {
    StoreError::unavailable(format!("cannot read the audit log: {e}"), 1).into()
}

/// The output file, whose pages the kernel starts writing to the disk as
/// each buffer-full is written, so that the caller's final sync waits only
/// for the tail instead of the whole file (about 10 ms for 3 MB, 35 ms for
/// 50 MB on the development VM). Durability is still the caller's sync.
struct WritingBack {
    file: File,
    /// Bytes written so far.
    offset: u64,
}

impl WritingBack {
    fn new(file: File) -> WritingBack {
        WritingBack { file, offset: 0 }
    }
}

impl Write for WritingBack {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(bytes)?;
        start_writeback(&self.file, self.offset, n);
        self.offset += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` to the disk,
/// without waiting. Only a hint: a failure is left to the final sync.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // a libc call; see the SAFETY comment
fn start_writeback(file: &File, offset: u64, len: usize) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: `sync_file_range` takes no pointers; the descriptor is open
    // for as long as `file` is borrowed.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &File, _: u64, _: usize) {}
