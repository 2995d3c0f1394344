//! Eviction policies behind one trait.
//!
//! # The `EvictionPolicy` contract
//!
//! A policy orders the frames the pool gives it; it never touches pages,
//! pins or the disk. The pool calls it under its own lock, so a policy is
//! plain single-threaded code (`&mut self`). Frame indices are `0..capacity`.
//!
//! 1. **Membership.** `insert(frame, page)` adds a frame that is not in the
//!    policy; `access`, `tier` and `remove` are only called for frames in it;
//!    `victim` removes the frame it returns; `remove` removes a frame without
//!    it counting as an eviction. A policy holds at most `capacity` frames.
//! 2. **Pinned frames are never chosen.** `victim` may only return a frame
//!    for which the `evictable` callback, called during that same `victim`
//!    call, returned `true`. It must return `None` only when no frame it
//!    holds is evictable, and it must finish after `O(len)` callback calls
//!    (a bounded number of sweeps), so an all-pinned pool gives `None` — never
//!    a hang.
//! 3. **Accesses may arrive late and batched** (BP-Wrapper): `access` is
//!    called for hits recorded by threads since the last batch, in each
//!    thread's order. A policy must accept any interleaving.
//! 4. **History is allowed.** A policy may remember page ids of evicted pages
//!    (ARC's B1/B2, 2Q's A1out, S3-FIFO's ghost, LRU-K's retained history)
//!    and use them when the page is inserted again; it must bound that memory
//!    (a multiple of `capacity`).
//! 5. **Tiers.** `tier(frame)` returns [`Tier::Hot`] for the frames the policy
//!    protects (seen more than once, referenced since the last sweep) and
//!    [`Tier::Warm`] for probationary ones. The pool's cooling stage is the
//!    [`Tier::Cold`] tier: frames `victim` has handed over but that are still
//!    resident; eviction always takes them first.
//! 6. `incoming` in `victim` is the page about to be inserted when the pool
//!    knows it (no cooling stage), so ARC can adapt before it replaces; it is
//!    a hint and may be `None`.
//!
//! The conformance suite in `tests/buffer_pool_policies.rs` checks these
//! rules on every policy.
//!
//! # Choosing a policy
//!
//! The default, [`Policy::Adaptive`], follows LIRS or CLOCK, whichever small
//! sampled simulations of both show is winning: near LIRS on loops and scans
//! larger than the pool, near LRU where recency is right (zig-zags), and the
//! best mean hit ratio of the built-in policies on the real and generated
//! traces in `BENCHMARKS.md`. [`Policy::Lirs`] or [`Policy::ClockPro`] suit
//! known looping or scanning workloads; [`Policy::WTinyLfu`] skewed lookups
//! with stable popularity; [`Policy::Clock`] or [`Policy::Lru`] pure recency.
//! `examples/trace_replay` measures them all on a trace of your own.

/// `capacity`, `len` and `contains` of an [`EvictionPolicy`] answered by the
/// field that holds the resident frames (a `Residency` or a `CountedRing`).
macro_rules! residency_methods {
    ($field:ident) => {
        fn capacity(&self) -> usize {
            self.$field.capacity()
        }
        fn len(&self) -> usize {
            self.$field.len()
        }
        fn contains(&self, frame: FrameId) -> bool {
            self.$field.contains(frame)
        }
    };
}

/// CLOCK and SIEVE: their counted ring `r` answers every method but `kind`
/// and `victim` (they differ only in how the hand moves).
macro_rules! counted_ring_methods {
    () => {
        residency_methods!(r);
        fn insert(&mut self, frame: FrameId, _page: u64) {
            self.r.insert(frame);
        }
        fn access(&mut self, frame: FrameId, _page: u64) -> Tier {
            self.r.touch(frame, &mut self.stats)
        }
    };
}

mod adaptive;
mod arc;
mod climber;
mod clock;
mod clock_pro;
mod lirs;
mod lists;
mod lru;
mod lru_k;
mod ring;
mod s3fifo;
mod shadow;
mod sieve;
mod sketch;
mod two_q;
mod w_tinylfu;

pub use adaptive::Adaptive;
pub use arc::ArcPolicy;
pub use clock::Clock;
pub use clock_pro::ClockPro;
pub use lirs::Lirs;
pub use lru::Lru;
pub use lru_k::LruK;
pub use s3fifo::S3Fifo;
pub use sieve::Sieve;
pub use two_q::TwoQ;
pub use w_tinylfu::WTinyLfu;

/// A frame index in the pool, `0..frames`.
pub type FrameId = u32;

/// The tier a resident page is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Tier {
    /// Protected by the policy: re-referenced, frequent.
    Hot,
    /// Probationary: admitted once, not (yet) proven.
    Warm,
    /// In the cooling stage (or a scan ring): chosen for eviction, still
    /// resident; a hit rescues it, eviction takes it first.
    Cold,
}

impl Tier {
    /// All tiers, hottest first.
    pub const ALL: [Tier; 3] = [Tier::Hot, Tier::Warm, Tier::Cold];

    /// Lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Tier::Hot => "hot",
            Tier::Warm => "warm",
            Tier::Cold => "cold",
        }
    }
}

/// Counters a policy keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PolicyStats {
    /// Warm → hot moves (second reference, ghost hit, reference bit set).
    pub promotions: u64,
    /// Hot → warm moves (reference bit cleared by a sweep, demotion).
    pub demotions: u64,
    /// Inserts of pages the policy remembered from an earlier eviction.
    pub ghost_hits: u64,
    /// Page ids remembered for evicted pages now.
    pub history: u64,
    /// Frames handed out by `victim`.
    pub victims: u64,
}

/// An eviction policy; see the module documentation for the contract.
pub trait EvictionPolicy: Send + core::fmt::Debug {
    /// Which policy this is.
    fn kind(&self) -> Policy;
    /// The most frames the policy may hold.
    fn capacity(&self) -> usize;
    /// Frames held now.
    fn len(&self) -> usize;
    /// Whether no frame is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether `frame` is held.
    fn contains(&self, frame: FrameId) -> bool;
    /// `frame` now holds `page` and joins the policy.
    fn insert(&mut self, frame: FrameId, page: u64);
    /// `frame` (holding `page`) was hit; returns its tier before the hit.
    fn access(&mut self, frame: FrameId, page: u64) -> Tier;
    /// Chooses, removes and returns a frame for which `evictable` said yes.
    fn victim(
        &mut self,
        incoming: Option<u64>,
        evictable: &mut dyn FnMut(FrameId) -> bool,
    ) -> Option<FrameId>;
    /// Removes `frame` (its page was deleted); not an eviction.
    fn remove(&mut self, frame: FrameId, page: u64);
    /// The tier of a held frame (`Hot` or `Warm`).
    fn tier(&self, frame: FrameId) -> Tier;
    /// The policy's counters.
    fn stats(&self) -> PolicyStats;
}

/// The policies this crate provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Policy {
    /// LRU: least recently used first.
    Lru,
    /// CLOCK (second chance; PostgreSQL's clock sweep with a usage count of 1).
    Clock,
    /// LRU-K with K = 2, a correlated-reference period of `frames / 128`
    /// references and the history of up to `frames` evicted pages retained
    /// (O'Neil, O'Neil & Weikum, SIGMOD 1993).
    LruK,
    /// ARC (Megiddo & Modha, FAST 2003).
    Arc,
    /// Full 2Q with Kin = 25 %, Kout = 50 % (Johnson & Shasha, VLDB 1994).
    TwoQ,
    /// SIEVE (Zhang et al., NSDI 2024).
    Sieve,
    /// S3-FIFO (Yang et al., SOSP 2023).
    S3Fifo,
    /// LIRS with 1 % of the frames for HIR pages and up to 4 non-resident
    /// pages remembered per frame (Jiang & Zhang, SIGMETRICS 2002).
    Lirs,
    /// CLOCK-Pro with 5 % of the frames for cold pages (Jiang, Chen & Zhang,
    /// USENIX ATC 2005).
    ClockPro,
    /// W-TinyLFU with Caffeine's adaptive window (1 % to start, hill
    /// climbing) and a count-min sketch with a doorkeeper (Einziger, Friedman
    /// & Manes, ACM TOS 2017).
    WTinyLfu,
    /// LIRS or LRU, whichever miniature simulations of both show is winning
    /// ([`Adaptive`]). The default: the best mean hit ratio on the real
    /// and generated traces in `BENCHMARKS.md`, near LIRS on loops and scans
    /// and near LRU where recency wins.
    #[default]
    Adaptive,
    /// A user-supplied policy (`BufferPoolBuilder::custom_policy`).
    Custom,
}

impl Policy {
    /// Every built-in policy.
    pub const ALL: [Policy; 11] = [
        Policy::Lru,
        Policy::Clock,
        Policy::LruK,
        Policy::Arc,
        Policy::TwoQ,
        Policy::Sieve,
        Policy::S3Fifo,
        Policy::Lirs,
        Policy::ClockPro,
        Policy::WTinyLfu,
        Policy::Adaptive,
    ];

    /// Short name (`"lru"`, `"clock"`, `"lru-k"`, `"arc"`, `"2q"`, `"sieve"`,
    /// `"s3-fifo"`, `"lirs"`, `"clock-pro"`, `"w-tinylfu"`, `"adaptive"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Policy::Lru => "lru",
            Policy::Clock => "clock",
            Policy::LruK => "lru-k",
            Policy::Arc => "arc",
            Policy::TwoQ => "2q",
            Policy::Sieve => "sieve",
            Policy::S3Fifo => "s3-fifo",
            Policy::Lirs => "lirs",
            Policy::ClockPro => "clock-pro",
            Policy::WTinyLfu => "w-tinylfu",
            Policy::Adaptive => "adaptive",
            Policy::Custom => "custom",
        }
    }

    /// A policy instance with its default parameters for `capacity` frames
    /// (`None` for `Custom`).
    pub fn build(self, capacity: usize) -> Option<Box<dyn EvictionPolicy>> {
        self.build_reserving(capacity, 0)
    }

    /// As [`build`](Self::build), for a pool that keeps `outside` of the
    /// `capacity` frames out of the policy (its cooling stage): LIRS and the
    /// adaptive policy leave those frames to HIR pages ([`Lirs::reserve`]).
    pub fn build_reserving(
        self,
        capacity: usize,
        outside: usize,
    ) -> Option<Box<dyn EvictionPolicy>> {
        Some(match self {
            Policy::Lru => Box::new(Lru::new(capacity)),
            Policy::Clock => Box::new(Clock::new(capacity, 1)),
            Policy::LruK => Box::new(LruK::new(capacity, 2, (capacity / 128) as u64, capacity)),
            Policy::Arc => Box::new(ArcPolicy::new(capacity)),
            Policy::TwoQ => Box::new(TwoQ::new(capacity, 0.25, 0.5)),
            Policy::Sieve => Box::new(Sieve::new(capacity)),
            Policy::S3Fifo => Box::new(S3Fifo::new(capacity, 0.10, 0.90, 2)),
            Policy::Lirs => Box::new(Lirs::new(capacity, 1.0, 4).reserve(outside)),
            Policy::ClockPro => Box::new(ClockPro::new(capacity, 5.0)),
            Policy::WTinyLfu => Box::new(WTinyLfu::new(capacity, 1.0, true)),
            Policy::Adaptive => Box::new(Adaptive::reserving(capacity, outside)),
            Policy::Custom => return None,
        })
    }
}

impl core::fmt::Display for Policy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::str::FromStr for Policy {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        let l = s.to_ascii_lowercase();
        Policy::ALL
            .into_iter()
            .find(|p| p.as_str() == l || format!("{p:?}").to_ascii_lowercase() == l)
            .ok_or(crate::Error::InvalidConfig {
                what: "unknown eviction policy",
            })
    }
}
