//! Memory contexts that outlive a request: a session's context, a
//! transaction's child of it, a query's child of that. A `MemoryContext` child
//! borrows its parent; here the borrow is replaced by shared ownership — a node
//! keeps its parent node alive — so the tree can live across requests and
//! threads.

use std::collections::HashMap;
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

/// A snapshot of the context registry with every subtree's totals computed
/// once, so listings of n sessions or transactions cost O(contexts + n)
/// rather than a registry scan per entry (the `server_request` fuzz target
/// found the quadratic form).
#[derive(Debug)]
pub struct Snapshot {
    /// The registry's entries.
    pub all: Vec<ContextStats>,
    /// id → (own entry's index, subtree reserved bytes, subtree used bytes).
    index: HashMap<u64, (usize, usize, usize)>,
}

impl Snapshot {
    /// Reads the registry now.
    pub fn take() -> Snapshot {
        Snapshot::from(rustydb_memory::arena::contexts())
    }

    /// The entry of context `id`.
    pub fn get(&self, id: u64) -> Option<&ContextStats> {
        self.index.get(&id).map(|&(i, _, _)| &self.all[i])
    }

    /// (reserved, used) bytes of context `id` and all its descendants; zeros
    /// for a context no longer registered.
    pub fn subtree(&self, id: u64) -> (usize, usize) {
        self.index.get(&id).map_or((0, 0), |&(_, r, u)| (r, u))
    }
}

impl From<Vec<ContextStats>> for Snapshot {
    fn from(all: Vec<ContextStats>) -> Snapshot {
        let mut index: HashMap<u64, (usize, usize, usize)> = all
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id, (i, 0, 0)))
            .collect();
        for c in &all {
            // Add the context's own bytes to itself and each ancestor. The
            // hop bound guards against a cycle in a racy snapshot.
            let mut at = Some(c.id);
            let mut hops = 0;
            while let Some(id) = at
                && hops <= all.len()
            {
                let Some(e) = index.get_mut(&id) else { break };
                e.1 += c.reserved;
                e.2 += c.used;
                at = all[e.0].parent;
                hops += 1;
            }
        }
        Snapshot { all, index }
    }
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
        let snap = Snapshot::take();
        let (reserved, _) = snap.subtree(txn.id);
        assert_eq!(reserved, 0, "the query context is gone");
        assert!(snap.get(txn.id).is_some_and(|c| c.parent.is_some()));
    }
}
