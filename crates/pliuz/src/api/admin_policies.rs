//! `/api/v1/admin/policies`: the policies in force, for admins; with
//! `policy_source = "database"` also created, replaced and deleted here
//! (`service::policies`). In file mode the writes answer 409.
//!
//! Their OpenAPI tag and security come with `operation::admin` in the route
//! table.

use super::created::Created;
use crate::config::PolicySource;
use crate::http::error::Problem;
use crate::http::extract::{AdminAuth, ApiJson, ApiPath};
use crate::http::AppState;
use crate::policy::{Policy, PolicySummary};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Where the policies live: `file` (read-only here) or `database`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceView {
    File,
    Database,
}

impl From<PolicySource> for SourceView {
    fn from(s: PolicySource) -> SourceView {
        match s {
            PolicySource::File => SourceView::File,
            PolicySource::Database => SourceView::Database,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AdminPolicies)]
pub struct PoliciesView {
    pub source: SourceView,
    /// In matching order: a request naming no policy gets the first that
    /// lists its tool.
    pub policies: Vec<PolicySummary>,
    #[schema(required = true)]
    pub default_policy: Option<String>,
    /// SHA-256 (hex) of the policy set's source text.
    pub source_sha256: String,
}

pub async fn list(
    State(state): State<AppState>,
    AdminAuth(_): AdminAuth,
) -> Result<Json<PoliciesView>, Problem> {
    let set = state.cp.policies();
    Ok(Json(PoliciesView {
        source: state.cp.policy_source().into(),
        policies: set.iter().map(|p| p.summary()).collect(),
        default_policy: set.default_policy().map(str::to_owned),
        source_sha256: set.source_hash.clone(),
    }))
}

/// One policy: what it resolved to, and its definition (the keys of a
/// `[[policy]]` table), which PUT takes back.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AdminPolicy)]
pub struct PolicyView {
    pub policy: PolicySummary,
    #[schema(value_type = Object)]
    pub definition: Map<String, Value>,
}

fn view(p: &Policy) -> PolicyView {
    PolicyView {
        policy: p.summary(),
        definition: crate::service::policies::definition_of(p),
    }
}

pub async fn get_one(
    State(state): State<AppState>,
    AdminAuth(_): AdminAuth,
    ApiPath(name): ApiPath,
) -> Result<Json<PolicyView>, Problem> {
    let set = state.cp.policies();
    let p = set
        .get(&name)
        .ok_or_else(|| Problem::not_found(format!("no policy '{name}'")))?;
    Ok(Json(view(p)))
}

/// A policy as the keys of a `[[policy]]` table of pliuz.toml (see
/// docs/policies.md), checked exactly as `pliuz policy check` checks them.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // documents the body; the handlers take it as an object
pub struct PolicyDefinition {
    /// Letters, digits, '-', '_' or '.'; on PUT it may be left out.
    name: Option<String>,
    description: Option<String>,
    /// Tool names this policy covers ("*": any).
    tools: Option<Vec<String>>,
    /// "group:NAME" or "user:EMAIL"; at least one.
    approvers: Vec<String>,
    /// Of approve, reject, edit (default approve and reject).
    decisions: Option<Vec<String>>,
    required_approvals: Option<i64>,
    /// A duration such as "30m" (default 24h).
    expires_in: Option<String>,
    execute_within: Option<String>,
    /// A CEL condition under which a call is approved without a person.
    auto_approve: Option<String>,
    auto_reject: Option<String>,
    slack_channel: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiJson(definition): ApiJson<Map<String, Value>>,
) -> Result<Created<PolicyView>, Problem> {
    let p = state.cp.create_policy(&admin.actor(), definition).await?;
    Ok(Created {
        location: format!("/api/v1/admin/policies/{}", p.name),
        body: view(&p),
    })
}

pub async fn replace(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiPath(name): ApiPath,
    ApiJson(definition): ApiJson<Map<String, Value>>,
) -> Result<Json<PolicyView>, Problem> {
    let p = state
        .cp
        .replace_policy(&admin.actor(), &name, definition)
        .await?;
    Ok(Json(view(&p)))
}

pub async fn remove(
    State(state): State<AppState>,
    admin: AdminAuth,
    ApiPath(name): ApiPath,
) -> Result<StatusCode, Problem> {
    state.cp.delete_policy(&admin.actor(), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
