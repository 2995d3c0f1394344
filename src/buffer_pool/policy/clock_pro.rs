//! CLOCK-Pro (Jiang, Chen & Zhang, "CLOCK-Pro: An Effective Improvement of
//! the CLOCK Replacement", USENIX ATC 2005), as in the authors' simulator:
//! LIRS's idea — keep the pages with small reuse distance — in clock form, so
//! a hit only sets a reference bit.
//!
//! One circular list holds *hot* pages (LIRS's LIR set), resident *cold*
//! pages and non-resident cold pages (ids only, at most `capacity`), in the
//! order they entered or were last moved. A new page enters cold and starts
//! a *test period*; a cold page referenced during its test period has a
//! reuse distance smaller than the oldest hot page's, so it becomes hot and a
//! hot page is demoted. Three hands sweep from the oldest entry towards the
//! newest, wrapping around:
//! - `HAND_cold` evicts: a cold page unreferenced or out of its test period
//!   goes (staying as a non-resident entry while in test); a referenced one
//!   in test is promoted.
//! - `HAND_hot` demotes: it clears hot pages' reference bits, demotes the
//!   first unreferenced one and ends the test periods of cold pages it passes.
//! - `HAND_test` ends test periods and drops non-resident entries beyond the
//!   bound.
//!
//! Cold pages get a fixed 5 % of the frames (at least 2), the authors'
//! simulator default (its adaptive allocation is compiled out there).
//! For the pool: pinned cold pages are passed over; if no cold page can go,
//! `HAND_hot` demotes one, and as a last resort the oldest evictable hot page
//! goes.
//!
//! A repeat of the last reference sets no bit (the authors' simulator skips
//! such repeats: a page touched twice in a row has shown no reuse).
//!
//! Tiers: hot pages are hot, cold ones warm.

use super::lists::{FrameLists, NIL, PageMap};
use super::{EvictionPolicy, FrameId, Policy, PolicyStats, Tier};

const HOT: u8 = 1;
const TEST: u8 = 2;
const REF: u8 = 4;

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct ClockPro {
    cap: usize,
    hot_target: usize,
    /// Nodes `0..cap` are frames, `cap..=2 cap` non-resident entries; front =
    /// newest, hands move towards the front and wrap to the back.
    clock: FrameLists<1>,
    flags: Vec<u8>,
    page: Vec<u64>,
    ghost_of: PageMap<u32>,
    free_ghosts: Vec<u32>,
    resident: usize,
    hot: usize,
    hand_cold: u32,
    hand_hot: u32,
    hand_test: u32,
    /// The frame referenced last: a repeat is not a new reference.
    last: u32,
    stats: PolicyStats,
}

impl ClockPro {
    /// CLOCK-Pro over `capacity` frames with `cold_percent` of them for cold
    /// pages (the authors' 5 %; at least 2 frames).
    pub fn new(capacity: usize, cold_percent: f64) -> Self {
        let cold = ((capacity as f64 * cold_percent.clamp(0.0, 100.0) / 100.0) as usize)
            .max(2)
            .min(capacity);
        Self {
            cap: capacity,
            hot_target: capacity - cold,
            // One spare entry: the bound is enforced after it is exceeded.
            clock: FrameLists::new(2 * capacity + 1),
            flags: vec![0; 2 * capacity + 1],
            page: vec![u64::MAX; 2 * capacity + 1],
            ghost_of: PageMap::default(),
            free_ghosts: (capacity..=2 * capacity).rev().map(|g| g as u32).collect(),
            resident: 0,
            hot: 0,
            hand_cold: NIL,
            hand_hot: NIL,
            hand_test: NIL,
            last: NIL,
            stats: PolicyStats::default(),
        }
    }

    #[inline]
    fn is_frame(&self, n: u32) -> bool {
        (n as usize) < self.cap
    }

    #[inline]
    fn has(&self, n: u32, bit: u8) -> bool {
        self.flags[n as usize] & bit != 0
    }

    /// The next entry in hand order: newer, wrapping from the newest to the
    /// oldest.
    #[inline]
    fn step(&self, n: u32) -> u32 {
        match self.clock.newer(n) {
            Some(x) => x,
            None => self.clock.back(0).unwrap_or(NIL),
        }
    }

    /// The previous entry in hand order (where a hand just came from).
    #[inline]
    fn behind(&self, n: u32) -> u32 {
        match self.clock.older(n) {
            Some(x) => x,
            None => self.clock.front(0).unwrap_or(NIL),
        }
    }

    /// Takes `n` out of the clock, moving any hand on it one step on; its
    /// test period and reference bit end (the authors' `remove_from_clock`).
    fn unlink(&mut self, n: u32) {
        let next = if self.clock.len(0) <= 1 {
            NIL
        } else {
            self.step(n)
        };
        for h in [&mut self.hand_cold, &mut self.hand_hot, &mut self.hand_test] {
            if *h == n {
                *h = next;
            }
        }
        self.clock.remove(n);
        self.flags[n as usize] &= !(TEST | REF);
    }

    /// Puts `n` (not in the clock) at the head; hands start at the first
    /// entry.
    fn push_head(&mut self, n: u32) {
        self.clock.push_front(0, n);
        for h in [&mut self.hand_cold, &mut self.hand_hot, &mut self.hand_test] {
            if *h == NIL {
                *h = n;
            }
        }
    }

    fn free_ghost(&mut self, g: u32) {
        self.unlink(g);
        self.ghost_of.remove(&self.page[g as usize]);
        self.free_ghosts.push(g);
    }

    /// `HAND_test` ends one test period (if `step`) and enforces the bound
    /// on non-resident entries.
    fn run_hand_test(&mut self, step: bool) {
        if step && self.hand_test != NIL {
            let t = self.hand_test;
            if !self.has(t, HOT) {
                self.flags[t as usize] &= !(TEST | REF);
                if !self.is_frame(t) {
                    self.free_ghost(t);
                    return self.run_hand_test(false);
                }
            }
            self.hand_test = self.step(t);
        }
        if self.ghost_of.len() > self.cap {
            let mut guard = self.clock.len(0);
            while self.hand_test != NIL && self.is_frame(self.hand_test) && guard > 0 {
                let t = self.hand_test;
                if !self.has(t, HOT) {
                    self.flags[t as usize] &= !(TEST | REF);
                }
                self.hand_test = self.step(t);
                guard -= 1;
            }
            if self.hand_test != NIL && !self.is_frame(self.hand_test) {
                self.free_ghost(self.hand_test);
            }
        }
    }

    /// `HAND_hot` demotes one unreferenced hot page (clearing the bits of
    /// referenced ones) and comes to rest on a hot page. Returns whether it
    /// passed `cold` (ending its test period) and whether it demoted.
    fn run_hand_hot(&mut self, cold: Option<u32>) -> (bool, bool) {
        let (mut done, mut matched, mut demoted) = (false, false, false);
        let mut guard = 2 * self.clock.len(0) + 2;
        while self.hand_hot != NIL && guard > 0 && (!done || !self.has(self.hand_hot, HOT)) {
            guard -= 1;
            let h = self.hand_hot;
            if self.has(h, HOT) {
                if self.has(h, REF) {
                    self.flags[h as usize] &= !REF;
                } else {
                    self.flags[h as usize] &= !HOT;
                    self.hot -= 1;
                    self.stats.demotions += 1;
                    done = true;
                    demoted = true;
                }
                // The page moves to the head; the hands on it move on.
                self.unlink(h);
                self.push_head(h);
            } else {
                if Some(h) == cold {
                    done = true;
                    matched = true;
                }
                self.hand_hot = self.step(h);
            }
            if self.hand_hot != NIL && self.behind(self.hand_hot) == self.hand_test {
                self.run_hand_test(true);
            }
        }
        (matched, demoted)
    }

    /// The first resident cold page from `n` on in hand order (`NIL`: none).
    fn next_cold(&self, mut n: u32) -> u32 {
        if n == NIL {
            n = self.clock.back(0).unwrap_or(NIL);
        }
        for _ in 0..self.clock.len(0) {
            if n == NIL {
                return NIL;
            }
            if self.is_frame(n) && !self.has(n, HOT) {
                return n;
            }
            n = self.step(n);
        }
        NIL
    }

    /// Evicts frame `p` (cold): a page in test stays as a non-resident entry.
    fn evict_cold(&mut self, p: u32) {
        let in_test = self.has(p, TEST);
        let next = self.step(p);
        if in_test && let Some(g) = self.free_ghosts.pop() {
            self.page[g as usize] = self.page[p as usize];
            self.flags[g as usize] = TEST;
            for h in [&mut self.hand_cold, &mut self.hand_hot, &mut self.hand_test] {
                if *h == p {
                    *h = g;
                }
            }
            self.clock.replace(p, g);
            self.ghost_of.insert(self.page[g as usize], g);
        } else {
            self.unlink(p);
        }
        self.flags[p as usize] = 0;
        self.resident -= 1;
        self.hand_cold = self.next_cold(if self.hand_cold == p || self.hand_cold == NIL {
            next
        } else {
            self.hand_cold
        });
        self.run_hand_test(false);
    }

    /// Last resort: the oldest evictable hot page.
    fn evict_any(&mut self, evictable: &mut dyn FnMut(FrameId) -> bool) -> Option<FrameId> {
        let mut n = self.clock.back(0);
        while let Some(x) = n {
            if self.is_frame(x) && evictable(x) {
                if self.has(x, HOT) {
                    self.hot -= 1;
                }
                self.unlink(x);
                self.flags[x as usize] = 0;
                self.resident -= 1;
                return Some(x);
            }
            n = self.clock.newer(x);
        }
        None
    }
}

impl EvictionPolicy for ClockPro {
    fn kind(&self) -> Policy {
        Policy::ClockPro
    }
    fn capacity(&self) -> usize {
        self.cap
    }
    fn len(&self) -> usize {
        self.resident
    }
    fn contains(&self, frame: FrameId) -> bool {
        (frame as usize) < self.cap && self.clock.list_of(frame) != super::lists::NONE
    }
    fn insert(&mut self, frame: FrameId, page: u64) {
        if self.contains(frame) || frame as usize >= self.cap {
            return;
        }
        self.page[frame as usize] = page;
        self.resident += 1;
        self.last = frame;
        if let Some(g) = self.ghost_of.get(&page).copied() {
            // A refault during the test period: promoted, unless HAND_hot
            // reaches the entry first (its test period then ends).
            let (matched, demoted) = self.run_hand_hot(Some(g));
            if self.ghost_of.get(&page) == Some(&g) {
                self.free_ghost(g);
            }
            if !matched || demoted {
                self.stats.ghost_hits += 1;
                self.stats.promotions += 1;
                self.flags[frame as usize] = HOT;
                self.hot += 1;
                self.push_head(frame);
                return;
            }
        }
        if self.hot < self.hot_target {
            self.flags[frame as usize] = HOT;
            self.hot += 1;
        } else {
            self.flags[frame as usize] = TEST;
        }
        self.push_head(frame);
        if self.hand_cold == NIL || !self.is_frame(self.hand_cold) || self.has(self.hand_cold, HOT)
        {
            self.hand_cold = self.next_cold(self.hand_cold);
        }
    }
    #[inline]
    fn access(&mut self, frame: FrameId, _page: u64) -> Tier {
        if !self.contains(frame) {
            return Tier::Warm;
        }
        let f = &mut self.flags[frame as usize];
        if frame != self.last {
            *f |= REF;
            self.last = frame;
        }
        if *f & HOT != 0 { Tier::Hot } else { Tier::Warm }
    }
    fn victim(
        &mut self,
        _incoming: Option<u64>,
        evictable: &mut dyn FnMut(FrameId) -> bool,
    ) -> Option<FrameId> {
        let mut budget = 4 * self.clock.len(0) + 8;
        let mut skipped = 0usize;
        while budget > 0 {
            budget -= 1;
            let mut p = self.next_cold(self.hand_cold);
            if p == NIL {
                // No cold page: HAND_hot makes one.
                let (_, demoted) = self.run_hand_hot(None);
                p = self.next_cold(self.hand_cold);
                if !demoted || p == NIL {
                    break;
                }
            }
            self.hand_cold = p;
            if !self.has(p, REF) || !self.has(p, TEST) {
                if evictable(p) {
                    self.evict_cold(p);
                    self.stats.victims += 1;
                    return Some(p);
                }
                // Pinned: pass over it.
                skipped += 1;
                if skipped > self.resident - self.hot {
                    break;
                }
                self.hand_cold = self.next_cold(self.step(p));
                continue;
            }
            // Referenced in its test period: promote (one demotion pays).
            let (matched, demoted) = self.run_hand_hot(Some(p));
            if !matched || demoted {
                self.unlink(p);
                self.flags[p as usize] |= HOT;
                self.hot += 1;
                self.stats.promotions += 1;
                self.push_head(p);
            }
        }
        let v = self.evict_any(evictable)?;
        self.stats.victims += 1;
        self.hand_cold = self.next_cold(self.hand_cold);
        Some(v)
    }
    fn remove(&mut self, frame: FrameId, _page: u64) {
        if !self.contains(frame) {
            return;
        }
        if self.has(frame, HOT) {
            self.hot -= 1;
        }
        self.unlink(frame);
        self.flags[frame as usize] = 0;
        self.resident -= 1;
        if self.hand_cold != NIL
            && (!self.is_frame(self.hand_cold) || self.has(self.hand_cold, HOT))
        {
            self.hand_cold = self.next_cold(self.hand_cold);
        }
    }
    fn tier(&self, frame: FrameId) -> Tier {
        if (frame as usize) < self.cap && self.has(frame, HOT) {
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
