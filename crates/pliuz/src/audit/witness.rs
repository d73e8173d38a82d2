//! What this server remembers of the checkpoints it signed, kept outside the
//! database they protect.
//!
//! Every checkpoint the server (or the admin CLI) signs is first appended to
//! `audit-checkpoints.jsonl` next to the signing key (the data dir by
//! default), mode 0600, one JSON line per checkpoint with the signed note.
//! Someone who can rewrite the database (drop the append-only triggers,
//! delete the tail with its hashes and checkpoints) cannot make the server
//! forget: at start, before each new signature and in `pliuz audit check`
//! the log must still extend the newest remembered checkpoint (an RFC 9162
//! consistency proof from its size to the log's size must verify against its
//! signed root). A log that is smaller, or that rewrote what was signed, is
//! refused: the server does not start and signs nothing more until an
//! operator runs `pliuz audit accept-rollback` (which records the rollback
//! in the log itself). See `docs/audit.md`.
//!
//! Only a witness elsewhere (`pliuz audit monitor`) also survives someone who
//! controls both the database and this file.

use crate::config::Settings;
use crate::private_file;
use crate::service::ControlPlane;
use crate::service::StoreError;
use pliuz_audit::{Checkpoint, Verifier};
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "audit-checkpoints.jsonl";

/// How much of the end of the file is read to find the newest checkpoint
/// (several concurrent signers may append out of size order).
const TAIL_BYTES: u64 = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Corrupt(String),
    /// The log is smaller than a checkpoint this server signed.
    #[error("the audit log holds {log} entries, but this server signed a checkpoint for {size} entries at {signed_at} (remembered in {file}): entries were removed from the database (truncated, or restored from an older backup)")]
    Rollback {
        size: u64,
        log: u64,
        signed_at: String,
        file: String,
    },
    /// The log does not extend a checkpoint this server signed.
    #[error("the audit log ({log} entries) does not extend the checkpoint for {size} entries this server signed at {signed_at} (remembered in {file}): {why} — signed entries were rewritten")]
    Fork {
        size: u64,
        log: u64,
        signed_at: String,
        file: String,
        why: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl WitnessError {
    /// Whether the log itself is at fault (as opposed to reading the file).
    pub fn is_inconsistency(&self) -> bool {
        matches!(
            self,
            WitnessError::Rollback { .. } | WitnessError::Fork { .. }
        )
    }
}

/// One line of the file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    /// The C2SP signed note, byte for byte as signed.
    note: String,
    /// When it was signed (RFC 3339), for the messages.
    signed_at: String,
}

/// A checkpoint read back from the file.
#[derive(Debug, Clone)]
pub struct Remembered {
    pub note: String,
    pub signed_at: String,
    pub checkpoint: Checkpoint,
}

/// The checkpoint file of one data dir.
#[derive(Debug, Clone)]
pub struct Witness {
    path: PathBuf,
}

impl Witness {
    /// Next to the signing key file; in the data dir when the key comes
    /// from `PLIUZ_AUDIT_SIGNING_KEY`.
    pub fn for_settings(settings: &Settings) -> Witness {
        let dir = match &settings.audit.signing_key {
            Some(_) => settings.data_dir.clone(),
            None => settings
                .audit
                .signing_key_file
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| settings.data_dir.clone()),
        };
        Witness {
            path: dir.join(FILE_NAME),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    /// Appends a signed checkpoint and makes it durable before returning.
    pub fn append(&self, note: &str) -> Result<(), WitnessError> {
        let line = serde_json::to_string(&Line {
            note: note.to_owned(),
            signed_at: crate::service::format_time(crate::service::now_millis()),
        })
        .map_err(|e| WitnessError::Io(format!("cannot encode a checkpoint record: {e}")))?;
        let io = |e: std::io::Error| {
            WitnessError::Io(format!(
                "cannot record the signed checkpoint in {}: {e}; refusing to publish a checkpoint this server would not remember",
                self.shown()
            ))
        };
        let dir = private_file::parent_dir(&self.path);
        std::fs::create_dir_all(dir).map_err(io)?;
        let existed = self.path.exists();
        let mut f = private_file::options()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        // One write of the whole line: concurrent appenders (the server and
        // the admin CLI) never interleave within a line.
        f.write_all(format!("{line}\n").as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        if !existed {
            let _ = private_file::sync_dir(dir);
        }
        Ok(())
    }

    /// `n`: the line number, when known (0 when reading only the end).
    fn parse_line(&self, n: usize, text: &str) -> Result<Remembered, WitnessError> {
        let at = if n == 0 {
            "a line near the end".to_owned()
        } else {
            format!("line {n}")
        };
        let bad = |why: String| {
            WitnessError::Corrupt(format!(
                "{} {at} is not a checkpoint record: {why}",
                self.shown()
            ))
        };
        let line: Line = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let checkpoint =
            Checkpoint::parse_unverified_note(&line.note).map_err(|e| bad(e.to_string()))?;
        Ok(Remembered {
            note: line.note,
            signed_at: line.signed_at,
            checkpoint,
        })
    }

    /// Complete lines of `bytes`; a last line without its newline is a write
    /// torn by a crash, before the checkpoint was published: not a record.
    fn records(&self, bytes: &[u8], first_line: usize) -> Result<Vec<Remembered>, WitnessError> {
        let text = String::from_utf8_lossy(bytes);
        let complete = match text.rfind('\n') {
            Some(i) => &text[..i],
            None => return Ok(vec![]),
        };
        if complete.len() + 1 < text.len() {
            tracing::warn!(file = %self.shown(), "ignoring an incomplete last line (a write interrupted by a crash)");
        }
        complete
            .split('\n')
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| self.parse_line(if first_line == 0 { 0 } else { first_line + i }, l))
            .collect()
    }

    /// Every remembered checkpoint, in file order.
    pub fn read_all(&self) -> Result<Vec<Remembered>, WitnessError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => self.records(&bytes, 1),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
            Err(e) => Err(WitnessError::Io(format!(
                "cannot read {}: {e}",
                self.shown()
            ))),
        }
    }

    /// The largest remembered checkpoint (from the end of the file).
    pub fn newest(&self) -> Result<Option<Remembered>, WitnessError> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(WitnessError::Io(format!(
                    "cannot read {}: {e}",
                    self.shown()
                )))
            }
        };
        let io = |e: std::io::Error| WitnessError::Io(format!("cannot read {}: {e}", self.shown()));
        let len = f.metadata().map_err(io)?.len();
        let start = len.saturating_sub(TAIL_BYTES);
        f.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map_err(io)?;
        let mut from = &bytes[..];
        if start > 0 {
            // Skip the partial line the window starts in.
            let cut = bytes
                .iter()
                .position(|b| *b == b'\n')
                .map_or(bytes.len(), |i| i + 1);
            from = &bytes[cut..];
        }
        Ok(self
            .records(from, 0)?
            .into_iter()
            .max_by_key(|r| r.checkpoint.size))
    }

    /// Checks that the stored log extends `r`: at least as many entries, and
    /// a consistency proof from `r`'s size to the log's size that verifies
    /// against `r`'s signed root and the log's current root.
    pub async fn check_log(&self, cp: &ControlPlane, r: &Remembered) -> Result<(), WitnessError> {
        let size = r.checkpoint.size;
        let log = cp.audit_size().await?;
        if log < size {
            return Err(WitnessError::Rollback {
                size,
                log,
                signed_at: r.signed_at.clone(),
                file: self.shown(),
            });
        }
        let fork = |why: String| WitnessError::Fork {
            size,
            log,
            signed_at: r.signed_at.clone(),
            file: self.shown(),
            why,
        };
        // A store missing the hashes a proof needs is as bad as a wrong proof.
        let proved = async {
            let root = cp.audit_root(log).await?;
            let proof = cp.consistency_proof(size, log).await?;
            Ok::<_, StoreError>((root, proof))
        }
        .await;
        let (root, proof) = match proved {
            Ok(x) => x,
            Err(StoreError::Corrupt(m) | StoreError::Audit(m)) => {
                return Err(fork(format!("the stored tree cannot prove it ({m})")))
            }
            Err(e) => return Err(e.into()),
        };
        pliuz_audit::verify_consistency(size, log, &proof, &r.checkpoint.root, &root)
            .map_err(|e| fork(format!("the consistency proof does not verify ({e})")))
    }

    /// The newest remembered checkpoint must be extended by the log (before
    /// anything new is signed, and at start).
    pub async fn guard(&self, cp: &ControlPlane) -> Result<(), WitnessError> {
        let w = self.clone();
        let newest = tokio::task::spawn_blocking(move || w.newest())
            .await
            .map_err(|e| WitnessError::Io(format!("reading the checkpoint file: {e}")))??;
        match newest {
            Some(r) => self.check_log(cp, &r).await,
            None => Ok(()),
        }
    }

    /// [`Witness::append`] off the async runtime (it fsyncs).
    pub async fn append_async(&self, note: &str) -> Result<(), WitnessError> {
        let (w, note) = (self.clone(), note.to_owned());
        tokio::task::spawn_blocking(move || w.append(&note))
            .await
            .map_err(|e| WitnessError::Io(format!("recording the checkpoint: {e}")))?
    }

    /// Every remembered checkpoint, for `pliuz audit check`: its signature
    /// (with `verifiers`), its origin, and that the log extends it. Returns
    /// the problems found, each a sentence.
    pub async fn check_all(
        &self,
        cp: &ControlPlane,
        verifiers: &[Verifier],
    ) -> Result<(usize, Vec<String>), WitnessError> {
        let all = self.read_all()?;
        let origin = &cp.settings.audit.origin;
        let mut problems = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for r in &all {
            let c = &r.checkpoint;
            if !seen.insert((c.size, c.root)) {
                continue;
            }
            match pliuz_audit::open_checkpoint(&r.note, verifiers) {
                Ok(opened) if &opened.origin == origin => {}
                Ok(opened) => problems.push(format!(
                    "remembered checkpoint {}: origin {:?}, expected {origin:?} ({})",
                    c.size,
                    opened.origin,
                    self.shown()
                )),
                Err(e) => problems.push(format!(
                    "remembered checkpoint {}: {e} ({})",
                    c.size,
                    self.shown()
                )),
            }
            if let Err(e) = self.check_log(cp, r).await {
                if !e.is_inconsistency() {
                    return Err(e);
                }
                problems.push(e.to_string());
            }
        }
        Ok((all.len(), problems))
    }

    /// At start: the log must extend what this server signed. On a first
    /// start with this file (or after an upgrade) the database's newest
    /// checkpoint is adopted when it is signed by a known key and matches
    /// the log, so protection starts at once.
    pub async fn check_at_start(
        &self,
        cp: &ControlPlane,
        verifiers: &[Verifier],
    ) -> anyhow::Result<()> {
        match self.newest() {
            Ok(Some(r)) => {
                if let Err(e) = pliuz_audit::open_checkpoint(&r.note, verifiers) {
                    anyhow::bail!(
                        "refusing to start: the newest checkpoint remembered in {} does not verify with any known audit key ({e}); the file or the key table was altered",
                        self.shown()
                    );
                }
                self.check_log(cp, &r).await.map_err(refusal)
            }
            Ok(None) => {
                if let Some((size, note)) = cp.latest_checkpoint().await? {
                    let signed = pliuz_audit::open_checkpoint(&note, verifiers).ok();
                    if let Some(c) = signed.filter(|c| c.size == size) {
                        let log = cp.audit_size().await?;
                        if size <= log && cp.audit_root(size).await? == c.root {
                            self.append(&note)?;
                        }
                    }
                }
                Ok(())
            }
            Err(e) => Err(anyhow::anyhow!(
                "refusing to start: {e}; the file of signed checkpoints must be readable"
            )),
        }
    }

    /// Moves the file aside (kept, mode 0600) so a new chain starts;
    /// returns where it went.
    pub fn archive(&self) -> Result<PathBuf, WitnessError> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let to = self
            .path
            .with_file_name(format!("{FILE_NAME}.rolled-back-{stamp}"));
        std::fs::rename(&self.path, &to)
            .map_err(|e| WitnessError::Io(format!("cannot move {} aside: {e}", self.shown())))?;
        Ok(to)
    }
}

impl From<WitnessError> for super::AuditError {
    fn from(e: WitnessError) -> super::AuditError {
        match e {
            WitnessError::Store(s) => super::AuditError::Store(s),
            other => super::AuditError::Log(other.to_string()),
        }
    }
}

/// The start-up refusal: what happened and what to do.
fn refusal(e: WitnessError) -> anyhow::Error {
    if e.is_inconsistency() {
        anyhow::anyhow!(
            "refusing to start: {e}.\n  If you restored the database from an older backup on purpose, run `pliuz audit accept-rollback` (it records the rollback in the audit log and starts a new checkpoint chain; monitors will report it).\n  Otherwise treat this as tampering with the audit log: see docs/audit.md (\"Truncation and rollback\")."
        )
    } else {
        anyhow::anyhow!("refusing to start: {e}")
    }
}

/// Every known verifier key, parsed (unusable ones are skipped; they sign
/// nothing this server accepts).
pub async fn verifiers(
    cp: &ControlPlane,
    signer: Option<&super::Signer>,
) -> super::AuditResult<Vec<Verifier>> {
    Ok(super::known_verifiers(cp, signer)
        .await?
        .iter()
        .filter_map(|k| k.parse::<Verifier>().ok())
        .collect())
}

/// `pliuz serve`'s start-up check (see [`Witness::check_at_start`]).
pub async fn check_at_start(cp: &ControlPlane, signer: &super::Signer) -> anyhow::Result<()> {
    let verifiers = verifiers(cp, Some(signer)).await?;
    Witness::for_settings(&cp.settings)
        .check_at_start(cp, &verifiers)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(size: u64) -> String {
        let key = pliuz_audit::SigningKey::generate("test/log").unwrap();
        pliuz_audit::sign_checkpoint(
            &Checkpoint {
                origin: "test/log".into(),
                size,
                root: [size as u8; 32],
            },
            &key,
        )
        .unwrap()
    }

    #[test]
    fn appends_read_back_newest_and_a_torn_last_line_is_not_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let w = Witness {
            path: dir.path().join(FILE_NAME),
        };
        assert!(w.newest().unwrap().is_none());
        for size in [3, 9, 5] {
            w.append(&note(size)).unwrap();
        }
        assert_eq!(w.read_all().unwrap().len(), 3);
        assert_eq!(w.newest().unwrap().unwrap().checkpoint.size, 9);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(w.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A crash in the middle of a write: the partial line is ignored.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(w.path())
            .unwrap();
        f.write_all(b"{\"note\":\"test/log\\n12").unwrap();
        assert_eq!(w.read_all().unwrap().len(), 3);
        assert_eq!(w.newest().unwrap().unwrap().checkpoint.size, 9);
        // A complete line that is not a record is refused, not skipped.
        f.write_all(b"\n").unwrap();
        let e = w.read_all().unwrap_err().to_string();
        assert!(e.contains("line 4 is not a checkpoint record"), "{e}");
        assert!(w.newest().is_err());
    }
}
