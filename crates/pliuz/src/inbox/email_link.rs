//! `GET /email-link/{secret}`: the link in a request or question e-mail.
//! Log-in comes first (the `Viewer` extractor sends a stranger to the
//! log-in page and back); then the link opens the request (question) page
//! once, for a person who may decide (answer) it, before it expires (`ControlPlane::use_email_link`). Every
//! refusal is a page that says why and what to do instead.

use super::pages::{WebError, WebResult};
use super::session::Viewer;
use crate::http::AppState;
use crate::service::email::{LinkRefusal, LinkTarget};
use axum::extract::{Path, State};
use axum::http::StatusCode;

pub async fn open(
    State(state): State<AppState>,
    Viewer(s): Viewer,
    Path(secret): Path<String>,
) -> WebResult {
    match state.cp.use_email_link(&s.principal(), &secret).await? {
        Ok((LinkTarget::Request, id)) => Err(WebError::Redirect(format!("/requests/{id}"))),
        Ok((LinkTarget::Question, id)) => Err(WebError::Redirect(format!("/questions/{id}"))),
        Err(LinkRefusal::Unknown) => Err(WebError::new(
            StatusCode::NOT_FOUND,
            "This link is not valid",
            "The link is not one this server sent, or it is long gone. Find the request or question in your inbox instead.",
        )),
        Err(LinkRefusal::Used) => Err(WebError::new(
            StatusCode::GONE,
            "This link was already used",
            "Each link in an e-mail works once. Find the request or question in your inbox instead.",
        )),
        Err(LinkRefusal::Expired) => Err(WebError::new(
            StatusCode::GONE,
            "This link has expired",
            "Links in e-mails work for a limited time (email.link_ttl). Find the request or question in your inbox instead.",
        )),
        Err(LinkRefusal::NotApprover { policy }) => Err(WebError::forbidden(format!(
            "You are signed in, but you are not an approver of the policy '{policy}', so this link does not open the page for you. Sign in as the person the e-mail was sent to."
        ))),
    }
}
