//! The memory debugger: [`DebugAlloc`] wraps any `GlobalAlloc` (RustyAlloc,
//! System, mimalloc) and can itself be the `#[global_allocator]`.
//!
//! | level | cost | finds |
//! |---|---|---|
//! | `Off` | a 16-byte header | nothing |
//! | `Counting` | + per-thread counters per component (plain stores) | live bytes / counts / peaks per component |
//! | `Sampled` | + a subtraction; a stack per 512 KiB allocated (Poisson) | heap profiles with unbiased estimates per site |
//! | `Tracking` | + a record per block, batched in a per-thread ring | leaks (by component, thread, age), double and invalid frees |
//! | `Full` | + a stack per allocation, redzones, quarantine, sampled guard pages | overflows, writes after free, any access to a sampled freed block, with sites |
//!
//! Profiles ([`DebugAlloc::write_profile`], `RUSTYDB_MEM_PROFILE=path` at
//! exit) are dhat JSON or pprof.
//!
//! Compared with dhat: per-thread counters and side tables (no global lock,
//! no shared cache line written per allocation), stacks captured by frame
//! pointers or a cached DWARF unwinder and deduplicated unresolved (resolved
//! only for reports), a reentrancy flag so capture can neither deadlock nor
//! recurse, any allocator can be wrapped, several instances can coexist, and
//! leak checks are scoped to a thread or component so parallel tests do not
//! see each other.
//!
//! Files: `alloc.rs` (the type and settings), `path.rs` (alloc / free /
//! realloc), `header.rs`, `threads.rs` (per-thread state and slots),
//! `counters.rs`, `tracking.rs` + `table.rs` (side tables), `sampling.rs`,
//! `reserved.rs` (the fixed tables those live in),
//! `stacks/` (walkers, depot, symbols), `quarantine.rs`, `guard_pages.rs`,
//! `report.rs`, `leaks.rs` (queries), `profile/` (dhat, pprof, at exit),
//! `state.rs` (per-instance state, fork handlers).

mod alloc;
mod components;
mod counters;
#[cfg(feature = "tracing")]
pub(crate) mod events;
mod guard_pages;
mod header;
mod leaks;
mod path;
mod profile;
mod quarantine;
mod report;
mod reserved;
mod sampling;
mod stacks;
mod state;
mod table;
mod threads;
mod tracking;

pub use alloc::{DEFAULT_QUARANTINE_BYTES, DEFAULT_SAMPLE_EVERY, DebugAlloc, DebugLevel, Policy};
pub use components::{ComponentGuard, ComponentStats, MAX_COMPONENTS, component, with_component};
pub use leaks::{DebugStats, LeakGroup, LeakReport, LeakScope, Mark};
pub use profile::{ProfileFormat, ProfileScope};
pub use report::{Report, ReportKind};
pub use sampling::DEFAULT_SAMPLE_BYTES;
pub use stacks::{Unwind, set_unwind, unwind};
