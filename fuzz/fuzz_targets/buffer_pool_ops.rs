//! The buffer pool on a file under arbitrary sequences: new pages, pinned
//! reads and writes (several guards held at once, up to every frame),
//! optimistic reads, flushes, deletes, `shrink_clean` and a "reopen" step
//! (drop the pool, with or without `flush_all`, and build a new one on the
//! same file, possibly with another policy and size), against a model of page
//! contents.
//!
//! Checks: every operation returns what the model says, or the one error the
//! situation calls for (`PoolExhausted` when every frame is pinned,
//! `LatchTimeout` on a conflicting latch, `PagePinned` for a held page,
//! `PageNotFound` for an id that is not a live page); a page that is not live
//! never reads as data; nothing panics or hangs. Dropping a pool writes back
//! its dirty pages (the documented contract of `BufferPool`), so after a
//! reopen every live page reads back as the model says, flushed or not.
#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rustydb_memory::Error;
use rustydb_memory::buffer_pool::{
    BufferPool, FileDisk, MAX_PAGE_ID, PageId, Policy, ReadGuard, WriteGuard,
};

/// Page sizes tried: powers of two from 4 KiB (the builder allows up to 1 MiB;
/// larger pages only make each run slower without new paths).
const PAGE_SIZES: [usize; 4] = [4096, 8192, 16384, 65536];
const POLICIES: [Policy; 4] = [Policy::Clock, Policy::LruK, Policy::Arc, Policy::TwoQ];
/// Operations per input.
const MAX_OPS: usize = 256;
/// Operations that wait for a latch (1 ms each) per input.
const MAX_CONFLICTS: usize = 4;

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Config {
    frames: u8,
    page_size: u8,
    policy: u8,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Fill {
    off: u32,
    len: u16,
    byte: u8,
}

#[derive(Arbitrary, Debug)]
enum Op {
    New {
        hold: bool,
        fill: Option<Fill>,
    },
    Write {
        page: u8,
        fill: Fill,
        hold: bool,
    },
    Read {
        page: u8,
        hold: bool,
    },
    Optimistic {
        page: u8,
        off: u32,
    },
    WriteHeld {
        slot: u8,
        fill: Fill,
    },
    Release {
        slot: u8,
    },
    Flush {
        page: u8,
    },
    FlushAll,
    Delete {
        page: u8,
    },
    Shrink {
        pages: u8,
    },
    /// A scan through a ring of `ring` frames; `true` keeps the guard.
    Scan {
        ring: u8,
        pages: Vec<(u8, bool)>,
    },
    Reopen {
        flush: bool,
        config: Config,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    config: Config,
    ops: Vec<Op>,
}

enum Held<'a> {
    R(ReadGuard<'a>),
    W(WriteGuard<'a>),
}

impl Held<'_> {
    fn page(&self) -> PageId {
        match self {
            Held::R(g) => g.page_id(),
            Held::W(g) => g.page_id(),
        }
    }
}

/// The file of this process (libFuzzer runs one input at a time per process).
fn db_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        // tmpfs when there is one: `flush_all` syncs, which is free there.
        let shm = PathBuf::from("/dev/shm");
        let base = if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        };
        base.join(format!("rustydb-fuzz-bp-{}.db", std::process::id()))
    })
}

fn build(c: Config) -> BufferPool {
    let ps = PAGE_SIZES[c.page_size as usize % PAGE_SIZES.len()];
    let disk = FileDisk::open(db_path(), ps).expect("setup: open the pool's file");
    BufferPool::builder()
        .frames(2 + c.frames as usize % 15)
        .page_size(ps)
        .policy(POLICIES[c.policy as usize % POLICIES.len()])
        .disk(disk)
        .latch_timeout(Duration::from_millis(1))
        .huge_pages(false)
        .build()
        .expect("setup: build the pool")
}

struct Model {
    pages: BTreeMap<PageId, Vec<u8>>,
    /// Ids the disk has handed out so far (an upper bound for picking ids).
    high: PageId,
    conflicts: usize,
}

impl Model {
    fn pick(&self, sel: u8) -> PageId {
        if sel < 200 && !self.pages.is_empty() {
            let i = sel as usize % self.pages.len();
            return *self.pages.keys().nth(i).unwrap_or(&0);
        }
        match sel {
            0..=249 => (sel % 50) as PageId,
            250 => self.high,
            251 => MAX_PAGE_ID,
            252 => MAX_PAGE_ID + 1,
            253 => MAX_PAGE_ID + 2,
            _ => u64::MAX,
        }
    }
}

fn apply(buf: &mut [u8], f: Fill) -> Option<(usize, usize)> {
    if buf.is_empty() {
        return None;
    }
    let off = f.off as usize % buf.len();
    let len = (f.len as usize).min(buf.len() - off);
    for (i, b) in buf[off..off + len].iter_mut().enumerate() {
        *b = f.byte.wrapping_add(i as u8);
    }
    Some((off, len))
}

fn distinct_pinned(held: &[Held<'_>]) -> usize {
    let mut ids: Vec<PageId> = held.iter().map(Held::page).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

/// Whether a latch on `id` in write (`write`) or read mode conflicts with a
/// held guard.
fn conflicts(held: &[Held<'_>], id: PageId, write: bool) -> bool {
    held.iter().any(|h| match h {
        Held::W(g) => g.page_id() == id,
        Held::R(g) => write && g.page_id() == id,
    })
}

/// Whether a frame for `id` (a new page: `None`) may be refused: every frame
/// pinned, or (`ring` > 0, during a scan) every frame pinned or in a scan's
/// ring that is not full yet (a ring reuses its own frames only once full).
fn is_exhausted(pool: &BufferPool, held: &[Held<'_>], id: Option<PageId>, ring: usize) -> bool {
    distinct_pinned(held) + ring >= pool.frames() && id.is_none_or(|id| !pool.is_resident(id))
}

/// The error for an access to `id` that must fail, given the pool's state.
fn check_refused(
    pool: &BufferPool,
    held: &[Held<'_>],
    m: &Model,
    id: PageId,
    ring: usize,
    e: Error,
) {
    let live = m.pages.contains_key(&id);
    match e {
        Error::PageNotFound { page } => {
            assert!(!live, "live page {id} reported missing");
            assert_eq!(page, id);
        }
        Error::PoolExhausted { .. } => {
            assert!(
                is_exhausted(pool, held, Some(id), ring),
                "exhausted with free frames: {id}"
            )
        }
        Error::LatchTimeout { page, .. } => {
            assert_eq!(page, id);
            assert!(
                held.iter().any(|h| h.page() == id),
                "latch timeout on a free page {id}"
            );
        }
        e => panic!("page {id}: unexpected error {e}"),
    }
}

/// Runs operations on `pool` until a reopen step (returned) or the end.
fn session(
    pool: &BufferPool,
    m: &mut Model,
    ops: &mut impl Iterator<Item = Op>,
) -> Option<(bool, Config)> {
    let payload = pool.payload_size();
    let mut held: Vec<Held<'_>> = Vec::new();
    for op in ops.by_ref() {
        match op {
            Op::New { hold, fill } => {
                let exhausted = is_exhausted(pool, &held, None, 0);
                match pool.new_page() {
                    Ok(mut g) => {
                        assert!(!exhausted, "new_page with every frame pinned");
                        let id = g.page_id();
                        assert!(!m.pages.contains_key(&id), "new_page reused live page {id}");
                        assert_eq!(g.len(), payload);
                        assert!(g.iter().all(|&b| b == 0), "new page {id} not zeroed");
                        let mut data = vec![0u8; payload];
                        if let Some(f) = fill {
                            apply(&mut g, f);
                            apply(&mut data, f);
                        }
                        m.pages.insert(id, data);
                        m.high = m.high.max(id + 1);
                        if hold && held.len() < pool.frames() {
                            held.push(Held::W(g));
                        }
                    }
                    Err(Error::PoolExhausted { .. }) => assert!(exhausted, "new_page: exhausted"),
                    Err(e) => panic!("new_page: unexpected error {e}"),
                }
            }
            Op::Write { page, fill, hold } => {
                let id = m.pick(page);
                let conflict = conflicts(&held, id, true);
                if conflict && m.conflicts >= MAX_CONFLICTS {
                    continue;
                }
                m.conflicts += usize::from(conflict);
                match pool.fetch_write(id) {
                    Ok(mut g) => {
                        assert!(!conflict, "fetch_write {id} while latched");
                        let data = m.pages.get_mut(&id).expect("fetch_write of a dead page");
                        assert_eq!(&g[..], &data[..], "page {id} contents");
                        apply(&mut g, fill);
                        apply(data, fill);
                        if hold && held.len() < pool.frames() {
                            held.push(Held::W(g));
                        }
                    }
                    Err(e) => check_refused(pool, &held, m, id, 0, e),
                }
            }
            Op::Read { page, hold } => {
                let id = m.pick(page);
                let conflict = conflicts(&held, id, false);
                if conflict && m.conflicts >= MAX_CONFLICTS {
                    continue;
                }
                m.conflicts += usize::from(conflict);
                match pool.fetch_read(id) {
                    Ok(g) => {
                        assert!(!conflict, "fetch_read {id} while write-latched");
                        let data = m.pages.get(&id).expect("fetch_read of a dead page");
                        assert_eq!(&g[..], &data[..], "page {id} contents");
                        if hold && held.len() < pool.frames() {
                            held.push(Held::R(g));
                        }
                    }
                    Err(e) => check_refused(pool, &held, m, id, 0, e),
                }
            }
            Op::Optimistic { page, off } => {
                let id = m.pick(page);
                let conflict = conflicts(&held, id, false);
                if conflict && m.conflicts >= MAX_CONFLICTS {
                    continue;
                }
                m.conflicts += usize::from(conflict);
                let off = off as usize % (payload + 16);
                match pool.read_optimistic(id, |v| (v.len(), v.u64_at(off), v.u8_at(off))) {
                    Ok((len, word, byte)) => {
                        assert!(!conflict, "read_optimistic {id} while write-latched");
                        let data = m.pages.get(&id).expect("read_optimistic of a dead page");
                        assert_eq!(len, payload);
                        let want = data
                            .get(off..off + 8)
                            .map(|b| u64::from_le_bytes(b.try_into().expect("eight bytes")));
                        assert_eq!(word, want, "page {id} word at {off}");
                        assert_eq!(byte, data.get(off).copied(), "page {id} byte at {off}");
                    }
                    Err(e) => check_refused(pool, &held, m, id, 0, e),
                }
            }
            Op::WriteHeld { slot, fill } => {
                let n = held.len();
                if let Some(Held::W(g)) = held.get_mut(slot as usize % n.max(1)) {
                    let id = g.page_id();
                    apply(g, fill);
                    apply(m.pages.get_mut(&id).expect("held page is live"), fill);
                }
            }
            Op::Release { slot } => {
                if !held.is_empty() {
                    let n = held.len();
                    held.swap_remove(slot as usize % n);
                }
            }
            Op::Flush { page } => {
                let id = m.pick(page);
                let conflict = conflicts(&held, id, false);
                if conflict && m.conflicts >= MAX_CONFLICTS {
                    continue;
                }
                m.conflicts += usize::from(conflict);
                match pool.flush(id) {
                    Ok(()) => assert!(!conflict, "flush {id} while write-latched"),
                    Err(Error::LatchTimeout { page, .. }) => {
                        assert!(conflict && page == id, "flush {id}: latch timeout")
                    }
                    Err(Error::PageNotFound { page }) => {
                        assert!(
                            page == id && !m.pages.contains_key(&id),
                            "flush {id}: not found"
                        )
                    }
                    Err(e) => panic!("flush {id}: unexpected error {e}"),
                }
            }
            Op::FlushAll => {
                let writers = held.iter().any(|h| matches!(h, Held::W(_)));
                if writers && m.conflicts >= MAX_CONFLICTS {
                    continue;
                }
                m.conflicts += usize::from(writers);
                match pool.flush_all() {
                    Ok(_) => assert!(!writers, "flush_all while write-latched"),
                    Err(Error::LatchTimeout { page, .. }) => {
                        assert!(conflicts(&held, page, false), "flush_all: latch timeout")
                    }
                    Err(e) => panic!("flush_all: unexpected error {e}"),
                }
            }
            Op::Delete { page } => {
                let id = m.pick(page);
                let pinned = held.iter().any(|h| h.page() == id);
                match pool.delete_page(id) {
                    Ok(()) => {
                        assert!(!pinned, "deleted pinned page {id}");
                        m.pages.remove(&id);
                    }
                    Err(Error::PagePinned { page, pins }) => {
                        assert!(pinned && page == id && pins >= 1, "delete {id}: pinned")
                    }
                    Err(Error::PageNotFound { page }) => {
                        assert!(
                            page == id && !m.pages.contains_key(&id),
                            "delete {id}: not found"
                        )
                    }
                    Err(e) => panic!("delete {id}: unexpected error {e}"),
                }
                // A deleted page is gone at once, whatever was said above.
                if !pinned && held.len() < pool.frames() {
                    match pool.fetch_read(id) {
                        Err(Error::PageNotFound { page }) => assert_eq!(page, id),
                        Err(Error::PoolExhausted { .. }) => {}
                        Ok(_) => panic!("deleted page {id} still reads"),
                        Err(e) => panic!("fetch of deleted page {id}: unexpected error {e}"),
                    }
                }
            }
            Op::Shrink { pages } => {
                let want = pages as usize * pool.page_size();
                let got = pool.shrink_clean(want);
                assert_eq!(got % pool.page_size(), 0);
                assert!(
                    got <= want.max(pool.page_size()) + pool.page_size(),
                    "shrank {got}"
                );
            }
            Op::Scan { ring, pages } => {
                let mut scan = pool.scan_with_ring(1 + ring as usize % pool.frames());
                for (sel, hold) in pages.into_iter().take(32) {
                    let id = m.pick(sel);
                    let conflict = conflicts(&held, id, false);
                    if conflict && m.conflicts >= MAX_CONFLICTS {
                        continue;
                    }
                    m.conflicts += usize::from(conflict);
                    let ring = scan.ring_len();
                    match scan.fetch_read(id) {
                        Ok(g) => {
                            assert!(!conflict, "scan read {id} while write-latched");
                            let data = m.pages.get(&id).expect("scan read of a dead page");
                            assert_eq!(&g[..], &data[..], "page {id} contents (scan)");
                            if hold && held.len() < pool.frames() {
                                held.push(Held::R(g));
                            }
                        }
                        Err(e) => check_refused(pool, &held, m, id, ring, e),
                    }
                }
            }
            Op::Reopen { flush, config } => return Some((flush, config)),
        }
    }
    None
}

/// Every live page reads back as the model says; ids that are not live fail.
fn verify_all(pool: &BufferPool, m: &Model) {
    for (&id, data) in &m.pages {
        match pool.fetch_read(id) {
            Ok(g) => assert_eq!(&g[..], &data[..], "page {id} after reopen"),
            Err(e) => panic!("page {id} after reopen: {e}"),
        }
    }
    for id in 0..m.high + 2 {
        if !m.pages.contains_key(&id) {
            match pool.fetch_read(id) {
                Err(Error::PageNotFound { page }) => assert_eq!(page, id),
                Ok(_) => panic!("page {id} is not live but reads after reopen"),
                Err(e) => panic!("dead page {id} after reopen: unexpected error {e}"),
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let path = db_path();
    let _ = std::fs::remove_file(path);
    let mut m = Model {
        pages: BTreeMap::new(),
        high: 0,
        conflicts: 0,
    };
    let mut ops = input.ops.into_iter().take(MAX_OPS);
    let mut pool = build(input.config);
    while let Some((flush, config)) = session(&pool, &mut m, &mut ops) {
        if flush {
            pool.flush_all().expect("flush_all without guards");
        }
        drop(pool);
        pool = build(Config {
            // The page size of a file is fixed.
            page_size: input.config.page_size,
            ..config
        });
        verify_all(&pool, &m);
    }
    drop(pool);
    let _ = std::fs::remove_file(path);
});
