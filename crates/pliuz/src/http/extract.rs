//! Request extractors: who is calling, and a JSON body whose every mistake
//! becomes a precise problem+json answer.

use super::error::Problem;
use super::AppState;
use crate::auth::{self, Principal};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

/// The authenticated caller: an agent key or a user token in
/// `Authorization: Bearer`, or an inbox session (see `inbox`).
pub struct Auth(pub Principal);

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(token) = bearer(parts) {
            let principal = state
                .cp
                .store
                .principal_for_secret_hash(&auth::hash_secret(token))
                .await?;
            return principal.map(Auth).ok_or_else(|| {
                Problem::unauthorized("the bearer token is unknown or revoked; create a new one with `pliuz agents create` or `pliuz users token`")
            });
        }
        if let Some(principal) = super::session::session_principal(parts, state).await? {
            return Ok(Auth(principal));
        }
        Err(Problem::unauthorized(
            "send 'Authorization: Bearer <agent key or user token>'",
        ))
    }
}

/// `axum::Json` with problem+json rejections that say what to fix.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

fn json_problem(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            // "Failed to deserialize the JSON body into the target type: tool_args: invalid type..."
            let text = e.body_text();
            let detail = text
                .split_once("target type: ")
                .map(|(_, d)| d.to_owned())
                .unwrap_or(text);
            // serde speaks of maps and sequences; API users think in JSON.
            let detail = detail
                .replace("a map", "a JSON object")
                .replace("a sequence", "a JSON array");
            let named = |prefix: &str| {
                detail
                    .strip_prefix(prefix)
                    .and_then(|rest| rest.split('`').next())
                    .map(str::to_owned)
            };
            let (field, message) = match detail.split_once(": ") {
                Some((f, m)) if !f.contains(' ') => (f.to_owned(), m.to_owned()),
                _ => {
                    let field = named("missing field `")
                        .or_else(|| named("unknown field `"))
                        .unwrap_or_else(|| "body".to_owned());
                    (field, detail.clone())
                }
            };
            Problem::validation(vec![crate::service::FieldError::new(field, message)])
        }
        JsonRejection::JsonSyntaxError(e) => Problem::bad_request(format!(
            "the body is not valid JSON: {}",
            e.body_text()
                .split_once("target type: ")
                .map(|(_, d)| d.to_owned())
                .unwrap_or_else(|| e.body_text())
        )),
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Expected JSON",
            "send the body with 'Content-Type: application/json'",
        ),
        JsonRejection::BytesRejection(e) => {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "Body too large",
                    "the request body is over the server's limit (max_body_bytes, default 1 MiB); send smaller arguments or raise the limit",
                )
            } else {
                Problem::bad_request(format!(
                    "could not read the request body: {}",
                    e.body_text()
                ))
            }
        }
        other => Problem::bad_request(other.body_text()),
    }
}

/// `axum::extract::Query` with problem+json rejections.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(Problem::bad_request(format!(
                    "bad query string: {}",
                    e.body_text()
                        .trim_start_matches("Failed to deserialize query string: ")
                )))
            }
            Err(other) => Err(Problem::bad_request(other.body_text())),
        }
    }
}
