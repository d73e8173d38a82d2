//! Test/bench/example helper that writes an export directory in the layout
//! `verify_export` reads. The library itself never writes files (the server
//! owns export production); this is the reference for that layout.

#![allow(dead_code)] // each includer uses a different subset

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use pliuz_audit::{sign_checkpoint, Checkpoint, Entry, MemoryTree, SigningKey};
use serde_json::json;

/// A deterministic sample entry: approvals are created, then decided, by a
/// mix of actors.
pub fn sample_entry(i: u64) -> Entry {
    let approval = i / 2;
    let secs = i % 86_400;
    let time = format!(
        "2025-03-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        1 + (i / 86_400) % 28,
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        i % 1000
    );
    let (kind, actor, data) = if i % 2 == 0 {
        (
            "approval.created",
            "agent:refund-bot".to_owned(),
            json!({"tool": "refund", "args": {"order": format!("ord_{approval}"), "amount_cents": 1999 + approval % 7}, "policy": "refunds"}),
        )
    } else {
        (
            "approval.decided",
            format!("user:reviewer{}@example.com", approval % 5),
            json!({"decision": if approval % 3 == 0 { "denied" } else { "approved" }, "comment": "looks fine"}),
        )
    };
    Entry {
        index: i,
        time,
        kind: kind.to_owned(),
        actor,
        approval_id: Some(format!("apr_{approval:08}")),
        data,
    }
}

/// What was written.
pub struct Written {
    /// Every stored hash of the exported log.
    pub tree: MemoryTree,
    /// `(size, signed checkpoint note)` in increasing size order.
    pub checkpoints: Vec<(u64, String)>,
    /// Total bytes of `entries.jsonl`.
    pub bytes: u64,
}

/// Writes `count` sample entries to `dir`, a checkpoint every `every`
/// entries (and none for the tail after the last multiple), signing each
/// checkpoint of size `s` with the last key in `keys` whose start is `<= s`
/// (key rotation).
pub fn write_export(
    dir: &Path,
    count: u64,
    every: u64,
    keys: &[(u64, &SigningKey)],
) -> std::io::Result<Written> {
    fs::create_dir_all(dir.join("checkpoints"))?;
    let mut out = BufWriter::with_capacity(1 << 20, fs::File::create(dir.join("entries.jsonl"))?);
    let mut tree = MemoryTree::new();
    let mut checkpoints = Vec::new();
    let mut bytes = 0u64;
    for i in 0..count {
        let line = sample_entry(i)
            .to_canonical_bytes()
            .map_err(std::io::Error::other)?;
        out.write_all(&line)?;
        out.write_all(b"\n")?;
        bytes += line.len() as u64 + 1;
        tree.push_entry(&line);
        let size = i + 1;
        if size % every == 0 {
            let key = keys
                .iter()
                .rev()
                .find(|(start, _)| *start <= size)
                .map(|(_, k)| *k)
                .ok_or_else(|| std::io::Error::other("no key for checkpoint"))?;
            let cp = Checkpoint {
                origin: key.name().to_owned(),
                size,
                root: tree.root(),
            };
            let note = sign_checkpoint(&cp, key).map_err(std::io::Error::other)?;
            fs::write(dir.join("checkpoints").join(size.to_string()), &note)?;
            checkpoints.push((size, note));
        }
    }
    out.flush()?;
    let key_lines: String = keys
        .iter()
        .map(|(_, k)| format!("{}\n", k.verifier_key()))
        .collect();
    fs::write(dir.join("keys.txt"), key_lines)?;
    Ok(Written {
        tree,
        checkpoints,
        bytes,
    })
}
