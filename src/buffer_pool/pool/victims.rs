//! Eviction: frames for new pages from the free list, a scan's ring or a
//! victim, which the policy hands over ahead of time through the cooling
//! stage (the cold tier); a hit there rescues the page.

use crate::error::{Error, Result};
use crate::sync::Ordering;

use super::{Inner, Loc, RingState, Shared, bump};
use crate::buffer_pool::PageId;
use crate::buffer_pool::frame::{BUSY, COLD, IO, PIN_MASK, REF, RING};
use crate::buffer_pool::policy::Tier;

impl Shared {
    /// A frame for a new page: the ring's next frame, a free frame, or a
    /// victim through the cold tier. The frame is returned owned (IO set),
    /// with the victim's page and state word if it held one.
    pub(super) fn take_frame(
        &self,
        g: &mut Inner,
        incoming: Option<PageId>,
        ring: Option<&mut RingState>,
    ) -> Result<(u32, Option<(PageId, u64)>)> {
        if let Some(r) = ring {
            if r.frames.len() >= r.cap
                && let Some(x) = self.ring_reuse(g, r)
            {
                return Ok(x);
            }
            let x = self.take_frame(g, incoming, None)?;
            r.frames.push_back(x.0);
            return Ok(x);
        }
        if let Some(f) = g.free.pop() {
            g.loc[f as usize] = Loc::Loading;
            self.frames[f as usize].begin_io_free();
            return Ok((f, None));
        }
        let mut refused = None;
        if !g.fresh.is_empty() {
            match self.pressure.as_ref().map(|p| p.admit(self.page_size)) {
                Some(Err(e)) => {
                    bump(&self.c.pressure_refusals);
                    refused = Some(e);
                }
                _ => {
                    let f = g.fresh.pop().unwrap_or(0);
                    g.loc[f as usize] = Loc::Loading;
                    self.frames[f as usize].begin_io_free();
                    return Ok((f, None));
                }
            }
        }
        match self.take_victim(g, incoming) {
            Some((f, s)) => {
                // Relaxed: the frame is owned (IO); its id was published before.
                let old = self.frames[f as usize].page.load(Ordering::Relaxed);
                g.loc[f as usize] = Loc::Loading;
                bump(&self.c.evictions);
                Ok((f, Some((old, s))))
            }
            None => {
                bump(&self.c.exhausted);
                Err(refused.unwrap_or(Error::PoolExhausted {
                    frames: self.nframes(),
                }))
            }
        }
    }

    /// The next frame of a full scan ring, if it can be reused.
    pub(super) fn ring_reuse(
        &self,
        g: &mut Inner,
        r: &mut RingState,
    ) -> Option<(u32, Option<(PageId, u64)>)> {
        while let Some(f) = r.frames.pop_front() {
            let i = f as usize;
            if g.loc[i] != Loc::Ring(r.id) {
                continue;
            }
            let fm = &self.frames[i];
            if let Some(s) = fm.try_begin_io(RING, REF) {
                g.loc[i] = Loc::Loading;
                bump(&self.c.ring_reuses);
                bump(&self.c.evictions);
                // Relaxed: the frame is owned (IO).
                let old = fm.page.load(Ordering::Relaxed);
                r.frames.push_back(f);
                return Some((f, Some((old, s))));
            }
            // Used by a normal access (REF) or pinned: the frame leaves the
            // ring for the pool, and the ring takes another frame.
            self.release_ring_frame(g, f);
            return None;
        }
        None
    }

    /// A ring frame goes back to the pool: to the policy if a normal access
    /// used it, else to the front of the cooling stage.
    pub(crate) fn release_ring_frame(&self, g: &mut Inner, f: u32) {
        let fm = &self.frames[f as usize];
        let s = fm.clear_bits(RING);
        // Relaxed: the id of a resident (non-IO) frame, read under the lock
        // that serialises every change of it.
        let page = fm.page.load(Ordering::Relaxed);
        if s & REF != 0 {
            fm.clear_bits(REF);
            g.policy.insert(f, page);
            g.loc[f as usize] = Loc::Policy;
            let t = g.policy.tier(f);
            g.tier_entered[t as usize] += 1;
        } else {
            self.push_cooling(g, f, true);
        }
    }

    pub(super) fn push_cooling(&self, g: &mut Inner, f: u32, front: bool) {
        let i = f as usize;
        g.cool_seq[i] = g.cool_seq[i].wrapping_add(1);
        if front {
            g.cooling.push_front((f, g.cool_seq[i]));
        } else {
            g.cooling.push_back((f, g.cool_seq[i]));
        }
        g.loc[i] = Loc::Cooling;
        self.frames[i].set_bits(COLD);
        g.tier_entered[Tier::Cold as usize] += 1;
    }

    /// A cooling frame was hit: back to the policy.
    pub(super) fn rescue(&self, g: &mut Inner, f: u32) {
        let fm = &self.frames[f as usize];
        fm.clear_bits(COLD);
        // Relaxed: see `release_ring_frame`.
        let page = fm.page.load(Ordering::Relaxed);
        g.policy.insert(f, page);
        g.loc[f as usize] = Loc::Policy;
        g.rescued += 1;
        let t = g.policy.tier(f);
        g.tier_entered[t as usize] += 1;
    }

    /// Takes the oldest evictable frame of the cooling stage, refilling the
    /// stage from the policy as needed. `None` if nothing is evictable.
    pub(super) fn take_victim(
        &self,
        g: &mut Inner,
        incoming: Option<PageId>,
    ) -> Option<(u32, u64)> {
        self.take_victim_where(g, incoming, 0)
    }

    pub(super) fn take_victim_where(
        &self,
        g: &mut Inner,
        incoming: Option<PageId>,
        forbid: u64,
    ) -> Option<(u32, u64)> {
        // Keep the stage full (`cooling_target` pages once this victim has
        // left): the policy hands over its victims ahead of time.
        let fill = if g.cooling_target == 0 {
            0
        } else {
            g.cooling_target + 1
        };
        while g.cooling.len() < fill {
            if !self.cool_one(g, None, forbid) {
                break;
            }
        }
        for _ in 0..64 {
            let n = g.cooling.len();
            for _ in 0..n {
                let Some((f, seq)) = g.cooling.pop_front() else {
                    break;
                };
                let i = f as usize;
                if g.loc[i] != Loc::Cooling || g.cool_seq[i] != seq {
                    continue;
                }
                let fm = &self.frames[i];
                if let Some(s) = fm.try_begin_io(COLD, forbid) {
                    return Some((f, s));
                }
                let s = fm.load();
                if s & (COLD | IO) == 0 {
                    // Hit while cooling; its log entry has not arrived yet.
                    self.rescue(g, f);
                } else {
                    g.cooling.push_back((f, seq));
                }
            }
            // Everything in the stage is pinned (or dirty, for shrink): bring
            // in one more candidate.
            let inc = if g.cooling_target == 0 {
                incoming
            } else {
                None
            };
            if !self.cool_one(g, inc, forbid) {
                return None;
            }
        }
        None
    }

    /// Moves the policy's next victim into the cooling stage.
    pub(super) fn cool_one(&self, g: &mut Inner, incoming: Option<PageId>, forbid: u64) -> bool {
        let frames = &self.frames;
        let mut evictable = |x: u32| frames[x as usize].load() & (BUSY | PIN_MASK | forbid) == 0;
        match g.policy.victim(incoming, &mut evictable) {
            Some(f) => {
                self.push_cooling(g, f, false);
                true
            }
            None => false,
        }
    }
}
