//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, generated
//! (utoipa) from the handlers' `#[utoipa::path]` annotations and the very
//! types they (de)serialise, so it cannot drift from what is sent. Each
//! route in `api::routes()` has an operation here; a test checks the two
//! agree, and `tests/openapi_responses.rs` validates real responses
//! against it.

use super::{admin_agents, admin_policies, admin_users, approvals, audit, questions, runs};
use crate::http::error::ProblemBody;
use serde_json::Value;
use std::sync::LazyLock;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Pliuz control plane",
        description = "Human approval for AI agent tool calls. Errors are RFC 9457 problem+json with a stable `code`."
    ),
    paths(
        approvals::create,
        approvals::list,
        approvals::get,
        approvals::decide,
        approvals::execution,
        approvals::cancel,
        super::policies,
        super::openapi_doc,
        super::healthz,
        super::readyz,
        super::metrics::metrics,
        audit::checkpoint,
        audit::key,
        audit::keys,
        audit::entries,
        audit::inclusion,
        audit::consistency,
        audit::receipt,
        runs::create,
        runs::list,
        runs::get_one,
        runs::repause,
        runs::claim,
        runs::heartbeat,
        runs::complete,
        questions::create,
        questions::list,
        questions::get_one,
        questions::answer,
        admin_agents::create,
        admin_agents::list,
        admin_agents::get_one,
        admin_agents::revoke,
        admin_agents::set_webhook,
        admin_agents::rotate_secret,
        admin_users::create,
        admin_users::list,
        admin_users::get_one,
        admin_users::set_groups,
        admin_users::set_role,
        admin_users::disable,
        admin_users::enable,
        admin_users::list_tokens,
        admin_users::create_token,
        admin_users::revoke_token,
        admin_policies::list,
        admin_policies::create,
        admin_policies::get_one,
        admin_policies::replace,
        admin_policies::remove,
    ),
    // `Created<T>` refers to its body's schema without adding it: those no
    // other operation adds are listed here.
    components(
        schemas(
            ProblemBody,
            admin_agents::CreatedAgentView,
            admin_users::CreatedUserView
        ),
        responses(ProblemResponse)
    ),
    modifiers(&SecuritySchemes, &AdminOperations, &ProblemResponses, &OptionalBodies),
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

const PROBLEM: &str = "Problem";

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

/// The management API (`/api/v1/admin/...`): one tag, and one credential
/// for every operation, an admin's personal API token (`AdminAuth`).
struct AdminOperations;

impl Modify for AdminOperations {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let admin_paths = openapi.paths.paths.iter_mut();
        for (_, item) in admin_paths.filter(|(path, _)| path.starts_with("/api/v1/admin/")) {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                op.tags = Some(vec!["admin".to_owned()]);
                let token = SecurityRequirement::new("user_token", Vec::<String>::new());
                op.security = Some(vec![token]);
            }
        }
    }
}

/// The errors any authenticated operation can answer: a bad or missing
/// credential, a refused or unknown resource, an invalid parameter, a store
/// that is down. Operations that take a body can also conflict with the
/// resource's state and refuse the body's size or media type.
const AUTHENTICATED_ERRORS: [u16; 7] = [400, 401, 403, 404, 422, 500, 503];
const BODY_ERRORS: [u16; 3] = [409, 413, 415];

/// Adds the shared problem+json error responses (cross-cutting: they come
/// from the extractors and the store, not from one handler) to each
/// operation; the handlers' annotations list their own answers.
struct ProblemResponses;

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                (&mut item.get, false),
                (&mut item.post, true),
                (&mut item.put, true),
                (&mut item.delete, true),
            ];
            for (op, takes_body) in ops {
                let Some(op) = op.as_mut() else { continue };
                if op.security.is_none() {
                    continue; // unauthenticated service routes document their own
                }
                add_problems(op, &AUTHENTICATED_ERRORS);
                if takes_body {
                    add_problems(op, &BODY_ERRORS);
                }
            }
        }
    }
}

/// An optional body (`Option<T>` in the annotation) is sent or left out,
/// never sent as JSON `null`: its schema is `T` alone, the body not
/// required.
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for op in [&mut item.post, &mut item.put].into_iter().flatten() {
                let Some(body) = op.request_body.as_mut() else {
                    continue;
                };
                if body.required == Some(Required::True) {
                    continue;
                }
                body.required = Some(Required::False);
                for content in body.content.values_mut() {
                    if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
                        let not_null = one_of.items.iter().find(|s| !is_null(s)).cloned();
                        if let (2, Some(schema)) = (one_of.items.len(), not_null) {
                            content.schema = Some(schema);
                        }
                    }
                }
            }
        }
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(o))
        if o.schema_type == SchemaType::Type(Type::Null))
}

fn add_problems(op: &mut Operation, statuses: &[u16]) {
    for status in statuses {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(PROBLEM)));
    }
}

static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    // Serialising plain data types cannot fail; an empty document would
    // fail every client loudly rather than the server.
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
});

/// The document, as served.
pub fn document() -> Value {
    DOCUMENT.clone()
}

/// (method, path) of every documented operation.
#[cfg(test)]
fn operations() -> Vec<(String, String)> {
    let doc = ApiDoc::openapi();
    let mut ops = Vec::new();
    for (path, item) in doc.paths.paths {
        for (method, op) in [
            ("get", &item.get),
            ("post", &item.post),
            ("put", &item.put),
            ("delete", &item.delete),
            ("patch", &item.patch),
        ] {
            if op.is_some() {
                ops.push((method.to_owned(), path.clone()));
            }
        }
    }
    ops
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
    fn every_operation_has_its_own_operation_id() {
        // Client generators name their methods after it; utoipa's default
        // (the handler's name) repeats across modules (`create`, `list`).
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
}
