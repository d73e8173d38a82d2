//! RFC 9457 problem details: every error the HTTP API returns, with a stable
//! `code` for programs and a `detail` that tells a person what to fix.

use crate::service::StoreError;
use crate::service::{FieldError, ServiceError};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct Problem {
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    pub code: &'static str,
    pub errors: Vec<FieldError>,
    pub retry_after: Option<u64>,
}

/// An RFC 9457 problem, as sent: a stable `code` for programs, a `detail`
/// for people; `type` is derived from the code.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub(crate) struct ProblemBody<'a> {
    /// `https://pliuz.dev/problems/<code>`.
    #[serde(rename = "type")]
    type_uri: String,
    title: &'a str,
    /// The HTTP status, repeated.
    status: u16,
    /// What went wrong and what to do about it, for a person.
    detail: &'a str,
    /// Stable, for programs (e.g. `validation`, `execution_claimed`).
    code: &'a str,
    /// With `validation`: one entry per invalid field.
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    #[schema(value_type = Vec<FieldError>)]
    errors: &'a [FieldError],
}

impl Problem {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Problem {
        Problem {
            title,
            status: status.as_u16(),
            detail: detail.into(),
            code,
            errors: Vec::new(),
            retry_after: None,
        }
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Problem {
        self.errors = errors;
        self
    }

    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
            detail,
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not_found", "Not found", detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "Malformed request",
            detail,
        )
    }

    /// One invalid field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem::validation(vec![FieldError::new(field, message)])
    }

    /// Ok when no field is invalid; otherwise the problem naming each one.
    pub fn check_fields(errors: Vec<FieldError>) -> Result<(), Problem> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Problem::validation(errors))
        }
    }

    pub fn validation(errors: Vec<FieldError>) -> Problem {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Request body is invalid",
            detail,
        )
        .with_errors(errors)
    }

    /// Over a documented limit (docs/limits.md).
    pub fn too_large(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Too large",
            detail,
        )
    }

    pub fn internal() -> Problem {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the server failed to handle this request; nothing was changed. The error is in the server log",
        )
    }

    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        )
    }
}

impl From<FieldError> for Problem {
    fn from(e: FieldError) -> Problem {
        Problem::validation(vec![e])
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&ProblemBody {
            type_uri: format!("https://pliuz.dev/problems/{}", self.code.replace('_', "-")),
            title: self.title,
            status: self.status,
            detail: &self.detail,
            code: self.code,
            errors: &self.errors,
        })
        .unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"pliuz\""),
            );
        }
        resp
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        match e {
            StoreError::Unavailable {
                reason,
                retry_after,
                outcome_unknown,
            } => {
                tracing::warn!(%reason, outcome_unknown, "store unavailable");
                let mut p = Problem::unavailable(if outcome_unknown {
                    format!("{reason}. The commit failed half-way, so the change may or may not have been stored: retry with the same idempotency_key to find out")
                } else {
                    format!("{reason}. Nothing was changed; retry later")
                });
                p.retry_after = Some(retry_after);
                p
            }
            StoreError::EntryTooLarge(_) => Problem::too_large(e.to_string()),
            e => {
                tracing::error!(error = %e, "store error");
                Problem::internal()
            }
        }
    }
}

impl From<ServiceError> for Problem {
    fn from(e: ServiceError) -> Problem {
        use crate::policy::MatchError;
        let msg = e.to_string();
        let conflict = |code, title| Problem::new(StatusCode::CONFLICT, code, title, msg.clone());
        let unprocessable =
            |code, title| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, title, msg.clone());
        match e {
            ServiceError::NotFound(_)
            | ServiceError::QuestionNotFound(_)
            | ServiceError::NoSuch(_) => Problem::not_found(msg),
            ServiceError::Forbidden(_) => Problem::forbidden(msg),
            ServiceError::Transition(t) => transition_problem(t, msg),
            ServiceError::Validation(errors) => Problem::validation(errors),
            ServiceError::NoPolicy(MatchError::UnknownPolicy(_)) => {
                unprocessable("unknown_policy", "Unknown policy")
            }
            ServiceError::NoPolicy(MatchError::NoMatch(_)) => {
                unprocessable("no_matching_policy", "No policy covers this tool")
            }
            ServiceError::IdempotencyConflict(_) => {
                conflict("idempotency_conflict", "Idempotency key reused")
            }
            ServiceError::SchemaViolation(errs) => unprocessable(
                "schema_violation",
                "Edited arguments do not match the tool schema",
            )
            .with_errors(
                errs.into_iter()
                    .map(|m| FieldError::new("final_args", m))
                    .collect(),
            ),
            ServiceError::ArgsChanged(_) => {
                conflict("args_changed", "Arguments changed since review")
            }
            ServiceError::Refused { code, .. } => conflict(code, "Conflict"),
            ServiceError::Conflict(_) => conflict("invalid_transition", "Conflict"),
            ServiceError::ConcurrentCreate => {
                conflict("concurrent_create", "Created at the same moment")
            }
            ServiceError::TooLarge(_) => Problem::too_large(msg),
            ServiceError::Store(s) => s.into(),
        }
    }
}

/// A transition the request's state (or its policy) does not allow.
fn transition_problem(t: crate::approval::TransitionError, msg: String) -> Problem {
    use crate::approval::TransitionError as T;
    let conflict = |code, title| Problem::new(StatusCode::CONFLICT, code, title, msg.clone());
    match t {
        T::AlreadyVoted { .. } => conflict("already_voted", "Already approved by you"),
        T::DecisionNotAllowed { .. } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "decision_not_allowed",
            "Decision not allowed by policy",
            msg,
        ),
        T::OriginatorCannotApprove => Problem::forbidden(msg),
        T::EditNeedsArgs => Problem::invalid("final_args", "required when decision is 'edit'"),
        T::ArgsWithoutEdit => {
            Problem::invalid("final_args", "only accepted when decision is 'edit'")
        }
        T::ExecutionClaimed { .. } | T::AlreadyExecuted { .. } => {
            conflict("execution_claimed", "Execution already claimed")
        }
        T::ExecutionExpired { .. } => conflict("execution_expired", "Execution window closed"),
        T::NotClaimed { .. } => conflict("execution_not_claimed", "Execution not claimed"),
        T::ClaimMismatch { .. } => conflict("claim_mismatch", "Not the claim holder"),
        T::NotPending { .. }
        | T::NotApproved { .. }
        | T::NotReportable { .. }
        | T::ReportConflict { .. } => conflict("invalid_transition", "Not allowed in this state"),
    }
}

impl From<crate::audit::AuditError> for Problem {
    fn from(e: crate::audit::AuditError) -> Problem {
        match e {
            crate::audit::AuditError::NotFound(_) => Problem::not_found(e.to_string()),
            crate::audit::AuditError::OutOfRange(m) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "out_of_range",
                "Outside the log",
                m,
            ),
            crate::audit::AuditError::NotSigned(m) => {
                let mut p = Problem::unavailable(m);
                p.retry_after = Some(2);
                p
            }
            crate::audit::AuditError::Store(s) => s.into(),
            crate::audit::AuditError::Log(m) => {
                tracing::error!(error = %m, "audit log inconsistency");
                Problem::internal()
            }
        }
    }
}
