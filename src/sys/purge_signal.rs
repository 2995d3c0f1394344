//! The signal between the layers that free memory (segments, depots, the
//! large cache) and RustyAlloc's background purger, which sleeps while there is
//! nothing to purge: a futex word, set while the purger sleeps idle.

use crate::sync::{AtomicU32, Ordering};

/// 1 while the purger sleeps idle.
static IDLE: AtomicU32 = AtomicU32::new(0);

/// Something was freed that the purger may purge: wakes it if it sleeps idle.
/// A relaxed load on the freeing paths; the wake-up itself is rare.
#[inline]
pub(crate) fn notify() {
    // Relaxed: a hint; a wake-up missed in a race costs at most the idle
    // timeout (see `idle`).
    if IDLE.load(Ordering::Relaxed) != 0 {
        wake();
    }
}

#[cold]
fn wake() {
    if IDLE.swap(0, Ordering::AcqRel) != 0 {
        // SAFETY: FUTEX_WAKE on a valid, aligned u32 static; it touches no memory.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                IDLE.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                1,
            );
        }
    }
}

/// The purger's side: marks it idle, runs `recheck` (true: something to purge
/// after all, do not sleep), else sleeps until [`notify`] or `timeout_ns`.
pub(crate) fn idle(timeout_ns: u64, recheck: impl FnOnce() -> bool) {
    // SeqCst: the store and the re-check form the purger's half of a Dekker
    // pair with a freeing thread's change and its `notify` load; a rare miss
    // (that load is relaxed) costs at most the timeout.
    IDLE.store(1, Ordering::SeqCst);
    if !recheck() {
        let ts = libc::timespec {
            tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: FUTEX_WAIT on a valid, aligned u32 static with a relative
        // timeout; the kernel only reads the word. Any return (woken, timed
        // out, the word already 0) is fine: the caller runs a pass next.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                IDLE.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                1u32,
                &ts as *const libc::timespec,
            );
        }
    }
    IDLE.store(0, Ordering::Relaxed);
}

/// In a `fork` child (one thread): the purger does not exist there.
pub(crate) fn reset_in_child() {
    // Relaxed: single-threaded.
    IDLE.store(0, Ordering::Relaxed);
}
