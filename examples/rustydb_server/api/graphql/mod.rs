//! The GraphQL API (async-graphql, hand-written hyper glue): the seed's
//! QueryRoot fields, a MutationRoot, memory fields on live state,
//! introspection, and depth/complexity limits.
//!
//! Data fields are built as SQL (`sql/text.rs`) and run through the engine
//! seam (`sql/engine.rs`), each in its own query memory context.
//!
//! The parts: this file (the schema, its limits and the helpers resolvers
//! share), `types.rs` (the object, union and input types), `query.rs`
//! (`QueryRoot`), `mutation.rs` (`MutationRoot`), `http.rs` (`GET`/`POST
//! /graphql` and the playground).

pub mod http;
pub mod mutation;
pub mod query;
pub mod types;

pub use self::mutation::MutationRoot;
pub use self::query::QueryRoot;
pub use self::types::*;

use std::sync::Arc;

use async_graphql::{
    Context, EmptySubscription, ErrorExtensions, ID, InputValueError, InputValueResult, Scalar,
    ScalarType, Schema, Value as GqlValue,
};
use hyper::StatusCode;
use serde_json::{Map, Value};

use crate::server::api::auth::{Principal, Role};
use crate::server::api::problem::Problem;
use crate::server::memory::sessions::Session;
use crate::server::sql::engine::{QueryOutput, TableInfo};
use crate::server::sql::exec::{self, ExecError};
use crate::server::state::App;

/// Deepest query accepted (the full introspection query needs 13).
pub const MAX_DEPTH: usize = 16;
/// Highest complexity accepted (each field counts 1).
pub const MAX_COMPLEXITY: usize = 2000;

/// The schema type.
pub type AppSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// Builds the schema with its limits.
pub fn build_schema() -> AppSchema {
    Schema::build(QueryRoot, MutationRoot, EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// A 64-bit integer, serialised as a string (JSON numbers lose precision past 2^53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BigInt(pub i64);

#[Scalar]
impl ScalarType for BigInt {
    fn parse(value: GqlValue) -> InputValueResult<Self> {
        match &value {
            GqlValue::String(s) => s.parse().map(BigInt).map_err(InputValueError::custom),
            GqlValue::Number(n) => n
                .as_i64()
                .map(BigInt)
                .ok_or_else(|| InputValueError::custom("not a 64-bit integer")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }
    fn to_value(&self) -> GqlValue {
        GqlValue::String(self.0.to_string())
    }
}

fn gerr(code: &str, msg: impl std::fmt::Display) -> async_graphql::Error {
    let code = code.to_string();
    async_graphql::Error::new(msg.to_string()).extend_with(move |_, e| e.set("code", code.clone()))
}

fn from_problem(p: Problem) -> async_graphql::Error {
    let code = match p.status {
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::FORBIDDEN => "PERMISSION_DENIED",
        StatusCode::UNAUTHORIZED => "UNAUTHENTICATED",
        StatusCode::CONFLICT => "CONFLICT",
        StatusCode::BAD_REQUEST => "BAD_USER_INPUT",
        StatusCode::SERVICE_UNAVAILABLE => "UNAVAILABLE",
        StatusCode::NOT_IMPLEMENTED => "SQL_ENGINE_UNAVAILABLE",
        _ => "INTERNAL",
    };
    gerr(code, p.detail)
}

fn from_exec(e: ExecError) -> async_graphql::Error {
    let (code, msg) = e.code_message();
    gerr(code, msg)
}

fn bad_input(msg: impl std::fmt::Display) -> async_graphql::Error {
    gerr("BAD_USER_INPUT", msg)
}

fn app<'a>(ctx: &Context<'a>) -> &'a Arc<App> {
    ctx.data_unchecked::<Arc<App>>()
}

fn who<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Principal> {
    ctx.data_opt::<Principal>()
        .ok_or_else(|| gerr("UNAUTHENTICATED", "a bearer token is required"))
}

fn require<'a>(ctx: &Context<'a>, role: Role, what: &str) -> async_graphql::Result<&'a Principal> {
    let p = who(ctx)?;
    if p.allows(role) {
        Ok(p)
    } else {
        Err(gerr(
            "PERMISSION_DENIED",
            format!(
                "permission denied: {what} requires the {} role (this token has {})",
                role.as_str(),
                p.role.as_str()
            ),
        ))
    }
}

fn session<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Arc<Session>> {
    ctx.data_opt::<Arc<Session>>()
        .ok_or_else(|| gerr("UNAUTHENTICATED", "a session is required"))
}

/// Runs `sql` as the caller (optionally in transaction `txn`).
async fn run(
    ctx: &Context<'_>,
    sql: String,
    txn: Option<&ID>,
) -> async_graphql::Result<exec::QueryResponse> {
    let a = app(ctx);
    let p = who(ctx)?;
    let s = session(ctx)?;
    let t = match txn {
        Some(id) => {
            let id = crate::server::sql::txn::parse_id(id.as_str()).map_err(from_problem)?;
            let t = a.txns.get(id).map_err(from_problem)?;
            t.check_owner(p).map_err(from_problem)?;
            Some(t)
        }
        None => None,
    };
    exec::run_sql(a, p, s, t, sql).await.map_err(from_exec)
}

async fn catalog(ctx: &Context<'_>) -> async_graphql::Result<Vec<TableInfo>> {
    let e = app(ctx).engine.clone();
    exec::blocking(move || e.tables())
        .await
        .map_err(|e| gerr(e.code(), e))
}

/// Rows as JSON objects keyed by column name.
pub fn rows_as_objects(o: &QueryOutput) -> Vec<Value> {
    o.rows
        .iter()
        .map(|r| {
            let mut m = Map::new();
            for (c, v) in o.columns.iter().zip(r) {
                m.insert(c.name.clone(), v.clone());
            }
            Value::Object(m)
        })
        .collect()
}

fn check_window(
    limit: Option<i32>,
    offset: Option<i32>,
) -> async_graphql::Result<(Option<u64>, Option<u64>)> {
    let l = match limit {
        None => None,
        Some(l) if (1..=10_000).contains(&l) => Some(l as u64),
        Some(l) => return Err(bad_input(format!("limit must be 1 to 10000, got {l}"))),
    };
    let o = match offset {
        None => None,
        Some(o) if o >= 0 => Some(o as u64),
        Some(o) => return Err(bad_input(format!("offset must be 0 or more, got {o}"))),
    };
    Ok((l, o))
}
