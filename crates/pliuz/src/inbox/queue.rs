//! The inbox queue: the list of requests a person may see, filtered and
//! paged, with one row per request.

use super::pages::{ago, expires_text, layout, page, time_el, truncate, Nav, WebResult};
use super::session::Viewer;
use crate::approval::{Approval, Status};
use crate::auth::Principal;
use crate::http::AppState;
use crate::service::ApprovalFilter;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{Map, Value};

pub(super) const PAGE_SIZE: u32 = 25;

/// The policies whose requests this person sees (`None`: all of them).
pub fn scope(state: &AppState, p: &Principal) -> Option<Vec<String>> {
    if p.sees_everything() {
        None
    } else {
        Some(state.cp.policies_for(p))
    }
}

pub(super) fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct InboxQuery {
    pub(super) policy: Option<String>,
    pub(super) agent: Option<String>,
    pub(super) tool: Option<String>,
    pub(super) order: Option<String>,
    pub(super) cursor: Option<String>,
}

impl InboxQuery {
    pub(super) fn clean(self) -> InboxQuery {
        InboxQuery {
            policy: non_empty(self.policy),
            agent: non_empty(self.agent),
            tool: non_empty(self.tool),
            order: non_empty(self.order),
            cursor: non_empty(self.cursor),
        }
    }

    fn oldest(&self) -> bool {
        self.order.as_deref() == Some("oldest")
    }

    pub(super) fn filter(&self, scope: Option<Vec<String>>) -> ApprovalFilter {
        ApprovalFilter {
            status: Some(Status::Pending),
            policy: self.policy.clone(),
            agent: self.agent.clone(),
            tool: self.tool.clone(),
            policies_in: scope,
            oldest_first: self.oldest(),
            limit: PAGE_SIZE,
            ..Default::default()
        }
    }

    /// The query string for the same filters, optionally at `cursor`.
    fn to_query(&self, cursor: Option<&str>) -> String {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for (k, v) in [
            ("policy", &self.policy),
            ("agent", &self.agent),
            ("tool", &self.tool),
            ("order", &self.order),
        ] {
            if let Some(v) = v {
                pairs.push((k, v));
            }
        }
        if let Some(c) = cursor {
            pairs.push(("cursor", c));
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// A short "key: value" summary of the arguments for a list row.
pub fn args_summary(args: &Map<String, Value>) -> String {
    let mut parts: Vec<String> = args
        .iter()
        .take(4)
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{k}: {}", truncate(&v, 40))
        })
        .collect();
    if args.len() > 4 {
        parts.push(format!("+{} more", args.len() - 4));
    }
    if parts.is_empty() {
        "no arguments".into()
    } else {
        parts.join(" · ")
    }
}

pub(super) fn row(a: &Approval, can_decide: bool, now: i64) -> Markup {
    html! {
        li.item data-id=(a.id) {
            a.item-link href={ "/requests/" (a.id) } {
                div.item-top {
                    span.tool { (a.call.tool_name) }
                    span.badge.policy { (a.policy) }
                    @if !can_decide { span.badge.viewonly { "view only" } }
                    @if !a.votes.is_empty() {
                        span.badge.votes { (a.votes.len()) " of " (a.required_approvals) " approvals" }
                    }
                }
                div.item-args { (args_summary(a.args_under_review())) }
                div.item-meta {
                    span { "from " strong { (a.agent) } }
                    @if let Some(o) = &a.call.originator { span { "for " (o) } }
                    span { (time_el(a.created_at, &ago(a.created_at, now))) }
                    span.expires data-expires=(a.expires_at) { (expires_text(a.expires_at, now)) }
                }
            }
        }
    }
}

pub async fn inbox(
    State(state): State<AppState>,
    Viewer(s): Viewer,
    Query(q): Query<InboxQuery>,
) -> WebResult {
    let q = q.clean();
    let p = s.principal();
    let scope = scope(&state, &p);
    let base = q.filter(scope.clone());
    let mut f = base.clone();
    if q.oldest() {
        f.after_id = q.cursor.clone();
    } else {
        f.before_id = q.cursor.clone();
    }
    let page_items = state.cp.list_approvals(&f).await?;
    let total = state.cp.count_approvals(&base).await?;
    let policies: Vec<String> = match &scope {
        Some(ps) => ps.clone(),
        None => state.cp.policies().iter().map(|p| p.name.clone()).collect(),
    };
    let mut per_policy = Vec::new();
    for name in &policies {
        let n = state
            .cp
            .count_approvals(&ApprovalFilter {
                status: Some(Status::Pending),
                policy: Some(name.clone()),
                ..Default::default()
            })
            .await?;
        per_policy.push((name.clone(), n));
    }
    let now = crate::service::now_millis();
    let first = q.cursor.is_none();
    let more = page_items.next.is_some();
    let live = format!("/inbox/events?{}", q.to_query(None));
    let escalated = state.cp.escalated_to(&p).await?;
    let decides_nothing = state.cp.policies_for(&p).is_empty() && escalated.is_empty();
    let filtered = q.policy.is_some() || q.agent.is_some() || q.tool.is_some();
    let questions = super::questions::pending_section(&state, &s).await?;
    let body = html! {
        div.page-head {
            div {
                h1 { "Inbox" }
                p.muted {
                    span #pending-count { (total) } " "
                    span #pending-noun { @if total == 1 { "request" } @else { "requests" } }
                    " waiting"
                    @if filtered { " (filtered)" }
                }
            }
            p #live-status.live aria-live="polite" { "Connecting…" }
        }
        @if decides_nothing {
            p.notice { "You are not an approver of any policy, so you can look at requests but not decide them." }
        }
        (questions)
        form.filters method="get" action="/inbox" aria-label="Filter requests" {
            div.field {
                label for="f-policy" { "Policy" }
                select #f-policy name="policy" {
                    option value="" { "All policies" }
                    @for (name, n) in &per_policy {
                        option value=(name) selected[q.policy.as_deref() == Some(name.as_str())] { (name) " (" (n) ")" }
                    }
                }
            }
            div.field {
                label for="f-agent" { "Agent" }
                input #f-agent type="text" name="agent" value=(q.agent.clone().unwrap_or_default()) placeholder="any";
            }
            div.field {
                label for="f-tool" { "Tool" }
                input #f-tool type="text" name="tool" value=(q.tool.clone().unwrap_or_default()) placeholder="any";
            }
            div.field {
                label for="f-order" { "Order" }
                select #f-order name="order" {
                    option value="newest" selected[!q.oldest()] { "Newest first" }
                    option value="oldest" selected[q.oldest()] { "Oldest first" }
                }
            }
            div.field.buttons {
                button type="submit" { "Apply" }
                @if filtered || q.oldest() { a.button.subtle href="/inbox" { "Clear" } }
            }
        }
        @if !escalated.is_empty() {
            h2 { "Escalated to you" }
            p.muted { "Nobody decided these in time, so their policies brought you in: you may decide them too." }
            ul.queue aria-label="Requests escalated to you" {
                @for a in &escalated {
                    (row(a, true, now))
                }
            }
        }
        ul #queue.queue data-live=(live) data-order=(if q.oldest() { "oldest" } else { "newest" })
            data-first=(first) data-more=(more) aria-label="Pending requests" {
            @for a in &page_items.items {
                (row(a, state.cp.may_decide(&p, &a.policy), now))
            }
        }
        p #queue-empty.empty hidden[!page_items.items.is_empty()] {
            "Nothing is waiting for you. New requests appear here as they arrive."
        }
        nav.pager aria-label="Pages" {
            @if !first { a.button.subtle href={ "/inbox?" (q.to_query(None)) } { "← First page" } }
            @if let Some(next) = &page_items.next {
                a.button.subtle href={ "/inbox?" (q.to_query(Some(next))) } { "More →" }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout("Inbox", Some(&s), Nav::Inbox, body),
    ))
}
