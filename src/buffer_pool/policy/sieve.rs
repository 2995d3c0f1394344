//! SIEVE (Zhang et al., "SIEVE is Simpler than LRU", NSDI 2024): one FIFO
//! queue, a visited bit per page and a hand that moves from the oldest page
//! towards the newest, clearing visited bits and evicting the first
//! unvisited page. New pages enter at the head; hits only set a bit.
//!
//! Tiers: visited pages are hot, unvisited ones warm.

use super::lists::NIL;
use super::ring::CountedRing;
use super::{EvictionPolicy, FrameId, Policy, PolicyStats, Tier};

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Sieve {
    /// The visited bit is a count saturating at 1.
    r: CountedRing,
    hand: u32,
    stats: PolicyStats,
}

impl Sieve {
    /// SIEVE over `capacity` frames.
    pub fn new(capacity: usize) -> Self {
        Self {
            r: CountedRing::new(capacity, 1),
            hand: NIL,
            stats: PolicyStats::default(),
        }
    }
}

impl EvictionPolicy for Sieve {
    fn kind(&self) -> Policy {
        Policy::Sieve
    }
    counted_ring_methods!();
    fn victim(
        &mut self,
        _incoming: Option<u64>,
        evictable: &mut dyn FnMut(FrameId) -> bool,
    ) -> Option<FrameId> {
        let n = self.len();
        let mut f = if self.hand == NIL {
            self.r.ring.back(0)?
        } else {
            self.hand
        };
        for _ in 0..2 * n + 2 {
            if !self.r.lower(f, &mut self.stats) && evictable(f) {
                self.hand = self.r.ring.newer(f).unwrap_or(NIL);
                self.r.remove(f);
                self.stats.victims += 1;
                return Some(f);
            }
            f = match self.r.ring.newer(f) {
                Some(x) => x,
                None => self.r.ring.back(0)?,
            };
        }
        None
    }
    fn remove(&mut self, frame: FrameId, _page: u64) {
        if !self.contains(frame) {
            return;
        }
        if self.hand == frame {
            self.hand = self.r.ring.newer(frame).unwrap_or(NIL);
        }
        self.r.remove(frame);
    }
    fn tier(&self, frame: FrameId) -> Tier {
        self.r.tier(frame)
    }
    fn stats(&self) -> PolicyStats {
        self.stats
    }
}
