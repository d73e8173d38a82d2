//! The inbox session cookie and CSRF checks, shared by the inbox pages and
//! the JSON API (called with the cookie).
//!
//! * The session secret lives only in an `HttpOnly`, `SameSite=Lax` cookie
//!   (`Secure` and `__Host-` prefixed when `inbox.secure_cookies` is set);
//!   the database keeps its SHA-256. Sessions end after `inbox.session_ttl`.
//! * Every state-changing request from a cookie session must carry the
//!   session's synchronizer token, as the `csrf` form field or the
//!   `X-CSRF-Token` header (JSON API calls); requests a browser marks as
//!   cross-site (`Sec-Fetch-Site: cross-site`) are refused outright.

use super::error::Problem;
use super::AppState;
use crate::approval::Actor;
use crate::auth::{self, Principal, User};
use crate::service::StoreError;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use std::net::SocketAddr;

/// The header JSON calls made with the session cookie must send.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A logged-in person.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    /// The synchronizer token for this session's state-changing requests.
    pub csrf: String,
    pub token_hash: String,
    pub expires_at: i64,
}

impl Session {
    pub fn principal(&self) -> Principal {
        Principal::User(self.user.clone())
    }

    pub fn actor(&self) -> Actor {
        Actor::User(self.user.email.clone())
    }
}

pub(crate) fn session_cookie(state: &AppState) -> &'static str {
    if state.cp.settings.inbox.secure_cookies {
        "__Host-pliuz_session"
    } else {
        "pliuz_session"
    }
}

pub(crate) fn login_cookie(state: &AppState) -> &'static str {
    if state.cp.settings.inbox.secure_cookies {
        "__Host-pliuz_login"
    } else {
        "pliuz_login"
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

pub(crate) fn set_cookie(
    state: &AppState,
    name: &str,
    value: &str,
    max_age: i64,
    same_site: &str,
) -> HeaderValue {
    let secure = if state.cp.settings.inbox.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Compares two tokens in time independent of where they differ.
pub fn csrf_matches(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    if a.is_empty() || a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Browsers mark requests started by another site; those never change state.
pub fn is_cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
}

pub(crate) fn is_safe_method(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The live session the request's cookie names, if any.
pub async fn load_session(
    headers: &HeaderMap,
    state: &AppState,
) -> Result<Option<Session>, StoreError> {
    let Some(token) = cookie(headers, session_cookie(state)) else {
        return Ok(None);
    };
    if !token.starts_with(auth::SESSION_PREFIX) {
        return Ok(None);
    }
    let hash = auth::hash_secret(token);
    let now = crate::service::now_millis();
    let Some(rec) = state.cp.session_by_hash(&hash, now).await? else {
        return Ok(None);
    };
    let Some(user) = state.cp.user_by_id(&rec.user_id).await? else {
        return Ok(None);
    };
    if user.user.disabled {
        return Ok(None);
    }
    Ok(Some(Session {
        user: user.user,
        csrf: rec.csrf_token,
        token_hash: rec.token_hash,
        expires_at: rec.expires_at,
    }))
}

/// Whether the session `token_hash` still belongs to `user` unchanged: not
/// logged out, not expired, the account not disabled and its role and
/// groups as they were. Long-lived responses (the inbox's live stream) ask
/// this on every event and periodically, and end when it says no; a store
/// error also says no (the browser reconnects and logs in again if needed).
pub async fn session_still_valid(state: &AppState, token_hash: &str, user: &User) -> bool {
    let now = crate::service::now_millis();
    let Ok(Some(rec)) = state.cp.session_by_hash(token_hash, now).await else {
        return false;
    };
    match state.cp.user_by_id(&rec.user_id).await {
        Ok(Some(current)) => {
            let u = current.user;
            !u.disabled && u.id == user.id && u.role == user.role && u.groups == user.groups
        }
        _ => false,
    }
}

/// The person behind an inbox session cookie, for the JSON API (`Auth`).
/// State-changing calls must send the session's token in `X-CSRF-Token`.
pub async fn session_principal(
    parts: &Parts,
    state: &AppState,
) -> Result<Option<Principal>, Problem> {
    let Some(session) = load_session(&parts.headers, state).await? else {
        return Ok(None);
    };
    if !is_safe_method(&parts.method) {
        if is_cross_site(&parts.headers) {
            return Err(Problem::forbidden(
                "cross-site requests cannot change anything",
            ));
        }
        let given = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !csrf_matches(&session.csrf, given) {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "CSRF token missing or wrong",
                "requests made with the inbox session cookie must send the page's CSRF token in the X-CSRF-Token header; scripts and agents should use 'Authorization: Bearer' instead",
            ));
        }
    }
    Ok(Some(session.principal()))
}

/// The client's address, when the server knows it.
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_else(|| "unknown".to_owned()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    #[test]
    fn csrf_tokens_must_match_exactly() {
        let t = auth::new_secret("");
        assert!(csrf_matches(&t, &t.clone()));
        assert!(!csrf_matches(&t, ""));
        assert!(!csrf_matches("", ""));
        assert!(!csrf_matches(&t, &t[..t.len() - 1]));
        let mut other = t.clone().into_bytes();
        other[0] = if other[0] == b'A' { b'B' } else { b'A' };
        assert!(!csrf_matches(&t, std::str::from_utf8(&other).unwrap()));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; pliuz_session=pliuz_ss_x ; b=2"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("c=3"));
        assert_eq!(cookie(&h, "pliuz_session"), Some("pliuz_ss_x"));
        assert_eq!(cookie(&h, "c"), Some("3"));
        assert_eq!(cookie(&h, "pliuz"), None);
    }

    #[test]
    fn cross_site_requests_are_recognised() {
        let mut h = HeaderMap::new();
        assert!(!is_cross_site(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(!is_cross_site(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(is_cross_site(&h));
    }
}
