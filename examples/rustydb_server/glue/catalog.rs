//! The catalog: table schemas, each table's heap pages, the free page list —
//! one CBOR document in a chain of pages starting at page 0.
//!
//! It is rewritten at each commit that changed anything, before the pool's
//! dirty pages are flushed (see `storage.rs`).

use std::collections::BTreeMap;

use gluesql_core::data::Schema;
use rustydb_memory::BufferPool;
use rustydb_memory::buffer_pool::PageId;
use serde::{Deserialize, Serialize};

use super::heap;

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
pub fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> StoreResult<T> {
    ciborium::from_reader(b).map_err(|e| format!("cannot decode a stored record: {e}"))
}

/// Reads the chain of pages starting at `first` into one byte string;
/// returns it and the pages visited.
pub fn read_chain(pool: &BufferPool, first: PageId) -> StoreResult<(Vec<u8>, Vec<PageId>)> {
    let mut out = Vec::new();
    let mut pages = Vec::new();
    let mut id = first;
    while id != heap::NO_PAGE {
        if pages.len() as u64 > pool.disk().num_pages() {
            return Err(format!("page chain from {first} loops"));
        }
        let g = pool.fetch_read(id).map_err(|e| format!("page {id}: {e}"))?;
        let (data, next) =
            heap::read_chain(&g).ok_or_else(|| format!("page {id} is not a chain page"))?;
        out.extend_from_slice(data);
        pages.push(id);
        id = next;
    }
    Ok((out, pages))
}

/// Writes `data` over the chain `pages` (growing it with `alloc` as needed,
/// giving surplus pages to `release`); returns the pages used, in order.
pub fn write_chain(
    pool: &BufferPool,
    data: &[u8],
    mut pages: Vec<PageId>,
    alloc: &mut dyn FnMut() -> StoreResult<PageId>,
    release: &mut dyn FnMut(PageId),
) -> StoreResult<Vec<PageId>> {
    let cap = heap::chain_capacity(pool.payload_size()).max(1);
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
        let mut g = pool
            .fetch_write(*id)
            .map_err(|e| format!("page {id}: {e}"))?;
        heap::write_chain(&mut g, chunk, next);
    }
    Ok(pages)
}

impl Catalog {
    /// Reads the catalog from page 0.
    pub fn load(pool: &BufferPool) -> StoreResult<Catalog> {
        let (bytes, chain) = read_chain(pool, ROOT)?;
        let mut c: Catalog = decode(&bytes).map_err(|e| format!("the catalog: {e}"))?;
        c.chain = chain;
        Ok(c)
    }

    /// Writes the catalog to its chain (page 0 first).
    pub fn save(&mut self, pool: &BufferPool) -> StoreResult<()> {
        // The chain's length depends on the encoding, which holds the free
        // list the chain draws from: take the pages first, encode after.
        let mut chain = std::mem::take(&mut self.chain);
        if chain.first() != Some(&ROOT) {
            chain.insert(0, ROOT);
        }
        let cap = heap::chain_capacity(pool.payload_size()).max(1);
        let mut bytes = encode(self)?;
        while chain.len() < bytes.len().div_ceil(cap).max(1) {
            let id = match self.free.pop() {
                Some(id) => id,
                None => pool
                    .new_page()
                    .map(|g| g.page_id())
                    .map_err(|e| format!("new page: {e}"))?,
            };
            chain.push(id);
            bytes = encode(self)?;
        }
        let mut spare = Vec::new();
        let used = write_chain(
            pool,
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
