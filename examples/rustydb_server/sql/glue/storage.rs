//! GlueSQL's storage traits over the database ([`Db`]): [`Storage`] is one
//! statement's view of it — the writer's state, locked, and the statement's
//! memory context — and implements `Store`, `StoreMut` and `Transaction`
//! (the other traits by their defaults).
//!
//! Every row read from a page is charged to the statement's memory context,
//! so a runaway scan or join stops at the context's limit.

use std::alloc::Layout;
use std::cell::Cell;

use gluesql_core::data::{Key, Schema, Value};
use gluesql_core::error::{Error as GError, Result as GResult};
use gluesql_core::store::{
    AlterTable, CustomFunction, CustomFunctionMut, Index, IndexMut, Metadata, Planner, RowIter,
    Store, StoreMut, Transaction,
};
use rustydb_memory::MemoryContext;
use rustydb_memory::buffer_pool::PageId;

use crate::server::sql::glue::catalog::TableMeta;
use crate::server::sql::glue::db::{Db, State};
use crate::server::sql::glue::heap;
use crate::server::sql::glue::rows::{self, TableRt};
use crate::server::sql::glue::txn::Undo;
use crate::server::sql::storage::record::Lsn;

/// A storage error for GlueSQL.
pub fn gerr(m: impl Into<String>) -> GError {
    GError::StorageMsg(m.into())
}

/// A storage that charges what it reads to the statement's memory context.
pub trait Charged {
    /// Charges `bytes` of working memory.
    fn charge(&self, bytes: usize) -> GResult<()>;
    /// (limit, requested) once the context refused a charge.
    fn limit_hit(&self) -> Option<(u64, u64)>;
}

/// Charges `bytes` to `ctx`; a refusal is noted in `hit`.
pub fn charge(
    ctx: Option<&MemoryContext<'static>>,
    hit: &Cell<Option<(u64, u64)>>,
    bytes: usize,
) -> GResult<()> {
    let Some(ctx) = ctx else { return Ok(()) };
    let layout = Layout::from_size_align(bytes.max(1), 1).map_err(|e| gerr(e.to_string()))?;
    match ctx.try_alloc_layout(layout) {
        Ok(_) => Ok(()),
        Err(rustydb_memory::Error::LimitExceeded {
            requested, limit, ..
        }) => {
            hit.set(Some((limit as u64, requested as u64)));
            Err(gerr(format!(
                "the query's memory context reached its limit of {limit} bytes"
            )))
        }
        Err(e) => Err(gerr(e.to_string())),
    }
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
    /// The end of the commit record of the statement's own commit (the LSN
    /// to wait for before answering).
    pub commit_lsn: Cell<Option<Lsn>>,
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
            commit_lsn: Cell::new(None),
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
        let r = rows::record_row(self.db, None, rec).map_err(gerr)?;
        // Decoded values take about twice their encoding.
        self.charge(rec.len().saturating_mul(2))?;
        Ok(r)
    }
}

impl Charged for Storage<'_> {
    fn charge(&self, bytes: usize) -> GResult<()> {
        charge(self.ctx, &self.limit_hit, bytes)
    }
    fn limit_hit(&self) -> Option<(u64, u64)> {
        self.limit_hit.get()
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
        let Some((id, slot)) = self.st.rt.get(table_name).and_then(|rt| rt.index.get(key)) else {
            return Ok(None);
        };
        let rec = self
            .db
            .read_at(None, id, |b| heap::get(b, slot).map(<[u8]>::to_vec))
            .map_err(gerr)?;
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
            let rows = rows::page_records(self.s.db, id)
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
            self.st.rt.insert(name.clone(), TableRt::new(self.db));
            self.st.undo.push(Undo::Created { table: name });
        }
        self.st.cat_dirty = true;
        Ok(())
    }

    fn delete_schema(&mut self, table_name: &str) -> GResult<()> {
        if let Some(meta) = self.st.cat.tables.remove(table_name) {
            self.st.rt.remove(table_name);
            self.st.undo.push(Undo::Dropped {
                table: table_name.to_string(),
                meta,
            });
            self.st.cat_dirty = true;
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
            while taken.is_some_and(|rt| rt.index.get(&Key::I64(meta.next_key)).is_some()) {
                meta.next_key += 1;
            }
            let key = Key::I64(meta.next_key);
            meta.next_key += 1;
            rows::put_row(self.db, self.st, table_name, key.clone(), &row).map_err(gerr)?;
            self.st.undo.push(Undo::Inserted {
                table: table_name.to_string(),
                key,
            });
        }
        Ok(())
    }

    fn insert_data(&mut self, table_name: &str, rows: Vec<(Key, Vec<Value>)>) -> GResult<()> {
        for (key, row) in rows {
            let db = self.db;
            let old = match rows::replace_row(db, self.st, table_name, &key, &row).map_err(gerr)? {
                Some(old) => Some(old),
                None => {
                    let old = rows::remove_row(db, self.st, table_name, &key).map_err(gerr)?;
                    rows::put_row(db, self.st, table_name, key.clone(), &row).map_err(gerr)?;
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
            if let Some(old) = rows::remove_row(self.db, self.st, table_name, &key).map_err(gerr)? {
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
        let lsn = self.db.commit(self.st).map_err(gerr)?;
        self.commit_lsn.set(lsn);
        Ok(())
    }
}

impl AlterTable for Storage<'_> {}
impl Index for Storage<'_> {}
impl IndexMut for Storage<'_> {}
impl Metadata for Storage<'_> {}
impl CustomFunction for Storage<'_> {}
impl CustomFunctionMut for Storage<'_> {}
impl Planner for Storage<'_> {}
