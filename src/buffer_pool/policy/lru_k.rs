//! LRU-K (O'Neil, O'Neil & Weikum, "The LRU-K Page Replacement Algorithm for
//! Database Disk Buffering", SIGMOD 1993).
//!
//! Each page keeps the times of its last K uncorrelated references
//! (`HIST(p, 1..K)`) and of its last reference (`LAST(p)`). The victim is the
//! page with the largest backward K-distance: pages with fewer than K
//! references (infinite distance) go first, oldest insertion first (as in
//! libCacheSim); then the page whose K-th most recent reference is oldest.
//!
//! - **Correlated-reference period** (`crp`, in references): a reference
//!   within `crp` of the page's last one is *correlated* — it only moves
//!   `LAST(p)`, and the history is shifted by the correlated span when the
//!   next uncorrelated reference comes, as in the paper. A page referenced
//!   within the last `crp` references is not eligible for eviction while any
//!   other page is.
//! - **Retained information**: the history of an evicted page is remembered
//!   (up to `history` pages, oldest forgotten first), so a page that comes back
//!   keeps its reference count. libCacheSim's LRU-K forgets it; that is why
//!   this one hits more often on skewed traces.
//!
//! Time is virtual: one tick per `insert` or `access`.
//!
//! Tiers: pages with K or more references are hot, the others warm.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::lists::{FrameLists, KeyedQueue, NONE};
use super::{EvictionPolicy, FrameId, Policy, PolicyStats, Tier};

const KMAX: usize = 4;

#[derive(Debug, Clone, Copy, Default)]
struct Hist {
    /// `t[0]` is the most recent uncorrelated reference.
    t: [u64; KMAX],
    n: u8,
    last: u64,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct LruK {
    k: usize,
    crp: u64,
    history_cap: usize,
    now: u64,
    hist: Vec<Hist>,
    pages: Vec<u64>,
    /// Frames with fewer than K references, newest at the front.
    young: FrameLists<1>,
    /// Frames with K or more references, keyed by their K-th reference time:
    /// a min-heap with lazy deletion (an entry is live while the frame is old
    /// and the key still equals its K-th reference time).
    old: BinaryHeap<Reverse<(u64, FrameId)>>,
    old_len: usize,
    in_old: Vec<bool>,
    history: KeyedQueue<Hist>,
    stats: PolicyStats,
}

impl LruK {
    /// LRU-K over `capacity` frames; `k` in 1..=4, `crp` references of
    /// correlated-reference period (0 = none), history of up to `history`
    /// evicted pages (0 = none, as libCacheSim).
    pub fn new(capacity: usize, k: usize, crp: u64, history: usize) -> Self {
        Self {
            k: k.clamp(1, KMAX),
            crp,
            history_cap: history,
            now: 0,
            hist: vec![Hist::default(); capacity],
            pages: vec![u64::MAX; capacity],
            young: FrameLists::new(capacity),
            old: BinaryHeap::new(),
            old_len: 0,
            in_old: vec![false; capacity],
            history: KeyedQueue::new(),
            stats: PolicyStats::default(),
        }
    }

    /// Records a reference at `now` in `h` (the paper's update rule).
    fn reference(h: &mut Hist, now: u64, crp: u64, k: usize) {
        if h.n == 0 {
            h.t[0] = now;
            h.n = 1;
        } else if now.saturating_sub(h.last) > crp {
            // Uncorrelated: close the correlated period and shift.
            let span = h.last - h.t[0];
            for i in (1..k).rev() {
                h.t[i] = h.t[i - 1] + span;
            }
            h.t[0] = now;
            h.n = (h.n + 1).min(k as u8);
        }
        h.last = now;
    }

    fn kth(&self, f: FrameId) -> u64 {
        self.hist[f as usize].t[self.k - 1]
    }

    fn push_old(&mut self, f: FrameId) {
        if !self.in_old[f as usize] {
            self.in_old[f as usize] = true;
            self.old_len += 1;
        }
        self.old.push(Reverse((self.kth(f), f)));
        if self.old.len() > 4 * self.old_len + 64 {
            // Too many dead entries: rebuild from the live frames.
            let live: Vec<_> = (0..self.pages.len() as FrameId)
                .filter(|&x| self.in_old[x as usize])
                .map(|x| Reverse((self.kth(x), x)))
                .collect();
            self.old = BinaryHeap::from(live);
        }
    }

    fn live(&self, kth: u64, f: FrameId) -> bool {
        self.in_old[f as usize] && self.kth(f) == kth
    }

    fn place(&mut self, f: FrameId) {
        if self.hist[f as usize].n as usize >= self.k {
            self.push_old(f);
        } else {
            self.young.push_front(0, f);
        }
    }

    fn unplace(&mut self, f: FrameId) {
        let i = f as usize;
        if self.in_old[i] {
            // Its heap entries die lazily.
            self.in_old[i] = false;
            self.old_len -= 1;
        } else {
            self.young.remove(f);
        }
    }

    fn in_crp(&self, f: FrameId) -> bool {
        self.crp > 0 && self.now - self.hist[f as usize].last <= self.crp
    }

    fn pick(
        &mut self,
        respect_crp: bool,
        evictable: &mut dyn FnMut(FrameId) -> bool,
    ) -> Option<FrameId> {
        let mut f = self.young.back(0);
        while let Some(x) = f {
            if !(respect_crp && self.in_crp(x)) && evictable(x) {
                return Some(x);
            }
            f = self.young.newer(x);
        }
        // Oldest K-th reference first; live entries popped are put back (the
        // chosen one dies when `unplace` clears its frame).
        let mut popped = Vec::new();
        let mut found = None;
        while let Some(Reverse((kth, x))) = self.old.pop() {
            if !self.live(kth, x) {
                continue;
            }
            popped.push(Reverse((kth, x)));
            if !(respect_crp && self.in_crp(x)) && evictable(x) {
                found = Some(x);
                break;
            }
        }
        self.old.extend(popped);
        found
    }
}

impl EvictionPolicy for LruK {
    fn kind(&self) -> Policy {
        Policy::LruK
    }
    fn capacity(&self) -> usize {
        self.pages.len()
    }
    fn len(&self) -> usize {
        self.young.len(0) + self.old_len
    }
    fn contains(&self, frame: FrameId) -> bool {
        (frame as usize) < self.pages.len()
            && (self.in_old[frame as usize] || self.young.list_of(frame) != NONE)
    }
    fn insert(&mut self, frame: FrameId, page: u64) {
        if self.contains(frame) || frame as usize >= self.pages.len() {
            return;
        }
        self.now += 1;
        let i = frame as usize;
        self.pages[i] = page;
        let mut h = match self.history.remove(page) {
            Some(h) => {
                self.stats.ghost_hits += 1;
                h
            }
            None => Hist::default(),
        };
        Self::reference(&mut h, self.now, self.crp, self.k);
        self.hist[i] = h;
        self.place(frame);
    }
    fn access(&mut self, frame: FrameId, _page: u64) -> Tier {
        if !self.contains(frame) {
            return Tier::Warm;
        }
        self.now += 1;
        let i = frame as usize;
        let was_old = self.in_old[i];
        let before = self.kth(frame);
        Self::reference(&mut self.hist[i], self.now, self.crp, self.k);
        if self.hist[i].n as usize >= self.k && (!was_old || self.kth(frame) != before) {
            if !was_old {
                // K-th reference: leaves the FIFO of young pages.
                self.young.remove(frame);
                self.stats.promotions += 1;
            }
            self.push_old(frame);
        }
        // A young page keeps its FIFO position (libCacheSim does the same).
        if was_old { Tier::Hot } else { Tier::Warm }
    }
    fn victim(
        &mut self,
        _incoming: Option<u64>,
        evictable: &mut dyn FnMut(FrameId) -> bool,
    ) -> Option<FrameId> {
        let f = match self.pick(true, evictable) {
            Some(f) => f,
            None if self.crp > 0 => self.pick(false, evictable)?,
            None => return None,
        };
        self.unplace(f);
        let i = f as usize;
        if self.history_cap > 0 {
            self.history.push_front(self.pages[i], self.hist[i]);
            while self.history.len() > self.history_cap {
                self.history.pop_back();
            }
        }
        self.stats.victims += 1;
        Some(f)
    }
    fn remove(&mut self, frame: FrameId, _page: u64) {
        if self.contains(frame) {
            self.unplace(frame);
        }
    }
    fn tier(&self, frame: FrameId) -> Tier {
        match self.hist.get(frame as usize) {
            Some(h) if h.n as usize >= self.k => Tier::Hot,
            _ => Tier::Warm,
        }
    }
    fn stats(&self) -> PolicyStats {
        PolicyStats {
            history: self.history.len() as u64,
            ..self.stats
        }
    }
}
