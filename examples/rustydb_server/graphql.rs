//! The GraphQL API (async-graphql, hand-written hyper glue): the seed's
//! QueryRoot fields, a MutationRoot, memory fields on live state,
//! introspection, and depth/complexity limits.
//!
//! Data fields are built as SQL (`sql.rs`) and run through the engine seam
//! (`engine.rs`), each in its own query memory context.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, query};
use async_graphql::{
    Context, EmptySubscription, Enum, ErrorExtensions, ID, InputObject, InputValueError,
    InputValueResult, Json, Object, Scalar, ScalarType, Schema, SimpleObject, Union,
    Value as GqlValue,
};
use hyper::StatusCode;
use serde_json::{Map, Value};

use super::auth::{Principal, Role};
use super::engine::{ColumnDef, IsolationLevel, QueryOutput, TableInfo};
use super::exec::{self, ExecError};
use super::http::{self, Resp};
use super::problem::Problem;
use super::routes::Req;
use super::sessions::Session;
use super::sql::{self, AggregateInput, OrderByInput, WhereClause};
use super::state::App;

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
            let id = super::txn::parse_id(id.as_str()).map_err(from_problem)?;
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

/// A schema of the database.
#[derive(Debug, Clone)]
pub struct DatabaseSchema {
    name: String,
}

#[Object]
impl DatabaseSchema {
    /// Name.
    async fn name(&self) -> &str {
        &self.name
    }
    /// Its tables.
    async fn tables(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TableType>> {
        Ok(catalog(ctx)
            .await?
            .into_iter()
            .filter(|t| t.schema == self.name)
            .map(TableType)
            .collect())
    }
    /// Number of tables.
    async fn table_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        Ok(catalog(ctx)
            .await?
            .iter()
            .filter(|t| t.schema == self.name)
            .count() as i32)
    }
}

/// A table.
#[derive(Debug, Clone)]
pub struct TableType(TableInfo);

#[Object]
impl TableType {
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Schema.
    async fn schema(&self) -> &str {
        &self.0.schema
    }
    /// Columns in order.
    async fn columns(&self) -> &[ColumnDef] {
        &self.0.columns
    }
    /// Rows.
    async fn row_count(&self) -> BigInt {
        BigInt(self.0.row_count as i64)
    }
    /// Bytes of pages the table occupies.
    async fn size_bytes(&self) -> BigInt {
        BigInt(self.0.size_bytes as i64)
    }
}

/// Memory used by one statement.
#[derive(Debug, Clone, SimpleObject)]
pub struct QueryMemoryInfo {
    /// The statement's memory context id.
    pub context_id: ID,
    /// Its limit.
    pub limit_bytes: BigInt,
    /// Peak bytes handed out.
    pub peak_bytes: BigInt,
}

/// Rows of a query.
#[derive(Debug, Clone, SimpleObject)]
pub struct QueryResult {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows as objects keyed by column.
    pub rows: Json<Vec<Value>>,
    /// Rows returned.
    pub row_count: i32,
    /// Rows changed (for writes).
    pub rows_affected: BigInt,
    /// Wall time.
    pub execution_time_ms: f64,
    /// Memory.
    pub memory: QueryMemoryInfo,
}

impl From<exec::QueryResponse> for QueryResult {
    fn from(r: exec::QueryResponse) -> Self {
        QueryResult {
            columns: r.output.columns.iter().map(|c| c.name.clone()).collect(),
            rows: Json(rows_as_objects(&r.output)),
            row_count: r.output.rows.len() as i32,
            rows_affected: BigInt(r.output.rows_affected as i64),
            execution_time_ms: r.execution_time_ms,
            memory: QueryMemoryInfo {
                context_id: ID(r.memory.context_id.to_string()),
                limit_bytes: BigInt(r.memory.limit_bytes as i64),
                peak_bytes: BigInt(r.memory.peak_bytes as i64),
            },
        }
    }
}

/// One row.
#[derive(Debug, Clone, SimpleObject)]
pub struct RowType {
    /// The row's key, if the table has an `id` column.
    pub id: Option<ID>,
    /// Column → value.
    pub data: Json<Value>,
}

/// Extra fields of a row connection.
#[derive(Debug, Clone, SimpleObject)]
pub struct RowConnectionFields {
    /// Rows matching the filter.
    pub total_count: BigInt,
}

/// Aggregates of a table.
#[derive(Debug, Clone, SimpleObject)]
pub struct AggregateResult {
    /// The first (or only) result row: alias → value.
    pub values: Json<Value>,
    /// Every result row (one per group with `groupBy`).
    pub groups: Json<Vec<Value>>,
}

/// Matches of a search in one table.
#[derive(Debug, Clone, SimpleObject)]
pub struct SearchHit {
    /// Table.
    pub table: String,
    /// Matching rows.
    pub rows: Json<Vec<Value>>,
    /// How many.
    pub count: i32,
}

/// A search across tables.
#[derive(Debug, Clone, SimpleObject)]
pub struct SearchResult {
    /// The text searched for.
    pub query: String,
    /// Per table with matches.
    pub hits: Vec<SearchHit>,
    /// Rows in all hits.
    pub total_count: i32,
}

/// Status of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum TransactionStatus {
    /// Open.
    Active,
    /// Committed.
    Committed,
    /// Rolled back.
    RolledBack,
    /// Rolled back after the idle timeout.
    TimedOut,
    /// Rolled back by session close or shutdown.
    Aborted,
}

/// A transaction.
#[derive(Debug, Clone, SimpleObject)]
pub struct TransactionInfo {
    /// Id.
    pub transaction_id: ID,
    /// Isolation level.
    pub isolation_level: IsolationLevel,
    /// Unix seconds.
    pub started_at: BigInt,
    /// Status.
    pub status: TransactionStatus,
    /// Owner session.
    pub session_id: ID,
    /// Statements run.
    pub statements: i32,
    /// The transaction's memory context id.
    pub memory_context_id: ID,
    /// Bytes handed out in its context subtree (at the end, once finished).
    pub memory_used_bytes: BigInt,
}

impl From<super::txn::TxnInfo> for TransactionInfo {
    fn from(t: super::txn::TxnInfo) -> Self {
        TransactionInfo {
            transaction_id: ID(t.transaction_id.to_string()),
            isolation_level: t.isolation_level,
            started_at: BigInt(t.started_at as i64),
            status: match t.status.as_str() {
                "committed" => TransactionStatus::Committed,
                "rolled_back" => TransactionStatus::RolledBack,
                "timed_out" => TransactionStatus::TimedOut,
                "aborted" => TransactionStatus::Aborted,
                _ => TransactionStatus::Active,
            },
            session_id: ID(t.session_id.to_string()),
            statements: t.statements as i32,
            memory_context_id: ID(t.memory.context_id.to_string()),
            memory_used_bytes: BigInt(t.memory.used_bytes as i64),
        }
    }
}

/// A live memory context.
#[derive(Debug, Clone, SimpleObject)]
pub struct MemoryContextInfo {
    /// Id.
    pub id: ID,
    /// Name (`session:3`, `txn:7`, `query`, …).
    pub name: String,
    /// Parent's id.
    pub parent_id: Option<ID>,
    /// Bytes handed out.
    pub used_bytes: BigInt,
    /// Chunk bytes held.
    pub reserved_bytes: BigInt,
    /// Peak bytes handed out.
    pub peak_bytes: BigInt,
    /// Limit of its subtree.
    pub limit_bytes: Option<BigInt>,
}

/// The memory manager's snapshot.
#[derive(Debug, Clone, SimpleObject)]
pub struct MemoryStatsInfo {
    /// Resident set size.
    pub rss_bytes: BigInt,
    /// Bytes mapped by the allocators.
    pub mapped_bytes: BigInt,
    /// Bytes in use through the allocator.
    pub in_use_bytes: BigInt,
    /// mapped ÷ in use.
    pub fragmentation_ratio: f64,
    /// `normal`, `warning`, `critical`, `emergency`.
    pub pressure_level: String,
    /// Budget.
    pub budget_bytes: BigInt,
    /// Live memory contexts.
    pub contexts: Vec<MemoryContextInfo>,
}

/// Error codes of mutation results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The SQL was rejected.
    BadSql,
    /// No such table or row.
    NotFound,
    /// A conflicting write or an existing object.
    Conflict,
    /// The query's memory context reached its limit.
    QueryMemoryLimit,
    /// No SQL engine is plugged in.
    SqlEngineUnavailable,
    /// Refused under memory pressure.
    Unavailable,
    /// The role may not do this.
    PermissionDenied,
    /// Anything else.
    Internal,
}

/// A write that worked.
#[derive(Debug, Clone, SimpleObject)]
pub struct MutationSuccess {
    /// Rows inserted, updated or deleted.
    pub affected_rows: BigInt,
    /// The statement kind.
    pub statement: String,
    /// Wall time.
    pub execution_time_ms: f64,
}

/// A write that failed.
#[derive(Debug, Clone, SimpleObject)]
pub struct MutationError {
    /// Class.
    pub code: ErrorCode,
    /// What happened.
    pub message: String,
}

/// The outcome of a write.
#[derive(Debug, Clone, Union)]
pub enum MutationResult {
    /// It worked.
    Success(MutationSuccess),
    /// It failed.
    Error(MutationError),
}

fn mutation_outcome(
    r: async_graphql::Result<exec::QueryResponse>,
) -> async_graphql::Result<MutationResult> {
    match r {
        Ok(q) => Ok(MutationResult::Success(MutationSuccess {
            affected_rows: BigInt(q.output.rows_affected as i64),
            statement: q.output.statement.clone(),
            execution_time_ms: q.execution_time_ms,
        })),
        Err(e) => {
            let code = e
                .extensions
                .as_ref()
                .and_then(|x| x.get("code"))
                .map(|v| v.to_string().trim_matches('"').to_string())
                .unwrap_or_default();
            let code = match code.as_str() {
                "BAD_SQL" | "BAD_USER_INPUT" => ErrorCode::BadSql,
                "NOT_FOUND" => ErrorCode::NotFound,
                "CONFLICT" => ErrorCode::Conflict,
                "QUERY_MEMORY_LIMIT" => ErrorCode::QueryMemoryLimit,
                "SQL_ENGINE_UNAVAILABLE" => ErrorCode::SqlEngineUnavailable,
                "UNAVAILABLE" => ErrorCode::Unavailable,
                "PERMISSION_DENIED" => return Err(e),
                _ => ErrorCode::Internal,
            };
            Ok(MutationResult::Error(MutationError {
                code,
                message: e.message,
            }))
        }
    }
}

/// A column of `createTable`.
#[derive(Debug, Clone, InputObject)]
pub struct ColumnDefinitionInput {
    /// Name.
    pub name: String,
    /// SQL type.
    pub data_type: String,
    /// NULL allowed (default true).
    #[graphql(default = true)]
    pub nullable: bool,
    /// Primary key (default false).
    #[graphql(default)]
    pub primary_key: bool,
}

/// Queries.
#[derive(Debug, Default)]
pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// Schemas of the database.
    async fn schemas(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<DatabaseSchema>> {
        who(ctx)?;
        let e = app(ctx).engine.clone();
        Ok(e.schemas()
            .into_iter()
            .map(|name| DatabaseSchema { name })
            .collect())
    }

    /// One schema.
    async fn schema(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<Option<DatabaseSchema>> {
        who(ctx)?;
        let e = app(ctx).engine.clone();
        Ok(e.schemas()
            .into_iter()
            .find(|s| *s == name)
            .map(|name| DatabaseSchema { name }))
    }

    /// Tables, paginated.
    async fn tables(
        &self,
        ctx: &Context<'_>,
        schema: Option<String>,
        limit: Option<i32>,
        offset: Option<i32>,
    ) -> async_graphql::Result<Vec<TableType>> {
        who(ctx)?;
        let (l, o) = check_window(limit, offset)?;
        let mut v: Vec<TableInfo> = catalog(ctx)
            .await?
            .into_iter()
            .filter(|t| schema.as_ref().is_none_or(|s| *s == t.schema))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v.into_iter()
            .skip(o.unwrap_or(0) as usize)
            .take(l.unwrap_or(u64::MAX) as usize)
            .map(TableType)
            .collect())
    }

    /// One table.
    async fn table(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<Option<TableType>> {
        who(ctx)?;
        sql::ident(&name).map_err(bad_input)?;
        let e = app(ctx).engine.clone();
        exec::blocking(move || e.table(&name))
            .await
            .map(|t| t.map(TableType))
            .map_err(|e| gerr(e.code(), e))
    }

    /// Rows of a table: filter, order, window.
    #[allow(clippy::too_many_arguments)]
    async fn query_table(
        &self,
        ctx: &Context<'_>,
        table: String,
        #[graphql(name = "where")] filter: Option<WhereClause>,
        order_by: Option<Vec<OrderByInput>>,
        limit: Option<i32>,
        offset: Option<i32>,
        transaction_id: Option<ID>,
    ) -> async_graphql::Result<QueryResult> {
        who(ctx)?;
        let (l, o) = check_window(limit, offset)?;
        let q =
            sql::select(&table, filter.as_ref(), order_by.as_deref(), l, o).map_err(bad_input)?;
        Ok(run(ctx, q, transaction_id.as_ref()).await?.into())
    }

    /// Several tables at once (same filter and window for each).
    async fn query_tables(
        &self,
        ctx: &Context<'_>,
        tables: Vec<String>,
        #[graphql(name = "where")] filter: Option<WhereClause>,
        limit: Option<i32>,
    ) -> async_graphql::Result<Vec<QueryResult>> {
        who(ctx)?;
        if tables.is_empty() || tables.len() > 16 {
            return Err(bad_input("give 1 to 16 tables"));
        }
        let (l, _) = check_window(limit, None)?;
        let mut out = Vec::with_capacity(tables.len());
        for t in &tables {
            let q = sql::select(t, filter.as_ref(), None, l, None).map_err(bad_input)?;
            out.push(run(ctx, q, None).await?.into());
        }
        Ok(out)
    }

    /// Rows of a table as a Relay connection (cursors are row offsets).
    #[allow(clippy::too_many_arguments)]
    async fn query_table_connection(
        &self,
        ctx: &Context<'_>,
        table: String,
        #[graphql(name = "where")] filter: Option<WhereClause>,
        order_by: Option<Vec<OrderByInput>>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> async_graphql::Result<Connection<usize, RowType, RowConnectionFields>> {
        who(ctx)?;
        if first.is_some_and(|f| f > 10_000) || last.is_some_and(|l| l > 10_000) {
            return Err(bad_input("first/last must be at most 10000"));
        }
        query(
            after,
            before,
            first,
            last,
            |after, before, first, last| async move {
                let cq = sql::count(&table, filter.as_ref()).map_err(bad_input)?;
                let c = run(ctx, cq, None).await?;
                let total = c
                    .output
                    .rows
                    .first()
                    .and_then(|r| r.first())
                    .and_then(Value::as_u64)
                    .unwrap_or(0) as usize;
                let mut start = after.map_or(0, |a| a + 1);
                let mut end = before.unwrap_or(total).min(total);
                if let Some(f) = first {
                    end = end.min(start + f);
                }
                if let Some(l) = last {
                    start = start.max(end.saturating_sub(l));
                }
                let mut conn = Connection::with_additional_fields(
                    start > 0,
                    end < total,
                    RowConnectionFields {
                        total_count: BigInt(total as i64),
                    },
                );
                if end > start {
                    let q = sql::select(
                        &table,
                        filter.as_ref(),
                        order_by.as_deref(),
                        Some((end - start) as u64),
                        Some(start as u64),
                    )
                    .map_err(bad_input)?;
                    let r = run(ctx, q, None).await?;
                    for (i, row) in rows_as_objects(&r.output).into_iter().enumerate() {
                        let id = row
                            .get("id")
                            .map(|v| ID(v.to_string().trim_matches('"').to_string()));
                        conn.edges.push(Edge::new(
                            start + i,
                            RowType {
                                id,
                                data: Json(row),
                            },
                        ));
                    }
                }
                Ok::<_, async_graphql::Error>(conn)
            },
        )
        .await
    }

    /// One row by key.
    async fn row(
        &self,
        ctx: &Context<'_>,
        table: String,
        id: ID,
        #[graphql(default_with = "String::from(\"id\")")] id_column: String,
    ) -> async_graphql::Result<Option<RowType>> {
        who(ctx)?;
        let w = sql::eq_filter(&id_column, id.as_str());
        let q = sql::select(&table, Some(&w), None, Some(1), None).map_err(bad_input)?;
        let r = run(ctx, q, None).await?;
        Ok(rows_as_objects(&r.output)
            .into_iter()
            .next()
            .map(|data| RowType {
                id: Some(id.clone()),
                data: Json(data),
            }))
    }

    /// Aggregates over a table.
    async fn aggregate(
        &self,
        ctx: &Context<'_>,
        table: String,
        aggregates: Vec<AggregateInput>,
        #[graphql(name = "where")] filter: Option<WhereClause>,
        group_by: Option<Vec<String>>,
    ) -> async_graphql::Result<AggregateResult> {
        who(ctx)?;
        let q = sql::aggregate(&table, &aggregates, filter.as_ref(), group_by.as_deref())
            .map_err(bad_input)?;
        let r = run(ctx, q, None).await?;
        let rows = rows_as_objects(&r.output);
        Ok(AggregateResult {
            values: Json(rows.first().cloned().unwrap_or(Value::Null)),
            groups: Json(rows),
        })
    }

    /// Rows in a table (matching a filter).
    async fn count(
        &self,
        ctx: &Context<'_>,
        table: String,
        #[graphql(name = "where")] filter: Option<WhereClause>,
    ) -> async_graphql::Result<BigInt> {
        who(ctx)?;
        let q = sql::count(&table, filter.as_ref()).map_err(bad_input)?;
        let r = run(ctx, q, None).await?;
        let n = r
            .output
            .rows
            .first()
            .and_then(|row| row.first())
            .and_then(Value::as_i64)
            .ok_or_else(|| gerr("INTERNAL", "the engine returned no count"))?;
        Ok(BigInt(n))
    }

    /// Runs one SQL statement (admin only).
    async fn execute_sql(
        &self,
        ctx: &Context<'_>,
        sql: String,
        transaction_id: Option<ID>,
    ) -> async_graphql::Result<Json<Value>> {
        require(ctx, Role::Admin, "executeSql")?;
        if sql.trim().is_empty() {
            return Err(bad_input("sql is empty"));
        }
        let r = run(ctx, sql, transaction_id.as_ref()).await?;
        Ok(Json(serde_json::to_value(&r).unwrap_or(Value::Null)))
    }

    /// Rows whose text columns contain `query` (case-sensitive LIKE).
    async fn search(
        &self,
        ctx: &Context<'_>,
        query: String,
        tables: Option<Vec<String>>,
        limit: Option<i32>,
    ) -> async_graphql::Result<SearchResult> {
        who(ctx)?;
        if query.is_empty() || query.len() > 256 {
            return Err(bad_input("query must be 1 to 256 characters"));
        }
        let (l, _) = check_window(limit.or(Some(100)), None)?;
        let cat = catalog(ctx).await?;
        let pattern = format!("%{}%", query.replace(['%', '_'], ""));
        let mut hits = Vec::new();
        let mut total = 0;
        for t in cat.iter().filter(|t| {
            tables
                .as_ref()
                .is_none_or(|v| v.iter().any(|n| n.eq_ignore_ascii_case(&t.name)))
        }) {
            let text_cols: Vec<&ColumnDef> = t
                .columns
                .iter()
                .filter(|c| {
                    let u = c.data_type.to_ascii_uppercase();
                    u.starts_with("TEXT")
                        || u.starts_with("VARCHAR")
                        || u.starts_with("CHAR")
                        || u.starts_with("STRING")
                })
                .collect();
            if text_cols.is_empty() {
                continue;
            }
            let or: Vec<WhereClause> = text_cols
                .iter()
                .map(|c| WhereClause {
                    and: None,
                    or: None,
                    not: None,
                    condition: Some(sql::FilterCondition {
                        column: c.name.clone(),
                        op: sql::FilterOp::Like,
                        value: Some(Json(Value::String(pattern.clone()))),
                    }),
                })
                .collect();
            let w = WhereClause {
                and: None,
                or: Some(or),
                not: None,
                condition: None,
            };
            let q = sql::select(&t.name, Some(&w), None, l, None).map_err(bad_input)?;
            let r = run(ctx, q, None).await?;
            let rows = rows_as_objects(&r.output);
            if !rows.is_empty() {
                total += rows.len() as i32;
                hits.push(SearchHit {
                    table: t.name.clone(),
                    count: rows.len() as i32,
                    rows: Json(rows),
                });
            }
        }
        Ok(SearchResult {
            query,
            hits,
            total_count: total,
        })
    }

    /// The plan of a query on `table` (or of `sql`), as text.
    async fn explain(
        &self,
        ctx: &Context<'_>,
        table: Option<String>,
        sql: Option<String>,
        #[graphql(name = "where")] filter: Option<WhereClause>,
    ) -> async_graphql::Result<String> {
        who(ctx)?;
        let target = match (table, sql) {
            (Some(t), None) => {
                sql::select(&t, filter.as_ref(), None, None, None).map_err(bad_input)?
            }
            (None, Some(s)) if !s.trim().is_empty() => s,
            _ => return Err(bad_input("give either `table` or `sql`")),
        };
        let r = run(ctx, format!("EXPLAIN {target}"), None).await?;
        let lines: Vec<String> = r
            .output
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        Ok(lines.join("\n"))
    }

    /// `q1 UNION [ALL] q2 …` of SELECT statements.
    async fn execute_union(
        &self,
        ctx: &Context<'_>,
        queries: Vec<String>,
        #[graphql(default)] all: bool,
    ) -> async_graphql::Result<Json<Value>> {
        who(ctx)?;
        if queries.len() < 2 || queries.len() > 16 {
            return Err(bad_input("give 2 to 16 queries"));
        }
        for q in &queries {
            let head = q.trim_start().to_ascii_uppercase();
            if !(head.starts_with("SELECT") || head.starts_with("VALUES")) || q.contains(';') {
                return Err(bad_input(
                    "each query must be a single SELECT or VALUES statement",
                ));
            }
        }
        let joiner = if all { " UNION ALL " } else { " UNION " };
        let text = queries
            .iter()
            .map(|q| q.trim())
            .collect::<Vec<_>>()
            .join(joiner);
        let r = run(ctx, text, None).await?;
        Ok(Json(serde_json::to_value(&r).unwrap_or(Value::Null)))
    }

    /// The memory manager's snapshot (live figures).
    async fn memory_stats(&self, ctx: &Context<'_>) -> async_graphql::Result<MemoryStatsInfo> {
        who(ctx)?;
        let s = app(ctx).mm.stats();
        Ok(MemoryStatsInfo {
            rss_bytes: BigInt(s.rss as i64),
            mapped_bytes: BigInt(s.mapped as i64),
            in_use_bytes: BigInt(s.in_use as i64),
            fragmentation_ratio: s.fragmentation,
            pressure_level: s.pressure.level.as_str().into(),
            budget_bytes: BigInt(s.pressure.budget as i64),
            contexts: s
                .contexts
                .iter()
                .map(|c| MemoryContextInfo {
                    id: ID(c.id.to_string()),
                    name: c.name.clone(),
                    parent_id: c.parent.map(|p| ID(p.to_string())),
                    used_bytes: BigInt(c.used as i64),
                    reserved_bytes: BigInt(c.reserved as i64),
                    peak_bytes: BigInt(c.peak as i64),
                    limit_bytes: c.limit.map(|l| BigInt(l as i64)),
                })
                .collect(),
        })
    }

    /// Open transactions.
    async fn transactions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TransactionInfo>> {
        who(ctx)?;
        Ok(app(ctx).txns.list().into_iter().map(Into::into).collect())
    }
}

/// Mutations.
#[derive(Debug, Default)]
pub struct MutationRoot;

#[Object]
impl MutationRoot {
    /// Inserts one row (a JSON object).
    async fn insert_one(
        &self,
        ctx: &Context<'_>,
        table: String,
        data: Json<Value>,
        transaction_id: Option<ID>,
    ) -> async_graphql::Result<MutationResult> {
        require(ctx, Role::Readwrite, "insertOne")?;
        let q = sql::insert(&table, std::slice::from_ref(&data.0)).map_err(bad_input)?;
        mutation_outcome(run(ctx, q, transaction_id.as_ref()).await)
    }

    /// Inserts rows (JSON objects with the same keys).
    async fn insert_many(
        &self,
        ctx: &Context<'_>,
        table: String,
        rows: Vec<Json<Value>>,
        transaction_id: Option<ID>,
    ) -> async_graphql::Result<MutationResult> {
        require(ctx, Role::Readwrite, "insertMany")?;
        let rows: Vec<Value> = rows.into_iter().map(|j| j.0).collect();
        let q = sql::insert(&table, &rows).map_err(bad_input)?;
        mutation_outcome(run(ctx, q, transaction_id.as_ref()).await)
    }

    /// Updates the row with key `id`.
    async fn update_one(
        &self,
        ctx: &Context<'_>,
        table: String,
        id: ID,
        data: Json<Value>,
        #[graphql(default_with = "String::from(\"id\")")] id_column: String,
        transaction_id: Option<ID>,
    ) -> async_graphql::Result<MutationResult> {
        require(ctx, Role::Readwrite, "updateOne")?;
        let w = sql::eq_filter(&id_column, id.as_str());
        let q = sql::update(&table, &data.0, Some(&w)).map_err(bad_input)?;
        mutation_outcome(run(ctx, q, transaction_id.as_ref()).await)
    }

    /// Updates rows matching a filter (a filter is required).
    async fn update_many(
        &self,
        ctx: &Context<'_>,
        table: String,
        #[graphql(name = "where")] filter: WhereClause,
        data: Json<Value>,
        transaction_id: Option<ID>,
    ) -> async_graphql::Result<MutationResult> {
        require(ctx, Role::Readwrite, "updateMany")?;
        let q = sql::update(&table, &data.0, Some(&filter)).map_err(bad_input)?;
        mutation_outcome(run(ctx, q, transaction_id.as_ref()).await)
    }

    /// Deletes the row with key `id`.
    async fn delete_one(
        &self,
        ctx: &Context<'_>,
        table: String,
        id: ID,
        #[graphql(default_with = "String::from(\"id\")")] id_column: String,
        transaction_id: Option<ID>,
    ) -> async_graphql::Result<MutationResult> {
        require(ctx, Role::Readwrite, "deleteOne")?;
        let w = sql::eq_filter(&id_column, id.as_str());
        let q = sql::delete(&table, Some(&w)).map_err(bad_input)?;
        mutation_outcome(run(ctx, q, transaction_id.as_ref()).await)
    }

    /// Deletes rows matching a filter (a filter is required).
    async fn delete_many(
        &self,
        ctx: &Context<'_>,
        table: String,
        #[graphql(name = "where")] filter: WhereClause,
        transaction_id: Option<ID>,
    ) -> async_graphql::Result<MutationResult> {
        require(ctx, Role::Readwrite, "deleteMany")?;
        let q = sql::delete(&table, Some(&filter)).map_err(bad_input)?;
        mutation_outcome(run(ctx, q, transaction_id.as_ref()).await)
    }

    /// Creates a table (admin).
    async fn create_table(
        &self,
        ctx: &Context<'_>,
        name: String,
        columns: Vec<ColumnDefinitionInput>,
        #[graphql(default)] if_not_exists: bool,
    ) -> async_graphql::Result<MutationResult> {
        require(ctx, Role::Admin, "createTable")?;
        let cols: Vec<ColumnDef> = columns
            .into_iter()
            .map(|c| ColumnDef {
                name: c.name,
                data_type: c.data_type,
                nullable: c.nullable,
                primary_key: c.primary_key,
            })
            .collect();
        let q = sql::create_table(&name, &cols, if_not_exists).map_err(bad_input)?;
        mutation_outcome(run(ctx, q, None).await)
    }

    /// Drops a table (admin).
    async fn drop_table(
        &self,
        ctx: &Context<'_>,
        name: String,
        #[graphql(default)] if_exists: bool,
    ) -> async_graphql::Result<MutationResult> {
        require(ctx, Role::Admin, "dropTable")?;
        let q = sql::drop_table(&name, if_exists).map_err(bad_input)?;
        mutation_outcome(run(ctx, q, None).await)
    }

    /// Begins a transaction (with its own memory context).
    async fn begin_transaction(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] isolation_level: IsolationLevel,
    ) -> async_graphql::Result<TransactionInfo> {
        let p = require(ctx, Role::Readwrite, "beginTransaction")?;
        let s = session(ctx)?;
        let t = super::rest::txns::begin_txn(app(ctx), p, s, isolation_level, None)
            .await
            .map_err(from_problem)?;
        Ok(t.into())
    }

    /// Commits a transaction.
    async fn commit_transaction(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<TransactionInfo> {
        let p = require(ctx, Role::Readwrite, "commitTransaction")?;
        let t = super::rest::txns::finish_txn(app(ctx), p, id.as_str(), true)
            .await
            .map_err(from_problem)?;
        Ok(t.into())
    }

    /// Rolls a transaction back.
    async fn rollback_transaction(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<TransactionInfo> {
        let p = require(ctx, Role::Readwrite, "rollbackTransaction")?;
        let t = super::rest::txns::finish_txn(app(ctx), p, id.as_str(), false)
            .await
            .map_err(from_problem)?;
        Ok(t.into())
    }
}

// ---------------------------------------------------------------- HTTP glue

fn is_mutation(doc: &str, op: Option<&str>) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let Ok(d) = async_graphql::parser::parse_query(doc) else {
        return false; // the executor reports the syntax error
    };
    match &d.operations {
        DocumentOperations::Single(o) => o.node.ty == OperationType::Mutation,
        DocumentOperations::Multiple(m) => match op {
            Some(name) => m
                .get(name)
                .is_some_and(|o| o.node.ty == OperationType::Mutation),
            None => m.values().any(|o| o.node.ty == OperationType::Mutation),
        },
    }
}

async fn execute(req: &Req, batch: async_graphql::BatchRequest) -> Resp {
    let app = req.app.clone();
    let texts: Vec<String> = batch.iter().map(|r| r.query.clone()).collect();
    let mut batch = batch.data(app.clone());
    if let Some(p) = &req.principal {
        batch = batch.data(p.clone());
    }
    if let Some(s) = &req.session {
        batch = batch.data(s.clone());
    }
    let t0 = std::time::Instant::now();
    let resp = app.schema.execute_batch(batch).await;
    let el = t0.elapsed();
    let ok = resp.is_ok();
    for t in &texts {
        app.queries.record(
            "graphql",
            t,
            el / texts.len().max(1) as u32,
            ok,
            app.cfg.slow_query_ms,
        );
    }
    http::ok(&resp)
}

/// `POST /graphql`: a request object or a batch (array), as JSON.
#[utoipa::path(post, path = "/graphql", tag = "graphql", security(("bearer" = [])),
    request_body(content = Object, description = "{query, variables, operationName} or an array of them"),
    responses((status = 200, description = "GraphQL response (errors inside)"), (status = 400), (status = 401)))]
pub async fn http_post(req: Req) -> Result<Resp, Problem> {
    let batch: async_graphql::BatchRequest = http::parse_json(&req.body)?;
    if batch.iter().next().is_none() {
        return Err(Problem::bad_request("an empty batch"));
    }
    if batch.iter().count() > 16 {
        return Err(Problem::bad_request("at most 16 operations per batch"));
    }
    Ok(execute(&req, batch).await)
}

/// `GET /graphql?query=…&variables=…&operationName=…` (queries only); without
/// `query`, the GraphQL Playground page.
#[utoipa::path(get, path = "/graphql", tag = "graphql", security(("bearer" = [])),
    params(("query" = Option<String>, Query), ("variables" = Option<String>, Query), ("operationName" = Option<String>, Query)),
    responses((status = 200, description = "GraphQL response, or the Playground page"), (status = 405, description = "A mutation over GET")))]
pub async fn http_get(req: Req) -> Result<Resp, Problem> {
    let Some(q) = req.query.get("query") else {
        let html = async_graphql::http::playground_source(
            async_graphql::http::GraphQLPlaygroundConfig::new("/graphql"),
        );
        return Ok(http::bytes_response(
            StatusCode::OK,
            "text/html; charset=utf-8",
            html.into_bytes(),
        ));
    };
    let op = req.query.get("operationName").map(String::from);
    if is_mutation(q, op.as_deref()) {
        return Err(Problem::method_not_allowed(
            "GET",
            "/graphql (mutation)",
            &["POST"],
        ));
    }
    let mut r = async_graphql::Request::new(q);
    if let Some(op) = op {
        r = r.operation_name(op);
    }
    if let Some(v) = req.query.get("variables") {
        let vars: Value = serde_json::from_str(v)
            .map_err(|e| Problem::malformed_json(format!("`variables` is not JSON: {e}")))?;
        r = r.variables(async_graphql::Variables::from_json(vars));
    }
    Ok(execute(&req, async_graphql::BatchRequest::Single(r)).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_detected() {
        assert!(is_mutation(
            "mutation { dropTable(name: \"x\") { __typename } }",
            None
        ));
        assert!(!is_mutation("{ schemas { name } }", None));
        assert!(is_mutation(
            "query A { schemas { name } } mutation B { x }",
            Some("B")
        ));
        assert!(!is_mutation(
            "query A { schemas { name } } mutation B { x }",
            Some("A")
        ));
    }

    #[test]
    fn schema_has_the_seed_fields() {
        let sdl = build_schema().sdl();
        for f in [
            "schemas",
            "schema(",
            "tables(",
            "table(",
            "queryTable(",
            "queryTables(",
            "queryTableConnection(",
            "row(",
            "aggregate(",
            "count(",
            "executeSql(",
            "search(",
            "explain(",
            "executeUnion(",
        ] {
            assert!(sdl.contains(&format!("\t{f}")), "missing {f}");
        }
        for t in [
            "type QueryRoot",
            "type MutationRoot",
            "type DatabaseSchema",
            "type TableType",
            "type ColumnType",
            "input AggregateInput",
        ] {
            assert!(sdl.contains(t), "missing {t}");
        }
    }
}
