//! `Map`: address → [`Record`], an open-addressing table (linear probing,
//! tombstones) in memory mapped by the debugger itself, never by the
//! allocator it tracks. It has no lock of its own: it lives inside a
//! [`crate::sync::Lock`] (one per thread slot, see `tracking.rs`), so "only
//! touched with the lock held" is the type's business.

use core::ptr;

use super::state::{reserve, unreserve};

/// What the debugger remembers of a live (or quarantined) block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Record {
    /// User address (0 = empty slot, 1 = tombstone).
    pub(crate) addr: usize,
    pub(crate) size: usize,
    /// Allocation sequence number (for marks).
    pub(crate) seq: u64,
    /// Monotonic time of the allocation, ns.
    pub(crate) time_ns: u64,
    pub(crate) alloc_stack: u32,
    pub(crate) free_stack: u32,
    pub(crate) thread: u32,
    pub(crate) component: u16,
    pub(crate) align_log: u8,
    /// The block's header flags.
    pub(crate) flags: u8,
    /// 0 live, 1 freed (in quarantine).
    pub(crate) freed: u8,
    /// For a sampled block: the mean sampling interval (bytes) it was taken at.
    pub(crate) rate: u32,
}

const EMPTY: usize = 0;
const TOMBSTONE: usize = 1;
const INITIAL: usize = 1024;

/// The table. Invariant: `slots` is null (and `cap` 0) or a mapping of `cap`
/// records, `cap` a power of two, with at least one empty slot.
pub(crate) struct Map {
    slots: *mut Record,
    cap: usize,
    len: usize,
    used: usize, // len + tombstones
}

// SAFETY: `Map` owns its mapping (no other reference to it exists); moving it
// to another thread moves that ownership.
unsafe impl Send for Map {}

#[inline]
fn hash(addr: usize) -> usize {
    // Fibonacci hashing of the address without its low (alignment) bits.
    ((addr >> 4) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) as usize >> 16
}

impl Map {
    pub(crate) const fn new() -> Self {
        Self {
            slots: ptr::null_mut(),
            cap: 0,
            len: 0,
            used: 0,
        }
    }

    /// Live records.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Inserts or replaces the record for `r.addr`. False if memory for the table
    /// was refused (the block is then simply untracked).
    pub(crate) fn insert(&mut self, r: Record) -> bool {
        if (self.used + 1) * 10 >= self.cap * 7 && !self.grow() {
            return false;
        }
        let (i, found) = self.probe(r.addr);
        // SAFETY: `probe` returns an index below `cap` into our mapping.
        let slot = unsafe { &mut *self.slots.add(i) };
        if !found {
            if slot.addr == EMPTY {
                self.used += 1;
            }
            self.len += 1;
        }
        *slot = r;
        true
    }

    /// The record for `addr`, if any.
    pub(crate) fn get(&self, addr: usize) -> Option<Record> {
        if self.cap == 0 {
            return None;
        }
        let (i, found) = self.probe(addr);
        // SAFETY: `probe` returns an index below `cap` into our mapping.
        found.then(|| unsafe { *self.slots.add(i) })
    }

    /// Applies `f` to the record for `addr` and stores the result, or removes
    /// the record when `f` returns `None`. Returns the record before `f`.
    pub(crate) fn update(
        &mut self,
        addr: usize,
        f: impl FnOnce(Record) -> Option<Record>,
    ) -> Option<Record> {
        if self.cap == 0 {
            return None;
        }
        let (i, found) = self.probe(addr);
        if !found {
            return None;
        }
        // SAFETY: `probe` returns an index below `cap` into our mapping.
        let slot = unsafe { &mut *self.slots.add(i) };
        let old = *slot;
        match f(old) {
            Some(new) => *slot = Record { addr, ..new },
            None => {
                slot.addr = TOMBSTONE;
                self.len -= 1;
            }
        }
        Some(old)
    }

    /// Removes the record for `addr`; whether there was one.
    pub(crate) fn remove(&mut self, addr: usize) -> bool {
        self.update(addr, |_| None).is_some()
    }

    /// Calls `f` on every record.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Record)) {
        for i in 0..self.cap {
            // SAFETY: slots[..cap] are initialised records of our mapping.
            let r = unsafe { &*self.slots.add(i) };
            if r.addr > TOMBSTONE {
                f(r);
            }
        }
    }

    /// Finds `addr`'s index or the index to insert it at.
    fn probe(&self, addr: usize) -> (usize, bool) {
        let mask = self.cap - 1;
        let mut i = hash(addr) & mask;
        let mut tomb = usize::MAX;
        loop {
            // SAFETY: `i` is masked below `cap`; the mapping holds `cap` records.
            let a = unsafe { (*self.slots.add(i)).addr };
            match a {
                EMPTY => return (if tomb == usize::MAX { i } else { tomb }, false),
                TOMBSTONE if tomb == usize::MAX => tomb = i,
                a if a == addr => return (i, true),
                _ => {}
            }
            i = (i + 1) & mask;
        }
    }

    /// Doubles the table (or creates it) and rehashes, dropping tombstones.
    #[cold]
    fn grow(&mut self) -> bool {
        let old_cap = self.cap;
        let new_cap = if old_cap == 0 {
            INITIAL
        } else if self.len * 2 < old_cap {
            old_cap // mostly tombstones: rehash at the same size
        } else {
            old_cap * 2
        };
        let bytes = new_cap * core::mem::size_of::<Record>();
        let Some(m) = reserve(bytes) else {
            return false;
        };
        let old = core::mem::replace(&mut self.slots, m.as_ptr().cast());
        self.cap = new_cap;
        self.len = 0;
        self.used = 0;
        for i in 0..old_cap {
            // SAFETY: the old mapping holds `old_cap` initialised records.
            let r = unsafe { *old.add(i) };
            if r.addr > TOMBSTONE {
                let (j, _) = self.probe(r.addr);
                // SAFETY: `j` < `cap`, inside the new mapping.
                unsafe { *self.slots.add(j) = r };
                self.len += 1;
                self.used += 1;
            }
        }
        if !old.is_null() {
            // SAFETY: the old mapping is ours, `old_cap` records long, and every
            // live record was copied out of it.
            unsafe { unreserve(old.cast(), old_cap * core::mem::size_of::<Record>()) };
        }
        true
    }
}
