//! The large-object path (requests at or above the large threshold): direct
//! mappings rounded to pages, `mremap` on realloc.
//!
//! This is the minimal path `RustyAlloc` needs; the full large-object allocator
//! (mapping cache, huge pages, advice, prefault) replaces it.

use core::ptr;

use crate::sync::{AtomicUsize, Ordering};
use crate::sys;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static IN_USE: AtomicUsize = AtomicUsize::new(0);
static MAPPED: AtomicUsize = AtomicUsize::new(0);

/// Figures of the large-object path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LargeStats {
    /// Live large allocations.
    pub live: usize,
    /// Bytes requested by live large allocations.
    pub bytes_in_use: usize,
    /// Bytes mapped for them (rounded to pages).
    pub bytes_mapped: usize,
}

#[inline]
fn map_len(size: usize) -> Option<usize> {
    let page = sys::page_size();
    Some(size.checked_add(page - 1)? & !(page - 1))
}

/// Maps a block of `size` bytes aligned to `align`; null on failure. Fresh
/// mappings are zero, so `zeroed` costs nothing here.
pub(crate) fn alloc(size: usize, align: usize, _zeroed: bool) -> *mut u8 {
    let Some(len) = map_len(size) else {
        return ptr::null_mut();
    };
    let Some(p) = sys::map_aligned(len, align) else {
        return ptr::null_mut();
    };
    // Relaxed: statistics.
    LIVE.fetch_add(1, Ordering::Relaxed);
    IN_USE.fetch_add(size, Ordering::Relaxed);
    MAPPED.fetch_add(len, Ordering::Relaxed);
    p.as_ptr()
}

/// Unmaps a block from [`alloc`].
///
/// # Safety
/// `p` came from `alloc(size, align, _)` (or `realloc` to `size`) and is not used again.
pub(crate) unsafe fn dealloc(p: *mut u8, size: usize, _align: usize) {
    let Some(len) = map_len(size) else { return };
    // SAFETY: the block is exactly one mapping of `len` bytes (caller).
    unsafe { sys::unmap(p, len) };
    // Relaxed: statistics.
    LIVE.fetch_sub(1, Ordering::Relaxed);
    IN_USE.fetch_sub(size, Ordering::Relaxed);
    MAPPED.fetch_sub(len, Ordering::Relaxed);
}

/// Resizes a block from [`alloc`] to `new_size` (also large), moving it with
/// `mremap` when it cannot grow in place; null on failure (the old block is kept).
///
/// # Safety
/// `p` came from `alloc(old_size, align, _)` and is live.
pub(crate) unsafe fn realloc(
    p: *mut u8,
    old_size: usize,
    align: usize,
    new_size: usize,
) -> *mut u8 {
    let (Some(old_len), Some(new_len)) = (map_len(old_size), map_len(new_size)) else {
        return ptr::null_mut();
    };
    let q = if old_len == new_len {
        p
    } else if align <= sys::page_size() {
        // SAFETY: `p` is one whole mapping of `old_len` bytes (caller).
        match unsafe { sys::remap(p, old_len, new_len, true) } {
            Some(q) => q.as_ptr(),
            None => return ptr::null_mut(),
        }
    } else {
        let q = alloc(new_size, align, false);
        if q.is_null() {
            return q;
        }
        // SAFETY: both blocks are live and distinct; `old_size.min(new_size)` fits both.
        unsafe {
            ptr::copy_nonoverlapping(p, q, old_size.min(new_size));
            dealloc(p, old_size, align);
        }
        return q;
    };
    // Relaxed: statistics.
    IN_USE.fetch_add(new_size, Ordering::Relaxed);
    IN_USE.fetch_sub(old_size, Ordering::Relaxed);
    MAPPED.fetch_add(new_len, Ordering::Relaxed);
    MAPPED.fetch_sub(old_len, Ordering::Relaxed);
    q
}

/// Returns cached memory to the OS (nothing is cached on this path yet).
pub(crate) fn purge() {}

/// Current figures.
pub(crate) fn stats() -> LargeStats {
    // Relaxed: a racy snapshot.
    LargeStats {
        live: LIVE.load(Ordering::Relaxed),
        bytes_in_use: IN_USE.load(Ordering::Relaxed),
        bytes_mapped: MAPPED.load(Ordering::Relaxed),
    }
}

/// Fork handlers (no locks on this path yet).
pub(crate) fn fork_prepare() {}
/// See [`fork_prepare`].
pub(crate) fn fork_parent() {}
/// See [`fork_prepare`].
pub(crate) fn fork_child() {}
