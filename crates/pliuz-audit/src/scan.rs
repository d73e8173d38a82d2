//! Allocation-free check that bytes are exactly the canonical (RFC 8785)
//! encoding of an [`Entry`](crate::Entry), used on the hot path of export
//! verification.
//!
//! Because the entry's top-level keys are fixed, canonical key order means
//! the top level is one exact sequence of keys; inside `data`, keys must be
//! strictly increasing in UTF-16 order (which also rules out duplicates),
//! strings must use only JCS escapes, and numbers must be printed exactly as
//! ECMAScript prints the double they denote. Differentially tested against
//! "parse with serde, re-serialize, compare" (`Entry::parse_canonical`).

use crate::Error;

const MAX_DEPTH: usize = crate::limits::MAX_ENTRY_DEPTH;

#[cold]
fn err(at: usize, why: &str) -> Error {
    Error::NotCanonical(format!("not canonical JSON (RFC 8785) at byte {at}: {why}"))
}

struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    /// Whether the bytes at the cursor are `lit`. Inlined byte compare
    /// rather than a `memcmp` call: literals are one to fifteen bytes and
    /// this runs several times per entry.
    #[inline(always)]
    fn at(&self, lit: &[u8]) -> bool {
        self.b
            .get(self.pos..self.pos + lit.len())
            .is_some_and(|have| have.iter().zip(lit).all(|(a, b)| a == b))
    }

    #[inline(always)]
    fn expect(&mut self, lit: &[u8]) -> Result<(), Error> {
        if self.at(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(self.expected(lit))
        }
    }

    #[cold]
    fn expected(&self, lit: &[u8]) -> Error {
        err(
            self.pos,
            &format!("expected {}", String::from_utf8_lossy(lit)),
        )
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// Scans a canonical string starting at `"`; returns the raw contents
    /// (between the quotes) and whether it contained escapes.
    #[inline]
    fn string(&mut self) -> Result<(&'a [u8], bool), Error> {
        self.expect(b"\"")?;
        let start = self.pos;
        // Most strings have no escapes: one run to the closing quote.
        self.pos += plain_run(&self.b[start..]);
        if self.peek() == Some(b'"') {
            self.pos += 1;
            return Ok((&self.b[start..self.pos - 1], false));
        }
        self.string_rest(start)
    }

    /// The rest of a string that did not end at its first special byte
    /// (an escape or an error), which is at the cursor.
    #[inline(never)]
    fn string_rest(&mut self, start: usize) -> Result<(&'a [u8], bool), Error> {
        let mut escaped = false;
        loop {
            self.pos += plain_run(&self.b[self.pos..]);
            let Some(c) = self.peek() else {
                return Err(err(self.pos, "unterminated string"));
            };
            match c {
                b'"' => {
                    let s = &self.b[start..self.pos];
                    self.pos += 1;
                    return Ok((s, escaped));
                }
                b'\\' => {
                    escaped = true;
                    let e = self.b.get(self.pos + 1).copied();
                    match e {
                        Some(b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 2,
                        Some(b'u') => {
                            // Only control characters without a short form
                            // are escaped, as \u00xx with lowercase hex.
                            let h = self.b.get(self.pos + 2..self.pos + 6);
                            let v = h.and_then(|h| {
                                let s = std::str::from_utf8(h).ok()?;
                                if !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
                                    return None;
                                }
                                u16::from_str_radix(s, 16).ok()
                            });
                            match v {
                                Some(v)
                                    if v < 0x20
                                        && !matches!(v, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) =>
                                {
                                    self.pos += 6
                                }
                                _ => return Err(err(self.pos, "non-canonical \\u escape")),
                            }
                        }
                        _ => return Err(err(self.pos, "invalid escape")),
                    }
                }
                // `plain_run` stopped here: a control character.
                _ => return Err(err(self.pos, "unescaped control character")),
            }
        }
    }

    fn number(&mut self) -> Result<(), Error> {
        let start = self.pos;
        let b = self.b;
        let mut p = self.pos;
        if b.get(p) == Some(&b'-') {
            p += 1;
        }
        let int_start = p;
        let invalid = || err(start, "invalid number");
        p = digit_run(b, p).ok_or_else(invalid)?;
        let int_len = p - int_start;
        let mut simple = true;
        if b.get(p) == Some(&b'.') {
            simple = false;
            p = digit_run(b, p + 1).ok_or_else(invalid)?;
        }
        if matches!(b.get(p), Some(b'e' | b'E')) {
            simple = false;
            p += 1;
            if matches!(b.get(p), Some(b'+' | b'-')) {
                p += 1;
            }
            p = digit_run(b, p).ok_or_else(invalid)?;
        }
        self.pos = p;
        let text = &b[start..p];
        if simple && int_len <= 15 {
            // Integers below 10^15 are exact doubles and print as themselves,
            // except for leading zeros and negative zero.
            let leading_zero = int_len > 1 && b[int_start] == b'0';
            let neg_zero = text == b"-0";
            return if leading_zero || neg_zero {
                Err(err(start, "non-canonical number"))
            } else {
                Ok(())
            };
        }
        // General case: must equal the ECMAScript rendering of its double.
        let f: f64 = std::str::from_utf8(text)
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|f: &f64| f.is_finite())
            .ok_or_else(|| err(start, "invalid number"))?;
        let mut buf = ryu_js::Buffer::new();
        if buf.format_finite(f).as_bytes() == text {
            Ok(())
        } else {
            Err(err(start, "non-canonical number"))
        }
    }

    /// After an element or member: consumes `,` (`false`: another
    /// follows) or `close` (`true`: the container ends); anything else is
    /// the error `why`.
    #[inline]
    fn closes(&mut self, close: u8, why: &str) -> Result<bool, Error> {
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(false)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(true)
            }
            _ => Err(err(self.pos, why)),
        }
    }

    fn value(&mut self, depth: usize) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(err(self.pos, "nesting too deep"));
        }
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{') => self.object(depth),
            Some(b'[') => {
                self.pos += 1;
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.value(depth + 1)?;
                    if self.closes(b']', "expected , or ]")? {
                        return Ok(());
                    }
                }
            }
            Some(b't') => self.expect(b"true"),
            Some(b'f') => self.expect(b"false"),
            Some(b'n') => self.expect(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(err(self.pos, "expected a value")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<(), Error> {
        self.expect(b"{")?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        let mut prev: Option<(&[u8], bool)> = None;
        loop {
            let key_at = self.pos;
            let key = self.string()?;
            if let Some(p) = prev {
                if key_order(p, key) != std::cmp::Ordering::Less {
                    return Err(err(
                        key_at,
                        "object keys not in strictly increasing UTF-16 order",
                    ));
                }
            }
            prev = Some(key);
            self.expect(b":")?;
            self.value(depth + 1)?;
            if self.closes(b'}', "expected , or }")? {
                return Ok(());
            }
        }
    }
}

/// The end of the run of ASCII digits starting at `p`; `None` when there is
/// not at least one.
#[inline]
fn digit_run(b: &[u8], p: usize) -> Option<usize> {
    let digits = b
        .get(p..)?
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    (digits > 0).then_some(p + digits)
}

/// Length of the leading run of bytes that need no attention inside a
/// string (anything but `"`, `\\` and control characters). Looks at eight
/// bytes per step: this loop is most of the scanner's time.
#[inline]
fn plain_run(b: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Sets the high bit of every byte of `v` below `n` (n <= 0x80), possibly
    // also of higher bytes *after* a true hit, never below the first one: so
    // the lowest set bit is exactly the first hit (bytes are little-endian).
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGHS;
    let zero = |v: u64| below(v, 1);
    let mut at = 0;
    while let Some(chunk) = b.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_le_bytes(word);
        let hits = below(v, 0x20)
            | zero(v ^ (ONES * u64::from(b'"')))
            | zero(v ^ (ONES * u64::from(b'\\')));
        if hits != 0 {
            return at + (hits.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + b[at..]
        .iter()
        .take_while(|&&c| c >= 0x20 && c != b'"' && c != b'\\')
        .count()
}

/// Decodes the contents of a canonical string (escapes already validated).
fn decode(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let h: String = chars.by_ref().take(4).collect();
                let v = u32::from_str_radix(&h, 16).ok().and_then(char::from_u32);
                out.push(v.unwrap_or('\u{fffd}'));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn key_order(a: (&[u8], bool), b: (&[u8], bool)) -> std::cmp::Ordering {
    if !a.1 && !b.1 {
        // Unescaped keys are their UTF-8 bytes, which agree up to the first
        // differing byte. If one of the two differing bytes is ASCII, the
        // agreeing prefix is whole characters (an ASCII byte never continues
        // one) and the next characters compare as those bytes do in UTF-16
        // too (a non-ASCII character is >= U+0080 in both); if one key ends
        // there, it is a prefix of the other and comes first.
        let common = a.0.iter().zip(b.0).take_while(|(x, y)| x == y).count();
        match (a.0.get(common), b.0.get(common)) {
            (Some(x), Some(y)) if *x < 0x80 || *y < 0x80 => return x.cmp(y),
            (Some(_), Some(_)) => {}
            _ => return a.0.len().cmp(&b.0.len()),
        }
        // Valid UTF-8 is checked up front; compare by UTF-16 code units.
        let (Ok(x), Ok(y)) = (std::str::from_utf8(a.0), std::str::from_utf8(b.0)) else {
            return a.0.cmp(b.0);
        };
        return x.encode_utf16().cmp(y.encode_utf16());
    }
    decode(a.0).encode_utf16().cmp(decode(b.0).encode_utf16())
}

fn check_time_str(raw: &[u8], escaped: bool, at: usize) -> Result<(), Error> {
    // A valid time is ASCII, so `from_utf8` only runs on one.
    if !escaped && crate::entry::time_shape(raw) {
        return Ok(());
    }
    let t = std::str::from_utf8(raw).ok().filter(|_| !escaped);
    match t {
        Some(t) => crate::entry::check_time(t).map_err(|e| Error::NotCanonical(e.to_string())),
        None => Err(err(at, "invalid time")),
    }
}

/// Checks that `bytes` is exactly a canonical entry and returns its `index`.
pub(crate) fn canonical_entry_index(bytes: &[u8]) -> Result<u64, Error> {
    // Entries are mostly ASCII, which is quicker to confirm than UTF-8.
    if !bytes.is_ascii() && std::str::from_utf8(bytes).is_err() {
        return Err(Error::NotCanonical("not valid UTF-8".into()));
    }
    let mut s = Scanner { b: bytes, pos: 0 };
    s.expect(b"{\"actor\":")?;
    s.string()?;
    if s.at(b",\"approval_id\":") {
        s.pos += 15;
        s.string()?;
    }
    s.expect(b",\"data\":")?;
    s.value(1)?;
    s.expect(b",\"index\":")?;
    let at = s.pos;
    // At most 16 digits (2^53 has 16), no leading zero: checked while
    // reading them, so the value cannot overflow.
    let mut index = 0u64;
    let mut digits = 0usize;
    while let Some(d) = s.peek().filter(u8::is_ascii_digit) {
        if digits == 16 || (digits == 1 && index == 0) {
            digits = usize::MAX;
            break;
        }
        index = index * 10 + u64::from(d - b'0');
        digits += 1;
        s.pos += 1;
    }
    if digits == 0 || digits == usize::MAX || index >= (1 << 53) {
        return Err(err(
            at,
            "index must be a canonical non-negative integer below 2^53",
        ));
    }
    s.expect(b",\"time\":")?;
    let at = s.pos;
    let (t, esc) = s.string()?;
    check_time_str(t, esc, at)?;
    s.expect(b",\"type\":")?;
    s.string()?;
    s.expect(b"}")?;
    if s.pos != bytes.len() {
        return Err(err(s.pos, "trailing bytes after the entry"));
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::canonical_entry_index;
    use crate::Entry;
    use serde_json::json;

    fn samples() -> Vec<Vec<u8>> {
        let datas = [
            json!({"a": [1, -2, 0.5, 1e21, 1e-7, true, false, null], "b": {"\u{e000}": "x", "\u{1F600}": "y"}}),
            json!({"s": "q\"\\\n\r\t\u{8}\u{c}\u{1}\u{7f}é😀", "n": -0.25, "big": 9007199254740991u64}),
            json!(null),
            json!([[], {}, [{}]]),
        ];
        datas
            .into_iter()
            .enumerate()
            .map(|(i, data)| {
                Entry {
                    index: i as u64 * 1234,
                    time: "2025-01-31T12:00:00.123Z".into(),
                    kind: "approval.decided".into(),
                    actor: "user:a@b".into(),
                    approval_id: (i % 2 == 0).then(|| "apr_1".to_owned()),
                    data,
                }
                .to_canonical_bytes()
                .expect("canonical")
            })
            .collect()
    }

    /// The byte scanner and the serde round trip must accept exactly the
    /// same inputs. Mutate canonical entries every way a byte can change.
    #[test]
    fn scanner_agrees_with_round_trip() {
        let alphabet: &[u8] = b"{}[]\",:0123456789-+.eE \\/abfnrtuAZ\x01\x7f\xc3\xa9";
        let mut checked = 0;
        for base in samples() {
            assert!(canonical_entry_index(&base).is_ok());
            for pos in 0..=base.len() {
                let mut variants: Vec<Vec<u8>> = Vec::new();
                if pos < base.len() {
                    let mut d = base.clone();
                    d.remove(pos);
                    variants.push(d);
                }
                for &c in alphabet {
                    let mut ins = base.clone();
                    ins.insert(pos, c);
                    variants.push(ins);
                    if pos < base.len() {
                        let mut rep = base.clone();
                        rep[pos] = c;
                        variants.push(rep);
                    }
                }
                for v in variants {
                    let fast = canonical_entry_index(&v).is_ok();
                    let slow = Entry::parse_by_round_trip(&v).is_ok();
                    assert_eq!(fast, slow, "disagree on {}", String::from_utf8_lossy(&v));
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000);
    }

    #[test]
    fn scanner_number_forms() {
        let base = |n: &str| {
            format!(
                r#"{{"actor":"a","data":{n},"index":0,"time":"2025-01-31T12:00:00.123Z","type":"t"}}"#
            )
        };
        for (n, ok) in [
            ("0", true),
            ("-0", false),
            ("007", false),
            ("1.0", false),
            ("1.5", true),
            ("1e21", false),
            ("1e+21", true),
            ("100000000000000000000", true),
            ("1000000000000000000000", false),
            ("9007199254740993", false),
            ("0.000001", true),
            ("1e-7", true),
            ("0.0000001", false),
            ("-1.5E3", false),
            ("1.", false),
            (".5", false),
        ] {
            let v = base(n);
            assert_eq!(canonical_entry_index(v.as_bytes()).is_ok(), ok, "{n}");
            assert_eq!(
                Entry::parse_by_round_trip(v.as_bytes()).is_ok(),
                ok,
                "{n} (round trip)"
            );
        }
    }
}
