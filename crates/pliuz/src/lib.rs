//! Pliuz: a human-approval control plane for AI agent tool calls.
//!
//! The domain (`approval`, `policy`) is pure; `service` runs use cases over
//! the `store`; `api`, `inbox` and `slack` are the HTTP edges; `cli` is the
//! admin command line.

#![recursion_limit = "256"]

pub mod api;
pub mod approval;
pub mod approver_check;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod encryption;
pub mod expiry;
pub mod file_modes;
pub mod inbox;
pub mod listener;
pub mod notify;
pub mod originator;
pub mod outbox;
pub mod password_gate;
pub mod policy;
pub mod redact;
pub mod run;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod slack;
pub mod store;
pub mod webhooks;
