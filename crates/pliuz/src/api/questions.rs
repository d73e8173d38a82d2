//! `/api/v1/questions`: an agent asks a person and waits for the typed
//! answer ("human as a tool"); the policy's approvers answer.

use super::created::CreatedOrReplayed;
use super::input::page_limit;
use super::long_poll::{long_poll, recheck_every, wait_secs, WaitQuery};
use crate::http::error::Problem;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use crate::http::AppState;
use crate::question::{Asked, Choice, Question, QuestionStatus};
use crate::service::questions::NewQuestion;
use crate::service::{format_time, FieldError};
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

/// The question resource (`docs/questions.md`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Question)]
pub struct QuestionView {
    pub id: String,
    pub status: QuestionStatus,
    // Its fields at the top level, as the agent sent them (a `///` here
    // would wrap the schema `openapi::merge_flattened` merges).
    #[serde(flatten)]
    #[schema(inline)]
    pub asked: Asked,
    pub policy: String,
    pub agent: String,
    /// Set once answered.
    pub answer: Option<AnswerView>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub is_replay: bool,
}

/// The typed answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Answer)]
pub struct AnswerView {
    /// The `value` of the chosen option, or null.
    #[schema(required = true)]
    pub choice: Option<String>,
    /// The chosen option's label, or null.
    #[schema(required = true)]
    pub choice_label: Option<String>,
    /// Free text, or null.
    #[schema(required = true)]
    pub text: Option<String>,
    /// `user:EMAIL`.
    pub answered_by: String,
    #[schema(format = DateTime)]
    pub answered_at: String,
}

impl QuestionView {
    pub fn new(q: Question, is_replay: bool) -> QuestionView {
        let answer = q.answer.as_ref().map(|a| AnswerView {
            choice_label: a
                .choice
                .as_deref()
                .and_then(|c| q.label_of(c))
                .map(str::to_owned),
            choice: a.choice.clone(),
            text: a.text.clone(),
            answered_by: a.answered_by.clone(),
            answered_at: format_time(a.answered_at),
        });
        QuestionView {
            id: q.id,
            status: q.status,
            asked: q.asked,
            policy: q.policy,
            agent: q.agent,
            answer,
            created_at: format_time(q.created_at),
            expires_at: format_time(q.expires_at),
            is_replay,
        }
    }
}

/// A choice as sent: a plain string (its own label) or `{value, label}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ChoiceInput {
    Plain(String),
    Labelled {
        value: String,
        /// Default: the value.
        label: Option<String>,
    },
}

impl ChoiceInput {
    fn into_choice(self) -> Choice {
        match self {
            ChoiceInput::Plain(v) => Choice {
                label: v.clone(),
                value: v,
            },
            ChoiceInput::Labelled { value, label } => Choice {
                label: label.unwrap_or_else(|| value.clone()),
                value,
            },
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CreateQuestion)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// What to ask (at most 4000 characters).
    #[schema(min_length = 1, max_length = 4000)]
    text: String,
    /// Options to pick from (at most 20).
    #[serde(default)]
    choices: Vec<ChoiceInput>,
    /// Whether a free-text answer is accepted. Default: true without
    /// choices, false with them.
    allow_free_text: Option<bool>,
    /// Whose approvers answer. Default: `default_policy`.
    #[schema(min_length = 1, max_length = 200)]
    policy: Option<String>,
    /// Who the question is about: that person may not answer it.
    #[schema(max_length = 320)]
    originator: Option<String>,
    /// A retry with the same key returns the first question (200, `is_replay`).
    #[schema(min_length = 1, max_length = 200)]
    idempotency_key: Option<String>,
    /// Seconds until the question expires (at most the policy's `expires_in`).
    #[schema(minimum = 1)]
    expires_in_seconds: Option<u64>,
}

fn check_field(errors: &mut Vec<FieldError>, field: &str, v: Option<&str>, max: usize) {
    match v {
        Some(s) if s.trim().is_empty() => errors.push(FieldError::new(field, "must not be empty")),
        Some(s) if s.chars().count() > max => errors.push(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        )),
        Some(s) => errors.extend(crate::service::unstorable(field, s)),
        None => {}
    }
}

pub async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<CreatedOrReplayed<QuestionView>, Problem> {
    let mut errors = Vec::new();
    check_field(&mut errors, "policy", body.policy.as_deref(), 200);
    check_field(
        &mut errors,
        "idempotency_key",
        body.idempotency_key.as_deref(),
        200,
    );
    if body
        .originator
        .as_deref()
        .is_some_and(|o| o.chars().count() > 320)
    {
        errors.push(FieldError::new(
            "originator",
            "must be at most 320 characters",
        ));
    }
    if body.expires_in_seconds == Some(0) {
        errors.push(FieldError::new("expires_in_seconds", "must be at least 1"));
    }
    Problem::check_fields(errors)?;
    let choices: Vec<Choice> = body
        .choices
        .into_iter()
        .map(ChoiceInput::into_choice)
        .collect();
    let allow_free_text = body.allow_free_text.unwrap_or(choices.is_empty());
    let (q, created) = state
        .cp
        .ask(
            &principal,
            NewQuestion {
                asked: Asked {
                    text: body.text,
                    choices,
                    allow_free_text,
                    originator: body.originator,
                    idempotency_key: body.idempotency_key,
                },
                policy: body.policy,
                expires_in: body.expires_in_seconds.map(Duration::from_secs),
            },
        )
        .await?;
    Ok(CreatedOrReplayed {
        made: created,
        location: format!("/api/v1/questions/{}", q.id),
        body: QuestionView::new(q, !created),
    })
}

/// How often a long-poll re-reads the question anyway: an answer given on
/// another replica wakes no waiter here.
const RECHECK: Duration = Duration::from_secs(2);

pub async fn get_one(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath,
    ApiQuery(q): ApiQuery<WaitQuery>,
) -> Result<Json<QuestionView>, Problem> {
    let wait = wait_secs(q.wait)?;
    // Register before reading, so an answer landing in between is not missed.
    let mut changes = state.cp.notifier.wait_for_question(&id);
    let (cp, principal, id) = (&state.cp, &principal, &id);
    let read = |_| async move { Ok(cp.question_for(principal, id).await?) };
    let settled = |q: &Question| q.status != QuestionStatus::Pending;
    let recheck = recheck_every(RECHECK);
    let question = long_poll(&state, wait, &mut changes, read, settled, recheck).await?;
    Ok(Json(QuestionView::new(question, false)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = QuestionAnswer)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    /// The `value` of one of the question's choices.
    #[schema(max_length = 100)]
    choice: Option<String>,
    /// Free text (only when the question allows it; at most 4000 characters).
    #[schema(max_length = 4000)]
    text: Option<String>,
}

pub async fn answer(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath,
    ApiJson(body): ApiJson<AnswerBody>,
) -> Result<Json<QuestionView>, Problem> {
    let q = state
        .cp
        .answer_question(&principal, &id, body.choice, body.text)
        .await?;
    Ok(Json(QuestionView::new(q, false)))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = QuestionList)]
pub struct ListView {
    items: Vec<QuestionView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// At most this many (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

pub async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ListView>, Problem> {
    if matches!(principal, crate::auth::Principal::Agent { .. }) {
        return Err(Problem::forbidden(
            "agents read their own questions by id (GET /api/v1/questions/{id}); this list is for the people who answer",
        ));
    }
    let limit = page_limit(q.limit, 200)?;
    let items = state
        .cp
        .pending_questions_for(&principal, i64::from(limit))
        .await?;
    Ok(Json(ListView {
        items: items
            .into_iter()
            .map(|q| QuestionView::new(q, false))
            .collect(),
    }))
}
