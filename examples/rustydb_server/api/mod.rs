//! The HTTP surface: routing, authentication, admission, request and response
//! plumbing, problem details, the REST handlers, GraphQL and the OpenAPI
//! document.

pub mod auth;
pub mod conns;
pub mod graphql;
pub mod http;
pub mod openapi;
pub mod pools;
pub mod problem;
pub mod rest;
pub mod routes;
