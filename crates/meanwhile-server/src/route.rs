//! One endpoint of the daemon: its method, path and handler, and what the OpenAPI
//! document says of it (schemas of its body, query and answer, its status, media
//! type and notable refusals). The route table is `routes.rs`'s; the document is
//! `openapi.rs`'s.

use crate::state::AppState;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};
use schemars::{JsonSchema, Schema, SchemaGenerator};

/// Makes the schema of a type, registering what it refers to.
pub(crate) type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

fn inline_schema_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    T::json_schema(g)
}

/// One endpoint.
pub(crate) struct Route {
    pub method: Method,
    pub path: &'static str,
    pub summary: &'static str,
    pub body: Option<SchemaFn>,
    /// Whether the body may be left out.
    pub body_optional: bool,
    pub query: Option<SchemaFn>,
    pub answer: Option<SchemaFn>,
    pub status: u16,
    /// The answer's media type when it is not JSON.
    pub media: &'static str,
    /// Error answers worth a line of their own in the document (every error is
    /// also covered by `default`): status and what it means.
    pub refusals: Vec<(u16, &'static str)>,
    pub handler: MethodRouter<AppState>,
}

pub(crate) fn op<H, T>(
    method: Method,
    path: &'static str,
    summary: &'static str,
    handler: H,
) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
    Route {
        method,
        path,
        summary,
        body: None,
        body_optional: false,
        query: None,
        answer: None,
        status: 200,
        media: "application/json",
        refusals: Vec::new(),
        handler: on(filter, handler),
    }
}

impl Route {
    pub(crate) fn body<T: JsonSchema>(mut self) -> Route {
        self.body = Some(schema_of::<T>);
        self
    }
    pub(crate) fn optional_body<T: JsonSchema>(mut self) -> Route {
        self.body = Some(schema_of::<T>);
        self.body_optional = true;
        self
    }
    pub(crate) fn query<T: JsonSchema>(mut self) -> Route {
        self.query = Some(inline_schema_of::<T>);
        self
    }
    pub(crate) fn answer<T: JsonSchema>(mut self) -> Route {
        self.answer = Some(schema_of::<T>);
        self
    }
    pub(crate) fn status(mut self, status: u16) -> Route {
        self.status = status;
        self
    }
    pub(crate) fn media(mut self, media: &'static str) -> Route {
        self.media = media;
        self
    }
    pub(crate) fn refuses(mut self, status: u16, meaning: &'static str) -> Route {
        self.refusals.push((status, meaning));
        self
    }
}
