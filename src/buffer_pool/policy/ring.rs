//! A ring of frames with a small reference count each: the shared body of
//! CLOCK (an n-bit usage count) and SIEVE (a one-bit visited flag). The two
//! differ only in how their hand walks the ring (`victim`).
//!
//! Tiers: a count ≥ 1 is hot (referenced since the hand last passed), 0 is
//! warm.

use super::lists::{FrameLists, NONE};
use super::{FrameId, PolicyStats, Tier};

#[derive(Debug, Clone)]
pub(crate) struct CountedRing {
    /// Newest at the front, the hand's side at the back.
    pub(crate) ring: FrameLists<1>,
    pub(crate) count: Vec<u8>,
    max: u8,
}

impl CountedRing {
    /// A ring over `capacity` frames whose counts saturate at `max` (≥ 1).
    pub(crate) fn new(capacity: usize, max: u8) -> Self {
        Self {
            ring: FrameLists::new(capacity),
            count: vec![0; capacity],
            max: max.max(1),
        }
    }

    #[inline]
    pub(crate) fn max(&self) -> u8 {
        self.max
    }

    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.count.len()
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.ring.len(0)
    }

    #[inline]
    pub(crate) fn contains(&self, f: FrameId) -> bool {
        self.ring.list_of(f) != NONE
    }

    /// Adds `f` at the front with count 0 (ignored if held or out of range).
    pub(crate) fn insert(&mut self, f: FrameId) {
        if self.contains(f) || f as usize >= self.count.len() {
            return;
        }
        self.count[f as usize] = 0;
        self.ring.push_front(0, f);
    }

    /// A hit on `f`: raises its count; returns its tier before the hit and
    /// counts a promotion when the count leaves 0.
    #[inline]
    pub(crate) fn touch(&mut self, f: FrameId, stats: &mut PolicyStats) -> Tier {
        if !self.contains(f) {
            return Tier::Warm;
        }
        let c = &mut self.count[f as usize];
        if *c > 0 {
            *c = (*c + 1).min(self.max);
            Tier::Hot
        } else {
            *c = 1;
            stats.promotions += 1;
            Tier::Warm
        }
    }

    /// Raises `f`'s count (held or not; out of range is ignored).
    #[inline(always)]
    pub(crate) fn mark(&mut self, f: FrameId) {
        if let Some(c) = self.count.get_mut(f as usize) {
            *c = (*c + 1).min(self.max);
        }
    }

    /// Lowers `f`'s count by one, counting a demotion when it reaches 0.
    /// Returns whether it was above 0.
    #[inline]
    pub(crate) fn lower(&mut self, f: FrameId, stats: &mut PolicyStats) -> bool {
        let c = &mut self.count[f as usize];
        if *c == 0 {
            return false;
        }
        *c -= 1;
        if *c == 0 {
            stats.demotions += 1;
        }
        true
    }

    #[inline]
    pub(crate) fn remove(&mut self, f: FrameId) {
        self.ring.remove(f);
    }

    #[inline]
    pub(crate) fn tier(&self, f: FrameId) -> Tier {
        if self.count.get(f as usize).copied().unwrap_or(0) > 0 {
            Tier::Hot
        } else {
            Tier::Warm
        }
    }
}
