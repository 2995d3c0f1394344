//! Shadow caches: two policies simulated on page ids alone (no frames, no
//! data), side by side, to learn what each one's hit ratio would be if it ran
//! the pool.
//!
//! Fed a *sample* of the requests — the pages whose hash falls in a fixed
//! `1/2^k` of the hash space, at `1/2^k` of the pool's capacity — they
//! predict the full cache's hit ratios (Waldspurger et al., "Cache Modeling
//! and Optimization using Miniature Simulations", USENIX ATC 2017), at a
//! fraction of the cost. One map serves both: a hit in both costs one
//! lookup.

use super::EvictionPolicy;
use super::lists::{NIL, PageMap};

/// Two simulated caches of the same size; see the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct Shadows<A, B> {
    a: Side<A>,
    b: Side<B>,
    /// Page → its shadow frame in A and in B (`NIL`: not resident there).
    frames: PageMap<[u32; 2]>,
}

#[derive(Debug, Clone)]
struct Side<P> {
    policy: P,
    page_of: Vec<u64>,
    free: Vec<u32>,
}

impl<P: EvictionPolicy> Side<P> {
    fn new(policy: P) -> Self {
        let n = policy.capacity();
        Self {
            policy,
            page_of: vec![u64::MAX; n],
            free: (0..n as u32).rev().collect(),
        }
    }

    /// A frame for `page`, and the page evicted to free it (if any).
    fn take(&mut self, page: u64) -> Option<(u32, Option<u64>)> {
        if let Some(f) = self.free.pop() {
            return Some((f, None));
        }
        let v = self.policy.victim(Some(page), &mut |_| true)?;
        Some((v, Some(self.page_of[v as usize])))
    }

    fn put(&mut self, f: u32, page: u64) {
        self.page_of[f as usize] = page;
        self.policy.insert(f, page);
    }
}

impl<A: EvictionPolicy, B: EvictionPolicy> Shadows<A, B> {
    /// Shadows of `a` and `b` (their capacities are the shadow sizes).
    pub(crate) fn new(a: A, b: B) -> Self {
        let mut frames = PageMap::default();
        frames.reserve(a.capacity() + b.capacity());
        Self {
            a: Side::new(a),
            b: Side::new(b),
            frames,
        }
    }

    /// One request for `page`; returns whether A and B hit.
    #[inline]
    pub(crate) fn request(&mut self, page: u64) -> (bool, bool) {
        if let Some(&[fa, fb]) = self.frames.get(&page)
            && fa != NIL
            && fb != NIL
        {
            self.a.policy.access(fa, page);
            self.b.policy.access(fb, page);
            return (true, true);
        }
        self.slow(page)
    }

    #[cold]
    #[inline(never)]
    fn slow(&mut self, page: u64) -> (bool, bool) {
        let [mut fa, mut fb] = self.frames.get(&page).copied().unwrap_or([NIL; 2]);
        let hit = (fa != NIL, fb != NIL);
        if hit.0 {
            self.a.policy.access(fa, page);
        } else if let Some((f, out)) = self.a.take(page) {
            if let Some(o) = out {
                self.forget(o, 0);
            }
            self.a.put(f, page);
            fa = f;
        }
        if hit.1 {
            self.b.policy.access(fb, page);
        } else if let Some((f, out)) = self.b.take(page) {
            if let Some(o) = out {
                self.forget(o, 1);
            }
            self.b.put(f, page);
            fb = f;
        }
        self.frames.insert(page, [fa, fb]);
        hit
    }

    /// Side `side` evicted `page`.
    fn forget(&mut self, page: u64, side: usize) {
        if let Some(e) = self.frames.get_mut(&page) {
            e[side] = NIL;
            if *e == [NIL; 2] {
                self.frames.remove(&page);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Clock, Lru};
    use super::*;

    #[test]
    fn each_shadow_hits_what_its_policy_hits() {
        let mut s = Shadows::new(Lru::new(3), Clock::new(3, 1));
        let hits: Vec<(bool, bool)> = [1u64, 2, 3, 1, 4, 2, 1, 3]
            .iter()
            .map(|&p| s.request(p))
            .collect();
        // LRU: 1 2 3 | 1 hit | 4 evicts 2 | 2 evicts 3 | 1 hit | 3 evicts 4.
        // CLOCK (second chance, new pages unreferenced): 1 2 3 | 1 hit (bit)
        // | 4: 1 gets a second chance, 2 goes | 2: 3 goes | 1 hit (bit) |
        // 3: 1 gets another chance, 4 goes.
        let lru: Vec<bool> = hits.iter().map(|h| h.0).collect();
        let clock: Vec<bool> = hits.iter().map(|h| h.1).collect();
        assert_eq!(lru, [false, false, false, true, false, false, true, false]);
        assert_eq!(
            clock,
            [false, false, false, true, false, false, true, false]
        );
        assert!(s.frames.len() <= 6);
    }
}
