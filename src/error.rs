//! The crate's one error type.

/// Everything that can go wrong in `rustydb_memory`, with the figures involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused to map memory.
    #[error("out of memory: the system refused to map {requested} bytes")]
    OutOfMemory {
        /// Bytes that were asked for.
        requested: usize,
    },
    /// A size/alignment pair that no allocation can satisfy.
    #[error("invalid layout: size {size}, align {align}")]
    InvalidLayout {
        /// Requested size in bytes.
        size: usize,
        /// Requested alignment in bytes.
        align: usize,
    },
    /// A pointer/length pair that is not inside one live mapping of ours.
    #[error("range {addr:#x}+{len} is not inside a live mapping of this allocator")]
    UnknownRange {
        /// Start address of the range.
        addr: usize,
        /// Length of the range in bytes.
        len: usize,
    },
    /// Advice that discards contents (`DontNeed`, `Free`) was given through the
    /// safe `advise`; it needs the `unsafe` `unchecked_advise`.
    #[error("advice {advice} discards contents: use unchecked_advise")]
    DestructiveAdvice {
        /// The advice given.
        advice: &'static str,
    },
    /// The kernel rejected a request (the `errno` it gave).
    #[error("{op} failed with errno {errno}")]
    Os {
        /// The operation (`madvise`, `mremap`, …).
        op: &'static str,
        /// The error number.
        errno: i32,
    },
}

/// `Result` with [`Error`].
pub type Result<T> = core::result::Result<T, Error>;
