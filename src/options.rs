//! The allocator's options: [`Options`], set in code on the `RustyAlloc`
//! static, each overridden by its `RUSTYDB_MEM_*` environment variable when that
//! is set. They are resolved once, at the first allocation, without allocating
//! (the allocator reads them while initialising itself), into the process-wide
//! atomics below.
//!
//! | code (`Options::…`) | variable | meaning | default | range |
//! |---|---|---|---|---|
//! | `magazine` | `RUSTYDB_MEM_MAGAZINE` | rounds per magazine for small classes | 64 | 1–64 |
//! | `purge_delay_ms` | `RUSTYDB_MEM_PURGE_DELAY_MS` | dirty decay: free memory untouched this long is given back lazily (`MADV_FREE`; unmapped at once for large blocks if the muzzy delay is 0) | 500 | 0–3 600 000 |
//! | `muzzy_delay_ms` | `RUSTYDB_MEM_MUZZY_DELAY_MS` | muzzy decay: this long after that, `MADV_DONTNEED` (RSS drops; large blocks are unmapped); `0` skips `MADV_FREE` | 500 | 0–3 600 000 |
//! | `background` | `RUSTYDB_MEM_BACKGROUND` | `1`: a background thread runs the decay every quarter of the dirty delay while anything is unpurged, and sleeps otherwise | 0 | 0–1 |
//! | `owned_slabs` | `RUSTYDB_MEM_OWNED_SLABS` | `1`: each thread allocates from slabs of its own, and a free of another thread's object goes home to its slab (no passive false sharing); `0`: any thread reuses any freed object at once | 1 | 0–1 |
//! | `large_threshold` | `RUSTYDB_MEM_LARGE_THRESHOLD` | requests of this size or more go to the large-object allocator (`k`/`m` suffixes allowed) | 256k | 64k–256k |
//! | `large_cache` | `RUSTYDB_MEM_LARGE_CACHE` | bytes of freed large blocks kept mapped (0: no cache) | 256m | any |
//! | `large_huge` | `RUSTYDB_MEM_LARGE_HUGE` | huge pages for large blocks: `0` never, `1` transparent, `2m`, `1g` | 0 | those four |
//!
//! The defaults give free memory back to the OS 1 s after it was last used
//! (jemalloc: 10 s dirty, 0 s muzzy; mimalloc: 10 ms): the whole-program suite
//! reads RSS 2 s after each workload, and its `batch` workload, which reuses
//! its memory within milliseconds, never sees a page purged under it.

use crate::large::HugePagePolicy;
use crate::sync::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use crate::sys::HugePageSize;

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
/// Largest decay delay the options accept, in milliseconds (one hour).
pub(crate) const MAX_DELAY_MS: u64 = 3_600_000;
/// Default bound on the large-object cache's bytes.
pub(crate) const DEFAULT_LARGE_CACHE: usize = 256 << 20;
/// Most rounds per magazine.
const MAX_MAGAZINE: usize = crate::slab::magazine::MAG_MAX;

/// The options of [`RustyAlloc`](crate::RustyAlloc), built in a `const`
/// context and given to the allocator's `static` with
/// [`RustyAlloc::with_options`](crate::RustyAlloc::with_options).
///
/// Each builder is named after its environment variable without the
/// `RUSTYDB_MEM_` prefix; a variable that is set overrides the value given
/// here. The options are resolved at the process's first allocation, from the
/// `RustyAlloc` value that made it (the allocator's state is process-wide, so
/// the first one to allocate wins; the C ABI and [`SharedHeap`](crate::SharedHeap)
/// resolve the defaults if they come first). Values out of range are clamped
/// to their range, as the variables are; [`Options::is_valid`] turns that
/// into a compile-time error, [`Options::validate`] into an [`Error`](crate::Error).
///
/// | builder | variable | default | range |
/// |---|---|---|---|
/// | [`magazine`](Options::magazine) | `RUSTYDB_MEM_MAGAZINE` | 64 | 1–64 |
/// | [`purge_delay_ms`](Options::purge_delay_ms) | `RUSTYDB_MEM_PURGE_DELAY_MS` | 500 | 0–3 600 000 |
/// | [`muzzy_delay_ms`](Options::muzzy_delay_ms) | `RUSTYDB_MEM_MUZZY_DELAY_MS` | 500 | 0–3 600 000 |
/// | [`background`](Options::background) | `RUSTYDB_MEM_BACKGROUND` | false | — |
/// | [`owned_slabs`](Options::owned_slabs) | `RUSTYDB_MEM_OWNED_SLABS` | true | — |
/// | [`large_threshold`](Options::large_threshold) | `RUSTYDB_MEM_LARGE_THRESHOLD` | 256 KiB | 64 KiB–256 KiB |
/// | [`large_cache`](Options::large_cache) | `RUSTYDB_MEM_LARGE_CACHE` | 256 MiB | any (0: no cache) |
/// | [`large_huge`](Options::large_huge) | `RUSTYDB_MEM_LARGE_HUGE` | `Never` | any policy |
///
/// ```
/// use rustydb_memory::{HugePagePolicy, Options, RustyAlloc};
///
/// const OPTIONS: Options = Options::new()
///     .magazine(32)
///     .purge_delay_ms(1000)
///     .large_huge(HugePagePolicy::Transparent);
/// const _: () = assert!(OPTIONS.is_valid());
///
/// static A: RustyAlloc = RustyAlloc::with_options(OPTIONS);
/// // (with `#[global_allocator]` on `A` in a program)
/// assert_eq!(A.options(), &OPTIONS);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Options {
    magazine: usize,
    purge_delay_ms: u64,
    muzzy_delay_ms: u64,
    background: bool,
    owned_slabs: bool,
    large_threshold: usize,
    large_cache: usize,
    large_huge: HugePagePolicy,
}

impl Options {
    /// The defaults (those of the table above).
    ///
    /// ```
    /// use rustydb_memory::Options;
    /// assert_eq!(Options::new(), Options::default());
    /// assert!(Options::new().is_valid());
    /// ```
    pub const fn new() -> Self {
        Self {
            magazine: DEFAULT_MAGAZINE,
            purge_delay_ms: DEFAULT_PURGE_DELAY_MS,
            muzzy_delay_ms: DEFAULT_MUZZY_DELAY_MS,
            background: false,
            owned_slabs: true,
            large_threshold: DEFAULT_LARGE_THRESHOLD,
            large_cache: DEFAULT_LARGE_CACHE,
            large_huge: HugePagePolicy::Never,
        }
    }

    /// Rounds per magazine for small classes, 1–64 (`RUSTYDB_MEM_MAGAZINE`;
    /// big classes use fewer).
    ///
    /// ```
    /// use rustydb_memory::Options;
    /// assert!(Options::new().magazine(16).is_valid());
    /// assert!(!Options::new().magazine(0).is_valid());
    /// ```
    pub const fn magazine(mut self, rounds: usize) -> Self {
        self.magazine = rounds;
        self
    }

    /// Dirty decay in milliseconds, 0–3 600 000 (`RUSTYDB_MEM_PURGE_DELAY_MS`):
    /// free memory untouched this long is given back lazily (`MADV_FREE`).
    ///
    /// ```
    /// use rustydb_memory::Options;
    /// assert!(Options::new().purge_delay_ms(1000).is_valid());
    /// ```
    pub const fn purge_delay_ms(mut self, ms: u64) -> Self {
        self.purge_delay_ms = ms;
        self
    }

    /// Muzzy decay in milliseconds, 0–3 600 000 (`RUSTYDB_MEM_MUZZY_DELAY_MS`):
    /// this long after the dirty delay, `MADV_DONTNEED`; 0 skips `MADV_FREE`.
    ///
    /// ```
    /// use rustydb_memory::Options;
    /// assert!(Options::new().muzzy_delay_ms(0).is_valid());
    /// ```
    pub const fn muzzy_delay_ms(mut self, ms: u64) -> Self {
        self.muzzy_delay_ms = ms;
        self
    }

    /// Whether a background thread runs the decay (`RUSTYDB_MEM_BACKGROUND`;
    /// started at a thread's first allocation slow path).
    ///
    /// ```
    /// use rustydb_memory::Options;
    /// assert_ne!(Options::new().background(true), Options::new());
    /// ```
    pub const fn background(mut self, on: bool) -> Self {
        self.background = on;
        self
    }

    /// Whether threads own slabs (`RUSTYDB_MEM_OWNED_SLABS`): a thread's refills
    /// come from slabs of its own, and a free of an object of another thread's
    /// slab (a *remote* free) goes home to that slab instead of into the freeing
    /// thread's cache — so two threads never get neighbouring objects from one
    /// batch (Hoard's passive false sharing: the whole-program suite's
    /// `cache-scratch` ran 40× slower without it when both threads ran at once).
    /// It costs producer/consumer programs, whose frees are all remote, 10–30 %
    /// (BENCHMARKS.md); `false` restores the plain magazine exchange. Threads
    /// beyond the 127 owner slots allocate as with `false`.
    ///
    /// ```
    /// use rustydb_memory::Options;
    /// assert_ne!(Options::new().owned_slabs(false), Options::new());
    /// ```
    pub const fn owned_slabs(mut self, on: bool) -> Self {
        self.owned_slabs = on;
        self
    }

    /// Requests of this many bytes or more go to the large-object allocator,
    /// 64 KiB–256 KiB (`RUSTYDB_MEM_LARGE_THRESHOLD`).
    ///
    /// ```
    /// use rustydb_memory::Options;
    /// assert!(Options::new().large_threshold(128 << 10).is_valid());
    /// assert!(!Options::new().large_threshold(1 << 20).is_valid());
    /// ```
    pub const fn large_threshold(mut self, bytes: usize) -> Self {
        self.large_threshold = bytes;
        self
    }

    /// Most bytes of freed large blocks kept mapped for reuse, 0 disabling the
    /// cache (`RUSTYDB_MEM_LARGE_CACHE`; the cache also never holds more than
    /// the live large bytes, at least 32 MiB).
    ///
    /// ```
    /// use rustydb_memory::Options;
    /// assert!(Options::new().large_cache(0).is_valid());
    /// ```
    pub const fn large_cache(mut self, bytes: usize) -> Self {
        self.large_cache = bytes;
        self
    }

    /// The huge-page policy of large blocks (`RUSTYDB_MEM_LARGE_HUGE`: `0`
    /// never, `1` transparent, `2m`/`1g` explicit).
    ///
    /// ```
    /// use rustydb_memory::{HugePagePolicy, Options};
    /// assert!(Options::new().large_huge(HugePagePolicy::Transparent).is_valid());
    /// ```
    pub const fn large_huge(mut self, policy: HugePagePolicy) -> Self {
        self.large_huge = policy;
        self
    }

    /// Whether every option is in its range; usable in a `const` assertion, so
    /// an out-of-range option fails the build instead of being clamped.
    ///
    /// ```
    /// use rustydb_memory::Options;
    /// const MINE: Options = Options::new().magazine(32).large_threshold(64 << 10);
    /// const _: () = assert!(MINE.is_valid());
    /// assert!(!Options::new().purge_delay_ms(7_200_000).is_valid());
    /// ```
    pub const fn is_valid(&self) -> bool {
        self.first_invalid().is_none()
    }

    /// `Ok` if every option is in its range, else an
    /// [`Error::InvalidOption`](crate::Error::InvalidOption) naming the first
    /// one that is not, its value and its range.
    ///
    /// ```
    /// use rustydb_memory::{Error, Options};
    /// assert!(Options::new().validate().is_ok());
    /// let err = Options::new().magazine(100).validate().unwrap_err();
    /// assert!(matches!(err, Error::InvalidOption { option: "magazine", .. }));
    /// assert!(err.to_string().contains("RUSTYDB_MEM_MAGAZINE"));
    /// ```
    pub fn validate(&self) -> crate::Result<()> {
        match self.first_invalid() {
            None => Ok(()),
            Some((option, variable, value, min, max)) => Err(crate::Error::InvalidOption {
                option,
                variable,
                value,
                min,
                max,
            }),
        }
    }

    /// The first option out of range: (code name, variable, value, min, max).
    const fn first_invalid(&self) -> Option<(&'static str, &'static str, u64, u64, u64)> {
        if self.magazine < 1 || self.magazine > MAX_MAGAZINE {
            return Some((
                "magazine",
                "RUSTYDB_MEM_MAGAZINE",
                self.magazine as u64,
                1,
                MAX_MAGAZINE as u64,
            ));
        }
        if self.purge_delay_ms > MAX_DELAY_MS {
            return Some((
                "purge_delay_ms",
                "RUSTYDB_MEM_PURGE_DELAY_MS",
                self.purge_delay_ms,
                0,
                MAX_DELAY_MS,
            ));
        }
        if self.muzzy_delay_ms > MAX_DELAY_MS {
            return Some((
                "muzzy_delay_ms",
                "RUSTYDB_MEM_MUZZY_DELAY_MS",
                self.muzzy_delay_ms,
                0,
                MAX_DELAY_MS,
            ));
        }
        if self.large_threshold < MIN_LARGE_THRESHOLD
            || self.large_threshold > DEFAULT_LARGE_THRESHOLD
        {
            return Some((
                "large_threshold",
                "RUSTYDB_MEM_LARGE_THRESHOLD",
                self.large_threshold as u64,
                MIN_LARGE_THRESHOLD as u64,
                DEFAULT_LARGE_THRESHOLD as u64,
            ));
        }
        None
    }
}

impl Default for Options {
    fn default() -> Self {
        Self::new()
    }
}

/// 0 = unresolved, 1 = resolved, 2 = being resolved.
static STATE: AtomicU32 = AtomicU32::new(0);
static MAGAZINE: AtomicUsize = AtomicUsize::new(DEFAULT_MAGAZINE);
static PURGE_DELAY_NS: AtomicU64 = AtomicU64::new(DEFAULT_PURGE_DELAY_MS * 1_000_000);
static MUZZY_DELAY_NS: AtomicU64 = AtomicU64::new(DEFAULT_MUZZY_DELAY_MS * 1_000_000);
static BACKGROUND: AtomicU32 = AtomicU32::new(0);
static OWNED_SLABS: AtomicU32 = AtomicU32::new(1);
static LARGE_THRESHOLD: AtomicUsize = AtomicUsize::new(DEFAULT_LARGE_THRESHOLD);
static LARGE_CACHE: AtomicUsize = AtomicUsize::new(DEFAULT_LARGE_CACHE);
static LARGE_HUGE: AtomicU32 = AtomicU32::new(0);

/// The code of a huge-page policy in `LARGE_HUGE`.
fn huge_code(p: HugePagePolicy) -> u32 {
    match p {
        HugePagePolicy::Never => 0,
        HugePagePolicy::Transparent => 1,
        HugePagePolicy::Explicit(HugePageSize::TwoMiB) => 2,
        HugePagePolicy::Explicit(HugePageSize::OneGiB) => 3,
    }
}

/// The huge-page policy of a `LARGE_HUGE` code.
fn huge_of(code: u32) -> HugePagePolicy {
    match code {
        1 => HugePagePolicy::Transparent,
        2 => HugePagePolicy::Explicit(HugePageSize::TwoMiB),
        3 => HugePagePolicy::Explicit(HugePageSize::OneGiB),
        _ => HugePagePolicy::Never,
    }
}

/// Resolves the options with the defaults (the paths that have no `RustyAlloc`
/// value: the C ABI, `SharedHeap`, the purger).
#[inline]
pub(crate) fn init() {
    init_with(&Options::new());
}

/// Resolves the options once: `opts`, each overridden by its variable when
/// set, clamped to its range. Later calls (with any options) return at once.
#[inline]
pub(crate) fn init_with(opts: &Options) {
    // Acquire: pairs with the Release in `resolve`, so readers after `1` see the values.
    if STATE.load(Ordering::Acquire) != 1 {
        resolve(opts);
    }
}

#[cold]
#[inline(never)]
fn resolve(opts: &Options) {
    loop {
        // Acquire on success: orders our stores after any earlier writer's.
        match STATE.compare_exchange(0, 2, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => break,
            Err(1) => return,
            // Another thread is resolving (a few `getenv` calls, no lock held):
            // wait for it, so the first caller's options win.
            Err(_) => core::hint::spin_loop(),
        }
    }
    let ready = crate::sys::environment_ready();
    let env = |name: &core::ffi::CStr| {
        if ready {
            crate::sys::env_usize(name)
        } else {
            None
        }
    };
    let magazine = env(c"RUSTYDB_MEM_MAGAZINE").unwrap_or(opts.magazine);
    let purge_ms = env(c"RUSTYDB_MEM_PURGE_DELAY_MS").map_or(opts.purge_delay_ms, |v| v as u64);
    let muzzy_ms = env(c"RUSTYDB_MEM_MUZZY_DELAY_MS").map_or(opts.muzzy_delay_ms, |v| v as u64);
    let background = env(c"RUSTYDB_MEM_BACKGROUND").map_or(opts.background, |b| b != 0);
    let owned = env(c"RUSTYDB_MEM_OWNED_SLABS").map_or(opts.owned_slabs, |b| b != 0);
    let threshold = env(c"RUSTYDB_MEM_LARGE_THRESHOLD").unwrap_or(opts.large_threshold);
    let cache = env(c"RUSTYDB_MEM_LARGE_CACHE").unwrap_or(opts.large_cache);
    let huge = env(c"RUSTYDB_MEM_LARGE_HUGE")
        .and_then(HugePagePolicy::from_env_value)
        .unwrap_or(opts.large_huge);
    // Relaxed: published by the Release store of STATE.
    MAGAZINE.store(magazine.clamp(1, MAX_MAGAZINE), Ordering::Relaxed);
    PURGE_DELAY_NS.store(purge_ms.min(MAX_DELAY_MS) * 1_000_000, Ordering::Relaxed);
    MUZZY_DELAY_NS.store(muzzy_ms.min(MAX_DELAY_MS) * 1_000_000, Ordering::Relaxed);
    BACKGROUND.store(u32::from(background), Ordering::Relaxed);
    OWNED_SLABS.store(u32::from(owned), Ordering::Relaxed);
    LARGE_THRESHOLD.store(
        threshold.clamp(MIN_LARGE_THRESHOLD, DEFAULT_LARGE_THRESHOLD),
        Ordering::Relaxed,
    );
    LARGE_CACHE.store(cache, Ordering::Relaxed);
    LARGE_HUGE.store(huge_code(huge), Ordering::Relaxed);
    // Release: publishes the stores above. A preloaded `malloc` called by the
    // dynamic linker before libc set up `environ` serves with the options as
    // given and reads the variables next time (state back to 0).
    STATE.store(if ready { 1 } else { 0 }, Ordering::Release);
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

/// Whether the options ask for the background purger. False until the
/// environment could be read.
pub(crate) fn background_purger() -> bool {
    init();
    // Relaxed: as in `magazine_rounds`.
    BACKGROUND.load(Ordering::Relaxed) != 0
}

/// Whether thread caches claim slab owner slots (see [`Options::owned_slabs`]).
pub(crate) fn owned_slabs() -> bool {
    init();
    // Relaxed: as in `magazine_rounds`.
    OWNED_SLABS.load(Ordering::Relaxed) != 0
}

/// The large-object threshold in bytes.
pub(crate) fn large_threshold() -> usize {
    init();
    // Relaxed: as in `magazine_rounds`.
    LARGE_THRESHOLD.load(Ordering::Relaxed)
}

/// The bound on the process-wide large-object cache, in bytes.
pub(crate) fn large_cache() -> usize {
    init();
    // Relaxed: as in `magazine_rounds`.
    LARGE_CACHE.load(Ordering::Relaxed)
}

/// The huge-page policy of large blocks.
pub(crate) fn large_huge() -> HugePagePolicy {
    init();
    // Relaxed: as in `magazine_rounds`.
    huge_of(LARGE_HUGE.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked_in_const_and_at_run_time() {
        const OK: Options = Options::new().magazine(1).purge_delay_ms(MAX_DELAY_MS);
        const _: () = assert!(OK.is_valid());
        assert!(OK.validate().is_ok());
        for bad in [
            Options::new().magazine(65),
            Options::new().muzzy_delay_ms(MAX_DELAY_MS + 1),
            Options::new().large_threshold(4096),
        ] {
            assert!(!bad.is_valid());
            assert!(bad.validate().is_err());
        }
    }

    #[test]
    fn huge_codes_round_trip() {
        for p in [
            HugePagePolicy::Never,
            HugePagePolicy::Transparent,
            HugePagePolicy::Explicit(HugePageSize::TwoMiB),
            HugePagePolicy::Explicit(HugePageSize::OneGiB),
        ] {
            assert_eq!(huge_of(huge_code(p)), p);
        }
    }
}
