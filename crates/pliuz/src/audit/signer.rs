//! The checkpoint signing key.
//!
//! The key is a C2SP signed-note Ed25519 key in Go's `sumdb/note` private key
//! format (`PRIVATE+KEY+<name>+<id>+<base64>`). Its name must equal the log
//! origin (`audit.origin`). It comes from `PLIUZ_AUDIT_SIGNING_KEY` when set,
//! otherwise from `audit.signing_key_file` (default
//! `<data_dir>/audit-signing.key`), which is generated with mode 0600 on the
//! first start.
//!
//! A running server notices when the key file is replaced (`pliuz audit
//! rotate-key`) and signs later checkpoints with the new key.

use crate::config::AuditSettings;
use crate::private_file;
use pliuz_audit::SigningKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Where the key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `PLIUZ_AUDIT_SIGNING_KEY`.
    Env,
    /// The key file.
    File(PathBuf),
}

/// Signs checkpoints for one log origin. Cheap to share behind an `Arc`.
pub struct Signer {
    origin: String,
    source: KeySource,
    current: Mutex<Loaded>,
}

struct Loaded {
    key: Arc<SigningKey>,
    /// (modified time, length) of the key file when it was read.
    stamp: Option<(SystemTime, u64)>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("origin", &self.origin)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Parses a private key string and checks that its name is the origin.
pub fn parse_key(text: &str, origin: &str, from: &str) -> anyhow::Result<SigningKey> {
    let key = SigningKey::from_private_string(text.trim())
        .map_err(|e| anyhow::anyhow!("the audit signing key in {from} is not usable: {e}"))?;
    if key.name() != origin {
        anyhow::bail!(
            "the audit signing key in {from} is named '{}', but audit.origin is '{origin}'; \
             a checkpoint key's name must equal the log origin (and the origin of an existing log never changes)",
            key.name()
        );
    }
    Ok(key)
}

fn read_key_file(path: &Path, origin: &str) -> anyhow::Result<SigningKey> {
    let text = private_file::read_secret(path, "the audit signing key")?;
    parse_key(&text, origin, &path.display().to_string())
}

/// Writes `key` to `path` with mode 0600, atomically: the file either does
/// not exist or holds the whole key. With `replace` false an existing file
/// is left alone and `Ok(false)` is returned.
pub fn write_key_file(path: &Path, key: &SigningKey, replace: bool) -> anyhow::Result<bool> {
    private_file::publish(
        path,
        format!("{}\n", key.to_private_string()).as_bytes(),
        replace,
    )
}

impl Signer {
    /// Loads the signing key; with `create`, generates the key file when it
    /// does not exist yet (first start).
    pub fn load(settings: &AuditSettings, create: bool) -> anyhow::Result<Signer> {
        let origin = settings.origin.clone();
        if let Some(text) = &settings.signing_key {
            let key = parse_key(text, &origin, "PLIUZ_AUDIT_SIGNING_KEY")?;
            return Ok(Signer {
                origin,
                source: KeySource::Env,
                current: Mutex::new(Loaded {
                    key: Arc::new(key),
                    stamp: None,
                }),
            });
        }
        let path = settings.signing_key_file.clone();
        if !path.exists() {
            if !create {
                anyhow::bail!(
                    "no audit signing key at {} (it is created when `pliuz serve` first starts)",
                    path.display()
                );
            }
            let key = SigningKey::generate(&origin)
                .map_err(|e| anyhow::anyhow!("cannot generate the audit signing key: {e}"))?;
            if write_key_file(&path, &key, false)? {
                tracing::info!(
                    file = %path.display(),
                    verifier_key = %key.verifier_key(),
                    "generated the audit checkpoint signing key"
                );
            }
        }
        let key = read_key_file(&path, &origin)?;
        Ok(Signer {
            origin,
            current: Mutex::new(Loaded {
                key: Arc::new(key),
                stamp: stamp(&path),
            }),
            source: KeySource::File(path),
        })
    }

    /// A signer over a key held in memory (tests, benchmarks).
    pub fn from_key(key: SigningKey) -> Signer {
        Signer {
            origin: key.name().to_owned(),
            source: KeySource::Env,
            current: Mutex::new(Loaded {
                key: Arc::new(key),
                stamp: None,
            }),
        }
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// The current key; re-reads the key file if it was replaced since.
    /// If the new file is unusable the previous key stays in use.
    pub fn key(&self) -> Arc<SigningKey> {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let KeySource::File(path) = &self.source {
            let now = stamp(path);
            if now.is_some() && now != cur.stamp {
                match read_key_file(path, &self.origin) {
                    Ok(key) => {
                        if key.verifier_key() != cur.key.verifier_key() {
                            tracing::info!(
                                verifier_key = %key.verifier_key(),
                                "the audit signing key file changed; signing with the new key"
                            );
                        }
                        cur.key = Arc::new(key);
                        cur.stamp = now;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the audit signing key file changed but cannot be used; keeping the previous key");
                        cur.stamp = now;
                    }
                }
            }
        }
        cur.key.clone()
    }

    /// `name+id+base64` of the current key.
    pub fn verifier_key(&self) -> String {
        self.key().verifier_key()
    }
}
