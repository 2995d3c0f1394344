//! The `malloc` family on [`RustyAlloc`]: allocation without a `Layout`, for
//! C callers and for the preloaded `libc` replacement (`preload/`).
//!
//! A `free` without a size must find what it frees from the pointer alone:
//! - **a small or medium object**: the [segment map](crate::slab::segment_map)
//!   says the pointer lies in one of our 2 MiB segments (one load); the segment
//!   header gives its slab, the slab its class and first object; a multiply by
//!   the class's reciprocal gives the object the pointer lies in (over-aligned
//!   blocks are handed out from inside their object);
//! - **a large block**: not in a segment, found by address in the large-object
//!   registry (a lock and a bisection — large frees are rare);
//! - **anything else** (memory the dynamic linker handed out before a
//!   preloaded `malloc` took over, another allocator's blocks): neither. `free`
//!   ignores it and counts it ([`AllocStats::foreign_frees`]), `resize` refuses
//!   it, `usable_size` answers 0. No byte of such memory is ever read.
//!
//! [`SharedHeap`] has the same operations without the calling thread's cache,
//! for code that runs before thread-local storage may be touched.

use core::ptr;

use super::heap::HEAP;
use super::rusty_alloc::RustyAlloc;
use super::thread_cache;
use crate::large::LargeObjectAllocator;
use crate::slab::segment::SegmentHeader;
use crate::slab::segment_map;
use crate::slab::size_class::{CLASS_SIZE, MEDIUM_MAX, NUM_CLASSES, SMALL_MAX, class_of};
use crate::sync::{AtomicU64, Ordering};

/// Blocks are aligned to this without asking (glibc's `MALLOC_ALIGNMENT` on
/// 64-bit targets; every class size from 16 up is a multiple of it). The C
/// entry points never use the 8-byte class, which serves only Rust layouts that
/// say their alignment is at most 8: C callers may rely on glibc's guarantee.
pub(crate) const MIN_ALIGN: usize = 16;

/// Frees of pointers that are not ours (see the module note).
static FOREIGN_FREES: AtomicU64 = AtomicU64::new(0);

pub(crate) fn foreign_frees() -> u64 {
    // Relaxed: a statistic.
    FOREIGN_FREES.load(Ordering::Relaxed)
}

/// `⌈2^40 / size⌉` per class: `(off * RECIP[c]) >> 40 == off / size` exactly
/// for every offset inside a slab (below 2^20; the error term stays below
/// 2^20 · size < 2^40 — checked for every class and offset by a test).
static RECIP: [u64; NUM_CLASSES] = reciprocals();

const RECIP_SHIFT: u32 = 40;
/// The largest slab (16 units of 64 KiB) is below this.
const MAX_SLAB_OFFSET: usize = 1 << 20;

const fn reciprocals() -> [u64; NUM_CLASSES] {
    let mut t = [0u64; NUM_CLASSES];
    let mut c = 0;
    while c < NUM_CLASSES {
        t[c] = (1u64 << RECIP_SHIFT).div_ceil(CLASS_SIZE[c] as u64);
        c += 1;
    }
    t
}

/// The class of the object holding `p`, and that object's start.
///
/// # Safety
/// `p` points into a live object of one of our segments (the segment map says
/// so for any block we handed out and that is not freed yet).
#[inline(always)]
unsafe fn locate(p: *const u8) -> (usize, *mut u8) {
    // SAFETY: `p` lies in a live object (caller), so its slab descriptor is in
    // use, and `class`/`start` were written before the object was handed out and
    // do not change while it is live.
    unsafe {
        let slab = SegmentHeader::slab_of(p);
        let class = (*slab).class();
        let start = (*slab).start;
        let off = p as usize - start as usize;
        debug_assert!(class < NUM_CLASSES && off < MAX_SLAB_OFFSET);
        let index = ((off as u64 * *RECIP.get_unchecked(class)) >> RECIP_SHIFT) as usize;
        let object = start.add(index * *CLASS_SIZE.get_unchecked(class) as usize);
        (class, object)
    }
}

/// The class serving `need` bytes, or `None` for the large-object path.
#[inline]
fn class_for(need: usize) -> Option<usize> {
    // Below the smallest threshold the option allows, no need to read it.
    (need < crate::options::MIN_LARGE_THRESHOLD || need < crate::options::large_threshold())
        .then(|| class_of(need.min(MEDIUM_MAX)))
}

/// One object of `class`, from the thread cache (`CACHED`) or the slabs.
#[inline(always)]
fn take<const CACHED: bool>(class: usize) -> *mut u8 {
    if CACHED {
        thread_cache::alloc(class)
    } else {
        HEAP.alloc_direct(class)
    }
}

/// # Safety
/// `p` is the start of a live object of `class`, not used afterwards.
#[inline(always)]
unsafe fn give<const CACHED: bool>(class: usize, p: *mut u8) {
    // SAFETY: forwarded contract.
    unsafe {
        if CACHED {
            thread_cache::free(class, p)
        } else {
            HEAP.free_direct(class, p)
        }
    }
}

#[inline(always)]
fn malloc<const CACHED: bool>(size: usize) -> *mut u8 {
    if size <= SMALL_MAX {
        return take::<CACHED>(class_of(size.max(MIN_ALIGN)));
    }
    general::<CACHED>(size, MIN_ALIGN, false)
}

#[inline]
fn calloc<const CACHED: bool>(count: usize, size: usize) -> *mut u8 {
    let Some(bytes) = count.checked_mul(size) else {
        return ptr::null_mut();
    };
    if bytes <= SMALL_MAX {
        let p = take::<CACHED>(class_of(bytes.max(MIN_ALIGN)));
        if !p.is_null() {
            // SAFETY: `p` is an object of at least `bytes` bytes, ours alone.
            unsafe { p.write_bytes(0, bytes) };
        }
        return p;
    }
    general::<CACHED>(bytes, MIN_ALIGN, true)
}

/// Any size and power-of-two alignment: classes (over-aligned requests take
/// `align - 16` bytes of slack and are aligned inside the object) or large.
#[cold]
#[inline(never)]
fn general<const CACHED: bool>(size: usize, align: usize, zeroed: bool) -> *mut u8 {
    debug_assert!(align.is_power_of_two());
    if size > isize::MAX as usize {
        return ptr::null_mut();
    }
    let need = if align <= MIN_ALIGN {
        size.max(MIN_ALIGN)
    } else {
        match size.checked_add(align - MIN_ALIGN) {
            Some(n) => n,
            None => return ptr::null_mut(),
        }
    };
    match class_for(need) {
        Some(class) => {
            let p = take::<CACHED>(class);
            if p.is_null() {
                return p;
            }
            let q = ((p as usize + align - 1) & !(align - 1)) as *mut u8;
            if zeroed {
                // SAFETY: `q..q+size` lies inside the object (`need` reserved the
                // slack for the alignment offset).
                unsafe { q.write_bytes(0, size) };
            }
            q
        }
        None => crate::large::alloc(size, align.max(MIN_ALIGN), zeroed),
    }
}

#[inline]
fn aligned<const CACHED: bool>(size: usize, align: usize) -> *mut u8 {
    if !align.is_power_of_two() {
        return ptr::null_mut();
    }
    if align <= MIN_ALIGN {
        return malloc::<CACHED>(size);
    }
    general::<CACHED>(size, align, false)
}

/// # Safety
/// `p` is null, not ours, or a live block from these functions, not used afterwards.
#[inline(always)]
unsafe fn free<const CACHED: bool>(p: *mut u8) {
    if segment_map::contains(p) {
        // SAFETY: a live block of ours inside a segment (caller + map).
        unsafe {
            let (class, object) = locate(p);
            give::<CACHED>(class, object);
        }
        return;
    }
    // SAFETY: forwarded contract.
    unsafe { free_elsewhere(p) }
}

/// A large block, null, or a pointer we do not own.
///
/// # Safety
/// As [`free`].
#[cold]
#[inline(never)]
unsafe fn free_elsewhere(p: *mut u8) {
    if p.is_null() {
        return;
    }
    // SAFETY: if `p` is a live large block it is not used afterwards (caller);
    // anything else is looked up, not dereferenced.
    if unsafe { LargeObjectAllocator::global().try_dealloc(p) }.is_err() {
        // Relaxed: a statistic.
        FOREIGN_FREES.fetch_add(1, Ordering::Relaxed);
    }
}

/// # Safety
/// `p` is null, not ours, or a live block from these functions. On a non-null
/// result `p` is no longer used; on null it is untouched.
unsafe fn resize<const CACHED: bool>(p: *mut u8, new_size: usize) -> *mut u8 {
    if p.is_null() {
        return malloc::<CACHED>(new_size);
    }
    if new_size > isize::MAX as usize {
        return ptr::null_mut();
    }
    let usable = if segment_map::contains(p) {
        // SAFETY: a live block of ours in a segment (caller + map).
        let (class, object) = unsafe { locate(p) };
        let usable = object as usize + CLASS_SIZE[class] as usize - p as usize;
        // In place while it fits, unless it shrinks to less than half of a
        // bigger class (then moving gives the memory back).
        if new_size <= usable
            && (new_size >= usable / 2 || class_of(new_size.max(MIN_ALIGN)) == class)
        {
            return p;
        }
        usable
    } else {
        let large = LargeObjectAllocator::global();
        let Some(usable) = large.usable_size(p) else {
            return ptr::null_mut();
        };
        if class_for(new_size).is_none() {
            // Large to large: in place, `mremap`, or copy (the registry decides).
            // SAFETY: `p` is a live large block (found above; caller).
            return unsafe { large.realloc_block(p, MIN_ALIGN, new_size) }
                .map_or(ptr::null_mut(), ptr::NonNull::as_ptr);
        }
        usable
    };
    let q = malloc::<CACHED>(new_size);
    if !q.is_null() {
        // SAFETY: both blocks are live and distinct; `usable` bytes of `p` and
        // `new_size` bytes of `q` are ours.
        unsafe {
            ptr::copy_nonoverlapping(p, q, usable.min(new_size));
            free::<CACHED>(p);
        }
    }
    q
}

/// The `malloc` family (see the [module note](self)). Blocks from these
/// methods are freed with [`free`](Self::free) (or [`SharedHeap::free`]), never
/// with `GlobalAlloc::dealloc`, and vice versa. If one of them makes the
/// process's first allocation, the default options are resolved (call
/// [`initialize`](Self::initialize) first to resolve this value's).
///
/// ```
/// use rustydb_memory::RustyAlloc;
///
/// let a = RustyAlloc::new();
/// let p = a.malloc(100);
/// assert!(!p.is_null() && (p as usize).is_multiple_of(16));
/// // SAFETY: `p` is a live block from `malloc`; only the result is used afterwards.
/// unsafe {
///     assert!(a.usable_size(p) >= 100);
///     p.write_bytes(1, 100);
///     let q = a.resize(p, 100_000);
///     assert_eq!(*q.add(99), 1);
///     a.free(q);
/// }
/// assert!(!a.owns(&0u8));
/// ```
impl RustyAlloc {
    /// A block of at least `size` bytes aligned to 16 (glibc's `malloc` alignment); `size`
    /// 0 gives a distinct minimal block. Null when the system refuses memory or
    /// `size > isize::MAX`.
    #[inline]
    pub fn malloc(&self, size: usize) -> *mut u8 {
        malloc::<true>(size)
    }

    /// A zeroed block of `count * size` bytes; null if the product overflows
    /// or memory is refused.
    #[inline]
    pub fn calloc(&self, count: usize, size: usize) -> *mut u8 {
        calloc::<true>(count, size)
    }

    /// A block of at least `size` bytes aligned to `align`, which must be a
    /// power of two (null otherwise). Alignments up to 16 cost nothing extra;
    /// bigger ones take `align - 16` bytes of slack below the large threshold.
    #[inline]
    pub fn aligned_malloc(&self, size: usize, align: usize) -> *mut u8 {
        aligned::<true>(size, align)
    }

    /// Frees a block from these methods. Null and pointers that are not ours
    /// are ignored (the latter counted in [`AllocStats::foreign_frees`]).
    ///
    /// # Safety
    /// `p` is null, not from this allocator, or a live block from these
    /// methods; it is not used afterwards. (A block freed twice, or a pointer
    /// into the middle of one, is undefined behaviour, as with every `free`.)
    ///
    /// [`AllocStats::foreign_frees`]: crate::AllocStats::foreign_frees
    #[inline]
    pub unsafe fn free(&self, p: *mut u8) {
        // SAFETY: forwarded contract.
        unsafe { free::<true>(p) }
    }

    /// Resizes a block as C `realloc` does for a non-zero size: in place when
    /// the block's usable size allows it, else a new block, a copy and a free.
    /// Null `p` allocates. Returns null (and leaves `p` untouched) when memory is
    /// refused, `new_size > isize::MAX`, or `p` is not ours.
    ///
    /// # Safety
    /// As [`free`](Self::free); after a non-null result only that is used.
    pub unsafe fn resize(&self, p: *mut u8, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { resize::<true>(p, new_size) }
    }

    /// Bytes usable from `p` on (at least what was asked); 0 for null and for
    /// pointers that are not ours.
    ///
    /// # Safety
    /// `p` is null, not from this allocator, or a live block from these methods.
    pub unsafe fn usable_size(&self, p: *const u8) -> usize {
        if segment_map::contains(p) {
            // SAFETY: a live block of ours in a segment (caller + map).
            let (class, object) = unsafe { locate(p) };
            return object as usize + CLASS_SIZE[class] as usize - p as usize;
        }
        LargeObjectAllocator::global().usable_size(p).unwrap_or(0)
    }

    /// Resolves this value's [`Options`](crate::Options) (overridden by the
    /// `RUSTYDB_MEM_*` variables) unless an allocation did first, and installs the allocator's `fork`
    /// handlers now rather than at the first use of a thread cache. A preloaded
    /// `malloc` calls this from its library constructor: `fork` runs `prepare`
    /// handlers in the reverse order of their registration, so handlers
    /// registered early take the heap's locks last — after every later
    /// library's `prepare` handler, which may allocate, has run.
    pub fn initialize(&self) {
        crate::options::init_with(self.options());
        super::fork::install();
    }

    /// Whether `p` lies in memory this allocator manages: one of its segments
    /// (whether or not the object there is live) or the start of a live large
    /// block. Any pointer may be asked; nothing is dereferenced.
    pub fn owns(&self, p: *const u8) -> bool {
        segment_map::contains(p) || LargeObjectAllocator::global().usable_size(p).is_some()
    }
}

/// The [`RustyAlloc`] `malloc` family without thread caches: every call goes
/// to the shared slabs (a lock per call). For code that must not touch
/// thread-local storage — a preloaded `malloc` called by the dynamic linker
/// before TLS is set up. Blocks are interchangeable with `RustyAlloc`'s
/// (`RustyAlloc::free` frees a `SharedHeap` block and vice versa).
///
/// ```
/// use rustydb_memory::{RustyAlloc, SharedHeap};
///
/// let p = SharedHeap.malloc(24);
/// assert!(RustyAlloc.owns(p));
/// // SAFETY: `p` is a live block of the malloc family, not used afterwards.
/// unsafe { RustyAlloc.free(p) };
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SharedHeap;

impl SharedHeap {
    /// As [`RustyAlloc::malloc`].
    pub fn malloc(&self, size: usize) -> *mut u8 {
        malloc::<false>(size)
    }

    /// As [`RustyAlloc::calloc`].
    pub fn calloc(&self, count: usize, size: usize) -> *mut u8 {
        calloc::<false>(count, size)
    }

    /// As [`RustyAlloc::aligned_malloc`].
    pub fn aligned_malloc(&self, size: usize, align: usize) -> *mut u8 {
        aligned::<false>(size, align)
    }

    /// As [`RustyAlloc::free`].
    ///
    /// # Safety
    /// As [`RustyAlloc::free`].
    pub unsafe fn free(&self, p: *mut u8) {
        // SAFETY: forwarded contract.
        unsafe { free::<false>(p) }
    }

    /// As [`RustyAlloc::resize`].
    ///
    /// # Safety
    /// As [`RustyAlloc::resize`].
    pub unsafe fn resize(&self, p: *mut u8, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { resize::<false>(p, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reciprocals_divide_exactly_inside_every_slab() {
        for (c, &r) in RECIP.iter().enumerate() {
            let size = CLASS_SIZE[c] as u64;
            for off in 0..MAX_SLAB_OFFSET as u64 {
                assert_eq!((off * r) >> RECIP_SHIFT, off / size, "class {c} off {off}");
            }
        }
    }

    #[test]
    fn interior_pointers_of_aligned_blocks_find_their_object() {
        for align in [32usize, 64, 256, 4096, 65536] {
            let p = RustyAlloc.aligned_malloc(100, align);
            assert!(!p.is_null() && (p as usize).is_multiple_of(align));
            // SAFETY: `p` is a live block of ours.
            let (_, object) = unsafe { locate(p) };
            assert!(object as usize <= p as usize);
            // SAFETY: as above; freed once.
            unsafe {
                assert!(RustyAlloc.usable_size(p) >= 100);
                RustyAlloc.free(p);
            }
        }
    }
}
