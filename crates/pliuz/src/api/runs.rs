//! `/api/v1/runs`: durable runs (see `crate::service::runs`). Agent keys
//! only; an agent sees and claims only its own runs (others' are 404).

use super::approvals::{ApprovalView, MAX_WAIT_SECS};
use super::Route;
use crate::auth::Principal;
use crate::http::error::Problem;
use crate::http::extract::{ApiJson, ApiQuery, Auth};
use crate::http::AppState;
use crate::run::{Outcome, Run, RunStatus};
use crate::service::format_time;
use crate::service::runs::{NewRunState, RunsError};
use crate::service::FieldError;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::time::Duration;

const MAX_APPROVAL_IDS: usize = 100;
const MAX_METADATA_BYTES: usize = 16 * 1024;
const MAX_ERROR_CHARS: usize = 2000;
const DEFAULT_LEASE_SECS: u64 = 300;
const LEASE_SECS: std::ops::RangeInclusive<u64> = 10..=3600;

/// The run resource (never contains the state).
#[derive(Debug, Serialize)]
pub struct RunView {
    pub id: String,
    pub agent: String,
    pub status: RunStatus,
    pub approval_ids: Vec<String>,
    pub state_sha256: String,
    pub metadata: Value,
    pub lease_expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub pause_count: i64,
}

impl RunView {
    pub fn new(r: Run) -> RunView {
        let now = crate::service::now_millis();
        let status = r.effective_status(now);
        RunView {
            lease_expires_at: if r.status == RunStatus::Running {
                r.lease_expires_at.map(format_time)
            } else {
                None
            },
            status,
            id: r.id,
            agent: r.agent,
            approval_ids: r.approval_ids,
            state_sha256: r.state_sha256,
            metadata: r.metadata.unwrap_or_else(|| json!({})),
            created_at: format_time(r.created_at),
            updated_at: format_time(r.updated_at),
            pause_count: r.pause_count,
        }
    }
}

impl From<RunsError> for Problem {
    fn from(e: RunsError) -> Problem {
        use crate::run::RunConflict as C;
        let msg = e.to_string();
        match e {
            RunsError::NotFound(_) => Problem::not_found(msg),
            RunsError::Validation(errors) => Problem::validation(errors),
            RunsError::StateTooLarge { .. } => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Run state too large",
                format!("{msg}; store less in the run (or raise max_run_state_bytes)"),
            ),
            RunsError::Conflict(c) => {
                let (code, title) = match c {
                    C::Claimed { .. } => ("run_claimed", "Run is claimed by another worker"),
                    C::NotReady { .. } => ("run_not_ready", "Run is still waiting"),
                    C::Finished { .. } => ("run_completed", "Run is finished"),
                    C::LeaseLost { .. } => ("lease_lost", "Lease lost"),
                };
                Problem::new(StatusCode::CONFLICT, code, title, msg)
            }
            RunsError::Service(s) => s.into(),
            RunsError::Key(m) => {
                tracing::error!(error = %m, "data encryption key");
                Problem::internal()
            }
        }
    }
}

fn agent_of(p: &Principal) -> Result<&str, Problem> {
    match p {
        Principal::Agent { name } => Ok(name),
        Principal::User(_) => Err(Problem::forbidden(
            "runs belong to agents: use the agent's key (`pliuz agents create NAME`)",
        )),
    }
}

/// Reads a JSON body under the run state limit (not the general
/// `max_body_bytes`): the state is a JSON string, so escaping may make the
/// body up to about twice its size.
async fn state_body<T: DeserializeOwned>(state: &AppState, req: Request) -> Result<T, Problem> {
    let max = state.cp.settings.max_run_state_bytes;
    let limit = max.saturating_mul(2).saturating_add(1024 * 1024);
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Run state too large",
            format!("the request body is over {limit} bytes; a run state may be at most {max} bytes (max_run_state_bytes)"),
        )
    })?;
    let req = Request::from_parts(parts, axum::body::Body::from(bytes));
    let ApiJson(v) = ApiJson::<T>::from_request(req, state).await?;
    Ok(v)
}

fn check_approval_ids(errors: &mut Vec<FieldError>, ids: &[String]) {
    if ids.len() > MAX_APPROVAL_IDS {
        errors.push(FieldError::new(
            "approval_ids",
            format!("at most {MAX_APPROVAL_IDS} approvals per run"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if id.trim().is_empty() || id.len() > 200 {
            errors.push(FieldError::new(
                "approval_ids",
                "each id must be a non-empty string of at most 200 characters",
            ));
            break;
        }
        if !seen.insert(id) {
            errors.push(FieldError::new(
                "approval_ids",
                format!("'{id}' is listed twice"),
            ));
            break;
        }
    }
}

fn check_metadata(errors: &mut Vec<FieldError>, m: &Option<Map<String, Value>>) {
    if let Some(m) = m {
        if serde_json::to_string(m).map(|s| s.len()).unwrap_or(0) > MAX_METADATA_BYTES {
            errors.push(FieldError::new(
                "metadata",
                format!("must be at most {MAX_METADATA_BYTES} bytes as JSON"),
            ));
        }
    }
}

fn check_lease(errors: &mut Vec<FieldError>, secs: Option<u64>) -> u64 {
    let secs = secs.unwrap_or(DEFAULT_LEASE_SECS);
    if !LEASE_SECS.contains(&secs) {
        errors.push(FieldError::new(
            "lease_seconds",
            format!(
                "must be between {} and {} seconds",
                LEASE_SECS.start(),
                LEASE_SECS.end()
            ),
        ));
    }
    secs
}

fn done(errors: Vec<FieldError>) -> Result<(), Problem> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Problem::validation(errors))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    state: String,
    approval_ids: Vec<String>,
    metadata: Option<Map<String, Value>>,
}

pub async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    req: Request,
) -> Result<Response, Problem> {
    let agent = agent_of(&principal)?.to_owned();
    let body: CreateBody = state_body(&state, req).await?;
    let mut errors = Vec::new();
    check_approval_ids(&mut errors, &body.approval_ids);
    check_metadata(&mut errors, &body.metadata);
    done(errors)?;
    let run = state
        .cp
        .create_run(
            &agent,
            NewRunState {
                state: body.state,
                approval_ids: body.approval_ids,
                metadata: body.metadata.map(Value::Object),
            },
        )
        .await?;
    let location = format!("/api/v1/runs/{}", run.id);
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::LOCATION, location)],
        Json(RunView::new(run)),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    wait: Option<u64>,
}

fn check_wait(wait: Option<u64>) -> Result<u64, Problem> {
    let wait = wait.unwrap_or(0);
    if wait > MAX_WAIT_SECS {
        return Err(Problem::validation(vec![FieldError::new(
            "wait",
            format!("must be between 0 and {MAX_WAIT_SECS} seconds"),
        )]));
    }
    Ok(wait)
}

pub async fn get_one(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<GetQuery>,
) -> Result<Json<RunView>, Problem> {
    let agent = agent_of(&principal)?;
    let wait = check_wait(q.wait)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    // Register before reading, so a change landing in between is not missed.
    // A decision that readies the run is a run change of this agent.
    let mut runs = state.cp.notifier.wait_for_runs(agent);
    loop {
        let run = state.cp.get_run_for(agent, &id).await?;
        if run.status != RunStatus::Waiting || tokio::time::Instant::now() >= deadline {
            return Ok(Json(RunView::new(run)));
        }
        // Re-read only when one of this agent's runs changed.
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            _ = runs.changed() => {}
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    wait: Option<u64>,
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct ListView {
    items: Vec<RunView>,
}

pub async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ListView>, Problem> {
    let agent = agent_of(&principal)?;
    let wait = check_wait(q.wait)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(Problem::validation(vec![FieldError::new(
            "limit",
            "must be between 1 and 100",
        )]));
    }
    let status = match q.status {
        None => None,
        Some(s) => Some(RunStatus::parse(&s).ok_or_else(|| {
            Problem::validation(vec![FieldError::new(
                "status",
                format!("'{s}' is not one of waiting, ready, running, completed, failed"),
            )])
        })?),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let mut runs = state.cp.notifier.wait_for_runs(agent);
    loop {
        let now = crate::service::now_millis();
        let items = state
            .cp
            .list_runs(agent, status, now, i64::from(limit))
            .await?;
        if !items.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(Json(ListView {
                items: items.into_iter().map(RunView::new).collect(),
            }));
        }
        // A lease running out makes a run claimable without any write.
        let mut until = deadline;
        if status == Some(RunStatus::Ready) {
            if let Some(at) = state.cp.next_lease_expiry(agent, now).await? {
                let ms = u64::try_from(at - now).unwrap_or(0);
                until = until.min(tokio::time::Instant::now() + Duration::from_millis(ms + 1));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep_until(until) => {}
            _ = runs.changed() => {}
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    lease_seconds: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct ClaimView {
    run: RunView,
    lease_token: String,
    state: String,
    state_sha256: String,
    approvals: Vec<ApprovalView>,
}

pub async fn claim(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<ClaimView>, Problem> {
    let agent = agent_of(&principal)?;
    // The body is optional: an empty one takes the default lease.
    let body: ClaimBody = if body.iter().all(u8::is_ascii_whitespace) {
        ClaimBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Problem::validation(vec![FieldError::new("body", e.to_string())]))?
    };
    let mut errors = Vec::new();
    let secs = check_lease(&mut errors, body.lease_seconds);
    done(errors)?;
    let c = state.cp.claim_run(agent, &id, secs).await?;
    Ok(Json(ClaimView {
        state_sha256: c.run.state_sha256.clone(),
        run: RunView::new(c.run),
        lease_token: c.lease_token,
        state: c.state,
        approvals: c
            .approvals
            .into_iter()
            .map(|a| ApprovalView::new(a, false))
            .collect(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatBody {
    lease_token: String,
    lease_seconds: Option<u64>,
}

pub async fn heartbeat(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<HeartbeatBody>,
) -> Result<Json<RunView>, Problem> {
    let agent = agent_of(&principal)?;
    let mut errors = Vec::new();
    let secs = check_lease(&mut errors, body.lease_seconds);
    done(errors)?;
    let run = state
        .cp
        .heartbeat_run(agent, &id, &body.lease_token, secs)
        .await?;
    Ok(Json(RunView::new(run)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepauseBody {
    lease_token: String,
    state: String,
    approval_ids: Vec<String>,
    metadata: Option<Map<String, Value>>,
}

pub async fn repause(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<RunView>, Problem> {
    let agent = agent_of(&principal)?.to_owned();
    let body: RepauseBody = state_body(&state, req).await?;
    let mut errors = Vec::new();
    check_approval_ids(&mut errors, &body.approval_ids);
    check_metadata(&mut errors, &body.metadata);
    done(errors)?;
    let run = state
        .cp
        .repause_run(
            &agent,
            &id,
            &body.lease_token,
            NewRunState {
                state: body.state,
                approval_ids: body.approval_ids,
                metadata: body.metadata.map(Value::Object),
            },
        )
        .await?;
    Ok(Json(RunView::new(run)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    lease_token: String,
    outcome: String,
    output_sha256: Option<String>,
    error: Option<String>,
}

pub async fn complete(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CompleteBody>,
) -> Result<Json<RunView>, Problem> {
    let agent = agent_of(&principal)?;
    let mut errors = Vec::new();
    let outcome = match body.outcome.as_str() {
        "completed" => Some(Outcome::Completed),
        "failed" => Some(Outcome::Failed),
        other => {
            errors.push(FieldError::new(
                "outcome",
                format!("'{other}' is not one of completed, failed"),
            ));
            None
        }
    };
    if let Some(h) = &body.output_sha256 {
        if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            errors.push(FieldError::new(
                "output_sha256",
                "must be a SHA-256 as 64 hex digits",
            ));
        }
    }
    if body
        .error
        .as_ref()
        .is_some_and(|e| e.chars().count() > MAX_ERROR_CHARS)
    {
        errors.push(FieldError::new(
            "error",
            format!("must be at most {MAX_ERROR_CHARS} characters"),
        ));
    }
    done(errors)?;
    let Some(outcome) = outcome else {
        return Err(Problem::internal());
    };
    let run = state
        .cp
        .complete_run(
            agent,
            &id,
            &body.lease_token,
            outcome,
            body.output_sha256.map(|h| h.to_ascii_lowercase()),
            body.error,
        )
        .await?;
    Ok(Json(RunView::new(run)))
}

/// The `/api/v1/runs` routes. The state-carrying ones read their body
/// under `max_run_state_bytes` instead of the general body limit.
pub fn routes() -> Vec<Route> {
    vec![
        Route {
            method: Method::POST,
            path: "/api/v1/runs",
            handler: post(create).layer(DefaultBodyLimit::disable()),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/runs",
            handler: get(list),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/runs/{id}",
            handler: get(get_one),
        },
        Route {
            method: Method::PUT,
            path: "/api/v1/runs/{id}",
            handler: axum::routing::put(repause).layer(DefaultBodyLimit::disable()),
        },
        Route {
            method: Method::POST,
            path: "/api/v1/runs/{id}/claim",
            handler: post(claim),
        },
        Route {
            method: Method::POST,
            path: "/api/v1/runs/{id}/heartbeat",
            handler: post(heartbeat),
        },
        Route {
            method: Method::POST,
            path: "/api/v1/runs/{id}/complete",
            handler: post(complete),
        },
    ]
}

fn run_schema() -> Value {
    json!({
        "type": "object",
        "required": ["id", "agent", "status", "approval_ids", "state_sha256", "metadata", "lease_expires_at", "created_at", "updated_at", "pause_count"],
        "properties": {
            "id": {"type": "string"},
            "agent": {"type": "string"},
            "status": {"type": "string", "enum": ["waiting", "ready", "running", "completed", "failed"], "description": "ready: every approval is settled (or the lease of a running run expired); the run may be claimed"},
            "approval_ids": {"type": "array", "items": {"type": "string"}},
            "state_sha256": {"type": "string", "description": "SHA-256 (hex) of the stored state, as in the audit log"},
            "metadata": {"type": "object"},
            "lease_expires_at": {"type": ["string", "null"], "format": "date-time"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "pause_count": {"type": "integer"}
        }
    })
}

fn op(summary: &str, body: Option<Value>, ok: &str, ok_schema: Value) -> Value {
    let mut o = json!({
        "summary": summary,
        "tags": ["runs"],
        "security": [{"bearer": []}],
        "responses": {
            ok: {"description": "OK", "content": {"application/json": {"schema": ok_schema}}},
            "400": {"$ref": "#/components/responses/Problem"},
            "401": {"$ref": "#/components/responses/Problem"},
            "403": {"$ref": "#/components/responses/Problem"},
            "404": {"$ref": "#/components/responses/Problem"},
            "409": {"$ref": "#/components/responses/Problem"},
            "413": {"$ref": "#/components/responses/Problem"},
            "415": {"$ref": "#/components/responses/Problem"},
            "422": {"$ref": "#/components/responses/Problem"},
            "500": {"$ref": "#/components/responses/Problem"},
            "503": {"$ref": "#/components/responses/Problem"}
        },
    });
    if let Some(schema) = body {
        o["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": schema}}});
    }
    o
}

fn with_params(mut o: Value, params: Value) -> Value {
    o["parameters"] = params;
    o
}

/// OpenAPI operations for [`routes`].
pub fn openapi_operations() -> Vec<(&'static str, &'static str, Value)> {
    let id = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}});
    let wait = json!({"name": "wait", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 60}});
    let state_body = |extra: Value| {
        let mut props = json!({
            "state": {"type": "string", "description": "Opaque serialized run state (at most max_run_state_bytes, default 8 MiB; 413 payload_too_large)"},
            "approval_ids": {"type": "array", "maxItems": 100, "items": {"type": "string"}},
            "metadata": {"type": "object", "description": "Small JSON object (at most 16 KiB)"}
        });
        let mut required = vec![json!("state"), json!("approval_ids")];
        if let (Value::Object(p), Value::Object(e)) = (&mut props, extra) {
            for k in e.keys() {
                required.push(json!(k));
            }
            p.extend(e);
        }
        json!({"type": "object", "additionalProperties": false, "required": required, "properties": props})
    };
    let lease = json!({"type": "integer", "minimum": 10, "maximum": 3600, "default": 300});
    vec![
        (
            "post",
            "/api/v1/runs",
            op(
                "Store a paused run (agent). Audited as run.paused with the state's SHA-256",
                Some(state_body(json!({}))),
                "201",
                run_schema(),
            ),
        ),
        (
            "get",
            "/api/v1/runs",
            with_params(
                op(
                    "This agent's runs; with status=ready&wait, long-polls until one is claimable",
                    None,
                    "200",
                    json!({"type": "object", "properties": {"items": {"type": "array", "items": run_schema()}}}),
                ),
                json!([
                    {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["waiting", "ready", "running", "completed", "failed"]}},
                    wait.clone(),
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}}
                ]),
            ),
        ),
        (
            "get",
            "/api/v1/runs/{id}",
            with_params(
                op(
                    "A run; with wait, long-polls while it is waiting",
                    None,
                    "200",
                    run_schema(),
                ),
                json!([id.clone(), wait]),
            ),
        ),
        (
            "put",
            "/api/v1/runs/{id}",
            with_params(
                op(
                    "Pause the claimed run again with a new state (lease holder); releases the lease",
                    Some(state_body(json!({"lease_token": {"type": "string"}}))),
                    "200",
                    run_schema(),
                ),
                json!([id.clone()]),
            ),
        ),
        (
            "post",
            "/api/v1/runs/{id}/claim",
            with_params(
                op(
                    "Claim a ready run with a lease and get its state (409 run_claimed, run_not_ready, run_completed)",
                    Some(json!({"type": "object", "additionalProperties": false, "properties": {"lease_seconds": lease.clone()}})),
                    "200",
                    json!({"type": "object", "required": ["run", "lease_token", "state", "state_sha256", "approvals"], "properties": {
                        "run": run_schema(),
                        "lease_token": {"type": "string"},
                        "state": {"type": "string"},
                        "state_sha256": {"type": "string"},
                        "approvals": {"type": "array", "items": {"$ref": "#/components/schemas/Approval"}}
                    }}),
                ),
                json!([id.clone()]),
            ),
        ),
        (
            "post",
            "/api/v1/runs/{id}/heartbeat",
            with_params(
                op(
                    "Extend the lease (409 lease_lost when the token is not the current lease)",
                    Some(json!({"type": "object", "additionalProperties": false, "required": ["lease_token"], "properties": {"lease_token": {"type": "string"}, "lease_seconds": lease}})),
                    "200",
                    run_schema(),
                ),
                json!([id.clone()]),
            ),
        ),
        (
            "post",
            "/api/v1/runs/{id}/complete",
            with_params(
                op(
                    "Finish the claimed run (lease holder); its stored state is deleted",
                    Some(json!({"type": "object", "additionalProperties": false, "required": ["lease_token", "outcome"], "properties": {
                        "lease_token": {"type": "string"},
                        "outcome": {"type": "string", "enum": ["completed", "failed"]},
                        "output_sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                        "error": {"type": "string", "maxLength": 2000}
                    }})),
                    "200",
                    run_schema(),
                ),
                json!([id]),
            ),
        ),
    ]
}
