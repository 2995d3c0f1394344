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
//! are "dirty" until purged with `MADV_DONTNEED` after the decay delay; fully free
//! segments beyond a small reserve are unmapped.

use core::ptr;

use super::slab::Slab;
use crate::sync::{AtomicU64, AtomicUsize, Ordering, RawLock, UnsafeCell};
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
/// Invariants: `magic == MAGIC`; `slabs[i]` describes unit `i`. The fields
/// `next`, `prev`, `free_mask`, `dirty_mask`, `last_release` are guarded by the
/// segment manager's lock; each `slabs[i]` in use is guarded by its class's lock.
#[repr(C)]
pub(crate) struct SegmentHeader {
    magic: usize,
    next: *mut SegmentHeader,
    prev: *mut SegmentHeader,
    /// Bit `i` set: unit `i` is free.
    free_mask: u32,
    /// Bit `i` set: unit `i` is free and its pages may still be resident.
    dirty_mask: u32,
    last_release: u64,
    pub(crate) slabs: [Slab; UNITS],
}

impl SegmentHeader {
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
}

struct ManagerInner {
    /// Segments with at least one free unit (doubly linked through next/prev).
    with_free: *mut SegmentHeader,
    next_purge_check: u64,
}

/// Owner of all segments and their free units.
pub(crate) struct SegmentManager {
    lock: RawLock,
    inner: UnsafeCell<ManagerInner>,
    pub(crate) counters: SegmentCounters,
}

// SAFETY: `inner` is only accessed with `lock` held; the raw pointers it holds
// refer to process-wide mappings that any thread may use.
unsafe impl Sync for SegmentManager {}

/// Fully free segments kept mapped (purged) to absorb churn before unmapping.
const RETAIN_EMPTY: usize = 1;

impl SegmentManager {
    /// An empty manager.
    pub(crate) const fn new() -> Self {
        Self {
            lock: RawLock::new(),
            inner: UnsafeCell::new(ManagerInner {
                with_free: ptr::null_mut(),
                next_purge_check: 0,
            }),
            counters: SegmentCounters {
                segments: AtomicUsize::new(0),
                units_in_use: AtomicUsize::new(0),
                purged_bytes: AtomicU64::new(0),
                purges: AtomicU64::new(0),
                unmapped_segments: AtomicU64::new(0),
            },
        }
    }

    pub(crate) fn lock(&self) -> &RawLock {
        &self.lock
    }

    /// Takes `n` (1..=UNITS) consecutive free units; returns the segment and the
    /// first unit index, or `None` when the OS refuses a new segment.
    pub(crate) fn acquire(&self, n: usize) -> Option<(*mut SegmentHeader, usize)> {
        debug_assert!((1..=UNITS).contains(&n));
        let _g = self.lock.guard();
        self.inner.with_mut(|inner| {
            // SAFETY: lock held; list nodes are live segment headers.
            unsafe {
                let mut seg = (*inner).with_free;
                while !seg.is_null() {
                    if let Some(i) = find_run((*seg).free_mask, n) {
                        self.take(inner, seg, i, n);
                        return Some((seg, i));
                    }
                    seg = (*seg).next;
                }
                let seg = self.new_segment(inner)?;
                self.take(inner, seg, 0, n);
                Some((seg, 0))
            }
        })
    }

    /// Gives back units `[first, first+n)` of `seg`.
    ///
    /// # Safety
    /// The units were obtained from `acquire` and nothing lives in them any more.
    pub(crate) unsafe fn release(&self, seg: *mut SegmentHeader, first: usize, n: usize) {
        let now = sys::now_ns();
        let _g = self.lock.guard();
        self.inner.with_mut(|inner| {
            // SAFETY: lock held; `seg` is live (caller).
            unsafe {
                let bits = run_mask(first, n);
                debug_assert_eq!((*seg).free_mask & bits, 0);
                if (*seg).free_mask == 0 {
                    push(&mut (*inner).with_free, seg);
                }
                (*seg).free_mask |= bits;
                (*seg).dirty_mask |= bits;
                (*seg).last_release = now;
                for u in first..first + n {
                    (*seg).slabs[u] = Slab::EMPTY;
                }
            }
        });
        // Relaxed: a statistic.
        self.counters.units_in_use.fetch_sub(n, Ordering::Relaxed);
        let delay = super::purge_delay_ns();
        self.inner.with_mut(|inner| {
            // SAFETY: lock still held (guard `_g` lives to the end of the function).
            unsafe {
                if now >= (*inner).next_purge_check {
                    (*inner).next_purge_check = now + delay.max(1_000_000) / 2;
                    self.purge_locked(inner, now, delay);
                }
            }
        });
    }

    /// Purges dirty free units older than `delay` ns (all of them with
    /// `delay == 0`), and unmaps fully free segments beyond the reserve.
    pub(crate) fn purge(&self, delay: u64) {
        let now = sys::now_ns();
        let _g = self.lock.guard();
        // SAFETY: lock held.
        self.inner
            .with_mut(|inner| unsafe { self.purge_locked(inner, now, delay) });
    }

    /// # Safety
    /// The manager's lock is held.
    unsafe fn purge_locked(&self, inner: *mut ManagerInner, now: u64, delay: u64) {
        let mut retained = 0;
        // SAFETY: lock held (caller); nodes are live segments; a segment is unlinked
        // before it is unmapped and never touched afterwards.
        unsafe {
            let mut seg = (*inner).with_free;
            while !seg.is_null() {
                let next = (*seg).next;
                if (*seg).free_mask == ALL_UNITS {
                    if retained >= RETAIN_EMPTY {
                        unlink(&mut (*inner).with_free, seg);
                        sys::unmap(seg.cast(), SEGMENT_SIZE);
                        // Relaxed: statistics.
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
                if (*seg).dirty_mask != 0 && now.saturating_sub((*seg).last_release) >= delay {
                    self.purge_segment(seg);
                }
                seg = next;
            }
        }
    }

    /// `MADV_DONTNEED` on each run of dirty units.
    ///
    /// # Safety
    /// Lock held; `seg` live.
    unsafe fn purge_segment(&self, seg: *mut SegmentHeader) {
        // SAFETY: lock held (caller); the dirty units are free, so no object lives in
        // them; unit 0's header page is skipped.
        unsafe {
            let mut mask = (*seg).dirty_mask;
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
                sys::advise(start, bytes, sys::Advice::DontNeed);
                // Relaxed: statistics.
                self.counters
                    .purged_bytes
                    .fetch_add(bytes as u64, Ordering::Relaxed);
                self.counters.purges.fetch_add(1, Ordering::Relaxed);
                mask &= !run_mask(first, len);
            }
            (*seg).dirty_mask = 0;
        }
    }

    /// # Safety
    /// Lock held.
    unsafe fn new_segment(&self, inner: *mut ManagerInner) -> Option<*mut SegmentHeader> {
        let seg = sys::map_aligned(SEGMENT_SIZE, SEGMENT_SIZE)?
            .as_ptr()
            .cast::<SegmentHeader>();
        // SAFETY: a fresh zeroed mapping of SEGMENT_SIZE bytes, exclusively ours;
        // zero is a valid `Slab::EMPTY` for every descriptor.
        unsafe {
            (*seg).magic = MAGIC;
            (*seg).free_mask = ALL_UNITS;
            (*seg).dirty_mask = 0;
            push(&mut (*inner).with_free, seg);
        }
        // Relaxed: a statistic.
        self.counters.segments.fetch_add(1, Ordering::Relaxed);
        Some(seg)
    }

    /// # Safety
    /// Lock held; units `[i, i+n)` of `seg` are free.
    unsafe fn take(&self, inner: *mut ManagerInner, seg: *mut SegmentHeader, i: usize, n: usize) {
        // SAFETY: lock held (caller).
        unsafe {
            let bits = run_mask(i, n);
            (*seg).free_mask &= !bits;
            (*seg).dirty_mask &= !bits;
            if (*seg).free_mask == 0 {
                unlink(&mut (*inner).with_free, seg);
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
        m.purge(0);
        // One empty segment retained, the other unmapped.
        assert_eq!(m.counters.segments.load(Ordering::Relaxed), 1);
        assert_eq!(m.counters.unmapped_segments.load(Ordering::Relaxed), 1);
        assert_eq!(m.counters.units_in_use.load(Ordering::Relaxed), 0);
        m.purge(0);
    }
}
