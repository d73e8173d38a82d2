//! Merkle tree: RFC 9162 known answers and a brute-force comparison against
//! the RFC's recursive definitions for every size up to 70 and every index.

use std::collections::HashMap;

use pliuz_audit::merkle::{stored_hash_count, MAX_TREE_SIZE};
use pliuz_audit::*;

fn hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test vector hex"))
        .collect()
}

// --- RFC 9162 §2.1 reference definitions, written as literally as possible.

fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n == 1 {
        return vec![];
    }
    let k = split(n);
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

fn subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if b { vec![] } else { vec![mth(leaves)] };
    }
    let k = split(n);
    if m <= k {
        let mut p = subproof(m, &leaves[..k], b);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = subproof(m - k, &leaves[k..], false);
        p.push(mth(&leaves[..k]));
        p
    }
}

fn leaves(n: usize) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
        .collect()
}

/// A hash map holding only the listed indexes, so assembling from it proves
/// the plan lists everything the computation reads.
fn only(tree: &MemoryTree, plan: &[u64]) -> HashMap<u64, Hash> {
    plan.iter()
        .map(|&i| (i, tree.stored_hash(i).expect("planned index exists")))
        .collect()
}

type Proof = Result<Vec<Hash>, Error>;

/// How one kind of proof is planned, assembled from stored hashes, and
/// made by the memory tree.
struct ProofKind {
    name: &'static str,
    plan: fn(u64, u64) -> Result<Vec<u64>, Error>,
    assemble: fn(u64, u64, &HashMap<u64, Hash>) -> Proof,
    from_tree: fn(&MemoryTree, u64, u64) -> Proof,
}

const INCLUSION: ProofKind = ProofKind {
    name: "inclusion",
    plan: inclusion_proof_plan,
    assemble: |m, n, hashes| inclusion_proof(m, n, hashes),
    from_tree: MemoryTree::inclusion_proof,
};

const CONSISTENCY: ProofKind = ProofKind {
    name: "consistency",
    plan: consistency_proof_plan,
    assemble: |m, n, hashes| consistency_proof(m, n, hashes),
    from_tree: MemoryTree::consistency_proof,
};

impl ProofKind {
    /// The proof for (`m`, `n`) assembled from exactly the hashes its plan
    /// names, and the memory tree's, both equal `want`; returns it.
    fn assert_agrees(&self, tree: &MemoryTree, m: usize, n: usize, want: &[Hash]) -> Vec<Hash> {
        let (m, n) = (m as u64, n as u64);
        let planned = (self.plan)(m, n).expect("plan");
        let got = (self.assemble)(m, n, &only(tree, &planned)).expect("proof");
        let name = self.name;
        assert_eq!(got, want, "{name} {m}, {n}");
        assert_eq!(
            (self.from_tree)(tree, m, n).expect("proof"),
            want,
            "{name} {m}, {n}"
        );
        got
    }
}

#[test]
fn rfc6962_known_roots() {
    // The 8-leaf test tree used by RFC 6962/9162 implementations
    // (certificate-transparency, transparency-dev/merkle).
    let data = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let mut tree = MemoryTree::new();
    assert_eq!(
        hex(&tree.root()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    for (d, want) in data.iter().zip(roots) {
        tree.push_entry(&unhex(d));
        assert_eq!(hex(&tree.root()), want, "size {}", tree.size());
    }
}

#[test]
fn go_tlog_stored_hash_indexes() {
    // Values from Go's tlog: leaves and completed subtrees interleaved.
    let want = [
        (0, 0, 0),
        (0, 1, 1),
        (1, 0, 2),
        (0, 2, 3),
        (0, 3, 4),
        (1, 1, 5),
        (2, 0, 6),
        (0, 4, 7),
    ];
    for (level, n, index) in want {
        assert_eq!(stored_hash_index(level, n), index, "level {level} n {n}");
    }
    assert_eq!(stored_hash_count(0), 0);
    assert_eq!(stored_hash_count(1), 1);
    assert_eq!(stored_hash_count(2), 3);
    assert_eq!(stored_hash_count(3), 4);
    assert_eq!(stored_hash_count(4), 7);
}

#[test]
fn brute_force_all_sizes_and_indexes() {
    const MAX: usize = 70;
    let all = leaves(MAX);
    let mut tree = MemoryTree::new();
    let mut db: HashMap<u64, Hash> = HashMap::new();

    for n in 0..=MAX {
        let l = &all[..n];
        let root = mth(l);
        // Root: memory tree, and plan/assemble with exactly the planned hashes.
        assert_eq!(tree.root(), root, "root {n}");
        let plan = tree_hash_plan(n as u64).expect("plan");
        assert_eq!(
            tree_hash(n as u64, &only(&tree, &plan)).expect("assemble"),
            root
        );
        assert_eq!(stored_hash_count(n as u64), db.len() as u64);

        for m in 0..n {
            let want = path(m, l);
            let got = INCLUSION.assert_agrees(&tree, m, n, &want);
            verify_inclusion(m as u64, n as u64, &l[m], &got, &root).expect("verifies");
            // Wrong leaf, wrong index, wrong root, short and long proofs fail.
            assert!(
                verify_inclusion(m as u64, n as u64, &all[MAX - 1 - m], &got, &root).is_err()
                    || all[MAX - 1 - m] == l[m]
            );
            if n > 1 {
                assert!(
                    verify_inclusion(((m + 1) % n) as u64, n as u64, &l[m], &got, &root).is_err()
                );
            }
            assert!(verify_inclusion(m as u64, n as u64, &l[m], &got, &empty_root()).is_err());
            if !got.is_empty() {
                assert!(verify_inclusion(m as u64, n as u64, &l[m], &got[1..], &root).is_err());
            }
            let mut long = got.clone();
            long.push(root);
            assert!(verify_inclusion(m as u64, n as u64, &l[m], &long, &root).is_err());
        }
        assert!(inclusion_proof_plan(n as u64, n as u64).is_err());

        for m in 0..=n {
            let want = if m == 0 { vec![] } else { subproof(m, l, true) };
            let got = CONSISTENCY.assert_agrees(&tree, m, n, &want);
            let old = mth(&l[..m]);
            verify_consistency(m as u64, n as u64, &got, &old, &root).expect("verifies");
            if m > 0 && m < n {
                // A different old tree is not consistent with this one.
                let other = mth(&all[MAX - m..]);
                assert!(verify_consistency(m as u64, n as u64, &got, &other, &root).is_err());
                assert!(verify_consistency(m as u64, n as u64, &got, &old, &empty_root()).is_err());
                assert!(verify_consistency(m as u64, n as u64, &got[1..], &old, &root).is_err());
                if m + 1 < n {
                    assert!(verify_consistency(m as u64 + 1, n as u64, &got, &old, &root).is_err());
                }
            }
        }
        assert!(consistency_proof_plan(n as u64 + 1, n as u64).is_err());

        if n == MAX {
            break;
        }
        // Append through the server API using only the planned hashes, and
        // check it stores exactly what the memory tree stores.
        let plan = append_plan(n as u64);
        let have: HashMap<u64, Hash> = plan.iter().map(|i| (*i, db[i])).collect();
        let new = append(n as u64, all[n], &have).expect("append");
        let start = stored_hash_index(0, n as u64);
        tree.push_leaf_hash(all[n]);
        for (k, (i, h)) in new.iter().enumerate() {
            assert_eq!(*i, start + k as u64, "consecutive indexes");
            assert_eq!(Some(*h), tree.stored_hash(*i));
            db.insert(*i, *h);
        }
    }
}

#[test]
fn missing_hashes_and_bad_arguments_are_errors() {
    let empty: HashMap<u64, Hash> = HashMap::new();
    assert_eq!(append(1, empty_root(), &empty), Err(Error::MissingHash(0)));
    assert!(tree_hash(3, &empty).is_err());
    assert_eq!(tree_hash(0, &empty), Ok(empty_root()));
    assert!(inclusion_proof(0, 0, &empty).is_err());
    assert!(tree_hash_plan(MAX_TREE_SIZE + 1).is_err());
    assert!(verify_inclusion(0, 0, &empty_root(), &[], &empty_root()).is_err());
    assert!(verify_consistency(2, 1, &[], &empty_root(), &empty_root()).is_err());
    assert!(verify_consistency(0, 5, &[], &empty_root(), &empty_root()).is_ok());
    let mut t = MemoryTree::new();
    t.push_entry(b"x");
    assert!(t.root_at(2).is_err());
    assert!(t.inclusion_proof(0, 2).is_err());
}

#[test]
fn large_tree_proofs_are_logarithmic() {
    let mut t = MemoryTree::new();
    for i in 0..5000u32 {
        t.push_entry(&i.to_be_bytes());
    }
    let root = t.root();
    let p = inclusion_proof_plan(1234, 5000).expect("plan");
    assert!(p.len() <= 2 * 13, "{} reads", p.len());
    let proof = t.inclusion_proof(1234, 5000).expect("proof");
    verify_inclusion(
        1234,
        5000,
        &leaf_hash(&1234u32.to_be_bytes()),
        &proof,
        &root,
    )
    .expect("ok");
    let c = t.consistency_proof(3333, 5000).expect("proof");
    verify_consistency(3333, 5000, &c, &t.root_at(3333).expect("root"), &root).expect("ok");
}
