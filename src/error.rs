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
    /// A memory context (or one of its ancestors) would pass its limit.
    #[error(
        "memory context `{context}` limit exceeded: {requested} bytes requested, limit {limit} bytes"
    )]
    LimitExceeded {
        /// Name of the context whose limit would be passed.
        context: String,
        /// Its limit in bytes.
        limit: usize,
        /// Bytes requested.
        requested: usize,
    },
    /// A checkpoint that does not belong to this context's current state.
    #[error("checkpoint is not valid for memory context {context}")]
    InvalidCheckpoint {
        /// Id of the context.
        context: u64,
    },
    /// The pressure manager rejects new work at its current level.
    #[cfg(not(rustydb_loom))]
    #[error(
        "memory pressure {level}: usage {usage} of budget {budget} bytes; {requested} bytes refused"
    )]
    MemoryPressure {
        /// The level that refused the work.
        level: crate::pressure::PressureLevel,
        /// Usage when refused, in bytes.
        usage: u64,
        /// The budget, in bytes.
        budget: u64,
        /// Bytes that were asked for.
        requested: usize,
    },
    /// A configuration value out of range.
    #[error("invalid configuration: {what}")]
    InvalidConfig {
        /// What is wrong.
        what: &'static str,
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
