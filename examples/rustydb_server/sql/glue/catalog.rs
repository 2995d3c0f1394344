//! The catalog: table schemas, each table's heap pages, the free page list —
//! one CBOR document in a chain of pages starting at page 0.
//!
//! It is rewritten (through the log, like every page) by each commit that
//! changed it, before the commit record (see `db.rs`).

use std::collections::BTreeMap;

use gluesql_core::data::Schema;
use rustydb_memory::buffer_pool::PageId;
use serde::{Deserialize, Serialize};

use crate::server::sql::glue::db::{Db, WriteCtx};
use crate::server::sql::glue::heap;
use crate::server::sql::glue::snapshot::Snap;

/// The catalog's first page.
pub const ROOT: PageId = 0;

/// A table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableMeta {
    /// GlueSQL's schema (columns, keys, defaults).
    pub schema: Schema,
    /// Heap pages, in scan order.
    pub pages: Vec<PageId>,
    /// The next generated row key (tables without a primary key).
    pub next_key: i64,
}

/// Everything the database knows about itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Catalog {
    /// Format version.
    pub version: u32,
    /// Tables by name.
    pub tables: BTreeMap<String, TableMeta>,
    /// Pages no table uses (reused before the file grows).
    pub free: Vec<PageId>,
    /// The pages the catalog itself occupies (page 0 first).
    pub chain: Vec<PageId>,
    /// Pages in the data file when the catalog was saved: any page from
    /// here on belonged to a transaction that did not commit.
    #[serde(default)]
    pub pages_end: u64,
}

/// An error of the storage layer, as text.
pub type StoreResult<T> = Result<T, String>;

/// Encodes `v` as CBOR.
pub fn encode<T: Serialize>(v: &T) -> StoreResult<Vec<u8>> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).map_err(|e| format!("cannot encode: {e}"))?;
    Ok(out)
}

/// Decodes CBOR.
///
/// With a 512-byte scratch on the stack: `ciborium::from_reader`'s own is
/// 4 KiB, zeroed on every call — most of a point query's decode cost. Owned
/// strings of any length decode into a `String` as before; only a borrowed
/// `&str` (chrono's and uuid's short textual forms) must fit the scratch.
pub fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> StoreResult<T> {
    let mut scratch = [0u8; 512];
    ciborium::de::from_reader_with_buffer(b, &mut scratch)
        .map_err(|e| format!("cannot decode a stored record: {e}"))
}

/// Reads the chain of pages starting at `first` (as of `snap`, if given)
/// into one byte string; returns it and the pages visited.
pub fn read_chain(
    db: &Db,
    snap: Option<&Snap>,
    first: PageId,
) -> StoreResult<(Vec<u8>, Vec<PageId>)> {
    let mut out = Vec::new();
    let mut pages = Vec::new();
    let mut id = first;
    while id != heap::NO_PAGE {
        if pages.len() as u64 > db.pool.disk().num_pages() {
            return Err(format!("page chain from {first} loops"));
        }
        let next = db.read_at(snap, id, |b| {
            heap::read_chain(b).map(|(data, next)| {
                out.extend_from_slice(data);
                next
            })
        })?;
        let next = next.ok_or_else(|| format!("page {id} is not a chain page"))?;
        pages.push(id);
        id = next;
    }
    Ok((out, pages))
}

/// Writes `data` over the chain `pages` (growing it with `alloc` as needed,
/// giving surplus pages to `release`); returns the pages used, in order.
pub fn write_chain(
    db: &Db,
    w: &mut WriteCtx,
    data: &[u8],
    mut pages: Vec<PageId>,
    alloc: &mut dyn FnMut() -> StoreResult<PageId>,
    release: &mut dyn FnMut(PageId),
) -> StoreResult<Vec<PageId>> {
    let cap = heap::chain_capacity(db.body_size()).max(1);
    let need = data.len().div_ceil(cap).max(1);
    while pages.len() < need {
        pages.push(alloc()?);
    }
    for extra in pages.split_off(need) {
        release(extra);
    }
    for (i, id) in pages.iter().enumerate() {
        let chunk = &data[(i * cap).min(data.len())..((i + 1) * cap).min(data.len())];
        let next = pages.get(i + 1).copied().unwrap_or(heap::NO_PAGE);
        db.modify(w, *id, |b| heap::write_chain(b, chunk, next))?;
    }
    Ok(pages)
}

impl Catalog {
    /// Reads the catalog from page 0.
    pub fn load(db: &Db) -> StoreResult<Catalog> {
        let (bytes, chain) = read_chain(db, None, ROOT)?;
        let mut c: Catalog = decode(&bytes).map_err(|e| format!("the catalog: {e}"))?;
        c.chain = chain;
        Ok(c)
    }

    /// Writes the catalog to its chain (page 0 first), through the log.
    pub fn save(&mut self, db: &Db, w: &mut WriteCtx) -> StoreResult<()> {
        // The chain's length depends on the encoding, which holds the free
        // list the chain draws from: take the pages first, encode after.
        let mut chain = std::mem::take(&mut self.chain);
        if chain.first() != Some(&ROOT) {
            chain.insert(0, ROOT);
        }
        let cap = heap::chain_capacity(db.body_size()).max(1);
        self.pages_end = db.pool.disk().num_pages();
        let mut bytes = encode(self)?;
        while chain.len() < bytes.len().div_ceil(cap).max(1) {
            let id = match self.free.pop() {
                Some(id) => id,
                None => db.new_page()?,
            };
            chain.push(id);
            self.pages_end = db.pool.disk().num_pages();
            bytes = encode(self)?;
        }
        let mut spare = Vec::new();
        let used = write_chain(
            db,
            w,
            &bytes,
            chain,
            &mut || Err("catalog chain too short".to_string()),
            &mut |p| spare.push(p),
        )?;
        self.free.extend(spare);
        self.chain = used;
        Ok(())
    }
}
