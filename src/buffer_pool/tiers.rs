//! Tiers and scans.
//!
//! Every resident page is in one of three tiers:
//!
//! - **hot** and **warm**: held by the eviction policy, which says which
//!   (protected vs probationary: ARC's T2/T1, 2Q's Am/A1in, LRU-K's ≥ K / < K
//!   references, CLOCK's and SIEVE's referenced / unreferenced, S3-FIFO's
//!   main / small queue). Pages move between them as the policy promotes and
//!   demotes them.
//! - **cold**: the cooling stage (LeanStore, ICDE 2018). The pool keeps a
//!   FIFO of pages the policy has already chosen as victims but that are still
//!   resident; eviction always takes the oldest evictable cold page first, and
//!   a hit on a cold page rescues it (the hit clears the frame's `COLD` bit
//!   with one atomic; the access log hands the page back to the policy). The
//!   stage holds `cooling` × frames pages (2 % by default; 0 means a victim
//!   passes through it at once), which gives the background flusher time to
//!   clean pages before they are evicted. LeanStore cools ~10 %; here a larger
//!   stage costs hit ratio (it is a FIFO with second chance carved out of the
//!   policy's share: −0.3 to −0.5 points at 10 % on Zipf 0.9, ≤ 0.1 at 2 %). Frames of scan rings count as cold.
//!
//! A **scan** ([`Scan`]) reads pages through a small ring of frames of its
//! own (PostgreSQL's buffer access strategy, 256 KiB by default): a page a
//! scan loads is not given to the policy, and once the ring is full the scan
//! reuses its oldest frame, so a sequential scan of any length displaces at
//! most a ring's worth of the pool. A page the scan finds resident is an
//! ordinary hit. A ring frame that a normal access used meanwhile is handed to
//! the policy instead of being reused; when the scan ends, its frames go to
//! the front of the cooling stage.

use std::collections::VecDeque;

use crate::error::Result;

use super::BufferPool;
use super::PageId;
use super::guard::ReadGuard;
use super::pool::{Loc, Mode, RingState};

/// A sequential scan with its own ring of frames; see the module docs.
pub struct Scan<'a> {
    pool: &'a BufferPool,
    ring: RingState,
}

impl<'a> Scan<'a> {
    pub(crate) fn new(pool: &'a BufferPool, pages: usize) -> Self {
        let id = {
            let mut g = pool.shared.lock_inner();
            let id = g.next_ring;
            g.next_ring = g.next_ring.wrapping_add(1).max(1);
            id
        };
        let cap = pages.clamp(1, (pool.frames() / 2).max(1));
        Self {
            pool,
            ring: RingState {
                id,
                cap,
                frames: VecDeque::with_capacity(cap),
            },
        }
    }

    /// Pins page `id` for reading, loading it into the scan's ring on a miss.
    pub fn fetch_read(&mut self, id: PageId) -> Result<ReadGuard<'a>> {
        let s = &self.pool.shared;
        let f = s.acquire(id, Mode::Read, Some(&mut self.ring))?;
        Ok(ReadGuard::new(s, f, id))
    }

    /// Frames in the ring now.
    pub fn ring_len(&self) -> usize {
        self.ring.frames.len()
    }

    /// The ring's size, frames.
    pub fn ring_capacity(&self) -> usize {
        self.ring.cap
    }
}

impl Drop for Scan<'_> {
    fn drop(&mut self) {
        let s = &self.pool.shared;
        let mut g = s.lock_inner();
        // Newest first onto the front, so the oldest ring page is evicted first.
        while let Some(f) = self.ring.frames.pop_back() {
            if g.loc[f as usize] == Loc::Ring(self.ring.id) {
                s.release_ring_frame(&mut g, f);
            }
        }
    }
}

impl core::fmt::Debug for Scan<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Scan")
            .field("ring", &self.ring.id)
            .field("frames", &self.ring.frames.len())
            .field("capacity", &self.ring.cap)
            .finish()
    }
}
