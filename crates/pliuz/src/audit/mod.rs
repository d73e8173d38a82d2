//! The audit trail's server side: HTTP routes, checkpoint signing worker,
//! export. The pure log maths and formats live in the `pliuz-audit` crate.

pub mod cli;

use crate::api::Route;
use serde_json::Value;

pub fn routes() -> Vec<Route> {
    Vec::new()
}

pub fn openapi_operations() -> Vec<(&'static str, &'static str, Value)> {
    Vec::new()
}
