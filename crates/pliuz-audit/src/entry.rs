//! Log entries and their RFC 8785 (JCS) canonical encoding.
//!
//! The leaf hash covers the canonical bytes, so every party must agree on
//! them byte for byte. A verifier re-encodes each parsed entry and rejects it
//! unless it gets back exactly the bytes it read: an edit that leaves valid
//! but differently-formatted JSON (reordered keys, added spaces, `1.0` for
//! `1`, escaped `\u0061`) is caught as well as one that changes content.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;

/// Largest integer JCS (IEEE-754 doubles) represents exactly; entry indexes
/// above it could not round-trip through a third party's JSON parser.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Position in the log (leaf index), starting at 0. Carried inside the
    /// entry so that deleting or reordering lines of an export is detected at
    /// the exact position.
    pub index: u64,
    /// RFC 3339 UTC timestamp with milliseconds, e.g.
    /// `2025-01-31T12:00:00.000Z`.
    pub time: String,
    /// Event type, e.g. `approval.created`, `approval.decided`,
    /// `user.created`, `policy.loaded`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Who caused the event: `user:a@b`, `agent:bot`, `policy:refunds`,
    /// `system`.
    pub actor: String,
    /// The approval this event belongs to, if any. Omitted from the JSON when
    /// absent (never `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// Event-specific payload.
    pub data: Value,
}

impl Entry {
    /// The RFC 8785 canonical JSON encoding: the exact bytes that are hashed
    /// into the log and written as one line of an export.
    pub fn to_canonical_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(256);
        self.write_canonical(&mut out)?;
        Ok(out)
    }

    /// Appends the canonical encoding to `out`.
    pub(crate) fn write_canonical(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        if self.index > MAX_SAFE_INTEGER {
            return Err(Error::Entry(format!(
                "index {} is beyond 2^53-1 and has no exact JSON representation",
                self.index
            )));
        }
        check_time(&self.time)?;
        // Keys in JCS order (UTF-16 code units; all ASCII here):
        // actor < approval_id < data < index < time < type.
        out.extend_from_slice(b"{\"actor\":");
        write_string(&self.actor, out);
        if let Some(id) = &self.approval_id {
            out.extend_from_slice(b",\"approval_id\":");
            write_string(id, out);
        }
        out.extend_from_slice(b",\"data\":");
        write_value(&self.data, out);
        out.extend_from_slice(b",\"index\":");
        out.extend_from_slice(self.index.to_string().as_bytes());
        out.extend_from_slice(b",\"time\":");
        write_string(&self.time, out);
        out.extend_from_slice(b",\"type\":");
        write_string(&self.kind, out);
        out.push(b'}');
        Ok(())
    }

    /// Parses an entry, rejecting anything that is not exactly its canonical
    /// encoding (no trailing newline).
    ///
    /// Two independent checks must agree: a byte-level canonical-form scan
    /// (the one export verification uses on its hot path) and "deserialize,
    /// re-encode, compare bytes".
    pub fn parse_canonical(bytes: &[u8]) -> Result<Self, Error> {
        crate::scan::canonical_entry_index(bytes)?;
        Self::parse_by_round_trip(bytes)
    }

    /// Deserializes and re-encodes, accepting only byte-identical input.
    pub(crate) fn parse_by_round_trip(bytes: &[u8]) -> Result<Self, Error> {
        let entry: Entry = serde_json::from_slice(bytes)
            .map_err(|e| Error::NotCanonical(format!("not a valid entry: {e}")))?;
        let mut again = Vec::with_capacity(bytes.len());
        entry
            .write_canonical(&mut again)
            .map_err(|e| Error::NotCanonical(e.to_string()))?;
        if again.as_slice() != bytes {
            let at = again
                .iter()
                .zip(bytes)
                .position(|(a, b)| a != b)
                .unwrap_or(again.len().min(bytes.len()));
            return Err(Error::NotCanonical(format!(
                "not canonical JSON (RFC 8785): differs from the canonical form at byte {at}"
            )));
        }
        Ok(entry)
    }
}

/// Checks the `YYYY-MM-DDTHH:MM:SS.mmmZ` shape with plausible field ranges.
/// One fixed format keeps timestamps comparable as strings and makes the
/// canonical form independent of who formatted the time.
pub(crate) fn check_time(t: &str) -> Result<(), Error> {
    if time_shape(t.as_bytes()) {
        Ok(())
    } else {
        Err(Error::Entry(format!(
            "time {t:?} is not RFC 3339 UTC with milliseconds (YYYY-MM-DDTHH:MM:SS.mmmZ)"
        )))
    }
}

/// [`check_time`]'s test, on a fixed-size array (no bounds checks): it runs
/// once per entry when an export is verified.
pub(crate) fn time_shape(t: &[u8]) -> bool {
    let Ok(b) = <&[u8; 24]>::try_from(t) else {
        return false;
    };
    let digit = |i: usize| b[i].is_ascii_digit();
    let two = |i: usize| {
        (digit(i) && digit(i + 1)).then(|| u32::from(b[i] - b'0') * 10 + u32::from(b[i + 1] - b'0'))
    };
    b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
        && (0..4).all(digit)
        && matches!(two(5), Some(1..=12))
        && matches!(two(8), Some(1..=31))
        && matches!(two(11), Some(0..=23))
        && matches!(two(14), Some(0..=59))
        && matches!(two(17), Some(0..=60))
        && (20..23).all(digit)
}

/// JCS string: only `"`, `\` and control characters are escaped, using the
/// short forms where JSON has them and lowercase `\u00xx` otherwise.
fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => &[],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 15)],
            ]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// JCS number: the ECMAScript `Number.prototype.toString` of the IEEE-754
/// double. Integers within 2^53 print as plain decimals either way, which is
/// the fast path.
fn write_number(n: &serde_json::Number, out: &mut Vec<u8>) {
    if let Some(u) = n.as_u64().filter(|&u| u <= MAX_SAFE_INTEGER) {
        out.extend_from_slice(u.to_string().as_bytes());
        return;
    }
    if let Some(i) = n.as_i64().filter(|&i| i.unsigned_abs() <= MAX_SAFE_INTEGER) {
        out.extend_from_slice(i.to_string().as_bytes());
        return;
    }
    // serde_json numbers are always finite, so this is total.
    let f = n.as_f64().unwrap_or(0.0);
    let mut buf = ryu_js::Buffer::new();
    out.extend_from_slice(buf.format_finite(f).as_bytes());
}

/// The RFC 8785 (JCS) canonical encoding of any JSON value: the one
/// canonicaliser of the project (the server's argument digests use it too).
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write_value(value, &mut out);
    out
}

/// JCS value: objects with members sorted by the UTF-16 code units of their
/// names, no insignificant whitespace.
fn write_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(map, out),
    }
}

/// JCS object: members sorted by the UTF-16 code units of their names.
pub(crate) fn write_object(map: &serde_json::Map<String, Value>, out: &mut Vec<u8>) {
    let mut members: Vec<(&String, &Value)> = map.iter().collect();
    members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    out.push(b'{');
    for (i, (k, v)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(k, out);
        out.push(b':');
        write_value(v, out);
    }
    out.push(b'}');
}
