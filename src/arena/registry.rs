//! The process-wide registry of live memory contexts: an intrusive list behind a
//! lock, so registering a context allocates nothing and walking it reads only
//! atomics of each context (never a context's chunks).

use core::ptr;

use super::context::Inner;
use crate::sync::Lock;

/// The list's first context (null when empty). The `reg_prev` / `reg_next`
/// links of registered contexts are part of the list too: they are read and
/// written only with [`REGISTRY`] held.
struct Head(*const Inner);

// SAFETY: the pointer is only followed with `REGISTRY` held, and it points at
// registered contexts, which stay live until they unregister (under the lock).
unsafe impl Send for Head {}

static REGISTRY: Lock<Head> = Lock::new(Head(ptr::null()));

/// Links `c` into the registry.
///
/// # Safety
/// `c` is a live, boxed context not yet registered; it stays at this address
/// until `unregister`.
pub(crate) unsafe fn register(c: &Inner) {
    let mut head = REGISTRY.lock();
    c.reg_next.set(head.0);
    c.reg_prev.set(ptr::null());
    if !head.0.is_null() {
        // SAFETY: registered contexts are live (they unregister before dying),
        // and their links are only touched with the registry held (we hold it).
        unsafe { (*head.0).reg_prev.set(c) };
    }
    head.0 = c;
}

/// Unlinks `c` from the registry.
///
/// # Safety
/// `c` was registered and not unregistered since.
pub(crate) unsafe fn unregister(c: &Inner) {
    let mut head = REGISTRY.lock();
    let (p, n) = (c.reg_prev.get(), c.reg_next.get());
    // SAFETY: we hold the registry; `p` and `n` are live registered contexts
    // (the caller's contract: `c` is registered, so its neighbours are too).
    unsafe {
        if p.is_null() {
            head.0 = n;
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
    let head = REGISTRY.lock();
    let mut c = head.0;
    while !c.is_null() {
        // SAFETY: we hold the registry; registered contexts are live.
        unsafe {
            f(&*c);
            c = (*c).reg_next.get();
        }
    }
}
