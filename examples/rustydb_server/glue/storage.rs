//! GlueSQL's storage traits over the buffer pool.
//!
//! [`Db`] owns the pool, the [`Gate`](super::txn::Gate) and the in-memory
//! state: the catalog, and per table an index from row key to `(page, slot)`
//! and the free bytes of each heap page (both rebuilt from the pages when the
//! database opens). [`Storage`] is one statement's view of it — the state,
//! locked, and the statement's memory context — and implements `Store`,
//! `StoreMut` and `Transaction` (the other traits by their defaults).
//!
//! A row is stored as a record `[0] ++ CBOR(key, values)`; a record longer
//! than a heap page takes goes to a chain of pages and the heap keeps a stub
//! `[1] ++ first page ++ CBOR(key)`. Every row read from a page is charged to
//! the statement's memory context, so a runaway scan or join stops at the
//! context's limit.

use std::alloc::Layout;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use gluesql_core::data::{Key, Schema, Value};
use gluesql_core::error::{Error as GError, Result as GResult};
use gluesql_core::store::{
    AlterTable, CustomFunction, CustomFunctionMut, Index, IndexMut, Metadata, Planner, RowIter,
    Store, StoreMut, Transaction,
};
use rustydb_memory::buffer_pool::PageId;
use rustydb_memory::{BufferPool, MemoryContext};

use super::catalog::{self, Catalog, StoreResult, TableMeta, decode, encode};
use super::heap;
use super::txn::{Gate, Undo};

const INLINE: u8 = 0;
const STUB: u8 = 1;

/// The in-memory side of one table.
#[derive(Debug, Default)]
pub struct TableRt {
    /// Row key → (page, slot).
    pub index: HashMap<Key, (PageId, usize)>,
    /// Free bytes per heap page.
    pub space: HashMap<PageId, usize>,
}

/// Everything behind the state lock.
#[derive(Debug, Default)]
pub struct State {
    /// The catalog (saved at commit).
    pub cat: Catalog,
    /// Indexes and free space, by table.
    pub rt: HashMap<String, TableRt>,
    /// Inverses of the changes since the last commit.
    pub undo: Vec<Undo>,
    /// Whether anything changed since the last save.
    pub dirty: bool,
}

/// The database: a buffer pool and what lives in it.
#[derive(Debug)]
pub struct Db {
    /// The pool (its disk is the data file).
    pub pool: Arc<BufferPool>,
    /// One owner at a time.
    pub gate: Gate,
    state: Mutex<State>,
}

fn gerr(m: impl Into<String>) -> GError {
    GError::StorageMsg(m.into())
}

impl Db {
    /// Opens the database on `pool`: formats an empty disk, else reads the
    /// catalog and rebuilds the indexes from the heap pages.
    pub fn open(pool: Arc<BufferPool>, gate_timeout: Duration) -> StoreResult<Db> {
        let mut st = State::default();
        if pool.disk().num_pages() == 0 {
            let id = pool
                .new_page()
                .map(|g| g.page_id())
                .map_err(|e| format!("new page: {e}"))?;
            if id != catalog::ROOT {
                return Err(format!("the first page of a new file is {id}, not 0"));
            }
            st.cat.version = 1;
            st.cat.chain = vec![catalog::ROOT];
            st.cat.save(&pool)?;
            pool.flush_all().map_err(|e| format!("flush: {e}"))?;
        } else {
            st.cat = Catalog::load(&pool)?;
            for (name, meta) in &st.cat.tables {
                let rt = rebuild(&pool, meta).map_err(|e| format!("table {name}: {e}"))?;
                st.rt.insert(name.clone(), rt);
            }
        }
        Ok(Db {
            pool,
            gate: Gate::new(gate_timeout),
            state: Mutex::new(st),
        })
    }

    /// Locks the state (for one statement or a catalog read).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the changes since the last commit permanent: frees the pages of
    /// dropped tables, saves the catalog, writes back dirty pages and syncs.
    pub fn commit(&self, st: &mut State) -> StoreResult<()> {
        for u in std::mem::take(&mut st.undo) {
            if let Undo::Dropped { meta, .. } = u {
                let pages = all_pages(&self.pool, &meta);
                st.cat.free.extend(pages);
                st.dirty = true;
            }
        }
        self.persist(st)
    }

    fn persist(&self, st: &mut State) -> StoreResult<()> {
        if st.dirty {
            st.cat.save(&self.pool)?;
            self.pool.flush_all().map_err(|e| format!("flush: {e}"))?;
            st.dirty = false;
        }
        Ok(())
    }

    /// Undoes the changes logged after `savepoint`, newest first; with
    /// `persist`, saves the result as a commit would.
    pub fn rollback_to(&self, st: &mut State, savepoint: usize, persist: bool) -> StoreResult<()> {
        let mut first_err = None;
        while st.undo.len() > savepoint {
            let Some(u) = st.undo.pop() else { break };
            let r = match u {
                Undo::Inserted { table, key } => {
                    remove_row(&self.pool, st, &table, &key).map(|_| ())
                }
                Undo::Restore { table, key, old } => {
                    match replace_row(&self.pool, st, &table, &key, &old) {
                        Ok(Some(_)) => Ok(()),
                        _ => remove_row(&self.pool, st, &table, &key)
                            .and_then(|_| put_row(&self.pool, st, &table, key, &old)),
                    }
                }
                Undo::Created { table } => {
                    if let Some(meta) = st.cat.tables.remove(&table) {
                        let pages = all_pages(&self.pool, &meta);
                        st.cat.free.extend(pages);
                    }
                    st.rt.remove(&table);
                    Ok(())
                }
                Undo::Schema { table, old } => {
                    if let Some(meta) = st.cat.tables.get_mut(&table) {
                        meta.schema = *old;
                    }
                    Ok(())
                }
                Undo::Dropped { table, meta } => rebuild(&self.pool, &meta).map(|rt| {
                    st.rt.insert(table.clone(), rt);
                    st.cat.tables.insert(table, meta);
                }),
            };
            st.dirty = true;
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        if persist {
            self.persist(st)?;
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// Reads the records of a heap page (copies, the page unpinned after).
fn page_records(pool: &BufferPool, id: PageId) -> StoreResult<Vec<(usize, Vec<u8>)>> {
    let g = pool.fetch_read(id).map_err(|e| format!("page {id}: {e}"))?;
    Ok(heap::records(&g)
        .into_iter()
        .map(|(s, r)| (s, r.to_vec()))
        .collect())
}

fn stub_page(rec: &[u8]) -> Option<PageId> {
    let b = rec.get(1..9)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// The key of a record (without decoding its values).
fn record_key(rec: &[u8]) -> StoreResult<Key> {
    match rec.first() {
        Some(&INLINE) => {
            let (k, _): (Key, serde::de::IgnoredAny) = decode(&rec[1..])?;
            Ok(k)
        }
        Some(&STUB) => decode(rec.get(9..).unwrap_or_default()),
        _ => Err("unknown record tag".into()),
    }
}

/// A whole row from its record (following the chain of a stub).
fn record_row(pool: &BufferPool, rec: &[u8]) -> StoreResult<(Key, Vec<Value>)> {
    match rec.first() {
        Some(&INLINE) => decode(&rec[1..]),
        Some(&STUB) => {
            let first = stub_page(rec).ok_or("short stub record")?;
            let (bytes, _) = catalog::read_chain(pool, first)?;
            decode(&bytes)
        }
        _ => Err("unknown record tag".into()),
    }
}

/// Index and free space of a table, from its pages.
fn rebuild(pool: &BufferPool, meta: &TableMeta) -> StoreResult<TableRt> {
    let mut rt = TableRt::default();
    for &id in &meta.pages {
        let g = pool.fetch_read(id).map_err(|e| format!("page {id}: {e}"))?;
        rt.space.insert(id, heap::free_space(&g));
        for (slot, rec) in heap::records(&g) {
            rt.index.insert(record_key(rec)?, (id, slot));
        }
    }
    Ok(rt)
}

/// A table's heap pages and the chain pages of its long rows.
fn all_pages(pool: &BufferPool, meta: &TableMeta) -> Vec<PageId> {
    let mut out = meta.pages.clone();
    for &id in &meta.pages {
        for (_, rec) in page_records(pool, id).unwrap_or_default() {
            if rec.first() == Some(&STUB)
                && let Some(first) = stub_page(&rec)
                && let Ok((_, chain)) = catalog::read_chain(pool, first)
            {
                out.extend(chain);
            }
        }
    }
    out
}

fn alloc_page(pool: &BufferPool, cat: &mut Catalog) -> StoreResult<PageId> {
    match cat.free.pop() {
        Some(id) => Ok(id),
        None => pool
            .new_page()
            .map(|g| g.page_id())
            .map_err(|e| format!("new page: {e}")),
    }
}

/// Stores a row (the key must not be in the table).
fn put_row(
    pool: &BufferPool,
    st: &mut State,
    table: &str,
    key: Key,
    values: &[Value],
) -> StoreResult<()> {
    let mut rec = vec![INLINE];
    rec.extend(encode(&(&key, values))?);
    let payload = pool.payload_size();
    if rec.len() > heap::max_record(payload) {
        let body = rec.split_off(1);
        let cat = &mut st.cat;
        let chain = catalog::write_chain(
            pool,
            &body,
            Vec::new(),
            &mut || alloc_page(pool, cat),
            &mut |_| {},
        )?;
        rec = vec![STUB];
        rec.extend(
            chain
                .first()
                .copied()
                .unwrap_or(heap::NO_PAGE)
                .to_le_bytes(),
        );
        rec.extend(encode(&key)?);
        if rec.len() > heap::max_record(payload) {
            return Err("a primary key this long does not fit a page".into());
        }
    }
    let meta = st
        .cat
        .tables
        .get_mut(table)
        .ok_or_else(|| format!("table {table} not found"))?;
    let rt = st.rt.entry(table.to_string()).or_default();
    let want = heap::need(rec.len());
    // Newest pages first: they are the likeliest to have room.
    let candidate = meta
        .pages
        .iter()
        .rev()
        .find(|p| rt.space.get(p).is_some_and(|&s| s >= want))
        .copied();
    let (id, slot) = match candidate.and_then(|id| {
        let mut g = pool.fetch_write(id).ok()?;
        let s = heap::insert(&mut g, &rec)?;
        rt.space.insert(id, heap::free_space(&g));
        Some((id, s))
    }) {
        Some(x) => x,
        None => {
            let id = match st.cat.free.pop() {
                Some(id) => id,
                None => pool
                    .new_page()
                    .map(|g| g.page_id())
                    .map_err(|e| format!("new page: {e}"))?,
            };
            let mut g = pool
                .fetch_write(id)
                .map_err(|e| format!("page {id}: {e}"))?;
            heap::init_heap(&mut g);
            let s = heap::insert(&mut g, &rec).ok_or("a record does not fit an empty page")?;
            rt.space.insert(id, heap::free_space(&g));
            if let Some(meta) = st.cat.tables.get_mut(table) {
                meta.pages.push(id);
            }
            (id, s)
        }
    };
    rt.index.insert(key, (id, slot));
    st.dirty = true;
    Ok(())
}

/// Removes a row; returns its values if it was there.
fn remove_row(
    pool: &BufferPool,
    st: &mut State,
    table: &str,
    key: &Key,
) -> StoreResult<Option<Vec<Value>>> {
    let Some(rt) = st.rt.get_mut(table) else {
        return Ok(None);
    };
    let Some((id, slot)) = rt.index.remove(key) else {
        return Ok(None);
    };
    let mut g = pool
        .fetch_write(id)
        .map_err(|e| format!("page {id}: {e}"))?;
    let rec = heap::get(&g, slot)
        .ok_or_else(|| format!("page {id} slot {slot} is empty"))?
        .to_vec();
    heap::delete(&mut g, slot);
    rt.space.insert(id, heap::free_space(&g));
    drop(g);
    let (_, old) = record_row(pool, &rec)?;
    if rec.first() == Some(&STUB)
        && let Some(first) = stub_page(&rec)
    {
        let (_, chain) = catalog::read_chain(pool, first)?;
        st.cat.free.extend(chain);
    }
    st.dirty = true;
    Ok(Some(old))
}

/// Replaces a row in its slot when the new record is inline and no longer
/// than the old one (so updates keep the scan order); returns the old values,
/// or `None` when the row must move (or is not there).
fn replace_row(
    pool: &BufferPool,
    st: &mut State,
    table: &str,
    key: &Key,
    values: &[Value],
) -> StoreResult<Option<Vec<Value>>> {
    let Some(rt) = st.rt.get_mut(table) else {
        return Ok(None);
    };
    let Some(&(id, slot)) = rt.index.get(key) else {
        return Ok(None);
    };
    let mut rec = vec![INLINE];
    rec.extend(encode(&(key, values))?);
    let mut g = pool
        .fetch_write(id)
        .map_err(|e| format!("page {id}: {e}"))?;
    let Some(old) = heap::get(&g, slot) else {
        return Ok(None);
    };
    if old.first() != Some(&INLINE) || old.len() < rec.len() {
        return Ok(None);
    }
    let (_, old_values): (Key, Vec<Value>) = decode(&old[1..])?;
    if !heap::replace_in_place(&mut g, slot, &rec) {
        return Ok(None);
    }
    rt.space.insert(id, heap::free_space(&g));
    st.dirty = true;
    Ok(Some(old_values))
}

/// One statement's view of the database.
pub struct Storage<'a> {
    db: &'a Db,
    st: &'a mut State,
    ctx: Option<&'a MemoryContext<'static>>,
    /// Set when the statement's context refused a charge: (limit, requested).
    pub limit_hit: Cell<Option<(u64, u64)>>,
    /// Inside a server transaction (its commit is the server's call).
    explicit: bool,
    savepoint: usize,
}

impl<'a> Storage<'a> {
    /// A view for one statement; `explicit` inside a server transaction.
    pub fn new(
        db: &'a Db,
        st: &'a mut State,
        ctx: Option<&'a MemoryContext<'static>>,
        explicit: bool,
    ) -> Self {
        let savepoint = st.undo.len();
        Self {
            db,
            st,
            ctx,
            limit_hit: Cell::new(None),
            explicit,
            savepoint,
        }
    }

    /// Charges `bytes` of working memory to the statement's context.
    pub fn charge(&self, bytes: usize) -> GResult<()> {
        let Some(ctx) = self.ctx else { return Ok(()) };
        let layout = Layout::from_size_align(bytes.max(1), 1).map_err(|e| gerr(e.to_string()))?;
        match ctx.try_alloc_layout(layout) {
            Ok(_) => Ok(()),
            Err(rustydb_memory::Error::LimitExceeded {
                requested, limit, ..
            }) => {
                self.limit_hit.set(Some((limit as u64, requested as u64)));
                Err(gerr(format!(
                    "the query's memory context reached its limit of {limit} bytes"
                )))
            }
            Err(e) => Err(gerr(e.to_string())),
        }
    }

    /// The undo log's length when the statement began.
    pub fn savepoint(&self) -> usize {
        self.savepoint
    }

    fn table_meta(&self, table: &str) -> GResult<&TableMeta> {
        self.st
            .cat
            .tables
            .get(table)
            .ok_or_else(|| gerr(format!("table {table} not found")))
    }

    fn load(&self, rec: &[u8]) -> GResult<(Key, Vec<Value>)> {
        let r = record_row(&self.db.pool, rec).map_err(gerr)?;
        // Decoded values take about twice their encoding.
        self.charge(rec.len().saturating_mul(2))?;
        Ok(r)
    }
}

impl Store for Storage<'_> {
    fn fetch_schema(&self, table_name: &str) -> GResult<Option<Schema>> {
        Ok(self.st.cat.tables.get(table_name).map(|m| m.schema.clone()))
    }

    fn fetch_all_schemas(&self) -> GResult<Vec<Schema>> {
        Ok(self
            .st
            .cat
            .tables
            .values()
            .map(|m| m.schema.clone())
            .collect())
    }

    fn fetch_data(&self, table_name: &str, key: &Key) -> GResult<Option<Vec<Value>>> {
        let Some(&(id, slot)) = self.st.rt.get(table_name).and_then(|rt| rt.index.get(key)) else {
            return Ok(None);
        };
        let rec = {
            let g = self
                .db
                .pool
                .fetch_read(id)
                .map_err(|e| gerr(format!("page {id}: {e}")))?;
            heap::get(&g, slot).map(<[u8]>::to_vec)
        };
        match rec {
            Some(rec) => self.load(&rec).map(|(_, v)| Some(v)),
            None => Ok(None),
        }
    }

    fn scan_data<'s>(&'s self, table_name: &str) -> GResult<RowIter<'s>> {
        let pages = self.table_meta(table_name)?.pages.clone();
        Ok(Box::new(Scan {
            s: self,
            pages,
            next: 0,
            buf: Vec::new().into_iter(),
            failed: false,
        }))
    }
}

/// A lazy scan: one page's rows at a time.
struct Scan<'s> {
    s: &'s Storage<'s>,
    pages: Vec<PageId>,
    next: usize,
    buf: std::vec::IntoIter<(Key, Vec<Value>)>,
    failed: bool,
}

impl Iterator for Scan<'_> {
    type Item = GResult<(Key, Vec<Value>)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.buf.next() {
                return Some(Ok(r));
            }
            if self.failed || self.next >= self.pages.len() {
                return None;
            }
            let id = self.pages[self.next];
            self.next += 1;
            let rows = page_records(&self.s.db.pool, id)
                .map_err(gerr)
                .and_then(|recs| {
                    recs.iter()
                        .map(|(_, r)| self.s.load(r))
                        .collect::<GResult<Vec<_>>>()
                });
            match rows {
                Ok(v) => self.buf = v.into_iter(),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl StoreMut for Storage<'_> {
    fn insert_schema(&mut self, schema: &Schema) -> GResult<()> {
        let name = schema.table_name.clone();
        if let Some(meta) = self.st.cat.tables.get_mut(&name) {
            let old = std::mem::replace(&mut meta.schema, schema.clone());
            self.st.undo.push(Undo::Schema {
                table: name,
                old: Box::new(old),
            });
        } else {
            self.st.cat.tables.insert(
                name.clone(),
                TableMeta {
                    schema: schema.clone(),
                    pages: Vec::new(),
                    next_key: 0,
                },
            );
            self.st.rt.insert(name.clone(), TableRt::default());
            self.st.undo.push(Undo::Created { table: name });
        }
        self.st.dirty = true;
        Ok(())
    }

    fn delete_schema(&mut self, table_name: &str) -> GResult<()> {
        if let Some(meta) = self.st.cat.tables.remove(table_name) {
            self.st.rt.remove(table_name);
            self.st.undo.push(Undo::Dropped {
                table: table_name.to_string(),
                meta,
            });
            self.st.dirty = true;
        }
        Ok(())
    }

    fn append_data(&mut self, table_name: &str, rows: Vec<Vec<Value>>) -> GResult<()> {
        for row in rows {
            let meta = self
                .st
                .cat
                .tables
                .get_mut(table_name)
                .ok_or_else(|| gerr(format!("table {table_name} not found")))?;
            // Rows moved in by ALTER TABLE … RENAME keep their keys: skip them.
            let taken = self.st.rt.get(table_name);
            while taken.is_some_and(|rt| rt.index.contains_key(&Key::I64(meta.next_key))) {
                meta.next_key += 1;
            }
            let key = Key::I64(meta.next_key);
            meta.next_key += 1;
            put_row(&self.db.pool, self.st, table_name, key.clone(), &row).map_err(gerr)?;
            self.st.undo.push(Undo::Inserted {
                table: table_name.to_string(),
                key,
            });
        }
        Ok(())
    }

    fn insert_data(&mut self, table_name: &str, rows: Vec<(Key, Vec<Value>)>) -> GResult<()> {
        for (key, row) in rows {
            let pool = &self.db.pool;
            let old = match replace_row(pool, self.st, table_name, &key, &row).map_err(gerr)? {
                Some(old) => Some(old),
                None => {
                    let old = remove_row(pool, self.st, table_name, &key).map_err(gerr)?;
                    put_row(pool, self.st, table_name, key.clone(), &row).map_err(gerr)?;
                    old
                }
            };
            let table = table_name.to_string();
            self.st.undo.push(match old {
                Some(old) => Undo::Restore { table, key, old },
                None => Undo::Inserted { table, key },
            });
        }
        Ok(())
    }

    fn delete_data(&mut self, table_name: &str, keys: Vec<Key>) -> GResult<()> {
        for key in keys {
            if let Some(old) = remove_row(&self.db.pool, self.st, table_name, &key).map_err(gerr)? {
                self.st.undo.push(Undo::Restore {
                    table: table_name.to_string(),
                    key,
                    old,
                });
            }
        }
        Ok(())
    }
}

impl Transaction for Storage<'_> {
    /// `autocommit` (one statement): inside a server transaction the
    /// statement joins it (`Ok(false)`: the server commits); otherwise the
    /// statement is its own transaction. `BEGIN` in SQL is refused: server
    /// transactions are begun over REST or GraphQL.
    fn begin(&mut self, autocommit: bool) -> GResult<bool> {
        if !autocommit {
            return Err(gerr(
                "BEGIN in SQL is not supported: begin a transaction with POST /api/v1/transactions and pass its id",
            ));
        }
        self.savepoint = self.st.undo.len();
        Ok(!self.explicit)
    }

    fn rollback(&mut self) -> GResult<()> {
        self.db
            .rollback_to(self.st, self.savepoint, !self.explicit)
            .map_err(gerr)
    }

    fn commit(&mut self) -> GResult<()> {
        if self.explicit {
            return Ok(());
        }
        self.db.commit(self.st).map_err(gerr)
    }
}

impl AlterTable for Storage<'_> {}
impl Index for Storage<'_> {}
impl IndexMut for Storage<'_> {}
impl Metadata for Storage<'_> {}
impl CustomFunction for Storage<'_> {}
impl CustomFunctionMut for Storage<'_> {}
impl Planner for Storage<'_> {}
