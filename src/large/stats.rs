//! Figures of the large-object allocator: [`LargeStats`] (the public snapshot)
//! and the system-call counters behind it.

use crate::sync::{AtomicU64, Ordering};

/// A snapshot of a [`LargeObjectAllocator`](super::LargeObjectAllocator).
///
/// Block figures (`live` … `bytes_cached`) are read under the allocator's lock
/// and are consistent with each other; the call counters are read without it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LargeStats {
    /// Live large blocks.
    pub live: usize,
    /// Bytes requested by live blocks.
    pub bytes_in_use: usize,
    /// Bytes mapped from the OS for blocks: live blocks (rounded to pages, or to
    /// huge pages) plus cached ones.
    pub bytes_mapped: usize,
    /// Freed blocks kept mapped in the cache for reuse.
    pub cached: usize,
    /// Bytes of those cached blocks.
    pub bytes_cached: usize,
    /// Bytes mapped for the allocator's own tables (registry of mappings).
    pub bytes_metadata: usize,
    /// Requests served from the cache (no system call).
    pub cache_hits: u64,
    /// Requests that had to map.
    pub cache_misses: u64,
    /// Cache hits that took the front of a bigger block and cached the rest.
    pub cache_splits: u64,
    /// Freed blocks joined with an adjacent cached block.
    pub cache_merges: u64,
    /// Cached blocks unmapped to keep the cache within its bounds.
    pub cache_evictions: u64,
    /// Cached blocks unmapped because they were older than the dirty and muzzy
    /// delays together.
    pub cache_decayed: u64,
    /// Cached blocks unmapped by [`purge`](super::LargeObjectAllocator::purge).
    pub cache_purged: u64,
    /// Bytes of cached blocks given back lazily (`MADV_FREE`) after the dirty
    /// delay, while they stayed cached.
    pub cache_lazily_freed_bytes: u64,
    /// `mmap` calls for blocks (failed hugetlb attempts included).
    pub mmap_calls: u64,
    /// `munmap` calls for blocks (trims of over-aligned mappings included).
    pub munmap_calls: u64,
    /// `mremap` calls.
    pub mremap_calls: u64,
    /// `madvise` calls (advice, `MADV_HUGEPAGE`, prefaults).
    pub madvise_calls: u64,
    /// Blocks advised `MADV_HUGEPAGE` while THP was enabled.
    pub thp_advised: u64,
    /// Blocks that wanted transparent huge pages and got normal pages.
    pub thp_fallbacks: u64,
    /// Blocks mapped with explicit 2 MiB pages.
    pub huge_2m: u64,
    /// Explicit 2 MiB requests the kernel refused (no reserved pages).
    pub huge_2m_fallbacks: u64,
    /// Blocks mapped with explicit 1 GiB pages.
    pub huge_1g: u64,
    /// Explicit 1 GiB requests the kernel refused.
    pub huge_1g_fallbacks: u64,
    /// Blocks made resident at allocation (prefault requests).
    pub prefaults: u64,
}

/// Counters of calls made outside the allocator's lock.
///
/// Every update is `Relaxed`: each counter is an independent statistic, read
/// racily by [`LargeStats`] snapshots; nothing is published through them.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) mmap: AtomicU64,
    pub(crate) munmap: AtomicU64,
    pub(crate) mremap: AtomicU64,
    pub(crate) madvise: AtomicU64,
    pub(crate) thp_advised: AtomicU64,
    pub(crate) thp_fallbacks: AtomicU64,
    pub(crate) huge_2m: AtomicU64,
    pub(crate) huge_2m_fallbacks: AtomicU64,
    pub(crate) huge_1g: AtomicU64,
    pub(crate) huge_1g_fallbacks: AtomicU64,
    pub(crate) prefaults: AtomicU64,
}

impl Counters {
    /// All zero.
    pub(crate) const fn new() -> Self {
        Self {
            mmap: AtomicU64::new(0),
            munmap: AtomicU64::new(0),
            mremap: AtomicU64::new(0),
            madvise: AtomicU64::new(0),
            thp_advised: AtomicU64::new(0),
            thp_fallbacks: AtomicU64::new(0),
            huge_2m: AtomicU64::new(0),
            huge_2m_fallbacks: AtomicU64::new(0),
            huge_1g: AtomicU64::new(0),
            huge_1g_fallbacks: AtomicU64::new(0),
            prefaults: AtomicU64::new(0),
        }
    }

    /// Adds one to `c`.
    #[inline]
    pub(crate) fn bump(c: &AtomicU64) {
        // Relaxed: an independent statistic (see the type's comment).
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies the counters into `s`.
    pub(crate) fn fill(&self, s: &mut LargeStats) {
        // Relaxed: independent statistics (see the type's comment).
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        s.mmap_calls = r(&self.mmap);
        s.munmap_calls = r(&self.munmap);
        s.mremap_calls = r(&self.mremap);
        s.madvise_calls = r(&self.madvise);
        s.thp_advised = r(&self.thp_advised);
        s.thp_fallbacks = r(&self.thp_fallbacks);
        s.huge_2m = r(&self.huge_2m);
        s.huge_2m_fallbacks = r(&self.huge_2m_fallbacks);
        s.huge_1g = r(&self.huge_1g);
        s.huge_1g_fallbacks = r(&self.huge_1g_fallbacks);
        s.prefaults = r(&self.prefaults);
    }
}
