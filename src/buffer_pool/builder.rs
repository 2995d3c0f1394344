//! `BufferPool::builder()`.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::pressure::PressureManager;

use super::disk::{DiskManager, MemDisk};
use super::page_table::MAX_FRAMES;
use super::policy::{EvictionPolicy, Policy};
use super::pool::{BeforeWrite, Config, Shared};
use super::{BufferPool, PageId, WriteBackHook, flusher};

/// Builds a [`BufferPool`]; see [`BufferPool::builder`] for the defaults.
pub struct BufferPoolBuilder {
    frames: usize,
    page_size: usize,
    policy: Policy,
    custom: Option<Box<dyn EvictionPolicy>>,
    disk: Option<Arc<dyn DiskManager>>,
    cooling: f64,
    latch_timeout: Duration,
    flusher: Option<(Duration, usize)>,
    pressure: Option<Arc<PressureManager>>,
    ring_bytes: usize,
    huge_pages: bool,
    optimistic_sample: u64,
    before_write: Option<Arc<WriteBackHook>>,
}

impl Default for BufferPoolBuilder {
    fn default() -> Self {
        Self {
            frames: 1024,
            page_size: 4096,
            policy: Policy::default(),
            custom: None,
            disk: None,
            cooling: 0.02,
            latch_timeout: Duration::from_secs(5),
            flusher: None,
            pressure: None,
            ring_bytes: 256 << 10,
            huge_pages: true,
            optimistic_sample: 8,
            before_write: None,
        }
    }
}

impl core::fmt::Debug for BufferPoolBuilder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BufferPoolBuilder")
            .field("frames", &self.frames)
            .field("page_size", &self.page_size)
            .field(
                "policy",
                &self.custom.as_ref().map_or(self.policy, |_| Policy::Custom),
            )
            .field("disk", &self.disk)
            .field("cooling", &self.cooling)
            .field("latch_timeout", &self.latch_timeout)
            .field("flusher", &self.flusher)
            .field("ring_bytes", &self.ring_bytes)
            .field("before_write", &self.before_write.is_some())
            .finish()
    }
}

impl BufferPoolBuilder {
    /// Number of frames (default 1024).
    pub fn frames(mut self, n: usize) -> Self {
        self.frames = n;
        self
    }
    /// Bytes per page, a power of two from 4 KiB (and the OS page) to 1 MiB
    /// (default 4096). Must equal the disk's page size.
    pub fn page_size(mut self, bytes: usize) -> Self {
        self.page_size = bytes;
        self
    }
    /// One of the built-in policies with its default parameters (default
    /// [`Policy::Adaptive`]).
    pub fn policy(mut self, p: Policy) -> Self {
        self.policy = p;
        self.custom = None;
        self
    }
    /// A policy instance of your own (or a built-in one with other
    /// parameters); its capacity must equal the number of frames.
    pub fn custom_policy(mut self, p: Box<dyn EvictionPolicy>) -> Self {
        self.custom = Some(p);
        self
    }
    /// The disk (default: a `MemDisk` of the page size).
    pub fn disk(mut self, d: impl DiskManager + 'static) -> Self {
        self.disk = Some(Arc::new(d));
        self
    }
    /// A disk shared with other code (e.g. a test that inspects it).
    pub fn shared_disk(mut self, d: Arc<dyn DiskManager>) -> Self {
        self.disk = Some(d);
        self
    }
    /// Fraction of the frames in the cooling stage, 0 – 0.5 (default 0.02).
    pub fn cooling(mut self, fraction: f64) -> Self {
        self.cooling = fraction;
        self
    }
    /// How long a fetch or flush waits for a latch before
    /// `Err(LatchTimeout)` (default 5 s).
    pub fn latch_timeout(mut self, d: Duration) -> Self {
        self.latch_timeout = d;
        self
    }
    /// Starts a background flusher waking every `interval` (at least 1 ms).
    pub fn background_flusher(mut self, interval: Duration) -> Self {
        let interval = interval.max(Duration::from_millis(1));
        self.flusher = Some((interval, flusher::DEFAULT_BUDGET));
        self
    }
    /// Consults `pm.admit` before touching a frame's memory for the first
    /// time; when it refuses, the pool evicts instead of growing.
    pub fn pressure(mut self, pm: Arc<PressureManager>) -> Self {
        self.pressure = Some(pm);
        self
    }
    /// Bytes of frames a scan's ring holds (default 256 KiB).
    pub fn scan_ring(mut self, bytes: usize) -> Self {
        self.ring_bytes = bytes;
        self
    }
    /// Log one optimistic read in `n` (on average, at random; rounded up to
    /// a power of two, default 8) for the eviction policy; every read still
    /// counts as a hit. 1 logs all of them, as pinned fetches always are.
    /// Sampling keeps the optimistic path from writing shared policy state on
    /// every read (LeanStore and vmcache record nothing there); a page read
    /// only optimistically is still protected by its sampled accesses and, once
    /// cold, by the rescue its next read performs.
    pub fn optimistic_sampling(mut self, n: u64) -> Self {
        self.optimistic_sample = n.clamp(1, 1 << 20).next_power_of_two();
        self
    }
    /// Runs `hook(page, payload)` just before the pool writes a dirty page's
    /// image to its disk — on eviction, `flush`, `flush_all`, in the
    /// background flusher and when the pool is dropped — with the payload
    /// that is about to be written (`page_size − PAGE_HEADER` bytes, the
    /// bytes a guard gives access to). An `Err` cancels that write: the page
    /// stays dirty and in its frame, and the error is returned to whoever
    /// caused the write (the fetch that needed the frame, `flush`, …).
    ///
    /// This is the write-ahead log's hook: a page whose payload records the
    /// log position of its last change may reach the disk only once the log
    /// is durable up to there (WAL-before-data), so the hook forces the log.
    /// It runs on the thread doing the write, holding the page (pinned or
    /// owned) but no lock of the pool; it must not fetch pages of this pool.
    /// Deleted pages' tombstones are written without it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use rustydb_memory::buffer_pool::{BufferPool, MemDisk};
    ///
    /// let durable = Arc::new(AtomicU64::new(0)); // the log's durable end
    /// let d = durable.clone();
    /// let pool = BufferPool::builder()
    ///     .frames(8)
    ///     .disk(MemDisk::new(4096))
    ///     .before_write_back(move |_page, payload| {
    ///         let lsn = u64::from_le_bytes(payload[..8].try_into().unwrap());
    ///         d.fetch_max(lsn, Ordering::SeqCst); // "force the log to `lsn`"
    ///         Ok(())
    ///     })
    ///     .build()?;
    /// pool.new_page()?[..8].copy_from_slice(&42u64.to_le_bytes());
    /// pool.flush_all()?;
    /// assert_eq!(durable.load(Ordering::SeqCst), 42);
    /// # Ok::<(), rustydb_memory::Error>(())
    /// ```
    pub fn before_write_back(
        mut self,
        hook: impl Fn(PageId, &[u8]) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.before_write = Some(Arc::new(hook));
        self
    }
    /// Map the frames for transparent huge pages when they span ≥ 2 MiB
    /// (default on).
    pub fn huge_pages(mut self, on: bool) -> Self {
        self.huge_pages = on;
        self
    }

    /// Builds the pool.
    pub fn build(self) -> Result<BufferPool> {
        let ps = self.page_size;
        if !ps.is_power_of_two() || !(4096..=1 << 20).contains(&ps) || ps < crate::sys::page_size()
        {
            return Err(Error::InvalidConfig {
                what: "page size must be a power of two from 4 KiB (and the OS page size) to 1 MiB",
            });
        }
        if self.frames == 0 || self.frames > MAX_FRAMES {
            return Err(Error::InvalidConfig {
                what: "frames must be between 1 and 2^24 - 1",
            });
        }
        if self
            .frames
            .checked_mul(ps)
            .is_none_or(|b| b > isize::MAX as usize)
        {
            return Err(Error::InvalidConfig {
                what: "frames × page size overflows",
            });
        }
        if !(0.0..=0.5).contains(&self.cooling) {
            return Err(Error::InvalidConfig {
                what: "cooling fraction must be between 0 and 0.5",
            });
        }
        let disk: Arc<dyn DiskManager> = match self.disk {
            Some(d) => d,
            None => Arc::new(MemDisk::new(ps)),
        };
        if disk.page_size() != ps {
            return Err(Error::InvalidConfig {
                what: "the disk's page size differs from the pool's",
            });
        }
        let policy = match self.custom {
            Some(p) => p,
            None => {
                // The cooling stage holds its target plus the next victim
                // outside the policy (`Shared::take_victim_where`).
                let target = (self.frames as f64 * self.cooling.clamp(0.0, 0.5)) as usize;
                let outside = if target == 0 { 0 } else { target + 1 };
                self.policy
                    .build_reserving(self.frames, outside)
                    .ok_or(Error::InvalidConfig {
                        what: "Policy::Custom needs custom_policy(..)",
                    })?
            }
        };
        if policy.capacity() != self.frames {
            return Err(Error::InvalidConfig {
                what: "the policy's capacity differs from the number of frames",
            });
        }
        let shared = Arc::new(Shared::new(Config {
            frames: self.frames,
            page_size: ps,
            policy,
            disk,
            cooling: self.cooling,
            latch_timeout: self.latch_timeout,
            pressure: self.pressure,
            ring_pages: (self.ring_bytes / ps).max(1),
            huge_pages: self.huge_pages,
            optimistic_sample: self.optimistic_sample,
            before_write: self.before_write.map(BeforeWrite),
        })?);
        if let Some((interval, budget)) = self.flusher {
            flusher::start(&shared, interval, budget)?;
        }
        Ok(BufferPool { shared })
    }
}
