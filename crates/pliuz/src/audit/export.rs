//! Writes the export layout of `pliuz-audit` (see its README and
//! `docs/audit.md`):
//!
//! ```text
//! DIR/entries.jsonl        canonical bytes of each entry + "\n", log order
//! DIR/checkpoints/<size>   each signed checkpoint note as served
//! DIR/keys.txt             every verifier key the log has used
//! ```
//!
//! The export is a consistent snapshot: a checkpoint covering the log is
//! signed first if needed, and only entries and checkpoints up to its size
//! are written (the files of checkpoints already stored are written while
//! it is signed). It runs beside a live server (entries are immutable, so
//! no long transaction is needed).

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

    // The checkpoints stored for entries the log already holds belong in
    // the export whatever is signed next (the size exported is at least the
    // log's size now). Their files, many small ones each costing more to
    // create than its bytes, are written on a blocking thread while the
    // checkpoint is signed and the entries are copied.
    let held = cp.audit_size().await?;
    let early: Vec<(u64, String)> = cp
        .all_checkpoints()
        .await?
        .into_iter()
        .filter(|(s, _)| *s <= held)
        .collect();
    let mut sizes: Vec<u64> = early.iter().map(|(s, _)| *s).collect();
    let early_files = tokio::task::spawn_blocking({
        let dir = dir.to_owned();
        move || write_checkpoints(&dir, &early)
    });

    let size = match signer {
        Some(s) => super::sign_checkpoint(cp, s).await?.size,
        None => cp.latest_checkpoint().await?.map(|(s, _)| s).unwrap_or(0),
    };
    // Without a signer only the signed part is exported.
    let size = size.min(cp.audit_size().await?);

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

    let path = dir.join("entries.jsonl");
    let file = std::fs::File::create(&path).map_err(|e| io(&path, e))?;
    // What the log holds, as it is: a missing or altered entry is for the
    // verifier to find, not for the export to hide or refuse.
    let (written, file) = cp
        .copy_audit_entries(size, file)
        .await
        .map_err(|e| match e {
            CopyError::Store(e) => super::AuditError::Store(e),
            CopyError::Write(e) => io(&path, e),
        })?;
    // The export succeeds only once every file is written and the entries
    // are on the disk.
    tokio::task::spawn_blocking(move || file.sync_all())
        .await
        .map_err(|e| super::AuditError::Log(format!("{}: {e}", path.display())))?
        .map_err(|e| io(&path, e))?;
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
