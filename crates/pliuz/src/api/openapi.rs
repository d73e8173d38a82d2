//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, assembled
//! from the route table (`api::routes()`): each row's documentation
//! (`operation::Doc`) is its operation, with the schemas of the very types
//! the handler (de)serialises, so the document cannot drift from the routes
//! or from what is sent. `tests/openapi_responses.rs` validates real
//! responses against it.

use super::operation::PROBLEM;
use crate::http::error::ProblemBody;
use axum::http::Method;
use serde_json::{Map, Value};
use std::sync::LazyLock;
use utoipa::openapi::path::HttpMethod;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

/// What the document holds besides the routes' operations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Pliuz control plane",
        description = "Human approval for AI agent tool calls. Errors are RFC 9457 problem+json with a stable `code`."
    ),
    components(schemas(ProblemBody), responses(ProblemResponse)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "agent", description = "Agents open requests, wait for the decision and report the execution"),
        (name = "human", description = "People list and decide"),
        (name = "runs", description = "Durable runs: a paused agent's state, resumed by any worker once its approvals are settled"),
        (name = "audit", description = "The tamper-evident audit log: checkpoints, proofs and receipts"),
        (name = "service", description = "Health and this document"),
        (name = "admin", description = "The management API: agents, users and policies, with an admin's personal API token"),
    )
)]
struct ApiDoc;

/// The `Problem` response every error uses (`application/problem+json`).
pub(crate) struct ProblemResponse;

impl<'r> utoipa::ToResponse<'r> for ProblemResponse {
    fn response() -> (&'r str, RefOr<Response>) {
        let content = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(PROBLEM)))
            .build();
        let response = ResponseBuilder::new()
            .description("An error (RFC 9457 problem details with a stable `code`)")
            .content("application/problem+json", content)
            .build();
        (PROBLEM, RefOr::T(response))
    }
}

/// How callers authenticate (`http::extract::Auth`).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.description = Some(description.to_owned());
            SecurityScheme::Http(http)
        };
        components.add_security_scheme(
            "agent_key",
            bearer("An agent key (pliuz_ak_...) from `pliuz agents create NAME`"),
        );
        components.add_security_scheme(
            "user_token",
            bearer("A user's API token (pliuz_ut_...) from `pliuz users token EMAIL`"),
        );
        components.add_security_scheme(
            "metrics_token",
            bearer("metrics.token (PLIUZ_METRICS_TOKEN), for GET /metrics only"),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "pliuz_session",
                "The inbox session cookie (`__Host-pliuz_session` with secure cookies); writes also need the session's X-CSRF-Token header",
            ))),
        );
    }
}

/// The document: each route's operation under its path and method, the
/// schemas they refer to among the components.
fn api_doc() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let mut schemas = Vec::new();
    for route in super::routes() {
        let (operation, used) = route.doc.finish(&route.method);
        let method = http_method(&route.method);
        doc.paths
            .add_path_operation(route.path, vec![method], operation);
        schemas.extend(used);
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.extend(schemas);
    doc
}

fn http_method(method: &Method) -> HttpMethod {
    match *method {
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::DELETE => HttpMethod::Delete,
        Method::PATCH => HttpMethod::Patch,
        _ => HttpMethod::Get,
    }
}

static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    // Serialising plain data types cannot fail; an empty document would
    // fail every client loudly rather than the server.
    let mut doc = serde_json::to_value(api_doc()).unwrap_or_default();
    merge_flattened(&mut doc);
    doc
});

/// A type that embeds another with `#[serde(flatten)]` (the approval's
/// requested call) is one JSON object on the wire, but utoipa documents it
/// as an `allOf` of its parts. Clients read one object, so each such schema
/// is shown as one: its parts' properties and required names together, the
/// whole's description (the parts' own are Rust documentation).
fn merge_flattened(doc: &mut Value) {
    let Some(schemas) = doc["components"]["schemas"].as_object_mut() else {
        return;
    };
    for schema in schemas.values_mut() {
        if let Some(merged) = merged_object(schema) {
            *schema = merged;
        }
    }
}

/// `schema` as one object, when it is an `allOf` of plain inline objects
/// (anything else is left as it is).
fn merged_object(schema: &Value) -> Option<Value> {
    const PLAIN: [&str; 4] = ["type", "description", "required", "properties"];
    let mut properties = Map::new();
    let mut required = Vec::new();
    for part in schema.get("allOf")?.as_array()? {
        let part = part.as_object()?;
        if part.get("type")? != "object" || part.keys().any(|k| !PLAIN.contains(&k.as_str())) {
            return None;
        }
        if let Some(p) = part.get("properties").and_then(Value::as_object) {
            properties.extend(p.clone());
        }
        if let Some(r) = part.get("required").and_then(Value::as_array) {
            required.extend(r.iter().cloned());
        }
    }
    let mut merged = Map::new();
    merged.insert("type".to_owned(), "object".into());
    if let Some(description) = schema.get("description") {
        merged.insert("description".to_owned(), description.clone());
    }
    merged.insert("required".to_owned(), Value::Array(required));
    merged.insert("properties".to_owned(), Value::Object(properties));
    Some(Value::Object(merged))
}

/// The document, as served.
pub fn document() -> Value {
    DOCUMENT.clone()
}

/// (method, path) of every documented operation.
#[cfg(test)]
fn operations() -> Vec<(String, String)> {
    let doc = document();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
            ops.push((method.clone(), path.clone()));
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use std::collections::BTreeSet;

    #[test]
    fn every_route_is_documented_and_every_operation_is_routed() {
        let routed: BTreeSet<(String, String)> = crate::api::routes()
            .iter()
            .map(|r| (r.method.as_str().to_lowercase(), r.path.to_owned()))
            .collect();
        let documented: BTreeSet<(String, String)> = super::operations().into_iter().collect();
        assert_eq!(routed, documented);
    }

    #[test]
    fn the_document_is_openapi_3_1_with_every_schema_it_references() {
        let doc = super::document();
        assert_eq!(doc["openapi"], "3.1.0");
        let text = doc.to_string();
        for reference in text.split("\"$ref\":\"#/components/").skip(1) {
            let target = reference.split('"').next().unwrap_or_default();
            let (kind, name) = target.split_once('/').unwrap_or((target, ""));
            assert!(
                doc["components"][kind][name].is_object(),
                "dangling $ref #/components/{target}"
            );
        }
    }

    #[test]
    fn resources_with_a_flattened_part_are_one_object() {
        // `ApprovalView` flattens the `RequestedCall` in, `QuestionView` the
        // `Asked`; clients see one object, as on the wire, never an `allOf`
        // of Rust's parts.
        let doc = super::document();
        assert!(!doc.to_string().contains("\"allOf\""));
        type Names = &'static [&'static str];
        // (schema, the flattened part's fields then some of its own,
        // required among them, optional among them)
        let cases: [(&str, Names, Names, Names); 2] = [
            (
                "Approval",
                &[
                    "tool_name",
                    "tool_args",
                    "tool_schema",
                    "originator",
                    "call_id",
                    "session_id",
                    "context_messages",
                    "client_metadata",
                    "idempotency_key",
                    "id",
                    "proposed_args",
                    "policy",
                ],
                &["tool_name", "tool_args", "id", "policy"],
                &["originator", "tool_schema", "proposed_args"],
            ),
            (
                "Question",
                &[
                    "text",
                    "choices",
                    "allow_free_text",
                    "originator",
                    "idempotency_key",
                    "id",
                    "answer",
                    "policy",
                ],
                &["text", "choices", "allow_free_text", "id", "policy"],
                &["originator", "idempotency_key", "answer"],
            ),
        ];
        for (name, fields, required, optional) in cases {
            let schema = &doc["components"]["schemas"][name];
            assert_eq!(schema["type"], "object", "{name}: {schema}");
            for field in fields {
                assert!(
                    schema["properties"][field].is_object(),
                    "{name} lacks {field}"
                );
            }
            let listed = schema["required"].as_array().cloned().unwrap_or_default();
            for field in required {
                assert!(
                    listed.contains(&json!(field)),
                    "{name}: {field} not required"
                );
            }
            for field in optional {
                assert!(!listed.contains(&json!(field)), "{name}: {field} required");
            }
        }
    }

    #[test]
    fn every_operation_has_its_own_operation_id() {
        // Client generators name their methods after it.
        let doc = super::document();
        let mut seen = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let id = op["operationId"].as_str().unwrap_or_default();
                assert!(!id.is_empty(), "{method} {path} has no operationId");
                assert!(
                    seen.insert(id.to_owned()),
                    "{method} {path}: {id} is used twice"
                );
            }
        }
    }

    #[test]
    fn every_authenticated_operation_documents_its_problem_answers() {
        let doc = super::document();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                if op.get("security").is_none() {
                    continue;
                }
                for status in ["400", "401", "403", "404", "422", "500", "503"] {
                    assert!(
                        op["responses"][status].is_object(),
                        "{method} {path} lacks {status}"
                    );
                }
                if method != "get" {
                    for status in ["409", "413", "415"] {
                        assert!(
                            op["responses"][status].is_object(),
                            "{method} {path} lacks {status}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_management_operation_takes_an_admins_token_under_the_admin_tag() {
        // What `operation::admin` gives a row: a row of the management API
        // written with `op` instead would go unnoticed otherwise.
        let doc = super::document();
        let paths = doc["paths"].as_object().into_iter().flatten();
        for (path, item) in paths.filter(|(path, _)| path.starts_with("/api/v1/admin/")) {
            for (method, op) in item.as_object().into_iter().flatten() {
                assert_eq!(op["tags"], json!(["admin"]), "{method} {path}");
                let admin_token = json!([{ "user_token": [] }]);
                assert_eq!(op["security"], admin_token, "{method} {path}");
            }
        }
    }
}
