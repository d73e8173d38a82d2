//! The JSON API (`/api/v1`): its route table, handlers and OpenAPI
//! document. Handlers stay thin and call into `service`; state, errors and
//! extractors come from `http`.

pub mod admin_agents;
pub mod admin_policies;
pub mod admin_users;
pub mod approvals;
pub mod audit;
pub mod created;
pub mod input;
pub mod long_poll;
pub mod metrics;
pub mod openapi;
pub mod questions;
pub mod runs;

use crate::http::error::Problem;
use crate::http::{extract, AppState};
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

/// One API route: the router and the OpenAPI document are both built from
/// this table, so they cannot drift apart.
pub struct Route {
    #[cfg_attr(not(test), allow(dead_code))] // the OpenAPI route test reads it
    pub method: Method,
    pub path: &'static str,
    pub handler: MethodRouter<AppState>,
}

fn route(method: Method, path: &'static str, handler: MethodRouter<AppState>) -> Route {
    Route {
        method,
        path,
        handler,
    }
}

/// Every route of the JSON API (paths in axum syntax, `{id}` style). The
/// run routes that take a state read their body under
/// `max_run_state_bytes` instead of the general body limit.
#[rustfmt::skip] // one line a route, so that the table reads as one
pub fn routes() -> Vec<Route> {
    use axum::routing::{delete, put};
    use Method as M;
    let state_limit = axum::extract::DefaultBodyLimit::disable;
    vec![
        route(M::POST, "/api/v1/approvals", post(approvals::create)),
        route(M::GET, "/api/v1/approvals", get(approvals::list)),
        route(M::GET, "/api/v1/approvals/{id}", get(approvals::get)),
        route(M::POST, "/api/v1/approvals/{id}/decision", post(approvals::decide)),
        route(M::POST, "/api/v1/approvals/{id}/execution", post(approvals::execution)),
        route(M::POST, "/api/v1/approvals/{id}/cancel", post(approvals::cancel)),
        route(M::GET, "/api/v1/approvals/{id}/receipt", get(audit::receipt)),
        route(M::GET, "/api/v1/policies", get(policies)),
        route(M::GET, "/api/v1/openapi.json", get(openapi_doc)),
        route(M::GET, "/healthz", get(healthz)),
        route(M::GET, "/readyz", get(readyz)),
        route(M::GET, "/metrics", get(metrics::metrics)),
        route(M::POST, "/api/v1/admin/agents", post(admin_agents::create)),
        route(M::GET, "/api/v1/admin/agents", get(admin_agents::list)),
        route(M::GET, "/api/v1/admin/agents/{name}", get(admin_agents::get_one)),
        route(M::POST, "/api/v1/admin/agents/{name}/revoke", post(admin_agents::revoke)),
        route(M::PUT, "/api/v1/admin/agents/{name}/webhook", put(admin_agents::set_webhook)),
        route(M::POST, "/api/v1/admin/agents/{name}/webhook/rotate-secret", post(admin_agents::rotate_secret)),
        route(M::POST, "/api/v1/admin/users", post(admin_users::create)),
        route(M::GET, "/api/v1/admin/users", get(admin_users::list)),
        route(M::GET, "/api/v1/admin/users/{email}", get(admin_users::get_one)),
        route(M::PUT, "/api/v1/admin/users/{email}/groups", put(admin_users::set_groups)),
        route(M::PUT, "/api/v1/admin/users/{email}/role", put(admin_users::set_role)),
        route(M::POST, "/api/v1/admin/users/{email}/disable", post(admin_users::disable)),
        route(M::POST, "/api/v1/admin/users/{email}/enable", post(admin_users::enable)),
        route(M::GET, "/api/v1/admin/users/{email}/tokens", get(admin_users::list_tokens)),
        route(M::POST, "/api/v1/admin/users/{email}/tokens", post(admin_users::create_token)),
        route(M::POST, "/api/v1/admin/users/{email}/tokens/{token_id}/revoke", post(admin_users::revoke_token)),
        route(M::GET, "/api/v1/admin/policies", get(admin_policies::list)),
        route(M::POST, "/api/v1/admin/policies", post(admin_policies::create)),
        route(M::GET, "/api/v1/admin/policies/{name}", get(admin_policies::get_one)),
        route(M::PUT, "/api/v1/admin/policies/{name}", put(admin_policies::replace)),
        route(M::DELETE, "/api/v1/admin/policies/{name}", delete(admin_policies::remove)),
        route(M::GET, "/api/v1/audit/checkpoint", get(audit::checkpoint)),
        route(M::GET, "/api/v1/audit/key", get(audit::key)),
        route(M::GET, "/api/v1/audit/keys", get(audit::keys)),
        route(M::GET, "/api/v1/audit/entries", get(audit::entries)),
        route(M::GET, "/api/v1/audit/proof/inclusion", get(audit::inclusion)),
        route(M::GET, "/api/v1/audit/proof/consistency", get(audit::consistency)),
        route(M::POST, "/api/v1/runs", post(runs::create).layer(state_limit())),
        route(M::GET, "/api/v1/runs", get(runs::list)),
        route(M::GET, "/api/v1/runs/{id}", get(runs::get_one)),
        route(M::PUT, "/api/v1/runs/{id}", put(runs::repause).layer(state_limit())),
        route(M::POST, "/api/v1/runs/{id}/claim", post(runs::claim)),
        route(M::POST, "/api/v1/runs/{id}/heartbeat", post(runs::heartbeat)),
        route(M::POST, "/api/v1/runs/{id}/complete", post(runs::complete)),
        route(M::GET, "/api/v1/questions", get(questions::list)),
        route(M::POST, "/api/v1/questions", post(questions::create)),
        route(M::GET, "/api/v1/questions/{id}", get(questions::get_one)),
        route(M::POST, "/api/v1/questions/{id}/answer", post(questions::answer)),
    ]
}

/// The API's routes, with the answers for unknown routes and methods.
pub fn router() -> Router<AppState> {
    let mut api = Router::new();
    for r in routes() {
        api = api.route(r.path, r.handler);
    }
    api
}

/// problem+json for a path no route serves.
pub async fn not_found() -> Problem {
    Problem::not_found("no such route; see /api/v1/openapi.json for the API")
}

/// problem+json for a route that does not take the request's method.
pub async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
        "this route does not accept that method; see /api/v1/openapi.json",
    )
}

#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "service",
    summary = "Liveness",
    responses((status = 200, description = "ok", body = String, content_type = "text/plain"))
)]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the store takes writes (not merely answers reads).
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "service",
    summary = "Readiness: the store answers",
    responses(
        (status = 200, description = "ready", body = String, content_type = "text/plain"),
        (status = 503, response = openapi::ProblemResponse),
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    match state.cp.readiness().await {
        Ok(()) => "ready".into_response(),
        Err(reason) => {
            tracing::warn!(%reason, "store not ready");
            let mut p = Problem::unavailable(format!("the store cannot take writes: {reason}"));
            p.retry_after = Some(1);
            p.into_response()
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "get_openapi_document",
    tag = "service",
    summary = "This document",
    responses((status = 200, description = "OpenAPI 3.1", body = Object))
)]
pub(crate) async fn openapi_doc() -> Json<serde_json::Value> {
    Json(openapi::document())
}

/// The loaded policies.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Policies)]
pub(crate) struct PoliciesView {
    policies: Vec<crate::policy::PolicySummary>,
    /// The policy used when a request names none and no tool pattern
    /// matches; null when such requests are refused.
    #[schema(required = true)]
    default_policy: Option<String>,
    /// SHA-256 (hex) of the policy file as loaded.
    source_sha256: String,
}

#[utoipa::path(
    get,
    path = "/api/v1/policies",
    operation_id = "list_policies",
    tag = "human",
    summary = "The loaded policies (human)",
    security(("user_token" = []), ("session" = [])),
    responses((status = 200, description = "Policies", body = PoliciesView))
)]
pub(crate) async fn policies(
    State(state): State<AppState>,
    extract::Auth(principal): extract::Auth,
) -> Result<Json<PoliciesView>, Problem> {
    if matches!(principal, crate::auth::Principal::Agent { .. }) {
        return Err(Problem::forbidden(
            "policies are visible to people, not agent keys",
        ));
    }
    Ok(Json(PoliciesView {
        policies: state.cp.policies().iter().map(|p| p.summary()).collect(),
        default_policy: state.cp.policies().default_policy().map(str::to_owned),
        source_sha256: state.cp.policies().source_hash.clone(),
    }))
}
