//! Questions from agents in the inbox: the list on the queue page, the
//! question page and its answer form (through `ControlPlane::answer_question`,
//! exactly like the API).

use super::pages::{
    expires_text, fmt_time, layout, page, refusal_on_form, see_other, time_el, Nav, WebError,
    WebResult,
};
use super::session::{CsrfForm, Session, Viewer};
use crate::http::error::Problem;
use crate::http::AppState;
use crate::question::{Question, QuestionStatus};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use maud::{html, Markup};
use serde::Deserialize;

/// How many pending questions the queue page lists.
const LISTED: i64 = 25;

fn status_badge(s: QuestionStatus) -> Markup {
    html! { span class={ "badge status-" (s.as_str()) } { (s.as_str()) } }
}

/// The queue page's "Questions" section: pending questions this person may
/// answer (nothing when there are none).
pub(super) async fn pending_section(state: &AppState, s: &Session) -> Result<Markup, WebError> {
    let questions = state
        .cp
        .pending_questions_for(&s.principal(), LISTED)
        .await?;
    let now = crate::service::now_millis();
    Ok(html! {
        @if !questions.is_empty() {
            section.card #questions aria-labelledby="questions-h" {
                h2 #questions-h { "Questions from agents (" (questions.len()) ")" }
                ul.queue {
                    @for q in &questions {
                        li.row data-question-id=(q.id) {
                            a href={ "/questions/" (q.id) } { (crate::text::truncate(&q.asked.text, 140)) }
                            " " span.muted { "from " (q.agent) " · " (q.policy) " · " (expires_text(q.expires_at, now)) }
                        }
                    }
                }
            }
        }
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct ShowQuery {
    done: Option<String>,
}

fn question_page(
    s: &Session,
    q: &Question,
    can: Result<(), String>,
    error: Option<String>,
    notice: Option<&str>,
) -> Markup {
    let now = crate::service::now_millis();
    html! {
        div.req data-question-id=(q.id) data-status=(q.status.as_str()) {
            p.crumbs { a href="/inbox" { "← Inbox" } }
            div.page-head {
                div {
                    h1 { "Question " (status_badge(q.status)) }
                    p.muted { "Asked by agent " strong { (q.agent) } " under policy " strong { (q.policy) } }
                }
                @if q.status == QuestionStatus::Pending {
                    p.deadline { span.expires data-expires=(q.expires_at) { (expires_text(q.expires_at, now)) } }
                }
            }
            @if let Some(n) = notice { p.notice.success role="status" { (n) } }
            @if let Some(e) = &error { p.error #answer-error role="alert" { (e) } }
            section.card aria-labelledby="question-h" {
                h2 #question-h { "The question" }
                p #question-text.question-text { (q.asked.text) }
                dl.facts {
                    div { dt { "Originator" } dd { (q.asked.originator.clone().unwrap_or_else(|| "—".into())) } }
                    div { dt { "Asked" } dd { (time_el(q.created_at, &fmt_time(q.created_at))) } }
                    div { dt { "Expires" } dd { (time_el(q.expires_at, &fmt_time(q.expires_at))) } }
                }
            }
            @if let Some(a) = &q.answer {
                section.card #answer aria-labelledby="answer-h" {
                    h2 #answer-h { "Answer" }
                    dl.facts {
                        @if let Some(c) = &a.choice {
                            div { dt { "Choice" } dd #answer-choice { (q.label_of(c).unwrap_or(c)) } }
                        }
                        @if let Some(t) = &a.text {
                            div.wide { dt { "Text" } dd #answer-text { (t) } }
                        }
                        div { dt { "By" } dd #answered-by { (a.answered_by) } }
                        div { dt { "At" } dd { (time_el(a.answered_at, &fmt_time(a.answered_at))) } }
                    }
                }
            }
            @if q.status == QuestionStatus::Pending {
                @match &can {
                    Ok(()) => {
                        section.card.decide #answer-form aria-labelledby="answer-form-h" {
                            h2 #answer-form-h { "Your answer" }
                            @for c in &q.asked.choices {
                                form.choice-form method="post" action={ "/questions/" (q.id) "/answer" } {
                                    input type="hidden" name="csrf" value=(s.csrf);
                                    input type="hidden" name="choice" value=(c.value);
                                    button.approve.choice type="submit" data-choice=(c.value) { (c.label) }
                                }
                            }
                            @if q.asked.allow_free_text {
                                form.text-form method="post" action={ "/questions/" (q.id) "/answer" } {
                                    input type="hidden" name="csrf" value=(s.csrf);
                                    div.field {
                                        label for="answer-text-input" { @if q.asked.choices.is_empty() { "Answer in words" } @else { "Or answer in your own words" } }
                                        textarea #answer-text-input name="text" rows="3" maxlength="4000" required { }
                                    }
                                    button #send-answer type="submit" { "Send answer" }
                                }
                            }
                        }
                    }
                    Err(why) => { p.muted #cannot-answer { (why) } }
                }
            }
        }
    }
}

async fn render(
    state: &AppState,
    s: &Session,
    id: &str,
    status: StatusCode,
    error: Option<String>,
    notice: Option<&str>,
) -> WebResult {
    let q = state.cp.question_for(&s.principal(), id).await?;
    let can = state
        .cp
        .may_answer(&s.principal(), &q)
        .map_err(|r| r.to_string());
    Ok(page(
        status,
        layout(
            "Question",
            Some(s),
            Nav::Inbox,
            question_page(s, &q, can, error, notice),
        ),
    ))
}

pub async fn show(
    State(state): State<AppState>,
    Viewer(s): Viewer,
    super::extract::WebPath(id): super::extract::WebPath,
    Query(q): Query<ShowQuery>,
) -> WebResult {
    let notice = (q.done.as_deref() == Some("answered"))
        .then_some("Answered. The agent receives your answer.");
    render(&state, &s, &id, StatusCode::OK, None, notice).await
}

#[derive(Debug, Deserialize)]
pub struct AnswerForm {
    #[serde(default)]
    choice: String,
    #[serde(default)]
    text: String,
}

pub async fn answer(
    State(state): State<AppState>,
    super::extract::WebPath(id): super::extract::WebPath,
    CsrfForm(s, f): CsrfForm<AnswerForm>,
) -> WebResult {
    let choice = Some(f.choice).filter(|c| !c.is_empty());
    let text = Some(f.text).filter(|t| !t.trim().is_empty());
    match state
        .cp
        .answer_question(&s.principal(), &id, choice, text)
        .await
    {
        Ok(_) => Ok(see_other(&format!("/questions/{id}?done=answered"))),
        Err(e) => {
            let (status, message) = refusal_on_form(Problem::from(e))?;
            render(&state, &s, &id, status, Some(message), None).await
        }
    }
}
