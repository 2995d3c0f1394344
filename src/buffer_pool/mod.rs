//! A buffer pool for database pages: frames in one mapping, a lock-free page
//! table, a one-word state per frame (a pin is one atomic), RAII guards,
//! optimistic reads, six eviction policies behind one trait, hot / warm /
//! cold tiers with a cooling stage, scan rings, checksummed pages on a file or
//! in memory, dirty write-back, a background flusher and `shrink_clean` for
//! the pressure manager.
//!
//! ```
//! use rustydb_memory::buffer_pool::{BufferPool, MemDisk, Policy};
//!
//! let pool = BufferPool::builder()
//!     .frames(64)
//!     .page_size(4096)
//!     .policy(Policy::Arc)
//!     .disk(MemDisk::new(4096))
//!     .build()?;
//! let id = {
//!     let mut page = pool.new_page()?;      // latched for writing, dirty
//!     page[..5].copy_from_slice(b"hello");
//!     page.page_id()
//! };                                        // unlatched: version bumped
//! assert_eq!(&pool.fetch_read(id)?[..5], b"hello");
//! let first = pool.read_optimistic(id, |p| p.u8_at(0))?; // no pin
//! assert_eq!(first, Some(b'h'));
//! pool.flush_all()?;                        // write dirty pages, fsync
//! assert!(pool.stats().hits >= 1);
//! # Ok::<(), rustydb_memory::Error>(())
//! ```
//!
//! Layout of the module: `frame.rs` (the state word), `page_table.rs`,
//! `guard.rs`, `words.rs` (page bytes as atomic words for optimistic
//! reads), `disk.rs` (`DiskManager`, `FileDisk`, `MemDisk`), `format.rs`
//! (page header and checksum), `policy/` (the trait, its contract and the
//! policies), `tiers.rs` (cooling stage, scans), `batch.rs` (access log),
//! `flusher.rs`, `stats.rs`, `pool.rs` (shared state, pinning, the miss
//! path, the access log) with its parts `pool/victims.rs` (eviction through
//! the cooling stage), `pool/io.rs` (loads, write-back, flushing),
//! `pool/pages.rs` (new, delete, shrink) and `pool/observe.rs` (statistics).

pub(crate) mod frame;
pub(crate) mod page_table;

#[cfg(not(rustydb_loom))]
mod batch;
#[cfg(not(rustydb_loom))]
mod builder;
#[cfg(not(rustydb_loom))]
mod disk;
#[cfg(not(rustydb_loom))]
mod flusher;
#[cfg(not(rustydb_loom))]
mod format;
#[cfg(not(rustydb_loom))]
mod guard;
#[cfg(not(rustydb_loom))]
pub mod policy;
#[cfg(not(rustydb_loom))]
mod pool;
#[cfg(not(rustydb_loom))]
mod scratch;
#[cfg(not(rustydb_loom))]
mod stats;
#[cfg(not(rustydb_loom))]
mod tiers;
#[cfg(not(rustydb_loom))]
mod words;

#[cfg(not(rustydb_loom))]
pub use api::*;

/// A page id: pages are numbered from 0 on their disk. Ids above
/// `2^40 − 2` are never valid.
pub type PageId = u64;

/// The hook [`BufferPoolBuilder::before_write_back`] installs: called with a
/// page's id and payload before its image is written; an `Err` cancels the
/// write.
#[cfg(not(rustydb_loom))]
pub type WriteBackHook = dyn Fn(PageId, &[u8]) -> crate::error::Result<()> + Send + Sync;

#[cfg(not(rustydb_loom))]
mod api {
    use std::sync::Arc;

    use crate::error::Result;
    use crate::pressure::{CallbackHandle, PressureLevel, PressureManager};

    pub use super::builder::BufferPoolBuilder;
    pub use super::disk::{DiskManager, FileDisk, FileDiskOptions, MemDisk};
    pub use super::format::PAGE_HEADER;
    pub use super::guard::{PageView, ReadGuard, WriteGuard};
    pub use super::page_table::MAX_PAGE_ID;
    pub use super::policy::{EvictionPolicy, Policy, PolicyStats, Tier};
    use super::pool::{Mode, Shared};
    pub use super::stats::{BufferPoolStats, TierStats};
    pub use super::tiers::Scan;
    use super::{PageId, batch, frame};

    /// How many times `read_optimistic` retries before it pins.
    const OPTIMISTIC_TRIES: usize = 8;

    /// A buffer pool; see the module documentation. Cloning gives another
    /// handle to the same pool (it is `Send + Sync`); the pool is dropped,
    /// after writing back its dirty pages, with its last handle.
    #[derive(Clone)]
    pub struct BufferPool {
        pub(crate) shared: Arc<Shared>,
    }

    impl core::fmt::Debug for BufferPool {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.debug_struct("BufferPool")
                .field("policy", &self.shared.policy_kind())
                .field("frames", &self.shared.nframes())
                .field("page_size", &self.shared.page_size)
                .finish()
        }
    }

    impl BufferPool {
        /// A builder: 1024 frames of 4 KiB, the adaptive policy, an in-memory disk, 2 %
        /// cooling stage, 256 KiB scan rings, 5 s latch timeout.
        pub fn builder() -> BufferPoolBuilder {
            BufferPoolBuilder::default()
        }

        /// Pins page `id` for reading (loading it on a miss). The hit path
        /// is a page-table lookup, one atomic add and a thread-local log entry.
        /// Waits (up to the latch timeout) while a writer holds the page.
        #[inline]
        pub fn fetch_read(&self, id: PageId) -> Result<ReadGuard<'_>> {
            let s = &self.shared;
            if let Some(f) = s.table.get(id)
                && let frame::Pin::Done(old) = s.frames[f as usize].pin_shared(id)
            {
                s.after_pin(f, id, old, false);
                return Ok(ReadGuard::new(s, f, id));
            }
            let f = s.acquire(id, Mode::Read, None)?;
            Ok(ReadGuard::new(s, f, id))
        }

        /// Latches page `id` exclusively for writing (loading it on a miss)
        /// and marks it dirty. Waits (up to the latch timeout) for readers.
        pub fn fetch_write(&self, id: PageId) -> Result<WriteGuard<'_>> {
            let s = &self.shared;
            let f = s.acquire(id, Mode::Write, None)?;
            Ok(WriteGuard::new(s, f, id))
        }

        /// Runs `read` on page `id` without pinning it: the page's version is
        /// read before and checked after, and `read` runs again if a writer or
        /// an eviction intervened (after a few tries, or when the page is not
        /// resident, or is cold, the page is pinned instead). `read` must be
        /// free of side effects it cannot repeat, and may see torn values on a
        /// failed try. Every read counts as a hit; one in
        /// `optimistic_sampling` (8 by default) is logged for the policy, so
        /// that this path writes (almost) nothing shared.
        pub fn read_optimistic<R>(
            &self,
            id: PageId,
            mut read: impl FnMut(&PageView<'_>) -> R,
        ) -> Result<R> {
            let s = &self.shared;
            for _ in 0..OPTIMISTIC_TRIES {
                let Some(f) = s.table.get(id) else { break };
                let fm = &s.frames[f as usize];
                match fm.optimistic_begin(id) {
                    Ok(stamp) if stamp & frame::SPECIAL == 0 => {
                        let view = PageView::new(
                            s.frame_ptr(f).wrapping_add(super::PAGE_HEADER),
                            s.payload_len(),
                        );
                        let r = read(&view);
                        if fm.optimistic_validate(stamp) {
                            batch::record_optimistic(s, f, id, s.optimistic_mask);
                            return Ok(r);
                        }
                        // Relaxed: a statistics counter.
                        s.c.optimistic_retries
                            .fetch_add(1, crate::sync::Ordering::Relaxed);
                    }
                    // Cold or ring pages take the pinned path (it rescues them).
                    Ok(_) | Err(true) => break,
                    Err(false) => crate::sync::spin_hint(),
                }
            }
            let g = self.fetch_read(id)?;
            Ok(read(&g.view()))
        }

        /// Allocates a new page on disk and returns it zeroed, latched for
        /// writing and dirty.
        pub fn new_page(&self) -> Result<WriteGuard<'_>> {
            let (f, id) = self.shared.new_page()?;
            Ok(WriteGuard::new(&self.shared, f, id))
        }

        /// Deletes page `id`: drops it from the pool, writes a tombstone (a
        /// later read is `PageNotFound`) and gives the id back to the disk.
        /// `Err(PagePinned)` while a guard holds it.
        pub fn delete_page(&self, id: PageId) -> Result<()> {
            self.shared.delete_page(id)
        }

        /// Writes page `id` to disk if it is resident and dirty (without
        /// syncing). Waits for a writer up to the latch timeout.
        pub fn flush(&self, id: PageId) -> Result<()> {
            if id > super::MAX_PAGE_ID || id >= self.shared.disk.num_pages() {
                return Err(crate::Error::PageNotFound { page: id });
            }
            self.shared.flush_page(id, true).map(|_| ())
        }

        /// Writes every dirty page and syncs the disk (`fdatasync`); returns
        /// the pages written.
        pub fn flush_all(&self) -> Result<usize> {
            self.shared.flush_all()
        }

        /// Evicts clean, unpinned pages (cold ones first) and returns their
        /// frames' memory to the OS until `bytes` are released; returns the
        /// bytes released. Dirty pages are never dropped.
        pub fn shrink_clean(&self, bytes: usize) -> usize {
            self.shared.shrink_clean(bytes)
        }

        /// Registers `shrink_clean` with `pm` as a reclaimer run at Critical
        /// and above; dropping the handle unregisters it.
        pub fn register_reclaimer(&self, pm: &PressureManager, priority: i32) -> CallbackHandle {
            let weak = Arc::downgrade(&self.shared);
            pm.register(
                PressureLevel::Critical,
                priority,
                "buffer_pool",
                move |req| {
                    weak.upgrade().map_or(0, |s| {
                        s.shrink_clean(usize::try_from(req.bytes_wanted).unwrap_or(usize::MAX))
                            as u64
                    })
                },
            )
        }

        /// A scan with a ring of the default size (256 KiB of frames).
        pub fn scan(&self) -> Scan<'_> {
            Scan::new(self, self.shared.ring_pages)
        }

        /// A scan whose ring holds `pages` frames (at most half the pool).
        pub fn scan_with_ring(&self, pages: usize) -> Scan<'_> {
            Scan::new(self, pages)
        }

        /// The tier page `id` is in, if resident.
        pub fn tier_of(&self, id: PageId) -> Option<Tier> {
            self.shared.tier_of(id)
        }

        /// Whether page `id` is in a frame now.
        pub fn is_resident(&self, id: PageId) -> bool {
            self.shared.table.get(id).is_some()
        }

        /// A snapshot of the pool's figures.
        pub fn stats(&self) -> BufferPoolStats {
            self.shared.stats()
        }

        /// Frames in the pool.
        pub fn frames(&self) -> usize {
            self.shared.nframes()
        }

        /// Bytes per page (header included).
        pub fn page_size(&self) -> usize {
            self.shared.page_size
        }

        /// Bytes a guard gives access to: `page_size − PAGE_HEADER`.
        pub fn payload_size(&self) -> usize {
            self.shared.payload_len()
        }

        /// The eviction policy.
        pub fn policy(&self) -> Policy {
            self.shared.policy_kind()
        }

        /// The disk behind the pool.
        pub fn disk(&self) -> &Arc<dyn DiskManager> {
            &self.shared.disk
        }
    }
}
