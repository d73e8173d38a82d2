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
use std::io::Read;
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
    /// Records a problem after which nothing more can be checked, even in a
    /// full report.
    fn stop<T>(&mut self, e: VerifyError) -> Result<T, ()> {
        self.found.push(e);
        Err(())
    }

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
    let listing = fs::read_dir(&cp_dir).or_else(|e| problems.stop(VerifyError::io(&cp_dir, e)))?;
    let mut files = Vec::new();
    for item in listing {
        let item = item.or_else(|e| problems.stop(VerifyError::io(&cp_dir, e)))?;
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
        return problems.stop(VerifyError::layout(format!(
            "{}: no checkpoints, so nothing in the export is signed",
            cp_dir.display()
        )));
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

fn verify_into(
    dir: &Path,
    verifiers: &[Verifier],
    problems: &mut Problems,
) -> Result<ExportReport, ()> {
    let mut signed_by = Vec::new();
    let checkpoints = load_checkpoints(dir, verifiers, &mut signed_by, problems)?;
    let Some(origin) = checkpoints.first().map(|c| c.origin.clone()) else {
        return problems.stop(VerifyError::layout(format!(
            "{}: no checkpoint verifies, so nothing in the export is signed",
            dir.join("checkpoints").display()
        )));
    };

    let path = dir.join("entries.jsonl");
    let file = File::open(&path).or_else(|e| problems.stop(VerifyError::io(&path, e)))?;
    let mut reader = Source {
        inner: file,
        carry: Vec::new(),
        eof: false,
    };
    let mut walk = Walk {
        checkpoints: &checkpoints,
        frontier: Frontier::default(),
        next_cp: 0,
        good_prefix: 0,
        shift: 0,
        last_problem: None,
    };
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let groups = (BATCH_GROUPS_PER_CORE * workers).max(MIN_BATCH_GROUPS);
    let sizes: Vec<u64> = checkpoints.iter().map(|c| c.size).collect();
    // Two batches: the next one is read while the current one is hashed.
    let mut current = Batch::default();
    let mut next = Batch::default();
    let mut start = 0u64;
    let mut read = current.read(&mut reader, start, groups);
    loop {
        let next_start = start + current.lines.len() as u64;
        let more = matches!(read, Ok(true));
        let (results, next_read) = hash_batch(start, &current, workers, &sizes, || {
            more.then(|| next.read(&mut reader, next_start, groups))
        });
        for result in results {
            walk.group(result, problems)?;
        }
        match read {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return problems.stop(VerifyError::io(&path, e)),
        }
        read = next_read.unwrap_or(Ok(false));
        std::mem::swap(&mut current, &mut next);
        start = next_start;
    }
    walk.checkpoints_at_size(problems)?;

    let count = walk.frontier.size();
    if let Some(cp) = checkpoints.get(walk.next_cp) {
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

// Verification runs in batches. The calling thread reads a batch's lines;
// worker threads then hash and check them in parallel, one *group* at a
// time, while the calling thread reads the next batch and then joins them;
// it finally walks the results in log order, so problems are reported
// exactly as a line-by-line pass would report them.
//
// A group is the part of a batch that falls into one aligned window of
// `GROUP` leaves. A whole window is a perfect subtree of the log's Merkle
// tree, so its worker also computes the subtree's root and the interior
// hashing runs in parallel too; the walk appends that root in one step
// unless a checkpoint falls inside the window (then it needs the leaves).

/// log2 of the number of lines in a group: small groups keep every thread
/// busy to the end of a batch (threads take the next group as they go).
const GROUP_LEVEL: u32 = 10;
const GROUP: u64 = 1 << GROUP_LEVEL;
/// A batch holds at most this many groups per core (at least
/// `MIN_BATCH_GROUPS`) and stops reading new lines once its buffer holds
/// `BATCH_BYTES_PER_GROUP` bytes per group: enough work for every core,
/// small enough to stay in the caches between reading and hashing, bounded
/// memory (plus at most one line of `MAX_LINE`).
const BATCH_GROUPS_PER_CORE: usize = 8;
const MIN_BATCH_GROUPS: usize = 16;
const BATCH_BYTES_PER_GROUP: usize = 512 << 10;

/// One line of a batch.
enum Line {
    /// Where the line's body (without its newline) is in the batch buffer.
    Body(std::ops::Range<usize>),
    /// A line longer than `MAX_LINE`: hashed while reading, never buffered.
    TooLong(crate::Hash),
}

#[derive(Default)]
struct Batch {
    buf: Vec<u8>,
    lines: Vec<Line>,
}

/// Bytes read per `read` call, straight into a batch's buffer.
const READ_CHUNK: u64 = 256 << 10;

/// The entries file, read in large chunks directly into the batches'
/// buffers (no intermediate buffer, no call per line); lines are found with
/// a vectorised search.
struct Source<R> {
    inner: R,
    /// Bytes read past the last line of the previous batch.
    carry: Vec<u8>,
    eof: bool,
}

impl<R: Read> Source<R> {
    /// Appends up to `READ_CHUNK` bytes to `buf`; `Ok(0)` at the end of the
    /// file. On an error the bytes read before it stay in `buf`.
    fn fill(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        let before = buf.len();
        buf.reserve(READ_CHUNK as usize);
        // `read_to_end` reads into the spare capacity without zeroing it.
        let read = self.inner.by_ref().take(READ_CHUNK).read_to_end(buf);
        let n = buf.len() - before;
        read?;
        if n == 0 {
            self.eof = true;
        }
        Ok(n)
    }

    /// Hashes a line longer than `MAX_LINE` as a leaf without buffering it:
    /// `head` is its start (no newline in it); reads on to its newline, which
    /// is consumed, or to the end of the file. What was read after the
    /// newline is appended to `rest`.
    fn long_line(&mut self, head: &[u8], rest: &mut Vec<u8>) -> std::io::Result<crate::Hash> {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update([0u8]);
        h.update(head);
        let mut chunk = Vec::new();
        loop {
            chunk.clear();
            if self.fill(&mut chunk)? == 0 {
                break;
            }
            if let Some(n) = memchr::memchr(b'\n', &chunk) {
                h.update(&chunk[..n]);
                rest.extend_from_slice(&chunk[n + 1..]);
                break;
            }
            h.update(&chunk);
        }
        Ok(h.finalize().into())
    }
}

impl Batch {
    /// Reads the next lines, the first being entry `start`. `Ok(false)` at
    /// the end of the file; on a read error the lines read before it are
    /// kept, so they are still checked before the error is reported.
    fn read<R: Read>(
        &mut self,
        src: &mut Source<R>,
        start: u64,
        groups: usize,
    ) -> std::io::Result<bool> {
        let batch_bytes = groups * BATCH_BYTES_PER_GROUP;
        self.buf.clear();
        self.lines.clear();
        self.buf.extend_from_slice(&src.carry);
        src.carry.clear();
        // End the batch on a window boundary so later batches start aligned.
        let max_lines = (groups as u64 * GROUP - start % GROUP) as usize;
        // Where the line being looked at starts, and how much of it is
        // known to hold no newline.
        let mut line = 0usize;
        let mut searched = 0usize;
        loop {
            while self.lines.len() < max_lines && line < batch_bytes {
                let Some(n) = memchr::memchr(b'\n', &self.buf[line + searched..]) else {
                    searched = self.buf.len() - line;
                    break;
                };
                let end = line + searched + n;
                self.lines.push(self.line_at(line..end));
                line = end + 1;
                searched = 0;
            }
            if self.lines.len() >= max_lines || line >= batch_bytes {
                // Full: the rest starts the next batch.
                src.carry.extend_from_slice(&self.buf[line..]);
                self.buf.truncate(line);
                return Ok(true);
            }
            if searched as u64 > MAX_LINE {
                let mut rest = Vec::new();
                let leaf = src.long_line(&self.buf[line..], &mut rest);
                self.buf.truncate(line);
                self.lines.push(Line::TooLong(leaf?));
                self.buf.extend_from_slice(&rest);
                searched = 0;
                continue;
            }
            match src.fill(&mut self.buf) {
                Ok(0) => {
                    if line < self.buf.len() {
                        // The last line, without a final newline.
                        self.lines.push(self.line_at(line..self.buf.len()));
                    }
                    return Ok(false);
                }
                Ok(_) => {}
                Err(e) => {
                    self.buf.truncate(line);
                    return Err(e);
                }
            }
        }
    }

    /// The line whose body is `range` of the buffer: too long if it is
    /// longer than `MAX_LINE` (found complete within one read).
    fn line_at(&self, range: std::ops::Range<usize>) -> Line {
        if (range.len() as u64) > MAX_LINE {
            Line::TooLong(leaf_hash(&self.buf[range]))
        } else {
            Line::Body(range)
        }
    }

    fn bytes(&self, line: &Line) -> &[u8] {
        match line {
            Line::Body(range) => &self.buf[range.clone()],
            Line::TooLong(_) => &[],
        }
    }

    /// The batch's groups as ranges of `lines` (the batch starts at entry
    /// `start`).
    fn groups(&self, start: u64) -> impl Iterator<Item = std::ops::Range<usize>> {
        let total = self.lines.len();
        let mut at = 0usize;
        let mut index = start;
        std::iter::from_fn(move || {
            if at >= total {
                return None;
            }
            let window_left = (GROUP - index % GROUP) as usize;
            let end = (at + window_left).min(total);
            let group = at..end;
            index += (end - at) as u64;
            at = end;
            Some(group)
        })
    }
}

/// What is wrong with one line itself (a line not listed is canonical and
/// correctly numbered).
enum LineProblem {
    TooLong,
    NotCanonical(crate::Error),
    /// The line's `index` field.
    Claims(u64),
}

/// What a worker computed for one group.
struct GroupResult {
    /// Roots of aligned perfect subtrees covering the group, in order, as
    /// `(first index, level, root)`: one for a whole window, otherwise the
    /// fewest that also end at every checkpoint inside the group (the walk
    /// needs the tree at exactly those sizes).
    subtrees: Vec<(u64, u32, crate::Hash)>,
    /// Lines with a problem, in order, by index.
    problems: Vec<(u64, LineProblem)>,
}

/// The aligned perfect subtrees that cover `a..b`, largest first where the
/// alignment allows: `(first index, level)`.
fn aligned_cover(mut a: u64, b: u64, out: &mut Vec<(u64, u32)>) {
    while a < b {
        let mut level = if a == 0 { 63 } else { a.trailing_zeros() };
        while level > 0 && (1u64 << level) > b - a {
            level -= 1;
        }
        out.push((a, level));
        a += 1 << level;
    }
}

/// Hashes and checks the lines `group` of `batch` (entry `first` onwards);
/// `checkpoints` are the sizes the walk must see the tree at.
fn hash_group(
    batch: &Batch,
    group: std::ops::Range<usize>,
    first: u64,
    checkpoints: &[u64],
) -> GroupResult {
    let end = first + group.len() as u64;
    let mut cover = Vec::new();
    let mut at = first;
    for &cp in checkpoints.iter().filter(|&&cp| cp > first && cp < end) {
        aligned_cover(at, cp, &mut cover);
        at = cp;
    }
    aligned_cover(at, end, &mut cover);

    let mut problems = Vec::new();
    let mut subtrees = Vec::with_capacity(cover.len());
    let mut lines = batch.lines[group].iter().zip(first..);
    for (start, level) in cover {
        let mut tree = Frontier::default();
        for (line, index) in lines.by_ref().take(1 << level) {
            let leaf = match line {
                Line::Body(_) => {
                    let body = batch.bytes(line);
                    match canonical_entry_index(body) {
                        Ok(claimed) if claimed == index => {}
                        Ok(claimed) => problems.push((index, LineProblem::Claims(claimed))),
                        Err(e) => problems.push((index, LineProblem::NotCanonical(e))),
                    }
                    leaf_hash(body)
                }
                Line::TooLong(leaf) => {
                    problems.push((index, LineProblem::TooLong));
                    *leaf
                }
            };
            tree.push(leaf);
        }
        subtrees.push((start, level, tree.root()));
    }
    GroupResult { subtrees, problems }
}

/// Hashes and checks every group of `batch` (entry `start` onwards) on up
/// to `workers` threads, the calling thread among them once it has run
/// `first` (reading the next batch meanwhile); results in group order.
fn hash_batch<T>(
    start: u64,
    batch: &Batch,
    workers: usize,
    checkpoints: &[u64],
    first: impl FnOnce() -> T,
) -> (Vec<GroupResult>, T) {
    let mut groups = Vec::new();
    let mut at = start;
    for g in batch.groups(start) {
        let len = g.len() as u64;
        groups.push((g, at));
        at += len;
    }
    // Threads take the next unclaimed group, so an uneven group (long
    // lines) or a thread that started late does not leave the others idle.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        let mut mine = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some((g, at)) = groups.get(i) else { break };
            mine.push((i, hash_group(batch, g.clone(), *at, checkpoints)));
        }
        mine
    };
    let helpers = workers.min(groups.len()).saturating_sub(1);
    let (mut done, first_result) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..helpers).map(|_| scope.spawn(work)).collect();
        let first_result = first();
        let mut all = work();
        for h in handles {
            match h.join() {
                Ok(mine) => all.extend(mine),
                // A panicking worker is a bug; surface it where it happened.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        (all, first_result)
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    (done.into_iter().map(|(_, r)| r).collect(), first_result)
}

/// The in-order walk over the workers' results.
struct Walk<'a> {
    checkpoints: &'a [Checkpoint],
    frontier: Frontier,
    next_cp: usize,
    /// Size of the last checkpoint whose root matched: entries before it are
    /// known good, which bounds where an undetected-by-line edit can be.
    good_prefix: u64,
    /// In a full report, a run of lines shifted by the same deleted or
    /// inserted lines is reported once, at its start.
    shift: i128,
    /// The last line with a problem: the lines after it up to the next one
    /// are fine.
    last_problem: Option<u64>,
}

impl Walk<'_> {
    /// Checks every checkpoint at the current size. Called before each line,
    /// so the earliest mismatching checkpoint is the one reported.
    fn checkpoints_at_size(&mut self, problems: &mut Problems) -> Result<(), ()> {
        while let Some(cp) = self
            .checkpoints
            .get(self.next_cp)
            .filter(|cp| cp.size == self.frontier.size())
        {
            self.next_cp += 1;
            if self.frontier.root() != cp.root {
                let good_prefix = self.good_prefix;
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
            self.good_prefix = cp.size;
        }
        Ok(())
    }

    /// Reports what is wrong with line `index` itself (not its hash).
    /// `after_good_line`: the line before it was fine, which ends a run of
    /// shifted lines.
    fn line(
        &mut self,
        index: u64,
        problem: LineProblem,
        after_good_line: bool,
        problems: &mut Problems,
    ) -> Result<(), ()> {
        if after_good_line {
            self.shift = 0;
        }
        match problem {
            LineProblem::TooLong => problems.push(VerifyError::entry(
                VerifyErrorKind::NotCanonical,
                index,
                format!("line longer than {MAX_LINE} bytes"),
            )),
            LineProblem::NotCanonical(e) => {
                problems.push(VerifyError::entry(VerifyErrorKind::NotCanonical, index, e))
            }
            LineProblem::Claims(claimed) => {
                let now = i128::from(claimed) - i128::from(index);
                if now != self.shift {
                    self.shift = now;
                    problems.push(VerifyError::entry(
                        VerifyErrorKind::IndexMismatch,
                        index,
                        format!(
                            "index field says {claimed} (lines deleted, inserted or reordered before or at this line)"
                        ),
                    ))?;
                }
                Ok(())
            }
        }
    }

    /// Walks one group: checkpoints where the tree reaches their size, line
    /// problems in order, subtrees appended in between.
    fn group(&mut self, result: GroupResult, problems: &mut Problems) -> Result<(), ()> {
        let mut line_problems = result.problems.into_iter().peekable();
        for (first, level, root) in result.subtrees {
            self.checkpoints_at_size(problems)?;
            let end = first + (1 << level);
            while let Some((index, problem)) = line_problems.next_if(|(i, _)| *i < end) {
                let after_good_line = match self.last_problem {
                    Some(p) => index > p + 1,
                    None => index > 0,
                };
                self.last_problem = Some(index);
                self.line(index, problem, after_good_line, problems)?;
            }
            self.frontier.push_subtree(root, level);
        }
        Ok(())
    }
}
