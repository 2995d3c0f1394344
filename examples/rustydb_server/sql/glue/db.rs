//! The database: the buffer pool over `rustydb.pages`, the write-ahead log,
//! and the writer's state — the catalog, per table an index from row key to
//! `(page, slot)` and the free bytes of each heap page (rebuilt from the
//! pages on open), the undo log of the open write transaction.
//!
//! Every page change goes through [`Db::modify`], which logs it
//! (`storage/logged.rs`); a commit appends a commit record and returns its
//! end, which the caller waits to be durable (group commit: the wait holds
//! no lock). Opening runs recovery (`storage/recovery.rs`) and a checkpoint;
//! a checkpoint writes every dirty page, records where recovery would start
//! and deletes the log before that.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use rustydb_memory::buffer_pool::{DiskManager, FileDisk, PageId};
use rustydb_memory::{BufferPool, MemoryManager};

use crate::server::sql::glue::catalog::{self, Catalog, StoreResult};
use crate::server::sql::glue::rows::{self, TableRt};
use crate::server::sql::glue::snapshot::{self, ReadCatalog, Snap, Versions};
use crate::server::sql::glue::txn::{Gate, Undo};
use crate::server::sql::storage::failpoint;
use crate::server::sql::storage::logged::{PageLogger, TxnLog, wal_barrier};
use crate::server::sql::storage::record::{Lsn, NO_LSN, PAGE_LSN, kind};
use crate::server::sql::storage::recovery::{self, Recovered};
use crate::server::sql::storage::wal::{self, Control, Wal};

/// The data file's name in the data directory.
pub const FILE: &str = "rustydb.pages";
/// The catalog format this server writes (2: pages carry an LSN, a log
/// exists; format 1 had neither).
pub const FORMAT: u32 = 2;

/// How to open a database.
#[derive(Clone)]
pub struct DbOptions {
    /// Buffer-pool frames.
    pub frames: usize,
    /// Page size.
    pub page_size: usize,
    /// Log segment size (a new log only; an existing one keeps its own).
    pub segment_bytes: u64,
    /// Time between checkpoints.
    pub checkpoint_every: Duration,
    /// Log bytes that start a checkpoint early.
    pub checkpoint_bytes: u64,
    /// The disk (default: the data file, torn by the `torn-page-write`
    /// failpoint when armed).
    pub disk: Option<Arc<dyn DiskManager>>,
    /// Registered with its pressure manager, when given.
    pub mm: Option<&'static MemoryManager>,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            frames: 1024,
            page_size: 4096,
            segment_bytes: 16 << 20,
            checkpoint_every: Duration::from_secs(300),
            checkpoint_bytes: 64 << 20,
            disk: None,
            mm: None,
        }
    }
}

impl std::fmt::Debug for DbOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbOptions")
            .field("frames", &self.frames)
            .field("page_size", &self.page_size)
            .field("segment_bytes", &self.segment_bytes)
            .finish_non_exhaustive()
    }
}

/// The writer's side of the open write transaction.
#[derive(Debug)]
pub struct WriteCtx {
    /// Logs page changes.
    pub logger: PageLogger,
    /// The open write transaction's place in the log.
    pub log: Option<TxnLog>,
    next_txn: Arc<AtomicU64>,
}

/// Everything behind the state lock (the writer's).
#[derive(Debug)]
pub struct State {
    /// The catalog (saved by commits that changed it).
    pub cat: Catalog,
    /// Indexes and free space, by table.
    pub rt: HashMap<String, TableRt>,
    /// Inverses of the changes since the transaction began.
    pub undo: Vec<Undo>,
    /// Whether the catalog changed since it was saved.
    pub cat_dirty: bool,
    /// Page writes.
    pub w: WriteCtx,
}

/// When the last checkpoint was.
#[derive(Debug)]
struct Checkpoints {
    redo: Lsn,
    at: Instant,
    count: u64,
}

/// The database: a buffer pool, its log, and what lives in them.
#[derive(Debug)]
pub struct Db {
    /// The pool (its disk is the data file).
    pub pool: Arc<BufferPool>,
    /// The log.
    pub wal: Arc<Wal>,
    /// One writer at a time.
    pub gate: Gate,
    state: Mutex<State>,
    wal_dir: PathBuf,
    page_size: usize,
    open_since: Arc<AtomicU64>,
    next_txn: Arc<AtomicU64>,
    ckpt: Mutex<Checkpoints>,
    /// What recovery did when the database opened.
    pub recovered: Recovered,
    /// Undo of recent writes, for readers' snapshots.
    pub versions: Arc<Versions>,
    table_ids: AtomicU64,
    /// Checkpoint triggers.
    pub checkpoint_every: Duration,
    /// Log bytes that start a checkpoint early.
    pub checkpoint_bytes: u64,
}

impl Db {
    /// Opens (or creates) the database in `dir`: recovery, then a checkpoint.
    pub fn open(dir: &Path, o: &DbOptions, gate_timeout: Duration) -> StoreResult<Db> {
        let wal_dir = dir.join(wal::DIR);
        let data = dir.join(FILE);
        let control = match wal::read_control(&wal_dir)? {
            Some(c) => {
                if c.page_size as usize != o.page_size {
                    return Err(format!(
                        "the data directory was created with pages of {} bytes; start with --page-size {}",
                        c.page_size, c.page_size
                    ));
                }
                c
            }
            None => {
                let old = o.disk.is_none()
                    && std::fs::metadata(&data).is_ok_and(|m| m.len() > o.page_size as u64);
                if old {
                    return Err(format!(
                        "{} was written by an older rustydb_server without a write-ahead log (format 1); \
                         this server reads format {FORMAT}: export the tables with that version and load them into a new data directory",
                        data.display()
                    ));
                }
                std::fs::create_dir_all(&wal_dir)
                    .map_err(|e| format!("cannot create {}: {e}", wal_dir.display()))?;
                let c = Control {
                    page_size: o.page_size as u32,
                    segment: o.segment_bytes.max(1 << 16),
                    checkpoint: NO_LSN,
                    redo: 0,
                    scan_start: 0,
                    next_txn: 1,
                };
                wal::write_control(&wal_dir, &c)?;
                c
            }
        };
        let disk: Arc<dyn DiskManager> = match &o.disk {
            Some(d) => d.clone(),
            None => {
                let f = FileDisk::open(&data, o.page_size)
                    .map_err(|e| format!("cannot open {}: {e}", data.display()))?;
                if failpoint::armed("torn-page-write") {
                    Arc::new(failpoint::TornDisk::new(f))
                } else {
                    Arc::new(f)
                }
            }
        };
        let slot = Arc::new(OnceLock::new());
        let pool = BufferPool::builder()
            .frames(o.frames)
            .page_size(o.page_size)
            .shared_disk(disk)
            .before_write_back(wal_barrier(slot.clone()))
            .build()
            .map_err(|e| format!("buffer pool: {e}"))?;
        let pool = Arc::new(pool);
        if let Some(mm) = o.mm {
            mm.register_buffer_pool(&pool);
        }
        let open_since = Arc::new(AtomicU64::new(NO_LSN));
        let (wal, recovered) = recovery::recover(&wal_dir, &control, &pool, &slot, &open_since)?;
        let next_txn = Arc::new(AtomicU64::new(recovered.next_txn));
        let db = Db {
            pool,
            gate: Gate::new(gate_timeout),
            state: Mutex::new(State {
                cat: Catalog::default(),
                rt: HashMap::new(),
                undo: Vec::new(),
                cat_dirty: false,
                w: WriteCtx {
                    logger: PageLogger::new(wal.clone(), open_since.clone()),
                    log: None,
                    next_txn: next_txn.clone(),
                },
            }),
            wal,
            wal_dir,
            page_size: o.page_size,
            open_since,
            next_txn,
            ckpt: Mutex::new(Checkpoints {
                redo: control.redo,
                at: Instant::now(),
                count: 0,
            }),
            recovered,
            versions: Arc::new(Versions::new(Arc::new(ReadCatalog::default()))),
            table_ids: AtomicU64::new(1),
            checkpoint_every: o.checkpoint_every,
            checkpoint_bytes: o.checkpoint_bytes,
        };
        {
            let mut g = db.lock();
            let st = &mut *g;
            if db.pool.disk().num_pages() == 0 {
                let id = db.new_page()?;
                if id != catalog::ROOT {
                    return Err(format!("the first page of a new file is {id}, not 0"));
                }
                st.cat.version = FORMAT;
                st.cat.chain = vec![catalog::ROOT];
                st.cat.save(&db, &mut st.w)?;
                db.end_txn(st, true, true)?;
            } else {
                st.cat = Catalog::load(&db)?;
                if st.cat.version != FORMAT {
                    return Err(format!(
                        "the catalog has format {}, this server reads {FORMAT}",
                        st.cat.version
                    ));
                }
                for (name, meta) in st.cat.tables.iter_mut() {
                    let rt = rows::rebuild(&db, meta).map_err(|e| format!("table {name}: {e}"))?;
                    st.rt.insert(name.clone(), rt);
                }
                // Pages past the end the last saved catalog knew were taken
                // by a transaction that did not commit: free them.
                let end = db.pool.disk().num_pages();
                db.versions
                    .set_latest(Arc::new(snapshot::publish(st, &ReadCatalog::default())));
                if st.cat.pages_end < end {
                    st.cat.free.extend(st.cat.pages_end..end);
                    st.cat.save(&db, &mut st.w)?;
                    db.end_txn(st, true, true)?;
                }
            }
        }
        db.checkpoint()?;
        Ok(db)
    }

    /// Locks the writer's state.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads page `id`'s body (the payload after its LSN): as it is now
    /// (`snap` = `None`: the writer's view), or as of a reader's snapshot —
    /// a copy with the later versions' changes undone, taken while the page
    /// is pinned.
    pub fn read_at<R>(
        &self,
        snap: Option<&Snap>,
        id: PageId,
        f: impl FnOnce(&[u8]) -> R,
    ) -> StoreResult<R> {
        let g = self
            .pool
            .fetch_read(id)
            .map_err(|e| format!("page {id}: {e}"))?;
        match snap {
            Some(s) if self.versions.newer_than(s.first) => {
                let mut copy = g.to_vec();
                self.versions.undo_page(s.first, id, &mut copy);
                drop(g);
                Ok(f(&copy[PAGE_LSN..]))
            }
            _ => Ok(f(&g[PAGE_LSN..])),
        }
    }

    /// A new id for a table's index.
    pub fn new_table_id(&self) -> u64 {
        self.table_ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Changes page `id`'s body through the log, for the open write
    /// transaction (begun here if none is).
    pub fn modify<R>(
        &self,
        w: &mut WriteCtx,
        id: PageId,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> StoreResult<R> {
        let next = &w.next_txn;
        let log = w.log.get_or_insert_with(|| {
            self.versions.begin();
            TxnLog::new(next.fetch_add(1, Ordering::Relaxed))
        });
        let versions = &self.versions;
        let (r, _) = w.logger.modify(
            &self.pool,
            log,
            id,
            NO_LSN,
            |p| f(&mut p[PAGE_LSN..]),
            |runs, before| versions.note_page(id, runs, before),
        )?;
        Ok(r)
    }

    /// A new page at the end of the data file (zeroed; the caller formats it
    /// through [`modify`](Self::modify)).
    pub fn new_page(&self) -> StoreResult<PageId> {
        self.pool
            .new_page()
            .map(|g| g.page_id())
            .map_err(|e| format!("new page: {e}"))
    }

    /// Bytes of a page body.
    pub fn body_size(&self) -> usize {
        self.pool.payload_size() - PAGE_LSN
    }

    /// Ends the open write transaction with a commit or an abort record
    /// (an abort's changes are undone already); its version ends there,
    /// publishing the catalog for readers when `publish`. Returns a commit's
    /// end (the LSN to wait for), or `None` when it changed nothing.
    fn end_txn(&self, st: &mut State, commit: bool, publish: bool) -> StoreResult<Option<Lsn>> {
        let Some(log) = st.w.log.take() else {
            return Ok(None);
        };
        let catalog = publish.then(|| Arc::new(snapshot::publish(st, &self.versions.latest())));
        let end = if log.last == NO_LSN {
            None
        } else {
            if commit {
                failpoint::hit("commit-before-log");
            }
            let mark = if commit { kind::COMMIT } else { kind::ABORT };
            let (_, end) = self.wal.append_mark(mark, log.id, log.last)?;
            Some(end)
        };
        self.open_since.store(NO_LSN, Ordering::SeqCst);
        self.versions
            .end(end.unwrap_or(0), catalog, self.wal.flushed());
        if let (false, Some(end)) = (commit, end) {
            // Nobody waits for an abort record; until it is durable,
            // readers keep undoing the aborted version.
            self.wal.request_flush(end);
        }
        if commit && end.is_some() {
            failpoint::hit("commit-after-log");
        }
        Ok(end.filter(|_| commit))
    }

    /// Commits the open write transaction: frees the pages of dropped
    /// tables, saves the catalog if it changed, appends the commit record.
    /// Returns the LSN the caller must wait to be durable before answering.
    pub fn commit(&self, st: &mut State) -> StoreResult<Option<Lsn>> {
        let dropped: Vec<_> = st
            .undo
            .iter()
            .filter_map(|u| match u {
                Undo::Dropped { meta, .. } => Some(meta.clone()),
                _ => None,
            })
            .collect();
        for meta in dropped {
            let pages = rows::all_pages(self, &meta);
            st.cat.free.extend(pages);
            st.cat_dirty = true;
        }
        let publish = st.cat_dirty;
        if st.cat_dirty {
            st.cat.save(self, &mut st.w)?;
            st.cat_dirty = false;
        }
        st.undo.clear();
        self.end_txn(st, true, publish)
    }

    /// Undoes the changes logged after `savepoint`, newest first; with
    /// `whole`, the transaction ends (catalog saved, abort record).
    pub fn rollback_to(&self, st: &mut State, savepoint: usize, whole: bool) -> StoreResult<()> {
        let mut first_err = None;
        while st.undo.len() > savepoint {
            let Some(u) = st.undo.pop() else { break };
            if let Err(e) = rows::undo_one(self, st, u) {
                first_err.get_or_insert(e);
            }
        }
        if whole {
            let publish = st.cat_dirty;
            if st.cat_dirty {
                st.cat.save(self, &mut st.w)?;
                st.cat_dirty = false;
            }
            self.end_txn(st, false, publish)?;
        }
        first_err.map_or(Ok(()), Err)
    }

    /// A checkpoint: every dirty page written and synced, a checkpoint
    /// record, the control file updated, the log before the redo point (or
    /// before the open write transaction's first record) deleted.
    pub fn checkpoint(&self) -> StoreResult<()> {
        let mut c = self.ckpt.lock().unwrap_or_else(|e| e.into_inner());
        let redo = self.wal.begin_checkpoint();
        self.pool
            .flush_all()
            .map_err(|e| format!("checkpoint: {e}"))?;
        let scan_start = self.open_since.load(Ordering::SeqCst).min(redo);
        let (lsn, end) = self.wal.append_checkpoint(redo, scan_start)?;
        self.wal.flush_to(end)?;
        wal::write_control(
            &self.wal_dir,
            &Control {
                page_size: self.page_size as u32,
                segment: self.wal.segment_size(),
                checkpoint: lsn,
                redo,
                scan_start,
                next_txn: self.next_txn.load(Ordering::Relaxed),
            },
        )?;
        self.wal.remove_before(scan_start)?;
        c.redo = redo;
        c.at = Instant::now();
        c.count += 1;
        Ok(())
    }

    /// Runs a checkpoint if the log grew past `checkpoint_bytes` since the
    /// last one or `checkpoint_every` passed with something logged.
    pub fn checkpoint_if_due(&self) -> StoreResult<bool> {
        let (redo, at) = {
            let c = self.ckpt.lock().unwrap_or_else(|e| e.into_inner());
            (c.redo, c.at)
        };
        let grown = self.wal.bytes_since(redo);
        let due =
            grown >= self.checkpoint_bytes || (grown > 0 && at.elapsed() >= self.checkpoint_every);
        if due {
            self.checkpoint()?;
        }
        Ok(due)
    }

    /// Checkpoints completed since open.
    pub fn checkpoints(&self) -> u64 {
        self.ckpt.lock().unwrap_or_else(|e| e.into_inner()).count
    }
}
