//! The GraphQL object, union and input types the roots return and take.

use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject, Union};
use serde_json::Value;

use super::*;
use crate::server::sql::engine::{ColumnDef, IsolationLevel, TableInfo};
use crate::server::sql::exec;

/// A schema of the database.
#[derive(Debug, Clone)]
pub struct DatabaseSchema {
    pub(super) name: String,
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
pub struct TableType(pub(super) TableInfo);

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

impl From<crate::server::sql::txn::TxnInfo> for TransactionInfo {
    fn from(t: crate::server::sql::txn::TxnInfo) -> Self {
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

pub(super) fn mutation_outcome(
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
