//! Log-in, log-out, one-time setup links, the session cookie and CSRF.
//!
//! * The session secret lives only in an `HttpOnly`, `SameSite=Lax` cookie
//!   (`Secure` and `__Host-` prefixed when `inbox.secure_cookies` is set);
//!   the database keeps its SHA-256. Sessions end after `inbox.session_ttl`.
//! * Every state-changing request from a cookie session must carry the
//!   session's synchronizer token, as the `csrf` form field or the
//!   `X-CSRF-Token` header (JSON API calls); requests a browser marks as
//!   cross-site (`Sec-Fetch-Site: cross-site`) are refused outright.
//! * The log-in form has its own token (double-submit cookie), log-in
//!   attempts are rate-limited per client address and email, and failures
//!   never say whether the email exists.

use super::pages::{layout, page, safe_next, see_other, Nav, WebError, WebResult};
use super::ratelimit::RateLimiter;
use crate::api::error::Problem;
use crate::api::AppState;
use crate::approval::Actor;
use crate::auth::{self, Principal, User};
use crate::password_gate::{Busy, PasswordGate};
use crate::store::{AuditEvent, SessionRecord, StoreError};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use maud::html;
use serde::de::DeserializeOwned;
use serde::Deserialize;
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

pub(super) fn session_cookie(state: &AppState) -> &'static str {
    if state.cp.settings.inbox.secure_cookies {
        "__Host-pliuz_session"
    } else {
        "pliuz_session"
    }
}

fn login_cookie(state: &AppState) -> &'static str {
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

pub(super) fn set_cookie(
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

fn is_safe_method(m: &Method) -> bool {
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
    let now = crate::store::now_millis();
    let Some(rec) = state.cp.store.session_by_hash(&hash, now).await? else {
        return Ok(None);
    };
    let Some(user) = state.cp.store.user_by_id(&rec.user_id).await? else {
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
    let now = crate::store::now_millis();
    let Ok(Some(rec)) = state.cp.store.session_by_hash(token_hash, now).await else {
        return false;
    };
    match state.cp.store.user_by_id(&rec.user_id).await {
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

pub async fn root(State(state): State<AppState>, headers: HeaderMap) -> WebResult {
    Ok(match load_session(&headers, &state).await? {
        Some(_) => see_other("/inbox"),
        None => see_other("/login"),
    })
}

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    next: Option<String>,
    notice: Option<String>,
}

struct LoginView<'a> {
    email: &'a str,
    next: &'a str,
    error: Option<&'a str>,
    notice: Option<&'a str>,
}

fn login_response(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    v: LoginView<'_>,
) -> Response {
    // Reuse the form token of another open log-in tab, so both keep working.
    let token = cookie(headers, login_cookie(state))
        .filter(|t| {
            t.len() >= 32
                && t.len() <= 64
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| auth::new_secret(""));
    let body = html! {
        section.card.narrow.login {
            h1 { "Log in" }
            p.muted { "Review and decide what your AI agents want to do." }
            @if let Some(n) = v.notice {
                p.notice role="status" { (n) }
            }
            @if let Some(e) = v.error {
                p.error #login-error role="alert" { (e) }
            }
            (super::oidc::login_block(state, v.next, v.notice == Some(LOGGED_OUT)))
            @if super::oidc::local_passwords_enabled(state) {
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(v.next);
                div.field {
                    label for="email" { "Email" }
                    input #email type="email" name="email" autocomplete="username" required autofocus value=(v.email);
                }
                div.field {
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password" required;
                }
                button.primary.wide type="submit" { "Log in" }
            }
            p.muted.small { "First time? Use the setup link you were given, or the admin password printed by " code { "pliuz serve" } " on its first start." }
            }
        }
    };
    let mut res = page(status, layout("Log in", None, Nav::None, body));
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, login_cookie(state), &token, 3600, "Strict"),
    );
    res
}

pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> WebResult {
    let next = safe_next(q.next.as_deref());
    if load_session(&headers, &state).await?.is_some() {
        return Ok(see_other(&next));
    }
    let notice = match q.notice.as_deref() {
        Some("setup") => Some("Your password is set. Log in with it."),
        Some("logged_out") => Some(LOGGED_OUT),
        _ => None,
    };
    if notice == Some(LOGGED_OUT) {
        super::oidc::warm_up(&state).await;
    }
    Ok(login_response(
        &state,
        &headers,
        StatusCode::OK,
        LoginView {
            email: "",
            next: &next,
            error: None,
            notice,
        },
    ))
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

const LOGGED_OUT: &str = "You are logged out.";
const LOGIN_FAILED: &str = "That email and password do not match an active account.";

pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    super::extract::WebForm(f): super::extract::WebForm<LoginForm>,
) -> WebResult {
    let next = safe_next(f.next.as_deref());
    let email_in = f.email.trim().to_owned();
    let fail = |status: StatusCode, msg: &str| {
        login_response(
            &state,
            &headers,
            status,
            LoginView {
                email: &email_in,
                next: &next,
                error: Some(msg),
                notice: None,
            },
        )
    };
    if !super::oidc::local_passwords_enabled(&state) {
        return Ok(fail(
            StatusCode::FORBIDDEN,
            "Password log-in is turned off on this server (oidc.local_passwords = false). Sign in with single sign-on.",
        ));
    }
    let form_token_ok = !is_cross_site(&headers)
        && cookie(&headers, login_cookie(&state)).is_some_and(|c| csrf_matches(c, &f.csrf));
    if !form_token_ok {
        return Ok(fail(
            StatusCode::FORBIDDEN,
            "This log-in form has expired. Please enter your email and password again.",
        ));
    }
    let key = RateLimiter::key(&client, &email_in);
    let limiter = &state.extras.inbox.login_limiter;
    // Counted before the check, so concurrent attempts cannot outrun the limit.
    if let Err(wait) = limiter.begin(&key, std::time::Instant::now()) {
        let minutes = wait.as_secs().div_ceil(60).max(1);
        let mut res = fail(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many failed attempts. For your security, log-in for this email is paused; try again in {minutes} minute{}.", if minutes == 1 { "" } else { "s" }),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(res);
    }
    let record = match auth::normalize_email(&email_in) {
        Ok(email) => match state.cp.store.user_by_email(&email).await {
            Ok(r) => r,
            Err(e) => {
                limiter.refund(&key);
                return Err(e.into());
            }
        },
        Err(_) => None,
    };
    let password = f.password;
    // Unknown e-mails and accounts without a password cost the same check.
    let checked = PasswordGate::global()
        .run(move || {
            let hash = record.as_ref().and_then(|r| r.password_hash.as_deref());
            let ok = match hash {
                Some(h) => auth::verify_password(&password, h),
                None => {
                    auth::dummy_password_check(&password);
                    false
                }
            };
            record.filter(|r| ok && !r.user.disabled).map(|r| r.user)
        })
        .await;
    let user = match checked {
        Ok(user) => user,
        Err(Busy) => {
            limiter.refund(&key);
            tracing::warn!(client = %client, "log-in shed: too many password checks at once");
            let mut res = fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy checking other log-ins. Please try again in a moment.",
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return Ok(res);
        }
    };
    let Some(user) = user else {
        tracing::info!(client = %client, "failed inbox log-in");
        return Ok(fail(StatusCode::UNAUTHORIZED, LOGIN_FAILED));
    };
    limiter.reset(&key);

    let now = crate::store::now_millis();
    let _ = state.cp.store.purge_expired_sessions(now).await;
    let token = auth::new_secret(auth::SESSION_PREFIX);
    let ttl =
        i64::try_from(state.cp.settings.inbox.session_ttl.as_millis()).unwrap_or(i64::MAX / 4);
    let rec = SessionRecord {
        token_hash: auth::hash_secret(&token),
        user_id: user.id.clone(),
        csrf_token: auth::new_secret(""),
        created_at: now,
        expires_at: now.saturating_add(ttl),
    };
    let mut tx = state.cp.store.begin_write().await?;
    tx.insert_session(&rec).await?;
    tx.audit(AuditEvent {
        kind: "user.logged_in",
        actor: Actor::User(user.email.clone()).to_string(),
        approval_id: None,
        data: serde_json::json!({"email": user.email, "via": "inbox", "session_expires_at": crate::store::format_time(rec.expires_at)}),
    })
    .await?;
    tx.commit().await?;

    let mut res = see_other(&next);
    let h = res.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(&state, session_cookie(&state), &token, ttl / 1000, "Lax"),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&state, login_cookie(&state), "", 0, "Strict"),
    );
    Ok(res)
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn logout(
    State(state): State<AppState>,
    CsrfForm(session, _): CsrfForm<Empty>,
) -> WebResult {
    let mut tx = state.cp.store.begin_write().await?;
    tx.delete_session(&session.token_hash).await?;
    tx.audit(AuditEvent {
        kind: "user.logged_out",
        actor: session.actor().to_string(),
        approval_id: None,
        data: serde_json::json!({"email": session.user.email, "via": "inbox"}),
    })
    .await?;
    tx.commit().await?;
    let mut res = see_other("/login?notice=logged_out");
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, session_cookie(&state), "", 0, "Lax"),
    );
    Ok(res)
}

async fn setup_user(state: &AppState, token: &str) -> WebResult<User> {
    let invalid = || {
        WebError::not_found(
            "This setup link is invalid, already used or expired. Ask an admin for a new one (pliuz users create, or the Admin page).",
        )
    };
    if !token.starts_with(auth::SETUP_TOKEN_PREFIX) || !super::oidc::local_passwords_enabled(state)
    {
        return Err(invalid());
    }
    state
        .cp
        .store
        .user_by_setup_token_hash(&auth::hash_secret(token), crate::store::now_millis())
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(invalid)
}

fn setup_form(token: &str, user: &User, errors: &[String]) -> maud::Markup {
    html! {
        section.card.narrow {
            h1 { "Choose your password" }
            p.muted { "Welcome to Pliuz. You will log in as " strong { (user.email) } " (" (user.role.as_str()) ")." }
            @if !errors.is_empty() {
                div.error role="alert" {
                    @for e in errors { p { (e) } }
                }
            }
            form method="post" action={ "/setup/" (token) } {
                input type="text" name="username" value=(user.email) autocomplete="username" hidden readonly;
                div.field {
                    label for="password" { "New password" }
                    input #password type="password" name="password" autocomplete="new-password" minlength="10" required autofocus aria-describedby="pw-help";
                    p.help #pw-help { "At least 10 characters." }
                }
                div.field {
                    label for="confirm" { "Repeat the password" }
                    input #confirm type="password" name="confirm" autocomplete="new-password" minlength="10" required;
                }
                button.primary.wide type="submit" { "Set password" }
            }
        }
    }
}

pub async fn setup_page(
    State(state): State<AppState>,
    super::extract::WebPath(token): super::extract::WebPath,
) -> WebResult {
    let user = setup_user(&state, &token).await?;
    Ok(page(
        StatusCode::OK,
        layout(
            "Set up your account",
            None,
            Nav::None,
            setup_form(&token, &user, &[]),
        ),
    ))
}

#[derive(Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

pub async fn setup(
    State(state): State<AppState>,
    super::extract::WebPath(token): super::extract::WebPath,
    headers: HeaderMap,
    super::extract::WebForm(f): super::extract::WebForm<SetupForm>,
) -> WebResult {
    if is_cross_site(&headers) {
        return Err(WebError::forbidden(
            "Cross-site requests cannot change anything.",
        ));
    }
    let user = setup_user(&state, &token).await?;
    let mut errors = Vec::new();
    if f.password != f.confirm {
        errors.push("The two passwords are not the same.".to_owned());
    } else if let Err(m) = auth::check_password_strength(&f.password) {
        errors.push(format!("Choose a longer password: {m}."));
    }
    if errors.is_empty() {
        match state
            .cp
            .set_password(&Actor::User(user.email.clone()), &user.id, &f.password)
            .await
        {
            Ok(()) => return Ok(see_other("/login?notice=setup")),
            Err(crate::service::ServiceError::Validation(v)) => {
                errors.extend(v.into_iter().map(|e| e.message))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(page(
        StatusCode::UNPROCESSABLE_ENTITY,
        layout(
            "Set up your account",
            None,
            Nav::None,
            setup_form(&token, &user, &errors),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
