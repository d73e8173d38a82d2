//! An operation's OpenAPI documentation, written in the route table
//! (`api::routes()`) on the row of the route it documents: its id, tag and
//! summary, who may call it, what it takes and what it answers, with the
//! schemas of the types it (de)serialises. `api::openapi` assembles the
//! document from the table.

use super::created::{Created, CreatedOrReplayed};
use axum::http::Method;
use utoipa::openapi::path::{Operation, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Content, ContentBuilder, Ref, RefOr, Required, Response, ResponseBuilder};
use utoipa::{IntoParams, IntoResponses, PartialSchema, ToSchema};

/// The name of the shared problem+json response (`openapi::ProblemResponse`).
pub(crate) const PROBLEM: &str = "Problem";

/// The errors any authenticated operation can answer: a bad or missing
/// credential, a refused or unknown resource, an invalid parameter, a store
/// that is down. Operations that take a body can also conflict with the
/// resource's state and refuse the body's size or media type. They come
/// from the extractors and the store, not from one handler, so they are
/// added to each operation here rather than listed on each row.
const AUTHENTICATED_ERRORS: [u16; 7] = [400, 401, 403, 404, 422, 500, 503];
const BODY_ERRORS: [u16; 3] = [409, 413, 415];

/// The document's tags (each described in `api::openapi`).
#[derive(Debug, Clone, Copy)]
pub enum Tag {
    Agent,
    Human,
    Runs,
    Audit,
    Service,
    Admin,
}

impl Tag {
    fn name(self) -> &'static str {
        match self {
            Tag::Agent => "agent",
            Tag::Human => "human",
            Tag::Runs => "runs",
            Tag::Audit => "audit",
            Tag::Service => "service",
            Tag::Admin => "admin",
        }
    }
}

/// Who may call an operation: its OpenAPI `security`, the credentials the
/// handler's extractor (`http::extract::Auth`, `AdminAuth`) takes.
#[derive(Debug, Clone, Copy)]
pub enum Callers {
    /// No credential: health checks and this document.
    Anyone,
    /// An agent key.
    Agents,
    /// A user's API token or the inbox session.
    People,
    /// An agent key, a user's API token or the inbox session.
    AgentsAndPeople,
    /// An admin's personal API token (the management API).
    Admins,
    /// `metrics.token` when it is set, otherwise no credential.
    MetricsScrapers,
}

impl Callers {
    /// The schemes of `api::openapi::SecuritySchemes`, any one of which
    /// will do; `None` for none at all.
    fn requirements(self) -> Option<Vec<SecurityRequirement>> {
        let schemes: &[&str] = match self {
            Callers::Anyone => return None,
            Callers::Agents => &["agent_key"],
            Callers::People => &["user_token", "session"],
            Callers::AgentsAndPeople => &["agent_key", "user_token", "session"],
            Callers::Admins => &["user_token"],
            Callers::MetricsScrapers => {
                let token = SecurityRequirement::new("metrics_token", Vec::<String>::new());
                return Some(vec![token, SecurityRequirement::default()]);
            }
        };
        let each = schemes.iter();
        Some(
            each.map(|s| SecurityRequirement::new(*s, Vec::<String>::new()))
                .collect(),
        )
    }
}

/// A named schema of the document's components.
pub type NamedSchema = (String, RefOr<Schema>);

/// A path parameter: its name and description.
pub type PathParam = (&'static str, &'static str);

/// One operation's documentation, built up row by row in the route table.
pub struct Doc {
    operation: OperationBuilder,
    callers: Callers,
    schemas: Vec<NamedSchema>,
}

/// An operation with its id (unique: client generators name their methods
/// after it), tag, callers and one-line summary.
pub fn op(id: &str, tag: Tag, callers: Callers, summary: &str) -> Doc {
    let operation = OperationBuilder::new()
        .operation_id(Some(id))
        .tag(tag.name())
        .summary(Some(summary));
    Doc {
        operation,
        callers,
        schemas: Vec::new(),
    }
}

/// An operation of the management API (`/api/v1/admin/...`): one tag, and
/// one credential for all of them, an admin's personal API token.
pub fn admin(id: &str, summary: &str) -> Doc {
    op(id, Tag::Admin, Callers::Admins, summary)
}

const JSON: &str = "application/json";

/// JSON content: a reference to `T`'s schema.
fn json_of<T: ToSchema>() -> Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(T::name())))
        .build()
}

impl Doc {
    pub fn description(mut self, text: &str) -> Doc {
        self.operation = self.operation.description(Some(text));
        self
    }

    pub fn path_param(mut self, (name, description): PathParam) -> Doc {
        let param = ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some(description))
            .schema(Some(String::schema()));
        self.operation = self.operation.parameter(param);
        self
    }

    /// The query parameters `Q` reads.
    pub fn query<Q: IntoParams>(mut self) -> Doc {
        let params = Q::into_params(|| Some(ParameterIn::Query));
        self.operation = self.operation.parameters(Some(params));
        self
    }

    /// A JSON body of type `B`.
    pub fn body<B: ToSchema>(self) -> Doc {
        let body = RequestBodyBuilder::new()
            .content(JSON, json_of::<B>())
            .required(Some(Required::True));
        self.with_body::<B>(body)
    }

    /// A JSON body of type `B` that may be left out (never sent as `null`).
    pub fn optional_body<B: ToSchema>(self) -> Doc {
        let body = RequestBodyBuilder::new()
            .description(Some("Optional"))
            .content(JSON, json_of::<B>())
            .required(Some(Required::False));
        self.with_body::<B>(body)
    }

    fn with_body<B: ToSchema>(mut self, body: RequestBodyBuilder) -> Doc {
        self.operation = self.operation.request_body(Some(body.build()));
        self.uses::<B>()
    }

    /// 200 with a JSON `T`.
    pub fn ok<T: ToSchema>(self, description: &str) -> Doc {
        self.json::<T>(200, description)
    }

    /// `status` with a JSON `T`.
    pub fn json<T: ToSchema>(self, status: u16, description: &str) -> Doc {
        let schema = Ref::from_schema_name(T::name());
        self.answer(status, description, JSON, schema).uses::<T>()
    }

    /// 201 with a JSON `T` and its URL in `Location`.
    pub fn created<T: ToSchema>(self) -> Doc {
        self.responses::<Created<T>>().uses::<T>()
    }

    /// 201 as `created`, or 200 for a retry with the same idempotency key.
    pub fn created_or_replayed<T: ToSchema>(self) -> Doc {
        self.responses::<CreatedOrReplayed<T>>().uses::<T>()
    }

    fn responses<R: IntoResponses>(mut self) -> Doc {
        for (status, response) in R::responses() {
            self.operation = self.operation.response(status, response);
        }
        self
    }

    /// 200 with a text body of `content_type`.
    pub fn text(self, description: &str, content_type: &str) -> Doc {
        self.answer(200, description, content_type, String::schema())
    }

    /// 200 with a JSON object of no fixed schema.
    pub fn any_object(self, description: &str) -> Doc {
        let object = ObjectBuilder::new().schema_type(Type::Object);
        self.answer(200, description, JSON, object)
    }

    fn answer(
        mut self,
        status: u16,
        description: &str,
        content_type: &str,
        schema: impl Into<RefOr<Schema>>,
    ) -> Doc {
        let content = ContentBuilder::new().schema(Some(schema)).build();
        let response = ResponseBuilder::new()
            .description(description)
            .content(content_type, content);
        self.operation = self
            .operation
            .response(status.to_string(), response.build());
        self
    }

    /// 204, no body.
    pub fn no_content(mut self, description: &str) -> Doc {
        let response = ResponseBuilder::new().description(description);
        self.operation = self.operation.response("204", response.build());
        self
    }

    /// `status` with the shared problem+json body.
    pub fn problem(mut self, status: u16) -> Doc {
        self.operation = self.operation.response(status.to_string(), problem());
        self
    }

    /// `T`'s schema and those it refers to, for the document's components.
    fn uses<T: ToSchema>(mut self) -> Doc {
        self.schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(&mut self.schemas);
        self
    }

    /// The operation as served by `method`, with the shared errors of its
    /// callers, and the schemas it refers to.
    pub fn finish(self, method: &Method) -> (Operation, Vec<NamedSchema>) {
        let security = self.callers.requirements();
        let mut shared_errors = Vec::new();
        if security.is_some() {
            shared_errors.extend(AUTHENTICATED_ERRORS);
            if method != Method::GET {
                shared_errors.extend(BODY_ERRORS);
            }
        }
        let mut operation = self.operation.securities(security).build();
        for status in shared_errors {
            let responses = &mut operation.responses.responses;
            responses.entry(status.to_string()).or_insert_with(problem);
        }
        (operation, self.schemas)
    }
}

/// A reference to the shared problem+json response.
fn problem() -> RefOr<Response> {
    RefOr::Ref(Ref::from_response_name(PROBLEM))
}
