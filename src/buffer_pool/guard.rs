//! RAII guards over a pinned page, and the view an optimistic read gets.
//!
//! Both guards hold a [`Held`] (pool, frame, page and which latch); they
//! differ in what they deref to and in what dropping them releases. A write
//! guard on a frame that optimistic readers may be copying (`OPTIMISTIC`, see
//! `frame.rs`) never writes the frame plainly: [`WriteGuard::write`] stores
//! atomic words in place, and a mutable deref works on a private copy that is
//! published, changed words only, when the guard drops.

use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};

use super::PageId;
use super::format::PAGE_HEADER;
use super::pool::Shared;
use super::scratch::{self, Shadow};
use super::words;

/// Which latch a guard holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Latch {
    /// A shared pin (read guard).
    Pin,
    /// The exclusive write latch.
    Write,
}

/// A latched frame: what both guards hold, and the release on drop.
///
/// Invariant: this thread took `latch` on `frame`, which holds `page`; the
/// frame's payload stays mapped while `shared` is borrowed.
struct Held<'a> {
    shared: &'a Shared,
    frame: u32,
    page: PageId,
    latch: Latch,
}

impl Held<'_> {
    /// Start of the frame's payload.
    #[inline(always)]
    fn payload_ptr(&self) -> *mut u8 {
        self.shared.frame_ptr(self.frame).wrapping_add(PAGE_HEADER)
    }

    /// The payload as a shared slice.
    #[inline(always)]
    fn bytes(&self) -> &[u8] {
        // SAFETY: the latch (the type's invariant) keeps writers other than
        // the holder out, and the frame mapped; a write guard's holder writes
        // only through `&mut` of its guard, so not while this borrow lives.
        // Optimistic readers only read.
        unsafe { core::slice::from_raw_parts(self.payload_ptr(), self.shared.payload_len()) }
    }

    fn fmt(&self, name: &str, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct(name)
            .field("page", &self.page)
            .field("frame", &self.frame)
            .finish()
    }
}

impl Drop for Held<'_> {
    #[inline]
    fn drop(&mut self) {
        let fm = &self.shared.frames[self.frame as usize];
        match self.latch {
            Latch::Pin => fm.unpin_shared(),
            Latch::Write => fm.unlock_exclusive(),
        }
    }
}

/// A shared pin on a page: the page stays in its frame and no writer changes
/// it until the guard is dropped. Derefs to the page's payload
/// (`page_size − 16` bytes; the first 16 bytes of every page are the pool's
/// header with the checksum).
pub struct ReadGuard<'a> {
    held: Held<'a>,
}

impl<'a> ReadGuard<'a> {
    /// Wraps a pin the caller took on `frame`, which holds `page`.
    #[inline(always)]
    pub(crate) fn new(shared: &'a Shared, frame: u32, page: PageId) -> Self {
        Self {
            held: Held {
                shared,
                frame,
                page,
                latch: Latch::Pin,
            },
        }
    }

    /// The page id.
    pub fn page_id(&self) -> PageId {
        self.held.page
    }

    /// A [`PageView`] of the pinned payload (for `read_optimistic`'s fallback).
    pub(crate) fn view(&self) -> PageView<'_> {
        PageView::new(self.held.payload_ptr(), self.held.shared.payload_len())
    }
}

impl Deref for ReadGuard<'_> {
    type Target = [u8];
    #[inline(always)]
    fn deref(&self) -> &[u8] {
        self.held.bytes()
    }
}

impl core::fmt::Debug for ReadGuard<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.held.fmt("ReadGuard", f)
    }
}

/// The exclusive latch on a page: no reader or other writer sees it until
/// the guard is dropped, which bumps the page's version. The page is marked
/// dirty when the latch is taken. Derefs (mutably) to the payload.
///
/// On a page that has been read with `read_optimistic`, optimistic readers may
/// be copying the bytes while the latch is held, so the frame is never written
/// plainly: the first mutable deref copies the payload into a private buffer,
/// which goes back to the frame (changed words only, through atomic stores)
/// when the guard drops, and [`write`](Self::write) stores in place without
/// that copy.
pub struct WriteGuard<'a> {
    /// The private copy a mutable deref works on (atomic mode only).
    shadow: Option<Shadow>,
    /// Whether optimistic readers may read the frame (`OPTIMISTIC`).
    atomic: bool,
    held: Held<'a>,
}

impl<'a> WriteGuard<'a> {
    /// Wraps the exclusive latch the caller took on `frame`, which holds `page`.
    #[inline(always)]
    pub(crate) fn new(shared: &'a Shared, frame: u32, page: PageId) -> Self {
        Self {
            shadow: None,
            atomic: shared.frames[frame as usize].writes_atomic(),
            held: Held {
                shared,
                frame,
                page,
                latch: Latch::Write,
            },
        }
    }

    /// The page id.
    pub fn page_id(&self) -> PageId {
        self.held.page
    }

    /// Writes `src` at `offset` of the payload; `false` (and nothing written)
    /// if that range is outside it. On a page read optimistically this stores
    /// in place through atomic words, so it avoids the page copy of a mutable
    /// deref.
    pub fn write(&mut self, offset: usize, src: &[u8]) -> bool {
        let len = self.held.shared.payload_len();
        if offset.checked_add(src.len()).is_none_or(|end| end > len) {
            return false;
        }
        if let Some(s) = self.shadow.as_mut() {
            s.as_mut()[offset..offset + src.len()].copy_from_slice(src);
        } else if self.atomic {
            // SAFETY: the payload is 8-aligned (frames are page-aligned, the
            // header is 16 bytes) with a length that is a multiple of 8, and
            // `offset + src.len() ≤ len`; we hold the write latch.
            unsafe { words::copy_in(self.held.payload_ptr(), offset, src) };
        } else {
            self.deref_mut()[offset..offset + src.len()].copy_from_slice(src);
        }
        true
    }

    /// The private copy of the payload, made on first use.
    #[cold]
    #[inline(never)]
    fn make_shadow(&mut self) -> &mut [u8] {
        let mut s = scratch::take_shadow(self.held.shared.payload_len());
        s.as_mut().copy_from_slice(self.held.bytes());
        self.shadow.insert(s).as_mut()
    }
}

impl Deref for WriteGuard<'_> {
    type Target = [u8];
    #[inline(always)]
    fn deref(&self) -> &[u8] {
        match &self.shadow {
            Some(s) => s.as_ref(),
            None => self.held.bytes(),
        }
    }
}

impl DerefMut for WriteGuard<'_> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [u8] {
        if self.atomic {
            return match self.shadow {
                Some(ref mut s) => s.as_mut(),
                None => self.make_shadow(),
            };
        }
        // SAFETY: we hold the write latch on a frame no optimistic reader has
        // marked (`atomic` is false, read after the latch was taken; see
        // `FrameMeta::writes_atomic`): no other thread reads or writes these
        // bytes until the latch is released, and `&mut self` makes this the
        // only borrow through the guard.
        unsafe {
            core::slice::from_raw_parts_mut(self.held.payload_ptr(), self.held.shared.payload_len())
        }
    }
}

impl Drop for WriteGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(s) = self.shadow.take() {
            // SAFETY: the payload is aligned with a length that is a multiple
            // of 8 (as in `write`), the copy has its length, and we still hold
            // the latch (`held` releases it after this body).
            unsafe { words::publish(self.held.payload_ptr(), s.as_ref()) };
            scratch::give_back_shadow(s);
        }
    }
}

impl core::fmt::Debug for WriteGuard<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.held.fmt("WriteGuard", f)
    }
}

/// What `read_optimistic` hands its closure: the page's payload, read
/// without a pin. A writer may change the bytes while the closure runs, so
/// the reads may return torn values; the pool then discards the closure's
/// result and runs it again. Values are copied out by atomic word loads
/// (`words.rs`); no reference to the bytes is ever created.
pub struct PageView<'a> {
    ptr: *const u8,
    len: usize,
    _pool: PhantomData<&'a [u8]>,
}

impl PageView<'_> {
    /// A view of the payload of `len` bytes at `ptr` (8-aligned, `len` a
    /// multiple of 8), which stays mapped for `'a`.
    pub(crate) fn new(ptr: *const u8, len: usize) -> Self {
        debug_assert!(
            (ptr as usize).is_multiple_of(words::WORD) && len.is_multiple_of(words::WORD)
        );
        Self {
            ptr,
            len,
            _pool: PhantomData,
        }
    }

    /// Payload length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the payload is empty (never, for a real page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies bytes `offset..offset + out.len()` into `out`; `false` (and
    /// nothing copied) if that range is outside the payload.
    #[inline(always)]
    pub fn read(&self, offset: usize, out: &mut [u8]) -> bool {
        if offset
            .checked_add(out.len())
            .is_none_or(|end| end > self.len)
        {
            return false;
        }
        // SAFETY: the payload is 8-aligned with a length that is a multiple of
        // 8 (`new`'s contract), the range is inside it, and it stays mapped for
        // the view's lifetime. Owners of a frame optimistic readers may read
        // write it only through whole-word atomic stores (`frame.rs`, OPT).
        unsafe { words::copy_out(self.ptr, offset, out) };
        true
    }

    /// The `N` bytes at `offset`, if inside the payload.
    #[inline(always)]
    pub fn array<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        let mut a = [0u8; N];
        self.read(offset, &mut a).then_some(a)
    }

    /// The little-endian `u64` at `offset`.
    pub fn u64_at(&self, offset: usize) -> Option<u64> {
        self.array::<8>(offset).map(u64::from_le_bytes)
    }

    /// The little-endian `u32` at `offset`.
    pub fn u32_at(&self, offset: usize) -> Option<u32> {
        self.array::<4>(offset).map(u32::from_le_bytes)
    }

    /// The byte at `offset`.
    pub fn u8_at(&self, offset: usize) -> Option<u8> {
        self.array::<1>(offset).map(|a| a[0])
    }

    /// A copy of the whole payload.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.len];
        self.read(0, &mut v);
        v
    }
}

impl core::fmt::Debug for PageView<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PageView").field("len", &self.len).finish()
    }
}
