//! Writes the export layout of `pliuz-audit` (see its README and
//! `docs/audit.md`):
//!
//! ```text
//! DIR/entries.jsonl        canonical bytes of each entry + "\n", log order
//! DIR/checkpoints/<size>   each signed checkpoint note as served
//! DIR/keys.txt             every verifier key the log has used
//! ```
//!
//! The export is a consistent snapshot: the log size is read once, a
//! checkpoint covering it is signed first if needed, and only checkpoints up
//! to that size are written. It runs beside a live server (entries are
//! immutable, so no long transaction is needed).

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

    let size = match signer {
        Some(s) => super::sign_checkpoint(cp, s).await?.size,
        None => cp.latest_checkpoint().await?.map(|(s, _)| s).unwrap_or(0),
    };
    // Without a signer only the signed part is exported.
    let size = size.min(cp.audit_size().await?);

    // Checkpoint files and keys.txt are written on a blocking thread while
    // the entries are read: many small files, each costing more to create
    // than its bytes.
    let notes: Vec<(u64, String)> = cp
        .all_checkpoints()
        .await?
        .into_iter()
        .filter(|(s, _)| *s <= size)
        .collect();
    let sizes = notes.iter().map(|(s, _)| *s).collect();
    let keys = super::known_verifiers(cp, signer).await?;
    let small_files = tokio::task::spawn_blocking({
        let (dir, keys) = (dir.to_owned(), keys.clone());
        move || write_checkpoints_and_keys(&dir, &notes, &keys)
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
    small_files
        .await
        .map_err(|e| super::AuditError::Log(format!("{}: {e}", dir.display())))??;
    Ok(ExportSummary {
        entries: written,
        checkpoints: sizes,
        keys,
    })
}

/// Writes `DIR/checkpoints/<size>` for each of `notes` and `DIR/keys.txt`.
fn write_checkpoints_and_keys(
    dir: &Path,
    notes: &[(u64, String)],
    keys: &[String],
) -> AuditResult<()> {
    let cp_dir = dir.join("checkpoints");
    for (size, note) in notes {
        let p = cp_dir.join(size.to_string());
        std::fs::write(&p, note.as_bytes()).map_err(|e| io(&p, e))?;
    }
    let p = dir.join("keys.txt");
    let mut text = String::new();
    for k in keys {
        text.push_str(k);
        text.push('\n');
    }
    std::fs::write(&p, text).map_err(|e| io(&p, e))
}
