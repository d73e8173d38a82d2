//! Writes a sample export and a receipt for independent verification:
//!
//! ```text
//! cargo run -p pliuz-audit --example make_fixture -- DIR
//! ```
//!
//! Produces `DIR/export/{entries.jsonl,checkpoints/,keys.txt}` (two signing
//! keys: the key is rotated halfway), `DIR/receipt.json` for one approval,
//! and `DIR/trusted_keys.txt` (what a verifier would pin out of band).

#[path = "../tests/support/export_writer.rs"]
mod export_writer;

use std::path::PathBuf;

use pliuz_audit::{verify_export, verify_receipt, Entry, Receipt, SigningKey};

const ORIGIN: &str = "fixture.pliuz.dev/audit";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or("usage: make_fixture DIR")?;
    let export = dir.join("export");
    let old = SigningKey::generate(ORIGIN)?;
    let new = SigningKey::generate(ORIGIN)?;
    let written = export_writer::write_export(&export, 1000, 64, &[(0, &old), (500, &new)])?;

    // Receipt for approval 123 (entries 246 and 247) against the latest
    // checkpoint.
    let (size, note) = written.checkpoints.last().ok_or("no checkpoint written")?;
    let approval = "apr_00000123";
    let mut parts = Vec::new();
    for i in [246u64, 247] {
        let entry: Entry = export_writer::sample_entry(i);
        let bytes = entry.to_canonical_bytes()?;
        parts.push((i, bytes, written.tree.inclusion_proof(i, *size)?));
    }
    let receipt = Receipt::build(approval, note, *size, parts)?;
    std::fs::write(
        dir.join("receipt.json"),
        serde_json::to_string_pretty(&receipt)?,
    )?;
    std::fs::write(
        dir.join("trusted_keys.txt"),
        format!("{}\n{}\n", old.verifier_key(), new.verifier_key()),
    )?;

    // Self-check so a broken fixture fails here, not in the cross-check.
    let keys = [old.verifier(), new.verifier()];
    let report = verify_export(&export, &keys)?;
    verify_receipt(&receipt, &keys)?;
    println!(
        "wrote {}: {} entries, checkpoints {:?}, receipt for {approval}",
        dir.display(),
        report.entries,
        report.checkpoints
    );
    Ok(())
}
