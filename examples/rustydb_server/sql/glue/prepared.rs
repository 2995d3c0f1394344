//! Statements parsed once: a cache by SQL text (LRU, [`CAPACITY`] entries)
//! of the parsed and rewritten statement, its kind, its memory estimate and,
//! for reads, its plan — planned against a catalog generation and planned
//! again when the schemas change. A repeated statement skips the parser,
//! the JSON pass of the memory estimate and the planner; a point read by
//! primary key is marked so the server can run it without a thread hop.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use gluesql_core::plan::{
    ProjectInputPlan, ProjectPlan, QueryPlan, SourcePlan, StatementPlan, TableAccessPlan,
    TableSourcePlan,
};
use gluesql_core::sqlparser::ast::{SetExpr, Statement};
use gluesql_core::store::Planner;
use lru::LruCache;

use crate::server::sql::engine::SqlError;
use crate::server::sql::glue::rewrite::{self, Kind};
use crate::server::sql::glue::{budget, run};

/// Statements kept.
pub const CAPACITY: usize = 16 * 1024;
/// Statements longer than this are not kept (bulk inserts rarely repeat).
const MAX_SQL: usize = 4096;

/// A parsed statement.
#[derive(Debug)]
pub struct Prepared {
    /// The statement, rewritten (`rewrite.rs`).
    pub stmt: Statement,
    /// What it does.
    pub kind: Kind,
    /// Its name for the response (`SELECT`, `INSERT`, …).
    pub name: String,
    estimate: Result<u64, SqlError>,
    /// The plan of a read, with the catalog generation it was planned in.
    plan: Mutex<Option<(u64, Arc<StatementPlan>)>>,
    point: std::sync::atomic::AtomicBool,
}

impl Prepared {
    fn parse(sql: &str) -> Result<Prepared, SqlError> {
        let mut stmts = gluesql_core::parse_sql::parse(sql).map_err(run::map_err)?;
        if stmts.len() != 1 {
            return Err(SqlError::Invalid(format!(
                "one statement per call, got {} (use POST /api/v1/batch for several)",
                stmts.len()
            )));
        }
        let mut stmt = stmts.remove(0);
        rewrite::rewrite(&mut stmt);
        let kind = match &stmt {
            Statement::Explain { statement, .. } => match rewrite::kind(statement) {
                Kind::TxnControl => Kind::TxnControl,
                _ => Kind::Read,
            },
            s => rewrite::kind(s),
        };
        Ok(Prepared {
            name: rewrite::name(&stmt),
            estimate: budget::assess(&stmt),
            stmt,
            kind,
            plan: Mutex::new(None),
            point: false.into(),
        })
    }

    /// Refuses a statement GlueSQL would panic on, or one whose literals
    /// alone exceed the statement's memory `limit`.
    pub fn within(&self, limit: Option<u64>) -> Result<(), SqlError> {
        budget::within(self.estimate.clone()?, limit)
    }

    /// Whether the plan reads one row by primary key (short: no thread hop).
    pub fn point(&self) -> bool {
        self.point.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The plan of this read against storage `s` of catalog `generation`
    /// (cached; `None` for a `UNION`, which is run side by side).
    pub fn plan_for<S: Planner>(
        &self,
        s: &S,
        generation: u64,
    ) -> Result<Option<Arc<StatementPlan>>, SqlError> {
        if let Statement::Query(q) = &self.stmt
            && matches!(*q.body, SetExpr::SetOperation { .. })
        {
            return Ok(None);
        }
        if let Some((g, p)) = &*self.plan.lock().unwrap_or_else(|e| e.into_inner())
            && *g == generation
        {
            return Ok(Some(p.clone()));
        }
        let p = Arc::new(run::plan(s, &self.stmt)?);
        self.point
            .store(is_point(&p), std::sync::atomic::Ordering::Relaxed);
        *self.plan.lock().unwrap_or_else(|e| e.into_inner()) = Some((generation, p.clone()));
        Ok(Some(p))
    }
}

/// Whether `p` reads a single table by primary key.
fn is_point(p: &StatementPlan) -> bool {
    let by_key = |s: &SourcePlan| {
        matches!(
            s,
            SourcePlan::Table(TableSourcePlan {
                access: TableAccessPlan::PrimaryKey { .. },
                ..
            })
        )
    };
    match p {
        StatementPlan::Query(QueryPlan::Project(ProjectPlan { input, .. })) => match input {
            ProjectInputPlan::Source(s) => by_key(s),
            ProjectInputPlan::Filter(f) => {
                matches!(&f.input, gluesql_core::plan::FilterInputPlan::Source(s) if by_key(s))
            }
            _ => false,
        },
        _ => false,
    }
}

/// The cache.
#[derive(Debug)]
pub struct Statements {
    cache: Mutex<LruCache<Box<str>, Arc<Prepared>>>,
}

impl Statements {
    /// A cache of `capacity` statements.
    pub fn new(capacity: usize) -> Self {
        Self {
            cache: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// The statement `sql`, parsed now or before.
    pub fn get(&self, sql: &str) -> Result<Arc<Prepared>, SqlError> {
        if let Some(p) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sql)
        {
            return Ok(p.clone());
        }
        let p = Arc::new(Prepared::parse(sql)?);
        if sql.len() <= MAX_SQL {
            self.cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .put(sql.into(), p.clone());
        }
        Ok(p)
    }

    /// The statement `sql` if it was parsed before (no parsing here).
    pub fn peek(&self, sql: &str) -> Option<Arc<Prepared>> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .peek(sql)
            .cloned()
    }
}

/// Whether `sql` starts like a statement that only reads (a hint for
/// statements not parsed yet; the engine decides after parsing).
pub fn looks_read_only(sql: &str) -> bool {
    let w: String = sql
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    matches!(
        w.as_str(),
        "SELECT" | "WITH" | "EXPLAIN" | "SHOW" | "VALUES"
    )
}
