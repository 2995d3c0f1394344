//! Process-wide options, read once from `RUSTYDB_MEM_*` environment variables
//! without allocating (the allocator reads them while initialising itself).
//!
//! | variable | meaning | default | range |
//! |---|---|---|---|
//! | `RUSTYDB_MEM_MAGAZINE` | rounds per magazine for small classes | 64 | 1–64 |
//! | `RUSTYDB_MEM_PURGE_DELAY_MS` | decay before free memory is returned to the OS, and the depot's trim interval | 1000 | 0–3 600 000 |
//! | `RUSTYDB_MEM_LARGE_THRESHOLD` | requests of this size or more go to the large-object allocator (`k`/`m` suffixes allowed) | 256k | 64k–256k |

use crate::sync::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Default rounds per magazine.
pub(crate) const DEFAULT_MAGAZINE: usize = 64;
/// Default decay delay.
pub(crate) const DEFAULT_PURGE_DELAY_MS: u64 = 1000;
/// Default (and largest) large-object threshold.
pub(crate) const DEFAULT_LARGE_THRESHOLD: usize = 256 << 10;
/// Smallest large-object threshold the option accepts.
pub(crate) const MIN_LARGE_THRESHOLD: usize = 64 << 10;

static STATE: AtomicU32 = AtomicU32::new(0); // 0 = unread, 1 = read
static MAGAZINE: AtomicUsize = AtomicUsize::new(DEFAULT_MAGAZINE);
static PURGE_DELAY_NS: AtomicU64 = AtomicU64::new(DEFAULT_PURGE_DELAY_MS * 1_000_000);
static LARGE_THRESHOLD: AtomicUsize = AtomicUsize::new(DEFAULT_LARGE_THRESHOLD);

/// Reads the environment once. Idempotent and race-tolerant: concurrent first
/// calls compute the same values.
#[cold]
pub(crate) fn init() {
    // Acquire: pairs with the Release below, so readers after `1` see the values.
    if STATE.load(Ordering::Acquire) == 1 {
        return;
    }
    if let Some(m) = crate::sys::env_usize(c"RUSTYDB_MEM_MAGAZINE") {
        // Relaxed: published by the Release store of STATE.
        MAGAZINE.store(
            m.clamp(1, crate::slab::magazine::MAG_MAX),
            Ordering::Relaxed,
        );
    }
    if let Some(ms) = crate::sys::env_usize(c"RUSTYDB_MEM_PURGE_DELAY_MS") {
        PURGE_DELAY_NS.store((ms.min(3_600_000) as u64) * 1_000_000, Ordering::Relaxed);
    }
    if let Some(t) = crate::sys::env_usize(c"RUSTYDB_MEM_LARGE_THRESHOLD") {
        LARGE_THRESHOLD.store(
            t.clamp(MIN_LARGE_THRESHOLD, DEFAULT_LARGE_THRESHOLD),
            Ordering::Relaxed,
        );
    }
    // Release: publishes the stores above.
    STATE.store(1, Ordering::Release);
}

/// Rounds per magazine for small classes.
pub(crate) fn magazine_rounds() -> usize {
    init();
    // Relaxed: written once before STATE's Release, which `init` acquired.
    MAGAZINE.load(Ordering::Relaxed)
}

/// Decay delay in nanoseconds.
pub(crate) fn purge_delay_ns() -> u64 {
    init();
    // Relaxed: as in `magazine_rounds`.
    PURGE_DELAY_NS.load(Ordering::Relaxed)
}

/// The large-object threshold in bytes.
pub(crate) fn large_threshold() -> usize {
    init();
    // Relaxed: as in `magazine_rounds`.
    LARGE_THRESHOLD.load(Ordering::Relaxed)
}
