//! Serialisation helpers for the statistics types (behind the `serde` feature).
//!
//! serde implements `Serialize` for arrays of at most 32 elements; the
//! per-class array of [`AllocStats`](super::AllocStats) has 85, so it is
//! written as a sequence.

use super::stats::{ClassStats, SIZE_CLASSES};

/// Serialises the per-class figures as a sequence.
pub(super) fn classes<S: serde::Serializer>(
    classes: &[ClassStats; SIZE_CLASSES],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(classes.iter())
}
