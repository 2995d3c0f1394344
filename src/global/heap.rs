//! The process-wide heap behind every `RustyAlloc`: segments, one central store
//! and one depot per size class, the magazine pool and the thread-cache registry.
//!
//! Lock order (a thread holding one may take only those to its right):
//! registry · pool · depot[c] · central[c] → segments · large.
//! In practice only `central → segments` nests; the others are taken alone.

use core::ptr;

use crate::slab::depot::Depot;
use crate::slab::magazine::{MAG_MAX, Magazine, MagazinePool};
use crate::slab::segment::SegmentManager;
use crate::slab::size_class::{CLASS_SIZE, NUM_CLASSES};
use crate::slab::slab::Central;
use crate::sync::{AtomicU64, Ordering, RawLock};

/// All shared allocator state.
pub(crate) struct Heap {
    pub(crate) segments: SegmentManager,
    pub(crate) central: [Central; NUM_CLASSES],
    pub(crate) depots: [Depot; NUM_CLASSES],
    pub(crate) pool: MagazinePool,
    pub(crate) registry: RawLock,
    /// Next time (ns) a depot working-set trim is due.
    pub(crate) next_trim: AtomicU64,
    pub(crate) trims: AtomicU64,
}

/// The one heap.
pub(crate) static HEAP: Heap = Heap {
    segments: SegmentManager::new(),
    central: [const { Central::new() }; NUM_CLASSES],
    depots: [const { Depot::new() }; NUM_CLASSES],
    pool: MagazinePool::new(),
    registry: RawLock::new(),
    next_trim: AtomicU64::new(0),
    trims: AtomicU64::new(0),
};

/// Rounds per magazine of `class`: the configured count for small objects,
/// fewer for big ones so a thread caches at most ~128 KiB per magazine.
#[inline]
pub(crate) fn magazine_cap(class: usize) -> u32 {
    let by_bytes = (128 << 10) / CLASS_SIZE[class] as usize;
    by_bytes
        .clamp(2, MAG_MAX)
        .min(crate::options::magazine_rounds().max(1)) as u32
}

impl Heap {
    /// One object of `class` straight from the slabs (no thread cache).
    pub(crate) fn alloc_direct(&self, class: usize) -> *mut u8 {
        let mut one = [ptr::null_mut(); 1];
        if self.central[class].alloc_batch(class, &self.segments, &mut one) == 1 {
            one[0]
        } else {
            ptr::null_mut()
        }
    }

    /// Frees one object of `class` straight to its slab.
    ///
    /// # Safety
    /// `p` is the start of a live object of `class`, not used afterwards.
    pub(crate) unsafe fn free_direct(&self, class: usize, p: *mut u8) {
        // SAFETY: forwarded contract.
        unsafe { self.central[class].free_batch(&self.segments, &[p]) }
    }

    /// Empties `m` into the slabs of `class`.
    ///
    /// # Safety
    /// `m` is a magazine of `class` owned by the caller.
    pub(crate) unsafe fn flush_magazine(&self, class: usize, m: *mut Magazine) {
        // SAFETY: the rounds are free objects of `class` (magazine invariant).
        unsafe {
            let n = (*m).len();
            if n != 0 {
                self.central[class].free_batch(&self.segments, &(&(*m).rounds)[..n]);
                (*m).set_len(0);
            }
        }
    }

    /// Releases depot magazines outside the working set (all with `all`) of every
    /// class to the slabs, and their magazines to the pool.
    pub(crate) fn trim_depots(&self, all: bool) {
        for class in 0..NUM_CLASSES {
            let (mut full, mut empty) = self.depots[class].trim(all);
            // SAFETY: `trim` hands over whole detached lists; we own every node.
            unsafe {
                while !full.is_null() {
                    let next = (*full).next;
                    self.flush_magazine(class, full);
                    self.pool.put(full);
                    full = next;
                }
                while !empty.is_null() {
                    let next = (*empty).next;
                    self.pool.put(empty);
                    empty = next;
                }
            }
        }
        // Relaxed: a statistic.
        self.trims.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs the periodic depot trim if it is due. Called from slow paths only.
    pub(crate) fn maybe_trim(&self) {
        let now = crate::sys::now_ns();
        // Relaxed: a schedule hint; the CAS below elects one trimmer per interval.
        let due = self.next_trim.load(Ordering::Relaxed);
        if now < due {
            return;
        }
        let interval = crate::options::purge_delay_ns().max(10_000_000);
        if self
            .next_trim
            .compare_exchange(due, now + interval, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
            && due != 0
        {
            self.trim_depots(false);
            // Free units older than the decay delay go back to the OS now, not at
            // some later slab release (an idle or steady program may have none).
            self.segments.purge(crate::options::purge_delay_ns());
            crate::large::decay();
        }
    }

    /// Every lock of the heap, in lock order (for fork handlers).
    pub(crate) fn for_each_lock(&self, mut f: impl FnMut(&RawLock)) {
        f(&self.registry);
        f(self.pool.lock());
        for d in &self.depots {
            f(d.lock());
        }
        for c in &self.central {
            f(c.lock());
        }
        f(self.segments.lock());
    }
}
