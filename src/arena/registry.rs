//! The process-wide registry of live memory contexts: an intrusive list behind a
//! lock, so registering a context allocates nothing and walking it reads only
//! atomics of each context (never a context's chunks).

use core::cell::Cell;
use core::ptr;

use super::context::Inner;
use crate::sync::RawLock;

struct Head(Cell<*const Inner>);
// SAFETY: only accessed with LOCK held.
unsafe impl Sync for Head {}

static LOCK: RawLock = RawLock::new();
static HEAD: Head = Head(Cell::new(ptr::null()));

/// Links `c` into the registry.
///
/// # Safety
/// `c` is a live, boxed context not yet registered; it stays at this address
/// until `unregister`.
pub(crate) unsafe fn register(c: &Inner) {
    let _g = LOCK.guard();
    let head = HEAD.0.get();
    c.reg_next.set(head);
    c.reg_prev.set(ptr::null());
    if !head.is_null() {
        // SAFETY: registered contexts are live (they unregister before dying).
        unsafe { (*head).reg_prev.set(c) };
    }
    HEAD.0.set(c);
}

/// Unlinks `c` from the registry.
///
/// # Safety
/// `c` was registered and not unregistered since.
pub(crate) unsafe fn unregister(c: &Inner) {
    let _g = LOCK.guard();
    let (p, n) = (c.reg_prev.get(), c.reg_next.get());
    // SAFETY: lock held; neighbours are live registered contexts.
    unsafe {
        if p.is_null() {
            HEAD.0.set(n);
        } else {
            (*p).reg_next.set(n);
        }
        if !n.is_null() {
            (*n).reg_prev.set(p);
        }
    }
}

/// Calls `f` on every live context, with the registry lock held (so none of
/// them can be dropped meanwhile). `f` may read only the context's shared
/// (atomic) fields.
pub(crate) fn for_each(mut f: impl FnMut(&Inner)) {
    let _g = LOCK.guard();
    let mut c = HEAD.0.get();
    while !c.is_null() {
        // SAFETY: lock held; registered contexts are live.
        unsafe {
            f(&*c);
            c = (*c).reg_next.get();
        }
    }
}
