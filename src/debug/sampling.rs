//! Poisson byte sampling, as tcmalloc and jemalloc's `prof` do: sample points
//! fall on the stream of allocated bytes as a Poisson process of mean
//! interval `R` bytes (exponential gaps), and an allocation is sampled when
//! one falls inside it. A block of `s` bytes is then sampled with probability
//! `p = 1 − exp(−s/R)`, so each sampled block stands for `1/p` blocks and
//! `s/p` bytes: unbiased estimates of live and allocated bytes per site, at
//! the cost of one subtraction per allocation and a stack per `R` bytes.
//!
//! Sampled blocks are recorded (with their stack) in a small locked table of
//! their own: with `R` = 512 KiB that is a lock every half megabyte.
//! Per-site allocation totals (estimated here, exact at the Full level) are
//! kept per stack id for the profiles' `alloc_*` figures.

use super::reserved::Reserved;
use super::stacks::depot::CAPACITY;
use super::table::{Map, Record};
use super::threads::ThreadState;
use crate::sync::{AtomicU64, Lock, Ordering, RawLock};

/// Default mean sampling interval: one stack per 512 KiB allocated.
pub const DEFAULT_SAMPLE_BYTES: u64 = 512 << 10;

/// Fixed-point scale of the estimated counts (thousandths of a block).
pub(crate) const COUNT_SCALE: f64 = 1000.0;

/// Sampled live blocks and per-site totals of one `DebugAlloc`.
pub(crate) struct Samples {
    live: Lock<Map>,
    /// Per stack id: [estimated bytes allocated, estimated blocks × 1000].
    sites: Reserved<[AtomicU64; 2], CAPACITY>,
}

/// The weight of a sampled block of `size` bytes at mean interval `rate`:
/// `1/p`, `p = 1 − exp(−size/rate)`.
pub(crate) fn weight(size: usize, rate: u64) -> f64 {
    if rate <= 1 {
        return 1.0;
    }
    let p = -(-(size as f64) / rate as f64).exp_m1();
    if p > 0.0 { 1.0 / p } else { 1.0 }
}

impl Samples {
    pub(crate) fn new() -> Option<Self> {
        // SAFETY: all-zero atomics are valid (0).
        let sites = unsafe { Reserved::zeroed() }?;
        Some(Self {
            live: Lock::new(Map::new()),
            sites,
        })
    }

    /// The lock, for the fork handlers.
    pub(crate) fn raw(&self) -> &RawLock {
        self.live.raw()
    }

    /// Records a sampled live block (its `rate` says what it stands for).
    pub(crate) fn insert(&self, r: Record) {
        let w = weight(r.size, r.rate as u64);
        self.add_site(r.alloc_stack, r.size as f64 * w, w);
        self.live.lock().insert(r);
    }

    /// Forgets a sampled block.
    pub(crate) fn remove(&self, addr: usize) {
        self.live.lock().remove(addr);
    }

    /// Adds to stack `id`'s allocation totals.
    #[inline]
    pub(crate) fn add_site(&self, id: u32, bytes: f64, blocks: f64) {
        let Some(s) = self.sites.get(id as usize).filter(|_| id != 0) else {
            return;
        };
        // Relaxed: statistics.
        s[0].fetch_add(bytes as u64, Ordering::Relaxed);
        s[1].fetch_add((blocks * COUNT_SCALE) as u64, Ordering::Relaxed);
    }

    /// Stack `id`'s totals: (bytes, blocks × 1000).
    pub(crate) fn site(&self, id: u32) -> (u64, u64) {
        let Some(s) = self.sites.get(id as usize).filter(|_| id != 0) else {
            return (0, 0);
        };
        // Relaxed: statistics.
        (s[0].load(Ordering::Relaxed), s[1].load(Ordering::Relaxed))
    }

    /// A copy of the sampled live blocks (taken under the lock into memory
    /// the caller allocates beforehand; the caller holds the reentrancy flag).
    pub(crate) fn live(&self) -> Vec<Record> {
        let n = self.live.lock().len();
        let mut out = Vec::with_capacity(n + 64);
        let m = self.live.lock();
        m.for_each(|r| {
            if out.len() < out.capacity() {
                out.push(*r);
            }
        });
        out
    }
}

/// Counts `size` bytes off the thread's sampling interval; true if this
/// allocation is sampled (then a fresh interval starts).
#[inline(always)]
pub(crate) fn take(t: &ThreadState, size: usize, rate: u64) -> bool {
    let left = t.sample_left.get() - size as i64;
    t.sample_left.set(left);
    left < 0 && restart(t, rate)
}

/// Starts a new exponential interval. On a thread's first call it only seeds
/// (so that its first allocation is not always sampled).
#[cold]
#[inline(never)]
fn restart(t: &ThreadState, rate: u64) -> bool {
    let first = t.rng.get() == 0;
    if first {
        // A per-thread seed: reproducible for a given thread order.
        let id = super::threads::thread_id() as u64;
        t.rng.set((id.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
    }
    let mut x = t.rng.get();
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    t.rng.set(x);
    // u in (0, 1]: 53 random bits.
    let u = ((x >> 11) + 1) as f64 / (1u64 << 53) as f64;
    let gap = (-u.ln() * rate.max(1) as f64).min(i64::MAX as f64 / 2.0) as i64;
    t.sample_left.set(gap.max(1));
    !first
}
