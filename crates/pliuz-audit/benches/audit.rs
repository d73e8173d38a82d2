//! Plain benchmark (no harness): `cargo bench -p pliuz-audit`.
//!
//! Prints export verification throughput for 1,000,000 entries, proof
//! latency at that size, and in-memory append throughput. Single-threaded
//! throughout, so the figures are per core.

#[path = "../tests/support/export_writer.rs"]
mod export_writer;

use std::hint::black_box;
use std::time::Instant;

use pliuz_audit::{
    leaf_hash, verify_consistency, verify_export, verify_inclusion, MemoryTree, SigningKey,
};

const ENTRIES: u64 = 1_000_000;
const CHECKPOINT_EVERY: u64 = 10_000;
const PROOFS: u64 = 20_000;

/// CPU time of this process so far (user + system), seconds; 0 where
/// `/proc` is missing.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) in parentheses.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here;
    // the kernel counts them in USER_HZ, 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; nothing to parse.
    let dir = tempfile::tempdir()?;
    let key = SigningKey::generate("bench.pliuz/audit")?;

    let t = Instant::now();
    let written = export_writer::write_export(dir.path(), ENTRIES, CHECKPOINT_EVERY, &[(0, &key)])?;
    let write_s = t.elapsed().as_secs_f64();
    let mb = written.bytes as f64 / 1e6;
    println!(
        "export written: {ENTRIES} entries, {mb:.1} MB, {} checkpoints in {write_s:.2} s",
        written.checkpoints.len()
    );

    // Verification (first run warms the page cache; report the best).
    let runs = std::env::var("PLIUZ_BENCH_VERIFY_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut best = f64::MAX;
    let cpu0 = cpu_seconds();
    for _ in 0..runs {
        let t = Instant::now();
        let report = verify_export(dir.path(), &[key.verifier()])?;
        best = best.min(t.elapsed().as_secs_f64());
        assert_eq!(report.entries, ENTRIES);
    }
    println!(
        "verify_export: {best:.3} s for {ENTRIES} entries = {:.0} entries/s, {:.0} MB/s",
        ENTRIES as f64 / best,
        mb / best
    );
    let verify_cpu = (cpu_seconds() - cpu0) / f64::from(runs);
    // The baseline the target is stated against: one core hashing the same
    // bytes with nothing else to do.
    let bytes = std::fs::read(dir.path().join("entries.jsonl"))?;
    let mut sha = f64::MAX;
    let cpu0 = cpu_seconds();
    for _ in 0..3 {
        let t = Instant::now();
        black_box(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        sha = sha.min(t.elapsed().as_secs_f64());
    }
    let sha_cpu = (cpu_seconds() - cpu0) / 3.0;
    println!(
        "raw SHA-256 over the same bytes (one core): {:.0} MB/s; verify = {:.2}x of it",
        mb / sha,
        sha / best
    );
    // On a busy machine wall time says little; CPU time says how much work
    // verification does per byte compared with hashing it once.
    if verify_cpu > 0.0 && sha_cpu > 0.0 {
        println!(
            "CPU time: verify {verify_cpu:.2} s, SHA-256 {sha_cpu:.2} s ({:.2}x the work)",
            verify_cpu / sha_cpu
        );
    }

    // Proofs at 1M from the in-memory tree (what the server's plan/assemble
    // does, minus the database round trip).
    let tree: &MemoryTree = &written.tree;
    let size = tree.size();
    let root = tree.root();
    let mut idx = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        idx ^= idx << 13;
        idx ^= idx >> 7;
        idx ^= idx << 17;
        idx
    };

    let leaves: Vec<(u64, [u8; 32])> = (0..PROOFS)
        .map(|_| {
            let i = next() % size;
            let line = export_writer::sample_entry(i)
                .to_canonical_bytes()
                .map_err(|e| e.to_string())?;
            Ok((i, leaf_hash(&line)))
        })
        .collect::<Result<_, String>>()?;

    let t = Instant::now();
    let mut proofs = Vec::with_capacity(leaves.len());
    for &(i, _) in &leaves {
        proofs.push(tree.inclusion_proof(i, size)?);
    }
    let gen_us = t.elapsed().as_secs_f64() * 1e6 / PROOFS as f64;
    let t = Instant::now();
    for ((i, leaf), proof) in leaves.iter().zip(&proofs) {
        verify_inclusion(*i, size, leaf, proof, &root)?;
    }
    let ver_us = t.elapsed().as_secs_f64() * 1e6 / PROOFS as f64;
    println!(
        "inclusion proof at {size}: build {gen_us:.2} µs, verify {ver_us:.2} µs ({} hashes)",
        proofs[0].len()
    );

    let olds: Vec<u64> = (0..PROOFS).map(|_| 1 + next() % (size - 1)).collect();
    let old_roots: Vec<[u8; 32]> = olds
        .iter()
        .map(|&m| tree.root_at(m))
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    let mut cproofs = Vec::with_capacity(olds.len());
    for &m in &olds {
        cproofs.push(tree.consistency_proof(m, size)?);
    }
    let gen_us = t.elapsed().as_secs_f64() * 1e6 / PROOFS as f64;
    let t = Instant::now();
    for ((m, old_root), proof) in olds.iter().zip(&old_roots).zip(&cproofs) {
        verify_consistency(*m, size, proof, old_root, &root)?;
    }
    let ver_us = t.elapsed().as_secs_f64() * 1e6 / PROOFS as f64;
    println!("consistency proof to {size}: build {gen_us:.2} µs, verify {ver_us:.2} µs");

    // Append throughput (leaf hashing excluded: that is per-entry work the
    // verifier figure already includes).
    let hashes: Vec<[u8; 32]> = (0..ENTRIES).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let t = Instant::now();
    let mut fresh = MemoryTree::new();
    for h in &hashes {
        fresh.push_leaf_hash(*h);
    }
    black_box(fresh.root());
    let s = t.elapsed().as_secs_f64();
    println!(
        "MemoryTree append: {:.0} leaves/s ({:.3} s for {ENTRIES})",
        ENTRIES as f64 / s,
        s
    );

    let mut scratch = MemoryTree::new();
    let t = Instant::now();
    let mut stored = std::collections::HashMap::new();
    for (n, h) in hashes.iter().take(100_000).enumerate() {
        let n = n as u64;
        for (i, v) in pliuz_audit::append(n, *h, &stored)? {
            stored.insert(i, v);
        }
        scratch.push_leaf_hash(*h);
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "plan/assemble append via HashMap: {:.0} leaves/s",
        100_000.0 / s
    );
    Ok(())
}
