//! Per-instance state of a `DebugAlloc`, in memory the debugger maps itself
//! (published once, never unmapped, so `&'static State` is sound), the
//! process-wide list of those states (for thread exit, `fork` and the
//! exit-time profile), and the debugger's own memory reservations.

use core::ptr::{self, NonNull};

use super::components::{self, Counters};
use super::quarantine::Quarantine;
use super::report::Reports;
use super::sampling::Samples;
use super::stacks;
use super::threads;
use super::tracking::Tracker;
use crate::sync::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

/// Everything one `DebugAlloc` keeps.
pub(crate) struct State {
    pub(crate) counters: Counters,
    pub(crate) tracker: Tracker,
    pub(crate) quarantine: Quarantine,
    pub(crate) reports: Reports,
    pub(crate) samples: Samples,
    pub(crate) quarantined: AtomicUsize,
}

/// States of every instance that has allocated (up to 64; further instances
/// work the same but are not flushed at thread exit or written at exit).
pub(crate) const MAX_STATES: usize = 64;
static STATES: [AtomicPtr<State>; MAX_STATES] =
    [const { AtomicPtr::new(ptr::null_mut()) }; MAX_STATES];

/// Maps and publishes a new state into `slot`, or returns the one another
/// thread published first.
pub(crate) fn create(slot: &AtomicPtr<State>) -> Option<&'static State> {
    let bytes = core::mem::size_of::<State>();
    let m = reserve(bytes)?.cast::<State>().as_ptr();
    // SAFETY: a fresh, zeroed, writable mapping large enough and aligned (page)
    // for a State.
    unsafe {
        m.write(State {
            counters: Counters::new()?,
            tracker: Tracker::new()?,
            quarantine: Quarantine::new(),
            reports: Reports::new(),
            samples: Samples::new()?,
            quarantined: AtomicUsize::new(0),
        })
    };
    // AcqRel: publish our state or take the winner's.
    match slot.compare_exchange(ptr::null_mut(), m, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            register(m);
            // SAFETY: just published; states are never unmapped.
            Some(unsafe { &*m })
        }
        Err(winner) => {
            // The loser's per-slot reservations stay reserved (address space
            // only, untouched): rare, once per racing first use.
            // SAFETY: our mapping was never published.
            unsafe { unreserve(m.cast(), bytes) };
            // SAFETY: the winner's state is published and never unmapped.
            Some(unsafe { &*winner })
        }
    }
}

fn register(s: *mut State) {
    install_fork_handlers();
    for p in &STATES {
        // Release: the state's contents are visible to whoever loads it.
        if p.compare_exchange(ptr::null_mut(), s, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

/// Calls `f` on every registered state.
pub(crate) fn for_each(mut f: impl FnMut(&'static State)) {
    for p in &STATES {
        // Acquire: pairs with the Release in `register`.
        let s = p.load(Ordering::Acquire);
        if s.is_null() {
            break;
        }
        // SAFETY: registered states are published and never unmapped.
        f(unsafe { &*s });
    }
}

/// A thread gives its slot back: its pending side-table updates are applied
/// in every instance, so nothing of it waits for a next owner.
pub(crate) fn slot_released(slot: usize) {
    for_each(|s| s.tracker.flush(slot));
}

/// Reserves `bytes` (rounded up to pages) of zeroed memory for the debugger's
/// own tables. Address space only until touched (`MAP_NORESERVE`), and not
/// counted in the allocator's mapped bytes (this memory is the debugger's
/// bookkeeping, not the program's heap).
pub(crate) fn reserve(bytes: usize) -> Option<NonNull<u8>> {
    let len = bytes.next_multiple_of(crate::sys::page_size());
    // SAFETY: an anonymous private mapping at a kernel-chosen address; no
    // existing memory is affected.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        None
    } else {
        NonNull::new(p.cast())
    }
}

/// Releases a reservation.
///
/// # Safety
/// `p` and `bytes` are those of a [`reserve`] call, and nothing refers to the
/// memory any more.
pub(crate) unsafe fn unreserve(p: *mut u8, bytes: usize) {
    let len = bytes.next_multiple_of(crate::sys::page_size());
    // SAFETY: the caller's contract: our mapping, no longer used.
    unsafe { libc::munmap(p.cast(), len) };
}

// ---------------------------------------------------------------- fork

static FORK_HANDLERS: AtomicBool = AtomicBool::new(false);

/// Installs `pthread_atfork` handlers once: before `fork` every debugger lock
/// is taken (in one fixed order), so the child never inherits a lock held by a
/// thread that does not exist in it; afterwards the parent releases them and
/// the child resets them and gives back the other threads' slots.
///
/// The debugger never holds two of its locks at once, so taking them all in
/// this order cannot deadlock with a running thread.
fn install_fork_handlers() {
    if FORK_HANDLERS.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: three `extern "C"` functions without arguments that never
    // unwind; registering them has no other precondition.
    unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
}

fn each_lock(f: &mut dyn FnMut(&crate::sync::RawLock)) {
    for_each(|s| {
        s.tracker.each_lock(&mut *f);
        f(s.quarantine.raw());
        f(s.reports.raw());
        f(s.samples.raw());
    });
    components::each_lock(&mut *f);
    stacks::each_lock(&mut *f);
}

extern "C" fn fork_prepare() {
    each_lock(&mut |l| l.lock());
}

extern "C" fn fork_parent() {
    each_lock(&mut |l| l.unlock());
}

extern "C" fn fork_child() {
    each_lock(&mut |l| l.reset_in_child());
    threads::reset_in_child();
}
