//! S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction",
//! SOSP 2023), with libCacheSim's defaults: a small FIFO S (10 %), a main FIFO
//! M and a ghost FIFO G (90 % of the capacity, page ids only). New pages enter
//! S; leaving S, a page hit at least `threshold` times moves to M, others go
//! to G; a miss found in G enters M directly. M is a CLOCK with a 2-bit count.
//!
//! Tiers: M is hot, S is warm.

use super::lists::{FrameLists, KeyedQueue, NONE};
use super::{EvictionPolicy, FrameId, Policy, PolicyStats, Tier};

const S: usize = 0;
const M: usize = 1;

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct S3Fifo {
    lists: FrameLists<2>,
    pages: Vec<u64>,
    freq: Vec<u8>,
    ghost: KeyedQueue<()>,
    small_cap: usize,
    ghost_cap: usize,
    threshold: u8,
    stats: PolicyStats,
}

impl S3Fifo {
    /// S3-FIFO over `capacity` frames: `small` and `ghost` are fractions of the
    /// capacity; pages hit `threshold` times in S move to M (libCacheSim: 2).
    pub fn new(capacity: usize, small: f64, ghost: f64, threshold: u8) -> Self {
        let frac = |x: f64| (capacity as f64 * x.clamp(0.0, 1.0)) as usize;
        Self {
            lists: FrameLists::new(capacity),
            pages: vec![u64::MAX; capacity],
            freq: vec![0; capacity],
            ghost: KeyedQueue::new(),
            small_cap: frac(small),
            ghost_cap: frac(ghost).max(1),
            threshold: threshold.clamp(1, 3),
            stats: PolicyStats::default(),
        }
    }

    fn evict_small(&mut self, evictable: &mut dyn FnMut(FrameId) -> bool) -> Option<FrameId> {
        let mut f = self.lists.back(S);
        while let Some(x) = f {
            let newer = self.lists.newer(x);
            let i = x as usize;
            if self.freq[i] >= self.threshold {
                self.freq[i] = 0;
                self.lists.move_to_front(M, x);
                self.stats.promotions += 1;
            } else if evictable(x) {
                self.lists.remove(x);
                self.ghost.push_front(self.pages[i], ());
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
        let n = self.lists.len(M);
        let mut skipped = 0;
        for _ in 0..n * 5 {
            let x = self.lists.back(M)?;
            let i = x as usize;
            if self.freq[i] >= 1 {
                self.freq[i] -= 1;
                self.lists.move_to_front(M, x);
                skipped = 0;
            } else if evictable(x) {
                self.lists.remove(x);
                self.stats.victims += 1;
                return Some(x);
            } else {
                self.lists.move_to_front(M, x);
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
    fn capacity(&self) -> usize {
        self.pages.len()
    }
    fn len(&self) -> usize {
        self.lists.len(S) + self.lists.len(M)
    }
    fn contains(&self, frame: FrameId) -> bool {
        self.lists.list_of(frame) != NONE
    }
    fn insert(&mut self, frame: FrameId, page: u64) {
        if self.contains(frame) || frame as usize >= self.pages.len() {
            return;
        }
        let i = frame as usize;
        self.pages[i] = page;
        self.freq[i] = 0;
        if self.ghost.remove(page).is_some() {
            self.stats.ghost_hits += 1;
            self.lists.push_front(M, frame);
        } else {
            self.lists.push_front(S, frame);
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
        let main_cap = self.pages.len() - self.small_cap;
        if self.lists.len(M) > main_cap || self.lists.len(S) == 0 {
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
        self.lists.remove(frame);
    }
    fn tier(&self, frame: FrameId) -> Tier {
        if self.lists.list_of(frame) == M as u8 {
            Tier::Hot
        } else {
            Tier::Warm
        }
    }
    fn stats(&self) -> PolicyStats {
        PolicyStats {
            history: self.ghost.len() as u64,
            ..self.stats
        }
    }
}
