//! The global-allocator layer: `RustyAlloc`, its thread caches, the process-wide
//! heap, statistics and fork handling.

mod fork;
pub(crate) mod heap;
mod rusty_alloc;
mod stats;
pub(crate) mod thread_cache;

pub use rusty_alloc::RustyAlloc;
pub use stats::{AllocStats, ClassStats, SIZE_CLASSES};
