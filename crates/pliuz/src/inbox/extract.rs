//! Extractors for the HTML routes whose rejections are HTML error pages,
//! never axum's plain-text ones (the API's equivalents answer problem+json).

use super::pages::WebError;
use axum::extract::{Form, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// `axum::Form` with an HTML error page on a wrong content type, a body over
/// `max_body_bytes` or a form that cannot be read.
pub struct WebForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for WebForm<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &S) -> Result<Self, WebError> {
        Form::<T>::from_request(req, state)
            .await
            .map(|Form(f)| WebForm(f))
            .map_err(|e| match e.status() {
                StatusCode::UNSUPPORTED_MEDIA_TYPE => WebError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Expected a form",
                    "Send the form as application/x-www-form-urlencoded, as the page does.",
                ),
                StatusCode::PAYLOAD_TOO_LARGE => WebError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The form is too large",
                    "The form is over the server's size limit (max_body_bytes).",
                ),
                status => WebError::new(
                    status,
                    "Something is wrong with this request",
                    format!("The form could not be read: {}", e.body_text()),
                ),
            })
    }
}

/// A path segment, with an HTML 400 page when it is not valid
/// percent-encoded UTF-8 and a 404 when it holds control characters (no
/// stored id or token does).
pub struct WebPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for WebPath {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, WebError> {
        let Path(v) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                WebError::bad_request(format!("The address cannot be read: {}", e.body_text()))
            })?;
        if crate::service::unstorable("path", &v).is_some() {
            return Err(WebError::not_found("There is nothing at this address."));
        }
        Ok(WebPath(v))
    }
}
