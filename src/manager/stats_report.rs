//! [`MemoryStats`] as text: the process figures, pressure, contexts and pools,
//! then the allocator's own report (size classes, segments, large objects).

use core::fmt;

use super::stats::MemoryStats;

const MIB: f64 = 1024.0 * 1024.0;

impl fmt::Display for MemoryStats {
    /// A report for people: a few summary lines, the largest memory contexts,
    /// the pools, then [`AllocStats`](crate::AllocStats)'s table.
    ///
    /// ```
    /// use rustydb_memory::MemoryManager;
    ///
    /// let report = MemoryManager::global().stats().to_string();
    /// assert!(report.starts_with("rustydb-memory: rss"));
    /// assert!(report.contains("rustydb-memory allocator"));
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "rustydb-memory: rss {:.1} MiB, mapped {:.1} MiB, in use {:.1} MiB, fragmentation {:.2}",
            self.rss as f64 / MIB,
            self.mapped as f64 / MIB,
            self.in_use as f64 / MIB,
            self.fragmentation
        )?;
        let p = &self.pressure;
        writeln!(
            f,
            "  pressure {} (usage {:.1} MiB of {:.1} MiB), transitions {}, releases {} ({:.1} MiB), rejected {}",
            p.level.as_str(),
            p.usage as f64 / MIB,
            p.budget as f64 / MIB,
            p.transitions,
            p.releases,
            p.bytes_released as f64 / MIB,
            p.rejected
        )?;
        if let Some(d) = &self.debugger {
            writeln!(
                f,
                "  debugger {:?}: {} tracked blocks ({:.1} MiB), {} reports",
                d.level,
                d.tracked_blocks,
                d.tracked_bytes as f64 / MIB,
                d.reports
            )?;
        }
        let reserved: usize = self.contexts.iter().map(|c| c.reserved).sum();
        writeln!(
            f,
            "  memory contexts {} ({:.1} MiB reserved)",
            self.contexts.len(),
            reserved as f64 / MIB
        )?;
        let mut largest: Vec<_> = self.contexts.iter().collect();
        largest.sort_by_key(|c| core::cmp::Reverse(c.reserved));
        for c in largest.iter().take(5) {
            writeln!(
                f,
                "    {:<24} id {:>6}  used {:>10}  reserved {:>10}",
                c.name, c.id, c.used, c.reserved
            )?;
        }
        for pool in &self.pools {
            writeln!(
                f,
                "  pool {}: {:.1} MiB held",
                pool.name,
                pool.held_bytes as f64 / MIB
            )?;
        }
        for bp in &self.buffer_pools {
            writeln!(
                f,
                "  buffer pool {:?}: {} frames of {} B, hit ratio {:.3}, evictions {}",
                bp.policy, bp.frames, bp.page_size, bp.hit_ratio, bp.evictions
            )?;
        }
        write!(f, "{}", self.allocator)
    }
}
