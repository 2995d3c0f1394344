//! Observability: a page's tier and the pool's statistics.

use std::sync::Arc;

use super::{Loc, Shared, get};
use crate::buffer_pool::PageId;
use crate::buffer_pool::batch;
use crate::buffer_pool::frame::{DIRTY, WRITE, pins};
use crate::buffer_pool::policy::Tier;
use crate::buffer_pool::stats::{BufferPoolStats, TierStats};

impl Shared {
    pub(crate) fn tier_of(self: &Arc<Self>, id: PageId) -> Option<Tier> {
        let mut g = self.lock_inner();
        batch::drain(self, &mut g);
        let f = self.table.get(id)?;
        match g.loc[f as usize] {
            Loc::Policy => Some(g.policy.tier(f)),
            Loc::Cooling | Loc::Ring(_) => Some(Tier::Cold),
            Loc::Free | Loc::Loading => None,
        }
    }

    pub(crate) fn stats(self: &Arc<Self>) -> BufferPoolStats {
        // Other threads' logs reach the counters at their next hit after this.
        batch::bump_epoch(self);
        let mut g = self.lock_inner();
        batch::drain(self, &mut g);
        let mut resident = [0usize; 3];
        let (mut free, mut pinned, mut dirty, mut ring) = (0, 0, 0, 0);
        for (f, loc) in g.loc.iter().enumerate() {
            match *loc {
                Loc::Policy => resident[g.policy.tier(f as u32) as usize] += 1,
                Loc::Cooling => resident[Tier::Cold as usize] += 1,
                Loc::Ring(_) => {
                    resident[Tier::Cold as usize] += 1;
                    ring += 1;
                }
                Loc::Free => free += 1,
                Loc::Loading => {}
            }
            let s = self.frames[f].load();
            if pins(s) > 0 || s & WRITE != 0 {
                pinned += 1;
            }
            if s & DIRTY != 0 {
                dirty += 1;
            }
        }
        let misses = get(&self.c.misses);
        let total = g.hits + misses;
        let pstats = g.policy.stats();
        let tier = |t: Tier| TierStats {
            resident: resident[t as usize],
            hits: g.tier_hits[t as usize],
            entered: g.tier_entered[t as usize]
                + if t == Tier::Hot { pstats.promotions } else { 0 },
        };
        BufferPoolStats {
            policy: self.kind,
            frames: self.nframes(),
            page_size: self.page_size,
            hits: g.hits,
            misses,
            hit_ratio: if total == 0 {
                0.0
            } else {
                g.hits as f64 / total as f64
            },
            evictions: get(&self.c.evictions),
            dirty_writebacks: get(&self.c.writebacks),
            flushed_pages: get(&self.c.flushed),
            flusher_writes: get(&self.c.flusher_writes),
            disk_reads: get(&self.c.disk_reads),
            disk_writes: get(&self.c.disk_writes),
            resident: resident.iter().sum(),
            free,
            pinned,
            dirty,
            optimistic_reads: g.optimistic,
            optimistic_retries: get(&self.c.optimistic_retries),
            exhausted: get(&self.c.exhausted),
            corrupt_pages: get(&self.c.corrupt),
            released_bytes: get(&self.c.released),
            pressure_refusals: get(&self.c.pressure_refusals),
            ring_frames: ring,
            ring_reuses: get(&self.c.ring_reuses),
            rescued: g.rescued,
            cooling_target: g.cooling_target,
            hot: tier(Tier::Hot),
            warm: tier(Tier::Warm),
            cold: tier(Tier::Cold),
            policy_stats: pstats,
            huge_pages: self.mem.huge,
        }
    }
}
