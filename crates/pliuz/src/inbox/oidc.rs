//! Single sign-on with OpenID Connect: the authorization code flow with
//! PKCE (`openidconnect` crate), provider discovery from `oidc.issuer`.
//!
//! * `GET /login/oidc` opens a log-in: a random `state`, `nonce` and PKCE
//!   verifier are kept server-side (`oidc_logins`, 10 minutes, used once)
//!   and bound to this browser by the `pliuz_oidc` cookie, whose SHA-256 the
//!   record holds; only the state's hash is stored.
//! * `GET /login/oidc/callback` takes that record (so a replayed or forged
//!   `state` is refused), checks the browser binding, redeems the code with
//!   the verifier, verifies the ID token (signature, issuer, audience,
//!   expiry, `nonce`), checks the e-mail (verified, allowed domain), maps the
//!   IdP groups and signs the user in through the service layer.
//! * After log-out, the log-in page offers the IdP's `end_session_endpoint`
//!   (RP-initiated log-out) when discovery announced one.

use super::pages::{safe_next, see_other, WebError, WebResult};
use crate::auth;
use crate::config::oidc::{grant_for, OidcSettings};
use crate::http::oidc::{GroupsIdToken, Metadata};
use crate::http::session::{cookie, is_cross_site, session_cookie, set_cookie};
use crate::http::AppState;
use crate::service::sso::IdpIdentity;
use crate::service::PendingLogin;
use crate::service::ServiceError;
use crate::service::SessionRecord;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use maud::{html, Markup};
use openidconnect::core::{CoreClient, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope,
};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a started log-in may take at the IdP.
const LOGIN_TTL_MS: i64 = 10 * 60 * 1000;
/// Log-ins in flight at once (each is a row until used or expired).
const MAX_PENDING_LOGINS: i64 = 10_000;
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

fn settings(state: &AppState) -> Result<&OidcSettings, WebError> {
    state
        .cp
        .settings
        .oidc
        .as_ref()
        .ok_or_else(|| WebError::not_found("Single sign-on is not configured on this server."))
}

/// Whether e-mail + password log-in (and setup links) may be used.
pub fn local_passwords_enabled(state: &AppState) -> bool {
    state
        .cp
        .settings
        .oidc
        .as_ref()
        .is_none_or(|o| o.local_passwords)
}

fn http_client() -> Result<reqwest::Client, WebError> {
    reqwest::Client::builder()
        // Following redirects would let a provider steer us anywhere (SSRF).
        .redirect(reqwest::redirect::Policy::none())
        .timeout(HTTP_TIMEOUT)
        .build()
        .map_err(|e| unavailable(&e.to_string()))
}

fn unavailable(detail: &str) -> WebError {
    tracing::warn!(error = %detail, "single sign-on: identity provider unavailable");
    WebError::new(
        StatusCode::BAD_GATEWAY,
        "Sign-in is unavailable",
        "The identity provider could not be reached or answered unexpectedly. Try again in a minute; if it persists, ask an admin to check the [oidc] settings and the server log.",
    )
}

fn refused(message: impl Into<String>) -> WebError {
    WebError::new(StatusCode::FORBIDDEN, "Sign-in refused", message)
}

async fn metadata(state: &AppState, oidc: &OidcSettings) -> Result<Arc<Metadata>, WebError> {
    let cache = &state.extras.oidc;
    if let Some(m) = cache.fresh() {
        return Ok(m);
    }
    let issuer = IssuerUrl::new(oidc.issuer.clone()).map_err(|e| unavailable(&e.to_string()))?;
    let http = http_client()?;
    let m = Metadata::discover_async(issuer, &http)
        .await
        .map_err(|e| unavailable(&format!("discovery: {e}")))?;
    let m = Arc::new(m);
    if let Ok(mut g) = cache.metadata.lock() {
        *g = Some((Instant::now(), m.clone()));
    }
    Ok(m)
}

fn redirect_url(state: &AppState) -> Result<RedirectUrl, WebError> {
    RedirectUrl::new(format!(
        "{}/login/oidc/callback",
        state.cp.settings.public_url
    ))
    .map_err(|e| unavailable(&format!("public_url: {e}")))
}

fn browser_cookie(state: &AppState) -> &'static str {
    if state.cp.settings.inbox.secure_cookies {
        "__Host-pliuz_oidc"
    } else {
        "pliuz_oidc"
    }
}

fn well_formed(t: &str) -> bool {
    (32..=64).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Makes sure the provider's metadata is known (e.g. after a restart), so
/// the log-in page can offer RP-initiated log-out. Failures are only logged.
pub async fn warm_up(state: &AppState) {
    if let Some(oidc) = state.cp.settings.oidc.as_ref() {
        if state.extras.oidc.any().is_none() {
            let _ = metadata(state, oidc).await;
        }
    }
}

/// The log-in page's single sign-on part.
pub fn login_block(state: &AppState, next: &str, logged_out: bool) -> Markup {
    let Some(oidc) = state.cp.settings.oidc.as_ref() else {
        return html! {};
    };
    let end_session = if logged_out {
        state
            .extras
            .oidc
            .any()
            .and_then(|m| m.additional_metadata().end_session_endpoint.clone())
            .and_then(|e| {
                let mut u = reqwest::Url::parse(&e).ok()?;
                u.query_pairs_mut()
                    .append_pair("client_id", &oidc.client_id)
                    .append_pair(
                        "post_logout_redirect_uri",
                        &format!("{}/login?notice=logged_out", state.cp.settings.public_url),
                    );
                Some(u.to_string())
            })
    } else {
        None
    };
    let href = format!(
        "/login/oidc?{}",
        serde_urlencoded::to_string([("next", next)]).unwrap_or_default()
    );
    html! {
        div.sso {
            a.button.primary.wide #sso-login href=(href) { "Sign in with " (oidc.display_name) }
            @if let Some(e) = end_session {
                p.muted.small { "You are still signed in at your identity provider. " a #idp-logout href=(e) { "Sign out there too" } "." }
            }
            @if oidc.local_passwords {
                p.muted.small.or { "or with a Pliuz password:" }
            }
        }
    }
}

/// A client of the provider as its discovery document describes it: the
/// authorization endpoint set, the token endpoint possibly.
type ProviderClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The client both halves of the log-in use: the provider's (cached)
/// metadata, this server's client id and secret, and its callback URL.
async fn provider_client(
    state: &AppState,
    oidc: &OidcSettings,
) -> Result<ProviderClient, WebError> {
    let meta = metadata(state, oidc).await?;
    Ok(CoreClient::from_provider_metadata(
        (*meta).clone(),
        ClientId::new(oidc.client_id.clone()),
        oidc.client_secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(redirect_url(state)?))
}

#[derive(Deserialize)]
pub struct StartQuery {
    next: Option<String>,
}

pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> WebResult {
    let oidc = settings(&state)?;
    let client = provider_client(&state, oidc).await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for s in oidc.scopes.iter().filter(|s| *s != "openid") {
        req = req.add_scope(Scope::new(s.clone()));
    }
    let (url, csrf, nonce) = req.url();
    // One binding secret per browser, reused so two log-in tabs both work.
    let browser = cookie(&headers, browser_cookie(&state))
        .filter(|t| well_formed(t))
        .map(str::to_owned)
        .unwrap_or_else(|| auth::new_secret(""));
    let now = crate::service::now_millis();
    let stored = state
        .cp
        .open_sso_login(
            &PendingLogin {
                state_hash: auth::hash_secret(csrf.secret()),
                browser_hash: auth::hash_secret(&browser),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                next_path: safe_next(q.next.as_deref()),
                created_at: now,
                expires_at: now + LOGIN_TTL_MS,
            },
            MAX_PENDING_LOGINS,
        )
        .await?;
    if !stored {
        tracing::warn!("single sign-on: too many log-ins in flight; refusing new ones for now");
        return Err(WebError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many sign-ins in progress",
            "Too many sign-ins were started in the last minutes. Try again in a few minutes.",
        ));
    }
    let mut res = see_other(url.as_str());
    res.headers_mut().append(
        header::SET_COOKIE,
        // Lax: the IdP sends the browser back with a top-level GET.
        set_cookie(
            &state,
            browser_cookie(&state),
            &browser,
            LOGIN_TTL_MS / 1000,
            "Lax",
        ),
    );
    Ok(res)
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> WebResult {
    let oidc = settings(&state)?;
    if is_cross_site(&headers)
        && headers.get("sec-fetch-mode").and_then(|v| v.to_str().ok()) != Some("navigate")
    {
        return Err(refused("Cross-site requests cannot sign anyone in."));
    }
    let restart = "Go back to the log-in page and sign in again.";
    let Some(state_param) = q
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 512)
    else {
        return Err(refused(format!(
            "The identity provider's answer has no state. {restart}"
        )));
    };
    let now = crate::service::now_millis();
    // Taken (deleted) before anything else: a state works once, even if
    // what follows fails.
    let pending = state
        .cp
        .take_sso_login(&auth::hash_secret(state_param))
        .await?;
    let Some(pending) = pending else {
        tracing::info!("single sign-on: unknown, used or expired state refused");
        return Err(refused(format!(
            "This sign-in link is unknown, was already used or has expired. {restart}"
        )));
    };
    let bound = cookie(&headers, browser_cookie(&state)).is_some_and(|b| {
        crate::http::session::csrf_matches(&pending.browser_hash, &auth::hash_secret(b))
    });
    if !bound {
        tracing::info!("single sign-on: state from another browser refused");
        return Err(refused(format!(
            "This sign-in was started in another browser. {restart}"
        )));
    }
    if let Some(err) = q.error.as_deref() {
        let desc = q.error_description.as_deref().unwrap_or("");
        return Err(refused(format!(
            "The identity provider did not sign you in ({err}{}{desc}). {restart}",
            if desc.is_empty() { "" } else { ": " }
        )));
    }
    let Some(code) = q.code.filter(|c| !c.is_empty() && c.len() <= 4096) else {
        return Err(refused(format!(
            "The identity provider's answer has no code. {restart}"
        )));
    };

    let client = provider_client(&state, oidc).await?;
    let http = http_client()?;
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| unavailable(&e.to_string()))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
        .request_async(&http)
        .await
        .map_err(|e| {
            tracing::info!(error = %e, "single sign-on: code refused by the identity provider");
            refused(format!("The identity provider refused the sign-in code (it may have been used already or have expired). {restart}"))
        })?;
    use openidconnect::TokenResponse;
    let Some(id_token) = token.id_token() else {
        return Err(unavailable("the token response has no id_token"));
    };
    let raw = serde_json::to_value(id_token).map_err(|e| unavailable(&e.to_string()))?;
    let id_token: GroupsIdToken =
        serde_json::from_value(raw).map_err(|e| unavailable(&e.to_string()))?;
    let verifier = client.id_token_verifier();
    let nonce = Nonce::new(pending.nonce.clone());
    let claims = id_token.claims(&verifier, &nonce).map_err(|e| {
        tracing::info!(error = %e, "single sign-on: ID token refused");
        refused(format!(
            "The identity provider's ID token did not verify ({e}). {restart}"
        ))
    })?;

    let email = claims
        .email()
        .map(|e| e.as_str().to_owned())
        .ok_or_else(|| refused("The identity provider did not send an e-mail address. Ask an admin to add the \"email\" scope (oidc.scopes)."))?;
    let email = auth::normalize_email(&email).map_err(refused)?;
    if oidc.require_email_verified && claims.email_verified() != Some(true) {
        return Err(refused(format!(
            "The identity provider has not verified the e-mail address {email}."
        )));
    }
    let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    if !oidc.allowed_email_domains.iter().any(|d| d == domain) {
        tracing::info!(domain = %domain, "single sign-on: e-mail domain not allowed");
        return Err(refused(format!(
            "Accounts with e-mail addresses at {domain} may not sign in to this Pliuz."
        )));
    }
    let idp_groups = groups_claim(&claims.additional_claims().0, &oidc.groups_claim);
    let Some((role, groups)) = grant_for(&oidc.group_map, &idp_groups) else {
        return Err(refused(format!("Your identity provider account ({email}) is in no group this Pliuz gives access to. Ask an admin.")));
    };
    let who = IdpIdentity {
        issuer: oidc.issuer.clone(),
        subject: claims.subject().as_str().to_owned(),
        email,
        role,
        groups,
        idp_groups,
    };

    let session_secret = auth::new_secret(auth::SESSION_PREFIX);
    let ttl = state.cp.settings.inbox.session_ttl.min(oidc.session_ttl);
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 4);
    let _ = state.cp.purge_expired_sessions(now).await;
    let rec = SessionRecord {
        token_hash: auth::hash_secret(&session_secret),
        user_id: String::new(),
        csrf_token: auth::new_secret(""),
        created_at: now,
        expires_at: now.saturating_add(ttl_ms),
    };
    let signed_in = state
        .cp
        .sign_in_with_idp(&who, rec)
        .await
        .map_err(|e| match e {
            ServiceError::Forbidden(m) => refused(m),
            other => WebError::from(other),
        })?;
    tracing::info!(created = signed_in.created, "single sign-on: signed in");
    let mut res = see_other(&pending.next_path);
    let h = res.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(
            &state,
            session_cookie(&state),
            &session_secret,
            ttl_ms / 1000,
            "Lax",
        ),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&state, browser_cookie(&state), "", 0, "Lax"),
    );
    Ok(res)
}

/// The IdP group names in `claim`: a list of strings, or one string.
fn groups_claim(claims: &serde_json::Map<String, serde_json::Value>, claim: &str) -> Vec<String> {
    let mut out: Vec<String> = match claims.get(claim) {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_read_from_lists_or_a_single_string() {
        let m: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"groups": ["b", "a", 3, "a"], "role": "x"}"#)
                .unwrap_or_default();
        assert_eq!(groups_claim(&m, "groups"), vec!["a", "b"]);
        assert_eq!(groups_claim(&m, "role"), vec!["x"]);
        assert!(groups_claim(&m, "missing").is_empty());
    }
}
