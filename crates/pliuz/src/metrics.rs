//! Prometheus metrics (OpenMetrics text) for `GET /metrics`: the registry
//! and every metric family, what the service and the workers record, and
//! the HTTP middleware that times each request.
//!
//! Label values are bounded and never carry agent-supplied text: routes
//! are the matched templates (`/api/v1/approvals/{id}`, never the raw
//! path), policies are the operator's names, statuses and outcomes are
//! fixed words. Tool names, arguments and e-mail addresses are never
//! labels. Counters and histograms are per process (they start at zero
//! with the process); the gauges read from the database at scrape time are
//! the same on every replica.

use crate::approval::{Approval, Status};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

/// What an OpenMetrics scrape is served as.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The route label of a request no route matched: unknown paths must not
/// each become a series of their own.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Request latency buckets (seconds); long-polls wait up to 60 s.
const HTTP_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Time-to-decision buckets (seconds): from an automatic decision (0) and
/// a quick human click up to a week.
const DECISION_BUCKETS: [f64; 14] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 10800.0, 43200.0, 86400.0, 259200.0,
    604800.0,
];

type Labels = Vec<(&'static str, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// Where an outbox message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Slack,
    Webhook,
    Email,
}

impl Channel {
    fn as_str(self) -> &'static str {
        match self {
            Channel::Slack => "slack",
            Channel::Webhook => "webhook",
            Channel::Email => "email",
        }
    }
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    /// Failed; another attempt is scheduled.
    Failed,
    /// Failed for the last time.
    GivenUp,
}

impl DeliveryOutcome {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Failed => "failed",
            DeliveryOutcome::GivenUp => "given_up",
        }
    }
}

/// What the database says at scrape time (the same on every replica).
#[derive(Debug, Clone, Default)]
pub struct StoreGauges {
    /// `(status, policy, count)` of the requests still in play.
    pub live_approvals: Vec<(String, String, i64)>,
    /// Undelivered outbox rows (retries included, given-up rows not) per channel.
    pub outbox_depth: Vec<(Channel, i64)>,
    pub audit_entries: u64,
    /// When the latest checkpoint was signed (Unix milliseconds).
    pub latest_checkpoint_at: Option<i64>,
    /// `(transactions, changes)` this process committed (group commit
    /// shares one transaction among the changes waiting for it).
    pub write_stats: (u64, u64),
}

/// Every metric family of the process. Cloning shares them.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    http_requests: Family<Labels, Histogram>,
    approvals_created: Family<Labels, Counter>,
    approvals_decided: Family<Labels, Counter>,
    time_to_decision: Family<Labels, Histogram>,
    approvals_live: Family<Labels, Gauge>,
    deliveries: Family<Labels, Counter>,
    outbox_depth: Family<Labels, Gauge>,
    audit_entries: Gauge,
    checkpoint_age: Family<Labels, FloatGauge>,
    write_commits: Counter,
    write_changes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("pliuz");
        let http_requests =
            Family::<Labels, Histogram>::new_with_constructor(|| Histogram::new(HTTP_BUCKETS));
        registry.register_with_unit(
            "http_request_duration",
            "HTTP requests by method, route template and status, with their latency",
            Unit::Seconds,
            http_requests.clone(),
        );
        let approvals_created = Family::<Labels, Counter>::default();
        registry.register(
            "approvals_created",
            "Approval requests created, by policy (this process)",
            approvals_created.clone(),
        );
        let approvals_decided = Family::<Labels, Counter>::default();
        registry.register(
            "approvals_decided",
            "Approval requests settled, by policy and outcome: approved, rejected, expired, cancelled (this process)",
            approvals_decided.clone(),
        );
        let time_to_decision =
            Family::<Labels, Histogram>::new_with_constructor(|| Histogram::new(DECISION_BUCKETS));
        registry.register_with_unit(
            "approval_time_to_decision",
            "Time from creation to settlement of a request, by policy (this process)",
            Unit::Seconds,
            time_to_decision.clone(),
        );
        let approvals_live = Family::<Labels, Gauge>::default();
        registry.register(
            "approvals",
            "Requests still in play (pending, approved, executing), by status and policy (database-wide)",
            approvals_live.clone(),
        );
        let deliveries = Family::<Labels, Counter>::default();
        registry.register(
            "deliveries",
            "Outbox delivery attempts, by channel (slack, webhook) and outcome: delivered, failed (will retry), given_up (this process)",
            deliveries.clone(),
        );
        let outbox_depth = Family::<Labels, Gauge>::default();
        registry.register(
            "outbox_depth",
            "Messages waiting to be delivered, by channel (database-wide)",
            outbox_depth.clone(),
        );
        let audit_entries = Gauge::default();
        registry.register(
            "audit_log_entries",
            "Entries in the audit log (database-wide)",
            audit_entries.clone(),
        );
        let checkpoint_age = Family::<Labels, FloatGauge>::default();
        registry.register_with_unit(
            "audit_checkpoint_age",
            "Time since the latest signed audit checkpoint; absent before the first",
            Unit::Seconds,
            checkpoint_age.clone(),
        );
        let write_commits = Counter::default();
        registry.register(
            "store_commits",
            "Write transactions committed (this process); one commits every change waiting for it",
            write_commits.clone(),
        );
        let write_changes = Counter::default();
        registry.register(
            "store_committed_changes",
            "Changes made durable by those transactions (this process)",
            write_changes.clone(),
        );
        let build_info = Family::<Labels, Gauge>::default();
        build_info
            .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_owned())])
            .set(1);
        registry.register("build_info", "The running version of Pliuz", build_info);
        let start_time = FloatGauge::default();
        start_time.set(unix_seconds(std::time::SystemTime::now()));
        registry.register_with_unit(
            "process_start_time",
            "When this process started (Unix time)",
            Unit::Seconds,
            start_time,
        );
        Metrics {
            registry: Arc::new(registry),
            http_requests,
            approvals_created,
            approvals_decided,
            time_to_decision,
            approvals_live,
            deliveries,
            outbox_depth,
            audit_entries,
            checkpoint_age,
            write_commits,
            write_changes,
        }
    }

    /// Records a committed change of a request: `before` is its status
    /// before the change, `None` when the change created it. A request
    /// created already settled (by a policy condition) counts as both.
    pub fn approval_changed(&self, before: Option<Status>, after: &Approval) {
        let policy = || vec![("policy", after.policy.clone())];
        if before.is_none() {
            self.approvals_created.get_or_create(&policy()).inc();
        }
        let was_open = matches!(before, None | Some(Status::Pending));
        let outcome = match after.status {
            Status::Approved
            | Status::Rejected
            | Status::Responded
            | Status::Expired
            | Status::Cancelled => after.status,
            // Approved and claimed in one change (a claim on create).
            Status::Executing if before.is_none() => Status::Approved,
            Status::Pending | Status::Executing | Status::Executed => return,
        };
        if !was_open {
            return;
        }
        self.approvals_decided
            .get_or_create(&vec![
                ("policy", after.policy.clone()),
                ("outcome", outcome.as_str().to_owned()),
            ])
            .inc();
        let settled_at = after.settlement.as_ref().map_or(after.created_at, |s| s.at);
        let waited_ms = settled_at.saturating_sub(after.created_at).max(0);
        self.time_to_decision
            .get_or_create(&policy())
            .observe(waited_ms as f64 / 1000.0);
    }

    pub fn delivery(&self, channel: Channel, outcome: DeliveryOutcome) {
        self.deliveries
            .get_or_create(&vec![
                ("channel", channel.as_str().to_owned()),
                ("outcome", outcome.as_str().to_owned()),
            ])
            .inc();
    }

    fn http_request(&self, method: &str, route: String, status: u16, seconds: f64) {
        self.http_requests
            .get_or_create(&vec![
                ("method", method.to_owned()),
                ("route", route),
                ("status", status.to_string()),
            ])
            .observe(seconds);
    }

    /// The exposition: the database's gauges as of `gauges`, everything
    /// else as counted so far.
    pub fn render(&self, gauges: &StoreGauges, now: std::time::SystemTime) -> String {
        // Cleared first: a status or policy with nothing left must not keep
        // its last count.
        self.approvals_live.clear();
        for (status, policy, n) in &gauges.live_approvals {
            self.approvals_live
                .get_or_create(&vec![
                    ("status", status.clone()),
                    ("policy", policy.clone()),
                ])
                .set(*n);
        }
        for channel in [Channel::Slack, Channel::Webhook, Channel::Email] {
            let n = gauges
                .outbox_depth
                .iter()
                .filter(|(c, _)| *c == channel)
                .map(|(_, n)| n)
                .sum();
            self.outbox_depth
                .get_or_create(&vec![("channel", channel.as_str().to_owned())])
                .set(n);
        }
        self.audit_entries
            .set(i64::try_from(gauges.audit_entries).unwrap_or(i64::MAX));
        // The store counts; the counters catch up at each scrape (`fetch_max`:
        // monotonic even when two scrapes race).
        let (commits, changes) = gauges.write_stats;
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        self.write_commits.inner().fetch_max(commits, relaxed);
        self.write_changes.inner().fetch_max(changes, relaxed);
        self.checkpoint_age.clear();
        if let Some(at) = gauges.latest_checkpoint_at {
            let age = (unix_seconds(now) - at as f64 / 1000.0).max(0.0);
            self.checkpoint_age.get_or_create(&Vec::new()).set(age);
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

fn unix_seconds(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Middleware: times every request and counts it under its route template.
pub async fn track_http(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    // Set by the router for the route that matched (the layer wraps each route).
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED_ROUTE.to_owned(), |p| p.as_str().to_owned());
    let method = bounded_method(req.method());
    let response = next.run(req).await;
    metrics.http_request(
        method,
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The standard methods by name, anything else as `other`: a client may
/// send any token as a method.
fn bounded_method(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_method_is_one_label_value() {
        let m = axum::http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(bounded_method(&m), "other");
        assert_eq!(bounded_method(&axum::http::Method::GET), "GET");
    }

    #[test]
    fn a_status_with_nothing_left_disappears_from_the_gauge() {
        let m = Metrics::new();
        let now = std::time::SystemTime::now();
        let first = StoreGauges {
            live_approvals: vec![("pending".into(), "deploys".into(), 2)],
            ..StoreGauges::default()
        };
        assert!(m
            .render(&first, now)
            .contains("pliuz_approvals{status=\"pending\",policy=\"deploys\"} 2"));
        let text = m.render(&StoreGauges::default(), now);
        assert!(!text.contains("policy=\"deploys\""), "{text}");
        assert!(text.contains("pliuz_outbox_depth{channel=\"slack\"} 0"));
        assert!(text.ends_with("# EOF\n"));
    }
}
