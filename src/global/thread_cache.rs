//! Per-thread caches: for each size class a *loaded* and a *previous* magazine
//! (Bonwick's two-magazine scheme: swap before touching the depot, so a thread
//! oscillating around a magazine boundary never thrashes the depot).
//!
//! The cache lives in a `const`-initialised `thread_local!` of a type without
//! `Drop`, so reaching it is one TLS-relative load. A second thread-local, with a
//! `Drop`, is touched on the first slow path to flush the cache at thread exit;
//! after that the cache is *dead* and the thread allocates and frees straight
//! through the slabs (still correct during and after TLS teardown).

use core::cell::Cell;
use core::ptr;

use super::heap::{HEAP, magazine_cap};
use crate::slab::magazine::Magazine;
use crate::slab::size_class::NUM_CLASSES;
use crate::sync::{AtomicPtr, Ordering};

/// A magazine of capacity 0 that every fresh or dead cache points at, so the
/// fast paths need no null check: it is always "empty" for alloc and "full" for
/// free. Never written.
struct Sentinel(Magazine);
// SAFETY: the sentinel is never written (count and cap stay 0), so sharing it is sound.
unsafe impl Sync for Sentinel {}
static SENTINEL: Sentinel = Sentinel(Magazine::new(0));

#[inline(always)]
fn sentinel() -> *mut Magazine {
    ptr::addr_of!(SENTINEL.0).cast_mut()
}

const FRESH: u8 = 0;
const LIVE: u8 = 1;
const DEAD: u8 = 2;

/// One class's pair of magazines.
///
/// Invariant: `loaded` and `previous` are the sentinel or magazines of this
/// class owned by this cache; `previous` is always empty or full (Bonwick).
/// Atomic only so statistics can read them from other threads (relaxed).
pub(crate) struct ClassCache {
    pub(crate) loaded: AtomicPtr<Magazine>,
    pub(crate) previous: AtomicPtr<Magazine>,
}

/// A thread's cache.
pub(crate) struct ThreadCache {
    pub(crate) classes: [ClassCache; NUM_CLASSES],
    state: Cell<u8>,
    ticks: Cell<u32>,
    /// Registry links, guarded by `HEAP.registry`.
    pub(crate) next: Cell<*const ThreadCache>,
    prev: Cell<*const ThreadCache>,
}

impl ThreadCache {
    const fn new() -> Self {
        Self {
            classes: [const {
                ClassCache {
                    loaded: AtomicPtr::new(ptr::addr_of!(SENTINEL.0).cast_mut()),
                    previous: AtomicPtr::new(ptr::addr_of!(SENTINEL.0).cast_mut()),
                }
            }; NUM_CLASSES],
            state: Cell::new(FRESH),
            ticks: Cell::new(0),
            next: Cell::new(ptr::null()),
            prev: Cell::new(ptr::null()),
        }
    }
}

thread_local! {
    static CACHE: ThreadCache = const { ThreadCache::new() };
    static EXIT: ExitGuard = const { ExitGuard };
}

/// Head of the registry of live caches (guarded by `HEAP.registry`).
struct RegistryHead(Cell<*const ThreadCache>);
// SAFETY: only accessed with `HEAP.registry` held.
unsafe impl Sync for RegistryHead {}
static REGISTRY: RegistryHead = RegistryHead(Cell::new(ptr::null()));

/// Flushes the thread's cache when the thread exits.
struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        CACHE.with(|tc| {
            // An exiting thread's cached objects go back to their slabs (not to the
            // depot, where nothing may ever ask for them again), so their memory can
            // be purged; then the periodic depot trim gets a chance to run.
            flush_to_slabs(tc);
            tc.state.set(DEAD);
            unregister(tc);
        });
        HEAP.maybe_trim();
    }
}

/// Pops an object of `class` from the calling thread's cache (the fast path).
#[inline(always)]
pub(crate) fn alloc(class: usize) -> *mut u8 {
    CACHE.with(|tc| {
        // SAFETY: `class < NUM_CLASSES` (callers derive it from the class table).
        let cc = unsafe { tc.classes.get_unchecked(class) };
        // Relaxed: only this thread writes its cache (see ClassCache).
        let m = cc.loaded.load(Ordering::Relaxed);
        // SAFETY: `m` is the sentinel or a magazine owned by this cache.
        unsafe {
            let n = (*m).len();
            if n != 0 {
                (*m).set_len(n - 1);
                return *(*m).rounds.get_unchecked(n - 1);
            }
        }
        alloc_slow(tc, class)
    })
}

/// Pushes the free object `p` of `class` into the calling thread's cache.
///
/// # Safety
/// `p` is the start of an object of `class` that is no longer used.
#[inline(always)]
pub(crate) unsafe fn free(class: usize, p: *mut u8) {
    CACHE.with(|tc| {
        // SAFETY: as in `alloc`.
        let cc = unsafe { tc.classes.get_unchecked(class) };
        // Relaxed: as in `alloc`.
        let m = cc.loaded.load(Ordering::Relaxed);
        // SAFETY: as in `alloc`; `n < cap <= MAG_MAX` bounds the write.
        unsafe {
            let n = (*m).len();
            if n < (*m).cap as usize {
                *(*m).rounds.get_unchecked_mut(n) = p;
                (*m).set_len(n + 1);
                return;
            }
            free_slow(tc, class, p)
        }
    })
}

/// Returns false (and the caller goes straight to the slabs) if the cache is dead.
#[inline]
fn ensure_live(tc: &ThreadCache) -> bool {
    match tc.state.get() {
        LIVE => {
            let t = tc.ticks.get().wrapping_add(1);
            tc.ticks.set(t);
            if t.is_multiple_of(64) {
                HEAP.maybe_trim();
            }
            true
        }
        FRESH => register(tc),
        _ => false,
    }
}

#[cold]
fn register(tc: &ThreadCache) -> bool {
    crate::options::init();
    super::fork::install();
    // Touching EXIT registers its destructor; if TLS is already being torn down
    // this fails and the thread stays uncached.
    if EXIT.try_with(|_| ()).is_err() {
        tc.state.set(DEAD);
        return false;
    }
    let _g = HEAP.registry.guard();
    let head = REGISTRY.0.get();
    tc.next.set(head);
    tc.prev.set(ptr::null());
    if !head.is_null() {
        // SAFETY: registry lock held; registered caches are live TLS blocks
        // (a thread unregisters before its TLS goes away).
        unsafe { (*head).prev.set(tc) };
    }
    REGISTRY.0.set(tc);
    tc.state.set(LIVE);
    true
}

fn unregister(tc: &ThreadCache) {
    let _g = HEAP.registry.guard();
    let (p, n) = (tc.prev.get(), tc.next.get());
    // SAFETY: registry lock held; neighbours are live registered caches.
    unsafe {
        if p.is_null() {
            if ptr::eq(REGISTRY.0.get(), tc) {
                REGISTRY.0.set(n);
            }
        } else {
            (*p).next.set(n);
        }
        if !n.is_null() {
            (*n).prev.set(p);
        }
    }
}

/// Calls `f` on every live cache, with the registry lock held.
pub(crate) fn for_each_cache(mut f: impl FnMut(&ThreadCache)) {
    let _g = HEAP.registry.guard();
    let mut c = REGISTRY.0.get();
    while !c.is_null() {
        // SAFETY: registry lock held; registered caches are live.
        unsafe {
            f(&*c);
            c = (*c).next.get();
        }
    }
}

#[cold]
#[inline(never)]
fn alloc_slow(tc: &ThreadCache, class: usize) -> *mut u8 {
    if !ensure_live(tc) {
        return HEAP.alloc_direct(class);
    }
    let cc = &tc.classes[class];
    // Relaxed: own cache.
    let loaded = cc.loaded.load(Ordering::Relaxed);
    let previous = cc.previous.load(Ordering::Relaxed);
    // SAFETY: `loaded`/`previous` are owned by this cache (ClassCache invariant);
    // magazines obtained from the depot or pool become ours.
    unsafe {
        // 1. The previous magazine is full: swap.
        if (*previous).cap != 0 && (*previous).is_full() {
            cc.loaded.store(previous, Ordering::Relaxed);
            cc.previous.store(loaded, Ordering::Relaxed);
            return pop(previous);
        }
        // 2. A full magazine from the depot, for our empty loaded one.
        let give = if loaded == sentinel() {
            ptr::null_mut()
        } else {
            loaded
        };
        let full = HEAP.depots[class].exchange_for_full(give);
        if !full.is_null() {
            cc.loaded.store(full, Ordering::Relaxed);
            return pop(full);
        }
        // 3. Fill a magazine from the slabs.
        let m = if loaded == sentinel() {
            HEAP.pool.get(magazine_cap(class))
        } else {
            loaded
        };
        if m.is_null() {
            return HEAP.alloc_direct(class);
        }
        cc.loaded.store(m, Ordering::Relaxed);
        let cap = (*m).cap as usize;
        let n =
            HEAP.central[class].alloc_batch(class, &HEAP.segments, &mut (&mut (*m).rounds)[..cap]);
        if n == 0 {
            return ptr::null_mut();
        }
        (*m).set_len(n);
        pop(m)
    }
}

/// # Safety
/// `m` is a non-empty magazine owned by the caller.
#[inline]
unsafe fn pop(m: *mut Magazine) -> *mut u8 {
    // SAFETY: non-empty (caller), so `n - 1` indexes a valid round.
    unsafe {
        let n = (*m).len() - 1;
        (*m).set_len(n);
        (*m).rounds[n]
    }
}

/// # Safety
/// `m` is a non-full magazine owned by the caller; `p` a free object of its class.
#[inline]
unsafe fn push(m: *mut Magazine, p: *mut u8) {
    // SAFETY: non-full (caller), so `n` indexes a valid round.
    unsafe {
        let n = (*m).len();
        (*m).rounds[n] = p;
        (*m).set_len(n + 1);
    }
}

#[cold]
#[inline(never)]
unsafe fn free_slow(tc: &ThreadCache, class: usize, p: *mut u8) {
    if !ensure_live(tc) {
        // SAFETY: forwarded from `free`.
        unsafe { HEAP.free_direct(class, p) };
        return;
    }
    let cc = &tc.classes[class];
    // Relaxed: own cache.
    let loaded = cc.loaded.load(Ordering::Relaxed);
    let previous = cc.previous.load(Ordering::Relaxed);
    // SAFETY: as in `alloc_slow`; `p` is a free object of `class` (caller).
    unsafe {
        // 1. The previous magazine is empty: swap.
        if (*previous).cap != 0 && (*previous).len() == 0 {
            cc.loaded.store(previous, Ordering::Relaxed);
            cc.previous.store(loaded, Ordering::Relaxed);
            push(previous, p);
            return;
        }
        // 2. Loaded is full (or the sentinel). Hand a full magazine to the depot
        //    and get an empty one back.
        let empty = if loaded == sentinel() {
            ptr::null_mut()
        } else if previous == sentinel() {
            cc.previous.store(loaded, Ordering::Relaxed);
            ptr::null_mut()
        } else {
            let e = HEAP.depots[class].exchange_for_empty(previous);
            cc.previous.store(loaded, Ordering::Relaxed);
            e
        };
        let empty = if empty.is_null() {
            HEAP.pool.get(magazine_cap(class))
        } else {
            empty
        };
        if empty.is_null() {
            // No memory even for a magazine: free straight to the slab.
            cc.loaded.store(sentinel(), Ordering::Relaxed);
            HEAP.free_direct(class, p);
            return;
        }
        cc.loaded.store(empty, Ordering::Relaxed);
        push(empty, p);
    }
}

/// Returns every magazine of the cache to the depot (partial ones are first
/// emptied into the slabs). The cache stays usable.
pub(crate) fn flush(tc: &ThreadCache) {
    for (class, cc) in tc.classes.iter().enumerate() {
        for slot in [&cc.loaded, &cc.previous] {
            // Relaxed: own cache.
            let m = slot.swap(sentinel(), Ordering::Relaxed);
            if m == sentinel() {
                continue;
            }
            // SAFETY: `m` is ours; after flushing partial magazines they are empty,
            // so `put` receives a full or empty magazine.
            unsafe {
                if !(*m).is_full() {
                    HEAP.flush_magazine(class, m);
                }
                HEAP.depots[class].put(m);
            }
        }
    }
}

/// Empties every magazine of the cache into the slabs and returns the
/// magazines (now empty) to the depot.
fn flush_to_slabs(tc: &ThreadCache) {
    for (class, cc) in tc.classes.iter().enumerate() {
        for slot in [&cc.loaded, &cc.previous] {
            // Relaxed: own cache.
            let m = slot.swap(sentinel(), Ordering::Relaxed);
            if m == sentinel() {
                continue;
            }
            // SAFETY: `m` is ours; emptied, it is a valid "empty" magazine for the depot.
            unsafe {
                HEAP.flush_magazine(class, m);
                HEAP.depots[class].put(m);
            }
        }
    }
}

/// Flushes the calling thread's cache (used by `purge`).
pub(crate) fn flush_current() {
    let _ = CACHE.try_with(|tc| {
        if tc.state.get() == LIVE {
            flush(tc);
        }
    });
}
