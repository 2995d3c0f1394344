//! Sampled guard pages (GWP-ASan style): one in N small allocations is placed at
//! the end of its own page, followed by a `PROT_NONE` guard page; freeing it
//! makes its page `PROT_NONE` too. An overflow or a use after free then faults
//! at once, and the SIGSEGV handler writes a report before the process dies
//! (or before the previous handler runs).
//!
//! The pool is process-wide (its blocks never reach an inner allocator), 128
//! slots, ~1 MiB of address space; slots are reused oldest-freed first.

use core::ptr;

use super::report::{RawReport, ReportKind};
use crate::sync::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use crate::sys;

const SLOTS: usize = 128;
const FREE: u32 = 0;
const LIVE: u32 = 1;
const FREED: u32 = 2;
const BUSY: u32 = 3;

struct Slot {
    state: AtomicU32,
    user: AtomicUsize,
    size: AtomicUsize,
    alloc_stack: AtomicU32,
    free_stack: AtomicU32,
    freed_at: AtomicU64,
}

static SLOT_META: [Slot; SLOTS] = [const {
    Slot {
        state: AtomicU32::new(FREE),
        user: AtomicUsize::new(0),
        size: AtomicUsize::new(0),
        alloc_stack: AtomicU32::new(0),
        free_stack: AtomicU32::new(0),
        freed_at: AtomicU64::new(0),
    }
}; SLOTS];
static BASE: AtomicUsize = AtomicUsize::new(0);
static INIT: AtomicU32 = AtomicU32::new(0); // 0 none, 1 in progress, 2 ready, 3 failed
static NEXT: AtomicUsize = AtomicUsize::new(0);
static HANDLER: AtomicBool = AtomicBool::new(false);
/// Faults caught in the pool (for tests and stats).
pub(crate) static FAULTS: AtomicU64 = AtomicU64::new(0);

fn page() -> usize {
    sys::page_size()
}

fn pool() -> Option<usize> {
    // Acquire: pairs with the Release that publishes BASE.
    match INIT.load(Ordering::Acquire) {
        2 => return Some(BASE.load(Ordering::Relaxed)),
        3 => return None,
        _ => {}
    }
    if INIT
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Acquire)
        .is_err()
    {
        return None; // another thread is setting up: skip sampling this time
    }
    let len = SLOTS * 2 * page();
    let Some(m) = sys::map(len) else {
        INIT.store(3, Ordering::Release);
        return None;
    };
    let base = m.as_ptr() as usize;
    for i in 0..SLOTS {
        // SAFETY: the guard page of slot i lies inside our fresh mapping.
        unsafe {
            libc::mprotect(
                (base + (2 * i + 1) * page()) as *mut libc::c_void,
                page(),
                libc::PROT_NONE,
            )
        };
    }
    install_handler();
    // Relaxed + Release: BASE is published by the Release store of INIT.
    BASE.store(base, Ordering::Relaxed);
    INIT.store(2, Ordering::Release);
    Some(base)
}

/// Places a block of `size` bytes (aligned to `align`, with `header` bytes in
/// front) at the end of a guarded page; returns the user address.
pub(crate) fn alloc(size: usize, align: usize, header: usize, alloc_stack: u32) -> Option<usize> {
    if size == 0 || align > 64 || size + header + align > page() {
        return None;
    }
    let base = pool()?;
    // Relaxed: a rotating start hint.
    let start = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut oldest: Option<(usize, u64)> = None;
    for k in 0..SLOTS {
        let i = (start + k) % SLOTS;
        let s = &SLOT_META[i];
        // Acquire: the slot's fields written before its state are ours to reuse.
        match s.state.load(Ordering::Acquire) {
            FREE if s
                .state
                .compare_exchange(FREE, BUSY, Ordering::Acquire, Ordering::Relaxed)
                .is_ok() =>
            {
                return Some(place(base, i, size, align, alloc_stack));
            }
            FREED => {
                let t = s.freed_at.load(Ordering::Relaxed);
                if oldest.is_none_or(|(_, o)| t < o) {
                    oldest = Some((i, t));
                }
            }
            _ => {}
        }
    }
    let (i, _) = oldest?;
    if SLOT_META[i]
        .state
        .compare_exchange(FREED, BUSY, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return None;
    }
    let data = base + 2 * i * page();
    // SAFETY: slot i's data page is ours (state BUSY); make it accessible again.
    unsafe {
        libc::mprotect(
            data as *mut libc::c_void,
            page(),
            libc::PROT_READ | libc::PROT_WRITE,
        )
    };
    Some(place(base, i, size, align, alloc_stack))
}

fn place(base: usize, i: usize, size: usize, align: usize, alloc_stack: u32) -> usize {
    let page_end = base + (2 * i + 1) * page();
    let user = (page_end - size) & !(align - 1);
    let s = &SLOT_META[i];
    // Relaxed: published by the Release store of `state`.
    s.user.store(user, Ordering::Relaxed);
    s.size.store(size, Ordering::Relaxed);
    s.alloc_stack.store(alloc_stack, Ordering::Relaxed);
    s.free_stack.store(0, Ordering::Relaxed);
    s.state.store(LIVE, Ordering::Release);
    user
}

/// Whether `addr` lies in the guarded pool.
#[inline]
pub(crate) fn contains(addr: usize) -> bool {
    // Relaxed: BASE never changes once set; 0 means no pool.
    let base = BASE.load(Ordering::Relaxed);
    base != 0 && addr >= base && addr < base + SLOTS * 2 * page()
}

/// Whether `user` is a live pooled block (its page is accessible).
pub(crate) fn is_live(user: usize) -> bool {
    let base = BASE.load(Ordering::Relaxed);
    let i = (user - base) / (2 * page());
    let s = &SLOT_META[i];
    // Relaxed + Acquire: the slot's fields are published by its state.
    s.state.load(Ordering::Acquire) == LIVE && s.user.load(Ordering::Relaxed) == user
}

/// Frees a pooled block: its page becomes inaccessible. Returns false if `user`
/// is not a live pooled block (a double or invalid free).
pub(crate) fn free(user: usize, free_stack: u32) -> bool {
    let base = BASE.load(Ordering::Relaxed);
    let i = (user - base) / (2 * page());
    let s = &SLOT_META[i];
    if s.user.load(Ordering::Relaxed) != user
        || s.state
            .compare_exchange(LIVE, BUSY, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
    {
        return false;
    }
    let data = base + 2 * i * page();
    // SAFETY: slot i's data page is ours (state BUSY); nothing may touch it now.
    unsafe { libc::mprotect(data as *mut libc::c_void, page(), libc::PROT_NONE) };
    s.free_stack.store(free_stack, Ordering::Relaxed);
    s.freed_at.store(sys::now_ns(), Ordering::Relaxed);
    s.state.store(FREED, Ordering::Release);
    true
}

// SAFETY: `sigaction` is plain data (integers, a function address, a mask);
// all-zero is SIG_DFL with no flags.
static mut OLD_SEGV: libc::sigaction = unsafe { core::mem::zeroed() };
// SAFETY: as above.
static mut OLD_BUS: libc::sigaction = unsafe { core::mem::zeroed() };

fn install_handler() {
    if HANDLER.swap(true, Ordering::SeqCst) {
        return;
    }
    // SAFETY: installs a SA_SIGINFO handler; the previous actions are saved in
    // statics written once here, before any fault in the pool can happen.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_fault as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGSEGV, &sa, ptr::addr_of_mut!(OLD_SEGV));
        libc::sigaction(libc::SIGBUS, &sa, ptr::addr_of_mut!(OLD_BUS));
    }
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    if contains(addr) {
        FAULTS.fetch_add(1, Ordering::SeqCst);
        let base = BASE.load(Ordering::Relaxed);
        let slot_index = (addr - base) / (2 * page());
        let in_guard = (addr - base) / page() % 2 == 1;
        let s = &SLOT_META[slot_index];
        let user = s.user.load(Ordering::Relaxed);
        let mut r = RawReport::new(ReportKind::GuardPageFault, user);
        r.size = s.size.load(Ordering::Relaxed);
        r.offset = addr as isize - user as isize;
        r.alloc_stack = s.alloc_stack.load(Ordering::Relaxed);
        r.free_stack = s.free_stack.load(Ordering::Relaxed);
        r.print();
        let what: &[u8] = if in_guard {
            b"rustydb-memory debug: access past the end of a sampled block (heap overflow)\n"
        } else {
            b"rustydb-memory debug: access to a freed sampled block (use after free)\n"
        };
        // SAFETY: write(2) is async-signal-safe; the buffer is a static string.
        unsafe { libc::write(2, what.as_ptr().cast(), what.len()) };
    }
    // Hand the fault to the previous disposition: restore it and return, so the
    // faulting instruction re-runs under it (default: the process dies).
    // SAFETY: the saved actions were written before the handler was installed.
    unsafe {
        let old = if sig == libc::SIGBUS {
            ptr::addr_of!(OLD_BUS)
        } else {
            ptr::addr_of!(OLD_SEGV)
        };
        if (*old).sa_flags & libc::SA_SIGINFO != 0 && (*old).sa_sigaction > libc::SIG_IGN {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                core::mem::transmute((*old).sa_sigaction);
            f(sig, info, ctx);
        } else {
            libc::sigaction(sig, old, ptr::null_mut());
        }
    }
}
