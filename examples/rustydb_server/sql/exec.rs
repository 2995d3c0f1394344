//! Running SQL: admission, the per-query memory context, the call into the
//! engine on its lane's workers (`workers.rs`; a point read inline), the
//! asynchronous wait for a commit to be durable, statistics. Used by REST
//! (`/query`, `/batch`, `/tables`, `/transactions`) and GraphQL alike.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::Serialize;

use crate::server::api::auth::{Principal, Role};
use crate::server::api::problem::Problem;
use crate::server::memory::sessions::Session;
use crate::server::sql::engine::{Lane, Mode, QueryCall, QueryOutput, SqlError};
use crate::server::sql::txn::Txn;
use crate::server::sql::workers::Workers;
use crate::server::state::App;
use rustydb_memory::OwnedContext;

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
/// query context, in the statement's lane; answers once its commit (if it
/// committed) is durable.
pub async fn run_sql(
    app: &Arc<App>,
    who: &Principal,
    session: &Arc<Session>,
    txn: Option<Arc<Txn>>,
    sql: String,
) -> Result<QueryResponse, ExecError> {
    admit(app, sql.len()).map_err(ExecError::Refused)?;
    let limit = app.cfg.query_memory_limit;
    let parent: Arc<OwnedContext> = txn
        .as_ref()
        .map_or_else(|| session.ctx.clone(), |t| t.ctx.clone());
    let mode = mode_of(who);
    let engine = app.engine.clone();
    let t0 = Instant::now();
    // One statement of a transaction at a time (waited for here, not on a
    // worker).
    let _busy = match &txn {
        Some(t) => Some(t.busy.clone().lock_owned().await),
        None => None,
    };
    let lane = engine.lane(&sql, txn.as_ref().map(|t| t.id));
    let txn_id = txn.as_ref().map(|t| t.id);
    let job = {
        let (engine, sql) = (engine.clone(), sql.clone());
        move || {
            let q = parent.child("query", Some(usize::try_from(limit).unwrap_or(usize::MAX)));
            let g = q.lock();
            let r = engine.execute_nowait(&QueryCall {
                sql: &sql,
                txn: txn_id,
                mode,
                ctx: &g,
            });
            (r, g.stats())
        }
    };
    let joined = Workers::global().run(lane, job).await;
    let joined = match joined {
        Ok((Ok((out, Some(lsn))), st)) => {
            let durable = engine.durable(lsn).await;
            Ok((durable.map(|()| out), st))
        }
        Ok((r, st)) => Ok((r.map(|(out, _)| out), st)),
        Err(e) => Err(e),
    };
    let elapsed = t0.elapsed();
    let (r, stats) = match joined {
        Ok(x) => x,
        Err(msg) => {
            app.logs.error(
                "sql",
                format!(
                    "{msg}: {}",
                    crate::server::observe::querystats::normalise(&sql)
                ),
            );
            (Err(SqlError::Internal(msg)), empty_stats())
        }
    };
    session.queries.fetch_add(1, Ordering::Relaxed);
    if let Some(t) = &txn {
        t.statements.fetch_add(1, Ordering::Relaxed);
        t.last_active_ms
            .store(crate::server::api::http::unix_ms(), Ordering::Relaxed);
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

/// Runs a short blocking engine call (begin, the catalog) on a read worker.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SqlError> + Send + 'static,
) -> Result<T, SqlError> {
    match Workers::global().run(Lane::Read, f).await {
        Ok(r) => r,
        Err(e) => Err(SqlError::Internal(e)),
    }
}

/// Commits (`commit`) or rolls back transaction `id` in the engine: in the
/// writer's lane when it holds the writer's lock, answered once the commit
/// is durable (a wait that holds no thread, shared with every commit of the
/// same log sync).
pub async fn end_txn(app: &Arc<App>, id: u64, commit: bool) -> Result<(), SqlError> {
    let e = app.engine.clone();
    let lane = e.finish_lane(id);
    let e2 = e.clone();
    let r = Workers::global()
        .run(lane, move || {
            if commit {
                e2.commit_nowait(id)
            } else {
                e2.rollback(id).map(|()| None)
            }
        })
        .await
        .map_err(SqlError::Internal)??;
    match r {
        Some(lsn) => e.durable(lsn).await,
        None => Ok(()),
    }
}
