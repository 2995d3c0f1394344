#![doc = include_str!("../README.md")]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs, missing_debug_implementations)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]
#![cfg_attr(rustydb_loom, allow(dead_code, unused_imports))]

// The allocator is built on Linux system calls (mmap, madvise, mremap, futex,
// `__cxa_thread_atexit_impl`, /proc readings) and on 64-bit address-space
// assumptions (2 MiB segments, 48-bit pointers): say so at compile time rather
// than with raw libc errors at run time.
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
compile_error!(
    "rustydb-memory supports Linux on x86_64 and aarch64 only \
     (x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu); this target is not supported"
);

#[cfg(not(rustydb_loom))]
pub mod arena;
pub mod buffer_pool;
#[cfg(not(rustydb_loom))]
pub mod debug;
mod error;
#[cfg(doctest)]
mod guide;
mod sync;

#[cfg(not(rustydb_loom))]
mod events;
#[cfg(not(rustydb_loom))]
mod global;
#[cfg(not(rustydb_loom))]
mod large;
#[cfg(not(rustydb_loom))]
pub mod manager;
#[cfg(not(rustydb_loom))]
mod options;
#[cfg(not(rustydb_loom))]
pub mod pressure;
mod slab;
#[cfg(not(rustydb_loom))]
pub mod sys;

#[cfg(rustydb_loom)]
mod sys {
    pub(crate) fn page_size() -> usize {
        4096
    }
}

#[cfg(rustydb_loom)]
#[doc(hidden)]
pub mod loom_api;

#[cfg(not(rustydb_loom))]
pub use arena::{Checkpoint, ContextStats, MemoryContext, OwnedContext, SharedContext};
#[cfg(not(rustydb_loom))]
pub use buffer_pool::{
    BufferPool, BufferPoolBuilder, BufferPoolStats, DiskManager, EvictionPolicy, FileDisk, MemDisk,
    PageId, Policy, ReadGuard, Tier, WriteGuard,
};
#[cfg(not(rustydb_loom))]
pub use debug::{DebugAlloc, DebugLevel};
pub use error::{Error, Result};
#[cfg(not(rustydb_loom))]
pub use global::{AllocStats, ClassStats, RustyAlloc, SIZE_CLASSES, SharedHeap};
#[cfg(not(rustydb_loom))]
pub use large::{
    AllocOptions, HugePagePolicy, LargeObjectAllocator, LargeObjectAllocatorBuilder, LargeStats,
};
#[cfg(not(rustydb_loom))]
pub use manager::{MemoryManager, MemoryStats};
#[cfg(not(rustydb_loom))]
pub use options::Options;
#[cfg(not(rustydb_loom))]
pub use pressure::{PressureLevel, PressureManager};
#[cfg(not(rustydb_loom))]
pub use sys::{Advice, HugePageSize};
