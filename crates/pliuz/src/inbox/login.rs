//! Log-in, log-out and one-time setup links (the pages and their forms).
//!
//! * The log-in form has its own token (double-submit cookie), log-in
//!   attempts are rate-limited per client address and email, and failures
//!   never say whether the email exists.

use super::pages::{layout, page, safe_next, see_other, Nav, WebError, WebResult};
use super::session::CsrfForm;
use crate::approval::Actor;
use crate::auth::{self, User};
use crate::http::session::{
    cookie, csrf_matches, is_cross_site, load_session, login_cookie, session_cookie, set_cookie,
    ClientAddr,
};
use crate::http::AppState;
use crate::password_gate::{Busy, PasswordGate};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

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
    let key = crate::http::ratelimit::RateLimiter::key(&client, &email_in);
    let limiter = &state.extras.login_limiter;
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
        Ok(email) => match state.cp.user_by_email(&email).await {
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

    let session = state.cp.log_in(&user, "inbox").await?;
    let ttl = session.record.expires_at - session.record.created_at;
    let token = session.token;

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
    state
        .cp
        .log_out(&session.token_hash, &session.user, "inbox")
        .await?;
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
        .user_by_setup_token_hash(&auth::hash_secret(token), crate::service::now_millis())
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(invalid)
}

/// The set-up page: the password form, with what was wrong with the last
/// try (if any).
fn render_setup(status: StatusCode, token: &str, user: &User, errors: &[String]) -> Response {
    let body = html! {
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
    };
    let title = "Set up your account";
    page(status, layout(title, None, Nav::None, body))
}

pub async fn setup_page(
    State(state): State<AppState>,
    super::extract::WebPath(token): super::extract::WebPath,
) -> WebResult {
    let user = setup_user(&state, &token).await?;
    Ok(render_setup(StatusCode::OK, &token, &user, &[]))
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
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(render_setup(status, &token, &user, &errors))
}
