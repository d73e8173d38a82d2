//! Pliuz: a human-approval control plane for AI agent tool calls.
//!
//! The domain (`approval`, `policy`) is pure; `service` runs use cases over
//! the `store`; `api`, `inbox` and `slack` are the HTTP edges; `cli` is the
//! admin command line.

#![recursion_limit = "256"]

pub mod api;
pub(crate) mod approval;
pub(crate) mod approver_check;
pub(crate) mod audit;
pub mod audit_event;
pub(crate) mod auth;
pub mod cli;
pub mod config;
pub(crate) mod diff;
pub(crate) mod encryption;
pub(crate) mod enum_names;
pub(crate) mod expiry;
pub(crate) mod file_modes;
pub mod http;
pub(crate) mod inbox;
pub(crate) mod listener;
pub(crate) mod mailer;
pub(crate) mod memory_return;
pub(crate) mod metrics;
pub(crate) mod notify;
pub(crate) mod originator;
pub(crate) mod outbox;
pub(crate) mod password_gate;
pub mod policy;
pub(crate) mod private_file;
pub(crate) mod question;
pub(crate) mod redact;
pub(crate) mod reminders;
pub(crate) mod run;
pub mod server;
pub(crate) mod service;
pub(crate) mod shutdown;
pub mod slack;
/// Public only for the benchmarks (`benches/audit_append.rs` measures the
/// store directly); inside the crate only `service` names it
/// (`tests/layering.rs`).
#[doc(hidden)]
pub mod store;
pub(crate) mod text;
pub(crate) mod webhooks;
