//! Segments: 2 MiB regions aligned to 2 MiB, cut into 32 units of 64 KiB.
//!
//! A segment starts with its header (one page), which holds one [`Slab`]
//! descriptor per unit. A slab spans one or more consecutive units; any pointer
//! inside a segment finds its slab in O(1): mask to the segment, shift to the
//! unit, follow the unit's `offset` back to the slab's first unit. No global lookup
//! and no lock is needed to do so.
//!
//! The [`SegmentManager`] owns the free units of all segments (one lock, taken
//! only when a slab is created or released — once per 64 KiB or more). Units freed
//! decay in two stages, as jemalloc's extents do: *dirty* (resident) until they
//! have been free for the dirty delay, then *muzzy* (`MADV_FREE`: the kernel may
//! take the pages, and reuse costs no fault if it did not) until the muzzy delay
//! has passed too, then purged (`MADV_DONTNEED`). Fully free segments beyond a
//! small reserve are unmapped.

use core::ptr;

use super::owner::Owner;
use super::segment_map;
use super::slab::Slab;
use crate::sync::{AtomicU16, AtomicU64, AtomicUsize, Lock, Ordering};
use crate::sys;

/// Segment size and alignment.
pub(crate) const SEGMENT_SIZE: usize = 2 << 20;
/// Unit (the granule slabs are made of).
pub(crate) const UNIT_SIZE: usize = 64 << 10;
/// Units per segment.
pub(crate) const UNITS: usize = SEGMENT_SIZE / UNIT_SIZE;
/// Bytes reserved for the header at the start of unit 0.
pub(crate) const HEADER_SIZE: usize = 4096;
const MAGIC: usize = 0x5275_7374_7953_6567; // "RustySeg"
const ALL_UNITS: u32 = u32::MAX; // UNITS == 32

const _: () = assert!(UNITS == 32);
const _: () = assert!(core::mem::size_of::<SegmentHeader>() <= HEADER_SIZE);

/// The header at the start of every segment.
///
/// Invariants: `magic == MAGIC`; `slabs[i]` describes unit `i`; `dirty_mask`
/// and `muzzy_mask` are disjoint subsets of `free_mask`; `stamps[i]` is when free
/// unit `i` entered its current stage. The fields `next`, `prev`, `free_mask`,
/// `dirty_mask`, `muzzy_mask` and `stamps` are guarded by the segment manager's
/// lock; each `slabs[i]` in use and `owners[i]` are guarded by its class's
/// lock for writing; `owners` is read without it by frees.
#[repr(C)]
pub(crate) struct SegmentHeader {
    magic: usize,
    /// Per unit: the owner of the slab the unit belongs to (0 when shared or free).
    owners: Owners,
    next: *mut SegmentHeader,
    prev: *mut SegmentHeader,
    /// Bit `i` set: unit `i` is free.
    free_mask: u32,
    /// Bit `i` set: unit `i` is free and its pages may still be resident.
    dirty_mask: u32,
    /// Bit `i` set: unit `i` is free and was given back with `MADV_FREE`.
    muzzy_mask: u32,
    /// Per unit: when it was freed (dirty) or made muzzy (ns).
    stamps: [u64; UNITS],
    pub(crate) slabs: [Slab; UNITS],
}

/// One owner per unit, in a cache line of its own: every free reads it, and
/// it is written only when a slab is created, adopted, handed over or released.
#[repr(C, align(64))]
struct Owners([AtomicU16; UNITS]);

impl SegmentHeader {
    /// The owner of the slab holding `p` (the free fast path: a mask, a shift and
    /// one relaxed load). A racing change of owner is harmless: either answer
    /// sends the object to a magazine of its class.
    ///
    /// # Safety
    /// `p` points into a unit of a live segment that belongs to a slab.
    #[inline(always)]
    pub(crate) unsafe fn owner_of(p: *const u8) -> Owner {
        let seg = Self::of(p);
        let unit = ((p as usize) & (SEGMENT_SIZE - 1)) / UNIT_SIZE;
        // SAFETY: `seg` is a live segment (caller), so its header is mapped and
        // initialised; `unit < UNITS`.
        unsafe { (*seg).owners.0.get_unchecked(unit) }.load(Ordering::Relaxed)
    }

    /// Sets the owner of units `first..first + span` of `seg` (one slab).
    ///
    /// # Safety
    /// `seg` is a live segment and the units form one slab whose class lock the
    /// caller holds.
    #[inline]
    pub(crate) unsafe fn set_owner(seg: *mut SegmentHeader, first: usize, span: usize, o: Owner) {
        for u in first..first + span {
            // SAFETY: live segment (caller); `u < UNITS` for a slab's units.
            // Relaxed: readers accept either owner (see `owner_of`).
            unsafe { (*seg).owners.0[u].store(o, Ordering::Relaxed) };
        }
    }

    /// The segment containing `p`.
    #[inline(always)]
    pub(crate) fn of(p: *const u8) -> *mut SegmentHeader {
        ((p as usize) & !(SEGMENT_SIZE - 1)) as *mut SegmentHeader
    }

    /// The descriptor of the slab containing `p`.
    ///
    /// # Safety
    /// `p` points into a unit of a live segment that belongs to a slab.
    #[inline]
    pub(crate) unsafe fn slab_of(p: *const u8) -> *mut Slab {
        let seg = Self::of(p);
        let unit = ((p as usize) & (SEGMENT_SIZE - 1)) / UNIT_SIZE;
        // SAFETY: the caller guarantees `seg` is a live segment; `unit < UNITS`.
        unsafe {
            let d = ptr::addr_of_mut!((*seg).slabs[unit]);
            let first = unit - (*d).offset as usize;
            debug_assert_eq!((*seg).magic, MAGIC);
            ptr::addr_of_mut!((*seg).slabs[first])
        }
    }

    /// Start address of unit `i` of this segment.
    pub(crate) fn unit_addr(seg: *mut SegmentHeader, i: usize) -> *mut u8 {
        (seg as usize + i * UNIT_SIZE) as *mut u8
    }
}

/// Counters of the segment layer (read racily for stats).
#[derive(Debug)]
pub(crate) struct SegmentCounters {
    pub(crate) segments: AtomicUsize,
    pub(crate) units_in_use: AtomicUsize,
    pub(crate) purged_bytes: AtomicU64,
    pub(crate) purges: AtomicU64,
    pub(crate) unmapped_segments: AtomicU64,
    /// Bytes given back with `MADV_FREE` (the first decay stage).
    pub(crate) lazily_freed_bytes: AtomicU64,
    /// Free units not yet purged (dirty or muzzy), for the background purger.
    pub(crate) unpurged_units: AtomicUsize,
}

/// What the manager's lock guards: the list of segments with free units, and
/// (through it) those segments' `next`, `prev`, `free_mask`, `dirty_mask`,
/// `muzzy_mask` and `stamps`.
///
/// Invariant: `with_free` links exactly the mapped segments with a free unit.
struct ManagerInner {
    /// Segments with at least one free unit (doubly linked through next/prev).
    with_free: *mut SegmentHeader,
    next_purge_check: u64,
}

// SAFETY: the segments a `ManagerInner` links are process-wide mappings with no
// thread affinity; the `Lock` orders every access.
unsafe impl Send for ManagerInner {}

/// Owner of all segments and their free units.
pub(crate) struct SegmentManager {
    inner: Lock<ManagerInner>,
    pub(crate) counters: SegmentCounters,
}

/// Fully free segments kept mapped (purged) to absorb churn before unmapping.
const RETAIN_EMPTY: usize = 1;

impl SegmentManager {
    /// An empty manager.
    pub(crate) const fn new() -> Self {
        Self {
            inner: Lock::new(ManagerInner {
                with_free: ptr::null_mut(),
                next_purge_check: 0,
            }),
            counters: SegmentCounters {
                segments: AtomicUsize::new(0),
                units_in_use: AtomicUsize::new(0),
                purged_bytes: AtomicU64::new(0),
                purges: AtomicU64::new(0),
                unmapped_segments: AtomicU64::new(0),
                lazily_freed_bytes: AtomicU64::new(0),
                unpurged_units: AtomicUsize::new(0),
            },
        }
    }

    /// The raw lock, for the fork handlers.
    pub(crate) fn raw_lock(&self) -> &crate::sync::RawLock {
        self.inner.raw()
    }

    /// Takes `n` (1..=UNITS) consecutive free units; returns the segment and the
    /// first unit index, or `None` when the OS refuses a new segment.
    pub(crate) fn acquire(&self, n: usize) -> Option<(*mut SegmentHeader, usize)> {
        debug_assert!((1..=UNITS).contains(&n));
        let mut inner = self.inner.lock();
        // SAFETY: the lock is held; list nodes are live segment headers.
        unsafe {
            let mut seg = inner.with_free;
            while !seg.is_null() {
                if let Some(i) = find_run((*seg).free_mask, n) {
                    self.take(&mut inner, seg, i, n);
                    return Some((seg, i));
                }
                seg = (*seg).next;
            }
            let seg = self.new_segment(&mut inner)?;
            self.take(&mut inner, seg, 0, n);
            Some((seg, 0))
        }
    }

    /// Gives back units `[first, first+n)` of `seg`.
    ///
    /// # Safety
    /// The units were obtained from `acquire` and nothing lives in them any more.
    pub(crate) unsafe fn release(&self, seg: *mut SegmentHeader, first: usize, n: usize) {
        let now = sys::now_ns();
        let mut inner = self.inner.lock();
        // SAFETY: the lock is held; `seg` is live (caller).
        unsafe {
            let bits = run_mask(first, n);
            debug_assert_eq!((*seg).free_mask & bits, 0);
            if (*seg).free_mask == 0 {
                push(&mut inner.with_free, seg);
            }
            (*seg).free_mask |= bits;
            (*seg).dirty_mask |= bits;
            for u in first..first + n {
                (*seg).slabs[u] = Slab::EMPTY;
                (*seg).stamps[u] = now;
            }
        }
        // Relaxed: statistics and a hint for the purger.
        self.counters.units_in_use.fetch_sub(n, Ordering::Relaxed);
        self.counters.unpurged_units.fetch_add(n, Ordering::Relaxed);
        let (dirty, muzzy) = (super::purge_delay_ns(), crate::options::muzzy_delay_ns());
        if now >= inner.next_purge_check {
            inner.next_purge_check = now + (dirty + muzzy).max(1_000_000) / 4;
            // SAFETY: the lock is held (the guard).
            unsafe { self.decay_locked(&mut inner, now, dirty, muzzy) };
        }
        drop(inner);
        crate::sys::purge_signal::notify();
    }

    /// Runs the decay (see the module notes): free units dirty for `dirty` ns
    /// become muzzy, units muzzy for `muzzy` more ns are purged (with
    /// `muzzy == 0`, dirty units are purged directly), and fully free segments
    /// beyond the reserve are unmapped. `purge(0, 0)` purges everything now.
    pub(crate) fn decay(&self, dirty: u64, muzzy: u64) {
        let now = sys::now_ns();
        let mut inner = self.inner.lock();
        // SAFETY: the lock is held (the guard).
        unsafe { self.decay_locked(&mut inner, now, dirty, muzzy) };
    }

    /// Purges every free unit now and unmaps fully free segments beyond the
    /// reserve.
    pub(crate) fn purge_all(&self) {
        self.decay(0, 0);
    }

    /// Whether some free unit is not purged yet.
    pub(crate) fn has_unpurged(&self) -> bool {
        // Relaxed: a hint; the purger runs again when it is stale.
        self.counters.unpurged_units.load(Ordering::Relaxed) != 0
    }

    /// # Safety
    /// `inner` is the manager's guarded state (its lock is held).
    unsafe fn decay_locked(&self, inner: &mut ManagerInner, now: u64, dirty: u64, muzzy: u64) {
        let mut retained = 0;
        // SAFETY: the lock is held (caller); nodes are live segments; a segment
        // is unlinked before it is unmapped and never touched afterwards.
        unsafe {
            let mut seg = inner.with_free;
            while !seg.is_null() {
                let next = (*seg).next;
                if (*seg).free_mask == ALL_UNITS {
                    if retained >= RETAIN_EMPTY {
                        let unpurged = ((*seg).dirty_mask | (*seg).muzzy_mask).count_ones();
                        unlink(&mut inner.with_free, seg);
                        segment_map::remove(seg.cast());
                        sys::unmap(seg.cast(), SEGMENT_SIZE);
                        // Relaxed: statistics.
                        self.counters
                            .unpurged_units
                            .fetch_sub(unpurged as usize, Ordering::Relaxed);
                        self.counters.segments.fetch_sub(1, Ordering::Relaxed);
                        self.counters
                            .unmapped_segments
                            .fetch_add(1, Ordering::Relaxed);
                        self.counters
                            .purged_bytes
                            .fetch_add(SEGMENT_SIZE as u64, Ordering::Relaxed);
                        seg = next;
                        continue;
                    }
                    retained += 1;
                }
                self.decay_segment(seg, now, dirty, muzzy);
                seg = next;
            }
        }
    }

    /// Moves the units of `seg` that are due to their next stage.
    ///
    /// # Safety
    /// The manager's lock is held; `seg` is live.
    unsafe fn decay_segment(&self, seg: *mut SegmentHeader, now: u64, dirty: u64, muzzy: u64) {
        // SAFETY: the lock is held (caller); dirty and muzzy units are free, so
        // no object lives in them.
        unsafe {
            let (mut to_free, mut to_purge) = (0u32, 0u32);
            let mut bits = (*seg).dirty_mask | (*seg).muzzy_mask;
            while bits != 0 {
                let u = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let age = now.saturating_sub((*seg).stamps[u]);
                let is_dirty = (*seg).dirty_mask & (1 << u) != 0;
                if is_dirty && age >= dirty {
                    if muzzy == 0 {
                        to_purge |= 1 << u;
                    } else {
                        to_free |= 1 << u;
                    }
                } else if !is_dirty && age >= muzzy {
                    to_purge |= 1 << u;
                }
            }
            if to_free != 0 {
                let bytes = self.advise_runs(seg, to_free, sys::Advice::Free);
                (*seg).dirty_mask &= !to_free;
                (*seg).muzzy_mask |= to_free;
                let mut b = to_free;
                while b != 0 {
                    (*seg).stamps[b.trailing_zeros() as usize] = now;
                    b &= b - 1;
                }
                // Relaxed: a statistic.
                self.counters
                    .lazily_freed_bytes
                    .fetch_add(bytes as u64, Ordering::Relaxed);
            }
            if to_purge != 0 {
                let bytes = self.advise_runs(seg, to_purge, sys::Advice::DontNeed);
                (*seg).dirty_mask &= !to_purge;
                (*seg).muzzy_mask &= !to_purge;
                // Relaxed: statistics and the purger's hint.
                self.counters
                    .purged_bytes
                    .fetch_add(bytes as u64, Ordering::Relaxed);
                self.counters
                    .unpurged_units
                    .fetch_sub(to_purge.count_ones() as usize, Ordering::Relaxed);
            }
        }
    }

    /// `advice` on each run of units in `mask`; returns the bytes advised.
    ///
    /// # Safety
    /// The manager's lock is held; `seg` is live; the units in `mask` are free.
    unsafe fn advise_runs(&self, seg: *mut SegmentHeader, mask: u32, advice: sys::Advice) -> usize {
        let mut total = 0;
        let mut mask = mask;
        // SAFETY: the units are free (caller), so no object lives in them; unit
        // 0's header page is skipped.
        unsafe {
            while mask != 0 {
                let first = mask.trailing_zeros() as usize;
                let len = (!(mask >> first)).trailing_zeros() as usize;
                let mut start = SegmentHeader::unit_addr(seg, first);
                let mut bytes = len * UNIT_SIZE;
                if first == 0 {
                    let skip = HEADER_SIZE.max(sys::page_size());
                    start = start.add(skip);
                    bytes -= skip;
                }
                sys::advise(start, bytes, advice);
                // Relaxed: a statistic.
                self.counters.purges.fetch_add(1, Ordering::Relaxed);
                total += bytes;
                mask &= !run_mask(first, len);
            }
        }
        total
    }

    /// # Safety
    /// `inner` is the manager's guarded state (its lock is held).
    unsafe fn new_segment(&self, inner: &mut ManagerInner) -> Option<*mut SegmentHeader> {
        let seg = sys::map_aligned(SEGMENT_SIZE, SEGMENT_SIZE)?
            .as_ptr()
            .cast::<SegmentHeader>();
        if !segment_map::insert(seg.cast()) {
            // SAFETY: the mapping was just made and nothing refers to it.
            unsafe { sys::unmap(seg.cast(), SEGMENT_SIZE) };
            return None;
        }
        // SAFETY: a fresh zeroed mapping of SEGMENT_SIZE bytes, exclusively ours;
        // zero is a valid `Slab::EMPTY` for every descriptor.
        unsafe {
            (*seg).magic = MAGIC;
            (*seg).free_mask = ALL_UNITS;
            (*seg).dirty_mask = 0;
            (*seg).muzzy_mask = 0;
            push(&mut inner.with_free, seg);
        }
        // Relaxed: a statistic.
        self.counters.segments.fetch_add(1, Ordering::Relaxed);
        Some(seg)
    }

    /// # Safety
    /// `inner` is the manager's guarded state (its lock is held); units
    /// `[i, i+n)` of `seg` are free.
    unsafe fn take(&self, inner: &mut ManagerInner, seg: *mut SegmentHeader, i: usize, n: usize) {
        // SAFETY: the lock is held (caller); `seg` is live.
        unsafe {
            let bits = run_mask(i, n);
            let unpurged = ((*seg).dirty_mask | (*seg).muzzy_mask) & bits;
            (*seg).free_mask &= !bits;
            (*seg).dirty_mask &= !bits;
            (*seg).muzzy_mask &= !bits;
            // Relaxed: the purger's hint.
            self.counters
                .unpurged_units
                .fetch_sub(unpurged.count_ones() as usize, Ordering::Relaxed);
            if (*seg).free_mask == 0 {
                unlink(&mut inner.with_free, seg);
            }
        }
        // Relaxed: a statistic.
        self.counters.units_in_use.fetch_add(n, Ordering::Relaxed);
    }
}

fn run_mask(first: usize, n: usize) -> u32 {
    if n >= 32 {
        ALL_UNITS
    } else {
        ((1u32 << n) - 1) << first
    }
}

/// Lowest index of a run of `n` set bits in `mask`.
fn find_run(mask: u32, n: usize) -> Option<usize> {
    let mut x = mask;
    for _ in 1..n {
        x &= x >> 1;
    }
    (x != 0).then(|| x.trailing_zeros() as usize)
}

/// # Safety
/// `seg` is a live segment not on the list; lock held.
unsafe fn push(head: &mut *mut SegmentHeader, seg: *mut SegmentHeader) {
    // SAFETY: see the function's contract.
    unsafe {
        (*seg).prev = ptr::null_mut();
        (*seg).next = *head;
        if !(*head).is_null() {
            (**head).prev = seg;
        }
    }
    *head = seg;
}

/// # Safety
/// `seg` is on the list; lock held.
unsafe fn unlink(head: &mut *mut SegmentHeader, seg: *mut SegmentHeader) {
    // SAFETY: see the function's contract.
    unsafe {
        let (p, n) = ((*seg).prev, (*seg).next);
        if p.is_null() {
            *head = n;
        } else {
            (*p).next = n;
        }
        if !n.is_null() {
            (*n).prev = p;
        }
        (*seg).next = ptr::null_mut();
        (*seg).prev = ptr::null_mut();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_found_lowest_first() {
        assert_eq!(find_run(0b1011_1000, 3), Some(3));
        assert_eq!(find_run(0b1011_1000, 4), None);
        assert_eq!(find_run(u32::MAX, 32), Some(0));
        assert_eq!(find_run(0, 1), None);
        assert_eq!(run_mask(2, 3), 0b11100);
    }

    #[test]
    fn acquire_release_and_purge_cycle() {
        let m = SegmentManager::new();
        let (seg, i) = m.acquire(4).expect("map");
        assert_eq!(seg as usize % SEGMENT_SIZE, 0);
        let (seg2, j) = m.acquire(28).expect("fits in the same segment");
        assert_eq!(seg, seg2);
        assert_eq!(j, 4);
        // Segment full: next acquire maps a second one.
        let (seg3, _) = m.acquire(1).expect("map");
        assert_ne!(seg3, seg);
        // SAFETY: the units were acquired above and hold nothing.
        unsafe {
            let p = SegmentHeader::unit_addr(seg, 5);
            p.write_bytes(0xAB, UNIT_SIZE);
            m.release(seg, 4, 28);
            m.release(seg, i, 4);
            m.release(seg3, 0, 1);
        }
        m.purge_all();
        // One empty segment retained, the other unmapped.
        assert_eq!(m.counters.segments.load(Ordering::Relaxed), 1);
        assert_eq!(m.counters.unmapped_segments.load(Ordering::Relaxed), 1);
        assert_eq!(m.counters.units_in_use.load(Ordering::Relaxed), 0);
        assert_eq!(m.counters.unpurged_units.load(Ordering::Relaxed), 0);
        m.purge_all();
    }
}
