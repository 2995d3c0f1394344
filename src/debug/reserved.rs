//! `Reserved<T, N>`: a fixed table of `N` entries in a zeroed mapping of its
//! own, for the debugger's per-slot and per-site tables. It never allocates
//! (the debugger sits in front of the allocator) and is never unmapped, so an
//! entry reference lives as long as the table; it only hands out shared
//! references, so it is shared between threads exactly when `T` is `Sync` —
//! the invariant is on the type instead of an `unsafe impl Sync` per table.

use core::marker::PhantomData;
use core::ptr::NonNull;

use super::state::reserve;

/// `N` entries of `T`, all-zero at first, reached through `&T` only.
///
/// Invariant: `ptr` is the start of a live, never-unmapped reservation of at
/// least `N * size_of::<T>()` bytes holding `N` valid `T`s.
pub(crate) struct Reserved<T, const N: usize> {
    ptr: NonNull<T>,
    /// Owns the entries (for auto traits and variance).
    _entries: PhantomData<[T; N]>,
}

// SAFETY: the table only gives out `&T`, so sending it to another thread lets
// that thread share the entries with this one: sound when `T: Sync`. The
// entries are never dropped (the reservation is never unmapped).
unsafe impl<T: Sync, const N: usize> Send for Reserved<T, N> {}
// SAFETY: as for `Send`: sharing the table shares `&T`s.
unsafe impl<T: Sync, const N: usize> Sync for Reserved<T, N> {}

impl<T, const N: usize> Reserved<T, N> {
    /// A table of `N` all-zero entries, or `None` if the mapping fails.
    ///
    /// # Safety
    ///
    /// The all-zero bit pattern is a valid `T` (atomics, locks and arrays of
    /// them, plain integers).
    pub(crate) unsafe fn zeroed() -> Option<Self> {
        const { assert!(N > 0 && N.is_power_of_two()) };
        let bytes = N.checked_mul(core::mem::size_of::<T>())?;
        let ptr = reserve(bytes)?.cast::<T>();
        Some(Self {
            ptr,
            _entries: PhantomData,
        })
    }

    /// Entry `i mod N`: callers pass indices below `N` (checked in debug
    /// builds); a wrong index picks a wrong entry, never memory outside.
    #[inline(always)]
    pub(crate) fn at(&self, i: usize) -> &T {
        debug_assert!(i < N, "index {i} of a table of {N}");
        // SAFETY: `i % N < N` indexes the `N` valid entries of the type's
        // invariant (mmap memory is page-aligned, so aligned for `T`); they
        // live as long as the table and are only shared.
        unsafe { &*self.ptr.as_ptr().add(i % N) }
    }

    /// Entry `i`, or `None` past the end.
    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        (i < N).then(|| self.at(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::{AtomicU64, Ordering};

    #[test]
    fn entries_start_zero_and_are_distinct() {
        // SAFETY: an all-zero `AtomicU64` is 0.
        let t = unsafe { Reserved::<AtomicU64, 1024>::zeroed() }.unwrap();
        assert!((0..1024).all(|i| t.at(i).load(Ordering::Relaxed) == 0));
        for i in 0..1024 {
            t.at(i).store(i as u64 + 1, Ordering::Relaxed);
        }
        assert!((0..1024).all(|i| t.at(i).load(Ordering::Relaxed) == i as u64 + 1));
        assert!(t.get(1024).is_none() && t.get(usize::MAX).is_none());
        assert_eq!(t.get(3).unwrap().load(Ordering::Relaxed), 4);
    }
}
