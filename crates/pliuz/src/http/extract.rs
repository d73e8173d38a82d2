//! Request extractors: who is calling, and a JSON body whose every mistake
//! becomes a precise problem+json answer.

use super::error::Problem;
use super::AppState;
use crate::approval::Actor;
use crate::auth::{self, Principal};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use pliuz_audit::limits::{json_depth, MAX_JSON_DEPTH};
use serde::de::DeserializeOwned;

/// The authenticated caller: an agent key or a user token in
/// `Authorization: Bearer`, or an inbox session (see `inbox`).
pub struct Auth(pub Principal);

/// The token of `Authorization: Bearer <token>` (the scheme in any case).
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        if let Some(principal) = bearer_principal(parts, state).await? {
            return Ok(Auth(principal));
        }
        if let Some(principal) = super::session::session_principal(parts, state).await? {
            return Ok(Auth(principal));
        }
        Err(Problem::unauthorized(
            "send 'Authorization: Bearer <agent key or user token>'",
        ))
    }
}

/// Who an `Authorization: Bearer` token belongs to; `None` when none is sent.
async fn bearer_principal(parts: &Parts, state: &AppState) -> Result<Option<Principal>, Problem> {
    let Some(token) = bearer(&parts.headers) else {
        return Ok(None);
    };
    let principal = state
        .cp
        .principal_for_secret_hash(
            &auth::hash_secret(token),
            token.starts_with(auth::USER_TOKEN_PREFIX),
        )
        .await?;
    principal.map(Some).ok_or_else(|| {
        Problem::unauthorized("the bearer token is unknown or revoked; create a new one with `pliuz agents create` or `pliuz users token`")
    })
}

/// An admin calling the management API (`/api/v1/admin/...`) with their
/// personal API token. Agent keys, other roles and inbox sessions are
/// refused: a machine token is what automation holds, and a session would
/// need the CSRF dance of the admin pages.
pub struct AdminAuth(pub auth::User);

impl AdminAuth {
    /// The admin as the audit log names them.
    pub fn actor(self) -> Actor {
        Actor::User(self.0.email)
    }
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        match bearer_principal(parts, state).await? {
            Some(Principal::User(u)) if u.role == auth::Role::Admin => Ok(AdminAuth(u)),
            Some(Principal::User(u)) => Err(Problem::forbidden(format!(
                "the management API is for admins; {} has the role {}",
                u.email, u.role
            ))),
            Some(Principal::Agent { name }) => Err(Problem::forbidden(format!(
                "the management API takes an admin's personal API token, not an agent key (this is agent '{name}')"
            ))),
            None => Err(Problem::unauthorized(
                "send 'Authorization: Bearer <token>' with the personal API token of an admin (`pliuz users token EMAIL`)",
            )),
        }
    }
}

/// `axum::Json` with problem+json rejections that say what to fix, and the
/// API's nesting limit (`pliuz_audit::limits`) enforced before parsing.
pub struct ApiJson<T>(pub T);

/// `application/json` or any `application/*+json`, as `axum::Json` accepts.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(unsupported_media_type());
        }
        let ApiBytes(bytes) = ApiBytes::from_request(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A JSON body as the API reads it: the nesting limit, then the type, with
/// every mistake a problem+json answer. No I/O (also fuzzed).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    check_depth(bytes)?;
    match axum::Json::<T>::from_bytes(bytes) {
        Ok(axum::Json(v)) => Ok(v),
        Err(rejection) => Err(json_problem(rejection)),
    }
}

/// Refuses JSON nested deeper than the API accepts: such arguments would be
/// logged in entries some verifiers cannot parse.
pub fn check_depth(bytes: &[u8]) -> Result<(), Problem> {
    if json_depth(bytes, MAX_JSON_DEPTH) > MAX_JSON_DEPTH {
        return Err(Problem::invalid(
            "body",
            format!("JSON nests deeper than {MAX_JSON_DEPTH} levels of arrays and objects; flatten the arguments"),
        ));
    }
    Ok(())
}

/// The raw body, with a problem+json 413 over `max_body_bytes`.
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(ApiBytes)
            .map_err(bytes_problem)
    }
}

fn unsupported_media_type() -> Problem {
    Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Expected JSON",
        "send the body with 'Content-Type: application/json'",
    )
}

fn bytes_problem(e: BytesRejection) -> Problem {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Body too large",
            "the request body is over the server's limit (max_body_bytes, default 1 MiB; see docs/limits.md); send smaller arguments or raise the limit",
        )
    } else {
        Problem::bad_request(format!(
            "could not read the request body: {}",
            e.body_text()
        ))
    }
}

/// A path id: problem+json 400 when it is not valid percent-encoded UTF-8,
/// 422 when it holds characters no store keeps (NUL, control characters).
pub struct ApiPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ApiPath {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(path_problem)?;
        if let Some(e) = crate::service::unstorable("id", &id) {
            return Err(Problem::validation(vec![e]));
        }
        Ok(ApiPath(id))
    }
}

fn path_problem(e: PathRejection) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "bad_path",
        "Malformed path",
        format!(
            "the id in the path cannot be read ({}); ids are the 'id' field of an approval",
            e.body_text()
        ),
    )
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
            Problem::invalid(field, message)
        }
        JsonRejection::JsonSyntaxError(e) => Problem::bad_request(format!(
            "the body is not valid JSON: {}",
            e.body_text()
                .split_once("target type: ")
                .map(|(_, d)| d.to_owned())
                .unwrap_or_else(|| e.body_text())
        )),
        JsonRejection::MissingJsonContentType(_) => unsupported_media_type(),
        JsonRejection::BytesRejection(e) => bytes_problem(e),
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
