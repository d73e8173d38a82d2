//! Offline verification of a log export directory.
//!
//! Layout (see the crate README):
//!
//! ```text
//! DIR/entries.jsonl          one canonical entry per line, log order, '\n'-terminated
//! DIR/checkpoints/<size>     signed checkpoint notes, file name = tree size
//! DIR/keys.txt               verifier keys, one per line (informational)
//! ```
//!
//! Verification streams `entries.jsonl` once, keeping only a compact Merkle
//! frontier (≤ 64 hashes), and compares the recomputed root with every
//! checkpoint when the stream reaches its size.
//!
//! # Why no consistency proofs between checkpoints
//!
//! Every checkpoint root is compared with the root recomputed from *the same*
//! entry sequence at that size. Two checkpoints that both match are therefore
//! roots of prefixes of one sequence, which is exactly what an RFC 9162
//! consistency proof would establish; a proof would add nothing but cost.
//!
//! # Localising tampering
//!
//! * Line not canonical, or `index` field ≠ line position (deleted, inserted,
//!   reordered or duplicated lines): exact, the first such line.
//! * Checkpoint larger than the number of lines (truncation): exact, the first
//!   missing index.
//! * Checkpoint with a bad/unknown signature or malformed body: the checkpoint.
//! * An edit that keeps the line canonical and correctly numbered (e.g. one
//!   character inside a string): only the leaf hash changes, so the first
//!   checkpoint whose root no longer matches says the edit lies between the
//!   previous matching checkpoint and it. The error's `index` is the start of
//!   that range; the message says it is a range. Exact localisation needs
//!   either a checkpoint per entry or trusted leaf hashes (a receipt or the
//!   live log's inclusion proofs) for the entries in the range.

use std::fmt;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::checkpoint::{open_checkpoint_with_signers, Checkpoint};
use crate::merkle::{leaf_hash, Frontier};
use crate::note::Verifier;
use crate::scan::canonical_entry_index;

/// Upper bound on one entry line; protects the verifier from a corrupted or
/// hostile file without a newline. The server never writes a longer entry
/// (see [`crate::limits`]).
const MAX_LINE: u64 = crate::limits::MAX_ENTRY_BYTES as u64;
/// Upper bound on one checkpoint note file.
const MAX_CHECKPOINT: u64 = 64 << 10;

/// What kind of problem [`verify_export`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyErrorKind {
    /// A file could not be read.
    Io,
    /// The directory does not follow the export layout (missing file, stray
    /// file name, no checkpoints).
    Layout,
    /// A checkpoint is malformed, has a bad signature, is not signed by a
    /// trusted key, or names another origin.
    Checkpoint,
    /// An entry line is not exactly canonical JSON of a valid entry.
    NotCanonical,
    /// An entry's `index` field differs from its line position.
    IndexMismatch,
    /// A checkpoint's root differs from the root of the exported entries.
    /// [`VerifyError::index`] is the *start of the range* that holds the
    /// altered entry.
    RootMismatch,
    /// A checkpoint covers more entries than the export holds.
    Truncated,
}

/// Why an export failed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    /// First bad entry index when known (exactly, or for
    /// [`VerifyErrorKind::RootMismatch`] the first index of the range that
    /// contains it).
    pub index: Option<u64>,
    /// The checkpoint (by tree size) the problem was found through, if any.
    pub checkpoint: Option<u64>,
    /// Classification.
    pub kind: VerifyErrorKind,
    /// Human-readable explanation, starting with `entry N:` or
    /// `checkpoint N:` where applicable.
    pub message: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for VerifyError {}

impl VerifyError {
    fn new(
        kind: VerifyErrorKind,
        index: Option<u64>,
        checkpoint: Option<u64>,
        message: String,
    ) -> Self {
        Self {
            index,
            checkpoint,
            kind,
            message,
        }
    }
    fn entry(kind: VerifyErrorKind, index: u64, why: impl fmt::Display) -> Self {
        Self::new(kind, Some(index), None, format!("entry {index}: {why}"))
    }
    fn checkpoint(size: u64, why: impl fmt::Display) -> Self {
        Self::new(
            VerifyErrorKind::Checkpoint,
            None,
            Some(size),
            format!("checkpoint {size}: {why}"),
        )
    }
    fn io(path: &Path, e: impl fmt::Display) -> Self {
        Self::new(
            VerifyErrorKind::Io,
            None,
            None,
            format!("{}: {e}", path.display()),
        )
    }
    fn layout(message: String) -> Self {
        Self::new(VerifyErrorKind::Layout, None, None, message)
    }
}

/// Summary of a successfully verified export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// Log origin.
    pub origin: String,
    /// Number of entries in `entries.jsonl`.
    pub entries: u64,
    /// Verified checkpoint sizes, ascending.
    pub checkpoints: Vec<u64>,
    /// Verifier key strings that signed at least one checkpoint.
    pub signed_by: Vec<String>,
    /// Entries after the largest checkpoint: well-formed but not covered by
    /// any signature yet.
    pub unsigned_tail: u64,
}

/// Reads `DIR/keys.txt` (one verifier key per line; blank lines and lines
/// starting with `#` ignored).
///
/// The file only says which keys the exporter claims to have used. A
/// verifier must obtain the keys it trusts independently (e.g. from the
/// server's configuration or documentation) and pass those to
/// [`verify_export`]; trusting the export's own keys proves only internal
/// consistency.
pub fn read_export_keys(dir: &Path) -> Result<Vec<Verifier>, VerifyError> {
    let path = dir.join("keys.txt");
    let text = fs::read_to_string(&path).map_err(|e| VerifyError::io(&path, e))?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.parse::<Verifier>()
                .map_err(|e| VerifyError::layout(format!("{}: {e}", path.display())))
        })
        .collect()
}

/// Where problems go: the first one stops a quick check; a full report
/// collects them all and carries on.
struct Problems {
    all: bool,
    found: Vec<VerifyError>,
}

impl Problems {
    /// Records a problem; `Err` when verification should stop here.
    fn push(&mut self, e: VerifyError) -> Result<(), ()> {
        self.found.push(e);
        if self.all {
            Ok(())
        } else {
            Err(())
        }
    }
}

/// Reads, verifies and sorts every checkpoint under `DIR/checkpoints`. In a
/// full report a bad checkpoint is recorded and left out.
fn load_checkpoints(
    dir: &Path,
    verifiers: &[Verifier],
    signed_by: &mut Vec<String>,
    problems: &mut Problems,
) -> Result<Vec<Checkpoint>, ()> {
    let cp_dir = dir.join("checkpoints");
    let listing = match fs::read_dir(&cp_dir) {
        Ok(l) => l,
        Err(e) => {
            problems.found.push(VerifyError::io(&cp_dir, e));
            return Err(());
        }
    };
    let mut files = Vec::new();
    for item in listing {
        let item = match item {
            Ok(i) => i,
            Err(e) => {
                problems.found.push(VerifyError::io(&cp_dir, e));
                return Err(());
            }
        };
        let name = item.file_name();
        let size = name
            .to_str()
            .filter(|s| {
                !s.is_empty()
                    && s.bytes().all(|b| b.is_ascii_digit())
                    && (s.len() == 1 || !s.starts_with('0'))
            })
            .and_then(|s| s.parse::<u64>().ok());
        match size {
            Some(size) => files.push((size, item.path())),
            None => problems.push(VerifyError::layout(format!(
                "{}: checkpoint file names must be tree sizes in decimal",
                item.path().display()
            )))?,
        }
    }
    if files.is_empty() {
        problems.found.push(VerifyError::layout(format!(
            "{}: no checkpoints, so nothing in the export is signed",
            cp_dir.display()
        )));
        return Err(());
    }
    files.sort_unstable_by_key(|(size, _)| *size);

    let mut checkpoints: Vec<Checkpoint> = Vec::with_capacity(files.len());
    for (size, path) in files {
        let mut note = String::new();
        if let Err(e) =
            File::open(&path).and_then(|f| f.take(MAX_CHECKPOINT).read_to_string(&mut note))
        {
            problems.push(VerifyError::io(&path, e))?;
            continue;
        }
        let (cp, keys) = match open_checkpoint_with_signers(&note, verifiers) {
            Ok(opened) => opened,
            Err(e) => {
                problems.push(VerifyError::checkpoint(size, e))?;
                continue;
            }
        };
        if cp.size != size {
            problems.push(VerifyError::checkpoint(
                size,
                format!(
                    "file name says size {size} but the signed body says {}",
                    cp.size
                ),
            ))?;
            continue;
        }
        if let Some(first) = checkpoints.first() {
            if first.origin != cp.origin {
                problems.push(VerifyError::checkpoint(
                    size,
                    format!(
                        "origin {:?} differs from {:?} of the other checkpoints",
                        cp.origin, first.origin
                    ),
                ))?;
                continue;
            }
        }
        for k in keys {
            if !signed_by.contains(&k) {
                signed_by.push(k);
            }
        }
        checkpoints.push(cp);
    }
    Ok(checkpoints)
}

/// Verifies an export directory against trusted verifier keys (any of them
/// may have signed any checkpoint, to allow key rotation).
///
/// Returns the first problem in log order; see the module documentation for
/// how precisely each kind of tampering is located.
pub fn verify_export(dir: &Path, verifiers: &[Verifier]) -> Result<ExportReport, VerifyError> {
    verify(dir, verifiers, false).map_err(|mut all| all.swap_remove(0))
}

/// Like [`verify_export`], but does not stop at the first problem: returns
/// every one found, in log order (a non-empty list). After a bad line the
/// line's bytes still go into the tree, so checkpoints after it still
/// verify when the line is what the log holds (e.g. an entry another
/// verifier could not parse) and do not when it was altered.
pub fn verify_export_all(
    dir: &Path,
    verifiers: &[Verifier],
) -> Result<ExportReport, Vec<VerifyError>> {
    verify(dir, verifiers, true)
}

fn verify(dir: &Path, verifiers: &[Verifier], all: bool) -> Result<ExportReport, Vec<VerifyError>> {
    let mut problems = Problems {
        all,
        found: Vec::new(),
    };
    let report = verify_into(dir, verifiers, &mut problems);
    match report {
        Ok(r) if problems.found.is_empty() => Ok(r),
        _ => Err(problems.found),
    }
}

/// Hashes the rest of an over-long line (already `line` read) as a leaf,
/// consuming it up to and including its newline.
fn leaf_of_long_line(reader: &mut impl BufRead, line: &[u8]) -> std::io::Result<crate::Hash> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update([0u8]);
    h.update(line);
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(n) => {
                h.update(&buf[..n]);
                reader.consume(n + 1);
                break;
            }
            None => {
                let n = buf.len();
                h.update(buf);
                reader.consume(n);
            }
        }
    }
    Ok(h.finalize().into())
}

fn verify_into(
    dir: &Path,
    verifiers: &[Verifier],
    problems: &mut Problems,
) -> Result<ExportReport, ()> {
    let mut signed_by = Vec::new();
    let checkpoints = load_checkpoints(dir, verifiers, &mut signed_by, problems)?;
    let Some(origin) = checkpoints.first().map(|c| c.origin.clone()) else {
        problems.found.push(VerifyError::layout(format!(
            "{}: no checkpoint verifies, so nothing in the export is signed",
            dir.join("checkpoints").display()
        )));
        return Err(());
    };

    let path = dir.join("entries.jsonl");
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            problems.found.push(VerifyError::io(&path, e));
            return Err(());
        }
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut frontier = Frontier::default();
    let mut line = Vec::with_capacity(4096);
    let mut next_cp = 0usize;
    // Size of the last checkpoint whose root matched: entries before it are
    // known good, which bounds where an undetected-by-line edit can be.
    let mut good_prefix = 0u64;
    // In a full report, a run of lines shifted by the same deleted or
    // inserted lines is reported once, at its start.
    let mut shift: i128 = 0;

    loop {
        // A checkpoint at the current size is checked before reading further,
        // so the earliest mismatching checkpoint is the one reported.
        while let Some(cp) = checkpoints
            .get(next_cp)
            .filter(|cp| cp.size == frontier.size())
        {
            next_cp += 1;
            if frontier.root() != cp.root {
                problems.push(VerifyError::new(
                    VerifyErrorKind::RootMismatch,
                    Some(good_prefix),
                    Some(cp.size),
                    format!(
                        "checkpoint {size}: root hash does not match entries 0..{size}; every line is \
                         canonical and correctly numbered, so the content of an entry in \
                         {good_prefix}..{size} was altered (entries before {good_prefix} match \
                         {prev}); the first differing entry is at or after {good_prefix} — find it by \
                         checking those entries against a receipt or the live log's inclusion proofs",
                        size = cp.size,
                        prev = if good_prefix == 0 {
                            "trivially".to_owned()
                        } else {
                            format!("signed checkpoint {good_prefix}")
                        },
                    ),
                ))?;
                continue;
            }
            good_prefix = cp.size;
        }

        let index = frontier.size();
        line.clear();
        let n = match (&mut reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut line)
        {
            Ok(n) => n,
            Err(e) => {
                problems.found.push(VerifyError::io(&path, e));
                return Err(());
            }
        };
        if n == 0 {
            break;
        }
        let body = match line.strip_suffix(b"\n") {
            Some(body) => body,
            None if n as u64 > MAX_LINE => {
                problems.push(VerifyError::entry(
                    VerifyErrorKind::NotCanonical,
                    index,
                    format!("line longer than {MAX_LINE} bytes"),
                ))?;
                match leaf_of_long_line(&mut reader, &line) {
                    Ok(leaf) => frontier.push(leaf),
                    Err(e) => {
                        problems.found.push(VerifyError::io(&path, e));
                        return Err(());
                    }
                }
                continue;
            }
            None => &line[..], // last line without a final newline
        };
        match canonical_entry_index(body) {
            Err(e) => problems.push(VerifyError::entry(VerifyErrorKind::NotCanonical, index, e))?,
            Ok(claimed) if claimed != index => {
                let now = i128::from(claimed) - i128::from(index);
                if now != shift {
                    shift = now;
                    problems.push(VerifyError::entry(
                        VerifyErrorKind::IndexMismatch,
                        index,
                        format!(
                            "index field says {} (lines deleted, inserted or reordered before or at this line)",
                            claimed
                        ),
                    ))?;
                }
            }
            Ok(_) => shift = 0,
        }
        frontier.push(leaf_hash(body));
    }

    let count = frontier.size();
    if let Some(cp) = checkpoints.get(next_cp) {
        problems.push(VerifyError::new(
            VerifyErrorKind::Truncated,
            Some(count),
            Some(cp.size),
            format!(
                "entry {count}: missing — checkpoint {} covers {} entries but the export ends after {count} (truncated)",
                cp.size, cp.size
            ),
        ))?;
    }
    let last = checkpoints.last().map_or(0, |c| c.size);
    Ok(ExportReport {
        origin,
        entries: count,
        checkpoints: checkpoints.iter().map(|c| c.size).collect(),
        signed_by,
        unsigned_tail: count.saturating_sub(last),
    })
}
