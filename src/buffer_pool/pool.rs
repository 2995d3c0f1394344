//! The pool: frames in one mapping, the page table, the miss path, eviction
//! through the cold tier, write-back, flushing and shrinking.
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

use crate::error::{Error, Result};
use crate::pressure::PressureManager;
use crate::sync::{AtomicU64, Mutex, MutexGuard, Ordering, lock};
use crate::sys;

use super::batch::{self, COLD_HIT};
use super::disk::DiskManager;
use super::format::{self, PAGE_HEADER};
use super::frame::{
    BUSY, COLD, DIRTY, FrameMeta, IO, NO_PAGE, PIN_MASK, Pin, REF, RING, WRITE, pins,
};
use super::page_table::{MAX_PAGE_ID, PageTable};
use super::policy::{EvictionPolicy, Policy, Tier};
use super::scratch::with_scratch;
use super::stats::{BufferPoolStats, TierStats};
use super::{PageId, flusher};

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
    pub(crate) frames: Box<[FrameMeta]>,
    mem: FrameMemory,
    pub(crate) table: PageTable,
    inner: Mutex<Inner>,
    pub(crate) disk: Arc<dyn DiskManager>,
    pub(crate) page_size: usize,
    pub(crate) latch_timeout: Duration,
    pressure: Option<Arc<PressureManager>>,
    pub(crate) c: Counters,
    pub(crate) flusher: Mutex<Option<flusher::Handle>>,
    pub(crate) ring_pages: usize,
    /// `sample − 1` for optimistic reads (see `BufferPoolBuilder::optimistic_sampling`).
    pub(crate) optimistic_mask: u64,
    kind: Policy,
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
    pub(crate) ring_pages: usize,
    pub(crate) huge_pages: bool,
    pub(crate) optimistic_sample: u64,
}

impl Shared {
    pub(crate) fn new(cfg: Config) -> Result<Self> {
        let n = cfg.frames;
        let mem = FrameMemory::map(n * cfg.page_size, cfg.huge_pages)?;
        let kind = cfg.policy.kind();
        Ok(Self {
            // Relaxed: a unique id.
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
            frames: (0..n).map(|_| FrameMeta::new()).collect(),
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

    /// Waits a little before retrying a busy frame; `Err(LatchTimeout)` once
    /// the latch timeout has passed.
    pub(crate) fn backoff(
        &self,
        id: PageId,
        since: &mut Option<Instant>,
        spins: &mut u32,
    ) -> Result<()> {
        *spins += 1;
        if *spins < 64 {
            crate::sync::spin_hint();
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
        if *spins < 256 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(50));
        }
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
        let mut spins = 0;
        loop {
            if let Some(f) = self.table.get(id) {
                match self.try_pin(f, id, mode, scan) {
                    Pin::Done(old) => {
                        self.after_pin(f, id, old, scan);
                        return Ok(f);
                    }
                    Pin::Busy => {
                        self.backoff(id, &mut since, &mut spins)?;
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

    /// A frame for a new page: the ring's next frame, a free frame, or a
    /// victim through the cold tier. The frame is returned owned (IO set),
    /// with the victim's page and state word if it held one.
    fn take_frame(
        &self,
        g: &mut Inner,
        incoming: Option<PageId>,
        ring: Option<&mut RingState>,
    ) -> Result<(u32, Option<(PageId, u64)>)> {
        if let Some(r) = ring {
            if r.frames.len() >= r.cap
                && let Some(x) = self.ring_reuse(g, r)
            {
                return Ok(x);
            }
            let x = self.take_frame(g, incoming, None)?;
            r.frames.push_back(x.0);
            return Ok(x);
        }
        if let Some(f) = g.free.pop() {
            g.loc[f as usize] = Loc::Loading;
            self.frames[f as usize].begin_io_free();
            return Ok((f, None));
        }
        let mut refused = None;
        if !g.fresh.is_empty() {
            match self.pressure.as_ref().map(|p| p.admit(self.page_size)) {
                Some(Err(e)) => {
                    bump(&self.c.pressure_refusals);
                    refused = Some(e);
                }
                _ => {
                    let f = g.fresh.pop().unwrap_or(0);
                    g.loc[f as usize] = Loc::Loading;
                    self.frames[f as usize].begin_io_free();
                    return Ok((f, None));
                }
            }
        }
        match self.take_victim(g, incoming) {
            Some((f, s)) => {
                // Relaxed: the frame is owned (IO); its id was published before.
                let old = self.frames[f as usize].page.load(Ordering::Relaxed);
                g.loc[f as usize] = Loc::Loading;
                bump(&self.c.evictions);
                Ok((f, Some((old, s))))
            }
            None => {
                bump(&self.c.exhausted);
                Err(refused.unwrap_or(Error::PoolExhausted {
                    frames: self.nframes(),
                }))
            }
        }
    }

    /// The next frame of a full scan ring, if it can be reused.
    fn ring_reuse(&self, g: &mut Inner, r: &mut RingState) -> Option<(u32, Option<(PageId, u64)>)> {
        while let Some(f) = r.frames.pop_front() {
            let i = f as usize;
            if g.loc[i] != Loc::Ring(r.id) {
                continue;
            }
            let fm = &self.frames[i];
            if let Some(s) = fm.try_begin_io(RING, REF) {
                g.loc[i] = Loc::Loading;
                bump(&self.c.ring_reuses);
                bump(&self.c.evictions);
                // Relaxed: the frame is owned (IO).
                let old = fm.page.load(Ordering::Relaxed);
                r.frames.push_back(f);
                return Some((f, Some((old, s))));
            }
            // Used by a normal access (REF) or pinned: the frame leaves the
            // ring for the pool, and the ring takes another frame.
            self.release_ring_frame(g, f);
            return None;
        }
        None
    }

    /// A ring frame goes back to the pool: to the policy if a normal access
    /// used it, else to the front of the cooling stage.
    pub(crate) fn release_ring_frame(&self, g: &mut Inner, f: u32) {
        let fm = &self.frames[f as usize];
        let s = fm.clear_bits(RING);
        // Relaxed: the id of a resident (non-IO) frame, read under the lock
        // that serialises every change of it.
        let page = fm.page.load(Ordering::Relaxed);
        if s & REF != 0 {
            fm.clear_bits(REF);
            g.policy.insert(f, page);
            g.loc[f as usize] = Loc::Policy;
            let t = g.policy.tier(f);
            g.tier_entered[t as usize] += 1;
        } else {
            self.push_cooling(g, f, true);
        }
    }

    fn push_cooling(&self, g: &mut Inner, f: u32, front: bool) {
        let i = f as usize;
        g.cool_seq[i] = g.cool_seq[i].wrapping_add(1);
        if front {
            g.cooling.push_front((f, g.cool_seq[i]));
        } else {
            g.cooling.push_back((f, g.cool_seq[i]));
        }
        g.loc[i] = Loc::Cooling;
        self.frames[i].set_bits(COLD);
        g.tier_entered[Tier::Cold as usize] += 1;
    }

    /// A cooling frame was hit: back to the policy.
    fn rescue(&self, g: &mut Inner, f: u32) {
        let fm = &self.frames[f as usize];
        fm.clear_bits(COLD);
        // Relaxed: see `release_ring_frame`.
        let page = fm.page.load(Ordering::Relaxed);
        g.policy.insert(f, page);
        g.loc[f as usize] = Loc::Policy;
        g.rescued += 1;
        let t = g.policy.tier(f);
        g.tier_entered[t as usize] += 1;
    }

    /// Takes the oldest evictable frame of the cooling stage, refilling the
    /// stage from the policy as needed. `None` if nothing is evictable.
    fn take_victim(&self, g: &mut Inner, incoming: Option<PageId>) -> Option<(u32, u64)> {
        self.take_victim_where(g, incoming, 0)
    }

    fn take_victim_where(
        &self,
        g: &mut Inner,
        incoming: Option<PageId>,
        forbid: u64,
    ) -> Option<(u32, u64)> {
        // Keep the stage full (`cooling_target` pages once this victim has
        // left): the policy hands over its victims ahead of time.
        let fill = if g.cooling_target == 0 {
            0
        } else {
            g.cooling_target + 1
        };
        while g.cooling.len() < fill {
            if !self.cool_one(g, None, forbid) {
                break;
            }
        }
        for _ in 0..64 {
            let n = g.cooling.len();
            for _ in 0..n {
                let Some((f, seq)) = g.cooling.pop_front() else {
                    break;
                };
                let i = f as usize;
                if g.loc[i] != Loc::Cooling || g.cool_seq[i] != seq {
                    continue;
                }
                let fm = &self.frames[i];
                if let Some(s) = fm.try_begin_io(COLD, forbid) {
                    return Some((f, s));
                }
                let s = fm.load();
                if s & (COLD | IO) == 0 {
                    // Hit while cooling; its log entry has not arrived yet.
                    self.rescue(g, f);
                } else {
                    g.cooling.push_back((f, seq));
                }
            }
            // Everything in the stage is pinned (or dirty, for shrink): bring
            // in one more candidate.
            let inc = if g.cooling_target == 0 {
                incoming
            } else {
                None
            };
            if !self.cool_one(g, inc, forbid) {
                return None;
            }
        }
        None
    }

    /// Moves the policy's next victim into the cooling stage.
    fn cool_one(&self, g: &mut Inner, incoming: Option<PageId>, forbid: u64) -> bool {
        let frames = &self.frames;
        let mut evictable = |x: u32| frames[x as usize].load() & (BUSY | PIN_MASK | forbid) == 0;
        match g.policy.victim(incoming, &mut evictable) {
            Some(f) => {
                self.push_cooling(g, f, false);
                true
            }
            None => false,
        }
    }

    // ---------------------------------------------------------------------
    // Disk I/O on owned or pinned frames

    /// Reads `id` from disk into frame `f` (owned: IO set) and verifies it.
    fn read_owned(&self, f: u32, id: PageId) -> Result<()> {
        // SAFETY: frame `f` is inside the mapping and owned by this thread (IO
        // set): no guard exists on it, so no reference aliases these bytes.
        // Optimistic readers may read them concurrently through raw volatile
        // loads; their results are discarded by the version check.
        let buf = unsafe { core::slice::from_raw_parts_mut(self.frame_ptr(f), self.page_size) };
        self.disk.read_page(id, buf)?;
        bump(&self.c.disk_reads);
        match format::verify(buf, id) {
            Ok(_) => Ok(()),
            Err(e) => {
                if matches!(e, Error::Corrupt { .. }) {
                    bump(&self.c.corrupt);
                }
                Err(e)
            }
        }
    }

    /// Seals frame `f` (owned: IO set) as page `id` and writes it.
    fn write_owned(&self, f: u32, id: PageId) -> Result<()> {
        // SAFETY: as in `read_owned`.
        let buf = unsafe { core::slice::from_raw_parts_mut(self.frame_ptr(f), self.page_size) };
        format::seal(buf, id);
        self.disk.write_page(id, buf)?;
        bump(&self.c.disk_writes);
        Ok(())
    }

    /// Writes page `id` from frame `f`, which the caller has pinned (shared):
    /// the image is sealed in a scratch buffer, so concurrent readers and
    /// flushers of the same frame only ever read its bytes.
    fn write_pinned(&self, f: u32, id: PageId) -> Result<()> {
        // SAFETY: the caller holds a shared pin on `f`, so no writer or evictor
        // changes these bytes while the shared slice lives.
        let src = unsafe { core::slice::from_raw_parts(self.frame_ptr(f), self.page_size) };
        with_scratch(self.page_size, |buf| {
            buf[PAGE_HEADER..].copy_from_slice(&src[PAGE_HEADER..]);
            format::seal(buf, id);
            self.disk.write_page(id, buf)
        })?;
        bump(&self.c.disk_writes);
        Ok(())
    }

    /// Flushes page `id` if it is resident and dirty. With `wait`, waits for
    /// a writer (up to the latch timeout); without, skips busy pages.
    /// Returns whether a write was made.
    pub(crate) fn flush_page(&self, id: PageId, wait: bool) -> Result<bool> {
        let mut since = None;
        let mut spins = 0;
        loop {
            let Some(f) = self.table.get(id) else {
                return Ok(false);
            };
            let fm = &self.frames[f as usize];
            match fm.pin_shared(id) {
                Pin::Done(old) => {
                    let r = if old & DIRTY != 0 {
                        self.write_pinned(f, id).map(|()| {
                            // Still pinned: no writer ran since the copy.
                            fm.clear_bits(DIRTY);
                            true
                        })
                    } else {
                        Ok(false)
                    };
                    fm.unpin_shared();
                    if matches!(r, Ok(true)) {
                        bump(&self.c.flushed);
                    }
                    return r;
                }
                Pin::Busy if wait => self.backoff(id, &mut since, &mut spins)?,
                Pin::Busy => return Ok(false),
                // The frame changed hands: look the page up again.
                Pin::Moved => self.backoff(id, &mut since, &mut spins)?,
                Pin::Overflow => return Ok(false),
            }
        }
    }

    /// Flushes every dirty page and syncs the disk; returns pages written.
    pub(crate) fn flush_all(&self) -> Result<usize> {
        let mut n = 0;
        for f in 0..self.nframes() {
            let fm = &self.frames[f];
            if fm.load() & DIRTY == 0 {
                continue;
            }
            // Relaxed: a hint; `flush_page` re-checks under a pin.
            let page = fm.page.load(Ordering::Relaxed);
            if page == NO_PAGE {
                continue;
            }
            if self.flush_page(page, true)? {
                n += 1;
            }
        }
        self.disk.sync()?;
        Ok(n)
    }

    /// One round of the background flusher: dirty pages of the cooling stage
    /// first (they are next to go), then up to `budget` others, skipping any
    /// page that is busy.
    pub(crate) fn flush_round(&self, cursor: &mut usize, budget: usize) -> usize {
        let cold: Vec<u32> = {
            let g = self.lock_inner();
            g.cooling.iter().map(|&(f, _)| f).collect()
        };
        let mut written = 0;
        let try_frame = |f: usize, written: &mut usize| {
            let fm = &self.frames[f];
            let s = fm.load();
            if s & DIRTY == 0 || s & (BUSY | PIN_MASK) != 0 {
                return;
            }
            // Relaxed: a hint; `flush_page` re-checks under a pin.
            let page = fm.page.load(Ordering::Relaxed);
            if page != NO_PAGE && matches!(self.flush_page(page, false), Ok(true)) {
                *written += 1;
                bump(&self.c.flusher_writes);
            }
        };
        for f in cold {
            try_frame(f as usize, &mut written);
        }
        let n = self.nframes();
        for _ in 0..n {
            if written >= budget {
                break;
            }
            *cursor = (*cursor + 1) % n.max(1);
            try_frame(*cursor, &mut written);
        }
        written
    }

    // ---------------------------------------------------------------------
    // New, delete, shrink

    /// Allocates a page on disk and a frame for it, zeroed, latched for writing.
    pub(crate) fn new_page(self: &Arc<Self>) -> Result<(u32, PageId)> {
        let mut g = self.lock_inner();
        batch::drain(self, &mut g);
        let id = self.disk.allocate_page()?;
        if id > MAX_PAGE_ID {
            let _ = self.disk.deallocate_page(id);
            return Err(Error::PageNotFound { page: id });
        }
        let (f, victim) = match self.take_frame(&mut g, None, None) {
            Ok(x) => x,
            Err(e) => {
                drop(g);
                self.release_unused_id(id);
                return Err(e);
            }
        };
        self.table.insert(id, f);
        let victim = victim.map(|(p, s)| (p, s & DIRTY != 0));
        if let Some((old, false)) = victim {
            self.table.remove(old);
        }
        self.admit(&mut g, f, id, None);
        drop(g);
        if let Err(e) = self.evict_writeback(f, id, victim) {
            self.release_unused_id(id);
            return Err(e);
        }
        let fm = &self.frames[f as usize];
        fm.io_update(DIRTY | COLD | RING | REF, 0);
        // SAFETY: frame `f` is owned (IO set), see `read_owned`.
        unsafe { core::ptr::write_bytes(self.frame_ptr(f), 0, self.page_size) };
        // Relaxed: published by the Release in `finish_io`.
        fm.page.store(id, Ordering::Relaxed);
        fm.finish_io(WRITE | DIRTY);
        Ok((f, id))
    }

    /// Gives back an id `new_page` allocated but could not use. The disk may
    /// read an id it allocated but that was never written as a new (zero)
    /// page, so the id gets a tombstone first, as a deleted page does: until
    /// it is handed out again it reads as `PageNotFound`, in this pool and
    /// after a reopen. Best effort: `new_page` is already failing.
    fn release_unused_id(&self, id: PageId) {
        let _ = with_scratch(self.page_size, |buf| {
            format::seal_freed(buf, id);
            self.disk.write_page(id, buf)
        });
        let _ = self.disk.deallocate_page(id);
    }

    /// Drops page `id` from the pool and from the disk.
    pub(crate) fn delete_page(self: &Arc<Self>, id: PageId) -> Result<()> {
        if id > MAX_PAGE_ID || id >= self.disk.num_pages() {
            return Err(Error::PageNotFound { page: id });
        }
        {
            let mut g = self.lock_inner();
            batch::drain(self, &mut g);
            if let Some(f) = self.table.get(id) {
                let i = f as usize;
                let fm = &self.frames[i];
                if fm.try_begin_io(0, 0).is_none() {
                    let s = fm.load();
                    return Err(Error::PagePinned {
                        page: id,
                        pins: (pins(s) + u64::from(s & WRITE != 0)) as u32,
                    });
                }
                self.table.remove(id);
                if g.loc[i] == Loc::Policy {
                    g.policy.remove(f, id);
                }
                g.loc[i] = Loc::Free;
                // Relaxed: published by the Release in `finish_io`.
                fm.page.store(NO_PAGE, Ordering::Relaxed);
                fm.io_update(DIRTY | COLD | RING | REF, 0);
                fm.finish_io(0);
                g.free.push(f);
            }
        }
        with_scratch(self.page_size, |buf| {
            format::seal_freed(buf, id);
            self.disk.write_page(id, buf)
        })?;
        bump(&self.c.disk_writes);
        self.disk.deallocate_page(id)
    }

    /// Releases clean, unpinned frames until `bytes` are returned to the OS.
    pub(crate) fn shrink_clean(self: &Arc<Self>, bytes: usize) -> usize {
        let mut g = self.lock_inner();
        batch::drain(self, &mut g);
        let mut released = 0;
        while released < bytes {
            let f = if let Some(f) = g.free.pop() {
                f
            } else {
                let Some((f, _)) = self.take_victim_where(&mut g, None, DIRTY) else {
                    break;
                };
                let fm = &self.frames[f as usize];
                // Relaxed: the frame is owned (IO).
                let page = fm.page.load(Ordering::Relaxed);
                self.table.remove(page);
                fm.page.store(NO_PAGE, Ordering::Relaxed);
                fm.io_update(COLD | RING | REF, 0);
                fm.finish_io(0);
                bump(&self.c.evictions);
                f
            };
            g.loc[f as usize] = Loc::Free;
            // SAFETY: frame `f` is free: no guard, no page, nobody will read it
            // until it is loaded again (which overwrites all of it).
            unsafe { sys::advise(self.frame_ptr(f), self.page_size, sys::Advice::DontNeed) };
            g.fresh.push(f);
            released += self.page_size;
        }
        // Relaxed: a statistics counter.
        self.c
            .released
            .fetch_add(released as u64, Ordering::Relaxed);
        released
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

    // ---------------------------------------------------------------------
    // Observability

    pub(crate) fn tier_of(self: &Arc<Self>, id: PageId) -> Option<Tier> {
        let mut g = self.lock_inner();
        batch::drain(self, &mut g);
        let f = self.table.get(id)?;
        match g.loc[f as usize] {
            Loc::Policy => Some(g.policy.tier(f)),
            Loc::Cooling | Loc::Ring(_) => Some(Tier::Cold),
            Loc::Free | Loc::Loading => None,
        }
    }

    pub(crate) fn stats(self: &Arc<Self>) -> BufferPoolStats {
        let mut g = self.lock_inner();
        batch::drain(self, &mut g);
        let mut resident = [0usize; 3];
        let (mut free, mut pinned, mut dirty, mut ring) = (0, 0, 0, 0);
        for (f, loc) in g.loc.iter().enumerate() {
            match *loc {
                Loc::Policy => resident[g.policy.tier(f as u32) as usize] += 1,
                Loc::Cooling => resident[Tier::Cold as usize] += 1,
                Loc::Ring(_) => {
                    resident[Tier::Cold as usize] += 1;
                    ring += 1;
                }
                Loc::Free => free += 1,
                Loc::Loading => {}
            }
            let s = self.frames[f].load();
            if pins(s) > 0 || s & WRITE != 0 {
                pinned += 1;
            }
            if s & DIRTY != 0 {
                dirty += 1;
            }
        }
        let misses = get(&self.c.misses);
        let total = g.hits + misses;
        let pstats = g.policy.stats();
        let tier = |t: Tier| TierStats {
            resident: resident[t as usize],
            hits: g.tier_hits[t as usize],
            entered: g.tier_entered[t as usize]
                + if t == Tier::Hot { pstats.promotions } else { 0 },
        };
        BufferPoolStats {
            policy: self.kind,
            frames: self.nframes(),
            page_size: self.page_size,
            hits: g.hits,
            misses,
            hit_ratio: if total == 0 {
                0.0
            } else {
                g.hits as f64 / total as f64
            },
            evictions: get(&self.c.evictions),
            dirty_writebacks: get(&self.c.writebacks),
            flushed_pages: get(&self.c.flushed),
            flusher_writes: get(&self.c.flusher_writes),
            disk_reads: get(&self.c.disk_reads),
            disk_writes: get(&self.c.disk_writes),
            resident: resident.iter().sum(),
            free,
            pinned,
            dirty,
            optimistic_reads: g.optimistic,
            optimistic_retries: get(&self.c.optimistic_retries),
            exhausted: get(&self.c.exhausted),
            corrupt_pages: get(&self.c.corrupt),
            released_bytes: get(&self.c.released),
            pressure_refusals: get(&self.c.pressure_refusals),
            ring_frames: ring,
            ring_reuses: get(&self.c.ring_reuses),
            rescued: g.rescued,
            cooling_target: g.cooling_target,
            hot: tier(Tier::Hot),
            warm: tier(Tier::Warm),
            cold: tier(Tier::Cold),
            policy_stats: pstats,
            huge_pages: self.mem.huge,
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
