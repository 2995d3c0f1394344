//! The adaptive policy: LIRS when LIRS wins, CLOCK (LRU's approximation)
//! when recency wins, decided by watching both.
//!
//! No published policy is good everywhere. LIRS keeps the pages with the
//! shortest reuse distances and is near-optimal on loops and scans far larger
//! than the pool, where LRU, CLOCK and ARC hit nothing — but on a zig-zag
//! (a scan that turns back) or a stack-like reuse pattern, where recency is
//! exactly right, LIRS holds stale pages and hits almost nothing while LRU
//! is optimal. This policy runs both *experts* on the real frames and lets
//! the one that is winning choose the victims:
//!
//! - **Real state**: every hit and miss updates a real [`Lirs`] and a real
//!   [`Clock`] (second chance: within a few tenths of a point of LRU on the
//!   recency-friendly traces, and a hit only sets a bit) over the pool's
//!   frames. The *leader* picks the victim; the other expert is told the
//!   frame left ([`Lirs::evict`] keeps a LIR page as a non-resident entry, so
//!   LIRS's view stays sensible while CLOCK leads).
//! - **Shadows**: two shadow caches ([`Shadows`]) simulate CLOCK and LIRS each running
//!   the pool alone, on a hash-sampled `1/2^k` of the requests at `1/2^k` of
//!   the capacity (128 shadow entries or more once the pool has 128 frames,
//!   at most 1 request in 64 sampled; every request for pools up to 255
//!   frames). Their hits, decayed over about `8 ×` the shadow size in
//!   sampled requests, estimate both experts' current hit ratios.
//! - **Switching**: the leader changes when the other expert's estimated
//!   hit ratio is ahead by more than half a point (hysteresis against
//!   flapping). LIRS leads at the start.
//!
//! On the traces in `BENCHMARKS.md` this follows the better of the two within
//! about a point everywhere; a hit costs the two experts' updates plus, on
//! sampled pages, two shadow lookups.
//!
//! Tiers: LIRS's (LIR pages are hot).

use super::lists::mix;
use super::shadow::Shadows;
use super::{Clock, EvictionPolicy, FrameId, Lirs, Policy, PolicyStats, Tier};

/// Shadow entries aimed for (the sampling rate is chosen for this).
const SHADOW_TARGET: usize = 128;
/// Largest sampling shift: 1 request in 64.
const MAX_SHIFT: u32 = 6;
/// Decay horizon, in shadow sizes of sampled requests.
const HORIZON: f64 = 8.0;
/// Lead (in hit-ratio points / 100) the other expert needs to take over.
const MARGIN: f64 = 0.005;
/// LIRS's non-resident history per frame (as `Policy::Lirs`).
const LIRS_GHOSTS: usize = 4;
/// Salt for the sampling hash, so sampling is independent of `PageMap`.
const SALT: u64 = 0x6A09_E667_F3BC_C909;

const RECENCY: usize = 0;
const LIRS: usize = 1;

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Adaptive {
    clock: Clock,
    lirs: Lirs,
    shadows: Shadows<Clock, Lirs>,
    /// Requests are sampled when the top `shift` bits of their hash are 0.
    shift: u32,
    hits: [f64; 2],
    requests: f64,
    decay: f64,
    leader: usize,
    switches: u64,
    stats: PolicyStats,
}

impl Adaptive {
    /// The adaptive policy over `capacity` frames.
    pub fn new(capacity: usize) -> Self {
        Self::reserving(capacity, 0)
    }

    /// The adaptive policy over `capacity` frames of which the pool keeps
    /// `outside` out of the policy (see [`Lirs::reserve`]).
    pub fn reserving(capacity: usize, outside: usize) -> Self {
        let mut shift = 0;
        while shift < MAX_SHIFT && capacity >> (shift + 1) >= SHADOW_TARGET {
            shift += 1;
        }
        let shadow = (capacity >> shift).max(1);
        Self {
            clock: Clock::new(capacity, 1),
            lirs: Lirs::new(capacity, 1.0, LIRS_GHOSTS)
                .lazy(true)
                .reserve(outside),
            shadows: Shadows::new(
                Clock::new(shadow, 1),
                Lirs::new(shadow, 1.0, LIRS_GHOSTS).lazy(true),
            ),
            shift,
            hits: [0.0; 2],
            requests: 0.0,
            decay: 1.0 - 1.0 / (HORIZON * shadow as f64),
            leader: LIRS,
            switches: 0,
            stats: PolicyStats::default(),
        }
    }

    /// Whether CLOCK (rather than LIRS) chooses the victims now.
    pub fn follows_recency(&self) -> bool {
        self.leader == RECENCY
    }

    /// How often the leader changed.
    pub fn switches(&self) -> u64 {
        self.switches
    }

    /// The shadows' estimated hit ratios (CLOCK, LIRS), 0 – 1.
    pub fn estimates(&self) -> (f64, f64) {
        let n = self.requests.max(1.0);
        (self.hits[RECENCY] / n, self.hits[LIRS] / n)
    }

    /// One request seen by the shadows, if its page is sampled.
    #[inline]
    fn observe(&mut self, page: u64) {
        if self.shift > 0 && mix(page ^ SALT) >> (64 - self.shift) != 0 {
            return;
        }
        self.shadow_step(page);
    }

    #[inline(never)]
    fn shadow_step(&mut self, page: u64) {
        let (clock, lirs) = self.shadows.request(page);
        let d = self.decay;
        self.hits[RECENCY] = self.hits[RECENCY] * d + f64::from(u8::from(clock));
        self.hits[LIRS] = self.hits[LIRS] * d + f64::from(u8::from(lirs));
        self.requests = self.requests * d + 1.0;
        let lead = (self.hits[1 - self.leader] - self.hits[self.leader]) / self.requests;
        if lead > MARGIN {
            self.leader = 1 - self.leader;
            self.switches += 1;
        }
    }
}

impl EvictionPolicy for Adaptive {
    fn kind(&self) -> Policy {
        Policy::Adaptive
    }
    fn capacity(&self) -> usize {
        self.clock.capacity()
    }
    fn len(&self) -> usize {
        self.clock.len()
    }
    fn contains(&self, frame: FrameId) -> bool {
        self.clock.contains(frame)
    }
    fn insert(&mut self, frame: FrameId, page: u64) {
        if self.contains(frame) || frame as usize >= self.capacity() {
            return;
        }
        self.observe(page);
        self.clock.insert(frame, page);
        self.lirs.insert(frame, page);
    }
    #[inline]
    fn access(&mut self, frame: FrameId, page: u64) -> Tier {
        if !self.contains(frame) {
            return Tier::Warm;
        }
        self.observe(page);
        self.clock.mark(frame);
        self.lirs.access(frame, page)
    }
    fn victim(
        &mut self,
        incoming: Option<u64>,
        evictable: &mut dyn FnMut(FrameId) -> bool,
    ) -> Option<FrameId> {
        let f = if self.leader == RECENCY {
            let f = self.clock.victim(incoming, evictable)?;
            self.lirs.evict(f);
            f
        } else {
            let f = self.lirs.victim(incoming, evictable)?;
            self.clock.remove(f, 0);
            f
        };
        self.stats.victims += 1;
        Some(f)
    }
    fn remove(&mut self, frame: FrameId, page: u64) {
        self.clock.remove(frame, page);
        self.lirs.remove(frame, page);
    }
    fn tier(&self, frame: FrameId) -> Tier {
        self.lirs.tier(frame)
    }
    fn stats(&self) -> PolicyStats {
        let l = self.lirs.stats();
        PolicyStats {
            promotions: l.promotions,
            demotions: l.demotions,
            ghost_hits: l.ghost_hits,
            history: l.history,
            victims: self.stats.victims,
        }
    }
}
