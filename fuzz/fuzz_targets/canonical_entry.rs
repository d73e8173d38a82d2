//! Canonical entry parsing: whatever parses re-encodes to exactly the input,
//! and the depth scanner never counts less nesting than the parsed value has.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::canonical_entry(data));
