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
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
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
        13 => ("the disk holding the database is full", 5),
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
        "53100" => ("the disk holding the database is full", 5),
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

/// The outcome of the latest write attempt that says anything about the
/// store (a commit, or a failure to take the lock or to commit).
#[derive(Debug, Clone)]
enum Last {
    Never,
    Committed(Instant),
    Failed { at: Instant, reason: String },
}

/// Shared by every clone of a store.
#[derive(Debug)]
pub struct Health {
    last: Mutex<Last>,
    /// One readiness probe at a time; its result is reused for a moment.
    pub(super) probe: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
}

/// A commit this recent proves the store takes writes without a probe.
pub const FRESH: Duration = Duration::from_secs(2);
/// How long one probe's result answers later readiness checks.
pub const PROBE_REUSE: Duration = Duration::from_secs(1);

impl Default for Health {
    fn default() -> Self {
        Health {
            last: Mutex::new(Last::Never),
            probe: tokio::sync::Mutex::new(None),
        }
    }
}

impl Health {
    pub fn committed(&self) {
        if let Ok(mut l) = self.last.lock() {
            *l = Last::Committed(Instant::now());
        }
    }

    pub fn failed(&self, reason: &str) {
        if let Ok(mut l) = self.last.lock() {
            *l = Last::Failed {
                at: Instant::now(),
                reason: reason.to_owned(),
            };
        }
    }

    /// `true` when a write committed a moment ago and nothing failed since.
    pub fn recently_committed(&self) -> bool {
        matches!(self.last.lock().as_deref(), Ok(Last::Committed(t)) if t.elapsed() < FRESH)
    }

    /// The reason of the latest failure, if the latest outcome was one.
    pub fn failing(&self) -> Option<String> {
        match self.last.lock().as_deref() {
            Ok(Last::Failed { reason, at }) => Some(format!(
                "{reason}; last seen {}s ago",
                at.elapsed().as_secs()
            )),
            _ => None,
        }
    }
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
        let h = Health::default();
        assert!(!h.recently_committed());
        h.failed("the disk holding the database is full");
        assert!(h.failing().is_some_and(|r| r.contains("full")));
        h.committed();
        assert!(h.recently_committed());
        assert!(h.failing().is_none());
    }
}
