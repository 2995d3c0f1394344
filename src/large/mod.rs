//! The large-object allocator (requests at or above the large threshold,
//! 256 KiB by default): direct mappings rounded to pages, huge pages by policy,
//! `madvise`, prefaulting, `mremap` on realloc, and a bounded cache of freed
//! mappings so that reusing a large block costs no system call.
//!
//! | file | concept |
//! |---|---|
//! | `allocator.rs` | [`LargeObjectAllocator`]: the public operations, the lock, the system calls |
//! | `builder.rs` | [`LargeObjectAllocatorBuilder`], [`AllocOptions`], settings from the environment |
//! | `state.rs` | what the lock guards, and the cache policy (split, merge, evict, decay) |
//! | `cache.rs` | the cache's size buckets and age list |
//! | `registry.rs` | every range we own, by start address and by contained range |
//! | `mapping.rs` | mapping with the huge-page fallback chain, unmapping, batches |
//! | `huge.rs` | [`HugePagePolicy`] and what each block asks for |
//! | `stats.rs` | [`LargeStats`] and the system-call counters |
//!
//! The functions below are the contract with `RustyAlloc` (`src/global`): they run
//! inside the global allocator, so nothing on their paths allocates through it,
//! formats or panics.

mod allocator;
mod builder;
mod cache;
mod huge;
mod mapping;
mod registry;
mod state;
mod stats;

pub use allocator::LargeObjectAllocator;
pub use builder::{AllocOptions, LargeObjectAllocatorBuilder};
pub use huge::HugePagePolicy;
pub use stats::LargeStats;

use allocator::GLOBAL;
use core::ptr;

/// A block of `size` bytes aligned to `align` from the process-wide instance;
/// null on failure. Zeroed if asked (free for fresh mappings, `memset` for reused ones).
#[inline]
pub(crate) fn alloc(size: usize, align: usize, zeroed: bool) -> *mut u8 {
    GLOBAL
        .alloc_block(size, align, AllocOptions::new().zeroed(zeroed))
        .map_or(ptr::null_mut(), ptr::NonNull::as_ptr)
}

/// Frees a block from [`alloc`] (into the mapping cache when it fits).
///
/// # Safety
/// `p` came from `alloc(size, align, _)` (or `realloc` to `size`) and is not used again.
#[inline]
pub(crate) unsafe fn dealloc(p: *mut u8, _size: usize, _align: usize) {
    // SAFETY: forwarded contract. An unknown pointer is ignored (Err).
    let _ = unsafe { GLOBAL.free_block(p) };
}

/// Resizes a block from [`alloc`] to `new_size`: in place when it shrinks or
/// fits its spare length, else by `mremap`; null on failure (the old block is kept).
///
/// # Safety
/// `p` came from `alloc(old_size, align, _)` and is live.
pub(crate) unsafe fn realloc(
    p: *mut u8,
    _old_size: usize,
    align: usize,
    new_size: usize,
) -> *mut u8 {
    // SAFETY: forwarded contract.
    unsafe { GLOBAL.realloc_block(p, align, new_size) }
        .map_or(ptr::null_mut(), ptr::NonNull::as_ptr)
}

/// Unmaps every cached mapping of the process-wide instance.
pub(crate) fn purge() {
    GLOBAL.purge();
}

/// Runs the process-wide instance's cache decay (for a periodic trimmer);
/// returns the bytes unmapped.
pub(crate) fn decay() -> usize {
    GLOBAL.decay()
}

/// Whether the process-wide instance caches any freed block.
pub(crate) fn has_cached() -> bool {
    GLOBAL.has_cached()
}

/// Figures of the process-wide instance.
pub(crate) fn stats() -> LargeStats {
    GLOBAL.stats()
}

/// `pthread_atfork` prepare: takes the process-wide instance's lock.
pub(crate) fn fork_prepare() {
    GLOBAL.fork_prepare();
}

/// `pthread_atfork` parent: releases it.
pub(crate) fn fork_parent() {
    GLOBAL.fork_parent();
}

/// `pthread_atfork` child: resets it.
pub(crate) fn fork_child() {
    GLOBAL.fork_child();
}
