//! CLOCK with an n-bit usage count (libCacheSim's `Clock`, PostgreSQL's clock
//! sweep). Frames sit in a ring; a new page goes just behind the hand; a hit
//! raises the page's usage count (up to `max_usage`); the hand takes the first
//! page with usage 0, lowering the count of each page it passes.
//!
//! Tiers: usage ≥ 1 is hot (referenced since the hand last passed), usage 0
//! is warm. The hand demotes hot pages to warm as it passes them.

use super::ring::CountedRing;
use super::{EvictionPolicy, FrameId, Policy, PolicyStats, Tier};

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Clock {
    r: CountedRing,
    stats: PolicyStats,
}

impl Clock {
    /// CLOCK over `capacity` frames with usage counts up to `max_usage`
    /// (1 = classic second chance, libCacheSim's default; PostgreSQL uses 5).
    pub fn new(capacity: usize, max_usage: u8) -> Self {
        Self {
            r: CountedRing::new(capacity, max_usage),
            stats: PolicyStats::default(),
        }
    }
}

impl Clock {
    /// A hit on held frame `f` without the bookkeeping `access` does (tier,
    /// statistics): the adaptive policy's hit path.
    #[inline(always)]
    pub(crate) fn mark(&mut self, f: FrameId) {
        self.r.mark(f);
    }
}

impl EvictionPolicy for Clock {
    fn kind(&self) -> Policy {
        Policy::Clock
    }
    counted_ring_methods!();
    fn victim(
        &mut self,
        _incoming: Option<u64>,
        evictable: &mut dyn FnMut(FrameId) -> bool,
    ) -> Option<FrameId> {
        let n = self.len();
        let mut budget = n * (self.r.max() as usize + 2);
        let mut skipped = 0usize;
        while budget > 0 {
            budget -= 1;
            let f = self.r.ring.back(0)?;
            if !evictable(f) {
                // Pinned: pass over it without touching its count.
                self.r.ring.move_to_front(0, f);
                skipped += 1;
                if skipped >= n {
                    return None;
                }
                continue;
            }
            skipped = 0;
            if self.r.lower(f, &mut self.stats) {
                self.r.ring.move_to_front(0, f);
                continue;
            }
            self.r.remove(f);
            self.stats.victims += 1;
            return Some(f);
        }
        None
    }
    fn remove(&mut self, frame: FrameId, _page: u64) {
        self.r.remove(frame);
    }
    fn tier(&self, frame: FrameId) -> Tier {
        self.r.tier(frame)
    }
    fn stats(&self) -> PolicyStats {
        self.stats
    }
}
