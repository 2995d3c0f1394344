//! `/api/v1/query`, `/api/v1/batch`, `/api/v1/tables*`: validation, auth,
//! transactions and memory contexts here; the statement itself goes to the
//! SQL engine (see `engine.rs`).

use std::sync::Arc;

use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::server::api::http::{self, Resp};
use crate::server::api::problem::Problem;
use crate::server::api::routes::Req;
use crate::server::sql::engine::{ColumnDef, IsolationLevel, TableInfo};
use crate::server::sql::exec::{self, QueryResponse};
use crate::server::sql::text as sqlgen;
use crate::server::sql::txn::{self, Txn};

/// Longest SQL text accepted, in characters (the body limit applies too).
pub const MAX_SQL_CHARS: usize = 256 << 10;

/// A transaction id given as a number or a string.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TxnRef {
    /// `3`
    Number(#[serde(deserialize_with = "http::whole_u64")] u64),
    /// `"3"`
    Text(String),
}

impl TxnRef {
    fn text(&self) -> String {
        match self {
            TxnRef::Number(n) => n.to_string(),
            TxnRef::Text(s) => s.clone(),
        }
    }
}

/// `POST /api/v1/query` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// One SQL statement in GlueSQL's dialect, without NUL characters (text
    /// that does not parse as one statement is answered 400 `bad-sql`).
    #[schema(min_length = 1, max_length = 262_144, pattern = r"^[^\u0000]*$")]
    pub sql: String,
    /// Run inside this open transaction (else autocommit).
    pub transaction_id: Option<TxnRef>,
}

fn check_sql(sql: &str) -> Result<(), Problem> {
    if sql.trim().is_empty() {
        return Err(Problem::bad_request("`sql` is empty"));
    }
    if sql.chars().count() > MAX_SQL_CHARS {
        return Err(Problem::bad_request(format!(
            "`sql` is longer than {MAX_SQL_CHARS} characters"
        )));
    }
    if sql.contains('\0') {
        return Err(Problem::bad_request("`sql` contains a NUL character"));
    }
    Ok(())
}

fn txn_of(req: &Req, r: Option<&TxnRef>) -> Result<Option<Arc<Txn>>, Problem> {
    let Some(r) = r else { return Ok(None) };
    let id = txn::parse_id(&r.text())?;
    let t = req.app.txns.get(id)?;
    t.check_owner(req.who()?)?;
    Ok(Some(t))
}

/// Transaction control written as SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    /// `BEGIN` / `START TRANSACTION [ISOLATION LEVEL …]`.
    Begin(IsolationLevel),
    /// `COMMIT`.
    Commit,
    /// `ROLLBACK`.
    Rollback,
}

/// `Some` when `sql` is exactly one transaction-control statement. Parsing
/// is cheap next to running a statement, and only texts that start with one
/// of the four keywords are parsed here.
fn control(sql: &str) -> Option<Control> {
    use gluesql_core::sqlparser::ast::{Statement, TransactionIsolationLevel, TransactionMode};
    let head = sql.trim_start().get(..5)?.to_ascii_uppercase();
    if !matches!(head.as_str(), "BEGIN" | "START" | "COMMI" | "ROLLB") {
        return None;
    }
    let mut v = gluesql_core::parse_sql::parse(sql).ok()?;
    if v.len() != 1 {
        return None;
    }
    match v.remove(0) {
        Statement::StartTransaction { modes, .. } => {
            let mut level = IsolationLevel::default();
            for m in modes {
                if let TransactionMode::IsolationLevel(l) = m {
                    level = match l {
                        TransactionIsolationLevel::ReadUncommitted => {
                            IsolationLevel::ReadUncommitted
                        }
                        TransactionIsolationLevel::ReadCommitted => IsolationLevel::ReadCommitted,
                        TransactionIsolationLevel::RepeatableRead => IsolationLevel::RepeatableRead,
                        TransactionIsolationLevel::Serializable => IsolationLevel::Serializable,
                    };
                }
            }
            Some(Control::Begin(level))
        }
        Statement::Commit { .. } => Some(Control::Commit),
        Statement::Rollback { .. } => Some(Control::Rollback),
        _ => None,
    }
}

/// `BEGIN` / `COMMIT` / `ROLLBACK` sent to `/api/v1/query`: the same server
/// transactions as `/api/v1/transactions` (a memory context each). `BEGIN`
/// answers the new `transaction_id` to pass with the following statements;
/// `COMMIT` and `ROLLBACK` finish the one named by `transaction_id`.
async fn run_control(req: &Req, c: Control, txn_ref: Option<&TxnRef>) -> Result<Resp, Problem> {
    let statement = match c {
        Control::Begin(_) => "BEGIN",
        Control::Commit => "COMMIT",
        Control::Rollback => "ROLLBACK",
    };
    // As on /api/v1/transactions: a transaction holds the database for its
    // writer, so opening or finishing one needs the readwrite role.
    if !req.who()?.allows(crate::server::api::auth::Role::Readwrite) {
        return Err(Problem::forbidden(format!(
            "{statement} needs the readwrite or admin role"
        )));
    }
    let info = match (c, txn_ref) {
        (Control::Begin(_), Some(r)) => {
            return Err(Problem::conflict(format!(
                "transaction {} is already open for this request; COMMIT or ROLLBACK it first",
                r.text()
            )));
        }
        (Control::Begin(level), None) => {
            crate::server::api::rest::txns::begin_txn(
                &req.app,
                req.who()?,
                req.sess()?,
                level,
                None,
            )
            .await?
        }
        (_, None) => {
            return Err(Problem::bad_request(format!(
                "{statement} needs `transaction_id`: the id BEGIN (or POST /api/v1/transactions) returned"
            )));
        }
        (_, Some(r)) => {
            crate::server::api::rest::txns::finish_txn(
                &req.app,
                req.who()?,
                &r.text(),
                c == Control::Commit,
            )
            .await?
        }
    };
    Ok(http::ok(&json!({
        "statement": statement,
        "columns": [],
        "rows": [],
        "rows_affected": 0,
        "transaction_id": info.transaction_id,
        "isolation_level": info.isolation_level,
        "status": info.status,
        "transaction": info,
    })))
}

/// Runs one statement in its own memory context (limit `--query-memory-limit`).
#[utoipa::path(post, path = "/api/v1/query", tag = "sql", security(("bearer" = [])),
    request_body = QueryRequest,
    responses((status = 200, body = QueryResponse),
              (status = 400, description = "Not a QueryRequest, or SQL that is not one statement GlueSQL runs (`bad-sql`)"),
              (status = 403, description = "The statement needs a stronger role (writes: readwrite; DDL: admin), or the transaction is another token's"),
              (status = 404, description = "No such transaction, table or column"),
              (status = 409, description = "Conflict (duplicate key, busy database, a finished transaction)"),
              (status = 413, description = "The statement went over its memory context's limit (--query-memory-limit)"),
              (status = 501, description = "No SQL engine is plugged in"),
              (status = 503, description = "Memory pressure at its emergency level, or 10 000 transactions are open")))]
pub async fn query(req: Req) -> Result<Resp, Problem> {
    let q: QueryRequest = http::parse_object(&req.body)?;
    check_sql(&q.sql)?;
    if let Some(c) = control(&q.sql) {
        return run_control(&req, c, q.transaction_id.as_ref()).await;
    }
    let t = txn_of(&req, q.transaction_id.as_ref())?;
    let r = exec::run_sql(&req.app, req.who()?, req.sess()?, t, q.sql)
        .await
        .map_err(exec::ExecError::problem)?;
    Ok(http::ok(&r))
}

/// `POST /api/v1/batch` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Statements, run in order, each one SQL statement without NUL
    /// characters (`BEGIN` first and `COMMIT` last are dropped: the batch is
    /// its own transaction; other transaction control is answered 400).
    #[schema(min_items = 1, max_items = 100, inline, value_type = Vec<SqlText>)]
    pub statements: Vec<String>,
    /// Run all in one transaction (default true): the first failure rolls
    /// everything back and is returned as the problem.
    #[serde(default = "yes")]
    pub transaction: bool,
}

fn yes() -> bool {
    true
}

/// One SQL statement, as `QueryRequest.sql` (a document type only).
pub struct SqlText;

impl utoipa::PartialSchema for SqlText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_SQL_CHARS))
            .pattern(Some(r"^[^\u0000]*$"))
            .into()
    }
}

impl ToSchema for SqlText {}

/// One statement's outcome in a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItem {
    /// Position, from 0.
    pub index: usize,
    /// Whether it worked.
    pub ok: bool,
    /// Its result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<QueryResponse>,
    /// Its problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
}

/// Runs several statements, in one transaction unless `transaction` is false;
/// each statement has its own memory context under the transaction's.
#[utoipa::path(post, path = "/api/v1/batch", tag = "sql", security(("bearer" = [])),
    request_body = BatchRequest,
    responses((status = 200, description = "Results, one per statement", body = Object),
              (status = 400, description = "Not a BatchRequest, transaction control inside the batch, or a statement that is not SQL GlueSQL runs"),
              (status = 403, description = "A statement needs a stronger role"),
              (status = 404, description = "A table or column does not exist"),
              (status = 409, description = "Conflict (duplicate key, busy database)"),
              (status = 413, description = "A statement went over its memory context's limit"),
              (status = 501, description = "No SQL engine is plugged in"),
              (status = 503, description = "Memory pressure at its emergency level, or 10 000 transactions are open")))]
pub async fn batch(req: Req) -> Result<Resp, Problem> {
    let b: BatchRequest = http::parse_object(&req.body)?;
    if b.statements.is_empty() || b.statements.len() > 100 {
        return Err(Problem::bad_request(
            "`statements` holds 1 to 100 statements",
        ));
    }
    for (i, s) in b.statements.iter().enumerate() {
        check_sql(s).map_err(|p| p.with("index", i))?;
    }
    // `BEGIN; …; COMMIT` as statements: the batch's own transaction already
    // brackets them, so a leading BEGIN and a trailing COMMIT are dropped;
    // any other transaction control inside a batch is refused.
    let mut statements = b.statements;
    let mut transaction = b.transaction;
    if statements.len() >= 2
        && matches!(
            statements.first().and_then(|s| control(s)),
            Some(Control::Begin(_))
        )
        && matches!(
            statements.last().and_then(|s| control(s)),
            Some(Control::Commit)
        )
    {
        statements.pop();
        statements.remove(0);
        transaction = true;
    }
    if let Some(i) = statements.iter().position(|s| control(s).is_some()) {
        return Err(Problem::bad_request(
            "transaction control inside a batch: a batch runs in one transaction (\"transaction\": true, the default) or none; BEGIN may only open it and COMMIT close it",
        )
        .with("index", i));
    }
    if statements.is_empty() {
        return Err(Problem::bad_request(
            "the batch holds no statement besides BEGIN and COMMIT",
        ));
    }
    let app = &req.app;
    let who = req.who()?;
    let sess = req.sess()?;
    let mut items = Vec::with_capacity(statements.len());
    if !transaction {
        for (index, s) in statements.into_iter().enumerate() {
            match exec::run_sql(app, who, sess, None, s).await {
                Ok(r) => items.push(BatchItem {
                    index,
                    ok: true,
                    result: Some(r),
                    error: None,
                }),
                Err(e) => items.push(BatchItem {
                    index,
                    ok: false,
                    result: None,
                    error: Some(e.problem().body(None)),
                }),
            }
        }
        let ok = items.iter().all(|i| i.ok);
        return Ok(http::ok(
            &json!({"transaction_id": null, "status": if ok { "ok" } else { "partial" }, "results": items}),
        ));
    }
    let t =
        crate::server::api::rest::txns::begin_txn(app, who, sess, Default::default(), None).await?;
    let id = t.transaction_id;
    let handle = app.txns.get(id)?;
    for (index, s) in statements.into_iter().enumerate() {
        match exec::run_sql(app, who, sess, Some(handle.clone()), s).await {
            Ok(r) => items.push(BatchItem {
                index,
                ok: true,
                result: Some(r),
                error: None,
            }),
            Err(e) => {
                drop(handle);
                let _ =
                    crate::server::api::rest::txns::finish_txn(app, who, &id.to_string(), false)
                        .await;
                let done: Vec<&BatchItem> = items.iter().collect();
                return Err(e
                    .problem()
                    .with("failed_index", index)
                    .with("transaction_id", id)
                    .with("transaction_status", "rolled_back")
                    .with("results", done));
            }
        }
    }
    drop(handle);
    let info = crate::server::api::rest::txns::finish_txn(app, who, &id.to_string(), true).await?;
    Ok(http::ok(&json!({
        "transaction_id": id,
        "status": info.status,
        "results": items,
        "transaction": info,
    })))
}

async fn catalog(req: &Req) -> Result<Vec<TableInfo>, Problem> {
    let e = req.app.engine.clone();
    exec::blocking(move || e.tables())
        .await
        .map_err(|e| e.problem())
}

/// The catalog.
#[utoipa::path(get, path = "/api/v1/tables", tag = "sql", security(("bearer" = [])),
    responses((status = 200, description = "Tables", body = Object),
              (status = 501, description = "No SQL engine is plugged in"),
              (status = 503, description = "Memory pressure at its emergency level")))]
pub async fn tables(req: Req) -> Result<Resp, Problem> {
    let t = catalog(&req).await?;
    Ok(http::ok(
        &json!({"count": t.len(), "tables": t, "sql_engine": req.app.engine.name()}),
    ))
}

fn name_param(req: &Req) -> Result<String, Problem> {
    sqlgen::ident(req.param(0))
        .map(String::from)
        .map_err(|e| Problem::bad_request(format!("table name: {e}")))
}

/// One table.
#[utoipa::path(get, path = "/api/v1/tables/{name}", tag = "sql", security(("bearer" = [])),
    params(("name" = String, Path, pattern = "^[A-Za-z_][A-Za-z0-9_]{0,62}$")),
    responses((status = 200, body = TableInfo), (status = 400, description = "Not a table name"),
              (status = 404, description = "No such table"),
              (status = 501, description = "No SQL engine is plugged in"),
              (status = 503, description = "Memory pressure at its emergency level")))]
pub async fn table(req: Req) -> Result<Resp, Problem> {
    let name = name_param(&req)?;
    let e = req.app.engine.clone();
    let n2 = name.clone();
    match exec::blocking(move || e.table(&n2))
        .await
        .map_err(|e| e.problem())?
    {
        Some(t) => Ok(http::ok(&t)),
        None => Err(Problem::not_found(format!("table `{name}` does not exist"))),
    }
}

/// A column of `POST /api/v1/tables/{name}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// Name: a letter or `_`, then letters, digits or `_` (names are
    /// compared without case: two columns cannot share one).
    #[schema(pattern = "^[A-Za-z_][A-Za-z0-9_]{0,62}$")]
    pub name: String,
    /// SQL type.
    #[serde(rename = "type")]
    pub data_type: ColumnType,
    /// Whether NULL is allowed (default true).
    #[serde(default = "yes")]
    pub nullable: bool,
    /// Part of the primary key (one column at most).
    #[serde(default)]
    pub primary_key: bool,
}

/// The column types GlueSQL stores (its other names — `BIGINT`, `VARCHAR`,
/// `DECIMAL`, … — are refused by its planner, so they are not offered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
#[allow(missing_docs)]
pub enum ColumnType {
    Integer,
    Int,
    Int8,
    Int16,
    Int32,
    Int64,
    Float,
    Text,
    Boolean,
    Date,
    Time,
    Timestamp,
    Uuid,
    Bytea,
    Interval,
    Map,
    List,
}

impl ColumnType {
    /// The SQL name.
    pub fn as_str(self) -> &'static str {
        use ColumnType::*;
        match self {
            Integer => "INTEGER",
            Int => "INT",
            Int8 => "INT8",
            Int16 => "INT16",
            Int32 => "INT32",
            Int64 => "INT64",
            Float => "FLOAT",
            Text => "TEXT",
            Boolean => "BOOLEAN",
            Date => "DATE",
            Time => "TIME",
            Timestamp => "TIMESTAMP",
            Uuid => "UUID",
            Bytea => "BYTEA",
            Interval => "INTERVAL",
            Map => "MAP",
            List => "LIST",
        }
    }
}

impl From<ColumnSpec> for ColumnDef {
    fn from(c: ColumnSpec) -> Self {
        ColumnDef {
            name: c.name,
            data_type: c.data_type.as_str().to_string(),
            nullable: c.nullable,
            primary_key: c.primary_key,
        }
    }
}

/// `POST /api/v1/tables/{name}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTableRequest {
    /// Columns in order.
    #[schema(min_items = 1, max_items = 256, value_type = Vec<ColumnSpec>)]
    pub columns: Vec<http::Obj<ColumnSpec>>,
    /// Succeed if it exists already.
    #[serde(default)]
    pub if_not_exists: bool,
}

/// Creates a table from a column spec (admin).
#[utoipa::path(post, path = "/api/v1/tables/{name}", tag = "sql", security(("bearer" = [])),
    params(("name" = String, Path, pattern = "^[A-Za-z_][A-Za-z0-9_]{0,62}$")), request_body = CreateTableRequest,
    responses((status = 201, description = "Created", body = Object,
               headers(("Location" = String, description = "The table's URL"))),
              (status = 400, description = "Not a table name or a CreateTableRequest, two columns with one name, or more than one primary-key column"),
              (status = 409, description = "The table exists (without `if_not_exists`)"),
              (status = 413, description = "The statement went over its memory context's limit"),
              (status = 501, description = "No SQL engine is plugged in")))]
pub async fn create_table(req: Req) -> Result<Resp, Problem> {
    let name = name_param(&req)?;
    let b: CreateTableRequest = http::parse_object(&req.body)?;
    let columns: Vec<ColumnDef> = b.columns.into_iter().map(|c| c.0.into()).collect();
    let sql =
        sqlgen::create_table(&name, &columns, b.if_not_exists).map_err(Problem::bad_request)?;
    let r = exec::run_sql(&req.app, req.who()?, req.sess()?, None, sql.clone())
        .await
        .map_err(exec::ExecError::problem)?;
    req.app.logs.info("sql", format!("table {name} created"));
    let mut resp = http::json(
        StatusCode::CREATED,
        &json!({"table": name, "sql": sql, "result": r}),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("/api/v1/tables/{name}")) {
        resp.headers_mut().insert(hyper::header::LOCATION, v);
    }
    Ok(resp)
}

/// Drops a table (admin); `?if_exists=true` succeeds when it is absent.
#[utoipa::path(delete, path = "/api/v1/tables/{name}", tag = "sql", security(("bearer" = [])),
    params(("name" = String, Path, pattern = "^[A-Za-z_][A-Za-z0-9_]{0,62}$"),
           ("if_exists" = Option<bool>, Query, description = "Succeed when the table is absent (default false)")),
    responses((status = 200, description = "Dropped", body = Object),
              (status = 400, description = "Not a table name, or `if_exists` not true or false"),
              (status = 404, description = "No such table (without `if_exists=true`)"),
              (status = 409, description = "Conflicting state (busy database)"),
              (status = 413, description = "The statement went over its memory context's limit"),
              (status = 501, description = "No SQL engine is plugged in")))]
pub async fn drop_table(req: Req) -> Result<Resp, Problem> {
    let name = name_param(&req)?;
    let if_exists = match req.query.get("if_exists") {
        None | Some("false") => false,
        Some("true") => true,
        Some(x) => {
            return Err(Problem::bad_request(format!(
                "if_exists must be true or false, got `{x}`"
            )));
        }
    };
    let sql = sqlgen::drop_table(&name, if_exists).map_err(Problem::bad_request)?;
    let r = exec::run_sql(&req.app, req.who()?, req.sess()?, None, sql.clone())
        .await
        .map_err(exec::ExecError::problem)?;
    req.app.logs.info("sql", format!("table {name} dropped"));
    Ok(http::ok(&json!({"table": name, "sql": sql, "result": r})))
}
