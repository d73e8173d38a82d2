//! The browser side of the web pages (inbox, audit, overview): log-in
//! through the form, cookies and the CSRF token, as a browser sends them.

use super::{Server, PASSWORD};
use reqwest::{header, Client, Response, StatusCode};

/// A client that shows redirects instead of following them, as the log-in
/// and log-out answers are checked by their `303` and `Set-Cookie`.
pub fn no_redirects() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// The `name=value` of each cookie a response sets (its attributes cut off).
fn set_cookie_pairs(res: &Response) -> impl Iterator<Item = &str> {
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
}

/// The value of cookie `name` a response sets; `None` when it is not set
/// or set empty (a deletion).
pub fn set_cookie(res: &Response, name: &str) -> Option<String> {
    set_cookie_pairs(res)
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}

/// Every `name=value` a response sets, as one `Cookie` header value.
pub fn cookie_header(res: &Response) -> String {
    set_cookie_pairs(res).collect::<Vec<_>>().join("; ")
}

/// Submits the log-in form for `email` (with [`PASSWORD`]) and returns the
/// answer, for the caller to check.
pub async fn log_in(http: &Client, server: &Server, email: &str) -> Response {
    let form = http
        .get(server.url("/login"))
        .send()
        .await
        .expect("log-in form");
    // The form's CSRF field carries the same value as its cookie.
    let token = set_cookie(&form, "pliuz_login").expect("log-in cookie");
    http.post(server.url("/login"))
        .header(header::COOKIE, format!("pliuz_login={token}"))
        .form(&[
            ("email", email),
            ("password", PASSWORD),
            ("csrf", &token),
            ("next", "/inbox"),
        ])
        .send()
        .await
        .expect("log in")
}

/// Logs `email` in through the form; returns the session cookie's value.
pub async fn session(http: &Client, server: &Server, email: &str) -> String {
    let res = log_in(http, server, email).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "log-in of {email}");
    set_cookie(&res, "pliuz_session").expect("session cookie")
}

/// The page at `path`, fetched with the `Cookie` header `cookie`.
pub async fn page(http: &Client, server: &Server, path: &str, cookie: &str) -> String {
    http.get(server.url(path))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("page text")
}

/// The page at `path`, fetched in the session `session` (a cookie value).
pub async fn session_page(http: &Client, server: &Server, path: &str, session: &str) -> String {
    page(http, server, path, &format!("pliuz_session={session}")).await
}

/// The CSRF token a signed-in page carries in its `csrf-token` meta tag.
pub fn csrf_meta(page: &str) -> Option<String> {
    page.split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
}
