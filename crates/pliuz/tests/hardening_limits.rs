//! Issue 10 regressions (limits, CEL budget, unstorable text, problem+json
//! everywhere, strict configuration), each against the real binary over
//! real HTTP.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::Server;

/// `impl Env` below adds this file's requests to the shared crew.
type Env = support::Crew;

async fn env_on(database_url: Option<String>) -> Env {
    env_full(database_url, vec![]).await
}

async fn env_full(database_url: Option<String>, extra_env: Vec<(String, String)>) -> Env {
    // Besides the refunds policy: one whose condition costs a lot to evaluate.
    let config = format!(
        "{}{}",
        support::REFUNDS_POLICY,
        support::finance_policy(
            "bulk",
            "bulk_pay",
            r#"auto_approve = "args.items.all(x, args.items.all(y, x >= 0))""#
        )
    );
    Env::start(&config, "bot", database_url, extra_env).await
}

/// Asserts an RFC 9457 problem+json answer with this status; returns it.
async fn problem(r: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(r.status(), status, "status");
    let ct = support::content_type(&r);
    let text = r.text().await.expect("body");
    assert_eq!(ct, "application/problem+json", "content type; body {text}");
    let v: Value = serde_json::from_str(&text).expect("problem JSON");
    assert_eq!(v["status"], status.as_u16(), "{v}");
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{v}");
    v
}

impl Env {
    async fn post(&self, token: &str, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.server.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.server.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// `count` refund requests, numbered in their arguments (`{"n": i}`).
    async fn create_numbered(&self, count: u32) {
        for i in 0..count {
            self.created(&json!({"tool_name": "issue_refund", "tool_args": {"n": i}}))
                .await;
        }
    }

    /// A GET that must be refused with `status` as problem+json.
    async fn get_refused(&self, token: &str, path: &str, status: StatusCode) -> Value {
        problem(self.get(token, path).await, status).await
    }

    /// A POST that must be refused with `status` as problem+json.
    async fn post_refused(
        &self,
        token: &str,
        path: &str,
        body: &Value,
        status: StatusCode,
    ) -> Value {
        problem(self.post(token, path, body).await, status).await
    }

    async fn create(&self, body: &Value) -> reqwest::Response {
        self.post(&self.agent, "/api/v1/approvals", body).await
    }

    async fn created(&self, body: &Value) -> Value {
        let r = self.create(body).await;
        let status = r.status();
        let v: Value = r.json().await.expect("json");
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v
    }

    fn cli(&self, args: &[&str]) -> support::CliOutput {
        self.server.cli(args, None)
    }
}

/// The server's SQLite database with the trigger that keeps audit entry
/// bodies unchanged dropped, as someone with the file in hand could.
async fn audit_bodies_made_editable(server: &Server) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    let url = format!("sqlite://{}", server.data_dir().join("pliuz.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open the database");
    sqlx::raw_sql("DROP TRIGGER audit_entries_no_update")
        .execute(&mut conn)
        .await
        .expect("drop the trigger");
    conn
}

/// `{"a": {"a": ... 1}}` nested `levels` objects deep.
fn nested(levels: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..levels {
        v = json!({ "a": v });
    }
    v
}

// --- 1. What the server logs, every verifier reads --------------------------------------

#[tokio::test]
async fn deep_and_large_arguments_are_refused_or_verifiable() {
    let e = env_on(None).await;
    // The body object, tool_args and 30 more levels: 32, the limit.
    let ok = e
        .created(&json!({"tool_name": "issue_refund", "tool_args": {"deep": nested(30)}}))
        .await;
    // One level more is refused before anything is logged.
    let r = e
        .create(&json!({"tool_name": "issue_refund", "tool_args": {"deep": nested(31)}}))
        .await;
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(p["detail"].as_str().unwrap().contains("32"), "{p}");

    // Canonical JSON can be longer than what was sent: 1e20 is logged as
    // 100000000000000000000. Arguments over the limit as canonical JSON
    // are refused, not logged.
    let many = vec!["1e20"; 200_000].join(",");
    let body = format!(r#"{{"tool_name": "issue_refund", "tool_args": {{"n": [{many}]}}}}"#);
    assert!(body.len() < 1 << 20);
    let r = e
        .http
        .post(e.server.url("/api/v1/approvals"))
        .bearer_auth(&e.agent)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let p = problem(r, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert!(
        p["detail"].as_str().unwrap().contains("canonical JSON"),
        "{p}"
    );

    // A 600 KB request, approved with its original and final arguments in
    // one entry (> 1 MiB), is verifiable.
    let big = "x".repeat(600_000);
    let v = e
        .created(&json!({"tool_name": "issue_refund", "tool_args": {"note": big}}))
        .await;
    let id = v["id"].as_str().unwrap();
    let r = e
        .post(
            &e.finance,
            &format!("/api/v1/approvals/{id}/decision"),
            &json!({"decision": "approve", "args_digest": v["args_digest"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = e
        .post(
            &e.finance,
            &format!("/api/v1/approvals/{}/decision", ok["id"].as_str().unwrap()),
            &json!({"decision": "approve", "args_digest": ok["args_digest"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    let check = e.cli(&["audit", "check"]);
    assert!(check.success, "{}{}", check.stdout, check.stderr);
    let out = e.server.dir.path().join("export");
    let x = e.cli(&["audit", "export", "--out", out.to_str().unwrap()]);
    assert!(x.success, "{}", x.stderr);
    let longest = std::fs::read_to_string(out.join("entries.jsonl"))
        .unwrap()
        .lines()
        .map(str::len)
        .max()
        .unwrap();
    assert!(longest > 1 << 20, "the decided entry is {longest} bytes");
    let key = e.cli(&["audit", "key"]).stdout.trim().to_owned();
    let v = e.cli(&["audit", "verify", out.to_str().unwrap(), "--key", &key]);
    assert!(v.success, "{}{}", v.stdout, v.stderr);
}

#[tokio::test]
async fn full_reports_list_every_bad_entry() {
    let mut e = env_on(None).await;
    e.create_numbered(6).await;
    let key = e.cli(&["audit", "key"]).stdout.trim().to_owned();
    e.server.stop();
    // Export first (untampered), then alter two entries in the export and
    // two in the database.
    let out = e.server.dir.path().join("export");
    let x = e.cli(&["audit", "export", "--out", out.to_str().unwrap()]);
    assert!(x.success, "{}", x.stderr);
    let path = out.join("entries.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let n = lines.len();
    assert!(n >= 8, "{n}");
    let with_args: Vec<usize> = (0..n)
        .filter(|&i| lines[i].contains("\"tool_args\":{\"n\":"))
        .collect();
    let (a, b) = (with_args[1], with_args[with_args.len() - 1]);
    let mut bad = lines.clone();
    bad[a] = bad[a].replacen("{\"actor\"", "{ \"actor\"", 1); // not canonical
    bad[b] = bad[b].replacen("{\"actor\"", "{ \"actor\"", 1);
    std::fs::write(&path, bad.join("\n") + "\n").unwrap();

    let first = e.cli(&["audit", "verify", out.to_str().unwrap(), "--key", &key]);
    assert!(!first.success);
    assert_eq!(
        first.stderr.matches("FAILED").count(),
        1,
        "{}",
        first.stderr
    );
    let all = e.cli(&[
        "audit",
        "verify",
        "--all",
        out.to_str().unwrap(),
        "--key",
        &key,
    ]);
    assert!(!all.success);
    assert!(
        all.stderr.contains(&format!("entry {a}:")) && all.stderr.contains(&format!("entry {b}:")),
        "{}",
        all.stderr
    );
    // The line's bytes are what was signed, so checkpoints after it still
    // verify: only the altered lines are reported... plus the roots they
    // change. Nothing after them hides.
    assert!(all.stderr.contains("problem(s) found"), "{}", all.stderr);

    // The live log: alter two entries' stored bodies.
    {
        use sqlx::Connection;
        let mut conn = audit_bodies_made_editable(&e.server).await;
        for idx in [a, b] {
            let altered = lines[idx].replace("\"n\":", "\"m\":");
            assert_ne!(altered, lines[idx]);
            sqlx::query("UPDATE audit_entries SET body = ? WHERE idx = ?")
                .bind(altered)
                .bind(idx as i64)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        conn.close().await.unwrap();
    }
    let first = e.cli(&["audit", "check"]);
    assert!(!first.success);
    assert_eq!(
        first.stderr.matches("FAILED").count(),
        1,
        "{}",
        first.stderr
    );
    let all = e.cli(&["audit", "check", "--all"]);
    assert!(!all.success);
    for idx in [a, b] {
        assert!(
            all.stderr
                .contains(&format!("entry {idx}: does not hash to the leaf hash")),
            "{}",
            all.stderr
        );
    }
    // Stored leaf hashes stand in for the altered entries: every checkpoint
    // root still matches, so exactly the two altered entries are reported.
    assert!(all.stderr.contains("2 problem(s) found"), "{}", all.stderr);
}

// --- 4. CEL within a budget ------------------------------------------------------------

#[tokio::test]
async fn expensive_conditions_fail_closed_and_healthz_stays_responsive() {
    let e = env_on(None).await;
    let items: Vec<Value> = (0..3000).map(Value::from).collect();
    let body = json!({"tool_name": "bulk_pay", "tool_args": {"items": items}});
    let started = Instant::now();
    let mut calls = Vec::new();
    for _ in 0..3 {
        let create = e.http.post(e.server.url("/api/v1/approvals"));
        let create = create.bearer_auth(&e.agent).json(&body);
        calls.push(tokio::spawn(support::send_json(create)));
    }
    // /healthz answers quickly while they are evaluated.
    for _ in 0..5 {
        let t = Instant::now();
        let r = e.http.get(e.server.url("/healthz")).send().await.unwrap();
        assert!(r.status().is_success());
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for c in calls {
        let (status, v) = c.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{v}");
        // The auto rule did not fire: people decide.
        assert_eq!(v["status"], "pending", "{v}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // Recorded: the created entry says why the condition did not decide.
    let out = e.server.dir.path().join("export");
    let x = e.cli(&["audit", "export", "--out", out.to_str().unwrap()]);
    assert!(x.success, "{}", x.stderr);
    let log = std::fs::read_to_string(out.join("entries.jsonl")).unwrap();
    let created: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "approval.created")
        .collect();
    assert_eq!(created.len(), 3);
    for c in &created {
        let errs = c["data"]["condition_errors"].as_array().unwrap();
        assert!(
            errs.iter().any(|m| m.as_str().unwrap().contains("budget")),
            "{c}"
        );
    }
    // A cheap call under the same policy is still auto-approved.
    let v = e
        .created(&json!({"tool_name": "bulk_pay", "tool_args": {"items": [1, 2, 3]}}))
        .await;
    assert_eq!(v["status"], "approved", "{v}");
}

// --- 11. Text no store keeps ---------------------------------------------------------

async fn nul_bytes_are_422(database_url: Option<String>) {
    let e = env_on(database_url).await;
    let base =
        json!({"tool_name": "issue_refund", "tool_args": {"a": "nul \u{0} inside args is fine"}});
    let v = e.created(&base).await;
    let id = v["id"].as_str().unwrap().to_owned();
    for (field, value) in [
        ("tool_name", "issue\u{0}refund"),
        ("originator", "user:a\u{0}@example.com"),
        ("idempotency_key", "k\u{0}"),
        ("call_id", "c\u{0}"),
        ("session_id", "s\u{0}"),
    ] {
        let mut body = base.clone();
        body[field] = json!(value);
        let r = e.create(&body).await;
        let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(p["errors"][0]["field"], field, "{p}");
    }
    e.post_refused(
        &e.finance,
        &format!("/api/v1/approvals/{id}/decision"),
        &json!({"decision": "reject", "reason": "no\u{0}", "args_digest": v["args_digest"]}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    e.post_refused(
        &e.agent,
        &format!("/api/v1/approvals/{id}/cancel"),
        &json!({"reason": "no\u{0}"}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    for q in [
        "tool=a%00b",
        "policy=%00",
        "agent=%00",
        "cursor=%00",
        "status=%00",
    ] {
        e.get_refused(
            &e.finance,
            &format!("/api/v1/approvals?{q}"),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    for path in ["/api/v1/approvals/%00", "/api/v1/approvals/a%00b/receipt"] {
        e.get_refused(&e.finance, path, StatusCode::UNPROCESSABLE_ENTITY)
            .await;
    }
    e.post_refused(
        &e.agent,
        "/api/v1/approvals/%00/cancel",
        &json!({}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    // Nothing half-written: the request is still pending and the log verifies.
    let r = e.get(&e.finance, &format!("/api/v1/approvals/{id}")).await;
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "pending");
    let check = e.cli(&["audit", "check"]);
    assert!(check.success, "{}{}", check.stdout, check.stderr);
}

support::on_both_databases!(nul_bytes_are_422);

// --- 14. Every API error is problem+json; HTML routes answer HTML ----------------------

#[tokio::test]
async fn every_error_is_problem_json_or_an_html_page() {
    // A small body limit, so an over-limit body fits the socket buffers and
    // the early 413 is not lost to a connection reset.
    let e = env_full(
        None,
        vec![("PLIUZ_MAX_BODY_BYTES".to_owned(), "4096".to_owned())],
    )
    .await;
    let v = e
        .created(&json!({"tool_name": "issue_refund", "tool_args": {}}))
        .await;
    let id = v["id"].as_str().unwrap();
    let huge = "x".repeat(8 << 10);
    for path in [
        format!("/api/v1/approvals/{id}/cancel"),
        "/api/v1/approvals".to_owned(),
        "/slack/interactions".to_owned(),
    ] {
        let r = e
            .http
            .post(e.server.url(&path))
            .bearer_auth(&e.agent)
            .header("content-type", "application/json")
            .body(huge.clone())
            .send()
            .await
            .unwrap();
        problem(r, StatusCode::PAYLOAD_TOO_LARGE).await;
    }
    for path in ["/api/v1/approvals/%ff", "/api/v1/approvals/%ff/receipt"] {
        e.get_refused(&e.finance, path, StatusCode::BAD_REQUEST)
            .await;
    }
    let r = e
        .post(&e.agent, "/api/v1/approvals/%ff/decision", &json!({}))
        .await;
    assert!(r.status().is_client_error());
    problem(r, StatusCode::BAD_REQUEST).await;
    // Run ids too: problem+json, never axum's plain-text rejection.
    e.get_refused(&e.agent, "/api/v1/runs/%ff", StatusCode::BAD_REQUEST)
        .await;
    for action in ["claim", "heartbeat", "complete"] {
        let path = format!("/api/v1/runs/%ff/{action}");
        e.post_refused(&e.agent, &path, &json!({}), StatusCode::BAD_REQUEST)
            .await;
    }

    for path in ["/login", "/setup/pliuz_su_nope"] {
        let r = e
            .http
            .post(e.server.url(path))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/html"), "{path}: {ct}");
        let page = r.text().await.unwrap();
        assert!(page.contains("<html"), "{page}");
    }
}

// --- 15. Configuration parsed once, strictly ---------------------------------------------

/// `pliuz policy check` and `pliuz serve` on this config (and environment)
/// both refuse it, naming `setting` and `range`.
fn refused(config: &str, env: &[(&str, &str)], setting: &str, range: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pliuz.toml");
    std::fs::write(&file, config).unwrap();
    let run = |args: &[&str]| {
        let mut c = std::process::Command::new(support::BIN);
        c.arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(args)
            .env_remove("PLIUZ_AUDIT_SIGNING_KEY")
            .env_remove("PLIUZ_SLACK_BOT_TOKEN")
            .env_remove("PLIUZ_SLACK_SIGNING_SECRET");
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run pliuz");
        // A server that accepted the configuration would run forever.
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().expect("wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().expect("output");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout),
        )
    };
    let f = file.to_str().unwrap();
    let port = format!("127.0.0.1:{}", support::free_port());
    for args in [
        vec!["policy", "check", f],
        vec!["--config", f, "serve", "--listen", &port],
    ] {
        let (ok, text) = run(&args);
        assert!(!ok, "{args:?} accepted {config:?} {env:?}: {text}");
        assert!(
            text.contains(setting) && text.contains(range),
            "{args:?}: expected {setting:?} and {range:?} in: {text}"
        );
    }
}

#[test]
fn settings_out_of_range_are_refused_by_check_and_serve() {
    let policy = "[[policy]]\nname = \"p\"\ntools = [\"t\"]\napprovers = [\"group:g\"]\n";
    let bad_files = [
        (
            format!("[audit]\ncheckpoint_interval = \"0s\"\n{policy}"),
            "audit.checkpoint_interval",
            "between 1s and 1day",
        ),
        (
            format!("max_body_bytes = 0\n{policy}"),
            "max_body_bytes",
            "between 4096 and 4194304",
        ),
        (
            format!("[slack]\nbot_token = \"xoxb-1\"\n{policy}"),
            "slack.signing_secret",
            "both",
        ),
        (
            policy.replace("approvers", "required_approvals = 4294967296\napprovers"),
            "required_approvals",
            "between 1 and 4294967295",
        ),
    ];
    for (config, setting, range) in &bad_files {
        refused(config, &[], setting, range);
    }
    let bad_env = [
        ("PLIUZ_MAX_BODY_BYTES", "lots", "whole number"),
        ("PLIUZ_MAX_BODY_BYTES", "10", "between 4096 and 4194304"),
        ("PLIUZ_AUDIT_CHECKPOINT_EVERY", "x1", "whole number"),
        ("PLIUZ_SECURE_COOKIES", "yes please", "true, false"),
    ];
    for (name, value, range) in bad_env {
        refused(policy, &[(name, value)], name, range);
    }
}

/// The inbox's "Verify now" gives the full report: both altered entries.
#[tokio::test]
async fn verify_now_in_the_inbox_lists_every_problem() {
    let mut e = env_on(None).await;
    e.create_numbered(4).await;
    e.server.create_user("audit@example.com", "auditor", &[]);
    e.server.stop();
    let altered: Vec<i64> = {
        use sqlx::Connection;
        let mut conn = audit_bodies_made_editable(&e.server).await;
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT idx, body FROM audit_entries WHERE body LIKE '%\"tool_args\":{\"n\":%' ORDER BY idx",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let picked = [rows[0].clone(), rows[rows.len() - 1].clone()];
        for (idx, body) in &picked {
            sqlx::query("UPDATE audit_entries SET body = ? WHERE idx = ?")
                .bind(body.replace("\"n\":", "\"m\":"))
                .bind(idx)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        conn.close().await.unwrap();
        picked.iter().map(|(i, _)| *i).collect()
    };
    e.server.spawn().await;

    let http = support::web::no_redirects();
    let r = support::web::log_in(&http, &e.server, "audit@example.com").await;
    let cookie = support::web::cookie_header(&r);
    assert!(!cookie.is_empty(), "log-in failed: {}", r.status());
    let page = support::web::page(&http, &e.server, "/audit", &cookie).await;
    let csrf = support::web::csrf_meta(&page)
        .unwrap_or_else(|| panic!("no csrf token on the page ({cookie}): {page}"));
    let r = http
        .post(e.server.url("/audit/verify"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("The log does not verify"), "{page}");
    for idx in altered {
        assert!(
            page.contains(&format!("entry {idx}: does not hash")),
            "entry {idx} not listed: {page}"
        );
    }
    assert!(page.contains("2 problem(s) found"), "{page}");
}
