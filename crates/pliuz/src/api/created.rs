//! The answer of a create route: 201 Created with the new resource's URL in
//! `Location` (or, for an idempotent create, 200 when a retry found it made
//! already). One type is both the answer and its OpenAPI responses, so the
//! two cannot drift apart.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoResponses, PartialSchema, ToSchema};

/// 201 Created, with the new resource's URL in `Location`. Its OpenAPI
/// responses refer to `T`'s schema by name (`operation::Doc::created` adds
/// the schema to the document).
pub struct Created<T> {
    pub location: String,
    pub body: T,
}

/// 201 when `made`; 200 with the same `Location` when a retry with the same
/// idempotency key found the resource made already.
pub struct CreatedOrReplayed<T> {
    pub made: bool,
    pub location: String,
    pub body: T,
}

fn answer(status: StatusCode, location: String, body: impl Serialize) -> Response {
    (status, [(header::LOCATION, location)], Json(body)).into_response()
}

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        answer(StatusCode::CREATED, self.location, self.body)
    }
}

impl<T: Serialize> IntoResponse for CreatedOrReplayed<T> {
    fn into_response(self) -> Response {
        let status = if self.made {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        answer(status, self.location, self.body)
    }
}

/// A JSON response whose body is `T` (by reference to its schema).
fn documented<T: ToSchema>(description: &str) -> ResponseBuilder {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(T::name())))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
}

fn created<T: ToSchema>() -> RefOr<utoipa::openapi::Response> {
    let location = HeaderBuilder::new()
        .schema(String::schema())
        .description(Some("The new resource's URL"))
        .build();
    documented::<T>("Created")
        .header("Location", location)
        .build()
        .into()
}

impl<T: ToSchema> IntoResponses for Created<T> {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        BTreeMap::from([("201".to_owned(), created::<T>())])
    }
}

impl<T: ToSchema> IntoResponses for CreatedOrReplayed<T> {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let replay = documented::<T>("Replay of an earlier request with the same idempotency key");
        BTreeMap::from([
            ("201".to_owned(), created::<T>()),
            ("200".to_owned(), replay.build().into()),
        ])
    }
}
