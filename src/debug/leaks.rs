//! Leak reports, long-lived blocks, findings and statistics: the queries over
//! the side table. They run with the reentrancy guard set, so what they allocate
//! themselves is never tracked (and never deadlocks on a shard lock).

use core::alloc::GlobalAlloc;
use std::collections::HashMap;
use std::time::Duration;

use super::alloc::{DebugAlloc, DebugLevel};
use super::components::{self, ComponentStats};
use super::guard_pages;
use super::path::EPOCH;
use super::report::Report;
use super::stacks;
use super::table::Record;
use super::threads::{guarded, thread_id};
use crate::sync::Ordering;
use crate::sys;

/// A point in the allocation sequence, from [`DebugAlloc::mark`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mark {
    seq: u64,
}

impl Mark {
    /// The epoch the mark stands for (records with `seq >=` it are after it).
    pub(crate) fn seq(self) -> u64 {
        self.seq
    }
}

/// Which allocations a leak query looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeakScope {
    /// Every thread and component.
    All,
    /// Allocations made by the calling thread.
    CurrentThread,
    /// Allocations tagged with this component.
    Component(String),
}

/// Live blocks from one call site (or one component, without backtraces).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LeakGroup {
    /// Allocation site, innermost frame first (empty below the Full level).
    pub site: Vec<String>,
    /// The allocating component.
    pub component: String,
    /// Bytes live.
    pub bytes: u64,
    /// Blocks live.
    pub count: u64,
    /// Age of the oldest block.
    pub oldest_age: Duration,
}

/// Live blocks matching a query, grouped by site (largest first).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LeakReport {
    /// Bytes in all groups.
    pub bytes: u64,
    /// Blocks in all groups.
    pub count: u64,
    /// The groups.
    pub groups: Vec<LeakGroup>,
}

impl core::fmt::Display for LeakReport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        writeln!(f, "{} bytes in {} live blocks", self.bytes, self.count)?;
        for g in &self.groups {
            writeln!(
                f,
                "  {} bytes in {} blocks, component {}, oldest {:?}",
                g.bytes, g.count, g.component, g.oldest_age
            )?;
            for l in g.site.iter().take(8) {
                writeln!(f, "      {l}")?;
            }
        }
        Ok(())
    }
}

/// Figures of a [`DebugAlloc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DebugStats {
    /// The level.
    pub level: DebugLevel,
    /// Live tracked blocks.
    pub tracked_blocks: u64,
    /// Bytes of live tracked blocks.
    pub tracked_bytes: u64,
    /// Bytes held in the quarantine.
    pub quarantined_bytes: u64,
    /// Findings reported so far.
    pub reports: u64,
    /// Faults caught on sampled guard pages.
    pub guard_page_faults: u64,
}

impl<A: GlobalAlloc> DebugAlloc<A> {
    /// The current point in the allocation sequence: blocks allocated after
    /// this call are "since the mark".
    pub fn mark(&self) -> Mark {
        // AcqRel: allocations that start after this call read the new epoch
        // (a mark is a rare write; allocations only read the epoch).
        Mark {
            seq: EPOCH.fetch_add(1, Ordering::AcqRel) + 1,
        }
    }

    fn collect(&self, scope: &LeakScope, keep: impl Fn(&Record) -> bool) -> LeakReport {
        guarded(|| {
            let Some(s) = self.state() else {
                return LeakReport::default();
            };
            let me = thread_id();
            let comp = match scope {
                LeakScope::Component(n) => Some(components::intern(n)),
                _ => None,
            };
            let now = sys::coarse_now_ns();
            let mut groups: HashMap<(u32, u16), (u64, u64, u64)> = HashMap::new();
            s.tracker.for_each(|r| {
                let in_scope = match scope {
                    LeakScope::All => true,
                    LeakScope::CurrentThread => r.thread == me,
                    LeakScope::Component(_) => Some(r.component) == comp,
                };
                if r.freed == 0 && in_scope && keep(r) {
                    let g = groups
                        .entry((r.alloc_stack, r.component))
                        .or_insert((0, 0, now));
                    g.0 += r.size as u64;
                    g.1 += 1;
                    g.2 = g.2.min(r.time_ns);
                }
            });
            let mut out = LeakReport::default();
            for ((stack, component), (bytes, count, oldest)) in groups {
                out.bytes += bytes;
                out.count += count;
                out.groups.push(LeakGroup {
                    site: stacks::resolve(stack),
                    component: components::name(component),
                    bytes,
                    count,
                    oldest_age: Duration::from_nanos(now.saturating_sub(oldest)),
                });
            }
            out.groups.sort_by_key(|g| std::cmp::Reverse(g.bytes));
            out
        })
    }

    /// Tracked blocks allocated after `mark` and still live, in `scope`.
    pub fn leaks_since(&self, mark: Mark, scope: LeakScope) -> LeakReport {
        self.collect(&scope, |r| r.seq >= mark.seq)
    }

    /// Tracked blocks live for longer than `age`, in `scope`.
    pub fn long_lived(&self, age: Duration, scope: LeakScope) -> LeakReport {
        let cutoff = sys::coarse_now_ns().saturating_sub(age.as_nanos() as u64);
        self.collect(&scope, |r| r.time_ns <= cutoff)
    }

    /// Runs `f` and panics with a leak report if blocks it allocated in `scope`
    /// are still live afterwards. Needs the Tracking level or above.
    pub fn assert_no_leaks<R>(&self, scope: LeakScope, f: impl FnOnce() -> R) -> R {
        let m = self.mark();
        let r = f();
        let leaks = self.leaks_since(m, scope);
        assert!(leaks.count == 0, "memory leaked: {leaks}");
        r
    }

    /// Findings so far (the latest 256), with resolved sites.
    pub fn reports(&self) -> Vec<Report> {
        guarded(|| match self.state() {
            Some(s) => s.reports.all().iter().map(|r| r.resolve()).collect(),
            None => Vec::new(),
        })
    }

    /// Per-component counters (components that allocated at least once).
    pub fn components(&self) -> Vec<ComponentStats> {
        guarded(|| match self.state() {
            Some(s) => s.counters.all(),
            None => Vec::new(),
        })
    }

    /// Counters of the debugger itself.
    pub fn stats(&self) -> DebugStats {
        guarded(|| {
            let (mut blocks, mut bytes) = (0, 0);
            let (mut reports, mut q) = (0, 0);
            if let Some(s) = self.state() {
                s.tracker.for_each(|r| {
                    if r.freed == 0 {
                        blocks += 1;
                        bytes += r.size as u64;
                    }
                });
                reports = s.reports.total() as u64;
                // Relaxed: statistics.
                q = s.quarantined.load(Ordering::Relaxed) as u64;
            }
            DebugStats {
                level: self.level(),
                tracked_blocks: blocks,
                tracked_bytes: bytes,
                quarantined_bytes: q,
                reports,
                guard_page_faults: guard_pages::FAULTS.load(Ordering::Relaxed),
            }
        })
    }
}
