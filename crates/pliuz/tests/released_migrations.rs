//! Released migrations never change: a database records only a migration's
//! version, so an edited file would never reach the databases that already
//! ran it. `migrations/released.sha256` pins the bytes of every released
//! file.

use pliuz::store::schema::MIGRATIONS;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

const RELEASED: &str = include_str!("../migrations/released.sha256");

/// Each released file (its path under `migrations/`) and its SHA-256.
fn released() -> BTreeMap<&'static str, &'static str> {
    RELEASED
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (digest, path) = line
                .split_once("  ")
                .unwrap_or_else(|| panic!("not `<sha256>  <path>`: {line}"));
            (path, digest)
        })
        .collect()
}

#[test]
fn no_released_migration_file_is_edited_or_removed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let released = released();
    assert!(released.len() >= 11, "{released:?}");
    for (path, digest) in released {
        let bytes = std::fs::read(root.join(path))
            .unwrap_or_else(|e| panic!("released migration {path} is gone: {e}"));
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            digest,
            "released migration {path} was edited: databases that ran it will never see the change; add a new migration instead"
        );
    }
}

/// A new file under a released version would never run on the databases
/// that have that version.
#[test]
fn no_released_migration_gains_a_file() {
    let released = released();
    for m in MIGRATIONS {
        let parts: Vec<&str> = m.parts().map(|p| p.path).collect();
        if parts.iter().any(|path| released.contains_key(path)) {
            for path in parts {
                assert!(
                    released.contains_key(path),
                    "{path} adds to released migration {}",
                    m.version
                );
            }
        }
    }
}
