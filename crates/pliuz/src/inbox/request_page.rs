//! The request page: arguments, context, facts, the audit trail of the
//! request, the decision buttons the viewer may use, and the receipt
//! download.

use super::pages::{
    expires_text, fmt_time, layout, page, pretty, status_badge, time_el, value_text, Nav, WebResult,
};
use super::session::{Session, Viewer};
use crate::approval::{Action, Approval, DecisionKind, Refusal, Status};
use crate::http::AppState;
use crate::service::review_digest;
use crate::service::StoredEntry;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Messages shown on the request page after an action.
#[derive(Default)]
pub(super) struct Feedback {
    pub(super) notice: Option<String>,
    pub(super) error: Option<String>,
    pub(super) edit_text: Option<String>,
    pub(super) edit_errors: Vec<String>,
    pub(super) reason: Option<String>,
    /// The message of a respond form that was refused, shown again.
    pub(super) message: Option<String>,
    /// The digest the decider reviewed, carried through re-rendered forms
    /// (`None`: the arguments shown now).
    pub(super) reviewed_digest: Option<String>,
}

pub(super) const ARGS_CHANGED: &str = "The arguments changed while you were looking at them: an approver edited them. Nothing was decided. Review the arguments as they are now, below, and decide again.";

pub(super) struct Abilities {
    pub(super) approve: bool,
    pub(super) reject: bool,
    pub(super) edit: bool,
    /// Answer in the tool's place (only where the policy allows `respond`).
    pub(super) respond: bool,
    pub(super) why_not: Option<String>,
}

pub(super) fn abilities(state: &AppState, s: &Session, a: &Approval) -> Abilities {
    let none = |why: Option<String>| Abilities {
        approve: false,
        reject: false,
        edit: false,
        respond: false,
        why_not: why,
    };
    if a.status != Status::Pending {
        return none(None);
    }
    let p = s.principal();
    // The same question `decide` asks, so a button shown is a button that works.
    let may = |k| state.cp.allows(&p, a, Action::Decide(k));
    if let Err(Refusal::NotApprover { .. }) = may(DecisionKind::Reject) {
        return none(Some(format!(
            "You can view this request, but you are not an approver of the policy '{}', so you cannot decide it.",
            a.policy
        )));
    }
    let actor = s.actor();
    let originator = a.is_originated_by(&actor);
    let voted = a.has_voted(&actor);
    let permitted = |k| may(k).is_ok();
    let out = Abilities {
        approve: permitted(DecisionKind::Approve),
        reject: permitted(DecisionKind::Reject),
        edit: permitted(DecisionKind::Edit),
        respond: permitted(DecisionKind::Respond),
        why_not: if originator {
            Some("You started this request, so someone else must approve it. You can still reject it.".into())
        } else if voted {
            Some(format!(
                "You approved this request. It needs {} approvals; {} so far.",
                a.required_approvals,
                a.votes.len()
            ))
        } else {
            None
        },
    };
    out
}

pub(super) fn args_table(args: &Map<String, Value>) -> Markup {
    html! {
        @if args.is_empty() {
            p.muted { "No arguments." }
        } @else {
            dl.args {
                @for (k, v) in args {
                    div.arg {
                        dt { (k) }
                        dd {
                            @match v {
                                Value::String(s) => span.value { (s) },
                                Value::Object(_) | Value::Array(_) => pre.value { (pretty(v)) },
                                other => span.value.literal { (value_text(other)) },
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(super) fn context_view(ctx: &Value) -> Markup {
    let items: Vec<Value> = match ctx {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    html! {
        ol.context {
            @for m in &items {
                @match (m.get("role").and_then(Value::as_str), m.get("content")) {
                    (Some(role), Some(content)) => {
                        li class={ "msg role-" (role.chars().filter(char::is_ascii_alphanumeric).collect::<String>()) } {
                            span.role { (role) }
                            @match content {
                                Value::String(s) => p.text { (s) },
                                other => pre { (pretty(other)) },
                            }
                        }
                    },
                    _ => li.msg { pre { (pretty(m)) } },
                }
            }
        }
    }
}

/// An audit entry's body, parsed for display.
pub(super) fn audit_view(entries: &[StoredEntry]) -> Markup {
    html! {
        @if entries.is_empty() {
            p.muted { "No audit entries yet." }
        } @else {
            ol.audit {
                @for e in entries {
                    @let body: Value = serde_json::from_str(&e.body).unwrap_or(Value::Null);
                    li {
                        div.audit-line {
                            span.idx { "#" (e.index) }
                            span.kind { (e.kind) }
                            span.actor { (body.get("actor").and_then(Value::as_str).unwrap_or("")) }
                            span.when { (time_el(e.created_at, &fmt_time(e.created_at))) }
                        }
                        details {
                            summary { "Entry" }
                            pre { (pretty(&body)) }
                        }
                    }
                }
            }
        }
    }
}

pub(super) fn facts(a: &Approval, now: i64) -> Markup {
    html! {
        dl.facts {
            div { dt { "Tool" } dd { code { (a.call.tool_name) } } }
            div { dt { "Agent" } dd { (a.agent) } }
            div { dt { "Policy" } dd { (a.policy) } }
            div { dt { "Originator" } dd { (a.call.originator.clone().unwrap_or_else(|| "—".into())) } }
            div { dt { "Requested" } dd { (time_el(a.created_at, &fmt_time(a.created_at))) } }
            div {
                dt { "Expires" }
                dd {
                    (time_el(a.expires_at, &fmt_time(a.expires_at)))
                    @if a.status == Status::Pending {
                        " · " span.expires data-expires=(a.expires_at) { (expires_text(a.expires_at, now)) }
                    }
                }
            }
            div { dt { "Approvals" } dd { (a.votes.len()) " of " (a.required_approvals) " needed" } }
            @if let Some(e) = a.escalated_at { div { dt { "Escalated" } dd { (time_el(e, &fmt_time(e))) } } }
            @if let Some(b) = a.execute_before() { div { dt { "Run before" } dd { (time_el(b, &fmt_time(b))) } } }
            @if let Some(c) = &a.call.call_id { div { dt { "Call" } dd { code { (c) } } } }
            @if let Some(c) = &a.call.session_id { div { dt { "Session" } dd { code { (c) } } } }
        }
    }
}

pub(super) fn request_page(
    state: &AppState,
    s: &Session,
    a: &Approval,
    entries: &[StoredEntry],
    fb: Feedback,
) -> Markup {
    let now = crate::service::now_millis();
    let can = abilities(state, s, a);
    let reasons = state.cp.reject_reasons(&a.policy);
    let under_review = a.args_under_review();
    let digest = review_digest(a);
    let form_digest = fb.reviewed_digest.clone().unwrap_or_else(|| digest.clone());
    let edit_text = fb
        .edit_text
        .clone()
        .unwrap_or_else(|| pretty(&Value::Object(under_review.clone())));
    let body = html! {
        div.req data-request-id=(a.id) data-status=(a.status.as_str()) data-args-digest=(digest) {
            p.crumbs { a href="/inbox" { "← Inbox" } }
            div.page-head {
                div {
                    h1 { code.toolname { (a.call.tool_name) } " " (status_badge(a.status)) }
                    p.muted { "Requested by agent " strong { (a.agent) } " under policy " strong { (a.policy) } }
                }
                @if a.status == Status::Pending {
                    p.deadline { span.expires data-expires=(a.expires_at) { (expires_text(a.expires_at, now)) } }
                }
            }
            p #changed-elsewhere.notice role="status" hidden { }
            @if let Some(n) = &fb.notice { p.notice.success role="status" { (n) } }
            @if let Some(e) = &fb.error { p.error #decision-error role="alert" { (e) } }

            div.grid {
                div.col-main {
                    section.card aria-labelledby="args-h" {
                        h2 #args-h { @if a.proposed_args.is_some() && a.status == Status::Pending { "Arguments (as edited, awaiting approvals)" } @else { "Arguments" } }
                        (args_table(under_review))
                        details.raw {
                            summary { "Raw JSON" }
                            pre #raw-args { (pretty(&Value::Object(under_review.clone()))) }
                        }
                        @if a.proposed_args.is_some() {
                            details.raw {
                                summary { "Original arguments from the agent" }
                                pre { (pretty(&Value::Object(a.call.tool_args.clone()))) }
                            }
                        }
                    }

                    @if a.status == Status::Pending && (can.approve || can.reject || can.edit || can.respond) {
                        section.card.decide #decide aria-labelledby="decide-h" {
                            h2 #decide-h { "Your decision" }
                            @if let Some(w) = &can.why_not { p.muted { (w) } }
                            @if a.required_approvals > 1 {
                                p.muted { "This request needs " (a.required_approvals) " approvals from different people; " (a.votes.len()) " so far." }
                            }
                            div.decisions {
                                @if can.approve {
                                    form.approve-form method="post" action={ "/requests/" (a.id) "/approve" } {
                                        input type="hidden" name="csrf" value=(s.csrf);
                                        input type="hidden" name="args_digest" value=(form_digest);
                                        button.approve #approve type="submit" { "Approve" }
                                        p.help { "The agent runs " code { (a.call.tool_name) } " with the arguments shown." }
                                    }
                                }
                                @if can.reject {
                                    form.reject-form method="post" action={ "/requests/" (a.id) "/reject" } {
                                        input type="hidden" name="csrf" value=(s.csrf);
                                        input type="hidden" name="args_digest" value=(form_digest);
                                        @if reasons.is_empty() {
                                            div.field {
                                                label for="reason" { "Reason for rejecting" }
                                                textarea #reason name="reason" rows="3" maxlength="2000" required aria-describedby="reason-help" { (fb.reason.clone().unwrap_or_default()) }
                                                p.help #reason-help { "The agent's model receives this reason, so say what it should do instead." }
                                            }
                                        } @else {
                                            div.field {
                                                label for="reason_choice" { "Reason for rejecting" }
                                                select #reason_choice name="reason_choice" aria-describedby="reason-help" {
                                                    option value="" { "Other (write it below)" }
                                                    @for r in &reasons { option value=(r) { (r) } }
                                                }
                                            }
                                            div.field {
                                                label for="reason" { "Details for the agent" }
                                                textarea #reason name="reason" rows="3" maxlength="2000" aria-describedby="reason-help" { (fb.reason.clone().unwrap_or_default()) }
                                                p.help #reason-help { "The agent's model receives the chosen reason and these details, so say what it should do instead." }
                                            }
                                        }
                                        button.reject #reject type="submit" { "Reject" }
                                    }
                                }
                                @if can.respond {
                                    form.respond-form method="post" action={ "/requests/" (a.id) "/respond" } {
                                        input type="hidden" name="csrf" value=(s.csrf);
                                        input type="hidden" name="args_digest" value=(form_digest);
                                        div.field {
                                            label for="respond_message" { "Answer instead of running the tool" }
                                            textarea #respond_message name="reason" rows="3" maxlength="2000" required aria-describedby="respond-help" { (fb.message.clone().unwrap_or_default()) }
                                            p.help #respond-help { "The tool does not run; the agent's model receives this message as the tool's result." }
                                        }
                                        button.respond #respond type="submit" { "Respond" }
                                    }
                                }
                            }
                            @if can.edit {
                                details.edit #edit open[fb.edit_text.is_some()] {
                                    summary { "Edit the arguments, then approve" }
                                    form method="post" action={ "/requests/" (a.id) "/edit" } {
                                        input type="hidden" name="csrf" value=(s.csrf);
                                        input type="hidden" name="args_digest" value=(form_digest);
                                        input type="hidden" name="step" value="preview";
                                        div.field {
                                            label for="final_args" { "Arguments (JSON)" }
                                            textarea.code #final_args name="final_args" rows="12" spellcheck="false" autocapitalize="off" autocomplete="off" aria-describedby="json-status edit-errors" { (edit_text) }
                                            p.help #json-status aria-live="polite" {}
                                        }
                                        @if !fb.edit_errors.is_empty() {
                                            div.error #edit-errors role="alert" {
                                                p { strong { "These arguments cannot be used:" } }
                                                ul { @for e in &fb.edit_errors { li { (e) } } }
                                            }
                                        }
                                        div.row {
                                            button.subtle #format-json type="button" hidden { "Format JSON" }
                                            button.primary #review type="submit" { "Review changes" }
                                        }
                                    }
                                    @if let Some(schema) = &a.call.tool_schema {
                                        details.raw {
                                            summary { "Argument schema" }
                                            pre { (pretty(schema)) }
                                        }
                                    }
                                }
                            }
                        }
                    } @else if let Some(w) = &can.why_not {
                        section.card.decide #decide {
                            h2 { "Decision" }
                            p.muted #no-decision { (w) }
                        }
                    }

                    @if let Some(d) = &a.settlement {
                        section.card aria-labelledby="outcome-h" {
                            h2 #outcome-h { "Outcome" }
                            dl.facts {
                                div { dt { "Result" } dd { (status_badge(d.status)) @if a.edited { " " span.badge { "edited" } } } }
                                div { dt { "By" } dd { (super::pages::email(&d.by)) } }
                                div { dt { "When" } dd { (time_el(d.at, &fmt_time(d.at))) } }
                                @if let Some(r) = &d.reason { div.wide { dt { "Reason" } dd #decision-reason { (r) } } }
                            }
                            @if let Some(fa) = &a.final_args {
                                @if a.edited {
                                    h3 { "Arguments the tool runs with" }
                                    (args_table(fa))
                                }
                            }
                            @if a.status == Status::Executing {
                                h3 { "Execution" }
                                p.error #outcome-unknown role="status" {
                                    strong { "Outcome unknown — check before retrying." }
                                    " The agent started the tool"
                                    @if let Some(c) = &a.claim { " at " (time_el(c.claimed_at, &fmt_time(c.claimed_at))) }
                                    " and never reported how it went. Pliuz will not let it run again."
                                }
                            }
                            @if let Some(e) = &a.execution {
                                h3 { "Execution" }
                                dl.facts {
                                    div { dt { "Result" } dd { (e.outcome.as_str()) } }
                                    @if let Some(l) = e.latency_ms { div { dt { "Took" } dd { (l) " ms" } } }
                                    div { dt { "Reported" } dd { (time_el(e.reported_at, &fmt_time(e.reported_at))) } }
                                }
                                @if let Some(x) = &e.output_excerpt { pre.output { (x) } }
                            }
                        }
                    }
                }
                div.col-side {
                    section.card aria-labelledby="facts-h" {
                        h2 #facts-h { "Details" }
                        (facts(a, now))
                    }
                    @if let Some(ctx) = &a.call.context_messages {
                        section.card aria-labelledby="ctx-h" {
                            h2 #ctx-h { "Conversation" }
                            (context_view(ctx))
                        }
                    }
                    section.card aria-labelledby="audit-h" {
                        h2 #audit-h { "Audit trail" }
                        (audit_view(entries))
                        p { a.button.subtle href={ "/requests/" (a.id) "/receipt.json" } download={ "pliuz-receipt-" (a.id) ".json" } { "Download receipt (JSON)" } }
                        p.help { "The receipt proves these entries are in the signed, tamper-evident log; verify it offline with " code { "pliuz audit verify-receipt" } "." }
                    }
                }
            }
        }
    };
    layout(
        &format!("{} request", a.call.tool_name),
        Some(s),
        Nav::Inbox,
        body,
    )
}

#[derive(Debug, Deserialize, Default)]
pub struct ShowQuery {
    done: Option<String>,
}

pub(super) async fn render(
    state: &AppState,
    s: &Session,
    id: &str,
    status: StatusCode,
    fb: Feedback,
) -> WebResult {
    let a = state.cp.get_for(&s.principal(), id).await?;
    let entries = state.cp.audit_entries_for(id).await?;
    Ok(page(status, request_page(state, s, &a, &entries, fb)))
}

pub async fn show(
    State(state): State<AppState>,
    Viewer(s): Viewer,
    super::extract::WebPath(id): super::extract::WebPath,
    Query(q): Query<ShowQuery>,
) -> WebResult {
    let a = state.cp.get_for(&s.principal(), &id).await?;
    let entries = state.cp.audit_entries_for(&id).await?;
    let notice = done_notice(q.done.as_deref(), a.status);
    let fb = Feedback {
        notice: notice.map(str::to_owned),
        ..Default::default()
    };
    Ok(page(
        StatusCode::OK,
        request_page(&state, &s, &a, &entries, fb),
    ))
}

/// The notice after a decision, as true now as when it was made: a reload
/// after the tool ran must not still say it "will run".
fn done_notice(done: Option<&str>, now: Status) -> Option<&'static str> {
    let approved = matches!(done, Some("approved" | "edited"));
    match (done, now) {
        (_, Status::Executed) if approved => {
            Some("Approved. The agent has run the tool; its outcome is shown below.")
        }
        (_, Status::Executing) if approved => {
            Some("Approved. The agent has started the tool; its outcome is not reported yet.")
        }
        (_, Status::Expired) if approved => {
            Some("Approved, but the agent did not start the tool in time; it will not run.")
        }
        (Some("approved"), _) => Some("Approved. The agent has been told and will run the tool."),
        (Some("voted"), Status::Pending) => {
            Some("Your approval is recorded. The request waits for more approvals.")
        }
        (Some("voted"), _) => Some("Your approval is recorded."),
        (Some("rejected"), _) => Some("Rejected. The agent's model receives your reason."),
        (Some("responded"), _) => {
            Some("Responded. The tool does not run; the agent's model receives your message.")
        }
        (Some("edited"), _) => {
            Some("Approved with your changes. The agent runs the tool with the edited arguments.")
        }
        _ => None,
    }
}

/// The request's receipt, as a download.
pub async fn receipt(
    State(state): State<AppState>,
    Viewer(s): Viewer,
    super::extract::WebPath(id): super::extract::WebPath,
) -> WebResult {
    let a = state.cp.get_for(&s.principal(), &id).await?;
    let receipt =
        crate::audit::receipt_for(&state.cp, &a.id, state.extras.audit_signer.as_deref()).await?;
    let body = serde_json::to_string_pretty(&receipt).unwrap_or_default();
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"pliuz-receipt-{}.json\"", a.id),
            ),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn agent_text_is_escaped() {
        let mut args = Map::new();
        args.insert("note".into(), json!("<script>window.__xss=1</script>"));
        let html = args_table(&args).into_string();
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
    }
}
