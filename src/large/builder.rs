//! Configuration: [`LargeObjectAllocatorBuilder`], per-request [`AllocOptions`],
//! and the limits they resolve to on first use.
//!
//! Every setting left unset is taken from the process's allocator options when
//! the allocator is first used: those of the `RustyAlloc` that made the first
//! allocation ([`crate::Options`]), each overridden by its variable (read
//! without allocating); the defaults are below:
//!
//! | setting | variable | default |
//! |---|---|---|
//! | threshold | `RUSTYDB_MEM_LARGE_THRESHOLD` (64k–256k) | 256 KiB |
//! | dirty decay (then `MADV_FREE`) | `RUSTYDB_MEM_PURGE_DELAY_MS` | 500 ms |
//! | muzzy decay (then unmapped) | `RUSTYDB_MEM_MUZZY_DELAY_MS` | 500 ms |
//! | cache bytes | `RUSTYDB_MEM_LARGE_CACHE` (`0` disables the cache) | 256 MiB, and at most the live large bytes (at least 32 MiB) |
//! | huge pages | `RUSTYDB_MEM_LARGE_HUGE`: `0` never, `1` transparent, `2m`, `1g` | never |
//! | cache entries | — | 128 |
//! | largest cached block | — | cache bytes ÷ 4 |

use core::time::Duration;

use super::LargeObjectAllocator;
use super::huge::HugePagePolicy;

/// Default bound on cached blocks.
pub(crate) const DEFAULT_CACHE_ENTRIES: usize = 128;

/// Settings as given; `None` = environment or default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Config {
    threshold: Option<usize>,
    huge: Option<HugePagePolicy>,
    cache_bytes: Option<usize>,
    cache_entries: Option<usize>,
    cache_block: Option<usize>,
    delay_ns: Option<u64>,
    muzzy_ns: Option<u64>,
}

impl Config {
    /// Everything from the environment or the defaults.
    pub(crate) const DEFAULT: Self = Self {
        threshold: None,
        huge: None,
        cache_bytes: None,
        cache_entries: None,
        cache_block: None,
        delay_ns: None,
        muzzy_ns: None,
    };

    /// The threshold, without taking any lock.
    pub(crate) fn threshold(&self) -> usize {
        match self.threshold {
            Some(t) => t,
            None => crate::options::large_threshold(),
        }
    }

    /// Resolves unset settings from the process's options ([`crate::Options`],
    /// overridden by the environment).
    pub(crate) fn resolve(&self) -> Limits {
        let max_bytes = self.cache_bytes.unwrap_or_else(crate::options::large_cache);
        let policy = self.huge.unwrap_or_else(crate::options::large_huge);
        Limits {
            threshold: self.threshold(),
            policy,
            max_bytes,
            max_entries: if max_bytes == 0 {
                0
            } else {
                self.cache_entries.unwrap_or(DEFAULT_CACHE_ENTRIES)
            },
            max_block: self.cache_block.unwrap_or(max_bytes / 4),
            delay_ns: self.delay_ns.unwrap_or_else(crate::options::purge_delay_ns),
            muzzy_ns: self.muzzy_ns.unwrap_or_else(crate::options::muzzy_delay_ns),
        }
    }
}

/// Settings in force (resolved once, kept under the allocator's lock).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Requests of this size or more belong to the large-object allocator.
    pub(crate) threshold: usize,
    /// Default huge-page policy.
    pub(crate) policy: HugePagePolicy,
    /// Most bytes the cache holds.
    pub(crate) max_bytes: usize,
    /// Most blocks the cache holds (0: no cache).
    pub(crate) max_entries: usize,
    /// Largest block the cache keeps.
    pub(crate) max_block: usize,
    /// Age (ns) after which a cached block is given back lazily (`MADV_FREE`).
    pub(crate) delay_ns: u64,
    /// Further age (ns) after which it is unmapped.
    pub(crate) muzzy_ns: u64,
}

impl Limits {
    /// Placeholder until [`Config::resolve`] runs (caches nothing).
    pub(crate) const UNRESOLVED: Self = Self {
        threshold: 0,
        policy: HugePagePolicy::Never,
        max_bytes: 0,
        max_entries: 0,
        max_block: 0,
        delay_ns: 0,
        muzzy_ns: 0,
    };
}

/// Builds a [`LargeObjectAllocator`]; every method is `const`, so the result
/// can initialise a `static`.
///
/// ```
/// use rustydb_memory::{HugePagePolicy, LargeObjectAllocator};
/// use std::time::Duration;
///
/// static BIG: LargeObjectAllocator = LargeObjectAllocator::builder()
///     .huge_pages(HugePagePolicy::Transparent)
///     .cache_max_bytes(64 << 20)
///     .purge_delay(Duration::from_millis(250))
///     .build();
/// assert_eq!(BIG.stats().live, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LargeObjectAllocatorBuilder {
    config: Config,
}

impl LargeObjectAllocatorBuilder {
    /// All settings from the environment or the defaults.
    pub const fn new() -> Self {
        Self {
            config: Config::DEFAULT,
        }
    }

    /// The size from which a front allocator should route requests here
    /// ([`LargeObjectAllocator::threshold`]). The allocator itself serves any
    /// size, rounded up to whole pages.
    pub const fn threshold(mut self, bytes: usize) -> Self {
        self.config.threshold = Some(bytes);
        self
    }

    /// The huge-page policy for requests that do not choose their own.
    pub const fn huge_pages(mut self, policy: HugePagePolicy) -> Self {
        self.config.huge = Some(policy);
        self
    }

    /// Most bytes of freed blocks kept mapped for reuse (0 disables the cache).
    pub const fn cache_max_bytes(mut self, bytes: usize) -> Self {
        self.config.cache_bytes = Some(bytes);
        self
    }

    /// Most freed blocks kept mapped for reuse (0 disables the cache).
    pub const fn cache_max_entries(mut self, n: usize) -> Self {
        self.config.cache_entries = Some(n);
        self
    }

    /// Largest freed block kept for reuse; bigger ones are unmapped at once.
    pub const fn cache_max_block(mut self, bytes: usize) -> Self {
        self.config.cache_block = Some(bytes);
        self
    }

    /// How long a freed block stays cached as it is before it is given back
    /// lazily with `MADV_FREE` (checked as blocks are freed and by
    /// [`LargeObjectAllocator::decay`]).
    pub const fn purge_delay(mut self, delay: Duration) -> Self {
        self.config.delay_ns = Some(nanos(delay));
        self
    }

    /// How long after the purge delay a cached block is unmapped (0: at the
    /// purge delay, without `MADV_FREE` first).
    pub const fn muzzy_delay(mut self, delay: Duration) -> Self {
        self.config.muzzy_ns = Some(nanos(delay));
        self
    }

    /// The allocator.
    pub const fn build(self) -> LargeObjectAllocator {
        LargeObjectAllocator::with_config(self.config)
    }
}

/// `d` in nanoseconds, saturating.
const fn nanos(d: Duration) -> u64 {
    let ns = d.as_nanos();
    if ns > u64::MAX as u128 {
        u64::MAX
    } else {
        ns as u64
    }
}

impl Default for LargeObjectAllocatorBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// Options of one allocation ([`LargeObjectAllocator::try_alloc_with`]).
///
/// ```
/// use rustydb_memory::{AllocOptions, HugePagePolicy};
/// let opts = AllocOptions::new().zeroed(true).prefault(true).huge_pages(HugePagePolicy::Transparent);
/// assert!(opts.is_zeroed() && opts.is_prefault());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocOptions {
    zeroed: bool,
    prefault: bool,
    huge: Option<HugePagePolicy>,
}

impl AllocOptions {
    /// Not zeroed, not prefaulted, the allocator's huge-page policy.
    pub const fn new() -> Self {
        Self {
            zeroed: false,
            prefault: false,
            huge: None,
        }
    }

    /// The block reads as zeros (free for fresh mappings; a reused block is
    /// cleared with `memset`).
    pub const fn zeroed(mut self, yes: bool) -> Self {
        self.zeroed = yes;
        self
    }

    /// The block's pages are made resident before it is returned
    /// (`MADV_POPULATE_WRITE`, else touching each page), so first accesses do
    /// not fault.
    pub const fn prefault(mut self, yes: bool) -> Self {
        self.prefault = yes;
        self
    }

    /// The huge-page policy for this block (instead of the allocator's).
    pub const fn huge_pages(mut self, policy: HugePagePolicy) -> Self {
        self.huge = Some(policy);
        self
    }

    /// Whether the block is zeroed.
    pub const fn is_zeroed(&self) -> bool {
        self.zeroed
    }

    /// Whether the block is prefaulted.
    pub const fn is_prefault(&self) -> bool {
        self.prefault
    }

    /// The huge-page policy asked for, if any.
    pub const fn huge_page_policy(&self) -> Option<HugePagePolicy> {
        self.huge
    }
}
