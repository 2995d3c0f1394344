//! `DebugAlloc<A>`: the type, its levels and settings. The allocation path
//! itself is in `path.rs`.

use core::alloc::GlobalAlloc;
use core::ptr;

use super::report::RawReport;
use super::sampling::DEFAULT_SAMPLE_BYTES;
use super::state::{self, State};
use crate::sync::{AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// How much the debugger does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum DebugLevel {
    /// Pass-through (the header is still written).
    Off = 0,
    /// Per-component counters.
    Counting = 1,
    /// Counters and Poisson byte-sampled allocations with their stacks: heap
    /// profiles with unbiased estimates, at production cost.
    Sampled = 2,
    /// Counters and a record per live block: leaks, double and invalid frees.
    Tracking = 3,
    /// Tracking plus backtraces, redzones, quarantine and sampled guard pages.
    Full = 4,
}

impl DebugLevel {
    pub(crate) fn from_u8(v: u8) -> DebugLevel {
        match v {
            1 => DebugLevel::Counting,
            2 => DebugLevel::Sampled,
            3 => DebugLevel::Tracking,
            4 => DebugLevel::Full,
            _ => DebugLevel::Off,
        }
    }

    /// Parses `off`, `counting`, `sampled`, `tracking`, `full` (or `0`–`3` for
    /// off, counting, tracking and full, as before the sampled level existed).
    ///
    /// ```
    /// use rustydb_memory::DebugLevel;
    /// assert_eq!(DebugLevel::parse(b"sampled"), Some(DebugLevel::Sampled));
    /// assert_eq!(DebugLevel::parse(b"2"), Some(DebugLevel::Tracking));
    /// ```
    pub fn parse(s: &[u8]) -> Option<DebugLevel> {
        Some(match s {
            b"off" | b"0" => DebugLevel::Off,
            b"counting" | b"1" => DebugLevel::Counting,
            b"sampled" | b"sampling" => DebugLevel::Sampled,
            b"tracking" | b"2" => DebugLevel::Tracking,
            b"full" | b"3" => DebugLevel::Full,
            _ => return None,
        })
    }
}

/// What to do after a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Print the report, record it, and go on (the faulty free is not performed).
    Continue,
    /// Print the report and abort the process.
    Abort,
}

pub(crate) const LEVEL_UNSET: u8 = 255;
/// Default quarantine bound.
pub const DEFAULT_QUARANTINE_BYTES: usize = 16 << 20;
/// Default sampling: one in this many small allocations gets guard pages (at Full).
pub const DEFAULT_SAMPLE_EVERY: u32 = 1000;

/// A debugging allocator around any `GlobalAlloc`: counts per component,
/// samples allocations for heap profiles, tracks live blocks (leaks),
/// catches double and invalid frees, overflows, writes after free and — on
/// sampled blocks — any access after free, with backtraces.
///
/// ```
/// use rustydb_memory::debug::{DebugAlloc, DebugLevel, LeakScope};
/// use std::alloc::{GlobalAlloc, Layout, System};
///
/// static DBG: DebugAlloc<System> = DebugAlloc::with_level(System, DebugLevel::Tracking);
/// let mark = DBG.mark();
/// let l = Layout::from_size_align(40, 8).unwrap();
/// // SAFETY: non-zero size; freed below with the same layout.
/// let p = unsafe { DBG.alloc(l) };
/// let leaks = DBG.leaks_since(mark, LeakScope::CurrentThread);
/// assert_eq!((leaks.count, leaks.bytes), (1, 40));
/// // SAFETY: `p` is live, from DBG with `l`.
/// unsafe { DBG.dealloc(p, l) };
/// assert_eq!(DBG.leaks_since(mark, LeakScope::CurrentThread).count, 0);
/// ```
pub struct DebugAlloc<A: GlobalAlloc> {
    pub(crate) inner: A,
    level: AtomicU8,
    policy: AtomicU8,
    pub(crate) quarantine_bytes: AtomicUsize,
    guard_every: AtomicU32,
    pub(crate) stack_every: AtomicU32,
    pub(crate) sample_bytes: AtomicU64,
    state: AtomicPtr<State>,
}

impl<A: GlobalAlloc> core::fmt::Debug for DebugAlloc<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DebugAlloc")
            .field("level", &self.level())
            .finish()
    }
}

impl<A: GlobalAlloc> DebugAlloc<A> {
    /// Wraps `inner`; the level comes from `RUSTYDB_MEM_DEBUG` (`off`,
    /// `counting`, `sampled`, `tracking`, `full`) on first use, `off` if unset.
    pub const fn new(inner: A) -> Self {
        Self::make(inner, LEVEL_UNSET)
    }

    /// Wraps `inner` at `level` (the environment is not read).
    pub const fn with_level(inner: A, level: DebugLevel) -> Self {
        Self::make(inner, level as u8)
    }

    const fn make(inner: A, level: u8) -> Self {
        Self {
            inner,
            level: AtomicU8::new(level),
            policy: AtomicU8::new(0),
            quarantine_bytes: AtomicUsize::new(DEFAULT_QUARANTINE_BYTES),
            guard_every: AtomicU32::new(DEFAULT_SAMPLE_EVERY),
            stack_every: AtomicU32::new(1),
            sample_bytes: AtomicU64::new(DEFAULT_SAMPLE_BYTES),
            state: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The wrapped allocator.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    /// The current level.
    #[inline(always)]
    pub fn level(&self) -> DebugLevel {
        // Relaxed: a mode flag; blocks carry their own flags.
        let l = self.level.load(Ordering::Relaxed);
        if l != LEVEL_UNSET {
            return DebugLevel::from_u8(l);
        }
        self.level_from_env()
    }

    #[cold]
    fn level_from_env(&self) -> DebugLevel {
        // SAFETY: getenv with a NUL-terminated name; the value is copied at once.
        let p = unsafe { libc::getenv(c"RUSTYDB_MEM_DEBUG".as_ptr()) };
        let level = if p.is_null() {
            DebugLevel::Off
        } else {
            // SAFETY: a non-null getenv result is a valid C string.
            DebugLevel::parse(unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes())
                .unwrap_or(DebugLevel::Off)
        };
        // Relaxed: racing first users compute the same value.
        let _ = self.level.compare_exchange(
            LEVEL_UNSET,
            level as u8,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        DebugLevel::from_u8(self.level.load(Ordering::Relaxed))
    }

    /// Changes the level for blocks allocated from now on.
    pub fn set_level(&self, level: DebugLevel) {
        self.level.store(level as u8, Ordering::Relaxed);
    }

    /// Report-and-continue (default) or abort.
    pub fn set_policy(&self, p: Policy) {
        self.policy
            .store(matches!(p, Policy::Abort) as u8, Ordering::Relaxed);
    }

    /// Bounds the quarantine (Full level) in bytes.
    pub fn set_quarantine_bytes(&self, bytes: usize) {
        self.quarantine_bytes.store(bytes, Ordering::Relaxed);
    }

    /// At Full, captures the allocation backtrace of one in `n` allocations
    /// (default 1: every one). With `n > 1` leak groups of unsampled blocks
    /// carry their component but no site.
    pub fn set_backtrace_every(&self, n: u32) {
        self.stack_every.store(n.max(1), Ordering::Relaxed);
    }

    /// Samples one in `n` small allocations onto guard pages at Full (0 = never).
    pub fn set_sample_every(&self, n: u32) {
        self.guard_every.store(n, Ordering::Relaxed);
    }

    /// At the Sampled level, the mean number of bytes allocated between two
    /// sampled allocations (default 512 KiB; 1 samples every allocation).
    /// Profiles scale each sample by the inverse of its probability, so their
    /// figures stay unbiased whatever the interval.
    pub fn set_sample_interval(&self, bytes: u64) {
        self.sample_bytes
            .store(bytes.clamp(1, u32::MAX as u64), Ordering::Relaxed);
    }

    /// The state, mapped on first use (`None` if the system refused memory).
    #[inline]
    pub(crate) fn state(&self) -> Option<&'static State> {
        // Acquire: pairs with the publishing CAS, so the mapping's contents are visible.
        let s = self.state.load(Ordering::Acquire);
        if !s.is_null() {
            // SAFETY: published states are never unmapped.
            return Some(unsafe { &*s });
        }
        self.init_state()
    }

    #[cold]
    #[inline(never)]
    fn init_state(&self) -> Option<&'static State> {
        let s = state::create(&self.state)?;
        super::profile::exit::arm();
        Some(s)
    }

    /// Prints, records and — under `Policy::Abort` — aborts.
    #[cold]
    pub(crate) fn report(&self, r: RawReport) {
        r.print();
        if let Some(s) = self.state() {
            s.reports.push(r);
        }
        // Relaxed: a mode flag.
        if self.policy.load(Ordering::Relaxed) == 1 {
            // SAFETY: abort has no preconditions.
            unsafe { libc::abort() };
        }
    }

    /// Whether this allocation goes onto a guard page (Full, 1 in N).
    pub(crate) fn guard_now(&self) -> bool {
        // Relaxed: a mode value.
        let every = self.guard_every.load(Ordering::Relaxed);
        every != 0 && super::threads::with(|t| countdown(&t.guard_left, every))
    }

    /// Whether this allocation's stack is captured (Full, 1 in N).
    pub(crate) fn stack_now(&self) -> bool {
        // Relaxed: a mode value.
        let every = self.stack_every.load(Ordering::Relaxed);
        every <= 1 || super::threads::with(|t| countdown(&t.stack_left, every))
    }
}

/// True once every `every` calls (`every` ≥ 1).
fn countdown(c: &core::cell::Cell<u32>, every: u32) -> bool {
    let left = if c.get() == 0 || c.get() > every {
        every
    } else {
        c.get()
    } - 1;
    c.set(if left == 0 { every } else { left });
    left == 0
}
