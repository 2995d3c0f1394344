//! Slab owners: small numbers a thread cache claims for its lifetime, so a free
//! can tell an object of its own slabs from one of another thread's (a *remote*
//! free, which goes home to its slab instead of into the freeing thread's cache,
//! where its next allocation would hand it out: Hoard's passive false sharing).
//!
//! Owner 0 is "shared": slabs of no live owner, carved by anyone. Owners
//! `1..MAX_OWNERS` are slots; a thread beyond them stays at 0 (it then allocates
//! from shared slabs only, and treats their objects as its own).
//!
//! A slot is `FREE`, `LIVE` (claimed by a live cache), or `RELEASING` (its
//! cache exited and the slabs it owns are being handed to the shared lists).
//! The class locks order the rest: a free that finds a slab of a non-live owner
//! under its class lock makes the slab shared (see `slab.rs`).

use crate::sync::{AtomicU8, Ordering};

/// A slab owner: 0 for shared, else a claimed slot.
pub(crate) type Owner = u16;

/// Slots, including the shared owner 0.
pub(crate) const MAX_OWNERS: usize = super::depot::OWNERS;

const FREE: u8 = 0;
const LIVE: u8 = 1;
const RELEASING: u8 = 2;

static SLOTS: [AtomicU8; MAX_OWNERS] = [const { AtomicU8::new(FREE) }; MAX_OWNERS];

/// Claims a free slot (0 if all are taken).
pub(crate) fn claim() -> Owner {
    for (i, s) in SLOTS.iter().enumerate().skip(1) {
        // Acquire: pairs with `release`'s Release store, so the previous
        // holder's hand-over of its slabs happened before our use of the slot.
        if s.load(Ordering::Relaxed) == FREE
            && s.compare_exchange(FREE, LIVE, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return i as Owner;
        }
    }
    0
}

/// Whether `o` is the slot of a live cache (always false for 0). Callers hold
/// a class lock, which orders this read against `release`'s hand-over of that
/// class (module notes).
#[inline]
pub(crate) fn is_live(o: Owner) -> bool {
    // Relaxed: the class lock the caller holds orders it (see `release`).
    o != 0 && SLOTS[o as usize].load(Ordering::Relaxed) == LIVE
}

/// Releases slot `o` of an exiting cache: marks it releasing, lets `hand_over`
/// move the slabs it owns to the shared lists (taking each class lock in turn),
/// then frees it for reuse.
///
/// A free that examines a slab of `o` under a class lock either runs before
/// `hand_over` takes that lock (and links the slab into `o`'s list, which
/// `hand_over` then moves) or after it released it (and, its lock acquisition
/// synchronising with that release, reads `RELEASING` or `FREE` and makes the
/// slab shared itself) — or, if a new cache has claimed the slot since, links it
/// for that cache, which inherits the slab.
pub(crate) fn release(o: Owner, hand_over: impl FnOnce(Owner)) {
    if o == 0 {
        return;
    }
    // Relaxed: the class locks `hand_over` takes publish it (module notes).
    SLOTS[o as usize].store(RELEASING, Ordering::Relaxed);
    hand_over(o);
    // Release: pairs with `claim`'s Acquire.
    SLOTS[o as usize].store(FREE, Ordering::Release);
}

/// In a `fork` child: every live slot but `keep` belonged to a thread the child
/// does not have; each is released through `hand_over`.
pub(crate) fn release_all_but(keep: Owner, mut hand_over: impl FnMut(Owner)) {
    for (i, s) in SLOTS.iter().enumerate().skip(1) {
        let o = i as Owner;
        if o != keep && s.load(Ordering::Relaxed) == LIVE {
            release(o, &mut hand_over);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_claimed_once_and_reused_after_release() {
        let a = claim();
        let b = claim();
        assert!(a != 0 && b != 0 && a != b);
        assert!(is_live(a) && is_live(b));
        let mut handed = 0;
        release(a, |o| {
            assert!(!is_live(o), "releasing is not live");
            handed = o;
        });
        assert_eq!(handed, a);
        assert!(!is_live(a));
        assert!(!is_live(0));
        release(b, |_| {});
    }
}
