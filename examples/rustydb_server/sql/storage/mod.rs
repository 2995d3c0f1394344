//! Durability for the SQL storage, independent of GlueSQL: the write-ahead
//! log and recovery, the data directory's lock, test failpoints.
//!
//! * `record.rs` — the bytes of a log record; page diffs;
//! * `wal.rs` — segments, the flusher thread (group commit), the control file;
//! * `logged.rs` — changing a page through the log; the pool's write-back hook;
//! * `recovery.rs` — redo to the end of the log, undo of what did not commit;
//! * `versions.rs` — the undo of recent writes kept for readers' snapshots;
//! * `lockfile.rs` — `flock` on `<data-dir>/LOCK`;
//! * `failpoint.rs` — `RUSTYDB_FAILPOINTS`: crash points and a tearing disk.
//!
//! The design (ARIES-style, as PostgreSQL and InnoDB do it, simplified by
//! there being one writer at a time):
//!
//! * **Page LSN.** The first 8 bytes of every page's payload hold the end of
//!   the last log record that changed it. A page is changed only through
//!   [`logged::PageLogger::modify`]: latch, copy, change, diff, log, stamp.
//! * **WAL before data.** The buffer pool calls the log before writing any
//!   page ([`logged::wal_barrier`] through `BufferPoolBuilder::before_write_back`):
//!   the log is made durable up to the page's LSN first. So the data file
//!   never holds a change the log does not.
//! * **Steal, no force.** Dirty pages of an uncommitted transaction may be
//!   written (a transaction may be larger than the pool); a commit writes no
//!   data page — only its commit record, made durable by one `fdatasync` that
//!   every commit waiting at that moment shares (group commit).
//! * **Records.** A page record carries redo (changed byte runs, or the whole
//!   page) and undo (the runs' old bytes; zeros as a length). Commit and abort
//!   records end a transaction; compensation records log undo during recovery.
//! * **Checkpoints** (every `checkpoint_every`, or after `checkpoint_bytes` of
//!   log): the redo point is fixed, every dirty page is written and synced, a
//!   checkpoint record and the control file name the redo point, and the log
//!   segments before it (or before the open transaction's first record, whose
//!   undo may still be needed) are deleted. Recovery reads at most one
//!   checkpoint interval of log.
//! * **Torn pages.** The first change of a page after a checkpoint's redo
//!   point logs the whole page; a page whose checksum fails on disk after a
//!   crash is rebuilt from that image. The pool's checksum finds the tear.
//! * **Recovery** redoes every page change after the redo point whose page is
//!   older (page LSN ≤ record), then undoes, newest first, each transaction
//!   without a commit or abort record, and checkpoints.

pub mod failpoint;
pub mod lockfile;
pub mod logged;
pub mod record;
pub mod recovery;
pub mod versions;
pub mod wal;
