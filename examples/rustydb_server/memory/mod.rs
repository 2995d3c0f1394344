//! Memory that outlives a request: client sessions and the tree of memory
//! contexts (session → transaction → query) they own.

pub mod ctx;
pub mod sessions;
