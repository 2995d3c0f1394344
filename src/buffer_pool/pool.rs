//! The pool: frames in one mapping, the page table, pinning, the miss path
//! and the access log. Its other parts: `victims.rs` (eviction through the
//! cold tier), `io.rs` (loads, write-back, flushing), `pages.rs` (new,
//! delete, shrink), `observe.rs` (statistics).
//!
//! Locking: the hit path takes no lock (page-table lookup, one atomic on the
//! frame's state word, a thread-local access log). One mutex (`inner`)
//! serialises page-table writes, the free lists, the cooling stage and the
//! policy; it is never held across disk I/O. A frame is loaded or written
//! back while its state word has `IO` set, which keeps readers, writers and
//! other evictors away from it.

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_utils::{Backoff, CachePadded};

use crate::error::{Error, Result};
use crate::pressure::PressureManager;
use crate::sync::{AtomicU64, Mutex, MutexGuard, Ordering, lock};
use crate::sys;

use super::batch::{self, COLD_HIT};
use super::disk::DiskManager;
use super::format::PAGE_HEADER;
use super::frame::{COLD, DIRTY, FrameMeta, IO, NO_PAGE, Pin, REF, RING, WRITE};
use super::page_table::{MAX_PAGE_ID, PageTable};
use super::policy::{EvictionPolicy, Policy, Tier};
use super::{PageId, WriteBackHook, flusher};

mod io;
mod observe;
mod pages;
mod victims;

static NEXT_UID: AtomicU64 = AtomicU64::new(1);

/// What a frame is doing, as the pool's lock sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loc {
    /// On a free list.
    Free,
    /// Being loaded (or written back then loaded) for a new page.
    Loading,
    /// Held by the eviction policy (hot or warm tier).
    Policy,
    /// In the cooling stage (cold tier).
    Cooling,
    /// Owned by the scan ring with this id.
    Ring(u32),
}

/// Access mode of a pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Shared pin (read guard).
    Read,
    /// Exclusive latch (write guard).
    Write,
}

/// State under the pool's lock.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) policy: Box<dyn EvictionPolicy>,
    pub(crate) loc: Vec<Loc>,
    /// Free frames whose memory is resident.
    free: Vec<u32>,
    /// Free frames never touched or released to the OS (admission applies).
    fresh: Vec<u32>,
    /// The cooling stage: `(frame, sequence)`, oldest first.
    cooling: VecDeque<(u32, u32)>,
    cool_seq: Vec<u32>,
    cooling_target: usize,
    pub(crate) next_ring: u32,
    hits: u64,
    optimistic: u64,
    tier_hits: [u64; 3],
    tier_entered: [u64; 3],
    rescued: u64,
}

/// Shared counters (updated outside the lock).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) misses: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) writebacks: AtomicU64,
    pub(crate) flushed: AtomicU64,
    pub(crate) disk_reads: AtomicU64,
    pub(crate) disk_writes: AtomicU64,
    pub(crate) exhausted: AtomicU64,
    pub(crate) corrupt: AtomicU64,
    pub(crate) released: AtomicU64,
    pub(crate) ring_reuses: AtomicU64,
    pub(crate) optimistic_retries: AtomicU64,
    pub(crate) pressure_refusals: AtomicU64,
    pub(crate) flusher_writes: AtomicU64,
}

fn bump(c: &AtomicU64) {
    // Relaxed: a statistics counter.
    c.fetch_add(1, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    // Relaxed: a statistics counter.
    c.load(Ordering::Relaxed)
}

/// The frames' memory: one anonymous mapping.
#[derive(Debug)]
pub(crate) struct FrameMemory {
    ptr: NonNull<u8>,
    len: usize,
    huge: bool,
}

// SAFETY: the mapping is plain memory owned by the pool; which thread may
// touch which frame's bytes is governed by the frame state words.
unsafe impl Send for FrameMemory {}
// SAFETY: as above; `FrameMemory` itself only hands out raw pointers.
unsafe impl Sync for FrameMemory {}

impl FrameMemory {
    pub(crate) fn map(len: usize, huge_pages: bool) -> Result<Self> {
        const TWO_MIB: usize = 2 << 20;
        let huge = huge_pages && len >= TWO_MIB;
        let len = if huge {
            len.div_ceil(TWO_MIB) * TWO_MIB
        } else {
            len.div_ceil(sys::page_size()) * sys::page_size()
        };
        let ptr = if huge {
            sys::map_aligned(len, TWO_MIB)
        } else {
            sys::map(len)
        }
        .ok_or(Error::OutOfMemory { requested: len })?;
        if huge {
            // SAFETY: the whole range is the mapping we just made; the advice
            // only changes how the kernel backs it.
            unsafe { sys::advise(ptr.as_ptr(), len, sys::Advice::HugePage) };
        }
        Ok(Self { ptr, len, huge })
    }
}

impl Drop for FrameMemory {
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `map` with this length; the pool is
        // being dropped, so no guard (which borrows the pool) refers into it.
        unsafe { sys::unmap(self.ptr.as_ptr(), self.len) };
    }
}

/// Everything a pool handle shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) uid: u64,
    /// `uid << EPOCH_BITS | epoch`: what a thread's access log compares on
    /// every hit (one load, one compare). `stats()` bumps the epoch, so every
    /// other thread applies its pending log at its next hit and the next
    /// `stats()` sees their hits within one interval.
    pub(crate) log_key: AtomicU64,
    /// One frame's state on a line pair of its own (`CachePadded`: 128 B on
    /// x86-64, where the adjacent-line prefetcher pulls lines in pairs).
    pub(crate) frames: Box<[CachePadded<FrameMeta>]>,
    mem: FrameMemory,
    pub(crate) table: PageTable,
    inner: Mutex<Inner>,
    pub(crate) disk: Arc<dyn DiskManager>,
    pub(crate) page_size: usize,
    pub(crate) latch_timeout: Duration,
    pressure: Option<Arc<PressureManager>>,
    /// Runs before every write of a page image (see `WriteBackHook`).
    before_write: Option<BeforeWrite>,
    pub(crate) c: Counters,
    pub(crate) flusher: Mutex<Option<flusher::Handle>>,
    pub(crate) ring_pages: usize,
    /// `sample − 1` for optimistic reads (see `BufferPoolBuilder::optimistic_sampling`).
    pub(crate) optimistic_mask: u64,
    kind: Policy,
}

/// The write-back hook, as the pool holds it.
#[derive(Clone)]
pub(crate) struct BeforeWrite(pub(crate) Arc<WriteBackHook>);

impl core::fmt::Debug for BeforeWrite {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("BeforeWrite(..)")
    }
}

/// Parameters `Shared::new` needs from the builder.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) frames: usize,
    pub(crate) page_size: usize,
    pub(crate) policy: Box<dyn EvictionPolicy>,
    pub(crate) disk: Arc<dyn DiskManager>,
    pub(crate) cooling: f64,
    pub(crate) latch_timeout: Duration,
    pub(crate) pressure: Option<Arc<PressureManager>>,
    pub(crate) before_write: Option<BeforeWrite>,
    pub(crate) ring_pages: usize,
    pub(crate) huge_pages: bool,
    pub(crate) optimistic_sample: u64,
}

impl Shared {
    pub(crate) fn new(cfg: Config) -> Result<Self> {
        let n = cfg.frames;
        let mem = FrameMemory::map(n * cfg.page_size, cfg.huge_pages)?;
        let kind = cfg.policy.kind();
        // Relaxed: a unique id.
        let uid = NEXT_UID.fetch_add(1, Ordering::Relaxed);
        Ok(Self {
            uid,
            log_key: AtomicU64::new(batch::log_key(uid, 0)),
            frames: (0..n).map(|_| CachePadded::new(FrameMeta::new())).collect(),
            mem,
            table: PageTable::new(n),
            inner: Mutex::new(Inner {
                policy: cfg.policy,
                loc: vec![Loc::Free; n],
                free: Vec::new(),
                fresh: (0..n as u32).rev().collect(),
                cooling: VecDeque::new(),
                cool_seq: vec![0; n],
                cooling_target: (n as f64 * cfg.cooling) as usize,
                next_ring: 1,
                hits: 0,
                optimistic: 0,
                tier_hits: [0; 3],
                tier_entered: [0; 3],
                rescued: 0,
            }),
            disk: cfg.disk,
            page_size: cfg.page_size,
            latch_timeout: cfg.latch_timeout,
            pressure: cfg.pressure,
            before_write: cfg.before_write,
            c: Counters::default(),
            flusher: Mutex::new(None),
            ring_pages: cfg.ring_pages,
            optimistic_mask: cfg.optimistic_sample - 1,
            kind,
        })
    }

    pub(crate) fn lock_inner(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    pub(crate) fn try_lock_inner(&self) -> Option<MutexGuard<'_, Inner>> {
        match self.inner.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    pub(crate) fn nframes(&self) -> usize {
        self.frames.len()
    }

    pub(crate) fn policy_kind(&self) -> Policy {
        self.kind
    }

    /// Start of frame `f`'s bytes.
    #[inline(always)]
    pub(crate) fn frame_ptr(&self, f: u32) -> *mut u8 {
        // `f < frames`, so the offset stays inside the mapping (wrapping_add
        // keeps this a plain address computation without a safety contract).
        self.mem
            .ptr
            .as_ptr()
            .wrapping_add(f as usize * self.page_size)
    }

    /// The payload length of a page (page size minus the header).
    #[inline(always)]
    pub(crate) fn payload_len(&self) -> usize {
        self.page_size - PAGE_HEADER
    }

    // ---------------------------------------------------------------------
    // Pinning

    #[inline(always)]
    pub(crate) fn try_pin(&self, f: u32, id: PageId, mode: Mode, scan: bool) -> Pin {
        let fm = &self.frames[f as usize];
        match mode {
            Mode::Read => fm.pin_shared(id),
            Mode::Write => fm.try_lock_exclusive(id, if scan { 0 } else { REF }),
        }
    }

    /// Bookkeeping after a successful pin that saw `old` (tier hints, log).
    #[inline(always)]
    pub(crate) fn after_pin(self: &Arc<Self>, f: u32, id: PageId, old: u64, scan: bool) {
        let mut cold = false;
        if old & (COLD | RING) != 0 {
            cold = self.touch_special(f, old, scan);
        }
        batch::record(self, f, id, cold);
    }

    #[cold]
    fn touch_special(&self, f: u32, old: u64, scan: bool) -> bool {
        let fm = &self.frames[f as usize];
        if old & RING != 0 && !scan {
            fm.set_bits(REF);
        }
        if old & COLD != 0 {
            // A hit in the cooling stage rescues the page: the evictor skips
            // frames whose COLD bit is gone; the log moves it back to the policy.
            fm.clear_bits(COLD);
            return true;
        }
        false
    }

    /// Waits a little before retrying a busy frame — spins, then yields
    /// (crossbeam's `Backoff`), then sleeps 50 µs at a time; `Err(LatchTimeout)`
    /// once the latch timeout has passed.
    pub(crate) fn backoff(
        &self,
        id: PageId,
        since: &mut Option<Instant>,
        backoff: &Backoff,
    ) -> Result<()> {
        if !backoff.is_completed() {
            backoff.snooze();
            return Ok(());
        }
        let start = *since.get_or_insert_with(Instant::now);
        let waited = start.elapsed();
        if waited >= self.latch_timeout {
            return Err(Error::LatchTimeout {
                page: id,
                waited_ms: waited.as_millis() as u64,
            });
        }
        std::thread::sleep(Duration::from_micros(50));
        Ok(())
    }

    /// Pins `id` in `mode`, loading it on a miss. `ring` is the scan ring to
    /// load into (a scan's access).
    pub(crate) fn acquire(
        self: &Arc<Self>,
        id: PageId,
        mode: Mode,
        mut ring: Option<&mut RingState>,
    ) -> Result<u32> {
        if id > MAX_PAGE_ID {
            return Err(Error::PageNotFound { page: id });
        }
        let scan = ring.is_some();
        let mut since = None;
        let backoff = Backoff::new();
        loop {
            if let Some(f) = self.table.get(id) {
                match self.try_pin(f, id, mode, scan) {
                    Pin::Done(old) => {
                        self.after_pin(f, id, old, scan);
                        return Ok(f);
                    }
                    Pin::Busy => {
                        self.backoff(id, &mut since, &backoff)?;
                        continue;
                    }
                    Pin::Moved => {}
                    Pin::Overflow => {
                        return Err(Error::InvalidConfig {
                            what: "too many pins on one page",
                        });
                    }
                }
            }
            if let Some(f) = self.miss(id, mode, ring.as_deref_mut())? {
                return Ok(f);
            }
        }
    }

    // ---------------------------------------------------------------------
    // Miss path

    /// Loads `id` into a frame; `Ok(None)` if the page appeared meanwhile
    /// (the caller retries the hit path).
    fn miss(
        self: &Arc<Self>,
        id: PageId,
        mode: Mode,
        ring: Option<&mut RingState>,
    ) -> Result<Option<u32>> {
        let mut g = self.lock_inner();
        batch::drain(self, &mut g);
        if self.table.get(id).is_some() {
            return Ok(None);
        }
        if id >= self.disk.num_pages() {
            return Err(Error::PageNotFound { page: id });
        }
        let ring_id = ring.as_ref().map(|r| r.id);
        let (f, victim) = self.take_frame(&mut g, Some(id), ring)?;
        self.table.insert(id, f);
        let victim = victim.map(|(p, s)| (p, s & DIRTY != 0));
        if let Some((old, false)) = victim {
            self.table.remove(old);
        }
        self.admit(&mut g, f, id, ring_id);
        drop(g);
        bump(&self.c.misses);
        self.finish_load(f, id, victim, ring_id.is_some(), mode)?;
        Ok(Some(f))
    }

    /// Hands a frame that now holds `id` to the policy or a scan ring.
    fn admit(&self, g: &mut Inner, f: u32, id: PageId, ring: Option<u32>) {
        match ring {
            Some(r) => {
                g.loc[f as usize] = Loc::Ring(r);
                g.tier_entered[Tier::Cold as usize] += 1;
            }
            None => {
                g.policy.insert(f, id);
                g.loc[f as usize] = Loc::Policy;
                let t = g.policy.tier(f);
                g.tier_entered[t as usize] += 1;
            }
        }
    }

    /// Writes back the victim if dirty, then reads `id` into frame `f` (owned
    /// with IO) and publishes it pinned in `mode`.
    fn finish_load(
        &self,
        f: u32,
        id: PageId,
        victim: Option<(PageId, bool)>,
        ring: bool,
        mode: Mode,
    ) -> Result<()> {
        self.evict_writeback(f, id, victim)?;
        let fm = &self.frames[f as usize];
        fm.io_update(DIRTY | COLD | RING | REF, if ring { RING } else { 0 });
        if let Err(e) = self.read_owned(f, id) {
            self.abandon(f, id);
            return Err(e);
        }
        // Relaxed: published by the Release in `finish_io`.
        fm.page.store(id, Ordering::Relaxed);
        fm.finish_io(match mode {
            Mode::Read => 1,
            Mode::Write => WRITE | DIRTY,
        });
        Ok(())
    }

    /// Writes a dirty victim back before its frame is reused; on failure puts
    /// the victim back (still dirty) and forgets `new`.
    fn evict_writeback(&self, f: u32, new: PageId, victim: Option<(PageId, bool)>) -> Result<()> {
        let Some((old, true)) = victim else {
            return Ok(());
        };
        if let Err(e) = self.write_owned(f, old) {
            let mut g = self.lock_inner();
            self.table.remove(new);
            if g.loc[f as usize] == Loc::Policy {
                g.policy.remove(f, new);
            }
            g.policy.insert(f, old);
            g.loc[f as usize] = Loc::Policy;
            let fm = &self.frames[f as usize];
            fm.io_update(COLD | RING | REF, 0);
            fm.finish_io(0);
            return Err(e);
        }
        bump(&self.c.writebacks);
        let _g = self.lock_inner();
        self.table.remove(old);
        Ok(())
    }

    /// A load failed: forget `id` and free the frame.
    fn abandon(&self, f: u32, id: PageId) {
        let mut g = self.lock_inner();
        self.table.remove(id);
        if g.loc[f as usize] == Loc::Policy {
            g.policy.remove(f, id);
        }
        g.loc[f as usize] = Loc::Free;
        let fm = &self.frames[f as usize];
        // Relaxed: published by the Release in `finish_io`.
        fm.page.store(NO_PAGE, Ordering::Relaxed);
        fm.io_update(DIRTY | COLD | RING | REF, 0);
        fm.finish_io(0);
        g.free.push(f);
    }

    // ---------------------------------------------------------------------
    // The access log

    /// Applies a thread's access log (caller holds the lock).
    pub(crate) fn apply_log(&self, g: &mut Inner, entries: &[u64], hits: u64, optimistic: u64) {
        g.hits += hits;
        g.optimistic += optimistic;
        for &e in entries {
            let f = (e & (COLD_HIT - 1)) as u32;
            let cold = e & COLD_HIT != 0;
            let Some(fm) = self.frames.get(f as usize) else {
                continue;
            };
            // Relaxed: compared with the tag only; a stale entry is skipped.
            let page = fm.page.load(Ordering::Relaxed);
            if page as u32 != (e >> 32) as u32 || fm.load() & IO != 0 {
                continue;
            }
            match g.loc[f as usize] {
                Loc::Policy if cold => g.tier_hits[Tier::Cold as usize] += 1,
                Loc::Policy => {
                    // Warm → hot moves are counted by the policy (promotions).
                    let t = g.policy.access(f, page);
                    g.tier_hits[t as usize] += 1;
                }
                Loc::Cooling => {
                    g.tier_hits[Tier::Cold as usize] += 1;
                    self.rescue(g, f);
                }
                Loc::Ring(_) => g.tier_hits[Tier::Cold as usize] += 1,
                Loc::Free | Loc::Loading => {}
            }
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        flusher::stop(self);
        // Best effort: a pool dropped without `flush_all` still writes its
        // dirty pages (no guard can exist any more).
        let _ = self.flush_all();
    }
}

/// A scan's ring of frames (see `Scan`).
#[derive(Debug)]
pub(crate) struct RingState {
    pub(crate) id: u32,
    pub(crate) cap: usize,
    pub(crate) frames: VecDeque<u32>,
}
