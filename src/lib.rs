#![doc = include_str!("../README.md")]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs, missing_debug_implementations)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]
#![cfg_attr(rustydb_loom, allow(dead_code, unused_imports))]

#[cfg(not(rustydb_loom))]
pub mod arena;
#[cfg(not(rustydb_loom))]
pub mod debug;
mod error;
mod sync;

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
pub use arena::{Checkpoint, ContextStats, MemoryContext, SharedContext};
#[cfg(not(rustydb_loom))]
pub use debug::{DebugAlloc, DebugLevel};
pub use error::{Error, Result};
#[cfg(not(rustydb_loom))]
pub use global::{AllocStats, ClassStats, RustyAlloc, SIZE_CLASSES};
#[cfg(not(rustydb_loom))]
pub use large::{
    AllocOptions, HugePagePolicy, LargeObjectAllocator, LargeObjectAllocatorBuilder, LargeStats,
};
#[cfg(not(rustydb_loom))]
pub use manager::{MemoryManager, MemoryStats};
#[cfg(not(rustydb_loom))]
pub use pressure::{PressureLevel, PressureManager};
#[cfg(not(rustydb_loom))]
pub use sys::{Advice, HugePageSize};
