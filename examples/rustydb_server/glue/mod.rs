//! The SQL engine: GlueSQL 0.20 (parser, planner, executor) over tables on
//! the crate's buffer pool, persisted in `<data-dir>/rustydb.pages`.
//!
//! * `heap.rs` — page formats (slotted heap pages, page chains);
//! * `catalog.rs` — schemas and page lists, in a page chain from page 0;
//! * `storage.rs` — GlueSQL's `Store`/`StoreMut`/`Transaction` on the pool;
//! * `txn.rs` — the single-owner gate and the undo log;
//! * `rewrite.rs` — CROSS JOIN rewriting, statement kinds;
//! * `explain.rs` — `EXPLAIN` as text;
//! * `budget.rs` — up-front memory estimates from a statement's literals;
//! * this file — [`GlueEngine`], the server's [`SqlEngine`]: statements,
//!   `UNION` (GlueSQL has none: each side runs, results are concatenated and,
//!   without `ALL`, deduplicated), transactions, results as JSON charged to
//!   the statement's memory context.
//!
//! Isolation: a transaction holds the whole database from its first
//! statement to commit/rollback, so transactions are **serializable** (one
//! at a time); other statements wait for it (up to the gate's timeout, then
//! a 409). The catalog listing (`tables`) does not wait and
//! may show a running transaction's uncommitted tables. Durability: a commit
//! saves the catalog and flushes the pool (`fdatasync`); there is no
//! write-ahead log, so a crash in the middle of a commit's flush can leave a
//! partial state.

pub mod budget;
pub mod catalog;
pub mod explain;
pub mod heap;
pub mod rewrite;
pub mod storage;
pub mod txn;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gluesql_core::executor::Payload;
use gluesql_core::sqlparser::ast::{SetExpr, SetOperator, SetQuantifier, Statement};
use gluesql_core::store::Planner;
use rustydb_memory::buffer_pool::FileDisk;
use rustydb_memory::{BufferPool, MemoryManager};
use serde_json::Value as Json;

use self::rewrite::Kind;
use self::storage::{Db, Storage};
use self::txn::Owner;
use super::engine::{
    Column, ColumnDef, IsolationLevel, Mode, QueryCall, QueryOutput, SqlEngine, SqlError, TableInfo,
};

/// The data file's name in `--data-dir`.
pub const FILE: &str = "rustydb.pages";

/// How long a statement waits for a running transaction.
pub const GATE_TIMEOUT: Duration = Duration::from_secs(10);

/// GlueSQL on buffer-pool pages.
#[derive(Debug)]
pub struct GlueEngine {
    db: Db,
    /// Server transactions begun and not yet finished.
    open: std::sync::Mutex<HashSet<u64>>,
}

impl GlueEngine {
    /// Opens (or creates) the database in `dir` with a pool of `frames`
    /// pages of `page_size` bytes, registered with `mm` (if given) so the
    /// pressure manager can shrink it.
    pub fn open(
        dir: &Path,
        frames: usize,
        page_size: usize,
        mm: Option<&MemoryManager>,
    ) -> Result<Self, String> {
        let path = dir.join(FILE);
        let disk = FileDisk::open(&path, page_size)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let pool = BufferPool::builder()
            .frames(frames)
            .page_size(page_size)
            .disk(disk)
            .build()
            .map_err(|e| format!("buffer pool: {e}"))?;
        let pool = Arc::new(pool);
        if let Some(mm) = mm {
            mm.register_buffer_pool(&pool);
        }
        Self::on_pool(pool)
    }

    /// The engine on an existing pool (tests: any disk).
    pub fn on_pool(pool: Arc<BufferPool>) -> Result<Self, String> {
        Ok(Self {
            db: Db::open(pool, GATE_TIMEOUT)?,
            open: std::sync::Mutex::new(HashSet::new()),
        })
    }

    /// The buffer pool.
    pub fn pool(&self) -> &Arc<BufferPool> {
        &self.db.pool
    }

    /// Runs one parsed statement under the gate: a transaction takes the
    /// gate with its first statement and keeps it until commit/rollback
    /// (so transactions that have not run anything yet block no one).
    fn run(&self, call: &QueryCall<'_>, stmt: Statement) -> Result<QueryOutput, SqlError> {
        let name = rewrite::name(&stmt);
        let owner = match call.txn {
            Some(id) => {
                if !self.is_open(id) {
                    return Err(SqlError::NotFound(format!(
                        "transaction {id} is not open in the SQL engine"
                    )));
                }
                Owner::Txn(id)
            }
            None => self.db.gate.ticket(),
        };
        self.db.gate.acquire(owner).map_err(SqlError::Conflict)?;
        let savepoint = self.db.lock().undo.len();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.run_held(call, stmt, &name)
        }))
        .unwrap_or_else(|panic| {
            // Undo what the statement did, and keep the gate usable.
            let mut st = self.db.lock();
            let _ = self.db.rollback_to(&mut st, savepoint, call.txn.is_none());
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(SqlError::Internal(format!(
                "the SQL engine failed on this statement ({msg}); its changes were undone"
            )))
        });
        if call.txn.is_none() {
            self.db.gate.release(owner);
        }
        r
    }

    fn is_open(&self, txn: u64) -> bool {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&txn)
    }

    /// Forgets `txn`; whether it was open.
    fn close(&self, txn: u64) -> bool {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&txn)
    }

    fn run_held(
        &self,
        call: &QueryCall<'_>,
        stmt: Statement,
        name: &str,
    ) -> Result<QueryOutput, SqlError> {
        let mut st = self.db.lock();
        let mut s = Storage::new(&self.db, &mut st, Some(call.ctx), call.txn.is_some());
        let savepoint = s.savepoint();
        let r = (|| {
            if let Statement::Query(q) = &stmt
                && matches!(*q.body, SetExpr::SetOperation { .. })
            {
                if q.order_by.is_some() || q.limit.is_some() || q.offset.is_some() {
                    return Err(SqlError::Invalid(
                        "ORDER BY, LIMIT and OFFSET over a UNION are not supported; wrap it in a subquery".into(),
                    ));
                }
                let (labels, rows) = union(&mut s, q, &q.body)?;
                return output(&s, labels, rows, name);
            }
            let plan = plan(&s, &stmt)?;
            let payload = gluesql_core::executor::execute(&mut s, &plan);
            if let Some((limit, requested)) = s.limit_hit.get() {
                return Err(SqlError::MemoryLimit { limit, requested });
            }
            match payload.map_err(map_err)? {
                Payload::Select { labels, rows } => {
                    let rows = rows
                        .into_iter()
                        .map(|r| row_json(&s, r))
                        .collect::<Result<Vec<_>, _>>()?;
                    output(&s, labels, rows, name)
                }
                p => Ok(QueryOutput {
                    rows_affected: affected(&p),
                    statement: name.to_string(),
                    ..Default::default()
                }),
            }
        })();
        if r.is_err() && call.txn.is_some() {
            // The statement fails as a whole; the transaction goes on.
            let _ = self.db.rollback_to(&mut st, savepoint, false);
        }
        r
    }

    fn explain(&self, stmt: &Statement) -> Result<QueryOutput, SqlError> {
        let mut st = self.db.lock();
        let plan = plan(&Storage::new(&self.db, &mut st, None, true), stmt)?;
        let sizes = |t: &str| {
            let meta = st.cat.tables.get(t)?;
            Some((
                meta.pages.len(),
                st.rt.get(t).map_or(0, |rt| rt.index.len()),
            ))
        };
        let lines = explain::lines(stmt, &plan, &sizes);
        Ok(QueryOutput {
            columns: vec![Column {
                name: "plan".into(),
                data_type: "TEXT".into(),
            }],
            rows: lines.into_iter().map(|l| vec![Json::String(l)]).collect(),
            rows_affected: 0,
            statement: "EXPLAIN".into(),
        })
    }
}

/// Translates and plans one statement.
fn plan(s: &Storage<'_>, stmt: &Statement) -> Result<gluesql_core::plan::StatementPlan, SqlError> {
    let t = gluesql_core::translate::translate(stmt).map_err(map_err)?;
    s.plan(t.into()).map_err(map_err)
}

/// Runs the sides of a `UNION` separately; concatenates, dedups without `ALL`.
fn union(
    s: &mut Storage<'_>,
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
            if let Some((limit, requested)) = s.limit_hit.get() {
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
fn row_json(s: &Storage<'_>, row: Vec<gluesql_core::data::Value>) -> Result<Vec<Json>, SqlError> {
    let out: Vec<Json> = row
        .into_iter()
        .map(|v| Json::try_from(v).unwrap_or(Json::Null))
        .collect();
    let bytes: usize = out.iter().map(json_size).sum();
    s.charge(bytes).map_err(|_| {
        let (limit, requested) = s.limit_hit.get().unwrap_or((0, bytes as u64));
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

fn output(
    _s: &Storage<'_>,
    labels: Vec<String>,
    rows: Vec<Vec<Json>>,
    name: &str,
) -> Result<QueryOutput, SqlError> {
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
fn map_err(e: gluesql_core::error::Error) -> SqlError {
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

impl SqlEngine for GlueEngine {
    fn name(&self) -> &str {
        "gluesql-0.20 on rustydb buffer pool"
    }

    fn execute(&self, call: &QueryCall<'_>) -> Result<QueryOutput, SqlError> {
        let mut stmts = gluesql_core::parse_sql::parse(call.sql).map_err(map_err)?;
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
        match (kind, call.mode) {
            (Kind::TxnControl, _) => {
                return Err(SqlError::Invalid(
                    "BEGIN/COMMIT/ROLLBACK in SQL are not supported: use POST /api/v1/transactions, then .../commit or .../rollback".into(),
                ));
            }
            (Kind::Dml | Kind::Ddl, Mode::ReadOnly) => return Err(SqlError::ReadOnly),
            (Kind::Ddl, Mode::ReadWrite) => {
                return Err(SqlError::Forbidden(
                    "creating, altering or dropping tables needs the admin role".into(),
                ));
            }
            _ => {}
        }
        if let Statement::Explain { statement, .. } = &stmt {
            return self.explain(statement);
        }
        // Calls GlueSQL would panic on, and what it would build from
        // literals before any row is charged.
        budget::check(&stmt, call.ctx.stats().limit.map(|l| l as u64))?;
        self.run(call, stmt)
    }

    fn begin(&self, txn: u64, isolation: IsolationLevel) -> Result<IsolationLevel, SqlError> {
        // Whatever was asked, transactions run one at a time.
        let _ = isolation;
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(txn);
        Ok(IsolationLevel::Serializable)
    }

    fn commit(&self, txn: u64) -> Result<(), SqlError> {
        if !self.close(txn) {
            return Err(SqlError::NotFound(format!(
                "transaction {txn} is not open in the SQL engine"
            )));
        }
        let o = Owner::Txn(txn);
        if !self.db.gate.holds(o) {
            return Ok(()); // it ran nothing
        }
        let r = {
            let mut st = self.db.lock();
            self.db.commit(&mut st)
        };
        self.db.gate.release(o);
        r.map_err(SqlError::Internal)
    }

    fn rollback(&self, txn: u64) -> Result<(), SqlError> {
        self.close(txn);
        let o = Owner::Txn(txn);
        if !self.db.gate.holds(o) {
            return Ok(());
        }
        let r = {
            let mut st = self.db.lock();
            self.db.rollback_to(&mut st, 0, true)
        };
        self.db.gate.release(o);
        r.map_err(SqlError::Internal)
    }

    fn tables(&self) -> Result<Vec<TableInfo>, SqlError> {
        let st = self.db.lock();
        let ps = self.db.pool.page_size() as u64;
        Ok(st
            .cat
            .tables
            .iter()
            .map(|(name, meta)| TableInfo {
                schema: "public".into(),
                name: name.clone(),
                columns: meta
                    .schema
                    .column_defs
                    .iter()
                    .flatten()
                    .map(|c| ColumnDef {
                        name: c.name.clone(),
                        data_type: c.data_type.to_string(),
                        nullable: c.nullable,
                        primary_key: c.unique.is_some_and(|u| u.is_primary),
                    })
                    .collect(),
                row_count: st.rt.get(name).map_or(0, |rt| rt.index.len() as u64),
                size_bytes: meta.pages.len() as u64 * ps,
            })
            .collect())
    }

    fn cache_counters(&self) -> Option<(u64, u64)> {
        let s = self.db.pool.stats();
        Some((s.hits, s.misses))
    }
}
