//! The web inbox: server-rendered pages for approvers, auditors and admins,
//! served by `pliuz serve` itself. HTML comes from `maud` (every value is
//! escaped), the only script and stylesheet are embedded in the binary and
//! served from `/static/`, and every page carries a strict
//! Content-Security-Policy. See `docs/inbox.md`.
//!
//! * `login`: log-in, log-out and one-time setup links (the pages).
//! * `session`: the page extractors (logged-in viewer, CSRF-checked forms);
//!   the cookie and token plumbing is `crate::http::session`.
//! * `queue`: the inbox list; `live`: its live feed (SSE);
//!   `request_page`: one request; `decide`: approve, reject, respond, edit;
//!   `questions`: questions from agents and their answer form.
//! * `overview`: charts and tables of how the approval process is doing.
//! * `history`: decided requests and their CSV / JSONL export.
//! * `email_link`: the one-time links in request e-mails.
//! * `oidc`: single sign-on with an OpenID Connect provider.
//! * `admin`: users, agents and policies; the audit log page.

mod admin;
pub mod csv;
mod decide;
mod email_link;
mod extract;
mod history;
mod live;
mod login;
mod oidc;
mod overview;
mod pages;
mod questions;
mod queue;
mod request_page;
mod session;

use crate::http::AppState;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(login::root))
        .route("/login", get(login::login_page).post(login::login))
        .route("/logout", post(login::logout))
        .route("/login/oidc", get(oidc::start))
        .route("/login/oidc/callback", get(oidc::callback))
        .route("/setup/{token}", get(login::setup_page).post(login::setup))
        .route("/inbox", get(queue::inbox))
        .route("/inbox/events", get(live::events))
        .route("/requests/{id}", get(request_page::show))
        .route("/email-link/{secret}", get(email_link::open))
        .route("/questions/{id}", get(questions::show))
        .route("/questions/{id}/answer", post(questions::answer))
        .route("/requests/{id}/approve", post(decide::approve))
        .route("/requests/{id}/reject", post(decide::reject))
        .route("/requests/{id}/respond", post(decide::respond))
        .route("/requests/{id}/edit", post(decide::edit))
        .route("/requests/{id}/receipt.json", get(request_page::receipt))
        .route("/overview", get(overview::index))
        .route("/overview/{file}", get(overview::csv))
        .route("/history", get(history::index))
        .route("/history/export.csv", get(history::export_csv))
        .route("/history/export.jsonl", get(history::export_jsonl))
        .route("/audit", get(admin::audit_page))
        .route("/audit/verify", post(admin::audit_verify))
        .route("/admin", get(admin::index))
        .route("/admin/users", post(admin::create_user))
        .route("/admin/users/groups", post(admin::change_group))
        .route("/admin/users/disabled", post(admin::set_disabled))
        .route("/admin/agents", post(admin::create_agent))
        .route("/admin/agents/revoke", post(admin::revoke_agent))
        .route("/static/inbox.css", asset(CSS_TYPE, RELEASE_CACHE, CSS))
        .route("/static/inbox.js", asset(JS_TYPE, RELEASE_CACHE, JS))
        .route("/static/keys.js", asset(JS_TYPE, RELEASE_CACHE, KEYS_JS))
        .route("/static/favicon.svg", asset(SVG_TYPE, ICON_CACHE, FAVICON))
        // Browsers ask for /favicon.ico on their own; an SVG is fine for them.
        .route("/favicon.ico", asset(SVG_TYPE, ICON_CACHE, FAVICON))
        .layer(axum::middleware::map_response(security_headers))
}

/// No inline script or style, nothing from other origins, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        // Pages show private data: never keep them in shared or back caches.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

const CSS: &str = include_str!("static/inbox.css");
const JS: &str = include_str!("static/inbox.js");
const KEYS_JS: &str = include_str!("static/keys.js");
const FAVICON: &str = include_str!("static/favicon.svg");

const CSS_TYPE: &str = "text/css; charset=utf-8";
const JS_TYPE: &str = "text/javascript; charset=utf-8";
const SVG_TYPE: &str = "image/svg+xml";
/// The script and stylesheet change with a release: kept briefly.
const RELEASE_CACHE: &str = "public, max-age=300";
const ICON_CACHE: &str = "public, max-age=86400";

/// `GET` of a static file embedded in the binary, with its type and how
/// long browsers may keep it.
fn asset(
    content_type: &'static str,
    cache_control: &'static str,
    body: &'static str,
) -> MethodRouter<AppState> {
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, cache_control),
    ];
    get(move || async move { (headers, body).into_response() })
}
