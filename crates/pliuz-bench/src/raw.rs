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
    next: u64,
}

impl Sqlite {
    pub fn open(dir: &Path) -> Result<Sqlite> {
        let conn = rusqlite::Connection::open(dir.join("raw-baseline.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT NOT NULL, created_at INTEGER NOT NULL)",
        )?;
        Ok(Sqlite { conn, next: 0 })
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
