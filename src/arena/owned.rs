//! `OwnedContext`: a memory context that owns a share of its parent instead of
//! borrowing it, so a tree of contexts can live across requests and threads
//! (a session's context, a transaction's child of it, a query's child of that)
//! with the parent's accounting and limits, and no lifetime to extend.

use core::ops::Deref;
use core::ptr::NonNull;
use std::borrow::Cow;
use std::sync::Arc;

use super::builder::ContextBuilder;
use super::context::{Checkpoint, Inner, MemoryContext, new_child};
use super::stats::ContextStats;
use crate::sync::{Lock, LockGuard};
use crate::{Error, Result};

/// The shared state of a context, as a child needs it: the fields a child
/// reads or updates through its parent link (`id`, `name`, `limit`,
/// `charge_top`, `max_chunk`, the atomic counters) are immutable after
/// construction or atomic, so the link may cross threads.
///
/// Invariant: points at the live `Inner` of a context (a `ParentLink` is only
/// followed while its context is known to live; see `child_of`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ParentLink(pub(super) NonNull<Inner>);

// SAFETY: through a link only the immutable and atomic fields of `Inner` are
// reached (see the type's documentation), which any thread may read or update.
unsafe impl Send for ParentLink {}
// SAFETY: as for `Send`.
unsafe impl Sync for ParentLink {}

impl MemoryContext<'static> {
    /// A child of the context `parent` links to, not tied to a borrow of it:
    /// charged against the same limits, counted among its children.
    ///
    /// # Safety
    /// The context `parent` links to must not be dropped while the returned
    /// context lives (the child reads its limits and updates its counters).
    unsafe fn child_of(parent: ParentLink, name: Cow<'static, str>, limit: Option<usize>) -> Self {
        // SAFETY: the caller keeps the parent's `Inner` alive for the child's
        // lifetime, which covers this call.
        let parent = unsafe { parent.0.as_ref() };
        new_child(parent, name, limit)
    }
}

/// A memory context in an `Arc`, holding its parent alive: children need no
/// borrow of their parent, and a tree of them can be kept across requests
/// and handed between threads. Allocation goes through [`lock`](Self::lock),
/// whose guard derefs to the [`MemoryContext`] (shared access only).
///
/// - A child is charged against the limits of every ancestor, as a borrowed
///   [`MemoryContext::child`] is; its own limit covers its subtree.
/// - The parent lives as long as any child (each child holds an `Arc` of it),
///   and the child's context is dropped before that `Arc` (field order).
/// - [`OwnedContextGuard::reset`] and [`rewind`](OwnedContextGuard::rewind)
///   need the guard exclusively (so no allocation of the context is still
///   borrowed) and are refused with `Error::ContextHasChildren` while the
///   context has a live child: the `&mut self` proof a borrowed tree gets
///   from the borrow checker, checked at run time here.
///
/// ```
/// use rustydb_memory::OwnedContext;
///
/// let session = OwnedContext::root("session", Some(1 << 20));
/// let txn = session.child("txn", None);
/// drop(session); // kept alive by the transaction
/// let t = std::thread::spawn(move || {
///     let mut ctx = txn.lock();
///     let row = ctx.alloc_slice_copy(&[1u32, 2, 3]);
///     assert_eq!(row, &[1, 2, 3]);
///     // The session's limit covers the transaction's allocations.
///     assert!(ctx.try_alloc_layout(std::alloc::Layout::new::<[u8; 2 << 20]>()).is_err());
///     ctx.reset().unwrap();
///     ctx.used()
/// });
/// assert_eq!(t.join().unwrap(), 0);
/// ```
pub struct OwnedContext {
    // Declaration order is drop order: the context (which points at the
    // parent's state) goes before the `Arc` that keeps the parent alive.
    ctx: Lock<MemoryContext<'static>>,
    /// The context's state, for making children without taking the lock.
    /// Invariant: links to `ctx`'s context.
    link: ParentLink,
    id: u64,
    parent: Option<Arc<OwnedContext>>,
}

impl core::fmt::Debug for OwnedContext {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OwnedContext")
            .field("id", &self.id)
            .field("parent", &self.parent.as_ref().map(|p| p.id))
            .finish()
    }
}

impl OwnedContext {
    /// A root context with an optional limit (bytes, for its whole tree).
    pub fn root(name: impl Into<Cow<'static, str>>, limit: Option<usize>) -> Arc<Self> {
        let b = MemoryContext::builder(name);
        Self::from_builder(match limit {
            Some(l) => b.limit(l),
            None => b,
        })
    }

    /// A root context with the builder's chunk sizes and limit.
    pub fn from_builder(b: ContextBuilder) -> Arc<Self> {
        Self::wrap(b.build(), None)
    }

    fn wrap(ctx: MemoryContext<'static>, parent: Option<Arc<OwnedContext>>) -> Arc<Self> {
        Arc::new(Self {
            link: ctx.link(),
            id: ctx.id(),
            ctx: Lock::new(ctx),
            parent,
        })
    }

    /// A child context, charged against this context's limits (and its
    /// ancestors'); `limit` (bytes, for the child's subtree) if given. Takes
    /// no lock: it may be called while any thread holds this context's guard.
    pub fn child(
        self: &Arc<Self>,
        name: impl Into<Cow<'static, str>>,
        limit: Option<usize>,
    ) -> Arc<Self> {
        // SAFETY: `self.link` links to `self.ctx`'s context (the field's
        // invariant), which lives as long as `self`; the new node holds an
        // `Arc` of `self` and drops its context before that `Arc`.
        let ctx = unsafe { MemoryContext::child_of(self.link, name.into(), limit) };
        Self::wrap(ctx, Some(self.clone()))
    }

    /// Locks the context for allocation (sleeping while another thread holds
    /// it). Allocations borrow the guard, so they end before it is dropped.
    pub fn lock(&self) -> OwnedContextGuard<'_> {
        OwnedContextGuard {
            ctx: self.ctx.lock(),
        }
    }

    /// Locks the context if no other thread holds it.
    pub fn try_lock(&self) -> Option<OwnedContextGuard<'_>> {
        self.ctx.try_lock().map(|ctx| OwnedContextGuard { ctx })
    }

    /// The context's unique id (as in [`ContextStats::id`]).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The parent node, if any.
    pub fn parent(&self) -> Option<&Arc<OwnedContext>> {
        self.parent.as_ref()
    }

    /// The context's figures (locks briefly).
    pub fn stats(&self) -> ContextStats {
        self.lock().stats()
    }
}

/// The lock on an [`OwnedContext`]: derefs to its [`MemoryContext`] for
/// allocation (shared access: what is allocated borrows the guard).
pub struct OwnedContextGuard<'a> {
    ctx: LockGuard<'a, MemoryContext<'static>>,
}

impl core::fmt::Debug for OwnedContextGuard<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.ctx.fmt(f)
    }
}

impl Deref for OwnedContextGuard<'_> {
    type Target = MemoryContext<'static>;

    #[inline(always)]
    fn deref(&self) -> &MemoryContext<'static> {
        &self.ctx
    }
}

impl OwnedContextGuard<'_> {
    /// Frees everything allocated in the context (see [`MemoryContext::reset`]);
    /// `Err(ContextHasChildren)` while a child of it lives. `&mut self` proves
    /// that no allocation (nor borrowed child) made through this guard lives.
    pub fn reset(&mut self) -> Result<()> {
        self.no_children()?;
        self.ctx.reset();
        Ok(())
    }

    /// Rolls the context back to `cp` (see [`MemoryContext::rewind`]);
    /// `Err(ContextHasChildren)` while a child of it lives.
    pub fn rewind(&mut self, cp: &Checkpoint) -> Result<()> {
        self.no_children()?;
        self.ctx.rewind(cp)
    }

    fn no_children(&self) -> Result<()> {
        match self.ctx.live_children() {
            0 => Ok(()),
            children => Err(Error::ContextHasChildren {
                context: self.ctx.id(),
                children,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::alloc::Layout;

    fn kib(n: usize) -> Layout {
        Layout::from_size_align(n << 10, 16).unwrap()
    }

    #[test]
    fn children_keep_parents_alive_and_count_against_their_limits() {
        let session = OwnedContext::root("owned-session", Some(1 << 20));
        let txn = session.child("owned-txn", None);
        let query = txn.child("owned-query", Some(256 << 10));
        let (sid, tid) = (session.id(), txn.id());
        drop(session);
        let t = std::thread::spawn(move || {
            let g = query.lock();
            g.try_alloc_layout(kib(100)).unwrap();
            assert!(matches!(
                g.try_alloc_layout(kib(200)),
                Err(Error::LimitExceeded { limit, .. }) if limit == 256 << 10
            ));
            g.stats().charged
        });
        assert!(t.join().unwrap() >= 100 << 10);
        let all = super::super::contexts();
        assert!(all.iter().any(|c| c.id == sid), "kept alive by its child");
        let t = all.iter().find(|c| c.id == tid).unwrap();
        assert_eq!(t.parent, Some(sid));
        assert_eq!(t.children, 0, "the query context is gone");
        assert_eq!(t.charged, 0, "its charges went with it");
    }

    #[test]
    fn reset_is_refused_while_a_child_lives() {
        let parent = OwnedContext::root("owned-parent", None);
        let child = parent.child("owned-child", None);
        {
            let mut g = parent.lock();
            g.alloc_slice_copy(&[7u8; 100]);
            assert!(g.used() >= 100);
            assert_eq!(
                g.reset(),
                Err(Error::ContextHasChildren {
                    context: parent.id(),
                    children: 1
                })
            );
            let cp = g.checkpoint();
            assert!(g.rewind(&cp).is_err());
            assert!(g.used() >= 100, "nothing was freed");
        }
        drop(child);
        let mut g = parent.lock();
        g.reset().unwrap();
        assert_eq!(g.used(), 0);
    }

    #[test]
    fn child_needs_no_lock_on_the_parent() {
        let parent = OwnedContext::root("owned-locked", Some(64 << 10));
        let g = parent.lock();
        let child = parent.child("owned-free", None);
        assert!(parent.try_lock().is_none());
        assert!(
            child.lock().try_alloc_layout(kib(100)).is_err(),
            "parent's limit"
        );
        child.lock().try_alloc_layout(kib(10)).unwrap();
        assert_eq!(g.stats().charged, 10 << 10);
        assert_eq!(g.stats().children, 1);
    }
}
