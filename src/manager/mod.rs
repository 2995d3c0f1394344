//! `MemoryManager`: one facade over the parts. It owns the pressure manager,
//! registers a reclaimer for each part in a documented priority order, and
//! returns one [`MemoryStats`] snapshot.
//!
//! | priority | from level | reclaimer | what it frees |
//! |---:|---|---|---|
//! | 0 | Warning | `context-spare-chunks` | spare chunks kept by reset memory contexts |
//! | 10 | Warning | `allocator-caches` | `RustyAlloc` depots, empty slabs, free segment units |
//! | 20 | Warning | `large-object-cache` | cached large-object mappings |
//! | 30 | Critical | `buffer-pools` | clean frames of every registered pool (`shrink_clean`) |
//! | — | Emergency | (admission) | `admit` refuses new work on the fallible paths |
//!
//! This follows the seed: "Warning: clean up dead contexts; Critical: force
//! eviction from the buffer pool; Emergency: reject new allocations".

mod stats;
mod stats_report;

#[cfg(feature = "prometheus")]
mod prometheus;

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use crate::buffer_pool::{BufferPool, BufferPoolStats};
use crate::debug::{ComponentStats, DebugAlloc, DebugStats, LeakReport, LeakScope, Mark};
use crate::pressure::{
    CallbackHandle, Consumer, PressureEvent, PressureLevel, PressureManager,
    PressureManagerBuilder, UsageSource,
};
use crate::sync::{Mutex, lock};
use crate::{Result, RustyAlloc, arena};

#[cfg(feature = "prometheus")]
pub use prometheus::MemoryCollector;
pub use stats::{MemoryStats, PoolStats};

/// Something holding memory that can give some back: a buffer pool, a cache.
pub trait Reclaimable: Send + Sync {
    /// A name for stats and logs.
    fn name(&self) -> String;
    /// Bytes held now.
    fn held_bytes(&self) -> u64;
    /// Releases up to `bytes` (clean, reproducible data only); returns the bytes released.
    fn reclaim(&self, bytes: u64) -> u64;
}

/// What the manager needs from a debugger (implemented by every [`DebugAlloc`]).
pub trait DebugSource: Send + Sync {
    /// The debugger's counters.
    fn debug_stats(&self) -> DebugStats;
    /// Per-component figures.
    fn components(&self) -> Vec<ComponentStats>;
    /// Live tracked blocks allocated after `mark`.
    fn leaks_since(&self, mark: Mark) -> LeakReport;
    /// The mark of "now".
    fn mark(&self) -> Mark;
}

/// A buffer pool gives back clean frames (`shrink_clean`); dirty pages are
/// never dropped.
impl Reclaimable for BufferPool {
    fn name(&self) -> String {
        format!("buffer-pool-{:?}", self.policy()).to_lowercase()
    }
    fn held_bytes(&self) -> u64 {
        (self.stats().resident * self.page_size()) as u64
    }
    fn reclaim(&self, bytes: u64) -> u64 {
        self.shrink_clean(bytes.min(usize::MAX as u64) as usize) as u64
    }
}

impl<A: core::alloc::GlobalAlloc + Send + Sync> DebugSource for DebugAlloc<A> {
    fn debug_stats(&self) -> DebugStats {
        self.stats()
    }
    fn components(&self) -> Vec<ComponentStats> {
        DebugAlloc::components(self)
    }
    fn leaks_since(&self, mark: Mark) -> LeakReport {
        DebugAlloc::leaks_since(self, mark, LeakScope::All)
    }
    fn mark(&self) -> Mark {
        DebugAlloc::mark(self)
    }
}

type PoolList = Arc<Mutex<Vec<Weak<dyn Reclaimable>>>>;

/// The facade: pressure, reclaimers, statistics.
///
/// One per process ([`global`](Self::global) or [`install`](Self::install)):
/// it owns a [`PressureManager`] with the crate's reclaimers registered
/// (context chunks, `RustyAlloc` purge, the large-object cache, registered
/// buffer pools) and returns one [`MemoryStats`] snapshot.
///
/// ```
/// use rustydb_memory::{MemoryManager, PressureLevel};
///
/// let mm = MemoryManager::global();
/// let stats = mm.stats();
/// assert!(stats.rss > 0);
/// assert_eq!(stats.pressure.level, mm.pressure().level());
/// assert!(mm.check_now() <= PressureLevel::Emergency);
/// ```
pub struct MemoryManager {
    pressure: PressureManager,
    pools: PoolList,
    buffer_pools: Mutex<Vec<Weak<BufferPool>>>,
    debugger: Mutex<Option<&'static dyn DebugSource>>,
    _handles: Vec<CallbackHandle>,
}

impl core::fmt::Debug for MemoryManager {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemoryManager")
            .field("pressure", &self.pressure.stats())
            .finish()
    }
}

/// Builds a [`MemoryManager`].
#[derive(Debug)]
pub struct MemoryManagerBuilder {
    pressure: PressureManagerBuilder,
}

impl MemoryManagerBuilder {
    /// The memory budget in bytes (default: cgroup v2 `memory.max`, else `MemTotal`).
    pub fn budget(mut self, bytes: u64) -> Self {
        self.pressure = self.pressure.budget(bytes);
        self
    }
    /// Where usage is read (default: process RSS).
    pub fn usage_source(mut self, s: UsageSource) -> Self {
        self.pressure = self.pressure.usage_source(s);
        self
    }
    /// Sampling interval of the pressure monitor (default 100 ms).
    pub fn interval(mut self, d: Duration) -> Self {
        self.pressure = self.pressure.interval(d);
        self
    }
    /// Whether to run the pressure monitor thread (default on).
    pub fn monitor(mut self, on: bool) -> Self {
        self.pressure = self.pressure.monitor(on);
        self
    }
    /// Any other pressure setting.
    pub fn pressure(
        mut self,
        f: impl FnOnce(PressureManagerBuilder) -> PressureManagerBuilder,
    ) -> Self {
        self.pressure = f(self.pressure);
        self
    }

    /// Builds the manager and registers its reclaimers.
    pub fn build(self) -> Result<MemoryManager> {
        let pools: PoolList = Arc::new(Mutex::new(Vec::new()));
        let p2 = pools.clone();
        let pressure = self
            .pressure
            .consumers(move || {
                let mut v: Vec<Consumer> = arena::contexts()
                    .into_iter()
                    .map(|c| Consumer {
                        name: format!("context:{}", c.name),
                        bytes: c.reserved as u64,
                    })
                    .collect();
                v.extend(live_pools(&p2).iter().map(|p| Consumer {
                    name: format!("pool:{}", p.name()),
                    bytes: p.held_bytes(),
                }));
                v
            })
            .build()?;
        let mut handles = vec![
            pressure.register(PressureLevel::Warning, 0, "context-spare-chunks", |_| {
                arena::release_spare_chunks() as u64
            }),
            pressure.register(PressureLevel::Warning, 10, "allocator-caches", |_| {
                RustyAlloc.purge()
            }),
            pressure.register(PressureLevel::Warning, 20, "large-object-cache", |_| {
                let before = crate::large::stats().bytes_mapped;
                crate::large::purge();
                before.saturating_sub(crate::large::stats().bytes_mapped) as u64
            }),
        ];
        let p3 = pools.clone();
        handles.push(
            pressure.register(PressureLevel::Critical, 30, "buffer-pools", move |req| {
                let mut released = 0;
                for p in live_pools(&p3) {
                    if released >= req.bytes_wanted {
                        break;
                    }
                    released += p.reclaim(req.bytes_wanted - released);
                }
                released
            }),
        );
        Ok(MemoryManager {
            pressure,
            pools,
            buffer_pools: Mutex::new(Vec::new()),
            debugger: Mutex::new(None),
            _handles: handles,
        })
    }
}

fn live_pools(pools: &PoolList) -> Vec<Arc<dyn Reclaimable>> {
    let mut g = lock(pools);
    g.retain(|w| w.strong_count() > 0);
    g.iter().filter_map(Weak::upgrade).collect()
}

static GLOBAL: OnceLock<MemoryManager> = OnceLock::new();

impl MemoryManager {
    /// A builder: RSS usage, automatic budget, 80/90/95 %, monitor on.
    pub fn builder() -> MemoryManagerBuilder {
        MemoryManagerBuilder {
            pressure: PressureManager::builder().monitor(true),
        }
    }

    /// The process-wide manager (built with the defaults on first use unless
    /// [`install`](Self::install) came first).
    pub fn global() -> &'static MemoryManager {
        GLOBAL.get_or_init(|| {
            Self::builder().build().unwrap_or_else(|_| {
                // Defaults cannot fail validation; without a monitor as a last resort.
                Self::builder()
                    .monitor(false)
                    .build()
                    .expect("default manager")
            })
        })
    }

    /// Installs `builder`'s manager as the process-wide one; `Err` if one exists
    /// already or the configuration is invalid.
    ///
    /// ```
    /// use rustydb_memory::MemoryManager;
    /// use std::time::Duration;
    ///
    /// let mm = MemoryManager::install(
    ///     MemoryManager::builder()
    ///         .budget(8 << 30) // 8 GiB
    ///         .interval(Duration::from_millis(250)),
    /// )?;
    /// assert_eq!(mm.pressure().budget(), 8 << 30);
    /// assert!(std::ptr::eq(mm, MemoryManager::global()));
    /// // Only one per process.
    /// assert!(MemoryManager::install(MemoryManager::builder()).is_err());
    /// # Ok::<(), rustydb_memory::Error>(())
    /// ```
    pub fn install(builder: MemoryManagerBuilder) -> Result<&'static MemoryManager> {
        let m = builder.build()?;
        GLOBAL.set(m).map_err(|_| crate::Error::InvalidConfig {
            what: "a global MemoryManager is already installed",
        })?;
        Ok(GLOBAL.get().expect("just set"))
    }

    /// The pressure manager (levels, `admit`, history, more callbacks).
    pub fn pressure(&self) -> &PressureManager {
        &self.pressure
    }

    /// Adds a pool (or any cache) to the Critical-level reclaimer; it is
    /// dropped from the list when the last `Arc` goes.
    pub fn register_pool(&self, pool: Arc<dyn Reclaimable>) {
        lock(&self.pools).push(Arc::downgrade(&pool));
    }

    /// Adds a buffer pool: its clean frames go to the Critical-level reclaimer and
    /// its figures (per tier and policy) to `stats().buffer_pools`.
    pub fn register_buffer_pool(&self, pool: &Arc<BufferPool>) {
        self.register_pool(pool.clone());
        lock(&self.buffer_pools).push(Arc::downgrade(pool));
    }

    pub(crate) fn buffer_pool_stats(&self) -> Vec<BufferPoolStats> {
        let mut g = lock(&self.buffer_pools);
        g.retain(|w| w.strong_count() > 0);
        g.iter()
            .filter_map(Weak::upgrade)
            .map(|p| p.stats())
            .collect()
    }

    /// Reports the debugger's figures in `stats()` (e.g. the global `DebugAlloc`).
    pub fn set_debugger(&self, d: &'static dyn DebugSource) {
        *lock(&self.debugger) = Some(d);
    }

    /// The attached debugger, if any.
    pub fn debugger(&self) -> Option<&'static dyn DebugSource> {
        *lock(&self.debugger)
    }

    /// Samples usage and runs reclaimers as the level requires.
    ///
    /// ```
    /// use rustydb_memory::{MemoryManager, PressureLevel};
    ///
    /// let mm = MemoryManager::builder().budget(u64::MAX / 2).monitor(false).build()?;
    /// assert_eq!(mm.check_now(), PressureLevel::Normal); // far under the budget
    /// assert_eq!(mm.pressure().stats().checks, 1);
    /// # Ok::<(), rustydb_memory::Error>(())
    /// ```
    pub fn check_now(&self) -> PressureLevel {
        self.pressure.check_now()
    }

    /// Pressure events, oldest first.
    pub fn history(&self) -> Vec<PressureEvent> {
        self.pressure.history()
    }

    /// One snapshot of everything.
    ///
    /// ```
    /// use rustydb_memory::{MemoryContext, MemoryManager};
    ///
    /// let ctx = MemoryContext::root("doc-example");
    /// ctx.alloc_str("hello");
    /// let stats = MemoryManager::global().stats();
    /// assert!(stats.contexts.iter().any(|c| c.name == "doc-example" && c.used >= 5));
    /// assert!(stats.mapped >= stats.allocator.bytes_mapped as u64);
    /// ```
    pub fn stats(&self) -> MemoryStats {
        stats::collect(self)
    }

    pub(crate) fn pools(&self) -> Vec<Arc<dyn Reclaimable>> {
        live_pools(&self.pools)
    }
}
