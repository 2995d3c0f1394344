//! The slab layer: size classes 8 B – 256 KiB, 2 MiB segments, slabs, magazines
//! and the depot. It knows nothing of threads: a slab's owner is a number (`owner`)
//! the thread caches in `global` claim.

pub(crate) mod depot;
pub(crate) mod magazine;
#[cfg(not(rustydb_loom))]
pub(crate) mod magazine_pool;
#[cfg(not(rustydb_loom))]
pub(crate) mod owner;
#[cfg(not(rustydb_loom))]
pub(crate) mod segment;
#[cfg(not(rustydb_loom))]
pub(crate) mod segment_map;
#[cfg(not(rustydb_loom))]
pub(crate) mod size_class;
#[cfg(not(rustydb_loom))]
#[allow(clippy::module_inception)]
pub(crate) mod slab;

#[cfg(not(rustydb_loom))]
pub(crate) use crate::options::purge_delay_ns;
