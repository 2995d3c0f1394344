//! The stack depot: call stacks as raw return addresses, deduplicated by
//! hash into a fixed table in memory of our own and named by a `u32` id.
//!
//! Lock-free: a stack's frames are written into an id of its own (taken with
//! one `fetch_add`, for new stacks only) *before* the id is published into a
//! hash slot with a release CAS; a lookup reads slots with acquire loads and
//! compares hash, length and frames. Frames of a published id are never
//! written again, so a known stack costs a hash and a few loads of lines no
//! thread writes.

use core::ptr;

use crate::debug::state::reserve;
use crate::sync::{AtomicPtr, AtomicU32, Ordering, UnsafeCell};

/// Frames kept per stack.
pub(crate) const MAX_FRAMES: usize = 24;
/// Distinct stacks (ids 1..CAPACITY; 0 is "no stack").
pub(crate) const CAPACITY: usize = 1 << 16;
const TABLE: usize = CAPACITY * 2; // hash slots (ids, 0 = empty)

/// One stack; written once, by the thread that reserved its id, before the
/// id is published.
struct Entry {
    hash: u64,
    len: usize,
    frames: [usize; MAX_FRAMES],
}

/// Lives in a zeroed reservation: every field is valid all-zero.
struct Depot {
    next: AtomicU32,
    slots: [AtomicU32; TABLE],
    entries: [UnsafeCell<Entry>; CAPACITY],
}

static DEPOT: AtomicPtr<Depot> = AtomicPtr::new(ptr::null_mut());

fn depot() -> Option<&'static Depot> {
    // Acquire: pairs with the publishing CAS, so the reservation is visible.
    let d = DEPOT.load(Ordering::Acquire);
    if !d.is_null() {
        // SAFETY: a published depot is never unmapped.
        return Some(unsafe { &*d });
    }
    create()
}

#[cold]
fn create() -> Option<&'static Depot> {
    let bytes = core::mem::size_of::<Depot>();
    let new = reserve(bytes)?.as_ptr().cast::<Depot>();
    // AcqRel: publish our zeroed reservation (a valid empty depot), or see the winner's.
    match DEPOT.compare_exchange(ptr::null_mut(), new, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: published now, never unmapped; all-zero is an empty depot.
        Ok(_) => Some(unsafe { &*new }),
        Err(winner) => {
            // SAFETY: our own reservation, never published.
            unsafe { crate::debug::state::unreserve(new.cast(), bytes) };
            // SAFETY: the winner's depot is published and never unmapped.
            Some(unsafe { &*winner })
        }
    }
}

#[inline]
fn hash(ips: &[usize]) -> u64 {
    let h = ips.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &ip| {
        (h ^ ip as u64).wrapping_mul(0x100_0000_01b3)
    });
    h ^ (h >> 29)
}

/// The id of the stack `ips` (interning it), or 0 if it is empty or the
/// depot is full.
pub(crate) fn intern(ips: &[usize]) -> u32 {
    if ips.is_empty() {
        return 0;
    }
    let Some(d) = depot() else { return 0 };
    let n = ips.len().min(MAX_FRAMES);
    let ips = &ips[..n];
    let h = hash(ips);
    let mut i = h as usize % TABLE;
    let mut mine = 0u32; // an id reserved and filled by us, not yet published
    for _ in 0..TABLE {
        // Acquire: the id's frames were written before its publishing CAS.
        let id = d.slots[i].load(Ordering::Acquire);
        let id = if id == 0 {
            if mine == 0 {
                mine = reserve_id(d, ips, h);
                if mine == 0 {
                    return 0; // full: stacks beyond the capacity are not kept
                }
            }
            // Release: publishes the frames written by `reserve_id`.
            match d.slots[i].compare_exchange(0, mine, Ordering::Release, Ordering::Acquire) {
                Ok(_) => return mine,
                Err(other) => other,
            }
        } else {
            id
        };
        if same(d, id, ips, h) {
            return id; // `mine`, if any, stays unused
        }
        i = (i + 1) % TABLE;
    }
    0
}

fn reserve_id(d: &Depot, ips: &[usize], h: u64) -> u32 {
    // Relaxed: only uniqueness matters; the frames are published by the slot CAS.
    let id = d.next.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
    if id as usize >= CAPACITY {
        return 0;
    }
    // SAFETY: `id` < CAPACITY was handed to us alone by the fetch_add, so no
    // other thread writes its entry, and none reads it before the slot CAS
    // (Release) publishes the id.
    d.entries[id as usize].with_mut(|e| unsafe {
        let e = &mut *e;
        e.frames[..ips.len()].copy_from_slice(ips);
        e.len = ips.len();
        e.hash = h;
    });
    id
}

fn same(d: &Depot, id: u32, ips: &[usize], h: u64) -> bool {
    let id = id as usize;
    // SAFETY: `id` was read from a slot with Acquire, so its entry was written
    // before and is never written again: reading it races with nothing.
    id < CAPACITY
        && d.entries[id].with_mut(|e| unsafe {
            let e = &*e;
            e.hash == h && e.len == ips.len() && e.frames[..ips.len()] == *ips
        })
}

/// The return addresses of stack `id`, innermost first (empty for 0).
pub(crate) fn frames(id: u32) -> Vec<usize> {
    let mut out = [0usize; MAX_FRAMES];
    let n = frames_into(id, &mut out);
    out[..n].to_vec()
}

/// Copies stack `id`'s frames into `out`; returns how many.
pub(crate) fn frames_into(id: u32, out: &mut [usize; MAX_FRAMES]) -> usize {
    let id = id as usize;
    if id == 0 || id >= CAPACITY {
        return 0;
    }
    // Acquire: pairs with the publishing CAS of DEPOT.
    let d = DEPOT.load(Ordering::Acquire);
    if d.is_null() {
        return 0;
    }
    // SAFETY: a published depot is never unmapped; an id reached the caller
    // through a record or report written after the id was published (a
    // happens-before chain through the lock or ring that carried it), and
    // published entries are never written again.
    let d = unsafe { &*d };
    // SAFETY: as above: a published entry, read-only from now on.
    d.entries[id].with_mut(|e| unsafe {
        let e = &*e;
        let n = e.len.min(MAX_FRAMES);
        out[..n].copy_from_slice(&e.frames[..n]);
        n
    })
}

/// One past the highest stack id handed out so far.
pub(crate) fn count() -> u32 {
    // Acquire: pairs with the publishing CAS of DEPOT.
    let d = DEPOT.load(Ordering::Acquire);
    if d.is_null() {
        return 1;
    }
    // SAFETY: a published depot is never unmapped.
    let n = unsafe { &*d }.next.load(Ordering::Relaxed);
    (n as usize + 1).min(CAPACITY) as u32
}
