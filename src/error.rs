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
    /// A memory context cannot be reset or rewound while a child of it lives
    /// (an [`OwnedContext`](crate::OwnedContext) child held elsewhere).
    #[error("memory context {context} has {children} live children: drop them before a reset")]
    ContextHasChildren {
        /// Id of the context.
        context: u64,
        /// Its live direct children.
        children: usize,
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
    /// An allocator option ([`Options`](crate::Options)) out of its range.
    #[error("invalid option `{option}` ({variable}): {value} is outside its range {min}–{max}")]
    InvalidOption {
        /// The option's name in code (the `Options` builder).
        option: &'static str,
        /// The environment variable that also sets it.
        variable: &'static str,
        /// The value given.
        value: u64,
        /// Smallest value accepted.
        min: u64,
        /// Largest value accepted.
        max: u64,
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
    /// A page read from disk failed its checksum (torn or corrupt write, or a
    /// page written at the wrong place): its contents are never returned.
    #[error("page {page} is corrupt: checksum or header mismatch")]
    Corrupt {
        /// The page id.
        page: u64,
    },
    /// Every frame of the buffer pool is pinned (or being loaded), so no page can
    /// be brought in; release a guard and retry.
    #[error("buffer pool exhausted: all {frames} frames are pinned")]
    PoolExhausted {
        /// Frames in the pool.
        frames: usize,
    },
    /// The page does not exist (never allocated, deleted, or an id out of range).
    #[error("page {page} not found")]
    PageNotFound {
        /// The page id.
        page: u64,
    },
    /// The page is pinned, so it cannot be deleted now.
    #[error("page {page} is pinned ({pins} pins)")]
    PagePinned {
        /// The page id.
        page: u64,
        /// Pins (read guards) held when refused; a write guard counts as one.
        pins: u32,
    },
    /// A latch on a page was not granted within the pool's latch timeout (for
    /// instance a write guard requested while this thread holds a read guard on
    /// the same page): returned instead of waiting for ever.
    #[error("page {page}: latch not granted within {waited_ms} ms")]
    LatchTimeout {
        /// The page id.
        page: u64,
        /// How long the caller waited, ms.
        waited_ms: u64,
    },
    /// A disk operation failed (the `errno` it gave; `EBADF` for a closed file).
    #[error("disk {op} of page {page} failed with errno {errno}")]
    Io {
        /// The operation (`read`, `write`, `sync`, `open`, …).
        op: &'static str,
        /// The page concerned (`u64::MAX` when none).
        page: u64,
        /// The error number.
        errno: i32,
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
