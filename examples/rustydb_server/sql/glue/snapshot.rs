//! Reading without the writer: GlueSQL's `Store` over a snapshot of the
//! committed, durable state (`storage/versions.rs`).
//!
//! A snapshot carries the catalog as of then ([`ReadCatalog`]: per table
//! its schema, its heap pages and its index). Pages are read as of the
//! snapshot ([`Db::read_at`]); a row looked up by key is found through the
//! index as of the snapshot and checked in its slot. `StoreMut` is refused:
//! the engine sends only statements that do not write here.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;

use gluesql_core::data::{Key, Schema, Value};
use gluesql_core::error::Result as GResult;
use gluesql_core::store::{
    AlterTable, CustomFunction, CustomFunctionMut, Index, IndexMut, Metadata, Planner, RowIter,
    Store, StoreMut, Transaction,
};
use rustydb_memory::MemoryContext;
use rustydb_memory::buffer_pool::PageId;

use crate::server::sql::glue::db::{Db, State};
use crate::server::sql::glue::heap;
use crate::server::sql::glue::rows::{self, TableIndex};
use crate::server::sql::glue::storage::{Charged, charge, gerr};
use crate::server::sql::storage::versions;

/// A table as a snapshot sees it.
#[derive(Debug)]
pub struct ReadTable {
    /// Its schema.
    pub schema: Schema,
    /// Its heap pages, in scan order.
    pub pages: Vec<PageId>,
    /// Its index (current; the version store says where a key was before).
    pub index: Arc<TableIndex>,
}

/// The catalog as a snapshot sees it.
#[derive(Debug, Default)]
pub struct ReadCatalog {
    /// Tables by name.
    pub tables: BTreeMap<String, Arc<ReadTable>>,
    /// Bumped with every published change of a schema or of the table set
    /// (cached plans of another generation are planned again).
    pub generation: u64,
}

/// The version store of the database.
pub type Versions = versions::Versions<ReadCatalog, (u64, Key)>;
/// A reader's snapshot.
pub type Snap = versions::Snapshot<ReadCatalog, (u64, Key)>;

/// The catalog the writer's state describes, sharing every table that did
/// not change with `prev`.
pub fn publish(st: &State, prev: &ReadCatalog) -> ReadCatalog {
    let mut schema_changed = st.cat.tables.len() != prev.tables.len();
    let tables = st
        .cat
        .tables
        .iter()
        .filter_map(|(name, meta)| {
            let index = st.rt.get(name)?.index.clone();
            let same = prev.tables.get(name).filter(|t| {
                Arc::ptr_eq(&t.index, &index) && t.pages == meta.pages && t.schema == meta.schema
            });
            let t = match same {
                Some(t) => t.clone(),
                None => {
                    if prev
                        .tables
                        .get(name)
                        .is_none_or(|t| t.schema != meta.schema)
                    {
                        schema_changed = true;
                    }
                    Arc::new(ReadTable {
                        schema: meta.schema.clone(),
                        pages: meta.pages.clone(),
                        index,
                    })
                }
            };
            Some((name.clone(), t))
        })
        .collect();
    ReadCatalog {
        tables,
        generation: prev.generation + u64::from(schema_changed),
    }
}

/// One read-only statement's view of a snapshot.
pub struct SnapStorage<'a> {
    db: &'a Db,
    snap: &'a Snap,
    ctx: Option<&'a MemoryContext<'static>>,
    /// Set when the statement's context refused a charge: (limit, requested).
    pub limit_hit: Cell<Option<(u64, u64)>>,
}

impl<'a> SnapStorage<'a> {
    /// A view of `snap` for one statement charging `ctx`.
    pub fn new(db: &'a Db, snap: &'a Snap, ctx: Option<&'a MemoryContext<'static>>) -> Self {
        Self {
            db,
            snap,
            ctx,
            limit_hit: Cell::new(None),
        }
    }

    fn table(&self, name: &str) -> GResult<&ReadTable> {
        self.snap
            .catalog
            .tables
            .get(name)
            .map(|t| &**t)
            .ok_or_else(|| gerr(format!("table {name} not found")))
    }

    fn load(&self, rec: &[u8]) -> GResult<(Key, Vec<Value>)> {
        let r = rows::record_row(self.db, Some(self.snap), rec).map_err(gerr)?;
        self.charge(rec.len().saturating_mul(2))?;
        Ok(r)
    }
}

impl Charged for SnapStorage<'_> {
    fn charge(&self, bytes: usize) -> GResult<()> {
        charge(self.ctx, &self.limit_hit, bytes)
    }
    fn limit_hit(&self) -> Option<(u64, u64)> {
        self.limit_hit.get()
    }
}

impl Store for SnapStorage<'_> {
    fn fetch_schema(&self, table_name: &str) -> GResult<Option<Schema>> {
        Ok(self
            .snap
            .catalog
            .tables
            .get(table_name)
            .map(|t| t.schema.clone()))
    }

    fn fetch_all_schemas(&self) -> GResult<Vec<Schema>> {
        Ok(self
            .snap
            .catalog
            .tables
            .values()
            .map(|t| t.schema.clone())
            .collect())
    }

    fn fetch_data(&self, table_name: &str, key: &Key) -> GResult<Option<Vec<Value>>> {
        let Some(t) = self.snap.catalog.tables.get(table_name) else {
            return Ok(None);
        };
        // The index first, then the versions (see `versions.rs`).
        let now = t.index.get(key);
        let before = self
            .db
            .versions
            .newer_than(self.snap.first)
            .then(|| {
                self.db
                    .versions
                    .key_before(self.snap.first, &(t.index.id, key.clone()))
            })
            .flatten();
        let Some((id, slot)) = before.or(now) else {
            return Ok(None);
        };
        let rec = self
            .db
            .read_at(Some(self.snap), id, |b| {
                heap::get(b, slot).map(<[u8]>::to_vec)
            })
            .map_err(gerr)?;
        let Some(rec) = rec else { return Ok(None) };
        // A slot the writer gave a new key holds another row (or none) in
        // the snapshot. One decode serves the check and the row.
        if !matches!(rec.first(), Some(&rows::INLINE | &rows::STUB)) {
            return Ok(None);
        }
        let (k, v) = self.load(&rec)?;
        Ok((&k == key).then_some(v))
    }

    fn scan_data<'s>(&'s self, table_name: &str) -> GResult<RowIter<'s>> {
        let pages = self.table(table_name)?.pages.clone();
        let mut next = 0;
        let mut buf: std::vec::IntoIter<(Key, Vec<Value>)> = Vec::new().into_iter();
        let mut failed = false;
        Ok(Box::new(std::iter::from_fn(move || {
            loop {
                if let Some(r) = buf.next() {
                    return Some(Ok(r));
                }
                if failed || next >= pages.len() {
                    return None;
                }
                let id = pages[next];
                next += 1;
                let recs = self.db.read_at(Some(self.snap), id, |b| {
                    heap::records(b)
                        .into_iter()
                        .map(|(_, r)| r.to_vec())
                        .collect::<Vec<_>>()
                });
                let rows = recs.map_err(gerr).and_then(|recs| {
                    recs.iter()
                        .map(|r| self.load(r))
                        .collect::<GResult<Vec<_>>>()
                });
                match rows {
                    Ok(v) => buf = v.into_iter(),
                    Err(e) => {
                        failed = true;
                        return Some(Err(e));
                    }
                }
            }
        })))
    }
}

impl StoreMut for SnapStorage<'_> {}

impl Transaction for SnapStorage<'_> {
    fn begin(&mut self, _autocommit: bool) -> GResult<bool> {
        Ok(false)
    }
    fn rollback(&mut self) -> GResult<()> {
        Ok(())
    }
    fn commit(&mut self) -> GResult<()> {
        Ok(())
    }
}

impl AlterTable for SnapStorage<'_> {}
impl Index for SnapStorage<'_> {}
impl IndexMut for SnapStorage<'_> {}
impl Metadata for SnapStorage<'_> {}
impl CustomFunction for SnapStorage<'_> {}
impl CustomFunctionMut for SnapStorage<'_> {}
impl Planner for SnapStorage<'_> {}
