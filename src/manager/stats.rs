//! `MemoryStats`: the one snapshot.

use crate::arena::ContextStats;
use crate::debug::DebugStats;
use crate::pressure::{PressureEvent, PressureStats};
use crate::{AllocStats, RustyAlloc, arena, sys};

use super::MemoryManager;

/// A pool's figures, as the manager sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PoolStats {
    /// The pool's name.
    pub name: String,
    /// Bytes it holds.
    pub held_bytes: u64,
}

/// Everything the manager knows, taken at one moment. Figures:
///
/// - `allocator`: `RustyAlloc`'s heap (size classes, segments, large objects);
///   all zero when another allocator serves the process.
/// - `contexts`: every live memory context.
/// - `pools`: registered pools.
/// - `pressure`, `recent_events`: the level, usage, budget and the last 16 events.
/// - `debugger`: the attached debugger's counters, if one is attached.
/// - `rss`: the process's resident set (bytes).
/// - `mapped`: bytes this crate's allocators have mapped from the OS.
/// - `in_use`: bytes the program holds through `RustyAlloc` (live objects × class
///   size + live large objects).
/// - `fragmentation`: `mapped ÷ in_use` (1.0 = every mapped byte in use; 0 when
///   nothing is in use).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MemoryStats {
    /// `RustyAlloc`'s figures.
    pub allocator: AllocStats,
    /// Live memory contexts.
    pub contexts: Vec<ContextStats>,
    /// Registered pools (anything reclaimable).
    pub pools: Vec<PoolStats>,
    /// Registered buffer pools' own figures (hits, misses, tiers, policy).
    pub buffer_pools: Vec<crate::buffer_pool::BufferPoolStats>,
    /// Pressure counters and reading.
    pub pressure: PressureStats,
    /// The most recent pressure events (up to 16), oldest first.
    pub recent_events: Vec<PressureEvent>,
    /// The debugger, if attached.
    pub debugger: Option<DebugStats>,
    /// Resident set size, bytes.
    pub rss: u64,
    /// Bytes mapped by this crate's allocators.
    pub mapped: u64,
    /// Bytes in use through `RustyAlloc`.
    pub in_use: u64,
    /// `mapped ÷ in_use`.
    pub fragmentation: f64,
}

pub(super) fn collect(m: &MemoryManager) -> MemoryStats {
    let allocator = RustyAlloc.stats();
    let mapped = crate::pressure::signal::mapped_bytes().max(allocator.bytes_mapped as u64);
    let in_use = allocator.bytes_in_use as u64;
    let mut recent_events = m.history();
    let skip = recent_events.len().saturating_sub(16);
    recent_events.drain(..skip);
    MemoryStats {
        allocator,
        contexts: arena::contexts(),
        buffer_pools: m.buffer_pool_stats(),
        pools: m
            .pools()
            .iter()
            .map(|p| PoolStats {
                name: p.name(),
                held_bytes: p.held_bytes(),
            })
            .collect(),
        pressure: m.pressure.stats(),
        recent_events,
        debugger: m.debugger().map(|d| d.debug_stats()),
        rss: sys::process_rss().unwrap_or(0),
        mapped,
        in_use,
        fragmentation: if in_use == 0 {
            0.0
        } else {
            mapped as f64 / in_use as f64
        },
    }
}
