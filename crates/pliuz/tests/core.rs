//! The control plane end to end: the real binary, real HTTP, real SQLite
//! (and PostgreSQL where marked).

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{finance_policy, send_json, Server, PAYOUTS_SETTINGS};

/// Finance or the ops lead approves; small refunds are approved at once.
const REFUNDS: &str = r#"
[[policy]]
name = "refunds"
tools = ["issue_refund"]
approvers = ["group:finance", "user:ops@example.com"]
decisions = ["approve", "reject", "edit"]
expires_in = "30m"
auto_approve = "args.amount_cents <= 1000"
"#;

fn config() -> String {
    [
        REFUNDS.to_owned(),
        finance_policy(
            "deletes",
            "delete_db",
            "decisions = [\"approve\", \"reject\"]\nrequired_approvals = 2",
        ),
        finance_policy("quick", "quick_tool", r#"expires_in = "1s""#),
        finance_policy("payouts", "pay_out", PAYOUTS_SETTINGS),
    ]
    .concat()
}

/// `impl Env` below adds this file's requests to the shared crew.
type Env = support::Crew;

async fn env() -> Env {
    env_with(None).await
}

async fn env_with(database_url: Option<String>) -> Env {
    env_full(database_url, vec![]).await
}

async fn env_full(database_url: Option<String>, extra_env: Vec<(String, String)>) -> Env {
    Env::start(&config(), "support-bot", database_url, extra_env).await
}

/// Starts an agent's long-poll (`wait=30`) on `server`; yields when it
/// answered and what it answered.
fn long_poll(e: &Env, server: &Server, id: &str) -> tokio::task::JoinHandle<(Instant, Value)> {
    let url = server.url(&format!("/api/v1/approvals/{id}?wait=30"));
    support::long_poll(&e.http, url, &e.agent)
}

/// The ids of the approvals on a list page, in its order.
fn ids_on(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect()
}

impl Env {
    async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let req = self.http.post(self.server.url(path));
        send_json(req.bearer_auth(token).json(&body)).await
    }

    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        send_json(self.http.get(self.server.url(path)).bearer_auth(token)).await
    }

    async fn create(&self, body: Value) -> Value {
        let (status, v) = self.post(&self.agent, "/api/v1/approvals", body).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v
    }

    /// Opens a request with `body`; returns its id.
    async fn create_id(&self, body: Value) -> String {
        support::id_of(&self.create(body).await)
    }

    /// A request to delete the production database (policy `deletes`:
    /// approve or reject only, two approvals); returns its id.
    async fn delete_prod_db(&self) -> String {
        self.create_id(json!({"tool_name": "delete_db", "tool_args": {"db": "prod"}}))
            .await
    }

    async fn refund(&self, amount: i64) -> String {
        self.create_id(json!({"tool_name": "issue_refund", "tool_args": {"order_id": "A-1", "amount_cents": amount}}))
            .await
    }

    /// Approves as a person who just looked at the request.
    async fn approve(&self, token: &str, id: &str) -> (StatusCode, Value) {
        self.decide(token, id, json!({"decision": "approve"})).await
    }

    /// Rejects, for `reason`, as a person who just looked at the request.
    async fn reject(&self, token: &str, id: &str, reason: &str) -> (StatusCode, Value) {
        let body = json!({"decision": "reject", "reason": reason});
        self.decide(token, id, body).await
    }

    /// Decides as a person who just looked at the request: the body gets
    /// the approval's current `args_digest` unless it has one.
    async fn decide(&self, token: &str, id: &str, body: Value) -> (StatusCode, Value) {
        let body = support::with_digest(&self.http, &self.server, token, id, body).await;
        self.post(token, &format!("/api/v1/approvals/{id}/decision"), body)
            .await
    }
}

#[tokio::test]
async fn long_poll_wakes_on_decision_and_approve_fixes_final_args() {
    let e = env().await;
    let id = e.refund(5000).await;
    let (_, pending) = e.get(&e.agent, &format!("/api/v1/approvals/{id}")).await;
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["policy"], "refunds");

    let poll = long_poll(&e, &e.server, &id);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let decided_at = Instant::now();
    let (status, v) = e.approve(&e.finance, &id).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (woke_at, polled) = poll.await.expect("join");
    assert_eq!(polled["status"], "approved");
    assert_eq!(
        polled["final_args"],
        json!({"order_id": "A-1", "amount_cents": 5000})
    );
    assert_eq!(polled["decision"]["by"], "user:fin@example.com");
    // Woken by the decision, not by the 30 s timeout.
    assert!(woke_at.duration_since(decided_at) < Duration::from_secs(5));
}

#[tokio::test]
async fn long_poll_returns_pending_when_wait_runs_out() {
    let e = env().await;
    let id = e.refund(5000).await;
    let (status, v) = e
        .get(&e.agent, &format!("/api/v1/approvals/{id}?wait=1"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["status"], "pending");
}

#[tokio::test]
async fn reject_carries_the_reason() {
    let e = env().await;
    let id = e.refund(5000).await;
    let (status, v) = e.reject(&e.finance, &id, "duplicate refund").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, v) = e.get(&e.agent, &format!("/api/v1/approvals/{id}")).await;
    assert_eq!(v["status"], "rejected");
    assert_eq!(v["decision"]["reason"], "duplicate refund");
    assert!(v["final_args"].is_null());
}

/// The rule the inbox and Slack apply holds at the API too: the agent's
/// model is told why, so a reject must say it.
#[tokio::test]
async fn a_reject_without_a_reason_is_refused_and_changes_nothing() {
    let e = env().await;
    let id = e.refund(5000).await;
    for body in [
        json!({"decision": "reject"}),
        json!({"decision": "reject", "reason": "   "}),
    ] {
        let (status, p) = e.decide(&e.finance, &id, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
        assert_eq!(p["code"], "validation", "{p}");
        assert_eq!(p["errors"][0]["field"], "reason", "{p}");
    }
    let (_, v) = e.get(&e.agent, &format!("/api/v1/approvals/{id}")).await;
    assert_eq!(v["status"], "pending");
    // Approving needs no reason.
    let (status, v) = e.approve(&e.finance, &id).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn edit_is_validated_against_the_tool_schema() {
    let e = env().await;
    let schema = json!({
        "type": "object",
        "properties": {"order_id": {"type": "string"}, "amount_cents": {"type": "integer", "minimum": 1}},
        "required": ["order_id", "amount_cents"],
        "additionalProperties": false
    });
    let id = e.create_id(json!({"tool_name": "issue_refund", "tool_args": {"order_id": "A-1", "amount_cents": 5000}, "tool_schema": schema})).await;
    let bad = support::assert_problem(
        e.decide(
            &e.finance,
            &id,
            json!({"decision": "edit", "final_args": {"order_id": "A-1", "amount_cents": "lots"}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "schema_violation",
    );
    support::assert_detail_contains(&bad, "amount_cents");
    // Nothing changed.
    let (_, still) = e.get(&e.agent, &format!("/api/v1/approvals/{id}")).await;
    assert_eq!(still["status"], "pending");

    let (status, ok) = e
        .decide(&e.finance, &id, json!({"decision": "edit", "final_args": {"order_id": "A-1", "amount_cents": 2500}, "reason": "half"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    assert_eq!(ok["status"], "approved");
    assert_eq!(
        ok["final_args"],
        json!({"order_id": "A-1", "amount_cents": 2500})
    );
    assert_eq!(ok["tool_args"]["amount_cents"], 5000);
    assert_eq!(ok["decision"]["edited"], true);
}

#[tokio::test]
async fn edit_is_refused_when_the_policy_does_not_allow_it() {
    let e = env().await;
    let id = e.delete_prod_db().await;
    support::assert_problem(
        e.decide(
            &e.finance,
            &id,
            json!({"decision": "edit", "final_args": {"db": "staging"}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "decision_not_allowed",
    );
}

#[tokio::test]
async fn quorum_of_two_counts_each_person_once() {
    let e = env().await;
    let id = e.delete_prod_db().await;
    let (status, one) = e.approve(&e.finance, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["status"], "pending");
    assert_eq!(one["approvals"].as_array().map(Vec::len), Some(1));
    support::assert_problem(
        e.approve(&e.finance, &id).await,
        StatusCode::CONFLICT,
        "already_voted",
    );
    let (status, two) = e.approve(&e.finance2, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(two["status"], "approved");
}

#[tokio::test]
async fn originator_cannot_approve_their_own_request() {
    let e = env().await;
    let id = e.create_id(json!({"tool_name": "issue_refund", "tool_args": {"amount_cents": 5000}, "originator": "fin@example.com"})).await;
    let (status, p) = e.approve(&e.finance, &id).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
    support::assert_detail_contains(&p, "originator");
    let (status, _) = e.approve(&e.finance2, &id).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn non_approvers_and_agents_cannot_decide() {
    let e = env().await;
    let id = e.refund(5000).await;
    let (status, p) = e.approve(&e.outsider, &id).await;
    // The outsider cannot even see it.
    assert_eq!(status, StatusCode::NOT_FOUND, "{p}");
    let admin = e.server.user_token("boss@example.com", "admin", &[]);
    let (status, p) = e.approve(&admin, &id).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
    support::assert_detail_contains(&p, "not an approver");
    let (status, p) = e.approve(&e.agent, &id).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
    let (_, v) = e.get(&e.agent, &format!("/api/v1/approvals/{id}")).await;
    assert_eq!(v["status"], "pending");
}

#[tokio::test]
async fn idempotent_replay_and_conflict() {
    let e = env().await;
    let body = json!({"tool_name": "issue_refund", "tool_args": {"amount_cents": 5000}, "idempotency_key": "run-1:call-1"});
    let first = e.create(body.clone()).await;
    let (status, replay) = e.post(&e.agent, "/api/v1/approvals", body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(replay["is_replay"], true);
    assert_eq!(replay["id"], first["id"]);
    let other_args = json!({"tool_name": "issue_refund", "tool_args": {"amount_cents": 9999}, "idempotency_key": "run-1:call-1"});
    support::assert_problem(
        e.post(&e.agent, "/api/v1/approvals", other_args).await,
        StatusCode::CONFLICT,
        "idempotency_conflict",
    );
}

#[tokio::test]
async fn auto_approve_by_policy_condition() {
    let e = env().await;
    let v = e
        .create(json!({"tool_name": "issue_refund", "tool_args": {"amount_cents": 500}}))
        .await;
    assert_eq!(v["status"], "approved");
    assert_eq!(v["decision"]["by"], "policy:refunds");
    assert_eq!(v["final_args"]["amount_cents"], 500);
}

#[tokio::test]
async fn requests_expire_on_time_without_polling_and_across_restart() {
    let mut e = env().await;
    let a = e
        .create(json!({"tool_name": "quick_tool", "tool_args": {}}))
        .await;
    let a_id = a["id"].as_str().expect("id").to_owned();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, listed) = e.get(&e.finance, "/api/v1/approvals?status=expired").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert!(ids.contains(&a_id.as_str()), "{listed}");

    // Created, then the server is down past the deadline: it expires after restart.
    let b = e
        .create(json!({"tool_name": "quick_tool", "tool_args": {}}))
        .await;
    let b_id = b["id"].as_str().expect("id").to_owned();
    e.server.kill9();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    e.server.spawn().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = e
            .get(&e.finance, &format!("/api/v1/approvals/{b_id}"))
            .await;
        if v["status"] == "expired" {
            assert_eq!(v["decision"]["by"], "system");
            break;
        }
        assert!(Instant::now() < deadline, "not expired after restart: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    support::assert_problem(
        e.approve(&e.finance, &b_id).await,
        StatusCode::CONFLICT,
        "invalid_transition",
    );
}

#[tokio::test]
async fn cancel_and_execution_report_follow_the_state_machine() {
    let e = env().await;
    let id = e.refund(5000).await;
    let cancel = format!("/api/v1/approvals/{id}/cancel");
    let (status, v) = e
        .post(&e.agent, &cancel, json!({"reason": "user changed mind"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "cancelled");
    let (status, p) = e.post(&e.agent, &cancel, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    support::assert_detail_contains(&p, "already cancelled");

    let id = e.refund(5000).await;
    let path = format!("/api/v1/approvals/{id}/execution");
    let exec = json!({"outcome": "success", "latency_ms": 12, "output_excerpt": "refunded"});
    let (status, p) = e.post(&e.agent, &path, exec.clone()).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "cannot report before approval: {p}"
    );
    e.approve(&e.finance, &id).await;
    // Approved is not enough: the report needs the execution claim first.
    support::assert_problem(
        e.post(&e.agent, &path, exec.clone()).await,
        StatusCode::CONFLICT,
        "execution_not_claimed",
    );
    let (status, v) = e.post(&e.agent, &path, json!({"outcome": "started"})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "executing");
    let claim_id = v["execution"]["claim_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!claim_id.is_empty(), "{v}");
    let mut report = exec.clone();
    report["claim_id"] = json!(claim_id);
    let (status, v) = e.post(&e.agent, &path, report.clone()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "executed");
    assert_eq!(v["execution"]["outcome"], "success");
    assert_eq!(v["execution"]["latency_ms"], 12);
    assert_eq!(v["execution"]["claim_id"], json!(claim_id));
    // The same report again (a retry) is answered with what was recorded.
    let (status, again) = e.post(&e.agent, &path, report.clone()).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["execution"], v["execution"]);
    report["outcome"] = json!("error");
    support::assert_problem(
        e.post(&e.agent, &path, report).await,
        StatusCode::CONFLICT,
        "invalid_transition",
    );
}

#[tokio::test]
async fn racing_deciders_settle_exactly_once() {
    let e = env().await;
    for _ in 0..5 {
        let id = e.refund(5000).await;
        let a = e.approve(&e.finance, &id);
        let b = e.reject(&e.finance2, &id, "no");
        let ((sa, va), (sb, vb)) = tokio::join!(a, b);
        let oks = [sa, sb].iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(oks, 1, "{sa} {va} / {sb} {vb}");
        let loser = if sa == StatusCode::OK { &vb } else { &va };
        assert_eq!(loser["code"], "invalid_transition", "{loser}");
    }
}

#[tokio::test]
async fn kill_9_loses_nothing_and_a_new_long_poll_gets_the_decision() {
    let mut e = env().await;
    let id = e.refund(7000).await;
    e.server.kill9();
    e.server.spawn().await;
    let (status, v) = e.get(&e.agent, &format!("/api/v1/approvals/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["status"], "pending");
    assert_eq!(v["tool_args"]["amount_cents"], 7000);
    let poll = long_poll(&e, &e.server, &id);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = e.approve(&e.finance, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(poll.await.expect("join").1["status"], "approved");
}

async fn raw(
    e: &Env,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, String, Value) {
    let mut r = e
        .http
        .request(method.parse().expect("method"), e.server.url(path))
        .bearer_auth(&e.agent)
        .body(body);
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    let resp = r.send().await.expect("request");
    let status = resp.status();
    let ct = support::content_type(&resp);
    (status, ct, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn bad_input_gets_precise_problem_details_and_leaves_nothing_behind() {
    // A small body limit, so the oversized body fits in the socket buffers and
    // the client finishes sending before the server answers 413.
    let e = env_full(None, vec![("PLIUZ_MAX_BODY_BYTES".into(), "16384".into())]).await;
    let json_ct = Some("application/json");
    // (case, content type, body, status, code, what the detail mentions)
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            "malformed",
            json_ct,
            b"{\"tool_name\": ".to_vec(),
            400,
            "malformed_json",
            "not valid JSON",
        ),
        (
            "wrong type",
            json_ct,
            br#"{"tool_name": "issue_refund", "tool_args": "x"}"#.to_vec(),
            422,
            "validation",
            "tool_args",
        ),
        (
            "missing field",
            json_ct,
            br#"{"tool_args": {}}"#.to_vec(),
            422,
            "validation",
            "tool_name",
        ),
        (
            "unknown field",
            json_ct,
            br#"{"tool_name": "issue_refund", "tool_args": {}, "colour": 1}"#.to_vec(),
            422,
            "validation",
            "colour",
        ),
        (
            "empty tool",
            json_ct,
            br#"{"tool_name": "", "tool_args": {}}"#.to_vec(),
            422,
            "validation",
            "tool_name",
        ),
        (
            "unknown policy",
            json_ct,
            br#"{"tool_name": "issue_refund", "tool_args": {}, "policy": "nope"}"#.to_vec(),
            422,
            "unknown_policy",
            "nope",
        ),
        (
            "no policy",
            json_ct,
            br#"{"tool_name": "launch_rockets", "tool_args": {}}"#.to_vec(),
            422,
            "no_matching_policy",
            "launch_rockets",
        ),
        (
            "no content type",
            None,
            br#"{"tool_name": "issue_refund", "tool_args": {}}"#.to_vec(),
            415,
            "unsupported_media_type",
            "Content-Type",
        ),
        (
            "too large",
            json_ct,
            format!(
                "{{\"tool_name\": \"issue_refund\", \"tool_args\": {{\"blob\": \"{}\"}}}}",
                "x".repeat(40 * 1024)
            )
            .into_bytes(),
            413,
            "payload_too_large",
            "limit",
        ),
    ];
    for (name, ct, body, status, code, mentions) in cases {
        let (s, got_ct, p) = raw(&e, "POST", "/api/v1/approvals", ct, body).await;
        assert_eq!(s.as_u16(), status, "{name}: {p}");
        assert_eq!(got_ct, "application/problem+json", "{name}");
        assert_eq!(p["code"], code, "{name}: {p}");
        assert_eq!(p["status"], status, "{name}");
        assert!(
            p["detail"].as_str().unwrap_or_default().contains(mentions),
            "{name}: {p}"
        );
    }
    // Bad decisions and queries.
    let id = e.refund(5000).await;
    let (s, p) = e
        .decide(&e.finance, &id, json!({"decision": "maybe"}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    let (s, p) = e.decide(&e.finance, &id, json!({"decision": "edit"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["errors"][0]["field"], "final_args");
    let (s, p) = e
        .get(&e.agent, &format!("/api/v1/approvals/{id}?wait=abc"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{p}");
    let (s, p) = e
        .get(&e.agent, &format!("/api/v1/approvals/{id}?wait=600"))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    let (s, p) = e.get(&e.finance, "/api/v1/approvals?status=sideways").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    let (s, p) = e.get(&e.agent, "/api/v1/approvals/does-not-exist").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{p}");
    let (s, p) = e.get("pliuz_ak_forged", "/api/v1/approvals").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{p}");
    let (s, _, p) = raw(&e, "GET", "/api/v1/nowhere", None, vec![]).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{p}");
    // Only the one good request exists: no bad request left a row.
    let (_, list) = e.get(&e.agent, "/api/v1/approvals").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
}

#[tokio::test]
async fn listing_filters_and_keyset_pagination_newest_first() {
    let e = env().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(e.refund(5000).await);
    }
    e.create(json!({"tool_name": "delete_db", "tool_args": {}}))
        .await;
    let (_, page1) = e
        .get(&e.finance, "/api/v1/approvals?policy=refunds&limit=2")
        .await;
    assert_eq!(ids_on(&page1), vec![ids[4].clone(), ids[3].clone()]);
    let cursor = page1["next_cursor"].as_str().expect("cursor");
    let (_, page2) = e
        .get(
            &e.finance,
            &format!("/api/v1/approvals?policy=refunds&limit=2&cursor={cursor}"),
        )
        .await;
    assert_eq!(ids_on(&page2), vec![ids[2].clone(), ids[1].clone()]);
    let (_, by_tool) = e
        .get(
            &e.finance,
            "/api/v1/approvals?tool=delete_db&status=pending&agent=support-bot",
        )
        .await;
    assert_eq!(by_tool["items"].as_array().map(Vec::len), Some(1));
    // An approver of no policy sees nothing.
    let (_, none) = e.get(&e.outsider, "/api/v1/approvals").await;
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn openapi_document_lists_every_route_and_each_exists() {
    let e = env().await;
    let (status, doc) = e.get(&e.agent, "/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    for required in [
        "/api/v1/approvals",
        "/api/v1/approvals/{id}",
        "/api/v1/approvals/{id}/decision",
        "/api/v1/approvals/{id}/execution",
        "/api/v1/approvals/{id}/cancel",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains_key(required), "{required} missing");
    }
    for (path, ops) in paths {
        for method in ops.as_object().expect("ops").keys() {
            let url = path.replace("{id}", "00000000-0000-0000-0000-000000000000");
            let (s, _, p) = raw(
                &e,
                &method.to_uppercase(),
                &url,
                Some("application/json"),
                b"{}".to_vec(),
            )
            .await;
            assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !(s == StatusCode::NOT_FOUND
                    && p["detail"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("no such route")),
                "{method} {path} is documented but not routed"
            );
        }
    }
}

#[tokio::test]
async fn cli_secrets_policy_check_and_revocation() {
    let e = env().await;
    // A secret alone on stdout; explanations on stderr.
    let out = e.server.cli(&["agents", "create", "reporting-bot"], None);
    assert!(out.success);
    assert_eq!(out.stdout.lines().count(), 1);
    assert!(out.stdout.starts_with("pliuz_ak_"));
    assert!(out.stderr.contains("shown only once"));
    let key = out.stdout.trim().to_owned();
    let (s, _) = e.get(&key, "/api/v1/approvals").await;
    assert_eq!(s, StatusCode::OK);
    let dup = e.server.cli(&["agents", "create", "reporting-bot"], None);
    assert!(!dup.success);
    assert!(dup.stderr.contains("already exists"));
    let list = e.server.cli(&["agents", "list"], None);
    assert!(list.stdout.contains("reporting-bot\t"));
    assert!(!list.stdout.contains(&key), "keys are never shown again");
    assert!(
        e.server
            .cli(&["agents", "revoke", "reporting-bot"], None)
            .success
    );
    let (s, p) = e.get(&key, "/api/v1/approvals").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{p}");

    // Setup links for users without a password.
    let out = e.server.cli(
        &["users", "create", "new@example.com", "--role", "auditor"],
        None,
    );
    assert!(out.success, "{}", out.stderr);
    assert!(
        out.stdout.trim().contains("/setup/pliuz_su_"),
        "{}",
        out.stdout
    );
    let users = e.server.cli(&["users", "list"], None);
    assert!(
        users
            .stdout
            .contains("fin@example.com\tapprover\tfinance\tactive"),
        "{}",
        users.stdout
    );
    assert!(
        e.server
            .cli(
                &["users", "add-group", "sales@example.com", "finance"],
                None
            )
            .success
    );
    let id = e.refund(5000).await;
    let (s, _) = e.approve(&e.outsider, &id).await;
    assert_eq!(s, StatusCode::OK, "group membership takes effect at once");

    // Policy check reports each mistake with its line.
    let mistakes = support::policy_check_fails(
        &e.server,
        "[[policy]]\nname = \"x\"\napprovers = [\"finance\"]\nexpires_in = \"soon\"\n",
    );
    assert!(mistakes.contains("bad.toml:3:"), "{mistakes}");
    assert!(mistakes.contains("bad.toml:4:"), "{mistakes}");
    support::assert_policy_check_passes(&e.server);
}

#[tokio::test]
async fn first_start_prints_the_admin_login_once() {
    let mut e = env().await;
    let log = e.server.log();
    assert_eq!(log.matches("password:").count(), 1, "{log}");
    e.server.stop();
    e.server.spawn().await;
    assert_eq!(
        e.server.log().matches("password:").count(),
        1,
        "printed again after restart"
    );
}

#[tokio::test]
async fn postgres_store_runs_the_same_flows_and_survives_restart() {
    let url = support::fresh_postgres_database().await;
    let mut e = env_with(Some(url)).await;
    let id = e.refund(5000).await;
    let body = json!({"tool_name": "issue_refund", "tool_args": {"amount_cents": 5000}, "idempotency_key": "pg-1"});
    let first = e.create(body.clone()).await;
    let (s, replay) = e.post(&e.agent, "/api/v1/approvals", body).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(replay["id"], first["id"]);
    e.server.kill9();
    e.server.spawn().await;
    let poll = long_poll(&e, &e.server, &id);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (s, v) = e
        .decide(
            &e.finance,
            &id,
            json!({"decision": "edit", "final_args": {"amount_cents": 1}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, polled) = poll.await.expect("join");
    assert_eq!(polled["status"], "approved");
    assert_eq!(polled["final_args"]["amount_cents"], 1);
    let (s, _) = e.reject(&e.finance2, &id, "too late").await;
    assert_eq!(s, StatusCode::CONFLICT);
    // The audit log on PostgreSQL: the decision's receipt verifies offline.
    let (s, receipt) = e
        .get(&e.agent, &format!("/api/v1/approvals/{id}/receipt"))
        .await;
    assert_eq!(s, StatusCode::OK, "{receipt}");
    let key = e
        .http
        .get(e.server.url("/api/v1/audit/key"))
        .bearer_auth(&e.agent)
        .send()
        .await
        .expect("key")
        .text()
        .await
        .expect("key text");
    let file = e.server.dir.path().join("receipt.json");
    std::fs::write(&file, receipt.to_string()).expect("write receipt");
    let out = e.server.cli(
        &[
            "audit",
            "verify-receipt",
            file.to_str().expect("path"),
            "--key",
            key.trim(),
        ],
        None,
    );
    assert!(out.success, "{}{}", out.stdout, out.stderr);
    let q = e
        .create(json!({"tool_name": "quick_tool", "tool_args": {}}))
        .await;
    let qid = q["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = e.get(&e.finance, &format!("/api/v1/approvals/{qid}")).await;
        if v["status"] == "expired" {
            break;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn replicas_sharing_postgres_wake_each_others_long_polls() {
    let url = support::fresh_postgres_database().await;
    let e = env_with(Some(url)).await;
    let replica = Server::replica_of(&e.server).await;
    let id = e.refund(5000).await;
    // The agent waits on the replica; the approver decides on the primary.
    let poll = long_poll(&e, &replica, &id);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let decided_at = Instant::now();
    let (s, _) = e.approve(&e.finance, &id).await;
    assert_eq!(s, StatusCode::OK);
    let (woke_at, v) = poll.await.expect("join");
    assert_eq!(v["status"], "approved");
    assert!(
        woke_at.duration_since(decided_at) < Duration::from_secs(5),
        "woken by NOTIFY, not by the timeout"
    );
    // Both replicas racing to decide the same request: exactly one wins.
    let id = e.refund(5000).await;
    let replica_env = Env {
        server: replica,
        http: e.http.clone(),
        agent: e.agent.clone(),
        finance: e.finance.clone(),
        finance2: e.finance2.clone(),
        outsider: e.outsider.clone(),
    };
    let a = e.approve(&e.finance, &id);
    let b = replica_env.reject(&e.finance2, &id, "not this one");
    let ((sa, _), (sb, _)) = tokio::join!(a, b);
    assert_eq!(
        [sa, sb].iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{sa} {sb}"
    );
}

#[tokio::test]
async fn the_log_records_which_policies_were_loaded_and_who_could_decide() {
    let e = env().await;
    let admin = e.server.user_token("boss@example.com", "admin", &[]);
    let entries = support::audit_entries(&e.http, &e.server, &admin, "start=0&end=50").await;
    let loaded = entries
        .iter()
        .find(|e| e["type"] == "policy.loaded")
        .expect("a policy.loaded entry");
    let refunds = &loaded["data"]["policies"][0];
    assert_eq!(refunds["name"], "refunds");
    assert_eq!(
        refunds["approvers"],
        json!(["group:finance", "user:ops@example.com"])
    );
    assert_eq!(refunds["auto_approve"], "args.amount_cents <= 1000");
    assert_eq!(loaded["data"]["policies"][1]["required_approvals"], 2);
    // Users and their groups are logged as they are created.
    let created = entries
        .iter()
        .find(|e| e["type"] == "user.created" && e["data"]["email"] == "fin@example.com")
        .expect("a user.created entry");
    assert_eq!(created["data"]["groups"], json!(["finance"]));
}

#[tokio::test]
async fn a_decision_is_bound_to_the_arguments_the_decider_reviewed() {
    let e = env().await;
    let v = e
        .create(json!({"tool_name": "pay_out", "tool_args": {"to": "alice", "amount": 100}}))
        .await;
    let id = v["id"].as_str().expect("id").to_owned();
    let path = format!("/api/v1/approvals/{id}/decision");

    // B opens the request and reviews {to: alice, amount: 100}.
    let (_, seen_by_b) = e.get(&e.finance2, &format!("/api/v1/approvals/{id}")).await;
    let b_digest = seen_by_b["args_digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    assert_eq!(b_digest, v["args_digest"].as_str().expect("digest"));

    // A decision without the digest, or with a malformed one, is refused.
    for body in [
        json!({"decision": "approve"}),
        json!({"decision": "approve", "args_digest": "abc"}),
    ] {
        let (status, p) = e.post(&e.finance2, &path, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
        assert_eq!(p["errors"][0]["field"], "args_digest", "{p}");
    }

    // A edits it to {to: mallory, amount: 990000} (counts as A's approval).
    let (status, edited) = e
        .decide(
            &e.finance,
            &id,
            json!({"decision": "edit", "final_args": {"to": "mallory", "amount": 990000}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["status"], "pending");
    let new_digest = edited["args_digest"].as_str().expect("digest").to_owned();
    assert_ne!(
        new_digest, b_digest,
        "the digest follows the arguments under review"
    );

    // B's approval of what B saw must not settle what A wrote.
    let r = e
        .http
        .post(e.server.url(&path))
        .bearer_auth(&e.finance2)
        .json(&json!({"decision": "approve", "args_digest": b_digest}))
        .send()
        .await
        .expect("decide");
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let p: Value = r.json().await.expect("json");
    assert_eq!(p["code"], "args_changed", "{p}");
    support::assert_detail_contains(&p, "changed since you reviewed");
    let (_, now) = e.get(&e.agent, &format!("/api/v1/approvals/{id}")).await;
    assert_eq!(now["status"], "pending", "{now}");
    assert_eq!(now["final_args"], Value::Null);
    assert_eq!(now["approvals"].as_array().map(Vec::len), Some(1), "{now}");
    assert_eq!(now["approvals"][0]["by"], "user:fin@example.com");

    // A reject with the stale digest is refused too: every decision is bound.
    support::assert_problem(
        e.post(
            &e.finance2,
            &path,
            json!({"decision": "reject", "reason": "no", "args_digest": b_digest}),
        )
        .await,
        StatusCode::CONFLICT,
        "args_changed",
    );

    // Having reviewed the edited arguments, B may decide them.
    let (status, done) = e
        .post(
            &e.finance2,
            &path,
            json!({"decision": "reject", "reason": "not to mallory", "args_digest": new_digest}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "rejected");

    // The log says which arguments each decider reviewed.
    let admin = e.server.user_token("root@example.com", "admin", &[]);
    let (_, page) = e
        .get(&admin, "/api/v1/audit/entries?start=0&end=1000")
        .await;
    let decided: Vec<&Value> = page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|x| x["entry"]["approval_id"] == id.as_str())
        .filter(|x| {
            x["entry"]["type"] == "approval.voted" || x["entry"]["type"] == "approval.decided"
        })
        .collect();
    assert_eq!(decided.len(), 2, "{page}");
    assert_eq!(decided[0]["entry"]["data"]["args_digest"], b_digest);
    assert_eq!(decided[1]["entry"]["data"]["args_digest"], new_digest);
}
