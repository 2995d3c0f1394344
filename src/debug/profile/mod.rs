//! Heap profiles people can open: dhat's JSON (`dh_view.html`) and pprof's
//! gzipped `profile.proto` (`go tool pprof`, speedscope, Grafana Pyroscope).
//!
//! A profile is built from the debugger's tables, with the reentrancy flag
//! set (what it allocates is passed through untracked, and it never holds a
//! debugger lock while allocating through a tracked path):
//! - at Tracking and Full, from the side tables: exact live blocks and bytes
//!   per site (per component at Tracking, which captures no stacks); at Full
//!   exact allocation totals per site;
//! - at the Sampled level, from the Poisson samples: every figure is an
//!   unbiased estimate (each sample weighted by `1/p`);
//! - at Counting, per component from the counters.

mod dhat;
pub(crate) mod exit;
mod pprof;

use core::alloc::GlobalAlloc;
use std::collections::HashMap;
use std::io::{self, Write};

use super::alloc::DebugAlloc;
use super::components;
use super::leaks::Mark;
use super::sampling::{COUNT_SCALE, weight};
use super::stacks::{self, Frame, depot};
use super::state::State;
use super::threads::guarded;
use crate::sys;

/// A profile's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProfileFormat {
    /// dhat's JSON (`dhatFileVersion` 2, mode `rust-heap`): open it in
    /// `dh_view.html` (Valgrind's DHAT viewer).
    Dhat,
    /// pprof's `profile.proto`, gzipped: `go tool pprof`, speedscope, Pyroscope.
    Pprof,
}

impl ProfileFormat {
    /// Parses `dhat` or `pprof`.
    pub fn parse(s: &str) -> Option<ProfileFormat> {
        match s {
            "dhat" | "json" => Some(ProfileFormat::Dhat),
            "pprof" | "pb" | "proto" => Some(ProfileFormat::Pprof),
            _ => None,
        }
    }

    /// The format a file name suggests: pprof for `.pb.gz`, `.pb`, `.pprof`,
    /// dhat's JSON otherwise.
    pub fn for_path(path: &std::path::Path) -> ProfileFormat {
        let name = path.to_string_lossy();
        if name.ends_with(".pb.gz") || name.ends_with(".pb") || name.ends_with(".pprof") {
            ProfileFormat::Pprof
        } else {
            ProfileFormat::Dhat
        }
    }

    /// The HTTP content type of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            ProfileFormat::Dhat => "application/json",
            ProfileFormat::Pprof => "application/octet-stream",
        }
    }
}

/// Which blocks a profile describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileScope {
    /// The live heap, with allocation totals since the level was set.
    Live,
    /// Blocks allocated after the mark and still live (what leaked since).
    /// The `alloc_*` / total figures count those same blocks: blocks freed
    /// since the mark are not remembered.
    Since(Mark),
}

/// Where a profile's figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Side-table records: exact.
    Tracked,
    /// Poisson samples at this mean interval (bytes): estimates.
    Sampled(u64),
    /// Component counters: exact, one site per component.
    Counted,
}

/// One allocation site.
pub(crate) struct Site {
    /// Resolved frames, innermost first (a `[component …]` frame without a stack).
    pub(crate) frames: Vec<Frame>,
    pub(crate) component: String,
    pub(crate) alloc_bytes: u64,
    pub(crate) alloc_blocks: u64,
    pub(crate) live_bytes: u64,
    pub(crate) live_blocks: u64,
    /// Sum of the live blocks' ages, µs.
    pub(crate) lifetimes_us: u64,
}

/// A profile ready to be written.
pub(crate) struct HeapProfile {
    pub(crate) sites: Vec<Site>,
    pub(crate) source: Source,
    /// Time of the snapshot (Unix, ns) and the process's age at it (µs).
    pub(crate) time_unix_ns: i64,
    pub(crate) age_us: u64,
}

#[derive(Default, Clone, Copy)]
struct Acc {
    component: u16,
    live_bytes: f64,
    live_blocks: f64,
    lifetimes_ns: f64,
}

/// Builds the profile of `s`. The caller holds the reentrancy flag.
pub(crate) fn collect(s: &State, scope: ProfileScope) -> HeapProfile {
    let since = match scope {
        ProfileScope::Live => None,
        ProfileScope::Since(m) => Some(m.seq()),
    };
    let now = sys::coarse_now_ns();
    let keep = |seq: u64| since.is_none_or(|m| seq >= m);
    let mut groups: HashMap<(u32, u16), Acc> = HashMap::new();
    let mut add = |stack: u32, component: u16, bytes: f64, blocks: f64, t: u64| {
        // Without a stack, blocks group by component.
        let key = (stack, if stack == 0 { component } else { 0 });
        let g = groups.entry(key).or_default();
        g.component = component;
        g.live_bytes += bytes;
        g.live_blocks += blocks;
        g.lifetimes_ns += now.saturating_sub(t) as f64 * blocks;
    };
    let mut tracked = false;
    s.tracker.for_each(|r| {
        tracked = true;
        if r.freed == 0 && keep(r.seq) {
            add(r.alloc_stack, r.component, r.size as f64, 1.0, r.time_ns);
        }
    });
    let samples = if tracked {
        Vec::new()
    } else {
        s.samples.live()
    };
    let mut rate = 0;
    for r in &samples {
        if keep(r.seq) {
            rate = r.rate as u64;
            let w = weight(r.size, r.rate as u64);
            add(r.alloc_stack, r.component, r.size as f64 * w, w, r.time_ns);
        }
    }
    let source = if tracked {
        Source::Tracked
    } else if !samples.is_empty() {
        Source::Sampled(rate)
    } else {
        Source::Counted
    };
    // Sites with allocation totals but nothing live (a live-heap profile
    // shows what was allocated too).
    if since.is_none() && source != Source::Counted {
        for id in 1..depot::count() {
            if s.samples.site(id).1 > 0 {
                groups.entry((id, 0)).or_default();
            }
        }
    }
    let counters = s.counters.all();
    let mut cache: HashMap<usize, Vec<Frame>> = HashMap::new();
    let mut sites = Vec::with_capacity(groups.len());
    if source == Source::Counted {
        for c in counters.iter().cloned() {
            if since.is_some() {
                continue; // counters know no marks
            }
            sites.push(Site {
                frames: vec![component_frame(&c.name)],
                component: c.name,
                alloc_bytes: c.total_bytes,
                alloc_blocks: c.total_count,
                live_bytes: c.live_bytes,
                live_blocks: c.live_count,
                lifetimes_us: 0,
            });
        }
    }
    for ((stack, _), g) in groups {
        let component = components::name(g.component);
        let (alloc_bytes, alloc_blocks) = if since.is_some() {
            (g.live_bytes, g.live_blocks)
        } else if stack != 0 {
            let (b, c) = s.samples.site(stack);
            (b as f64, c as f64 / COUNT_SCALE)
        } else {
            counters
                .iter()
                .find(|c| c.name == component)
                .map_or((g.live_bytes, g.live_blocks), |c| {
                    (c.total_bytes as f64, c.total_count as f64)
                })
        };
        let mut frames = stack_frames(stack, &mut cache);
        if frames.is_empty() {
            frames.push(component_frame(&component));
        }
        sites.push(Site {
            frames,
            component,
            alloc_bytes: alloc_bytes.max(g.live_bytes).round() as u64,
            alloc_blocks: alloc_blocks.max(g.live_blocks).round() as u64,
            live_bytes: g.live_bytes.round() as u64,
            live_blocks: g.live_blocks.round() as u64,
            lifetimes_us: (g.lifetimes_ns / 1000.0) as u64,
        });
    }
    sites.sort_by(|a, b| {
        b.live_bytes
            .cmp(&a.live_bytes)
            .then(b.alloc_bytes.cmp(&a.alloc_bytes))
    });
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    HeapProfile {
        sites,
        source,
        time_unix_ns: unix,
        age_us: process_age_us(),
    }
}

fn component_frame(name: &str) -> Frame {
    Frame {
        ip: 0,
        function: format!("[component {name}]"),
        file: None,
        line: 0,
    }
}

/// Stack `id` resolved, without the allocator's frames at the top.
fn stack_frames(id: u32, cache: &mut HashMap<usize, Vec<Frame>>) -> Vec<Frame> {
    let mut all = Vec::new();
    for ip in stacks::frames(id) {
        let fs = cache.entry(ip).or_insert_with(|| stacks::resolve_ip(ip));
        all.extend(fs.iter().cloned());
    }
    let first = all
        .iter()
        .position(|f| !stacks::is_internal(&f.function))
        .unwrap_or(all.len());
    all.split_off(first)
}

/// Microseconds since the process started (from `/proc/self/stat`), or 0.
fn process_age_us() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    let Ok(uptime) = std::fs::read_to_string("/proc/uptime") else {
        return 0;
    };
    // Field 22 (starttime, clock ticks since boot) follows the command name's ')'.
    let start_ticks = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(19))
        .and_then(|v| v.parse::<f64>().ok());
    let up = uptime
        .split_whitespace()
        .next()
        .and_then(|v| v.parse::<f64>().ok());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    match (start_ticks, up) {
        (Some(t), Some(u)) => ((u - t / hz).max(0.0) * 1e6) as u64,
        _ => 0,
    }
}

impl<A: GlobalAlloc> DebugAlloc<A> {
    /// Writes a heap profile of this allocator in `format` to `w`.
    ///
    /// At Tracking and Full the figures are exact; at the Sampled level they
    /// are estimates from the Poisson samples; at Counting there is one site
    /// per component. Allocation sites are resolved to function, file and
    /// line now.
    ///
    /// ```
    /// use rustydb_memory::debug::{DebugAlloc, DebugLevel, ProfileFormat, ProfileScope};
    /// use std::alloc::{GlobalAlloc, Layout, System};
    ///
    /// static DBG: DebugAlloc<System> = DebugAlloc::with_level(System, DebugLevel::Tracking);
    /// let l = Layout::from_size_align(64, 8).unwrap();
    /// // SAFETY: non-zero size; freed below with the same layout.
    /// let p = unsafe { DBG.alloc(l) };
    /// let mut json = Vec::new();
    /// DBG.write_profile(&mut json, ProfileFormat::Dhat, ProfileScope::Live).unwrap();
    /// assert!(String::from_utf8(json).unwrap().contains("\"dhatFileVersion\":2"));
    /// // SAFETY: `p` is live, from DBG with `l`.
    /// unsafe { DBG.dealloc(p, l) };
    /// ```
    pub fn write_profile(
        &self,
        w: &mut dyn Write,
        format: ProfileFormat,
        scope: ProfileScope,
    ) -> io::Result<()> {
        guarded(|| {
            let Some(s) = self.state() else {
                return Err(io::Error::other("the debugger could not map its state"));
            };
            write(s, w, format, scope)
        })
    }

    /// Writes a heap profile to the file at `path`, in the format its name
    /// suggests (see [`ProfileFormat::for_path`]).
    pub fn save_profile(&self, path: &std::path::Path, scope: ProfileScope) -> io::Result<()> {
        guarded(|| {
            let mut f = io::BufWriter::new(std::fs::File::create(path)?);
            self.write_profile(&mut f, ProfileFormat::for_path(path), scope)?;
            f.flush()
        })
    }
}

/// Collects and writes a profile of `s`. The caller holds the reentrancy flag.
pub(crate) fn write(
    s: &State,
    w: &mut dyn Write,
    format: ProfileFormat,
    scope: ProfileScope,
) -> io::Result<()> {
    let p = collect(s, scope);
    match format {
        ProfileFormat::Dhat => dhat::write(&p, w),
        ProfileFormat::Pprof => pprof::write(&p, w),
    }
}
