//! Pliuz: a human-approval control plane for AI agent tool calls.
//!
//! The domain (`approval`, `policy`) is pure; `service` runs use cases over
//! the `store`; `api`, `inbox` and `slack` are the HTTP edges; `cli` is the
//! admin command line.

#![recursion_limit = "256"]

pub mod api;
pub mod approval;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod encryption;
pub mod expiry;
pub mod inbox;
pub mod notify;
pub mod outbox;
pub mod policy;
pub mod run;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod slack;
pub mod store;
pub mod webhooks;
