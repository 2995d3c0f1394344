//! `RustyAlloc`: the `GlobalAlloc` front. Routes by size — ≤ 256 KiB to the
//! size classes through the thread cache, above to the large-object path — and
//! never allocates through itself, panics or formats on any path.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;

use super::decay_rounds;
use super::heap::HEAP;
use super::stats::{self, AllocStats};
use super::thread_cache;
use crate::options::Options;
use crate::slab::segment::SegmentHeader;
use crate::slab::size_class::{NUM_CLASSES, SMALL_MAX, class_of};
use crate::sync::Ordering;

/// The allocator: a slab/magazine allocator for objects up to 256 KiB and direct
/// mappings above. All values share one process-wide heap, so it can be the
/// `#[global_allocator]` and be called directly as a value at the same time.
///
/// A value carries the [`Options`] that the process's first allocation resolves
/// (each overridden by its `RUSTYDB_MEM_*` variable when set); the heap is
/// process-wide, so the first `RustyAlloc` to allocate wins and the options of
/// any other are not used. `RustyAlloc` on its own is the constant with the
/// defaults, so `static A: RustyAlloc = RustyAlloc;` keeps working:
///
/// ```
/// use rustydb_memory::{Options, RustyAlloc};
///
/// // In a program: #[global_allocator]
/// static A: RustyAlloc = RustyAlloc::with_options(Options::new().magazine(32).purge_delay_ms(1000));
/// static B: RustyAlloc = RustyAlloc; // the defaults
/// assert_eq!(B.options(), &Options::new());
/// assert_eq!(A.options(), &Options::new().magazine(32).purge_delay_ms(1000));
/// ```
///
/// ```
/// use rustydb_memory::RustyAlloc;
/// use std::alloc::{GlobalAlloc, Layout};
///
/// let layout = Layout::from_size_align(100, 8).unwrap();
/// // SAFETY: the layout has a non-zero size; the block is freed with the same layout.
/// unsafe {
///     let p = RustyAlloc.alloc(layout);
///     assert!(!p.is_null());
///     p.write_bytes(7, 100);
///     RustyAlloc.dealloc(p, layout);
/// }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RustyAlloc {
    options: Options,
}

/// The allocator with the default [`Options`] (the value that `RustyAlloc`
/// was when it was a unit struct): `static A: RustyAlloc = RustyAlloc;`.
///
/// ```
/// use rustydb_memory::{Options, RustyAlloc};
/// assert_eq!(RustyAlloc, RustyAlloc::with_options(Options::new()));
/// ```
#[allow(non_upper_case_globals)]
pub const RustyAlloc: RustyAlloc = RustyAlloc::with_options(Options::new());

impl RustyAlloc {
    /// The allocator with the default options (a `const fn`, for
    /// `static GLOBAL: RustyAlloc = RustyAlloc::new();`).
    ///
    /// ```
    /// use rustydb_memory::RustyAlloc;
    /// assert_eq!(RustyAlloc::new(), RustyAlloc);
    /// ```
    pub const fn new() -> Self {
        Self::with_options(Options::new())
    }

    /// The allocator with `options`, which the process's first allocation
    /// resolves if this value makes it (environment variables override them).
    ///
    /// ```
    /// use rustydb_memory::{Options, RustyAlloc};
    ///
    /// #[global_allocator]
    /// static A: RustyAlloc = RustyAlloc::with_options(Options::new().magazine(32));
    ///
    /// fn main() {
    ///     let v = vec![1u8; 100];
    ///     assert_eq!(v.len(), 100);
    ///     assert_eq!(A.options(), &Options::new().magazine(32));
    /// }
    /// ```
    pub const fn with_options(options: Options) -> Self {
        Self { options }
    }

    /// The options this value carries (not necessarily those in force: see
    /// [`RustyAlloc`]).
    ///
    /// ```
    /// use rustydb_memory::{Options, RustyAlloc};
    /// assert_eq!(RustyAlloc.options(), &Options::new());
    /// ```
    pub const fn options(&self) -> &Options {
        &self.options
    }

    /// A snapshot of the allocator's figures.
    ///
    /// ```
    /// use rustydb_memory::RustyAlloc;
    ///
    /// let p = RustyAlloc.malloc(300); // a 320-byte class object
    /// let s = RustyAlloc.stats();
    /// let class = s.classes.iter().find(|c| c.size == 320).unwrap();
    /// assert!(class.live_objects >= 1);
    /// assert!(s.bytes_in_use >= 320 && s.bytes_mapped >= s.bytes_in_use);
    /// // SAFETY: `p` came from `malloc` and is freed once.
    /// unsafe { RustyAlloc.free(p) };
    /// ```
    pub fn stats(&self) -> AllocStats {
        crate::options::init_with(&self.options);
        stats::collect()
    }

    /// Returns free memory to the OS now: flushes the calling thread's cache,
    /// empties every depot into the slabs, releases empty slabs, purges free
    /// units and unmaps free segments (one is kept), and purges the large-object
    /// cache. Returns the bytes given back by this call. With the `tracing`
    /// feature, emits the decay rounds recorded so far (this one included) as
    /// `decay round` events (target `rustydb_memory::decay`).
    ///
    /// ```
    /// use rustydb_memory::RustyAlloc;
    ///
    /// let blocks: Vec<*mut u8> = (0..2048).map(|_| RustyAlloc.malloc(4000)).collect();
    /// for p in blocks {
    ///     // SAFETY: each block came from `malloc` and is freed once.
    ///     unsafe { RustyAlloc.free(p) };
    /// }
    /// // 8 MiB of free objects are cached; purge gives their pages back.
    /// assert!(RustyAlloc.purge() > 0);
    /// assert!(RustyAlloc.stats().purged_bytes > 0);
    /// ```
    pub fn purge(&self) -> u64 {
        crate::options::init_with(&self.options);
        let large_before = crate::large::stats().bytes_mapped as u64;
        let round = decay_rounds::counters();
        // Relaxed: statistics, before/after.
        let before = HEAP.segments.counters.purged_bytes.load(Ordering::Relaxed);
        thread_cache::flush_current();
        HEAP.trim_depots(true);
        for c in &HEAP.central {
            c.release_empty(&HEAP.segments);
        }
        HEAP.segments.purge_all();
        let metadata = HEAP.pool.release_unused() as u64;
        crate::large::purge();
        let large_freed = large_before.saturating_sub(crate::large::stats().bytes_mapped as u64);
        decay_rounds::record_since(decay_rounds::Source::Purge, round, large_freed + metadata);
        // Outside the allocator, with no lock held: the rounds recorded so far
        // (this one included) become `decay round` events.
        decay_rounds::emit();
        HEAP.segments.counters.purged_bytes.load(Ordering::Relaxed) - before
            + large_freed
            + metadata
    }
}

impl RustyAlloc {
    /// Starts the background purger (as `RUSTYDB_MEM_BACKGROUND=1` does at the
    /// first allocation): a thread that, while any freed memory is not yet
    /// given back, runs the decay every quarter of the dirty delay — depot
    /// trims, empty-slab release, `MADV_FREE` after `RUSTYDB_MEM_PURGE_DELAY_MS`
    /// (500 ms) and `MADV_DONTNEED` after `RUSTYDB_MEM_MUZZY_DELAY_MS` more
    /// (500 ms), the large cache's decay — and takes back the cached objects of
    /// threads that stopped allocating (they return them on their next call).
    /// It sleeps when nothing is left to purge. Without it, the same work runs
    /// only on allocation slow paths, so an idle program keeps what it freed last.
    ///
    /// Returns whether the purger runs (false if the system refused a thread).
    /// Idempotent; a `fork` child starts its own on its next allocations.
    ///
    /// ```
    /// use rustydb_memory::RustyAlloc;
    ///
    /// assert!(RustyAlloc::new().start_background_purger());
    /// ```
    pub fn start_background_purger(&self) -> bool {
        crate::options::init_with(&self.options);
        super::purger::start()
    }
}

/// Where a request is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Class(usize),
    Large,
    Invalid,
}

/// Routes `(size, align)`. Up to an alignment of 16 the class of
/// `size.max(align)` is aligned enough (only the 8-byte class is not 16-aligned,
/// and it serves only requests aligned to at most 8). Over-aligned requests
/// (align > 16) take `align - 16` extra bytes in their class and are aligned
/// inside the object; the free path maps any interior pointer back to its
/// object, so both sides agree.
#[inline]
fn route(size: usize, align: usize) -> Route {
    let need = if align <= 16 {
        size.max(align)
    } else {
        match size.checked_add(align - 16) {
            Some(n) => n,
            None => return Route::Invalid,
        }
    };
    // Below the smallest threshold the option allows, no need to read it.
    if need < crate::options::MIN_LARGE_THRESHOLD || need < crate::options::large_threshold() {
        Route::Class(class_of(need))
    } else {
        Route::Large
    }
}

/// The class of a request of up to 32 KiB aligned to at most 16, found by one
/// table load (no threshold to consult: it is at least 64 KiB); `None` for the
/// rest. The common case — an alignment of at most 8 — costs the two compares it
/// always did; 16 takes one more compare and the `max` of `route`.
#[inline(always)]
fn fast_class(size: usize, align: usize) -> Option<usize> {
    if size > SMALL_MAX {
        None
    } else if align <= 8 {
        Some(class_of(size))
    } else if align == 16 {
        Some(class_of(size.max(16)))
    } else {
        None
    }
}

#[cold]
fn alloc_general(opts: &Options, size: usize, align: usize, zeroed: bool) -> *mut u8 {
    crate::options::init_with(opts);
    match route(size, align) {
        Route::Class(c) => {
            let p = thread_cache::alloc_with(c, opts);
            if p.is_null() {
                return p;
            }
            let q = ((p as usize + align - 1) & !(align - 1)) as *mut u8;
            if zeroed {
                // SAFETY: `q..q+size` lies inside the object (route reserved
                // `align - 16` bytes of slack for the alignment offset).
                unsafe { q.write_bytes(0, size) };
            }
            q
        }
        Route::Large => crate::large::alloc(size, align, zeroed),
        Route::Invalid => ptr::null_mut(),
    }
}

/// # Safety
/// `p` was returned by an allocation with `(size, align)` and is not used again.
#[cold]
unsafe fn dealloc_general(p: *mut u8, size: usize, align: usize) {
    match route(size, align) {
        Route::Class(c) => {
            debug_assert!(c < NUM_CLASSES);
            let start = if align <= 16 {
                p
            } else {
                // SAFETY: `p` lies inside a live object of a segment slab (caller).
                unsafe { (*SegmentHeader::slab_of(p)).object_start(p) }
            };
            // SAFETY: `start` is the object's start and is free now (caller).
            unsafe { thread_cache::free(c, start) }
        }
        // SAFETY: forwarded contract.
        Route::Large => unsafe { crate::large::dealloc(p, size, align) },
        Route::Invalid => {}
    }
}

// SAFETY: every block returned is either null or a region of at least
// `layout.size()` bytes aligned to `layout.align()` that no other live block
// overlaps (size classes hand each object to one owner at a time; large blocks are
// distinct mappings); `dealloc`/`realloc` route by the same layout as `alloc`.
unsafe impl GlobalAlloc for RustyAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        if let Some(class) = fast_class(size, align) {
            return thread_cache::alloc_with(class, &self.options);
        }
        alloc_general(&self.options, size, align, false)
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        let (size, align) = (layout.size(), layout.align());
        if let Some(class) = fast_class(size, align) {
            // SAFETY: `p` came from `alloc` with this layout (GlobalAlloc contract), so
            // it is the start of an object of this class.
            unsafe { thread_cache::free(class, p) };
            return;
        }
        // SAFETY: forwarded GlobalAlloc contract.
        unsafe { dealloc_general(p, size, align) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        if let Some(class) = fast_class(size, align) {
            let p = thread_cache::alloc_with(class, &self.options);
            if !p.is_null() {
                // SAFETY: `p` is an object of at least `size` bytes.
                unsafe { p.write_bytes(0, size) };
            }
            return p;
        }
        alloc_general(&self.options, size, align, true)
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        crate::options::init_with(&self.options);
        let (old, new) = (route(size, align), route(new_size, align));
        match (old, new) {
            // Same class: the object already has room (route reserved the slack).
            (Route::Class(a), Route::Class(b)) if a == b => return p,
            (Route::Large, Route::Large) => {
                // SAFETY: `p` is a live large block of (size, align) (GlobalAlloc contract).
                return unsafe { crate::large::realloc(p, size, align, new_size) };
            }
            (_, Route::Invalid) => return ptr::null_mut(),
            _ => {}
        }
        // SAFETY: `new_size` with `align` forms a valid layout (GlobalAlloc contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, align) };
        // SAFETY: a valid layout with non-zero size (contract).
        let q = unsafe { self.alloc(new_layout) };
        if !q.is_null() {
            // SAFETY: both blocks are live, distinct, and at least `min` bytes long.
            unsafe {
                ptr::copy_nonoverlapping(p, q, size.min(new_size));
                self.dealloc(p, layout);
            }
        }
        q
    }
}
