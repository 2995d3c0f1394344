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

mod arc;
mod clock;
mod lists;
mod lru_k;
mod s3fifo;
mod sieve;
mod two_q;

pub use arc::ArcPolicy;
pub use clock::Clock;
pub use lru_k::LruK;
pub use s3fifo::S3Fifo;
pub use sieve::Sieve;
pub use two_q::TwoQ;

/// A frame index in the pool, `0..frames`.
pub type FrameId = u32;

/// The tier a resident page is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
pub enum Policy {
    /// CLOCK (second chance; PostgreSQL's clock sweep with a usage count of 1).
    Clock,
    /// LRU-K with K = 2, a correlated-reference period of `frames / 128`
    /// references and the history of up to `frames` evicted pages retained
    /// (O'Neil, O'Neil & Weikum, SIGMOD 1993).
    LruK,
    /// ARC (Megiddo & Modha, FAST 2003).
    #[default]
    Arc,
    /// Full 2Q with Kin = 25 %, Kout = 50 % (Johnson & Shasha, VLDB 1994).
    TwoQ,
    /// SIEVE (Zhang et al., NSDI 2024).
    Sieve,
    /// S3-FIFO (Yang et al., SOSP 2023).
    S3Fifo,
    /// A user-supplied policy (`BufferPoolBuilder::custom_policy`).
    Custom,
}

impl Policy {
    /// Every built-in policy.
    pub const ALL: [Policy; 6] = [
        Policy::Clock,
        Policy::LruK,
        Policy::Arc,
        Policy::TwoQ,
        Policy::Sieve,
        Policy::S3Fifo,
    ];

    /// Short name (`"clock"`, `"lru-k"`, `"arc"`, `"2q"`, `"sieve"`, `"s3-fifo"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Policy::Clock => "clock",
            Policy::LruK => "lru-k",
            Policy::Arc => "arc",
            Policy::TwoQ => "2q",
            Policy::Sieve => "sieve",
            Policy::S3Fifo => "s3-fifo",
            Policy::Custom => "custom",
        }
    }

    /// A policy instance with its default parameters for `capacity` frames
    /// (`None` for `Custom`).
    pub fn build(self, capacity: usize) -> Option<Box<dyn EvictionPolicy>> {
        Some(match self {
            Policy::Clock => Box::new(Clock::new(capacity, 1)),
            Policy::LruK => Box::new(LruK::new(capacity, 2, (capacity / 128) as u64, capacity)),
            Policy::Arc => Box::new(ArcPolicy::new(capacity)),
            Policy::TwoQ => Box::new(TwoQ::new(capacity, 0.25, 0.5)),
            Policy::Sieve => Box::new(Sieve::new(capacity)),
            Policy::S3Fifo => Box::new(S3Fifo::new(capacity, 0.10, 0.90, 2)),
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
