//! Memory contexts (the arena allocator): bump allocation in chunks, a tree of
//! contexts with limits, reset, checkpoints and drop registration, and a
//! process-wide registry of live contexts.

mod allocator_api;
mod chunk;
mod context;
mod registry;
mod shared;

pub use context::{
    Checkpoint, ContextBuilder, ContextStats, DEFAULT_INITIAL_CHUNK, DEFAULT_MAX_CHUNK,
    MemoryContext,
};
pub use shared::SharedContext;

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
