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
use support::Server;

const CONFIG: &str = r#"
[audit]
origin = "pliuz.test/openapi"
checkpoint_every = 4
checkpoint_interval = "1s"

[[policy]]
name = "refunds"
tools = ["issue_refund"]
approvers = ["group:finance"]
decisions = ["approve", "reject", "edit"]
expires_in = "30m"
"#;

const ID: &str = "{id}";

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
        ];
        let server = Server::start_with(CONFIG, None, env).await;
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

    /// Sends `method template` (with `{id}` replaced by `id`) and checks the
    /// answer against the document; returns it for the scenario to go on.
    async fn call(
        &self,
        method: Method,
        template: &str,
        id: &str,
        query: &str,
        token: Option<&str>,
        body: Body,
    ) -> Answer {
        let path = template.replace(ID, id);
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

fn expect(answer: &Answer, status: StatusCode, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.json);
}

fn expect_code(answer: &Answer, status: StatusCode, code: &str) {
    expect(answer, status, code);
    assert_eq!(answer.json["code"], code, "{}", answer.json);
}

fn id_of(answer: &Answer) -> String {
    answer.json["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn every_answer_matches_the_served_openapi_document() {
    let c = Checker::start().await;
    let agent = c.server.agent_key("support-bot");
    let finance = c
        .server
        .user_token("fin@example.com", "approver", &["finance"]);
    let auditor = c.server.user_token("audit@example.com", "auditor", &[]);
    let (get, post, put) = (Method::GET, Method::POST, Method::PUT);

    // The service routes.
    for path in ["/healthz", "/readyz", "/api/v1/openapi.json"] {
        let a = c.call(get.clone(), path, "", "", None, Body::None).await;
        expect(&a, StatusCode::OK, path);
    }
    let a = c
        .call(get.clone(), "/metrics", "", "", None, Body::None)
        .await;
    expect(&a, StatusCode::UNAUTHORIZED, "/metrics without the token");
    let a = c
        .call(
            get.clone(),
            "/metrics",
            "",
            "",
            Some(METRICS_TOKEN),
            Body::None,
        )
        .await;
    expect(&a, StatusCode::OK, "/metrics");

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
    let opened = c
        .call(
            post.clone(),
            "/api/v1/approvals",
            "",
            "",
            Some(&agent),
            create("k1", 5000),
        )
        .await;
    expect(&opened, StatusCode::CREATED, "create");
    let id = id_of(&opened);
    let replay = c
        .call(
            post.clone(),
            "/api/v1/approvals",
            "",
            "",
            Some(&agent),
            create("k1", 5000),
        )
        .await;
    expect(&replay, StatusCode::OK, "replay");
    let one = c
        .call(
            get.clone(),
            "/api/v1/approvals/{id}",
            &id,
            "?wait=0",
            Some(&agent),
            Body::None,
        )
        .await;
    expect(&one, StatusCode::OK, "get");
    let page = c
        .call(
            get.clone(),
            "/api/v1/approvals",
            "",
            "?status=pending&limit=10",
            Some(&finance),
            Body::None,
        )
        .await;
    expect(&page, StatusCode::OK, "list");
    assert_eq!(page.json["items"][0]["id"], id.as_str());
    let policies = c
        .call(
            get.clone(),
            "/api/v1/policies",
            "",
            "",
            Some(&finance),
            Body::None,
        )
        .await;
    expect(&policies, StatusCode::OK, "policies");

    // Decide, then claim and report the execution.
    let digest = one.json["args_digest"].as_str().expect("digest").to_owned();
    let decision = json!({"decision": "approve", "args_digest": digest, "reason": "fine"});
    let decided = c
        .call(
            post.clone(),
            "/api/v1/approvals/{id}/decision",
            &id,
            "",
            Some(&finance),
            Body::Json(decision.clone()),
        )
        .await;
    expect(&decided, StatusCode::OK, "decide");
    let again = c
        .call(
            post.clone(),
            "/api/v1/approvals/{id}/decision",
            &id,
            "",
            Some(&finance),
            Body::Json(decision),
        )
        .await;
    expect(&again, StatusCode::CONFLICT, "decide twice");
    let claim = json!({"outcome": "started", "claim_id": "claim-1"});
    let claimed = c
        .call(
            post.clone(),
            "/api/v1/approvals/{id}/execution",
            &id,
            "",
            Some(&agent),
            Body::Json(claim),
        )
        .await;
    expect(&claimed, StatusCode::OK, "claim");
    let other = json!({"outcome": "started", "claim_id": "claim-2"});
    let taken = c
        .call(
            post.clone(),
            "/api/v1/approvals/{id}/execution",
            &id,
            "",
            Some(&agent),
            Body::Json(other),
        )
        .await;
    expect_code(&taken, StatusCode::CONFLICT, "execution_claimed");
    let report = json!({"outcome": "success", "claim_id": "claim-1", "latency_ms": 12, "output_excerpt": "refunded"});
    let reported = c
        .call(
            post.clone(),
            "/api/v1/approvals/{id}/execution",
            &id,
            "",
            Some(&agent),
            Body::Json(report),
        )
        .await;
    expect(&reported, StatusCode::OK, "report");
    assert_eq!(reported.json["status"], "executed");

    // Cancel (with an empty body), then again.
    let second = c
        .call(
            post.clone(),
            "/api/v1/approvals",
            "",
            "",
            Some(&agent),
            create("k2", 7000),
        )
        .await;
    expect(&second, StatusCode::CREATED, "create second");
    let second_id = id_of(&second);
    let cancelled = c
        .call(
            post.clone(),
            "/api/v1/approvals/{id}/cancel",
            &second_id,
            "",
            Some(&agent),
            Body::None,
        )
        .await;
    expect(&cancelled, StatusCode::OK, "cancel");
    let reason = Body::Json(json!({"reason": "changed my mind"}));
    let twice = c
        .call(
            post.clone(),
            "/api/v1/approvals/{id}/cancel",
            &second_id,
            "",
            Some(&agent),
            reason,
        )
        .await;
    expect(&twice, StatusCode::CONFLICT, "cancel twice");

    // The usual mistakes, each answered with a documented problem.
    let a = c
        .call(get.clone(), "/api/v1/approvals", "", "", None, Body::None)
        .await;
    expect_code(&a, StatusCode::UNAUTHORIZED, "unauthorized");
    let a = c
        .call(
            get.clone(),
            "/api/v1/approvals",
            "",
            "",
            Some("pliuz_ak_unknown"),
            Body::None,
        )
        .await;
    expect_code(&a, StatusCode::UNAUTHORIZED, "unauthorized");
    let a = c
        .call(
            get.clone(),
            "/api/v1/approvals",
            "",
            "?limit=0",
            Some(&finance),
            Body::None,
        )
        .await;
    expect_code(&a, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let a = c
        .call(
            get.clone(),
            "/api/v1/approvals/{id}",
            "00000000-0000-0000-0000-000000000000",
            "",
            Some(&agent),
            Body::None,
        )
        .await;
    expect_code(&a, StatusCode::NOT_FOUND, "not_found");
    let a = c
        .call(
            get.clone(),
            "/api/v1/policies",
            "",
            "",
            Some(&agent),
            Body::None,
        )
        .await;
    expect_code(&a, StatusCode::FORBIDDEN, "forbidden");
    let a = c
        .call(
            post.clone(),
            "/api/v1/approvals",
            "",
            "",
            Some(&finance),
            create("k3", 1),
        )
        .await;
    expect_code(&a, StatusCode::FORBIDDEN, "forbidden");
    let a = c
        .call(
            post.clone(),
            "/api/v1/approvals",
            "",
            "",
            Some(&agent),
            Body::Raw("application/json", b"{\"tool_name\":".to_vec()),
        )
        .await;
    expect(&a, StatusCode::BAD_REQUEST, "malformed JSON");
    let a = c
        .call(
            post.clone(),
            "/api/v1/approvals",
            "",
            "",
            Some(&agent),
            Body::Raw("text/plain", b"{}".to_vec()),
        )
        .await;
    expect(&a, StatusCode::UNSUPPORTED_MEDIA_TYPE, "media type");
    let a = c
        .call(
            post.clone(),
            "/api/v1/approvals",
            "",
            "",
            Some(&agent),
            Body::Json(json!({"tool_name": "issue_refund", "tool_args": {}, "extra": 1})),
        )
        .await;
    expect(&a, StatusCode::UNPROCESSABLE_ENTITY, "unknown field");
    assert!(a.json["errors"].is_array(), "{}", a.json);
    let a = c
        .call(
            post.clone(),
            "/api/v1/approvals",
            "",
            "",
            Some(&agent),
            Body::Json(json!({"tool_name": "shutdown", "tool_args": {}})),
        )
        .await;
    expect_code(&a, StatusCode::UNPROCESSABLE_ENTITY, "no_matching_policy");
    let big = format!(
        "{{\"tool_name\":\"issue_refund\",\"tool_args\":{{\"pad\":\"{}\"}}}}",
        "x".repeat(17 * 1024)
    );
    let a = c
        .call(
            post.clone(),
            "/api/v1/approvals",
            "",
            "",
            Some(&agent),
            Body::Raw("application/json", big.into_bytes()),
        )
        .await;
    expect(&a, StatusCode::PAYLOAD_TOO_LARGE, "too large");
    let stale = json!({"decision": "approve", "args_digest": "0".repeat(64)});
    let third = c
        .call(
            post.clone(),
            "/api/v1/approvals",
            "",
            "",
            Some(&agent),
            create("k4", 9000),
        )
        .await;
    let a = c
        .call(
            post.clone(),
            "/api/v1/approvals/{id}/decision",
            &id_of(&third),
            "",
            Some(&finance),
            Body::Json(stale),
        )
        .await;
    expect_code(&a, StatusCode::CONFLICT, "args_changed");

    // Runs: pause on the settled approval, claim, heartbeat, pause again,
    // claim, complete, and a claim too many.
    let state = Body::Json(
        json!({"state": "{\"step\":1}", "approval_ids": [id], "metadata": {"graph": "refund"}}),
    );
    let run = c
        .call(post.clone(), "/api/v1/runs", "", "", Some(&agent), state)
        .await;
    expect(&run, StatusCode::CREATED, "create run");
    let run_id = id_of(&run);
    let a = c
        .call(
            get.clone(),
            "/api/v1/runs",
            "",
            "?status=ready&limit=5",
            Some(&agent),
            Body::None,
        )
        .await;
    expect(&a, StatusCode::OK, "list runs");
    let a = c
        .call(
            get.clone(),
            "/api/v1/runs/{id}",
            &run_id,
            "?wait=0",
            Some(&agent),
            Body::None,
        )
        .await;
    expect(&a, StatusCode::OK, "get run");
    let claim_run = c
        .call(
            post.clone(),
            "/api/v1/runs/{id}/claim",
            &run_id,
            "",
            Some(&agent),
            Body::None,
        )
        .await;
    expect(&claim_run, StatusCode::OK, "claim run");
    let lease = claim_run.json["lease_token"]
        .as_str()
        .expect("lease")
        .to_owned();
    let a = c
        .call(
            post.clone(),
            "/api/v1/runs/{id}/heartbeat",
            &run_id,
            "",
            Some(&agent),
            Body::Json(json!({"lease_token": lease, "lease_seconds": 60})),
        )
        .await;
    expect(&a, StatusCode::OK, "heartbeat");
    let a = c
        .call(
            post.clone(),
            "/api/v1/runs/{id}/claim",
            &run_id,
            "",
            Some(&agent),
            Body::Json(json!({"lease_seconds": 60})),
        )
        .await;
    expect_code(&a, StatusCode::CONFLICT, "run_claimed");
    let repause = json!({"lease_token": lease, "state": "{\"step\":2}", "approval_ids": [id]});
    let a = c
        .call(
            put.clone(),
            "/api/v1/runs/{id}",
            &run_id,
            "",
            Some(&agent),
            Body::Json(repause),
        )
        .await;
    expect(&a, StatusCode::OK, "repause");
    let claim_run = c
        .call(
            post.clone(),
            "/api/v1/runs/{id}/claim",
            &run_id,
            "",
            Some(&agent),
            Body::Json(json!({"lease_seconds": 30})),
        )
        .await;
    expect(&claim_run, StatusCode::OK, "claim again");
    let lease = claim_run.json["lease_token"]
        .as_str()
        .expect("lease")
        .to_owned();
    let done =
        json!({"lease_token": lease, "outcome": "completed", "output_sha256": "a".repeat(64)});
    let a = c
        .call(
            post.clone(),
            "/api/v1/runs/{id}/complete",
            &run_id,
            "",
            Some(&agent),
            Body::Json(done),
        )
        .await;
    expect(&a, StatusCode::OK, "complete");
    assert_eq!(a.json["status"], "completed");
    let a = c
        .call(
            post.clone(),
            "/api/v1/runs/{id}/claim",
            &run_id,
            "",
            Some(&agent),
            Body::None,
        )
        .await;
    expect_code(&a, StatusCode::CONFLICT, "run_completed");
    let a = c
        .call(
            get.clone(),
            "/api/v1/runs",
            "",
            "",
            Some(&finance),
            Body::None,
        )
        .await;
    expect_code(&a, StatusCode::FORBIDDEN, "forbidden");

    // The audit log.
    let a = c
        .call(
            get.clone(),
            "/api/v1/audit/checkpoint",
            "",
            "",
            Some(&auditor),
            Body::None,
        )
        .await;
    expect(&a, StatusCode::OK, "checkpoint");
    let a = c
        .call(
            get.clone(),
            "/api/v1/audit/key",
            "",
            "",
            Some(&agent),
            Body::None,
        )
        .await;
    expect(&a, StatusCode::OK, "key");
    let a = c
        .call(
            get.clone(),
            "/api/v1/audit/keys",
            "",
            "",
            Some(&auditor),
            Body::None,
        )
        .await;
    expect(&a, StatusCode::OK, "keys");
    let a = c
        .call(
            get.clone(),
            "/api/v1/audit/entries",
            "",
            "?start=0&end=3",
            Some(&auditor),
            Body::None,
        )
        .await;
    expect(&a, StatusCode::OK, "entries");
    let a = c
        .call(
            get.clone(),
            "/api/v1/audit/entries",
            "",
            "",
            Some(&finance),
            Body::None,
        )
        .await;
    expect_code(&a, StatusCode::FORBIDDEN, "forbidden");
    let a = c
        .call(
            get.clone(),
            "/api/v1/approvals/{id}/receipt",
            &id,
            "",
            Some(&agent),
            Body::None,
        )
        .await;
    expect(&a, StatusCode::OK, "receipt");
    let size = a.json["tree_size"].as_u64().expect("tree_size");
    let a = c
        .call(
            get.clone(),
            "/api/v1/audit/proof/inclusion",
            "",
            &format!("?index=0&size={size}"),
            Some(&auditor),
            Body::None,
        )
        .await;
    expect(&a, StatusCode::OK, "inclusion");
    let a = c
        .call(
            get.clone(),
            "/api/v1/audit/proof/inclusion",
            "",
            "?index=999999",
            Some(&auditor),
            Body::None,
        )
        .await;
    expect(&a, StatusCode::UNPROCESSABLE_ENTITY, "out of range");
    let a = c
        .call(
            get.clone(),
            "/api/v1/audit/proof/consistency",
            "",
            &format!("?from=1&size={size}"),
            Some(&agent),
            Body::None,
        )
        .await;
    expect(&a, StatusCode::OK, "consistency");

    c.assert_every_operation_succeeded();
}
