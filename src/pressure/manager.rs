//! `PressureManager`: budget, usage source, levels with hysteresis, the
//! reclaimer registry, emergency release, admission and the event history.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Weak};
use std::thread::ThreadId;
use std::time::Duration;

use super::level::{PressureLevel, Thresholds};
use super::monitor::Monitor;
use super::signal;
use crossbeam_utils::atomic::AtomicCell;

use crate::sync::{AtomicBool, AtomicU64, Mutex, Ordering, RwLock, lock};

// The level is one byte: `AtomicCell` keeps it in an atomic, with no lock.
const _: () = assert!(AtomicCell::<PressureLevel>::is_lock_free());
use crate::{Error, Result, sys};

/// A monotonic clock, injectable for tests.
pub trait Clock: Send + Sync {
    /// Time since an arbitrary fixed origin.
    fn now(&self) -> Duration;
}

/// The system's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(sys::now_ns())
    }
}

/// Where usage readings come from.
#[derive(Clone)]
pub enum UsageSource {
    /// Bytes mapped by this crate's allocators ([`signal::mapped_bytes`]).
    AllocatorMapped,
    /// Resident set size of the process (`/proc/self/statm`).
    ProcessRss,
    /// cgroup v2 `memory.current`, falling back to RSS where absent.
    CgroupCurrent,
    /// A user function returning bytes in use.
    Function(Arc<dyn Fn() -> u64 + Send + Sync>),
}

impl core::fmt::Debug for UsageSource {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            UsageSource::AllocatorMapped => "AllocatorMapped",
            UsageSource::ProcessRss => "ProcessRss",
            UsageSource::CgroupCurrent => "CgroupCurrent",
            UsageSource::Function(_) => "Function",
        })
    }
}

impl UsageSource {
    fn sample(&self) -> u64 {
        match self {
            UsageSource::AllocatorMapped => signal::mapped_bytes(),
            UsageSource::ProcessRss => sys::process_rss().unwrap_or(0),
            UsageSource::CgroupCurrent => sys::cgroup_memory_current()
                .or_else(sys::process_rss)
                .unwrap_or(0),
            UsageSource::Function(f) => f(),
        }
    }
}

/// A consumer of memory a reclaimer may want to know about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Consumer {
    /// What it is (a context, a pool, a cache).
    pub name: String,
    /// Bytes it holds.
    pub bytes: u64,
}

/// What a reclaimer is asked to do.
#[derive(Debug, Clone)]
pub struct ReclaimRequest<'a> {
    /// The level that triggered the call.
    pub level: PressureLevel,
    /// Usage now, in bytes.
    pub usage: u64,
    /// The budget, in bytes.
    pub budget: u64,
    /// Bytes to release to get back under the target threshold.
    pub bytes_wanted: u64,
    /// The largest consumers known, largest first.
    pub top_consumers: &'a [Consumer],
}

type Callback = dyn Fn(&ReclaimRequest<'_>) -> u64 + Send + Sync;

struct Registration {
    id: u64,
    min_level: PressureLevel,
    priority: i32,
    name: String,
    callback: Box<Callback>,
    alive: AtomicBool,
    /// Held (shared) while the callback runs; taken exclusively to unregister,
    /// so once a handle is dropped its callback is never running nor called again.
    gate: RwLock<()>,
    running_on: Mutex<Option<ThreadId>>,
}

/// What one callback did during a release.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CallbackRun {
    /// The callback's name.
    pub name: String,
    /// Bytes it reported released.
    pub released: u64,
    /// Whether it panicked (the panic was caught).
    pub panicked: bool,
    /// How long it ran, µs.
    pub micros: u64,
}

/// One entry of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PressureEvent {
    /// Sequence number, increasing.
    pub seq: u64,
    /// Clock time of the event, ms since the manager's clock origin.
    pub at_ms: u64,
    /// Wall-clock time, ms since the Unix epoch.
    pub unix_ms: u64,
    /// Level before.
    pub from: PressureLevel,
    /// Level after.
    pub to: PressureLevel,
    /// Usage after, bytes.
    pub usage: u64,
    /// Budget, bytes.
    pub budget: u64,
    /// Bytes released by callbacks for this event.
    pub released: u64,
    /// The callbacks run, in order.
    pub callbacks: Vec<CallbackRun>,
}

/// Counters of the manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PressureStats {
    /// Current level.
    pub level: PressureLevel,
    /// Last sampled usage, bytes.
    pub usage: u64,
    /// Budget, bytes.
    pub budget: u64,
    /// Samples taken.
    pub checks: u64,
    /// Level changes.
    pub transitions: u64,
    /// Release rounds run.
    pub releases: u64,
    /// Callback invocations.
    pub callbacks_run: u64,
    /// Callback invocations that panicked.
    pub callback_panics: u64,
    /// Bytes reported released by callbacks.
    pub bytes_released: u64,
    /// Work refused by `admit`.
    pub rejected: u64,
    /// Registered callbacks.
    pub registered: u64,
}

pub(crate) struct Shared {
    budget: u64,
    thresholds: Thresholds,
    pub(crate) interval: Duration,
    history_cap: usize,
    source: UsageSource,
    clock: Arc<dyn Clock>,
    consumers: Option<Arc<dyn Fn() -> Vec<Consumer> + Send + Sync>>,
    /// The current level (a one-byte `AtomicCell`: a plain atomic byte).
    level: AtomicCell<PressureLevel>,
    usage: AtomicU64,
    regs: Mutex<Vec<Arc<Registration>>>,
    next_id: AtomicU64,
    history: Mutex<VecDeque<PressureEvent>>,
    next_seq: AtomicU64,
    check: Mutex<()>,
    checks: AtomicU64,
    transitions: AtomicU64,
    releases: AtomicU64,
    callbacks_run: AtomicU64,
    callback_panics: AtomicU64,
    bytes_released: AtomicU64,
    rejected: AtomicU64,
}

/// Builds a [`PressureManager`].
pub struct PressureManagerBuilder {
    budget: Option<u64>,
    thresholds: Thresholds,
    interval: Duration,
    history: usize,
    source: UsageSource,
    clock: Arc<dyn Clock>,
    consumers: Option<Arc<dyn Fn() -> Vec<Consumer> + Send + Sync>>,
    monitor: bool,
}

impl core::fmt::Debug for PressureManagerBuilder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PressureManagerBuilder")
            .field("budget", &self.budget)
            .field("thresholds", &self.thresholds)
            .field("interval", &self.interval)
            .field("source", &self.source)
            .finish()
    }
}

impl PressureManagerBuilder {
    /// The budget in bytes (default: cgroup v2 `memory.max`, else `MemTotal`).
    pub fn budget(mut self, bytes: u64) -> Self {
        self.budget = Some(bytes);
        self
    }
    /// Thresholds and hysteresis (defaults 80/90/95 %, 2 %).
    pub fn thresholds(mut self, t: Thresholds) -> Self {
        self.thresholds = t;
        self
    }
    /// The usage source (default: process RSS).
    pub fn usage_source(mut self, s: UsageSource) -> Self {
        self.source = s;
        self
    }
    /// A user function as usage source.
    pub fn usage_fn(self, f: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.usage_source(UsageSource::Function(Arc::new(f)))
    }
    /// The monitor's sampling interval (default 100 ms).
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d;
        self
    }
    /// Events kept in the history (default 1024).
    pub fn history(mut self, n: usize) -> Self {
        self.history = n.max(1);
        self
    }
    /// An injected clock (tests).
    pub fn clock(mut self, c: Arc<dyn Clock>) -> Self {
        self.clock = c;
        self
    }
    /// A function listing the largest consumers, passed to callbacks.
    pub fn consumers(mut self, f: impl Fn() -> Vec<Consumer> + Send + Sync + 'static) -> Self {
        self.consumers = Some(Arc::new(f));
        self
    }
    /// Starts a monitor thread that samples every interval, on allocator
    /// signals and on PSI triggers where the kernel permits (default off).
    pub fn monitor(mut self, on: bool) -> Self {
        self.monitor = on;
        self
    }

    /// Builds the manager; `Err(InvalidConfig)` on bad thresholds or interval.
    pub fn build(self) -> Result<PressureManager> {
        if !self.thresholds.is_valid() {
            return Err(Error::InvalidConfig {
                what: "thresholds must satisfy 0 < warning < critical < emergency <= 1 and 0 <= hysteresis < warning",
            });
        }
        if self.interval.is_zero() {
            return Err(Error::InvalidConfig {
                what: "interval must be non-zero",
            });
        }
        let budget = self
            .budget
            .or_else(sys::cgroup_memory_max)
            .or_else(|| sys::meminfo().map(|m| m.total))
            .unwrap_or(0);
        let shared = Arc::new(Shared {
            budget,
            thresholds: self.thresholds,
            interval: self.interval,
            history_cap: self.history,
            source: self.source,
            clock: self.clock,
            consumers: self.consumers,
            level: AtomicCell::new(PressureLevel::Normal),
            usage: AtomicU64::new(0),
            regs: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            history: Mutex::new(VecDeque::with_capacity(self.history.min(4096))),
            next_seq: AtomicU64::new(1),
            check: Mutex::new(()),
            checks: AtomicU64::new(0),
            transitions: AtomicU64::new(0),
            releases: AtomicU64::new(0),
            callbacks_run: AtomicU64::new(0),
            callback_panics: AtomicU64::new(0),
            bytes_released: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        });
        // Relaxed: initial sample before anyone else can see the manager.
        shared
            .usage
            .store(shared.source.sample(), Ordering::Relaxed);
        let monitor = if self.monitor {
            Some(Monitor::start(Arc::downgrade(&shared)))
        } else {
            None
        };
        Ok(PressureManager { shared, monitor })
    }
}

/// Tracks memory usage against a budget and calls registered reclaimers when
/// usage crosses the Warning (80 %), Critical (90 %) and Emergency (95 %)
/// thresholds.
///
/// ```
/// use rustydb_memory::pressure::{PressureLevel, PressureManager};
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// let usage = Arc::new(AtomicU64::new(0));
/// let u = usage.clone();
/// let pm = PressureManager::builder().budget(1000).usage_fn(move || u.load(Ordering::Relaxed)).build().unwrap();
/// let cache = usage.clone();
/// let _h = pm.register(PressureLevel::Critical, 0, "cache", move |_req| {
///     cache.fetch_sub(400, Ordering::Relaxed); // drop a 400-byte cache
///     400
/// });
/// usage.store(930, Ordering::Relaxed);
/// assert_eq!(pm.check_now(), PressureLevel::Normal); // released back under 90 %
/// assert!(pm.admit(10).is_ok());
/// ```
pub struct PressureManager {
    shared: Arc<Shared>,
    monitor: Option<Monitor>,
}

impl core::fmt::Debug for PressureManager {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PressureManager")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Keeps a callback registered; dropping it unregisters the callback (waiting
/// for a run in progress on another thread to finish).
#[must_use = "dropping the handle unregisters the callback"]
pub struct CallbackHandle {
    shared: Weak<Shared>,
    reg: Arc<Registration>,
}

impl core::fmt::Debug for CallbackHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CallbackHandle")
            .field("name", &self.reg.name)
            .field("id", &self.reg.id)
            .finish()
    }
}

impl Drop for CallbackHandle {
    fn drop(&mut self) {
        let running_here = *lock(&self.reg.running_on) == Some(std::thread::current().id());
        if running_here {
            // Dropped from inside its own callback: no wait (it would deadlock).
            self.reg.alive.store(false, Ordering::SeqCst);
        } else {
            let _w = self.reg.gate.write().unwrap_or_else(|e| e.into_inner());
            self.reg.alive.store(false, Ordering::SeqCst);
        }
        if let Some(s) = self.shared.upgrade() {
            lock(&s.regs).retain(|r| r.id != self.reg.id);
        }
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl PressureManager {
    /// A builder with the defaults (RSS usage, automatic budget, 80/90/95 %).
    pub fn builder() -> PressureManagerBuilder {
        PressureManagerBuilder {
            budget: None,
            thresholds: Thresholds::default(),
            interval: Duration::from_millis(100),
            history: 1024,
            source: UsageSource::ProcessRss,
            clock: Arc::new(SystemClock),
            consumers: None,
            monitor: false,
        }
    }

    /// The current level (as of the last sample).
    pub fn level(&self) -> PressureLevel {
        self.shared.level()
    }

    /// The last sampled usage in bytes.
    pub fn usage(&self) -> u64 {
        // Relaxed: a reading.
        self.shared.usage.load(Ordering::Relaxed)
    }

    /// The budget in bytes.
    pub fn budget(&self) -> u64 {
        self.shared.budget
    }

    /// The thresholds.
    pub fn thresholds(&self) -> Thresholds {
        self.shared.thresholds
    }

    /// Samples usage now, updates the level, runs reclaimers as the level
    /// requires, and returns the resulting level.
    ///
    /// ```
    /// use rustydb_memory::{PressureLevel, PressureManager};
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    ///
    /// let usage = Arc::new(AtomicU64::new(500));
    /// let reading = usage.clone();
    /// let pm = PressureManager::builder()
    ///     .budget(1000)
    ///     .usage_fn(move || reading.load(Ordering::Relaxed))
    ///     .monitor(false)
    ///     .build()?;
    /// assert_eq!(pm.check_now(), PressureLevel::Normal);
    /// usage.store(920, Ordering::Relaxed); // 92 % of the budget
    /// assert_eq!(pm.check_now(), PressureLevel::Critical);
    /// # Ok::<(), rustydb_memory::Error>(())
    /// ```
    pub fn check_now(&self) -> PressureLevel {
        self.shared.check_now()
    }

    /// Registers `callback`, called at `min_level` and above, lowest `priority`
    /// first (ties in registration order). It receives a [`ReclaimRequest`] and
    /// returns the bytes it released. A panic inside it is caught and recorded.
    pub fn register(
        &self,
        min_level: PressureLevel,
        priority: i32,
        name: impl Into<String>,
        callback: impl Fn(&ReclaimRequest<'_>) -> u64 + Send + Sync + 'static,
    ) -> CallbackHandle {
        let reg = Arc::new(Registration {
            // Relaxed: a unique id.
            id: self.shared.next_id.fetch_add(1, Ordering::Relaxed),
            min_level,
            priority,
            name: name.into(),
            callback: Box::new(callback),
            alive: AtomicBool::new(true),
            gate: RwLock::new(()),
            running_on: Mutex::new(None),
        });
        lock(&self.shared.regs).push(reg.clone());
        CallbackHandle {
            shared: Arc::downgrade(&self.shared),
            reg,
        }
    }

    /// Admission control for fallible paths: `Err(MemoryPressure)` at Emergency,
    /// or when `bytes` more would reach the Emergency threshold.
    ///
    /// ```
    /// use rustydb_memory::{Error, PressureManager};
    ///
    /// let pm = PressureManager::builder()
    ///     .budget(1000)
    ///     .usage_fn(|| 900) // 90 %: Critical
    ///     .monitor(false)
    ///     .build()?;
    /// pm.check_now();
    /// assert!(pm.admit(10).is_ok()); // 910 < 950 (Emergency at 95 %)
    /// assert!(matches!(pm.admit(60), Err(Error::MemoryPressure { .. })));
    /// assert_eq!(pm.stats().rejected, 1);
    /// # Ok::<(), rustydb_memory::Error>(())
    /// ```
    pub fn admit(&self, bytes: usize) -> Result<()> {
        self.shared.admit(bytes)
    }

    /// The history, oldest first.
    pub fn history(&self) -> Vec<PressureEvent> {
        lock(&self.shared.history).iter().cloned().collect()
    }

    /// Counters and the current reading.
    pub fn stats(&self) -> PressureStats {
        let s = &self.shared;
        // Relaxed: statistics.
        PressureStats {
            level: s.level(),
            usage: s.usage.load(Ordering::Relaxed),
            budget: s.budget,
            checks: s.checks.load(Ordering::Relaxed),
            transitions: s.transitions.load(Ordering::Relaxed),
            releases: s.releases.load(Ordering::Relaxed),
            callbacks_run: s.callbacks_run.load(Ordering::Relaxed),
            callback_panics: s.callback_panics.load(Ordering::Relaxed),
            bytes_released: s.bytes_released.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            registered: lock(&s.regs).len() as u64,
        }
    }

    /// Whether a monitor thread runs, and whether it uses PSI triggers.
    pub fn monitor_info(&self) -> Option<super::monitor::MonitorInfo> {
        self.monitor.as_ref().map(Monitor::info)
    }
}

impl Shared {
    fn level(&self) -> PressureLevel {
        // A reading (Acquire); transitions are serialised by `check`.
        self.level.load()
    }

    fn admit(&self, bytes: usize) -> Result<()> {
        let level = self.level();
        // Relaxed: a reading.
        let usage = self.usage.load(Ordering::Relaxed);
        let emergency = self.thresholds.bytes(PressureLevel::Emergency, self.budget);
        if level == PressureLevel::Emergency
            || (self.budget != 0 && usage.saturating_add(bytes as u64) >= emergency)
        {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(Error::MemoryPressure {
                level: PressureLevel::Emergency,
                usage,
                budget: self.budget,
                requested: bytes,
            });
        }
        Ok(())
    }

    fn sample(&self) -> u64 {
        let u = self.source.sample();
        // Relaxed: a reading.
        self.usage.store(u, Ordering::Relaxed);
        u
    }

    pub(crate) fn check_now(&self) -> PressureLevel {
        let _g = lock(&self.check);
        crate::events::poll();
        // Relaxed: statistics.
        self.checks.fetch_add(1, Ordering::Relaxed);
        let usage = self.sample();
        let from = self.level();
        let to = self.thresholds.level_for(usage, self.budget, from);
        if to != from {
            self.set_level(to);
        }
        let (runs, released, usage_after) = if to > from || to >= PressureLevel::Critical {
            self.release(to, usage)
        } else {
            (Vec::new(), 0, usage)
        };
        let after = if runs.is_empty() {
            to
        } else {
            self.thresholds.level_for(usage_after, self.budget, to)
        };
        if after != to {
            self.set_level(after);
        }
        if to != from || !runs.is_empty() {
            self.record(from, after, usage_after, released, runs);
        }
        after
    }

    fn set_level(&self, l: PressureLevel) {
        // Readers only need the value; `check` serialises writers.
        self.level.store(l);
        self.transitions.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs the callbacks due at `level`, in priority order, until usage is under
    /// the target: the Critical threshold at Critical and above, the Warning
    /// threshold at Warning — less the hysteresis margin, so the level really drops.
    fn release(&self, level: PressureLevel, mut usage: u64) -> (Vec<CallbackRun>, u64, u64) {
        let target_level = if level >= PressureLevel::Critical {
            PressureLevel::Critical
        } else {
            level
        };
        let margin = (self.budget as f64 * self.thresholds.hysteresis) as u64;
        let target = self
            .thresholds
            .bytes(target_level, self.budget)
            .saturating_sub(margin);
        if level == PressureLevel::Normal || usage < target {
            return (Vec::new(), 0, usage);
        }
        let mut due: Vec<Arc<Registration>> = lock(&self.regs)
            .iter()
            .filter(|r| r.min_level <= level)
            .cloned()
            .collect();
        if due.is_empty() {
            return (Vec::new(), 0, usage);
        }
        due.sort_by_key(|r| (r.priority, r.id));
        let mut consumers = self.consumers.as_ref().map(|f| f()).unwrap_or_default();
        consumers.sort_by_key(|c| std::cmp::Reverse(c.bytes));
        consumers.truncate(16);
        // Relaxed: statistics.
        self.releases.fetch_add(1, Ordering::Relaxed);
        let mut runs = Vec::new();
        let mut total = 0;
        for r in due {
            if usage < target {
                break;
            }
            let _gate = r.gate.read().unwrap_or_else(|e| e.into_inner());
            if !r.alive.load(Ordering::SeqCst) {
                continue;
            }
            let req = ReclaimRequest {
                level,
                usage,
                budget: self.budget,
                bytes_wanted: usage - target + 1,
                top_consumers: &consumers,
            };
            *lock(&r.running_on) = Some(std::thread::current().id());
            let t0 = self.clock.now();
            let out = catch_unwind(AssertUnwindSafe(|| (r.callback)(&req)));
            let micros = self.clock.now().saturating_sub(t0).as_micros() as u64;
            *lock(&r.running_on) = None;
            self.callbacks_run.fetch_add(1, Ordering::Relaxed);
            let (released, panicked) = match out {
                Ok(b) => (b, false),
                Err(_) => {
                    self.callback_panics.fetch_add(1, Ordering::Relaxed);
                    (0, true)
                }
            };
            total += released;
            let run = CallbackRun {
                name: r.name.clone(),
                released,
                panicked,
                micros,
            };
            crate::events::reclaimer_ran(level, &run);
            runs.push(run);
            usage = self.sample();
        }
        self.bytes_released.fetch_add(total, Ordering::Relaxed);
        crate::events::released(level, total, runs.len(), usage);
        (runs, total, usage)
    }

    fn record(
        &self,
        from: PressureLevel,
        to: PressureLevel,
        usage: u64,
        released: u64,
        callbacks: Vec<CallbackRun>,
    ) {
        let ev = PressureEvent {
            // Relaxed: a unique, increasing number (writers are serialised by `check`).
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
            at_ms: self.clock.now().as_millis() as u64,
            unix_ms: unix_ms(),
            from,
            to,
            usage,
            budget: self.budget,
            released,
            callbacks,
        };
        crate::events::pressure_event(&ev);
        let mut h = lock(&self.history);
        if h.len() == self.history_cap {
            h.pop_front();
        }
        h.push_back(ev);
    }
}

impl Drop for PressureManager {
    fn drop(&mut self) {
        if let Some(m) = self.monitor.take() {
            m.stop();
        }
    }
}
