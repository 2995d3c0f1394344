//! Chunks: the blocks a memory context bumps through.
//!
//! A chunk is one allocation from the global allocator (or, from 256 KiB up, from
//! the large-object path) with a small header at its start; objects are bumped
//! downward from its end towards the header.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

/// Alignment of every chunk (and so the largest alignment served without padding).
pub(crate) const CHUNK_ALIGN: usize = 16;
/// Chunks of this size or more come straight from the large-object path.
pub(crate) const LARGE_CHUNK: usize = 256 << 10;

/// Header at the start of every chunk.
///
/// Invariant: `size` is the chunk's total size in bytes (header included);
/// `prev` is the chunk taken before this one by the same context, or null;
/// `seq` is unique and increasing within the owning context.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct ChunkHeader {
    pub(crate) prev: *mut ChunkHeader,
    pub(crate) size: usize,
    pub(crate) seq: u64,
}

/// Bytes taken by the header, rounded to the chunk alignment.
pub(crate) const HEADER: usize =
    (core::mem::size_of::<ChunkHeader>() + CHUNK_ALIGN - 1) & !(CHUNK_ALIGN - 1);

impl ChunkHeader {
    /// First usable byte of the chunk.
    #[inline]
    pub(crate) fn data_start(c: *mut ChunkHeader) -> usize {
        c as usize + HEADER
    }
    /// One past the last byte of the chunk.
    ///
    /// # Safety
    /// `c` is a live chunk.
    #[inline]
    pub(crate) unsafe fn data_end(c: *mut ChunkHeader) -> usize {
        // SAFETY: live chunk (caller).
        c as usize + unsafe { (*c).size }
    }
}

/// Allocates a chunk of `size` bytes (`> HEADER`); `None` if memory is refused.
pub(crate) fn alloc_chunk(
    size: usize,
    prev: *mut ChunkHeader,
    seq: u64,
) -> Option<NonNull<ChunkHeader>> {
    let layout = Layout::from_size_align(size, CHUNK_ALIGN).ok()?;
    let p = if size >= LARGE_CHUNK {
        crate::large::alloc(size, CHUNK_ALIGN, false)
    } else {
        // SAFETY: `layout` has a non-zero size.
        unsafe { std::alloc::alloc(layout) }
    };
    let c = NonNull::new(p.cast::<ChunkHeader>())?;
    // SAFETY: a fresh block of `size >= HEADER` bytes, aligned to 16, ours alone.
    unsafe { c.as_ptr().write(ChunkHeader { prev, size, seq }) };
    Some(c)
}

/// Frees a chunk from [`alloc_chunk`].
///
/// # Safety
/// `c` is a live chunk from `alloc_chunk`, and nothing in it is used afterwards.
pub(crate) unsafe fn free_chunk(c: *mut ChunkHeader) {
    // SAFETY: live chunk (caller); its size was valid when it was allocated.
    unsafe {
        let size = (*c).size;
        if size >= LARGE_CHUNK {
            crate::large::dealloc(c.cast(), size, CHUNK_ALIGN);
        } else {
            std::alloc::dealloc(
                c.cast(),
                Layout::from_size_align_unchecked(size, CHUNK_ALIGN),
            );
        }
    }
}

/// Frees the chain starting at `c` (following `prev`) down to, not including, `stop`.
///
/// # Safety
/// Every chunk in the chain before `stop` is live and unused afterwards.
pub(crate) unsafe fn free_chain(mut c: *mut ChunkHeader, stop: *mut ChunkHeader) -> (usize, usize) {
    let mut freed = 0;
    let mut n = 0;
    while !c.is_null() && !ptr::eq(c, stop) {
        // SAFETY: live chunk of the chain (caller).
        unsafe {
            let prev = (*c).prev;
            freed += (*c).size;
            n += 1;
            free_chunk(c);
            c = prev;
        }
    }
    (freed, n)
}
