//! The JSON API (`/api/v1`): its route table, handlers and OpenAPI
//! document. Handlers stay thin and call into `service`; state, errors and
//! extractors come from `http`.

pub mod admin_agents;
pub mod admin_policies;
pub mod admin_users;
pub mod approvals;
pub mod audit;
pub mod created;
pub mod input;
pub mod long_poll;
pub mod metrics;
pub mod openapi;
pub mod operation;
pub mod questions;
pub mod runs;

use crate::http::error::Problem;
use crate::http::{extract, AppState};
use axum::extract::{DefaultBodyLimit, State};
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Json, Router};
use long_poll::WaitQuery;
use operation::{admin, op, Callers, Doc, PathParam, Tag};
use serde::Serialize;
use utoipa::ToSchema;

/// One API route: the router and the OpenAPI document are both built from
/// this table, so they cannot drift apart.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub handler: MethodRouter<AppState>,
    pub doc: Doc,
}

/// A row of the table: `handler` serves `path` for `method`, the method the
/// document gives it (written once, so the two cannot disagree).
fn route<H, T>(method: Method, path: &'static str, handler: H, doc: Doc) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone())
        .unwrap_or_else(|e| panic!("route table, {path}: {e}"));
    Route {
        method,
        path,
        handler: on(filter, handler),
        doc,
    }
}

/// A run route whose body is a run state: read under `max_run_state_bytes`
/// instead of the general body limit.
fn state_route<H, T>(method: Method, path: &'static str, handler: H, doc: Doc) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let mut r = route(method, path, handler, doc);
    r.handler = r.handler.layer(DefaultBodyLimit::disable());
    r
}

const APPROVAL_ID: PathParam = ("id", "The approval's id");
const QUESTION_ID: PathParam = ("id", "The question's id");
const RUN_ID: PathParam = ("id", "The run's id");
const AGENT_NAME: PathParam = ("name", "The agent's name");
const USER_EMAIL: PathParam = ("email", "The user's e-mail address");
const TOKEN_ID: PathParam = ("token_id", "The token's id");
const POLICY_NAME: PathParam = ("name", "The policy's name");

/// Every route of the JSON API (paths in axum syntax, `{id}` style), each
/// with its documentation (`operation::Doc`). The run routes that take a
/// state (`state_route`) read their body under `max_run_state_bytes`
/// instead of the general body limit.
#[rustfmt::skip] // a route and its documentation read as one row
pub fn routes() -> Vec<Route> {
    use Method as M;
    vec![
        route(M::POST, "/api/v1/approvals", approvals::create,
            op("create_approval", Tag::Agent, Callers::Agents, "Open an approval request (agent)")
                .description("Fails closed: a tool that matches no policy is refused with 422 no_matching_policy.")
                .body::<approvals::CreateBody>()
                .created_or_replayed::<approvals::ApprovalView>()),
        route(M::GET, "/api/v1/approvals", approvals::list,
            op("list_approvals", Tag::Human, Callers::AgentsAndPeople, "List approvals visible to the caller, newest first")
                .query::<approvals::ListQuery>()
                .ok::<approvals::ListView>("A page")),
        route(M::GET, "/api/v1/approvals/{id}", approvals::get,
            op("get_approval", Tag::Agent, Callers::AgentsAndPeople, "Get an approval, optionally waiting for a decision")
                .path_param(APPROVAL_ID)
                .query::<WaitQuery>()
                .ok::<approvals::ApprovalView>("The approval")),
        route(M::POST, "/api/v1/approvals/{id}/decision", approvals::decide,
            op("decide_approval", Tag::Human, Callers::People, "Approve, reject, edit or respond (human)")
                .description("409 args_changed: the arguments changed since the decider reviewed them (args_digest). `respond` (only where the policy's `decisions` list it; otherwise 422 decision_not_allowed) answers in the tool's place: the request settles as `responded`, the tool never runs, and `reason` (required) is the message the agent's model receives.")
                .path_param(APPROVAL_ID)
                .body::<approvals::DecisionBody>()
                .ok::<approvals::ApprovalView>("The approval")),
        route(M::POST, "/api/v1/approvals/{id}/execution", approvals::execution,
            op("claim_or_report_execution", Tag::Agent, Callers::AgentsAndPeople, "Claim the execution of an approved call (outcome started), then report its outcome (agent)")
                .description("409 execution_claimed: already claimed (outcome unknown, check before retrying) or executed. 409 execution_expired: past execute_before. 409 execution_not_claimed: a report without a claim. 409 claim_mismatch: a report with another claim_id.")
                .path_param(APPROVAL_ID)
                .body::<approvals::ExecutionBody>()
                .ok::<approvals::ApprovalView>("The approval")),
        route(M::POST, "/api/v1/approvals/{id}/cancel", approvals::cancel,
            op("cancel_approval", Tag::Agent, Callers::AgentsAndPeople, "Withdraw a pending request (agent)")
                .description("The body is optional: an empty one cancels without a reason.")
                .path_param(APPROVAL_ID)
                .optional_body::<approvals::CancelBody>()
                .ok::<approvals::ApprovalView>("The approval")),
        route(M::GET, "/api/v1/approvals/{id}/receipt", audit::receipt,
            op("get_receipt", Tag::Audit, Callers::AgentsAndPeople, "Offline-verifiable receipt of one approval (pliuz-receipt/v1)")
                .description("Every log entry of the approval with its inclusion proof under a signed checkpoint. Whoever can see the approval may fetch it. Verify with `pliuz audit verify-receipt FILE --key VKEY`.")
                .path_param(APPROVAL_ID)
                .ok::<pliuz_audit::Receipt>("The receipt")),
        route(M::GET, "/api/v1/policies", policies,
            op("list_policies", Tag::Human, Callers::People, "The loaded policies (human)")
                .ok::<PoliciesView>("Policies")),
        route(M::GET, "/api/v1/openapi.json", openapi_doc,
            op("get_openapi_document", Tag::Service, Callers::Anyone, "This document")
                .any_object("OpenAPI 3.1")),
        route(M::GET, "/healthz", healthz,
            op("healthz", Tag::Service, Callers::Anyone, "Liveness")
                .text("ok", "text/plain")),
        route(M::GET, "/readyz", readyz,
            op("readyz", Tag::Service, Callers::Anyone, "Readiness: the store answers")
                .text("ready", "text/plain")
                .problem(503)),
        route(M::GET, "/metrics", metrics::metrics,
            op("metrics", Tag::Service, Callers::MetricsScrapers, "Prometheus metrics (OpenMetrics 1.0.0 text, UTF-8)")
                .description("Served when `[metrics]` is enabled; with `metrics.token` set, only to `Authorization: Bearer <token>`. See docs/operations.md, \"Metrics\".")
                .text("The metrics", "application/openmetrics-text")
                .problem(401)
                .problem(404)
                .problem(503)),
        route(M::POST, "/api/v1/admin/agents", admin_agents::create,
            admin("admin_create_agent", "Create an agent; its key is in the answer, once (audited as agent.created)")
                .body::<admin_agents::CreateAgentBody>()
                .created::<admin_agents::CreatedAgentView>()),
        route(M::GET, "/api/v1/admin/agents", admin_agents::list,
            admin("admin_list_agents", "Every agent, by name")
                .ok::<admin_agents::AgentsView>("Agents")),
        route(M::GET, "/api/v1/admin/agents/{name}", admin_agents::get_one,
            admin("admin_get_agent", "One agent")
                .path_param(AGENT_NAME)
                .ok::<admin_agents::AgentView>("The agent")),
        route(M::POST, "/api/v1/admin/agents/{name}/revoke", admin_agents::revoke,
            admin("admin_revoke_agent", "Revoke an agent's key at once (audited as agent.revoked)")
                .path_param(AGENT_NAME)
                .ok::<admin_agents::AgentView>("The revoked agent")),
        route(M::PUT, "/api/v1/admin/agents/{name}/webhook", admin_agents::set_webhook,
            admin("admin_set_agent_webhook", "Set or change an agent's webhook URL, with a new signing secret (audited as agent.webhook_set)")
                .path_param(AGENT_NAME)
                .body::<admin_agents::WebhookBody>()
                .ok::<admin_agents::WebhookView>("The webhook and its new secret")),
        route(M::POST, "/api/v1/admin/agents/{name}/webhook/rotate-secret", admin_agents::rotate_secret,
            admin("admin_rotate_agent_webhook_secret", "A new signing secret for the agent's webhook; the old one stops signing at once (audited as agent.webhook_set)")
                .path_param(AGENT_NAME)
                .ok::<admin_agents::WebhookView>("The webhook and its new secret")),
        route(M::POST, "/api/v1/admin/users", admin_users::create,
            admin("admin_create_user", "Create a user (audited as user.created)")
                .body::<admin_users::CreateUserBody>()
                .created::<admin_users::CreatedUserView>()),
        route(M::GET, "/api/v1/admin/users", admin_users::list,
            admin("admin_list_users", "Every user, by e-mail")
                .ok::<admin_users::UsersView>("Users")),
        route(M::GET, "/api/v1/admin/users/{email}", admin_users::get_one,
            admin("admin_get_user", "One user")
                .path_param(USER_EMAIL)
                .ok::<admin_users::UserView>("The user")),
        route(M::PUT, "/api/v1/admin/users/{email}/groups", admin_users::set_groups,
            admin("admin_set_user_groups", "Set a user's groups (each one added or removed audited as user.group_added / user.group_removed)")
                .path_param(USER_EMAIL)
                .body::<admin_users::GroupsBody>()
                .ok::<admin_users::UserView>("The user")),
        route(M::PUT, "/api/v1/admin/users/{email}/role", admin_users::set_role,
            admin("admin_set_user_role", "Change a user's role (audited as user.role_changed; not one's own)")
                .path_param(USER_EMAIL)
                .body::<admin_users::RoleBody>()
                .ok::<admin_users::UserView>("The user")),
        route(M::POST, "/api/v1/admin/users/{email}/disable", admin_users::disable,
            admin("admin_disable_user", "Stop a user from logging in or using tokens (audited as user.disabled; not oneself)")
                .path_param(USER_EMAIL)
                .ok::<admin_users::UserView>("The user")),
        route(M::POST, "/api/v1/admin/users/{email}/enable", admin_users::enable,
            admin("admin_enable_user", "Undo disable (audited as user.enabled)")
                .path_param(USER_EMAIL)
                .ok::<admin_users::UserView>("The user")),
        route(M::GET, "/api/v1/admin/users/{email}/tokens", admin_users::list_tokens,
            admin("admin_list_user_tokens", "A user's personal API tokens, newest first")
                .path_param(USER_EMAIL)
                .ok::<admin_users::TokensView>("Tokens")),
        route(M::POST, "/api/v1/admin/users/{email}/tokens", admin_users::create_token,
            admin("admin_create_user_token", "Issue a personal API token; the token is in the answer, once (audited as user.token_issued)")
                .path_param(USER_EMAIL)
                .optional_body::<admin_users::CreateTokenBody>()
                .json::<admin_users::CreatedTokenView>(201, "Created")),
        route(M::POST, "/api/v1/admin/users/{email}/tokens/{token_id}/revoke", admin_users::revoke_token,
            admin("admin_revoke_user_token", "Revoke one personal API token (audited as user.token_revoked)")
                .path_param(USER_EMAIL)
                .path_param(TOKEN_ID)
                .no_content("Revoked")),
        route(M::GET, "/api/v1/admin/policies", admin_policies::list,
            admin("admin_list_policies", "The policies in force")
                .ok::<admin_policies::PoliciesView>("Policies")),
        route(M::POST, "/api/v1/admin/policies", admin_policies::create,
            admin("admin_create_policy", "Add a policy, last in matching order (policy_source = \"database\"; audited as policy.created with the full policy)")
                .body::<admin_policies::PolicyDefinition>()
                .created::<admin_policies::PolicyView>()),
        route(M::GET, "/api/v1/admin/policies/{name}", admin_policies::get_one,
            admin("admin_get_policy", "One policy")
                .path_param(POLICY_NAME)
                .ok::<admin_policies::PolicyView>("The policy")),
        route(M::PUT, "/api/v1/admin/policies/{name}", admin_policies::replace,
            admin("admin_replace_policy", "Replace a policy whole, keeping its place (policy_source = \"database\"; audited as policy.updated with the full policy)")
                .path_param(POLICY_NAME)
                .body::<admin_policies::PolicyDefinition>()
                .ok::<admin_policies::PolicyView>("Replaced; in force for the next request")),
        route(M::DELETE, "/api/v1/admin/policies/{name}", admin_policies::remove,
            admin("admin_delete_policy", "Delete a policy (policy_source = \"database\"; audited as policy.deleted)")
                .path_param(POLICY_NAME)
                .no_content("Deleted")),
        route(M::GET, "/api/v1/audit/checkpoint", audit::checkpoint,
            op("get_audit_checkpoint", Tag::Audit, Callers::AgentsAndPeople, "The newest signed checkpoint (C2SP tlog-checkpoint signed note)")
                .description("Any authenticated caller. Verify it with the key from /api/v1/audit/key obtained out of band.")
                .text("The signed note", "text/plain")),
        route(M::GET, "/api/v1/audit/key", audit::key,
            op("get_audit_verifier_key", Tag::Audit, Callers::AgentsAndPeople, "The current checkpoint verifier key (name+id+base64)")
                .description("Any authenticated caller.")
                .text("The verifier key, one line", "text/plain")),
        route(M::GET, "/api/v1/audit/keys", audit::keys,
            op("list_audit_verifier_keys", Tag::Audit, Callers::AgentsAndPeople, "Every verifier key the log has used (key rotation)")
                .description("Any authenticated caller.")
                .ok::<audit::KeysView>("Keys, oldest first")),
        route(M::GET, "/api/v1/audit/entries", audit::entries,
            op("list_audit_entries", Tag::Audit, Callers::AgentsAndPeople, "Log entries start..end (auditors and admins)")
                .description("At most 1000 entries per page; `end` is clamped to the log size. `canonical` is exactly the RFC 8785 bytes hashed as the leaf.")
                .query::<audit::EntriesQuery>()
                .ok::<audit::EntriesPage>("A page")),
        route(M::GET, "/api/v1/audit/proof/inclusion", audit::inclusion,
            op("get_inclusion_proof", Tag::Audit, Callers::AgentsAndPeople, "RFC 9162 inclusion proof of entry `index` in the tree of `size` entries (auditors and admins)")
                .description("`size` defaults to the newest checkpoint's size. 422 out_of_range when index >= size or size > log size.")
                .query::<audit::InclusionQuery>()
                .ok::<audit::InclusionView>("The proof")),
        route(M::GET, "/api/v1/audit/proof/consistency", audit::consistency,
            op("get_consistency_proof", Tag::Audit, Callers::AgentsAndPeople, "RFC 9162 consistency proof from tree size `from` to `size`")
                .description("Any authenticated caller (monitors, witnesses). `size` defaults to the newest checkpoint's size. 422 out_of_range when from > size or size > log size.")
                .query::<audit::ConsistencyQuery>()
                .ok::<audit::ConsistencyView>("The proof")),
        state_route(M::POST, "/api/v1/runs", runs::create,
            op("create_run", Tag::Runs, Callers::Agents, "Store a paused run (agent). Audited as run.paused with the state's SHA-256")
                .body::<runs::CreateBody>()
                .created::<runs::RunView>()),
        route(M::GET, "/api/v1/runs", runs::list,
            op("list_runs", Tag::Runs, Callers::Agents, "This agent's runs; with status=ready&wait, long-polls until one is claimable")
                .query::<runs::ListQuery>()
                .ok::<runs::ListView>("A page")),
        route(M::GET, "/api/v1/runs/{id}", runs::get_one,
            op("get_run", Tag::Runs, Callers::Agents, "A run; with wait, long-polls while it is waiting")
                .path_param(RUN_ID)
                .query::<WaitQuery>()
                .ok::<runs::RunView>("The run")),
        state_route(M::PUT, "/api/v1/runs/{id}", runs::repause,
            op("repause_run", Tag::Runs, Callers::Agents, "Pause the claimed run again with a new state (lease holder); releases the lease")
                .path_param(RUN_ID)
                .body::<runs::RepauseBody>()
                .ok::<runs::RunView>("The run")),
        route(M::POST, "/api/v1/runs/{id}/claim", runs::claim,
            op("claim_run", Tag::Runs, Callers::Agents, "Claim a ready run with a lease and get its state (409 run_claimed, run_not_ready, run_completed)")
                .description("The body is optional: an empty one takes the default lease.")
                .path_param(RUN_ID)
                .optional_body::<runs::ClaimBody>()
                .ok::<runs::ClaimView>("The claim")),
        route(M::POST, "/api/v1/runs/{id}/heartbeat", runs::heartbeat,
            op("heartbeat_run", Tag::Runs, Callers::Agents, "Extend the lease (409 lease_lost when the token is not the current lease)")
                .path_param(RUN_ID)
                .body::<runs::HeartbeatBody>()
                .ok::<runs::RunView>("The run")),
        route(M::POST, "/api/v1/runs/{id}/complete", runs::complete,
            op("complete_run", Tag::Runs, Callers::Agents, "Finish the claimed run (lease holder); its stored state is deleted")
                .path_param(RUN_ID)
                .body::<runs::CompleteBody>()
                .ok::<runs::RunView>("The run")),
        route(M::GET, "/api/v1/questions", questions::list,
            op("list_questions", Tag::Human, Callers::People, "Pending questions you may answer, oldest first (human)")
                .query::<questions::ListQuery>()
                .ok::<questions::ListView>("Pending questions")),
        route(M::POST, "/api/v1/questions", questions::create,
            op("ask_question", Tag::Agent, Callers::Agents, "Ask a person a question (agent)")
                .description("The policy's approvers may answer, except the originator. Wait for the answer with GET ?wait=.")
                .body::<questions::CreateBody>()
                .created_or_replayed::<questions::QuestionView>()),
        route(M::GET, "/api/v1/questions/{id}", questions::get_one,
            op("get_question", Tag::Agent, Callers::AgentsAndPeople, "Get a question, optionally waiting for the answer")
                .path_param(QUESTION_ID)
                .query::<WaitQuery>()
                .ok::<questions::QuestionView>("The question")),
        route(M::POST, "/api/v1/questions/{id}/answer", questions::answer,
            op("answer_question", Tag::Human, Callers::People, "Answer a question (human)")
                .description("An approver of the question's policy who is not its originator answers once; 409 when it is no longer pending.")
                .path_param(QUESTION_ID)
                .body::<questions::AnswerBody>()
                .ok::<questions::QuestionView>("The answered question")),
    ]
}

/// The API's routes, with the answers for unknown routes and methods.
pub fn router() -> Router<AppState> {
    let mut api = Router::new();
    for r in routes() {
        api = api.route(r.path, r.handler);
    }
    api
}

/// problem+json for a path no route serves.
pub async fn not_found() -> Problem {
    Problem::not_found("no such route; see /api/v1/openapi.json for the API")
}

/// problem+json for a route that does not take the request's method.
pub async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
        "this route does not accept that method; see /api/v1/openapi.json",
    )
}

pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the store takes writes (not merely answers reads).
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    match state.cp.readiness().await {
        Ok(()) => "ready".into_response(),
        Err(reason) => {
            tracing::warn!(%reason, "store not ready");
            let mut p = Problem::unavailable(format!("the store cannot take writes: {reason}"));
            p.retry_after = Some(1);
            p.into_response()
        }
    }
}

pub(crate) async fn openapi_doc() -> Json<serde_json::Value> {
    Json(openapi::document())
}

/// The loaded policies.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Policies)]
pub(crate) struct PoliciesView {
    policies: Vec<crate::policy::PolicySummary>,
    /// The policy used when a request names none and no tool pattern
    /// matches; null when such requests are refused.
    #[schema(required = true)]
    default_policy: Option<String>,
    /// SHA-256 (hex) of the policy file as loaded.
    source_sha256: String,
}

pub(crate) async fn policies(
    State(state): State<AppState>,
    extract::Auth(principal): extract::Auth,
) -> Result<Json<PoliciesView>, Problem> {
    if matches!(principal, crate::auth::Principal::Agent { .. }) {
        return Err(Problem::forbidden(
            "policies are visible to people, not agent keys",
        ));
    }
    Ok(Json(PoliciesView {
        policies: state.cp.policies().iter().map(|p| p.summary()).collect(),
        default_policy: state.cp.policies().default_policy().map(str::to_owned),
        source_sha256: state.cp.policies().source_hash.clone(),
    }))
}
