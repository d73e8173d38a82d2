//! Decisions from the inbox: approve, reject, respond (where the policy
//! allows it), and edit (with a preview of the changes). Every decision goes through `ControlPlane::decide`, exactly
//! like the API, so authorization, audit entries and notifications are the
//! same.

use super::pages::{layout, page, pretty, refusal_on_form, see_other, Nav, WebResult};
use super::queue::*;
use super::request_page::*;
use super::session::{CsrfForm, Session};
use crate::approval::{check_reason, Action, Approval, DecisionKind, Refusal, Status};
use crate::diff::{diff, Change};
use crate::http::error::Problem;
use crate::http::AppState;
use crate::service::{review_digest, schema_errors, DecisionInput};
use axum::extract::State;
use axum::http::StatusCode;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{Map, Value};

pub(super) async fn decide(
    state: &AppState,
    s: &Session,
    id: &str,
    input: DecisionInput,
    fb: Feedback,
) -> WebResult {
    let kind = input.kind;
    match state.cp.decide(&s.principal(), id, input).await {
        Ok(a) => {
            let done = match (a.status, kind) {
                (Status::Approved, DecisionKind::Edit) => "edited",
                (Status::Approved, _) => "approved",
                (Status::Rejected, _) => "rejected",
                (Status::Responded, _) => "responded",
                _ => "voted",
            };
            Ok(see_other(&format!("/requests/{id}?done={done}")))
        }
        Err(e) => {
            let p = Problem::from(e);
            if p.code == "args_changed" {
                // Show the arguments as they are now, with their digest.
                return render(
                    state,
                    s,
                    id,
                    StatusCode::CONFLICT,
                    Feedback {
                        error: Some(ARGS_CHANGED.into()),
                        reason: fb.reason,
                        message: fb.message,
                        ..Default::default()
                    },
                )
                .await;
            }
            let (status, message) = refusal_on_form(p)?;
            render(
                state,
                s,
                id,
                status,
                Feedback {
                    error: Some(message),
                    ..fb
                },
            )
            .await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ReasonForm {
    #[serde(default)]
    reason: String,
    /// One of the policy's `reject_reasons`, or empty.
    #[serde(default)]
    reason_choice: String,
    /// What the decider reviewed; missing means a stale form: refused.
    #[serde(default)]
    args_digest: String,
}

pub async fn approve(
    State(state): State<AppState>,
    super::extract::WebPath(id): super::extract::WebPath,
    CsrfForm(s, f): CsrfForm<ReasonForm>,
) -> WebResult {
    let input = DecisionInput {
        kind: DecisionKind::Approve,
        reason: non_empty(Some(f.reason)),
        final_args: None,
        args_digest: f.args_digest,
    };
    decide(&state, &s, &id, input, Feedback::default()).await
}

pub async fn reject(
    State(state): State<AppState>,
    super::extract::WebPath(id): super::extract::WebPath,
    CsrfForm(s, f): CsrfForm<ReasonForm>,
) -> WebResult {
    with_text(&state, &s, &id, DecisionKind::Reject, f).await
}

/// Answer in the tool's place: the tool does not run, the agent's model
/// gets the message (the form's `reason`).
pub async fn respond(
    State(state): State<AppState>,
    super::extract::WebPath(id): super::extract::WebPath,
    CsrfForm(s, f): CsrfForm<ReasonForm>,
) -> WebResult {
    with_text(&state, &s, &id, DecisionKind::Respond, f).await
}

/// A decision whose text is required: a reject's reason, a respond's message.
async fn with_text(
    state: &AppState,
    s: &Session,
    id: &str,
    kind: DecisionKind,
    f: ReasonForm,
) -> WebResult {
    // A reject may lead with one of the policy's `reject_reasons`; the text
    // adds details. A respond's message is the text alone.
    let (text, bad_choice) = if kind == DecisionKind::Reject {
        let policy = match state.cp.get_for(&s.principal(), id).await {
            Ok(a) => state.cp.policies().get(&a.policy).cloned(),
            Err(_) => None,
        };
        match &policy {
            Some(p) => match p.reject_reason(&f.reason_choice, Some(&f.reason)) {
                Ok(r) => (r, None),
                Err(m) => (non_empty(Some(f.reason)), Some(m)),
            },
            None => (non_empty(Some(f.reason)), None),
        }
    } else {
        (non_empty(Some(f.reason)), None)
    };
    // The rule every edge asks; the form says it in its own words.
    let refused = bad_choice.or_else(|| {
        match check_reason(Action::Decide(kind), text.as_deref()) {
        Err(Refusal::ReasonRequired) => {
            Some("Write a reason for rejecting: the agent's model receives it.".to_owned())
        }
        Err(Refusal::MessageRequired) => Some(
            "Write the message to send: the agent's model receives it instead of the tool's result."
                .to_owned(),
        ),
        Err(Refusal::ReasonTooLong { max }) => Some(match kind {
            DecisionKind::Respond => format!("The message is too long: at most {max} characters."),
            _ => format!("The reason is too long: at most {max} characters."),
        }),
        Err(other) => Some(other.to_string()),
        Ok(()) => None,
    }
    });
    // The text goes back into the form it came from.
    let feedback = |text: Option<String>| match kind {
        DecisionKind::Respond => Feedback {
            message: text,
            ..Default::default()
        },
        _ => Feedback {
            reason: text,
            ..Default::default()
        },
    };
    let (Some(text), None) = (text.clone(), refused.clone()) else {
        return render(
            state,
            s,
            id,
            StatusCode::UNPROCESSABLE_ENTITY,
            Feedback {
                error: refused,
                ..feedback(text)
            },
        )
        .await;
    };
    let input = DecisionInput {
        kind,
        reason: Some(text.clone()),
        final_args: None,
        args_digest: f.args_digest,
    };
    decide(state, s, id, input, feedback(Some(text))).await
}

pub(super) fn json_cell(v: &Value) -> Markup {
    html! {
        @match v {
            Value::String(s) => span.value { (s) },
            other => code.value { (serde_json::to_string(other).unwrap_or_default()) },
        }
    }
}

pub(super) fn preview_page(
    s: &Session,
    a: &Approval,
    edited: &Map<String, Value>,
    text: &str,
    changes: &[Change],
    reviewed_digest: &str,
) -> Markup {
    let body = html! {
        p.crumbs { a href={ "/requests/" (a.id) } { "← Back to the request" } }
        div.page-head {
            div {
                h1 { "Review your changes" }
                p.muted { "To " code { (a.call.tool_name) } " from agent " strong { (a.agent) } ". Nothing is decided until you approve." }
            }
        }
        section.card aria-labelledby="diff-h" {
            h2 #diff-h { (changes.len()) " " @if changes.len() == 1 { "change" } @else { "changes" } }
            div.table-wrap {
                table.diff #diff {
                    thead { tr { th scope="col" { "Field" } th scope="col" { "Original" } th scope="col" { "Edited" } } }
                    tbody {
                        @for c in changes {
                            @match c {
                                Change::Changed { path, before, after } => tr.changed {
                                    th scope="row" { code { (path) } }
                                    td.before { del { (json_cell(before)) } }
                                    td.after { ins { (json_cell(after)) } }
                                },
                                Change::Added { path, after } => tr.added {
                                    th scope="row" { code { (path) } }
                                    td.before { span.muted { "(not set)" } }
                                    td.after { ins { (json_cell(after)) } }
                                },
                                Change::Removed { path, before } => tr.removed {
                                    th scope="row" { code { (path) } }
                                    td.before { del { (json_cell(before)) } }
                                    td.after { span.muted { "(removed)" } }
                                },
                            }
                        }
                    }
                }
            }
            details.raw {
                summary { "Edited arguments as JSON" }
                pre { (pretty(&Value::Object(edited.clone()))) }
            }
        }
        section.card {
            form method="post" action={ "/requests/" (a.id) "/edit" } {
                input type="hidden" name="csrf" value=(s.csrf);
                input type="hidden" name="final_args" value=(text);
                input type="hidden" name="args_digest" value=(reviewed_digest);
                div.field {
                    label for="note" { "Note for the record (optional)" }
                    textarea #note name="reason" rows="2" maxlength="2000" {}
                }
                div.row {
                    button.approve #confirm-edit type="submit" name="step" value="confirm" { "Approve with these changes" }
                    button.subtle type="submit" name="step" value="back" formnovalidate { "Back to editing" }
                }
            }
        }
    };
    layout("Review your changes", Some(s), Nav::Inbox, body)
}

#[derive(Debug, Deserialize)]
pub struct EditForm {
    #[serde(default)]
    final_args: String,
    #[serde(default)]
    step: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    args_digest: String,
}

/// Parses and checks edited arguments; `Err` lists what is wrong.
pub fn check_edit(text: &str, schema: Option<&Value>) -> Result<Map<String, Value>, Vec<String>> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        vec![format!(
            "This is not valid JSON (line {}, column {}): {e}",
            e.line(),
            e.column()
        )]
    })?;
    let Value::Object(args) = value else {
        return Err(vec![
            "The arguments must be a JSON object, like {\"field\": \"value\"}.".into(),
        ]);
    };
    if let Some(schema) = schema {
        schema_errors(schema, &args)?;
    }
    Ok(args)
}

pub async fn edit(
    State(state): State<AppState>,
    super::extract::WebPath(id): super::extract::WebPath,
    CsrfForm(s, f): CsrfForm<EditForm>,
) -> WebResult {
    let a = state.cp.get_for(&s.principal(), &id).await?;
    let retry = |errors: Vec<String>| Feedback {
        edit_text: Some(f.final_args.clone()),
        edit_errors: errors,
        reviewed_digest: Some(f.args_digest.clone()),
        ..Default::default()
    };
    if a.status == Status::Pending && f.args_digest != review_digest(&a) {
        // The edit started from arguments that are no longer the ones under
        // review: a diff against the new ones would mislead.
        return render(
            &state,
            &s,
            &id,
            StatusCode::CONFLICT,
            Feedback {
                error: Some(ARGS_CHANGED.into()),
                ..Default::default()
            },
        )
        .await;
    }
    if f.step == "back" {
        return render(&state, &s, &id, StatusCode::OK, retry(vec![])).await;
    }
    let args = match check_edit(&f.final_args, a.call.tool_schema.as_ref()) {
        Ok(args) => args,
        Err(errors) => {
            return render(
                &state,
                &s,
                &id,
                StatusCode::UNPROCESSABLE_ENTITY,
                retry(errors),
            )
            .await;
        }
    };
    if f.step == "confirm" {
        let input = DecisionInput {
            kind: DecisionKind::Edit,
            reason: non_empty(Some(f.reason.clone())),
            final_args: Some(args),
            args_digest: f.args_digest.clone(),
        };
        return decide(&state, &s, &id, input, retry(vec![])).await;
    }
    let mut changes = Vec::new();
    diff(
        &Value::Object(a.args_under_review().clone()),
        &Value::Object(args.clone()),
        "",
        &mut changes,
    );
    if changes.is_empty() {
        return render(
            &state,
            &s,
            &id,
            StatusCode::UNPROCESSABLE_ENTITY,
            retry(vec!["Nothing was changed. Edit a value, or use Approve to accept the arguments as they are.".into()]),
        )
        .await;
    }
    let compact = serde_json::to_string(&Value::Object(args.clone())).unwrap_or_default();
    Ok(page(
        StatusCode::OK,
        preview_page(&s, &a, &args, &compact, &changes, &f.args_digest),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn edits_are_checked_against_the_schema() {
        let schema = json!({"type": "object", "properties": {"amount": {"type": "integer", "maximum": 100}}, "required": ["amount"]});
        assert!(check_edit("{\"amount\": 50}", Some(&schema)).is_ok());
        let e = check_edit("{\"amount\": 500}", Some(&schema)).unwrap_err();
        assert!(e[0].contains("/amount"), "{e:?}");
        let e = check_edit("[1]", None).unwrap_err();
        assert!(e[0].contains("JSON object"));
        let e = check_edit("{\"amount\": ", None).unwrap_err();
        assert!(e[0].contains("not valid JSON"));
    }
}
