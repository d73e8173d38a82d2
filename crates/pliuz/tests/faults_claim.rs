//! Exactly-once execution: the execution claim (`approved → executing`)
//! against the real binary over real HTTP, on SQLite and on two PostgreSQL
//! replicas. The SDK side (two agent processes, a report that never lands, a
//! hung connection) is in sdk/python/tests/test_exactly_once.py.

mod support;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use support::{env_vars, finance_policy, send_json, Server, FAST_OUTBOX};

fn config() -> String {
    [
        finance_policy("auto", "auto_tool", r#"auto_approve = "true""#),
        finance_policy(
            "brief",
            "brief_tool",
            "auto_approve = \"true\"\nexecute_within = \"1s\"",
        ),
        finance_policy("human", "human_tool", ""),
    ]
    .concat()
}

struct Env {
    servers: Vec<Server>,
    http: Client,
    agent: String,
    other_agent: String,
    finance: String,
    auditor: String,
}

async fn env(database_url: Option<String>, replicas: usize) -> Env {
    let first = Server::start_with(&config(), database_url, vec![]).await;
    let agent = first.agent_key("support-bot");
    let other_agent = first.agent_key("other-bot");
    let finance = first.user_token("fin@example.com", "approver", &["finance"]);
    let auditor = first.user_token("audit@example.com", "auditor", &[]);
    let mut servers = vec![first];
    for _ in 1..replicas {
        let replica = Server::replica_of(&servers[0]).await;
        servers.push(replica);
    }
    Env {
        servers,
        http: Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("http client"),
        agent,
        other_agent,
        finance,
        auditor,
    }
}

impl Env {
    async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.servers[0].url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status();
        let ct = support::content_type(&r);
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            assert_eq!(ct, "application/problem+json", "{status} {v}");
        }
        (status, v)
    }

    async fn get(&self, token: &str, path: &str) -> Value {
        self.http
            .get(self.servers[0].url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json")
    }

    async fn create(&self, tool: &str, n: u64) -> Value {
        let (status, v) = self
            .post(
                &self.agent,
                "/api/v1/approvals",
                json!({"tool_name": tool, "tool_args": {"n": n}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v
    }

    async fn execution(&self, token: &str, id: &str, body: Value) -> (StatusCode, Value) {
        self.post(token, &format!("/api/v1/approvals/{id}/execution"), body)
            .await
    }

    /// An execution call that must be refused with `status` and problem `code`.
    async fn execution_refused(
        &self,
        token: &str,
        id: &str,
        body: Value,
        status: StatusCode,
        code: &str,
    ) -> Value {
        let (s, p) = self.execution(token, id, body).await;
        assert_eq!((s, p["code"].clone()), (status, json!(code)), "{p}");
        p
    }

    /// A claim (`"outcome": "started"`) that must be refused with `status`
    /// and problem `code`.
    async fn claim_refused(&self, token: &str, id: &str, status: StatusCode, code: &str) -> Value {
        let started = json!({"outcome": "started"});
        self.execution_refused(token, id, started, status, code)
            .await
    }

    /// The agent's success report under `claim_id` that must be refused
    /// with 409 and problem `code`.
    async fn success_report_refused(&self, id: &str, claim_id: &str, code: &str) {
        let report = json!({"outcome": "success", "claim_id": claim_id});
        self.execution_refused(&self.agent, id, report, StatusCode::CONFLICT, code)
            .await;
    }

    async fn audit_kinds(&self, id: &str) -> Vec<String> {
        let page = self
            .get(&self.auditor, "/api/v1/audit/entries?start=0&end=1000")
            .await;
        assert!(page["entries"].is_array(), "{page}");
        page["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.to_string().contains(id))
            .filter_map(|e| {
                e.pointer("/entry/type")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect()
    }
}

/// Many callers claim the same approved request at once (spread over every
/// replica): exactly one gets 200, every other one 409 execution_claimed.
async fn racing_claims(e: &Env, rounds: u64, callers: usize) {
    for round in 0..rounds {
        let a = e.create("auto_tool", round).await;
        assert_eq!(a["status"], "approved", "{a}");
        let id = a["id"].as_str().expect("id").to_owned();
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(callers));
        let tasks: Vec<_> = (0..callers)
            .map(|n| {
                let (http, agent, start) = (e.http.clone(), e.agent.clone(), start.clone());
                let url = e.servers[n % e.servers.len()]
                    .url(&format!("/api/v1/approvals/{id}/execution"));
                tokio::spawn(async move {
                    start.wait().await;
                    let claim = json!({"outcome": "started", "claim_id": format!("caller-{n}")});
                    send_json(http.post(url).bearer_auth(agent).json(&claim)).await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.expect("task"));
        }
        let winners: Vec<&Value> = answers
            .iter()
            .filter(|(s, _)| *s == StatusCode::OK)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {answers:?}");
        for (s, v) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
            assert_eq!(*s, StatusCode::CONFLICT, "{v}");
            assert_eq!(v["code"], "execution_claimed", "{v}");
            support::assert_detail_contains(v, "the outcome is unknown — check");
        }
        let stored = e.get(&e.agent, &format!("/api/v1/approvals/{id}")).await;
        assert_eq!(stored["status"], "executing");
        assert_eq!(
            stored["execution"]["claim_id"],
            winners[0]["execution"]["claim_id"]
        );
        assert_eq!(stored["execution"]["outcome"], Value::Null);
        let kinds = e.audit_kinds(&id).await;
        assert_eq!(
            kinds
                .iter()
                .filter(|k| *k == "approval.execution_claimed")
                .count(),
            1,
            "{kinds:?}"
        );
    }
}

#[tokio::test]
async fn racing_claims_have_exactly_one_winner_on_sqlite() {
    let e = env(None, 1).await;
    racing_claims(&e, 10, 12).await;
}

#[tokio::test]
async fn racing_claims_have_exactly_one_winner_across_postgres_replicas() {
    let url = support::fresh_postgres_database().await;
    let e = env(Some(url), 2).await;
    racing_claims(&e, 10, 12).await;
}

#[tokio::test]
async fn the_claim_and_the_report_follow_the_contract() {
    let e = env(None, 1).await;
    // Pending: nothing to claim yet.
    let pending = e.create("human_tool", 1).await;
    let id = pending["id"].as_str().expect("id").to_owned();
    assert_eq!(pending["execute_before"], Value::Null);
    e.claim_refused(&e.agent, &id, StatusCode::CONFLICT, "invalid_transition")
        .await;
    let (s, v) = e
        .post(
            &e.finance,
            &format!("/api/v1/approvals/{id}/decision"),
            support::with_digest(
                &e.http,
                &e.servers[0],
                &e.finance,
                &id,
                json!({"decision": "approve"}),
            )
            .await,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["execute_before"].is_string(), "{v}");

    // Only the requesting agent: another agent does not see it, a person may not claim.
    e.claim_refused(&e.other_agent, &id, StatusCode::NOT_FOUND, "not_found")
        .await;
    e.claim_refused(&e.finance, &id, StatusCode::FORBIDDEN, "forbidden")
        .await;
    // Bad input gets a clear 422 and changes nothing.
    for (body, field) in [
        (
            json!({"outcome": "started", "claim_id": "has space"}),
            "claim_id",
        ),
        (json!({"outcome": "started", "latency_ms": 3}), "latency_ms"),
        (json!({"outcome": "finished"}), "outcome"),
    ] {
        let (s, p) = e.execution(&e.agent, &id, body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
        assert_eq!(p["errors"][0]["field"], field, "{p}");
    }
    // A report before the claim is refused.
    e.success_report_refused(&id, "mine", "execution_not_claimed")
        .await;

    let my_claim = json!({"outcome": "started", "claim_id": "mine"});
    let (s, claimed) = e.execution(&e.agent, &id, my_claim.clone()).await;
    assert_eq!(s, StatusCode::OK, "{claimed}");
    assert_eq!(claimed["status"], "executing");
    assert_eq!(claimed["execution"]["claim_id"], "mine");
    assert!(claimed["execution"]["claimed_at"].is_string());
    // Repeating one's own claim is harmless; anyone else is told the outcome is unknown.
    let (s, again) = e.execution(&e.agent, &id, my_claim).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again["execution"], claimed["execution"]);
    e.claim_refused(&e.agent, &id, StatusCode::CONFLICT, "execution_claimed")
        .await;
    // A report with the wrong claim, or none, is refused.
    for body in [
        json!({"outcome": "success", "claim_id": "yours"}),
        json!({"outcome": "success"}),
    ] {
        e.execution_refused(&e.agent, &id, body, StatusCode::CONFLICT, "claim_mismatch")
            .await;
    }
    let (s, done) = e
        .execution(
            &e.agent,
            &id,
            json!({"outcome": "error", "claim_id": "mine", "latency_ms": 5, "output_excerpt": "card declined"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "executed");
    assert_eq!(done["execution"]["outcome"], "error");
    assert_eq!(done["execution"]["claim_id"], "mine");
    let p = e
        .claim_refused(&e.agent, &id, StatusCode::CONFLICT, "execution_claimed")
        .await;
    support::assert_detail_contains(&p, "already executed");

    let kinds = e.audit_kinds(&id).await;
    assert_eq!(
        kinds,
        [
            "approval.created",
            "approval.decided",
            "approval.execution_claimed",
            "approval.executed"
        ],
        "one entry per change; refused and repeated calls write nothing"
    );
    let listed = e.get(&e.agent, "/api/v1/approvals?status=executed").await;
    assert!(listed["items"].to_string().contains(&id));
}

#[tokio::test]
async fn execute_within_closes_the_claim() {
    let e = env(None, 1).await;
    let a = e.create("brief_tool", 1).await;
    let id = a["id"].as_str().expect("id").to_owned();
    assert_eq!(a["status"], "approved");
    let decided = chrono_ms(&a["decided_at"]);
    assert_eq!(chrono_ms(&a["execute_before"]) - decided, 1000, "{a}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let p = e
        .claim_refused(&e.agent, &id, StatusCode::CONFLICT, "execution_expired")
        .await;
    support::assert_detail_contains(&p, "execute_within");
    // Nor is a late report without a claim accepted (issue 9: a report after the deadline).
    e.success_report_refused(&id, "late", "execution_expired")
        .await;
    let stored = e.get(&e.agent, &format!("/api/v1/approvals/{id}")).await;
    assert_eq!(stored["status"], "approved");
    assert_eq!(stored["execution"], Value::Null);
}

#[tokio::test]
async fn a_bad_execute_within_is_refused_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pliuz.toml");
    std::fs::write(
        &path,
        "[[policy]]\nname = \"p\"\napprovers = [\"group:x\"]\nexecute_within = \"0s\"\n",
    )
    .expect("write");
    let out = std::process::Command::new(support::BIN)
        .args(["policy", "check"])
        .arg(&path)
        .output()
        .expect("run pliuz policy check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        format!("{stdout}{stderr}")
            .contains(":4: policy 'p': execute_within must be between 1s and 366 days"),
        "{stdout}{stderr}"
    );
}

#[tokio::test]
async fn the_inbox_shows_an_unreported_claim_as_outcome_unknown() {
    let e = env(None, 1).await;
    let a = e.create("auto_tool", 7).await;
    let id = a["id"].as_str().expect("id").to_owned();
    let (s, v) = e
        .execution(&e.agent, &id, json!({"outcome": "started"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let cookie = inbox_login(&e, "fin@example.com").await;
    let page = inbox_get(&e, &cookie, &format!("/requests/{id}")).await;
    assert!(
        page.contains("Outcome unknown — check before retrying."),
        "{page}"
    );
    assert!(page.contains("status-executing"), "{page}");
    assert!(page.contains("Run before"), "{page}");
    assert!(page.contains("approval.execution_claimed"), "{page}");
    let history = inbox_get(&e, &cookie, "/history?status=executing").await;
    assert!(history.contains(&format!("/requests/{id}")), "{history}");
    assert!(
        history.contains("outcome unknown — check before retrying"),
        "{history}"
    );
}

fn chrono_ms(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default())
        .map(|t| t.timestamp_millis())
        .unwrap_or_else(|e| panic!("not a time: {v}: {e}"))
}

/// Logs `email` in to the inbox; returns the `Cookie` header to send.
async fn inbox_login(e: &Env, email: &str) -> String {
    let r = support::web::log_in(&support::web::no_redirects(), &e.servers[0], email).await;
    assert!(r.status().is_redirection(), "log-in failed: {}", r.status());
    support::web::cookie_header(&r)
}

async fn inbox_get(e: &Env, cookie: &str, path: &str) -> String {
    let r = e
        .http
        .get(e.servers[0].url(path))
        .header("cookie", cookie)
        .send()
        .await
        .expect("inbox page");
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.text().await.expect("html")
}

#[tokio::test]
async fn slack_shows_the_claim_as_outcome_unknown_then_the_reported_outcome() {
    use support::slack_fake::FakeSlack;
    let fake = FakeSlack::start("xoxb-claim-test").await;
    let config = format!(
        "[slack]\nbot_token = \"xoxb-claim-test\"\nsigning_secret = \"claim-test-secret\"\napi_url = \"{}\"\ndefault_channel = \"#approvals\"\n{}",
        fake.api_url(),
        config()
    );
    let server = Server::start_with(&config, None, env_vars(&FAST_OUTBOX)).await;
    let agent = server.agent_key("support-bot");
    let http = Client::new();
    let post = |path: String, body: Value| {
        let request = http.post(server.url(&path)).bearer_auth(&agent).json(&body);
        async move {
            let (status, answer) = send_json(request).await;
            assert!(status.is_success(), "{path}: {status}");
            answer
        }
    };
    let a = post(
        "/api/v1/approvals".into(),
        json!({"tool_name": "auto_tool", "tool_args": {"n": 1}}),
    )
    .await;
    let id = a["id"].as_str().expect("id").to_owned();
    let wait = Duration::from_secs(20);
    let needle = format!("/requests/{id}");
    fake.wait_for("the request message", wait, |c| {
        c.method == "chat.postMessage" && c.ok() && c.body.to_string().contains(&needle)
    })
    .await;
    let claimed = post(
        format!("/api/v1/approvals/{id}/execution"),
        json!({"outcome": "started"}),
    )
    .await;
    fake.wait_for("an update saying the outcome is unknown", wait, |c| {
        c.method == "chat.update"
            && c.ok()
            && c.body
                .to_string()
                .contains("outcome unknown — check before retrying")
    })
    .await;
    post(
        format!("/api/v1/approvals/{id}/execution"),
        json!({"outcome": "success", "claim_id": claimed["execution"]["claim_id"]}),
    )
    .await;
    fake.wait_for("an update with the reported outcome", wait, |c| {
        c.method == "chat.update"
            && c.ok()
            && c.body.to_string().contains("the agent ran it (success)")
    })
    .await;
}
