//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys,
//! byte-compatible with Go's `golang.org/x/mod/sumdb/note`.
//!
//! A signed note is the note text (non-empty, ending in `\n`), a blank line,
//! and one line per signature: `— <key name> <base64(key ID || signature)>\n`
//! (U+2014 em dash, space). The key ID is the first 4 bytes of
//! `SHA-256(name || 0x0A || 0x01 || public key)`, so a verifier can pick the
//! right key without trying all of them, and a rotated key under the same
//! name gets a different ID.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{SignatureError, Signer as _};
use sha2::{Digest, Sha256};

use crate::Error;

/// Algorithm byte for Ed25519 in C2SP/Go keys and key IDs.
const ALG_ED25519: u8 = 0x01;
const SIG_PREFIX: &str = "\u{2014} ";
const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";
/// Same bound as Go: parsing a note never does unbounded signature work.
const MAX_SIGNATURES: usize = 100;

/// A valid key name is non-empty, valid UTF-8 (guaranteed by `&str`), and has
/// no Unicode whitespace and no `+` (the key-string field separator).
fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(Error::Key(format!(
            "invalid key name {name:?}: must be non-empty with no spaces and no '+'"
        )));
    }
    Ok(())
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

fn parse_hex_id(s: &str) -> Result<[u8; 4], Error> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Key(format!(
            "invalid key ID {s:?}: want 8 hex digits"
        )));
    }
    u32::from_str_radix(s, 16)
        .map(u32::to_be_bytes)
        .map_err(|_| Error::Key(format!("invalid key ID {s:?}")))
}

fn hex_id(id: &[u8; 4]) -> String {
    format!("{:08x}", u32::from_be_bytes(*id))
}

/// Decodes `base64(0x01 || 32 bytes)`.
fn decode_key_material(s: &str) -> Result<[u8; 32], Error> {
    let raw = B64
        .decode(s)
        .map_err(|e| Error::Key(format!("key is not valid base64: {e}")))?;
    match raw.split_first() {
        Some((&ALG_ED25519, rest)) => rest
            .try_into()
            .map_err(|_| Error::Key(format!("Ed25519 key must be 32 bytes, got {}", rest.len()))),
        Some((alg, _)) => Err(Error::Key(format!("unsupported key algorithm 0x{alg:02x}"))),
        None => Err(Error::Key("empty key".into())),
    }
}

fn encode_key_material(bytes: &[u8; 32]) -> String {
    let mut raw = Vec::with_capacity(33);
    raw.push(ALG_ED25519);
    raw.extend_from_slice(bytes);
    B64.encode(raw)
}

/// Checks the C2SP/Go note-text rules: non-empty, ends in `\n`, and no ASCII
/// control characters other than `\n` (so the text cannot smuggle a `\r` or
/// escape sequence past a human reading it).
fn check_text(text: &str) -> Result<(), Error> {
    if !text.ends_with('\n') {
        return Err(Error::Note(
            "note text must be non-empty and end in a newline".into(),
        ));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(Error::Note("note text contains control characters".into()));
    }
    Ok(())
}

/// An Ed25519 note-signing key with its name.
///
/// `Debug` never prints the secret.
pub struct SigningKey {
    name: String,
    id: [u8; 4],
    key: ed25519_dalek::SigningKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("name", &self.name)
            .field("id", &hex_id(&self.id))
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a fresh key from the operating system's CSPRNG.
    pub fn generate(name: &str) -> Result<Self, Error> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed)
            .map_err(|e| Error::Key(format!("no randomness for key generation: {e}")))?;
        Self::from_seed(name, &seed)
    }

    /// Builds a key from a 32-byte Ed25519 seed (RFC 8032 private key).
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, Error> {
        check_name(name)?;
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let id = key_id(name, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// Parses Go's private key format:
    /// `PRIVATE+KEY+<name>+<hex key ID>+base64(0x01 || seed)`.
    pub fn from_private_string(s: &str) -> Result<Self, Error> {
        let rest = s
            .trim_end()
            .strip_prefix(PRIVATE_PREFIX)
            .ok_or_else(|| Error::Key("private key must start with PRIVATE+KEY+".into()))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(material)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Key(
                "private key must be PRIVATE+KEY+name+id+key".into(),
            ));
        };
        let id = parse_hex_id(id)?;
        let seed = decode_key_material(material)?;
        let key = Self::from_seed(name, &seed)?;
        if key.id != id {
            return Err(Error::Key(format!(
                "private key ID {} does not match its key material ({})",
                hex_id(&id),
                hex_id(&key.id)
            )));
        }
        Ok(key)
    }

    /// Go-compatible private key string. Keep it secret.
    pub fn to_private_string(&self) -> String {
        format!(
            "{PRIVATE_PREFIX}{}+{}+{}",
            self.name,
            hex_id(&self.id),
            encode_key_material(&self.key.to_bytes())
        )
    }

    /// The key name (for checkpoints: the log origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Public verifier key string: `name+<hex key ID>+base64(0x01 || pubkey)`.
    pub fn verifier_key(&self) -> String {
        format!(
            "{}+{}+{}",
            self.name,
            hex_id(&self.id),
            encode_key_material(self.key.verifying_key().as_bytes())
        )
    }

    /// The matching [`Verifier`].
    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` and returns the complete signed note.
    pub fn sign_note(&self, text: &str) -> Result<String, Error> {
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.id);
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            B64.encode(blob)
        ))
    }
}

/// An Ed25519 note-verification key, parsed from a verifier key string.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    id: [u8; 4],
    key: ed25519_dalek::VerifyingKey,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Verifier({self})")
    }
}

impl fmt::Display for Verifier {
    /// The verifier key string, as accepted by [`Verifier::from_str`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex_id(&self.id),
            encode_key_material(self.key.as_bytes())
        )
    }
}

impl FromStr for Verifier {
    type Err = Error;

    /// Parses `name+<hex key ID>+base64(0x01 || pubkey)` and checks that the
    /// key ID matches the name and key.
    fn from_str(s: &str) -> Result<Self, Error> {
        let mut parts = s.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(material)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Key("verifier key must be name+id+key".into()));
        };
        check_name(name)?;
        let id = parse_hex_id(id)?;
        let public = decode_key_material(material)?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&public)
            .map_err(|e: SignatureError| Error::Key(format!("invalid Ed25519 public key: {e}")))?;
        if key_id(name, &public) != id {
            return Err(Error::Key(format!(
                "verifier key ID {} does not match its name and key",
                hex_id(&id)
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            id,
            key,
        })
    }
}

impl Verifier {
    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID as 8 lowercase hex digits.
    pub fn key_id(&self) -> String {
        hex_id(&self.id)
    }
}

/// A note whose signatures have been checked.
pub(crate) struct OpenedNote<'a> {
    pub(crate) text: &'a str,
    /// Indexes into the verifier slice of every key that produced a valid
    /// signature, in signature order, without duplicates.
    pub(crate) signers: Vec<usize>,
}

/// Splits a signed note into text and signature block without verifying.
fn split_note(note: &str) -> Result<(&str, &str), Error> {
    if let Some(c) = note.chars().find(|&c| c < ' ' && c != '\n') {
        return Err(Error::Note(format!(
            "note contains control character {c:?}"
        )));
    }
    let split = note
        .rfind("\n\n")
        .ok_or_else(|| Error::Note("note has no blank line before its signatures".into()))?;
    let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(Error::Note(
            "note signature block must be non-empty and end in a newline".into(),
        ));
    }
    Ok((text, sigs))
}

/// The text of a signed note, *without* checking any signature. Only for
/// reading metadata (e.g. a checkpoint's origin) before verification.
pub(crate) fn unverified_text(note: &str) -> Result<&str, Error> {
    split_note(note).map(|(text, _)| text)
}

pub(crate) fn open_note_indexed<'a>(
    note: &'a str,
    verifiers: &[Verifier],
) -> Result<OpenedNote<'a>, Error> {
    let (text, sigs) = split_note(note)?;
    let mut signers = Vec::new();
    let mut unknown = Vec::new();
    for (count, line) in sigs.lines().enumerate() {
        if count >= MAX_SIGNATURES {
            return Err(Error::Note(format!(
                "note has more than {MAX_SIGNATURES} signatures"
            )));
        }
        let rest = line
            .strip_prefix(SIG_PREFIX)
            .ok_or_else(|| Error::Note(format!("malformed signature line {line:?}")))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or_else(|| Error::Note(format!("malformed signature line {line:?}")))?;
        check_name(name)
            .map_err(|_| Error::Note(format!("invalid key name in signature line {line:?}")))?;
        let blob = B64
            .decode(b64)
            .map_err(|_| Error::Note(format!("signature by {name} is not valid base64")))?;
        if blob.len() < 5 {
            return Err(Error::Note(format!("signature by {name} is too short")));
        }
        let id: [u8; 4] = [blob[0], blob[1], blob[2], blob[3]];
        let Some(vi) = verifiers.iter().position(|v| v.name == name && v.id == id) else {
            // Unknown keys are ignored by design: a note may carry cosigner or
            // witness signatures that this verifier does not care about.
            unknown.push(format!("{name}+{}", hex_id(&id)));
            continue;
        };
        if signers.contains(&vi) {
            continue;
        }
        let sig = ed25519_dalek::Signature::from_slice(&blob[4..]).map_err(|_| {
            Error::BadSignature(format!("signature by {} is malformed", verifiers[vi]))
        })?;
        // A bad signature from a *known* key is an error, not ignored: it
        // means the text was altered after signing.
        verifiers[vi]
            .key
            .verify_strict(text.as_bytes(), &sig)
            .map_err(|_| {
                Error::BadSignature(format!(
                    "signature by {}+{} does not match the note text",
                    name,
                    hex_id(&id)
                ))
            })?;
        signers.push(vi);
    }
    if signers.is_empty() {
        return Err(Error::NoTrustedSignature(if unknown.is_empty() {
            "note has no signatures".into()
        } else {
            format!(
                "note is signed only by unknown keys: {}",
                unknown.join(", ")
            )
        }));
    }
    Ok(OpenedNote { text, signers })
}

/// Verifies a signed note against a set of trusted keys and returns its text
/// and the names of the keys that signed it.
///
/// Signatures from keys not in `verifiers` are ignored; a signature from a
/// known key that does not verify is an error; a note with no valid signature
/// from a known key is an error.
pub fn open_note<'a>(
    note: &'a str,
    verifiers: &[Verifier],
) -> Result<(&'a str, Vec<String>), Error> {
    let opened = open_note_indexed(note, verifiers)?;
    let names = opened
        .signers
        .iter()
        .map(|&i| verifiers[i].name.clone())
        .collect();
    Ok((opened.text, names))
}
