//! The page table `PageId → frame`: open addressing with linear probing, one
//! `AtomicU64` per slot packing `(page + 1) << 24 | frame`.
//!
//! Readers take no lock and write nothing: a lookup is a hash and one or two
//! atomic loads. Writers (insert, remove) are serialised by the pool's lock.
//! Removal shifts later entries back (no tombstones), so a reader racing with
//! a writer may miss an entry that is being moved; that is harmless, because a
//! lookup is only a *hint*: the hit path pins the frame and then checks the
//! frame's own page id, and a miss falls to the slow path, which looks again
//! under the lock, where the table is exact.

use crate::sync::{AtomicU64, Ordering};

/// Bits of the frame index in a slot.
pub(crate) const FRAME_BITS: u32 = 24;
/// Largest number of frames a pool may have.
pub(crate) const MAX_FRAMES: usize = (1 << FRAME_BITS) - 1;
/// Largest page id the table (and so any pool) can hold: 2^40 − 2.
pub const MAX_PAGE_ID: u64 = (1 << (64 - FRAME_BITS)) - 2;
const FRAME_MASK: u64 = (1 << FRAME_BITS) - 1;
const EMPTY: u64 = 0;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct PageTable {
    slots: Box<[AtomicU64]>,
    mask: usize,
    shift: u32,
}

/// A page's key in a slot. Wrapping: lookups take any `u64` (the public
/// `fetch_read`, `read_optimistic`, `is_resident`, `tier_of`); an id above
/// `MAX_PAGE_ID` gives a key (≥ 2^40, or 0 = `EMPTY` for `u64::MAX`) that no
/// stored entry carries, so it is simply not found.
#[inline(always)]
fn key(page: u64) -> u64 {
    page.wrapping_add(1)
}

impl PageTable {
    /// A table for up to `frames` entries (plus a few in flight), at most half full.
    pub(crate) fn new(frames: usize) -> Self {
        let want = (frames.saturating_mul(2).saturating_add(64)).next_power_of_two();
        let slots: Box<[AtomicU64]> = (0..want).map(|_| AtomicU64::new(EMPTY)).collect();
        Self {
            mask: want - 1,
            shift: 64 - want.trailing_zeros(),
            slots,
        }
    }

    #[inline(always)]
    fn home(&self, page: u64) -> usize {
        // Fibonacci hashing: the high bits of a multiply spread sequential ids.
        (key(page).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline(always)]
    fn home_of_entry(&self, entry: u64) -> usize {
        ((entry >> FRAME_BITS).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    /// The frame holding `page`, if the table (as this reader sees it) has one.
    /// Lock-free; may miss an entry a writer is moving (see the module docs).
    #[inline(always)]
    pub(crate) fn get(&self, page: u64) -> Option<u32> {
        let k = key(page);
        let mut i = self.home(page);
        for _ in 0..self.slots.len() {
            // Acquire: pairs with the writer's Release store, so a frame index
            // read here was written before the entry was published.
            let e = self.slots[i].load(Ordering::Acquire);
            if e == EMPTY {
                return None;
            }
            if e >> FRAME_BITS == k {
                return Some((e & FRAME_MASK) as u32);
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    /// Inserts `page → frame` (or repoints an existing entry). Callers
    /// serialise writers (the pool's lock; a race would break the probing
    /// logic, never memory safety); `page ≤ MAX_PAGE_ID`, `frame ≤ MAX_FRAMES`.
    pub(crate) fn insert(&self, page: u64, frame: u32) {
        debug_assert!(page <= MAX_PAGE_ID && (frame as usize) <= MAX_FRAMES);
        let k = key(page);
        let entry = k << FRAME_BITS | u64::from(frame);
        let mut i = self.home(page);
        loop {
            // Relaxed: only writers (serialised by the caller's lock) change slots.
            let e = self.slots[i].load(Ordering::Relaxed);
            if e == EMPTY || e >> FRAME_BITS == k {
                // Release: see `get`.
                self.slots[i].store(entry, Ordering::Release);
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Removes `page`'s entry, returning its frame. Caller holds the writer lock.
    pub(crate) fn remove(&self, page: u64) -> Option<u32> {
        let k = key(page);
        let mut i = self.home(page);
        let frame;
        loop {
            // Relaxed: writers are serialised by the caller's lock.
            let e = self.slots[i].load(Ordering::Relaxed);
            if e == EMPTY {
                return None;
            }
            if e >> FRAME_BITS == k {
                frame = (e & FRAME_MASK) as u32;
                break;
            }
            i = (i + 1) & self.mask;
        }
        // Backward-shift deletion: move later entries of the run into the hole
        // when their home position allows it.
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            // Relaxed: as above.
            let e = self.slots[j].load(Ordering::Relaxed);
            if e == EMPTY {
                break;
            }
            let h = self.home_of_entry(e);
            // Can `e` (home h, now at j) move to `hole`? Only if h is not in (hole, j].
            let between = if hole <= j {
                hole < h && h <= j
            } else {
                hole < h || h <= j
            };
            if !between {
                // Release: see `get`.
                self.slots[hole].store(e, Ordering::Release);
                hole = j;
            }
        }
        // Release: see `get`.
        self.slots[hole].store(EMPTY, Ordering::Release);
        Some(frame)
    }
}

#[cfg(all(test, not(rustydb_loom)))]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn model_check_against_hashmap() {
        let t = PageTable::new(64);
        let mut m = HashMap::new();
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let page = x % 97;
            let frame = (x >> 32) as u32 % 1000;
            if x & (1 << 20) != 0 && m.len() < 64 {
                t.insert(page, frame);
                m.insert(page, frame);
            } else {
                assert_eq!(t.remove(page), m.remove(&page));
            }
            for p in 0..97 {
                assert_eq!(t.get(p), m.get(&p).copied(), "page {p}");
            }
        }
        assert_eq!(t.get(MAX_PAGE_ID), None);
        t.insert(MAX_PAGE_ID, MAX_FRAMES as u32);
        assert_eq!(t.get(MAX_PAGE_ID), Some(MAX_FRAMES as u32));
        // Ids past the table's range are never found (and never overflow).
        for p in [
            MAX_PAGE_ID + 1,
            MAX_PAGE_ID + 2,
            1 << 40,
            u64::MAX - 1,
            u64::MAX,
        ] {
            assert_eq!(t.get(p), None, "page {p}");
            assert_eq!(t.remove(p), None, "page {p}");
        }
    }
}
