//! `GET /metrics` and JSON logs against the real binary: the token is
//! required when set, the counters move as requests are created and
//! decided, the gauges come from the database (so they survive a restart),
//! labels never carry ids or agent text, and every JSON log line parses.

mod support;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use support::{env_vars, finance_policy, with_digest, Server};

const METRICS_TOKEN: &str = "metrics-token-0123456789abcdef";

fn refunds_policy() -> String {
    finance_policy(
        "refunds",
        "issue_refund",
        r#"auto_approve = "args.amount_cents <= 1000""#,
    )
}

fn config() -> String {
    format!(
        "log_format = \"text\"\n\n[metrics]\ntoken = \"{METRICS_TOKEN}\"\n{}",
        refunds_policy()
    )
}

/// The value of the sample written exactly as `series` (name and labels in
/// the order the server writes them), if the exposition has it.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split(' ').next()?.parse().ok())
}

/// Asserts each `(series, value)` against `text` (`None`: not there).
fn assert_samples(text: &str, expected: &[(&str, Option<f64>)]) {
    for &(series, value) in expected {
        assert_eq!(sample(text, series), value, "{series} in:\n{text}");
    }
}

const CREATED: &str = "pliuz_approvals_created_total{policy=\"refunds\"}";
const DECIDED_APPROVED: &str =
    "pliuz_approvals_decided_total{policy=\"refunds\",outcome=\"approved\"}";
const PENDING_NOW: &str = "pliuz_approvals{status=\"pending\",policy=\"refunds\"}";
const APPROVED_NOW: &str = "pliuz_approvals{status=\"approved\",policy=\"refunds\"}";

async fn scrape_without_token(server: &Server) -> reqwest::Response {
    Client::new()
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("get")
}

async fn scrape(http: &Client, server: &Server) -> String {
    let r = http
        .get(server.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .expect("scrape");
    assert_eq!(r.status(), StatusCode::OK);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = r.text().await.expect("body");
    assert!(text.ends_with("# EOF\n"), "{text}");
    text
}

async fn create(http: &Client, server: &Server, agent: &str, amount: i64) -> Value {
    let args = json!({"order_id": "SECRET-ORDER-7", "amount_cents": amount});
    let body = json!({"tool_name": "issue_refund", "tool_args": args});
    support::create_approval(http, server, agent, body).await
}

async fn decide(http: &Client, server: &Server, token: &str, id: &str, body: Value) {
    let body = with_digest(http, server, token, id, body).await;
    let r = http
        .post(server.url(&format!("/api/v1/approvals/{id}/decision")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("decide");
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "{}",
        r.text().await.unwrap_or_default()
    );
}

#[tokio::test]
async fn metrics_need_the_token_and_move_with_requests_and_decisions() {
    let env = env_vars(&[
        ("PLIUZ_LOG_FORMAT", "json"),
        ("PLIUZ_LOG", "debug,sqlx=warn"),
    ]);
    let mut server = Server::start_with(&config(), None, env).await;
    let http = Client::new();
    let agent = server.agent_key("support-bot");
    let finance = server.user_token("fin@example.com", "approver", &["finance"]);

    // Without the token, or with another, a problem+json 401.
    for auth in [
        None,
        Some("wrong-token-0123456789abcdef"),
        Some(agent.as_str()),
    ] {
        let mut req = http.get(server.url("/metrics"));
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("scrape");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let p: Value = r.json().await.expect("problem");
        assert_eq!(p["code"], "unauthorized");
    }

    // The scheme's case does not matter (RFC 9110).
    let r = http
        .get(server.url("/metrics"))
        .header("authorization", format!("bearer {METRICS_TOKEN}"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(r.status(), StatusCode::OK);

    let before = scrape(&http, &server).await;
    let entries_before = sample(&before, "pliuz_audit_log_entries").expect("audit size");

    // Three wait for a person, one is approved by the policy's condition.
    let mut pending = Vec::new();
    for _ in 0..3 {
        pending.push(
            create(&http, &server, &agent, 5000).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let auto = create(&http, &server, &agent, 500).await;
    assert_eq!(auto["status"], "approved");
    decide(
        &http,
        &server,
        &finance,
        &pending[0],
        json!({"decision": "approve"}),
    )
    .await;
    decide(
        &http,
        &server,
        &finance,
        &pending[1],
        json!({"decision": "reject", "reason": "not this one"}),
    )
    .await;

    let after = scrape(&http, &server).await;
    assert_samples(
        &after,
        &[
            (CREATED, Some(4.0)),
            (DECIDED_APPROVED, Some(2.0)),
            ("pliuz_approvals_decided_total{policy=\"refunds\",outcome=\"rejected\"}", Some(1.0)),
            ("pliuz_approval_time_to_decision_seconds_count{policy=\"refunds\"}", Some(3.0)),
            (PENDING_NOW, Some(1.0)),
            (APPROVED_NOW, Some(2.0)),
            ("pliuz_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/approvals\",status=\"201\"}", Some(4.0)),
            ("pliuz_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/approvals/{id}/decision\",status=\"200\"}", Some(2.0)),
            ("pliuz_http_request_duration_seconds_count{method=\"GET\",route=\"/metrics\",status=\"401\"}", Some(3.0)),
            ("pliuz_outbox_depth{channel=\"webhook\"}", Some(0.0)),
        ],
    );
    assert!(sample(&after, "pliuz_audit_log_entries").expect("audit size") > entries_before);
    // Bounded labels: no request id, raw path, tool name, argument or e-mail.
    for leaked in [
        pending[0].as_str(),
        "issue_refund",
        "SECRET-ORDER-7",
        "fin@example.com",
    ] {
        assert!(
            !after.contains(leaked),
            "{leaked} is in the metrics:\n{after}"
        );
    }

    // An unknown path is one series, whatever the path.
    for path in ["/no/such/a1", "/no/such/b2"] {
        let r = http.get(server.url(path)).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let text = scrape(&http, &server).await;
    assert_eq!(
        sample(
            &text,
            "pliuz_http_request_duration_seconds_count{method=\"GET\",route=\"unmatched\",status=\"404\"}"
        ),
        Some(2.0)
    );
    assert!(!text.contains("/no/such"), "{text}");

    // A credential in a URL reaches the (debug) log only redacted.
    let r = http
        .get(server.url(&format!("/api/v1/policies?access_token={finance}")))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // After a restart the counters start again; the gauges are the database's.
    server.restart().await;
    let restarted = scrape(&http, &server).await;
    assert_samples(
        &restarted,
        &[
            (CREATED, None),
            (PENDING_NOW, Some(1.0)),
            (APPROVED_NOW, Some(2.0)),
        ],
    );

    // Every log line is one JSON object; no secret made it into the log.
    let log = server.log();
    let mut lines = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        lines += 1;
    }
    assert!(lines > 10, "too few log lines:\n{log}");
    assert!(log.contains("pliuz is serving"), "{log}");
    assert!(log.contains("access_token=[redacted]"), "{log}");
    for secret in [&agent[9..], &finance[9..], METRICS_TOKEN] {
        assert!(!log.contains(secret), "a secret is in the log:\n{log}");
    }
}

#[tokio::test]
async fn metrics_are_off_unless_turned_on_and_the_settings_are_strict() {
    let server =
        Server::start("[[policy]]\nname = \"p\"\ntools = [\"t\"]\napprovers = [\"group:g\"]\n")
            .await;
    let r = scrape_without_token(&server).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.expect("problem");
    assert!(
        p["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("metrics are off"),
        "{p}"
    );

    for (config, says) in [
        (
            "[metrics]\ntoken = \"short\"\n",
            "metrics.token must be at least 16",
        ),
        (
            "log_format = \"yaml\"\n",
            "log_format must be \"text\" or \"json\"",
        ),
        ("[metrics]\nenable = true\n", "unknown field `enable`"),
    ] {
        let out = server.serve_refused_with(config);
        assert!(!out.success);
        assert!(out.stderr.contains(says), "{config}: {}", out.stderr);
    }
    let mut env_server = Server::start("").await;
    env_server.stop();
    for (variable, value, says) in [
        (
            "PLIUZ_LOG_FORMAT",
            "xml",
            "PLIUZ_LOG_FORMAT must be \"text\" or \"json\"",
        ),
        (
            "PLIUZ_METRICS_TOKEN",
            "short token",
            "PLIUZ_METRICS_TOKEN must be at least 16",
        ),
    ] {
        env_server.extra_env = env_vars(&[(variable, value)]);
        let out = env_server.serve_refused();
        assert!(out.stderr.contains(says), "{variable}: {}", out.stderr);
    }
    // Turned on without a token: served to anyone who can reach it.
    env_server.extra_env = vec![("PLIUZ_METRICS_ENABLED".into(), "true".into())];
    env_server.spawn().await;
    let r = scrape_without_token(&env_server).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn on_postgresql_replicas_share_the_gauges_and_count_their_own_requests() {
    let config = format!(
        "[audit]\ncheckpoint_every = 1\n\n[metrics]\ntoken = \"{METRICS_TOKEN}\"\n\n{}",
        refunds_policy()
    );
    let url = support::fresh_postgres_database().await;
    let primary = Server::start_with(&config, Some(url), vec![]).await;
    let replica = Server::replica_of(&primary).await;
    let http = Client::new();
    let agent = primary.agent_key("support-bot");
    for _ in 0..2 {
        create(&http, &primary, &agent, 5000).await;
    }

    let on_primary = scrape(&http, &primary).await;
    let on_replica = scrape(&http, &replica).await;
    assert_samples(
        &on_primary,
        &[(PENDING_NOW, Some(2.0)), (CREATED, Some(2.0))],
    );
    assert_samples(&on_replica, &[(PENDING_NOW, Some(2.0)), (CREATED, None)]);
    assert_eq!(
        sample(&on_primary, "pliuz_audit_log_entries"),
        sample(&on_replica, "pliuz_audit_log_entries")
    );

    // The checkpoint worker signs soon after the entries; then its age shows.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = scrape(&http, &replica).await;
        if let Some(age) = sample(&text, "pliuz_audit_checkpoint_age_seconds") {
            assert!((0.0..60.0).contains(&age), "{age}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint age:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A webhook receiver that answers `refusal` to its first `refusals`
/// deliveries and accepts the rest.
async fn receiver(refusals: usize, refusal: StatusCode) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let seen = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let seen = seen.clone();
            async move {
                if seen.fetch_add(1, Ordering::SeqCst) < refusals {
                    refusal
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind receiver");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://127.0.0.1:{port}/hook")
}

/// Starts a server whose outbox retries fast (`tuning`), gives an agent a
/// webhook receiver that answers `refusal` to its first `refusals`
/// deliveries, opens one request the policy approves at once (one
/// `approval.decided` event) and scrapes until the webhook's `settled`
/// outcome is counted once and nothing is left due. Returns that scrape.
async fn one_webhook_event(
    tuning: &[(&str, &str)],
    refusals: usize,
    refusal: StatusCode,
    settled: &str,
) -> String {
    let server = Server::start_with(&config(), None, env_vars(tuning)).await;
    let http = Client::new();
    let hook = receiver(refusals, refusal).await;
    let out = server.cli(
        &["agents", "create", "hooked-bot", "--webhook-url", &hook],
        None,
    );
    assert!(out.success, "{}", out.stderr);
    let agent = out.stdout.lines().next().expect("key").to_owned();
    assert_eq!(
        create(&http, &server, &agent, 500).await["status"],
        "approved"
    );

    let settled = format!("pliuz_deliveries_total{{channel=\"webhook\",outcome=\"{settled}\"}}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = scrape(&http, &server).await;
        assert!(
            sample(&text, &settled).unwrap_or(0.0) <= 1.0,
            "one event, settled once:\n{text}"
        );
        // The depth gauge is read from the database during the scrape, the
        // counters from memory after it: wait until both tell of the end. A
        // given-up row is kept (with its error) but no longer counted as due.
        let depth = sample(&text, "pliuz_outbox_depth{channel=\"webhook\"}");
        if sample(&text, &settled) == Some(1.0) && depth == Some(0.0) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not {settled}:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

const WEBHOOK_FAILED: &str = "pliuz_deliveries_total{channel=\"webhook\",outcome=\"failed\"}";
const WEBHOOK_DELIVERED: &str = "pliuz_deliveries_total{channel=\"webhook\",outcome=\"delivered\"}";

#[tokio::test]
async fn webhook_deliveries_are_counted_by_outcome() {
    let backoff = [
        ("PLIUZ_OUTBOX_BACKOFF_MS", "200"),
        ("PLIUZ_OUTBOX_BACKOFF_MAX_MS", "400"),
    ];
    let text = one_webhook_event(&backoff, 1, StatusCode::SERVICE_UNAVAILABLE, "delivered").await;
    assert_eq!(sample(&text, WEBHOOK_FAILED), Some(1.0), "{text}");
}

#[tokio::test]
async fn a_refused_webhook_is_given_up_after_its_attempts() {
    let tuning = [
        ("PLIUZ_OUTBOX_BACKOFF_MS", "100"),
        ("PLIUZ_OUTBOX_BACKOFF_MAX_MS", "200"),
        ("PLIUZ_OUTBOX_MAX_ATTEMPTS", "2"),
    ];
    // 410 is not transient: it counts against the attempts.
    let text = one_webhook_event(&tuning, usize::MAX, StatusCode::GONE, "given_up").await;
    assert_eq!(sample(&text, WEBHOOK_FAILED), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, WEBHOOK_DELIVERED).unwrap_or(0.0),
        0.0,
        "{text}"
    );
}

/// A request approved and claimed by its create (claim on create) counts as
/// created and decided, as an auto-approval followed by a claim does.
#[tokio::test]
async fn a_claim_on_create_counts_as_created_and_approved() {
    let server = Server::start_with(&config(), None, vec![]).await;
    let http = Client::new();
    let agent = server.agent_key("support-bot");
    let args = json!({"order_id": "A-1", "amount_cents": 500});
    let body = json!({"tool_name": "issue_refund", "tool_args": args, "claim_id": "c-1"});
    let claimed = support::create_approval(&http, &server, &agent, body).await;
    assert_eq!(claimed["status"], "executing", "{claimed}");

    let text = scrape(&http, &server).await;
    assert_samples(
        &text,
        &[(CREATED, Some(1.0)), (DECIDED_APPROVED, Some(1.0))],
    );
}
