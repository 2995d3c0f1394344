//! `Lock<T>`: a [`RawLock`] that owns the data it protects (the `lock_api`
//! pattern), so "only touched with the lock held" is a property of the type,
//! not of a comment at every use.
//!
//! It never allocates and `new` is `const`, so it can sit in the global
//! allocator's statics. Fork handlers reach the raw lock through [`Lock::raw`]
//! (they lock before `fork` and unlock or reset after it, with no guard).

use core::ops::{Deref, DerefMut};

use super::{RawLock, UnsafeCell};

/// A mutual-exclusion lock owning a `T`; the only way to reach the `T` of a
/// shared `Lock` is through a [`LockGuard`], which holds the lock.
#[derive(Debug)]
pub(crate) struct Lock<T> {
    raw: RawLock,
    data: UnsafeCell<T>,
}

// SAFETY: the `T` is reached only through a `LockGuard` (which holds `raw`, so
// at most one thread at a time) or through `&mut self`; moving such access
// between threads is what `T: Send` allows. The lock's acquire/release orders
// each holder's accesses after the previous holder's.
unsafe impl<T: Send> Sync for Lock<T> {}
// SAFETY: sending the lock sends the `T` it owns.
unsafe impl<T: Send> Send for Lock<T> {}

impl<T> Lock<T> {
    /// An unlocked lock holding `value`.
    #[cfg(not(rustydb_loom))]
    pub(crate) const fn new(value: T) -> Self {
        Self {
            raw: RawLock::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// An unlocked lock holding `value` (loom: not `const`).
    #[cfg(rustydb_loom)]
    pub(crate) fn new(value: T) -> Self {
        Self {
            raw: RawLock::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, sleeping if needed; the guard releases it on drop.
    #[inline]
    pub(crate) fn lock(&self) -> LockGuard<'_, T> {
        self.raw.lock();
        // SAFETY: `raw` is held by this thread until the guard drops.
        unsafe { LockGuard::new(self) }
    }

    /// Takes the lock if it is free.
    #[inline]
    #[allow(dead_code)] // used by some builds (loom models compile a subset)
    pub(crate) fn try_lock(&self) -> Option<LockGuard<'_, T>> {
        if self.raw.try_lock() {
            // SAFETY: `raw` is held by this thread until the guard drops.
            Some(unsafe { LockGuard::new(self) })
        } else {
            None
        }
    }

    /// The data, through exclusive access to the lock itself (no locking:
    /// `&mut self` proves no guard exists).
    #[cfg(not(rustydb_loom))]
    #[inline]
    #[allow(dead_code)] // used by some builds (loom models compile a subset)
    pub(crate) fn get_mut(&mut self) -> &mut T {
        // SAFETY: `&mut self` borrows the lock exclusively, so no guard (which
        // borrows it shared) is alive and nobody else reaches the data.
        self.data.with_mut(|p| unsafe { &mut *p })
    }

    /// The raw lock, for `pthread_atfork` handlers that must hold it across
    /// `fork` without a guard. Taking it this way gives no access to the data.
    #[inline]
    #[allow(dead_code)] // used by some builds (loom models compile a subset)
    pub(crate) fn raw(&self) -> &RawLock {
        &self.raw
    }
}

/// Access to a [`Lock`]'s data; the lock is held for the guard's lifetime and
/// released when it drops.
///
/// Invariant: `lock.raw` is held by the thread that created the guard.
pub(crate) struct LockGuard<'a, T> {
    lock: &'a Lock<T>,
    #[cfg(rustydb_loom)]
    ptr: loom::cell::MutPtr<T>,
}

impl<'a, T> LockGuard<'a, T> {
    /// # Safety
    /// The calling thread holds `lock.raw`, and hands that hold to the guard
    /// (which releases it on drop).
    #[inline(always)]
    unsafe fn new(lock: &'a Lock<T>) -> Self {
        Self {
            lock,
            #[cfg(rustydb_loom)]
            ptr: lock.data.get_mut(),
        }
    }
}

#[cfg(not(rustydb_loom))]
impl<T> Deref for LockGuard<'_, T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        // SAFETY: the guard's invariant: the lock is held, so no other thread
        // reaches the data; `&self` keeps this borrow shared with other reads
        // through the same guard only.
        self.lock.data.with_mut(|p| unsafe { &*p })
    }
}

#[cfg(not(rustydb_loom))]
impl<T> DerefMut for LockGuard<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the lock is held (the guard's invariant) and `&mut self` makes
        // this the only borrow of the data through this guard.
        self.lock.data.with_mut(|p| unsafe { &mut *p })
    }
}

#[cfg(rustydb_loom)]
impl<T> Deref for LockGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the lock is held; loom's `MutPtr` records the access so the
        // model checker reports any access the lock fails to order.
        unsafe { self.ptr.deref() }
    }
}

#[cfg(rustydb_loom)]
impl<T> DerefMut for LockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes the borrow unique.
        unsafe { self.ptr.deref() }
    }
}

impl<T> Drop for LockGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // The guard's invariant: this thread holds the lock.
        self.lock.raw.unlock();
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for LockGuard<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        (**self).fmt(f)
    }
}

#[cfg(all(test, not(rustydb_loom)))]
mod tests {
    use super::Lock;

    #[test]
    fn guard_gives_access_and_releases() {
        static L: Lock<u64> = Lock::new(1);
        {
            let mut g = L.lock();
            *g += 41;
            assert!(L.try_lock().is_none(), "held while the guard lives");
        }
        assert_eq!(*L.lock(), 42);
    }

    #[test]
    fn threads_serialise_through_the_lock() {
        let l = std::sync::Arc::new(Lock::new(0u64));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        *l.lock() += 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*l.lock(), 40_000);
    }
}
