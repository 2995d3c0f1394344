//! S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction",
//! SOSP 2023), as the authors' libCacheSim runs it (`S3FIFO.c`): a small FIFO
//! S (10 %), a main FIFO M and a ghost FIFO G (90 % of the capacity, page ids
//! only). New pages enter S; leaving S, a page hit at least `threshold` times
//! moves to M, others go to G; a miss found in G enters M directly. M is a
//! CLOCK with a 2-bit count. M is evicted from when it is over its 90 % or S
//! is empty, S otherwise.
//!
//! **Warm-up.** Since December 2024 libCacheSim sends new pages to M once S
//! holds its 10 % and nothing has been evicted yet ("warm-up to main"); the
//! paper's Algorithm 1 (`S3FIFOv0.c`) keeps sending them to S. The two differ
//! only in which pages a cold pool starts with — but on a loop or scan many
//! times larger than the pool that start is all there is: the pages that
//! reached M stay (their FIFO never overflows) and hit on every pass
//! (`capacity × 0.9 / loop` of the requests), where the paper's version hits
//! nothing. `Policy::S3Fifo` follows libCacheSim; [`S3Fifo::warmup_to_main`]
//! turns it off. `scripts/s3fifo_paper.py` is an independent implementation
//! of Algorithm 1 that shows the difference is libCacheSim's.
//!
//! Tiers: M is hot, S is warm.

use super::lists::{KeyedQueue, PagedLists};
use super::{EvictionPolicy, FrameId, Policy, PolicyStats, Tier};

const S: usize = 0;
const M: usize = 1;

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct S3Fifo {
    res: PagedLists<2>,
    freq: Vec<u8>,
    ghost: KeyedQueue<()>,
    small_cap: usize,
    ghost_cap: usize,
    threshold: u8,
    warmup_to_main: bool,
    has_evicted: bool,
    stats: PolicyStats,
}

impl S3Fifo {
    /// S3-FIFO over `capacity` frames: `small` and `ghost` are fractions of the
    /// capacity; pages hit `threshold` times in S move to M (libCacheSim: 2).
    pub fn new(capacity: usize, small: f64, ghost: f64, threshold: u8) -> Self {
        let frac = |x: f64| (capacity as f64 * x.clamp(0.0, 1.0)) as usize;
        Self {
            res: PagedLists::new(capacity),
            freq: vec![0; capacity],
            ghost: KeyedQueue::new(),
            small_cap: frac(small),
            ghost_cap: frac(ghost).max(1),
            threshold: threshold.clamp(1, 3),
            warmup_to_main: true,
            has_evicted: false,
            stats: PolicyStats::default(),
        }
    }

    /// Whether new pages go to M while S is full and nothing has been evicted
    /// yet (libCacheSim's `S3FIFO.c`, the default), or always to S (the
    /// paper's Algorithm 1).
    pub fn warmup_to_main(mut self, on: bool) -> Self {
        self.warmup_to_main = on;
        self
    }

    fn evict_small(&mut self, evictable: &mut dyn FnMut(FrameId) -> bool) -> Option<FrameId> {
        let mut f = self.res.lists.back(S);
        while let Some(x) = f {
            let newer = self.res.lists.newer(x);
            let i = x as usize;
            if self.freq[i] >= self.threshold {
                self.freq[i] = 0;
                self.res.lists.move_to_front(M, x);
                self.stats.promotions += 1;
            } else if evictable(x) {
                self.res.lists.remove(x);
                self.ghost.push_front(self.res.page(x), ());
                while self.ghost.len() > self.ghost_cap {
                    self.ghost.pop_back();
                }
                self.stats.victims += 1;
                return Some(x);
            }
            f = newer;
        }
        None
    }

    fn evict_main(&mut self, evictable: &mut dyn FnMut(FrameId) -> bool) -> Option<FrameId> {
        let n = self.res.lists.len(M);
        let mut skipped = 0;
        for _ in 0..n * 5 {
            let x = self.res.lists.back(M)?;
            let i = x as usize;
            if self.freq[i] >= 1 {
                self.freq[i] -= 1;
                self.res.lists.move_to_front(M, x);
                skipped = 0;
            } else if evictable(x) {
                self.res.lists.remove(x);
                self.stats.victims += 1;
                return Some(x);
            } else {
                self.res.lists.move_to_front(M, x);
                skipped += 1;
                if skipped >= n {
                    return None;
                }
            }
        }
        None
    }
}

impl EvictionPolicy for S3Fifo {
    fn kind(&self) -> Policy {
        Policy::S3Fifo
    }
    residency_methods!(res);
    fn insert(&mut self, frame: FrameId, page: u64) {
        if !self.res.admit(frame, page) {
            return;
        }
        self.freq[frame as usize] = 0;
        if self.ghost.remove(page).is_some() {
            self.stats.ghost_hits += 1;
            self.res.lists.push_front(M, frame);
        } else if self.warmup_to_main
            && !self.has_evicted
            && self.res.lists.len(S) >= self.small_cap
        {
            self.res.lists.push_front(M, frame);
        } else {
            self.res.lists.push_front(S, frame);
        }
    }
    fn access(&mut self, frame: FrameId, _page: u64) -> Tier {
        if !self.contains(frame) {
            return Tier::Warm;
        }
        let i = frame as usize;
        self.freq[i] = (self.freq[i] + 1).min(3);
        self.tier(frame)
    }
    fn victim(
        &mut self,
        _incoming: Option<u64>,
        evictable: &mut dyn FnMut(FrameId) -> bool,
    ) -> Option<FrameId> {
        self.has_evicted = true;
        let main_cap = self.res.capacity() - self.small_cap;
        if self.res.lists.len(M) > main_cap || self.res.lists.len(S) == 0 {
            if let Some(f) = self.evict_main(evictable) {
                return Some(f);
            }
            return self.evict_small(evictable);
        }
        if let Some(f) = self.evict_small(evictable) {
            return Some(f);
        }
        self.evict_main(evictable)
    }
    fn remove(&mut self, frame: FrameId, _page: u64) {
        self.res.remove(frame);
    }
    fn tier(&self, frame: FrameId) -> Tier {
        self.res.tier(frame, M)
    }
    fn stats(&self) -> PolicyStats {
        PolicyStats {
            history: self.ghost.len() as u64,
            ..self.stats
        }
    }
}
