//! Signed notes and checkpoints: opening arbitrary text never panics, and a
//! body signed with a trusted key opens to the same checkpoint it parses to.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::note_checkpoint(data));
