//! The depot: per class, a stack of full magazines and a stack of empty ones,
//! behind a short lock. Threads swap whole magazines with it, so a thread takes
//! the lock once per `cap` allocations or frees at most.
//!
//! The depot also tracks its working set (Bonwick's `min` since the last trim):
//! magazines that stayed unused for a whole trim interval are handed back to be
//! flushed to the slabs.

use core::ptr;

use super::magazine::Magazine;
use crate::sync::{AtomicUsize, Lock, Ordering};

/// Owner tags the depot keeps apart (`Magazine::owner`; slots of `slab::owner`).
pub(crate) const OWNERS: usize = 128;

/// What the depot's lock guards: the two stacks and their counts.
///
/// Invariant: the `full` stacks hold exactly `nfull` magazines, each full and
/// on the stack of its owner tag; `empty` holds `nempty` magazines, each empty;
/// all are linked through `Magazine::next`.
/// A magazine is in at most one place at a time: one list, or one thread's cache.
struct DepotInner {
    /// Per owner tag: full magazines of objects of that owner's slabs.
    full: [*mut Magazine; OWNERS],
    empty: *mut Magazine,
    nfull: usize,
    nempty: usize,
    /// Fewest full / empty magazines seen since the last trim.
    min_full: usize,
    min_empty: usize,
    /// Objects in full magazines.
    rounds: usize,
}

// SAFETY: the magazines linked from a `DepotInner` belong to the depot (their
// previous owner gave them up whole); nothing in them is tied to a thread, and
// the `Lock` around the inner state orders each holder's accesses.
unsafe impl Send for DepotInner {}

/// The per-class magazine depot: [`DepotInner`] behind a lock, and relaxed
/// mirrors of its counts for statistics.
pub(crate) struct Depot {
    inner: Lock<DepotInner>,
    /// Objects held in full magazines (mirrors `inner` for statistics).
    pub(crate) rounds: AtomicUsize,
    /// Full magazines (mirror for statistics).
    pub(crate) full: AtomicUsize,
    /// Empty magazines (mirror for statistics).
    pub(crate) empty: AtomicUsize,
}

macro_rules! depot_new {
    () => {
        Self {
            inner: Lock::new(DepotInner {
                full: [ptr::null_mut(); OWNERS],
                empty: ptr::null_mut(),
                nfull: 0,
                nempty: 0,
                min_full: 0,
                min_empty: 0,
                rounds: 0,
            }),
            rounds: AtomicUsize::new(0),
            full: AtomicUsize::new(0),
            empty: AtomicUsize::new(0),
        }
    };
}

impl Depot {
    /// An empty depot.
    #[cfg(not(rustydb_loom))]
    pub(crate) const fn new() -> Self {
        depot_new!()
    }

    /// An empty depot (loom: not `const`).
    #[cfg(rustydb_loom)]
    pub(crate) fn new() -> Self {
        depot_new!()
    }

    /// The raw lock, for the fork handlers.
    #[cfg(not(rustydb_loom))]
    pub(crate) fn raw_lock(&self) -> &crate::sync::RawLock {
        self.inner.raw()
    }

    /// Mirrors the counts for statistics with plain stores (no locked
    /// instruction inside the critical section).
    fn publish(&self, inner: &mut DepotInner, delta_rounds: isize) {
        inner.rounds = inner.rounds.wrapping_add_signed(delta_rounds);
        // Relaxed: statistics mirrors, read racily.
        self.full.store(inner.nfull, Ordering::Relaxed);
        self.empty.store(inner.nempty, Ordering::Relaxed);
        self.rounds.store(inner.rounds, Ordering::Relaxed);
    }

    /// If a full magazine of `owner` (`Magazine::owner`: whose slabs its objects
    /// are from) is available, takes `empty` (unless null) onto the empty stack
    /// and returns the full one; otherwise returns null and leaves `empty` with
    /// the caller. A thread that took another owner's objects would send each of
    /// them home at its free (a remote free), so it refills from its own slabs
    /// instead.
    ///
    /// # Safety
    /// `empty` is null or an empty magazine owned by the caller, referenced nowhere
    /// else; it must not be used after it was taken.
    pub(crate) unsafe fn exchange_for_full(
        &self,
        empty: *mut Magazine,
        owner: u16,
    ) -> *mut Magazine {
        let mut guard = self.inner.lock();
        let d = &mut *guard;
        // SAFETY: list nodes are magazines the depot owns (DepotInner's
        // invariant); `empty` is the caller's to give (contract).
        unsafe {
            let stack = &mut d.full[tag(owner)];
            let full = *stack;
            if full.is_null() {
                return ptr::null_mut();
            }
            *stack = (*full).next;
            d.nfull -= 1;
            d.min_full = d.min_full.min(d.nfull);
            if !empty.is_null() {
                debug_assert_eq!((*empty).len(), 0);
                (*empty).next = d.empty;
                d.empty = empty;
                d.nempty += 1;
            }
            (*full).next = ptr::null_mut();
            let n = (*full).len() as isize;
            self.publish(d, -n);
            full
        }
    }

    /// Takes `full` onto the full stack and returns an empty magazine, or null
    /// when there is none (the caller then gets one from the pool).
    ///
    /// # Safety
    /// `full` is a full magazine owned by the caller, referenced nowhere else; it
    /// must not be used after this call.
    pub(crate) unsafe fn exchange_for_empty(&self, full: *mut Magazine) -> *mut Magazine {
        let mut d = self.inner.lock();
        // SAFETY: as in `exchange_for_full`.
        unsafe {
            let stack = &mut d.full[tag((*full).owner)];
            (*full).next = *stack;
            *stack = full;
            d.nfull += 1;
            let n = (*full).len() as isize;
            let empty = d.empty;
            if !empty.is_null() {
                d.empty = (*empty).next;
                d.nempty -= 1;
                d.min_empty = d.min_empty.min(d.nempty);
                (*empty).next = ptr::null_mut();
            }
            self.publish(&mut d, n);
            empty
        }
    }

    /// Adds a magazine (full or empty) to the matching stack.
    ///
    /// # Safety
    /// `m` is owned by the caller, referenced nowhere else, and either full or
    /// empty; it must not be used afterwards.
    pub(crate) unsafe fn put(&self, m: *mut Magazine) {
        let mut d = self.inner.lock();
        // SAFETY: as in `exchange_for_full`.
        unsafe {
            let n = (*m).len();
            if n == 0 {
                (*m).next = d.empty;
                d.empty = m;
                d.nempty += 1;
            } else {
                debug_assert!((*m).is_full());
                let stack = &mut d.full[tag((*m).owner)];
                (*m).next = *stack;
                *stack = m;
                d.nfull += 1;
            }
            self.publish(&mut d, n as isize);
        }
    }

    /// Detaches the magazines outside the working set — as many full and empty
    /// magazines as were never needed since the previous trim (all of them with
    /// `all`) — and returns them as `(full, empty)` lists linked through `next`.
    /// Starts a new trim interval.
    pub(crate) fn trim(&self, all: bool) -> (*mut Magazine, *mut Magazine) {
        let mut d = self.inner.lock();
        let d = &mut *d;
        let nf = if all { d.nfull } else { d.min_full };
        let ne = if all { d.nempty } else { d.min_empty };
        let mut rounds = 0isize;
        // SAFETY: the lists hold `nfull` / `nempty` valid nodes (DepotInner's
        // invariant) and `nf <= nfull`, `ne <= nempty` (a minimum of the counts
        // since the last trim); the detached nodes go to the caller whole.
        let (full, empty) = unsafe {
            (
                detach_across(&mut d.full, nf, |m| rounds += (*m).len() as isize),
                detach(&mut d.empty, ne, |_| {}),
            )
        };
        d.nfull -= nf;
        d.nempty -= ne;
        d.min_full = d.nfull;
        d.min_empty = d.nempty;
        self.publish(d, -rounds);
        (full, empty)
    }
}

/// The stack of owner tag `o`.
#[inline]
fn tag(o: u16) -> usize {
    o as usize % OWNERS
}

/// Detaches `n` nodes from the stacks `heads` (the first ones of each stack, in
/// stack order) as one list, calling `f` on each.
///
/// # Safety
/// The stacks hold at least `n` valid nodes together, and the caller may change
/// them (it holds the depot's lock).
unsafe fn detach_across(
    heads: &mut [*mut Magazine],
    n: usize,
    mut f: impl FnMut(*mut Magazine),
) -> *mut Magazine {
    let mut out = ptr::null_mut();
    let mut left = n;
    for head in heads.iter_mut() {
        while left != 0 && !head.is_null() {
            // SAFETY: every node of a stack is valid (caller).
            unsafe {
                let m = *head;
                *head = (*m).next;
                f(m);
                (*m).next = out;
                out = m;
            }
            left -= 1;
        }
    }
    debug_assert_eq!(left, 0);
    out
}

/// Detaches the first `n` nodes of `head`, calling `f` on each.
///
/// # Safety
/// The list has at least `n` valid nodes, and the caller may change them (it
/// holds the depot's lock).
unsafe fn detach(
    head: &mut *mut Magazine,
    n: usize,
    mut f: impl FnMut(*mut Magazine),
) -> *mut Magazine {
    if n == 0 {
        return ptr::null_mut();
    }
    let first = *head;
    let mut last = first;
    // SAFETY: the list has at least `n` nodes (caller).
    unsafe {
        f(last);
        for _ in 1..n {
            last = (*last).next;
            f(last);
        }
        *head = (*last).next;
        (*last).next = ptr::null_mut();
    }
    first
}
