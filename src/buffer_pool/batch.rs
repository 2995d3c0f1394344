//! Batched access recording (BP-Wrapper, Ding et al., ICDE 2009).
//!
//! A hit does not touch the policy: it appends `(frame, page tag)` to a small
//! per-thread log and counts itself there. When the log is half full the
//! thread *tries* the pool lock and, if it gets it, applies the whole log to
//! the policy; when the log is full it waits for the lock. The hit path thus
//! takes no global lock and writes no shared cache line.
//!
//! A thread applies its own log before it handles a miss, so a single thread
//! sees exactly the policy it would see without batching (the hit-ratio
//! benchmarks rely on this). Logs of other threads arrive late, by at most
//! one batch each or until their next hit after a `BufferPool::stats`:
//! `stats` applies the calling thread's log and bumps the pool's log epoch
//! (`Shared::log_key`), and a thread whose log was written under an older
//! epoch applies it on its next hit, so a lightly loaded pool's statistics
//! do not wait for 64 hits per thread.
//!
//! The log lives in a `const`-initialised thread-local without `Drop`, so the
//! hit path reaches it with one TLS-relative address and no lazy-init check.
//! A thread logs for one pool at a time (switching pools applies the log to
//! the previous pool first). A second, cold thread-local holds a weak
//! reference to that pool and applies the rest of the log at thread exit.

use std::cell::{RefCell, UnsafeCell};
use std::sync::{Arc, Weak};

use crate::sync::Ordering;

use super::pool::{Inner, Shared};

/// Entries per thread before the log must be applied.
pub(crate) const BATCH: usize = 128;
/// Entries from which the thread tries (without waiting) to apply the log.
const TRY_AT: usize = BATCH / 2;
/// Flag in an entry's frame half: the hit found the frame in the cooling stage.
pub(crate) const COLD_HIT: u64 = 1 << 31;
/// Low bits of a pool's log key that hold its epoch.
const EPOCH_BITS: u32 = 20;

/// The log key of pool `uid` at `epoch` (wrapping within `EPOCH_BITS`).
pub(crate) const fn log_key(uid: u64, epoch: u64) -> u64 {
    (uid << EPOCH_BITS) | (epoch & ((1 << EPOCH_BITS) - 1))
}

/// The pool a log key names.
const fn pool_of(key: u64) -> u64 {
    key >> EPOCH_BITS
}

/// Starts a new epoch of `shared`'s log key (see the module docs).
pub(crate) fn bump_epoch(shared: &Shared) {
    // Relaxed: the key only tells threads to apply their logs; the logs
    // themselves are applied under the pool lock. Concurrent bumps may merge
    // into one, which is as good.
    let key = shared.log_key.load(Ordering::Relaxed);
    shared
        .log_key
        .store(log_key(pool_of(key), key + 1), Ordering::Relaxed);
}

struct Log {
    /// The log key (`Shared::log_key`: pool and epoch) the entries were
    /// written under (0: none).
    key: u64,
    len: usize,
    hits: u64,
    optimistic: u64,
    /// xorshift state for sampling optimistic reads.
    rng: u64,
    entries: [u64; BATCH],
}

impl Log {
    fn apply(&mut self, shared: &Shared, inner: &mut Inner) {
        shared.apply_log(inner, &self.entries[..self.len], self.hits, self.optimistic);
        self.clear();
    }

    fn clear(&mut self) {
        self.len = 0;
        self.hits = 0;
        self.optimistic = 0;
    }

    fn is_empty(&self) -> bool {
        self.len == 0 && self.hits == 0
    }
}

thread_local! {
    static LOG: UnsafeCell<Log> = const {
        UnsafeCell::new(Log { key: 0, len: 0, hits: 0, optimistic: 0, rng: 0x9E37_79B9_7F4A_7C15, entries: [0; BATCH] })
    };
    static OWNER: Owner = const { Owner(RefCell::new(None)) };
}

/// The pool the log belongs to; applies the log when the thread exits.
struct Owner(RefCell<Option<Weak<Shared>>>);

impl Drop for Owner {
    fn drop(&mut self) {
        let pool = self.0.borrow_mut().take();
        let _ = LOG.try_with(|l| {
            // SAFETY: thread exit: nothing else on this thread uses the log now.
            let l = unsafe { &mut *l.get() };
            flush_to(l, pool.as_ref());
        });
    }
}

/// Applies `l` to `pool` if it still exists; clears it either way.
fn flush_to(l: &mut Log, pool: Option<&Weak<Shared>>) {
    if !l.is_empty()
        && let Some(s) = pool.and_then(Weak::upgrade)
        && s.uid == pool_of(l.key)
    {
        let mut g = s.lock_inner();
        l.apply(&s, &mut g);
    }
    l.clear();
}

/// Records a hit on `frame` holding `page` (`cold`: the frame was in the
/// cooling stage).
#[inline(always)]
pub(crate) fn record(shared: &Arc<Shared>, frame: u32, page: u64, cold: bool) {
    let entry = (page << 32) | u64::from(frame) | if cold { COLD_HIT } else { 0 };
    LOG.with(|l| {
        // SAFETY: the log is this thread's own; the reference does not escape
        // the closure, and nothing called below (switching pools, applying the
        // log under the pool lock, the policy) touches `LOG` again.
        let l = unsafe { &mut *l.get() };
        let key = shared.log_key.load(Ordering::Relaxed);
        if l.key != key {
            rekey(l, shared, key);
        }
        l.hits += 1;
        push(l, shared, entry);
    });
}

/// Records an optimistic read of `frame` holding `page`: it is counted, and
/// logged for the policy with probability `1 / sample` (a power of two).
#[inline(always)]
pub(crate) fn record_optimistic(shared: &Arc<Shared>, frame: u32, page: u64, sample_mask: u64) {
    LOG.with(|l| {
        // SAFETY: as in `record`.
        let l = unsafe { &mut *l.get() };
        let key = shared.log_key.load(Ordering::Relaxed);
        if l.key != key {
            rekey(l, shared, key);
        }
        l.hits += 1;
        l.optimistic += 1;
        // xorshift64: sampling at random, not every n-th read, so a cyclic
        // access pattern does not always log the same pages.
        let mut x = l.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        l.rng = x;
        if x & sample_mask == 0 {
            push(l, shared, (page << 32) | u64::from(frame));
        }
    });
}

#[inline(always)]
fn push(l: &mut Log, shared: &Shared, entry: u64) {
    l.entries[l.len] = entry;
    l.len += 1;
    if l.len >= TRY_AT {
        full(l, shared);
    }
}

#[cold]
#[inline(never)]
fn full(l: &mut Log, shared: &Shared) {
    if let Some(mut g) = shared.try_lock_inner() {
        l.apply(shared, &mut g);
    } else if l.len == BATCH {
        let mut g = shared.lock_inner();
        l.apply(shared, &mut g);
    }
}

/// The pool's log key differs from the one the log was written under: a new
/// epoch of the same pool (apply the log now, for a pending `stats`) or
/// another pool (switch).
#[cold]
#[inline(never)]
fn rekey(l: &mut Log, shared: &Arc<Shared>, key: u64) {
    if pool_of(l.key) == pool_of(key) {
        if !l.is_empty() {
            let mut g = shared.lock_inner();
            l.apply(shared, &mut g);
        }
    } else {
        switch(l, shared);
    }
    l.key = key;
}

/// The thread starts logging for `shared`: the log of the previous pool is
/// applied to it first.
fn switch(l: &mut Log, shared: &Arc<Shared>) {
    let _ = OWNER.try_with(|o| {
        let Ok(mut o) = o.0.try_borrow_mut() else {
            return;
        };
        flush_to(l, o.as_ref());
        *o = Some(Arc::downgrade(shared));
    });
    l.clear();
}

/// Applies this thread's log for `shared` while the caller holds the lock.
pub(crate) fn drain(shared: &Shared, inner: &mut Inner) {
    LOG.with(|l| {
        // SAFETY: as in `record`; `apply_log` does not touch `LOG`.
        let l = unsafe { &mut *l.get() };
        if pool_of(l.key) == shared.uid && !l.is_empty() {
            l.apply(shared, inner);
        }
    });
}

#[cfg(all(test, not(rustydb_loom)))]
mod tests {
    use std::sync::mpsc;

    use crate::buffer_pool::{BufferPool, MemDisk};

    /// A thread that hits a few times and then idles must not hide its hits
    /// from `stats()` until its log fills: after one `stats()`, its next hit
    /// applies what it logged.
    #[test]
    fn stats_sees_other_threads_hits_within_one_interval() {
        let pool = BufferPool::builder()
            .frames(8)
            .disk(MemDisk::new(4096))
            .build()
            .unwrap();
        let id = pool.new_page().unwrap().page_id();
        pool.flush_all().unwrap();
        let base = pool.stats().hits;
        let (go, wait) = mpsc::channel::<u32>();
        let (done, finished) = mpsc::channel::<()>();
        std::thread::scope(|s| {
            s.spawn(|| {
                for n in wait {
                    for _ in 0..n {
                        drop(pool.fetch_read(id).unwrap());
                    }
                    done.send(()).unwrap();
                }
            });
            go.send(10).unwrap();
            finished.recv().unwrap();
            // Logged on the other thread, far below a batch: not yet counted.
            let seen = pool.stats().hits - base;
            assert!(seen <= 10, "{seen}");
            // One more hit there, after the stats() call, applies the ten
            // (the new one waits in the log).
            go.send(1).unwrap();
            finished.recv().unwrap();
            assert_eq!(pool.stats().hits - base, 10);
            drop(go);
        });
    }
}
