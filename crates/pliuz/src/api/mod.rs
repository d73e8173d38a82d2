//! The HTTP edge: routes, state, error mapping. Handlers stay thin and call
//! into `service`.

pub mod approvals;
pub mod error;
pub mod extract;
pub mod openapi;
pub mod runs;

use crate::service::ControlPlane;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use error::Problem;
use std::sync::Arc;

/// Everything a handler may need. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub cp: ControlPlane,
    pub extras: Arc<crate::server::Extras>,
}

/// One API route: the router and the OpenAPI document are both built from
/// this table, so they cannot drift apart.
pub struct Route {
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
            post(approvals::report_execution),
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
    ];
    r.extend(crate::audit::routes());
    r.extend(runs::routes());
    r
}

pub fn router(state: AppState) -> Router {
    let mut api = Router::new();
    for r in routes() {
        api = api.route(r.path, r.handler);
    }
    let body_limit = state.cp.settings.max_body_bytes;
    api.merge(crate::inbox::router())
        .merge(crate::slack::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            Problem::internal().into_response()
        }))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found() -> Problem {
    Problem::not_found("no such route; see /api/v1/openapi.json for the API")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
        "this route does not accept that method; see /api/v1/openapi.json",
    )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.cp.store.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "store not ready");
            Problem::unavailable("the database is not answering").into_response()
        }
    }
}

async fn openapi_doc() -> Json<serde_json::Value> {
    Json(openapi::document())
}

async fn policies(
    State(state): State<AppState>,
    extract::Auth(principal): extract::Auth,
) -> Result<Json<serde_json::Value>, Problem> {
    if matches!(principal, crate::auth::Principal::Agent { .. }) {
        return Err(Problem::forbidden(
            "policies are visible to people, not agent keys",
        ));
    }
    let list: Vec<_> = state.cp.policies.iter().map(|p| p.summary()).collect();
    Ok(Json(serde_json::json!({
        "policies": list,
        "default_policy": state.cp.policies.default_policy(),
        "source_sha256": state.cp.policies.source_hash,
    })))
}
