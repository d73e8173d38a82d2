//! `/overview`: how the approval process is doing, at a glance — for
//! admins and auditors over every policy, for approvers over the policies
//! they decide. Each chart is plain SVG drawn here (no script, so it works
//! under the inbox's CSP) with its table beside it and a CSV download.
//!
//! Definitions (also in docs/inbox.md):
//! * waiting: requests pending now, oldest first; age = now − created_at.
//! * time to decision: settled_at − created_at of requests approved or
//!   rejected *by a person* and settled in the period; auto-decisions,
//!   expiries and cancellations are left out. Median and p90 use the
//!   nearest-rank method.
//! * volume per day: requests settled that UTC day, by outcome.
//! * decisions per approver: requests whose deciding approval or rejection
//!   a person gave in the period.
//! * expiry rate: expired ÷ all requests settled in the period.

use super::pages::{layout, page, span_words, Nav, WebError, WebResult};
use super::session::Viewer;
use crate::http::AppState;
use crate::service::{SettledRow, WaitingRow, SETTLED_LIMIT};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::BTreeMap;

const DAY_MS: i64 = 86_400_000;
const MAX_DAYS: i64 = 90;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    ApprovedByPerson,
    AutoApproved,
    Rejected,
    Expired,
    Cancelled,
}

impl Outcome {
    const ALL: [Outcome; 5] = [
        Outcome::ApprovedByPerson,
        Outcome::AutoApproved,
        Outcome::Rejected,
        Outcome::Expired,
        Outcome::Cancelled,
    ];

    fn of(r: &SettledRow) -> Option<Outcome> {
        match r.settled_status.as_str() {
            "approved" if r.settled_by.starts_with("user:") => Some(Outcome::ApprovedByPerson),
            "approved" => Some(Outcome::AutoApproved),
            "rejected" => Some(Outcome::Rejected),
            "expired" => Some(Outcome::Expired),
            "cancelled" => Some(Outcome::Cancelled),
            _ => None,
        }
    }

    fn key(self) -> &'static str {
        match self {
            Outcome::ApprovedByPerson => "approved_by_person",
            Outcome::AutoApproved => "auto_approved",
            Outcome::Rejected => "rejected",
            Outcome::Expired => "expired",
            Outcome::Cancelled => "cancelled",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Outcome::ApprovedByPerson => "Approved by a person",
            Outcome::AutoApproved => "Auto-approved",
            Outcome::Rejected => "Rejected",
            Outcome::Expired => "Expired",
            Outcome::Cancelled => "Cancelled",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Outcome::ApprovedByPerson => "#1f7a4d",
            Outcome::AutoApproved => "#7bc49a",
            Outcome::Rejected => "#b3261e",
            Outcome::Expired => "#c77700",
            Outcome::Cancelled => "#7a7a7a",
        }
    }
}

/// Time to decision of one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionTime {
    pub policy: String,
    pub count: usize,
    pub median_ms: i64,
    pub p90_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApproverCount {
    pub approved: u64,
    pub rejected: u64,
}

/// Everything the page shows, computed from the rows (no I/O).
#[derive(Debug, Default)]
pub struct Stats {
    pub waiting: Vec<WaitingRow>,
    /// All waiting requests per policy (the list above is capped).
    pub waiting_counts: Vec<(String, i64)>,
    pub decision_times: Vec<DecisionTime>,
    /// UTC day start (ms) -> counts per outcome.
    pub volume: BTreeMap<i64, BTreeMap<Outcome, u64>>,
    pub approvers: BTreeMap<String, ApproverCount>,
    /// policy -> (expired, settled).
    pub expiry: BTreeMap<String, (u64, u64)>,
    pub truncated: bool,
}

/// The nearest-rank percentile (`p` in 1..=100) of sorted values.
pub fn percentile(sorted: &[i64], p: usize) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

pub fn compute(waiting: Vec<WaitingRow>, settled: &[SettledRow], from: i64, to: i64) -> Stats {
    let mut stats = Stats {
        waiting,
        ..Stats::default()
    };
    let mut day = from.div_euclid(DAY_MS) * DAY_MS;
    while day < to {
        stats.volume.insert(day, BTreeMap::new());
        day += DAY_MS;
    }
    let mut times: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in settled {
        let Some(outcome) = Outcome::of(r) else {
            continue;
        };
        let day = r.settled_at.div_euclid(DAY_MS) * DAY_MS;
        *stats
            .volume
            .entry(day)
            .or_default()
            .entry(outcome)
            .or_default() += 1;
        let e = stats.expiry.entry(r.policy.clone()).or_default();
        e.1 += 1;
        if outcome == Outcome::Expired {
            e.0 += 1;
        }
        if let Some(email) = r.settled_by.strip_prefix("user:") {
            if matches!(outcome, Outcome::ApprovedByPerson | Outcome::Rejected) {
                times
                    .entry(r.policy.clone())
                    .or_default()
                    .push((r.settled_at - r.created_at).max(0));
                let a = stats.approvers.entry(email.to_owned()).or_default();
                if outcome == Outcome::Rejected {
                    a.rejected += 1;
                } else {
                    a.approved += 1;
                }
            }
        }
    }
    for (policy, mut v) in times {
        v.sort_unstable();
        stats.decision_times.push(DecisionTime {
            policy,
            count: v.len(),
            median_ms: percentile(&v, 50),
            p90_ms: percentile(&v, 90),
        });
    }
    stats
}

#[derive(Deserialize, Default)]
pub struct OverviewQuery {
    days: Option<String>,
}

impl OverviewQuery {
    fn days(&self) -> i64 {
        self.days
            .as_deref()
            .and_then(|d| d.trim().parse::<i64>().ok())
            .unwrap_or(7)
            .clamp(1, MAX_DAYS)
    }
}

async fn load(state: &AppState, viewer: &Viewer, days: i64) -> WebResult<(Stats, i64)> {
    let p = viewer.0.principal();
    let scope = super::queue::scope(state, &p);
    let now = crate::service::now_millis();
    let from = now - days * DAY_MS;
    let rows = state
        .cp
        .overview_rows(scope.as_deref(), from..now + 1)
        .await?;
    let mut stats = compute(rows.waiting, &rows.settled, from, now + 1);
    stats.truncated = rows.truncated;
    stats.waiting_counts = rows.waiting_counts;
    Ok((stats, now))
}

fn day_label(day: i64) -> String {
    chrono::DateTime::from_timestamp_millis(day)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn secs(ms: i64) -> String {
    format!("{:.1}", ms as f64 / 1000.0)
}

/// A horizontal bar chart: one row per label, one bar per series.
fn hbars(
    title: &str,
    rows: &[(String, Vec<f64>)],
    series: &[(&str, &str)],
    stacked: bool,
) -> Markup {
    let label_w = 150.0;
    let chart_w = 420.0;
    let bar_h = if stacked { 16.0 } else { 10.0 };
    let row_h = if stacked {
        22.0
    } else {
        8.0 + bar_h * series.len() as f64
    };
    // Legend: three entries per line.
    let legend_h = 22.0 + 16.0 * (series.len().saturating_sub(1) / 3) as f64;
    let height = legend_h + row_h * rows.len().max(1) as f64 + 4.0;
    let max = rows
        .iter()
        .map(|(_, v)| {
            if stacked {
                v.iter().sum::<f64>()
            } else {
                v.iter().cloned().fold(0.0, f64::max)
            }
        })
        .fold(0.0, f64::max)
        .max(1.0);
    let scale = chart_w / max;
    html! {
        svg.chart role="img" aria-label=(title) viewBox={ "0 0 " (label_w + chart_w + 60.0) " " (height) } xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            @for (i, (name, colour)) in series.iter().enumerate() {
                @let (lx, ly) = (label_w + (i % 3) as f64 * 140.0, 4.0 + (i / 3) as f64 * 16.0);
                rect x=(lx) y=(ly) width="10" height="10" fill=(colour) {}
                text x=(lx + 14.0) y=(ly + 9.0) font-size="11" { (name) }
            }
            @if rows.is_empty() {
                text x=(label_w) y=(legend_h + 14.0) font-size="12" fill="#666" { "No data in this period." }
            }
            @for (r, (label, values)) in rows.iter().enumerate() {
                @let y0 = legend_h + r as f64 * row_h;
                text x=(label_w - 6.0) y=(y0 + row_h / 2.0 + 4.0) font-size="11" text-anchor="end" { (label) }
                @if stacked {
                    @let starts: Vec<f64> = values.iter().scan(label_w, |x, v| { let s = *x; *x += v * scale; Some(s) }).collect();
                    @for (i, v) in values.iter().enumerate() {
                        rect x=(starts[i]) y=(y0 + 3.0) width=(v * scale) height=(bar_h) fill=(series[i].1) {
                            title { (series[i].0) ": " (v) }
                        }
                    }
                    text x=(label_w + values.iter().sum::<f64>() * scale + 4.0) y=(y0 + 15.0) font-size="11" { (values.iter().sum::<f64>()) }
                } @else {
                    @for (i, v) in values.iter().enumerate() {
                        @let y = y0 + 4.0 + i as f64 * bar_h;
                        rect x=(label_w) y=(y) width=(v * scale) height=(bar_h - 1.0) fill=(series[i].1) {
                            title { (series[i].0) ": " (v) }
                        }
                        text x=(label_w + v * scale + 4.0) y=(y + bar_h - 2.0) font-size="10" { (v) }
                    }
                }
            }
        }
    }
}

fn csv_link(name: &str, days: i64) -> Markup {
    html! { a.button.subtle.small href={ "/overview/" (name) ".csv?days=" (days) } download { "CSV" } }
}

pub async fn index(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<OverviewQuery>,
) -> WebResult {
    let days = q.days();
    let (stats, now) = load(&state, &viewer, days).await?;
    let waiting_rows: Vec<(String, Vec<f64>)> = stats
        .waiting_counts
        .iter()
        .map(|(p, n)| (p.clone(), vec![*n as f64]))
        .collect();
    let waiting_total: i64 = stats.waiting_counts.iter().map(|(_, n)| n).sum();
    let ttd_rows: Vec<(String, Vec<f64>)> = stats
        .decision_times
        .iter()
        .map(|d| {
            (
                d.policy.clone(),
                vec![d.median_ms as f64 / 1000.0, d.p90_ms as f64 / 1000.0],
            )
        })
        .collect();
    let outcome_series: Vec<(&str, &str)> = Outcome::ALL
        .iter()
        .map(|o| (o.label(), o.colour()))
        .collect();
    let volume_rows: Vec<(String, Vec<f64>)> = stats
        .volume
        .iter()
        .map(|(d, m)| {
            (
                day_label(*d),
                Outcome::ALL
                    .iter()
                    .map(|o| *m.get(o).unwrap_or(&0) as f64)
                    .collect(),
            )
        })
        .collect();
    let approver_rows: Vec<(String, Vec<f64>)> = stats
        .approvers
        .iter()
        .map(|(e, c)| (e.clone(), vec![c.approved as f64, c.rejected as f64]))
        .collect();
    let (expired_total, settled_total) = stats
        .expiry
        .values()
        .fold((0u64, 0u64), |(a, b), (e, s)| (a + e, b + s));
    let rate = |e: u64, s: u64| {
        if s == 0 {
            "0.0".to_owned()
        } else {
            format!("{:.1}", e as f64 * 100.0 / s as f64)
        }
    };
    let expiry_rows: Vec<(String, Vec<f64>)> = stats
        .expiry
        .iter()
        .map(|(p, (e, s))| {
            (
                p.clone(),
                vec![if *s == 0 {
                    0.0
                } else {
                    (*e as f64 * 1000.0 / *s as f64).round() / 10.0
                }],
            )
        })
        .collect();
    let body = html! {
        div.page-head {
            div {
                h1 { "Overview" }
                p.muted { @if viewer.0.principal().sees_everything() { "All policies." } @else { "The policies you decide." } " Settled requests of the last " (days) " day" @if days != 1 { "s" } "." }
            }
            form.filters method="get" action="/overview" aria-label="Period" {
                div.field {
                    label for="days" { "Period (days)" }
                    select #days name="days" {
                        @for d in [1i64, 7, 30, 90] {
                            option value=(d) selected[d == days] { (d) }
                        }
                    }
                }
                div.field.buttons { button type="submit" { "Show" } }
            }
        }
        @if stats.truncated {
            p.notice role="status" { "This period holds more than " (SETTLED_LIMIT) " settled requests; the figures cover the first " (SETTLED_LIMIT) ". Choose a shorter period." }
        }
        section.card.overview #waiting {
            div.section-head { h2 { "Waiting now" } (csv_link("waiting", days)) }
            p #waiting-total { strong { (waiting_total) } " waiting" @if (stats.waiting.len() as i64) < waiting_total { "; the " (stats.waiting.len()) " oldest are listed" } "." }
            div.chart-table {
                (hbars("Requests waiting per policy", &waiting_rows, &[("Waiting", "#2a5db0")], false))
                table #waiting-table {
                    thead { tr { th { "Policy" } th { "Request" } th { "Tool" } th.num { "Age" } } }
                    tbody {
                        @for w in &stats.waiting {
                            tr data-policy=(w.policy) {
                                td { (w.policy) }
                                td { a href={ "/requests/" (w.id) } title=(w.id) { "…" (w.id.get(w.id.len().saturating_sub(8)..).unwrap_or(&w.id)) } }
                                td { code { (w.tool_name) } }
                                td.num { (span_words(now - w.created_at)) }
                            }
                        }
                    }
                }
            }
        }
        section.card.overview #decision-time {
            div.section-head { h2 { "Time to decision" } (csv_link("decision-time", days)) }
            p.muted.small { "From the request to the person's approval or rejection that settled it; auto-decisions, expiries and cancellations are not counted. Seconds." }
            div.chart-table {
                (hbars("Median and p90 time to decision per policy, seconds", &ttd_rows, &[("Median", "#2a5db0"), ("p90", "#9bb5e0")], false))
                table #ttd-table {
                    thead { tr { th { "Policy" } th.num { "Decided" } th.num { "Median (s)" } th.num { "p90 (s)" } } }
                    tbody {
                        @for d in &stats.decision_times {
                            tr data-policy=(d.policy) { td { (d.policy) } td.num { (d.count) } td.num { (secs(d.median_ms)) } td.num { (secs(d.p90_ms)) } }
                        }
                    }
                }
            }
        }
        section.card.overview #volume {
            div.section-head { h2 { "Volume per day" } (csv_link("volume", days)) }
            div.chart-table {
                (hbars("Settled requests per day by outcome", &volume_rows, &outcome_series, true))
                table #volume-table {
                    thead { tr { th { "Day (UTC)" } @for o in Outcome::ALL { th.num data-outcome=(o.key()) { (o.label()) } } } }
                    tbody {
                        @for (d, m) in &stats.volume {
                            tr data-day=(day_label(*d)) {
                                td { (day_label(*d)) }
                                @for o in Outcome::ALL { td.num data-outcome=(o.key()) { (m.get(&o).copied().unwrap_or(0)) } }
                            }
                        }
                    }
                }
            }
        }
        section.card.overview #approvers {
            div.section-head { h2 { "Decisions per approver" } (csv_link("approvers", days)) }
            div.chart-table {
                (hbars("Decisions per approver", &approver_rows, &[("Approved", "#1f7a4d"), ("Rejected", "#b3261e")], false))
                table #approvers-table {
                    thead { tr { th { "Approver" } th.num { "Approved" } th.num { "Rejected" } } }
                    tbody {
                        @for (e, c) in &stats.approvers {
                            tr data-approver=(e) { td { (e) } td.num { (c.approved) } td.num { (c.rejected) } }
                        }
                    }
                }
            }
        }
        section.card.overview #expiry {
            div.section-head { h2 { "Expiry rate" } (csv_link("expiry", days)) }
            p #expiry-total { strong { (rate(expired_total, settled_total)) "%" } " of " (settled_total) " settled requests expired unanswered." }
            div.chart-table {
                (hbars("Expiry rate per policy, percent", &expiry_rows, &[("Expired %", "#c77700")], false))
                table #expiry-table {
                    thead { tr { th { "Policy" } th.num { "Expired" } th.num { "Settled" } th.num { "Rate (%)" } } }
                    tbody {
                        @for (p, (e, s)) in &stats.expiry {
                            tr data-policy=(p) { td { (p) } td.num { (e) } td.num { (s) } td.num { (rate(*e, *s)) } }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout("Overview", Some(&viewer.0), Nav::Overview, body),
    ))
}

pub async fn csv(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(q): Query<OverviewQuery>,
) -> WebResult {
    use super::csv::row;
    let days = q.days();
    let (stats, now) = load(&state, &viewer, days).await?;
    let mut out = String::new();
    match name.as_str() {
        "waiting.csv" => {
            out += &row(["policy", "id", "tool_name", "created_at", "age_seconds"]);
            for w in &stats.waiting {
                out += &row([
                    w.policy.clone(),
                    w.id.clone(),
                    w.tool_name.clone(),
                    crate::service::format_time(w.created_at),
                    ((now - w.created_at) / 1000).to_string(),
                ]);
            }
        }
        "decision-time.csv" => {
            out += &row(["policy", "decided", "median_seconds", "p90_seconds"]);
            for d in &stats.decision_times {
                out += &row([
                    d.policy.clone(),
                    d.count.to_string(),
                    secs(d.median_ms),
                    secs(d.p90_ms),
                ]);
            }
        }
        "volume.csv" => {
            let mut head = vec!["day".to_owned()];
            head.extend(Outcome::ALL.iter().map(|o| o.key().to_owned()));
            out += &row(head);
            for (d, m) in &stats.volume {
                let mut cells = vec![day_label(*d)];
                cells.extend(
                    Outcome::ALL
                        .iter()
                        .map(|o| m.get(o).copied().unwrap_or(0).to_string()),
                );
                out += &row(cells);
            }
        }
        "approvers.csv" => {
            out += &row(["approver", "approved", "rejected"]);
            for (e, c) in &stats.approvers {
                out += &row([e.clone(), c.approved.to_string(), c.rejected.to_string()]);
            }
        }
        "expiry.csv" => {
            out += &row(["policy", "expired", "settled"]);
            for (p, (e, s)) in &stats.expiry {
                out += &row([p.clone(), e.to_string(), s.to_string()]);
            }
        }
        _ => return Err(WebError::not_found("There is no such overview table.")),
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"pliuz-overview-{name}\""),
            ),
        ],
        out,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settled(policy: &str, status: &str, by: &str, created: i64, settled: i64) -> SettledRow {
        SettledRow {
            policy: policy.into(),
            settled_status: status.into(),
            settled_by: by.into(),
            created_at: created,
            settled_at: settled,
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&v, 50), 5);
        assert_eq!(percentile(&v, 90), 9);
        assert_eq!(percentile(&[7], 90), 7);
        assert_eq!(percentile(&[], 50), 0);
    }

    #[test]
    fn only_people_count_towards_time_to_decision() {
        let rows = vec![
            settled("refunds", "approved", "user:a@x.com", 0, 10_000),
            settled("refunds", "rejected", "user:b@x.com", 0, 30_000),
            settled("refunds", "approved", "policy:refunds", 0, 1),
            settled("refunds", "expired", "system", 0, 50_000),
            settled("refunds", "cancelled", "agent:bot", 0, 2),
        ];
        let s = compute(Vec::new(), &rows, 0, DAY_MS);
        assert_eq!(
            s.decision_times,
            vec![DecisionTime {
                policy: "refunds".into(),
                count: 2,
                median_ms: 10_000,
                p90_ms: 30_000
            }]
        );
        assert_eq!(s.expiry.get("refunds"), Some(&(1, 5)));
        let day = s.volume.get(&0).cloned().unwrap_or_default();
        for o in Outcome::ALL {
            assert_eq!(day.get(&o), Some(&1), "{o:?}");
        }
        assert_eq!(
            s.approvers.get("a@x.com"),
            Some(&ApproverCount {
                approved: 1,
                rejected: 0
            })
        );
    }
}
