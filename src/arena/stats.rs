//! `ContextStats`: the figures of one context, read from its atomic fields.

use super::context::Inner;
use crate::sync::Ordering;

/// Figures of one context.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ContextStats {
    /// Unique id of the context.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Id of its parent, if any.
    pub parent: Option<u64>,
    /// Bytes handed out by this context itself (alignment padding included).
    pub used: usize,
    /// Bytes of chunks this context holds (including a spare chunk).
    pub reserved: usize,
    /// Highest `used` seen.
    pub peak: usize,
    /// Chunks held.
    pub chunks: usize,
    /// Live direct children.
    pub children: usize,
    /// The limit on the subtree, if any.
    pub limit: Option<usize>,
    /// Bytes requested by the subtree and counted against a limit (0 when
    /// neither this context nor an ancestor has a limit).
    pub charged: usize,
}

impl ContextStats {
    pub(crate) fn of(c: &Inner) -> Self {
        // Relaxed: a racy statistics snapshot.
        let used = c.used();
        ContextStats {
            id: c.id,
            name: c.name.to_string(),
            // SAFETY: a parent outlives its children (a borrowed child by its
            // lifetime `'p`, an owned one by the `Arc` it holds).
            parent: (!c.parent.is_null()).then(|| unsafe { (*c.parent).id }),
            used,
            reserved: c.reserved.load(Ordering::Relaxed),
            peak: c.peak.load(Ordering::Relaxed).max(used),
            chunks: c.chunks.load(Ordering::Relaxed),
            children: c.children.load(Ordering::Relaxed),
            limit: (c.limit != usize::MAX).then_some(c.limit),
            charged: c.charged.load(Ordering::Relaxed),
        }
    }
}
