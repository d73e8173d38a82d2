//! Shared page parts: the layout, error pages, time and value formatting.

use super::session::Session;
use crate::auth::Role;
use crate::http::error::Problem;
use crate::service::ServiceError;
use crate::service::StoreError;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Inbox,
    Overview,
    History,
    Audit,
    Admin,
    None,
}

pub fn layout(title: &str, session: Option<&Session>, nav: Nav, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light";
                @if let Some(s) = session {
                    meta name="csrf-token" content=(s.csrf);
                }
                title { (title) " · Pliuz" }
                link rel="icon" type="image/svg+xml" href="/static/favicon.svg";
                link rel="stylesheet" href="/static/inbox.css";
                script src="/static/inbox.js" defer {}
                script src="/static/keys.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    div.bar {
                        a.brand href="/" aria-label="Pliuz home" {
                            span.logo aria-hidden="true" { "P" }
                            span { "Pliuz" }
                        }
                        @if let Some(s) = session {
                            nav aria-label="Main" {
                                ul {
                                    (nav_link("/inbox", "Inbox", nav == Nav::Inbox))
                                    (nav_link("/overview", "Overview", nav == Nav::Overview))
                                    (nav_link("/history", "History", nav == Nav::History))
                                    @if matches!(s.user.role, Role::Admin | Role::Auditor) {
                                        (nav_link("/audit", "Audit", nav == Nav::Audit))
                                    }
                                    @if s.user.role == Role::Admin {
                                        (nav_link("/admin", "Admin", nav == Nav::Admin))
                                    }
                                }
                            }
                            div.who {
                                span.email title=(s.user.email) { (s.user.email) }
                                span.role { (s.user.role.as_str()) }
                                form method="post" action="/logout" {
                                    input type="hidden" name="csrf" value=(s.csrf);
                                    button.link type="submit" { "Log out" }
                                }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    (body)
                }
                footer.foot {
                    "Pliuz — human approval for AI agents. Every decision is recorded in a tamper-evident log."
                }
            }
        }
    }
}

fn nav_link(href: &str, label: &str, current: bool) -> Markup {
    html! {
        li {
            @if current {
                a href=(href) aria-current="page" { (label) }
            } @else {
                a href=(href) { (label) }
            }
        }
    }
}

pub fn page(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Html(markup.into_string()),
    )
        .into_response()
}

pub fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response()
}

/// An error shown as a page (or a redirect to the log-in page).
#[derive(Debug)]
pub enum WebError {
    Redirect(String),
    Page {
        status: StatusCode,
        title: String,
        message: String,
    },
}

impl WebError {
    pub fn new(status: StatusCode, title: impl Into<String>, message: impl Into<String>) -> Self {
        WebError::Page {
            status,
            title: title.into(),
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        WebError::new(StatusCode::FORBIDDEN, "Not allowed", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        WebError::new(StatusCode::NOT_FOUND, "Not found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        WebError::new(
            StatusCode::BAD_REQUEST,
            "Something is wrong with this request",
            message,
        )
    }
}

impl From<Problem> for WebError {
    fn from(p: Problem) -> Self {
        let mut message = p.detail;
        if !p.errors.is_empty() && p.code != "validation" {
            message = p
                .errors
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; ");
        }
        WebError::new(
            StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            p.title,
            message,
        )
    }
}

/// A refused change, to show on the form that asked for it: its status and
/// message. A 404 is no form's to show: it is an error page of its own.
pub(super) fn refusal_on_form(p: Problem) -> Result<(StatusCode, String), WebError> {
    if p.status == 404 {
        return Err(p.into());
    }
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
    match WebError::from(p) {
        WebError::Page { message, .. } => Ok((status, message)),
        WebError::Redirect(_) => Err(WebError::forbidden("not allowed")),
    }
}

impl From<ServiceError> for WebError {
    fn from(e: ServiceError) -> Self {
        Problem::from(e).into()
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        Problem::from(e).into()
    }
}

impl From<crate::audit::AuditError> for WebError {
    fn from(e: crate::audit::AuditError) -> Self {
        use crate::audit::AuditError as A;
        match e {
            A::NotFound(m) => WebError::not_found(format!("no audit entries for request {m}")),
            A::NotSigned(m) => WebError::new(StatusCode::SERVICE_UNAVAILABLE, "Not signed yet", m),
            A::OutOfRange(m) => WebError::bad_request(m),
            A::Store(s) => s.into(),
            A::Log(m) => WebError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The audit log does not verify",
                m,
            ),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::Redirect(to) => see_other(&to),
            WebError::Page {
                status,
                title,
                message,
            } => page(
                status,
                layout(
                    &title,
                    None,
                    Nav::None,
                    html! {
                        section.card.narrow role="alert" {
                            h1 { (title) }
                            p { (message) }
                            p { a href="/inbox" { "Back to the inbox" } }
                        }
                    },
                ),
            ),
        }
    }
}

pub type WebResult<T = Response> = Result<T, WebError>;

pub fn fmt_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// "3 min", "2 h 5 min", "4 days".
pub fn span_words(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min", s / 60)
    } else if s < 86_400 {
        let m = (s % 3600) / 60;
        if m == 0 {
            format!("{} h", s / 3600)
        } else {
            format!("{} h {m} min", s / 3600)
        }
    } else {
        let d = s / 86_400;
        format!("{d} day{}", if d == 1 { "" } else { "s" })
    }
}

pub fn ago(ms: i64, now: i64) -> String {
    if now - ms < 5_000 {
        "just now".into()
    } else {
        format!("{} ago", span_words(now - ms))
    }
}

/// A `<time>` element with the full UTC time as its tooltip.
pub fn time_el(ms: i64, text: &str) -> Markup {
    html! {
        time datetime=(crate::service::format_time(ms)) title=(fmt_time(ms)) { (text) }
    }
}

pub fn expires_text(expires_at: i64, now: i64) -> String {
    if expires_at <= now {
        "expired".into()
    } else {
        format!("expires in {}", span_words(expires_at - now))
    }
}

/// A JSON value as a person reads it: strings bare, the rest as JSON.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

pub use crate::text::truncate;

pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

pub fn status_badge(status: crate::approval::Status) -> Markup {
    html! { span class={ "status status-" (status.as_str()) } { (status.as_str()) } }
}

/// Only local paths may be redirected to after log-in (no open redirect).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/inbox".to_owned(),
    }
}

/// An e-mail address that, when it must wrap, wraps after the `@` or before
/// a dot rather than mid-word.
pub fn email(address: &str) -> Markup {
    let mut parts: Vec<&str> = Vec::new();
    let mut start = 0;
    for (i, c) in address.char_indices() {
        let cut = match c {
            '@' => i + 1,
            '.' if i > start => i,
            _ => continue,
        };
        if cut > start {
            parts.push(&address[start..cut]);
            start = cut;
        }
    }
    parts.push(&address[start..]);
    html! {
        span.email-address {
            @for (n, part) in parts.iter().enumerate() {
                @if n > 0 { wbr; }
                (part)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_local_only() {
        assert_eq!(safe_next(Some("/requests/1")), "/requests/1");
        assert_eq!(safe_next(Some("//evil.example")), "/inbox");
        assert_eq!(safe_next(Some("https://evil.example")), "/inbox");
        assert_eq!(safe_next(Some("/\\evil.example")), "/inbox");
        assert_eq!(safe_next(None), "/inbox");
    }

    #[test]
    fn spans_read_well() {
        assert_eq!(span_words(59_000), "59 s");
        assert_eq!(span_words(29 * 60_000), "29 min");
        assert_eq!(span_words(125 * 60_000), "2 h 5 min");
        assert_eq!(span_words(2 * 86_400_000), "2 days");
    }

    #[test]
    fn emails_break_after_the_at_sign_and_before_dots_only() {
        let html = super::email("ann.lee@mail.example.com").into_string();
        assert_eq!(
            html,
            r#"<span class="email-address">ann<wbr>.lee@<wbr>mail<wbr>.example<wbr>.com</span>"#
        );
        assert_eq!(
            super::email("<b>@x").into_string(),
            r#"<span class="email-address">&lt;b&gt;@<wbr>x</span>"#
        );
    }
}
