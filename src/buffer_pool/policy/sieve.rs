//! SIEVE (Zhang et al., "SIEVE is Simpler than LRU", NSDI 2024): one FIFO
//! queue, a visited bit per page and a hand that moves from the oldest page
//! towards the newest, clearing visited bits and evicting the first
//! unvisited page. New pages enter at the head; hits only set a bit.
//!
//! Tiers: visited pages are hot, unvisited ones warm.

use super::lists::{FrameLists, NIL, NONE};
use super::{EvictionPolicy, FrameId, Policy, PolicyStats, Tier};

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Sieve {
    queue: FrameLists<1>,
    visited: Vec<bool>,
    hand: u32,
    stats: PolicyStats,
}

impl Sieve {
    /// SIEVE over `capacity` frames.
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: FrameLists::new(capacity),
            visited: vec![false; capacity],
            hand: NIL,
            stats: PolicyStats::default(),
        }
    }
}

impl EvictionPolicy for Sieve {
    fn kind(&self) -> Policy {
        Policy::Sieve
    }
    fn capacity(&self) -> usize {
        self.visited.len()
    }
    fn len(&self) -> usize {
        self.queue.len(0)
    }
    fn contains(&self, frame: FrameId) -> bool {
        self.queue.list_of(frame) != NONE
    }
    fn insert(&mut self, frame: FrameId, _page: u64) {
        if self.contains(frame) || frame as usize >= self.visited.len() {
            return;
        }
        self.visited[frame as usize] = false;
        self.queue.push_front(0, frame);
    }
    fn access(&mut self, frame: FrameId, _page: u64) -> Tier {
        if !self.contains(frame) {
            return Tier::Warm;
        }
        let v = &mut self.visited[frame as usize];
        if *v {
            Tier::Hot
        } else {
            *v = true;
            self.stats.promotions += 1;
            Tier::Warm
        }
    }
    fn victim(
        &mut self,
        _incoming: Option<u64>,
        evictable: &mut dyn FnMut(FrameId) -> bool,
    ) -> Option<FrameId> {
        let n = self.len();
        let mut f = if self.hand == NIL {
            self.queue.back(0)?
        } else {
            self.hand
        };
        for _ in 0..2 * n + 2 {
            let i = f as usize;
            if self.visited[i] {
                self.visited[i] = false;
                self.stats.demotions += 1;
            } else if evictable(f) {
                self.hand = self.queue.newer(f).unwrap_or(NIL);
                self.queue.remove(f);
                self.stats.victims += 1;
                return Some(f);
            }
            f = match self.queue.newer(f) {
                Some(x) => x,
                None => self.queue.back(0)?,
            };
        }
        None
    }
    fn remove(&mut self, frame: FrameId, _page: u64) {
        if !self.contains(frame) {
            return;
        }
        if self.hand == frame {
            self.hand = self.queue.newer(frame).unwrap_or(NIL);
        }
        self.queue.remove(frame);
    }
    fn tier(&self, frame: FrameId) -> Tier {
        if self.visited.get(frame as usize).copied().unwrap_or(false) {
            Tier::Hot
        } else {
            Tier::Warm
        }
    }
    fn stats(&self) -> PolicyStats {
        self.stats
    }
}
