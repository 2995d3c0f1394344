//! The whole-program allocator suite (issue 11): one program, built once per
//! allocator (cargo feature `ours`, `system`, `mimalloc` or `jemalloc`), running
//! one workload per process and printing its time and memory:
//!
//! ```text
//! alloc-suite <workload> [--threads N] [--size N] [--idle-ms MS] [--stats] [--purge]
//! alloc-suite --list
//! ```
//!
//! Output, one line: `RESULT alloc=… workload=… threads=… size=… time_ms=…
//! cpu_ms=… peak_kib=… end_kib=… idle_kib=… check=…` — wall time of the workload
//! (setup excluded), the process's CPU time (user + system) over the same span,
//! `VmHWM` after it, `VmRSS` right after it (everything freed, worker
//! threads joined) and again after `--idle-ms` of sleep (default 2000), and the
//! workload's checksum, which depends only on the requests (so every allocator
//! must print the same). A failed check exits with status 2. Diagnostics:
//! `--stats` prints phases and (ours) the allocator's figures on stderr;
//! `--purge` asks the allocator to return free memory before the idle period
//! (`RustyAlloc::purge`, `mi_collect`), to show what an idle purge would reach.
//! `scripts/alloc-suite` builds the four binaries and runs them alternately.

mod big;
mod classic;
mod common;

use std::time::{Duration, Instant};

#[cfg(not(any(
    feature = "ours",
    feature = "system",
    feature = "mimalloc",
    feature = "jemalloc"
)))]
compile_error!("select the allocator: --features ours | system | mimalloc | jemalloc");

#[cfg(any(
    all(
        feature = "ours",
        any(feature = "system", feature = "mimalloc", feature = "jemalloc")
    ),
    all(feature = "system", any(feature = "mimalloc", feature = "jemalloc")),
    all(feature = "mimalloc", feature = "jemalloc"),
))]
compile_error!("select exactly one allocator feature");

#[cfg(feature = "ours")]
#[global_allocator]
static GLOBAL: rustydb_memory::RustyAlloc = rustydb_memory::RustyAlloc::new();
#[cfg(feature = "ours")]
const ALLOCATOR: &str = "ours";

#[cfg(feature = "system")]
#[global_allocator]
static GLOBAL: std::alloc::System = std::alloc::System;
#[cfg(feature = "system")]
const ALLOCATOR: &str = "system";

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(feature = "mimalloc")]
const ALLOCATOR: &str = "mimalloc";

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
#[cfg(feature = "jemalloc")]
const ALLOCATOR: &str = "jemalloc";

/// A workload: name, default threads, default size, what the size counts, and
/// the function (returns the timed duration, or `None` to time the whole call,
/// and the checksum).
struct Workload {
    name: &'static str,
    threads: usize,
    size: usize,
    unit: &'static str,
    run: fn(usize, usize) -> (Option<Duration>, u64),
}

macro_rules! whole {
    ($f:path) => {
        |t, n| (None, $f(t, n))
    };
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "hot",
        threads: 2,
        size: 50_000_000,
        unit: "alloc+free pairs per thread",
        run: whole!(classic::hot),
    },
    Workload {
        name: "batch",
        threads: 2,
        size: 2_000,
        unit: "rounds of 10k allocs then 10k frees per thread",
        run: whole!(classic::batch),
    },
    Workload {
        name: "sh6bench",
        threads: 2,
        size: 5_000,
        unit: "rounds of 8k allocs per thread",
        run: whole!(classic::sh6bench),
    },
    Workload {
        name: "larson",
        threads: 2,
        size: 20_000_000,
        unit: "replacements per thread",
        run: whole!(classic::larson),
    },
    Workload {
        name: "xmalloc",
        threads: 2,
        size: 20_000_000,
        unit: "blocks per producer",
        run: whole!(classic::xmalloc),
    },
    Workload {
        name: "mstress",
        threads: 2,
        size: 10_000_000,
        unit: "steps per thread",
        run: whole!(classic::mstress),
    },
    Workload {
        name: "cache-scratch",
        threads: 2,
        size: 1_000_000,
        unit: "increments per object (1000 objects per thread)",
        run: whole!(classic::cache_scratch),
    },
    Workload {
        name: "rptest",
        threads: 2,
        size: 100_000,
        unit: "iterations of 256 blocks per thread",
        run: whole!(classic::rptest),
    },
    Workload {
        name: "malloc-large",
        threads: 1,
        size: 500,
        unit: "5-25 MiB buffers (20 live)",
        run: whole!(big::malloc_large),
    },
    Workload {
        name: "vec-doubling",
        threads: 1,
        size: 1 << 30,
        unit: "final Vec bytes",
        run: whole!(big::vec_doubling),
    },
    Workload {
        name: "btree",
        threads: 1,
        size: 1_000_000,
        unit: "BTreeMap<String, Vec<u8>> entries",
        run: whole!(big::btree),
    },
    Workload {
        name: "json",
        threads: 1,
        size: 100_000_000,
        unit: "JSON document bytes",
        run: |t, n| {
            let (d, c) = big::json(t, n);
            (Some(d), c)
        },
    },
];

/// Set by `--stats`: workloads then report their phases and, at their peak,
/// the allocator's figures (ours) on stderr.
static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn verbose() -> bool {
    VERBOSE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Called by a workload when its live data is largest (`--stats` diagnostics).
pub fn at_peak(what: &str) {
    if verbose() {
        eprintln!(
            "{what}: at peak, VmRSS {} KiB",
            common::status_kib("VmRSS:")
        );
        print_stats();
    }
}

/// Phase durations of a workload (`--stats` diagnostics).
pub fn phases(ps: &[(&str, Duration)]) {
    if verbose() {
        let text: Vec<String> = ps
            .iter()
            .map(|(n, d)| format!("{n} {:.1} ms", d.as_secs_f64() * 1e3))
            .collect();
        eprintln!("phases: {}", text.join(", "));
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: alloc-suite <workload> [--threads N] [--size N] [--idle-ms MS] [--stats] [--purge]\n       alloc-suite --list"
    );
    std::process::exit(1)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        usage();
    }
    if args[0] == "--list" {
        for w in WORKLOADS {
            println!(
                "{} threads={} size={} ({})",
                w.name, w.threads, w.size, w.unit
            );
        }
        return;
    }
    let Some(w) = WORKLOADS.iter().find(|w| w.name == args[0]) else {
        eprintln!("unknown workload {:?}", args[0]);
        usage()
    };
    let (mut threads, mut size, mut idle_ms, mut stats) = (w.threads, w.size, 2_000u64, false);
    let mut purge = false;
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        let mut num = || -> u64 {
            it.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or_else(|| usage())
        };
        match a.as_str() {
            "--threads" => threads = num() as usize,
            "--size" => size = num() as usize,
            "--idle-ms" => idle_ms = num(),
            "--purge" => purge = true,
            "--stats" => {
                stats = true;
                VERBOSE.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            _ => usage(),
        }
    }
    drop(args);

    let cpu0 = common::cpu_time();
    let t0 = Instant::now();
    let (timed, check) = (w.run)(threads.max(1), size);
    let time = timed.unwrap_or_else(|| t0.elapsed());
    let cpu = common::cpu_time().saturating_sub(cpu0);
    let peak = common::status_kib("VmHWM:");
    let end = common::status_kib("VmRSS:");
    if purge {
        purge_now();
    }
    std::thread::sleep(Duration::from_millis(idle_ms));
    let idle = common::status_kib("VmRSS:");
    println!(
        "RESULT alloc={ALLOCATOR} workload={} threads={threads} size={size} time_ms={:.3} cpu_ms={:.3} peak_kib={peak} end_kib={end} idle_kib={idle} check={check}",
        w.name,
        time.as_secs_f64() * 1e3,
        cpu.as_secs_f64() * 1e3
    );
    if stats {
        print_stats();
    }
}

/// `--purge` (diagnostic): give free memory back before the idle period, where
/// the allocator has a call for it.
#[cfg(feature = "ours")]
fn purge_now() {
    let n = GLOBAL.purge();
    eprintln!("purge(): {n} bytes returned");
}

#[cfg(feature = "mimalloc")]
fn purge_now() {
    unsafe extern "C" {
        /// mimalloc's `void mi_collect(bool force)` (linked in by the mimalloc crate).
        fn mi_collect(force: bool);
    }
    // SAFETY: `mi_collect` may be called at any time from any thread.
    unsafe { mi_collect(true) };
}

#[cfg(not(any(feature = "ours", feature = "mimalloc")))]
fn purge_now() {}

#[cfg(feature = "ours")]
fn print_stats() {
    eprintln!("{:#?}", GLOBAL.stats());
}

#[cfg(feature = "jemalloc")]
fn print_stats() {
    unsafe extern "C" {
        /// jemalloc's `malloc_stats_print` (prefixed in tikv-jemalloc-sys).
        fn _rjem_malloc_stats_print(
            write_cb: Option<
                unsafe extern "C" fn(*mut core::ffi::c_void, *const core::ffi::c_char),
            >,
            cbopaque: *mut core::ffi::c_void,
            opts: *const core::ffi::c_char,
        );
    }
    // SAFETY: null callback and opaque pointer: jemalloc writes to stderr; the
    // options string is NUL-terminated (bins, large classes and mutexes omitted).
    unsafe { _rjem_malloc_stats_print(None, core::ptr::null_mut(), c"blxm".as_ptr()) };
}

#[cfg(not(any(feature = "ours", feature = "jemalloc")))]
fn print_stats() {}
