//! Files only their owner may read (mode 0600 whatever the umask): keys,
//! witness and monitor state. Written whole and synced, so a crash leaves
//! either the old file or the complete new one.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

/// Open options that create files with mode 0600; the caller adds how the
/// file is opened (append, truncate, create_new).
pub fn options() -> OpenOptions {
    let mut opts = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
}

/// Creates `path`, which must not exist yet, with `contents`, synced to disk.
pub fn write_new(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut f = options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

/// The directory `path` is in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Syncs a directory, so that a file created or renamed in it survives a
/// crash. Callers that can go on without it ignore the error (not every
/// platform can open a directory).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Reads a secret file (a key) as text; warns when other users may read it,
/// since the secret is then no longer only the owner's. `what` names the
/// secret in the messages, e.g. "the encryption key".
pub fn read_secret(path: &Path, what: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {what} {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            if m.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    "{what} file is readable by other users; run chmod 600 on it"
                );
            }
        }
    }
    Ok(text)
}

/// Puts a complete 0600 file with `contents` at `path`, creating its
/// directory: written to a temporary file first, so `path` either does not
/// exist or holds everything. With `replace` false an existing file is left
/// alone and `Ok(false)` is returned; the hard link that publishes it fails
/// if the file exists, so two processes starting at once agree on one file.
pub fn publish(path: &Path, contents: &[u8], replace: bool) -> anyhow::Result<bool> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("key"),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, contents)?;
    let result = if replace {
        std::fs::rename(&tmp, path).map(|_| true)
    } else {
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    };
    let _ = std::fs::remove_file(&tmp);
    let _ = sync_dir(dir);
    result.map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}
