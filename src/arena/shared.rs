//! `SharedContext`: a memory context usable from several threads at once.
//!
//! One short lock around the bump (a futex lock: ~20 ns uncontended); the
//! alternative, a chunk per thread, costs a thread-local lookup per allocation and
//! memory per thread — measured in `benches/arena.rs`.

use core::alloc::Layout;
use core::ptr::NonNull;
use std::borrow::Cow;

use super::context::MemoryContext;
use super::stats::ContextStats;
use crate::Result;
use crate::sync::Lock;

/// A [`MemoryContext`] behind a lock: `Send + Sync`, allocation through `&self`.
///
/// ```
/// use rustydb_memory::SharedContext;
///
/// let ctx = SharedContext::root("shared", None);
/// std::thread::scope(|s| {
///     for t in 0..2u64 {
///         let ctx = &ctx;
///         s.spawn(move || {
///             let v = ctx.alloc_slice_copy(&[t; 100]);
///             assert!(v.iter().all(|&x| x == t));
///         });
///     }
/// });
/// ```
pub struct SharedContext {
    /// `Lock<T>` is `Sync` for `T: Send`: `MemoryContext` is `Send` (values
    /// registered for drop are `Send`), and only one thread at a time reaches it.
    ctx: Lock<MemoryContext<'static>>,
}

impl core::fmt::Debug for SharedContext {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedContext")
            .field("stats", &self.stats())
            .finish()
    }
}

// Fresh, disjoint memory per call: `&self -> &mut T` is sound (see MemoryContext).
#[allow(clippy::mut_from_ref)]
impl SharedContext {
    /// A root shared context with an optional limit.
    pub fn root(name: impl Into<Cow<'static, str>>, limit: Option<usize>) -> Self {
        let b = MemoryContext::builder(name);
        let b = match limit {
            Some(l) => b.limit(l),
            None => b,
        };
        Self {
            ctx: Lock::new(b.build()),
        }
    }

    /// Allocates room for `layout` (see [`MemoryContext::try_alloc_layout`]).
    /// The block stays valid until [`reset`](Self::reset) or drop, both of
    /// which need the context exclusively.
    pub fn try_alloc_layout(&self, layout: Layout) -> Result<NonNull<u8>> {
        self.ctx.lock().try_alloc_layout(layout)
    }

    /// Moves `value` into the context.
    pub fn try_alloc<T: Send>(&self, value: T) -> Result<&mut T> {
        let p = self.try_alloc_layout(Layout::new::<T>())?.cast::<T>();
        // SAFETY: fresh, aligned memory handed to this caller only.
        unsafe {
            p.as_ptr().write(value);
            Ok(&mut *p.as_ptr())
        }
    }

    /// Copies `src` into the context.
    ///
    /// # Panics
    /// If a limit would be exceeded or memory is refused.
    pub fn alloc_slice_copy<T: Copy + Send>(&self, src: &[T]) -> &mut [T] {
        let p = self
            .ctx
            .lock()
            .alloc_layout(Layout::for_value(src))
            .cast::<T>();
        // SAFETY: fresh memory with room for `src.len()` values of `T`, aligned,
        // disjoint from `src` and from every other live block, handed to this
        // caller only; it stays valid until `reset`/drop, which need `&mut self`.
        unsafe {
            core::ptr::copy_nonoverlapping(src.as_ptr(), p.as_ptr(), src.len());
            core::slice::from_raw_parts_mut(p.as_ptr(), src.len())
        }
    }

    /// Frees everything (see [`MemoryContext::reset`]).
    pub fn reset(&mut self) {
        self.ctx.get_mut().reset();
    }

    /// The context's figures.
    pub fn stats(&self) -> ContextStats {
        self.ctx.lock().stats()
    }
}
