//! The data directory holds password hashes, session and CSRF state, the
//! audit signing key and every request's arguments: it is created 0700 and
//! its files 0600 whatever the umask, and `serve` warns at start about any
//! of them that other users can read.

use crate::config::Settings;
use std::path::{Path, PathBuf};

/// Every file this process creates from now on is private to its user
/// (SQLite creates its WAL and SHM files with the database file's mode).
#[allow(unsafe_code)] // libc calls; see the SAFETY comment
pub fn private_umask() {
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file mode creation mask.
    unsafe {
        libc::umask(0o077);
    }
}

/// The SQLite database file named by `database_url`, if it is SQLite.
pub fn sqlite_path(database_url: &str) -> Option<PathBuf> {
    let rest = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Creates the data directory (0700) and the SQLite database file (0600)
/// if they do not exist yet. Existing ones are left as they are (see
/// [`warn_if_loose`]).
pub fn prepare(settings: &Settings) -> anyhow::Result<()> {
    create_private_dir(&settings.data_dir)?;
    if let Some(db) = sqlite_path(&settings.database_url) {
        if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        crate::private_file::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&db)
            .map_err(|e| anyhow::anyhow!("cannot create the database {}: {e}", db.display()))?;
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| anyhow::anyhow!("cannot create data directory {}: {e}", dir.display()))
}

/// The paths (and their modes) that other users can read or write: the
/// data directory, everything directly in it, the database with its WAL and
/// SHM, and the signing key file.
pub fn loose(settings: &Settings) -> Vec<(PathBuf, u32)> {
    let mut paths = vec![settings.data_dir.clone()];
    if let Ok(entries) = std::fs::read_dir(&settings.data_dir) {
        paths.extend(entries.flatten().map(|e| e.path()));
    }
    if let Some(db) = sqlite_path(&settings.database_url) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = db.clone().into_os_string();
            p.push(suffix);
            paths.push(PathBuf::from(p));
        }
    }
    paths.push(settings.audit.signing_key_file.clone());
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter_map(|p| {
            let mode = mode_of(&p)?;
            (mode & 0o077 != 0).then_some((p, mode))
        })
        .collect()
}

#[cfg(unix)]
fn mode_of(p: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p)
        .ok()
        .filter(|m| !m.file_type().is_symlink())
        .map(|m| m.permissions().mode() & 0o777)
}

#[cfg(not(unix))]
fn mode_of(_: &Path) -> Option<u32> {
    None
}

/// Logs a warning for each path in [`loose`].
pub fn warn_if_loose(settings: &Settings) {
    for (path, mode) in loose(settings) {
        let fix = if path.is_dir() {
            "chmod 700"
        } else {
            "chmod 600"
        };
        tracing::warn!(
            path = %path.display(),
            mode = %format!("{mode:04o}"),
            "other users can access this Pliuz data (password hashes, sessions, request arguments); run `{fix}` on it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_found() {
        assert_eq!(
            sqlite_path("sqlite://./d/pliuz.db?mode=rwc"),
            Some(PathBuf::from("./d/pliuz.db"))
        );
        assert_eq!(sqlite_path("sqlite:x.db"), Some(PathBuf::from("x.db")));
        assert_eq!(sqlite_path("postgres://h/db"), None);
    }
}
