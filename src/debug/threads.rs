//! Per-thread state of the debugger: the reentrancy flag, a unique thread id,
//! the sampling countdowns, and a *slot* — a small index that gives the thread
//! counters and a side table of its own in every `DebugAlloc`, so counting and
//! tracking write no cache line another thread writes.
//!
//! The state is a `const`-initialised thread-local without `Drop` (one
//! TLS-relative access, usable during TLS teardown). A second thread-local with
//! a `Drop` is touched when a slot is taken, to give the slot back at thread
//! exit. Slots are reused by later threads: what is kept per slot is
//! cumulative (counters) or keyed by block (tables), so a new owner simply
//! continues it. Slot 0 is shared by threads that have none (no slot free, or
//! TLS being torn down); its writers use atomic read-modify-writes.

use core::cell::Cell;

use crate::sync::{AtomicU32, Ordering};

/// Slots, slot 0 (shared) included.
pub(crate) const MAX_SLOTS: usize = 256;
/// The shared slot.
pub(crate) const SHARED: usize = 0;

const SLOT_NONE: u32 = 0;
const SLOT_DEAD: u32 = u32::MAX;

/// What the debugger keeps per thread.
pub(crate) struct ThreadState {
    /// Set while the debugger itself runs on this thread (reports, unwinding,
    /// profile writing): allocations made meanwhile are passed through.
    pub(crate) in_debug: Cell<bool>,
    /// The component the thread's allocations are tagged with (0 = untagged).
    pub(crate) component: Cell<u16>,
    /// Unique id (0 = not yet assigned).
    id: Cell<u32>,
    /// Slot index, `SLOT_NONE` before the first need, `SLOT_DEAD` after exit.
    slot: Cell<u32>,
    /// Bytes left before the next Poisson sample (≤ 0: take one).
    pub(crate) sample_left: Cell<i64>,
    /// xorshift state for the sampler's exponential intervals.
    pub(crate) rng: Cell<u64>,
    /// Countdown of allocations to the next guard-page sample (Full).
    pub(crate) guard_left: Cell<u32>,
    /// Countdown of allocations to the next backtrace (Full, 1 in N).
    pub(crate) stack_left: Cell<u32>,
    /// The thread's stack `[stack_lo, stack_hi)`; `stack_hi` 0 = not yet read.
    stack_lo: Cell<usize>,
    stack_hi: Cell<usize>,
    /// The thread's unwind-rule cache (see `stacks`), null until first needed.
    pub(crate) unwind_cache: Cell<*mut u8>,
}

thread_local! {
    static THREAD: ThreadState = const {
        ThreadState {
            in_debug: Cell::new(false),
            component: Cell::new(0),
            id: Cell::new(0),
            slot: Cell::new(SLOT_NONE),
            sample_left: Cell::new(0),
            rng: Cell::new(0),
            guard_left: Cell::new(0),
            stack_left: Cell::new(0),
            stack_lo: Cell::new(0),
            stack_hi: Cell::new(0),
            unwind_cache: Cell::new(core::ptr::null_mut()),
        }
    };
    static EXIT: SlotRelease = const { SlotRelease };
}

static NEXT_THREAD: AtomicU32 = AtomicU32::new(1);
/// Owner thread id of each slot (0 = free); slot 0 is never owned.
static OWNERS: [AtomicU32; MAX_SLOTS] = [const { AtomicU32::new(0) }; MAX_SLOTS];
/// One past the highest slot ever handed out (readers fold `0..HIGH`).
static HIGH: AtomicU32 = AtomicU32::new(1);

/// Runs `f` on the calling thread's state.
#[inline(always)]
pub(crate) fn with<R>(f: impl FnOnce(&ThreadState) -> R) -> R {
    THREAD.with(f)
}

/// Runs `f` with the reentrancy flag set: allocations made meanwhile by this
/// thread (unwinder caches, report and profile formatting) are passed through
/// untracked, and no debugger lock is taken by them.
pub(crate) fn guarded<R>(f: impl FnOnce() -> R) -> R {
    let prev = THREAD.with(|t| t.in_debug.replace(true));
    let r = f();
    THREAD.with(|t| t.in_debug.set(prev));
    r
}

/// A small unique id for the calling thread.
#[inline]
pub(crate) fn thread_id() -> u32 {
    THREAD.with(|t| {
        let id = t.id.get();
        if id != 0 {
            return id;
        }
        // Relaxed: a unique number.
        let id = NEXT_THREAD.fetch_add(1, Ordering::Relaxed).max(1);
        t.id.set(id);
        id
    })
}

/// The calling thread's slot (taking one on first use), or [`SHARED`].
#[inline(always)]
pub(crate) fn slot() -> usize {
    THREAD.with(|t| t.slot())
}

impl ThreadState {
    /// This thread's slot (taking one on first use), or [`SHARED`].
    #[inline(always)]
    pub(crate) fn slot(&self) -> usize {
        let s = self.slot.get();
        if s.wrapping_sub(1) < SLOT_DEAD - 1 {
            s as usize
        } else if s == SLOT_NONE {
            take_slot(self)
        } else {
            SHARED
        }
    }
}

/// Slots handed out so far are all below this.
pub(crate) fn high() -> usize {
    // Acquire: a slot's first writes happen after HIGH covers it.
    HIGH.load(Ordering::Acquire) as usize
}

#[cold]
#[inline(never)]
fn take_slot(t: &ThreadState) -> usize {
    let id = thread_id();
    // Mark first so a reentrant call (the exit guard's registration may
    // allocate) does not try again.
    t.slot.set(SLOT_DEAD);
    for (i, owner) in OWNERS.iter().enumerate().skip(1) {
        // Acquire: the previous owner's writes to the slot's data happen-before ours.
        if owner.load(Ordering::Relaxed) == 0
            && owner
                .compare_exchange(0, id, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            // AcqRel: readers that see HIGH past `i` may fold slot `i`.
            HIGH.fetch_max(i as u32 + 1, Ordering::AcqRel);
            // Registering the exit guard may allocate (a TLS destructor list):
            // with the slot marked DEAD meanwhile, that allocation uses SHARED.
            let registered = EXIT.try_with(|_| ()).is_ok();
            if !registered {
                // TLS is being torn down: no destructor would give the slot back.
                owner.store(0, Ordering::Release);
                return SHARED;
            }
            t.slot.set(i as u32);
            return i;
        }
    }
    SHARED
}

/// Gives the thread's slot back when the thread exits.
struct SlotRelease;

impl Drop for SlotRelease {
    fn drop(&mut self) {
        let _ = THREAD.try_with(|t| {
            let cache = t.unwind_cache.replace(core::ptr::null_mut());
            guarded(|| super::stacks::free_cache(cache));
            let s = t.slot.replace(SLOT_DEAD);
            if s != SLOT_NONE && s != SLOT_DEAD {
                super::state::slot_released(s as usize);
                // Release: this thread's writes to the slot happen-before the next owner's.
                OWNERS[s as usize].store(0, Ordering::Release);
            }
        });
    }
}

/// In a forked child only the forking thread exists: the slots of the others
/// are given back (their data stays; their pending work is applied by the
/// next owner or reader).
pub(crate) fn reset_in_child() {
    let me = THREAD.with(|t| t.slot.get());
    for (i, owner) in OWNERS.iter().enumerate().skip(1) {
        if i as u32 != me {
            // Relaxed: the child is single-threaded here.
            owner.store(0, Ordering::Relaxed);
        }
    }
}

/// The calling thread's stack `[lo, hi)` if `sp` lies in it (`None` on an
/// alternate signal stack or when the bounds cannot be read).
pub(crate) fn stack_bounds(sp: usize) -> Option<(usize, usize)> {
    THREAD.with(|t| {
        if t.stack_hi.get() == 0 {
            let (lo, hi) = read_stack_bounds(sp);
            t.stack_lo.set(lo);
            t.stack_hi.set(hi);
        }
        let (lo, hi) = (t.stack_lo.get(), t.stack_hi.get());
        (lo <= sp && sp < hi).then_some((sp, hi))
    })
}

#[cold]
fn read_stack_bounds(sp: usize) -> (usize, usize) {
    // SAFETY: `attr` is initialised by pthread_getattr_np before it is read and
    // destroyed afterwards; the calls have no other preconditions. glibc may
    // allocate inside (through its own malloc; the caller holds the
    // reentrancy flag in any case).
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) == 0 {
            let mut addr: *mut libc::c_void = core::ptr::null_mut();
            let mut size: libc::size_t = 0;
            let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
            libc::pthread_attr_destroy(&mut attr);
            let (lo, hi) = (addr as usize, addr as usize + size);
            if ok && lo <= sp && sp < hi {
                return (lo, hi);
            }
        }
    }
    (usize::MAX, 1) // unknown: no range contains a stack pointer
}
