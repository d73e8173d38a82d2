//! Durable runs and webhooks end to end: the real binary over real HTTP,
//! real SQLite (and PostgreSQL where marked), a real local webhook receiver.

mod support;

use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Server, REFUNDS_POLICY};

/// Fast retries for the webhook tests.
fn fast_retries() -> Vec<(String, String)> {
    vec![
        ("PLIUZ_OUTBOX_BACKOFF_MS".into(), "200".into()),
        ("PLIUZ_OUTBOX_BACKOFF_MAX_MS".into(), "800".into()),
    ]
}

struct Env {
    server: Server,
    http: Client,
    agent: String,
    other_agent: String,
    finance: String,
}

async fn env_full(database_url: Option<String>, extra_env: Vec<(String, String)>) -> Env {
    let server = Server::start_with(REFUNDS_POLICY, database_url, extra_env).await;
    let agent = server.agent_key("support-bot");
    let other_agent = server.agent_key("other-bot");
    let finance = server.user_token("fin@example.com", "approver", &["finance"]);
    Env {
        server,
        http: Client::new(),
        agent,
        other_agent,
        finance,
    }
}

async fn env() -> Env {
    env_full(None, vec![]).await
}

/// A long-poll's answer (when and what), which must come within 10 s.
async fn woken(poll: tokio::task::JoinHandle<(Instant, Value)>) -> (Instant, Value) {
    tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("woken")
        .expect("long-poll task")
}

/// A claim of a run (`url`, its `/claim`) sent now in the background; yields
/// the status and the body.
fn spawn_claim(
    http: &Client,
    url: String,
    key: &str,
    lease_seconds: u64,
) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let request = http
        .post(url)
        .bearer_auth(key)
        .json(&json!({ "lease_seconds": lease_seconds }));
    tokio::spawn(async move {
        let r = request.send().await.unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    })
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

impl Env {
    async fn send(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self
            .http
            .request(method, self.server.url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.expect("request");
        let status = r.status();
        if status.is_client_error() || status.is_server_error() {
            let ct = support::content_type(&r);
            assert_eq!(ct, "application/problem+json", "errors are problem+json");
        }
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, token, path, Some(body))
            .await
    }

    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, token, path, None).await
    }

    async fn refund(&self) -> String {
        let (s, v) = self
            .post(
                &self.agent,
                "/api/v1/approvals",
                json!({"tool_name": "issue_refund", "tool_args": {"order_id": "A-1", "amount_cents": 5000}}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().expect("id").to_owned()
    }

    async fn approve(&self, id: &str) {
        let body = json!({"decision": "approve"});
        let body = support::with_digest(&self.http, &self.server, &self.finance, id, body).await;
        let path = format!("/api/v1/approvals/{id}/decision");
        let (s, v) = self.post(&self.finance, &path, body).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    async fn pause(&self, state: &str, approvals: &[&str]) -> Value {
        let (s, v) = self
            .post(
                &self.agent,
                "/api/v1/runs",
                json!({"state": state, "approval_ids": approvals, "metadata": {"ticket": 7}}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }

    async fn claim(&self, run: &str, lease: u64) -> (StatusCode, Value) {
        self.post(
            &self.agent,
            &format!("/api/v1/runs/{run}/claim"),
            json!({"lease_seconds": lease}),
        )
        .await
    }
}

#[tokio::test]
async fn pause_ready_claim_heartbeat_repause_complete() {
    let e = env().await;
    let a1 = e.refund().await;
    let a2 = e.refund().await;
    let state = r#"{"$schemaVersion":"1.0","turn":3,"messages":["refund order A-1"]}"#;
    let run = e.pause(state, &[&a1, &a2]).await;
    let id = run["id"].as_str().unwrap().to_owned();
    assert_eq!(run["status"], "waiting");
    assert_eq!(run["agent"], "support-bot");
    assert_eq!(run["state_sha256"], sha256_hex(state));
    assert_eq!(run["approval_ids"], json!([a1, a2]));
    assert_eq!(run["metadata"], json!({"ticket": 7}));
    assert_eq!(run["pause_count"], 1);
    assert!(run["lease_expires_at"].is_null());
    assert!(
        run.get("state").is_none(),
        "the run object never holds the state"
    );

    // Waiting: not claimable yet.
    support::assert_problem(
        e.claim(&id, 60).await,
        StatusCode::CONFLICT,
        "run_not_ready",
    );

    // The long-polls are woken when the last approval settles.
    let waiter = support::long_poll(
        &e.http,
        e.server.url(&format!("/api/v1/runs/{id}?wait=30")),
        &e.agent,
    );
    let lister = support::long_poll(
        &e.http,
        e.server.url("/api/v1/runs?status=ready&wait=30"),
        &e.agent,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    e.approve(&a1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "one approval is still pending");
    assert!(!lister.is_finished());
    let (_, v) = e.get(&e.agent, &format!("/api/v1/runs/{id}")).await;
    assert_eq!(v["status"], "waiting");
    let decided = Instant::now();
    e.approve(&a2).await;
    let (at, v) = woken(waiter).await;
    assert_eq!(v["status"], "ready", "{v}");
    assert!(at.duration_since(decided) < Duration::from_secs(2));
    let (_, v) = woken(lister).await;
    assert_eq!(v["items"][0]["id"], id, "{v}");

    // Claim: the state, its digest and the approvals.
    let (s, c) = e.claim(&id, 60).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(c["state"], state);
    assert_eq!(c["state_sha256"], sha256_hex(state));
    assert_eq!(c["run"]["status"], "running");
    assert!(c["run"]["lease_expires_at"].is_string());
    assert_eq!(c["approvals"][0]["id"], a1);
    assert_eq!(c["approvals"][1]["status"], "approved");
    let token = c["lease_token"].as_str().unwrap().to_owned();

    // A second claim while the lease is live is refused.
    support::assert_problem(e.claim(&id, 60).await, StatusCode::CONFLICT, "run_claimed");

    // Heartbeat extends the lease; a wrong token is refused.
    let (s, hb) = e
        .post(
            &e.agent,
            &format!("/api/v1/runs/{id}/heartbeat"),
            json!({"lease_token": token, "lease_seconds": 600}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{hb}");
    assert!(
        hb["lease_expires_at"].as_str().unwrap() > c["run"]["lease_expires_at"].as_str().unwrap()
    );
    support::assert_problem(
        e.post(
            &e.agent,
            &format!("/api/v1/runs/{id}/heartbeat"),
            json!({"lease_token": "pliuz_rl_wrong"}),
        )
        .await,
        StatusCode::CONFLICT,
        "lease_lost",
    );

    // Paused again under the same id, waiting for a new approval.
    let a3 = e.refund().await;
    let state2 = r#"{"$schemaVersion":"1.0","turn":5}"#;
    let (s, v) = e
        .send(
            reqwest::Method::PUT,
            &e.agent,
            &format!("/api/v1/runs/{id}"),
            Some(json!({"lease_token": token, "state": state2, "approval_ids": [a3]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "waiting");
    assert_eq!(v["pause_count"], 2);
    assert_eq!(v["state_sha256"], sha256_hex(state2));
    assert!(v["lease_expires_at"].is_null());
    // The old lease is gone with the re-pause.
    support::assert_problem(
        e.post(
            &e.agent,
            &format!("/api/v1/runs/{id}/complete"),
            json!({"lease_token": token, "outcome": "completed"}),
        )
        .await,
        StatusCode::CONFLICT,
        "lease_lost",
    );

    e.approve(&a3).await;
    let (_, v) = e.get(&e.agent, &format!("/api/v1/runs/{id}?wait=5")).await;
    assert_eq!(v["status"], "ready");
    let (s, c) = e.claim(&id, 60).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(c["state"], state2);
    let token = c["lease_token"].as_str().unwrap().to_owned();
    let out = sha256_hex("the final answer");
    let (s, v) = e
        .post(
            &e.agent,
            &format!("/api/v1/runs/{id}/complete"),
            json!({"lease_token": token, "outcome": "completed", "output_sha256": out}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "completed");

    // Finished: no more claims.
    let v = support::assert_problem(
        e.claim(&id, 60).await,
        StatusCode::CONFLICT,
        "run_completed",
    );
    assert!(v["detail"].as_str().unwrap().contains("completed"));

    // Every snapshot's digest is in the audit log, in order.
    let entries = audit_entries(&e.server).await;
    let kinds: Vec<(String, Value)> = entries
        .into_iter()
        .filter(|(k, _)| k.starts_with("run."))
        .collect();
    let names: Vec<&str> = kinds.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "run.paused",
            "run.ready",
            "run.resumed",
            "run.paused",
            "run.ready",
            "run.resumed",
            "run.completed"
        ]
    );
    assert_eq!(kinds[0].1["data"]["state_sha256"], sha256_hex(state));
    assert_eq!(kinds[2].1["data"]["state_sha256"], sha256_hex(state));
    assert_eq!(kinds[3].1["data"]["state_sha256"], sha256_hex(state2));
    assert_eq!(kinds[5].1["data"]["state_sha256"], sha256_hex(state2));
    assert_eq!(kinds[6].1["data"]["output_sha256"], out);
    assert_eq!(kinds[6].1["data"]["outcome"], "completed");
}

/// (kind, body) of every audit entry, read from the SQLite file.
async fn audit_entries(server: &Server) -> Vec<(String, Value)> {
    use sqlx::Connection;
    let path = server.data_dir().join("pliuz.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open db");
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, body FROM audit_entries ORDER BY idx")
            .fetch_all(&mut conn)
            .await
            .expect("audit");
    rows.into_iter()
        .map(|(k, b)| (k, serde_json::from_str(&b).expect("body")))
        .collect()
}

#[tokio::test]
async fn two_claimers_race_and_exactly_one_wins_then_an_expired_lease_is_taken_over() {
    let e = env().await;
    let run = e.pause("state-to-race-for", &[]).await;
    let id = run["id"].as_str().unwrap().to_owned();
    assert_eq!(run["status"], "ready", "no approvals: ready at once");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = e.server.url(&format!("/api/v1/runs/{id}/claim"));
        tasks.push(spawn_claim(&e.http, url, &e.agent, 10));
    }
    let mut winners = 0;
    for t in tasks {
        let (s, v) = t.await.unwrap();
        if s == StatusCode::OK {
            winners += 1;
        } else {
            assert_eq!(s, StatusCode::CONFLICT);
            assert_eq!(v["code"], "run_claimed", "{v}");
        }
    }
    assert_eq!(winners, 1, "exactly one claimer wins");

    // The holder dies; when its lease runs out the run is ready again, and
    // a waiting worker's long-poll picks it up without any write.
    let started = Instant::now();
    let (s, v) = e.get(&e.agent, "/api/v1/runs?status=ready&wait=30").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["items"][0]["id"], id, "{v}");
    assert_eq!(v["items"][0]["status"], "ready");
    let waited = started.elapsed();
    assert!(
        waited > Duration::from_secs(7) && waited < Duration::from_secs(14),
        "{waited:?}"
    );
    let (s, c) = e.claim(&id, 60).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(c["state"], "state-to-race-for");
    let entries = audit_entries(&e.server).await;
    let resumed: Vec<&Value> = entries
        .iter()
        .filter(|(k, _)| k == "run.resumed")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(resumed.len(), 2);
    assert_eq!(resumed[1]["data"]["after_expired_lease"], true);
}

#[tokio::test]
async fn other_agents_cannot_see_or_claim_and_bad_input_is_explained() {
    let e = env().await;
    let a = e.refund().await;
    let run = e.pause("mine", &[&a]).await;
    let id = run["id"].as_str().unwrap().to_owned();

    // Another agent: 404 for everything, and an empty list.
    for (method, path, body) in [
        (reqwest::Method::GET, format!("/api/v1/runs/{id}"), None),
        (
            reqwest::Method::POST,
            format!("/api/v1/runs/{id}/claim"),
            Some(json!({})),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/runs/{id}/heartbeat"),
            Some(json!({"lease_token": "x"})),
        ),
        (
            reqwest::Method::PUT,
            format!("/api/v1/runs/{id}"),
            Some(json!({"lease_token": "x", "state": "s", "approval_ids": []})),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/runs/{id}/complete"),
            Some(json!({"lease_token": "x", "outcome": "failed"})),
        ),
    ] {
        let (s, v) = e.send(method, &e.other_agent, &path, body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_eq!(v["code"], "not_found");
    }
    let (_, v) = e.get(&e.other_agent, "/api/v1/runs").await;
    assert_eq!(v["items"], json!([]));
    // ...nor wait on someone else's approvals.
    let (s, v) = e
        .post(
            &e.other_agent,
            "/api/v1/runs",
            json!({"state": "s", "approval_ids": [a]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["field"], "approval_ids");
    // A human's token is not an agent key.
    let (s, _) = e.get(&e.finance, "/api/v1/runs").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // No credentials.
    let r = e
        .http
        .get(e.server.url("/api/v1/runs"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Unknown id.
    let (s, v) = e.get(&e.agent, "/api/v1/runs/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["detail"].as_str().unwrap().contains("nope"));
    // Unknown approval id.
    let (s, v) = e
        .post(
            &e.agent,
            "/api/v1/runs",
            json!({"state": "s", "approval_ids": ["no-such-approval"]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v["detail"].as_str().unwrap().contains("no-such-approval"));
    // Missing state, wrong types, unknown fields, bad ranges.
    for (body, field) in [
        (json!({"approval_ids": []}), "state"),
        (json!({"state": 5, "approval_ids": []}), "state"),
        (
            json!({"state": "s", "approval_ids": [], "colour": 1}),
            "colour",
        ),
        (
            json!({"state": "s", "approval_ids": [a, a]}),
            "approval_ids",
        ),
    ] {
        let (s, v) = e.post(&e.agent, "/api/v1/runs", body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["errors"][0]["field"], field, "{v}");
    }
    let (s, v) = e
        .post(
            &e.agent,
            &format!("/api/v1/runs/{id}/claim"),
            json!({"lease_seconds": 5}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["errors"][0]["field"], "lease_seconds");
    let (s, v) = e.get(&e.agent, "/api/v1/runs?wait=61").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v) = e.get(&e.agent, "/api/v1/runs?status=sleeping").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    // Oversized state: 413 with the limit named; nothing stored.
    let big = "x".repeat(8 * 1024 * 1024 + 1);
    let v = support::assert_problem(
        e.post(
            &e.agent,
            "/api/v1/runs",
            json!({"state": big, "approval_ids": []}),
        )
        .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert!(v["detail"]
        .as_str()
        .unwrap()
        .contains("max_run_state_bytes"));
    // Just under the limit is fine (above the general 1 MiB body limit).
    let fits = "y".repeat(8 * 1024 * 1024 - 16);
    let (s, v) = e
        .post(
            &e.agent,
            "/api/v1/runs",
            json!({"state": fits, "approval_ids": []}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, v) = e.get(&e.agent, "/api/v1/runs").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn stored_states_are_encrypted_at_rest_and_survive_kill_9() {
    let mut e = env().await;
    let marker = "TOP-SECRET-CONVERSATION-7f3a";
    let state = format!("{{\"messages\":[\"{marker}\",\"{marker}\"]}}");
    let run = e.pause(&state, &[]).await;
    let id = run["id"].as_str().unwrap().to_owned();

    // SIGKILL between pause and claim: nothing lost.
    e.server.kill9();
    for name in ["pliuz.db", "pliuz.db-wal"] {
        let path = e.server.data_dir().join(name);
        if let Ok(bytes) = std::fs::read(&path) {
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                "the plaintext state is in {name}"
            );
        }
    }
    let key = e.server.data_dir().join("encryption.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is private");
    }
    e.server.spawn().await;
    let (s, c) = e.claim(&id, 60).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(c["state"], state);
    assert_eq!(c["state_sha256"], sha256_hex(&state));

    // Without the right key the server refuses to hand out a state.
    e.server.kill9();
    let run2 = {
        e.server.spawn().await;
        e.pause("another", &[]).await
    };
    e.server.kill9();
    std::fs::write(
        &key,
        "pliuz-ek-v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
    )
    .unwrap();
    e.server.spawn().await;
    let (s, v) = e.claim(run2["id"].as_str().unwrap(), 60).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert!(!v.to_string().contains("another"));
}

/// A local webhook receiver that records what it gets; while `up` is
/// false it answers 503 like a receiver that is down behind its proxy.
struct Receiver {
    port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    got: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>,
    refused: Arc<std::sync::atomic::AtomicUsize>,
}

impl Receiver {
    async fn start() -> Receiver {
        use axum::routing::post;
        use std::sync::atomic::Ordering;
        let got = Arc::new(Mutex::new(Vec::new()));
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let app = {
            let (got, up, refused) = (got.clone(), up.clone(), refused.clone());
            axum::Router::new().route(
                "/hooks/pliuz",
                post(move |headers: axum::http::HeaderMap, body: String| {
                    let (got, up, refused) = (got.clone(), up.clone(), refused.clone());
                    async move {
                        if !up.load(Ordering::SeqCst) {
                            refused.fetch_add(1, Ordering::SeqCst);
                            return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        got.lock().unwrap().push((headers, body));
                        axum::http::StatusCode::NO_CONTENT
                    }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind receiver");
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            port,
            up,
            got,
            refused,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/pliuz", self.port)
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::SeqCst);
    }

    fn refused(&self) -> usize {
        self.refused.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn wait_for(&self, n: usize, within: Duration) -> Vec<(axum::http::HeaderMap, Value)> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= n {
                return got
                    .into_iter()
                    .map(|(h, b)| {
                        assert!(verify_raw(&h, &b), "bad signature on {b}");
                        (h, serde_json::from_str(&b).expect("json body"))
                    })
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "only {} webhook(s) arrived",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn raw(&self) -> Vec<(axum::http::HeaderMap, String)> {
        self.got.lock().unwrap().clone()
    }
}

thread_local! {
    static SECRET: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

fn verify_raw(headers: &axum::http::HeaderMap, body: &str) -> bool {
    let secret = SECRET.with(|s| s.borrow().clone());
    secret.is_empty() || verify(headers, body, &secret)
}

/// Verifies a Standard Webhooks signature independently of the server.
fn verify(headers: &axum::http::HeaderMap, body: &str, secret: &str) -> bool {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, ts, sig) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    let Some(b64_key) = secret.strip_prefix("whsec_") else {
        return false;
    };
    let Ok(key) = base64::engine::general_purpose::STANDARD.decode(b64_key) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let now = chrono::Utc::now().timestamp();
    let fresh = ts.parse::<i64>().is_ok_and(|t| (now - t).abs() < 300);
    !id.is_empty() && fresh && sig.split(' ').any(|s| s == expected)
}

fn webhook_agent(server: &Server, name: &str, url: &str) -> (String, String) {
    let out = server.cli(&["agents", "create", name, "--webhook-url", url], None);
    assert!(out.success, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "key, then secret: {}", out.stdout);
    assert!(lines[0].starts_with("pliuz_ak_"));
    assert!(lines[1].starts_with("whsec_"));
    assert!(!out.stderr.contains(lines[1]), "the secret is printed once");
    (lines[0].to_owned(), lines[1].to_owned())
}

#[tokio::test]
async fn webhooks_are_signed_and_retried_until_the_receiver_is_back_across_a_restart() {
    let mut env_vars = fast_retries();
    env_vars.push(("PLIUZ_OUTBOX_LEASE_MS".into(), "2000".into()));
    let mut e = env_full(None, env_vars).await;
    let rx = Receiver::start().await;
    let (key, secret) = webhook_agent(&e.server, "hooked-bot", &rx.url());
    SECRET.with(|s| *s.borrow_mut() = secret.clone());
    e.agent = key;

    let a = e.refund().await;
    let run = e.pause("hooked state", &[&a]).await;
    let run_id = run["id"].as_str().unwrap().to_owned();
    e.approve(&a).await;
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    let by_type = |t: &str| {
        got.iter()
            .find(|(_, b)| b["type"] == t)
            .unwrap_or_else(|| panic!("no {t} in {got:?}"))
            .clone()
    };
    let (_, decided) = by_type("approval.decided");
    assert_eq!(
        decided["data"],
        json!({"approval_id": a, "status": "approved", "run_id": run_id})
    );
    let (ready_headers, ready) = by_type("run.ready");
    assert_eq!(
        ready["data"],
        json!({"run_id": run_id, "agent": "hooked-bot", "approval_ids": [a], "question_ids": []})
    );
    assert!(ready["timestamp"].is_string());
    // The signature checks out with the agent's secret, and not with another.
    let raw = rx.raw();
    let (h, body) = raw
        .iter()
        .find(|(_, b)| b.contains("run.ready"))
        .unwrap()
        .clone();
    assert!(verify(&h, &body, &secret));
    assert!(!verify(&h, &body, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    assert!(!verify(
        &h,
        &body.replace("hooked-bot", "evil-bot"),
        &secret
    ));
    assert_ne!(got[0].0["webhook-id"], got[1].0["webhook-id"]);
    assert!(ready_headers["webhook-id"]
        .to_str()
        .unwrap()
        .starts_with("msg_"));
    // Each delivery is in the audit log.
    let delivered = audit_entries(&e.server)
        .await
        .into_iter()
        .filter(|(k, _)| k == "webhook.delivered")
        .count();
    assert_eq!(delivered, 2);

    // The receiver goes down: deliveries are retried, also across a
    // Pliuz restart, and arrive once it is back.
    rx.set_up(false);
    let a2 = e.refund().await;
    let run2 = e.pause("second state", &[&a2]).await;
    e.approve(&a2).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.refused() < 3 {
        assert!(Instant::now() < deadline, "no retries while down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    e.server.kill9();
    e.server.spawn().await;
    let before = rx.refused();
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.refused() <= before {
        assert!(Instant::now() < deadline, "no retries after the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rx.set_up(true);
    let got = rx.wait_for(4, Duration::from_secs(15)).await;
    let ready2 = got
        .iter()
        .find(|(_, b)| b["type"] == "run.ready" && b["data"]["run_id"] == run2["id"])
        .expect("run.ready of the second run");
    assert_eq!(ready2.1["data"]["approval_ids"], json!([a2]));
    // Every event once: the same webhook-id is never delivered twice here.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ids: Vec<String> = rx
        .raw()
        .iter()
        .map(|(h, _)| h["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert_eq!(unique.len(), 4, "{ids:?}");

    // Rotating the secret: later events are signed with the new one.
    let out = e.server.cli(
        &["agents", "set-webhook", "hooked-bot", "--url", &rx.url()],
        None,
    );
    assert!(out.success, "{}", out.stderr);
    let new_secret = out.stdout.trim().to_owned();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    SECRET.with(|s| *s.borrow_mut() = String::new());
    let a3 = e.refund().await;
    e.approve(&a3).await;
    rx.wait_for(5, Duration::from_secs(10)).await;
    let raw = rx.raw();
    let (h, body) = raw.last().unwrap();
    assert!(verify(h, body, &new_secret));
    assert!(!verify(h, body, &secret));
    // A bad URL is refused up front.
    let out = e.server.cli(
        &["agents", "set-webhook", "hooked-bot", "--url", "ftp://x"],
        None,
    );
    assert!(!out.success);
}

#[tokio::test]
async fn postgres_runs_flow_and_replicas_wake_each_others_long_polls() {
    let url = support::fresh_postgres_database().await;
    let e = env_full(Some(url), vec![]).await;
    let replica = Server::replica_of(&e.server).await;
    let a = e.refund().await;
    let state = "postgres state \u{1F600}";
    let run = e.pause(state, &[&a]).await;
    let id = run["id"].as_str().unwrap().to_owned();
    // A worker waits on the replica; the decision lands on the primary.
    let waiter = support::long_poll(
        &e.http,
        replica.url("/api/v1/runs?status=ready&wait=30"),
        &e.agent,
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let decided = Instant::now();
    e.approve(&a).await;
    let (at, v) = woken(waiter).await;
    assert_eq!(v["items"][0]["id"], id, "{v}");
    assert!(at.duration_since(decided) < Duration::from_secs(3));
    // Claim on the replica (same key for the sealed state), race on both.
    let claim = |base: String| {
        spawn_claim(
            &e.http,
            format!("{base}/api/v1/runs/{id}/claim"),
            &e.agent,
            30,
        )
    };
    let (r1, r2) = tokio::join!(claim(e.server.base.clone()), claim(replica.base.clone()));
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    let winners: Vec<&Value> = [&r1, &r2]
        .into_iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(winners.len(), 1, "{r1:?} {r2:?}");
    assert_eq!(winners[0]["state"], state);
    let token = winners[0]["lease_token"].as_str().unwrap();
    let (s, v) = e
        .post(
            &e.agent,
            &format!("/api/v1/runs/{id}/complete"),
            json!({"lease_token": token, "outcome": "failed", "error": "tool crashed"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "failed");
}

#[tokio::test]
async fn max_run_state_bytes_is_validated_strictly_and_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let run = |value: &str| {
        std::process::Command::new(support::BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["agents", "list"])
            .env("PLIUZ_MAX_RUN_STATE_BYTES", value)
            .output()
            .unwrap()
    };
    let out = run("8MiB");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PLIUZ_MAX_RUN_STATE_BYTES"));
    let out = run("100");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("between 1024 and"));
    assert!(run("4096").status.success());

    let e = env_full(
        None,
        vec![("PLIUZ_MAX_RUN_STATE_BYTES".into(), "4096".into())],
    )
    .await;
    let store_state_of = |len: usize| {
        let body = json!({"state": "z".repeat(len), "approval_ids": []});
        e.post(&e.agent, "/api/v1/runs", body)
    };
    let (s, v) = store_state_of(4097).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("4096"), "{v}");
    let (s, _) = store_state_of(4096).await;
    assert_eq!(s, StatusCode::CREATED);
}
