//! The memory debugger: [`DebugAlloc`] wraps any `GlobalAlloc` (RustyAlloc,
//! System, mimalloc) and can itself be the `#[global_allocator]`.
//!
//! | level | cost | finds |
//! |---|---|---|
//! | `Off` | a 16-byte header | nothing |
//! | `Counting` | + per-component atomics | live bytes / counts / peaks per component |
//! | `Tracking` | + a side-table record per block | leaks (by component, thread, age), double and invalid frees |
//! | `Full` | + backtraces, redzones, quarantine, sampled guard pages | overflows, writes after free, any access to a sampled freed block, with sites |
//!
//! Compared with dhat: side tables are sharded (no global lock), backtraces are
//! captured unresolved and deduplicated (resolved only for reports), the
//! unsynchronised unwinder and a thread-local reentrancy guard mean capture can
//! neither deadlock nor recurse, any allocator can be wrapped, several instances
//! can coexist, and leak checks are scoped to a thread or component so parallel
//! tests do not see each other.

mod alloc;
mod components;
mod guard_pages;
mod leaks;
mod quarantine;
mod report;
mod stacks;
mod table;

pub use alloc::{DEFAULT_QUARANTINE_BYTES, DEFAULT_SAMPLE_EVERY, DebugAlloc, DebugLevel, Policy};
pub use components::{ComponentGuard, ComponentStats, MAX_COMPONENTS, component, with_component};
pub use leaks::{DebugStats, LeakGroup, LeakReport, LeakScope, Mark};
pub use report::{Report, ReportKind};
