//! Figures of a buffer pool.

use super::policy::{Policy, PolicyStats};

/// Figures of one tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TierStats {
    /// Pages in the tier now.
    pub resident: usize,
    /// Hits on pages while they were in the tier.
    pub hits: u64,
    /// Pages that entered the tier (admission, promotion, cooling).
    pub entered: u64,
}

/// A snapshot of a pool's figures (`BufferPool::stats`). Hits recorded by
/// other threads arrive in batches, so they may lag by up to one batch
/// (64 accesses) per thread; the calling thread's are always included.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BufferPoolStats {
    /// The eviction policy.
    pub policy: Policy,
    /// Frames in the pool.
    pub frames: usize,
    /// Bytes per page.
    pub page_size: usize,
    /// Fetches served from a frame.
    pub hits: u64,
    /// Fetches that read the page from disk.
    pub misses: u64,
    /// `hits / (hits + misses)`, 0 before the first fetch.
    pub hit_ratio: f64,
    /// Pages evicted to make room.
    pub evictions: u64,
    /// Dirty pages written back before their frame was reused.
    pub dirty_writebacks: u64,
    /// Dirty pages written by `flush`, `flush_all` and the flusher.
    pub flushed_pages: u64,
    /// Of those, pages written by the background flusher.
    pub flusher_writes: u64,
    /// Page reads from disk.
    pub disk_reads: u64,
    /// Page writes to disk (write-backs, flushes, tombstones).
    pub disk_writes: u64,
    /// Frames holding a page.
    pub resident: usize,
    /// Frames holding none.
    pub free: usize,
    /// Frames pinned by a guard now.
    pub pinned: usize,
    /// Frames whose page is dirty now.
    pub dirty: usize,
    /// Optimistic reads that succeeded without pinning.
    pub optimistic_reads: u64,
    /// Optimistic attempts that saw the version move and retried.
    pub optimistic_retries: u64,
    /// Fetches refused with `PoolExhausted` (or a pressure refusal).
    pub exhausted: u64,
    /// Pages read from disk that failed their checksum.
    pub corrupt_pages: u64,
    /// Bytes returned to the OS by `shrink_clean`.
    pub released_bytes: u64,
    /// Fresh frames the pressure manager refused to let the pool touch.
    pub pressure_refusals: u64,
    /// Frames held by scan rings now.
    pub ring_frames: usize,
    /// Ring frames reused by their scan.
    pub ring_reuses: u64,
    /// Cooling pages rescued by a hit.
    pub rescued: u64,
    /// Target size of the cooling stage, frames.
    pub cooling_target: usize,
    /// The hot tier.
    pub hot: TierStats,
    /// The warm tier.
    pub warm: TierStats,
    /// The cold tier (cooling stage and scan rings).
    pub cold: TierStats,
    /// The policy's own counters.
    pub policy_stats: PolicyStats,
    /// Whether the frames were mapped for transparent huge pages.
    pub huge_pages: bool,
}
