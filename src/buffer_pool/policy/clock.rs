//! CLOCK with an n-bit usage count (libCacheSim's `Clock`, PostgreSQL's clock
//! sweep). Frames sit in a ring; a new page goes just behind the hand; a hit
//! raises the page's usage count (up to `max_usage`); the hand takes the first
//! page with usage 0, lowering the count of each page it passes.
//!
//! Tiers: usage ≥ 1 is hot (referenced since the hand last passed), usage 0
//! is warm. The hand demotes hot pages to warm as it passes them.

use super::lists::{FrameLists, NONE};
use super::{EvictionPolicy, FrameId, Policy, PolicyStats, Tier};

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Clock {
    ring: FrameLists<1>,
    usage: Vec<u8>,
    max_usage: u8,
    stats: PolicyStats,
}

impl Clock {
    /// CLOCK over `capacity` frames with usage counts up to `max_usage`
    /// (1 = classic second chance, libCacheSim's default; PostgreSQL uses 5).
    pub fn new(capacity: usize, max_usage: u8) -> Self {
        Self {
            ring: FrameLists::new(capacity),
            usage: vec![0; capacity],
            max_usage: max_usage.max(1),
            stats: PolicyStats::default(),
        }
    }
}

impl EvictionPolicy for Clock {
    fn kind(&self) -> Policy {
        Policy::Clock
    }
    fn capacity(&self) -> usize {
        self.usage.len()
    }
    fn len(&self) -> usize {
        self.ring.len(0)
    }
    fn contains(&self, frame: FrameId) -> bool {
        self.ring.list_of(frame) != NONE
    }
    fn insert(&mut self, frame: FrameId, _page: u64) {
        if self.contains(frame) || frame as usize >= self.usage.len() {
            return;
        }
        self.usage[frame as usize] = 0;
        self.ring.push_front(0, frame);
    }
    fn access(&mut self, frame: FrameId, _page: u64) -> Tier {
        if !self.contains(frame) {
            return Tier::Warm;
        }
        let u = &mut self.usage[frame as usize];
        let before = if *u > 0 { Tier::Hot } else { Tier::Warm };
        if *u == 0 {
            self.stats.promotions += 1;
        }
        *u = (*u + 1).min(self.max_usage);
        before
    }
    fn victim(
        &mut self,
        _incoming: Option<u64>,
        evictable: &mut dyn FnMut(FrameId) -> bool,
    ) -> Option<FrameId> {
        let n = self.len();
        let mut budget = n * (self.max_usage as usize + 2);
        let mut skipped = 0usize;
        while budget > 0 {
            budget -= 1;
            let f = self.ring.back(0)?;
            if !evictable(f) {
                // Pinned: pass over it without touching its count.
                self.ring.move_to_front(0, f);
                skipped += 1;
                if skipped >= n {
                    return None;
                }
                continue;
            }
            skipped = 0;
            let u = &mut self.usage[f as usize];
            if *u > 0 {
                *u -= 1;
                if *u == 0 {
                    self.stats.demotions += 1;
                }
                self.ring.move_to_front(0, f);
                continue;
            }
            self.ring.remove(f);
            self.stats.victims += 1;
            return Some(f);
        }
        None
    }
    fn remove(&mut self, frame: FrameId, _page: u64) {
        self.ring.remove(frame);
    }
    fn tier(&self, frame: FrameId) -> Tier {
        if self.usage.get(frame as usize).copied().unwrap_or(0) > 0 {
            Tier::Hot
        } else {
            Tier::Warm
        }
    }
    fn stats(&self) -> PolicyStats {
        self.stats
    }
}
