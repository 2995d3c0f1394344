//! Drop registration: values moved into a context with `alloc_with_drop` have
//! their `Drop` run at reset, rewind or drop, newest first (an intrusive list
//! of nodes allocated in the context itself).

use core::alloc::Layout;
use core::ptr;

use super::context::{MemoryContext, alloc_failed};
use crate::Result;

/// A value registered with `alloc_with_drop`, dropped at reset, rewind or drop.
pub(crate) struct DropNode {
    next: *mut DropNode,
    id: u64,
    value: *mut u8,
    drop_fn: unsafe fn(*mut u8),
}

/// # Safety
/// `p` points to a live `T` that is dropped exactly once, here.
unsafe fn drop_value<T>(p: *mut u8) {
    // SAFETY: caller's contract.
    unsafe { ptr::drop_in_place(p.cast::<T>()) }
}

// Each allocation hands out fresh memory disjoint from every other live one, so
// `&self -> &mut T` is sound here, as in bumpalo.
#[allow(clippy::mut_from_ref)]
impl MemoryContext<'_> {
    /// Moves `value` into the context and runs its `Drop` when the context is
    /// reset, rewound past this point, or dropped — in reverse order of
    /// registration.
    pub fn try_alloc_with_drop<T: Send>(&self, value: T) -> Result<&mut T> {
        if !core::mem::needs_drop::<T>() {
            return self.try_alloc(value);
        }
        let node = self
            .try_alloc_layout(Layout::new::<DropNode>())?
            .cast::<DropNode>();
        let v = self.try_alloc(value)?;
        let me = self.inner();
        let id = me.next_drop_id.get();
        me.next_drop_id.set(id + 1);
        // SAFETY: `node` is fresh and aligned; `v` lives until reset/rewind/drop,
        // which run the node before freeing the chunk.
        unsafe {
            node.as_ptr().write(DropNode {
                next: me.drops.get(),
                id,
                value: (v as *mut T).cast(),
                drop_fn: drop_value::<T>,
            });
        }
        me.drops.set(node.as_ptr());
        Ok(v)
    }

    /// As [`try_alloc_with_drop`](Self::try_alloc_with_drop).
    ///
    /// # Panics
    /// As [`alloc_layout`](Self::alloc_layout).
    pub fn alloc_with_drop<T: Send>(&self, value: T) -> &mut T {
        match self.try_alloc_with_drop(value) {
            Ok(r) => r,
            Err(e) => alloc_failed(e),
        }
    }

    /// Runs registered drops with id ≥ `watermark`, newest first.
    pub(super) fn run_drops(&self, watermark: u64) {
        let me = self.inner();
        let mut n = me.drops.get();
        // SAFETY: every node and value is live until its drop runs here, once;
        // the node is unlinked before its value is dropped, so a panicking drop
        // cannot cause a second run.
        unsafe {
            while !n.is_null() && (*n).id >= watermark {
                let node = n.read();
                me.drops.set(node.next);
                n = node.next;
                (node.drop_fn)(node.value);
            }
        }
    }
}
