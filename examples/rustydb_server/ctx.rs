//! Memory contexts that outlive a request: a session's context, a
//! transaction's child of it, a query's child of that. A `MemoryContext` child
//! borrows its parent; here the borrow is replaced by shared ownership — a node
//! keeps its parent node alive — so the tree can live across requests and
//! threads.

use std::sync::{Arc, Mutex, MutexGuard};

use rustydb_memory::{ContextStats, MemoryContext};

/// A context and (keeping it alive) its parent.
///
/// Invariants: `ctx`'s parent context, if any, is `parent.ctx`; a node is never
/// reset (only dropped), so a parent's memory is released only after every
/// child node is gone. Fields drop in declaration order: the context before the
/// parent that it points to.
pub struct CtxNode {
    ctx: Mutex<MemoryContext<'static>>,
    parent: Option<Arc<CtxNode>>,
    /// The context's id (as listed by `GET /api/v1/memory/contexts`).
    pub id: u64,
}

impl std::fmt::Debug for CtxNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtxNode").field("id", &self.id).finish()
    }
}

impl CtxNode {
    /// A root context.
    pub fn root(name: String, limit: Option<u64>) -> Arc<CtxNode> {
        let b = MemoryContext::builder(name);
        let b = match limit {
            Some(l) => b.limit(l as usize),
            None => b,
        };
        let ctx = b.build();
        Arc::new(CtxNode {
            id: ctx.id(),
            ctx: Mutex::new(ctx),
            parent: None,
        })
    }

    /// A child context of this one, counted against this one's limit.
    pub fn child(self: &Arc<Self>, name: String, limit: Option<u64>) -> Arc<CtxNode> {
        let g = self.lock();
        let c = g.child(name, limit.map(|l| l as usize));
        // SAFETY: the child refers to the parent's heap-allocated context state,
        // which stays at its address until the parent `MemoryContext` is dropped.
        // The new node holds an `Arc` to `self`, so the parent is dropped only
        // after the child (field order), and nodes are never reset, so the
        // parent's chunks are never freed under the child. Children touch only
        // the parent's atomic counters, so creating and using one from another
        // thread while the parent is unlocked is sound (see `MemoryContext`).
        let c: MemoryContext<'static> =
            unsafe { std::mem::transmute::<MemoryContext<'_>, MemoryContext<'static>>(c) };
        drop(g);
        Arc::new(CtxNode {
            id: c.id(),
            ctx: Mutex::new(c),
            parent: Some(self.clone()),
        })
    }

    /// Locks the context for allocation.
    pub fn lock(&self) -> MutexGuard<'_, MemoryContext<'static>> {
        self.ctx.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The context's figures.
    pub fn stats(&self) -> ContextStats {
        self.lock().stats()
    }

    /// The parent node.
    pub fn parent(&self) -> Option<&Arc<CtxNode>> {
        self.parent.as_ref()
    }
}

/// Bytes reserved by the context `id` and all its descendants, from a registry snapshot.
pub fn subtree_reserved(all: &[ContextStats], id: u64) -> (usize, usize) {
    let mut reserved = 0;
    let mut used = 0;
    let mut stack = vec![id];
    while let Some(i) = stack.pop() {
        for c in all {
            if c.id == i {
                reserved += c.reserved;
                used += c.used;
            }
            if c.parent == Some(i) {
                stack.push(c.id);
            }
        }
    }
    (reserved, used)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::Layout;

    #[test]
    fn children_outlive_their_creator_scope_and_count_against_limits() {
        let session = CtxNode::root("test-session".into(), Some(1 << 20));
        let txn = session.child("test-txn".into(), None);
        let q = txn.child("test-query".into(), Some(256 << 10));
        drop(session); // still alive through the children
        let t = std::thread::spawn(move || {
            let g = q.lock();
            g.try_alloc_layout(Layout::from_size_align(100 << 10, 16).unwrap())
                .unwrap();
            assert!(
                g.try_alloc_layout(Layout::from_size_align(200 << 10, 16).unwrap())
                    .is_err()
            );
            g.used()
        });
        assert!(t.join().unwrap() >= 100 << 10);
        let all = rustydb_memory::arena::contexts();
        let (reserved, _) = subtree_reserved(&all, txn.id);
        assert_eq!(reserved, 0, "the query context is gone");
        assert!(all.iter().any(|c| c.id == txn.id && c.parent.is_some()));
    }
}
