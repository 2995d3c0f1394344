//! RAII guards over a pinned page, and the view an optimistic read gets.

use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};

use super::PageId;
use super::format::PAGE_HEADER;
use super::pool::Shared;

/// A shared pin on a page: the page stays in its frame and no writer changes
/// it until the guard is dropped. Derefs to the page's payload
/// (`page_size − 16` bytes; the first 16 bytes of every page are the pool's
/// header with the checksum).
pub struct ReadGuard<'a> {
    shared: &'a Shared,
    frame: u32,
    page: PageId,
    data: &'a [u8],
}

impl<'a> ReadGuard<'a> {
    /// Wraps a pin the caller took on `frame`, which holds `page`.
    pub(crate) fn new(shared: &'a Shared, frame: u32, page: PageId) -> Self {
        // SAFETY: the caller holds a shared pin on `frame`: the frame stays
        // mapped (the guard borrows the pool) and no writer or evictor changes
        // its bytes until `Drop` releases the pin, so a shared slice is sound.
        let data = unsafe {
            core::slice::from_raw_parts(
                shared.frame_ptr(frame).add(PAGE_HEADER),
                shared.payload_len(),
            )
        };
        Self {
            shared,
            frame,
            page,
            data,
        }
    }

    /// The page id.
    pub fn page_id(&self) -> PageId {
        self.page
    }
}

impl Deref for ReadGuard<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.data
    }
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        self.shared.frames[self.frame as usize].unpin_shared();
    }
}

impl core::fmt::Debug for ReadGuard<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReadGuard")
            .field("page", &self.page)
            .field("frame", &self.frame)
            .finish()
    }
}

/// The exclusive latch on a page: no reader or other writer sees it until
/// the guard is dropped, which bumps the page's version. The page is marked
/// dirty when the latch is taken. Derefs (mutably) to the payload.
pub struct WriteGuard<'a> {
    shared: &'a Shared,
    frame: u32,
    page: PageId,
    data: &'a mut [u8],
}

impl<'a> WriteGuard<'a> {
    /// Wraps the exclusive latch the caller took on `frame`, which holds `page`.
    pub(crate) fn new(shared: &'a Shared, frame: u32, page: PageId) -> Self {
        // SAFETY: the caller holds the WRITE latch on `frame`: there are no
        // pins and no other latch, and nobody creates a reference into the
        // frame until `Drop` releases it, so this is the only reference.
        // (Optimistic readers use raw volatile loads, validated afterwards.)
        let data = unsafe {
            core::slice::from_raw_parts_mut(
                shared.frame_ptr(frame).add(PAGE_HEADER),
                shared.payload_len(),
            )
        };
        Self {
            shared,
            frame,
            page,
            data,
        }
    }

    /// The page id.
    pub fn page_id(&self) -> PageId {
        self.page
    }
}

impl Deref for WriteGuard<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.data
    }
}

impl DerefMut for WriteGuard<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.data
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.shared.frames[self.frame as usize].unlock_exclusive();
    }
}

impl core::fmt::Debug for WriteGuard<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WriteGuard")
            .field("page", &self.page)
            .field("frame", &self.frame)
            .finish()
    }
}

/// What `read_optimistic` hands its closure: the page's payload, read
/// without a pin. A writer may change the bytes while the closure runs, so
/// the reads may return torn values; the pool then discards the closure's
/// result and runs it again. Values are copied out by volatile loads; no
/// reference to the bytes is ever created.
pub struct PageView<'a> {
    ptr: *const u8,
    len: usize,
    _pool: PhantomData<&'a [u8]>,
}

impl PageView<'_> {
    /// A view of `len` bytes at `ptr`, which stay mapped for `'a`.
    pub(crate) fn new(ptr: *const u8, len: usize) -> Self {
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
    pub fn read(&self, offset: usize, out: &mut [u8]) -> bool {
        let Some(end) = offset.checked_add(out.len()) else {
            return false;
        };
        if end > self.len {
            return false;
        }
        let mut i = 0;
        while i + 8 <= out.len() {
            // SAFETY: `offset + i + 8 ≤ len`, inside the frame, which stays
            // mapped for the view's lifetime. This is the seqlock read pattern
            // (as crossbeam's SeqLock): the load may race with a writer; the
            // value is discarded unless the version check after the closure
            // passes. `[u8; 8]` has alignment 1, so any offset is fine.
            let w = unsafe { core::ptr::read_volatile(self.ptr.add(offset + i).cast::<[u8; 8]>()) };
            out[i..i + 8].copy_from_slice(&w);
            i += 8;
        }
        while i < out.len() {
            // SAFETY: as above, one byte.
            out[i] = unsafe { core::ptr::read_volatile(self.ptr.add(offset + i)) };
            i += 1;
        }
        true
    }

    /// The `N` bytes at `offset`, if inside the payload.
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
