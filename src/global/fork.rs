//! `pthread_atfork` handlers: before `fork` every heap lock is taken (in lock
//! order), so the child never inherits a lock held by a thread that does not
//! exist in it; afterwards the parent releases them and the child resets them.

use super::heap::HEAP;
use crate::sync::{AtomicBool, Ordering};

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the handlers once per process.
pub(crate) fn install() {
    // Relaxed + swap: only one caller installs; the handlers need no data from it.
    if INSTALLED.load(Ordering::Relaxed) || INSTALLED.swap(true, Ordering::Relaxed) {
        return;
    }
    // SAFETY: the three handlers are `extern "C"` functions without arguments
    // that never unwind; registering them has no other precondition.
    unsafe {
        libc::pthread_atfork(Some(prepare), Some(parent), Some(child));
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
}
