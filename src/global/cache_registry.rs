//! The registry of live thread caches: an intrusive list behind `HEAP.registry`,
//! so registering a thread allocates nothing. Statistics and the background
//! purger walk it; a thread registers on its first slow path and unregisters
//! as it exits.

use core::ptr;

use super::heap::HEAP;
use super::thread_cache::{CACHE, DEAD, LIVE, REGISTERING, ThreadCache, flush_to_slabs};

/// The first cache of the registry of live caches (null when empty), guarded
/// by `HEAP.registry`. The `next` / `prev` links of registered caches are part
/// of the list too: they are read and written only with that lock held.
pub(crate) struct RegistryHead(*const ThreadCache);

impl RegistryHead {
    pub(crate) const EMPTY: Self = Self(ptr::null());
}

// SAFETY: the pointer is only followed with `HEAP.registry` held, and it points
// at registered caches, which stay live until they unregister (under the lock).
unsafe impl Send for RegistryHead {}

/// Registers the calling thread's cache `tc` (its first slow path); false if
/// the thread must stay uncached.
#[cold]
pub(crate) fn register(tc: &ThreadCache) -> bool {
    // Nested allocations (below) see REGISTERING and go straight to the slabs.
    tc.state.set(REGISTERING);
    crate::options::init();
    super::fork::install();
    if !super::thread_exit::arm() {
        tc.state.set(DEAD);
        return false;
    }
    let mut head = HEAP.registry.lock();
    tc.next.set(head.0);
    tc.prev.set(ptr::null());
    if !head.0.is_null() {
        // SAFETY: we hold the registry; registered caches are live TLS blocks
        // (a thread unregisters before its TLS goes away).
        unsafe { (*head.0).prev.set(tc) };
    }
    head.0 = tc;
    drop(head);
    if crate::options::owned_slabs() {
        tc.owner.set(crate::slab::owner::claim());
    }
    tc.state.set(LIVE);
    super::purger::start_if_asked();
    true
}

fn unregister(tc: &ThreadCache) {
    let mut head = HEAP.registry.lock();
    let (p, n) = (tc.prev.get(), tc.next.get());
    // SAFETY: we hold the registry; neighbours are live registered caches.
    unsafe {
        if p.is_null() {
            if ptr::eq(head.0, tc) {
                head.0 = n;
            }
        } else {
            (*p).next.set(n);
        }
        if !n.is_null() {
            (*n).prev.set(p);
        }
    }
}

/// Flushes the calling thread's cache as the thread exits (the exit hook).
pub(crate) fn thread_exited() {
    CACHE.with(|tc| {
        if tc.state.get() != LIVE {
            return;
        }
        // Unregistered first, so the purger no longer takes magazines from it;
        // then its cached objects go back to their slabs (not to the depot,
        // where nothing may ever ask for them again), so their memory can be
        // purged; then the periodic depot trim gets a chance to run.
        unregister(tc);
        flush_to_slabs(tc);
        // Its slabs with free objects become shared (others may adopt them), and
        // the slot is free for the next thread; frees from now on go to the slabs.
        tc.state.set(DEAD);
        HEAP.release_owner(tc.owner.replace(0));
    });
    HEAP.maybe_trim();
}

/// In a child after `fork`: the registry still lists the caches of the
/// parent's other threads, which do not exist here. Their stacks go to glibc's
/// stack cache, to be reused (TLS re-initialised) or unmapped by the child's
/// next threads, so the registry must not keep them: they are unlinked. Their
/// cached objects are abandoned, not flushed (as jemalloc abandons other
/// threads' tcaches): a thread may have been in the middle of a lock-free
/// magazine push or pop when `fork` copied it, so its magazines are not known
/// to be consistent, and flushing them could put a half-written round on a free
/// list. Called by the `fork` child handler, after the heap's locks were reset,
/// while the child has one thread.
pub(crate) fn forget_other_threads() {
    let own = CACHE.with(ptr::from_ref);
    let mut head = HEAP.registry.lock();
    let mut c = head.0;
    let mut kept = ptr::null();
    while !c.is_null() {
        // SAFETY: we hold the registry; the parent's registered caches are still
        // mapped in the child (the address space was copied); only their
        // registry link, which the registry lock guards, is read.
        unsafe {
            let next = (*c).next.get();
            if ptr::eq(c, own) {
                kept = c;
            }
            c = next;
        }
    }
    if !kept.is_null() {
        // SAFETY: `kept` is the calling thread's own registered cache.
        unsafe {
            (*kept).next.set(ptr::null());
            (*kept).prev.set(ptr::null());
        }
    }
    head.0 = kept;
    drop(head);
    // Their slab owner slots too: their slabs with free objects become shared.
    let keep = CACHE.with(|tc| tc.owner.get());
    HEAP.release_other_owners(keep);
}

/// Calls `f` on every live cache, with the registry lock held.
pub(crate) fn for_each_cache(mut f: impl FnMut(&ThreadCache)) {
    let head = HEAP.registry.lock();
    let mut c = head.0;
    while !c.is_null() {
        // SAFETY: we hold the registry; registered caches are live.
        unsafe {
            f(&*c);
            c = (*c).next.get();
        }
    }
}
