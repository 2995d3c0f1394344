//! The process-wide heap behind every `RustyAlloc`: segments, one central store
//! and one depot per size class, the magazine pool and the thread-cache registry.
//!
//! Lock order (a thread holding one may take only those to its right):
//! registry · pool · depot[c] · central[c] → segments · large.
//! In practice only `central → segments` nests; the others are taken alone.

use core::ptr;

use crossbeam_utils::CachePadded;

use super::cache_registry::RegistryHead;
use super::decay_rounds::{self, Source};
use crate::slab::depot::Depot;
use crate::slab::magazine::{MAG_MAX, Magazine};
use crate::slab::magazine_pool::MagazinePool;
use crate::slab::owner::{self, Owner};
use crate::slab::segment::SegmentManager;
use crate::slab::size_class::{CLASS_SIZE, NUM_CLASSES};
use crate::slab::slab::Central;
use crate::sync::{AtomicU64, Lock, Ordering, RawLock};

/// All shared allocator state.
pub(crate) struct Heap {
    pub(crate) segments: SegmentManager,
    /// Per class, each on its own cache-line pair: threads working on
    /// different classes do not share a line.
    pub(crate) central: [CachePadded<Central>; NUM_CLASSES],
    pub(crate) depots: [CachePadded<Depot>; NUM_CLASSES],
    pub(crate) pool: MagazinePool,
    /// The registry of live thread caches.
    pub(crate) registry: Lock<RegistryHead>,
    /// Next time (ns) a depot working-set trim is due.
    pub(crate) next_trim: AtomicU64,
    pub(crate) trims: AtomicU64,
    /// Passes of the background purger.
    pub(crate) purger_passes: AtomicU64,
}

/// The one heap.
pub(crate) static HEAP: Heap = Heap {
    segments: SegmentManager::new(),
    central: [const { CachePadded::new(Central::new()) }; NUM_CLASSES],
    depots: [const { CachePadded::new(Depot::new()) }; NUM_CLASSES],
    pool: MagazinePool::new(),
    registry: Lock::new(RegistryHead::EMPTY),
    next_trim: AtomicU64::new(0),
    trims: AtomicU64::new(0),
    purger_passes: AtomicU64::new(0),
};

/// Bytes of one class that the depot holds in full magazines before a thread's
/// full magazines go back to the slabs instead (and are reused empty, so no new
/// magazine is carved). The whole-program suite measured the choice: without a
/// bound, dropping a 100 MB JSON document left 818 MB in 157 524 depot
/// magazines, 79 MiB of them carved during the drop; 16 MiB keeps the `batch`
/// workload's 10 000-object rounds (≤ 10 MiB per class) in the depot, where a
/// 1 MiB bound made it 1.3–2× slower.
pub(crate) const DEPOT_MAX_BYTES: usize = 16 << 20;

/// Objects above this size are cached per thread by the byte budget below.
const MEDIUM_CACHE_FROM: usize = 16 << 10;
/// Bytes one magazine of a class above [`MEDIUM_CACHE_FROM`] holds at most
/// (jemalloc caches no object above 32 KiB per thread). Measured on the suite's
/// `mstress` (5 alternated runs): peak RSS 41.6 MiB with the 128 KiB budget of
/// the small classes, 36.4 with 64 KiB, 36.5 with 32 KiB, 35.6 with 16 KiB, at
/// equal CPU time.
const MEDIUM_MAGAZINE_BYTES: usize = 32 << 10;

/// Rounds per magazine of `class`: the configured count for small objects,
/// fewer for big ones so a thread caches at most ~128 KiB per magazine, and
/// for the classes above 16 KiB at most [`MEDIUM_MAGAZINE_BYTES`] (at least
/// one object).
#[inline]
pub(crate) fn magazine_cap(class: usize) -> u32 {
    let size = CLASS_SIZE[class] as usize;
    let rounds = if size > MEDIUM_CACHE_FROM {
        (MEDIUM_MAGAZINE_BYTES / size).clamp(1, MAG_MAX)
    } else {
        ((128 << 10) / size).clamp(2, MAG_MAX)
    };
    rounds.min(crate::options::magazine_rounds().max(1)) as u32
}

impl Heap {
    /// Whether the depot of `class` already holds [`DEPOT_MAX_BYTES`] of it.
    #[inline]
    pub(crate) fn depot_is_full(&self, class: usize) -> bool {
        // Relaxed: a racy mirror is enough for a bound.
        self.depots[class].rounds.load(Ordering::Relaxed) * CLASS_SIZE[class] as usize
            >= DEPOT_MAX_BYTES
    }

    /// One object of `class` straight from the slabs (no thread cache).
    pub(crate) fn alloc_direct(&self, class: usize) -> *mut u8 {
        let mut one = [ptr::null_mut(); 1];
        if self.central[class].alloc_batch(class, &self.segments, &mut one, 0) == 1 {
            one[0]
        } else {
            ptr::null_mut()
        }
    }

    /// Releases owner slot `o` of an exiting cache: its slabs with a free
    /// object become shared in every class (`owner::release`).
    pub(crate) fn release_owner(&self, o: Owner) {
        owner::release(o, |o| self.hand_over(o));
    }

    /// In a `fork` child: releases the owner slots of the parent's other threads.
    pub(crate) fn release_other_owners(&self, keep: Owner) {
        owner::release_all_but(keep, |o| self.hand_over(o));
    }

    fn hand_over(&self, o: Owner) {
        for c in &self.central {
            c.hand_over(o);
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

    /// Runs the periodic depot trim and decay if it is due — the work of the
    /// background purger, done by allocating threads when it does not run.
    /// Called from slow paths that hold no lock.
    pub(crate) fn maybe_trim(&self) {
        super::purger::start_if_asked();
        if super::purger::running() {
            return;
        }
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
            let before = decay_rounds::counters();
            self.trim_depots(false);
            // Free units past the decay delays go back to the OS now, not at
            // some later slab release (an idle or steady program may have none).
            self.decay_segments();
            let large = crate::large::decay();
            decay_rounds::record_since(Source::Poll, before, large as u64);
        }
    }

    /// The segments' two-stage decay with the configured delays.
    fn decay_segments(&self) {
        self.segments.decay(
            crate::options::purge_delay_ns(),
            crate::options::muzzy_delay_ns(),
        );
    }

    /// One pass of the background purger (epoch `epoch`): takes idle threads'
    /// magazines, trims the depots to their working set, releases empty slabs,
    /// runs the segments' and the large cache's decay and gives free magazine
    /// pages back. Returns whether anything is left unpurged.
    pub(crate) fn background_pass(&self, epoch: u64) -> bool {
        let before = decay_rounds::counters();
        super::idle::take_from_idle(epoch);
        self.trim_depots(false);
        for c in &self.central {
            if c.has_empty() {
                c.release_empty(&self.segments);
            }
        }
        self.decay_segments();
        let large = crate::large::decay();
        self.pool.release_unused();
        decay_rounds::record_since(Source::Background, before, large as u64);
        // Relaxed: a statistic.
        self.purger_passes.fetch_add(1, Ordering::Relaxed);
        self.anything_unpurged()
    }

    /// Whether any memory waits for the purger: magazines in a depot, an empty
    /// slab, a free unit not yet purged, a cached large block.
    pub(crate) fn anything_unpurged(&self) -> bool {
        // Relaxed: hints; the purger passes again when one is stale.
        self.depots
            .iter()
            .any(|d| d.full.load(Ordering::Relaxed) + d.empty.load(Ordering::Relaxed) != 0)
            || self.central.iter().any(|c| c.has_empty())
            || self.segments.has_unpurged()
            || crate::large::has_cached()
    }

    /// Every lock of the heap, in lock order (for fork handlers).
    pub(crate) fn for_each_lock(&self, mut f: impl FnMut(&RawLock)) {
        // Never held while another lock is taken: any place in the order.
        #[cfg(feature = "tracing")]
        f(decay_rounds::raw_lock());
        f(self.registry.raw());
        f(self.pool.raw_lock());
        for d in &self.depots {
            f(d.raw_lock());
        }
        for c in &self.central {
            f(c.raw_lock());
        }
        f(self.segments.raw_lock());
    }
}
