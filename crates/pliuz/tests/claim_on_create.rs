//! A create with `claim_id` that the policy approves at once is also the
//! execution claim, written in the same commit (issue #13); anything else
//! is left to the separate claim. The real binary over real HTTP, on SQLite
//! and PostgreSQL.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{assert_problem, audit_entries, send_json, Crew};

/// Small refunds are approved by the policy; larger ones wait for finance.
const CONFIG: &str = r#"
[[policy]]
name = "refunds"
tools = ["issue_refund"]
approvers = ["group:finance"]
decisions = ["approve", "reject"]
expires_in = "30m"
execute_within = "10m"
auto_approve = "args.amount_cents <= 1000"
"#;

async fn post(e: &Crew, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    send_json(
        e.http
            .post(e.server.url(path))
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

/// An agent's `POST /api/v1/approvals`.
async fn create(e: &Crew, body: Value) -> (StatusCode, Value) {
    post(e, &e.agent, "/api/v1/approvals", body).await
}

/// The agent's execution claim at `path` (`/api/v1/approvals/{id}/execution`).
async fn claim(e: &Crew, path: &str, claim_id: &str) -> (StatusCode, Value) {
    let body = json!({"outcome": "started", "claim_id": claim_id});
    post(e, &e.agent, path, body).await
}

fn refund(amount: i64, key: &str, claim_id: &str) -> Value {
    json!({
        "tool_name": "issue_refund",
        "tool_args": {"amount_cents": amount},
        "idempotency_key": key,
        "claim_id": claim_id,
    })
}

/// The audit entries of approval `id`, as `(type, data)`, oldest first.
async fn entries_of(e: &Crew, admin: &str, id: &str) -> Vec<(String, Value)> {
    audit_entries(&e.http, &e.server, admin, "start=0&end=1000")
        .await
        .into_iter()
        .filter(|x| x["approval_id"] == id)
        .map(|x| {
            (
                x["type"].as_str().unwrap_or_default().to_owned(),
                x["data"].clone(),
            )
        })
        .collect()
}

fn types(entries: &[(String, Value)]) -> Vec<&str> {
    entries.iter().map(|(t, _)| t.as_str()).collect()
}

async fn claims_on_create_only_what_the_policy_approves(database_url: Option<String>) {
    let e = Crew::start(CONFIG, "support-bot", database_url, vec![]).await;
    let admin = e.server.user_token("root@example.com", "admin", &[]);

    // Auto-approved: created, approved and claimed by one request.
    let body = refund(500, "call-1", "claim-a");
    let (status, created) = create(&e, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "executing", "{created}");
    assert_eq!(created["is_replay"], false);
    assert_eq!(created["decision"]["outcome"], "approved");
    assert_eq!(created["execution"]["claim_id"], "claim-a");
    assert!(created["execution"]["claimed_at"].is_string(), "{created}");
    assert!(created["execution"]["outcome"].is_null(), "{created}");
    assert!(created["execute_before"].is_string(), "{created}");
    let id = support::id_of(&created);
    let entries = entries_of(&e, &admin, &id).await;
    assert_eq!(
        types(&entries),
        [
            "approval.created",
            "approval.decided",
            "approval.execution_claimed"
        ],
        "{entries:?}"
    );
    let claimed = &entries[2].1;
    assert_eq!(claimed["claim_id"], "claim-a");
    assert_eq!(claimed["execute_before"], created["execute_before"]);
    assert_eq!(claimed["final_args"], created["final_args"]);

    // A replay (the answer was lost) shows the caller its own claim, unchanged.
    let (status, replay) = create(&e, body).await;
    assert_eq!(status, StatusCode::OK, "{replay}");
    assert_eq!(replay["is_replay"], true);
    assert_eq!(replay["id"], created["id"]);
    assert_eq!(replay["execution"], created["execution"]);
    // A replay with another claim id is not a claim: the stored one stands.
    let (status, other) = create(&e, refund(500, "call-1", "claim-b")).await;
    assert_eq!(status, StatusCode::OK, "{other}");
    assert_eq!(other["execution"]["claim_id"], "claim-a");
    assert_eq!(
        entries_of(&e, &admin, &id).await.len(),
        3,
        "no second claim entry"
    );

    // Only the holder runs it: another claim is refused, the holder's repeat is not.
    let execution = format!("/api/v1/approvals/{id}/execution");
    assert_problem(
        claim(&e, &execution, "claim-b").await,
        StatusCode::CONFLICT,
        "execution_claimed",
    );
    let (status, again) = claim(&e, &execution, "claim-a").await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["execution"], created["execution"]);
    let report = json!({"outcome": "success", "claim_id": "claim-a", "latency_ms": 3});
    let (status, done) = post(&e, &e.agent, &execution, report).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "executed");
    assert_eq!(done["execution"]["outcome"], "success");
    assert_eq!(
        types(&entries_of(&e, &admin, &id).await),
        [
            "approval.created",
            "approval.decided",
            "approval.execution_claimed",
            "approval.executed"
        ]
    );

    // Pending: the claim id changes nothing; the agent claims after the decision.
    let (status, pending) = create(&e, refund(5000, "call-2", "claim-c")).await;
    assert_eq!(status, StatusCode::CREATED, "{pending}");
    assert_eq!(pending["status"], "pending");
    assert!(pending["execution"].is_null(), "{pending}");
    let pid = support::id_of(&pending);
    let body = support::with_digest(
        &e.http,
        &e.server,
        &e.finance,
        &pid,
        json!({"decision": "approve"}),
    )
    .await;
    let (status, approved) = post(
        &e,
        &e.finance,
        &format!("/api/v1/approvals/{pid}/decision"),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], "approved");
    assert!(approved["execution"].is_null(), "{approved}");
    let (status, claimed) =
        claim(&e, &format!("/api/v1/approvals/{pid}/execution"), "claim-d").await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    assert_eq!(claimed["execution"]["claim_id"], "claim-d");

    // The claim id follows the execution endpoint's rule, and a refused
    // create leaves nothing behind.
    let (status, bad) = create(&e, refund(500, "call-3", "no spaces")).await;
    let problem = assert_problem(
        (status, bad),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
    );
    assert_eq!(problem["errors"][0]["field"], "claim_id", "{problem}");
    let (_, same_rule) = claim(&e, &execution, "no spaces").await;
    assert_eq!(problem["errors"], same_rule["errors"]);
    let (status, fresh) = create(&e, refund(500, "call-3", "claim-e")).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "nothing stored by the refused create: {fresh}"
    );

    // The log with the claims made on create verifies.
    let check = e.server.cli(&["audit", "check"], None);
    assert!(check.success, "{}{}", check.stdout, check.stderr);
}

#[tokio::test]
async fn claim_on_create_sqlite() {
    claims_on_create_only_what_the_policy_approves(None).await;
}

#[tokio::test]
async fn claim_on_create_postgres() {
    let url = support::fresh_postgres_database().await;
    claims_on_create_only_what_the_policy_approves(Some(url)).await;
}
