//! Per-thread caches: for each size class a *loaded* and a *previous* magazine
//! (Bonwick's two-magazine scheme: swap before touching the depot, so a thread
//! oscillating around a magazine boundary never thrashes the depot).
//!
//! The cache lives in a `const`-initialised `thread_local!` of a type without
//! `Drop`, so reaching it is one TLS-relative load. The first slow path of a
//! thread registers it (`cache_registry.rs`) and arms an exit hook
//! (`thread_exit.rs`) that flushes it at thread exit; after that the cache is
//! *dead* and the thread allocates and frees straight through the slabs (still
//! correct during and after TLS teardown).
//!
//! Ownership of a magazine slot. The fast paths read `loaded` with a plain
//! (relaxed) load and touch the magazine's rounds and count; only the owner
//! thread ever touches those. The background purger may *take* a magazine out
//! of an idle thread's `loaded` or `previous` slot (`idle.rs`): it swaps the
//! sentinel in and hands the magazine back through the thread's `stolen` list,
//! never reading or writing its rounds. So every slow path of the owner takes
//! its magazines out with a `swap` too (whichever swap comes first gets the
//! magazine), works on them while no slot holds them, and stores them back
//! (`Release`, pairing with the purger's `Acquire` swap).

use core::cell::Cell;
use core::ptr;

use super::heap::{HEAP, magazine_cap};
use crate::options::Options;
use crate::slab::magazine::Magazine;
use crate::slab::owner::Owner;
use crate::slab::segment::SegmentHeader;
use crate::slab::size_class::NUM_CLASSES;
use crate::sync::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// A magazine of capacity 0 that every fresh or dead cache points at, so the
/// fast paths need no null check: it is always "empty" for alloc and "full" for
/// free. Never written.
struct Sentinel(Magazine);
// SAFETY: the sentinel is never written (count and cap stay 0), so sharing it is sound.
unsafe impl Sync for Sentinel {}
static SENTINEL: Sentinel = Sentinel(Magazine::new(0));

#[inline(always)]
pub(crate) fn sentinel() -> *mut Magazine {
    ptr::addr_of!(SENTINEL.0).cast_mut()
}

pub(crate) const FRESH: u8 = 0;
pub(crate) const LIVE: u8 = 1;
pub(crate) const DEAD: u8 = 2;
/// Being registered: allocations nested in the registration (the exit hook's
/// `calloc`, `pthread_atfork`'s) are served without the cache.
pub(crate) const REGISTERING: u8 = 3;

/// One class's pair of magazines.
///
/// Invariant: `loaded`, `previous` and `remote` are the sentinel or magazines
/// of this class owned by this cache; `previous` is always empty or full
/// (Bonwick); `remote` is never full and holds only objects of other owners'
/// slabs, which go home to those slabs, never to an allocation of this thread.
/// Atomic so statistics can read them and the purger can take them from an idle
/// thread (see the module notes).
pub(crate) struct ClassCache {
    pub(crate) loaded: AtomicPtr<Magazine>,
    pub(crate) previous: AtomicPtr<Magazine>,
    pub(crate) remote: AtomicPtr<Magazine>,
    /// Rounds of this class in the cache's `stolen` list (statistics).
    pub(crate) stolen_rounds: AtomicU32,
}

/// A thread's cache.
pub(crate) struct ThreadCache {
    pub(crate) classes: [ClassCache; NUM_CLASSES],
    pub(crate) state: Cell<u8>,
    /// The slab owner slot this cache claimed when it registered (0: none).
    pub(crate) owner: Cell<Owner>,
    ticks: Cell<u32>,
    /// The purger's epoch at this thread's latest slow path (written by the
    /// owner, read by the purger to tell an idle thread).
    pub(crate) active_epoch: AtomicU64,
    /// Magazines the purger took from this thread while it was idle, linked
    /// through `next`; the owner flushes them on its next slow path.
    pub(crate) stolen: AtomicPtr<Magazine>,
    /// Registry links: part of the list headed by `HEAP.registry`, read and
    /// written only with it held.
    pub(crate) next: Cell<*const ThreadCache>,
    pub(crate) prev: Cell<*const ThreadCache>,
}

impl ThreadCache {
    const fn new() -> Self {
        Self {
            classes: [const {
                ClassCache {
                    loaded: AtomicPtr::new(ptr::addr_of!(SENTINEL.0).cast_mut()),
                    previous: AtomicPtr::new(ptr::addr_of!(SENTINEL.0).cast_mut()),
                    remote: AtomicPtr::new(ptr::addr_of!(SENTINEL.0).cast_mut()),
                    stolen_rounds: AtomicU32::new(0),
                }
            }; NUM_CLASSES],
            state: Cell::new(FRESH),
            owner: Cell::new(0),
            ticks: Cell::new(0),
            active_epoch: AtomicU64::new(0),
            stolen: AtomicPtr::new(ptr::null_mut()),
            next: Cell::new(ptr::null()),
            prev: Cell::new(ptr::null()),
        }
    }
}

thread_local! {
    pub(crate) static CACHE: ThreadCache = const { ThreadCache::new() };
}

/// Pops an object of `class` from the calling thread's cache (the fast path),
/// resolving the default options on a miss if nothing resolved them yet.
#[inline(always)]
pub(crate) fn alloc(class: usize) -> *mut u8 {
    alloc_with(class, &DEFAULT_OPTIONS)
}

/// The options of the paths that carry none (`malloc`, `SharedHeap`).
static DEFAULT_OPTIONS: Options = Options::new();

/// [`alloc`] for a `RustyAlloc` carrying `opts`: a miss (always the case at the
/// process's first allocation, whose caches are empty) resolves them first. The
/// hit path does not read them.
#[inline(always)]
pub(crate) fn alloc_with(class: usize, opts: &Options) -> *mut u8 {
    CACHE.with(|tc| {
        // SAFETY: `class < NUM_CLASSES` (callers derive it from the class table).
        let cc = unsafe { tc.classes.get_unchecked(class) };
        // Relaxed: only this thread touches the magazine's rounds (module notes).
        let m = cc.loaded.load(Ordering::Relaxed);
        // SAFETY: `m` is the sentinel or a magazine owned by this cache.
        unsafe {
            let n = (*m).len();
            if n != 0 {
                (*m).set_len(n - 1);
                return *(*m).rounds.get_unchecked(n - 1);
            }
        }
        alloc_slow(tc, class, opts)
    })
}

/// Pushes the free object `p` of `class` into the calling thread's cache if
/// it is of this thread's slabs; an object of another thread's goes home
/// (`free_slow`).
///
/// # Safety
/// `p` is the start of a slab object of `class` that is no longer used.
#[inline(always)]
pub(crate) unsafe fn free(class: usize, p: *mut u8) {
    CACHE.with(|tc| {
        // SAFETY: a slab object lies in a live segment (caller).
        let home = unsafe { SegmentHeader::owner_of(p) };
        // SAFETY: as in `alloc`.
        let cc = unsafe { tc.classes.get_unchecked(class) };
        // Relaxed: as in `alloc`.
        let m = cc.loaded.load(Ordering::Relaxed);
        // SAFETY: as in `alloc`; `n < cap <= MAG_MAX` bounds the write.
        unsafe {
            let n = (*m).len();
            if n < (*m).cap as usize && home == tc.owner.get() {
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
            // Relaxed: a hint for the purger (an idle thread's magazines may be
            // taken; one taken from a busy thread costs it one slow path).
            tc.active_epoch
                .store(super::purger::epoch(), Ordering::Relaxed);
            // Relaxed: a hint; the list itself is taken with Acquire.
            if !tc.stolen.load(Ordering::Relaxed).is_null() {
                super::idle::reclaim(tc);
            }
            if t.is_multiple_of(64) {
                HEAP.maybe_trim();
            }
            true
        }
        FRESH => super::cache_registry::register(tc),
        _ => false,
    }
}

/// Takes a slot's magazine for the owner's slow path (see the module notes).
#[inline]
fn take(slot: &AtomicPtr<Magazine>) -> *mut Magazine {
    // Relaxed: the swap only decides who gets the magazine; nothing the purger
    // wrote is read through it (its `stolen` list is read with Acquire).
    slot.swap(sentinel(), Ordering::Relaxed)
}

/// Stores a magazine back into a slot, publishing the owner's writes to it
/// (`next` included) to a purger that may take it.
#[inline]
fn put_back(slot: &AtomicPtr<Magazine>, m: *mut Magazine) {
    // Release: pairs with the purger's Acquire swap.
    slot.store(m, Ordering::Release);
}

#[cold]
#[inline(never)]
fn alloc_slow(tc: &ThreadCache, class: usize, opts: &Options) -> *mut u8 {
    crate::options::init_with(opts);
    if !ensure_live(tc) {
        return HEAP.alloc_direct(class);
    }
    let cc = &tc.classes[class];
    let loaded = take(&cc.loaded);
    let previous = take(&cc.previous);
    // SAFETY: `loaded`/`previous` are owned by this cache and taken out of their
    // slots (ClassCache invariant, module notes); magazines obtained from the
    // depot or pool become ours.
    unsafe {
        // 1. The previous magazine is full: swap.
        if (*previous).cap != 0 && (*previous).is_full() {
            let p = pop(previous);
            put_back(&cc.loaded, previous);
            put_back(&cc.previous, loaded);
            return p;
        }
        put_back(&cc.previous, previous);
        // 2. A full magazine from the depot, for our empty loaded one.
        let give = if loaded == sentinel() {
            ptr::null_mut()
        } else {
            loaded
        };
        let full = HEAP.depots[class].exchange_for_full(give, tc.owner.get());
        if !full.is_null() {
            let p = pop(full);
            put_back(&cc.loaded, full);
            return p;
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
        let cap = (*m).cap as usize;
        let n = HEAP.central[class].alloc_batch(
            class,
            &HEAP.segments,
            &mut (&mut (*m).rounds)[..cap],
            tc.owner.get(),
        );
        if n == 0 {
            put_back(&cc.loaded, m);
            return ptr::null_mut();
        }
        // The slab hands objects out in ascending address order; pops take the
        // top of the stack, so reverse the batch to keep that order (a walk over
        // freshly allocated objects then moves forward through memory).
        (&mut (*m).rounds)[..n].reverse();
        (*m).set_len(n);
        let p = pop(m);
        put_back(&cc.loaded, m);
        p
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

/// The free path when the loaded magazine is full, the object is another
/// owner's (a remote free), or the cache is not live: swaps magazines, trades
/// a full one with the depot, or frees to the slabs.
///
/// # Safety
/// `tc` is the calling thread's cache; `p` is the start of a slab object of
/// `class` that is no longer used (and is in no magazine).
#[cold]
#[inline(never)]
unsafe fn free_slow(tc: &ThreadCache, class: usize, p: *mut u8) {
    if !ensure_live(tc) {
        // SAFETY: forwarded from `free`.
        unsafe { HEAP.free_direct(class, p) };
        return;
    }
    // SAFETY: forwarded from `free` (a slab object lies in a live segment).
    if unsafe { SegmentHeader::owner_of(p) } != tc.owner.get() {
        // SAFETY: forwarded.
        unsafe { free_remote(tc, class, p) };
        return;
    }
    let cc = &tc.classes[class];
    let loaded = take(&cc.loaded);
    let previous = take(&cc.previous);
    // SAFETY: as in `alloc_slow`; `p` is a free object of `class` (caller).
    unsafe {
        // 1. The previous magazine is empty: swap.
        if (*previous).cap != 0 && (*previous).len() == 0 {
            push(previous, p);
            put_back(&cc.loaded, previous);
            put_back(&cc.previous, loaded);
            return;
        }
        // 2. Loaded is full (or the sentinel). Hand a full magazine to the depot
        //    and get an empty one back.
        let (empty, older) = if loaded == sentinel() {
            (ptr::null_mut(), previous)
        } else if previous == sentinel() {
            (ptr::null_mut(), loaded)
        } else if HEAP.depot_is_full(class) {
            // The depot holds enough of this class: the older full magazine's
            // objects go home to their slabs, and it is reused empty.
            HEAP.flush_magazine(class, previous);
            (previous, loaded)
        } else {
            (*previous).owner = tc.owner.get();
            let e = HEAP.depots[class].exchange_for_empty(previous);
            crate::sys::purge_signal::notify();
            (e, loaded)
        };
        put_back(&cc.previous, older);
        let empty = if empty.is_null() {
            HEAP.pool.get(magazine_cap(class))
        } else {
            empty
        };
        if empty.is_null() {
            // No memory even for a magazine: free straight to the slab.
            HEAP.free_direct(class, p);
            return;
        }
        push(empty, p);
        put_back(&cc.loaded, empty);
    }
}

/// A remote free: `p` joins the class's `remote` magazine, which goes home to
/// the slabs (`free_batch`, one lock per magazine) when it fills, so the
/// object returns to its owner's slab and this thread never hands it out.
///
/// # Safety
/// As [`free_slow`], after `ensure_live`.
#[cold]
#[inline(never)]
unsafe fn free_remote(tc: &ThreadCache, class: usize, p: *mut u8) {
    let cc = &tc.classes[class];
    let mut r = take(&cc.remote);
    if r == sentinel() {
        r = HEAP.pool.get(magazine_cap(class));
        if r.is_null() {
            // SAFETY: forwarded.
            unsafe { HEAP.free_direct(class, p) };
            return;
        }
    }
    // SAFETY: `r` is ours and not full (ClassCache invariant); `p` is a free
    // object of `class` (caller).
    unsafe {
        push(r, p);
        if (*r).is_full() {
            HEAP.flush_magazine(class, r);
        }
    }
    put_back(&cc.remote, r);
}

/// Returns every magazine of the cache to the depot (partial ones are first
/// emptied into the slabs; the remote magazine always is). The cache stays usable.
pub(crate) fn flush(tc: &ThreadCache) {
    super::idle::reclaim(tc);
    for (class, cc) in tc.classes.iter().enumerate() {
        for slot in [&cc.loaded, &cc.previous, &cc.remote] {
            let m = take(slot);
            if m == sentinel() {
                continue;
            }
            // SAFETY: `m` is ours; after flushing partial magazines (the remote
            // one is never full) they are empty, so `put` receives a full or
            // empty magazine.
            unsafe {
                if !(*m).is_full() {
                    HEAP.flush_magazine(class, m);
                }
                (*m).owner = tc.owner.get();
                HEAP.depots[class].put(m);
            }
        }
    }
    crate::sys::purge_signal::notify();
}

/// Empties every magazine of the cache into the slabs and returns the
/// magazines (now empty) to the depot.
pub(crate) fn flush_to_slabs(tc: &ThreadCache) {
    super::idle::reclaim(tc);
    for (class, cc) in tc.classes.iter().enumerate() {
        for slot in [&cc.loaded, &cc.previous, &cc.remote] {
            let m = take(slot);
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
    crate::sys::purge_signal::notify();
}

/// Flushes the calling thread's cache (used by `purge`).
pub(crate) fn flush_current() {
    let _ = CACHE.try_with(|tc| {
        if tc.state.get() == LIVE {
            flush(tc);
        }
    });
}
