//! Memory contexts that outlive a request: a session's context, a
//! transaction's child of it, a query's child of that, as
//! [`OwnedContext`]s (each node keeps its parent alive, so the tree lives
//! across requests and threads), and a snapshot of the context registry.

use std::collections::HashMap;

use rustydb_memory::ContextStats;
#[cfg(test)]
use rustydb_memory::OwnedContext;

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
        let session = OwnedContext::root("test-session", Some(1 << 20));
        let txn = session.child("test-txn", None);
        let q = txn.child("test-query", Some(256 << 10));
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
        let (reserved, _) = snap.subtree(txn.id());
        assert_eq!(reserved, 0, "the query context is gone");
        assert!(snap.get(txn.id()).is_some_and(|c| c.parent.is_some()));
    }
}
