//! Full 2Q (Johnson & Shasha, "2Q: A Low Overhead High Performance Buffer
//! Management Replacement Algorithm", VLDB 1994): new pages enter the FIFO
//! A1in; pages evicted from A1in are remembered in the ghost FIFO A1out; a
//! page found in A1out on a miss goes to the LRU list Am. Eviction takes from
//! A1in while it holds more than Kin, else from Am. A one-pass scan only
//! cycles through A1in, so the hot set in Am survives it, and on a loop
//! slightly larger than the pool A1out turns the loop into Am hits.
//!
//! Tiers: Am is hot, A1in is warm.

use super::lists::{KeyedQueue, PagedLists};
use super::{EvictionPolicy, FrameId, Policy, PolicyStats, Tier};

const A1IN: usize = 0;
const AM: usize = 1;

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct TwoQ {
    res: PagedLists<2>,
    a1out: KeyedQueue<()>,
    kin: usize,
    kout: usize,
    stats: PolicyStats,
}

impl TwoQ {
    /// 2Q over `capacity` frames with A1in holding `kin` and A1out remembering
    /// `kout` of the capacity (the paper's 25 % and 50 %).
    pub fn new(capacity: usize, kin: f64, kout: f64) -> Self {
        let frac = |x: f64| (capacity as f64 * x.clamp(0.0, 1.0)) as usize;
        Self {
            res: PagedLists::new(capacity),
            a1out: KeyedQueue::new(),
            kin: frac(kin),
            kout: frac(kout).max(1),
            stats: PolicyStats::default(),
        }
    }

    fn take(&mut self, l: usize, f: FrameId) -> FrameId {
        self.res.remove(f);
        if l == A1IN {
            self.a1out.push_front(self.res.page(f), ());
            while self.a1out.len() > self.kout {
                self.a1out.pop_back();
            }
        }
        self.stats.victims += 1;
        f
    }
}

impl EvictionPolicy for TwoQ {
    fn kind(&self) -> Policy {
        Policy::TwoQ
    }
    residency_methods!(res);
    fn insert(&mut self, frame: FrameId, page: u64) {
        if !self.res.admit(frame, page) {
            return;
        }
        if self.a1out.remove(page).is_some() {
            self.stats.ghost_hits += 1;
            self.stats.promotions += 1;
            self.res.lists.push_front(AM, frame);
        } else {
            self.res.lists.push_front(A1IN, frame);
        }
    }
    fn access(&mut self, frame: FrameId, _page: u64) -> Tier {
        if !self.contains(frame) {
            return Tier::Warm;
        }
        if self.res.lists.list_of(frame) == AM as u8 {
            self.res.lists.move_to_front(AM, frame);
            Tier::Hot
        } else {
            // A hit in A1in changes nothing (correlated references).
            Tier::Warm
        }
    }
    fn victim(
        &mut self,
        _incoming: Option<u64>,
        evictable: &mut dyn FnMut(FrameId) -> bool,
    ) -> Option<FrameId> {
        let order = if self.res.lists.len(A1IN) > self.kin || self.res.lists.len(AM) == 0 {
            [A1IN, AM]
        } else {
            [AM, A1IN]
        };
        for l in order {
            if let Some(f) = self.res.lists.oldest_where(l, evictable) {
                return Some(self.take(l, f));
            }
        }
        None
    }
    fn remove(&mut self, frame: FrameId, _page: u64) {
        self.res.remove(frame);
    }
    fn tier(&self, frame: FrameId) -> Tier {
        self.res.tier(frame, AM)
    }
    fn stats(&self) -> PolicyStats {
        PolicyStats {
            history: self.a1out.len() as u64,
            ..self.stats
        }
    }
}
