//! `RUSTYDB_MEM_STATS=1`: the allocator's statistics report
//! ([`AllocStats`](super::AllocStats)'s `Display` table) on standard error at
//! exit, as `MIMALLOC_SHOW_STATS=1` does for mimalloc.
//!
//! The variable is read by a constructor in `.init_array` (glibc runs it with
//! the environment set up, before `main`), so a program needs no code for it;
//! the report is written by an `atexit` handler through
//! [`AllocStats::write_to_fd`](super::AllocStats::write_to_fd): a stack buffer
//! and `write(2)`, nothing allocated, so it also works in the C library
//! (`preload/`) and after the Rust runtime has shut down.

/// A process-start hook (an ELF constructor; `#[used]` keeps it through
/// linking even though nothing refers to it).
#[used]
#[unsafe(link_section = ".init_array")]
static ARM_AT_START: extern "C" fn() = arm;

/// Registers [`report_at_exit`] when `RUSTYDB_MEM_STATS` is set to a number
/// other than 0. Allocates nothing.
extern "C" fn arm() {
    if matches!(crate::sys::env_usize(c"RUSTYDB_MEM_STATS"), Some(n) if n != 0) {
        // SAFETY: registers an `extern "C"` function without arguments that
        // stays valid for the life of the process; glibc may allocate its
        // handler list with its own malloc, never through this function.
        unsafe { libc::atexit(report_at_exit) };
    }
}

/// Writes the report to standard error. `stats()` and `write_to_fd` neither
/// allocate nor panic; a write error (stderr closed) is ignored, as nothing is
/// left to report it to.
extern "C" fn report_at_exit() {
    let _ = crate::RustyAlloc.stats().write_to_fd(2);
}
