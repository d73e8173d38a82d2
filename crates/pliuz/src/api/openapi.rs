//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`. Each route in
//! `api::routes()` has an operation here; a test checks the two agree.

use serde_json::{json, Value};

fn problem_responses() -> Value {
    json!({
        "400": {"$ref": "#/components/responses/Problem"},
        "401": {"$ref": "#/components/responses/Problem"},
        "403": {"$ref": "#/components/responses/Problem"},
        "404": {"$ref": "#/components/responses/Problem"},
        "409": {"$ref": "#/components/responses/Problem"},
        "413": {"$ref": "#/components/responses/Problem"},
        "415": {"$ref": "#/components/responses/Problem"},
        "422": {"$ref": "#/components/responses/Problem"},
        "500": {"$ref": "#/components/responses/Problem"},
        "503": {"$ref": "#/components/responses/Problem"}
    })
}

fn op(summary: &str, tag: &str, body: Option<Value>, ok: Value) -> Value {
    let mut responses = problem_responses();
    if let (Value::Object(r), Value::Object(ok)) = (&mut responses, ok) {
        r.extend(ok);
    }
    let mut o = json!({
        "summary": summary,
        "tags": [tag],
        "security": [{"bearer": []}],
        "responses": responses,
    });
    if let Some(schema) = body {
        o["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": schema}}});
    }
    o
}

fn approval_ok(code: &str) -> Value {
    json!({code: {"description": "The approval", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Approval"}}}}})
}

fn id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}})
}

/// (method, path) → operation, for every documented route.
pub fn operations() -> Vec<(&'static str, &'static str, Value)> {
    let mut create = op(
        "Open an approval request (agent)",
        "agent",
        Some(json!({"$ref": "#/components/schemas/CreateApproval"})),
        json!({
            "201": {"description": "Created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Approval"}}}},
            "200": {"description": "Replay of an earlier request with the same idempotency key", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Approval"}}}}
        }),
    );
    create["description"] = json!(
        "Fails closed: a tool that matches no policy is refused with 422 no_matching_policy."
    );
    let mut get_one = op(
        "Get an approval, optionally waiting for a decision",
        "agent",
        None,
        approval_ok("200"),
    );
    get_one["parameters"] = json!([id_param(), {"name": "wait", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 60}, "description": "Seconds to wait for a decision while pending"}]);
    let mut list = op(
        "List approvals visible to the caller, newest first",
        "human",
        None,
        json!({"200": {"description": "A page", "content": {"application/json": {"schema": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Approval"}}, "next_cursor": {"type": ["string", "null"]}}}}}}}),
    );
    list["parameters"] = json!([
        {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["pending", "approved", "rejected", "expired", "cancelled", "executing", "executed"]}},
        {"name": "policy", "in": "query", "schema": {"type": "string"}},
        {"name": "agent", "in": "query", "schema": {"type": "string"}},
        {"name": "tool", "in": "query", "schema": {"type": "string"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}}
    ]);
    let mut decide = op(
        "Approve, reject or edit (human)",
        "human",
        Some(json!({
            "type": "object", "required": ["decision", "args_digest"], "additionalProperties": false,
            "properties": {
                "decision": {"type": "string", "enum": ["approve", "reject", "edit"]},
                "args_digest": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "The approval's args_digest as the decider reviewed it; 409 args_changed when the arguments changed since"},
                "reason": {"type": "string", "maxLength": 2000},
                "final_args": {"type": "object"}
            }
        })),
        approval_ok("200"),
    );
    decide["parameters"] = json!([id_param()]);
    let mut execution = op(
        "Claim the execution of an approved call (outcome started), then report its outcome (agent)",
        "agent",
        Some(json!({
            "type": "object", "required": ["outcome"], "additionalProperties": false,
            "properties": {
                "outcome": {"type": "string", "enum": ["started", "success", "error"], "description": "started claims the right to run the tool (approved -> executing; exactly one caller succeeds, before execute_before); success/error report it (executing -> executed) with the claim's claim_id"},
                "claim_id": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,100}$", "description": "With started: optional, chosen by the caller so a retried claim is recognised (default: generated). With success/error: required, the claim's id"},
                "latency_ms": {"type": "integer", "minimum": 0},
                "output_excerpt": {"type": "string", "description": "Truncated to 1000 characters"}
            }
        })),
        approval_ok("200"),
    );
    execution["description"] = json!(
        "409 execution_claimed: already claimed (outcome unknown, check before retrying) or executed. 409 execution_expired: past execute_before. 409 execution_not_claimed: a report without a claim. 409 claim_mismatch: a report with another claim_id."
    );
    execution["parameters"] = json!([id_param()]);
    let mut cancel = op(
        "Withdraw a pending request (agent)",
        "agent",
        None,
        approval_ok("200"),
    );
    cancel["parameters"] = json!([id_param()]);
    cancel["requestBody"] = json!({"required": false, "content": {"application/json": {"schema": {"type": "object", "properties": {"reason": {"type": "string"}}}}}});
    let mut ops = vec![
        ("post", "/api/v1/approvals", create),
        ("get", "/api/v1/approvals", list),
        ("get", "/api/v1/approvals/{id}", get_one),
        ("post", "/api/v1/approvals/{id}/decision", decide),
        ("post", "/api/v1/approvals/{id}/execution", execution),
        ("post", "/api/v1/approvals/{id}/cancel", cancel),
        (
            "get",
            "/api/v1/policies",
            op(
                "The loaded policies (human)",
                "human",
                None,
                json!({"200": {"description": "Policies"}}),
            ),
        ),
        (
            "get",
            "/api/v1/openapi.json",
            json!({"summary": "This document", "tags": ["service"], "security": [], "responses": {"200": {"description": "OpenAPI 3.1"}}}),
        ),
        (
            "get",
            "/healthz",
            json!({"summary": "Liveness", "tags": ["service"], "security": [], "responses": {"200": {"description": "ok"}}}),
        ),
        (
            "get",
            "/readyz",
            json!({"summary": "Readiness: the store answers", "tags": ["service"], "security": [], "responses": {"200": {"description": "ready"}, "503": {"$ref": "#/components/responses/Problem"}}}),
        ),
        (
            "get",
            "/metrics",
            json!({"summary": "Prometheus metrics (OpenMetrics text); served when [metrics] is enabled, with metrics.token as the bearer token when one is set", "tags": ["service"], "security": [{"metricsToken": []}, {}], "responses": {"200": {"description": "The metrics", "content": {"application/openmetrics-text; version=1.0.0; charset=utf-8": {"schema": {"type": "string"}}}}, "401": {"$ref": "#/components/responses/Problem"}, "404": {"$ref": "#/components/responses/Problem"}, "503": {"$ref": "#/components/responses/Problem"}}}),
        ),
    ];
    ops.extend(super::audit::openapi_operations());
    ops.extend(super::runs::openapi_operations());
    ops
}

pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, operation) in operations() {
        let entry = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        entry[method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Pliuz control plane",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Human approval for AI agent tool calls. Errors are RFC 9457 problem+json with a stable `code`."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "Agent key (pliuz_ak_...) or user token (pliuz_ut_...)"}, "metricsToken": {"type": "http", "scheme": "bearer", "description": "metrics.token (PLIUZ_METRICS_TOKEN), for GET /metrics only"}},
            "responses": {
                "Problem": {"description": "An error", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail", "code"],
                    "properties": {
                        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                        "detail": {"type": "string"}, "code": {"type": "string"},
                        "errors": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}}
                    }
                },
                "CreateApproval": {
                    "type": "object", "required": ["tool_name", "tool_args"], "additionalProperties": false,
                    "properties": {
                        "tool_name": {"type": "string", "maxLength": 200},
                        "tool_args": {"type": "object"},
                        "policy": {"type": "string"},
                        "tool_schema": {"type": "object"},
                        "call_id": {"type": "string"},
                        "session_id": {"type": "string"},
                        "context_messages": {"type": "array"},
                        "originator": {"type": "string"},
                        "idempotency_key": {"type": "string", "maxLength": 200},
                        "client_metadata": {"type": "object"}
                    }
                },
                "Approval": {
                    "type": "object",
                    "required": ["id", "status", "tool_name", "tool_args", "policy", "agent", "created_at", "expires_at", "is_replay"],
                    "properties": {
                        "id": {"type": "string"},
                        "status": {"type": "string", "enum": ["pending", "approved", "rejected", "expired", "cancelled", "executing", "executed"], "description": "executing: claimed and not yet reported (outcome unknown if the report never arrives)"},
                        "tool_name": {"type": "string"},
                        "tool_args": {"type": "object"},
                        "proposed_args": {"type": ["object", "null"]},
                        "final_args": {"type": ["object", "null"]},
                        "tool_schema": {"type": ["object", "null"]},
                        "policy": {"type": "string"},
                        "agent": {"type": "string"},
                        "originator": {"type": ["string", "null"]},
                        "call_id": {"type": ["string", "null"]},
                        "session_id": {"type": ["string", "null"]},
                        "context_messages": {"type": ["array", "null"]},
                        "client_metadata": {"type": ["object", "null"]},
                        "idempotency_key": {"type": ["string", "null"]},
                        "args_digest": {"type": "string", "description": "SHA-256 of the canonical {tool_name, tool_args} under review (proposed_args once edited); send it back with every decision"},
                        "required_approvals": {"type": "integer"},
                        "allowed_decisions": {"type": "array", "items": {"type": "string"}},
                        "approvals": {"type": "array", "items": {"type": "object", "properties": {"by": {"type": "string"}, "at": {"type": "string"}}}},
                        "decision": {"type": ["object", "null"], "properties": {"outcome": {"type": "string"}, "by": {"type": "string"}, "reason": {"type": ["string", "null"]}, "edited": {"type": "boolean"}, "at": {"type": "string"}}},
                        "execution": {"type": ["object", "null"], "properties": {"claim_id": {"type": ["string", "null"]}, "claimed_at": {"type": ["string", "null"], "format": "date-time"}, "outcome": {"type": ["string", "null"], "enum": ["success", "error", null]}, "latency_ms": {"type": ["integer", "null"]}, "output_excerpt": {"type": ["string", "null"]}, "reported_at": {"type": ["string", "null"], "format": "date-time"}}},
                        "execute_before": {"type": ["string", "null"], "format": "date-time", "description": "Set once approved: the execution must be claimed before this (policy execute_within)"},
                        "created_at": {"type": "string", "format": "date-time"},
                        "expires_at": {"type": "string", "format": "date-time"},
                        "decided_at": {"type": ["string", "null"], "format": "date-time"},
                        "is_replay": {"type": "boolean"}
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    #[test]
    fn every_route_is_documented_and_every_operation_is_routed() {
        let routed: BTreeSet<(String, String)> = crate::api::routes()
            .iter()
            .map(|r| (r.method.as_str().to_lowercase(), r.path.to_owned()))
            .collect();
        let documented: BTreeSet<(String, String)> = super::operations()
            .into_iter()
            .map(|(m, p, _)| (m.to_owned(), p.to_owned()))
            .collect();
        assert_eq!(routed, documented);
    }
}
