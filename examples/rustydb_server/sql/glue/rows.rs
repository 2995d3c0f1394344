//! Rows on heap pages: storing, removing and replacing a row (through the
//! log), reading records back, rebuilding a table's index from its pages,
//! and undoing one change of the undo log.
//!
//! A row is stored as a record `[0] ++ CBOR(key, values)`; a record longer
//! than a heap page takes goes to a chain of pages and the heap keeps a stub
//! `[1] ++ first page ++ CBOR(key)`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use gluesql_core::data::{Key, Value};
use rustydb_memory::buffer_pool::PageId;

use crate::server::sql::glue::catalog::{self, Catalog, StoreResult, TableMeta, decode, encode};
use crate::server::sql::glue::db::{Db, State};
use crate::server::sql::glue::heap;
use crate::server::sql::glue::snapshot::Snap;
use crate::server::sql::glue::txn::Undo;
use crate::server::sql::storage::versions::Loc;

/// Record tag of a row stored whole.
pub const INLINE: u8 = 0;
/// Record tag of a stub pointing to a page chain.
pub const STUB: u8 = 1;

/// A table's index: row key → (page, slot), shared by the writer (who
/// changes it, each change a moment under the lock) and snapshots (who read
/// it). `id` names the table in the version store.
#[derive(Debug)]
pub struct TableIndex {
    /// Unique for the life of the process.
    pub id: u64,
    map: RwLock<HashMap<Key, Loc>>,
}

impl TableIndex {
    /// An empty index.
    pub fn new(id: u64) -> Self {
        Self {
            id,
            map: RwLock::new(HashMap::new()),
        }
    }

    /// Where `key` is now.
    pub fn get(&self, key: &Key) -> Option<Loc> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
    }

    fn set(&self, key: Key, loc: Loc) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, loc);
    }

    fn unset(&self, key: &Key) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Keys in the index (rows of the writer's running transaction included).
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The in-memory side of one table.
#[derive(Debug)]
pub struct TableRt {
    /// Row key → (page, slot).
    pub index: Arc<TableIndex>,
    /// Free bytes per heap page (the writer's).
    pub space: HashMap<PageId, usize>,
}

impl TableRt {
    /// An empty table's.
    pub fn new(db: &Db) -> Self {
        Self {
            index: Arc::new(TableIndex::new(db.new_table_id())),
            space: HashMap::new(),
        }
    }
}

/// Reads the records of a heap page (copies, the page unpinned after).
pub fn page_records(db: &Db, id: PageId) -> StoreResult<Vec<(usize, Vec<u8>)>> {
    db.read_at(None, id, |b| {
        heap::records(b)
            .into_iter()
            .map(|(s, r)| (s, r.to_vec()))
            .collect()
    })
}

/// The first chain page a stub record points to.
pub fn stub_page(rec: &[u8]) -> Option<PageId> {
    let b = rec.get(1..9)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// The key of a record (without decoding its values).
pub fn record_key(rec: &[u8]) -> StoreResult<Key> {
    match rec.first() {
        Some(&INLINE) => {
            let (k, _): (Key, serde::de::IgnoredAny) = decode(&rec[1..])?;
            Ok(k)
        }
        Some(&STUB) => decode(rec.get(9..).unwrap_or_default()),
        _ => Err("unknown record tag".into()),
    }
}

/// A whole row from its record (following the chain of a stub, as of
/// `snap` when given).
pub fn record_row(db: &Db, snap: Option<&Snap>, rec: &[u8]) -> StoreResult<(Key, Vec<Value>)> {
    match rec.first() {
        Some(&INLINE) => decode(&rec[1..]),
        Some(&STUB) => {
            let first = stub_page(rec).ok_or("short stub record")?;
            let (bytes, _) = catalog::read_chain(db, snap, first)?;
            decode(&bytes)
        }
        _ => Err("unknown record tag".into()),
    }
}

/// Index and free space of a table, from its pages; raises `next_key` past
/// every generated key found (it is saved only with the catalog).
pub fn rebuild(db: &Db, meta: &mut TableMeta) -> StoreResult<TableRt> {
    let mut rt = TableRt::new(db);
    for &id in &meta.pages {
        let (space, recs) = db.read_at(None, id, |b| {
            let recs: Vec<_> = heap::records(b)
                .into_iter()
                .map(|(s, r)| (s, record_key(r)))
                .collect();
            (heap::free_space(b), recs)
        })?;
        rt.space.insert(id, space);
        for (slot, key) in recs {
            let key = key?;
            if let Key::I64(k) = key {
                meta.next_key = meta.next_key.max(k.saturating_add(1));
            }
            rt.index.set(key, (id, slot));
        }
    }
    Ok(rt)
}

/// A table's heap pages and the chain pages of its long rows.
pub fn all_pages(db: &Db, meta: &TableMeta) -> Vec<PageId> {
    let mut out = meta.pages.clone();
    for &id in &meta.pages {
        for (_, rec) in page_records(db, id).unwrap_or_default() {
            if rec.first() == Some(&STUB)
                && let Some(first) = stub_page(&rec)
                && let Ok((_, chain)) = catalog::read_chain(db, None, first)
            {
                out.extend(chain);
            }
        }
    }
    out
}

fn alloc_page(db: &Db, cat: &mut Catalog) -> StoreResult<PageId> {
    match cat.free.pop() {
        Some(id) => Ok(id),
        None => db.new_page(),
    }
}

/// Stores a row (the key must not be in the table).
pub fn put_row(
    db: &Db,
    st: &mut State,
    table: &str,
    key: Key,
    values: &[Value],
) -> StoreResult<()> {
    let mut rec = vec![INLINE];
    rec.extend(encode(&(&key, values))?);
    let body = db.body_size();
    if rec.len() > heap::max_record(body) {
        let data = rec.split_off(1);
        let cat = &mut st.cat;
        let chain = catalog::write_chain(
            db,
            &mut st.w,
            &data,
            Vec::new(),
            &mut || alloc_page(db, cat),
            &mut |_| {},
        )?;
        st.cat_dirty = true;
        rec = vec![STUB];
        rec.extend(
            chain
                .first()
                .copied()
                .unwrap_or(heap::NO_PAGE)
                .to_le_bytes(),
        );
        rec.extend(encode(&key)?);
        if rec.len() > heap::max_record(body) {
            return Err("a primary key this long does not fit a page".into());
        }
    }
    let meta = st
        .cat
        .tables
        .get(table)
        .ok_or_else(|| format!("table {table} not found"))?;
    let rt = st
        .rt
        .get_mut(table)
        .ok_or_else(|| format!("table {table} has no index"))?;
    let want = heap::need(rec.len());
    // Newest pages first: they are the likeliest to have room.
    let candidate = meta
        .pages
        .iter()
        .rev()
        .find(|p| rt.space.get(p).is_some_and(|&s| s >= want))
        .copied();
    let mut placed = None;
    if let Some(id) = candidate {
        let r = db.modify(&mut st.w, id, |b| {
            heap::insert(b, &rec).map(|s| (s, heap::free_space(b)))
        })?;
        if let Some((slot, space)) = r {
            rt.space.insert(id, space);
            placed = Some((id, slot));
        }
    }
    let (id, slot) = match placed {
        Some(x) => x,
        None => {
            let id = alloc_page(db, &mut st.cat)?;
            let (slot, space) = db
                .modify(&mut st.w, id, |b| {
                    heap::init_heap(b);
                    heap::insert(b, &rec).map(|s| (s, heap::free_space(b)))
                })?
                .ok_or("a record does not fit an empty page")?;
            if let Some(rt) = st.rt.get_mut(table) {
                rt.space.insert(id, space);
            }
            if let Some(meta) = st.cat.tables.get_mut(table) {
                meta.pages.push(id);
            }
            st.cat_dirty = true;
            (id, slot)
        }
    };
    if let Some(rt) = st.rt.get(table) {
        rt.index.set(key, (id, slot));
    }
    Ok(())
}

/// Removes a row; returns its values if it was there.
pub fn remove_row(
    db: &Db,
    st: &mut State,
    table: &str,
    key: &Key,
) -> StoreResult<Option<Vec<Value>>> {
    let Some(rt) = st.rt.get(table) else {
        return Ok(None);
    };
    let Some((id, slot)) = rt.index.get(key) else {
        return Ok(None);
    };
    let rec = db.read_at(None, id, |b| heap::get(b, slot).map(<[u8]>::to_vec))?;
    let rec = rec.ok_or_else(|| format!("page {id} slot {slot} is empty"))?;
    let (_, old) = record_row(db, None, &rec)?;
    let chain = if rec.first() == Some(&STUB)
        && let Some(first) = stub_page(&rec)
    {
        catalog::read_chain(db, None, first)?.1
    } else {
        Vec::new()
    };
    // Readers of older snapshots find the row where it was.
    db.versions
        .note_key(&(rt.index.id, key.clone()), (id, slot));
    let space = db.modify(&mut st.w, id, |b| {
        heap::delete(b, slot);
        heap::free_space(b)
    })?;
    if let Some(rt) = st.rt.get_mut(table) {
        rt.index.unset(key);
        rt.space.insert(id, space);
    }
    if !chain.is_empty() {
        st.cat.free.extend(chain);
        st.cat_dirty = true;
    }
    Ok(Some(old))
}

/// Replaces a row in its slot when the new record is inline and no longer
/// than the old one (so updates keep the scan order); returns the old values,
/// or `None` when the row must move (or is not there).
pub fn replace_row(
    db: &Db,
    st: &mut State,
    table: &str,
    key: &Key,
    values: &[Value],
) -> StoreResult<Option<Vec<Value>>> {
    let Some((id, slot)) = st.rt.get(table).and_then(|rt| rt.index.get(key)) else {
        return Ok(None);
    };
    let mut rec = vec![INLINE];
    rec.extend(encode(&(key, values))?);
    let old = db.read_at(None, id, |b| heap::get(b, slot).map(<[u8]>::to_vec))?;
    let Some(old) = old else { return Ok(None) };
    if old.first() != Some(&INLINE) || old.len() < rec.len() {
        return Ok(None);
    }
    let (_, old_values): (Key, Vec<Value>) = decode(&old[1..])?;
    let r = db.modify(&mut st.w, id, |b| {
        heap::replace_in_place(b, slot, &rec).then(|| heap::free_space(b))
    })?;
    let Some(space) = r else { return Ok(None) };
    if let Some(rt) = st.rt.get_mut(table) {
        rt.space.insert(id, space);
    }
    Ok(Some(old_values))
}

/// Applies the inverse of one change.
pub fn undo_one(db: &Db, st: &mut State, u: Undo) -> StoreResult<()> {
    st.cat_dirty = true;
    match u {
        Undo::Inserted { table, key } => remove_row(db, st, &table, &key).map(|_| ()),
        Undo::Restore { table, key, old } => match replace_row(db, st, &table, &key, &old) {
            Ok(Some(_)) => Ok(()),
            _ => remove_row(db, st, &table, &key).and_then(|_| put_row(db, st, &table, key, &old)),
        },
        Undo::Created { table } => {
            if let Some(meta) = st.cat.tables.remove(&table) {
                let pages = all_pages(db, &meta);
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
        Undo::Dropped { table, mut meta } => rebuild(db, &mut meta).map(|rt| {
            st.rt.insert(table.clone(), rt);
            st.cat.tables.insert(table, meta);
        }),
    }
}
