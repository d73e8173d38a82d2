//! Audit log persistence: entries and Merkle hashes are appended inside the
//! caller's write transaction; the pure tree maths lives in `pliuz_audit`.

use super::sql::{self, col, Statement};
use super::{Result, Store, StoreError, WriteTx};
use pliuz_audit::Hash;
use std::collections::HashMap;

pub use crate::audit_event::AuditEvent;

/// An entry as stored: its canonical bytes are exactly what was hashed.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    pub index: u64,
    pub approval_id: Option<String>,
    pub kind: String,
    pub created_at: i64,
    pub body: String,
}

fn to_u64(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative audit index {v}")))
}

fn hash_from(bytes: Vec<u8>) -> Result<Hash> {
    Hash::try_from(bytes.as_slice())
        .map_err(|_| StoreError::Corrupt("audit hash is not 32 bytes".into()))
}

async fn read_hashes<C>(conn: &mut C, indexes: &[u64]) -> Result<HashMap<u64, Hash>>
where
    for<'c> &'c mut C: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let mut out = HashMap::with_capacity(indexes.len());
    if indexes.is_empty() {
        return Ok(out);
    }
    let mut st = Statement::new("");
    let list = indexes
        .iter()
        .map(|i| st.arg(i64::try_from(*i).unwrap_or(i64::MAX)))
        .collect::<Vec<_>>()
        .join(", ");
    st.sql = format!("SELECT idx, hash FROM audit_hashes WHERE idx IN ({list})");
    for row in sql::fetch_rows(conn, &st.sql, &st.args[..]).await? {
        let idx = to_u64(col::<i64>(&row, "idx")?)?;
        out.insert(idx, hash_from(col::<Vec<u8>>(&row, "hash")?)?);
    }
    if out.len() != indexes.len() {
        return Err(StoreError::Corrupt(format!(
            "audit hashes missing: wanted {} got {}",
            indexes.len(),
            out.len()
        )));
    }
    Ok(out)
}

/// Audit rows appended in a transaction and not yet sent to the database.
#[derive(Default)]
pub(super) struct Unwritten {
    entries: Vec<UnwrittenEntry>,
    hashes: Vec<(u64, Hash)>,
}

struct UnwrittenEntry {
    index: i64,
    approval_id: Option<String>,
    kind: &'static str,
    created_at: i64,
    body: String,
}

/// Rows per `INSERT`: well under every backend's limit on bound values.
const ROWS_PER_INSERT: usize = 200;

/// The most values one PostgreSQL statement may bind.
const POSTGRES_MAX_VALUES: usize = 65_535;

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// `($1, $2), ($3, $4), ...`: `rows` rows of `columns` placeholders, numbered
/// after the `before` values bound ahead of them.
fn placeholder_rows(rows: usize, columns: usize, before: usize) -> String {
    (0..rows)
        .map(|r| {
            let row = (1..=columns)
                .map(|c| format!("${}", before + r * columns + c))
                .collect::<Vec<_>>()
                .join(", ");
            format!("({row})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `INSERT` of `rows` entries, and the number of values it binds.
fn insert_entries_sql(rows: usize, before: usize) -> (String, usize) {
    let sql = format!(
        "INSERT INTO audit_entries (idx, approval_id, kind, created_at, body) VALUES {}",
        placeholder_rows(rows, 5, before)
    );
    (sql, rows * 5)
}

fn insert_hashes_sql(rows: usize, before: usize) -> String {
    format!(
        "INSERT INTO audit_hashes (idx, hash) VALUES {}",
        placeholder_rows(rows, 2, before)
    )
}

fn bind_entries<'q>(mut q: AnyQuery<'q>, entries: &'q [UnwrittenEntry]) -> AnyQuery<'q> {
    for e in entries {
        q = q
            .bind(e.index)
            .bind(e.approval_id.as_deref())
            .bind(e.kind)
            .bind(e.created_at)
            .bind(e.body.as_str());
    }
    q
}

fn bind_hashes<'q>(mut q: AnyQuery<'q>, hashes: &'q [(u64, Hash)]) -> Result<AnyQuery<'q>> {
    for (i, h) in hashes {
        let i = i64::try_from(*i).map_err(|_| StoreError::Audit("index overflow".into()))?;
        q = q.bind(i).bind(h.to_vec());
    }
    Ok(q)
}

impl Unwritten {
    /// The `INSERT` of the entries and the one of the hashes, each numbered
    /// from `$1` (at most [`ROWS_PER_INSERT`] rows each).
    fn into_statements(self) -> (Statement, Statement) {
        let (sql, _) = insert_entries_sql(self.entries.len(), 0);
        let mut entries = Statement::new(sql);
        for e in self.entries {
            entries.args.extend([
                e.index.into(),
                e.approval_id.into(),
                e.kind.into(),
                e.created_at.into(),
                e.body.into(),
            ]);
        }
        let mut hashes = Statement::new(insert_hashes_sql(self.hashes.len(), 0));
        for (i, h) in self.hashes {
            hashes
                .args
                .push(i64::try_from(i).unwrap_or(i64::MAX).into());
            hashes.args.push(super::sql::Arg::Blob(h.to_vec()));
        }
        (entries, hashes)
    }
}

impl WriteTx {
    /// SQLite: the writes held until commit (`write_behind`) and the
    /// entries and tree hashes `audit` appended as one multi-statement query
    /// (its driver runs several statements of one query, numbered values
    /// shared), for the writer to send with its next step: the change's
    /// rows, its release and, last in a batch, the `COMMIT`, in one round
    /// trip. `None` on PostgreSQL, or when there are too many rows for one
    /// statement: then [`WriteTx::flush_audit`] sends them.
    pub(super) fn writes_in_one(&mut self) -> Option<super::writer::Writes> {
        let fits = self.unwritten.entries.len() <= ROWS_PER_INSERT
            && self.unwritten.hashes.len() <= ROWS_PER_INSERT;
        if self.store.backend != super::Backend::Sqlite
            || !fits
            || self.unwritten.entries.is_empty()
        {
            return None;
        }
        let (entries, hashes) = std::mem::take(&mut self.unwritten).into_statements();
        let mut held = std::mem::take(&mut self.held);
        let statements = held.len() + 2;
        held.push(entries);
        held.push(hashes);
        Some(super::writer::Writes {
            statement: held.joined(),
            statements,
        })
    }

    /// PostgreSQL, at commit: the writes held until then (`write_behind`),
    /// the entries and tree hashes `audit` appended, and the head's new
    /// size, in one statement (more only when held rows must see each
    /// other, see `Held::into_postgres`) instead of one round trip each.
    /// Too many rows for one statement go as [`WriteTx::flush_audit`] sends
    /// them.
    pub(super) async fn flush_with_head(&mut self) -> Result<()> {
        let head = Statement {
            sql: "UPDATE audit_head SET size = $1 WHERE id = 1".to_owned(),
            args: vec![self.audit_size.into()],
        };
        let (entries, hashes) = (self.unwritten.entries.len(), self.unwritten.hashes.len());
        let values = self.held.values() + 5 * entries + 2 * hashes + 1;
        let fits = entries <= ROWS_PER_INSERT
            && hashes <= ROWS_PER_INSERT
            && entries > 0
            && values <= POSTGRES_MAX_VALUES;
        let statements = if fits {
            let (entries, hashes) = std::mem::take(&mut self.unwritten).into_statements();
            std::mem::take(&mut self.held).into_postgres(vec![entries, hashes, head])
        } else {
            self.flush_audit().await?;
            vec![head]
        };
        for st in statements {
            st.query().execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Inserts the writes held until commit (`write_behind`) and the
    /// entries and tree hashes `audit` appended, one statement each (entries
    /// and hashes per [`ROWS_PER_INSERT`]), rather than two statements per
    /// entry. Called just before the change is committed, when
    /// [`WriteTx::writes_in_one`] did not take them.
    pub(super) async fn flush_audit(&mut self) -> Result<()> {
        let Unwritten { entries, hashes } = std::mem::take(&mut self.unwritten);
        for st in std::mem::take(&mut self.held).into_statements() {
            st.query().execute(&mut *self.tx).await?;
        }
        for chunk in entries.chunks(ROWS_PER_INSERT) {
            let (sql, _) = insert_entries_sql(chunk.len(), 0);
            bind_entries(sqlx::query(&sql), chunk)
                .execute(&mut *self.tx)
                .await?;
        }
        for chunk in hashes.chunks(ROWS_PER_INSERT) {
            let sql = insert_hashes_sql(chunk.len(), 0);
            bind_hashes(sqlx::query(&sql), chunk)?
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// Appends one entry to the audit log in this transaction. Returns its index.
    /// `actor`: `user:EMAIL`, `agent:NAME`, `policy:NAME` or `system`.
    pub async fn audit(
        &mut self,
        actor: impl std::fmt::Display,
        approval_id: Option<&str>,
        event: AuditEvent,
    ) -> Result<u64> {
        let data = event
            .data()
            .map_err(|e| StoreError::Audit(format!("cannot encode audit data: {e}")))?;
        let approval_id = approval_id.map(str::to_owned);
        // The head was read when the transaction took its row lock, and only
        // this transaction can move it until COMMIT.
        let size_i = self.audit_size;
        let index = to_u64(size_i)?;
        let now = super::now_millis();
        let entry = pliuz_audit::Entry {
            index,
            time: format_time(now),
            kind: event.kind().to_owned(),
            actor: actor.to_string(),
            approval_id: approval_id.clone(),
            data,
        };
        let body = entry
            .to_canonical_bytes()
            .map_err(|e| StoreError::Audit(format!("cannot encode audit entry: {e}")))?;
        if body.len() > pliuz_audit::limits::MAX_ENTRY_BYTES {
            return Err(StoreError::EntryTooLarge(body.len()));
        }
        let leaf = pliuz_audit::leaf_hash(&body);
        let needed = pliuz_audit::append_plan(index);
        // Hashes this transaction wrote or read are known already (the
        // second entry of a change often needs the first one's leaf), and
        // stay known for the next (stored hashes never change).
        let unread: Vec<u64> = needed
            .iter()
            .copied()
            .filter(|i| !self.known_hashes.contains_key(i))
            .collect();
        let read = read_hashes(&mut *self.tx, &unread).await?;
        self.known_hashes.extend(read);
        let mut known = HashMap::with_capacity(needed.len());
        for i in needed {
            if let Some(h) = self.known_hashes.get(&i) {
                known.insert(i, *h);
            }
        }
        let new_hashes = pliuz_audit::append(index, leaf, &known)
            .map_err(|e| StoreError::Audit(format!("cannot extend the Merkle tree: {e}")))?;
        let body = String::from_utf8(body)
            .map_err(|_| StoreError::Audit("canonical JSON is not UTF-8".into()))?;
        // Written at commit, all of the transaction's entries and hashes in
        // one statement each (see `flush_audit`).
        self.unwritten.entries.push(UnwrittenEntry {
            index: size_i,
            approval_id,
            kind: event.kind(),
            created_at: now,
            body,
        });
        self.unwritten.hashes.extend(new_hashes.iter().copied());
        self.known_hashes.extend(new_hashes);
        // The head row itself is written once, at commit.
        self.audit_size = size_i + 1;
        self.appended.push(index);
        Ok(index)
    }
}

pub fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Store {
    pub async fn audit_size(&self) -> Result<u64> {
        let v: i64 = sqlx::query_scalar("SELECT size FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        to_u64(v)
    }

    /// Entries `start..end` in log order.
    pub async fn audit_entries(&self, start: u64, end: u64) -> Result<Vec<StoredEntry>> {
        let q = "SELECT idx, approval_id, kind, created_at, body FROM audit_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx";
        let rows = sqlx::query(q)
            .bind(i64::try_from(start).unwrap_or(i64::MAX))
            .bind(i64::try_from(end).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(entry_from_row).collect()
    }

    pub async fn audit_entries_for(&self, approval_id: &str) -> Result<Vec<StoredEntry>> {
        let q = "SELECT idx, approval_id, kind, created_at, body FROM audit_entries WHERE approval_id = $1 ORDER BY idx";
        let rows = sqlx::query(q)
            .bind(approval_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// Reads the stored hashes `indexes` (for proofs and roots).
    pub async fn audit_hashes(&self, indexes: &[u64]) -> Result<HashMap<u64, Hash>> {
        let mut conn = self.pool.acquire().await?;
        read_hashes(&mut *conn, indexes).await
    }

    /// The Merkle root of the first `size` entries.
    pub async fn audit_root(&self, size: u64) -> Result<Hash> {
        let plan = pliuz_audit::tree_hash_plan(size);
        self.over_hashes(plan, |map| pliuz_audit::tree_hash(size, map))
            .await
    }

    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>> {
        let plan = pliuz_audit::inclusion_proof_plan(index, size);
        self.over_hashes(plan, |map| pliuz_audit::inclusion_proof(index, size, map))
            .await
    }

    pub async fn consistency_proof(&self, from: u64, size: u64) -> Result<Vec<Hash>> {
        let plan = pliuz_audit::consistency_proof_plan(from, size);
        self.over_hashes(plan, |map| pliuz_audit::consistency_proof(from, size, map))
            .await
    }

    /// Reads the hashes `plan` names, then computes over them (a root, a
    /// proof); the tree maths' errors are `StoreError::Audit`.
    async fn over_hashes<T>(
        &self,
        plan: std::result::Result<Vec<u64>, pliuz_audit::Error>,
        compute: impl FnOnce(&HashMap<u64, Hash>) -> std::result::Result<T, pliuz_audit::Error>,
    ) -> Result<T> {
        let audit_error = |e: pliuz_audit::Error| StoreError::Audit(e.to_string());
        let map = self.audit_hashes(&plan.map_err(audit_error)?).await?;
        compute(&map).map_err(audit_error)
    }

    /// Stores a signed checkpoint; `Ok` once it is durable. On SQLite it
    /// takes a writer turn of the store's own (`begin_internal`), not one
    /// of the requests' places: beside the writer it would wait for the
    /// database lock behind back-to-back batches, seconds under load (issue
    /// #13). The note signs the log, so it is no change to the log and has
    /// no entry of its own. Once writes are stopped (the final checkpoint
    /// at shutdown) nothing else writes, and it goes to the database
    /// directly; so it does on PostgreSQL, where the insert waits for no
    /// lock of the writers.
    pub async fn save_checkpoint(&self, size: u64, note: &str) -> Result<()> {
        let q = "INSERT INTO audit_checkpoints (size, note, created_at) VALUES ($1, $2, $3)";
        let values = (
            i64::try_from(size).unwrap_or(i64::MAX),
            note,
            super::now_millis(),
        );
        let writes_stopped = || self.closed.load(std::sync::atomic::Ordering::Acquire);
        let stored = if self.backend == super::Backend::Postgres || writes_stopped() {
            sql::execute(&self.pool, q, values).await.map(drop)
        } else {
            match self.begin_internal(super::WRITE_WAIT).await {
                Ok(mut tx) => match sql::execute(tx.conn(), q, values).await {
                    Ok(_) => tx.commit_unaudited().await,
                    // Dropped, the turn is rolled back alone.
                    Err(err) => Err(err),
                },
                // Writes stopped while this asked for its turn.
                Err(_) if writes_stopped() => sql::execute(&self.pool, q, values).await.map(drop),
                Err(err) => Err(err),
            }
        };
        match stored {
            // Another replica signed the same size first: theirs stands.
            Err(err) if err.is_unique_violation() => Ok(()),
            other => other,
        }
    }

    /// The newest checkpoint: (size, note).
    pub async fn latest_checkpoint(&self) -> Result<Option<(u64, String)>> {
        let row =
            sqlx::query("SELECT size, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(checkpoint_from_row).transpose()
    }

    /// The smallest checkpoint covering `size` entries.
    pub async fn checkpoint_covering(&self, size: u64) -> Result<Option<(u64, String)>> {
        let q = "SELECT size, note FROM audit_checkpoints WHERE size >= $1 ORDER BY size LIMIT 1";
        let row = sqlx::query(q)
            .bind(i64::try_from(size).unwrap_or(i64::MAX))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(checkpoint_from_row).transpose()
    }

    pub async fn all_checkpoints(&self) -> Result<Vec<(u64, String)>> {
        let rows = sqlx::query("SELECT size, note FROM audit_checkpoints ORDER BY size")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(checkpoint_from_row).collect()
    }

    pub async fn record_verifier_key(&self, vkey: &str) -> Result<()> {
        let q = "SELECT COUNT(*) FROM audit_keys WHERE verifier_key = $1";
        let n: i64 = sqlx::query_scalar(q)
            .bind(vkey)
            .fetch_one(&self.pool)
            .await?;
        if n == 0 {
            let q = "INSERT INTO audit_keys (verifier_key, created_at) VALUES ($1, $2)";
            let res = sqlx::query(q)
                .bind(vkey)
                .bind(super::now_millis())
                .execute(&self.pool)
                .await;
            if let Err(e) = res {
                let err = StoreError::from(e);
                if !err.is_unique_violation() {
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    pub async fn verifier_keys(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT verifier_key FROM audit_keys ORDER BY created_at")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

/// A checkpoint row: (size, signed note).
fn checkpoint_from_row(r: &sqlx::any::AnyRow) -> Result<(u64, String)> {
    Ok((to_u64(col(r, "size")?)?, col(r, "note")?))
}

fn entry_from_row(r: &sqlx::any::AnyRow) -> Result<StoredEntry> {
    Ok(StoredEntry {
        index: to_u64(col(r, "idx")?)?,
        approval_id: col(r, "approval_id")?,
        kind: col(r, "kind")?,
        created_at: col(r, "created_at")?,
        body: col(r, "body")?,
    })
}
