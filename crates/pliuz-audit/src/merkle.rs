//! RFC 9162 (Certificate Transparency v2) Merkle tree with Go `sumdb/tlog`
//! hash storage layout.
//!
//! # Hashing (RFC 9162 §2.1.1)
//!
//! * empty tree: `SHA-256("")`
//! * leaf: `SHA-256(0x00 || entry bytes)`
//! * interior node: `SHA-256(0x01 || left || right)`, where the left subtree
//!   holds the largest power of two strictly smaller than the number of leaves.
//!
//! # Storage layout
//!
//! The server keeps hashes in a database and talks to it asynchronously, so
//! nothing here performs I/O or calls back into storage. Every operation is
//! split into a *plan* (`*_plan`: which stored hash indexes are needed) and an
//! *assemble* step (takes those hashes as a [`HashReader`] and computes the
//! result). The caller fetches the planned indexes in one round trip in
//! between.
//!
//! Hashes are addressed with the "stored hash index" numbering from Go's
//! `golang.org/x/mod/sumdb/tlog` (also used by the `tlog_tiles` crate): the
//! hash of every *complete* (perfect, power-of-two) subtree is stored exactly
//! once, in the order in which appends complete them. Appending leaf `n`
//! writes `1 + trailing_ones(n)` consecutive hashes starting at
//! `stored_hash_index(0, n)`, and any tree hash, inclusion proof or
//! consistency proof needs `O(log n)` stored hashes.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use crate::Error;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Largest tree size accepted by the planning functions. Stored hash indexes
/// are roughly `2 * size`, so this keeps every index computation far from
/// `u64` overflow while being unreachable in practice.
pub const MAX_TREE_SIZE: u64 = 1 << 62;

/// Source of stored hashes for the assemble step, keyed by stored hash index.
///
/// Implemented for `HashMap<u64, Hash>` and `BTreeMap<u64, Hash>` (what a
/// server naturally builds from a database query) and for [`MemoryTree`].
pub trait HashReader {
    /// The hash stored at `index`, if the reader has it.
    fn stored_hash(&self, index: u64) -> Option<Hash>;
}

impl HashReader for HashMap<u64, Hash> {
    fn stored_hash(&self, index: u64) -> Option<Hash> {
        self.get(&index).copied()
    }
}

impl HashReader for BTreeMap<u64, Hash> {
    fn stored_hash(&self, index: u64) -> Option<Hash> {
        self.get(&index).copied()
    }
}

fn read(r: &impl HashReader, index: u64) -> Result<Hash, Error> {
    r.stored_hash(index).ok_or(Error::MissingHash(index))
}

/// Root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Leaf hash of an entry, `SHA-256(0x00 || bytes)`.
pub fn leaf_hash(entry_bytes: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry_bytes);
    h.finalize().into()
}

/// Interior node hash, `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Stored hash index of the `n`-th hash at `level` (level 0 = leaves; the
/// level-`l` hash `n` covers leaves `n·2^l .. (n+1)·2^l`).
///
/// Same numbering as Go's `tlog.StoredHashIndex`: the hash is written when
/// its last leaf, `(n+1)·2^level - 1`, is appended. Only meaningful for trees
/// up to [`MAX_TREE_SIZE`]; larger inputs wrap instead of panicking.
pub fn stored_hash_index(level: u32, n: u64) -> u64 {
    // Walk down to the last leaf under this node; its level-0 index plus the
    // level is where this node lands, because appending that leaf writes the
    // leaf hash followed by one hash per completed level.
    let mut n = n;
    for _ in 0..level {
        n = n.wrapping_mul(2).wrapping_add(1);
    }
    // Level-0 hash n is stored at n + n/2 + n/4 + ...
    let mut i = 0u64;
    let mut m = n;
    while m > 0 {
        i = i.wrapping_add(m);
        m >>= 1;
    }
    i.wrapping_add(u64::from(level))
}

/// Number of stored hashes in a tree of `size` leaves.
pub fn stored_hash_count(size: u64) -> u64 {
    if size == 0 {
        return 0;
    }
    stored_hash_index(0, size - 1) + 1 + u64::from((size - 1).trailing_ones())
}

fn check_size(size: u64) -> Result<(), Error> {
    if size > MAX_TREE_SIZE {
        return Err(Error::InvalidArgument(format!(
            "tree size {size} exceeds the supported maximum {MAX_TREE_SIZE}"
        )));
    }
    Ok(())
}

/// Largest power of two `<= n` (for `n >= 1`) and its log2.
fn pow2_at_most(n: u64) -> (u64, u32) {
    let level = 63 - n.leading_zeros();
    (1u64 << level, level)
}

/// Largest power of two strictly less than `n` (for `n >= 2`): the RFC split.
fn split_point(n: u64) -> u64 {
    pow2_at_most(n - 1).0
}

// ---------------------------------------------------------------------------
// Plans and assembly. Each operation is written once as a walk over the tree
// that either records the stored indexes it touches (plan) or reads them and
// hashes (assemble), so plans and assembly cannot drift apart.

/// Stored indexes of the perfect subtrees that make up leaves `lo..hi`, left
/// to right. `lo` must be aligned to the first (largest) subtree.
fn subtree_indexes(mut lo: u64, hi: u64, out: &mut Vec<u64>) {
    while lo < hi {
        let (k, level) = pow2_at_most(hi - lo);
        out.push(stored_hash_index(level, lo >> level));
        lo += k;
    }
}

/// Hash of leaves `lo..hi` (non-empty) from stored perfect-subtree hashes.
fn subtree_hash(lo: u64, hi: u64, r: &impl HashReader) -> Result<Hash, Error> {
    let mut idx = Vec::with_capacity(64);
    subtree_indexes(lo, hi, &mut idx);
    let mut iter = idx.iter().rev();
    let Some(&last) = iter.next() else {
        return Err(Error::InvalidArgument("empty subtree".into()));
    };
    let mut h = read(r, last)?;
    for &i in iter {
        h = node_hash(&read(r, i)?, &h);
    }
    Ok(h)
}

/// Stored indexes needed to append leaf number `n` (the `n+1`-th leaf) to a
/// tree of size `n`: the left siblings of every subtree the new leaf
/// completes. At most 63 indexes.
pub fn append_plan(n: u64) -> Vec<u64> {
    (0..n.trailing_ones())
        .rev()
        .map(|level| stored_hash_index(level, (n >> level) - 1))
        .collect()
}

/// New `(stored index, hash)` pairs to store when appending leaf number `n`
/// with hash `leaf` to a tree of size `n`. `hashes` must contain the indexes
/// from [`append_plan`]. The returned indexes are consecutive, starting at
/// `stored_hash_index(0, n)`.
pub fn append(n: u64, leaf: Hash, hashes: &impl HashReader) -> Result<Vec<(u64, Hash)>, Error> {
    check_size(n + 1)?;
    let start = stored_hash_index(0, n);
    let levels = n.trailing_ones();
    let mut out = Vec::with_capacity(1 + levels as usize);
    let mut h = leaf;
    out.push((start, h));
    for level in 0..levels {
        let sibling = read(hashes, stored_hash_index(level, (n >> level) - 1))?;
        h = node_hash(&sibling, &h);
        out.push((start + 1 + u64::from(level), h));
    }
    Ok(out)
}

/// Stored indexes needed to compute the root of a tree of `size` leaves.
pub fn tree_hash_plan(size: u64) -> Result<Vec<u64>, Error> {
    check_size(size)?;
    let mut out = Vec::new();
    subtree_indexes(0, size, &mut out);
    Ok(out)
}

/// Root hash of a tree of `size` leaves; `hashes` must contain
/// [`tree_hash_plan`]`(size)`.
pub fn tree_hash(size: u64, hashes: &impl HashReader) -> Result<Hash, Error> {
    check_size(size)?;
    if size == 0 {
        return Ok(empty_root());
    }
    subtree_hash(0, size, hashes)
}

/// The subtrees (as leaf ranges) whose hashes are the inclusion proof of
/// `index` within leaves `lo..hi`, leaf to root (RFC 9162 §2.1.3.1).
fn inclusion_ranges(lo: u64, hi: u64, index: u64, out: &mut Vec<(u64, u64)>) {
    if hi - lo == 1 {
        return;
    }
    let k = split_point(hi - lo);
    // Leaf-to-root order: recurse first, then the sibling subtree.
    if index < lo + k {
        inclusion_ranges(lo, lo + k, index, out);
        out.push((lo + k, hi));
    } else {
        inclusion_ranges(lo + k, hi, index, out);
        out.push((lo, lo + k));
    }
}

/// RFC 9162 `SUBPROOF` as leaf ranges; its `b` flag is `lo == 0`: when the
/// old tree is the whole left edge the verifier already knows its hash, so
/// it is omitted.
fn consistency_ranges(lo: u64, hi: u64, from: u64, out: &mut Vec<(u64, u64)>) {
    if from == hi {
        if lo != 0 {
            out.push((lo, hi));
        }
        return;
    }
    let k = split_point(hi - lo);
    if from <= lo + k {
        consistency_ranges(lo, lo + k, from, out);
        out.push((lo + k, hi));
    } else {
        consistency_ranges(lo + k, hi, from, out);
        out.push((lo, lo + k));
    }
}

/// The plan of a proof made of the subtrees `ranges`.
fn plan_of(ranges: &[(u64, u64)]) -> Vec<u64> {
    let mut out = Vec::new();
    for &(lo, hi) in ranges {
        subtree_indexes(lo, hi, &mut out);
    }
    out
}

/// A proof made of the subtrees `ranges`, assembled from stored hashes.
fn proof_of(ranges: &[(u64, u64)], r: &impl HashReader) -> Result<Vec<Hash>, Error> {
    ranges
        .iter()
        .map(|&(lo, hi)| subtree_hash(lo, hi, r))
        .collect()
}

/// The subtrees of the inclusion proof of leaf `index` in a tree of `size`
/// leaves.
fn inclusion_proof_ranges(index: u64, size: u64) -> Result<Vec<(u64, u64)>, Error> {
    check_size(size)?;
    if index >= size {
        return Err(Error::InvalidArgument(format!(
            "leaf index {index} is not in a tree of size {size}"
        )));
    }
    let mut out = Vec::new();
    inclusion_ranges(0, size, index, &mut out);
    Ok(out)
}

/// Stored indexes needed for the inclusion proof of leaf `index` in a tree of
/// `size` leaves.
pub fn inclusion_proof_plan(index: u64, size: u64) -> Result<Vec<u64>, Error> {
    Ok(plan_of(&inclusion_proof_ranges(index, size)?))
}

/// RFC 9162 inclusion proof (audit path, leaf to root) for leaf `index` in a
/// tree of `size` leaves.
pub fn inclusion_proof(
    index: u64,
    size: u64,
    hashes: &impl HashReader,
) -> Result<Vec<Hash>, Error> {
    proof_of(&inclusion_proof_ranges(index, size)?, hashes)
}

/// The subtrees of the consistency proof from size `from` to `size` (none
/// from the empty tree).
fn consistency_proof_ranges(from: u64, size: u64) -> Result<Vec<(u64, u64)>, Error> {
    check_size(size)?;
    if from > size {
        return Err(Error::InvalidArgument(format!(
            "cannot prove consistency from size {from} to smaller size {size}"
        )));
    }
    let mut out = Vec::new();
    if from > 0 {
        consistency_ranges(0, size, from, &mut out);
    }
    Ok(out)
}

/// Stored indexes needed for the consistency proof from size `from` to
/// `size`.
pub fn consistency_proof_plan(from: u64, size: u64) -> Result<Vec<u64>, Error> {
    Ok(plan_of(&consistency_proof_ranges(from, size)?))
}

/// RFC 9162 consistency proof between the tree of `from` leaves and the tree
/// of `size` leaves. Empty when `from == size` or `from == 0` (everything is
/// consistent with the empty tree).
pub fn consistency_proof(
    from: u64,
    size: u64,
    hashes: &impl HashReader,
) -> Result<Vec<Hash>, Error> {
    proof_of(&consistency_proof_ranges(from, size)?, hashes)
}

// ---------------------------------------------------------------------------
// Verification (RFC 9162 §2.1.3.2 and §2.1.4.2), written as in the RFC so it
// can be audited line by line against it.

/// Which side of the running hash the next proof hash goes.
enum Sibling {
    /// `node_hash(proof hash, running hash)`.
    Left,
    /// `node_hash(running hash, proof hash)`.
    Right,
}

/// The RFC's walk up the tree shared by both verifications: `f_n` is the
/// node being proved, `s_n` the last node at the same level; `proof` names
/// the proof in errors.
struct ProofWalk {
    f_n: u64,
    s_n: u64,
    proof: &'static str,
}

impl ProofWalk {
    /// One proof hash: where it goes, then one level up (RFC 9162's loop
    /// body, the hashing left to the caller).
    fn step(&mut self) -> Result<Sibling, Error> {
        if self.s_n == 0 {
            return Err(Error::InvalidProof(format!(
                "{} proof is too long",
                self.proof
            )));
        }
        let side = if self.f_n & 1 == 1 || self.f_n == self.s_n {
            if self.f_n & 1 == 0 {
                while self.f_n & 1 == 0 && self.f_n != 0 {
                    self.f_n >>= 1;
                    self.s_n >>= 1;
                }
            }
            Sibling::Left
        } else {
            Sibling::Right
        };
        self.f_n >>= 1;
        self.s_n >>= 1;
        Ok(side)
    }

    /// After the last proof hash: the walk must have reached the root.
    fn finish(&self) -> Result<(), Error> {
        if self.s_n != 0 {
            return Err(Error::InvalidProof(format!(
                "{} proof is too short",
                self.proof
            )));
        }
        Ok(())
    }
}

/// Verifies that `leaf` is the leaf at `index` in the tree of `size` leaves
/// with root `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), Error> {
    if index >= size {
        return Err(Error::InvalidProof(format!(
            "leaf index {index} is not in a tree of size {size}"
        )));
    }
    let mut walk = ProofWalk {
        f_n: index,
        s_n: size - 1,
        proof: "inclusion",
    };
    let mut r = *leaf;
    for p in proof {
        r = match walk.step()? {
            Sibling::Left => node_hash(p, &r),
            Sibling::Right => node_hash(&r, p),
        };
    }
    walk.finish()?;
    if r != *root {
        return Err(Error::InvalidProof(
            "inclusion proof does not lead to the root hash".into(),
        ));
    }
    Ok(())
}

/// Verifies that the tree of `size` leaves with root `root_to` extends the
/// tree of `from` leaves with root `root_from` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    from: u64,
    size: u64,
    proof: &[Hash],
    root_from: &Hash,
    root_to: &Hash,
) -> Result<(), Error> {
    if from > size {
        return Err(Error::InvalidProof(format!(
            "old size {from} is larger than new size {size}"
        )));
    }
    if from == size || from == 0 {
        if !proof.is_empty() {
            return Err(Error::InvalidProof(
                "consistency proof must be empty for this pair of sizes".into(),
            ));
        }
        let ok = if from == 0 {
            *root_from == empty_root()
        } else {
            root_from == root_to
        };
        return if ok {
            Ok(())
        } else {
            Err(Error::InvalidProof("root hashes differ".into()))
        };
    }
    if proof.is_empty() {
        return Err(Error::InvalidProof("consistency proof is empty".into()));
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if from.is_power_of_two() {
        path.push(*root_from);
    }
    path.extend_from_slice(proof);

    let mut walk = ProofWalk {
        f_n: from - 1,
        s_n: size - 1,
        proof: "consistency",
    };
    while walk.f_n & 1 == 1 {
        walk.f_n >>= 1;
        walk.s_n >>= 1;
    }
    let mut f_r = path[0];
    let mut s_r = path[0];
    for c in &path[1..] {
        match walk.step()? {
            Sibling::Left => {
                f_r = node_hash(c, &f_r);
                s_r = node_hash(c, &s_r);
            }
            Sibling::Right => s_r = node_hash(&s_r, c),
        }
    }
    walk.finish()?;
    if f_r != *root_from {
        return Err(Error::InvalidProof(
            "consistency proof does not match the old root".into(),
        ));
    }
    if s_r != *root_to {
        return Err(Error::InvalidProof(
            "consistency proof does not match the new root".into(),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------

/// An in-memory tree holding every stored hash in the same layout a server
/// keeps in its database. Used by verifiers, tests and benchmarks; a server
/// uses the plan/assemble functions instead.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    hashes: Vec<Hash>,
    size: u64,
}

impl HashReader for MemoryTree {
    fn stored_hash(&self, index: u64) -> Option<Hash> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.hashes.get(i))
            .copied()
    }
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash and returns its leaf index.
    pub fn push_leaf_hash(&mut self, leaf: Hash) -> u64 {
        let n = self.size;
        let mut h = leaf;
        self.hashes.push(h);
        for level in 0..n.trailing_ones() {
            // Every index read here is < the current length: the sibling
            // subtree was completed by an earlier append.
            let sibling = self.hashes[stored_hash_index(level, (n >> level) - 1) as usize];
            h = node_hash(&sibling, &h);
            self.hashes.push(h);
        }
        self.size += 1;
        n
    }

    /// Appends an entry's bytes (hashed with [`leaf_hash`]) and returns its
    /// leaf index.
    pub fn push_entry(&mut self, entry_bytes: &[u8]) -> u64 {
        self.push_leaf_hash(leaf_hash(entry_bytes))
    }

    fn check_within(&self, size: u64) -> Result<(), Error> {
        if size > self.size {
            return Err(Error::InvalidArgument(format!(
                "tree size {size} is larger than the tree ({})",
                self.size
            )));
        }
        Ok(())
    }

    /// Root hash of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, Error> {
        self.check_within(size)?;
        tree_hash(size, self)
    }

    /// Root hash of the whole tree.
    pub fn root(&self) -> Hash {
        // Cannot fail: every stored hash of the current size is present.
        tree_hash(self.size, self).unwrap_or_else(|_| empty_root())
    }

    /// Inclusion proof of leaf `index` in the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, Error> {
        self.check_within(size)?;
        inclusion_proof(index, size, self)
    }

    /// Consistency proof from the first `from` leaves to the first `size`.
    pub fn consistency_proof(&self, from: u64, size: u64) -> Result<Vec<Hash>, Error> {
        self.check_within(size)?;
        consistency_proof(from, size, self)
    }
}

/// Compact Merkle frontier: the roots of the perfect subtrees that make up
/// the tree, largest first (at most 64 hashes). Enough to append and to
/// compute the current root, which is all streaming verification needs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Frontier {
    stack: Vec<Hash>,
    size: u64,
}

impl Frontier {
    pub(crate) fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        for _ in 0..self.size.trailing_ones() {
            match self.stack.pop() {
                Some(left) => h = node_hash(&left, &h),
                None => break, // unreachable: one stack entry per set bit
            }
        }
        self.stack.push(h);
        self.size += 1;
    }

    /// Appends a whole perfect subtree of `2^level` leaves at once, given its
    /// root: the same result as pushing its leaves one by one. Only valid
    /// when the current size is a multiple of `2^level` (the subtree is
    /// aligned), which the caller guarantees.
    pub(crate) fn push_subtree(&mut self, root: Hash, level: u32) {
        debug_assert_eq!(self.size % (1 << level), 0, "unaligned subtree");
        let mut h = root;
        for _ in 0..(self.size >> level).trailing_ones() {
            match self.stack.pop() {
                Some(left) => h = node_hash(&left, &h),
                None => break, // unreachable: one stack entry per set bit
            }
        }
        self.stack.push(h);
        self.size += 1 << level;
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&last) = iter.next() else {
            return empty_root();
        };
        iter.fold(last, |acc, left| node_hash(left, &acc))
    }
}
