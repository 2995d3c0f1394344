//! The seam for the SQL engine; the server plugs in GlueSQL over buffer-pool
//! pages (`glue/`).
//!
//! The server owns everything around a statement — validation, auth, sessions,
//! transactions and their memory contexts, the per-query context and its limit,
//! statistics, errors — and calls a [`SqlEngine`] for the statement itself. The
//! GraphQL data fields and the REST table endpoints are written as SQL (see
//! `sql.rs`), so an engine implements `execute` and the catalog, nothing more.
//!
//! Without an engine (the fuzz entry point when its data file cannot be
//! opened), [`Unavailable`] answers: its catalog is empty (one schema,
//! `public`, no tables) and every statement is refused with a 501 problem
//! naming the missing engine.

use std::sync::Arc;

use hyper::StatusCode;
use rustydb_memory::MemoryContext;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::server::api::problem::Problem;

/// Isolation levels (the engine decides what it honours and reports it back).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Default,
    async_graphql::Enum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum IsolationLevel {
    /// Dirty reads allowed.
    ReadUncommitted,
    /// The default.
    #[default]
    ReadCommitted,
    /// Repeatable reads.
    RepeatableRead,
    /// Serializable.
    Serializable,
}

/// What the caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Readonly tokens: the engine must refuse writes with [`SqlError::ReadOnly`].
    ReadOnly,
    /// Reads and writes (DML).
    ReadWrite,
    /// Everything, DDL included.
    Admin,
}

/// One statement to run.
pub struct QueryCall<'a> {
    /// The SQL text.
    pub sql: &'a str,
    /// The transaction it runs in, if any (otherwise it autocommits).
    pub txn: Option<u64>,
    /// What the caller may do.
    pub mode: Mode,
    /// The statement's own memory context (a child of the transaction's or
    /// session's), limited by `--query-memory-limit`. Working memory of the
    /// statement belongs here; a `LimitExceeded` from it becomes a 413-class
    /// problem naming the limit.
    pub ctx: &'a MemoryContext<'static>,
}

/// A column of a result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Type name, as the engine reports it.
    pub data_type: String,
}

/// What a statement returned.
#[derive(Debug, Clone, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct QueryOutput {
    /// Result columns (empty for statements without rows).
    pub columns: Vec<Column>,
    /// Rows, each a list of values in column order.
    #[schema(value_type = Vec<Vec<Object>>)]
    pub rows: Vec<Vec<Value>>,
    /// Rows inserted, updated or deleted.
    pub rows_affected: u64,
    /// The statement kind (`SELECT`, `INSERT`, `CREATE TABLE`, `EXPLAIN`, …).
    pub statement: String,
}

/// A column of a table definition.
#[derive(
    Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema, async_graphql::SimpleObject,
)]
#[graphql(name = "ColumnType")]
pub struct ColumnDef {
    /// Name.
    pub name: String,
    /// SQL type (`INTEGER`, `TEXT`, `FLOAT`, `BOOLEAN`, …).
    #[serde(rename = "type", alias = "data_type")]
    pub data_type: String,
    /// Whether NULL is allowed.
    #[serde(default = "yes")]
    pub nullable: bool,
    /// Part of the primary key.
    #[serde(default)]
    pub primary_key: bool,
}

fn yes() -> bool {
    true
}

/// A table as the catalog knows it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct TableInfo {
    /// Schema (always `public` today).
    pub schema: String,
    /// Name.
    pub name: String,
    /// Columns in order.
    pub columns: Vec<ColumnDef>,
    /// Rows.
    pub row_count: u64,
    /// Bytes of pages the table occupies.
    pub size_bytes: u64,
}

/// Why a statement failed. The server maps each to a problem.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlError {
    /// No engine is plugged in (501).
    Unavailable,
    /// The SQL does not parse or plan (400, with the parser's message).
    Invalid(String),
    /// A table or column that does not exist (404).
    NotFound(String),
    /// Already exists, constraint violated, conflicting write (409).
    Conflict(String),
    /// A write from a readonly caller (403).
    ReadOnly,
    /// A statement the caller's role may not run, e.g. DDL without admin (403).
    Forbidden(String),
    /// The statement's memory context reached its limit (413).
    MemoryLimit {
        /// The context's limit in bytes.
        limit: u64,
        /// What was asked.
        requested: u64,
    },
    /// Anything else (500).
    Internal(String),
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SqlError::Unavailable => f.write_str(
                "no SQL engine is plugged into this server; the request itself was valid",
            ),
            SqlError::Invalid(m) => write!(f, "invalid SQL: {m}"),
            SqlError::NotFound(m) => f.write_str(m),
            SqlError::Conflict(m) => f.write_str(m),
            SqlError::ReadOnly => f.write_str("the readonly role cannot run statements that write"),
            SqlError::Forbidden(m) => f.write_str(m),
            SqlError::MemoryLimit { limit, requested } => write!(
                f,
                "the query's memory context reached its limit of {limit} bytes (--query-memory-limit) asking for {requested} more"
            ),
            SqlError::Internal(m) => write!(f, "engine error: {m}"),
        }
    }
}

impl SqlError {
    /// The GraphQL error code.
    pub fn code(&self) -> &'static str {
        match self {
            SqlError::Unavailable => "SQL_ENGINE_UNAVAILABLE",
            SqlError::Invalid(_) => "BAD_SQL",
            SqlError::NotFound(_) => "NOT_FOUND",
            SqlError::Conflict(_) => "CONFLICT",
            SqlError::ReadOnly | SqlError::Forbidden(_) => "PERMISSION_DENIED",
            SqlError::MemoryLimit { .. } => "QUERY_MEMORY_LIMIT",
            SqlError::Internal(_) => "INTERNAL",
        }
    }

    /// The problem for a REST response.
    pub fn problem(&self) -> Problem {
        let d = self.to_string();
        match self {
            SqlError::Unavailable => Problem::new(
                StatusCode::NOT_IMPLEMENTED,
                "sql-engine-unavailable",
                "SQL engine not available",
                d,
            ),
            SqlError::Invalid(_) => {
                Problem::new(StatusCode::BAD_REQUEST, "bad-sql", "Invalid SQL", d)
            }
            SqlError::NotFound(_) => Problem::not_found(d),
            SqlError::Conflict(_) => Problem::conflict(d),
            SqlError::ReadOnly | SqlError::Forbidden(_) => Problem::forbidden(d),
            SqlError::MemoryLimit { limit, requested } => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "query-memory-limit",
                "Query memory limit reached",
                d,
            )
            .with("limit_bytes", limit)
            .with("requested_bytes", requested),
            SqlError::Internal(_) => Problem::internal(d),
        }
    }

    /// From a library error raised by a query's memory context.
    pub fn from_memory(e: &rustydb_memory::Error, limit: u64) -> SqlError {
        match e {
            rustydb_memory::Error::LimitExceeded {
                requested, limit, ..
            } => SqlError::MemoryLimit {
                limit: *limit as u64,
                requested: *requested as u64,
            },
            other => {
                let _ = limit;
                SqlError::Internal(other.to_string())
            }
        }
    }
}

/// Where the server runs a statement (`sql/workers.rs`). A scheduling hint:
/// [`SqlEngine::execute`] is correct on any thread; the lanes keep a waiting
/// statement from taking the thread another needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Short and never waits (a point read): run where the request is, with
    /// no thread hop.
    Inline,
    /// Reads: never waits for the writer.
    Read,
    /// A write that may wait for the writer's lock.
    Write,
    /// A statement, commit or rollback of the transaction that holds the
    /// writer's lock: never queued behind the writes that wait for it.
    Owner,
}

/// Figures of the engine's locking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LockStats {
    /// Locks held now (the writer's lock: 0 or 1).
    pub held: u64,
    /// Statements waiting for it now.
    pub waiting: u64,
    /// Waits for it since start (a statement that found it held).
    pub waits: u64,
    /// Waits that gave up (a 409 after the timeout) since start.
    pub timeouts: u64,
    /// Readers holding a snapshot now.
    pub snapshots: u64,
    /// Versions of recent writes kept for those snapshots.
    pub versions: u64,
    /// Bytes of undo those versions keep.
    pub version_bytes: u64,
}

/// Figures of the engine's write-ahead log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LogStats {
    /// Commit records written since start.
    pub commits: u64,
    /// `fdatasync` calls of the log since start (commits ÷ syncs = the
    /// average group commit).
    pub syncs: u64,
    /// Bytes of log written since start.
    pub bytes: u64,
    /// Full-page images logged since start.
    pub page_images: u64,
    /// Checkpoints completed since start.
    pub checkpoints: u64,
    /// Where the log ends (bytes since the database was created).
    pub end_lsn: u64,
    /// Page changes redone by recovery when the server started.
    pub recovery_redone: u64,
    /// Transactions rolled back by recovery when the server started.
    pub recovery_rolled_back: u64,
    /// Torn pages rebuilt from full-page images by that recovery.
    pub recovery_torn_pages: u64,
}

/// A boxed future of the engine.
pub type EngineFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, SqlError>> + Send + 'a>>;

/// A SQL engine. Every method but [`durable`](SqlEngine::durable) blocks: the
/// server calls them on its SQL workers (`sql/workers.rs`), or inline for
/// [`Lane::Inline`], never on the async reactor otherwise.
pub trait SqlEngine: Send + Sync + 'static {
    /// A name for `/api/v1/admin/health` and logs.
    fn name(&self) -> &str;
    /// Whether statements can run (false: every statement gets 501).
    fn available(&self) -> bool {
        true
    }
    /// Runs one statement; when it committed, its commit is durable.
    fn execute(&self, call: &QueryCall<'_>) -> Result<QueryOutput, SqlError>;
    /// Runs one statement, not waiting for its commit to be durable: returns
    /// the log position to wait for with [`durable`](SqlEngine::durable)
    /// before answering.
    fn execute_nowait(&self, call: &QueryCall<'_>) -> Result<(QueryOutput, Option<u64>), SqlError> {
        self.execute(call).map(|o| (o, None))
    }
    /// Where `sql`, in transaction `txn` (or autocommit), should run.
    fn lane(&self, sql: &str, txn: Option<u64>) -> Lane {
        let _ = (sql, txn);
        Lane::Write
    }
    /// Where committing or rolling back `txn` should run.
    fn finish_lane(&self, txn: u64) -> Lane {
        let _ = txn;
        Lane::Owner
    }
    /// Waits without a thread until the log is durable up to `lsn`.
    fn durable(&self, lsn: u64) -> EngineFuture<'_, ()> {
        let _ = lsn;
        Box::pin(std::future::ready(Ok(())))
    }
    /// Lock figures, when the engine locks.
    fn locks(&self) -> Option<LockStats> {
        None
    }
    /// Log figures, when the engine has a log.
    fn log(&self) -> Option<LogStats> {
        None
    }
    /// The health check's reading of the database: reads the catalog (a
    /// short description) or says why it cannot.
    fn check(&self) -> Result<String, String> {
        self.tables()
            .map(|t| format!("catalog readable: {} table(s)", t.len()))
            .map_err(|e| e.to_string())
    }
    /// Opens transaction `txn` (ids are the server's, unique for the process).
    fn begin(&self, txn: u64, isolation: IsolationLevel) -> Result<IsolationLevel, SqlError> {
        let _ = txn;
        Ok(isolation)
    }
    /// Commits `txn`; its commit is durable when this returns.
    fn commit(&self, txn: u64) -> Result<(), SqlError> {
        let _ = txn;
        Ok(())
    }
    /// Commits `txn` without waiting for durability: the log position to
    /// wait for, if it wrote.
    fn commit_nowait(&self, txn: u64) -> Result<Option<u64>, SqlError> {
        self.commit(txn).map(|()| None)
    }
    /// Rolls `txn` back.
    fn rollback(&self, txn: u64) -> Result<(), SqlError> {
        let _ = txn;
        Ok(())
    }
    /// Schemas.
    fn schemas(&self) -> Vec<String> {
        vec!["public".to_string()]
    }
    /// Tables of the catalog.
    fn tables(&self) -> Result<Vec<TableInfo>, SqlError>;
    /// One table.
    fn table(&self, name: &str) -> Result<Option<TableInfo>, SqlError> {
        Ok(self
            .tables()?
            .into_iter()
            .find(|t| t.name.eq_ignore_ascii_case(name)))
    }
    /// Buffer-pool figures the engine's storage sees: (hits, misses).
    fn cache_counters(&self) -> Option<(u64, u64)> {
        None
    }
}

/// No engine: an empty catalog and no statements.
#[derive(Debug, Default)]
pub struct Unavailable;

impl SqlEngine for Unavailable {
    fn name(&self) -> &str {
        "none"
    }
    fn lane(&self, _sql: &str, _txn: Option<u64>) -> Lane {
        Lane::Inline
    }
    fn finish_lane(&self, _txn: u64) -> Lane {
        Lane::Inline
    }
    fn available(&self) -> bool {
        false
    }
    fn execute(&self, _call: &QueryCall<'_>) -> Result<QueryOutput, SqlError> {
        Err(SqlError::Unavailable)
    }
    fn begin(&self, _txn: u64, isolation: IsolationLevel) -> Result<IsolationLevel, SqlError> {
        // Transactions are bookkept by the server (ids, contexts, timeouts)
        // even without an engine; there is nothing to isolate yet.
        Ok(isolation)
    }
    fn tables(&self) -> Result<Vec<TableInfo>, SqlError> {
        Ok(Vec::new())
    }
}

/// The engine as the server holds it.
pub type Engine = Arc<dyn SqlEngine>;
