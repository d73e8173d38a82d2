//! Slack interactions on questions: a choice button answers at once (in a
//! spawned task, Slack wants its answer within 3 s); "Answer in words…"
//! opens the free-text modal inline; the modal's submission answers
//! synchronously so errors come back in the form. Every answer goes through
//! `ControlPlane::answer_question`, exactly like the API and the inbox.

use super::interactions::{
    ephemeral, loaded, modal_errors, open_form, principal_for, store_failure, str_at, Submitted,
    INLINE_BUDGET,
};
use super::question_blocks::{self as qb, AnswerMeta};
use super::Slack;
use crate::auth::Principal;
use crate::http::AppState;
use crate::question::Question;
use crate::service::ServiceError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

pub fn is_question_action(action_id: &str) -> bool {
    action_id == qb::ACTION_TEXT || action_id.starts_with(qb::ACTION_CHOICE_PREFIX)
}

/// An answer error as a person should read it.
fn explain(e: &ServiceError) -> String {
    match e {
        ServiceError::Store(inner) => store_failure(inner, "answering"),
        other => other.to_string(),
    }
}

/// The Slack user as a Pliuz user who may answer `question_id` now.
async fn authorize(
    state: &AppState,
    slack: &Slack,
    slack_user: &str,
    question_id: &str,
    timeout: Option<std::time::Duration>,
) -> Result<(Principal, Question), String> {
    let principal = principal_for(state, slack, slack_user, timeout).await?;
    let q = loaded(state.cp.question_by_id(question_id).await, "question")?;
    state
        .cp
        .may_answer(&principal, &q)
        .map_err(|r| r.to_string())?;
    Ok((principal, q))
}

pub async fn block_action(state: AppState, slack: Arc<Slack>, p: Value, action: Value) -> Response {
    let ok = StatusCode::OK.into_response();
    let action_id = action
        .get("action_id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let value = action
        .get("value")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let Some(slack_user) = str_at(&p, "/user/id").map(str::to_owned) else {
        return ok;
    };
    if action_id == qb::ACTION_TEXT {
        let started = Instant::now();
        let opening = async {
            let (_, q) =
                authorize(&state, &slack, &slack_user, &value, Some(INLINE_BUDGET)).await?;
            let Some(trigger_id) = str_at(&p, "/trigger_id") else {
                return Err("Slack sent no trigger_id, so the form cannot be opened.".to_owned());
            };
            slack
                .client
                .call_with(
                    "views.open",
                    &json!({"trigger_id": trigger_id, "view": qb::answer_modal(&q)}),
                    Some(INLINE_BUDGET.saturating_sub(started.elapsed())),
                )
                .await
                .map(|_| ())
                .map_err(|e| {
                    tracing::warn!(error = %e, "views.open failed");
                    "Slack did not open the form; please click again.".to_owned()
                })
        };
        open_form(&slack, &p, opening).await;
        return ok;
    }
    let (question_id, choice) = qb::parse_choice_value(&value);
    let (question_id, choice) = (question_id.to_owned(), choice.to_owned());
    tokio::spawn(async move {
        let outcome = match authorize(&state, &slack, &slack_user, &question_id, None).await {
            Err(msg) => Some(msg),
            Ok((principal, _)) => match state
                .cp
                .answer_question(&principal, &question_id, Some(choice), None)
                .await
            {
                Ok(_) => None,
                Err(e) => Some(explain(&e)),
            },
        };
        if let Some(msg) = outcome {
            ephemeral(&slack, &p, &msg).await;
        }
    });
    ok
}

pub async fn view_submission(state: AppState, slack: Arc<Slack>, p: Value) -> Response {
    let Some(meta) = str_at(&p, "/view/private_metadata")
        .and_then(|m| serde_json::from_str::<AnswerMeta>(m).ok())
    else {
        return modal_errors(
            qb::BLOCK_ANSWER,
            "This form lost track of its question; open it again from the message.",
        );
    };
    let Some(slack_user) = str_at(&p, "/user/id") else {
        return modal_errors(qb::BLOCK_ANSWER, "Slack did not say who you are.");
    };
    let principal = match authorize(
        &state,
        &slack,
        slack_user,
        &meta.question_id,
        Some(INLINE_BUDGET),
    )
    .await
    {
        Ok((principal, _)) => principal,
        Err(msg) => return modal_errors(qb::BLOCK_ANSWER, &msg),
    };
    let values = Submitted::of(&p);
    let text = values.text(qb::BLOCK_ANSWER, qb::INPUT_ANSWER);
    let choice = values
        .selected(qb::BLOCK_ANSWER_CHOICE, qb::INPUT_ANSWER_CHOICE)
        .map(str::to_owned);
    match state
        .cp
        .answer_question(&principal, &meta.question_id, choice, text)
        .await
    {
        // An empty 200 closes the modal; the message update follows via the outbox.
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => modal_errors(qb::BLOCK_ANSWER, &explain(&e)),
    }
}
