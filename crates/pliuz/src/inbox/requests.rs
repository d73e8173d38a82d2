//! The live inbox, the request page and the decisions made from it. Every
//! decision goes through `ControlPlane::decide`, exactly like the API, so
//! authorization, audit entries and notifications are the same.

use super::pages::{
    ago, expires_text, fmt_time, layout, page, pretty, see_other, status_badge, time_el, truncate,
    value_text, Nav, WebError, WebResult,
};
use super::session::{CsrfForm, Session, Viewer};
use crate::approval::{Approval, DecisionKind, Status};
use crate::auth::Principal;
use crate::http::error::Problem;
use crate::http::AppState;
use crate::notify::ApprovalChanged;
use crate::service::{review_digest, schema_errors, DecisionInput};
use crate::store::{ApprovalFilter, StoredEntry};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::convert::Infallible;

const PAGE_SIZE: u32 = 25;

/// The policies whose requests this person sees (`None`: all of them).
pub fn scope(state: &AppState, p: &Principal) -> Option<Vec<String>> {
    if p.sees_everything() {
        None
    } else {
        Some(state.cp.policies_for(p))
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct InboxQuery {
    policy: Option<String>,
    agent: Option<String>,
    tool: Option<String>,
    order: Option<String>,
    cursor: Option<String>,
}

impl InboxQuery {
    fn clean(self) -> InboxQuery {
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

    fn filter(&self, scope: Option<Vec<String>>) -> ApprovalFilter {
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

fn row(a: &Approval, can_decide: bool, now: i64) -> Markup {
    html! {
        li.item data-id=(a.id) {
            a.item-link href={ "/requests/" (a.id) } {
                div.item-top {
                    span.tool { (a.tool_name) }
                    span.badge.policy { (a.policy) }
                    @if !can_decide { span.badge.viewonly { "view only" } }
                    @if !a.votes.is_empty() {
                        span.badge.votes { (a.votes.len()) " of " (a.required_approvals) " approvals" }
                    }
                }
                div.item-args { (args_summary(a.args_under_review())) }
                div.item-meta {
                    span { "from " strong { (a.agent) } }
                    @if let Some(o) = &a.originator { span { "for " (o) } }
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
    let page_items = state.cp.store.list_approvals(&f).await?;
    let total = state.cp.store.count_approvals(&base).await?;
    let policies: Vec<String> = match &scope {
        Some(ps) => ps.clone(),
        None => state.cp.policies.iter().map(|p| p.name.clone()).collect(),
    };
    let mut per_policy = Vec::new();
    for name in &policies {
        let n = state
            .cp
            .store
            .count_approvals(&ApprovalFilter {
                status: Some(Status::Pending),
                policy: Some(name.clone()),
                ..Default::default()
            })
            .await?;
        per_policy.push((name.clone(), n));
    }
    let now = crate::store::now_millis();
    let first = q.cursor.is_none();
    let more = page_items.next.is_some();
    let live = format!("/inbox/events?{}", q.to_query(None));
    let decides_nothing = state.cp.policies_for(&p).is_empty();
    let filtered = q.policy.is_some() || q.agent.is_some() || q.tool.is_some();
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

struct Live {
    state: AppState,
    principal: Principal,
    scope: Option<Vec<String>>,
    query: InboxQuery,
    rx: tokio::sync::broadcast::Receiver<ApprovalChanged>,
    ends_at: tokio::time::Instant,
    /// The session behind the stream, re-checked on every event and every
    /// `SESSION_RECHECK`: log-out, `users disable` or a role change end it.
    session: Session,
    recheck: tokio::time::Interval,
}

/// How often an open live stream re-checks its session when nothing happens.
const SESSION_RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

impl Live {
    async fn session_valid(&self) -> bool {
        crate::http::session::session_still_valid(
            &self.state,
            &self.session.token_hash,
            &self.session.user,
        )
        .await
    }

    async fn count(&self) -> i64 {
        self.state
            .cp
            .store
            .count_approvals(&self.query.filter(self.scope.clone()))
            .await
            .unwrap_or(-1)
    }

    /// The event this person should get for a change, if any: only
    /// requests they can see, only those matching their filters.
    async fn event_for(&self, c: &ApprovalChanged) -> Option<Event> {
        if let Some(ps) = &self.scope {
            if !ps.contains(&c.policy) {
                return None;
            }
        }
        if self.query.policy.as_ref().is_some_and(|p| *p != c.policy) {
            return None;
        }
        if c.status == Status::Pending {
            let a = self.state.cp.store.get_approval(&c.id).await.ok()??;
            if a.status != Status::Pending || !self.state.cp.can_see(&self.principal, &a) {
                return None;
            }
            if self.query.agent.as_ref().is_some_and(|x| *x != a.agent)
                || self.query.tool.as_ref().is_some_and(|x| *x != a.tool_name)
            {
                return None;
            }
            let html = row(
                &a,
                self.state.cp.may_decide(&self.principal, &a.policy),
                crate::store::now_millis(),
            )
            .into_string();
            // The request page compares the digest with the one it shows.
            let data = json!({"id": a.id, "html": html, "args_digest": review_digest(&a), "count": self.count().await});
            Some(Event::default().event("add").data(data.to_string()))
        } else {
            let data = json!({"id": c.id, "status": c.status, "count": self.count().await});
            Some(Event::default().event("remove").data(data.to_string()))
        }
    }
}

/// Server-sent events for the open inbox (and request pages): `add` with
/// the rendered row of a new request, `remove` when one is settled,
/// `reload` when events were missed. Ends with the session or at shutdown.
pub async fn events(
    State(state): State<AppState>,
    Viewer(s): Viewer,
    Query(q): Query<InboxQuery>,
) -> Response {
    let principal = s.principal();
    let left_ms = (s.expires_at - crate::store::now_millis()).max(0);
    let mut recheck = tokio::time::interval_at(
        tokio::time::Instant::now() + SESSION_RECHECK,
        SESSION_RECHECK,
    );
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let live = Live {
        session: s.clone(),
        recheck,
        scope: scope(&state, &principal),
        rx: state.cp.notifier.subscribe(),
        state: state.clone(),
        principal,
        query: q.clean(),
        ends_at: tokio::time::Instant::now()
            + std::time::Duration::from_millis(u64::try_from(left_ms).unwrap_or(0)),
    };
    let shutdown = state.extras.shutdown.clone();
    let hello = futures::stream::once(async {
        Ok::<_, Infallible>(
            Event::default()
                .event("hello")
                .data("{}")
                .retry(std::time::Duration::from_secs(3)),
        )
    });
    let changes = futures::stream::unfold((live, shutdown), |(mut live, shutdown)| async move {
        loop {
            let next = tokio::select! {
                r = live.rx.recv() => r,
                _ = async {
                    match &shutdown {
                        Some(s) => s.wait().await,
                        None => std::future::pending::<()>().await,
                    }
                } => return None,
                _ = tokio::time::sleep_until(live.ends_at) => return None,
                _ = live.recheck.tick() => {
                    if !live.session_valid().await {
                        return None;
                    }
                    continue;
                }
            };
            // Nothing more goes out on a session that has ended.
            if !live.session_valid().await {
                return None;
            }
            match next {
                Ok(change) => {
                    if let Some(ev) = live.event_for(&change).await {
                        return Some((Ok::<_, Infallible>(ev), (live, shutdown)));
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    return Some((
                        Ok(Event::default().event("reload").data("{}")),
                        (live, shutdown),
                    ));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    use futures::StreamExt;
    Sse::new(hello.chain(changes))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Messages shown on the request page after an action.
#[derive(Default)]
struct Feedback {
    notice: Option<String>,
    error: Option<String>,
    edit_text: Option<String>,
    edit_errors: Vec<String>,
    reason: Option<String>,
    /// The digest the decider reviewed, carried through re-rendered forms
    /// (`None`: the arguments shown now).
    reviewed_digest: Option<String>,
}

const ARGS_CHANGED: &str = "The arguments changed while you were looking at them: an approver edited them. Nothing was decided. Review the arguments as they are now, below, and decide again.";

struct Abilities {
    approve: bool,
    reject: bool,
    edit: bool,
    why_not: Option<String>,
}

fn abilities(state: &AppState, s: &Session, a: &Approval) -> Abilities {
    let none = |why: Option<String>| Abilities {
        approve: false,
        reject: false,
        edit: false,
        why_not: why,
    };
    if a.status != Status::Pending {
        return none(None);
    }
    let p = s.principal();
    if !state.cp.may_decide(&p, &a.policy) {
        return none(Some(format!(
            "You can view this request, but you are not an approver of the policy '{}', so you cannot decide it.",
            a.policy
        )));
    }
    let actor = s.actor();
    let originator = a.is_originated_by(&actor);
    let voted = a.has_voted(&actor);
    // The same rules `decide` applies, so a button shown is a button that works.
    let permitted = |k| a.permitted(&actor, k).is_ok();
    let out = Abilities {
        approve: permitted(DecisionKind::Approve),
        reject: permitted(DecisionKind::Reject),
        edit: permitted(DecisionKind::Edit),
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

fn args_table(args: &Map<String, Value>) -> Markup {
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

fn context_view(ctx: &Value) -> Markup {
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
fn audit_view(entries: &[StoredEntry]) -> Markup {
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

fn facts(a: &Approval, now: i64) -> Markup {
    html! {
        dl.facts {
            div { dt { "Tool" } dd { code { (a.tool_name) } } }
            div { dt { "Agent" } dd { (a.agent) } }
            div { dt { "Policy" } dd { (a.policy) } }
            div { dt { "Originator" } dd { (a.originator.clone().unwrap_or_else(|| "—".into())) } }
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
            @if let Some(b) = a.execute_before() { div { dt { "Run before" } dd { (time_el(b, &fmt_time(b))) } } }
            @if let Some(c) = &a.call_id { div { dt { "Call" } dd { code { (c) } } } }
            @if let Some(c) = &a.session_id { div { dt { "Session" } dd { code { (c) } } } }
        }
    }
}

fn request_page(
    state: &AppState,
    s: &Session,
    a: &Approval,
    entries: &[StoredEntry],
    fb: Feedback,
) -> Markup {
    let now = crate::store::now_millis();
    let can = abilities(state, s, a);
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
                    h1 { code.toolname { (a.tool_name) } " " (status_badge(a.status)) }
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
                                pre { (pretty(&Value::Object(a.tool_args.clone()))) }
                            }
                        }
                    }

                    @if a.status == Status::Pending && (can.approve || can.reject || can.edit) {
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
                                        p.help { "The agent runs " code { (a.tool_name) } " with the arguments shown." }
                                    }
                                }
                                @if can.reject {
                                    form.reject-form method="post" action={ "/requests/" (a.id) "/reject" } {
                                        input type="hidden" name="csrf" value=(s.csrf);
                                        input type="hidden" name="args_digest" value=(form_digest);
                                        div.field {
                                            label for="reason" { "Reason for rejecting" }
                                            textarea #reason name="reason" rows="3" maxlength="2000" required aria-describedby="reason-help" { (fb.reason.clone().unwrap_or_default()) }
                                            p.help #reason-help { "The agent's model receives this reason, so say what it should do instead." }
                                        }
                                        button.reject #reject type="submit" { "Reject" }
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
                                    @if let Some(schema) = &a.tool_schema {
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
                                div { dt { "By" } dd { (d.by) } }
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
                    @if let Some(ctx) = &a.context_messages {
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
        &format!("{} request", a.tool_name),
        Some(s),
        Nav::Inbox,
        body,
    )
}

#[derive(Debug, Deserialize, Default)]
pub struct ShowQuery {
    done: Option<String>,
}

async fn render(
    state: &AppState,
    s: &Session,
    id: &str,
    status: StatusCode,
    fb: Feedback,
) -> WebResult {
    let a = state.cp.get_for(&s.principal(), id).await?;
    let entries = state.cp.store.audit_entries_for(id).await?;
    Ok(page(status, request_page(state, s, &a, &entries, fb)))
}

pub async fn show(
    State(state): State<AppState>,
    Viewer(s): Viewer,
    super::extract::WebPath(id): super::extract::WebPath,
    Query(q): Query<ShowQuery>,
) -> WebResult {
    let notice = match q.done.as_deref() {
        Some("approved") => Some("Approved. The agent has been told and will run the tool."),
        Some("voted") => Some("Your approval is recorded. The request waits for more approvals."),
        Some("rejected") => Some("Rejected. The agent's model receives your reason."),
        Some("edited") => {
            Some("Approved with your changes. The agent runs the tool with the edited arguments.")
        }
        _ => None,
    };
    render(
        &state,
        &s,
        &id,
        StatusCode::OK,
        Feedback {
            notice: notice.map(str::to_owned),
            ..Default::default()
        },
    )
    .await
}

async fn decide(
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
                _ => "voted",
            };
            Ok(see_other(&format!("/requests/{id}?done={done}")))
        }
        Err(e) => {
            let p = Problem::from(e);
            if p.status == 404 {
                return Err(p.into());
            }
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
                        ..Default::default()
                    },
                )
                .await;
            }
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
            let WebError::Page { message, .. } = WebError::from(p) else {
                return Err(WebError::forbidden("not allowed"));
            };
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
    let Some(reason) = non_empty(Some(f.reason)) else {
        return render(
            &state,
            &s,
            &id,
            StatusCode::UNPROCESSABLE_ENTITY,
            Feedback {
                error: Some("Write a reason for rejecting: the agent's model receives it.".into()),
                ..Default::default()
            },
        )
        .await;
    };
    if reason.chars().count() > 2000 {
        return render(
            &state,
            &s,
            &id,
            StatusCode::UNPROCESSABLE_ENTITY,
            Feedback {
                error: Some("The reason is too long: at most 2000 characters.".into()),
                reason: Some(reason),
                ..Default::default()
            },
        )
        .await;
    }
    let input = DecisionInput {
        kind: DecisionKind::Reject,
        reason: Some(reason.clone()),
        final_args: None,
        args_digest: f.args_digest,
    };
    decide(
        &state,
        &s,
        &id,
        input,
        Feedback {
            reason: Some(reason),
            ..Default::default()
        },
    )
    .await
}

/// One difference between the original and the edited arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Changed {
        path: String,
        before: Value,
        after: Value,
    },
    Added {
        path: String,
        after: Value,
    },
    Removed {
        path: String,
        before: Value,
    },
}

fn join_path(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_owned()
    } else {
        format!("{base}.{key}")
    }
}

/// Field-by-field differences (objects are compared key by key, anything
/// else as a whole).
pub fn diff(before: &Value, after: &Value, path: &str, out: &mut Vec<Change>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, bv) in b {
                match a.get(k) {
                    Some(av) => diff(bv, av, &join_path(path, k), out),
                    None => out.push(Change::Removed {
                        path: join_path(path, k),
                        before: bv.clone(),
                    }),
                }
            }
            for (k, av) in a {
                if !b.contains_key(k) {
                    out.push(Change::Added {
                        path: join_path(path, k),
                        after: av.clone(),
                    });
                }
            }
        }
        (b, a) if b != a => out.push(Change::Changed {
            path: path.to_owned(),
            before: b.clone(),
            after: a.clone(),
        }),
        _ => {}
    }
}

fn json_cell(v: &Value) -> Markup {
    html! {
        @match v {
            Value::String(s) => span.value { (s) },
            other => code.value { (serde_json::to_string(other).unwrap_or_default()) },
        }
    }
}

fn preview_page(
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
                p.muted { "To " code { (a.tool_name) } " from agent " strong { (a.agent) } ". Nothing is decided until you approve." }
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
    let args = match check_edit(&f.final_args, a.tool_schema.as_ref()) {
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

    #[test]
    fn diff_reports_each_field() {
        let before =
            json!({"order": "A-1", "amount": 5000, "meta": {"note": "x", "keep": 1}, "gone": true});
        let after =
            json!({"order": "A-1", "amount": 2500, "meta": {"note": "y", "keep": 1}, "new": [1]});
        let mut out = Vec::new();
        diff(&before, &after, "", &mut out);
        assert_eq!(
            out,
            vec![
                Change::Changed {
                    path: "amount".into(),
                    before: json!(5000),
                    after: json!(2500)
                },
                Change::Changed {
                    path: "meta.note".into(),
                    before: json!("x"),
                    after: json!("y")
                },
                Change::Removed {
                    path: "gone".into(),
                    before: json!(true)
                },
                Change::Added {
                    path: "new".into(),
                    after: json!([1])
                },
            ]
        );
    }

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

    #[test]
    fn agent_text_is_escaped() {
        let mut args = Map::new();
        args.insert("note".into(), json!("<script>window.__xss=1</script>"));
        let html = args_table(&args).into_string();
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
    }
}
