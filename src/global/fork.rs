//! `pthread_atfork` handlers: before `fork` every heap lock is taken (in lock
//! order), so the child never inherits a lock held by a thread that does not
//! exist in it; afterwards the parent releases them and the child resets them.

use super::heap::HEAP;
use crate::sync::{AtomicU32, Ordering};

/// 0 = not installed, 1 = being installed, 2 = installed.
static STATE: AtomicU32 = AtomicU32::new(0);

/// Installs the handlers once per process. Returns only once they are
/// installed, so no thread can fork while its caches are live but unprotected.
pub(crate) fn install() {
    // Acquire: pairs with the Release below.
    if STATE.load(Ordering::Acquire) == 2 {
        return;
    }
    if STATE
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Acquire)
        .is_ok()
    {
        // SAFETY: the three handlers are `extern "C"` functions without arguments
        // that never unwind; registering them has no other precondition.
        unsafe {
            libc::pthread_atfork(Some(prepare), Some(parent), Some(child));
        }
        // Release: the registration happens-before any thread seeing 2.
        STATE.store(2, Ordering::Release);
        return;
    }
    while STATE.load(Ordering::Acquire) != 2 {
        crate::sync::spin_hint();
    }
}

extern "C" fn prepare() {
    HEAP.for_each_lock(|l| l.lock());
    crate::large::fork_prepare();
}

extern "C" fn parent() {
    crate::large::fork_parent();
    HEAP.for_each_lock(|l| l.unlock());
}

extern "C" fn child() {
    crate::large::fork_child();
    HEAP.for_each_lock(|l| l.reset_in_child());
    super::cache_registry::forget_other_threads();
    super::purger::after_fork_in_child();
}
