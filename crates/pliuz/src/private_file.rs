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

/// Syncs a directory, so that a file created or renamed in it survives a
/// crash (best effort: not every platform can open a directory).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
