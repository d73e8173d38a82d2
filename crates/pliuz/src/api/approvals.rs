//! `/api/v1/approvals`: agents open requests and wait; humans list and decide.

use super::created::CreatedOrReplayed;
use super::input::{one_of, page_limit};
use super::long_poll::{long_poll, no_recheck, wait_secs, WaitQuery};
use crate::approval::{
    check_reason, is_valid_claim_id, Action, Approval, DecisionKind, Execution, ExecutionOutcome,
    RequestedCall, Status, MAX_CLAIM_ID_CHARS,
};
use crate::auth::Principal;
use crate::http::error::Problem;
use crate::http::extract::{check_depth, parse_json, ApiBytes, ApiJson, ApiPath, ApiQuery, Auth};
use crate::http::AppState;
use crate::notify::Committed;
use crate::service::{format_time, ApprovalFilter};
use crate::service::{DecisionInput, FieldError, NewApproval, ServiceError};
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

const MAX_EXCERPT_CHARS: usize = 1000;

/// The approval resource as the API shows it (`docs/api.md`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Approval)]
pub struct ApprovalView {
    pub id: String,
    /// `executing`: claimed and not yet reported (outcome unknown if the
    /// report never arrives).
    pub status: Status,
    // Its fields at the top level, as the agent sent them on create (a
    // `///` here would wrap the schema `openapi::merge_flattened` merges).
    #[serde(flatten)]
    #[schema(inline)]
    pub call: RequestedCall,
    pub proposed_args: Option<Map<String, Value>>,
    pub final_args: Option<Map<String, Value>>,
    pub policy: String,
    pub agent: String,
    /// SHA-256 of the canonical {tool_name, tool_args} under review
    /// (proposed_args once edited); send it back with every decision.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub args_digest: String,
    pub required_approvals: u32,
    pub allowed_decisions: Vec<DecisionKind>,
    pub approvals: Vec<VoteView>,
    pub decision: Option<DecisionView>,
    pub execution: Option<ExecutionView>,
    /// Set once approved: the tool must be claimed (started) before this
    /// (policy `execute_within`).
    #[schema(format = DateTime)]
    pub execute_before: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    #[schema(format = DateTime)]
    pub decided_at: Option<String>,
    /// When the request was escalated to the policy's `escalate_to` (who
    /// may decide from then on); absent when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub escalated_at: Option<String>,
    pub is_replay: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Vote)]
pub struct VoteView {
    pub by: String,
    #[schema(format = DateTime)]
    pub at: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Decision)]
pub struct DecisionView {
    pub outcome: Status,
    pub by: String,
    pub reason: Option<String>,
    pub edited: bool,
    #[schema(format = DateTime)]
    pub at: String,
}

/// The execution: the claim, then (once reported) the outcome. A claim
/// without an outcome means the outcome is unknown.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Execution)]
pub struct ExecutionView {
    pub claim_id: Option<String>,
    #[schema(format = DateTime)]
    pub claimed_at: Option<String>,
    pub outcome: Option<ExecutionOutcome>,
    pub latency_ms: Option<i64>,
    pub output_excerpt: Option<String>,
    #[schema(format = DateTime)]
    pub reported_at: Option<String>,
}

impl ApprovalView {
    pub fn new(a: Approval, is_replay: bool) -> ApprovalView {
        let args_digest = crate::service::review_digest(&a);
        ApprovalView {
            decided_at: a.settlement.as_ref().map(|s| format_time(s.at)),
            decision: a.settlement.as_ref().map(|s| DecisionView {
                outcome: s.status,
                by: s.by.clone(),
                reason: s.reason.clone(),
                edited: a.edited,
                at: format_time(s.at),
            }),
            execute_before: a.execute_before().map(format_time),
            execution: (a.claim.is_some() || a.execution.is_some()).then(|| ExecutionView {
                claim_id: a.claim.as_ref().map(|c| c.claim_id.clone()),
                claimed_at: a.claim.as_ref().map(|c| format_time(c.claimed_at)),
                outcome: a.execution.as_ref().map(|e| e.outcome),
                latency_ms: a.execution.as_ref().and_then(|e| e.latency_ms),
                output_excerpt: a.execution.as_ref().and_then(|e| e.output_excerpt.clone()),
                reported_at: a.execution.as_ref().map(|e| format_time(e.reported_at)),
            }),
            approvals: a
                .votes
                .iter()
                .map(|v| VoteView {
                    by: v.voter.clone(),
                    at: format_time(v.at),
                })
                .collect(),
            id: a.id,
            status: a.status,
            call: a.call,
            proposed_args: a.proposed_args,
            final_args: a.final_args,
            policy: a.policy,
            agent: a.agent,
            args_digest,
            required_approvals: a.required_approvals,
            allowed_decisions: a.allowed_decisions,
            created_at: format_time(a.created_at),
            expires_at: format_time(a.expires_at),
            escalated_at: a.escalated_at.map(format_time),
            is_replay,
        }
    }
}

// The schema limits mirror `validate_create`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CreateApproval)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    #[schema(min_length = 1, max_length = 200)]
    tool_name: String,
    tool_args: Map<String, Value>,
    /// Default: the first policy whose `tools` match `tool_name`.
    #[schema(min_length = 1, max_length = 200)]
    policy: Option<String>,
    tool_schema: Option<Map<String, Value>>,
    #[schema(max_length = 200)]
    call_id: Option<String>,
    #[schema(max_length = 200)]
    session_id: Option<String>,
    context_messages: Option<Vec<Value>>,
    #[schema(max_length = 320)]
    originator: Option<String>,
    /// A retry with the same key returns the first request (200, `is_replay`).
    #[schema(min_length = 1, max_length = 200)]
    idempotency_key: Option<String>,
    client_metadata: Option<Map<String, Value>>,
    /// When the policy approves the request on creation, claims its
    /// execution for this id in the same commit (answered `executing`, as
    /// after `POST .../execution` with `outcome: started`); otherwise ignored.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,100}$")]
    claim_id: Option<String>,
}

/// The body as the service takes it. The body stays flat rather than
/// flattening a [`RequestedCall`] in: serde does not support `flatten`
/// with `deny_unknown_fields` (whose error lists the expected fields), and
/// `flatten` would buffer every body before parsing it.
impl From<CreateBody> for NewApproval {
    fn from(body: CreateBody) -> NewApproval {
        NewApproval {
            call: RequestedCall {
                tool_name: body.tool_name,
                tool_args: body.tool_args,
                tool_schema: body.tool_schema.map(Value::Object),
                originator: body.originator,
                call_id: body.call_id,
                session_id: body.session_id,
                context_messages: body.context_messages.map(Value::Array),
                client_metadata: body.client_metadata.map(Value::Object),
                idempotency_key: body.idempotency_key,
            },
            policy: body.policy,
            claim_id: body.claim_id,
        }
    }
}

/// The rule of a caller's claim id, on create and on claim.
fn claim_id_error(claim_id: &str) -> Option<FieldError> {
    (!is_valid_claim_id(claim_id)).then(|| {
        FieldError::new(
            "claim_id",
            format!("must be 1-{MAX_CLAIM_ID_CHARS} characters of A-Z a-z 0-9 - _ ."),
        )
    })
}

fn check_len(
    errors: &mut Vec<FieldError>,
    field: &str,
    v: Option<&str>,
    max: usize,
    required: bool,
) {
    if let Some(e) = v.and_then(|s| crate::service::unstorable(field, s)) {
        errors.push(e);
        return;
    }
    match v {
        Some(s) if s.trim().is_empty() && required => {
            errors.push(FieldError::new(field, "must not be empty"))
        }
        Some(s) if s.chars().count() > max => errors.push(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        )),
        _ => {}
    }
}

/// Collects what is wrong with a reason: text no store keeps, or the
/// domain's rules (required to reject, a maximum length), reported with the
/// request's other field errors.
fn reason_errors(errors: &mut Vec<FieldError>, action: Action, reason: Option<&str>) {
    if let Some(e) = reason.and_then(|r| crate::service::unstorable("reason", r)) {
        errors.push(e);
        return;
    }
    if let Err(refusal) = check_reason(action, reason) {
        match ServiceError::from(refusal) {
            ServiceError::Validation(v) => errors.extend(v),
            other => errors.push(FieldError::new("reason", other.to_string())),
        }
    }
}

fn agent_name(p: &Principal) -> Result<&str, Problem> {
    match p {
        Principal::Agent { name } => Ok(name),
        Principal::User(_) => Err(Problem::forbidden(
            "approval requests are opened by agents: use an agent key (`pliuz agents create NAME`)",
        )),
    }
}

fn validate_create(body: &CreateBody) -> Result<(), Problem> {
    let mut errors = Vec::new();
    let key = body.idempotency_key.as_deref();
    // (field, value, most characters, required to be non-blank when given)
    for (field, value, max, required) in [
        ("tool_name", Some(body.tool_name.as_str()), 200, true),
        ("policy", body.policy.as_deref(), 200, true),
        ("idempotency_key", key, 200, true),
        ("call_id", body.call_id.as_deref(), 200, false),
        ("session_id", body.session_id.as_deref(), 200, false),
        ("originator", body.originator.as_deref(), 320, false),
    ] {
        check_len(&mut errors, field, value, max, required);
    }
    errors.extend(body.claim_id.as_deref().and_then(claim_id_error));
    Problem::check_fields(errors)
}

pub async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<CreatedOrReplayed<ApprovalView>, Problem> {
    let agent = agent_name(&principal)?;
    validate_create(&body)?;
    let (approval, created) = state.cp.create(agent, NewApproval::from(body)).await?;
    Ok(CreatedOrReplayed {
        made: created,
        location: format!("/api/v1/approvals/{}", approval.id),
        body: ApprovalView::new(approval, !created),
    })
}

pub async fn get(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath,
    ApiQuery(q): ApiQuery<WaitQuery>,
) -> Result<Json<ApprovalView>, Problem> {
    let wait = wait_secs(q.wait)?;
    // Register before reading, so a decision landing in between is not missed.
    let mut changes = state.cp.notifier.wait_for(&id);
    let (cp, principal, id) = (&state.cp, &principal, &id);
    let read = |change: Option<Committed>| async move {
        match change.flatten() {
            // Committed here: the record itself, no re-read.
            Some(committed) if cp.can_see(principal, &committed) => Ok(Approval::clone(&committed)),
            // Committed on another replica (or no longer visible): read it.
            _ => Ok(cp.get_for(principal, id).await?),
        }
    };
    let settled = |a: &Approval| a.status != Status::Pending;
    let a = long_poll(&state, wait, &mut changes, read, settled, no_recheck).await?;
    Ok(Json(ApprovalView::new(a, false)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[param(value_type = Option<Status>)]
    status: Option<String>,
    #[param(max_length = 200)]
    policy: Option<String>,
    #[param(max_length = 200)]
    agent: Option<String>,
    #[param(max_length = 200)]
    tool: Option<String>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(max_length = 200)]
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApprovalPage)]
pub struct ListView {
    items: Vec<ApprovalView>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ListView>, Problem> {
    let mut errors = Vec::new();
    for (field, v) in [
        ("status", &q.status),
        ("policy", &q.policy),
        ("agent", &q.agent),
        ("tool", &q.tool),
        ("cursor", &q.cursor),
    ] {
        check_len(&mut errors, field, v.as_deref(), 200, false);
    }
    Problem::check_fields(errors)?;
    let mut filter = ApprovalFilter {
        policy: q.policy,
        agent: q.agent,
        tool: q.tool,
        before_id: q.cursor,
        limit: page_limit(q.limit, 200)?,
        ..Default::default()
    };
    if let Some(s) = q.status {
        let statuses = "pending, approved, rejected, expired, cancelled, executing, executed";
        filter.status = Some(one_of("status", &s, Status::parse, statuses)?);
    }
    match &principal {
        Principal::Agent { name } => filter.agent = Some(name.clone()),
        Principal::User(_) if principal.sees_everything() => {}
        Principal::User(_) => filter.policies_in = Some(state.cp.policies_for(&principal)),
    }
    let page = state.cp.list_approvals(&filter).await?;
    Ok(Json(ListView {
        items: page
            .items
            .into_iter()
            .map(|a| ApprovalView::new(a, false))
            .collect(),
        next_cursor: page.next,
    }))
}

// The schema limits mirror `validate_decision`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = DecisionRequest)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    #[schema(value_type = DecisionKind)]
    decision: String,
    /// The approval's `args_digest` as the decider reviewed it; 409
    /// args_changed when the arguments changed since.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    args_digest: String,
    /// Why (required to reject); with `respond`, required: the message the
    /// agent's model receives instead of the tool's result.
    #[schema(max_length = 2000)]
    reason: Option<String>,
    /// With `edit`: the arguments to run instead.
    final_args: Option<Map<String, Value>>,
}

/// A digest is 64 lowercase hex characters (SHA-256).
pub fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn validate_decision(body: &DecisionBody) -> Result<DecisionKind, Problem> {
    let decisions = "approve, reject, edit, respond";
    let kind = one_of("decision", &body.decision, DecisionKind::parse, decisions)?;
    let mut errors = Vec::new();
    reason_errors(&mut errors, Action::Decide(kind), body.reason.as_deref());
    if !is_digest(&body.args_digest) {
        errors.push(FieldError::new(
            "args_digest",
            "must be the approval's args_digest (64 hex characters) as you reviewed it: GET the approval, check its arguments, send its args_digest",
        ));
    }
    Problem::check_fields(errors)?;
    Ok(kind)
}

pub async fn decide(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Json<ApprovalView>, Problem> {
    let kind = validate_decision(&body)?;
    let a = state
        .cp
        .decide(
            &principal,
            &id,
            DecisionInput {
                kind,
                reason: body.reason.filter(|r| !r.trim().is_empty()),
                final_args: body.final_args,
                args_digest: body.args_digest,
            },
        )
        .await?;
    Ok(Json(ApprovalView::new(a, false)))
}

// The schema limits mirror `validate_execution`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ExecutionReport)]
#[serde(deny_unknown_fields)]
pub struct ExecutionBody {
    /// `started` claims the right to run the tool (approved -> executing;
    /// exactly one caller succeeds, before execute_before); `success` /
    /// `error` report it (executing -> executed) with the claim's claim_id.
    #[schema(schema_with = execution_step_schema)]
    outcome: String,
    /// With `started`: optional, chosen by the caller so a retried claim is
    /// recognised (default: generated). With success/error: required, the
    /// claim's id.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,100}$")]
    claim_id: Option<String>,
    #[schema(minimum = 0)]
    latency_ms: Option<i64>,
    /// Truncated to 1000 characters.
    output_excerpt: Option<String>,
}

/// `outcome` of an execution request: `started` (a claim) or a reported
/// [`ExecutionOutcome`], as `validate_execution` parses it.
fn execution_step_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["started", "success", "error"]))
        .build()
}

/// `None` for `outcome: "started"` (a claim), the outcome for a report.
fn validate_execution(body: &ExecutionBody) -> Result<Option<ExecutionOutcome>, Problem> {
    if let Some(e) = body.claim_id.as_deref().and_then(claim_id_error) {
        return Err(Problem::validation(vec![e]));
    }
    if body.outcome == "started" {
        let mut errors = Vec::new();
        for (field, present) in [
            ("latency_ms", body.latency_ms.is_some()),
            ("output_excerpt", body.output_excerpt.is_some()),
        ] {
            if present {
                errors.push(FieldError::new(
                    field,
                    "only accepted when reporting the outcome (success or error), not with 'started'",
                ));
            }
        }
        Problem::check_fields(errors)?;
        return Ok(None);
    }
    let steps = "started, success, error";
    let outcome = one_of("outcome", &body.outcome, ExecutionOutcome::parse, steps)?;
    if body.latency_ms.is_some_and(|l| l < 0) {
        return Err(Problem::invalid("latency_ms", "must be 0 or more"));
    }
    let mut errors = Vec::new();
    check_len(
        &mut errors,
        "output_excerpt",
        body.output_excerpt.as_deref(),
        usize::MAX,
        false,
    );
    Problem::check_fields(errors)?;
    Ok(Some(outcome))
}

/// `outcome: "started"` claims the execution; `success` / `error` report it.
pub async fn execution(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath,
    ApiJson(body): ApiJson<ExecutionBody>,
) -> Result<Json<ApprovalView>, Problem> {
    let Some(outcome) = validate_execution(&body)? else {
        let claim_id = body
            .claim_id
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let a = state.cp.claim_execution(&principal, &id, claim_id).await?;
        return Ok(Json(ApprovalView::new(a, false)));
    };
    let excerpt = body
        .output_excerpt
        .map(|s| s.chars().take(MAX_EXCERPT_CHARS).collect::<String>());
    let a = state
        .cp
        .report_execution(
            &principal,
            &id,
            body.claim_id,
            Execution {
                outcome,
                latency_ms: body.latency_ms,
                output_excerpt: excerpt,
                reported_at: crate::service::now_millis(),
            },
        )
        .await?;
    Ok(Json(ApprovalView::new(a, false)))
}

#[derive(Debug, Deserialize, Default, ToSchema)]
#[schema(as = CancelRequest)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    #[schema(max_length = 2000)]
    reason: Option<String>,
}

/// The body is optional: an empty one cancels without a reason.
fn cancel_reason(body: &[u8]) -> Result<Option<String>, Problem> {
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        check_depth(body)?;
        serde_json::from_slice::<CancelBody>(body)
            .map_err(|e| Problem::invalid("body", e.to_string()))?
            .reason
    };
    let mut errors = Vec::new();
    reason_errors(&mut errors, Action::Cancel, reason.as_deref());
    Problem::check_fields(errors)?;
    Ok(reason)
}

/// The request-body checks of the approval routes, without I/O, as the
/// handlers run them: `route` 0 = create, 1 = decision, 2 = execution,
/// 3 = cancel. For the fuzz targets (`fuzz/`).
#[doc(hidden)]
pub fn check_request_body(route: u8, body: &[u8]) -> Result<(), Problem> {
    match route % 4 {
        0 => validate_create(&parse_json::<CreateBody>(body)?),
        1 => validate_decision(&parse_json::<DecisionBody>(body)?).map(drop),
        2 => validate_execution(&parse_json::<ExecutionBody>(body)?).map(drop),
        _ => cancel_reason(body).map(drop),
    }
}

pub async fn cancel(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath,
    ApiBytes(body): ApiBytes,
) -> Result<Json<ApprovalView>, Problem> {
    let reason = cancel_reason(&body)?;
    let a = state.cp.cancel(&principal, &id, reason).await?;
    Ok(Json(ApprovalView::new(a, false)))
}
