//! The served OpenAPI document against real answers: the real binary over
//! real HTTP drives every operation (successes and the usual errors), and
//! each response must be documented for its operation and status, carry a
//! documented media type, and match that response's schema (its `$ref`s
//! resolved in the document's components). Every operation must be
//! exercised with a success at least once, so a new route needs a case
//! here.

mod support;

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Mutex;
use support::{Server, REFUNDS_POLICY};

/// Turns `/metrics` on, behind this bearer token.
const METRICS_TOKEN: &str = "metrics-token-for-the-openapi-test";

/// One answer, as the checker saw it.
struct Answer {
    status: StatusCode,
    json: Value,
}

struct Checker {
    server: Server,
    http: Client,
    doc: Value,
    /// (method, path template) answered with a 2xx.
    succeeded: Mutex<BTreeSet<(String, String)>>,
}

/// The body of a request.
enum Body {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

impl Checker {
    async fn start() -> Checker {
        // A small body limit, so an oversized body fits in the socket
        // buffers and the client finishes sending before the 413.
        let env = vec![
            ("PLIUZ_MAX_BODY_BYTES".to_owned(), "16384".to_owned()),
            ("PLIUZ_METRICS_TOKEN".to_owned(), METRICS_TOKEN.to_owned()),
            // The management API's policy writes answer only in this mode.
            ("PLIUZ_POLICY_SOURCE".to_owned(), "database".to_owned()),
        ];
        // Frequent checkpoints, so the audit proofs have signed roots to cite.
        let config = format!(
            "{}{REFUNDS_POLICY}",
            support::frequent_checkpoints("pliuz.test/openapi")
        );
        let server = Server::start_with(&config, None, env).await;
        let http = Client::new();
        let doc: Value = http
            .get(server.url("/api/v1/openapi.json"))
            .send()
            .await
            .expect("GET openapi.json")
            .json()
            .await
            .expect("the document is JSON");
        Checker {
            server,
            http,
            doc,
            succeeded: Mutex::new(BTreeSet::new()),
        }
    }

    /// Sends `method template` (each `{...}` of the path replaced by the next
    /// space-separated word of `id`) and checks the answer against the
    /// document; returns it for the scenario to go on.
    async fn call(
        &self,
        method: Method,
        template: &str,
        id: &str,
        query: &str,
        token: Option<&str>,
        body: Body,
    ) -> Answer {
        let mut values = id.split(' ');
        let path = template
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') && segment.ends_with('}') {
                    values.next().unwrap_or_default()
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let mut request = self
            .http
            .request(method.clone(), self.server.url(&format!("{path}{query}")));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request = match body {
            Body::None => request,
            Body::Json(v) => request.json(&v),
            Body::Raw(content_type, bytes) => {
                request.header("content-type", content_type).body(bytes)
            }
        };
        let response = request.send().await.expect("request");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned());
        let text = response.text().await.expect("body");
        let method = method.as_str().to_lowercase();
        let what = format!("{} {template}{query} -> {status}", method.to_uppercase());
        let schema =
            self.response_schema(&method, template, status, content_type.as_deref(), &what);
        let json = match content_type.as_deref() {
            Some(ct) if ct == "application/json" || ct.ends_with("+json") => {
                serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"))
            }
            _ => Value::String(text),
        };
        if let Some(schema) = schema {
            self.validate(&schema, &json, &what);
        }
        if status.is_success() {
            self.succeeded
                .lock()
                .expect("lock")
                .insert((method, template.to_owned()));
        }
        Answer { status, json }
    }

    /// The schema the document gives for this answer; fails the test when
    /// the operation, the status or the media type is not documented.
    fn response_schema(
        &self,
        method: &str,
        template: &str,
        status: StatusCode,
        content_type: Option<&str>,
        what: &str,
    ) -> Option<Value> {
        let operation = &self.doc["paths"][template][method];
        assert!(
            operation.is_object(),
            "{what}: the operation is not documented"
        );
        let mut response = &operation["responses"][status.as_str()];
        assert!(
            response.is_object(),
            "{what}: status {status} is not documented for this operation; documented: {:?}",
            operation["responses"]
                .as_object()
                .map(|r| r.keys().collect::<Vec<_>>())
        );
        if let Some(reference) = response["$ref"].as_str() {
            response = self.resolve(reference, what);
        }
        let Some(content) = response["content"].as_object() else {
            assert!(
                content_type.is_none(),
                "{what}: answered {content_type:?} where the document has no content"
            );
            return None;
        };
        let content_type = content_type.unwrap_or_else(|| panic!("{what}: no content-type"));
        let media = content.get(content_type).unwrap_or_else(|| {
            panic!(
                "{what}: {content_type} is not documented; documented: {:?}",
                content.keys().collect::<Vec<_>>()
            )
        });
        media.get("schema").cloned()
    }

    fn resolve<'a>(&'a self, reference: &str, what: &str) -> &'a Value {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{what}: external $ref {reference}"));
        self.doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{what}: dangling $ref {reference}"))
    }

    /// Validates against `schema` with the document's components as the
    /// root resource, so `#/components/schemas/...` resolves.
    fn validate(&self, schema: &Value, instance: &Value, what: &str) {
        let mut root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"].clone(),
        });
        if let (Value::Object(root), Value::Object(schema)) = (&mut root, schema) {
            for (k, v) in schema {
                root.insert(k.clone(), v.clone());
            }
        }
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("{what}: the schema does not compile: {e}\n{schema}"));
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: the answer does not match its schema:\n  {}\nanswer: {instance}\nschema: {schema}",
            errors.join("\n  ")
        );
    }

    /// Every documented operation answered with a success at least once.
    fn assert_every_operation_succeeded(&self) {
        let mut documented = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                documented.insert((method.clone(), path.clone()));
            }
        }
        let succeeded = self.succeeded.lock().expect("lock").clone();
        let missing: Vec<_> = documented.difference(&succeeded).collect();
        assert!(
            missing.is_empty(),
            "operations never exercised with a success: {missing:?}"
        );
    }
}

/// A request whose answer only needs its status checked (and its problem
/// `code`, unless that is empty): `line` is `METHOD /template?query`, `id`
/// fills the template's `{id}`, an empty `token` sends none.
type Check<'a> = (&'a str, &'a str, &'a str, Body, u16, &'a str);

impl Answer {
    fn expect(&self, status: StatusCode, what: &str) {
        assert_eq!(self.status, status, "{what}: {}", self.json);
    }

    fn expect_code(&self, status: StatusCode, code: &str) {
        self.expect(status, code);
        assert_eq!(self.json["code"], code, "{}", self.json);
    }

    fn id(&self) -> String {
        self.field("id")
    }

    fn field(&self, name: &str) -> String {
        self.json[name].as_str().expect(name).to_owned()
    }
}

impl Checker {
    /// Sends `line` (`METHOD /template?query`) with `{id}` replaced by `id`
    /// and an empty `token` meaning none.
    async fn send(&self, line: &str, id: &str, token: &str, body: Body) -> Answer {
        let (method, target) = line.split_once(' ').expect("METHOD /path");
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let (template, query) = target
            .find('?')
            .map_or((target, ""), |at| target.split_at(at));
        let token = (!token.is_empty()).then_some(token);
        self.call(method, template, id, query, token, body).await
    }

    /// Sends every check in order and asserts each answer's status and code.
    async fn check_all<'a>(&self, checks: impl IntoIterator<Item = Check<'a>>) {
        for (line, id, token, body, status, code) in checks {
            let answer = self.send(line, id, token, body).await;
            let status = StatusCode::from_u16(status).expect("status");
            if code.is_empty() {
                answer.expect(status, line);
            } else {
                answer.expect_code(status, code);
            }
        }
    }
}

#[tokio::test]
async fn every_answer_matches_the_served_openapi_document() {
    let c = Checker::start().await;
    let agent = c.server.agent_key("support-bot");
    let finance = c
        .server
        .user_token("fin@example.com", "approver", &["finance"]);
    let auditor = c.server.user_token("audit@example.com", "auditor", &[]);
    const NONE: Body = Body::None;

    // The service routes.
    c.check_all([
        ("GET /healthz", "", "", NONE, 200, ""),
        ("GET /readyz", "", "", NONE, 200, ""),
        ("GET /api/v1/openapi.json", "", "", NONE, 200, ""),
        ("GET /metrics", "", "", NONE, 401, ""),
        ("GET /metrics", "", METRICS_TOKEN, NONE, 200, ""),
    ])
    .await;

    // Open, replay, read, list.
    let create = |key: &'static str, amount: u32| {
        Body::Json(json!({
            "tool_name": "issue_refund",
            "tool_args": {"amount_cents": amount, "order": "A-1"},
            "idempotency_key": key,
            "call_id": "call-1",
            "context_messages": [{"role": "user", "content": "refund please"}],
            "client_metadata": {"ticket": 7},
        }))
    };
    const APPROVALS: &str = "POST /api/v1/approvals";
    let opened = c.send(APPROVALS, "", &agent, create("k1", 5000)).await;
    opened.expect(StatusCode::CREATED, "create");
    let id = opened.id();
    let replay = c.send(APPROVALS, "", &agent, create("k1", 5000)).await;
    replay.expect(StatusCode::OK, "replay");
    let one = c
        .send("GET /api/v1/approvals/{id}?wait=0", &id, &agent, NONE)
        .await;
    one.expect(StatusCode::OK, "get");
    let list = "GET /api/v1/approvals?status=pending&limit=10";
    let page = c.send(list, "", &finance, NONE).await;
    page.expect(StatusCode::OK, "list");
    assert_eq!(page.json["items"][0]["id"], id.as_str());
    c.check_all([("GET /api/v1/policies", "", &*finance, NONE, 200, "")])
        .await;

    // Decide, then claim and report the execution.
    let digest = one.field("args_digest");
    let decision = json!({"decision": "approve", "args_digest": digest, "reason": "fine"});
    let claim = json!({"outcome": "started", "claim_id": "claim-1"});
    let other = json!({"outcome": "started", "claim_id": "claim-2"});
    const DECIDE: &str = "POST /api/v1/approvals/{id}/decision";
    const EXECUTION: &str = "POST /api/v1/approvals/{id}/execution";
    c.check_all([
        (
            DECIDE,
            &*id,
            &*finance,
            Body::Json(decision.clone()),
            200,
            "",
        ),
        (DECIDE, &id, &finance, Body::Json(decision), 409, ""),
        (EXECUTION, &id, &agent, Body::Json(claim), 200, ""),
        (
            EXECUTION,
            &id,
            &agent,
            Body::Json(other),
            409,
            "execution_claimed",
        ),
    ])
    .await;
    let report = json!({"outcome": "success", "claim_id": "claim-1", "latency_ms": 12, "output_excerpt": "refunded"});
    let reported = c.send(EXECUTION, &id, &agent, Body::Json(report)).await;
    reported.expect(StatusCode::OK, "report");
    assert_eq!(reported.json["status"], "executed");

    // Cancel (with an empty body), then again.
    let second = c.send(APPROVALS, "", &agent, create("k2", 7000)).await;
    second.expect(StatusCode::CREATED, "create second");
    let second_id = second.id();
    let reason = Body::Json(json!({"reason": "changed my mind"}));
    const CANCEL: &str = "POST /api/v1/approvals/{id}/cancel";
    c.check_all([
        (CANCEL, &*second_id, &*agent, NONE, 200, ""),
        (CANCEL, &second_id, &agent, reason, 409, ""),
    ])
    .await;

    // The usual mistakes, each answered with a documented problem.
    let big = format!(
        "{{\"tool_name\":\"issue_refund\",\"tool_args\":{{\"pad\":\"{}\"}}}}",
        "x".repeat(17 * 1024)
    );
    let unknown = "00000000-0000-0000-0000-000000000000";
    let malformed = Body::Raw("application/json", b"{\"tool_name\":".to_vec());
    let no_policy = Body::Json(json!({"tool_name": "shutdown", "tool_args": {}}));
    c.check_all([
        ("GET /api/v1/approvals", "", "", NONE, 401, "unauthorized"),
        (
            "GET /api/v1/approvals",
            "",
            "pliuz_ak_unknown",
            NONE,
            401,
            "unauthorized",
        ),
        (
            "GET /api/v1/approvals?limit=0",
            "",
            &finance,
            NONE,
            422,
            "validation",
        ),
        (
            "GET /api/v1/approvals/{id}",
            unknown,
            &agent,
            NONE,
            404,
            "not_found",
        ),
        ("GET /api/v1/policies", "", &agent, NONE, 403, "forbidden"),
        (APPROVALS, "", &finance, create("k3", 1), 403, "forbidden"),
        (APPROVALS, "", &agent, malformed, 400, ""),
        (
            APPROVALS,
            "",
            &agent,
            Body::Raw("text/plain", b"{}".to_vec()),
            415,
            "",
        ),
    ])
    .await;
    let extra = json!({"tool_name": "issue_refund", "tool_args": {}, "extra": 1});
    let a = c.send(APPROVALS, "", &agent, Body::Json(extra)).await;
    a.expect(StatusCode::UNPROCESSABLE_ENTITY, "unknown field");
    assert!(a.json["errors"].is_array(), "{}", a.json);
    c.check_all([
        (APPROVALS, "", &*agent, no_policy, 422, "no_matching_policy"),
        (
            APPROVALS,
            "",
            &agent,
            Body::Raw("application/json", big.into_bytes()),
            413,
            "",
        ),
    ])
    .await;
    let stale = Body::Json(json!({"decision": "approve", "args_digest": "0".repeat(64)}));
    let third = c.send(APPROVALS, "", &agent, create("k4", 9000)).await;
    c.check_all([(DECIDE, &*third.id(), &*finance, stale, 409, "args_changed")])
        .await;

    // Runs: pause on the settled approval, claim, heartbeat, pause again,
    // claim, complete, and a claim too many.
    let state = Body::Json(
        json!({"state": "{\"step\":1}", "approval_ids": [id], "metadata": {"graph": "refund"}}),
    );
    let run = c.send("POST /api/v1/runs", "", &agent, state).await;
    run.expect(StatusCode::CREATED, "create run");
    let run_id = run.id();
    const CLAIM_RUN: &str = "POST /api/v1/runs/{id}/claim";
    c.check_all([
        (
            "GET /api/v1/runs?status=ready&limit=5",
            "",
            &*agent,
            NONE,
            200,
            "",
        ),
        (
            "GET /api/v1/runs/{id}?wait=0",
            &run_id,
            &agent,
            NONE,
            200,
            "",
        ),
    ])
    .await;
    let claimed = c.send(CLAIM_RUN, &run_id, &agent, NONE).await;
    claimed.expect(StatusCode::OK, "claim run");
    let lease = claimed.field("lease_token");
    let beat = json!({"lease_token": lease, "lease_seconds": 60});
    let repause = json!({"lease_token": lease, "state": "{\"step\":2}", "approval_ids": [id]});
    let lease_60 = Body::Json(json!({"lease_seconds": 60}));
    c.check_all([
        (
            "POST /api/v1/runs/{id}/heartbeat",
            &*run_id,
            &*agent,
            Body::Json(beat),
            200,
            "",
        ),
        (CLAIM_RUN, &run_id, &agent, lease_60, 409, "run_claimed"),
        (
            "PUT /api/v1/runs/{id}",
            &run_id,
            &agent,
            Body::Json(repause),
            200,
            "",
        ),
    ])
    .await;
    let lease_30 = Body::Json(json!({"lease_seconds": 30}));
    let claimed = c.send(CLAIM_RUN, &run_id, &agent, lease_30).await;
    claimed.expect(StatusCode::OK, "claim again");
    let lease = claimed.field("lease_token");
    let done =
        json!({"lease_token": lease, "outcome": "completed", "output_sha256": "a".repeat(64)});
    let complete = "POST /api/v1/runs/{id}/complete";
    let a = c.send(complete, &run_id, &agent, Body::Json(done)).await;
    a.expect(StatusCode::OK, "complete");
    assert_eq!(a.json["status"], "completed");
    c.check_all([
        (CLAIM_RUN, &*run_id, &*agent, NONE, 409, "run_completed"),
        ("GET /api/v1/runs", "", &finance, NONE, 403, "forbidden"),
    ])
    .await;

    // Questions: ask, replay, read, list, answer, and answer again.
    let question = || {
        Body::Json(json!({
            "text": "Card or credit?",
            "choices": ["card", {"value": "credit", "label": "Store credit"}],
            "policy": "refunds",
            "idempotency_key": "q1",
            "originator": "user:someone@example.com",
            "expires_in_seconds": 600,
        }))
    };
    const QUESTIONS: &str = "POST /api/v1/questions";
    let asked = c.send(QUESTIONS, "", &agent, question()).await;
    asked.expect(StatusCode::CREATED, "ask");
    let qid = asked.id();
    const ANSWER: &str = "POST /api/v1/questions/{id}/answer";
    c.check_all([
        (QUESTIONS, "", &*agent, question(), 200, ""),
        (
            QUESTIONS,
            "",
            &finance,
            Body::Json(json!({"text": "?", "policy": "refunds"})),
            403,
            "forbidden",
        ),
        (
            "GET /api/v1/questions/{id}?wait=0",
            &qid,
            &agent,
            NONE,
            200,
            "",
        ),
        ("GET /api/v1/questions?limit=5", "", &finance, NONE, 200, ""),
        ("GET /api/v1/questions", "", &agent, NONE, 403, "forbidden"),
        (
            ANSWER,
            &qid,
            &finance,
            Body::Json(json!({"choice": "cash"})),
            422,
            "validation",
        ),
        (
            ANSWER,
            &qid,
            &finance,
            Body::Json(json!({"choice": "credit"})),
            200,
            "",
        ),
        (
            ANSWER,
            &qid,
            &finance,
            Body::Json(json!({"choice": "card"})),
            409,
            "",
        ),
        (
            "GET /api/v1/questions/{id}",
            unknown,
            &agent,
            NONE,
            404,
            "not_found",
        ),
    ])
    .await;

    // The audit log.
    c.check_all([
        ("GET /api/v1/audit/checkpoint", "", &*auditor, NONE, 200, ""),
        ("GET /api/v1/audit/key", "", &agent, NONE, 200, ""),
        ("GET /api/v1/audit/keys", "", &auditor, NONE, 200, ""),
        (
            "GET /api/v1/audit/entries?start=0&end=3",
            "",
            &auditor,
            NONE,
            200,
            "",
        ),
        (
            "GET /api/v1/audit/entries",
            "",
            &finance,
            NONE,
            403,
            "forbidden",
        ),
    ])
    .await;
    let a = c
        .send("GET /api/v1/approvals/{id}/receipt", &id, &agent, NONE)
        .await;
    a.expect(StatusCode::OK, "receipt");
    let size = a.json["tree_size"].as_u64().expect("tree_size");
    let inclusion = format!("GET /api/v1/audit/proof/inclusion?index=0&size={size}");
    let consistency = format!("GET /api/v1/audit/proof/consistency?from=1&size={size}");
    c.check_all([
        (&*inclusion, "", &*auditor, NONE, 200, ""),
        (
            "GET /api/v1/audit/proof/inclusion?index=999999",
            "",
            &auditor,
            NONE,
            422,
            "",
        ),
        (&consistency, "", &agent, NONE, 200, ""),
    ])
    .await;

    // The management API, with an admin's token (policies in the database).
    let admin = c.server.user_token("root@example.com", "admin", &[]);
    let new_agent = json!({"name": "ops-bot", "webhook_url": "https://hooks.example.com/a"});
    let hook = json!({"url": "https://hooks.example.com/b"});
    const AGENT: &str = "GET /api/v1/admin/agents/{name}";
    c.check_all([
        (
            "POST /api/v1/admin/agents",
            "",
            &*admin,
            Body::Json(new_agent),
            201,
            "",
        ),
        ("GET /api/v1/admin/agents", "", &admin, NONE, 200, ""),
        (AGENT, "ops-bot", &admin, NONE, 200, ""),
        (
            "PUT /api/v1/admin/agents/{name}/webhook",
            "ops-bot",
            &admin,
            Body::Json(hook),
            200,
            "",
        ),
        (
            "POST /api/v1/admin/agents/{name}/webhook/rotate-secret",
            "ops-bot",
            &admin,
            NONE,
            200,
            "",
        ),
        (
            "POST /api/v1/admin/agents/{name}/revoke",
            "ops-bot",
            &admin,
            NONE,
            200,
            "",
        ),
        (
            "GET /api/v1/admin/agents",
            "",
            &agent,
            NONE,
            403,
            "forbidden",
        ),
        (AGENT, "nobody", &admin, NONE, 404, "not_found"),
    ])
    .await;
    const USER: &str = "new@example.com";
    let new_user = json!({"email": USER, "role": "approver", "groups": ["ops"]});
    let bad_user = json!({"email": "not-an-email", "role": "approver"});
    c.check_all([
        (
            "POST /api/v1/admin/users",
            "",
            &*admin,
            Body::Json(new_user),
            201,
            "",
        ),
        (
            "POST /api/v1/admin/users",
            "",
            &admin,
            Body::Json(bad_user),
            422,
            "validation",
        ),
        ("GET /api/v1/admin/users", "", &admin, NONE, 200, ""),
        (
            "GET /api/v1/admin/users/{email}",
            USER,
            &admin,
            NONE,
            200,
            "",
        ),
        (
            "PUT /api/v1/admin/users/{email}/groups",
            USER,
            &admin,
            Body::Json(json!({"groups": ["ops", "legal"]})),
            200,
            "",
        ),
        (
            "PUT /api/v1/admin/users/{email}/role",
            USER,
            &admin,
            Body::Json(json!({"role": "auditor"})),
            200,
            "",
        ),
        (
            "POST /api/v1/admin/users/{email}/disable",
            USER,
            &admin,
            NONE,
            200,
            "",
        ),
        (
            "POST /api/v1/admin/users/{email}/enable",
            USER,
            &admin,
            NONE,
            200,
            "",
        ),
        (
            "GET /api/v1/admin/users/{email}/tokens",
            USER,
            &admin,
            NONE,
            200,
            "",
        ),
    ])
    .await;
    let issued = c
        .send(
            "POST /api/v1/admin/users/{email}/tokens",
            USER,
            &admin,
            Body::Json(json!({"label": "ci"})),
        )
        .await;
    issued.expect(StatusCode::CREATED, "issue a token");
    let revoke = format!("{USER} {}", issued.id());
    const REVOKE_TOKEN: &str = "POST /api/v1/admin/users/{email}/tokens/{token_id}/revoke";
    c.check_all([
        (REVOKE_TOKEN, &*revoke, &*admin, NONE, 204, ""),
        (REVOKE_TOKEN, &revoke, &admin, NONE, 404, "not_found"),
    ])
    .await;
    let deploys = json!({"name": "deploys", "tools": ["deploy"], "approvers": ["group:ops"]});
    let wrong = json!({"name": "wrong", "approvers": ["ops"], "expires_in": "soon"});
    let quorum = json!({"tools": ["deploy"], "approvers": ["group:ops"], "required_approvals": 2});
    const POLICY: &str = "/api/v1/admin/policies/{name}";
    c.check_all([
        ("GET /api/v1/admin/policies", "", &*admin, NONE, 200, ""),
        (&format!("GET {POLICY}"), "refunds", &admin, NONE, 200, ""),
        (
            "POST /api/v1/admin/policies",
            "",
            &admin,
            Body::Json(deploys),
            201,
            "",
        ),
        (
            "POST /api/v1/admin/policies",
            "",
            &admin,
            Body::Json(wrong),
            422,
            "validation",
        ),
        (
            &format!("PUT {POLICY}"),
            "deploys",
            &admin,
            Body::Json(quorum),
            200,
            "",
        ),
        (
            &format!("DELETE {POLICY}"),
            "deploys",
            &admin,
            NONE,
            204,
            "",
        ),
        (
            &format!("DELETE {POLICY}"),
            "deploys",
            &admin,
            NONE,
            404,
            "not_found",
        ),
    ])
    .await;

    c.assert_every_operation_succeeded();
}
