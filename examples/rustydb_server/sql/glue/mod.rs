//! The SQL engine: GlueSQL 0.20 (parser, planner, executor) over tables on
//! the crate's buffer pool, persisted in `<data-dir>/rustydb.pages` with a
//! write-ahead log in `<data-dir>/wal/` (`../storage/`).
//!
//! * `heap.rs` — page formats (slotted heap pages, page chains);
//! * `catalog.rs` — schemas and page lists, in a page chain from page 0;
//! * `db.rs` — the database: pool, log, recovery on open, commit, checkpoints;
//! * `rows.rs` — rows on heap pages, through the log;
//! * `storage.rs` — GlueSQL's `Store`/`StoreMut`/`Transaction` for the writer;
//! * `snapshot.rs` — GlueSQL's `Store` for readers, on a snapshot;
//! * `run.rs` — running one statement on either; results as JSON;
//! * `prepared.rs` — parsed and planned statements, cached by SQL text;
//! * `txn.rs` — the single-writer gate and the undo log;
//! * `rewrite.rs` — CROSS JOIN rewriting, statement kinds;
//! * `explain.rs` — `EXPLAIN` as text;
//! * `budget.rs` — up-front memory estimates from a statement's literals;
//! * this file — [`GlueEngine`], the server's [`SqlEngine`]: which path a
//!   statement takes, transactions.
//!
//! **Concurrency.** One writer at a time, many readers beside it, none
//! waiting for the other:
//!
//! * A statement that writes (and every statement of a transaction once it
//!   has written) runs as *the writer*: it takes the gate — a transaction
//!   keeps it until commit or rollback — and works on the current pages.
//!   Other writers wait for the gate (up to 10 s, then a 409).
//! * A statement that only reads — autocommit, or in a transaction that has
//!   not written — runs on a *snapshot*: the state after every commit whose
//!   commit record is durable, the writer's later changes undone on private
//!   copies of the pages it touched (`storage/versions.rs`). It takes no
//!   lock and waits for nobody.
//! * A transaction's snapshot is taken at its first read and kept to its
//!   end, so a read-only transaction sees one state throughout. When such a
//!   transaction then writes, it takes the gate; if anything committed after
//!   its snapshot, its reads are stale and the write is refused with a 409
//!   (roll back and retry) — so transactions stay **serializable**.
//!
//! **Durability.** A commit is acknowledged once its commit record is
//! durable in the log (`fdatasync`); commits that arrive while the log is
//! being synced share the next sync (group commit), and the writer gate is
//! released before that wait, so the next writer works meanwhile. Pages
//! reach the data file later (on eviction, in the background, at
//! checkpoints), always after the log that describes them. After a crash,
//! recovery redoes the log and undoes the transaction that had not
//! committed.

pub mod budget;
pub mod catalog;
pub mod db;
pub mod explain;
pub mod heap;
pub mod prepared;
pub mod rewrite;
pub mod rows;
pub mod run;
pub mod snapshot;
pub mod storage;
pub mod txn;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use gluesql_core::sqlparser::ast::Statement;
use rustydb_memory::{BufferPool, MemoryManager};
use serde_json::Value as Json;

use self::db::Db;
pub use self::db::DbOptions;
use self::prepared::{Prepared, Statements};
use self::rewrite::Kind;
use self::snapshot::{Snap, SnapStorage};
use self::storage::Storage;
use self::txn::Owner;
use crate::server::sql::engine::{
    Column, ColumnDef, IsolationLevel, Lane, LockStats, LogStats, Mode, QueryCall, QueryOutput,
    SqlEngine, SqlError, TableInfo,
};
use crate::server::sql::storage::failpoint;
use crate::server::sql::storage::lockfile::{DirLock, LockError};
use crate::server::sql::storage::record::Lsn;

/// How long a statement waits for a running transaction.
pub const GATE_TIMEOUT: Duration = Duration::from_secs(10);

/// A server transaction as the engine sees it: its snapshot once it read
/// without the gate.
type OpenTxn = Option<Arc<Snap>>;

/// GlueSQL on buffer-pool pages.
#[derive(Debug)]
pub struct GlueEngine {
    db: Arc<Db>,
    /// Server transactions begun and not yet finished.
    open: Mutex<HashMap<u64, OpenTxn>>,
    statements: Statements,
    checkpointer: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    _lock: Option<DirLock>,
}

impl GlueEngine {
    /// Opens (or creates) the database in `dir` with a pool of `frames`
    /// pages of `page_size` bytes, registered with `mm` (if given) so the
    /// pressure manager can shrink it. Locks the directory first.
    pub fn open(
        dir: &Path,
        frames: usize,
        page_size: usize,
        mm: Option<&'static MemoryManager>,
    ) -> Result<Self, String> {
        let lock = DirLock::acquire(dir).map_err(|e| e.to_string())?;
        let o = DbOptions {
            frames,
            page_size,
            mm,
            ..Default::default()
        };
        Self::open_with(dir, o, Some(lock))
    }

    /// Locks `dir` (a [`LockError::Busy`] when another server holds it).
    pub fn lock_dir(dir: &Path) -> Result<DirLock, LockError> {
        DirLock::acquire(dir)
    }

    /// Opens the database in `dir` with `o`, holding `lock` (taken by the
    /// caller) for as long as the engine lives; recovery runs here.
    pub fn open_with(dir: &Path, o: DbOptions, lock: Option<DirLock>) -> Result<Self, String> {
        let db = Arc::new(Db::open(dir, &o, GATE_TIMEOUT)?);
        let stop = Arc::new(AtomicBool::new(false));
        let (weak, stop2) = (Arc::downgrade(&db), stop.clone());
        let t = std::thread::Builder::new()
            .name("rustydb-checkpoint".into())
            .spawn(move || {
                while !stop2.load(Ordering::Acquire) {
                    std::thread::park_timeout(Duration::from_millis(200));
                    let Some(db) = weak.upgrade() else { break };
                    if stop2.load(Ordering::Acquire) {
                        break;
                    }
                    let _ = db.checkpoint_if_due();
                    db.versions.collect(db.wal.flushed());
                }
            })
            .map_err(|e| format!("cannot start the checkpointer: {e}"))?;
        Ok(Self {
            db,
            open: Mutex::new(HashMap::new()),
            statements: Statements::new(prepared::CAPACITY),
            checkpointer: Some((stop, t)),
            _lock: lock,
        })
    }

    /// The buffer pool.
    pub fn pool(&self) -> &Arc<BufferPool> {
        &self.db.pool
    }

    /// The database (log, recovery figures, checkpoints, versions).
    pub fn db(&self) -> &Db {
        &self.db
    }

    fn open_txns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, OpenTxn>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_open(&self, txn: u64) -> Result<(), SqlError> {
        if self.open_txns().contains_key(&txn) {
            Ok(())
        } else {
            Err(SqlError::NotFound(format!(
                "transaction {txn} is not open in the SQL engine"
            )))
        }
    }

    /// Waits until the log is durable up to `lsn`.
    fn wait_durable(&self, lsn: Option<Lsn>) -> Result<(), SqlError> {
        if let Some(lsn) = lsn {
            self.db.wal.flush_to(lsn).map_err(SqlError::Internal)?;
            failpoint::hit("commit-after-flush");
        }
        Ok(())
    }

    /// The snapshot a read of `txn` (autocommit: `None`) runs on, or `None`
    /// when it runs as the writer (its transaction holds the gate).
    fn read_snapshot(&self, txn: Option<u64>) -> Result<Option<Arc<Snap>>, SqlError> {
        let Some(t) = txn else {
            return Ok(Some(Arc::new(
                self.db.versions.snapshot(self.db.wal.flushed()),
            )));
        };
        if self.db.gate.holds(Owner::Txn(t)) {
            return Ok(None);
        }
        let mut open = self.open_txns();
        let Some(slot) = open.get_mut(&t) else {
            return Err(SqlError::NotFound(format!(
                "transaction {t} is not open in the SQL engine"
            )));
        };
        let snap =
            slot.get_or_insert_with(|| Arc::new(self.db.versions.snapshot(self.db.wal.flushed())));
        Ok(Some(snap.clone()))
    }

    /// Runs a read-only statement on `snap`.
    fn run_read(
        &self,
        call: &QueryCall<'_>,
        p: &Prepared,
        snap: &Snap,
    ) -> Result<QueryOutput, SqlError> {
        let mut s = SnapStorage::new(&self.db, snap, Some(call.ctx));
        let plan = p.plan_for(&s, snap.catalog.generation)?;
        guarded(|| run::exec(&mut s, &p.stmt, plan.as_deref(), &p.name))
    }

    /// Runs a statement as the writer: a transaction takes the gate with its
    /// first write and keeps it until commit/rollback; an autocommit
    /// statement holds it for itself and commits (not waiting for the log).
    fn run_write(
        &self,
        call: &QueryCall<'_>,
        p: &Prepared,
    ) -> Result<(QueryOutput, Option<Lsn>), SqlError> {
        let owner = match call.txn {
            Some(id) => {
                self.check_open(id)?;
                Owner::Txn(id)
            }
            None => self.db.gate.ticket(),
        };
        let had = self.db.gate.holds(owner);
        self.db.gate.acquire(owner).map_err(SqlError::Conflict)?;
        if let (Some(t), false) = (call.txn, had) {
            // A transaction that read on a snapshot writes now: nothing may
            // have committed since its snapshot (its reads would be stale).
            let snap = self.open_txns().get_mut(&t).and_then(Option::take);
            if let Some(snap) = snap
                && self.db.versions.newer_than(snap.first)
            {
                if let Some(slot) = self.open_txns().get_mut(&t) {
                    *slot = Some(snap);
                }
                self.db.gate.release(owner);
                return Err(SqlError::Conflict(format!(
                    "transaction {t} read data that another transaction has changed since; \
                     its writes cannot be serialized: roll it back and retry"
                )));
            }
        }
        let savepoint = self.db.lock().undo.len();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut st = self.db.lock();
            let mut s = Storage::new(&self.db, &mut st, Some(call.ctx), call.txn.is_some());
            let r = run::exec(&mut s, &p.stmt, None, &p.name);
            let lsn = s.commit_lsn.get();
            if r.is_err() && call.txn.is_some() {
                // The statement fails as a whole; the transaction goes on.
                let _ = self.db.rollback_to(&mut st, savepoint, false);
            }
            r.map(|o| (o, lsn))
        }))
        .unwrap_or_else(|panic| {
            // Undo what the statement did, and keep the gate usable.
            let mut st = self.db.lock();
            let _ = self.db.rollback_to(&mut st, savepoint, call.txn.is_none());
            Err(panicked(panic))
        });
        if call.txn.is_none() {
            self.db.gate.release(owner);
        }
        r
    }

    fn explain(&self, txn: Option<u64>, stmt: &Statement) -> Result<QueryOutput, SqlError> {
        let lines = match self.read_snapshot(txn)? {
            Some(snap) => {
                let s = SnapStorage::new(&self.db, &snap, None);
                let plan = run::plan(&s, stmt)?;
                let sizes = |t: &str| {
                    let t = snap.catalog.tables.get(t)?;
                    Some((t.pages.len(), t.index.len()))
                };
                explain::lines(stmt, &plan, &sizes)
            }
            None => {
                let mut st = self.db.lock();
                let plan = run::plan(&Storage::new(&self.db, &mut st, None, true), stmt)?;
                let sizes = |t: &str| {
                    let meta = st.cat.tables.get(t)?;
                    Some((
                        meta.pages.len(),
                        st.rt.get(t).map_or(0, |rt| rt.index.len()),
                    ))
                };
                explain::lines(stmt, &plan, &sizes)
            }
        };
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

    /// Commits or rolls back `txn` without waiting for the log.
    fn finish(&self, txn: u64, commit: bool) -> Result<Option<Lsn>, SqlError> {
        let known = self.open_txns().remove(&txn).is_some();
        if !known && commit {
            return Err(SqlError::NotFound(format!(
                "transaction {txn} is not open in the SQL engine"
            )));
        }
        let o = Owner::Txn(txn);
        if !self.db.gate.holds(o) {
            return Ok(None); // it wrote nothing; its snapshot is dropped
        }
        let r = {
            let mut st = self.db.lock();
            if commit {
                self.db.commit(&mut st)
            } else {
                self.db.rollback_to(&mut st, 0, true).map(|()| None)
            }
        };
        self.db.gate.release(o);
        r.map_err(SqlError::Internal)
    }
}

/// Runs `f`, a caught panic as an internal error.
fn guarded<T>(f: impl FnOnce() -> Result<T, SqlError>) -> Result<T, SqlError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| Err(panicked(p)))
}

fn panicked(panic: Box<dyn std::any::Any + Send>) -> SqlError {
    let msg = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    SqlError::Internal(format!(
        "the SQL engine failed on this statement ({msg}); its changes were undone"
    ))
}

impl Drop for GlueEngine {
    /// A clean close: the checkpointer stops, and a last checkpoint leaves
    /// nothing for recovery to do at the next open.
    fn drop(&mut self) {
        if let Some((stop, t)) = self.checkpointer.take() {
            stop.store(true, Ordering::Release);
            t.thread().unpark();
            let _ = t.join();
        }
        let _ = self.db.checkpoint();
    }
}

impl SqlEngine for GlueEngine {
    fn name(&self) -> &str {
        "gluesql-0.20 on rustydb buffer pool"
    }

    fn lane(&self, sql: &str, txn: Option<u64>) -> Lane {
        if txn.is_some_and(|t| self.db.gate.holds(Owner::Txn(t))) {
            return Lane::Owner;
        }
        match self.statements.peek(sql) {
            Some(p) if p.kind == Kind::Read && p.point() => Lane::Inline,
            Some(p) if p.kind == Kind::Read => Lane::Read,
            Some(_) => Lane::Write,
            None if prepared::looks_read_only(sql) => Lane::Read,
            None => Lane::Write,
        }
    }

    fn finish_lane(&self, txn: u64) -> Lane {
        if self.db.gate.holds(Owner::Txn(txn)) {
            Lane::Owner
        } else {
            Lane::Inline
        }
    }

    fn execute(&self, call: &QueryCall<'_>) -> Result<QueryOutput, SqlError> {
        let (out, lsn) = self.execute_nowait(call)?;
        self.wait_durable(lsn)?;
        Ok(out)
    }

    fn execute_nowait(&self, call: &QueryCall<'_>) -> Result<(QueryOutput, Option<Lsn>), SqlError> {
        let p = self.statements.get(call.sql)?;
        match (p.kind, call.mode) {
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
        if let Statement::Explain { statement, .. } = &p.stmt {
            return self.explain(call.txn, statement).map(|o| (o, None));
        }
        // Calls GlueSQL would panic on, and what it would build from
        // literals before any row is charged.
        p.within(call.ctx.stats().limit.map(|l| l as u64))?;
        if p.kind == Kind::Read
            && let Some(snap) = self.read_snapshot(call.txn)?
        {
            return self.run_read(call, &p, &snap).map(|o| (o, None));
        }
        self.run_write(call, &p)
    }

    fn begin(&self, txn: u64, isolation: IsolationLevel) -> Result<IsolationLevel, SqlError> {
        // Whatever was asked, transactions are serializable (see above).
        let _ = isolation;
        self.open_txns().insert(txn, None);
        Ok(IsolationLevel::Serializable)
    }

    fn commit(&self, txn: u64) -> Result<(), SqlError> {
        let lsn = self.finish(txn, true)?;
        self.wait_durable(lsn)
    }

    fn commit_nowait(&self, txn: u64) -> Result<Option<Lsn>, SqlError> {
        self.finish(txn, true)
    }

    fn rollback(&self, txn: u64) -> Result<(), SqlError> {
        self.finish(txn, false).map(|_| ())
    }

    fn durable(
        &self,
        lsn: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SqlError>> + Send + '_>>
    {
        Box::pin(async move {
            self.db.wal.durable(lsn).await.map_err(SqlError::Internal)?;
            failpoint::hit("commit-after-flush");
            Ok(())
        })
    }

    fn locks(&self) -> Option<LockStats> {
        let g = self.db.gate.stats();
        let v = self.db.versions.stats();
        Some(LockStats {
            held: u64::from(g.held),
            waiting: g.waiting,
            waits: g.waits,
            timeouts: g.timeouts,
            snapshots: v.readers as u64,
            versions: v.versions as u64,
            version_bytes: v.undo_bytes as u64,
        })
    }

    fn log(&self) -> Option<LogStats> {
        let c = self.db.wal.counters();
        let r = &self.db.recovered;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Some(LogStats {
            commits: get(&c.commits),
            syncs: get(&c.syncs),
            bytes: get(&c.bytes),
            page_images: get(&c.images),
            checkpoints: self.db.checkpoints(),
            end_lsn: self.db.wal.next_lsn(),
            recovery_redone: r.redone,
            recovery_rolled_back: r.rolled_back,
            recovery_torn_pages: r.torn_pages,
        })
    }

    fn check(&self) -> Result<String, String> {
        if let Some(e) = self.db.wal.failed() {
            return Err(format!(
                "the write-ahead log failed ({e}): writes are refused until a restart recovers"
            ));
        }
        let snap = self.db.versions.snapshot(self.db.wal.flushed());
        // The catalog's first page, through the pool (checksum verified).
        self.db
            .read_at(Some(&snap), catalog::ROOT, |_| ())
            .map_err(|e| format!("the catalog cannot be read: {e}"))?;
        Ok(format!(
            "catalog readable: {} table(s); log durable to {}",
            snap.catalog.tables.len(),
            self.db.wal.flushed()
        ))
    }

    fn tables(&self) -> Result<Vec<TableInfo>, SqlError> {
        let snap = self.db.versions.snapshot(self.db.wal.flushed());
        let ps = self.db.pool.page_size() as u64;
        Ok(snap
            .catalog
            .tables
            .iter()
            .map(|(name, t)| TableInfo {
                schema: "public".into(),
                name: name.clone(),
                columns: t
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
                row_count: t.index.len() as u64,
                size_bytes: t.pages.len() as u64 * ps,
            })
            .collect())
    }

    fn cache_counters(&self) -> Option<(u64, u64)> {
        let s = self.db.pool.stats();
        Some((s.hits, s.misses))
    }
}
