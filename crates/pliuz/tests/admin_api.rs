//! The management API (`/api/v1/admin/...`) against the real binary over
//! HTTP, on SQLite and PostgreSQL: agents, users and their tokens, and
//! policies (read-only from the file; created, replaced and deleted with
//! `policy_source = "database"`, in force for the next request, on every
//! replica). Only an admin's personal API token is let in; every change
//! is in the audit log with the admin as its actor.

mod support;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{assert_detail_contains, content_type, send_json, Server, REFUNDS_POLICY};

const ADMIN: &str = "root@example.com";

/// One call in a table: the route ("METHOD /path"), the body (null: none),
/// the status it must be answered with, and values the answer must hold
/// (`{JSON pointer: value}`).
type Call<'a> = (&'a str, Value, StatusCode, Value);

/// Who may have made the audit entries of a kind besides the admin.
#[derive(PartialEq)]
enum Makers {
    OnlyAdmin,
    AlsoOthers,
}

struct Env {
    server: Server,
    http: Client,
    admin: String,
}

async fn env_on(config: &str, database_url: Option<String>) -> Env {
    let server = Server::start_with(config, database_url, vec![]).await;
    let admin = server.user_token(ADMIN, "admin", &[]);
    Env {
        server,
        http: Client::new(),
        admin,
    }
}

impl Env {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        call(&self.http, &self.server, &self.admin, method, path, body).await
    }

    /// `route` ("METHOD /path") called with `token` must be answered with
    /// `expected`; returns the body.
    async fn expect_as(
        &self,
        token: &str,
        route: &str,
        body: Option<Value>,
        expected: StatusCode,
    ) -> Value {
        let (method, path) = route.split_once(' ').expect("route is 'METHOD /path'");
        let (status, answer) = call(&self.http, &self.server, token, method, path, body).await;
        assert_eq!(status, expected, "{route}: {answer}");
        answer
    }

    /// Makes `calls` with `token`, in order, each checked; returns their
    /// answers.
    async fn calls<const N: usize>(&self, token: &str, calls: [Call<'_>; N]) -> [Value; N] {
        let mut answers = Vec::new();
        for (route, body, status, holds) in calls {
            let body = (!body.is_null()).then_some(body);
            let answer = self.expect_as(token, route, body, status).await;
            for (pointer, value) in holds.as_object().expect("{pointer: value}") {
                let held = answer.pointer(pointer);
                assert_eq!(held, Some(value), "{route} {pointer}: {answer}");
            }
            answers.push(answer);
        }
        answers.try_into().expect("one answer a call")
    }

    /// For each (kind, n): the admin made `n` audit entries of `kind`
    /// (with [`Makers::OnlyAdmin`]: and nobody else made any).
    async fn assert_admin_made(&self, changes: &[(&str, usize)], only: Makers) {
        let admin_actor = format!("user:{ADMIN}");
        for &(kind, n) in changes {
            let all = self.entries(kind).await;
            let by_admin = all.iter().filter(|x| x["actor"] == admin_actor).count();
            assert_eq!(by_admin, n, "{kind}: {all:?}");
            if only == Makers::OnlyAdmin {
                assert_eq!(all.len(), n, "{kind} by others: {all:?}");
            }
        }
    }

    /// Every audit entry of `kind`, oldest first.
    async fn entries(&self, kind: &str) -> Vec<Value> {
        let all =
            support::audit_entries(&self.http, &self.server, &self.admin, "start=0&end=1000").await;
        all.into_iter().filter(|e| e["type"] == kind).collect()
    }
}

async fn call(
    http: &Client,
    server: &Server,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = http.request(method, server.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    send_json(req).await
}

/// An agent opens a request for `tool`; returns the status and body.
async fn open(http: &Client, server: &Server, key: &str, tool: &str) -> (StatusCode, Value) {
    send_json(
        http.post(server.url("/api/v1/approvals"))
            .bearer_auth(key)
            .json(&json!({"tool_name": tool, "tool_args": {"n": 1}})),
    )
    .await
}

/// [`open`] that must be answered with `expected`; returns the body.
async fn expect_open(
    http: &Client,
    server: &Server,
    key: &str,
    tool: &str,
    expected: StatusCode,
) -> Value {
    let (status, answer) = open(http, server, key, tool).await;
    assert_eq!(status, expected, "open {tool}: {answer}");
    answer
}

fn is_problem(r: &Value) -> bool {
    r["code"].is_string() && r["detail"].is_string() && r["status"].is_number()
}

async fn agents_are_created_listed_rewebhooked_and_revoked(database_url: Option<String>) {
    let e = env_on(REFUNDS_POLICY, database_url).await;
    let (hook_a, hook_b) = ("https://hooks.example.com/a", "https://hooks.example.com/b");
    let [created] = e
        .calls(
            &e.admin,
            [(
                "POST /api/v1/admin/agents",
                json!({"name": "billing-bot", "webhook_url": hook_a}),
                StatusCode::CREATED,
                json!({"/agent/status": "active", "/agent/webhook_url": hook_a}),
            )],
        )
        .await;
    let key = created["api_key"].as_str().expect("api_key").to_owned();
    assert!(key.starts_with("pliuz_ak_"), "{created}");
    let first_secret = created["webhook_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert!(first_secret.starts_with("whsec_"), "{created}");

    // The key works at once.
    expect_open(
        &e.http,
        &e.server,
        &key,
        "issue_refund",
        StatusCode::CREATED,
    )
    .await;

    let [list, hook, rotated, _, revoked] = e
        .calls(
            &e.admin,
            [
                (
                    "GET /api/v1/admin/agents",
                    Value::Null,
                    StatusCode::OK,
                    json!({"/agents/0/name": "billing-bot"}),
                ),
                (
                    "PUT /api/v1/admin/agents/billing-bot/webhook",
                    json!({"url": hook_b}),
                    StatusCode::OK,
                    json!({"/url": hook_b}),
                ),
                (
                    "POST /api/v1/admin/agents/billing-bot/webhook/rotate-secret",
                    Value::Null,
                    StatusCode::OK,
                    json!({"/url": hook_b}),
                ),
                (
                    "GET /api/v1/admin/agents/billing-bot",
                    Value::Null,
                    StatusCode::OK,
                    json!({"/webhook_url": hook_b}),
                ),
                (
                    "POST /api/v1/admin/agents/billing-bot/revoke",
                    Value::Null,
                    StatusCode::OK,
                    json!({"/status": "revoked"}),
                ),
            ],
        )
        .await;
    assert!(
        list.to_string().find("pliuz_ak_").is_none(),
        "keys never listed"
    );
    let second_secret = hook["secret"].as_str().expect("secret").to_owned();
    assert_ne!(second_secret, first_secret);
    assert_ne!(rotated["secret"], json!(second_secret));
    assert!(revoked["revoked_at"].is_string());
    expect_open(
        &e.http,
        &e.server,
        &key,
        "issue_refund",
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // Again: nothing left to revoke. An unknown agent: 404 naming it.
    let [again, unknown] = e
        .calls(
            &e.admin,
            [
                (
                    "POST /api/v1/admin/agents/billing-bot/revoke",
                    Value::Null,
                    StatusCode::NOT_FOUND,
                    json!({}),
                ),
                (
                    "GET /api/v1/admin/agents/nobody",
                    Value::Null,
                    StatusCode::NOT_FOUND,
                    json!({}),
                ),
            ],
        )
        .await;
    assert_detail_contains(&again, "no active agent 'billing-bot'");
    assert_detail_contains(&unknown, "no agent 'nobody'");

    // Each change is audited, the admin as its actor; no secret in the log.
    let changes = [
        ("agent.created", 1),
        ("agent.webhook_set", 3),
        ("agent.revoked", 1),
    ];
    e.assert_admin_made(&changes, Makers::OnlyAdmin).await;
    let rotations = e.entries("agent.webhook_set").await;
    assert_eq!(rotations[2]["data"]["secret_rotated"], true);
    let (_, log) = e
        .call("GET", "/api/v1/audit/entries?start=0&end=1000", None)
        .await;
    assert!(!log.to_string().contains(&key), "the key is not logged");
    assert!(!log.to_string().contains(&first_secret));
}

support::on_both_databases!(agents_are_created_listed_rewebhooked_and_revoked);

async fn users_groups_roles_and_tokens_are_managed(database_url: Option<String>) {
    let e = env_on(REFUNDS_POLICY, database_url).await;
    let [linked, with_password, _, list, _, _, issued, _] = e
        .calls(
            &e.admin,
            [
                (
                    "POST /api/v1/admin/users",
                    json!({"email": "Ann@Example.com", "role": "approver", "groups": ["finance"]}),
                    StatusCode::CREATED,
                    json!({"/user/email": "ann@example.com", "/user/groups": ["finance"]}),
                ),
                (
                    "POST /api/v1/admin/users",
                    json!({"email": "bob@example.com", "role": "auditor", "password": "a-long-enough-password"}),
                    StatusCode::CREATED,
                    json!({}),
                ),
                (
                    "POST /api/v1/admin/users",
                    json!({"email": "ann@example.com", "role": "approver"}),
                    StatusCode::CONFLICT,
                    json!({"/code": "already_exists"}),
                ),
                ("GET /api/v1/admin/users", Value::Null, StatusCode::OK, json!({})),
                (
                    "PUT /api/v1/admin/users/ann@example.com/groups",
                    json!({"groups": ["ops", "legal"]}),
                    StatusCode::OK,
                    json!({"/groups": ["legal", "ops"]}),
                ),
                (
                    "PUT /api/v1/admin/users/ann@example.com/role",
                    json!({"role": "admin"}),
                    StatusCode::OK,
                    json!({"/role": "admin"}),
                ),
                // Tokens: issued once, listed without the secret, revoked one by one.
                (
                    "POST /api/v1/admin/users/ann@example.com/tokens",
                    json!({"label": "ci"}),
                    StatusCode::CREATED,
                    json!({}),
                ),
                (
                    "POST /api/v1/admin/users/ann@example.com/tokens",
                    Value::Null,
                    StatusCode::CREATED,
                    json!({}),
                ),
            ],
        )
        .await;
    assert!(
        linked["setup_url"]
            .as_str()
            .is_some_and(|u| u.contains("/setup/pliuz_su_")),
        "{linked}"
    );
    assert!(with_password["setup_url"].is_null());
    let emails = column(&list, "users", "email");
    // With the admin made on the very first start.
    assert_eq!(
        emails,
        [
            "admin@localhost",
            "ann@example.com",
            "bob@example.com",
            ADMIN
        ]
    );
    let ann_token = issued["token"].as_str().expect("token").to_owned();
    let token_id = issued["id"].as_str().expect("id").to_owned();
    // Ann is an admin now: her token opens the management API.
    let ann_lists_users = |status| ("GET /api/v1/admin/users", Value::Null, status, json!({}));
    e.calls(&ann_token, [ann_lists_users(StatusCode::OK)]).await;
    let [tokens, _] = e
        .calls(
            &e.admin,
            [
                (
                    "GET /api/v1/admin/users/ann@example.com/tokens",
                    Value::Null,
                    StatusCode::OK,
                    // Newest first.
                    json!({"/tokens/1/label": "ci"}),
                ),
                (
                    "POST /api/v1/admin/users/ann@example.com/disable",
                    Value::Null,
                    StatusCode::OK,
                    json!({"/disabled": true}),
                ),
            ],
        )
        .await;
    assert_eq!(
        tokens["tokens"].as_array().map(Vec::len),
        Some(2),
        "{tokens}"
    );
    assert!(!tokens.to_string().contains("pliuz_ut_"), "{tokens}");

    // Disabled: her token stops working; enabled: it works again; revoked:
    // it stops for good.
    let revoke = format!("POST /api/v1/admin/users/ann@example.com/tokens/{token_id}/revoke");
    e.calls(&ann_token, [ann_lists_users(StatusCode::UNAUTHORIZED)])
        .await;
    e.calls(
        &e.admin,
        [(
            "POST /api/v1/admin/users/ann@example.com/enable",
            Value::Null,
            StatusCode::OK,
            json!({}),
        )],
    )
    .await;
    e.calls(&ann_token, [ann_lists_users(StatusCode::OK)]).await;
    e.calls(
        &e.admin,
        [(
            revoke.as_str(),
            Value::Null,
            StatusCode::NO_CONTENT,
            json!({}),
        )],
    )
    .await;
    e.calls(&ann_token, [ann_lists_users(StatusCode::UNAUTHORIZED)])
        .await;

    // Revoked already; and an admin cannot lock themselves out.
    let lock_out = format!("POST /api/v1/admin/users/{ADMIN}/disable");
    let demote = format!("PUT /api/v1/admin/users/{ADMIN}/role");
    let [_, own, _] = e
        .calls(
            &e.admin,
            [
                (
                    revoke.as_str(),
                    Value::Null,
                    StatusCode::NOT_FOUND,
                    json!({}),
                ),
                (
                    lock_out.as_str(),
                    Value::Null,
                    StatusCode::FORBIDDEN,
                    json!({}),
                ),
                (
                    demote.as_str(),
                    json!({"role": "approver"}),
                    StatusCode::FORBIDDEN,
                    json!({}),
                ),
            ],
        )
        .await;
    assert_detail_contains(&own, "ask another admin");

    // Users made with the CLI at the start are audited too, as the system's.
    let changes = [
        ("user.created", 2),
        ("user.group_added", 2),
        ("user.group_removed", 1),
        ("user.role_changed", 1),
        ("user.disabled", 1),
        ("user.enabled", 1),
        ("user.token_revoked", 1),
    ];
    e.assert_admin_made(&changes, Makers::AlsoOthers).await;
    let revoked = e.entries("user.token_revoked").await;
    assert_eq!(revoked[0]["data"]["token_id"], json!(token_id));
    let role = e.entries("user.role_changed").await;
    assert_eq!(role[0]["data"]["via"], "admin");
    assert_eq!(role[0]["data"]["to"], "admin");
}

support::on_both_databases!(users_groups_roles_and_tokens_are_managed);

#[tokio::test]
async fn the_cli_makes_the_same_changes_through_the_same_service_calls() {
    let e = env_on(REFUNDS_POLICY, None).await;
    e.server
        .create_user("ann@example.com", "approver", &["finance"]);
    let out = e
        .server
        .cli(&["users", "set-role", "ann@example.com", "auditor"], None);
    assert!(out.success, "{}", out.stderr);
    let (_, ann) = e
        .call("GET", "/api/v1/admin/users/ann@example.com", None)
        .await;
    assert_eq!(ann["role"], "auditor", "{ann}");
    let role = e.entries("user.role_changed").await;
    assert_eq!(role.len(), 1, "{role:?}");
    assert_eq!(role[0]["actor"], "system");
    assert_eq!(role[0]["data"]["via"], "admin");

    // A token issued over the API is listed and revoked by the CLI.
    let [issued] = e
        .calls(
            &e.admin,
            [(
                "POST /api/v1/admin/users/ann@example.com/tokens",
                json!({"label": "ci"}),
                StatusCode::CREATED,
                json!({}),
            )],
        )
        .await;
    let id = issued["id"].as_str().expect("id");
    let token = issued["token"].as_str().expect("token");
    let out = e.server.cli(&["users", "tokens", "ann@example.com"], None);
    assert!(out.success, "{}", out.stderr);
    assert!(
        out.stdout.contains(&format!("{id}\tci\t")),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("pliuz_ut_"), "{}", out.stdout);
    let out = e
        .server
        .cli(&["users", "revoke-token", "ann@example.com", id], None);
    assert!(out.success, "{}", out.stderr);
    e.expect_as(
        token,
        "GET /api/v1/approvals",
        None,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let out = e
        .server
        .cli(&["users", "revoke-token", "ann@example.com", id], None);
    assert!(!out.success);
    assert!(out.stderr.contains("no active token"), "{}", out.stderr);

    // A webhook set over the API gets a new secret from the CLI.
    let hooked = json!({"name": "hooked-bot", "webhook_url": "https://hooks.example.com/h"});
    let create = (
        "POST /api/v1/admin/agents",
        hooked,
        StatusCode::CREATED,
        json!({}),
    );
    let [created] = e.calls(&e.admin, [create]).await;
    let out = e
        .server
        .cli(&["agents", "rotate-webhook-secret", "hooked-bot"], None);
    assert!(out.success, "{}", out.stderr);
    let secret = out.stdout.trim();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_ne!(created["webhook_secret"], json!(secret));
    let set = e.entries("agent.webhook_set").await;
    assert_eq!(set.len(), 2, "{set:?}");
    assert_eq!(set[1]["actor"], "system");
    assert_eq!(set[1]["data"]["secret_rotated"], true);
}

#[tokio::test]
async fn only_an_admins_personal_token_is_let_in() {
    let e = env_on(REFUNDS_POLICY, None).await;
    let agent = e.server.agent_key("billing-bot");
    let approver = e
        .server
        .user_token("ann@example.com", "approver", &["finance"]);
    let auditor = e.server.user_token("aud@example.com", "auditor", &[]);
    let other_admin = e.server.user_token("other@example.com", "admin", &[]);
    let revoked_admin = e.server.user_token("gone@example.com", "admin", &[]);
    let out = e
        .server
        .cli(&["users", "revoke-tokens", "gone@example.com"], None);
    assert!(out.success, "{}", out.stderr);
    let out = e
        .server
        .cli(&["users", "disable", "other@example.com"], None);
    assert!(out.success, "{}", out.stderr);

    let routes = [
        ("GET", "/api/v1/admin/agents", None),
        ("POST", "/api/v1/admin/agents", Some(json!({"name": "x"}))),
        ("GET", "/api/v1/admin/users", None),
        ("POST", "/api/v1/admin/users/ann@example.com/disable", None),
        ("GET", "/api/v1/admin/policies", None),
    ];
    for (method, path, body) in routes {
        for (who, token, expected) in [
            ("agent key", agent.as_str(), StatusCode::FORBIDDEN),
            ("approver", approver.as_str(), StatusCode::FORBIDDEN),
            ("auditor", auditor.as_str(), StatusCode::FORBIDDEN),
            (
                "disabled admin",
                other_admin.as_str(),
                StatusCode::UNAUTHORIZED,
            ),
            (
                "revoked token",
                revoked_admin.as_str(),
                StatusCode::UNAUTHORIZED,
            ),
        ] {
            let r = e
                .http
                .request(method.parse().expect("method"), e.server.url(path))
                .bearer_auth(token)
                .json(&body.clone().unwrap_or(Value::Null))
                .send()
                .await
                .expect("request");
            assert_eq!(r.status(), expected, "{who} {method} {path}");
            assert_eq!(content_type(&r), "application/problem+json");
            let problem: Value = r.json().await.expect("json");
            assert!(is_problem(&problem), "{problem}");
        }
        let r = e
            .http
            .request(method.parse().expect("method"), e.server.url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "anonymous {method} {path}"
        );
    }
    let (_, agent_refusal) = call(
        &e.http,
        &e.server,
        &agent,
        "GET",
        "/api/v1/admin/agents",
        None,
    )
    .await;
    assert_detail_contains(&agent_refusal, "not an agent key");
    let (_, approver_refusal) = call(
        &e.http,
        &e.server,
        &approver,
        "GET",
        "/api/v1/admin/agents",
        None,
    )
    .await;
    assert_detail_contains(&approver_refusal, "for admins");
    // Nothing was changed by the refused calls.
    let created = e.entries("agent.created").await;
    assert!(
        created.iter().all(|x| x["data"]["name"] != "x"),
        "{created:?}"
    );
    let (_, ann) = e
        .call("GET", "/api/v1/admin/users/ann@example.com", None)
        .await;
    assert_eq!(ann["disabled"], false);
}

#[tokio::test]
async fn mistakes_are_problem_json_saying_what_to_fix() {
    let e = env_on(REFUNDS_POLICY, None).await;
    let cases = [
        (
            "POST",
            "/api/v1/admin/users",
            json!({"email": "not-an-email", "role": "approver"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "is not an email address",
        ),
        (
            "POST",
            "/api/v1/admin/users",
            json!({"email": "a@example.com", "role": "boss"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown variant",
        ),
        (
            "POST",
            "/api/v1/admin/users",
            json!({"email": "a@example.com", "role": "approver", "password": "short"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "at least 10 characters",
        ),
        (
            "POST",
            "/api/v1/admin/users",
            json!({"email": "a@example.com", "role": "approver", "colour": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "colour",
        ),
        (
            "PUT",
            "/api/v1/admin/users/nobody@example.com/groups",
            json!({"groups": ["x"]}),
            StatusCode::NOT_FOUND,
            "no user nobody@example.com",
        ),
        (
            "POST",
            "/api/v1/admin/agents",
            json!({"name": "has spaces"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "letters, digits",
        ),
        (
            "POST",
            "/api/v1/admin/agents",
            json!({"name": "ok-bot", "webhook_url": "ftp://example.com"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "http:// or https://",
        ),
        (
            "POST",
            "/api/v1/admin/agents/ok-bot/webhook/rotate-secret",
            Value::Null,
            StatusCode::NOT_FOUND,
            "no webhook for agent 'ok-bot'",
        ),
    ];
    for (method, path, body, status, text) in cases {
        let (got, problem) = e
            .call(method, path, (!body.is_null()).then_some(body.clone()))
            .await;
        assert_eq!(got, status, "{method} {path} {body}: {problem}");
        assert!(is_problem(&problem), "{problem}");
        assert!(
            problem.to_string().contains(text),
            "{method} {path}: {problem} should say {text}"
        );
    }
    // The bad webhook URL created no agent.
    let ok_bot = json!({"name": "ok-bot"});
    let [_, _, dup] = e
        .calls(
            &e.admin,
            [
                (
                    "GET /api/v1/admin/agents/ok-bot",
                    Value::Null,
                    StatusCode::NOT_FOUND,
                    json!({}),
                ),
                (
                    "POST /api/v1/admin/agents",
                    ok_bot.clone(),
                    StatusCode::CREATED,
                    json!({}),
                ),
                (
                    "POST /api/v1/admin/agents",
                    ok_bot,
                    StatusCode::CONFLICT,
                    json!({"/code": "already_exists"}),
                ),
            ],
        )
        .await;
    assert_detail_contains(&dup, "already exists");
}

#[tokio::test]
async fn policies_are_read_only_when_they_come_from_the_file() {
    let e = env_on(REFUNDS_POLICY, None).await;
    e.calls(
        &e.admin,
        [
            (
                "GET /api/v1/admin/policies",
                Value::Null,
                StatusCode::OK,
                json!({"/source": "file", "/policies/0/name": "refunds"}),
            ),
            (
                "GET /api/v1/admin/policies/refunds",
                Value::Null,
                StatusCode::OK,
                json!({"/definition/approvers": ["group:finance"], "/policy/expires_in_seconds": 1800}),
            ),
            ("GET /api/v1/admin/policies/nope", Value::Null, StatusCode::NOT_FOUND, json!({})),
        ],
    )
    .await;

    let body = json!({"name": "deploys", "tools": ["deploy"], "approvers": ["group:ops"]});
    for (method, path, body) in [
        ("POST", "/api/v1/admin/policies", Some(body.clone())),
        ("PUT", "/api/v1/admin/policies/refunds", Some(body.clone())),
        ("DELETE", "/api/v1/admin/policies/refunds", None),
    ] {
        let (status, problem) = e.call(method, path, body).await;
        assert_eq!(status, StatusCode::CONFLICT, "{method}: {problem}");
        assert_eq!(problem["code"], "policy_source_file", "{problem}");
        assert_detail_contains(&problem, "policy_source = \"database\"");
    }
    let (_, after) = e.call("GET", "/api/v1/admin/policies", None).await;
    assert_eq!(after["policies"].as_array().map(Vec::len), Some(1));
}

/// The `key` of each item of the array `list` in `object`, in order.
fn column<'v>(object: &'v Value, list: &str, key: &str) -> Vec<&'v str> {
    object[list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item[key].as_str())
        .collect()
}

/// Opening a request for `deploy` is refused: no policy covers it.
async fn no_policy_covers_deploy(e: &Env, agent: &str) {
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    expect_open(&e.http, &e.server, agent, "deploy", status).await;
}

fn database_mode() -> String {
    format!("policy_source = \"database\"\n{REFUNDS_POLICY}")
}

async fn database_policies_are_validated_audited_and_in_force_at_once(
    database_url: Option<String>,
) {
    let e = env_on(&database_mode(), database_url).await;
    let agent = e.server.agent_key("deploy-bot");

    // The file's policies were imported on the first start, audited.
    e.calls(
        &e.admin,
        [(
            "GET /api/v1/admin/policies",
            Value::Null,
            StatusCode::OK,
            json!({"/source": "database", "/policies/0/name": "refunds"}),
        )],
    )
    .await;
    let imported = e.entries("policy.created").await;
    assert_eq!(imported.len(), 1, "{imported:?}");
    assert_eq!(imported[0]["actor"], "system");

    // No policy covers `deploy` yet.
    no_policy_covers_deploy(&e, &agent).await;

    // Every mistake in one answer, each named by its key; fixing the
    // unknown key shows the rest, all at once.
    let mistakes = json!({
        "name": "deploys",
        "tools": ["deploy"],
        "approvers": ["ops"],
        "decisions": ["approve", "maybe"],
        "expires_in": "soon",
        "auto_approve": "args.n <="
    });
    let mut with_unknown_key = mistakes.clone();
    with_unknown_key["colour"] = json!("red");
    let invalid_policy = |body| {
        (
            "POST /api/v1/admin/policies",
            body,
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({}),
        )
    };
    let [invalid, fixed_key] = e
        .calls(
            &e.admin,
            [invalid_policy(with_unknown_key), invalid_policy(mistakes)],
        )
        .await;
    assert!(is_problem(&invalid), "{invalid}");
    let mut named = column(&invalid, "errors", "field");
    named.sort_unstable();
    assert_eq!(
        named,
        [
            "approvers",
            "auto_approve",
            "colour",
            "decisions",
            "expires_in"
        ],
        "{invalid}"
    );
    assert_eq!(
        column(&fixed_key, "errors", "field"),
        ["approvers", "decisions", "expires_in", "auto_approve"],
        "{fixed_key}"
    );
    assert!(
        e.entries("policy.created").await.len() == 1,
        "nothing stored"
    );

    let definition = json!({
        "name": "deploys",
        "tools": ["deploy"],
        "approvers": ["group:ops"],
        "expires_in": "10m",
        "description": "Production deploys"
    });
    e.calls(
        &e.admin,
        [
            (
                "POST /api/v1/admin/policies",
                definition.clone(),
                StatusCode::CREATED,
                json!({"/policy/expires_in_seconds": 600}),
            ),
            (
                "POST /api/v1/admin/policies",
                definition.clone(),
                StatusCode::CONFLICT,
                json!({"/code": "already_exists"}),
            ),
        ],
    )
    .await;

    // In force for the very next request.
    let opened = expect_open(&e.http, &e.server, &agent, "deploy", StatusCode::CREATED).await;
    assert_eq!(opened["policy"], "deploys");
    assert_eq!(opened["required_approvals"], 1);

    let two_approvals =
        json!({"tools": ["deploy"], "approvers": ["group:ops"], "required_approvals": 2});
    let replace = (
        "PUT /api/v1/admin/policies/deploys",
        two_approvals,
        StatusCode::OK,
        json!({"/policy/required_approvals": 2, "/definition/required_approvals": 2}),
    );
    e.calls(&e.admin, [replace]).await;
    let opened = expect_open(&e.http, &e.server, &agent, "deploy", StatusCode::CREATED).await;
    assert_eq!(opened["required_approvals"], 2, "{opened}");

    // The audit log carries the full new policy.
    let created = e.entries("policy.created").await;
    assert_eq!(created.len(), 2);
    assert_eq!(created[1]["actor"], json!(format!("user:{ADMIN}")));
    assert_eq!(created[1]["data"]["definition"], definition);
    assert_eq!(
        created[1]["data"]["policy"]["approvers"],
        json!(["group:ops"])
    );
    let updated = e.entries("policy.updated").await;
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0]["data"]["definition"]["required_approvals"], 2);
    assert_eq!(updated[0]["data"]["definition"]["name"], "deploys");
    assert_eq!(updated[0]["data"]["policy"]["required_approvals"], 2);

    let delete = |status| {
        (
            "DELETE /api/v1/admin/policies/deploys",
            Value::Null,
            status,
            json!({}),
        )
    };
    e.calls(&e.admin, [delete(StatusCode::NO_CONTENT)]).await;
    no_policy_covers_deploy(&e, &agent).await;
    assert_eq!(e.entries("policy.deleted").await.len(), 1);
    // Stored: a restart keeps them and imports nothing again.
    e.calls(
        &e.admin,
        [
            delete(StatusCode::NOT_FOUND),
            (
                "POST /api/v1/admin/policies",
                definition.clone(),
                StatusCode::CREATED,
                json!({}),
            ),
        ],
    )
    .await;
    let mut server = e.server;
    server.restart().await;
    expect_open(&e.http, &server, &agent, "deploy", StatusCode::CREATED).await;
    let (_, list) = call(
        &e.http,
        &server,
        &e.admin,
        "GET",
        "/api/v1/admin/policies",
        None,
    )
    .await;
    let names = column(&list, "policies", "name");
    assert_eq!(names, ["refunds", "deploys"], "{list}");

    // The admin page shows the stored policies and where to change them.
    let http = support::web::no_redirects();
    let session = support::web::session(&http, &server, ADMIN).await;
    let page = support::web::session_page(&http, &server, "/admin", &session).await;
    assert!(page.contains("policies live in the database"), "{page}");
    assert!(page.contains("Production deploys"), "{page}");
}

support::on_both_databases!(database_policies_are_validated_audited_and_in_force_at_once);

#[tokio::test]
async fn a_wrong_policy_source_stops_the_server_naming_the_setting() {
    let mut server = Server::start(REFUNDS_POLICY).await;
    server.stop();
    let out = server.serve_refused_with(&format!("policy_source = \"db\"\n{REFUNDS_POLICY}"));
    assert!(
        out.stderr
            .contains("policy_source must be \"file\" or \"database\", got \"db\""),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("pliuz.toml:1:"),
        "the line: {}",
        out.stderr
    );
    let check = server.cli(&["policy", "check"], None);
    assert!(!check.success);
    assert!(
        check.stderr.contains("policy_source must be"),
        "{}",
        check.stderr
    );
    server.extra_env = vec![("PLIUZ_POLICY_SOURCE".into(), "files".into())];
    let out = server.serve_refused_with(REFUNDS_POLICY);
    assert!(
        out.stderr.contains("PLIUZ_POLICY_SOURCE must be"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn the_default_policy_of_the_file_cannot_be_deleted() {
    let config = format!("default_policy = \"refunds\"\n{}", database_mode());
    let e = env_on(&config, None).await;
    e.calls(
        &e.admin,
        [
            (
                "GET /api/v1/admin/policies",
                Value::Null,
                StatusCode::OK,
                json!({"/default_policy": "refunds"}),
            ),
            (
                "DELETE /api/v1/admin/policies/refunds",
                Value::Null,
                StatusCode::CONFLICT,
                json!({"/code": "default_policy"}),
            ),
        ],
    )
    .await;
    // Still in force: an unlisted tool falls back to it.
    let agent = e.server.agent_key("any-bot");
    let opened = expect_open(
        &e.http,
        &e.server,
        &agent,
        "unlisted_tool",
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(opened["policy"], "refunds");
}

#[tokio::test]
async fn a_policy_changed_on_one_replica_is_in_force_on_the_other() {
    let url = support::fresh_postgres_database().await;
    let e = env_on(&database_mode(), Some(url)).await;
    let agent = e.server.agent_key("deploy-bot");
    let replica = Server::replica_of(&e.server).await;
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    expect_open(&e.http, &replica, &agent, "deploy", status).await;

    let deploys = json!({"name": "deploys", "tools": ["deploy"], "approvers": ["group:ops"]});
    let create = (
        "POST /api/v1/admin/policies",
        deploys,
        StatusCode::CREATED,
        json!({}),
    );
    e.calls(&e.admin, [create]).await;
    // The other replica hears of it through NOTIFY and reloads.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, opened) = open(&e.http, &replica, &agent, "deploy").await;
        if status == StatusCode::CREATED {
            assert_eq!(opened["policy"], "deploys");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never took the new policy: {opened}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And a change made on the replica reaches the first one.
    let (status, _) = call(
        &e.http,
        &replica,
        &e.admin,
        "PUT",
        "/api/v1/admin/policies/deploys",
        Some(json!({"tools": ["deploy"], "approvers": ["group:ops"], "required_approvals": 3})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, listed) = e.call("GET", "/api/v1/admin/policies/deploys", None).await;
        if listed["policy"]["required_approvals"] == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first replica never reloaded: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
