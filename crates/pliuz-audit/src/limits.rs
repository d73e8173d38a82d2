//! The one set of size limits shared by the server (which enforces them at
//! the API, before anything is logged) and every verifier (which must accept
//! whatever the server logged). Documented in `docs/limits.md`.
//!
//! The rule they keep: an entry the server can write always fits the
//! verifiers, with room to spare —
//!
//! * a request body is at most [`MAX_BODY_BYTES`] and nests at most
//!   [`MAX_JSON_DEPTH`] deep;
//! * the canonical JSON of one set of tool arguments is at most
//!   [`MAX_ARGS_BYTES`] (canonical form can be longer than what was sent:
//!   `1e20` becomes `100000000000000000000`);
//! * the largest entry, an `approval.decided` carrying original and final
//!   arguments, is therefore below `2 * MAX_ARGS_BYTES` plus a few KiB, which
//!   is less than [`MAX_ENTRY_BYTES`]; the server also refuses to append any
//!   entry over [`MAX_ENTRY_BYTES`], whatever produced it;
//! * an entry nests at most `MAX_JSON_DEPTH + 4` deep (entry, `data`, the
//!   arguments' field), below [`MAX_ENTRY_DEPTH`].

/// Default `max_body_bytes`: the largest request body the API reads.
pub const DEFAULT_BODY_BYTES: usize = 1 << 20;
/// Smallest accepted `max_body_bytes` (anything smaller refuses ordinary requests).
pub const MIN_BODY_BYTES: usize = 4 << 10;
/// Largest accepted `max_body_bytes`.
pub const MAX_BODY_BYTES: usize = 4 << 20;
/// Deepest nesting of arrays and objects in a request body (the body object
/// itself is level 1).
pub const MAX_JSON_DEPTH: usize = 32;
/// Largest canonical JSON encoding of one set of tool arguments
/// (`tool_args`, `final_args`).
pub const MAX_ARGS_BYTES: usize = 4 << 20;
/// Largest canonical entry: one line of an export. Verifiers accept entries
/// up to this size; the server never writes a larger one.
pub const MAX_ENTRY_BYTES: usize = 16 << 20;
/// Deepest nesting verifiers accept inside an entry.
pub const MAX_ENTRY_DEPTH: usize = 128;

/// Depth of the deepest array/object nesting in `bytes` (0 for a scalar),
/// without parsing: strings are skipped, so brackets inside them do not
/// count. Stops counting as soon as `limit` is exceeded and returns
/// `limit + 1`, so hostile input costs at most one pass.
pub fn json_depth(bytes: &[u8], limit: usize) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > deepest {
                    deepest = depth;
                    if deepest > limit {
                        return limit + 1;
                    }
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Size in bytes of the RFC 8785 canonical encoding of a JSON object, the
/// form in which it is logged.
pub fn canonical_size(map: &serde_json::Map<String, serde_json::Value>) -> usize {
    let mut out = Vec::new();
    crate::entry::write_object(map, &mut out);
    out.len()
}

/// Depth of a parsed JSON value (0 for a scalar), iteratively.
pub fn value_depth(v: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            serde_json::Value::Array(items) => {
                deepest = deepest.max(d + 1);
                stack.extend(items.iter().map(|i| (i, d + 1)));
            }
            serde_json::Value::Object(map) => {
                deepest = deepest.max(d + 1);
                stack.extend(map.values().map(|i| (i, d + 1)));
            }
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limits_fit_together() {
        // Original + final arguments plus the entry's other fields (reason
        // ≤ 2000 chars, ids, names) fit an entry with room to spare.
        const { assert!(2 * MAX_ARGS_BYTES + (64 << 10) < MAX_ENTRY_BYTES) };
        const { assert!(MAX_JSON_DEPTH + 4 < MAX_ENTRY_DEPTH) };
        const { assert!(MIN_BODY_BYTES <= DEFAULT_BODY_BYTES && DEFAULT_BODY_BYTES <= MAX_BODY_BYTES) };
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(json_depth(br#"{"a":"[[[{{{\"]]"}"#, 10), 1);
        assert_eq!(json_depth(b"[[[]],[]]", 10), 3);
        assert_eq!(json_depth(b"7", 10), 0);
        assert_eq!(json_depth(&[b'['; 1000], 10), 11);
        let v: serde_json::Value = serde_json::from_str(r#"{"a":[1,{"b":[]}]}"#).unwrap();
        assert_eq!(value_depth(&v), 4);
        assert_eq!(json_depth(br#"{"a":[1,{"b":[]}]}"#, 10), 4);
    }
}
