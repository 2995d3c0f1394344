//! Running one statement on a storage (the writer's or a snapshot's):
//! planning, GlueSQL's executor, `UNION` (GlueSQL has none: each side runs,
//! results are concatenated and, without `ALL`, deduplicated), results as
//! JSON charged to the statement's memory context, GlueSQL's errors as the
//! server's.

use std::collections::HashSet;

use gluesql_core::executor::Payload;
use gluesql_core::plan::StatementPlan;
use gluesql_core::sqlparser::ast::{SetExpr, SetOperator, SetQuantifier, Statement};
use gluesql_core::store::{GStore, GStoreMut, Planner};
use serde_json::Value as Json;

use crate::server::sql::engine::{Column, QueryOutput, SqlError};
use crate::server::sql::glue::storage::Charged;

/// What a storage needs to run statements.
pub trait Exec: GStore + GStoreMut + Planner + Charged {}
impl<S: GStore + GStoreMut + Planner + Charged> Exec for S {}

/// Runs `stmt` (named `name`) on `s`; `planned` is its plan when the caller
/// has one (from the plan cache).
pub fn exec<S: Exec>(
    s: &mut S,
    stmt: &Statement,
    planned: Option<&StatementPlan>,
    name: &str,
) -> Result<QueryOutput, SqlError> {
    if let Statement::Query(q) = stmt
        && matches!(*q.body, SetExpr::SetOperation { .. })
    {
        if q.order_by.is_some() || q.limit.is_some() || q.offset.is_some() {
            return Err(SqlError::Invalid(
                "ORDER BY, LIMIT and OFFSET over a UNION are not supported; wrap it in a subquery"
                    .into(),
            ));
        }
        let (labels, rows) = union(s, q, &q.body)?;
        return output(labels, rows, name);
    }
    let owned;
    let plan = match planned {
        Some(p) => p,
        None => {
            owned = plan(s, stmt)?;
            &owned
        }
    };
    let payload = gluesql_core::executor::execute(s, plan);
    if let Some((limit, requested)) = s.limit_hit() {
        return Err(SqlError::MemoryLimit { limit, requested });
    }
    match payload.map_err(map_err)? {
        Payload::Select { labels, rows } => {
            let rows = rows
                .into_iter()
                .map(|r| row_json(s, r))
                .collect::<Result<Vec<_>, _>>()?;
            output(labels, rows, name)
        }
        p => Ok(QueryOutput {
            rows_affected: affected(&p),
            statement: name.to_string(),
            ..Default::default()
        }),
    }
}

/// Translates and plans one statement.
pub fn plan<S: Planner>(s: &S, stmt: &Statement) -> Result<StatementPlan, SqlError> {
    let t = gluesql_core::translate::translate(stmt).map_err(map_err)?;
    s.plan(t.into()).map_err(map_err)
}

/// Runs the sides of a `UNION` separately; concatenates, dedups without `ALL`.
fn union<S: Exec>(
    s: &mut S,
    outer: &gluesql_core::sqlparser::ast::Query,
    e: &SetExpr,
) -> Result<(Vec<String>, Vec<Vec<Json>>), SqlError> {
    match e {
        SetExpr::SetOperation {
            op,
            set_quantifier,
            left,
            right,
        } => {
            if *op != SetOperator::Union {
                return Err(SqlError::Invalid(format!(
                    "{op} is not supported (UNION is)"
                )));
            }
            let (labels, mut rows) = union(s, outer, left)?;
            let (rlabels, more) = union(s, outer, right)?;
            if rlabels.len() != labels.len() {
                return Err(SqlError::Invalid(format!(
                    "each side of a UNION must have the same number of columns ({} and {})",
                    labels.len(),
                    rlabels.len()
                )));
            }
            rows.extend(more);
            if !matches!(set_quantifier, SetQuantifier::All) {
                let mut seen = HashSet::new();
                rows.retain(|r| seen.insert(Json::Array(r.clone()).to_string()));
            }
            Ok((labels, rows))
        }
        side => {
            let mut q = outer.clone();
            q.body = Box::new(side.clone());
            let plan = plan(s, &Statement::Query(Box::new(q)))?;
            let payload = gluesql_core::executor::execute(s, &plan);
            if let Some((limit, requested)) = s.limit_hit() {
                return Err(SqlError::MemoryLimit { limit, requested });
            }
            match payload.map_err(map_err)? {
                Payload::Select { labels, rows } => {
                    let rows = rows
                        .into_iter()
                        .map(|r| row_json(s, r))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok((labels, rows))
                }
                _ => Err(SqlError::Invalid(
                    "each side of a UNION must be a SELECT".into(),
                )),
            }
        }
    }
}

/// A result row as JSON, its size charged to the statement's context.
fn row_json<S: Charged>(s: &S, row: Vec<gluesql_core::data::Value>) -> Result<Vec<Json>, SqlError> {
    let out: Vec<Json> = row
        .into_iter()
        .map(|v| Json::try_from(v).unwrap_or(Json::Null))
        .collect();
    let bytes: usize = out.iter().map(json_size).sum();
    s.charge(bytes).map_err(|_| {
        let (limit, requested) = s.limit_hit().unwrap_or((0, bytes as u64));
        SqlError::MemoryLimit { limit, requested }
    })?;
    Ok(out)
}

fn json_size(v: &Json) -> usize {
    16 + match v {
        Json::String(s) => s.len(),
        Json::Array(a) => a.iter().map(json_size).sum(),
        Json::Object(o) => o.iter().map(|(k, v)| k.len() + json_size(v)).sum(),
        _ => 0,
    }
}

fn output(labels: Vec<String>, rows: Vec<Vec<Json>>, name: &str) -> Result<QueryOutput, SqlError> {
    let columns = labels
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let data_type = rows
                .iter()
                .filter_map(|r| r.get(i))
                .find(|v| !v.is_null())
                .map_or("NULL", |v| match v {
                    Json::Bool(_) => "BOOLEAN",
                    Json::Number(n) if n.is_f64() => "FLOAT",
                    Json::Number(_) => "INTEGER",
                    Json::String(_) => "TEXT",
                    Json::Array(_) => "LIST",
                    _ => "MAP",
                })
                .to_string();
            Column { name, data_type }
        })
        .collect();
    Ok(QueryOutput {
        columns,
        rows,
        rows_affected: 0,
        statement: name.to_string(),
    })
}

fn affected(p: &Payload) -> u64 {
    match p {
        Payload::Insert(n) | Payload::Delete(n) | Payload::Update(n) | Payload::DropTable(n) => {
            *n as u64
        }
        _ => 0,
    }
}

/// GlueSQL's errors as the server's.
pub fn map_err(e: gluesql_core::error::Error) -> SqlError {
    use gluesql_core::error::Error as E;
    let msg = e.to_string();
    let lower = msg.to_ascii_lowercase();
    match e {
        E::Parser(m) => SqlError::Invalid(parser_message(&m)),
        _ if lower.contains("not found") || lower.contains("not exist") => SqlError::NotFound(msg),
        _ if lower.contains("already exist")
            || lower.contains("duplicate")
            || lower.contains("unique") =>
        {
            SqlError::Conflict(msg)
        }
        E::StorageMsg(_) if lower.contains("not supported") => SqlError::Invalid(msg),
        E::StorageMsg(_) => SqlError::Internal(msg),
        _ => SqlError::Invalid(msg),
    }
}

/// The parser's message without its debug wrapping
/// (`ParserError(\n    "Expected: …",\n)` → `Expected: …`).
fn parser_message(m: &str) -> String {
    let t = m.trim();
    let inner = t
        .split_once('(')
        .filter(|(head, _)| head.ends_with("Error"))
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .map_or(t, str::trim);
    let inner = inner.trim_end_matches(',').trim();
    inner
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .map_or_else(|| inner.to_string(), |x| x.replace("\\\"", "\""))
}
