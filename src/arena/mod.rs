//! Memory contexts (the arena allocator): bump allocation in chunks, a tree of
//! contexts with limits, reset, checkpoints and drop registration, and a
//! process-wide registry of live contexts.
//!
//! Layout: `context.rs` (`MemoryContext`: the bump path, limits, reset,
//! checkpoints, drops), `chunk.rs`, `builder.rs`, `stats.rs`, `owned.rs`
//! (`OwnedContext`: a tree that owns its parents instead of borrowing them),
//! `shared.rs` (`SharedContext`: one context behind a lock), `registry.rs`,
//! `allocator_api.rs`.

mod allocator_api;
mod builder;
mod chunk;
mod context;
mod drops;
mod owned;
mod registry;
mod shared;
mod stats;

pub use builder::ContextBuilder;
pub use context::{Checkpoint, DEFAULT_INITIAL_CHUNK, DEFAULT_MAX_CHUNK, MemoryContext};
pub use owned::{OwnedContext, OwnedContextGuard};
pub use shared::SharedContext;
pub use stats::ContextStats;

/// Every live context (in any thread), as a flat list with parent ids; the
/// tree is rebuilt by following `parent`.
pub fn contexts() -> Vec<ContextStats> {
    let mut v = Vec::new();
    registry::for_each(|c| v.push(ContextStats::of(c)));
    v
}

/// Frees the spare chunk of every live context (the pressure manager's
/// reclaimer); returns the bytes released.
pub fn release_spare_chunks() -> usize {
    let mut freed = 0;
    registry::for_each(|c| freed += c.release_spare());
    freed
}
