//! `POST /slack/interactions`: button clicks and modal submissions.
//!
//! Every request is checked against the signing secret and its timestamp
//! first. Slack wants an answer within 3 seconds, so:
//! - **Approve** is answered at once and decided in a spawned task;
//! - **Reject** / **Edit** open a modal inline (the `trigger_id` expires in
//!   3 s), with a deadline well inside that;
//! - a modal submission is decided synchronously, because validation errors
//!   must come back in the answer (`response_action: errors`).
//!
//! Whoever clicks is mapped to a Pliuz user and must be an approver of the
//! request's policy; otherwise they get an ephemeral explanation and nothing
//! changes. The message itself is updated by the outbox worker after any
//! decision, wherever it was made.

use super::blocks::{self, ModalMeta};
use super::signature;
use super::Slack;
use crate::approval::{
    check_reason, Action, Approval, DecisionKind, Refusal, Status, TransitionError,
};
use crate::auth::Principal;
use crate::http::error::Problem;
use crate::http::AppState;
use crate::service::{DecisionInput, ServiceError};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Time budget for the work done before answering a click (Slack allows 3 s).
pub(super) const INLINE_BUDGET: Duration = Duration::from_millis(2500);

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub async fn handle(
    State(state): State<AppState>,
    Extension(slack): Extension<Option<Arc<Slack>>>,
    headers: HeaderMap,
    crate::http::extract::ApiBytes(body): crate::http::extract::ApiBytes,
) -> Response {
    let Some(slack) = slack else {
        return Problem::not_found("Slack is not configured on this server").into_response();
    };
    let now = chrono::Utc::now().timestamp();
    if let Err(e) = signature::verify(
        &slack.settings.signing_secret,
        header(&headers, "x-slack-request-timestamp"),
        header(&headers, "x-slack-signature"),
        &body,
        now,
    ) {
        tracing::warn!(error = %e, "refused a Slack interaction");
        return Problem::unauthorized(e.to_string()).into_response();
    }
    let Some(payload) = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned())
    else {
        return Problem::bad_request("expected a form body with a 'payload' field").into_response();
    };
    let p: Value = match serde_json::from_str(&payload) {
        Ok(v) => v,
        Err(e) => return Problem::bad_request(format!("payload is not JSON: {e}")).into_response(),
    };
    match p.get("type").and_then(Value::as_str) {
        Some("block_actions") => block_actions(state, slack, p).await,
        Some("view_submission") => view_submission(state, slack, p).await,
        // view_closed, shortcuts, ...: nothing to do.
        _ => StatusCode::OK.into_response(),
    }
}

pub(super) fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// Maps the Slack user to an enabled Pliuz user. `Err` is the explanation
/// to show them.
pub(super) async fn principal_for(
    state: &AppState,
    slack: &Slack,
    slack_user: &str,
    timeout: Option<Duration>,
) -> Result<Principal, String> {
    let email = match slack.email_for_slack_user(slack_user, timeout).await {
        Ok(Some(e)) => e,
        Ok(None) => {
            return Err("Your Slack account is not linked to a Pliuz user, so Pliuz cannot tell who you are. Ask a Pliuz admin to add you (same email in Slack and Pliuz, or an entry in [slack.users]).".into())
        }
        Err(e) => {
            tracing::warn!(error = %e, slack_user, "could not look up a Slack user");
            return Err("Pliuz could not look up your Slack profile just now; please try again.".into());
        }
    };
    let user = match state.cp.user_by_email(&email).await {
        Ok(Some(r)) if !r.user.disabled => r.user,
        Ok(Some(_)) => return Err(format!("The Pliuz account {email} is disabled.")),
        Ok(None) => {
            return Err(format!(
                "No Pliuz user has the email {email}; ask a Pliuz admin to create one."
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, "store error while mapping a Slack user");
            return Err(INTERNAL_ERROR.into());
        }
    };
    Ok(Principal::User(user))
}

/// Maps the Slack user to a Pliuz user and checks they may decide now.
/// `Err` is the explanation to show them.
async fn authorize(
    state: &AppState,
    slack: &Slack,
    slack_user: &str,
    approval_id: &str,
    kind: DecisionKind,
    timeout: Option<Duration>,
) -> Result<(Principal, Approval), String> {
    let principal = principal_for(state, slack, slack_user, timeout).await?;
    let email = match &principal {
        Principal::User(u) => u.email.clone(),
        Principal::Agent { name } => name.clone(),
    };
    let a = loaded(state.cp.get_approval(approval_id).await, "request")?;
    // The question the API and the inbox ask too, in Slack's words.
    match state.cp.allows(&principal, &a, Action::Decide(kind)) {
        Ok(()) => Ok((principal, a)),
        Err(Refusal::NotApprover { policy, .. }) => Err(format!(
            "You ({email}) are not an approver of policy '{policy}', so you cannot decide this request."
        )),
        Err(Refusal::Transition(TransitionError::NotPending { status, .. })) => {
            Err(format!("This request is already {status}."))
        }
        Err(Refusal::Transition(TransitionError::DecisionNotAllowed { policy, .. })) => {
            Err(format!("Policy '{policy}' does not allow '{kind}'."))
        }
        Err(other) => Err(ServiceError::from(other).to_string()),
    }
}

const ARGS_CHANGED: &str = "The arguments of this request changed since this message was shown (an approver edited them), so nothing was decided. Look at the updated message, or open the request in the inbox, and decide again.";

/// A decision error as a person should read it.
fn explain(e: &ServiceError) -> String {
    match e {
        ServiceError::ArgsChanged(_) => ARGS_CHANGED.into(),
        ServiceError::Store(inner) => store_failure(inner, "deciding"),
        other => other.to_string(),
    }
}

const INTERNAL_ERROR: &str = "Pliuz had an internal error; please try again.";

/// The request or question (`noun`) a click is about, as the store
/// `lookup` found it; `Err` says why not, in the clicker's words.
pub(super) fn loaded<T>(
    lookup: Result<Option<T>, impl std::fmt::Display>,
    noun: &str,
) -> Result<T, String> {
    match lookup {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(format!("This {noun} no longer exists in Pliuz.")),
        Err(e) => {
            tracing::error!(error = %e, "store error while loading a {noun}");
            Err(INTERNAL_ERROR.into())
        }
    }
}

/// A store failure while `doing` something from Slack (deciding,
/// answering): logged, and told the person in general words.
pub(super) fn store_failure(error: &impl std::fmt::Display, doing: &str) -> String {
    tracing::error!(%error, "store error while {doing} from Slack");
    "Pliuz had an internal error; nothing was changed. Please try again.".into()
}

/// Tells the clicking user something only they see.
pub(super) async fn ephemeral(slack: &Slack, p: &Value, text: &str) {
    let text = blocks::escape(text);
    if let Some(url) = str_at(p, "/response_url") {
        let body = json!({"response_type": "ephemeral", "replace_original": false, "text": text});
        match slack.client.respond(url, &body).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, "could not answer via response_url"),
        }
    }
    let channel = str_at(p, "/container/channel_id").or_else(|| str_at(p, "/channel/id"));
    if let (Some(channel), Some(user)) = (channel, str_at(p, "/user/id")) {
        let body = json!({"channel": channel, "user": user, "text": text});
        if let Err(e) = slack.client.call("chat.postEphemeral", &body).await {
            tracing::warn!(error = %e, "could not send an ephemeral message");
        }
    }
}

/// What the inputs of a submitted modal hold.
pub(super) struct Submitted(Value);

impl Submitted {
    pub fn of(p: &Value) -> Submitted {
        Submitted(
            p.pointer("/view/state/values")
                .cloned()
                .unwrap_or(Value::Null),
        )
    }

    /// A text input, trimmed; `None` when left empty.
    pub fn text(&self, block: &str, action: &str) -> Option<String> {
        self.0
            .get(block)
            .and_then(|b| b.get(action))
            .and_then(|a| a.get("value"))
            .and_then(Value::as_str)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    }

    /// The value of a select's chosen option.
    pub fn selected(&self, block: &str, action: &str) -> Option<&str> {
        self.0
            .get(block)
            .and_then(|b| b.get(action))
            .and_then(|a| a.pointer("/selected_option/value"))
            .and_then(Value::as_str)
    }
}

/// Opens a form within the inline budget (the click's trigger expires);
/// tells the clicker privately when it did not open.
pub(super) async fn open_form(
    slack: &Arc<Slack>,
    p: &Value,
    opening: impl std::future::Future<Output = Result<(), String>>,
) {
    let why_not = match tokio::time::timeout(INLINE_BUDGET, opening).await {
        Ok(Ok(())) => return,
        Ok(Err(msg)) => msg,
        Err(_) => "Slack or Pliuz was too slow to open the form; please click again.".into(),
    };
    spawn_ephemeral(slack.clone(), p.clone(), why_not);
}

pub(super) fn spawn_ephemeral(slack: Arc<Slack>, p: Value, text: String) {
    tokio::spawn(async move { ephemeral(&slack, &p, &text).await });
}

async fn block_actions(state: AppState, slack: Arc<Slack>, p: Value) -> Response {
    let ok = StatusCode::OK.into_response();
    let Some(action) = p.pointer("/actions/0") else {
        return ok;
    };
    let action_id = action
        .get("action_id")
        .and_then(Value::as_str)
        .unwrap_or("");
    if super::question_interactions::is_question_action(action_id) {
        let action = action.clone();
        return super::question_interactions::block_action(state, slack, p, action).await;
    }
    let Some((approval_id, seen_digest)) = action
        .get("value")
        .and_then(Value::as_str)
        .map(blocks::parse_button_value)
        .map(|(id, d)| (id.to_owned(), d.to_owned()))
    else {
        return ok;
    };
    let Some(slack_user) = str_at(&p, "/user/id").map(str::to_owned) else {
        return ok;
    };
    match action_id {
        blocks::ACTION_APPROVE => {
            tokio::spawn(async move {
                let outcome = match authorize(
                    &state,
                    &slack,
                    &slack_user,
                    &approval_id,
                    DecisionKind::Approve,
                    None,
                )
                .await
                {
                    Err(msg) => Some(msg),
                    Ok((principal, _)) => {
                        let input = DecisionInput {
                            kind: DecisionKind::Approve,
                            reason: None,
                            final_args: None,
                            args_digest: seen_digest,
                        };
                        match state.cp.decide(&principal, &approval_id, input).await {
                            Ok(a) if a.status == Status::Pending => Some(format!(
                                "Your approval was counted ({} of {} needed).",
                                a.votes.len(),
                                a.required_approvals
                            )),
                            Ok(_) => None,
                            Err(e) => Some(explain(&e)),
                        }
                    }
                };
                if let Some(msg) = outcome {
                    ephemeral(&slack, &p, &msg).await;
                }
            });
            ok
        }
        blocks::ACTION_REJECT | blocks::ACTION_EDIT | blocks::ACTION_RESPOND => {
            let started = Instant::now();
            let kind = match action_id {
                blocks::ACTION_REJECT => DecisionKind::Reject,
                blocks::ACTION_RESPOND => DecisionKind::Respond,
                _ => DecisionKind::Edit,
            };
            let opening = open_modal(
                &state,
                &slack,
                &p,
                &slack_user,
                (&approval_id, &seen_digest),
                kind,
                started,
            );
            open_form(&slack, &p, opening).await;
            ok
        }
        _ => ok,
    }
}

/// Opens the reject, respond or edit modal with the click's `trigger_id`.
async fn open_modal(
    state: &AppState,
    slack: &Slack,
    p: &Value,
    slack_user: &str,
    (approval_id, seen_digest): (&str, &str),
    kind: DecisionKind,
    started: Instant,
) -> Result<(), String> {
    let remaining = |started: Instant| INLINE_BUDGET.saturating_sub(started.elapsed());
    let (_, a) = authorize(
        state,
        slack,
        slack_user,
        approval_id,
        kind,
        Some(remaining(started)),
    )
    .await?;
    if crate::service::review_digest(&a) != seen_digest {
        return Err(ARGS_CHANGED.into());
    }
    let Some(trigger_id) = str_at(p, "/trigger_id") else {
        return Err("Slack sent no trigger_id, so the form cannot be opened.".into());
    };
    let meta = ModalMeta {
        approval_id: a.id.clone(),
        args_digest: seen_digest.to_owned(),
        channel: str_at(p, "/container/channel_id")
            .or_else(|| str_at(p, "/channel/id"))
            .map(str::to_owned),
        ts: str_at(p, "/container/message_ts")
            .or_else(|| str_at(p, "/message/ts"))
            .map(str::to_owned),
    };
    let view = match kind {
        DecisionKind::Edit => blocks::edit_modal(&a, &meta).ok_or_else(|| {
            "These arguments are too long to edit in Slack; edit them in the Pliuz inbox instead."
                .to_owned()
        })?,
        DecisionKind::Respond => blocks::respond_modal(&a, &meta),
        _ => {
            let reasons = state.cp.reject_reasons(&a.policy);
            blocks::reject_modal(&a, &meta, &reasons)
        }
    };
    slack
        .client
        .call_with(
            "views.open",
            &json!({"trigger_id": trigger_id, "view": view}),
            Some(remaining(started)),
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            tracing::warn!(error = %e, "views.open failed");
            "Slack did not open the form; please click again.".to_owned()
        })
}

pub(super) fn modal_errors(block: &str, msg: &str) -> Response {
    let msg = crate::slack::blocks::truncate(msg, 500);
    Json(json!({"response_action": "errors", "errors": {block: msg}})).into_response()
}

async fn view_submission(state: AppState, slack: Arc<Slack>, p: Value) -> Response {
    let callback = str_at(&p, "/view/callback_id").unwrap_or("");
    if callback == super::question_blocks::VIEW_ANSWER {
        return super::question_interactions::view_submission(state, slack, p).await;
    }
    let kind = match callback {
        blocks::VIEW_REJECT => DecisionKind::Reject,
        blocks::VIEW_EDIT => DecisionKind::Edit,
        blocks::VIEW_RESPOND => DecisionKind::Respond,
        _ => return StatusCode::OK.into_response(),
    };
    let error_block = if kind == DecisionKind::Edit {
        blocks::BLOCK_ARGS
    } else {
        blocks::BLOCK_REASON
    };
    let Some(meta) = str_at(&p, "/view/private_metadata")
        .and_then(|m| serde_json::from_str::<ModalMeta>(m).ok())
    else {
        return modal_errors(
            error_block,
            "This form lost track of its request; open it again from the message.",
        );
    };
    let Some(slack_user) = str_at(&p, "/user/id") else {
        return modal_errors(error_block, "Slack did not say who you are.");
    };
    let (principal, a) = match authorize(
        &state,
        &slack,
        slack_user,
        &meta.approval_id,
        kind,
        Some(INLINE_BUDGET),
    )
    .await
    {
        Ok(x) => x,
        Err(msg) => return modal_errors(error_block, &msg),
    };
    let values = Submitted::of(&p);
    let mut reason = values.text(blocks::BLOCK_REASON, blocks::INPUT_REASON);
    let input = match kind {
        DecisionKind::Reject | DecisionKind::Respond => {
            // A reason chosen from the policy's list leads; the text adds details.
            let chosen = values
                .selected(blocks::BLOCK_REASON_CHOICE, blocks::INPUT_REASON_CHOICE)
                .unwrap_or("");
            if kind == DecisionKind::Reject {
                if let Some(policy) = state.cp.policies().get(&a.policy) {
                    match policy.reject_reason(chosen, reason.as_deref()) {
                        Ok(r) => reason = r,
                        Err(m) => return modal_errors(blocks::BLOCK_REASON_CHOICE, &m),
                    }
                }
            }
            match check_reason(Action::Decide(kind), reason.as_deref()) {
                Err(Refusal::ReasonRequired) => {
                    return modal_errors(
                        blocks::BLOCK_REASON,
                        "Please say why you are rejecting it.",
                    )
                }
                Err(Refusal::MessageRequired) => {
                    return modal_errors(
                        blocks::BLOCK_REASON,
                        "Please write the answer the agent should get.",
                    )
                }
                Err(other) => return modal_errors(blocks::BLOCK_REASON, &other.to_string()),
                Ok(()) => {}
            }
            DecisionInput {
                kind,
                reason,
                final_args: None,
                args_digest: meta.args_digest.clone(),
            }
        }
        _ => {
            let text = values
                .text(blocks::BLOCK_ARGS, blocks::INPUT_ARGS)
                .unwrap_or_default();
            let args: Map<String, Value> = match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(m)) => m,
                Ok(_) => {
                    return modal_errors(
                        blocks::BLOCK_ARGS,
                        "The arguments must be a JSON object, like {\"amount_cents\": 500}.",
                    )
                }
                Err(e) => return modal_errors(blocks::BLOCK_ARGS, &format!("Not valid JSON: {e}")),
            };
            if let Some(schema) = &a.call.tool_schema {
                if let Err(errs) = crate::service::schema_errors(schema, &args) {
                    return modal_errors(
                        blocks::BLOCK_ARGS,
                        &format!("Does not match the tool's schema: {}", errs.join("; ")),
                    );
                }
            }
            DecisionInput {
                kind,
                reason,
                final_args: Some(args),
                args_digest: meta.args_digest.clone(),
            }
        }
    };
    match state.cp.decide(&principal, &a.id, input).await {
        // An empty 200 closes the modal; the message update follows via the outbox.
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => modal_errors(error_block, &explain(&e)),
    }
}
