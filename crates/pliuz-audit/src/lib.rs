//! Tamper-evident audit log for Pliuz, built only from public formats so that
//! third parties can verify it with their own tools:
//!
//! * [`merkle`]: RFC 9162 Merkle tree hashing, inclusion and consistency
//!   proofs, with Go `sumdb/tlog` hash storage indexes and a plan/assemble API
//!   that never does I/O (the server's storage is async).
//! * [`note`]: C2SP signed notes with Ed25519 keys (Go `sumdb/note`
//!   compatible key and signature formats).
//! * [`checkpoint`]: C2SP tlog checkpoints (signed tree heads).
//! * [`entry`]: log entries and their RFC 8785 canonical JSON.
//! * [`receipt`]: self-contained, offline-verifiable receipts for one
//!   approval.
//! * [`export`]: streaming verification of a full log export directory.
//!
//! The crate is pure: no database and no network; the only I/O is reading an
//! export directory in [`verify_export`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checkpoint;
pub mod entry;
pub mod export;
pub mod limits;
pub mod merkle;
pub mod note;
pub mod receipt;
mod scan;

pub use checkpoint::{open_checkpoint, sign_checkpoint, Checkpoint};
pub use entry::{canonical_json, Entry};
pub use export::{
    read_export_keys, verify_export, verify_export_all, ExportReport, VerifyError, VerifyErrorKind,
};
pub use merkle::{
    append, append_plan, consistency_proof, consistency_proof_plan, empty_root, inclusion_proof,
    inclusion_proof_plan, leaf_hash, node_hash, stored_hash_index, tree_hash, tree_hash_plan,
    verify_consistency, verify_inclusion, Hash, HashReader, MemoryTree,
};
pub use note::{open_note, SigningKey, Verifier};
pub use receipt::{verify_receipt, Receipt, ReceiptEntry, ReceiptReport, RECEIPT_FORMAT};

/// Errors from building, parsing and verifying log artefacts. Parsers never
/// panic on input; everything malformed ends up here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A stored hash the operation needs was not supplied (the caller did not
    /// fetch everything the corresponding `*_plan` listed).
    #[error("stored hash {0} is missing")]
    MissingHash(u64),
    /// An argument is out of range (e.g. leaf index ≥ tree size).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A Merkle proof does not verify.
    #[error("invalid proof: {0}")]
    InvalidProof(String),
    /// A key string or key name is malformed.
    #[error("invalid key: {0}")]
    Key(String),
    /// A signed note is malformed.
    #[error("malformed note: {0}")]
    Note(String),
    /// A signature from a trusted key does not verify.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// No trusted key signed the note (or checkpoint).
    #[error("no trusted signature: {0}")]
    NoTrustedSignature(String),
    /// A checkpoint body is malformed.
    #[error("malformed checkpoint: {0}")]
    Checkpoint(String),
    /// An entry's fields are invalid.
    #[error("invalid entry: {0}")]
    Entry(String),
    /// Bytes are not exactly the canonical encoding of a valid entry.
    #[error("{0}")]
    NotCanonical(String),
    /// A receipt is malformed or does not verify.
    #[error("receipt: {0}")]
    Receipt(String),
}
