//! `allocator_api2::alloc::Allocator` for `&MemoryContext`, so
//! `allocator_api2::vec::Vec<T, &MemoryContext>` and hashbrown tables live in a
//! context. Deallocation gives back only the most recent allocation (as bumpalo);
//! everything else is freed by reset or drop.

use core::alloc::Layout;
use core::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator};

use super::context::MemoryContext;

// SAFETY: blocks are valid, distinct and aligned until the context is reset or
// dropped, which needs `&mut`/ownership and so cannot happen while this `&`
// allocator (or a clone of it) exists; copies of the reference are the same allocator.
unsafe impl Allocator for &MemoryContext<'_> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        match self.try_alloc_layout(layout) {
            Ok(p) => Ok(NonNull::slice_from_raw_parts(p, layout.size())),
            Err(_) => Err(AllocError),
        }
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        self.dealloc_last(ptr, layout);
    }
}
