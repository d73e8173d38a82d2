//! Canonical entry parsing: whatever parses re-encodes to exactly the input,
//! and the depth scanner agrees with the parsed value.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::canonical_entry(data));
