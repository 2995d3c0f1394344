//! The side table of live allocations: address → [`Record`], sharded by
//! address hash, each shard an open-addressing table in memory mapped by the
//! debugger itself (never by the allocator it tracks), growing by rehash.

use core::ptr;

use crate::sync::RawLock;
use crate::sync::UnsafeCell;
use crate::sys;

/// What the debugger remembers of a live (or quarantined) block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

const EMPTY: usize = 0;
const TOMBSTONE: usize = 1;
const SHARDS: usize = 64;
const INITIAL: usize = 1024;

struct Shard {
    lock: RawLock,
    inner: UnsafeCell<ShardInner>,
}

struct ShardInner {
    slots: *mut Record,
    cap: usize,
    len: usize,
    used: usize, // len + tombstones
}

/// The sharded table.
pub(crate) struct Table {
    shards: [Shard; SHARDS],
}

// SAFETY: each shard's slots are accessed only with its lock held.
unsafe impl Sync for Table {}

#[inline]
fn hash(addr: usize) -> usize {
    // Fibonacci hashing of the address without its low (alignment) bits.
    ((addr >> 4) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) as usize
}

impl Table {
    pub(crate) const fn new() -> Self {
        Self {
            shards: [const {
                Shard {
                    lock: RawLock::new(),
                    inner: UnsafeCell::new(ShardInner {
                        slots: ptr::null_mut(),
                        cap: 0,
                        len: 0,
                        used: 0,
                    }),
                }
            }; SHARDS],
        }
    }

    fn shard(&self, addr: usize) -> &Shard {
        &self.shards[(hash(addr) >> 58) % SHARDS]
    }

    /// Inserts or replaces the record for `r.addr`. False if memory for the table
    /// was refused (the block is then simply untracked).
    pub(crate) fn insert(&self, r: Record) -> bool {
        let s = self.shard(r.addr);
        let _g = s.lock.guard();
        // SAFETY: shard lock held.
        s.inner.with_mut(|inner| unsafe {
            if ((*inner).used + 1) * 10 >= (*inner).cap * 7 && !grow(inner) {
                return false;
            }
            let (slot, found) = probe(inner, r.addr);
            if !found {
                if (*slot).addr == EMPTY {
                    (*inner).used += 1;
                }
                (*inner).len += 1;
            }
            *slot = r;
            true
        })
    }

    /// The record for `addr`, if any.
    pub(crate) fn get(&self, addr: usize) -> Option<Record> {
        let s = self.shard(addr);
        let _g = s.lock.guard();
        // SAFETY: shard lock held.
        s.inner.with_mut(|inner| unsafe {
            if (*inner).cap == 0 {
                return None;
            }
            let (slot, found) = probe(inner, addr);
            found.then(|| *slot)
        })
    }

    /// Applies `f` to the record for `addr` and stores the result, or removes
    /// the record when `f` returns `None`. Returns the record before `f`.
    pub(crate) fn update(
        &self,
        addr: usize,
        f: impl FnOnce(Record) -> Option<Record>,
    ) -> Option<Record> {
        let s = self.shard(addr);
        let _g = s.lock.guard();
        // SAFETY: shard lock held.
        s.inner.with_mut(|inner| unsafe {
            if (*inner).cap == 0 {
                return None;
            }
            let (slot, found) = probe(inner, addr);
            if !found {
                return None;
            }
            let old = *slot;
            match f(old) {
                Some(new) => *slot = new,
                None => {
                    (*slot).addr = TOMBSTONE;
                    (*inner).len -= 1;
                }
            }
            Some(old)
        })
    }

    /// Calls `f` on every record (one shard locked at a time). `f` must not
    /// allocate through the tracked allocator's tracked path (callers hold the
    /// reentrancy guard).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Record)) {
        for s in &self.shards {
            let _g = s.lock.guard();
            // SAFETY: shard lock held; slots[..cap] are initialised records.
            s.inner.with_mut(|inner| unsafe {
                for i in 0..(*inner).cap {
                    let r = &*(*inner).slots.add(i);
                    if r.addr > TOMBSTONE {
                        f(r);
                    }
                }
            });
        }
    }
}

/// Finds `addr`'s slot or the slot to insert it at.
///
/// # Safety
/// Shard lock held; `cap > 0` and the table has an empty slot.
unsafe fn probe(inner: *mut ShardInner, addr: usize) -> (*mut Record, bool) {
    // SAFETY: lock held (caller); indices are masked to `cap` (a power of two).
    unsafe {
        let mask = (*inner).cap - 1;
        let mut i = hash(addr) & mask;
        let mut tomb: *mut Record = ptr::null_mut();
        loop {
            let slot = (*inner).slots.add(i);
            match (*slot).addr {
                EMPTY => return (if tomb.is_null() { slot } else { tomb }, false),
                TOMBSTONE if tomb.is_null() => tomb = slot,
                a if a == addr => return (slot, true),
                _ => {}
            }
            i = (i + 1) & mask;
        }
    }
}

/// Doubles the shard (or creates it) and rehashes, dropping tombstones.
///
/// # Safety
/// Shard lock held.
unsafe fn grow(inner: *mut ShardInner) -> bool {
    // SAFETY: lock held (caller); the new mapping is ours; the old one is
    // unmapped only after every live record was copied.
    unsafe {
        let old_cap = (*inner).cap;
        let new_cap = if old_cap == 0 {
            INITIAL
        } else if (*inner).len * 2 < old_cap {
            old_cap // mostly tombstones: rehash in place size
        } else {
            old_cap * 2
        };
        let bytes = new_cap * core::mem::size_of::<Record>();
        let Some(m) = sys::map(bytes.next_multiple_of(sys::page_size())) else {
            return false;
        };
        let slots = m.as_ptr().cast::<Record>();
        let old = (*inner).slots;
        (*inner).slots = slots;
        (*inner).cap = new_cap;
        (*inner).len = 0;
        (*inner).used = 0;
        for i in 0..old_cap {
            let r = *old.add(i);
            if r.addr > TOMBSTONE {
                let (slot, _) = probe(inner, r.addr);
                *slot = r;
                (*inner).len += 1;
                (*inner).used += 1;
            }
        }
        if !old.is_null() {
            let old_bytes = old_cap * core::mem::size_of::<Record>();
            sys::unmap(old.cast(), old_bytes.next_multiple_of(sys::page_size()));
        }
        true
    }
}
