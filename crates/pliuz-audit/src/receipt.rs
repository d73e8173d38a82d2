//! Self-contained, offline-verifiable proof of what happened to one approval.
//!
//! A receipt carries a signed checkpoint and, for each log entry of the
//! approval, the canonical entry text and its inclusion proof against that
//! checkpoint. Anyone holding the log's verifier key can check it without
//! talking to the server.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{open_checkpoint_with_signers, Checkpoint};
use crate::entry::Entry;
use crate::merkle::{leaf_hash, verify_inclusion, Hash};
use crate::note::Verifier;
use crate::Error;

/// Value of [`Receipt::format`].
pub const RECEIPT_FORMAT: &str = "pliuz-receipt/v1";

/// Receipt JSON document (`pliuz-receipt/v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// Always [`RECEIPT_FORMAT`].
    #[cfg_attr(feature = "utoipa", schema(pattern = "^pliuz-receipt/v1$"))]
    pub format: String,
    /// The approval the entries belong to.
    pub approval_id: String,
    /// Log origin (checkpoint origin and signing key name).
    pub origin: String,
    /// Size of the tree the proofs are against (equals the checkpoint size).
    pub tree_size: u64,
    /// The signed checkpoint note, exactly as served.
    pub checkpoint: String,
    /// The approval's entries in log order.
    pub entries: Vec<ReceiptEntry>,
}

/// One entry of a [`Receipt`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReceiptEntry {
    /// Leaf index.
    pub index: u64,
    /// Canonical entry JSON, exactly the bytes hashed as the leaf.
    pub entry: String,
    /// RFC 9162 inclusion proof (leaf to root), base64 hashes.
    pub inclusion_proof: Vec<String>,
}

/// What a verified receipt proves.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiptReport {
    /// Approval ID.
    pub approval_id: String,
    /// The verified checkpoint.
    pub checkpoint: Checkpoint,
    /// The verified entries, in receipt order.
    pub entries: Vec<Entry>,
    /// Verifier key strings that signed the checkpoint.
    pub signed_by: Vec<String>,
}

impl Receipt {
    /// Assembles a receipt on the server from the signed checkpoint note, its
    /// tree size and `(index, canonical entry bytes, inclusion proof)` for
    /// each entry of the approval.
    ///
    /// Everything except the signature is checked before returning, so the
    /// server cannot hand out a receipt that would fail verification for a
    /// structural reason (wrong size, stale proof, non-canonical entry).
    pub fn build(
        approval_id: &str,
        checkpoint_note: &str,
        tree_size: u64,
        entries_with_proofs: Vec<(u64, Vec<u8>, Vec<Hash>)>,
    ) -> Result<Self, Error> {
        let checkpoint = Checkpoint::parse_unverified_note(checkpoint_note)?;
        if checkpoint.size != tree_size {
            return Err(Error::Receipt(format!(
                "checkpoint size {} differs from tree size {tree_size}",
                checkpoint.size
            )));
        }
        let mut entries = Vec::with_capacity(entries_with_proofs.len());
        for (index, bytes, proof) in entries_with_proofs {
            check_entry(
                entries.last().map(|e: &ReceiptEntry| e.index),
                approval_id,
                &checkpoint,
                index,
                &bytes,
                &proof,
            )?;
            let entry = String::from_utf8(bytes)
                .map_err(|_| Error::Receipt(format!("entry {index} is not UTF-8")))?;
            entries.push(ReceiptEntry {
                index,
                entry,
                inclusion_proof: proof.iter().map(|h| B64.encode(h)).collect(),
            });
        }
        if entries.is_empty() {
            return Err(Error::Receipt("a receipt needs at least one entry".into()));
        }
        Ok(Self {
            format: RECEIPT_FORMAT.to_owned(),
            approval_id: approval_id.to_owned(),
            origin: checkpoint.origin,
            tree_size,
            checkpoint: checkpoint_note.to_owned(),
            entries,
        })
    }
}

/// Checks one entry against an (already trusted or to-be-trusted) checkpoint.
///
/// `prev` is the previous entry's index: receipt entries are in strictly
/// increasing log order, so an entry cannot be listed twice.
fn check_entry(
    prev: Option<u64>,
    approval_id: &str,
    checkpoint: &Checkpoint,
    index: u64,
    bytes: &[u8],
    proof: &[Hash],
) -> Result<Entry, Error> {
    if prev.is_some_and(|p| index <= p) {
        return Err(Error::Receipt(format!(
            "entry {index}: entries must be in increasing index order"
        )));
    }
    let entry =
        Entry::parse_canonical(bytes).map_err(|e| Error::Receipt(format!("entry {index}: {e}")))?;
    if entry.index != index {
        return Err(Error::Receipt(format!(
            "entry {index}: index field says {}",
            entry.index
        )));
    }
    if entry.approval_id.as_deref() != Some(approval_id) {
        return Err(Error::Receipt(format!(
            "entry {index}: belongs to approval {:?}, not {approval_id:?}",
            entry.approval_id
        )));
    }
    verify_inclusion(
        index,
        checkpoint.size,
        &leaf_hash(bytes),
        proof,
        &checkpoint.root,
    )
    .map_err(|e| Error::Receipt(format!("entry {index}: {e}")))?;
    Ok(entry)
}

/// Verifies a receipt: the checkpoint is signed by a trusted key for the
/// receipt's origin, and every entry is canonical, numbered as claimed,
/// belongs to the approval, and is included in the checkpoint's tree.
pub fn verify_receipt(receipt: &Receipt, verifiers: &[Verifier]) -> Result<ReceiptReport, Error> {
    if receipt.format != RECEIPT_FORMAT {
        return Err(Error::Receipt(format!(
            "unsupported receipt format {:?}",
            receipt.format
        )));
    }
    let (checkpoint, signed_by) = open_checkpoint_with_signers(&receipt.checkpoint, verifiers)?;
    if checkpoint.origin != receipt.origin {
        return Err(Error::Receipt(format!(
            "checkpoint origin {:?} differs from receipt origin {:?}",
            checkpoint.origin, receipt.origin
        )));
    }
    if checkpoint.size != receipt.tree_size {
        return Err(Error::Receipt(format!(
            "checkpoint size {} differs from receipt tree_size {}",
            checkpoint.size, receipt.tree_size
        )));
    }
    if receipt.entries.is_empty() {
        return Err(Error::Receipt("receipt has no entries".into()));
    }
    let mut entries = Vec::with_capacity(receipt.entries.len());
    for e in &receipt.entries {
        let proof = e
            .inclusion_proof
            .iter()
            .map(|p| {
                B64.decode(p)
                    .ok()
                    .and_then(|b| Hash::try_from(b).ok())
                    .ok_or_else(|| {
                        Error::Receipt(format!(
                            "entry {}: inclusion proof hash is not base64 of 32 bytes",
                            e.index
                        ))
                    })
            })
            .collect::<Result<Vec<Hash>, Error>>()?;
        let prev = entries.last().map(|x: &Entry| x.index);
        entries.push(check_entry(
            prev,
            &receipt.approval_id,
            &checkpoint,
            e.index,
            e.entry.as_bytes(),
            &proof,
        )?);
    }
    Ok(ReceiptReport {
        approval_id: receipt.approval_id.clone(),
        checkpoint,
        entries,
        signed_by,
    })
}
