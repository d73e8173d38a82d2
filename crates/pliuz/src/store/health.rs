//! What the store can do right now, and why not: database errors sorted into
//! "the store cannot take writes" (locked, full, damaged, unreachable, busy:
//! a 503 with the reason) and everything else (a bug: a 500), and the write
//! health `/readyz` reports.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The reason a database error means the store is unavailable, and how many
/// seconds a client should wait before retrying; `None` for other errors.
pub fn unavailable_reason(e: &sqlx::Error) -> Option<(String, u64)> {
    match e {
        sqlx::Error::Database(db) => {
            if super::write_conn::is_sqlite(db.as_ref()) {
                // SQLite's code is the extended result code, as a number.
                let code: i64 = db.code().and_then(|c| c.parse().ok()).unwrap_or_default();
                sqlite_reason(code, db.message())
            } else {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                postgres_reason(&code, db.message())
            }
        }
        sqlx::Error::Io(io) => Some((format!("the database connection failed ({io})"), 2)),
        sqlx::Error::Tls(t) => Some((format!("the database connection failed ({t})"), 2)),
        sqlx::Error::Protocol(p) => Some((format!("the database connection failed ({p})"), 2)),
        sqlx::Error::PoolTimedOut => Some((
            "no database connection became free in time (the database is slow, locked or not answering)".into(),
            1,
        )),
        sqlx::Error::PoolClosed => Some(("the server is shutting down".into(), 2)),
        sqlx::Error::WorkerCrashed => Some(("the database worker thread stopped".into(), 2)),
        _ => None,
    }
}

/// SQLite primary result codes (the low byte of the extended code).
fn sqlite_reason(extended: i64, message: &str) -> Option<(String, u64)> {
    let (what, retry) = match extended & 0xff {
        5 | 6 => ("the database is locked by another process or connection", 1),
        13 => (DISK_FULL, 5),
        10 => (
            "the database file could not be read or written (I/O error)",
            5,
        ),
        8 => ("the database is read-only", 5),
        11 | 26 => ("the database file is damaged", 30),
        14 => ("the database file cannot be opened", 5),
        15 => ("the database's locking protocol failed", 1),
        7 => ("the database ran out of memory", 5),
        _ => return None,
    };
    Some((format!("{what} ({message})"), retry))
}

/// PostgreSQL SQLSTATE codes that mean "cannot serve now".
fn postgres_reason(code: &str, message: &str) -> Option<(String, u64)> {
    let (what, retry) = match code {
        "53100" => (DISK_FULL, 5),
        "55P03" => ("the database is locked (lock wait timed out)", 1),
        "57014" => (
            "the database did not answer in time (statement cancelled)",
            1,
        ),
        "40001" | "40P01" => ("the database aborted a conflicting transaction", 1),
        "25006" => ("the database is read-only", 5),
        "XX001" | "XX002" => ("the database is damaged", 30),
        c if c.starts_with("53") => ("the database is out of resources", 5),
        c if c.starts_with("08") => ("the database connection failed", 2),
        c if c.starts_with("57P") => ("the database is shutting down or restarting", 2),
        c if c.starts_with("58") => ("the database had an I/O error", 5),
        _ => return None,
    };
    Some((format!("{what} ({message})"), retry))
}

/// The outcome of the latest database call that says anything about the
/// store: a real commit, or an error that means it cannot serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Never,
    Committed(Instant),
    Failed(Instant),
}

/// The latest outcome and the latest failure's reason. Process-wide: a
/// process has one store, and a failure is noticed where the driver's error
/// is converted (`From<sqlx::Error>`), deep inside any statement.
static LATEST: Mutex<(Last, String)> = Mutex::new((Last::Never, String::new()));

/// A commit this recent proves the store takes writes without a probe.
pub const FRESH: Duration = Duration::from_secs(2);
/// How long one probe's result answers later readiness checks.
pub const PROBE_REUSE: Duration = Duration::from_secs(1);
/// The start of every "disk full" reason.
pub const DISK_FULL: &str = "the disk holding the database is full";
/// After a full disk, the store counts as writable again only with this
/// much free space (a probe's tiny commit may fit where real writes do not).
pub const MIN_FREE_BYTES: u64 = 1024 * 1024;

pub fn committed() {
    if let Ok(mut l) = LATEST.lock() {
        l.0 = Last::Committed(Instant::now());
    }
}

pub fn failed(reason: &str) {
    if let Ok(mut l) = LATEST.lock() {
        *l = (Last::Failed(Instant::now()), reason.to_owned());
    }
}

/// `true` when a write committed a moment ago and nothing failed since.
pub fn recently_committed() -> bool {
    matches!(LATEST.lock().map(|l| l.0), Ok(Last::Committed(t)) if t.elapsed() < FRESH)
}

/// The latest failure's reason, if the latest outcome was a failure.
pub fn failing() -> Option<String> {
    match LATEST.lock().as_deref() {
        Ok((Last::Failed(at), reason)) => Some(format!(
            "{reason}; last seen {}s ago",
            at.elapsed().as_secs()
        )),
        _ => None,
    }
}

/// Free bytes for unprivileged writers on the filesystem holding `path`.
#[cfg(unix)]
pub fn free_bytes(path: &std::path::Path) -> Option<u64> {
    let s = rustix::fs::statvfs(path).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

#[cfg(not(unix))]
pub fn free_bytes(_path: &std::path::Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_codes_map_to_reasons() {
        assert!(sqlite_reason(5, "database is locked")
            .is_some_and(|(r, s)| r.contains("locked") && s == 1));
        assert!(
            sqlite_reason(13, "database or disk is full").is_some_and(|(r, _)| r.contains("full"))
        );
        // SQLITE_IOERR_WRITE (778) is an I/O error too.
        assert!(sqlite_reason(778, "disk I/O error").is_some_and(|(r, _)| r.contains("I/O")));
        assert!(
            sqlite_reason(26, "file is not a database").is_some_and(|(r, _)| r.contains("damaged"))
        );
        // A unique violation (2067) is not an availability problem.
        assert!(sqlite_reason(2067, "UNIQUE constraint failed").is_none());
    }

    #[test]
    fn postgres_codes_map_to_reasons() {
        assert!(postgres_reason("53100", "could not extend file").is_some());
        assert!(postgres_reason("08006", "connection failure").is_some());
        assert!(postgres_reason("23505", "duplicate key").is_none());
    }

    #[test]
    fn health_follows_the_latest_outcome() {
        failed(DISK_FULL);
        assert!(!recently_committed());
        assert!(failing().is_some_and(|r| r.contains("full")));
        committed();
        assert!(recently_committed());
        assert!(failing().is_none());
    }

    #[test]
    fn free_space_is_measured() {
        assert!(free_bytes(std::path::Path::new(".")).is_some_and(|b| b > 0));
    }
}
