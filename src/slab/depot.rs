//! The depot: per class, a stack of full magazines and a stack of empty ones,
//! behind a short lock. Threads swap whole magazines with it, so a thread takes
//! the lock once per `cap` allocations or frees at most.
//!
//! The depot also tracks its working set (Bonwick's `min` since the last trim):
//! magazines that stayed unused for a whole trim interval are handed back to be
//! flushed to the slabs.

use core::ptr;

use super::magazine::Magazine;
use crate::sync::{AtomicUsize, Ordering, RawLock, UnsafeCell};

struct DepotInner {
    full: *mut Magazine,
    empty: *mut Magazine,
    nfull: usize,
    nempty: usize,
    /// Fewest full / empty magazines seen since the last trim.
    min_full: usize,
    min_empty: usize,
    /// Objects in full magazines.
    rounds: usize,
}

/// The per-class magazine depot.
///
/// Invariant: `full` holds exactly `nfull` magazines, each full; `empty` holds
/// `nempty` magazines, each empty; both are linked through `Magazine::next` and
/// accessed only with `lock` held. A magazine is in at most one place at a time:
/// one list, or one thread's cache.
pub(crate) struct Depot {
    lock: RawLock,
    inner: UnsafeCell<DepotInner>,
    /// Objects held in full magazines (mirrors `inner` for statistics).
    pub(crate) rounds: AtomicUsize,
    /// Full magazines (mirror for statistics).
    pub(crate) full: AtomicUsize,
    /// Empty magazines (mirror for statistics).
    pub(crate) empty: AtomicUsize,
}

// SAFETY: `inner` is only accessed with `lock` held; magazines move between
// threads whole, with the lock's acquire/release ordering their contents.
unsafe impl Sync for Depot {}
// SAFETY: as above; a depot holds no thread-bound state.
unsafe impl Send for Depot {}

macro_rules! depot_new {
    () => {
        Self {
            lock: RawLock::new(),
            inner: UnsafeCell::new(DepotInner {
                full: ptr::null_mut(),
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

    #[cfg(not(rustydb_loom))]
    pub(crate) fn lock(&self) -> &RawLock {
        &self.lock
    }

    /// Mirrors the counts for statistics with plain stores (no locked
    /// instruction inside the critical section).
    fn publish(&self, inner: *mut DepotInner, delta_rounds: isize) {
        // SAFETY: called with the lock held.
        let (nf, ne, r) = unsafe {
            (*inner).rounds = (*inner).rounds.wrapping_add_signed(delta_rounds);
            ((*inner).nfull, (*inner).nempty, (*inner).rounds)
        };
        // Relaxed: statistics mirrors, read racily.
        self.full.store(nf, Ordering::Relaxed);
        self.empty.store(ne, Ordering::Relaxed);
        self.rounds.store(r, Ordering::Relaxed);
    }

    /// If a full magazine is available, takes `empty` (unless null) onto the
    /// empty stack and returns the full one; otherwise returns null and leaves
    /// `empty` with the caller.
    ///
    /// # Safety
    /// `empty` is null or an empty magazine owned by the caller, referenced nowhere
    /// else; it must not be used after it was taken.
    pub(crate) unsafe fn exchange_for_full(&self, empty: *mut Magazine) -> *mut Magazine {
        let _g = self.lock.guard();
        self.inner.with_mut(|inner| {
            // SAFETY: lock held; list nodes are depot-owned magazines; `empty` is the
            // caller's (contract).
            unsafe {
                let full = (*inner).full;
                if full.is_null() {
                    return ptr::null_mut();
                }
                (*inner).full = (*full).next;
                (*inner).nfull -= 1;
                (*inner).min_full = (*inner).min_full.min((*inner).nfull);
                if !empty.is_null() {
                    debug_assert_eq!((*empty).len(), 0);
                    (*empty).next = (*inner).empty;
                    (*inner).empty = empty;
                    (*inner).nempty += 1;
                }
                (*full).next = ptr::null_mut();
                let n = (*full).len() as isize;
                self.publish(inner, -n);
                full
            }
        })
    }

    /// Takes `full` onto the full stack and returns an empty magazine, or null
    /// when there is none (the caller then gets one from the pool).
    ///
    /// # Safety
    /// `full` is a full magazine owned by the caller, referenced nowhere else; it
    /// must not be used after this call.
    pub(crate) unsafe fn exchange_for_empty(&self, full: *mut Magazine) -> *mut Magazine {
        let _g = self.lock.guard();
        self.inner.with_mut(|inner| {
            // SAFETY: as in `exchange_for_full`.
            unsafe {
                (*full).next = (*inner).full;
                (*inner).full = full;
                (*inner).nfull += 1;
                let n = (*full).len() as isize;
                let empty = (*inner).empty;
                if !empty.is_null() {
                    (*inner).empty = (*empty).next;
                    (*inner).nempty -= 1;
                    (*inner).min_empty = (*inner).min_empty.min((*inner).nempty);
                    (*empty).next = ptr::null_mut();
                }
                self.publish(inner, n);
                empty
            }
        })
    }

    /// Adds a magazine (full or empty) to the matching stack.
    ///
    /// # Safety
    /// `m` is owned by the caller, referenced nowhere else, and either full or
    /// empty; it must not be used afterwards.
    pub(crate) unsafe fn put(&self, m: *mut Magazine) {
        let _g = self.lock.guard();
        self.inner.with_mut(|inner| {
            // SAFETY: as in `exchange_for_full`.
            unsafe {
                let n = (*m).len();
                if n == 0 {
                    (*m).next = (*inner).empty;
                    (*inner).empty = m;
                    (*inner).nempty += 1;
                } else {
                    debug_assert!((*m).is_full());
                    (*m).next = (*inner).full;
                    (*inner).full = m;
                    (*inner).nfull += 1;
                }
                self.publish(inner, n as isize);
            }
        })
    }

    /// Detaches the magazines outside the working set — as many full and empty
    /// magazines as were never needed since the previous trim (all of them with
    /// `all`) — and returns them as `(full, empty)` lists linked through `next`.
    /// Starts a new trim interval.
    pub(crate) fn trim(&self, all: bool) -> (*mut Magazine, *mut Magazine) {
        let _g = self.lock.guard();
        self.inner.with_mut(|inner| {
            // SAFETY: lock held; detached nodes are handed to the caller whole.
            unsafe {
                let nf = if all {
                    (*inner).nfull
                } else {
                    (*inner).min_full
                };
                let ne = if all {
                    (*inner).nempty
                } else {
                    (*inner).min_empty
                };
                let mut rounds = 0isize;
                let full = detach(&mut (*inner).full, nf, |m| rounds += (*m).len() as isize);
                let empty = detach(&mut (*inner).empty, ne, |_| {});
                (*inner).nfull -= nf;
                (*inner).nempty -= ne;
                (*inner).min_full = (*inner).nfull;
                (*inner).min_empty = (*inner).nempty;
                self.publish(inner, -rounds);
                (full, empty)
            }
        })
    }
}

/// Detaches the first `n` nodes of `head`, calling `f` on each.
///
/// # Safety
/// The list has at least `n` valid nodes; the caller holds the lock.
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
