//! C2SP tlog checkpoints (<https://c2sp.org/tlog-checkpoint>).
//!
//! The body is three `\n`-terminated lines: the log origin, the tree size in
//! decimal, and the base64 root hash. It is published as a signed note whose
//! signing key name equals the origin.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::merkle::Hash;
use crate::note::{open_note_indexed, unverified_text, SigningKey, Verifier};
use crate::Error;

/// A tree head: "the log `origin` had `size` entries with root hash `root`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Unique log identity, e.g. `pliuz.example.com/audit`. Also the name of
    /// the key that signs the checkpoint.
    pub origin: String,
    /// Number of entries in the tree.
    pub size: u64,
    /// RFC 9162 root hash of the first `size` entries.
    pub root: Hash,
}

impl Checkpoint {
    /// The checkpoint body, i.e. the note text to sign.
    pub fn to_body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a checkpoint body.
    ///
    /// Strict: exactly three lines, decimal size without sign or leading
    /// zeros, standard padded base64 of 32 bytes. C2SP allows extension lines
    /// after the root; Pliuz never writes any, so they are rejected rather
    /// than silently ignored in an audit artefact.
    pub fn parse(body: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::Checkpoint(why.to_owned());
        let rest = body
            .strip_suffix('\n')
            .ok_or_else(|| bad("body must end in a newline"))?;
        let mut lines = rest.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(bad("body must have origin, size and root lines"));
        };
        if lines.next().is_some() {
            return Err(bad("unexpected extension lines after the root hash"));
        }
        if origin.is_empty() || origin.chars().any(|c| c.is_control()) {
            return Err(bad("origin line is empty or has control characters"));
        }
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(Error::Checkpoint(format!(
                "tree size {size:?} is not a canonical decimal"
            )));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| Error::Checkpoint(format!("tree size {size:?} is out of range")))?;
        let root = B64
            .decode(root)
            .ok()
            .and_then(|r| Hash::try_from(r).ok())
            .ok_or_else(|| bad("root hash is not base64 of 32 bytes"))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// Parses the body of a signed checkpoint note *without verifying it*.
    /// Only for routing (e.g. reading the size before fetching keys); trust
    /// comes from [`open_checkpoint`].
    pub fn parse_unverified_note(note: &str) -> Result<Self, Error> {
        Self::parse(unverified_text(note)?)
    }
}

/// Signs a checkpoint. The key name must equal the checkpoint origin, which
/// is how C2SP clients bind a key to a log.
pub fn sign_checkpoint(checkpoint: &Checkpoint, key: &SigningKey) -> Result<String, Error> {
    if key.name() != checkpoint.origin {
        return Err(Error::Checkpoint(format!(
            "key name {:?} differs from checkpoint origin {:?}",
            key.name(),
            checkpoint.origin
        )));
    }
    key.sign_note(&checkpoint.to_body())
}

/// Verifies a signed checkpoint note and returns the checkpoint.
///
/// Succeeds only if a key in `verifiers` whose name equals the origin signed
/// it (signatures by other trusted keys, e.g. witnesses, do not make an
/// origin claim).
pub fn open_checkpoint(note: &str, verifiers: &[Verifier]) -> Result<Checkpoint, Error> {
    open_checkpoint_with_signers(note, verifiers).map(|(checkpoint, _)| checkpoint)
}

/// Like [`open_checkpoint`], also returning the verifier key strings of the
/// origin keys that signed it (used to report which key verified each checkpoint).
pub(crate) fn open_checkpoint_with_signers(
    note: &str,
    verifiers: &[Verifier],
) -> Result<(Checkpoint, Vec<String>), Error> {
    let opened = open_note_indexed(note, verifiers)?;
    let checkpoint = Checkpoint::parse(opened.text)?;
    let keys: Vec<String> = opened
        .signers
        .iter()
        .filter(|&&i| verifiers[i].name() == checkpoint.origin)
        .map(|&i| verifiers[i].to_string())
        .collect();
    if keys.is_empty() {
        return Err(Error::NoTrustedSignature(format!(
            "checkpoint for origin {:?} is not signed by a trusted key of that name",
            checkpoint.origin
        )));
    }
    Ok((checkpoint, keys))
}
