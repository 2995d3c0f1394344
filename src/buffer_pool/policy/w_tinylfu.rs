//! W-TinyLFU (Einziger, Friedman & Manes, "TinyLFU: A Highly Efficient Cache
//! Admission Policy", ACM TOS 2017), as Caffeine runs it: a small LRU
//! *window* in front of a segmented-LRU *main* space (probation and
//! protected, 80 % of main), with admission to main by frequency.
//!
//! - New pages enter the window. When the window is full, its oldest page is
//!   the *candidate*; the oldest page of probation is the *victim*; the one
//!   the frequency sketch ([`FrequencySketch`](super::sketch)) has seen more
//!   often stays, the other is evicted (ties keep the victim; a candidate
//!   seen 6 times or more wins a tie 1 time in 128, Caffeine's defence
//!   against hash flooding).
//! - A hit in probation moves the page to protected; protected overflows back
//!   into probation.
//! - The window starts at 1 % and a hill climber ([`HillClimber`](super::climber))
//!   moves its size every `10 × capacity` requests towards the better hit
//!   ratio: large for recency-heavy phases, small for frequency-heavy ones.
//!
//! Every request (hit or miss) is counted in the sketch, so a hit costs a
//! few counter updates more than LRU's.
//!
//! Tiers: protected pages are hot, window and probation pages warm.

use super::climber::HillClimber;
use super::lists::PagedLists;
use super::sketch::FrequencySketch;
use super::{EvictionPolicy, FrameId, Policy, PolicyStats, Tier};

const WINDOW: usize = 0;
const PROBATION: usize = 1;
const PROTECTED: usize = 2;

/// Caffeine's `ADMIT_HASHDOS_THRESHOLD`.
const HASHDOS_THRESHOLD: u64 = 6;

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct WTinyLfu {
    res: PagedLists<3>,
    sketch: FrequencySketch,
    climber: Option<HillClimber>,
    window_max: usize,
    protected_max: usize,
    rng: u64,
    stats: PolicyStats,
}

impl WTinyLfu {
    /// W-TinyLFU over `capacity` frames with a window of `window_percent`
    /// (Caffeine starts at 1 %), adapted by the hill climber if `adaptive`.
    pub fn new(capacity: usize, window_percent: f64, adaptive: bool) -> Self {
        let sample = 10 * capacity.max(1) as u64;
        let mut p = Self {
            res: PagedLists::new(capacity),
            sketch: FrequencySketch::new(capacity, sample),
            climber: adaptive.then(|| HillClimber::new(capacity, sample)),
            window_max: 0,
            protected_max: 0,
            rng: 0x2545_F491_4F6C_DD1D,
            stats: PolicyStats::default(),
        };
        let w = (capacity as f64 * window_percent.clamp(0.0, 100.0) / 100.0) as usize;
        p.set_window(w.max(1));
        p
    }

    /// The window's current target size in frames.
    pub fn window_frames(&self) -> usize {
        self.window_max
    }

    fn set_window(&mut self, w: usize) {
        let cap = self.res.capacity();
        self.window_max = w.clamp(1, cap.max(2) - 1);
        self.protected_max = (cap.saturating_sub(self.window_max) as f64 * 0.8) as usize;
    }

    #[inline]
    fn record(&mut self, page: u64, hit: bool) {
        self.sketch.increment(page);
        if let Some(c) = &mut self.climber {
            if hit {
                c.hit();
            } else {
                c.miss();
            }
            if let Some(delta) = c.adjustment() {
                let w = self.window_max as i64 + delta;
                self.set_window(w.max(1) as usize);
            }
        }
    }

    /// TinyLFU's admission: whether the candidate replaces the victim.
    fn admit(&mut self, candidate: FrameId, victim: FrameId) -> bool {
        let c = self.sketch.estimate(self.res.page(candidate));
        let v = self.sketch.estimate(self.res.page(victim));
        if c > v {
            return true;
        }
        if c >= HASHDOS_THRESHOLD {
            // xorshift64: a 1-in-128 chance.
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            return self.rng & 127 == 0;
        }
        false
    }

    /// Protected over its share: its oldest pages go back to probation.
    fn rebalance_protected(&mut self) {
        while self.res.lists.len(PROTECTED) > self.protected_max {
            let Some(f) = self.res.lists.back(PROTECTED) else {
                break;
            };
            self.res.lists.move_to_front(PROBATION, f);
            self.stats.demotions += 1;
        }
    }

    fn take(&mut self, f: FrameId) -> FrameId {
        self.res.remove(f);
        self.stats.victims += 1;
        f
    }
}

impl EvictionPolicy for WTinyLfu {
    fn kind(&self) -> Policy {
        Policy::WTinyLfu
    }
    residency_methods!(res);
    fn insert(&mut self, frame: FrameId, page: u64) {
        if !self.res.admit(frame, page) {
            return;
        }
        self.record(page, false);
        self.res.lists.push_front(WINDOW, frame);
    }
    #[inline]
    fn access(&mut self, frame: FrameId, page: u64) -> Tier {
        if !self.contains(frame) {
            return Tier::Warm;
        }
        self.record(page, true);
        match self.res.lists.list_of(frame) as usize {
            WINDOW => {
                self.res.lists.move_to_front(WINDOW, frame);
                Tier::Warm
            }
            PROBATION => {
                self.res.lists.move_to_front(PROTECTED, frame);
                self.stats.promotions += 1;
                self.rebalance_protected();
                Tier::Warm
            }
            _ => {
                self.res.lists.move_to_front(PROTECTED, frame);
                Tier::Hot
            }
        }
    }
    fn victim(
        &mut self,
        _incoming: Option<u64>,
        evictable: &mut dyn FnMut(FrameId) -> bool,
    ) -> Option<FrameId> {
        // A window over its (possibly just shrunk) target spills its oldest
        // pages into probation without a duel, as Caffeine's decreaseWindow.
        while self.res.lists.len(WINDOW) > self.window_max {
            let Some(f) = self.res.lists.back(WINDOW) else {
                break;
            };
            self.res.lists.move_to_front(PROBATION, f);
        }
        self.rebalance_protected();
        let victim = match self.res.lists.oldest_where(PROBATION, evictable) {
            Some(v) => Some(v),
            None => self.res.lists.oldest_where(PROTECTED, evictable),
        };
        // The page about to come in makes the window overflow: its oldest
        // page duels with main's victim.
        let candidate = (self.res.lists.len(WINDOW) >= self.window_max)
            .then(|| self.res.lists.back(WINDOW))
            .flatten();
        match (candidate, victim) {
            (Some(c), Some(v)) => {
                if self.admit(c, v) || !evictable(c) {
                    self.res.lists.move_to_front(PROBATION, c);
                    Some(self.take(v))
                } else {
                    Some(self.take(c))
                }
            }
            (None, Some(v)) => Some(self.take(v)),
            (_, None) => {
                let w = self.res.lists.oldest_where(WINDOW, evictable)?;
                Some(self.take(w))
            }
        }
    }
    fn remove(&mut self, frame: FrameId, _page: u64) {
        self.res.remove(frame);
    }
    fn tier(&self, frame: FrameId) -> Tier {
        self.res.tier(frame, PROTECTED)
    }
    fn stats(&self) -> PolicyStats {
        self.stats
    }
}
