//! Extractors for the inbox pages: the logged-in person (or a redirect to
//! the log-in page) and CSRF-checked form posts. The cookie and token
//! plumbing itself is `crate::http::session`.

use super::pages::WebError;
use crate::http::session::{
    csrf_matches, is_cross_site, is_safe_method, load_session, CSRF_HEADER,
};
use crate::http::AppState;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;

pub use crate::http::session::Session;

/// Extractor: the logged-in person; otherwise off to the log-in page.
pub struct Viewer(pub Session);

impl FromRequestParts<AppState> for Viewer {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        match load_session(&parts.headers, state).await? {
            Some(s) => Ok(Viewer(s)),
            None if is_safe_method(&parts.method) => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/inbox");
                let q = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
                Err(WebError::Redirect(format!("/login?{q}")))
            }
            None => Err(WebError::new(
                StatusCode::UNAUTHORIZED,
                "Please log in",
                "Your session has ended. Log in again, then repeat what you were doing.",
            )),
        }
    }
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// Extractor for state-changing form posts: a live session plus its CSRF
/// token (form field `csrf` or header `X-CSRF-Token`), then the form.
pub struct CsrfForm<T>(pub Session, pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, WebError> {
        let (mut parts, body) = req.into_parts();
        let Viewer(session) = Viewer::from_request_parts(&mut parts, state).await?;
        if is_cross_site(&parts.headers) {
            return Err(WebError::forbidden(
                "Cross-site requests cannot change anything.",
            ));
        }
        let limit = state.cp.settings.max_body_bytes;
        let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
            WebError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The form is too large",
                "The form is over the server's size limit (max_body_bytes).",
            )
        })?;
        let header_token = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let field = serde_urlencoded::from_bytes::<CsrfField>(&bytes)
            .map(|f| f.csrf)
            .unwrap_or_default();
        if !csrf_matches(&session.csrf, &field) && !csrf_matches(&session.csrf, header_token) {
            return Err(WebError::new(
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The security token of this form is missing or does not match your session (CSRF protection). Reload the page and try again.",
            ));
        }
        let form = serde_urlencoded::from_bytes::<T>(&bytes)
            .map_err(|e| WebError::bad_request(format!("The form could not be read: {e}")))?;
        Ok(CsrfForm(session, form))
    }
}
