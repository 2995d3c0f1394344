//! `AllocStats`: a snapshot of the allocator, aggregated when asked (nothing
//! on the fast path counts anything: live objects are derived as
//! "handed out by the slabs − held in magazines").

use super::heap::HEAP;
use crate::large::LargeStats;
use crate::slab::segment::SEGMENT_SIZE;
use crate::slab::size_class::{CLASS_SIZE, NUM_CLASSES};
use crate::sync::Ordering;

/// Number of size classes (8 B – 256 KiB) served from segments.
pub const SIZE_CLASSES: usize = NUM_CLASSES;

/// Figures of one size class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ClassStats {
    /// Object size of the class in bytes.
    pub size: usize,
    /// Objects held by the program (handed out and not freed).
    pub live_objects: usize,
    /// Slabs of this class.
    pub slabs: usize,
    /// Free objects cached in threads' magazines.
    pub thread_cached: usize,
    /// Free objects in the depot's full magazines.
    pub depot_objects: usize,
    /// Full magazines in the depot.
    pub depot_full: usize,
    /// Empty magazines in the depot.
    pub depot_empty: usize,
}

/// A snapshot of [`RustyAlloc`](crate::RustyAlloc). Figures are read without
/// stopping other threads, so they are consistent to within the operations in
/// flight while the snapshot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct AllocStats {
    /// Bytes held by the program: live objects × their class size, plus the
    /// requested size of live large objects.
    pub bytes_in_use: usize,
    /// Bytes mapped from the OS: segments, large mappings and the magazine
    /// pool's chunks (less the pages it gave back).
    pub bytes_mapped: usize,
    /// Bytes of free objects cached in magazines (threads and depots).
    pub bytes_cached: usize,
    /// Segments (2 MiB each) currently mapped.
    pub segments: usize,
    /// 64 KiB units of those segments given to slabs.
    pub units_in_use: usize,
    /// Threads with a live cache.
    pub thread_caches: usize,
    /// Magazines in thread caches and depots.
    pub magazines: usize,
    /// `MADV_DONTNEED` / unmap operations that returned memory to the OS.
    pub purges: u64,
    /// Bytes returned to the OS by purges and segment unmaps.
    pub purged_bytes: u64,
    /// Segments unmapped.
    pub unmapped_segments: u64,
    /// Depot working-set trims run.
    pub depot_trims: u64,
    /// Bytes of free units given back lazily (`MADV_FREE`, the first decay
    /// stage; `purged_bytes` counts the second).
    pub lazily_freed_bytes: u64,
    /// Passes of the background purger
    /// ([`RustyAlloc::start_background_purger`](crate::RustyAlloc::start_background_purger)).
    pub purger_passes: u64,
    /// Calls of [`RustyAlloc::free`](crate::RustyAlloc::free) with a pointer this
    /// allocator does not own (ignored; under a preloaded `malloc`, blocks the
    /// dynamic linker allocated before it took over).
    pub foreign_frees: u64,
    /// Per size class.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "super::stats_serde::classes")
    )]
    pub classes: [ClassStats; SIZE_CLASSES],
    /// The large-object path.
    pub large: LargeStats,
}

pub(crate) fn collect() -> AllocStats {
    let mut classes = [ClassStats::default(); SIZE_CLASSES];
    let mut thread_caches = 0;
    super::cache_registry::for_each_cache(|tc| {
        thread_caches += 1;
        for (c, cc) in tc.classes.iter().enumerate() {
            for slot in [&cc.loaded, &cc.previous, &cc.remote] {
                // Relaxed: a racy read of another thread's cache; magazines are never
                // unmapped, so the pointer stays dereferenceable.
                let m = slot.load(Ordering::Relaxed);
                // SAFETY: `m` is the sentinel or a magazine from the pool, whose memory
                // is never unmapped; `len` is an atomic read.
                classes[c].thread_cached += unsafe { (*m).len() };
            }
            // Relaxed: a statistic (rounds the purger took from an idle thread,
            // until the thread gives them back).
            classes[c].thread_cached += cc.stolen_rounds.load(Ordering::Relaxed) as usize;
        }
    });
    let mut bytes_in_use = 0;
    let mut bytes_cached = 0;
    for (c, cs) in classes.iter_mut().enumerate() {
        let d = &HEAP.depots[c];
        // Relaxed: statistics.
        cs.size = CLASS_SIZE[c] as usize;
        cs.slabs = HEAP.central[c].slabs.load(Ordering::Relaxed);
        cs.depot_objects = d.rounds.load(Ordering::Relaxed);
        cs.depot_full = d.full.load(Ordering::Relaxed);
        cs.depot_empty = d.empty.load(Ordering::Relaxed);
        let used = HEAP.central[c].used.load(Ordering::Relaxed);
        cs.live_objects = used.saturating_sub(cs.depot_objects + cs.thread_cached);
        bytes_in_use += cs.live_objects * cs.size;
        bytes_cached += (cs.depot_objects + cs.thread_cached) * cs.size;
    }
    let large = crate::large::stats();
    let sc = &HEAP.segments.counters;
    // Relaxed: statistics.
    let segments = sc.segments.load(Ordering::Relaxed);
    let magazines = HEAP.pool.live.load(Ordering::Relaxed);
    AllocStats {
        bytes_in_use: bytes_in_use + large.bytes_in_use,
        bytes_mapped: segments * SEGMENT_SIZE
            + large.bytes_mapped
            + HEAP.pool.resident.load(Ordering::Relaxed),
        bytes_cached,
        segments,
        units_in_use: sc.units_in_use.load(Ordering::Relaxed),
        thread_caches,
        magazines,
        purges: sc.purges.load(Ordering::Relaxed),
        purged_bytes: sc.purged_bytes.load(Ordering::Relaxed),
        unmapped_segments: sc.unmapped_segments.load(Ordering::Relaxed),
        depot_trims: HEAP.trims.load(Ordering::Relaxed),
        lazily_freed_bytes: sc.lazily_freed_bytes.load(Ordering::Relaxed),
        purger_passes: HEAP.purger_passes.load(Ordering::Relaxed),
        foreign_frees: super::malloc::foreign_frees(),
        classes,
        large,
    }
}
