#![doc = include_str!("../README.md")]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs, missing_debug_implementations)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]
#![cfg_attr(rustydb_loom, allow(dead_code))]

mod error;
mod sync;

#[cfg(not(rustydb_loom))]
mod global;
#[cfg(not(rustydb_loom))]
mod large;
#[cfg(not(rustydb_loom))]
mod options;
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

pub use error::{Error, Result};
#[cfg(not(rustydb_loom))]
pub use global::{AllocStats, ClassStats, RustyAlloc, SIZE_CLASSES};
#[cfg(not(rustydb_loom))]
pub use large::{
    AllocOptions, HugePagePolicy, LargeObjectAllocator, LargeObjectAllocatorBuilder, LargeStats,
};
#[cfg(not(rustydb_loom))]
pub use sys::{Advice, HugePageSize};
