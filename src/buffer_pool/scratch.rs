//! Page-aligned scratch buffers for page images written while other threads
//! may read the frame (`flush` under a shared pin, write-back and loads of a
//! frame optimistic readers may read) and for disk headers. Aligned to 4 KiB,
//! so they also suit `O_DIRECT`. Also the per-thread stash of write guards'
//! private payload copies (`Shadow`).

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::cell::RefCell;
use std::ptr::NonNull;

const ALIGN: usize = 4096;

/// A zeroed, 4 KiB-aligned heap buffer.
#[derive(Debug)]
pub(crate) struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: an AlignedBuf owns its allocation exclusively, like a Box<[u8]>.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes (`len > 0`).
    pub(crate) fn new(len: usize) -> Self {
        let len = len.max(1);
        let Ok(layout) = Layout::from_size_align(len, ALIGN) else {
            std::alloc::handle_alloc_error(Layout::new::<u8>());
        };
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(p) else {
            std::alloc::handle_alloc_error(layout);
        };
        Self { ptr, len }
    }

    /// The bytes.
    pub(crate) fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is a live allocation of `len` bytes owned by `self`,
        // borrowed mutably for as long as `self` is.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this size and alignment (which
        // `from_size_align` accepted there).
        unsafe {
            dealloc(
                self.ptr.as_ptr(),
                Layout::from_size_align_unchecked(self.len, ALIGN),
            )
        };
    }
}

thread_local! {
    static SCRATCH: RefCell<Option<AlignedBuf>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's scratch buffer of exactly `len` bytes
/// (contents unspecified). The buffer is taken out of the thread-local slot
/// while `f` runs, so a re-entrant call (or a call during thread exit) just
/// uses a fresh buffer.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    let mut b = SCRATCH
        .try_with(|c| c.try_borrow_mut().ok().and_then(|mut s| s.take()))
        .ok()
        .flatten()
        .filter(|b| b.len() == len)
        .unwrap_or_else(|| AlignedBuf::new(len));
    let r = f(b.as_mut());
    let _ = SCRATCH.try_with(|c| {
        if let Ok(mut s) = c.try_borrow_mut() {
            *s = Some(b);
        }
    });
    r
}

/// A write guard's private copy of a payload (see `WriteGuard`).
pub(crate) type Shadow = Box<[u8]>;

/// Private copies kept per thread for reuse (a write guard on a page read
/// optimistically takes one for its mutable deref).
const SHADOWS_KEPT: usize = 4;

thread_local! {
    static SHADOWS: RefCell<Vec<Shadow>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` bytes (contents unspecified): a kept one if this thread
/// has one of that length, else a new one.
pub(crate) fn take_shadow(len: usize) -> Shadow {
    SHADOWS
        .try_with(|c| {
            let mut v = c.try_borrow_mut().ok()?;
            let i = v.iter().position(|b| b.len() == len)?;
            Some(v.swap_remove(i))
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| vec![0u8; len].into_boxed_slice())
}

/// Keeps `b` for this thread's next `take_shadow` (up to a few buffers).
pub(crate) fn give_back_shadow(b: Shadow) {
    let _ = SHADOWS.try_with(|c| {
        if let Ok(mut v) = c.try_borrow_mut()
            && v.len() < SHADOWS_KEPT
        {
            v.push(b);
        }
    });
}
