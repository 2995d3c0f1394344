//! The background purger: a thread that gives memory back while the program is
//! idle, in the manner of jemalloc's `background_thread`.
//!
//! Started by `RUSTYDB_MEM_BACKGROUND=1` (at a thread's first allocation slow
//! path once the environment can be read) or by
//! [`RustyAlloc::start_background_purger`](crate::RustyAlloc::start_background_purger).
//! Every quarter of the dirty delay, while anything is unpurged, it runs one
//! pass (`Heap::background_pass`): it takes idle threads' magazines, trims the
//! depots to their working set, releases empty slabs, runs the segments' and
//! the large cache's two-stage decay and releases free magazine pages. When a
//! pass leaves nothing unpurged it sleeps on a futex until a free creates
//! something to purge (`sys::purge_signal`), or for 10 s at most.
//!
//! It never allocates through the allocator it serves: it is created with
//! `pthread_create` (no Rust `std::thread`, whose handles are allocated), from a
//! slow path that holds no lock of ours, with every signal blocked (they belong
//! to the program's threads). It does not exist in a child after `fork`; the
//! child's next slow paths start it again.

use core::ffi::c_void;
use core::mem::MaybeUninit;

use super::heap::HEAP;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

const OFF: u32 = 0;
const ASKED: u32 = 1;
const RUNNING: u32 = 2;

/// OFF, ASKED (wanted, not running) or RUNNING.
static STATE: AtomicU32 = AtomicU32::new(OFF);
/// Passes run so far (threads record it at each slow path).
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// The longest idle sleep (a missed wake-up costs at most this).
const IDLE_TIMEOUT_NS: u64 = 10_000_000_000;
/// Stack of the purger thread (its passes use a few KiB; static TLS comes on top).
const STACK: usize = 256 << 10;

/// The current epoch (the number of passes run).
#[inline]
pub(crate) fn epoch() -> u64 {
    // Relaxed: a hint (see `idle.rs`).
    EPOCH.load(Ordering::Relaxed)
}

/// Starts the purger if `RUSTYDB_MEM_BACKGROUND` asks for it, or if it was
/// asked for and is not running (after `fork`). Called from slow paths that
/// hold no lock.
#[inline]
pub(crate) fn start_if_asked() {
    // Relaxed: a hint; `ensure_running` decides with a CAS.
    match STATE.load(Ordering::Relaxed) {
        RUNNING => {}
        ASKED => ensure_running(),
        _ => {
            if crate::options::background_purger() {
                ask();
                ensure_running();
            }
        }
    }
}

/// Whether the purger thread runs.
#[inline]
pub(crate) fn running() -> bool {
    // Relaxed: a hint.
    STATE.load(Ordering::Relaxed) == RUNNING
}

/// Asks for the purger and starts it now; whether it runs.
pub(crate) fn start() -> bool {
    crate::options::init();
    ask();
    ensure_running();
    // Relaxed: a report.
    STATE.load(Ordering::Relaxed) == RUNNING
}

fn ask() {
    // Relaxed: the CAS in `ensure_running` elects the starter.
    let _ = STATE.compare_exchange(OFF, ASKED, Ordering::Relaxed, Ordering::Relaxed);
}

#[cold]
fn ensure_running() {
    if STATE
        .compare_exchange(ASKED, RUNNING, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    if !spawn() {
        // Relaxed: give up (no retry storm); `start` reports it.
        STATE.store(OFF, Ordering::Relaxed);
    }
}

/// In a `fork` child: the purger thread was not copied; ask for a new one
/// (the child's next slow paths start it).
pub(crate) fn after_fork_in_child() {
    // Relaxed: the child has one thread.
    if STATE.load(Ordering::Relaxed) == RUNNING {
        STATE.store(ASKED, Ordering::Relaxed);
    }
    crate::sys::purge_signal::reset_in_child();
}

/// Creates the purger thread; false if the system refused.
fn spawn() -> bool {
    // SAFETY: plain libc calls on values on our stack: the attribute object is
    // initialised before use and destroyed after; the signal mask is restored.
    // `run` is an `extern "C"` function that never returns or unwinds.
    unsafe {
        let mut attr = MaybeUninit::<libc::pthread_attr_t>::uninit();
        if libc::pthread_attr_init(attr.as_mut_ptr()) != 0 {
            return false;
        }
        let attr = attr.as_mut_ptr();
        libc::pthread_attr_setdetachstate(attr, libc::PTHREAD_CREATE_DETACHED);
        libc::pthread_attr_setstacksize(attr, STACK);
        let mut all = MaybeUninit::<libc::sigset_t>::uninit();
        let mut old = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigfillset(all.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr());
        let mut thread = MaybeUninit::<libc::pthread_t>::uninit();
        let mut rc = libc::pthread_create(thread.as_mut_ptr(), attr, run, core::ptr::null_mut());
        if rc == libc::EINVAL {
            // The stack could not hold the program's static TLS: the default size.
            libc::pthread_attr_destroy(attr);
            libc::pthread_attr_init(attr);
            libc::pthread_attr_setdetachstate(attr, libc::PTHREAD_CREATE_DETACHED);
            rc = libc::pthread_create(thread.as_mut_ptr(), attr, run, core::ptr::null_mut());
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), core::ptr::null_mut());
        libc::pthread_attr_destroy(attr);
        if rc != 0 {
            return false;
        }
        libc::pthread_setname_np(thread.assume_init(), c"rustydb-purger".as_ptr());
        true
    }
}

/// The interval between passes: a quarter of the dirty delay (1 ms – 1 s).
fn tick_ns() -> u64 {
    (crate::options::purge_delay_ns() / 4).clamp(1_000_000, 1_000_000_000)
}

extern "C" fn run(_: *mut c_void) -> *mut c_void {
    loop {
        // Relaxed: threads read it as a hint.
        let epoch = EPOCH.fetch_add(1, Ordering::Relaxed) + 1;
        if HEAP.background_pass(epoch) {
            sleep(tick_ns());
        } else {
            crate::sys::purge_signal::idle(IDLE_TIMEOUT_NS, || HEAP.anything_unpurged());
        }
    }
}

fn sleep(ns: u64) {
    let ts = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: a valid timespec; signals are blocked in this thread, so no EINTR.
    unsafe { libc::nanosleep(&ts, core::ptr::null_mut()) };
}
