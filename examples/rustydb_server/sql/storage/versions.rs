//! Snapshots for readers: readers never wait for the writer. The writer
//! changes pages in place; what it changed is kept here, per write
//! transaction (a *version*), until no reader can need it:
//!
//! * per page, the undo runs of each change (the bytes before it, as logged);
//! * per row key whose location the writer changed, the location before
//!   (first change wins);
//! * the catalog before the transaction (`C`, shared, immutable).
//!
//! A reader's snapshot is the state after every version that ended (commit
//! or abort) with its end record durable; it undoes, on its private copy of
//! each page it reads, the changes of every later version — the running one
//! included — newest first (Oracle's consistent reads from undo, in memory).
//! The copy and the undo runs are read while the page is pinned, and the
//! writer records a change's undo before it unlatches the page, so the two
//! always match. A version is dropped once it is durable and no registered
//! reader's snapshot precedes it.
//!
//! Row lookups by key: the writer records a key's old location before it
//! changes the index; a reader reads the index first, then asks here whether
//! a version after its snapshot moved the key — and checks the key in the
//! slot it lands on (a key the writer inserted points at a slot that, in the
//! snapshot's image of the page, is empty or holds another key).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustydb_memory::buffer_pool::PageId;

use crate::server::sql::storage::record::{Lsn, Run};

/// A row's place: (page, slot).
pub type Loc = (PageId, usize);

/// One undo run of one change: `len` bytes at `off` were `bytes` (zeros
/// when `None`).
#[derive(Debug, Clone)]
struct UndoRun {
    off: u32,
    len: u32,
    bytes: Option<Box<[u8]>>,
}

#[derive(Debug)]
struct Version<K> {
    seq: u64,
    /// End of the commit or abort record; `None` while the writer works.
    end: Option<Lsn>,
    /// Per page, its changes (each a list of runs), oldest first.
    pages: HashMap<PageId, Vec<Vec<UndoRun>>>,
    /// Per key, its location before this version moved or deleted it.
    keys: HashMap<K, Loc>,
    bytes: usize,
}

#[derive(Debug)]
struct Chain<C, K> {
    list: VecDeque<(Arc<C>, Version<K>)>,
    /// The catalog after every ended version.
    latest: Arc<C>,
    /// Registered readers: first version they must undo → count.
    readers: BTreeMap<u64, usize>,
}

/// Counters of the version store.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VersionStats {
    /// Versions kept now (the writer's included).
    pub versions: usize,
    /// Bytes of undo kept.
    pub undo_bytes: usize,
    /// Readers holding a snapshot.
    pub readers: usize,
}

/// The version store; see the module documentation. `C` is the catalog a
/// snapshot sees, `K` a row key (with its table).
#[derive(Debug)]
pub struct Versions<C, K> {
    inner: Mutex<Chain<C, K>>,
    /// The sequence number of the next version.
    next_seq: AtomicU64,
}

/// A reader's registered snapshot; unregistered on drop.
#[derive(Debug)]
pub struct Snapshot<C, K: Eq + Hash> {
    /// The first version this snapshot undoes.
    pub first: u64,
    /// The catalog as of the snapshot.
    pub catalog: Arc<C>,
    owner: Arc<Versions<C, K>>,
}

impl<C, K: Eq + Hash> Drop for Snapshot<C, K> {
    fn drop(&mut self) {
        let mut g = self.owner.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = g.readers.get_mut(&self.first) {
            *n -= 1;
            if *n == 0 {
                g.readers.remove(&self.first);
            }
        }
    }
}

impl<C, K: Eq + Hash + Clone> Versions<C, K> {
    /// A store whose current catalog is `latest`.
    pub fn new(latest: Arc<C>) -> Self {
        Self {
            inner: Mutex::new(Chain {
                list: VecDeque::new(),
                latest,
                readers: BTreeMap::new(),
            }),
            next_seq: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Chain<C, K>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A snapshot of what is committed and durable up to `durable`.
    pub fn snapshot(self: &Arc<Self>, durable: Lsn) -> Snapshot<C, K> {
        let mut g = self.lock();
        gc(&mut g, durable);
        let pending = g
            .list
            .iter()
            .find(|(_, v)| v.end.is_none_or(|e| e > durable));
        let (first, catalog) = match pending {
            Some((cat, v)) => (v.seq, cat.clone()),
            None => (self.next_seq.load(Ordering::Acquire), g.latest.clone()),
        };
        *g.readers.entry(first).or_insert(0) += 1;
        Snapshot {
            first,
            catalog,
            owner: self.clone(),
        }
    }

    /// Whether any version from `first` on exists (a reader with that
    /// snapshot may have something to undo). One atomic load.
    #[inline]
    pub fn newer_than(&self, first: u64) -> bool {
        self.next_seq.load(Ordering::Acquire) > first
    }

    /// The writer starts a version.
    pub fn begin(&self) {
        let mut g = self.lock();
        let seq = self.next_seq.load(Ordering::Relaxed);
        let cat = g.latest.clone();
        g.list.push_back((
            cat,
            Version {
                seq,
                end: None,
                pages: HashMap::new(),
                keys: HashMap::new(),
                bytes: 0,
            },
        ));
        // Release: a reader that sees the new count also sees the version.
        self.next_seq.store(seq + 1, Ordering::Release);
    }

    /// The writer changed `page` (`runs` of the payload `before`); called
    /// with the page still latched.
    pub fn note_page(&self, page: PageId, runs: &[Run], before: &[u8]) {
        let undo: Vec<UndoRun> = runs
            .iter()
            .map(|r| UndoRun {
                off: r.off,
                len: r.len,
                bytes: (!r.was_zero)
                    .then(|| before[r.off as usize..(r.off + r.len) as usize].into()),
            })
            .collect();
        let n: usize = undo
            .iter()
            .map(|u| 16 + u.bytes.as_ref().map_or(0, |b| b.len()))
            .sum();
        let mut g = self.lock();
        if let Some((_, v)) = g.list.back_mut().filter(|(_, v)| v.end.is_none()) {
            v.pages.entry(page).or_default().push(undo);
            v.bytes += n;
        }
    }

    /// The writer is about to move or delete `key`, now at `before`.
    pub fn note_key(&self, key: &K, before: Loc) {
        let mut g = self.lock();
        if let Some((_, v)) = g.list.back_mut().filter(|(_, v)| v.end.is_none())
            && !v.keys.contains_key(key)
        {
            v.keys.insert(key.clone(), before);
            v.bytes += 48;
        }
    }

    /// The writer's version ended at `end` (its commit or abort record);
    /// `catalog` is the catalog after it, if it changed.
    pub fn end(&self, end: Lsn, catalog: Option<Arc<C>>, durable: Lsn) {
        let mut g = self.lock();
        if let Some((_, v)) = g.list.back_mut().filter(|(_, v)| v.end.is_none()) {
            v.end = Some(end);
        }
        if let Some(c) = catalog {
            g.latest = c;
        }
        gc(&mut g, durable);
    }

    /// Undoes on `payload` (a copy of `page`'s payload, taken while pinned
    /// and still pinned) every change of the versions from `first` on,
    /// newest first; whether anything was undone.
    pub fn undo_page(&self, first: u64, page: PageId, payload: &mut [u8]) -> bool {
        let g = self.lock();
        let mut any = false;
        for (_, v) in g.list.iter().rev() {
            if v.seq < first {
                break;
            }
            let Some(changes) = v.pages.get(&page) else {
                continue;
            };
            for change in changes.iter().rev() {
                for u in change.iter().rev() {
                    let (off, len) = (u.off as usize, u.len as usize);
                    if let Some(dst) = payload.get_mut(off..off + len) {
                        match &u.bytes {
                            Some(b) => dst.copy_from_slice(b),
                            None => dst.fill(0),
                        }
                        any = true;
                    }
                }
            }
        }
        any
    }

    /// Where `key` was in the snapshot starting at `first`, if a version
    /// from `first` on moved or deleted it.
    pub fn key_before(&self, first: u64, key: &K) -> Option<Loc> {
        let g = self.lock();
        g.list
            .iter()
            .filter(|(_, v)| v.seq >= first)
            .find_map(|(_, v)| v.keys.get(key).copied())
    }

    /// The catalog after every ended version.
    pub fn latest(&self) -> Arc<C> {
        self.lock().latest.clone()
    }

    /// Replaces the current catalog outside any version (when the database
    /// opens).
    pub fn set_latest(&self, c: Arc<C>) {
        self.lock().latest = c;
    }

    /// Drops what no reader needs any more.
    pub fn collect(&self, durable: Lsn) {
        gc(&mut self.lock(), durable);
    }

    /// Counters.
    pub fn stats(&self) -> VersionStats {
        let g = self.lock();
        VersionStats {
            versions: g.list.len(),
            undo_bytes: g.list.iter().map(|(_, v)| v.bytes).sum(),
            readers: g.readers.values().sum(),
        }
    }
}

fn gc<C, K>(g: &mut Chain<C, K>, durable: Lsn) {
    let oldest_reader = g.readers.keys().next().copied().unwrap_or(u64::MAX);
    while let Some((_, v)) = g.list.front() {
        let visible = v.end.is_some_and(|e| e <= durable);
        if !visible || oldest_reader <= v.seq {
            break;
        }
        g.list.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(off: u32, len: u32, was_zero: bool) -> Run {
        Run { off, len, was_zero }
    }

    #[test]
    fn readers_see_the_durable_state_until_they_finish() {
        let v: Arc<Versions<&'static str, u32>> = Arc::new(Versions::new(Arc::new("cat0")));
        let mut page = vec![1u8; 32];
        let before_all = page.clone();
        let early = v.snapshot(0);
        assert!(!v.newer_than(early.first));
        // The writer changes the page twice and moves key 7.
        v.begin();
        let before = page.clone();
        page[10..14].copy_from_slice(&[9; 4]);
        v.note_page(3, &[run(10, 4, false)], &before);
        let before = page.clone();
        page[12..20].copy_from_slice(&[5; 8]);
        v.note_page(3, &[run(12, 8, false)], &before);
        v.note_key(&7, (3, 1));
        v.note_key(&7, (4, 0)); // first change wins
        assert!(v.newer_than(early.first));
        let mut copy = page.clone();
        assert!(v.undo_page(early.first, 3, &mut copy));
        assert_eq!(copy, before_all);
        assert!(!v.undo_page(early.first, 4, &mut copy));
        assert_eq!(v.key_before(early.first, &7), Some((3, 1)));
        // Ended but not durable: a new reader still undoes it.
        v.end(100, Some(Arc::new("cat1")), 50);
        let mid = v.snapshot(50);
        assert_eq!((mid.first, *mid.catalog), (early.first, "cat0"));
        // Durable: a new reader sees it; the early reader still undoes it.
        let late = v.snapshot(100);
        assert_eq!(*late.catalog, "cat1");
        assert!(!v.newer_than(late.first));
        let mut copy = page.clone();
        assert!(!v.undo_page(late.first, 3, &mut copy));
        assert!(v.undo_page(early.first, 3, &mut copy));
        assert_eq!(v.stats().versions, 1);
        drop(early);
        drop(mid);
        v.collect(100);
        assert_eq!(
            v.stats(),
            VersionStats {
                versions: 0,
                undo_bytes: 0,
                readers: 1
            }
        );
        drop(late);
        // Zero runs restore zeros.
        v.begin();
        let z = vec![0u8; 8];
        v.note_page(1, &[run(2, 3, true)], &z);
        let s = v.snapshot(100);
        let mut p = vec![7u8; 8];
        v.undo_page(s.first, 1, &mut p);
        assert_eq!(p, [7, 7, 0, 0, 0, 7, 7, 7]);
    }
}
