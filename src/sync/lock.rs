//! `RawLock`: a small futex lock that never allocates, usable from inside the
//! global allocator and from `pthread_atfork` handlers (which need to take and
//! release it without a guard object).
//!
//! State word: 0 = unlocked, 1 = locked, 2 = locked with waiters (Drepper,
//! "Futexes Are Tricky", mutex 3). Under loom it degrades to a spin lock with
//! `yield_now`, which loom models.

use super::{AtomicU32, Ordering};

/// A mutual-exclusion lock with no data and no guard type of its own.
///
/// Invariant: `state` is 0 when no thread holds the lock, non-zero otherwise;
/// 2 means a thread may be sleeping in `futex_wait` on it.
#[derive(Debug)]
pub(crate) struct RawLock {
    state: AtomicU32,
}

impl RawLock {
    /// An unlocked lock.
    #[cfg(not(rustydb_loom))]
    pub(crate) const fn new() -> Self {
        Self {
            state: AtomicU32::new(0),
        }
    }

    /// An unlocked lock (loom: not `const`).
    #[cfg(rustydb_loom)]
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU32::new(0),
        }
    }

    /// Takes the lock, sleeping if needed.
    #[inline]
    pub(crate) fn lock(&self) {
        // Acquire: the holder's writes made before its Release unlock are visible.
        if self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
    }

    /// Takes the lock if it is free; returns whether it was taken.
    #[inline]
    pub(crate) fn try_lock(&self) -> bool {
        // Acquire on success, as in `lock`; a failed attempt reads nothing guarded.
        self.state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        // Spin, then yield, briefly first (crossbeam's `Backoff`: 2^k spin hints
        // for k < 7, then a few `sched_yield`s; it never allocates): critical
        // sections in this crate are short. Poll with a plain load so waiting
        // does not bounce the cache line; CAS only when free.
        let backoff = crossbeam_utils::Backoff::new();
        while !backoff.is_completed() {
            // Relaxed: a hint; the CAS in `try_lock` does the acquiring.
            if self.state.load(Ordering::Relaxed) == 0 && self.try_lock() {
                return;
            }
            backoff.snooze();
            // Under loom, a model yield so the spin ends in the model.
            #[cfg(rustydb_loom)]
            super::spin_hint();
        }
        // Mark "waiters" and sleep until we observe the unlocked state ourselves.
        // Acquire: as in `lock`.
        while self.state.swap(2, Ordering::Acquire) != 0 {
            wait(&self.state, 2);
        }
    }

    /// Releases the lock.
    ///
    /// Must only be called by the holder (checked in debug builds by the state).
    #[inline]
    pub(crate) fn unlock(&self) {
        // Release: publishes the critical section's writes to the next holder.
        if self.state.swap(0, Ordering::Release) == 2 {
            wake_one(&self.state);
        }
    }

    /// Reinitialises the lock to "unlocked" in a forked child, where the thread
    /// that held it no longer exists.
    #[cfg(not(rustydb_loom))]
    pub(crate) fn reset_in_child(&self) {
        // Relaxed: the child is single-threaded at this point.
        self.state.store(0, Ordering::Relaxed);
    }
}

#[cfg(not(rustydb_loom))]
fn wait(state: &AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT on a valid, aligned u32 that lives as long as `state`;
    // the kernel only reads it. A spurious return is handled by the caller's loop.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            state.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            core::ptr::null::<libc::timespec>(),
        );
    }
}

#[cfg(not(rustydb_loom))]
fn wake_one(state: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a valid, aligned u32; it touches no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            state.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}

#[cfg(rustydb_loom)]
fn wait(_state: &AtomicU32, _expected: u32) {
    loom::thread::yield_now();
}

#[cfg(rustydb_loom)]
fn wake_one(_state: &AtomicU32) {}
