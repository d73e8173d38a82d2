//! Decided requests: who decided what, when, and how running the tool went;
//! with filters and exports (CSV with formula-injection escaping, JSONL).

use super::csv;
use super::pages::{fmt_time, layout, page, status_badge, time_el, truncate, Nav, WebResult};
use super::queue::{args_summary, scope};
use super::session::Viewer;
use crate::api::approvals::ApprovalView;
use crate::approval::{Approval, Status};
use crate::http::AppState;
use crate::service::{format_time, ApprovalFilter, StoreError};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use serde_json::Value;

const PAGE_SIZE: u32 = 50;
const EXPORT_MAX: usize = 100_000;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct HistoryQuery {
    status: Option<String>,
    policy: Option<String>,
    agent: Option<String>,
    tool: Option<String>,
    cursor: Option<String>,
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

impl HistoryQuery {
    fn status(&self) -> Option<Status> {
        non_empty(&self.status)
            .and_then(|s| Status::parse(&s))
            .filter(|s| *s != Status::Pending)
    }

    fn to_query(&self, cursor: Option<&str>) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(s) = self.status() {
            pairs.push(("status", s.as_str().to_owned()));
        }
        for (k, v) in [
            ("policy", &self.policy),
            ("agent", &self.agent),
            ("tool", &self.tool),
        ] {
            if let Some(v) = non_empty(v) {
                pairs.push((k, v));
            }
        }
        if let Some(c) = cursor {
            pairs.push(("cursor", c.to_owned()));
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// Up to `limit` settled requests older than `cursor`, newest first, and
/// the cursor to continue from.
async fn settled(
    state: &AppState,
    scope: Option<Vec<String>>,
    q: &HistoryQuery,
    cursor: Option<String>,
    limit: usize,
) -> Result<(Vec<Approval>, Option<String>), StoreError> {
    let mut f = ApprovalFilter {
        status: q.status(),
        policy: non_empty(&q.policy),
        agent: non_empty(&q.agent),
        tool: non_empty(&q.tool),
        policies_in: scope,
        before_id: cursor,
        limit: 200,
        ..Default::default()
    };
    let mut out = Vec::new();
    loop {
        let page = state.cp.list_approvals(&f).await?;
        let n = page.items.len();
        for (i, a) in page.items.into_iter().enumerate() {
            if a.status == Status::Pending {
                continue;
            }
            let id = a.id.clone();
            out.push(a);
            if out.len() == limit {
                let more = i + 1 < n || page.next.is_some();
                return Ok((out, more.then_some(id)));
            }
        }
        match page.next {
            Some(next) => f.before_id = Some(next),
            None => return Ok((out, None)),
        }
    }
}

fn decided_at(a: &Approval) -> i64 {
    a.settlement.as_ref().map(|s| s.at).unwrap_or(a.created_at)
}

pub async fn page_handler(
    state: AppState,
    s: super::session::Session,
    q: HistoryQuery,
) -> WebResult {
    let p = s.principal();
    let scope = scope(&state, &p);
    let (items, next) =
        settled(&state, scope, &q, non_empty(&q.cursor), PAGE_SIZE as usize).await?;
    let status = q.status();
    let policies: Vec<String> = match super::queue::scope(&state, &p) {
        Some(ps) => ps,
        None => state.cp.policies().iter().map(|p| p.name.clone()).collect(),
    };
    let filters = q.to_query(None);
    let body = html! {
        div.page-head {
            div {
                h1 { "History" }
                p.muted { "Requests that were decided, expired or cancelled, newest first." }
            }
            div.row {
                a.button.subtle href={ "/history/export.csv?" (filters) } download { "Export CSV" }
                a.button.subtle href={ "/history/export.jsonl?" (filters) } download { "Export JSONL" }
            }
        }
        form.filters method="get" action="/history" aria-label="Filter history" {
            div.field {
                label for="h-status" { "Outcome" }
                select #h-status name="status" {
                    option value="" { "All outcomes" }
                    @for st in [Status::Approved, Status::Executing, Status::Executed, Status::Rejected, Status::Responded, Status::Expired, Status::Cancelled] {
                        option value=(st.as_str()) selected[status == Some(st)] { (st.as_str()) }
                    }
                }
            }
            div.field {
                label for="h-policy" { "Policy" }
                select #h-policy name="policy" {
                    option value="" { "All policies" }
                    @for name in &policies {
                        option value=(name) selected[non_empty(&q.policy).as_deref() == Some(name.as_str())] { (name) }
                    }
                }
            }
            div.field {
                label for="h-agent" { "Agent" }
                input #h-agent type="text" name="agent" value=(non_empty(&q.agent).unwrap_or_default()) placeholder="any";
            }
            div.field {
                label for="h-tool" { "Tool" }
                input #h-tool type="text" name="tool" value=(non_empty(&q.tool).unwrap_or_default()) placeholder="any";
            }
            div.field.buttons {
                button type="submit" { "Apply" }
                @if !filters.is_empty() { a.button.subtle href="/history" { "Clear" } }
            }
        }
        @if items.is_empty() {
            p.empty { "Nothing here yet." }
        } @else {
            div.table-wrap {
                table.history {
                    thead {
                        tr {
                            th scope="col" { "Decided" }
                            th scope="col" { "Request" }
                            th scope="col" { "Outcome" }
                            th scope="col" { "By" }
                            th scope="col" { "Reason" }
                            th scope="col" { "Execution" }
                        }
                    }
                    tbody {
                        @for a in &items {
                            tr {
                                td.nowrap { (time_el(decided_at(a), &fmt_time(decided_at(a)))) }
                                td {
                                    a href={ "/requests/" (a.id) } { code { (a.call.tool_name) } }
                                    div.muted.small { (a.policy) " · " (a.agent) }
                                    div.muted.small { (truncate(&args_summary(a.final_args.as_ref().unwrap_or(&a.call.tool_args)), 90)) }
                                }
                                td { (status_badge(a.status)) @if a.edited { " " span.badge { "edited" } } }
                                td { (a.settlement.as_ref().map(|s| s.by.clone()).unwrap_or_default()) }
                                td { (truncate(&a.settlement.as_ref().and_then(|s| s.reason.clone()).unwrap_or_default(), 120)) }
                                td {
                                    @if let Some(e) = &a.execution {
                                        (e.outcome.as_str())
                                        @if let Some(l) = e.latency_ms { span.muted { " · " (l) " ms" } }
                                        @if let Some(x) = &e.output_excerpt { div.muted.small { (truncate(x, 80)) } }
                                    } @else if a.status == Status::Executing {
                                        span.outcome-unknown { "outcome unknown — check before retrying" }
                                    } @else { span.muted { "—" } }
                                }
                            }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if non_empty(&q.cursor).is_some() { a.button.subtle href={ "/history?" (filters) } { "← Newest" } }
            @if let Some(n) = &next { a.button.subtle href={ "/history?" (q.to_query(Some(n))) } { "Older →" } }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout("History", Some(&s), Nav::History, body),
    ))
}

pub async fn index(
    State(state): State<AppState>,
    Viewer(s): Viewer,
    Query(q): Query<HistoryQuery>,
) -> WebResult {
    page_handler(state, s, q).await
}

async fn all_settled(
    state: &AppState,
    s: &super::session::Session,
    q: &HistoryQuery,
) -> Result<Vec<Approval>, StoreError> {
    let scope = scope(state, &s.principal());
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let (items, next) = settled(state, scope.clone(), q, cursor, 500).await?;
        out.extend(items);
        if out.len() >= EXPORT_MAX || next.is_none() {
            out.truncate(EXPORT_MAX);
            return Ok(out);
        }
        cursor = next;
    }
}

fn json_text(v: Option<&serde_json::Map<String, Value>>) -> String {
    v.map(|m| serde_json::to_string(m).unwrap_or_default())
        .unwrap_or_default()
}

/// The CSV export: one row per request, every cell escaped.
pub fn to_csv(items: &[Approval]) -> String {
    let mut out = csv::row([
        "id",
        "created_at",
        "decided_at",
        "status",
        "tool_name",
        "policy",
        "agent",
        "originator",
        "decided_by",
        "reason",
        "edited",
        "tool_args",
        "final_args",
        "execution_outcome",
        "execution_latency_ms",
        "execution_output_excerpt",
    ]);
    for a in items {
        let s = a.settlement.as_ref();
        let e = a.execution.as_ref();
        out.push_str(&csv::row([
            a.id.clone(),
            format_time(a.created_at),
            s.map(|s| format_time(s.at)).unwrap_or_default(),
            a.status.as_str().to_owned(),
            a.call.tool_name.clone(),
            a.policy.clone(),
            a.agent.clone(),
            a.call.originator.clone().unwrap_or_default(),
            s.map(|s| s.by.clone()).unwrap_or_default(),
            s.and_then(|s| s.reason.clone()).unwrap_or_default(),
            a.edited.to_string(),
            json_text(Some(&a.call.tool_args)),
            json_text(a.final_args.as_ref()),
            e.map(|e| e.outcome.as_str().to_owned()).unwrap_or_default(),
            e.and_then(|e| e.latency_ms)
                .map(|l| l.to_string())
                .unwrap_or_default(),
            e.and_then(|e| e.output_excerpt.clone()).unwrap_or_default(),
        ]));
    }
    out
}

fn download(content_type: &str, name: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

pub async fn export_csv(
    State(state): State<AppState>,
    Viewer(s): Viewer,
    Query(q): Query<HistoryQuery>,
) -> WebResult {
    let items = all_settled(&state, &s, &q).await?;
    Ok(download(
        "text/csv; charset=utf-8",
        "pliuz-history.csv",
        to_csv(&items),
    ))
}

pub async fn export_jsonl(
    State(state): State<AppState>,
    Viewer(s): Viewer,
    Query(q): Query<HistoryQuery>,
) -> WebResult {
    let items = all_settled(&state, &s, &q).await?;
    let mut out = String::new();
    for a in items {
        out.push_str(&serde_json::to_string(&ApprovalView::new(a, false)).unwrap_or_default());
        out.push('\n');
    }
    Ok(download(
        "application/jsonl; charset=utf-8",
        "pliuz-history.jsonl",
        out,
    ))
}
