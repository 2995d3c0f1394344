//! A `prometheus_client` collector reading [`MemoryStats`](super::MemoryStats)
//! at scrape time (feature `prometheus`). Metric names and help texts are listed
//! in the README.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::MemoryManager;

/// Exposes a [`MemoryManager`]'s figures as `rustydb_memory_*` metrics.
///
/// ```
/// # #[cfg(feature = "prometheus")] {
/// use prometheus_client::registry::Registry;
/// use rustydb_memory::manager::{MemoryCollector, MemoryManager};
///
/// let mut registry = Registry::default();
/// registry.register_collector(Box::new(MemoryCollector::new(MemoryManager::global())));
/// let mut text = String::new();
/// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
/// assert!(text.contains("rustydb_memory_bytes_mapped"));
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MemoryCollector {
    manager: &'static MemoryManager,
}

impl MemoryCollector {
    /// A collector for `manager`.
    pub fn new(manager: &'static MemoryManager) -> Self {
        Self { manager }
    }
}

fn gauge<N>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    v: N,
) -> Result<(), std::fmt::Error>
where
    ConstGauge<N>: EncodeMetric,
{
    let m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

fn counter(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    let m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(m)
}

fn labelled<N: Copy>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Vec<(&'static str, String)>, N)],
) -> Result<(), std::fmt::Error>
where
    ConstGauge<N>: EncodeMetric,
{
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        let fam = m.encode_family(labels)?;
        ConstGauge::new(*v).encode(fam)?;
    }
    Ok(())
}

impl Collector for MemoryCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.manager.stats();
        let a = &s.allocator;
        gauge(
            &mut e,
            "rustydb_memory_bytes_in_use",
            "Bytes held by the program through RustyAlloc.",
            s.in_use,
        )?;
        gauge(
            &mut e,
            "rustydb_memory_bytes_mapped",
            "Bytes mapped from the OS by this crate's allocators.",
            s.mapped,
        )?;
        gauge(
            &mut e,
            "rustydb_memory_bytes_cached",
            "Bytes of free objects cached in magazines and depots.",
            a.bytes_cached as u64,
        )?;
        gauge(
            &mut e,
            "rustydb_memory_rss_bytes",
            "Resident set size of the process.",
            s.rss,
        )?;
        gauge(
            &mut e,
            "rustydb_memory_fragmentation_ratio",
            "Mapped bytes divided by bytes in use.",
            s.fragmentation,
        )?;
        gauge(
            &mut e,
            "rustydb_memory_segments",
            "2 MiB slab segments mapped.",
            a.segments as u64,
        )?;
        gauge(
            &mut e,
            "rustydb_memory_thread_caches",
            "Threads with a live allocator cache.",
            a.thread_caches as u64,
        )?;
        counter(
            &mut e,
            "rustydb_memory_purged_bytes",
            "Bytes returned to the OS by purges.",
            a.purged_bytes,
        )?;
        let classes: Vec<_> = a
            .classes
            .iter()
            .filter(|c| c.slabs != 0 || c.live_objects != 0)
            .map(|c| (vec![("class", c.size.to_string())], c.live_objects as u64))
            .collect();
        labelled(
            &mut e,
            "rustydb_memory_slab_live_objects",
            "Live objects per size class.",
            &classes,
        )?;
        gauge(
            &mut e,
            "rustydb_memory_large_live",
            "Live large objects.",
            a.large.live as u64,
        )?;
        gauge(
            &mut e,
            "rustydb_memory_large_bytes_in_use",
            "Bytes requested by live large objects.",
            a.large.bytes_in_use as u64,
        )?;
        gauge(
            &mut e,
            "rustydb_memory_large_bytes_mapped",
            "Bytes mapped for large objects.",
            a.large.bytes_mapped as u64,
        )?;
        let ctx_used: Vec<_> = s
            .contexts
            .iter()
            .map(|c| {
                (
                    vec![("context", c.name.clone()), ("id", c.id.to_string())],
                    c.used as u64,
                )
            })
            .collect();
        labelled(
            &mut e,
            "rustydb_memory_context_used_bytes",
            "Bytes handed out by each live memory context.",
            &ctx_used,
        )?;
        let ctx_res: Vec<_> = s
            .contexts
            .iter()
            .map(|c| {
                (
                    vec![("context", c.name.clone()), ("id", c.id.to_string())],
                    c.reserved as u64,
                )
            })
            .collect();
        labelled(
            &mut e,
            "rustydb_memory_context_reserved_bytes",
            "Chunk bytes held by each live memory context.",
            &ctx_res,
        )?;
        let pools: Vec<_> = s
            .pools
            .iter()
            .map(|p| (vec![("pool", p.name.clone())], p.held_bytes))
            .collect();
        labelled(
            &mut e,
            "rustydb_memory_pool_held_bytes",
            "Bytes held by each registered buffer pool.",
            &pools,
        )?;
        let p = &s.pressure;
        gauge(
            &mut e,
            "rustydb_memory_pressure_level",
            "Pressure level: 0 normal, 1 warning, 2 critical, 3 emergency.",
            p.level as i64,
        )?;
        gauge(
            &mut e,
            "rustydb_memory_pressure_usage_bytes",
            "Last sampled usage.",
            p.usage,
        )?;
        gauge(
            &mut e,
            "rustydb_memory_pressure_budget_bytes",
            "Memory budget.",
            p.budget,
        )?;
        counter(
            &mut e,
            "rustydb_memory_pressure_transitions",
            "Pressure level changes.",
            p.transitions,
        )?;
        counter(
            &mut e,
            "rustydb_memory_pressure_releases",
            "Emergency/critical release rounds run.",
            p.releases,
        )?;
        counter(
            &mut e,
            "rustydb_memory_pressure_released_bytes",
            "Bytes released by reclaimers.",
            p.bytes_released,
        )?;
        counter(
            &mut e,
            "rustydb_memory_pressure_rejected",
            "Work refused by admission control.",
            p.rejected,
        )?;
        if let Some(d) = s.debugger {
            gauge(
                &mut e,
                "rustydb_memory_debug_tracked_bytes",
                "Bytes of live blocks tracked by the debugger.",
                d.tracked_bytes,
            )?;
            counter(
                &mut e,
                "rustydb_memory_debug_reports",
                "Findings reported by the debugger.",
                d.reports,
            )?;
        }
        Ok(())
    }
}
