//! Running SQL: admission, the per-query memory context, the blocking call
//! into the engine, statistics. Used by REST (`/query`, `/batch`, `/tables`)
//! and GraphQL alike.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::Serialize;

use super::auth::{Principal, Role};
use super::ctx::CtxNode;
use super::engine::{Mode, QueryCall, QueryOutput, SqlError};
use super::problem::Problem;
use super::sessions::Session;
use super::state::App;
use super::txn::Txn;

/// The memory a statement used.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueryMemory {
    /// The statement's context id (gone once it finished).
    pub context_id: u64,
    /// The context's limit (`--query-memory-limit`).
    pub limit_bytes: u64,
    /// Peak bytes handed out by the statement's context.
    pub peak_bytes: u64,
    /// Chunk bytes the context held at the end (freed with it).
    pub reserved_bytes: u64,
}

/// A statement's result.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueryResponse {
    /// Output.
    #[serde(flatten)]
    pub output: QueryOutput,
    /// Wall time, ms.
    pub execution_time_ms: f64,
    /// The transaction it ran in, if any.
    pub transaction_id: Option<u64>,
    /// Its memory.
    pub memory: QueryMemory,
}

/// Why running failed: a SQL error, or a server-side refusal.
#[derive(Debug)]
pub enum ExecError {
    /// From the engine.
    Sql(SqlError),
    /// Refused before reaching it (pressure, shutdown).
    Refused(Problem),
}

impl ExecError {
    /// As a REST problem.
    pub fn problem(self) -> Problem {
        match self {
            ExecError::Sql(e) => e.problem(),
            ExecError::Refused(p) => p,
        }
    }
    /// GraphQL code and message.
    pub fn code_message(&self) -> (&'static str, String) {
        match self {
            ExecError::Sql(e) => (e.code(), e.to_string()),
            ExecError::Refused(p) => ("UNAVAILABLE", p.detail.clone()),
        }
    }
}

/// The engine mode of a role.
pub fn mode_of(p: &Principal) -> Mode {
    match p.role {
        Role::Readonly => Mode::ReadOnly,
        Role::Readwrite => Mode::ReadWrite,
        Role::Admin => Mode::Admin,
    }
}

/// Refuses new work at the Emergency pressure level (503).
pub fn admit(app: &App, bytes: usize) -> Result<(), Problem> {
    app.mm.pressure().admit(bytes).map_err(|e| {
        Problem::unavailable(
            "memory-pressure",
            "Memory pressure",
            format!("new work is refused while memory pressure is at its emergency level: {e}"),
            1,
        )
        .with("level", app.mm.pressure().level().as_str())
    })
}

/// Runs `sql` for `who` in `txn` (or autocommit in `session`), in a fresh
/// query context, on a blocking thread.
pub async fn run_sql(
    app: &Arc<App>,
    who: &Principal,
    session: &Arc<Session>,
    txn: Option<Arc<Txn>>,
    sql: String,
) -> Result<QueryResponse, ExecError> {
    admit(app, sql.len()).map_err(ExecError::Refused)?;
    let limit = app.cfg.query_memory_limit;
    let parent: Arc<CtxNode> = txn
        .as_ref()
        .map_or_else(|| session.ctx.clone(), |t| t.ctx.clone());
    let mode = mode_of(who);
    let engine = app.engine.clone();
    let t0 = Instant::now();
    let sql2 = sql.clone();
    let txn2 = txn.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let _busy = txn2
            .as_ref()
            .map(|t| t.busy.lock().unwrap_or_else(|e| e.into_inner()));
        let q = parent.child("query".to_string(), Some(limit));
        let g = q.lock();
        let r = engine.execute(&QueryCall {
            sql: &sql2,
            txn: txn2.as_ref().map(|t| t.id),
            mode,
            ctx: &g,
        });
        let s = g.stats();
        (r, s)
    })
    .await;
    let elapsed = t0.elapsed();
    let (r, stats) = match joined {
        Ok(x) => x,
        Err(e) => {
            let msg = if e.is_panic() {
                "the SQL engine panicked"
            } else {
                "the statement was cancelled"
            };
            app.logs.error(
                "sql",
                format!("{msg}: {}", super::querystats::normalise(&sql)),
            );
            (Err(SqlError::Internal(msg.into())), empty_stats())
        }
    };
    session.queries.fetch_add(1, Ordering::Relaxed);
    if let Some(t) = &txn {
        t.statements.fetch_add(1, Ordering::Relaxed);
        t.last_active_ms
            .store(super::http::unix_ms(), Ordering::Relaxed);
    }
    app.queries
        .record("sql", &sql, elapsed, r.is_ok(), app.cfg.slow_query_ms);
    let output = r.map_err(ExecError::Sql)?;
    Ok(QueryResponse {
        output,
        execution_time_ms: elapsed.as_secs_f64() * 1000.0,
        transaction_id: txn.as_ref().map(|t| t.id),
        memory: QueryMemory {
            context_id: stats.id,
            limit_bytes: limit,
            peak_bytes: stats.peak as u64,
            reserved_bytes: stats.reserved as u64,
        },
    })
}

fn empty_stats() -> rustydb_memory::ContextStats {
    rustydb_memory::ContextStats {
        id: 0,
        name: String::new(),
        parent: None,
        used: 0,
        reserved: 0,
        peak: 0,
        chunks: 0,
        children: 0,
        limit: None,
        charged: 0,
    }
}

/// Runs a blocking engine call (begin/commit/rollback, catalog) off the reactor.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SqlError> + Send + 'static,
) -> Result<T, SqlError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(SqlError::Internal("the SQL engine panicked".into())),
        Err(_) => Err(SqlError::Internal("cancelled".into())),
    }
}
