//! The JSON API (`/api/v1`): its route table, handlers and OpenAPI
//! document. Handlers stay thin and call into `service`; state, errors and
//! extractors come from `http`.

pub mod admin_agents;
pub mod admin_policies;
pub mod admin_users;
pub mod approvals;
pub mod audit;
pub mod long_poll;
pub mod metrics;
pub mod openapi;
pub mod questions;
pub mod runs;

use crate::http::error::Problem;
use crate::http::{extract, AppState};
use axum::extract::State;
use axum::http::{header, Method, StatusCode};
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

/// Every `/api/v1` route (paths in axum syntax, `{id}` style).
pub fn routes() -> Vec<Route> {
    let mut r = vec![
        route(Method::POST, "/api/v1/approvals", post(approvals::create)),
        route(Method::GET, "/api/v1/approvals", get(approvals::list)),
        route(Method::GET, "/api/v1/approvals/{id}", get(approvals::get)),
        route(
            Method::POST,
            "/api/v1/approvals/{id}/decision",
            post(approvals::decide),
        ),
        route(
            Method::POST,
            "/api/v1/approvals/{id}/execution",
            post(approvals::execution),
        ),
        route(
            Method::POST,
            "/api/v1/approvals/{id}/cancel",
            post(approvals::cancel),
        ),
        route(Method::GET, "/api/v1/policies", get(policies)),
        route(Method::GET, "/api/v1/openapi.json", get(openapi_doc)),
        route(Method::GET, "/healthz", get(healthz)),
        route(Method::GET, "/readyz", get(readyz)),
        route(Method::GET, "/metrics", get(metrics::metrics)),
    ];
    r.extend(admin_agents::routes());
    r.extend(admin_users::routes());
    r.extend(admin_policies::routes());
    r.extend(audit::routes());
    r.extend(runs::routes());
    r.extend(questions::routes());
    r
}

/// 201 Created, with the new resource's URL in `Location`.
pub(crate) fn created_response(location: String, body: impl Serialize) -> Response {
    created_or_found(true, location, body)
}

/// 201 when `made`; 200 with the same `Location` when an idempotent retry
/// found the resource made already.
pub(crate) fn created_or_found(made: bool, location: String, body: impl Serialize) -> Response {
    let status = if made {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, [(header::LOCATION, location)], Json(body)).into_response()
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
