//! `/api/v1/runs`: durable runs (see `crate::service::runs`). Agent keys
//! only; an agent sees and claims only its own runs (others' are 404).

use super::approvals::ApprovalView;
use super::created::Created;
use super::input::{one_of, page_limit};
use super::long_poll::{long_poll, no_recheck, wait_secs, WaitQuery};
use super::questions::QuestionView;
use crate::auth::Principal;
use crate::http::error::Problem;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use crate::http::AppState;
use crate::run::{Outcome, Run, RunStatus};
use crate::service::format_time;
use crate::service::runs::{NewRunState, RunsError};
use crate::service::FieldError;
use crate::service::RunFilter;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

const MAX_APPROVAL_IDS: usize = 100;
const MAX_METADATA_BYTES: usize = 16 * 1024;
const MAX_ERROR_CHARS: usize = 2000;
const DEFAULT_LEASE_SECS: u64 = 300;
const LEASE_SECS: std::ops::RangeInclusive<u64> = 10..=3600;

/// The run resource (never contains the state).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Run)]
pub struct RunView {
    pub id: String,
    pub agent: String,
    /// `ready`: every approval is settled (or the lease of a running run
    /// expired); the run may be claimed.
    pub status: RunStatus,
    pub approval_ids: Vec<String>,
    /// Questions the run waits on too (answered or expired before it is ready).
    pub question_ids: Vec<String>,
    /// SHA-256 (hex) of the stored state, as in the audit log.
    pub state_sha256: String,
    #[schema(value_type = Object)]
    pub metadata: Value,
    #[schema(required = true, format = DateTime)]
    pub lease_expires_at: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
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
            question_ids: r.question_ids,
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

/// `approval_ids` or `question_ids` (the same limits).
fn check_ids(errors: &mut Vec<FieldError>, field: &str, ids: &[String]) {
    if ids.len() > MAX_APPROVAL_IDS {
        errors.push(FieldError::new(
            field,
            format!("at most {MAX_APPROVAL_IDS} ids per run"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if id.trim().is_empty() || id.len() > 200 {
            errors.push(FieldError::new(
                field,
                "each id must be a non-empty string of at most 200 characters",
            ));
            break;
        }
        if !seen.insert(id) {
            errors.push(FieldError::new(field, format!("'{id}' is listed twice")));
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

/// A run's state, its ids and metadata from a create or re-pause, checked.
fn run_state(
    state: String,
    approval_ids: Vec<String>,
    question_ids: Vec<String>,
    metadata: Option<Map<String, Value>>,
) -> Result<NewRunState, Problem> {
    let mut errors = Vec::new();
    check_ids(&mut errors, "approval_ids", &approval_ids);
    check_ids(&mut errors, "question_ids", &question_ids);
    check_metadata(&mut errors, &metadata);
    Problem::check_fields(errors)?;
    Ok(NewRunState {
        state,
        approval_ids,
        question_ids,
        metadata: metadata.map(Value::Object),
    })
}

/// The lease asked for, checked (the default when none is).
fn lease_secs(secs: Option<u64>) -> Result<u64, Problem> {
    let secs = secs.unwrap_or(DEFAULT_LEASE_SECS);
    if !LEASE_SECS.contains(&secs) {
        return Err(Problem::invalid(
            "lease_seconds",
            format!(
                "must be between {} and {} seconds",
                LEASE_SECS.start(),
                LEASE_SECS.end()
            ),
        ));
    }
    Ok(secs)
}

// The schema limits mirror `check_ids` and `check_metadata`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = NewRun)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// Opaque serialized run state (at most max_run_state_bytes, default
    /// 8 MiB; 413 payload_too_large).
    state: String,
    #[schema(max_items = 100)]
    approval_ids: Vec<String>,
    /// Questions (`POST /api/v1/questions`) the run waits on as well.
    #[schema(max_items = 100)]
    #[serde(default)]
    question_ids: Vec<String>,
    /// Small JSON object (at most 16 KiB).
    metadata: Option<Map<String, Value>>,
}

pub async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    req: Request,
) -> Result<Created<RunView>, Problem> {
    let agent = agent_of(&principal)?.to_owned();
    let new: CreateBody = state_body(&state, req).await?;
    let new_state = run_state(new.state, new.approval_ids, new.question_ids, new.metadata)?;
    let run = state.cp.create_run(&agent, new_state).await?;
    Ok(Created {
        location: format!("/api/v1/runs/{}", run.id),
        body: RunView::new(run),
    })
}

pub async fn get_one(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath,
    ApiQuery(q): ApiQuery<WaitQuery>,
) -> Result<Json<RunView>, Problem> {
    let agent = agent_of(&principal)?;
    let wait = wait_secs(q.wait)?;
    // Register before reading, so a change landing in between is not missed.
    // A decision that readies the run is a run change of this agent.
    let mut runs = state.cp.notifier.wait_for_runs(agent);
    let (cp, id) = (&state.cp, &id);
    let read = |_| async move { Ok(cp.get_run_for(agent, id).await?) };
    let settled = |run: &Run| run.status != RunStatus::Waiting;
    let run = long_poll(&state, wait, &mut runs, read, settled, no_recheck).await?;
    Ok(Json(RunView::new(run)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[param(value_type = Option<RunStatus>)]
    status: Option<String>,
    /// Seconds to wait for a matching run when there is none.
    #[param(minimum = 0, maximum = 60)]
    wait: Option<u64>,
    #[param(minimum = 1, maximum = 100, default = 50)]
    limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RunPage)]
pub struct ListView {
    items: Vec<RunView>,
}

pub async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ListView>, Problem> {
    let agent = agent_of(&principal)?;
    let wait = wait_secs(q.wait)?;
    let limit = page_limit(q.limit, 100)?;
    let statuses = "waiting, ready, running, completed, failed";
    let status = match q.status {
        None => None,
        Some(s) => Some(one_of("status", &s, RunStatus::parse, statuses)?),
    };
    let mut runs = state.cp.notifier.wait_for_runs(agent);
    let cp = &state.cp;
    // The clock of each read goes with its items: the next lease to run out
    // is looked up from the same instant.
    let read = |_| async move {
        let now = crate::service::now_millis();
        let filter = RunFilter {
            agent,
            status,
            now,
            limit: i64::from(limit),
        };
        let items = cp.list_runs(&filter).await?;
        Ok((items, now))
    };
    let settled = |(items, _): &(Vec<Run>, i64)| !items.is_empty();
    // A lease running out makes a run claimable without any write.
    let lease_expiry = |&(_, now): &(Vec<Run>, i64)| async move {
        if status != Some(RunStatus::Ready) {
            return Ok(None);
        }
        let at = cp.next_lease_expiry(agent, now).await?;
        Ok(at.map(|at| {
            let ms = u64::try_from(at - now).unwrap_or(0);
            tokio::time::Instant::now() + Duration::from_millis(ms + 1)
        }))
    };
    let (items, _) = long_poll(&state, wait, &mut runs, read, settled, lease_expiry).await?;
    Ok(Json(ListView {
        items: items.into_iter().map(RunView::new).collect(),
    }))
}

// The schema limits mirror `lease_secs`.
#[derive(Debug, Deserialize, Default, ToSchema)]
#[schema(as = RunClaimRequest)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    #[schema(minimum = 10, maximum = 3600, default = 300)]
    lease_seconds: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RunClaim)]
pub struct ClaimView {
    run: RunView,
    lease_token: String,
    state: String,
    state_sha256: String,
    approvals: Vec<ApprovalView>,
    /// The run's questions, with their answers.
    questions: Vec<QuestionView>,
}

pub async fn claim(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath,
    body: axum::body::Bytes,
) -> Result<Json<ClaimView>, Problem> {
    let agent = agent_of(&principal)?;
    // The body is optional: an empty one takes the default lease.
    let body: ClaimBody = if body.iter().all(u8::is_ascii_whitespace) {
        ClaimBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| Problem::invalid("body", e.to_string()))?
    };
    let secs = lease_secs(body.lease_seconds)?;
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
        questions: c
            .questions
            .into_iter()
            .map(|q| QuestionView::new(q, false))
            .collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = RunHeartbeat)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatBody {
    lease_token: String,
    #[schema(minimum = 10, maximum = 3600, default = 300)]
    lease_seconds: Option<u64>,
}

pub async fn heartbeat(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath,
    ApiJson(body): ApiJson<HeartbeatBody>,
) -> Result<Json<RunView>, Problem> {
    let agent = agent_of(&principal)?;
    let secs = lease_secs(body.lease_seconds)?;
    let run = state
        .cp
        .heartbeat_run(agent, &id, &body.lease_token, secs)
        .await?;
    Ok(Json(RunView::new(run)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = RunRepause)]
#[serde(deny_unknown_fields)]
pub struct RepauseBody {
    lease_token: String,
    /// Opaque serialized run state (at most max_run_state_bytes).
    state: String,
    #[schema(max_items = 100)]
    approval_ids: Vec<String>,
    /// Questions (`POST /api/v1/questions`) the run waits on as well.
    #[schema(max_items = 100)]
    #[serde(default)]
    question_ids: Vec<String>,
    /// Small JSON object (at most 16 KiB).
    metadata: Option<Map<String, Value>>,
}

pub async fn repause(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath,
    req: Request,
) -> Result<Json<RunView>, Problem> {
    let agent = agent_of(&principal)?.to_owned();
    let new: RepauseBody = state_body(&state, req).await?;
    let new_state = run_state(new.state, new.approval_ids, new.question_ids, new.metadata)?;
    let run = state
        .cp
        .repause_run(&agent, &id, &new.lease_token, new_state)
        .await?;
    Ok(Json(RunView::new(run)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = RunCompletion)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    lease_token: String,
    #[schema(schema_with = completion_outcome_schema)]
    outcome: String,
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    output_sha256: Option<String>,
    #[schema(max_length = 2000)]
    error: Option<String>,
}

/// `outcome` of a completion, as `complete` parses it.
fn completion_outcome_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["completed", "failed"]))
        .build()
}

/// A completion's `outcome`, as `completion_outcome_schema` documents it.
fn outcome_of(outcome: &str) -> Option<Outcome> {
    match outcome {
        "completed" => Some(Outcome::Completed),
        "failed" => Some(Outcome::Failed),
        _ => None,
    }
}

pub async fn complete(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath,
    ApiJson(body): ApiJson<CompleteBody>,
) -> Result<Json<RunView>, Problem> {
    let agent = agent_of(&principal)?;
    let outcome = one_of("outcome", &body.outcome, outcome_of, "completed, failed");
    let mut errors: Vec<FieldError> = outcome.clone().err().into_iter().collect();
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
    Problem::check_fields(errors)?;
    let outcome = outcome?;
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
