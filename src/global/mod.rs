//! The global-allocator layer: `RustyAlloc`, its thread caches, the process-wide
//! heap, statistics and fork handling.

mod cache_registry;
pub(crate) mod decay_rounds;
mod fork;
pub(crate) mod heap;
mod idle;
mod malloc;
pub(crate) mod purger;
mod rusty_alloc;
mod stats;
mod stats_exit;
mod stats_report;
#[cfg(feature = "serde")]
mod stats_serde;
pub(crate) mod thread_cache;
mod thread_exit;

pub use malloc::SharedHeap;
pub use rusty_alloc::RustyAlloc;
pub use stats::{AllocStats, ClassStats, SIZE_CLASSES};
