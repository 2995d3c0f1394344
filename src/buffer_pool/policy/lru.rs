//! LRU: one list in recency order; a hit moves the page to the front, the
//! victim is the least recently used evictable page. The reference line of
//! every hit-ratio table, optimal when recency predicts reuse (a zig-zag
//! scan, a stack), and helpless on a loop larger than the pool.
//!
//! Tiers: pages hit since they came in are hot, the others warm.

use super::lists::PagedLists;
use super::{EvictionPolicy, FrameId, Policy, PolicyStats, Tier};

/// Pages hit since insertion.
const HOT: usize = 0;
/// Pages not hit since insertion.
const NEW: usize = 1;

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Lru {
    /// Two lists so the tier is known; recency order spans both, so every
    /// frame also carries its last-use tick and the victim is the older of
    /// the two lists' backs.
    res: PagedLists<2>,
    tick: Vec<u64>,
    now: u64,
    stats: PolicyStats,
}

impl Lru {
    /// LRU over `capacity` frames.
    pub fn new(capacity: usize) -> Self {
        Self {
            res: PagedLists::new(capacity),
            tick: vec![0; capacity],
            now: 0,
            stats: PolicyStats::default(),
        }
    }

    #[inline]
    fn stamp(&mut self, f: FrameId) {
        self.now += 1;
        self.tick[f as usize] = self.now;
    }
}

impl EvictionPolicy for Lru {
    fn kind(&self) -> Policy {
        Policy::Lru
    }
    residency_methods!(res);
    fn insert(&mut self, frame: FrameId, page: u64) {
        if self.res.admit(frame, page) {
            self.stamp(frame);
            self.res.lists.push_front(NEW, frame);
        }
    }
    #[inline]
    fn access(&mut self, frame: FrameId, _page: u64) -> Tier {
        if !self.contains(frame) {
            return Tier::Warm;
        }
        let before = self.res.tier(frame, HOT);
        if before == Tier::Warm {
            self.stats.promotions += 1;
        }
        self.stamp(frame);
        self.res.lists.move_to_front(HOT, frame);
        before
    }
    fn victim(
        &mut self,
        _incoming: Option<u64>,
        evictable: &mut dyn FnMut(FrameId) -> bool,
    ) -> Option<FrameId> {
        // Both lists are in recency order: merge them from the back.
        let lists = &self.res.lists;
        let (mut a, mut b) = (lists.back(HOT), lists.back(NEW));
        let f = loop {
            let x = match (a, b) {
                (None, None) => return None,
                (Some(x), None) | (None, Some(x)) => x,
                (Some(x), Some(y)) => {
                    if self.tick[x as usize] <= self.tick[y as usize] {
                        x
                    } else {
                        y
                    }
                }
            };
            if evictable(x) {
                break x;
            }
            if Some(x) == a {
                a = lists.newer(x);
            } else {
                b = lists.newer(x);
            }
        };
        self.res.remove(f);
        self.stats.victims += 1;
        Some(f)
    }
    fn remove(&mut self, frame: FrameId, _page: u64) {
        self.res.remove(frame);
    }
    fn tier(&self, frame: FrameId) -> Tier {
        self.res.tier(frame, HOT)
    }
    fn stats(&self) -> PolicyStats {
        self.stats
    }
}
