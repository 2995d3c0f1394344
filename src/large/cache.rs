//! The mapping cache's lists: freed blocks that stay mapped, so the next request
//! of a similar size is served without a system call or a page fault.
//!
//! Cached blocks are registry entries in the `Cached` state, linked by index into
//! - one list per **size bucket** (4 buckets per power of two of the length, from
//!   4 KiB), newest first, with a bitmap of non-empty buckets so a search jumps
//!   straight to the next bucket that has anything;
//! - one **age list** across all buckets (newest … oldest), for eviction and decay.
//!
//! The policy — bounds, splitting, merging, decay — lives in
//! [`state`](super::state); this file only keeps the lists straight.

use super::huge::Want;
use super::registry::{NIL, Registry, Use};

/// Number of size buckets (lengths up to 2^43 bytes get their own).
pub(crate) const BUCKETS: usize = 128;
/// Entries looked at per bucket before moving on.
const SCAN_PER_BUCKET: usize = 8;
/// Non-empty buckets looked at before giving up.
const SCAN_BUCKETS: usize = 4;

/// The bucket of a block of `len` bytes: 4 per power of two, from 4 KiB.
#[inline]
pub(crate) fn bucket_of(len: usize) -> usize {
    let len = len.max(4096);
    let log = (usize::BITS - 1 - len.leading_zeros()) as usize; // ≥ 12
    let sub = (len >> (log - 2)) & 3;
    ((log - 12) * 4 + sub).min(BUCKETS - 1)
}

/// The lists. Invariants: every entry reachable from `heads[b]` is `Cached`
/// with `bucket_of(len) == b`, and is on the age list; `nonempty` bit `b` is set
/// iff `heads[b] != NIL`; `count`/`bytes` sum the entries on the lists.
#[derive(Debug)]
pub(crate) struct Cache {
    heads: [u32; BUCKETS],
    nonempty: u128,
    newest: u32,
    oldest: u32,
    /// Blocks on the lists.
    pub(crate) count: usize,
    /// Bytes of those blocks.
    pub(crate) bytes: usize,
}

impl Cache {
    /// Empty lists.
    pub(crate) const fn new() -> Self {
        Self {
            heads: [NIL; BUCKETS],
            nonempty: 0,
            newest: NIL,
            oldest: NIL,
            count: 0,
            bytes: 0,
        }
    }

    /// The block cached longest ago, if any.
    #[inline]
    pub(crate) fn oldest(&self) -> Option<u32> {
        (self.oldest != NIL).then_some(self.oldest)
    }

    /// Links entry `idx` (not on the lists) as the newest of its bucket and of
    /// the cache, in state `Cached`, stamped `now`.
    pub(crate) fn push(&mut self, reg: &mut Registry, idx: u32, now: u64) {
        let b = bucket_of(reg.get(idx).len);
        let (head, newest) = (self.heads[b], self.newest);
        let e = reg.get_mut(idx);
        e.state = Use::Cached;
        e.size = 0;
        e.stamp = now;
        e.lazy = false;
        e.prev = NIL;
        e.next = head;
        e.newer = NIL;
        e.older = newest;
        let len = e.len;
        if head != NIL {
            reg.get_mut(head).prev = idx;
        }
        if newest != NIL {
            reg.get_mut(newest).newer = idx;
        } else {
            self.oldest = idx;
        }
        self.heads[b] = idx;
        self.nonempty |= 1 << b;
        self.newest = idx;
        self.count += 1;
        self.bytes += len;
    }

    /// Unlinks cached entry `idx` from both lists. Its state stays `Cached`
    /// until the caller gives it a new one.
    pub(crate) fn unlink(&mut self, reg: &mut Registry, idx: u32) {
        let e = *reg.get(idx);
        debug_assert_eq!(e.state, Use::Cached);
        let b = bucket_of(e.len);
        if e.prev != NIL {
            reg.get_mut(e.prev).next = e.next;
        } else {
            self.heads[b] = e.next;
            if e.next == NIL {
                self.nonempty &= !(1 << b);
            }
        }
        if e.next != NIL {
            reg.get_mut(e.next).prev = e.prev;
        }
        if e.older != NIL {
            reg.get_mut(e.older).newer = e.newer;
        } else {
            self.oldest = e.newer;
        }
        if e.newer != NIL {
            reg.get_mut(e.newer).older = e.older;
        } else {
            self.newest = e.older;
        }
        self.count -= 1;
        self.bytes -= e.len;
    }

    /// A cached block for a request of `len` bytes aligned to `align` with
    /// `want`: at least `len` long, aligned, of the same class; hugetlb blocks
    /// only when they are the request rounded to their page size. Looks in the
    /// request's bucket and then the next non-empty ones, smallest first, taking
    /// the smallest fit of the first bucket that has one (an exact fit at once):
    /// close to best fit, with a bounded number of entries looked at.
    #[inline]
    pub(crate) fn find_fit(
        &self,
        reg: &Registry,
        len: usize,
        align: usize,
        want: Want,
    ) -> Option<u32> {
        let mut mask = self.nonempty & (!0u128 << bucket_of(len));
        let mut buckets = 0;
        while mask != 0 && buckets < SCAN_BUCKETS {
            let b = mask.trailing_zeros() as usize;
            let (mut i, mut n) = (self.heads[b], 0);
            let mut best: Option<(u32, usize)> = None;
            while i != NIL && n < SCAN_PER_BUCKET {
                let e = reg.get(i);
                let fits = e.len >= len
                    && e.addr & (align - 1) == 0
                    && e.want == want
                    && (!e.backing.is_hugetlb() || e.len - len < e.backing.page_bytes());
                if fits {
                    if e.len == len {
                        return Some(i);
                    }
                    if best.is_none_or(|(_, l)| e.len < l) {
                        best = Some((i, e.len));
                    }
                }
                i = e.next;
                n += 1;
            }
            if let Some((i, _)) = best {
                return Some(i);
            }
            mask &= mask - 1;
            buckets += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::large::huge::Backing;
    use crate::large::registry::Entry;

    #[test]
    fn buckets_are_monotonic_with_four_per_power_of_two() {
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(4096), 0);
        assert_eq!(bucket_of(8192), 4);
        assert_eq!(bucket_of(256 << 10), 24);
        assert_eq!(bucket_of(320 << 10), 25);
        assert_eq!(bucket_of(usize::MAX), BUCKETS - 1);
        let mut last = 0;
        for pages in 1..5000usize {
            let b = bucket_of(pages * 4096);
            assert!(b >= last);
            last = b;
        }
    }

    #[test]
    fn lists_keep_age_order_and_find_the_smallest_fit() {
        let mut reg = Registry::new();
        let mut c = Cache::new();
        let sizes = [256usize << 10, 1 << 20, 300 << 10, 4 << 20];
        let mut ids = [0u32; 4];
        for (k, &len) in sizes.iter().enumerate() {
            let addr = 0x4010_0000 + k * (8 << 20);
            ids[k] = reg
                .insert(Entry::live(addr, len, len, Backing::Pages, Want::Any))
                .unwrap();
            c.push(&mut reg, ids[k], k as u64);
        }
        assert_eq!((c.count, c.bytes), (4, sizes.iter().sum()));
        assert_eq!(c.oldest(), Some(ids[0]));
        // 256 KiB and 300 KiB share a bucket: the exact fit wins over the newer one.
        assert_eq!(c.find_fit(&reg, 256 << 10, 4096, Want::Any), Some(ids[0]));
        assert_eq!(c.find_fit(&reg, 260 << 10, 4096, Want::Any), Some(ids[2]));
        assert_eq!(c.find_fit(&reg, 400 << 10, 4096, Want::Any), Some(ids[1]));
        assert_eq!(c.find_fit(&reg, 2 << 20, 4096, Want::Any), Some(ids[3]));
        assert_eq!(c.find_fit(&reg, 8 << 20, 4096, Want::Any), None);
        assert_eq!(
            c.find_fit(&reg, 256 << 10, 1 << 30, Want::Any),
            None,
            "alignment is honoured"
        );
        c.unlink(&mut reg, ids[0]);
        assert_eq!(c.oldest(), Some(ids[1]));
        assert_eq!(c.find_fit(&reg, 256 << 10, 4096, Want::Any), Some(ids[2]));
        for &i in &ids[1..] {
            c.unlink(&mut reg, i);
        }
        assert_eq!((c.count, c.bytes, c.oldest()), (0, 0, None));
        assert_eq!(c.find_fit(&reg, 4096, 4096, Want::Any), None);
        // SAFETY: nothing is used afterwards.
        unsafe { reg.release() };
    }
}
