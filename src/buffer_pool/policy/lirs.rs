//! LIRS (Jiang & Zhang, "LIRS: An Efficient Low Inter-reference Recency Set
//! Replacement Policy to Improve Buffer Cache Performance", SIGMETRICS 2002),
//! as in the authors' simulator.
//!
//! A page's *inter-reference recency* (IRR) is the number of other pages
//! touched between its last two references. LIRS keeps the pages with the
//! smallest IRRs — the LIR set, `capacity − Lhirs` frames — and gives the
//! remaining `Lhirs` frames (1 %, at least 2) to HIR pages, which come and go
//! in a FIFO queue Q. The recency stack S orders LIR pages, resident HIR
//! pages and *non-resident* HIR pages (page ids only) by recency; its bottom
//! is always a LIR page ("stack pruning"). A HIR page referenced again while
//! still in S has an IRR below the oldest LIR page's recency, so it becomes
//! LIR and that oldest LIR page becomes HIR. On a loop larger than the pool
//! the LIR set stays put and LIRS hits `capacity / loop` of the requests,
//! close to OPT, where LRU, CLOCK and ARC hit nothing.
//!
//! Differences from the paper, for a buffer pool: non-resident entries in S
//! are bounded (a multiple of the capacity, oldest dropped first); when every
//! HIR frame is pinned the evictable LIR page nearest the bottom of S goes;
//! a deleted page leaves S without a trace.
//!
//! Tiers: LIR pages are hot, HIR pages warm.

use super::lists::{FrameLists, NONE, PageMap};
use super::{EvictionPolicy, FrameId, Policy, PolicyStats, Tier};

const LIR: u8 = 1;
const TOUCHED: u8 = 2;

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Lirs {
    cap: usize,
    /// Target size of the LIR set.
    llirs: usize,
    /// LIR pages held now.
    nlir: usize,
    /// The stack S over nodes `0..cap` (frames) and `cap..cap + ghosts`
    /// (non-resident HIR pages); front = most recent.
    s: FrameLists<1>,
    /// The queue Q of resident HIR frames; back = next victim.
    q: FrameLists<1>,
    /// Per frame: `LIR`, and in lazy mode `TOUCHED` (hit since it last
    /// moved to the top of S).
    flags: Vec<u8>,
    lazy: bool,
    /// Page of each frame node and each ghost node (indexed by node).
    page: Vec<u64>,
    /// Non-resident pages in S, by page id.
    ghost_of: PageMap<u32>,
    /// Ghost nodes by age (index `node − cap`); back = oldest.
    ghost_age: FrameLists<1>,
    free_ghosts: Vec<u32>,
    stats: PolicyStats,
}

impl Lirs {
    /// LIRS over `capacity` frames with `hir_percent` of them for HIR pages
    /// (the paper's 1 %; at least 2 frames, fewer only if the pool is tiny),
    /// remembering up to `ghosts_per_frame × capacity` non-resident pages
    /// (`Policy::Lirs`: 4, about 200 bytes per frame; the authors' simulator
    /// is unbounded, which 64 matches on their traces).
    pub fn new(capacity: usize, hir_percent: f64, ghosts_per_frame: usize) -> Self {
        let lhirs = ((capacity as f64 * hir_percent.clamp(0.0, 100.0) / 100.0) as usize)
            .max(2)
            .min(capacity.max(1));
        let ghosts = capacity * ghosts_per_frame;
        Self {
            cap: capacity,
            llirs: capacity.saturating_sub(lhirs),
            nlir: 0,
            s: FrameLists::new(capacity + ghosts),
            q: FrameLists::new(capacity),
            flags: vec![0; capacity],
            lazy: false,
            page: vec![u64::MAX; capacity + ghosts],
            ghost_of: PageMap::default(),
            ghost_age: FrameLists::new(ghosts),
            free_ghosts: (capacity..capacity + ghosts)
                .rev()
                .map(|g| g as u32)
                .collect(),
            stats: PolicyStats::default(),
        }
    }

    /// Lazy promotion: a hit on a LIR page only marks it, and the page moves
    /// to the top of S when it reaches the bottom (as CLOCK approximates
    /// LRU). A hit then writes one byte; the LIR order is approximate.
    pub fn lazy(mut self, on: bool) -> Self {
        self.lazy = on;
        self
    }

    /// Leaves `frames` more of the capacity to HIR pages: the frames a buffer
    /// pool holds outside the policy (its cooling stage takes victims ahead
    /// of time). Without it the policy, never seeing itself full, would turn
    /// every new page into a LIR page once those victims had drained Q, and
    /// lose its resistance to loops and scans (measured: the LIRS traces
    /// `cs` and `gli` fell to LRU's 1–2 % with a 2 % cooling stage).
    pub fn reserve(mut self, frames: usize) -> Self {
        self.llirs = self.llirs.saturating_sub(frames);
        self
    }

    /// The HIR part of the pool in frames.
    pub fn hir_frames(&self) -> usize {
        self.cap - self.llirs
    }

    #[inline]
    fn is_frame(&self, node: u32) -> bool {
        (node as usize) < self.cap
    }

    /// Whether frame `f` holds a LIR page.
    #[inline]
    fn is_lir(&self, f: u32) -> bool {
        self.flags[f as usize] & LIR != 0
    }

    #[inline]
    fn in_s(&self, node: u32) -> bool {
        self.s.list_of(node) != NONE
    }

    /// Drops ghost node `g` from S and from the ghost bookkeeping.
    fn drop_ghost(&mut self, g: u32) {
        self.s.remove(g);
        self.ghost_age.remove(g - self.cap as u32);
        self.ghost_of.remove(&self.page[g as usize]);
        self.free_ghosts.push(g);
    }

    /// Stack pruning: removes HIR entries (resident or not) from the bottom
    /// of S until a LIR page is there.
    fn prune(&mut self) {
        while let Some(b) = self.s.back(0) {
            if self.is_frame(b) {
                if self.is_lir(b) {
                    if self.flags[b as usize] & TOUCHED != 0 {
                        // Lazy mode: hit since it last moved; up it goes now.
                        self.flags[b as usize] = LIR;
                        self.s.move_to_front(0, b);
                        continue;
                    }
                    return;
                }
                self.s.remove(b);
            } else {
                self.drop_ghost(b);
            }
        }
    }

    /// The bottom LIR page becomes a resident HIR page at the end of Q.
    fn demote_bottom(&mut self) {
        if self.lazy {
            self.prune();
        }
        if let Some(b) = self.s.back(0) {
            debug_assert!(self.is_frame(b) && self.is_lir(b));
            self.s.remove(b);
            self.flags[b as usize] = 0;
            self.nlir -= 1;
            self.q.push_front(0, b);
            self.stats.demotions += 1;
            self.prune();
        }
    }

    /// `f` becomes a LIR page at the top of S; if the LIR set is then over
    /// its target, the bottom LIR page is demoted.
    fn make_lir(&mut self, f: FrameId) {
        self.q.remove(f);
        self.s.move_to_front(0, f);
        self.flags[f as usize] = LIR;
        self.nlir += 1;
        if self.nlir > self.llirs {
            self.demote_bottom();
        }
    }

    /// Evicts resident HIR frame `f`: it leaves Q and, if it is in S, stays
    /// there as a non-resident page.
    fn evict_hir(&mut self, f: FrameId) {
        self.q.remove(f);
        if !self.in_s(f) {
            return;
        }
        let g = match self.free_ghosts.pop() {
            Some(g) => g,
            None => {
                // At the bound: forget the oldest non-resident page.
                let Some(old) = self.ghost_age.back(0) else {
                    self.s.remove(f);
                    return;
                };
                let g = old + self.cap as u32;
                self.drop_ghost(g);
                match self.free_ghosts.pop() {
                    Some(g) => g,
                    None => return,
                }
            }
        };
        let page = self.page[f as usize];
        self.page[g as usize] = page;
        self.s.replace(f, g);
        self.ghost_age.push_front(0, g - self.cap as u32);
        self.ghost_of.insert(page, g);
    }

    /// Evicts held frame `f` chosen by someone else (the adaptive policy
    /// following another expert): a HIR page leaves as usual; a LIR page
    /// stays in S as a non-resident entry, so a quick return makes it LIR
    /// again.
    pub(crate) fn evict(&mut self, f: FrameId) {
        if !self.contains(f) {
            return;
        }
        if self.is_lir(f) {
            self.flags[f as usize] = 0;
            self.nlir -= 1;
            let bottom = self.s.back(0) == Some(f);
            self.evict_hir(f);
            if bottom {
                self.prune();
            }
        } else {
            self.evict_hir(f);
        }
    }

    /// Evicts LIR frame `f` (only when no HIR frame could go).
    fn evict_lir(&mut self, f: FrameId) {
        let bottom = self.s.back(0) == Some(f);
        self.s.remove(f);
        self.flags[f as usize] = 0;
        self.nlir -= 1;
        if bottom {
            self.prune();
        }
    }
}

impl EvictionPolicy for Lirs {
    fn kind(&self) -> Policy {
        Policy::Lirs
    }
    fn capacity(&self) -> usize {
        self.cap
    }
    fn len(&self) -> usize {
        self.nlir + self.q.len(0)
    }
    fn contains(&self, frame: FrameId) -> bool {
        (frame as usize) < self.cap && (self.is_lir(frame) || self.q.list_of(frame) != NONE)
    }
    fn insert(&mut self, frame: FrameId, page: u64) {
        if self.contains(frame) || frame as usize >= self.cap {
            return;
        }
        self.page[frame as usize] = page;
        if let Some(g) = self.ghost_of.get(&page).copied() {
            // A non-resident HIR page still in S: its IRR is small, LIR now.
            self.drop_ghost(g);
            self.stats.ghost_hits += 1;
            self.stats.promotions += 1;
            self.make_lir(frame);
        } else if self.nlir < self.llirs {
            // Warm-up (or refill after a LIR page left): straight to LIR.
            self.s.push_front(0, frame);
            self.flags[frame as usize] = LIR;
            self.nlir += 1;
        } else {
            self.s.push_front(0, frame);
            self.q.push_front(0, frame);
        }
    }
    #[inline]
    fn access(&mut self, frame: FrameId, _page: u64) -> Tier {
        match self.flags.get_mut(frame as usize) {
            Some(f) if *f & LIR != 0 && self.lazy => {
                *f |= TOUCHED;
                return Tier::Hot;
            }
            Some(f) if *f & LIR != 0 => {
                // The common hit: a LIR page to the top of S. (A repeat of
                // the last reference changes nothing here.)
                let bottom = self.s.back(0) == Some(frame);
                self.s.move_to_front(0, frame);
                if bottom {
                    self.prune();
                }
                return Tier::Hot;
            }
            Some(_) if self.q.list_of(frame) != NONE => {}
            _ => return Tier::Warm,
        }
        if self.s.front(0) == Some(frame) {
            // A repeat of the last reference: an IRR of 0 says nothing (the
            // authors' simulator skips such repeats too).
            return Tier::Warm;
        }
        if self.in_s(frame) {
            self.stats.promotions += 1;
            self.make_lir(frame);
        } else {
            self.s.push_front(0, frame);
            self.q.move_to_front(0, frame);
        }
        Tier::Warm
    }
    fn victim(
        &mut self,
        _incoming: Option<u64>,
        evictable: &mut dyn FnMut(FrameId) -> bool,
    ) -> Option<FrameId> {
        if let Some(f) = self.q.oldest_where(0, evictable) {
            self.evict_hir(f);
            self.stats.victims += 1;
            return Some(f);
        }
        // Every HIR frame is pinned (or there is none): the oldest evictable
        // LIR page goes.
        let mut n = self.s.back(0);
        while let Some(x) = n {
            if self.is_frame(x) && self.is_lir(x) && evictable(x) {
                self.evict_lir(x);
                self.stats.victims += 1;
                return Some(x);
            }
            n = self.s.newer(x);
        }
        None
    }
    fn remove(&mut self, frame: FrameId, _page: u64) {
        if !self.contains(frame) {
            return;
        }
        if self.is_lir(frame) {
            self.evict_lir(frame);
        } else {
            self.q.remove(frame);
            let bottom = self.s.back(0) == Some(frame);
            self.s.remove(frame);
            if bottom {
                self.prune();
            }
        }
    }
    fn tier(&self, frame: FrameId) -> Tier {
        if self.flags.get(frame as usize).is_some_and(|f| f & LIR != 0) {
            Tier::Hot
        } else {
            Tier::Warm
        }
    }
    fn stats(&self) -> PolicyStats {
        PolicyStats {
            history: self.ghost_of.len() as u64,
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_keeps_its_lir_set() {
        // A loop of 150 pages through 100 frames: the first 98 become LIR and
        // stay; each revolution hits them.
        let mut p = Lirs::new(100, 1.0, 2);
        assert_eq!(p.hir_frames(), 2);
        let mut resident: std::collections::HashMap<u64, u32> = Default::default();
        let mut free: Vec<u32> = (0..100).collect();
        let (mut hits, mut reqs) = (0u64, 0u64);
        for round in 0..20 {
            for page in 0..150u64 {
                reqs += 1;
                if let Some(&f) = resident.get(&page) {
                    hits += u64::from(round > 0);
                    p.access(f, page);
                    continue;
                }
                let f = match free.pop() {
                    Some(f) => f,
                    None => {
                        let v = p.victim(None, &mut |_| true).unwrap();
                        resident.retain(|_, &mut x| x != v);
                        v
                    }
                };
                p.insert(f, page);
                resident.insert(page, f);
            }
        }
        let ratio = hits as f64 / (reqs - 150) as f64;
        assert!((ratio - 98.0 / 150.0).abs() < 0.02, "{ratio}");
        assert!(p.stats().history <= 200);
    }
}
