//! The history behind `/dashboard` and `GET /api/v1/memory/history`: one
//! [`Sample`] a second (memory, pressure and reclaimers, allocator caches,
//! buffer pools, load) in a bounded ring whose storage is a memory context of
//! its own (`history`, shown in `/api/v1/memory/contexts` and on the page),
//! and a watch channel that wakes the Server-Sent Events streams.
//!
//! The ring is allocated once, `capacity × size_of::<Sample>()` bytes (an hour
//! at one sample a second: about 0.9 MiB); the oldest sample is overwritten.
//! What sampling costs is measured on the sampling thread's CPU clock and
//! reported with the ring ([`Sampling`]).

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rustydb_memory::MemoryContext;
use serde::Serialize;
use utoipa::ToSchema;

use crate::server::observe::metrics;
use crate::server::state::App;

/// Seconds of history kept by default (`--history-seconds`).
pub const DEFAULT_SECONDS: usize = 3600;

/// The sampling interval.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Defines [`Sample`] and [`Columns`] (the same fields, one value or one
/// array each) from one list, so the stream and the columns cannot disagree.
macro_rules! sample_fields {
    ($($(#[doc = $doc:literal])* $name:ident: $ty:ty,)*) => {
        /// One reading, taken once a second. Rates are over the interval
        /// since the previous sample; `null` where nothing happened to measure.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
        pub struct Sample {
            $($(#[doc = $doc])* pub $name: $ty,)*
        }

        /// Samples as columns, oldest first: one array per field (the shape
        /// uPlot draws).
        #[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
        pub struct Columns {
            $($(#[doc = $doc])* pub $name: Vec<$ty>,)*
        }

        impl Columns {
            fn with_capacity(n: usize) -> Self {
                Columns { $($name: Vec::with_capacity(n),)* }
            }

            fn push(&mut self, s: &Sample) {
                $(self.$name.push(s.$name);)*
            }

            /// Samples held.
            pub fn len(&self) -> usize {
                self.seq.len()
            }
        }
    };
}

sample_fields! {
    /// Sequence number, from 1: the event id on the stream.
    seq: u64,
    /// When it was taken, Unix milliseconds.
    t_ms: u64,
    /// Resident set size of the process, bytes.
    rss_bytes: u64,
    /// Bytes the crate's allocators have mapped.
    mapped_bytes: u64,
    /// Bytes the program holds through the allocator.
    in_use_bytes: u64,
    /// Mapped ÷ in use.
    fragmentation: f64,
    /// Usage as a percentage of the memory budget.
    pressure_percent: f64,
    /// Pressure level: 0 normal, 1 warning, 2 critical, 3 emergency.
    pressure_level: u8,
    /// Bytes the reclaimers reported freed during the interval.
    reclaimed_bytes: u64,
    /// Reclaimer runs during the interval.
    reclaimer_runs: u64,
    /// Bytes in live slab objects.
    slab_in_use_bytes: u64,
    /// Free slab objects cached in magazines and the depot, bytes.
    slab_cached_bytes: u64,
    /// Bytes in live large objects.
    large_in_use_bytes: u64,
    /// Bytes in the large-object cache.
    large_cached_bytes: u64,
    /// Bytes handed out by memory contexts.
    contexts_used_bytes: u64,
    /// Hit ratio of the first buffer pool over the interval.
    pool0_hit_ratio: Option<f64>,
    /// Hit ratio of the second buffer pool over the interval.
    pool1_hit_ratio: Option<f64>,
    /// Pages in the hot tier (all pools).
    pool_hot_pages: u64,
    /// Pages in the warm tier.
    pool_warm_pages: u64,
    /// Pages in the cold tier (cooling stage and scan rings).
    pool_cold_pages: u64,
    /// Dirty pages.
    pool_dirty_pages: u64,
    /// Evictions per second.
    pool_evictions_per_s: f64,
    /// Requests answered per second.
    requests_per_s: f64,
    /// Median response time over the interval, ms.
    latency_p50_ms: Option<f64>,
    /// 99th-percentile response time over the interval, ms.
    latency_p99_ms: Option<f64>,
    /// Open HTTP connections.
    connections: u64,
    /// SQL statements and GraphQL operations per second.
    queries_per_s: f64,
}

/// The storage: `cap` slots in one block of `ctx`, `len` of them written,
/// the oldest at `head`.
struct Ring {
    /// Owns the block `buf` points into; never reset, dropped with the ring.
    ctx: MemoryContext<'static>,
    buf: NonNull<Sample>,
    cap: usize,
    len: usize,
    head: usize,
    next_seq: u64,
}

// SAFETY: `buf` points into a block owned by `ctx` (which is `Send`) and is
// reached only through the ring, which is moved or shared as a whole (behind
// the `Mutex` of `History`).
unsafe impl Send for Ring {}

impl Ring {
    fn new(cap: usize) -> Result<Ring, String> {
        let cap = cap.max(1);
        let layout = Layout::array::<Sample>(cap).map_err(|e| e.to_string())?;
        let ctx = MemoryContext::builder("history")
            .limit(layout.size() + (64 << 10))
            .build();
        let buf = ctx
            .try_alloc_layout(layout)
            .map_err(|e| format!("the history ring ({} bytes): {e}", layout.size()))?
            .cast::<Sample>();
        Ok(Ring {
            ctx,
            buf,
            cap,
            len: 0,
            head: 0,
            next_seq: 1,
        })
    }

    /// Appends `s` (its `seq` is assigned here), overwriting the oldest when full.
    fn push(&mut self, mut s: Sample) -> u64 {
        s.seq = self.next_seq;
        self.next_seq += 1;
        let slot = (self.head + self.len) % self.cap;
        // SAFETY: `slot < cap`, so the write stays inside the block of
        // `cap` samples `buf` points to, which lives as long as `ctx`;
        // `Sample` is `Copy`, so overwriting an old one drops nothing.
        unsafe { self.buf.as_ptr().add(slot).write(s) };
        if self.len < self.cap {
            self.len += 1;
        } else {
            self.head = (self.head + 1) % self.cap;
        }
        s.seq
    }

    /// The `i`-th oldest sample (`i < len`).
    fn get(&self, i: usize) -> Sample {
        debug_assert!(i < self.len);
        // SAFETY: `i < len ≤ cap`, so the slot is inside the block and was
        // written by `push` (slots up to `len` from `head` are initialised).
        unsafe { *self.buf.as_ptr().add((self.head + i) % self.cap) }
    }

    /// Index of the first sample with a sequence number above `after`.
    fn first_after(&self, after: u64) -> usize {
        let oldest = self.next_seq - self.len as u64;
        (after.saturating_add(1).saturating_sub(oldest) as usize).min(self.len)
    }
}

/// What sampling costs, measured on the sampling thread's CPU clock.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Sampling {
    /// Samples taken since start.
    pub samples: u64,
    /// Mean CPU time per sample, microseconds.
    pub mean_cpu_us: f64,
    /// That as a percentage of one core at one sample a second.
    pub percent_of_core: f64,
}

/// The ring's memory.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RingMemory {
    /// The memory context holding the ring.
    pub context_id: u64,
    /// Its name.
    pub context_name: &'static str,
    /// Bytes it handed out (the ring's block).
    pub used_bytes: u64,
    /// Bytes it reserved from the allocator.
    pub reserved_bytes: u64,
    /// Bytes per sample.
    pub sample_bytes: u64,
}

/// The history: the ring, its wake-up channel and its cost.
pub struct History {
    ring: Mutex<Ring>,
    tx: tokio::sync::watch::Sender<u64>,
    cpu_ns: AtomicU64,
    samples: AtomicU64,
    /// Samples kept at most.
    pub capacity: usize,
    context_id: u64,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl History {
    /// A ring of `capacity` samples (at least 1).
    pub fn new(capacity: usize) -> Result<History, String> {
        let ring = Ring::new(capacity)?;
        let context_id = ring.ctx.id();
        Ok(History {
            capacity: ring.cap,
            ring: Mutex::new(ring),
            tx: tokio::sync::watch::channel(0).0,
            cpu_ns: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            context_id,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a sample and wakes the streams; returns its sequence number.
    pub fn push(&self, s: Sample) -> u64 {
        let seq = self.lock().push(s);
        self.tx.send_replace(seq);
        seq
    }

    /// Up to `limit` samples with a sequence number above `after`, oldest
    /// first (the newest `limit` of them).
    pub fn after(&self, after: u64, limit: usize) -> Vec<Sample> {
        let r = self.lock();
        let from = r.first_after(after).max(r.len.saturating_sub(limit));
        (from..r.len).map(|i| r.get(i)).collect()
    }

    /// As [`after`](Self::after), as columns.
    pub fn columns(&self, after: u64, limit: usize) -> Columns {
        let r = self.lock();
        let from = r.first_after(after).max(r.len.saturating_sub(limit));
        let mut c = Columns::with_capacity(r.len - from);
        for i in from..r.len {
            c.push(&r.get(i));
        }
        c
    }

    /// The newest sequence number (0 before the first sample).
    pub fn last_seq(&self) -> u64 {
        *self.tx.borrow()
    }

    /// A receiver woken at every new sample.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.tx.subscribe()
    }

    /// The ring's memory, from its context.
    pub fn memory(&self) -> RingMemory {
        let st = self.lock().ctx.stats();
        RingMemory {
            context_id: self.context_id,
            context_name: "history",
            used_bytes: st.used as u64,
            reserved_bytes: st.reserved as u64,
            sample_bytes: std::mem::size_of::<Sample>() as u64,
        }
    }

    /// What sampling has cost so far.
    pub fn sampling(&self) -> Sampling {
        let n = self.samples.load(Ordering::Relaxed);
        let ns = self.cpu_ns.load(Ordering::Relaxed);
        let mean_us = if n == 0 {
            0.0
        } else {
            ns as f64 / n as f64 / 1000.0
        };
        Sampling {
            samples: n,
            mean_cpu_us: mean_us,
            percent_of_core: mean_us / INTERVAL.as_micros() as f64 * 100.0,
        }
    }

    fn charge(&self, ns: u64) {
        self.cpu_ns.fetch_add(ns, Ordering::Relaxed);
        self.samples.fetch_add(1, Ordering::Relaxed);
    }
}

/// CPU time of the calling thread, nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; the clock id is a constant
    // every Linux kernel since 2.6.12 supports.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if r != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The counters a sample turns into rates: their values at the previous sample.
#[derive(Debug, Default)]
pub struct Previous {
    at: Option<Instant>,
    requests: u64,
    queries: u64,
    latency: Vec<u64>,
    bytes_released: u64,
    callbacks_run: u64,
    /// (hits, misses, evictions) per buffer pool.
    pools: Vec<(u64, u64, u64)>,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Reads one sample of `app` (sequence number left 0: the ring assigns it).
pub fn take(app: &App, prev: &mut Previous) -> Sample {
    let now = Instant::now();
    let dt = prev
        .at
        .map_or(INTERVAL.as_secs_f64(), |t| {
            now.duration_since(t).as_secs_f64()
        })
        .max(1e-3);
    let per_s = |now: u64, before: u64| now.saturating_sub(before) as f64 / dt;
    let s = app.mm.stats();
    let al = &s.allocator;
    let p = &s.pressure;
    let mut out = Sample {
        t_ms: crate::server::api::http::unix_ms(),
        rss_bytes: s.rss,
        mapped_bytes: s.mapped,
        in_use_bytes: s.in_use,
        fragmentation: s.fragmentation,
        pressure_percent: ratio(p.usage, p.budget) * 100.0,
        pressure_level: p.level as u8,
        reclaimed_bytes: p.bytes_released.saturating_sub(prev.bytes_released),
        reclaimer_runs: p.callbacks_run.saturating_sub(prev.callbacks_run),
        slab_in_use_bytes: al.bytes_in_use.saturating_sub(al.large.bytes_in_use) as u64,
        slab_cached_bytes: al.bytes_cached as u64,
        large_in_use_bytes: al.large.bytes_in_use as u64,
        large_cached_bytes: al.large.bytes_cached as u64,
        contexts_used_bytes: s.contexts.iter().map(|c| c.used as u64).sum(),
        connections: app.conns.count() as u64,
        ..Sample::default()
    };
    let mut pools = Vec::with_capacity(s.buffer_pools.len());
    for (i, b) in s.buffer_pools.iter().enumerate() {
        let (h0, m0, e0) = prev.pools.get(i).copied().unwrap_or_default();
        let (dh, dm) = (b.hits.saturating_sub(h0), b.misses.saturating_sub(m0));
        let hit = (dh + dm > 0).then(|| dh as f64 / (dh + dm) as f64);
        match i {
            0 => out.pool0_hit_ratio = hit,
            1 => out.pool1_hit_ratio = hit,
            _ => {}
        }
        out.pool_hot_pages += b.hot.resident as u64;
        out.pool_warm_pages += b.warm.resident as u64;
        out.pool_cold_pages += b.cold.resident as u64;
        out.pool_dirty_pages += b.dirty as u64;
        out.pool_evictions_per_s += per_s(b.evictions, e0);
        pools.push((b.hits, b.misses, b.evictions));
    }
    let requests = app.metrics.total.load(Ordering::Relaxed);
    let queries = app.queries.total.load(Ordering::Relaxed);
    let latency = app.metrics.latency.counts();
    if prev.at.is_some() {
        out.requests_per_s = per_s(requests, prev.requests);
        out.queries_per_s = per_s(queries, prev.queries);
        let delta: Vec<u64> = latency
            .iter()
            .zip(prev.latency.iter().chain(std::iter::repeat(&0)))
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        out.latency_p50_ms = metrics::quantile_of_counts(&delta, 0.5);
        out.latency_p99_ms = metrics::quantile_of_counts(&delta, 0.99);
    }
    *prev = Previous {
        at: Some(now),
        requests,
        queries,
        latency,
        bytes_released: p.bytes_released,
        callbacks_run: p.callbacks_run,
        pools,
    };
    out
}

/// Samples `app` once a second into its history until the server stops.
pub async fn run(app: Weak<App>) {
    let mut prev = Previous::default();
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(app) = app.upgrade() else { return };
        if app.shutting_down.load(Ordering::Relaxed) {
            return;
        }
        sample_once(&app, &mut prev);
    }
}

/// Takes one sample into `app`'s history, charging its CPU time.
pub fn sample_once(app: &Arc<App>, prev: &mut Previous) -> u64 {
    let t0 = thread_cpu_ns();
    let s = take(app, prev);
    let seq = app.history.push(s);
    app.history.charge(thread_cpu_ns().saturating_sub(t0));
    seq
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rss: u64) -> Sample {
        Sample {
            rss_bytes: rss,
            ..Sample::default()
        }
    }

    #[test]
    fn the_ring_is_bounded_and_ordered() {
        let h = History::new(5).unwrap();
        assert_eq!(h.after(0, usize::MAX), vec![]);
        for i in 1..=12u64 {
            assert_eq!(h.push(sample(i * 10)), i);
        }
        let all = h.after(0, usize::MAX);
        assert_eq!(all.len(), 5, "bounded by its capacity");
        let seqs: Vec<u64> = all.iter().map(|s| s.seq).collect();
        assert_eq!(seqs, vec![8, 9, 10, 11, 12], "oldest first, newest kept");
        assert_eq!(all[0].rss_bytes, 80);
        // After a given sequence number, and at most `limit` (the newest).
        let seqs = |v: Vec<Sample>| v.iter().map(|s| s.seq).collect::<Vec<_>>();
        assert_eq!(seqs(h.after(10, usize::MAX)), vec![11, 12]);
        assert_eq!(seqs(h.after(12, usize::MAX)), Vec::<u64>::new());
        assert_eq!(seqs(h.after(99, usize::MAX)), Vec::<u64>::new());
        assert_eq!(seqs(h.after(3, usize::MAX)), vec![8, 9, 10, 11, 12]);
        assert_eq!(seqs(h.after(0, 2)), vec![11, 12]);
        let c = h.columns(9, usize::MAX);
        assert_eq!(c.seq, vec![10, 11, 12]);
        assert_eq!(c.rss_bytes, vec![100, 110, 120]);
        assert_eq!(h.last_seq(), 12);
    }

    #[test]
    fn the_ring_lives_in_its_own_context() {
        let h = History::new(100).unwrap();
        let m = h.memory();
        let want = 100 * std::mem::size_of::<Sample>() as u64;
        assert!(m.used_bytes >= want, "{m:?}");
        assert!(m.reserved_bytes >= m.used_bytes);
        let listed = rustydb_memory::arena::contexts()
            .into_iter()
            .find(|c| c.id == m.context_id)
            .expect("the history context is registered");
        assert_eq!(listed.name, "history");
        // Pushing more than the capacity allocates nothing more.
        for i in 0..1000 {
            h.push(sample(i));
        }
        assert_eq!(h.memory().used_bytes, m.used_bytes);
    }
}
