//! The web inbox: server-rendered pages for approvers, auditors and admins.

use crate::api::error::Problem;
use crate::api::AppState;
use crate::auth::Principal;
use axum::http::request::Parts;
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new()
}

/// The person behind an inbox session cookie, if any.
pub async fn session_principal(
    _parts: &Parts,
    _state: &AppState,
) -> Result<Option<Principal>, Problem> {
    Ok(None)
}
