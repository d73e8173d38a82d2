//! `canonical_json` is the project's one RFC 8785 encoder: the server's
//! argument digests (which idempotency and decisions compare) use it. It
//! must agree with an independent JCS implementation on whatever the server
//! canonicalises, including the arguments of `sdk/test-vectors`.

use pliuz_audit::canonical_json;
use serde_json::{json, Value};

/// The arguments of the SDKs' shared vectors, digested as the server does.
/// (Their `canonical` field is the SDKs' own idempotency-key form, which
/// writes numbers as Python does and orders astral-plane keys by code
/// point: not RFC 8785, and never computed by the server.)
#[test]
fn agrees_with_an_independent_implementation_on_the_shared_vectors() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../sdk/test-vectors/idempotency.json"
    );
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("vectors")).expect("json");
    let vectors = file["vectors"].as_array().expect("vectors");
    assert!(vectors.len() >= 10);
    for v in vectors {
        let digested = json!({"tool_name": v["tool"], "tool_args": v["args"]});
        assert_eq!(
            String::from_utf8_lossy(&canonical_json(&digested)),
            String::from_utf8_lossy(&serde_json_canonicalizer::to_vec(&digested).expect("jcs"))
        );
    }
}

#[test]
fn agrees_with_an_independent_implementation_on_tool_arguments() {
    let cases = [
        json!({"tool_name": "issue_refund", "tool_args": {"order_id": "A-1", "amount_cents": 5000}}),
        json!({"tool_name": "t", "tool_args": {}}),
        json!({"tool_name": "x", "tool_args": {"\u{e000}": 1, "\u{1F600}": 2, "a": [0.1, 1e21, -0.0, 5e-324], "A": null}}),
        json!({"tool_name": "x", "tool_args": {"big": 9007199254740993u64, "neg": -9007199254740993i64, "f": 123.456}}),
        json!({"tool_name": "x", "tool_args": {"s": "\u{7f}\u{1f}\u{8}\u{c}\t\r\n/\\\"\u{2028}😀", "nested": {"b": [{"d": 1, "c": 2}], "a": true}}}),
    ];
    for case in cases {
        let theirs = serde_json_canonicalizer::to_vec(&case).expect("jcs");
        assert_eq!(
            String::from_utf8_lossy(&canonical_json(&case)),
            String::from_utf8_lossy(&theirs)
        );
    }
}
