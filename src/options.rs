//! Process-wide options, read once from `RUSTYDB_MEM_*` environment variables
//! without allocating (the allocator reads them while initialising itself).
//!
//! | variable | meaning | default | range |
//! |---|---|---|---|
//! | `RUSTYDB_MEM_MAGAZINE` | rounds per magazine for small classes | 64 | 1–64 |
//! | `RUSTYDB_MEM_PURGE_DELAY_MS` | dirty decay: free memory untouched this long is given back lazily (`MADV_FREE`; unmapped at once for large blocks if the muzzy delay is 0) | 500 | 0–3 600 000 |
//! | `RUSTYDB_MEM_MUZZY_DELAY_MS` | muzzy decay: this long after that, `MADV_DONTNEED` (RSS drops; large blocks are unmapped); `0` skips `MADV_FREE` | 500 | 0–3 600 000 |
//! | `RUSTYDB_MEM_BACKGROUND` | `1`: a background thread runs the decay every quarter of the dirty delay while anything is unpurged, and sleeps otherwise | 0 | 0–1 |
//! | `RUSTYDB_MEM_LARGE_THRESHOLD` | requests of this size or more go to the large-object allocator (`k`/`m` suffixes allowed) | 256k | 64k–256k |
//!
//! The defaults give free memory back to the OS 1 s after it was last used
//! (jemalloc: 10 s dirty, 0 s muzzy; mimalloc: 10 ms): the whole-program suite
//! reads RSS 2 s after each workload, and its `batch` workload, which reuses
//! its memory within milliseconds, never sees a page purged under it.

use crate::sync::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Default rounds per magazine.
pub(crate) const DEFAULT_MAGAZINE: usize = 64;
/// Default dirty decay.
pub(crate) const DEFAULT_PURGE_DELAY_MS: u64 = 500;
/// Default muzzy decay.
pub(crate) const DEFAULT_MUZZY_DELAY_MS: u64 = 500;
/// Default (and largest) large-object threshold.
pub(crate) const DEFAULT_LARGE_THRESHOLD: usize = 256 << 10;
/// Smallest large-object threshold the option accepts.
pub(crate) const MIN_LARGE_THRESHOLD: usize = 64 << 10;

static STATE: AtomicU32 = AtomicU32::new(0); // 0 = unread, 1 = read
static MAGAZINE: AtomicUsize = AtomicUsize::new(DEFAULT_MAGAZINE);
static PURGE_DELAY_NS: AtomicU64 = AtomicU64::new(DEFAULT_PURGE_DELAY_MS * 1_000_000);
static MUZZY_DELAY_NS: AtomicU64 = AtomicU64::new(DEFAULT_MUZZY_DELAY_MS * 1_000_000);
static BACKGROUND: AtomicU32 = AtomicU32::new(0);
static LARGE_THRESHOLD: AtomicUsize = AtomicUsize::new(DEFAULT_LARGE_THRESHOLD);

/// Reads the environment once. Idempotent and race-tolerant: concurrent first
/// calls compute the same values.
#[cold]
pub(crate) fn init() {
    // Acquire: pairs with the Release below, so readers after `1` see the values.
    if STATE.load(Ordering::Acquire) == 1 {
        return;
    }
    if !crate::sys::environment_ready() {
        // A preloaded `malloc` called by the dynamic linker before libc set up
        // `environ`: serve with the defaults and read the variables next time.
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
    if let Some(ms) = crate::sys::env_usize(c"RUSTYDB_MEM_MUZZY_DELAY_MS") {
        MUZZY_DELAY_NS.store((ms.min(3_600_000) as u64) * 1_000_000, Ordering::Relaxed);
    }
    if let Some(b) = crate::sys::env_usize(c"RUSTYDB_MEM_BACKGROUND") {
        BACKGROUND.store(u32::from(b != 0), Ordering::Relaxed);
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

/// Dirty decay delay in nanoseconds.
pub(crate) fn purge_delay_ns() -> u64 {
    init();
    // Relaxed: as in `magazine_rounds`.
    PURGE_DELAY_NS.load(Ordering::Relaxed)
}

/// Muzzy decay delay in nanoseconds (0: no `MADV_FREE` stage).
pub(crate) fn muzzy_delay_ns() -> u64 {
    init();
    // Relaxed: as in `magazine_rounds`.
    MUZZY_DELAY_NS.load(Ordering::Relaxed)
}

/// Whether `RUSTYDB_MEM_BACKGROUND` asked for the background purger. False until
/// the environment could be read.
pub(crate) fn background_purger() -> bool {
    init();
    // Relaxed: as in `magazine_rounds`.
    BACKGROUND.load(Ordering::Relaxed) != 0
}

/// The large-object threshold in bytes.
pub(crate) fn large_threshold() -> usize {
    init();
    // Relaxed: as in `magazine_rounds`.
    LARGE_THRESHOLD.load(Ordering::Relaxed)
}
