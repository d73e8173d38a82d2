//! Writes the export layout of `pliuz-audit` (see its README and
//! `docs/audit.md`):
//!
//! ```text
//! DIR/entries.jsonl        canonical bytes of each entry + "\n", log order
//! DIR/checkpoints/<size>   each signed checkpoint note as served
//! DIR/keys.txt             every verifier key the log has used
//! ```
//!
//! The export is a consistent snapshot: the log's size is read once, and
//! only entries and checkpoints up to it are written. A checkpoint for
//! exactly that size is signed if none covers it yet, while the entries are
//! copied (and synced) into `entries.jsonl.partial` and the files of the
//! checkpoints already stored are written; the entries get their final name
//! only once the signature is stored. It runs beside a live server (entries
//! are immutable, so no long transaction is needed).

use super::{AuditResult, Signer};
use crate::service::{ControlPlane, CopyError};
use std::path::Path;

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    pub entries: u64,
    pub checkpoints: Vec<u64>,
    pub keys: Vec<String>,
}

fn io(path: &Path, e: std::io::Error) -> super::AuditError {
    super::AuditError::Log(format!("{}: {e}", path.display()))
}

/// Where the entries are copied until the export is complete: renamed to
/// `entries.jsonl` only once the checkpoint covering them is stored, so
/// that a refused or failed signature never leaves a complete-looking
/// export behind.
const PARTIAL_ENTRIES: &str = "entries.jsonl.partial";

/// Exports the whole log into `dir` (created; must not hold an export yet).
pub async fn export(
    cp: &ControlPlane,
    signer: Option<&Signer>,
    dir: &Path,
) -> AuditResult<ExportSummary> {
    if dir.join("entries.jsonl").exists() || dir.join("checkpoints").exists() {
        return Err(super::AuditError::Log(format!(
            "{} already holds an export; choose a new directory",
            dir.display()
        )));
    }
    let cp_dir = dir.join("checkpoints");
    std::fs::create_dir_all(&cp_dir).map_err(|e| io(&cp_dir, e))?;

    // With a signer the export covers the log as it is now, signed first if
    // no stored checkpoint covers it yet; without one, only the signed part.
    let held = cp.audit_size().await?;
    let stored = cp.all_checkpoints().await?;
    let newest = stored.last().map(|(s, _)| *s);
    let (size, to_sign) = match signer {
        Some(s) if newest.is_none_or(|n| n < held) => (held, Some(s)),
        Some(_) => (held, None),
        None => (newest.unwrap_or(0).min(held), None),
    };

    // The checkpoints already stored for entries the export holds. Their
    // files, many small ones each costing more to create than its bytes, are
    // written on a blocking thread while the checkpoint is signed and the
    // entries are copied.
    let early: Vec<(u64, String)> = stored.into_iter().filter(|(s, _)| *s <= size).collect();
    let mut sizes: Vec<u64> = early.iter().map(|(s, _)| *s).collect();
    let early_files = tokio::task::spawn_blocking({
        let dir = dir.to_owned();
        move || write_checkpoints(&dir, &early)
    });

    // The entries are copied while the checkpoint for exactly their size is
    // signed (a read of the witness file and a consistency proof, a durable
    // append to it, a durable INSERT): neither waits for the other.
    let partial = dir.join(PARTIAL_ENTRIES);
    let file = std::fs::File::create(&partial).map_err(|e| io(&partial, e))?;
    let sign = async {
        match to_sign {
            Some(s) => super::sign_at(cp, s, size).await.map(|_| ()),
            None => Ok(()),
        }
    };
    // What the log holds, as it is: a missing or altered entry is for the
    // verifier to find, not for the export to hide or refuse. The copy is
    // made durable while the signature may still be on its way.
    let copy = async {
        let (written, file) = cp
            .copy_audit_entries(size, file)
            .await
            .map_err(|e| match e {
                CopyError::Store(e) => super::AuditError::Store(e),
                CopyError::Write(e) => io(&partial, e),
            })?;
        let synced = tokio::task::spawn_blocking(move || file.sync_all())
            .await
            .map_err(|e| super::AuditError::Log(format!("{}: {e}", partial.display())))?;
        synced.map_err(|e| io(&partial, e))?;
        Ok::<u64, super::AuditError>(written)
    };
    let (copied, signed) = tokio::join!(copy, sign);
    let written = match (copied, signed) {
        (Ok(written), Ok(())) => written,
        (Err(e), _) | (_, Err(e)) => {
            // Best effort: the error is what the operator needs to see.
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };

    // The checkpoints stored since (this export's own, the server's, another
    // replica's) and keys.txt, on another blocking thread.
    let late: Vec<(u64, String)> = cp
        .all_checkpoints()
        .await?
        .into_iter()
        .filter(|(s, _)| *s <= size && sizes.binary_search(s).is_err())
        .collect();
    sizes.extend(late.iter().map(|(s, _)| *s));
    sizes.sort_unstable();
    let keys = super::known_verifiers(cp, signer).await?;
    let late_files = tokio::task::spawn_blocking({
        let (dir, keys) = (dir.to_owned(), keys.clone());
        move || {
            write_checkpoints(&dir, &late)?;
            write_keys(&dir, &keys)
        }
    });

    // The export succeeds only once every file is written and the entries
    // are on the disk under their final name.
    let entries = dir.join("entries.jsonl");
    tokio::task::spawn_blocking({
        let (dir, partial, entries) = (dir.to_owned(), partial.clone(), entries.clone());
        move || -> AuditResult<()> {
            std::fs::rename(&partial, &entries).map_err(|e| io(&entries, e))?;
            // The rename must be durable before success is reported.
            crate::private_file::sync_dir(&dir).map_err(|e| io(&dir, e))
        }
    })
    .await
    .map_err(|e| super::AuditError::Log(format!("{}: {e}", entries.display())))??;
    for files in [early_files, late_files] {
        files
            .await
            .map_err(|e| super::AuditError::Log(format!("{}: {e}", dir.display())))??;
    }
    Ok(ExportSummary {
        entries: written,
        checkpoints: sizes,
        keys,
    })
}

/// Writes `DIR/checkpoints/<size>` for each of `notes`.
fn write_checkpoints(dir: &Path, notes: &[(u64, String)]) -> AuditResult<()> {
    let cp_dir = dir.join("checkpoints");
    for (size, note) in notes {
        let p = cp_dir.join(size.to_string());
        std::fs::write(&p, note.as_bytes()).map_err(|e| io(&p, e))?;
    }
    Ok(())
}

/// Writes `DIR/keys.txt`, one verifier key a line.
fn write_keys(dir: &Path, keys: &[String]) -> AuditResult<()> {
    let p = dir.join("keys.txt");
    let mut text = String::new();
    for k in keys {
        text.push_str(k);
        text.push('\n');
    }
    std::fs::write(&p, text).map_err(|e| io(&p, e))
}
