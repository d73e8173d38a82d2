//! Export verification: a clean export passes, and every kind of tampering is
//! reported at the first bad entry (or checkpoint).

#[path = "support/export_writer.rs"]
mod export_writer;

use std::fs;
use std::path::Path;

use export_writer::write_export;
use pliuz_audit::*;

const ORIGIN: &str = "pliuz.test/audit";
const COUNT: u64 = 310; // checkpoints at 50, 100, ..., 300; 10 unsigned entries

fn setup() -> (tempfile::TempDir, SigningKey) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::generate(ORIGIN).expect("key");
    write_export(dir.path(), COUNT, 50, &[(0, &key)]).expect("write export");
    (dir, key)
}

fn lines(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("entries.jsonl"))
        .expect("read")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(dir: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(dir.join("entries.jsonl"), text).expect("write");
}

/// Edits the export's lines with `edit`; returns why it no longer verifies.
fn edited(dir: &Path, key: &SigningKey, edit: impl FnOnce(&mut Vec<String>)) -> VerifyError {
    let mut l = lines(dir);
    edit(&mut l);
    write_lines(dir, &l);
    verify_err(dir, key)
}

/// [`edited`] with line `n`'s first `from` replaced by `to`.
fn line_edited(dir: &Path, key: &SigningKey, n: usize, from: &str, to: &str) -> VerifyError {
    edited(dir, key, |l| l[n] = l[n].replacen(from, to, 1))
}

fn verify_err(dir: &Path, key: &SigningKey) -> VerifyError {
    match verify_export(dir, &[key.verifier()]) {
        Ok(report) => panic!("tampered export verified: {report:?}"),
        Err(e) => e,
    }
}

#[test]
fn clean_export_verifies() {
    let (dir, key) = setup();
    let report = verify_export(dir.path(), &[key.verifier()]).expect("verifies");
    assert_eq!(report.origin, ORIGIN);
    assert_eq!(report.entries, COUNT);
    assert_eq!(report.checkpoints, vec![50, 100, 150, 200, 250, 300]);
    assert_eq!(report.unsigned_tail, 10);
    assert_eq!(report.signed_by, vec![key.verifier_key()]);
    // keys.txt lists the key; verifying with it works (but see its docs).
    let listed = read_export_keys(dir.path()).expect("keys");
    assert_eq!(listed, vec![key.verifier()]);
}

#[test]
fn missing_final_newline_is_accepted() {
    let (dir, key) = setup();
    let text = fs::read_to_string(dir.path().join("entries.jsonl")).expect("read");
    fs::write(
        dir.path().join("entries.jsonl"),
        text.trim_end_matches('\n'),
    )
    .expect("write");
    verify_export(dir.path(), &[key.verifier()]).expect("verifies");
}

#[test]
fn byte_change_inside_a_value_is_localised_to_the_checkpoint_range() {
    let (dir, key) = setup();
    let mut l = lines(dir.path());
    // Still canonical and correctly numbered: only the leaf hash changes.
    assert!(l[120].contains("\"approved\"") || l[120].contains("ord_"));
    l[120] = l[120].replacen("ord_60", "ord_66", 1);
    assert_ne!(lines(dir.path())[120], l[120]);
    write_lines(dir.path(), &l);
    let e = verify_err(dir.path(), &key);
    assert_eq!(e.kind, VerifyErrorKind::RootMismatch);
    assert_eq!(e.index, Some(100), "{e}");
    assert_eq!(e.checkpoint, Some(150));
    let msg = e.to_string();
    assert!(
        msg.starts_with("checkpoint 150: root hash does not match entries 0..150"),
        "{msg}"
    );
    assert!(msg.contains("100..150"), "{msg}");
}

#[test]
fn byte_change_before_first_checkpoint_names_range_from_zero() {
    let (dir, key) = setup();
    let e = line_edited(dir.path(), &key, 7, "looks fine", "looks fint");
    assert_eq!(
        (e.kind, e.index, e.checkpoint),
        (VerifyErrorKind::RootMismatch, Some(0), Some(50))
    );
}

/// A line edited, deleted, swapped or inserted: named at the first bad
/// entry, with the kind of error and what its message starts with.
#[test]
fn line_edits_are_exact() {
    type Edit = fn(&mut Vec<String>);
    let cases: [(&str, Edit, VerifyErrorKind, u64, &str); 4] = [
        (
            "non-canonical edit",
            |l| l[41] = l[41].replacen("\"actor\":", "\"actor\": ", 1),
            VerifyErrorKind::NotCanonical,
            41,
            "entry 41: not canonical JSON",
        ),
        (
            "deleted entry",
            |l| {
                l.remove(41);
            },
            VerifyErrorKind::IndexMismatch,
            41,
            "entry 41: index field says 42",
        ),
        (
            "reordered entries",
            |l| l.swap(17, 18),
            VerifyErrorKind::IndexMismatch,
            17,
            "entry 17: index field says 18",
        ),
        (
            "inserted entry",
            |l| l.insert(233, l[200].clone()),
            VerifyErrorKind::IndexMismatch,
            233,
            "entry 233: ",
        ),
    ];
    for (case, edit, kind, index, says) in cases {
        let (dir, key) = setup();
        let e = edited(dir.path(), &key, edit);
        assert_eq!((e.kind, e.index), (kind, Some(index)), "{case}: {e}");
        assert!(e.to_string().starts_with(says), "{case}: {e}");
    }
}

#[test]
fn truncation_is_exact() {
    let (dir, key) = setup();
    let l = lines(dir.path());
    write_lines(dir.path(), &l[..260]);
    let e = verify_err(dir.path(), &key);
    assert_eq!(
        (e.kind, e.index, e.checkpoint),
        (VerifyErrorKind::Truncated, Some(260), Some(300))
    );
    assert!(e.to_string().starts_with("entry 260: missing"), "{e}");

    // Truncating everything.
    fs::write(dir.path().join("entries.jsonl"), "").expect("write");
    let e = verify_err(dir.path(), &key);
    assert_eq!((e.kind, e.index), (VerifyErrorKind::Truncated, Some(0)));
}

#[test]
fn replaced_checkpoint_is_named() {
    let (dir, key) = setup();
    let path = dir.path().join("checkpoints/100");
    let note = fs::read_to_string(&path).expect("read");
    // Swap in the root of checkpoint 50: a well-formed but unsigned claim.
    let other = fs::read_to_string(dir.path().join("checkpoints/50")).expect("read");
    let root50 = other.lines().nth(2).expect("root line");
    let root100 = note.lines().nth(2).expect("root line").to_owned();
    fs::write(&path, note.replacen(&root100, root50, 1)).expect("write");
    let e = verify_err(dir.path(), &key);
    assert_eq!(
        (e.kind, e.index, e.checkpoint),
        (VerifyErrorKind::Checkpoint, None, Some(100))
    );
    assert!(
        e.to_string().starts_with("checkpoint 100: bad signature"),
        "{e}"
    );
}

#[test]
fn checkpoint_signed_by_other_key_is_named() {
    let (dir, key) = setup();
    // Same origin name, different key: what an attacker who rewrote the log
    // would have to do.
    let attacker = SigningKey::generate(ORIGIN).expect("key");
    let path = dir.path().join("checkpoints/150");
    let cp = Checkpoint::parse_unverified_note(&fs::read_to_string(&path).expect("read"))
        .expect("parse");
    fs::write(&path, sign_checkpoint(&cp, &attacker).expect("sign")).expect("write");
    let e = verify_err(dir.path(), &key);
    assert_eq!(
        (e.kind, e.checkpoint),
        (VerifyErrorKind::Checkpoint, Some(150))
    );
    let msg = e.to_string();
    assert!(msg.contains("unknown keys"), "{msg}");
    assert!(msg.contains(&attacker.verifier().key_id()), "{msg}");
}

#[test]
fn renamed_or_stray_checkpoint_files_are_rejected() {
    let (dir, key) = setup();
    let cps = dir.path().join("checkpoints");
    fs::rename(cps.join("100"), cps.join("99")).expect("rename");
    let e = verify_err(dir.path(), &key);
    assert_eq!(
        (e.kind, e.checkpoint),
        (VerifyErrorKind::Checkpoint, Some(99))
    );
    assert!(e.to_string().contains("body says 100"), "{e}");

    fs::rename(cps.join("99"), cps.join("0100")).expect("rename");
    assert_eq!(verify_err(dir.path(), &key).kind, VerifyErrorKind::Layout);

    fs::remove_dir_all(&cps).expect("rm");
    fs::create_dir(&cps).expect("mkdir");
    let e = verify_err(dir.path(), &key);
    assert_eq!(e.kind, VerifyErrorKind::Layout);
    assert!(e.to_string().contains("no checkpoints"), "{e}");
}

#[test]
fn key_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = SigningKey::generate(ORIGIN).expect("key");
    let new = SigningKey::generate(ORIGIN).expect("key");
    // Checkpoints up to 150 signed by the old key, later ones by the new.
    write_export(dir.path(), 300, 50, &[(0, &old), (151, &new)]).expect("write");

    let report = verify_export(dir.path(), &[old.verifier(), new.verifier()]).expect("both keys");
    assert_eq!(
        report.signed_by,
        vec![old.verifier_key(), new.verifier_key()]
    );
    assert_eq!(read_export_keys(dir.path()).expect("keys").len(), 2);

    let e =
        verify_export(dir.path(), &[new.verifier()]).expect_err("old checkpoints need the old key");
    assert_eq!(e.checkpoint, Some(50));
    let e =
        verify_export(dir.path(), &[old.verifier()]).expect_err("new checkpoints need the new key");
    assert_eq!(e.checkpoint, Some(200));
}

#[test]
fn missing_files_are_io_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::generate(ORIGIN).expect("key");
    let e = verify_export(dir.path(), &[key.verifier()]).expect_err("empty dir");
    assert_eq!(e.kind, VerifyErrorKind::Io);
    write_export(dir.path(), 10, 5, &[(0, &key)]).expect("write");
    fs::remove_file(dir.path().join("entries.jsonl")).expect("rm");
    assert_eq!(verify_err(dir.path(), &key).kind, VerifyErrorKind::Io);
}

#[test]
fn proofs_from_the_exported_tree_match_checkpoints() {
    // The writer's tree is what a server would hold; its proofs verify
    // against the exported checkpoints (receipts are built from these).
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::generate(ORIGIN).expect("key");
    let w = write_export(dir.path(), 120, 40, &[(0, &key)]).expect("write");
    let cps: Vec<Checkpoint> = w
        .checkpoints
        .iter()
        .map(|(_, n)| open_checkpoint(n, &[key.verifier()]).expect("open"))
        .collect();
    for pair in cps.windows(2) {
        let proof = w
            .tree
            .consistency_proof(pair[0].size, pair[1].size)
            .expect("proof");
        verify_consistency(
            pair[0].size,
            pair[1].size,
            &proof,
            &pair[0].root,
            &pair[1].root,
        )
        .expect("consistent");
    }
}

// Large exports: verification hashes aligned groups of 1,024 lines on
// several threads (a whole group as one subtree unless a checkpoint falls
// inside it). These make sure that a problem in the middle of such a group
// is still found, at the right index, and that a checkpoint inside a group
// is checked against the exact prefix.

/// 20,000 lines span twenty groups, nineteen whole and one partial, and
/// (with sixteen groups per batch on a machine of up to two cores) two
/// batches.
const LARGE: u64 = 20_000;

/// Writes a large export with checkpoints at every multiple of 8,192 (group
/// boundaries) and two extra ones inside groups (10,001 in 9,216..10,240 and
/// 17,000 in 16,384..17,408).
fn large_setup() -> (tempfile::TempDir, SigningKey) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::generate(ORIGIN).expect("key");
    let written = write_export(dir.path(), LARGE, 8192, &[(0, &key)]).expect("write export");
    for size in [10_001, 17_000] {
        let cp = Checkpoint {
            origin: ORIGIN.to_owned(),
            size,
            root: written.tree.root_at(size).expect("root"),
        };
        let note = sign_checkpoint(&cp, &key).expect("sign");
        fs::write(dir.path().join("checkpoints").join(size.to_string()), note).expect("write");
    }
    (dir, key)
}

#[test]
fn large_clean_export_verifies_with_checkpoints_on_and_inside_groups() {
    let (dir, key) = large_setup();
    let report = verify_export(dir.path(), &[key.verifier()]).expect("verifies");
    assert_eq!(report.entries, LARGE);
    assert_eq!(report.checkpoints, vec![8192, 10_001, 16_384, 17_000]);
    assert_eq!(report.unsigned_tail, LARGE - 17_000);
}

#[test]
fn non_canonical_line_in_the_middle_of_a_parallel_group_is_exact() {
    let (dir, key) = large_setup();
    // 6,001 is in the middle of the whole group 5,120..6,144.
    let e = line_edited(dir.path(), &key, 6001, "\"actor\":", "\"actor\": ");
    assert_eq!(
        (e.kind, e.index),
        (VerifyErrorKind::NotCanonical, Some(6001))
    );
    assert!(e.to_string().starts_with("entry 6001: "), "{e}");
}

#[test]
fn content_edit_in_the_middle_of_a_parallel_group_names_its_range() {
    for (line, range_start, checkpoint) in [
        // Whole group 4,096..5,120, caught by the checkpoint at 8,192.
        (5000, 0, 8192),
        // Whole group 8,192..9,216, before checkpoint 10,001.
        (9000, 8192, 10_001),
        // Group 9,216..10,240 holds checkpoint 10,001: leaf by leaf.
        (9500, 8192, 10_001),
        (11_000, 10_001, 16_384),
        // The second batch's first group, caught by the checkpoint inside it.
        (16_500, 16_384, 17_000),
    ] {
        let (dir, key) = large_setup();
        let mut l = lines(dir.path());
        let before = l[line].clone();
        l[line] = if before.contains("looks fine") {
            before.replacen("looks fine", "looks fint", 1)
        } else {
            before.replacen("refund-bot", "refund-bat", 1)
        };
        assert_ne!(before, l[line]);
        write_lines(dir.path(), &l);
        let e = verify_err(dir.path(), &key);
        assert_eq!(
            (e.kind, e.index, e.checkpoint),
            (
                VerifyErrorKind::RootMismatch,
                Some(range_start),
                Some(checkpoint)
            ),
            "edit at {line}: {e}"
        );
    }
}

#[test]
fn full_report_lists_problems_in_several_groups_in_log_order() {
    let (dir, key) = large_setup();
    let mut l = lines(dir.path());
    for i in [4095, 4096, 12_000] {
        l[i] = l[i].replacen("\"actor\":", "\"actor\": ", 1);
    }
    // Lines 14,000 and 14,001 swapped: two index mismatches at 14,000.
    l.swap(14_000, 14_001);
    write_lines(dir.path(), &l);
    let all = match verify_export_all(dir.path(), &[key.verifier()]) {
        Ok(report) => panic!("tampered export verified: {report:?}"),
        Err(all) => all,
    };
    // Altered lines also change the tree, so every later checkpoint fails
    // too (no checkpoint ever matched: each range starts at 0).
    let found: Vec<_> = all
        .iter()
        .map(|e| (e.kind, e.index, e.checkpoint))
        .collect();
    use VerifyErrorKind::*;
    assert_eq!(
        found,
        vec![
            (NotCanonical, Some(4095), None),
            (NotCanonical, Some(4096), None),
            (RootMismatch, Some(0), Some(8192)),
            (RootMismatch, Some(0), Some(10_001)),
            (NotCanonical, Some(12_000), None),
            (IndexMismatch, Some(14_000), None),
            (IndexMismatch, Some(14_001), None),
            (RootMismatch, Some(0), Some(16_384)),
            (RootMismatch, Some(0), Some(17_000)),
        ],
        "{all:?}"
    );
}

/// Writes `lines` (each followed by a newline unless it is the last and
/// `final_newline` is false) as an export whose checkpoint at every
/// `every` lines and at the end is the tree of exactly these lines.
fn export_of(
    lines: &[Vec<u8>],
    every: usize,
    final_newline: bool,
) -> (tempfile::TempDir, SigningKey) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::generate(ORIGIN).expect("key");
    fs::create_dir_all(dir.path().join("checkpoints")).expect("mkdir");
    let mut text = Vec::new();
    let mut tree = MemoryTree::new();
    for (i, line) in lines.iter().enumerate() {
        text.extend_from_slice(line);
        if final_newline || i + 1 < lines.len() {
            text.push(b'\n');
        }
        tree.push_entry(line);
        let size = i as u64 + 1;
        if (i + 1) % every == 0 || i + 1 == lines.len() {
            let cp = Checkpoint {
                origin: ORIGIN.to_owned(),
                size,
                root: tree.root(),
            };
            let note = sign_checkpoint(&cp, &key).expect("sign");
            fs::write(dir.path().join("checkpoints").join(size.to_string()), note).expect("write");
        }
    }
    fs::write(dir.path().join("entries.jsonl"), text).expect("write");
    (dir, key)
}

fn sample_lines(n: u64) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            export_writer::sample_entry(i)
                .to_canonical_bytes()
                .expect("canonical")
        })
        .collect()
}

/// A line over the entry limit is reported without being held in memory,
/// and its bytes still go into the tree: when the log really holds it,
/// every checkpoint verifies and the line is the only problem. Lengths
/// around the limit and well past it (read on while hashing), in the
/// middle and as the last line without a newline.
#[test]
fn over_long_lines_are_reported_and_hashed_as_they_are() {
    let max = pliuz_audit::limits::MAX_ENTRY_BYTES;
    for (at, len, final_newline) in [
        (3, max + 1, true),
        (5, max + (3 << 20) + 17, true),
        (9, max + (1 << 20), false),
    ] {
        let mut l = sample_lines(10);
        l[at] = vec![b'x'; len];
        let (dir, key) = export_of(&l, 4, final_newline);
        let all = match verify_export_all(dir.path(), &[key.verifier()]) {
            Ok(report) => panic!("an over-long line verified: {report:?}"),
            Err(all) => all,
        };
        let found: Vec<_> = all.iter().map(|e| (e.kind, e.index)).collect();
        assert_eq!(
            found,
            vec![(VerifyErrorKind::NotCanonical, Some(at as u64))],
            "line {at} of {len} bytes: {all:?}"
        );
        assert!(all[0].message.contains("longer than"), "{}", all[0].message);
    }
    // One byte less is an ordinary (non-canonical) line, not an over-long one.
    let mut l = sample_lines(10);
    l[4] = vec![b'x'; max];
    let (dir, key) = export_of(&l, 4, true);
    let e = verify_err(dir.path(), &key);
    assert_eq!((e.kind, e.index), (VerifyErrorKind::NotCanonical, Some(4)));
    assert!(!e.message.contains("longer than"), "{}", e.message);
}

/// Lines of very different lengths, so that batches end in the middle of
/// reads and groups: every line is still found exactly once.
#[test]
fn batches_split_anywhere_keep_every_line() {
    let mut l = sample_lines(40_000);
    for (i, line) in l.iter_mut().enumerate() {
        if i % 997 == 0 {
            // Valid JSON, canonical, but long: pads the entry's data.
            let mut e = export_writer::sample_entry(i as u64);
            e.data = serde_json::json!({ "pad": "p".repeat(200_000 + i) });
            *line = e.to_canonical_bytes().expect("canonical");
        }
    }
    let (dir, key) = export_of(&l, 5000, true);
    let report = verify_export(dir.path(), &[key.verifier()]).expect("verifies");
    assert_eq!(report.entries, 40_000);
    assert_eq!(report.checkpoints.len(), 8);
    // An edit in a line read across a batch boundary is still located.
    let mut l2 = l.clone();
    l2[33_333] = String::from_utf8(l2[33_333].clone())
        .expect("utf8")
        .replacen("\"actor\":", "\"actor\": ", 1)
        .into_bytes();
    let (dir, key) = export_of(&l2, 5000, true);
    let e = verify_err(dir.path(), &key);
    assert_eq!(
        (e.kind, e.index),
        (VerifyErrorKind::NotCanonical, Some(33_333))
    );
}
