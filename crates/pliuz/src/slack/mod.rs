//! Slack: Block Kit messages, the Web API client, and the interactivity endpoint.

use crate::api::AppState;
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new()
}
