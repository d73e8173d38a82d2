//! The data encryption key: seals what must be readable again but never
//! stored in clear — stored run states (they hold whole conversations) and
//! agents' webhook signing secrets.
//!
//! XChaCha20-Poly1305 with a random 192-bit nonce per message; the
//! associated data names what the ciphertext is (e.g. `run-state:<run id>`),
//! so a sealed value copied into another row does not open there.
//!
//! The 256-bit key comes from `PLIUZ_ENCRYPTION_KEY` (base64) when set,
//! otherwise from `encryption_key_file` (default
//! `<data_dir>/encryption.key`), generated with mode 0600 on first use. On
//! PostgreSQL every replica must be given the same key, exactly as with the
//! audit signing key.

use crate::private_file;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Leading byte of every sealed value, so the format can change later.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 24;
const KEY_PREFIX: &str = "pliuz-ek-v1:";

pub struct DataKey {
    cipher: XChaCha20Poly1305,
}

// The key must never reach logs, even through `{:?}`.
impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a sealed value does not open with this server's encryption key (wrong key, or the data was altered)")]
pub struct OpenError;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn parse_key(text: &str, from: &str) -> anyhow::Result<DataKey> {
    let t = text.trim();
    let t = t.strip_prefix(KEY_PREFIX).unwrap_or(t);
    let bytes = b64().decode(t).map_err(|_| {
        anyhow::anyhow!("the encryption key in {from} is not base64 (expected 32 random bytes)")
    })?;
    if bytes.len() != 32 {
        anyhow::bail!(
            "the encryption key in {from} is {} bytes; it must be 32",
            bytes.len()
        );
    }
    let cipher = XChaCha20Poly1305::new_from_slice(&bytes)
        .map_err(|_| anyhow::anyhow!("the encryption key in {from} is unusable"))?;
    Ok(DataKey { cipher })
}

/// Writes a new random key to `path` (mode 0600) unless one exists.
fn create_key_file(path: &Path) -> anyhow::Result<()> {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let contents = format!("{KEY_PREFIX}{}\n", b64().encode(key));
    if private_file::publish(path, contents.as_bytes(), false)? {
        tracing::info!(file = %path.display(), "generated the data encryption key");
    }
    Ok(())
}

fn read_key_file(path: &Path) -> anyhow::Result<DataKey> {
    let text = private_file::read_secret(path, "the encryption key")?;
    parse_key(&text, &path.display().to_string())
}

/// A key given as text (`PLIUZ_ENCRYPTION_KEY`); never shown by `{:?}`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyText(pub String);

impl std::fmt::Debug for KeyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where a key comes from; also the cache key, so a process loads it once.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Source {
    Env(String),
    File(PathBuf),
}

impl DataKey {
    /// The data key, loaded once per process (generated on
    /// first use when it comes from a file that does not exist yet).
    /// `key` is `PLIUZ_ENCRYPTION_KEY` when set; otherwise the key is read
    /// from `key_file`.
    pub fn load(key: Option<&KeyText>, key_file: &std::path::Path) -> anyhow::Result<Arc<DataKey>> {
        static CACHE: OnceLock<Mutex<HashMap<Source, Arc<DataKey>>>> = OnceLock::new();
        let source = match key {
            Some(k) => Source::Env(k.0.clone()),
            None => Source::File(key_file.to_path_buf()),
        };
        let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
        let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = cache.get(&source) {
            return Ok(k.clone());
        }
        let key = match &source {
            Source::Env(text) => parse_key(text, "PLIUZ_ENCRYPTION_KEY")?,
            Source::File(path) => {
                if !path.exists() {
                    create_key_file(path)?;
                }
                read_key_file(path)?
            }
        };
        let key = Arc::new(key);
        cache.insert(source, key.clone());
        Ok(key)
    }

    /// A key from raw bytes (tests).
    #[cfg(test)]
    pub fn from_bytes(bytes: &[u8; 32]) -> DataKey {
        DataKey {
            cipher: XChaCha20Poly1305::new(bytes.into()),
        }
    }

    /// Encrypts `plaintext`, bound to `context` (what and whose it is).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            // Only fails for messages beyond 256 GiB, far over any limit here.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != FORMAT_V1 {
            return Err(OpenError);
        }
        let (nonce, ct) = sealed[1..].split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_in_its_context() {
        let k = DataKey::from_bytes(&[7u8; 32]);
        let sealed = k.seal("run-state:a", b"hello");
        assert_eq!(k.open("run-state:a", &sealed).unwrap(), b"hello");
        assert!(k.open("run-state:b", &sealed).is_err());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(k.open("run-state:a", &tampered).is_err());
        let other = DataKey::from_bytes(&[8u8; 32]);
        assert!(other.open("run-state:a", &sealed).is_err());
        assert!(!sealed.windows(5).any(|w| w == b"hello"));
    }
}
