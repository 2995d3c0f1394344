//! ARC (Megiddo & Modha, "ARC: A Self-Tuning, Low Overhead Replacement Cache",
//! FAST 2003), as libCacheSim implements it: T1 (seen once) and T2 (seen
//! twice or more) hold resident pages, B1 and B2 remember pages evicted from
//! them, and the target size `p` of T1 adapts on ghost hits.
//!
//! Tiers: T2 is hot, T1 is warm.

use super::lists::{KeyedQueue, PagedLists};
use super::{EvictionPolicy, FrameId, Policy, PolicyStats, Tier};

const T1: usize = 0;
const T2: usize = 1;

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct ArcPolicy {
    res: PagedLists<2>,
    b1: KeyedQueue<()>,
    b2: KeyedQueue<()>,
    p: f64,
    c: usize,
    /// The page whose ghost hit `victim` already used to adapt `p`.
    adapted: Option<u64>,
    stats: PolicyStats,
}

impl ArcPolicy {
    /// ARC over `capacity` frames.
    pub fn new(capacity: usize) -> Self {
        Self {
            res: PagedLists::new(capacity),
            b1: KeyedQueue::new(),
            b2: KeyedQueue::new(),
            p: 0.0,
            c: capacity,
            adapted: None,
            stats: PolicyStats::default(),
        }
    }

    /// The current target size of T1.
    pub fn target_t1(&self) -> f64 {
        self.p
    }

    /// Cases II and III of the paper: a miss that hits a ghost moves `p`.
    fn adapt(&mut self, page: u64) {
        let (b1, b2) = (self.b1.len() as f64, self.b2.len() as f64);
        if self.b1.contains(page) {
            let delta = (b2 / b1).max(1.0);
            self.p = (self.p + delta).min(self.c as f64);
        } else if self.b2.contains(page) {
            let delta = (b1 / b2).max(1.0);
            self.p = (self.p - delta).max(0.0);
        }
    }

    fn evict_from(&mut self, l: usize, f: FrameId, ghost: bool) -> FrameId {
        self.res.remove(f);
        let page = self.res.page(f);
        if ghost {
            if l == T1 {
                self.b1.push_front(page, ());
            } else {
                self.b2.push_front(page, ());
            }
        }
        self.stats.victims += 1;
        f
    }

    /// REPLACE(x, p): evict from T1 or T2 according to `p`.
    fn replace(
        &mut self,
        incoming_in_b2: bool,
        evictable: &mut dyn FnMut(FrameId) -> bool,
    ) -> Option<FrameId> {
        let t1 = self.res.lists.len(T1) as f64;
        let t2 = self.res.lists.len(T2);
        let from_t1 = (t1 > 0.0 && (t1 > self.p || (t1 == self.p && incoming_in_b2))) || t2 == 0;
        let (first, second) = if from_t1 { (T1, T2) } else { (T2, T1) };
        if let Some(f) = self.res.lists.oldest_where(first, evictable) {
            return Some(self.evict_from(first, f, true));
        }
        let f = self.res.lists.oldest_where(second, evictable)?;
        Some(self.evict_from(second, f, true))
    }
}

impl EvictionPolicy for ArcPolicy {
    fn kind(&self) -> Policy {
        Policy::Arc
    }
    fn capacity(&self) -> usize {
        self.c
    }
    fn len(&self) -> usize {
        self.res.len()
    }
    fn contains(&self, frame: FrameId) -> bool {
        self.res.contains(frame)
    }
    fn insert(&mut self, frame: FrameId, page: u64) {
        if !self.res.admit(frame, page) {
            return;
        }
        let ghost = self.b1.contains(page) || self.b2.contains(page);
        if ghost {
            if self.adapted != Some(page) {
                self.adapt(page);
            }
            self.b1.remove(page);
            self.b2.remove(page);
            self.stats.ghost_hits += 1;
            self.stats.promotions += 1;
            self.res.lists.push_front(T2, frame);
        } else {
            self.res.lists.push_front(T1, frame);
        }
        self.adapted = None;
    }
    fn access(&mut self, frame: FrameId, _page: u64) -> Tier {
        if !self.contains(frame) {
            return Tier::Warm;
        }
        if self.res.lists.list_of(frame) == T1 as u8 {
            self.stats.promotions += 1;
            self.res.lists.move_to_front(T2, frame);
            Tier::Warm
        } else {
            self.res.lists.move_to_front(T2, frame);
            Tier::Hot
        }
    }
    fn victim(
        &mut self,
        incoming: Option<u64>,
        evictable: &mut dyn FnMut(FrameId) -> bool,
    ) -> Option<FrameId> {
        if let Some(x) = incoming
            && (self.b1.contains(x) || self.b2.contains(x))
        {
            // Ghost hit: adapt first (cases II / III), then REPLACE.
            if self.adapted != Some(x) {
                self.adapt(x);
                self.adapted = Some(x);
            }
            let in_b2 = self.b2.contains(x);
            return self.replace(in_b2, evictable);
        }
        // Case IV: a miss in all four lists (or an unknown incoming page).
        let (t1, b1) = (self.res.lists.len(T1), self.b1.len());
        if t1 + b1 >= self.c {
            if b1 > 0 {
                self.b1.pop_back();
                return self.replace(false, evictable);
            }
            // T1 holds c pages: drop its LRU page without a ghost.
            if let Some(f) = self.res.lists.oldest_where(T1, evictable) {
                return Some(self.evict_from(T1, f, false));
            }
            return self.replace(false, evictable);
        }
        let total = t1 + b1 + self.res.lists.len(T2) + self.b2.len();
        if total >= 2 * self.c {
            self.b2.pop_back();
        }
        self.replace(false, evictable)
    }
    fn remove(&mut self, frame: FrameId, _page: u64) {
        self.res.remove(frame);
    }
    fn tier(&self, frame: FrameId) -> Tier {
        self.res.tier(frame, T2)
    }
    fn stats(&self) -> PolicyStats {
        PolicyStats {
            history: (self.b1.len() + self.b2.len()) as u64,
            ..self.stats
        }
    }
}
