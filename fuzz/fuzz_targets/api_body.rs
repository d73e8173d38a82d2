//! The API's request-body checks (create, decision, execution, cancel): the
//! first byte picks the route, the rest is the body. Every outcome is Ok or
//! a problem with a 4xx status, never a panic or a 5xx.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::api_body(data));
