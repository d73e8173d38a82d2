//! Questions from agents end to end: the real binary over real HTTP, on
//! SQLite and PostgreSQL: asked, waited for, answered (or refused), expired,
//! audited; durable runs paused on them. Also the policies' `reject_reasons`
//! (checked at load).

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{assert_detail_contains, finance_policy, long_poll, send_json};

fn config() -> String {
    [
        finance_policy("support", "lookup", r#"expires_in = "30m""#),
        finance_policy("quick", "quick_tool", r#"expires_in = "1s""#),
    ]
    .concat()
}

/// The shared crew and an admin, who reads the audit log.
struct Env {
    crew: support::Crew,
    admin: String,
}

/// The crew's server, client and people read as the Env's own.
impl std::ops::Deref for Env {
    type Target = support::Crew;

    fn deref(&self) -> &support::Crew {
        &self.crew
    }
}

async fn env_on(database_url: Option<String>) -> Env {
    let crew = support::Crew::start(&config(), "support-bot", database_url, vec![]).await;
    let admin = crew.server.user_token("boss@example.com", "admin", &[]);
    Env { crew, admin }
}

impl Env {
    async fn ask(&self, body: Value) -> (StatusCode, Value) {
        send_json(
            self.http
                .post(self.server.url("/api/v1/questions"))
                .bearer_auth(&self.agent)
                .json(&body),
        )
        .await
    }

    async fn answer(&self, token: &str, id: &str, body: Value) -> (StatusCode, Value) {
        send_json(
            self.http
                .post(self.server.url(&format!("/api/v1/questions/{id}/answer")))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    /// The agent claims a run to resume it (`POST /api/v1/runs/{id}/claim`).
    async fn claim_run(&self, run_id: &str) -> (StatusCode, Value) {
        let path = format!("/api/v1/runs/{run_id}/claim");
        send_json(
            self.http
                .post(self.server.url(&path))
                .bearer_auth(&self.agent),
        )
        .await
    }

    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        send_json(self.http.get(self.server.url(path)).bearer_auth(token)).await
    }

    async fn audit_of(&self, question_id: &str) -> Vec<Value> {
        let all =
            support::audit_entries(&self.http, &self.server, &self.admin, "start=0&end=200").await;
        let of_question = |e: &Value| e["data"]["question_id"] == question_id;
        all.into_iter().filter(of_question).collect()
    }
}

async fn a_question_is_asked_waited_for_and_answered_once(database_url: Option<String>) {
    let e = env_on(database_url).await;
    let (status, q) = e
        .ask(json!({
            "text": "Which account should the refund go to?",
            "choices": ["card", {"value": "credit", "label": "Store credit"}],
            "allow_free_text": true,
            "policy": "support",
            "originator": "user:fin2@example.com",
            "idempotency_key": "q-1",
        }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{q}");
    let id = q["id"].as_str().expect("id").to_owned();
    assert_eq!(q["status"], "pending");
    assert_eq!(
        q["choices"][1],
        json!({"value": "credit", "label": "Store credit"})
    );
    assert_eq!(q["answer"], Value::Null);

    // A repeat with the same key is the same question; a different one is refused.
    let (status, again) = e
        .ask(json!({"text": "Which account should the refund go to?", "choices": ["card", {"value": "credit", "label": "Store credit"}], "allow_free_text": true, "policy": "support", "idempotency_key": "q-1", "originator": "user:fin2@example.com"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        (again["id"].as_str(), again["is_replay"].as_bool()),
        (Some(id.as_str()), Some(true))
    );
    let (status, p) = e
        .ask(json!({"text": "Something else?", "policy": "support", "idempotency_key": "q-1"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");

    // Listed for the policy's approvers, not for others.
    let (_, listed) = e.get(&e.finance, "/api/v1/questions").await;
    assert!(
        listed["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|x| x["id"] == id.as_str())),
        "{listed}"
    );
    let (_, none) = e.get(&e.outsider, "/api/v1/questions").await;
    assert_eq!(none["items"], json!([]));
    let (status, _) = e.get(&e.agent, "/api/v1/questions").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The agent waits; the answer wakes it.
    let started = Instant::now();
    let poll = long_poll(
        &e.http,
        e.server.url(&format!("/api/v1/questions/{id}?wait=30")),
        &e.agent,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Refusals: an agent key, a non-approver, the originator, a bad answer.
    let (status, p) = e.answer(&e.agent, &id, json!({"choice": "card"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
    let (status, p) = e.answer(&e.outsider, &id, json!({"choice": "card"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{p}");
    let (status, p) = e.answer(&e.finance2, &id, json!({"choice": "card"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
    assert_detail_contains(&p, "somebody else must answer");
    let (status, p) = e.answer(&e.finance, &id, json!({"choice": "cash"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    let (status, p) = e.answer(&e.finance, &id, json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");

    let (status, answered) = e
        .answer(
            &e.finance,
            &id,
            json!({"choice": "credit", "text": "she asked for it"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answered}");
    let (at, polled) = poll.await.expect("long-poll task");
    assert!(at.duration_since(started) < Duration::from_secs(20));
    assert_eq!(polled["status"], "answered", "{polled}");
    let a = &polled["answer"];
    assert_eq!(a["choice"], "credit");
    assert_eq!(a["choice_label"], "Store credit");
    assert_eq!(a["text"], "she asked for it");
    assert_eq!(a["answered_by"], "user:fin@example.com");
    assert!(a["answered_at"].as_str().is_some());

    // Answered once.
    let (status, p) = e.answer(&e.finance, &id, json!({"choice": "card"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    // The others may not read it at all.
    let (status, _) = e.get(&e.outsider, &format!("/api/v1/questions/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let kinds: Vec<String> = e
        .audit_of(&id)
        .await
        .iter()
        .map(|x| x["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(kinds, ["question.asked", "question.answered"]);
    let entries = e.audit_of(&id).await;
    assert_eq!(entries[0]["actor"], "agent:support-bot");
    assert_eq!(
        entries[0]["data"]["text"],
        "Which account should the refund go to?"
    );
    assert_eq!(entries[1]["actor"], "user:fin@example.com");
    assert_eq!(entries[1]["data"]["choice"], "credit");
}

support::on_both_databases!(a_question_is_asked_waited_for_and_answered_once);

#[tokio::test]
async fn an_unanswered_question_expires_and_is_audited() {
    let e = env_on(None).await;
    let (status, q) = e.ask(json!({"text": "Anyone?", "policy": "quick"})).await;
    assert_eq!(status, StatusCode::CREATED, "{q}");
    assert_eq!(q["allow_free_text"], true);
    let id = q["id"].as_str().expect("id").to_owned();
    // Nobody polls: the expiry worker settles it; the long-poll then sees it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, q) = e
        .get(&e.agent, &format!("/api/v1/questions/{id}?wait=10"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(q["status"], "expired", "{q}");
    let (status, p) = e.answer(&e.finance, &id, json!({"text": "late"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    let entries = e.audit_of(&id).await;
    assert_eq!(
        entries.last().map(|x| x["type"].clone()),
        Some(json!("question.expired"))
    );
    assert_eq!(
        entries.last().map(|x| x["actor"].clone()),
        Some(json!("system"))
    );
}

#[tokio::test]
async fn questions_are_validated_with_messages_that_say_what_to_fix() {
    let e = env_on(None).await;
    for (body, field) in [
        (json!({"text": "", "policy": "support"}), "text"),
        (
            json!({"text": "x", "policy": "support", "choices": ["a", "a"]}),
            "choices[1].value",
        ),
        (
            json!({"text": "x", "policy": "support", "allow_free_text": false}),
            "allow_free_text",
        ),
        (
            json!({"text": "x", "policy": "support", "expires_in_seconds": 0}),
            "expires_in_seconds",
        ),
    ] {
        let (status, p) = e.ask(body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {p}");
        assert!(
            p["errors"]
                .as_array()
                .is_some_and(|es| es.iter().any(|x| x["field"] == field)),
            "{body}: {p}"
        );
    }
    let (status, p) = e.ask(json!({"text": "x", "policy": "nope"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    let (status, p) = e.ask(json!({"text": "x"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert!(p.to_string().contains("policy"), "{p}");
    // People do not ask.
    let (status, _) = send_json(
        e.http
            .post(e.server.url("/api/v1/questions"))
            .bearer_auth(&e.finance)
            .json(&json!({"text": "x", "policy": "support"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[test]
fn policy_check_validates_reject_reasons() {
    let dir = tempfile::tempdir().expect("tempdir");
    let check = |text: &str| {
        let path = dir.path().join("pliuz.toml");
        std::fs::write(&path, text).expect("write");
        std::process::Command::new(env!("CARGO_BIN_EXE_pliuz"))
            .args(["policy", "check"])
            .arg(&path)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .expect("pliuz policy check")
    };
    let ok = check(&finance_policy(
        "r",
        "t",
        r#"reject_reasons = ["wrong amount", "wrong customer"]"#,
    ));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for (settings, says) in [
        (r#"reject_reasons = ["same", "same"]"#, "listed twice"),
        (r#"reject_reasons = [""]"#, "empty"),
        (
            "decisions = [\"approve\"]\nreject_reasons = [\"x\"]",
            "does not include 'reject'",
        ),
    ] {
        let out = check(&finance_policy("r", "t", settings));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{settings}");
        assert!(
            stderr.contains(says) && stderr.contains("pliuz.toml:"),
            "{settings}: {stderr}"
        );
    }
}

/// A durable run paused on a question (and an approval-free state): it
/// waits until the question is settled, then is ready, with the audit
/// showing the pause, the answer or expiry, and the readiness in order.
async fn run_paused_on_question(e: &Env, id: &str) -> String {
    let (status, run) = send_json(
        e.http
            .post(e.server.url("/api/v1/runs"))
            .bearer_auth(&e.agent)
            .json(&json!({"state": "{\"turn\": 3}", "approval_ids": [], "question_ids": [id]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    assert_eq!(run["status"], "waiting", "{run}");
    assert_eq!(run["question_ids"], json!([id]));
    let run_id = run["id"].as_str().expect("run id").to_owned();
    // Not claimable while the question is pending.
    let (status, p) = e.claim_run(&run_id).await;
    assert_eq!(status, StatusCode::CONFLICT, "{p}");
    assert_detail_contains(&p, "questions to be answered");
    run_id
}

/// The audit entries (type, data) about this run or question, in order.
async fn run_audit(e: &Env, run_id: &str, question_id: &str) -> Vec<(String, Value)> {
    let all = support::audit_entries(&e.http, &e.server, &e.admin, "start=0&end=500").await;
    all.into_iter()
        .filter(|x| x["data"]["run_id"] == run_id || x["data"]["question_id"] == question_id)
        .map(|x| {
            (
                x["type"].as_str().unwrap_or("").to_owned(),
                x["data"].clone(),
            )
        })
        .collect()
}

async fn claim_sees_answer(e: &Env, run_id: &str, question_id: &str, status: &str) -> Value {
    let (s, run) = e
        .get(&e.agent, &format!("/api/v1/runs/{run_id}?wait=10"))
        .await;
    assert_eq!(s, StatusCode::OK, "{run}");
    assert_eq!(run["status"], "ready", "{run}");
    let (s, claim) = e.claim_run(run_id).await;
    assert_eq!(s, StatusCode::OK, "{claim}");
    assert_eq!(claim["questions"][0]["id"], question_id, "{claim}");
    assert_eq!(claim["questions"][0]["status"], status, "{claim}");
    claim
}

support::on_both_databases!(a_run_paused_on_a_question_is_ready_once_it_is_answered);

async fn a_run_paused_on_a_question_is_ready_once_it_is_answered(database_url: Option<String>) {
    let e = env_on(database_url).await;
    let (status, q) = e
        .ask(json!({"text": "Card or credit?", "choices": ["card", "credit"], "policy": "support", "idempotency_key": "ask_human:call_1"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{q}");
    let id = q["id"].as_str().expect("id").to_owned();
    let run_id = run_paused_on_question(&e, &id).await;
    // Another agent's question cannot be waited on.
    let other = e.server.agent_key("other-bot");
    let (status, p) = send_json(
        e.http
            .post(e.server.url("/api/v1/runs"))
            .bearer_auth(&other)
            .json(&json!({"state": "{}", "approval_ids": [], "question_ids": [id]})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_detail_contains(&p, "question_ids");

    let (status, a) = e.answer(&e.finance, &id, json!({"choice": "credit"})).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let claim = claim_sees_answer(&e, &run_id, &id, "answered").await;
    assert_eq!(claim["questions"][0]["answer"]["choice"], "credit");

    let kinds: Vec<_> = run_audit(&e, &run_id, &id).await;
    let order: Vec<&str> = kinds.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        order,
        [
            "question.asked",
            "run.paused",
            "question.answered",
            "run.ready",
            "run.resumed"
        ],
        "{kinds:?}"
    );
    assert_eq!(kinds[1].1["question_ids"], json!([id]));
    assert_eq!(kinds[3].1["question_ids"], json!([id]));
}

#[tokio::test]
async fn a_run_paused_on_a_question_is_ready_once_it_expires() {
    let e = env_on(None).await;
    let (status, q) = e
        .ask(json!({"text": "Anyone?", "policy": "support", "expires_in_seconds": 3}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{q}");
    let id = q["id"].as_str().expect("id").to_owned();
    let run_id = run_paused_on_question(&e, &id).await;
    // Nobody answers: the expiry worker settles the question and readies the run.
    let started = Instant::now();
    let claim = claim_sees_answer(&e, &run_id, &id, "expired").await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(claim["questions"][0]["answer"].is_null(), "{claim}");
    let kinds = run_audit(&e, &run_id, &id).await;
    let order: Vec<&str> = kinds.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        order,
        [
            "question.asked",
            "run.paused",
            "question.expired",
            "run.ready",
            "run.resumed"
        ],
        "{kinds:?}"
    );
    assert_eq!(kinds[3].1["question_ids"], json!([id]));
}
