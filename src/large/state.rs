//! The allocator's locked state and the cache policy that runs under the lock:
//! taking a cached block (splitting a bigger one), returning a freed block
//! (merging with cached neighbours, evicting the oldest to stay within bounds),
//! decay and purge. Nothing here makes a system call except `now_ns` (vDSO) and
//! table growth in the registry: ranges to unmap are handed back in a
//! [`Batch`] for the caller to unmap after releasing the lock.

use super::builder::Limits;
use super::cache::Cache;
use super::huge::{Backing, Want};
use super::mapping::{Batch, Mapped};
use super::registry::{Entry, Registry, Use};
use super::stats::LargeStats;

/// Frees between two readings of the clock (the decay check rides on them).
const CLOCK_EVERY: u32 = 64;

/// The cache may always hold this much, however few large bytes are live.
const LIVE_FLOOR: usize = 32 << 20;

/// Everything guarded by the allocator's lock.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) reg: Registry,
    pub(crate) cache: Cache,
    pub(crate) limits: Limits,
    /// `limits` resolved (the environment is read on first use, not in `const`).
    pub(crate) ready: bool,
    /// Coarse monotonic time (ns), refreshed every `CLOCK_EVERY` frees and on
    /// every miss; cache stamps use it, so a block may decay up to one refresh
    /// interval early, never late.
    clock: u64,
    frees: u32,
    live: usize,
    bytes_in_use: usize,
    live_mapped: usize,
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    splits: u64,
    merges: u64,
    evictions: u64,
    decayed: u64,
    purged: u64,
    lazily_freed: u64,
}

impl State {
    /// Nothing mapped, limits unresolved.
    pub(crate) const fn new() -> Self {
        Self {
            reg: Registry::new(),
            cache: Cache::new(),
            limits: Limits::UNRESOLVED,
            ready: false,
            clock: 0,
            frees: 0,
            live: 0,
            bytes_in_use: 0,
            live_mapped: 0,
            hits: 0,
            misses: 0,
            splits: 0,
            merges: 0,
            evictions: 0,
            decayed: 0,
            purged: 0,
            lazily_freed: 0,
        }
    }

    /// Reads the clock now.
    pub(crate) fn tick(&mut self) {
        self.clock = crate::sys::now_ns();
    }

    /// Serves a request of `size` bytes (`len` rounded) from the cache: the
    /// block's address and length, or `None` on a miss.
    #[inline]
    pub(crate) fn take(
        &mut self,
        size: usize,
        len: usize,
        align: usize,
        want: Want,
    ) -> Option<(usize, usize)> {
        let idx = self.cache.find_fit(&self.reg, len, align, want)?;
        self.cache.unlink(&mut self.reg, idx);
        let e = *self.reg.get(idx);
        let rest = e.len - len;
        if !e.backing.is_hugetlb() && rest >= self.limits.threshold.max(len / 4) {
            // Keep the front, cache the rest: no system call, and the two halves
            // merge again when both are free.
            let tail = Entry::live(e.addr + len, rest, 0, e.backing, e.want);
            if let Some(t) = self.reg.insert(tail) {
                self.reg.get_mut(idx).len = len;
                self.cache.push(&mut self.reg, t, self.clock);
                self.splits += 1;
            }
        }
        let e = self.reg.get_mut(idx);
        e.state = Use::Live;
        e.size = size;
        let (addr, len) = (e.addr, e.len);
        self.hits += 1;
        self.live += 1;
        self.bytes_in_use += size;
        self.live_mapped += len;
        Some((addr, len))
    }

    /// Registers a fresh mapping handed out for `size` bytes; false if the
    /// registry could not grow (the caller unmaps it and fails the request).
    pub(crate) fn add_live(&mut self, m: Mapped, size: usize, want: Want) -> bool {
        if self
            .reg
            .insert(Entry::live(m.addr, m.len, size, m.backing, want))
            .is_none()
        {
            return false;
        }
        self.live += 1;
        self.bytes_in_use += size;
        self.live_mapped += m.len;
        true
    }

    /// Accounts for live entry `idx` changing to `size` bytes over `len`.
    pub(crate) fn resize_live(&mut self, idx: u32, size: usize, len: usize) {
        let e = self.reg.get_mut(idx);
        let (old_size, old_len) = (e.size, e.len);
        e.size = size;
        e.len = len;
        self.bytes_in_use = self.bytes_in_use - old_size + size;
        self.live_mapped = self.live_mapped - old_len + len;
    }

    /// The live entry starting at `addr`.
    #[inline]
    pub(crate) fn live_at(&self, addr: usize) -> Option<u32> {
        self.reg
            .find(addr)
            .filter(|&i| self.reg.get(i).state == Use::Live)
    }

    /// Frees live entry `idx`: into the cache if it fits the bounds (merged with
    /// cached neighbours, evicting the oldest blocks as needed), else into
    /// `batch` to be unmapped. Every `CLOCK_EVERY` frees, also decays.
    #[inline]
    pub(crate) fn free(&mut self, idx: u32, batch: &mut Batch) {
        let e = *self.reg.get(idx);
        self.live -= 1;
        self.bytes_in_use -= e.size;
        self.live_mapped -= e.len;
        let l = self.limits;
        if e.len <= l.max_block && l.max_entries != 0 {
            let idx = self.merge(idx);
            let len = self.reg.get(idx).len;
            let max_bytes = self.cache_bound();
            while self.cache.count >= l.max_entries || self.cache.bytes + len > max_bytes {
                match self.cache.oldest() {
                    Some(old) if batch.has_room() => {
                        self.drop_cached(old, batch);
                        self.evictions += 1;
                    }
                    _ => break,
                }
            }
            if self.cache.count < l.max_entries && self.cache.bytes + len <= max_bytes {
                self.cache.push(&mut self.reg, idx, self.clock);
            } else {
                self.forget(idx, batch);
                self.evictions += 1;
            }
        } else {
            self.forget(idx, batch);
        }
        self.frees = self.frees.wrapping_add(1);
        if self.frees.is_multiple_of(CLOCK_EVERY) {
            self.tick();
            self.expire(batch);
        }
    }

    /// The most bytes the cache may hold now: the configured bound, but no more
    /// than the live large bytes (at least [`LIVE_FLOOR`]) — a program that
    /// frees its large blocks keeps at most as much cached as it still uses.
    #[inline]
    fn cache_bound(&self) -> usize {
        self.limits.max_bytes.min(self.live_mapped.max(LIVE_FLOOR))
    }

    /// Joins entry `idx` (just freed, on no list) with the cached blocks right
    /// below and above it when they are of the same kind; returns the entry that
    /// now covers it.
    fn merge(&mut self, mut idx: u32) -> u32 {
        let e = *self.reg.get(idx);
        if e.backing.is_hugetlb() {
            return idx;
        }
        let (lo, hi) = self.reg.neighbours(idx);
        let joins = |s: &Self, n: u32, below: bool| {
            let m = s.reg.get(n);
            let touching = if below {
                m.addr + m.len == e.addr
            } else {
                e.addr + e.len == m.addr
            };
            m.state == Use::Cached && touching && m.backing == e.backing && m.want == e.want
        };
        if let Some(lo) = lo.filter(|&n| joins(self, n, true)) {
            self.cache.unlink(&mut self.reg, lo);
            self.reg.remove(idx);
            self.reg.get_mut(lo).len += e.len;
            self.reg.get_mut(lo).state = Use::Live; // on no list until pushed
            idx = lo;
            self.merges += 1;
        }
        if let Some(hi) = hi.filter(|&n| joins(self, n, false)) {
            let hl = self.reg.get(hi).len;
            self.cache.unlink(&mut self.reg, hi);
            self.reg.remove(hi);
            self.reg.get_mut(idx).len += hl;
            self.merges += 1;
        }
        idx
    }

    /// Removes cached entry `idx` from the cache and the registry; its range
    /// goes to `batch`.
    fn drop_cached(&mut self, idx: u32, batch: &mut Batch) {
        self.cache.unlink(&mut self.reg, idx);
        self.forget(idx, batch);
    }

    /// Removes entry `idx` (on no list) from the registry; its range goes to `batch`.
    fn forget(&mut self, idx: u32, batch: &mut Batch) {
        let e = *self.reg.get(idx);
        self.reg.remove(idx);
        batch.push(e.addr, e.len);
    }

    /// The decay of the cache, oldest blocks first: a block cached for the
    /// dirty delay is given back lazily (`MADV_FREE`, under the lock: a block
    /// another thread could take meanwhile must not be advised outside it); one
    /// cached for the muzzy delay more goes into `batch` to be unmapped (as many
    /// as fit). With a muzzy delay of 0, blocks go to `batch` at the dirty delay.
    /// Returns whether any expired block is left.
    pub(crate) fn expire(&mut self, batch: &mut Batch) -> bool {
        let (dirty, muzzy) = (self.limits.delay_ns, self.limits.muzzy_ns);
        while let Some(old) = self.cache.oldest() {
            let e = *self.reg.get(old);
            let age = self.clock.saturating_sub(e.stamp);
            if age < dirty.saturating_add(muzzy) {
                break;
            }
            if !batch.has_room() {
                return true;
            }
            self.drop_cached(old, batch);
            self.decayed += 1;
        }
        if muzzy != 0 {
            // Blocks between the two delays, newest last: make them muzzy.
            let mut i = self.cache.oldest();
            while let Some(idx) = i {
                let e = *self.reg.get(idx);
                if self.clock.saturating_sub(e.stamp) < dirty {
                    break;
                }
                if !e.lazy {
                    // SAFETY: a cached block: mapped, ours, and nobody uses its
                    // contents (a reuse overwrites or clears them).
                    unsafe {
                        crate::sys::advise(e.addr as *mut u8, e.len, crate::sys::Advice::Free)
                    };
                    self.reg.get_mut(idx).lazy = true;
                    self.lazily_freed += e.len as u64;
                }
                i = (e.newer != super::registry::NIL).then_some(e.newer);
            }
        }
        false
    }

    /// Whether any block is cached (the background purger's hint).
    pub(crate) fn has_cached(&self) -> bool {
        self.cache.count != 0
    }

    /// Moves cached blocks, oldest first, into `batch` (as many as fit);
    /// returns whether any is left.
    pub(crate) fn purge(&mut self, batch: &mut Batch) -> bool {
        while let Some(old) = self.cache.oldest() {
            if !batch.has_room() {
                return true;
            }
            self.drop_cached(old, batch);
            self.purged += 1;
        }
        false
    }

    /// The block figures (the caller adds the call counters).
    pub(crate) fn figures(&self) -> LargeStats {
        LargeStats {
            live: self.live,
            bytes_in_use: self.bytes_in_use,
            bytes_mapped: self.live_mapped + self.cache.bytes,
            cached: self.cache.count,
            bytes_cached: self.cache.bytes,
            bytes_metadata: self.reg.metadata_bytes(),
            cache_hits: self.hits,
            cache_misses: self.misses,
            cache_splits: self.splits,
            cache_merges: self.merges,
            cache_evictions: self.evictions,
            cache_decayed: self.decayed,
            cache_purged: self.purged,
            cache_lazily_freed_bytes: self.lazily_freed,
            ..LargeStats::default()
        }
    }

    /// Records that live entry `idx` is now backed by `b`.
    pub(crate) fn set_backing(&mut self, idx: u32, b: Backing) {
        self.reg.get_mut(idx).backing = b;
    }
}
