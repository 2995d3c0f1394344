//! Idle threads' caches: the background purger takes the magazines of a thread
//! that took no slow path for a whole purger tick ([`take_from_idle`]), and the
//! thread gives their rounds back to the slabs on its next call
//! ([`reclaim`]) — its loaded slots now hold the sentinel, so that call takes
//! a slow path.
//!
//! The purger never reads or writes a taken magazine's rounds or count: the
//! owner may still be finishing one fast-path push or pop on it (it loaded the
//! slot just before the swap). It only links the magazine into the owner's
//! `stolen` list through `next`, a field no fast path touches; the owner, which
//! finished that push or pop before its next call, flushes the list.

use core::ptr;

use super::cache_registry::for_each_cache;
use super::heap::HEAP;
use super::thread_cache::{ThreadCache, sentinel};
use crate::slab::magazine::Magazine;
use crate::slab::segment::SegmentHeader;
use crate::sync::Ordering;

/// Takes the magazines of every registered thread whose latest slow path was
/// before epoch `epoch - 1` (idle for a whole tick). Returns the rounds taken.
pub(crate) fn take_from_idle(epoch: u64) -> usize {
    let mut taken = 0;
    for_each_cache(|tc| {
        // Relaxed: a hint (a thread wrongly seen idle pays one slow path).
        if tc.active_epoch.load(Ordering::Relaxed) + 2 > epoch {
            return;
        }
        for cc in &tc.classes {
            for slot in [&cc.loaded, &cc.previous, &cc.remote] {
                // Relaxed: a cheap look first; most slots of a thread are empty.
                if slot.load(Ordering::Relaxed) == sentinel() {
                    continue;
                }
                // Acquire: pairs with the owner's Release store of the slot, so
                // its writes to the magazine's `next` happen before ours.
                let m = slot.swap(sentinel(), Ordering::Acquire);
                if m == sentinel() {
                    continue;
                }
                // SAFETY: `m` is a magazine of the pool (never unmapped); `len`
                // is an atomic read, possibly stale by one in-flight push or pop.
                let n = unsafe { (*m).len() };
                // Relaxed: a statistic.
                cc.stolen_rounds.fetch_add(n as u32, Ordering::Relaxed);
                taken += n;
                push_stolen(tc, m);
            }
        }
    });
    taken
}

/// Links `m` into `tc`'s `stolen` list.
fn push_stolen(tc: &ThreadCache, m: *mut Magazine) {
    // Relaxed: the CAS below publishes.
    let mut head = tc.stolen.load(Ordering::Relaxed);
    loop {
        // SAFETY: `m` was swapped out of its slot, so no one else links it; the
        // owner's fast paths never touch `next` (module notes).
        unsafe { (*m).next = head };
        // Release: the owner's Acquire swap sees `next` written.
        match tc
            .stolen
            .compare_exchange_weak(head, m, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => return,
            Err(h) => head = h,
        }
    }
}

/// Flushes the magazines the purger took from the calling thread's cache `tc`:
/// their rounds go back to the slabs, the magazines to the pool.
#[cold]
#[inline(never)]
pub(crate) fn reclaim(tc: &ThreadCache) {
    // Acquire: pairs with the purger's Release CAS (the `next` links).
    let mut m = tc.stolen.swap(ptr::null_mut(), Ordering::Acquire);
    if m.is_null() {
        return;
    }
    for cc in &tc.classes {
        // Relaxed: a statistic.
        cc.stolen_rounds.store(0, Ordering::Relaxed);
    }
    while !m.is_null() {
        // SAFETY: the list's magazines were this thread's (the purger only moved
        // them), so their rounds are free objects of one class; this thread's
        // own pushes and pops on them finished before this call.
        unsafe {
            let next = (*m).next;
            if (*m).len() != 0 {
                let class = (*SegmentHeader::slab_of((*m).rounds[0])).class();
                HEAP.flush_magazine(class, m);
            }
            HEAP.pool.put(m);
            m = next;
        }
    }
}
