//! A CEL condition and the call's arguments, both from the input (source,
//! then a NUL, then JSON args): compiling never panics, the cost estimate
//! is total, and evaluation within the budget returns.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::cel_condition(data));
