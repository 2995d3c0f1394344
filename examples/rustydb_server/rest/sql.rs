//! `/api/v1/query`, `/api/v1/batch`, `/api/v1/tables*`: validation, auth,
//! transactions and memory contexts here; the statement itself goes to the
//! SQL engine (see `engine.rs`).

use std::sync::Arc;

use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::super::engine::{ColumnDef, IsolationLevel, TableInfo};
use super::super::exec::{self, QueryResponse};
use super::super::http::{self, Resp};
use super::super::problem::Problem;
use super::super::routes::Req;
use super::super::sql as sqlgen;
use super::super::txn::{self, Txn};

/// Largest SQL text accepted (the body limit applies too).
pub const MAX_SQL_BYTES: usize = 256 << 10;

/// A transaction id given as a number or a string.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TxnRef {
    /// `3`
    Number(u64),
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
    /// One SQL statement.
    pub sql: String,
    /// Run inside this open transaction (else autocommit).
    pub transaction_id: Option<TxnRef>,
}

fn check_sql(sql: &str) -> Result<(), Problem> {
    if sql.trim().is_empty() {
        return Err(Problem::bad_request("`sql` is empty"));
    }
    if sql.len() > MAX_SQL_BYTES {
        return Err(Problem::bad_request(format!(
            "`sql` is longer than {MAX_SQL_BYTES} bytes"
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
    if !req.who()?.allows(super::super::auth::Role::Readwrite) {
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
            super::txns::begin_txn(&req.app, req.who()?, req.sess()?, level, None).await?
        }
        (_, None) => {
            return Err(Problem::bad_request(format!(
                "{statement} needs `transaction_id`: the id BEGIN (or POST /api/v1/transactions) returned"
            )));
        }
        (_, Some(r)) => {
            super::txns::finish_txn(&req.app, req.who()?, &r.text(), c == Control::Commit).await?
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
    responses((status = 200, body = QueryResponse), (status = 400), (status = 401), (status = 403),
              (status = 404), (status = 413), (status = 409, description = "Conflict (duplicate key, busy database)"),
              (status = 503)))]
pub async fn query(req: Req) -> Result<Resp, Problem> {
    let q: QueryRequest = http::parse_json(&req.body)?;
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
    /// Statements, run in order (1 to 100).
    #[serde(alias = "queries")]
    pub statements: Vec<String>,
    /// Run all in one transaction (default true): the first failure rolls
    /// everything back and is returned as the problem.
    #[serde(default = "yes")]
    pub transaction: bool,
}

fn yes() -> bool {
    true
}

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
    responses((status = 200, description = "Results, one per statement"), (status = 400), (status = 401),
              (status = 403), (status = 501), (status = 503)))]
pub async fn batch(req: Req) -> Result<Resp, Problem> {
    let b: BatchRequest = http::parse_json(&req.body)?;
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
    let t = super::txns::begin_txn(app, who, sess, Default::default(), None).await?;
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
                let _ = super::txns::finish_txn(app, who, &id.to_string(), false).await;
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
    let info = super::txns::finish_txn(app, who, &id.to_string(), true).await?;
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
    responses((status = 200, description = "Tables")))]
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
    params(("name" = String, Path)), responses((status = 200, body = TableInfo), (status = 404)))]
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

/// `POST /api/v1/tables/{name}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTableRequest {
    /// Columns in order.
    pub columns: Vec<ColumnDef>,
    /// Succeed if it exists already.
    #[serde(default)]
    pub if_not_exists: bool,
}

/// Creates a table from a column spec (admin).
#[utoipa::path(post, path = "/api/v1/tables/{name}", tag = "sql", security(("bearer" = [])),
    params(("name" = String, Path)), request_body = CreateTableRequest,
    responses((status = 201, description = "Created"), (status = 400), (status = 403), (status = 409), (status = 501)))]
pub async fn create_table(req: Req) -> Result<Resp, Problem> {
    let name = name_param(&req)?;
    let b: CreateTableRequest = http::parse_json(&req.body)?;
    let sql =
        sqlgen::create_table(&name, &b.columns, b.if_not_exists).map_err(Problem::bad_request)?;
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
    params(("name" = String, Path), ("if_exists" = Option<bool>, Query)),
    responses((status = 200), (status = 403), (status = 404), (status = 501)))]
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
