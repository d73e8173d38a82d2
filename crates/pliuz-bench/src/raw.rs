//! Baselines: what the same disk, database and CPU do without Pliuz.

use anyhow::Result;
use sha2::Digest;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// A row about the size of a stored request with its audit entry.
fn row_body(i: u64) -> String {
    format!(
        r#"{{"tool_name":"lookup","tool_args":{{"customer":"cus_{i}","fields":["email","plan"]}},"policy":"lookups","agent":"bench-bot","args_digest":"{:064x}","padding":"{}"}}"#,
        i,
        "x".repeat(320)
    )
}

/// SQLite as the server configures it: WAL, `synchronous = FULL` (every
/// commit durable).
pub struct Sqlite {
    conn: rusqlite::Connection,
    path: std::path::PathBuf,
    next: u64,
}

impl Sqlite {
    pub fn open(dir: &Path) -> Result<Sqlite> {
        let path = dir.join("raw-baseline.db");
        let conn = rusqlite::Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT NOT NULL, created_at INTEGER NOT NULL)",
        )?;
        Ok(Sqlite {
            conn,
            path,
            next: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One durable commit of `rows` inserts; how long it took.
    pub fn commit(&mut self, rows: u64) -> Result<Duration> {
        let t = Instant::now();
        let tx = self.conn.transaction()?;
        {
            let mut insert =
                tx.prepare_cached("INSERT INTO t (body, created_at) VALUES (?1, ?2)")?;
            for _ in 0..rows {
                self.next += 1;
                insert.execute((row_body(self.next), self.next as i64))?;
            }
        }
        tx.commit()?;
        Ok(t.elapsed())
    }

    /// Rows per second with `per_commit` inserts per durable commit, for
    /// about `time`: the ceiling for a server that commits `per_commit`
    /// waiting requests together.
    pub fn batched_rate(&mut self, per_commit: u64, time: Duration) -> Result<f64> {
        let t = Instant::now();
        let mut rows = 0u64;
        while t.elapsed() < time {
            self.commit(per_commit)?;
            rows += per_commit;
        }
        Ok(rows as f64 / t.elapsed().as_secs_f64())
    }
}

/// Rows per second with `clients` connections each committing one insert
/// at a time (pgbench-style), for about `time`.
pub async fn postgres_rate(url: &str, clients: usize, time: Duration) -> Result<f64> {
    use sqlx::Connection;
    let mut setup = sqlx::PgConnection::connect(url).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS raw_baseline (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL, created_at BIGINT NOT NULL)",
    )
    .execute(&mut setup)
    .await?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            let mut rows = 0u64;
            while start.elapsed() < time {
                let i = (c as u64) << 40 | rows;
                sqlx::query("INSERT INTO raw_baseline (body, created_at) VALUES ($1, $2)")
                    .bind(row_body(i))
                    .bind(i as i64)
                    .execute(&mut conn)
                    .await?;
                rows += 1;
            }
            Ok::<u64, anyhow::Error>(rows)
        }));
    }
    summed_rate(start, tasks).await
}

/// What concurrent `tasks` counted, added up, per second since `start`.
pub async fn summed_rate(start: Instant, tasks: Vec<JoinHandle<Result<u64>>>) -> Result<f64> {
    let mut all = 0;
    for t in tasks {
        all += t.await??;
    }
    Ok(all as f64 / start.elapsed().as_secs_f64())
}

/// Single-thread SHA-256 throughput over `bytes`, MB/s (best of 3).
pub fn sha256_mb_s(bytes: &[u8]) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        std::hint::black_box(sha2::Sha256::digest(bytes));
        best = best.min(t.elapsed().as_secs_f64());
    }
    bytes.len() as f64 / 1e6 / best
}

/// The rows one auto-approved create stores (the request with all its
/// indexes, its audit entries, their tree hashes and the log's head),
/// committed straight into a copy of the server's own database with the
/// same statements' shape (`BEGIN IMMEDIATE`, savepoint, `COMMIT`): P1's
/// storage floor, which no server code over this schema goes below.
pub struct CreateRows {
    conn: rusqlite::Connection,
    insert_request: String,
    /// The newest request's row, column by column; each commit stores it
    /// again under a new id.
    template: Vec<(String, rusqlite::types::Value)>,
    entries: Vec<(String, i64, String)>,
    hashes_per_create: u64,
    next_entry: i64,
    next_hash: i64,
    made: u64,
}

impl CreateRows {
    /// Copies the live database `server_db` (a consistent snapshot, taken by
    /// `VACUUM INTO` beside the running server) to `copy`; the newest
    /// request there is the one each commit clones.
    pub fn copy_of(server_db: &Path, copy: &Path) -> Result<CreateRows> {
        {
            let live = rusqlite::Connection::open_with_flags(
                server_db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )?;
            live.busy_timeout(Duration::from_secs(10))?;
            live.execute("VACUUM INTO ?1", [copy.to_string_lossy()])?;
        }
        let conn = rusqlite::Connection::open(copy)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let template_id: String = conn.query_row(
            "SELECT id FROM approvals ORDER BY created_at DESC, id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )?;
        let template: Vec<(String, rusqlite::types::Value)> = {
            let mut q = conn.prepare("SELECT * FROM approvals WHERE id = ?1")?;
            let names: Vec<String> = q.column_names().iter().map(|n| n.to_string()).collect();
            let values = q.query_row([&template_id], |r| {
                (0..names.len())
                    .map(|i| r.get::<_, rusqlite::types::Value>(i))
                    .collect::<Result<Vec<_>, _>>()
            })?;
            names.into_iter().zip(values).collect()
        };
        let insert_request = format!(
            "INSERT INTO approvals ({}) VALUES ({})",
            template
                .iter()
                .map(|(c, _)| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", "),
            (1..=template.len())
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let entries: Vec<(String, i64, String)> = {
            let mut q = conn.prepare(
                "SELECT kind, created_at, body FROM audit_entries WHERE approval_id = ?1 ORDER BY idx",
            )?;
            let rows = q.query_map([&template_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let (entry_rows, hash_rows, next_entry, next_hash): (i64, i64, i64, i64) = conn.query_row(
            "SELECT (SELECT COUNT(*) FROM audit_entries), (SELECT COUNT(*) FROM audit_hashes), \
             (SELECT COALESCE(MAX(idx), -1) + 1 FROM audit_entries), \
             (SELECT COALESCE(MAX(idx), -1) + 1 FROM audit_hashes)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        anyhow::ensure!(
            !entries.is_empty() && entry_rows > 0,
            "the server's newest request has no audit entries"
        );
        // The tree stores about as many hashes per entry as the server's
        // log holds on average.
        let per_entry = hash_rows as f64 / entry_rows as f64;
        let hashes_per_create = (per_entry * entries.len() as f64).round().max(1.0) as u64;
        Ok(CreateRows {
            conn,
            insert_request,
            template,
            entries,
            hashes_per_create,
            next_entry,
            next_hash,
            made: 0,
        })
    }

    /// One durable commit of one more create's rows; how long it took.
    pub fn commit(&mut self) -> Result<Duration> {
        self.made += 1;
        let id = format!("floor-{:020}", self.made);
        let text = |s: &str| rusqlite::types::Value::Text(s.to_owned());
        let row: Vec<rusqlite::types::Value> = self
            .template
            .iter()
            .map(|(column, value)| match (column.as_str(), value) {
                ("id", _) => text(&id),
                // Unique per agent where set.
                ("idempotency_key", rusqlite::types::Value::Text(_)) => text(&id),
                _ => value.clone(),
            })
            .collect();
        let t = Instant::now();
        self.conn.execute_batch(
            "BEGIN IMMEDIATE; SAVEPOINT change; UPDATE audit_head SET size = size WHERE id = 1",
        )?;
        self.conn
            .prepare_cached(&self.insert_request)?
            .execute(rusqlite::params_from_iter(&row))?;
        for (kind, created_at, body) in &self.entries {
            self.conn
                .prepare_cached(
                    "INSERT INTO audit_entries (idx, approval_id, kind, created_at, body) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute((self.next_entry, &id, kind, created_at, body))?;
            self.next_entry += 1;
        }
        for _ in 0..self.hashes_per_create {
            let hash: [u8; 32] = sha2::Sha256::digest(self.next_hash.to_le_bytes()).into();
            self.conn
                .prepare_cached("INSERT INTO audit_hashes (idx, hash) VALUES (?1, ?2)")?
                .execute((self.next_hash, &hash[..]))?;
            self.next_hash += 1;
        }
        self.conn.execute_batch("RELEASE SAVEPOINT change")?;
        self.conn
            .prepare_cached("UPDATE audit_head SET size = ?1 WHERE id = 1")?
            .execute([self.next_entry])?;
        self.conn.execute_batch("COMMIT")?;
        Ok(t.elapsed())
    }
}

/// The size of the write-ahead log of the database at `db`.
fn wal_len(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map_or(0, |m| m.len())
}

/// Commits with `commit` until the write-ahead log of the database at `db`
/// has stopped growing (after a checkpoint it is written from its start
/// again), at most `limit` times. Until then each commit also extends a
/// file, which costs ext4 a journal commit (several milliseconds on this
/// disk); the server's own log grew while it migrated.
pub fn grow_wal(db: &Path, limit: usize, mut commit: impl FnMut() -> Result<()>) -> Result<()> {
    let (mut last, mut unchanged) = (wal_len(db), 0);
    for _ in 0..limit {
        commit()?;
        let now = wal_len(db);
        unchanged = if now == last { unchanged + 1 } else { 0 };
        last = now;
        if unchanged >= 20 {
            break;
        }
    }
    Ok(())
}
