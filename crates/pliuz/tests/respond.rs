//! The `respond` decision end to end: the real binary, real HTTP, real
//! SQLite. A person answers in the tool's place where the policy lists
//! `respond`; the request settles as `responded`, is audited, and can never
//! be claimed for execution. Where the policy does not list it: 422.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{content_type, finance_policy, send_json};

fn config() -> String {
    [
        finance_policy(
            "answers",
            "ask_user",
            r#"decisions = ["approve", "reject", "respond"]
required_approvals = 2"#,
        ),
        finance_policy(
            "plain",
            "send_note",
            r#"decisions = ["approve", "reject", "edit"]"#,
        ),
    ]
    .concat()
}

/// `impl Env` below adds this file's requests to the shared crew.
type Env = support::Crew;

async fn env() -> Env {
    Env::start(&config(), "assistant", None, vec![]).await
}

impl Env {
    async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let req = self.http.post(self.server.url(path));
        send_json(req.bearer_auth(token).json(&body)).await
    }

    async fn create(&self, tool: &str) -> String {
        let (status, v) = self
            .post(
                &self.agent,
                "/api/v1/approvals",
                json!({"tool_name": tool, "tool_args": {"question": "Which room?"}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["id"].as_str().expect("id").to_owned()
    }

    async fn decide(&self, id: &str, body: Value) -> (StatusCode, Value) {
        let body = support::with_digest(&self.http, &self.server, &self.finance, id, body).await;
        self.post(
            &self.finance,
            &format!("/api/v1/approvals/{id}/decision"),
            body,
        )
        .await
    }
}

#[tokio::test]
async fn respond_settles_the_request_with_the_message_and_it_can_never_run() {
    let e = env().await;
    let id = e.create("ask_user").await;
    let (status, v) = e
        .decide(
            &id,
            json!({"decision": "respond", "reason": "Room 4, at ten."}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // One answer settles it, even under a quorum of two: nothing runs.
    assert_eq!(v["status"], "responded");
    assert_eq!(v["decision"]["outcome"], "responded");
    assert_eq!(v["decision"]["reason"], "Room 4, at ten.");
    assert_eq!(v["decision"]["by"], "user:fin@example.com");
    assert_eq!(v["final_args"], Value::Null);
    assert_eq!(
        v["allowed_decisions"],
        json!(["approve", "reject", "respond"])
    );

    // The agent's claim is refused, whatever claim id it brings.
    let execution = format!("/api/v1/approvals/{id}/execution");
    let (status, p) = e
        .post(&e.agent, &execution, json!({"outcome": "started"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    support::assert_detail_contains(&p, "responded");
    let report = json!({"outcome": "success", "claim_id": "c1"});
    let (status, _) = e.post(&e.agent, &execution, report).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Nor can anyone decide again.
    let (status, _) = e.decide(&id, json!({"decision": "approve"})).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // The agent's long-poll answers at once with the settled request.
    let (status, got) = send_json(
        e.http
            .get(e.server.url(&format!("/api/v1/approvals/{id}?wait=5")))
            .bearer_auth(&e.agent),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["status"], "responded");
    assert_eq!(got["decision"]["reason"], "Room 4, at ten.");

    // Audited: the decision entry names the decision, the outcome and the message.
    let admin = e.server.user_token("boss@example.com", "admin", &[]);
    let entries = support::audit_entries(&e.http, &e.server, &admin, "start=0&end=100").await;
    let decided = entries
        .iter()
        .find(|x| x["type"] == "approval.decided" && x["approval_id"] == id.as_str())
        .unwrap_or_else(|| panic!("no approval.decided entry for {id}: {entries:?}"));
    assert_eq!(decided["data"]["decision"], "respond");
    assert_eq!(decided["data"]["outcome"], "responded");
    assert_eq!(decided["data"]["reason"], "Room 4, at ten.");
    assert_eq!(decided["actor"], "user:fin@example.com");

    // Listed under its own status.
    let (status, list) = send_json(
        e.http
            .get(e.server.url("/api/v1/approvals?status=responded"))
            .bearer_auth(&e.finance),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["items"][0]["id"], id.as_str());
}

#[tokio::test]
async fn a_policy_without_respond_refuses_it_with_422() {
    let e = env().await;
    let id = e.create("send_note").await;
    let body = support::with_digest(
        &e.http,
        &e.server,
        &e.finance,
        &id,
        json!({"decision": "respond", "reason": "no need, done already"}),
    )
    .await;
    let r = e
        .http
        .post(e.server.url(&format!("/api/v1/approvals/{id}/decision")))
        .bearer_auth(&e.finance)
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(content_type(&r), "application/problem+json");
    let p: Value = r.json().await.expect("json");
    assert_eq!(p["code"], "decision_not_allowed");
    support::assert_detail_contains(&p, "does not allow the decision 'respond'");
    support::assert_detail_contains(&p, "approve, reject, edit");
    // Nothing changed.
    let (_, v) = send_json(
        e.http
            .get(e.server.url(&format!("/api/v1/approvals/{id}")))
            .bearer_auth(&e.finance),
    )
    .await;
    assert_eq!(v["status"], "pending");
}

#[tokio::test]
async fn a_respond_needs_its_message() {
    let e = env().await;
    let id = e.create("ask_user").await;
    for body in [
        json!({"decision": "respond"}),
        json!({"decision": "respond", "reason": "   "}),
    ] {
        let (status, p) = e.decide(&id, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
        assert_eq!(p["errors"][0]["field"], "reason", "{p}");
        assert!(
            p["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("is required to respond")),
            "{p}"
        );
    }
    let (status, p) = e
        .decide(
            &id,
            json!({"decision": "respond", "reason": "x", "final_args": {"question": "?"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["errors"][0]["field"], "final_args", "{p}");
}

#[tokio::test]
async fn policy_check_accepts_respond_and_names_it_in_its_errors() {
    let e = env().await;
    support::assert_policy_check_passes(&e.server);
    let mistakes = support::policy_check_fails(
        &e.server,
        "[[policy]]\nname = \"x\"\ntools = [\"t\"]\napprovers = [\"group:finance\"]\ndecisions = [\"approve\", \"answer\"]\n",
    );
    assert!(mistakes.contains("bad.toml:5:"), "{mistakes}");
    assert!(
        mistakes.contains("must be one of approve, reject, edit, respond"),
        "{mistakes}"
    );
}
