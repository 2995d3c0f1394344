//! The registry: every range of memory the allocator owns — live blocks and
//! cached ones — found by its start address (on free and realloc) or by any
//! range inside it (to validate `advise`).
//!
//! Two tables, both in memory mapped here (never the global allocator), grown
//! by doubling with `mremap`:
//! - `slots`: the [`Entry`] records, at stable indices (the cache links them by
//!   index), free slots chained through `next`;
//! - `keys`: `(start address, slot)` pairs sorted by address, searched by
//!   bisection. It changes only when a mapping is made, unmapped, split, merged
//!   or moved — never on a cache hit, which only flips an entry's state.
//!
//! Not synchronised: the owning allocator holds its lock around every call.

use core::mem::size_of;
use core::ptr;

use super::huge::{Backing, Want};
use crate::sys;

/// "No entry" in index links.
pub(crate) const NIL: u32 = u32::MAX;

/// What an entry's range is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// Handed out to a caller.
    Live,
    /// Freed, kept mapped in the cache.
    Cached,
    /// An unused slot.
    Free,
}

/// One range of memory owned by the allocator.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    /// Start (page aligned).
    pub(crate) addr: usize,
    /// Length in bytes (a page multiple; a huge-page multiple for hugetlb).
    pub(crate) len: usize,
    /// Bytes the caller asked for (live entries); 0 otherwise.
    pub(crate) size: usize,
    /// When it entered the cache (coarse clock, ns).
    pub(crate) stamp: u64,
    /// Cached and given back lazily (`MADV_FREE`) by the decay.
    pub(crate) lazy: bool,
    /// Cache bucket list links; `next` also chains free slots.
    pub(crate) prev: u32,
    pub(crate) next: u32,
    /// Cache age list links.
    pub(crate) older: u32,
    pub(crate) newer: u32,
    pub(crate) state: Use,
    pub(crate) backing: Backing,
    pub(crate) want: Want,
}

impl Entry {
    /// A live entry for a block just handed out.
    pub(crate) fn live(addr: usize, len: usize, size: usize, backing: Backing, want: Want) -> Self {
        Self {
            addr,
            len,
            size,
            stamp: 0,
            lazy: false,
            prev: NIL,
            next: NIL,
            older: NIL,
            newer: NIL,
            state: Use::Live,
            backing,
            want,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Key {
    addr: usize,
    idx: u32,
}

/// The two tables. Invariants: `keys[..key_len]` is sorted by `addr` and holds
/// exactly one key per non-free slot below `slot_top`, whose ranges are disjoint;
/// `slots[..slot_top]` are initialised.
#[derive(Debug)]
pub(crate) struct Registry {
    slots: *mut Entry,
    slot_bytes: usize,
    slot_top: usize,
    free: u32,
    keys: *mut Key,
    key_bytes: usize,
    key_len: usize,
}

// SAFETY: the tables are private mappings owned by this value, with no thread
// affinity; access is serialised by the owner's lock.
unsafe impl Send for Registry {}

/// Doubles the table at `p` (`bytes` long, 0 if none yet); `None` leaves it as is.
fn grow<T>(p: *mut T, bytes: usize) -> Option<(*mut T, usize)> {
    let new = if bytes == 0 {
        sys::page_size()
    } else {
        bytes.checked_mul(2)?
    };
    let q = if p.is_null() {
        sys::map(new)?
    } else {
        // SAFETY: `[p, p+bytes)` is exactly the one mapping made for this table
        // (by `map` or an earlier `remap`); on success the old address is dead and
        // the caller replaces it at once.
        unsafe { sys::remap(p.cast(), bytes, new, true)? }
    };
    Some((q.as_ptr().cast(), new))
}

impl Registry {
    /// Empty; maps nothing until the first insert.
    pub(crate) const fn new() -> Self {
        Self {
            slots: ptr::null_mut(),
            slot_bytes: 0,
            slot_top: 0,
            free: NIL,
            keys: ptr::null_mut(),
            key_bytes: 0,
            key_len: 0,
        }
    }

    /// Bytes mapped for the tables.
    pub(crate) fn metadata_bytes(&self) -> usize {
        self.slot_bytes + self.key_bytes
    }

    fn keys(&self) -> &[Key] {
        if self.key_len == 0 {
            return &[];
        }
        // SAFETY: `keys[..key_len]` are initialised (type invariant) and the table
        // is not resized while the borrow of `self` lives.
        unsafe { core::slice::from_raw_parts(self.keys, self.key_len) }
    }

    /// `Ok(i)` if `keys[i].addr == addr`, else `Err(where it would go)`.
    #[inline]
    fn position(&self, addr: usize) -> Result<usize, usize> {
        self.keys().binary_search_by(|k| k.addr.cmp(&addr))
    }

    /// The entry in slot `idx`.
    #[inline]
    pub(crate) fn get(&self, idx: u32) -> &Entry {
        debug_assert!((idx as usize) < self.slot_top);
        // SAFETY: callers pass indices returned by `insert`/`find` and not yet
        // removed, which are below `slot_top` and initialised.
        unsafe { &*self.slots.add(idx as usize) }
    }

    /// The entry in slot `idx`, mutably. Its `addr` must only change through
    /// [`rekey`](Self::rekey).
    #[inline]
    pub(crate) fn get_mut(&mut self, idx: u32) -> &mut Entry {
        debug_assert!((idx as usize) < self.slot_top);
        // SAFETY: as in `get`; `&mut self` makes the access exclusive.
        unsafe { &mut *self.slots.add(idx as usize) }
    }

    /// Makes room for one more entry and key; false if a table could not grow.
    fn reserve(&mut self) -> bool {
        if (self.key_len + 1) * size_of::<Key>() > self.key_bytes {
            match grow(self.keys, self.key_bytes) {
                Some((p, b)) => (self.keys, self.key_bytes) = (p, b),
                None => return false,
            }
        }
        if self.free == NIL && (self.slot_top + 1) * size_of::<Entry>() > self.slot_bytes {
            match grow(self.slots, self.slot_bytes) {
                Some((p, b)) => (self.slots, self.slot_bytes) = (p, b),
                None => return false,
            }
        }
        true
    }

    /// Registers `e` (whose range overlaps no registered one); its slot, or
    /// `None` if the tables could not grow (nothing changed then).
    pub(crate) fn insert(&mut self, e: Entry) -> Option<u32> {
        if self.slot_top >= NIL as usize || !self.reserve() {
            return None;
        }
        let idx = if self.free != NIL {
            let i = self.free;
            self.free = self.get(i).next;
            i
        } else {
            self.slot_top += 1;
            (self.slot_top - 1) as u32
        };
        // SAFETY: `idx` is below `slot_top` inside the slot table (reserved above).
        unsafe { self.slots.add(idx as usize).write(e) };
        let at = match self.position(e.addr) {
            Ok(i) | Err(i) => i,
        };
        // SAFETY: `reserve` made room for `key_len + 1` keys; the shift moves the
        // initialised tail `at..key_len` up by one inside the table.
        unsafe {
            let p = self.keys.add(at);
            ptr::copy(p, p.add(1), self.key_len - at);
            p.write(Key { addr: e.addr, idx });
        }
        self.key_len += 1;
        Some(idx)
    }

    fn remove_key(&mut self, addr: usize) {
        if let Ok(at) = self.position(addr) {
            // SAFETY: `at < key_len`; the shift moves the initialised tail down by one.
            unsafe {
                let p = self.keys.add(at);
                ptr::copy(p.add(1), p, self.key_len - at - 1);
            }
            self.key_len -= 1;
        }
    }

    /// Forgets entry `idx` and frees its slot.
    pub(crate) fn remove(&mut self, idx: u32) {
        let addr = self.get(idx).addr;
        self.remove_key(addr);
        let free = self.free;
        let e = self.get_mut(idx);
        e.state = Use::Free;
        e.next = free;
        self.free = idx;
    }

    /// Moves entry `idx` to start at `addr` (after `mremap` moved or a merge
    /// extended it downwards). Cannot fail: the key table keeps its length.
    pub(crate) fn rekey(&mut self, idx: u32, addr: usize) {
        let old = self.get(idx).addr;
        self.remove_key(old);
        self.get_mut(idx).addr = addr;
        let at = match self.position(addr) {
            Ok(i) | Err(i) => i,
        };
        // SAFETY: one key was just removed, so `key_len + 1` keys fit; the shift
        // moves the initialised tail up by one.
        unsafe {
            let p = self.keys.add(at);
            ptr::copy(p, p.add(1), self.key_len - at);
            p.write(Key { addr, idx });
        }
        self.key_len += 1;
    }

    /// The entry starting exactly at `addr`.
    #[inline]
    pub(crate) fn find(&self, addr: usize) -> Option<u32> {
        self.position(addr).ok().map(|i| self.keys()[i].idx)
    }

    /// The entry whose range contains all of `[addr, addr+len)` (`len ≥ 1`).
    pub(crate) fn find_containing(&self, addr: usize, len: usize) -> Option<u32> {
        let end = addr.checked_add(len.max(1))?;
        let at = match self.position(addr) {
            Ok(i) => i,
            Err(0) => return None,
            Err(i) => i - 1,
        };
        let idx = self.keys()[at].idx;
        let e = self.get(idx);
        (end <= e.addr + e.len).then_some(idx)
    }

    /// The entries just below and just above entry `idx` in address order.
    pub(crate) fn neighbours(&self, idx: u32) -> (Option<u32>, Option<u32>) {
        let keys = self.keys();
        match self.position(self.get(idx).addr) {
            Ok(at) => (
                at.checked_sub(1).map(|i| keys[i].idx),
                keys.get(at + 1).map(|k| k.idx),
            ),
            Err(_) => (None, None),
        }
    }

    /// Unmaps both tables (every entry is forgotten; the ranges they describe
    /// are not touched).
    ///
    /// # Safety
    /// No index or reference into the tables is used afterwards except through
    /// a fresh `insert`.
    pub(crate) unsafe fn release(&mut self) {
        // SAFETY: each table is one whole mapping of ours (caller: not used again).
        unsafe {
            if !self.slots.is_null() {
                sys::unmap(self.slots.cast(), self.slot_bytes);
            }
            if !self.keys.is_null() {
                sys::unmap(self.keys.cast(), self.key_bytes);
            }
        }
        *self = Self::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(addr: usize, len: usize) -> Entry {
        Entry::live(addr, len, len, Backing::Pages, Want::Any)
    }

    #[test]
    fn finds_by_start_and_by_contained_range_across_growth() {
        let mut r = Registry::new();
        let mut ids = [0u32; 500];
        // Insert in a scrambled order so keys must really be sorted.
        for k in 0..500usize {
            let i = (k * 7919) % 500;
            ids[i] = r.insert(e(0x10_0000 + i * 0x2_0000, 0x1_0000)).unwrap();
        }
        assert!(r.metadata_bytes() > sys::page_size());
        for (i, &id) in ids.iter().enumerate() {
            let a = 0x10_0000 + i * 0x2_0000;
            assert_eq!(r.find(a), Some(id));
            assert_eq!(r.find(a + 4096), None);
            assert_eq!(r.find_containing(a + 100, 0x1_0000 - 100), Some(id));
            assert_eq!(
                r.find_containing(a + 100, 0x1_0000),
                None,
                "crosses the end"
            );
            assert_eq!(r.find_containing(a + 0x1_0000, 1), None, "in the gap");
        }
        assert_eq!(r.find_containing(0x1000, 1), None, "below everything");
        for &id in &ids[..250] {
            r.remove(id);
        }
        assert_eq!(r.find(0x10_0000), None);
        let last = 0x10_0000 + 499 * 0x2_0000;
        assert_eq!(r.find(last), Some(ids[499]));
        r.rekey(ids[499], 0x1000);
        assert_eq!(r.find(last), None);
        assert_eq!(r.find_containing(0x1800, 16), Some(ids[499]));
        let (lo, hi) = r.neighbours(ids[300]);
        assert_eq!((lo, hi), (Some(ids[299]), Some(ids[301])));
        // Freed slots are reused.
        let again = r.insert(e(0x5000_0000, 4096)).unwrap();
        assert!(ids[..250].contains(&again));
        // SAFETY: nothing is used afterwards.
        unsafe { r.release() };
        assert_eq!(r.metadata_bytes(), 0);
    }
}
