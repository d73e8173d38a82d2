//! `GET /metrics`: Prometheus metrics in the OpenMetrics text format (the
//! families are in `crate::metrics`). Served only when `[metrics]` turns it
//! on; with `metrics.token` set, only to `Authorization: Bearer <token>`.

use crate::http::error::Problem;
use crate::http::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};

pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let settings = &state.cp.settings.metrics;
    if !settings.enabled {
        // Says how to turn them on: the route is in the OpenAPI document anyway.
        return Problem::not_found(
            "metrics are off; turn them on with [metrics] enabled = true or a metrics.token (see docs/operations.md, \"Metrics\")",
        )
        .into_response();
    }
    if let Some(token) = &settings.token {
        if !crate::http::extract::bearer(&headers).is_some_and(|g| token.matches(g)) {
            return Problem::unauthorized(
                "send the metrics token (metrics.token / PLIUZ_METRICS_TOKEN) as Authorization: Bearer <token>",
            )
            .into_response();
        }
    }
    let gauges = match state.cp.store_gauges().await {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the metrics gauges");
            return Problem::unavailable("the store did not answer; try again").into_response();
        }
    };
    let body = state
        .cp
        .metrics
        .render(&gauges, std::time::SystemTime::now());
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}
