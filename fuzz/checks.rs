//! The checks behind each fuzz target, shared by the targets
//! (`fuzz_targets/*.rs`) and the replay of kept inputs
//! (`crates/pliuz/tests/fuzz_regressions.rs`). Each panics on a bug.

#![allow(dead_code)] // each target uses one check

use pliuz::policy::{CallFacts, Condition, MAX_CONDITION_COST};
use pliuz_audit::limits::{json_depth, value_depth};
use pliuz_audit::{
    open_checkpoint, open_note, verify_receipt, Checkpoint, Entry, Receipt, SigningKey, Verifier,
};
use std::sync::LazyLock;

/// The trusted log key of the targets (fixed, so inputs replay the same).
static KEY: LazyLock<SigningKey> =
    LazyLock::new(|| SigningKey::from_seed("pliuz.local/audit", &[7u8; 32]).expect("key"));
static TRUSTED: LazyLock<Vec<Verifier>> = LazyLock::new(|| vec![KEY.verifier()]);

/// A CEL condition and the call's arguments, both from the input (source,
/// then a NUL, then JSON args): compiling never panics, the cost estimate
/// is total, and evaluation within the budget returns.
pub fn cel_condition(data: &[u8]) {
    let (src, args) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{}"[..]),
    };
    let Ok(src) = std::str::from_utf8(src) else {
        return;
    };
    let Ok(condition) = Condition::compile(src) else {
        return;
    };
    let args = serde_json::from_slice::<serde_json::Value>(args)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    let _ = condition.cost(u64::MAX);
    let facts = CallFacts {
        tool: "issue_refund",
        args: &args,
        agent: "bot",
        policy: "p",
        originator: None,
        metadata: None,
    };
    // Evaluated only within the budget: the estimate grows with the items,
    // so the smallest estimate is within it too.
    if condition.holds(&facts).is_ok() {
        assert!(condition.cost(1) <= MAX_CONDITION_COST);
    }
}

/// Canonical entry parsing: whatever parses re-encodes to exactly the input,
/// and the depth scanner never counts less nesting than the parsed value has
/// (more is right for a repeated key, whose last value wins in the parse).
pub fn canonical_entry(data: &[u8]) {
    if let Ok(entry) = Entry::parse_canonical(data) {
        let again = entry.to_canonical_bytes().expect("a parsed entry encodes");
        assert_eq!(again, data, "canonical form is not a fixed point");
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let scanned = json_depth(data, usize::MAX - 1);
        assert!(
            scanned >= value_depth(&v),
            "the scan undercounts: {scanned}"
        );
    }
}

/// Signed notes and checkpoints: opening arbitrary text never panics, and a
/// body signed with a trusted key opens to the same checkpoint it parses to.
pub fn note_checkpoint(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let key = &*KEY;
    let trusted = &TRUSTED[..];
    let _ = open_note(text, trusted);
    let _ = open_checkpoint(text, trusted);
    let _ = Checkpoint::parse_unverified_note(text);
    if let Ok(signed) = key.sign_note(text) {
        let opened = open_checkpoint(&signed, trusted);
        match Checkpoint::parse(text) {
            Ok(cp) if cp.origin == "pliuz.local/audit" => {
                assert_eq!(opened.expect("signed by a trusted key"), cp)
            }
            _ => assert!(opened.is_err()),
        }
    }
}

/// Receipts: any JSON is either refused or verified, never a panic.
pub fn receipt(data: &[u8]) {
    let Ok(receipt) = serde_json::from_slice::<Receipt>(data) else {
        return;
    };
    let _ = verify_receipt(&receipt, &TRUSTED);
}

/// The API's request-body checks (create, decision, execution, cancel): the
/// first byte picks the route, the rest is the body. Every outcome is Ok or
/// a problem with a 4xx status, never a panic or a 5xx.
pub fn api_body(data: &[u8]) {
    let Some((&route, body)) = data.split_first() else {
        return;
    };
    if let Err(p) = pliuz::api::approvals::check_request_body(route, body) {
        assert!((400..500).contains(&p.status), "{} {}", p.status, p.detail);
    }
}
