//! The side table of live blocks, one per thread slot, updated in batches.
//!
//! A thread records its allocations and frees as *ops* in its slot's ring:
//! plain stores into memory no other thread writes, published by a release
//! store of `tail`. Whoever holds the slot's lock — the owner when the ring is
//! full, a reader building a report, another thread freeing one of the slot's
//! blocks — applies the published ops to the slot's [`Map`] (advancing
//! `head`). So the fast path writes no shared cache line and takes no lock,
//! and every reader still sees every op published before it looked.
//!
//! The ring is single-producer (the slot's owner; the hand-over of a slot
//! between threads is an acquire/release pair in `threads.rs`) and
//! single-consumer at a time (the lock holder). A block freed by a thread
//! other than its owner is removed eagerly, under the owner's lock, after
//! the owner's pending ops: so a remove never overtakes the insert it undoes,
//! and never outlives the block (its address may be reused at once).
//!
//! Each slot also has a small *delay* FIFO: below Full, freed tracked blocks
//! wait there (header marked freed) before reaching the inner allocator, so a
//! double free shortly after the first is still recognised by its header.

use super::reserved::Reserved;
use super::table::{Map, Record};
use super::threads::{MAX_SLOTS, SHARED, high};
use crate::sync::{AtomicU32, AtomicUsize, Lock, Ordering, RawLock, UnsafeCell};

/// Ops buffered per slot before the owner applies them.
const RING: usize = 64;
/// Blocks delayed per slot (below Full), and their byte bound.
pub(crate) const DELAY: usize = 64;
const DELAY_BYTES: usize = 256 << 10;

const OP_INSERT: u8 = 0;
const OP_REMOVE: u8 = 1;
const OP_FREED: u8 = 2;

#[derive(Clone, Copy, Default)]
struct Op {
    rec: Record,
    kind: u8,
}

/// A block held back from the inner allocator: its address, size and
/// alignment as allocated from it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Delayed {
    pub(crate) block: usize,
    pub(crate) size: usize,
    pub(crate) align: usize,
}

/// One slot. Every field is valid all-zero (the reservation it lives in
/// starts zeroed): an unlocked empty map, an empty ring, an empty FIFO.
struct SlotTrack {
    map: Lock<Map>,
    /// Ops consumed; written only with `map` locked.
    head: AtomicU32,
    /// Ops published; written only by the slot's owner.
    tail: AtomicU32,
    /// `ops[i % RING]` for `head <= i < tail` is published and read-only;
    /// the other entries belong to the owner (see module doc).
    ops: [UnsafeCell<Op>; RING],
    /// The delay FIFO (owner only; atomics so no access can race).
    delay: [[AtomicUsize; 3]; DELAY],
    delay_head: AtomicU32,
    delay_len: AtomicU32,
    delay_bytes: AtomicUsize,
}

// SAFETY: every field but `ops` is a lock or an atomic. `ops` is a
// single-producer ring (module doc): an entry outside [head, tail) is written
// only by the slot's owner thread, and one inside is only read, by the holder
// of `map`'s lock, after the Acquire load of `tail` that pairs with the
// owner's Release store publishing it; the owner reuses it only after the
// consumer's Release store of `head` moved past it (Acquire-loaded by the
// owner). So no entry is accessed by two threads without happens-before.
unsafe impl Sync for SlotTrack {}

/// The side tables of one `DebugAlloc`.
pub(crate) struct Tracker {
    slots: Reserved<SlotTrack, MAX_SLOTS>,
}

impl Tracker {
    pub(crate) fn new() -> Option<Self> {
        // SAFETY: every field of `SlotTrack` is valid all-zero (see the type).
        let slots = unsafe { Reserved::zeroed() }?;
        Some(Self { slots })
    }

    /// Slot `i` (< MAX_SLOTS: slot numbers come from `threads` or from a
    /// header written with one).
    #[inline(always)]
    fn slot(&self, i: usize) -> &SlotTrack {
        self.slots.at(i)
    }

    /// Records a new block allocated by the calling thread (slot `me`).
    #[inline]
    pub(crate) fn insert(&self, me: usize, rec: Record) {
        self.push(
            me,
            me,
            Op {
                rec,
                kind: OP_INSERT,
            },
        );
    }

    /// Forgets block `addr` of slot `owner`, freed by the calling thread (`me`).
    #[inline]
    pub(crate) fn remove(&self, me: usize, owner: usize, addr: usize) {
        let rec = Record {
            addr,
            ..Record::default()
        };
        self.push(
            me,
            owner,
            Op {
                rec,
                kind: OP_REMOVE,
            },
        );
    }

    /// Marks block `addr` of slot `owner` freed (it is in quarantine) with
    /// its free site.
    pub(crate) fn mark_freed(&self, me: usize, owner: usize, addr: usize, free_stack: u32) {
        let rec = Record {
            addr,
            free_stack,
            ..Record::default()
        };
        self.push(
            me,
            owner,
            Op {
                rec,
                kind: OP_FREED,
            },
        );
    }

    #[inline(always)]
    fn push(&self, me: usize, owner: usize, op: Op) {
        if me != owner || me == SHARED {
            return self.apply_now(owner, op);
        }
        let s = self.slot(me);
        // Relaxed: only this thread writes `tail`.
        let tail = s.tail.load(Ordering::Relaxed);
        // Acquire: the consumer is done with the entries below `head`.
        if tail.wrapping_sub(s.head.load(Ordering::Acquire)) as usize >= RING {
            self.flush(me);
        }
        // SAFETY: entry `tail % RING` is outside [head, tail) (the ring is not
        // full), so it belongs to the owner — this thread — and no consumer
        // reads it until the Release store below publishes it.
        s.ops[tail as usize % RING].with_mut(|p| unsafe { p.write(op) });
        // Release: publishes the entry to the consumer's Acquire load of `tail`.
        s.tail.store(tail.wrapping_add(1), Ordering::Release);
    }

    #[cold]
    #[inline(never)]
    fn apply_now(&self, owner: usize, op: Op) {
        let s = self.slot(owner);
        let mut map = s.map.lock();
        drain(s, &mut map);
        apply(&mut map, op);
    }

    /// Applies slot `i`'s published ops.
    #[cold]
    #[inline(never)]
    pub(crate) fn flush(&self, i: usize) {
        let s = self.slot(i);
        drain(s, &mut s.map.lock());
    }

    /// The record of block `addr` of slot `owner`.
    pub(crate) fn get(&self, owner: usize, addr: usize) -> Option<Record> {
        let s = self.slot(owner);
        let mut map = s.map.lock();
        drain(s, &mut map);
        map.get(addr)
    }

    /// The record of `addr` in any slot (for diagnosing a damaged header).
    pub(crate) fn find(&self, addr: usize) -> Option<(usize, Record)> {
        (0..high()).find_map(|i| self.get(i, addr).map(|r| (i, r)))
    }

    /// Calls `f` on every record, one slot locked at a time. `f` must not
    /// allocate through the tracked path (callers hold the reentrancy flag).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Record)) {
        for i in 0..high() {
            let s = self.slot(i);
            let mut map = s.map.lock();
            drain(s, &mut map);
            map.for_each(&mut f);
        }
    }

    /// Every slot's lock, for the fork handlers.
    pub(crate) fn each_lock(&self, f: &mut dyn FnMut(&RawLock)) {
        for i in 0..high() {
            f(self.slot(i).map.raw());
        }
    }

    /// Holds `d` back in slot `me`'s delay FIFO; returns the block that must
    /// now reach the inner allocator (the oldest, or `d` itself when there is
    /// no FIFO for the shared slot).
    #[inline]
    pub(crate) fn delay(&self, me: usize, d: Delayed) -> Option<Delayed> {
        if me == SHARED {
            return Some(d);
        }
        let s = self.slot(me);
        // Relaxed: the FIFO is only touched by the slot's owner (this thread).
        let len = s.delay_len.load(Ordering::Relaxed) as usize;
        let bytes = s.delay_bytes.load(Ordering::Relaxed);
        let head = s.delay_head.load(Ordering::Relaxed) as usize;
        let out = if len == DELAY || (len > 0 && bytes + d.size > DELAY_BYTES) {
            let e = &s.delay[head];
            let old = Delayed {
                block: e[0].load(Ordering::Relaxed),
                size: e[1].load(Ordering::Relaxed),
                align: e[2].load(Ordering::Relaxed),
            };
            s.delay_head
                .store(((head + 1) % DELAY) as u32, Ordering::Relaxed);
            s.delay_len.store((len - 1) as u32, Ordering::Relaxed);
            s.delay_bytes.store(bytes - old.size, Ordering::Relaxed);
            Some(old)
        } else {
            None
        };
        let len = s.delay_len.load(Ordering::Relaxed) as usize;
        let head = s.delay_head.load(Ordering::Relaxed) as usize;
        let e = &s.delay[(head + len) % DELAY];
        e[0].store(d.block, Ordering::Relaxed);
        e[1].store(d.size, Ordering::Relaxed);
        e[2].store(d.align, Ordering::Relaxed);
        s.delay_len.store(len as u32 + 1, Ordering::Relaxed);
        s.delay_bytes.store(
            s.delay_bytes.load(Ordering::Relaxed) + d.size,
            Ordering::Relaxed,
        );
        out
    }

    /// Takes the oldest block of slot `me`'s delay FIFO.
    pub(crate) fn undelay(&self, me: usize) -> Option<Delayed> {
        if me == SHARED {
            return None;
        }
        let s = self.slot(me);
        // Relaxed: owner only, as in `delay`.
        let len = s.delay_len.load(Ordering::Relaxed) as usize;
        if len == 0 {
            return None;
        }
        let head = s.delay_head.load(Ordering::Relaxed) as usize;
        let e = &s.delay[head];
        let d = Delayed {
            block: e[0].load(Ordering::Relaxed),
            size: e[1].load(Ordering::Relaxed),
            align: e[2].load(Ordering::Relaxed),
        };
        s.delay_head
            .store(((head + 1) % DELAY) as u32, Ordering::Relaxed);
        s.delay_len.store((len - 1) as u32, Ordering::Relaxed);
        s.delay_bytes.store(
            s.delay_bytes.load(Ordering::Relaxed) - d.size,
            Ordering::Relaxed,
        );
        Some(d)
    }
}

/// Applies slot `s`'s published ops to its map (the caller holds the lock,
/// which `map` proves).
fn drain(s: &SlotTrack, map: &mut Map) {
    // Acquire: pairs with the owner's Release store of `tail`.
    let tail = s.tail.load(Ordering::Acquire);
    // Relaxed: `head` is only written with the lock held, which we hold.
    let mut head = s.head.load(Ordering::Relaxed);
    while head != tail {
        // SAFETY: entries in [head, tail) are published (Acquire above) and
        // the owner does not write them until `head` passes them.
        let op = s.ops[head as usize % RING].with_mut(|p| unsafe { p.read() });
        apply(map, op);
        head = head.wrapping_add(1);
    }
    // Release: the owner may reuse the entries once it sees the new `head`.
    s.head.store(head, Ordering::Release);
}

fn apply(map: &mut Map, op: Op) {
    match op.kind {
        OP_INSERT => {
            map.insert(op.rec);
        }
        OP_REMOVE => {
            map.remove(op.rec.addr);
        }
        _ => {
            let fs = op.rec.free_stack;
            map.update(op.rec.addr, |r| {
                Some(Record {
                    freed: 1,
                    free_stack: fs,
                    ..r
                })
            });
        }
    }
}
