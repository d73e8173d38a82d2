//! `/api/v1/admin/agents`: agent keys and their webhooks, for admins
//! (`AdminAuth`). The same `ControlPlane` calls as `pliuz agents ...` and
//! the admin page, so each change is audited the same way.
//!
//! Their OpenAPI tag and security come with `operation::admin` in the route
//! table.

use super::created::Created;
use crate::http::error::Problem;
use crate::http::extract::{AdminAuth, ApiJson, ApiPath};
use crate::http::AppState;
use crate::service::format_time;
use crate::service::runs::RunsError;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Whether an agent's key still works.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Active,
    Revoked,
}

/// An agent (never its key).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AdminAgent)]
pub struct AgentView {
    pub name: String,
    pub status: AgentStatus,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(required = true, format = DateTime)]
    pub revoked_at: Option<String>,
    /// Where its events are POSTed; null when it has no webhook.
    #[schema(required = true)]
    pub webhook_url: Option<String>,
}

async fn view(state: &AppState, a: crate::service::AgentRecord) -> Result<AgentView, Problem> {
    let webhook_url = state.cp.agent_webhook_url(&a.name).await?;
    Ok(AgentView {
        status: if a.revoked_at.is_some() {
            AgentStatus::Revoked
        } else {
            AgentStatus::Active
        },
        name: a.name,
        created_at: format_time(a.created_at),
        revoked_at: a.revoked_at.map(format_time),
        webhook_url,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentBody {
    /// 1-100 letters, digits, '-', '_' or '.'; shown to approvers.
    pub name: String,
    /// Where to POST this agent's events (approval.decided, run.ready).
    #[serde(default)]
    pub webhook_url: Option<String>,
}

/// A new agent with its key, shown this once (only its hash is kept).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AdminCreatedAgent)]
pub struct CreatedAgentView {
    pub agent: AgentView,
    /// The agent's API key (`pliuz_ak_...`); give it to the agent as PLIUZ_API_KEY.
    pub api_key: String,
    /// The webhook signing secret (`whsec_...`), when `webhook_url` was given.
    #[schema(required = true)]
    pub webhook_secret: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiJson(body): ApiJson<CreateAgentBody>,
) -> Result<Created<CreatedAgentView>, Problem> {
    let actor = admin.actor();
    if let Some(url) = &body.webhook_url {
        crate::service::webhooks::check_url(url).map_err(|m| Problem::invalid("webhook_url", m))?;
    }
    let api_key = state.cp.create_agent(&actor, &body.name).await?;
    let webhook_secret = match &body.webhook_url {
        Some(url) => Some(
            state
                .cp
                .set_agent_webhook(&actor, &body.name, url)
                .await
                .map_err(runs_problem)?,
        ),
        None => None,
    };
    let agent = view(&state, state.cp.agent(&body.name).await?).await?;
    Ok(Created {
        location: format!("/api/v1/admin/agents/{}", agent.name),
        body: CreatedAgentView {
            agent,
            api_key,
            webhook_secret,
        },
    })
}

/// Every agent, active and revoked.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AdminAgents)]
pub struct AgentsView {
    pub agents: Vec<AgentView>,
}

pub async fn list(
    State(state): State<AppState>,
    AdminAuth(_): AdminAuth,
) -> Result<Json<AgentsView>, Problem> {
    let mut agents = Vec::new();
    for a in state.cp.list_agents().await? {
        agents.push(view(&state, a).await?);
    }
    Ok(Json(AgentsView { agents }))
}

pub async fn get_one(
    State(state): State<AppState>,
    AdminAuth(_): AdminAuth,
    ApiPath(name): ApiPath,
) -> Result<Json<AgentView>, Problem> {
    let a = state.cp.agent(&name).await?;
    Ok(Json(view(&state, a).await?))
}

pub async fn revoke(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiPath(name): ApiPath,
) -> Result<Json<AgentView>, Problem> {
    state.cp.revoke_agent(&admin.actor(), &name).await?;
    let a = state.cp.agent(&name).await?;
    Ok(Json(view(&state, a).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    /// An absolute http(s) URL, at most 2000 characters.
    pub url: String,
}

/// An agent's webhook with its new signing secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AdminWebhook)]
pub struct WebhookView {
    pub url: String,
    /// The Standard Webhooks signing secret (`whsec_...`).
    pub secret: String,
}

pub async fn set_webhook(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiPath(name): ApiPath,
    ApiJson(body): ApiJson<WebhookBody>,
) -> Result<Json<WebhookView>, Problem> {
    let secret = state
        .cp
        .set_agent_webhook(&admin.actor(), &name, &body.url)
        .await
        .map_err(runs_problem)?;
    Ok(Json(WebhookView {
        url: body.url,
        secret,
    }))
}

pub async fn rotate_secret(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiPath(name): ApiPath,
) -> Result<Json<WebhookView>, Problem> {
    let secret = state
        .cp
        .rotate_agent_webhook_secret(&admin.actor(), &name)
        .await
        .map_err(runs_problem)?;
    let url = state.cp.agent_webhook_url(&name).await?.unwrap_or_default();
    Ok(Json(WebhookView { url, secret }))
}

/// The webhook calls live with the runs (they share the data key); their
/// errors map as the runs API maps them.
fn runs_problem(e: RunsError) -> Problem {
    e.into()
}
