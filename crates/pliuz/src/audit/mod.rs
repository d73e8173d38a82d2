//! The audit trail's server side: checkpoint signing (worker, on demand and
//! at shutdown), receipts, whole-log verification and the
//! export. The pure log maths and formats live in the `pliuz-audit` crate;
//! the persistence lives in `store/audit.rs`. See `docs/audit.md`.
//!
//! # Helpers for other edges (inbox, CLI)
//!
//! * [`latest_checkpoint`]: the newest signed checkpoint (optionally signing
//!   one when none exists yet).
//! * [`sign_checkpoint`]: make sure a signed checkpoint covers the whole log.
//! * [`receipt_for`]: the offline-verifiable receipt of one approval.
//! * [`verify_log`]: re-check the whole stored log against every checkpoint
//!   and every known key.
//! * [`known_verifiers`]: every verifier key the log has used.
//!
//! The signer lives in `http::Extras::audit_signer` when serving; the HTTP
//! routes are `api::audit`.

pub mod cli;
pub mod export;
pub mod monitor;
pub mod signer;
pub mod witness;
pub mod worker;

pub use signer::Signer;

use crate::service::ControlPlane;
use crate::service::StoreError;
use pliuz_audit::{Checkpoint, Entry, Hash, Receipt, Verifier};

/// Errors of the audit helpers.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// No log entry mentions this approval.
    #[error("no audit entries for approval {0}")]
    NotFound(String),
    /// A requested index or size lies outside the log.
    #[error("{0}")]
    OutOfRange(String),
    /// Nothing signed covers the request yet and there is no key to sign now.
    #[error("{0}")]
    NotSigned(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored log does not fit together (corruption or tampering).
    #[error("{0}")]
    Log(String),
}

pub type AuditResult<T> = Result<T, AuditError>;

fn log_err(e: pliuz_audit::Error) -> AuditError {
    AuditError::Log(e.to_string())
}

/// A signed checkpoint as stored: the note is served byte for byte.
#[derive(Debug, Clone)]
pub struct SignedCheckpoint {
    pub size: u64,
    /// The C2SP signed note (`text/plain`).
    pub note: String,
    /// The parsed body (origin, size, root); the signature is *not*
    /// re-checked here.
    pub checkpoint: Checkpoint,
}

impl SignedCheckpoint {
    fn new(size: u64, note: String) -> AuditResult<SignedCheckpoint> {
        let checkpoint = Checkpoint::parse_unverified_note(&note)
            .map_err(|e| AuditError::Log(format!("stored checkpoint {size} is malformed: {e}")))?;
        Ok(SignedCheckpoint {
            size,
            note,
            checkpoint,
        })
    }
}

/// The newest signed checkpoint. With a signer, one is signed first if none
/// exists yet or if the newest does not cover the whole log; without one,
/// the newest stored checkpoint (if any) is returned as is.
pub async fn latest_checkpoint(
    cp: &ControlPlane,
    signer: Option<&Signer>,
) -> AuditResult<Option<SignedCheckpoint>> {
    if let Some(signer) = signer {
        return sign_checkpoint(cp, signer).await.map(Some);
    }
    match cp.latest_checkpoint().await? {
        Some((size, note)) => Ok(Some(SignedCheckpoint::new(size, note)?)),
        None => Ok(None),
    }
}

/// Makes sure a signed checkpoint covers every entry committed so far and
/// returns the newest one. Signs only when needed; when several replicas
/// sign the same size, the first stored note stands.
pub async fn sign_checkpoint(cp: &ControlPlane, signer: &Signer) -> AuditResult<SignedCheckpoint> {
    let size = cp.audit_size().await?;
    if let Some((have, note)) = cp.latest_checkpoint().await? {
        if have >= size {
            return SignedCheckpoint::new(have, note);
        }
    }
    sign_at(cp, signer, size).await
}

/// Signs (and stores) a checkpoint for exactly `size` entries.
pub async fn sign_at(
    cp: &ControlPlane,
    signer: &Signer,
    size: u64,
) -> AuditResult<SignedCheckpoint> {
    // Never sign a log that dropped or rewrote what was signed before.
    let witness = witness::Witness::for_settings(&cp.settings);
    witness.guard(cp).await?;
    let key = signer.key();
    // Record the key before anything it signs, so exports always list it.
    cp.record_verifier_key(&key.verifier_key()).await?;
    let root = cp.audit_root(size).await?;
    let checkpoint = Checkpoint {
        origin: signer.origin().to_owned(),
        size,
        root,
    };
    let note = pliuz_audit::sign_checkpoint(&checkpoint, &key).map_err(log_err)?;
    // Remembered outside the database before anyone can see it.
    witness.append_async(&note).await?;
    cp.save_checkpoint(size, &note).await?;
    // Another replica may have stored its own note for this size first.
    match cp.checkpoint_covering(size).await? {
        Some((s, stored)) if s == size => SignedCheckpoint::new(s, stored),
        _ => SignedCheckpoint::new(size, note),
    }
}

/// The receipt of one approval: every log entry that mentions it, each
/// with its inclusion proof, under the newest signed checkpoint. When no
/// checkpoint covers the approval's newest entry yet, one is signed now
/// (needs `signer`; without one the call fails with `NotSigned`).
///
/// Authorization is the caller's job (`cp.get_for` / `cp.can_see`).
pub async fn receipt_for(
    cp: &ControlPlane,
    approval_id: &str,
    signer: Option<&Signer>,
) -> AuditResult<Receipt> {
    let entries = cp.audit_entries_for(approval_id).await?;
    let Some(last) = entries.last() else {
        return Err(AuditError::NotFound(approval_id.to_owned()));
    };
    let needed = last.index + 1;
    let latest = match cp.latest_checkpoint().await? {
        Some((size, note)) if size >= needed => SignedCheckpoint::new(size, note)?,
        _ => match signer {
            Some(signer) => sign_checkpoint(cp, signer).await?,
            None => {
                return Err(AuditError::NotSigned(format!(
                    "no signed checkpoint covers entry {} yet; try again in a few seconds",
                    last.index
                )))
            }
        },
    };
    let mut parts = Vec::with_capacity(entries.len());
    for e in entries {
        let proof = cp.inclusion_proof(e.index, latest.size).await?;
        parts.push((e.index, e.body.into_bytes(), proof));
    }
    Receipt::build(approval_id, &latest.note, latest.size, parts).map_err(log_err)
}

/// Every verifier key the log has used (oldest first), plus the signer's
/// current key if it is not recorded yet.
pub async fn known_verifiers(
    cp: &ControlPlane,
    signer: Option<&Signer>,
) -> AuditResult<Vec<String>> {
    let mut keys = cp.verifier_keys().await?;
    if let Some(s) = signer {
        let k = s.verifier_key();
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    Ok(keys)
}

/// What [`verify_log`] found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    /// Entries in the log.
    pub entries: u64,
    /// Checkpoints checked (sizes ascending).
    pub checkpoints: Vec<u64>,
    /// Keys that signed at least one checkpoint.
    pub signed_by: Vec<String>,
    /// Entries after the newest checkpoint.
    pub unsigned_tail: u64,
    /// The first problem, in log order; `None` when everything verifies.
    pub problem: Option<LogProblem>,
    /// Every problem found, in log order (only the first unless a full
    /// report was asked for).
    pub problems: Vec<LogProblem>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One problem [`verify_log`] found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogProblem {
    /// The bad entry, when the problem is in an entry.
    pub index: Option<u64>,
    /// The checkpoint (tree size) involved, when the problem is in one.
    pub checkpoint: Option<u64>,
    /// Starts with `entry N:` or `checkpoint N:`.
    pub message: String,
}

/// A compact Merkle frontier: the roots of the perfect subtrees of the
/// entries pushed so far (RFC 9162 tree, O(log n) memory).
#[derive(Default)]
struct Frontier {
    nodes: Vec<(u32, Hash)>,
}

impl Frontier {
    fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut height = 0;
        while let Some(&(ht, left)) = self.nodes.last() {
            if ht != height {
                break;
            }
            self.nodes.pop();
            h = pliuz_audit::node_hash(&left, &h);
            height += 1;
        }
        self.nodes.push((height, h));
    }

    fn root(&self) -> Hash {
        let mut it = self.nodes.iter().rev();
        let Some(&(_, mut acc)) = it.next() else {
            return pliuz_audit::empty_root();
        };
        for (_, left) in it {
            acc = pliuz_audit::node_hash(left, &acc);
        }
        acc
    }
}

const VERIFY_PAGE: u64 = 1000;

/// Re-checks the whole stored log: every checkpoint's signature with every
/// known key (so rotated keys still count) and its origin; every entry is
/// canonical, numbered by its position and hashes to the leaf hash stored
/// when it was appended (exact localisation of an edited entry); every
/// checkpoint root equals the root recomputed from the entries; and the
/// stored tree hashes give the same root as the entries.
///
/// Returns `Err` only when the store cannot be read; a log that does not
/// verify gives `Ok` with `problem` set.
pub async fn verify_log(
    cp: &ControlPlane,
    signer: Option<&Signer>,
    full_report: bool,
) -> AuditResult<VerifyReport> {
    let origin = &cp.settings.audit.origin;
    let mut verifiers = Vec::new();
    for k in known_verifiers(cp, signer).await? {
        match k.parse::<Verifier>() {
            Ok(v) => verifiers.push(v),
            Err(e) => tracing::warn!(key = %k, error = %e, "unusable verifier key in audit_keys"),
        }
    }
    let size = cp.audit_size().await?;
    let mut report = VerifyReport {
        entries: size,
        checkpoints: Vec::new(),
        signed_by: Vec::new(),
        unsigned_tail: 0,
        problem: None,
        problems: Vec::new(),
    };
    // Records a problem; returns from `verify_log` unless a full report
    // was asked for.
    macro_rules! fail {
        ($index:expr, $checkpoint:expr, $message:expr) => {{
            report.problems.push(LogProblem {
                index: $index,
                checkpoint: $checkpoint,
                message: $message,
            });
            if !full_report {
                report.problem = report.problems.first().cloned();
                return Ok(report);
            }
        }};
    }

    // 1. Checkpoints: signature, origin, file size vs body size. A bad
    //    checkpoint is reported and left out of the root checks.
    let mut checkpoints = Vec::new();
    for (s, note) in cp.all_checkpoints().await? {
        let opened = pliuz_audit::open_checkpoint(&note, &verifiers);
        let c = match opened {
            Ok(c) => c,
            Err(e) => {
                fail!(None, Some(s), format!("checkpoint {s}: {e}"));
                continue;
            }
        };
        if c.size != s || &c.origin != origin {
            fail!(
                None,
                Some(s),
                format!(
                    "checkpoint {s}: signed body says origin {:?} size {}, expected {origin:?} size {s}",
                    c.origin, c.size
                )
            );
            continue;
        }
        if c.size > size {
            fail!(
                Some(size),
                Some(s),
                format!(
                    "entry {size}: missing — checkpoint {s} covers {s} entries but the log holds {size} (truncated)"
                )
            );
            continue;
        }
        for v in &verifiers {
            if !report.signed_by.iter().any(|k| k == &v.to_string())
                && pliuz_audit::open_checkpoint(&note, std::slice::from_ref(v)).is_ok()
            {
                report.signed_by.push(v.to_string());
            }
        }
        report.checkpoints.push(s);
        checkpoints.push(c);
    }

    // 2. Entries, in pages, against stored leaf hashes and checkpoint roots.
    //    An altered entry is reported exactly (its stored leaf hash differs);
    //    the stored hash then stands in for it, so every later checkpoint is
    //    still checked on its own.
    let mut frontier = Frontier::default();
    let mut next_cp = checkpoints.iter().peekable();
    while let Some(c) = next_cp.next_if(|c| c.size == 0) {
        if c.root != pliuz_audit::empty_root() {
            fail!(
                None,
                Some(0),
                "checkpoint 0: root is not the empty root".into()
            );
        }
    }
    let mut last_good = 0u64;
    let mut start = 0u64;
    let mut entries_whole = true;
    'pages: while start < size {
        let end = (start + VERIFY_PAGE).min(size);
        let rows = cp.audit_entries(start, end).await?;
        let wanted: Vec<u64> = (start..end)
            .map(|i| pliuz_audit::stored_hash_index(0, i))
            .collect();
        let stored = match cp.audit_hashes(&wanted).await {
            Ok(m) => m,
            Err(StoreError::Corrupt(m)) => {
                fail!(
                    Some(start),
                    None,
                    format!(
                        "entry {start}: stored leaf hashes in {start}..{end} are incomplete: {m}"
                    )
                );
                // Without leaf hashes the tree cannot be followed further.
                entries_whole = false;
                break 'pages;
            }
            Err(e) => return Err(e.into()),
        };
        let mut rows = rows.into_iter().peekable();
        for i in start..end {
            let stored_leaf = stored.get(&pliuz_audit::stored_hash_index(0, i)).copied();
            let row = rows.next_if(|r| r.index == i);
            let leaf = match row {
                None => {
                    let next = rows.peek().map(|r| r.index);
                    fail!(
                        Some(i),
                        None,
                        match next {
                            Some(n) => format!("entry {i}: missing (the next stored entry is {n})"),
                            None => format!("entry {i}: missing from the log"),
                        }
                    );
                    stored_leaf
                }
                Some(row) => {
                    let bytes = row.body.as_bytes();
                    match Entry::parse_canonical(bytes) {
                        Ok(e) if e.index == i => {}
                        Ok(e) => fail!(
                            Some(i),
                            None,
                            format!("entry {i}: index field says {}", e.index)
                        ),
                        Err(e) => fail!(Some(i), None, format!("entry {i}: {e}")),
                    }
                    let leaf = pliuz_audit::leaf_hash(bytes);
                    if stored_leaf != Some(leaf) {
                        fail!(
                            Some(i),
                            None,
                            format!("entry {i}: does not hash to the leaf hash stored when it was appended (altered)")
                        );
                    }
                    stored_leaf.or(Some(leaf))
                }
            };
            let Some(leaf) = leaf else {
                entries_whole = false;
                break 'pages;
            };
            frontier.push(leaf);
            let n = i + 1;
            while let Some(c) = next_cp.next_if(|c| c.size == n) {
                if frontier.root() != c.root {
                    fail!(
                        Some(last_good),
                        Some(n),
                        format!(
                            "checkpoint {n}: root hash does not match entries 0..{n} — altered entry in {last_good}..{n}"
                        )
                    );
                }
                last_good = n;
            }
        }
        start = end;
    }

    // 3. The stored tree hashes agree with the entries.
    if entries_whole {
        let stored_root = cp.audit_root(size).await?;
        if stored_root != frontier.root() {
            fail!(
                Some(last_good),
                None,
                format!("entry {last_good}: the stored tree hashes do not match the entries after {last_good}")
            );
        }
    }
    report.unsigned_tail = size - checkpoints.last().map(|c| c.size).unwrap_or(0);
    report.problem = report.problems.first().cloned();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::Frontier;

    #[test]
    fn frontier_roots_match_the_rfc_tree() {
        let mut tree = pliuz_audit::MemoryTree::new();
        let mut frontier = Frontier::default();
        assert_eq!(frontier.root(), pliuz_audit::empty_root());
        for i in 0..300u32 {
            let leaf = pliuz_audit::leaf_hash(&i.to_be_bytes());
            tree.push_leaf_hash(leaf);
            frontier.push(leaf);
            assert_eq!(frontier.root(), tree.root(), "size {}", i + 1);
        }
    }
}
