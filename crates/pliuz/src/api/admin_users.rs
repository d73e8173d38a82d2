//! `/api/v1/admin/users`: people, their role and groups, and their personal
//! API tokens, for admins (`AdminAuth`). The same `ControlPlane` calls as
//! `pliuz users ...` and the admin page.
//!
//! Their OpenAPI tag and security come with `operation::admin` in the route
//! table.

use super::created::Created;
use crate::approval::Actor;
use crate::auth::{Role, User};
use crate::http::error::Problem;
use crate::http::extract::{parse_json, AdminAuth, ApiBytes, ApiJson, ApiPath};
use crate::http::AppState;
use crate::service::directory::InitialPassword;
use crate::service::format_time;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A person (never their password or tokens).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AdminUser)]
pub struct UserView {
    pub email: String,
    pub role: Role,
    pub groups: Vec<String>,
    /// A disabled user can neither log in nor use their tokens.
    pub disabled: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<User> for UserView {
    fn from(u: User) -> UserView {
        UserView {
            email: u.email,
            role: u.role,
            groups: u.groups,
            disabled: u.disabled,
            created_at: format_time(u.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    /// Their e-mail address (their log-in name).
    pub email: String,
    /// approver (decides), admin (manages) or auditor (reads the log).
    pub role: Role,
    /// Groups, as in a policy's `group:NAME`.
    #[serde(default)]
    pub groups: Vec<String>,
    /// An initial password (at least 10 characters); without one the
    /// answer carries a one-time setup link.
    #[serde(default)]
    pub password: Option<String>,
}

/// A new user, with their one-time setup link when no password was given.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AdminCreatedUser)]
pub struct CreatedUserView {
    pub user: UserView,
    /// Send it to them to set a password; valid 72 hours, shown this once.
    #[schema(required = true)]
    pub setup_url: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiJson(body): ApiJson<CreateUserBody>,
) -> Result<Created<CreatedUserView>, Problem> {
    let password = match body.password {
        Some(p) => InitialPassword::Given(p),
        None => InitialPassword::SetupLink,
    };
    let created = state
        .cp
        .create_user(
            &admin.actor(),
            &body.email,
            body.role,
            &body.groups,
            password,
        )
        .await?;
    let setup_url = created
        .setup_token
        .map(|t| format!("{}/setup/{t}", state.cp.settings.public_url));
    Ok(Created {
        location: format!("/api/v1/admin/users/{}", created.user.email),
        body: CreatedUserView {
            user: created.user.into(),
            setup_url,
        },
    })
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AdminUsers)]
pub struct UsersView {
    pub users: Vec<UserView>,
}

pub async fn list(
    State(state): State<AppState>,
    AdminAuth(_): AdminAuth,
) -> Result<Json<UsersView>, Problem> {
    let users = state.cp.list_users().await?;
    Ok(Json(UsersView {
        users: users.into_iter().map(UserView::from).collect(),
    }))
}

pub async fn get_one(
    State(state): State<AppState>,
    AdminAuth(_): AdminAuth,
    ApiPath(email): ApiPath,
) -> Result<Json<UserView>, Problem> {
    Ok(Json(state.cp.user(&email).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupsBody {
    /// Exactly the groups the user is to be in (others are left).
    pub groups: Vec<String>,
}

pub async fn set_groups(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiPath(email): ApiPath,
    ApiJson(body): ApiJson<GroupsBody>,
) -> Result<Json<UserView>, Problem> {
    let user = state
        .cp
        .set_user_groups(&admin.actor(), &email, &body.groups)
        .await?;
    Ok(Json(user.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    pub role: Role,
}

pub async fn set_role(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiPath(email): ApiPath,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<Json<UserView>, Problem> {
    let user = state
        .cp
        .set_user_role(&admin.actor(), &email, body.role)
        .await?;
    Ok(Json(user.into()))
}

pub async fn disable(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiPath(email): ApiPath,
) -> Result<Json<UserView>, Problem> {
    set_disabled(&state, admin.actor(), &email, true).await
}

pub async fn enable(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiPath(email): ApiPath,
) -> Result<Json<UserView>, Problem> {
    set_disabled(&state, admin.actor(), &email, false).await
}

/// Disables or enables a user; answers with the user as it is now.
async fn set_disabled(
    state: &AppState,
    admin: Actor,
    email: &str,
    disabled: bool,
) -> Result<Json<UserView>, Problem> {
    state.cp.set_user_disabled(&admin, email, disabled).await?;
    Ok(Json(state.cp.user(email).await?.into()))
}

/// A personal API token (never its secret).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AdminToken)]
pub struct TokenView {
    pub id: String,
    #[schema(required = true)]
    pub label: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(required = true, format = DateTime)]
    pub revoked_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AdminTokens)]
pub struct TokensView {
    /// Newest first.
    pub tokens: Vec<TokenView>,
}

pub async fn list_tokens(
    State(state): State<AppState>,
    AdminAuth(_): AdminAuth,
    ApiPath(email): ApiPath,
) -> Result<Json<TokensView>, Problem> {
    let tokens = state.cp.user_tokens(&email).await?;
    Ok(Json(TokensView {
        tokens: tokens
            .into_iter()
            .map(|t| TokenView {
                id: t.id,
                label: t.label,
                created_at: format_time(t.created_at),
                revoked_at: t.revoked_at.map(format_time),
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenBody {
    /// A note to tell this token from others, e.g. "ci" (at most 200 characters).
    #[serde(default)]
    pub label: Option<String>,
}

/// A new token, shown this once (only its hash is kept).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AdminCreatedToken)]
pub struct CreatedTokenView {
    pub id: String,
    #[schema(required = true)]
    pub label: Option<String>,
    /// The token (`pliuz_ut_...`), for `Authorization: Bearer`.
    pub token: String,
}

pub async fn create_token(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiPath(email): ApiPath,
    ApiBytes(body): ApiBytes,
) -> Result<Response, Problem> {
    let label = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        parse_json::<CreateTokenBody>(&body)?.label
    };
    let issued = state
        .cp
        .issue_user_token(&admin.actor(), &email, label.as_deref())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedTokenView {
            id: issued.id,
            label,
            token: issued.token,
        }),
    )
        .into_response())
}

pub async fn revoke_token(
    State(state): State<AppState>,
    admin: AdminAuth,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, Problem> {
    let Path((email, token_id)) = path.map_err(|e| {
        Problem::bad_request(format!(
            "the path cannot be read ({}); it is /api/v1/admin/users/EMAIL/tokens/TOKEN_ID/revoke",
            e.body_text()
        ))
    })?;
    for (field, v) in [("email", &email), ("token_id", &token_id)] {
        if let Some(e) = crate::service::unstorable(field, v) {
            return Err(Problem::validation(vec![e]));
        }
    }
    if token_id.len() > 100 {
        return Err(Problem::invalid(
            "token_id",
            "is not a token id; take one from GET .../tokens",
        ));
    }
    state
        .cp
        .revoke_user_token(&admin.actor(), &email, &token_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
