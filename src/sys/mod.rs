//! The only door to the operating system: memory mappings, advice, clocks,
//! environment and memory readings. Everything here is callable from inside the
//! global allocator: nothing allocates, nothing panics, every reading degrades to
//! `None` ("unknown").

mod env;
pub(crate) mod mapped;
mod mem;
pub(crate) mod purge_signal;
mod readings;

pub(crate) use env::{env_usize, environment_ready};
pub use mem::{Advice, HugePageSize};
#[allow(unused_imports)]
pub(crate) use mem::{
    advise, errno, map, map_aligned, map_huge_reserved, page_size, populate, remap, unmap,
};
pub use readings::{
    MemInfo, MemoryPsi, cgroup_memory_current, cgroup_memory_max, meminfo, memory_psi, process_rss,
};
pub(crate) use readings::{ThpMode, coarse_now_ns, now_ns, thp_mode};
