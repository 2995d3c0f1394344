//! The debugger's cost: build and drop a `BTreeMap<u64, String>` under
//! `RustyAlloc` alone, `DebugAlloc<RustyAlloc>` at counting / sampled (one
//! stack per 512 KiB) / tracking / full (a stack per allocation, redzones,
//! quarantine) / full with 1-in-64 stacks / "profile every allocation"
//! (the sampled level at a 1-byte interval: a stack per allocation, as dhat
//! records), and `dhat::Alloc` with a heap profiler running.
//!
//! The global allocator is chosen per process (blocks must be freed by the
//! allocator that made them), so the bench re-runs itself once per
//! configuration, alternating them (A B C D E, A B C D E, …), and prints medians:
//! `BENCH debugger/<mode> ours=…ms rustyalloc=…ms ratio=…` and
//! `BENCH debugger/full_vs_dhat ours=…ms dhat=…ms ratio=…`.
//!
//! `cargo bench --bench debugger` (1 M entries, 3 rounds) or `-- --quick`
//! (100 k entries, 3 rounds).

use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use rustydb_memory::RustyAlloc;
use rustydb_memory::debug::{DebugAlloc, DebugLevel};

static INNER: RustyAlloc = RustyAlloc::new();
static DEBUG: DebugAlloc<RustyAlloc> = DebugAlloc::with_level(RustyAlloc::new(), DebugLevel::Off);
static DHAT: dhat::Alloc = dhat::Alloc;

/// 0 = unset, 1 = RustyAlloc, 2 = DebugAlloc, 3 = dhat. Fixed before the first
/// allocation of a measured run and never changed afterwards in that process.
static MODE: AtomicU8 = AtomicU8::new(0);

fn mode() -> u8 {
    let m = MODE.load(Ordering::Relaxed);
    if m != 0 {
        return m;
    }
    // SAFETY: getenv with a NUL-terminated name; read before any thread exists.
    let p = unsafe { libc::getenv(c"DEBUGGER_BENCH_ALLOC".as_ptr()) };
    let m = if p.is_null() {
        1
    } else {
        // SAFETY: a non-null getenv result is a C string.
        match unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes() {
            b"debug" => 2,
            b"dhat" => 3,
            _ => 1,
        }
    };
    MODE.store(m, Ordering::Relaxed);
    m
}

struct Switch;

// SAFETY: forwards to one allocator, the same for the whole process.
unsafe impl GlobalAlloc for Switch {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe {
            match mode() {
                2 => DEBUG.alloc(l),
                3 => DHAT.alloc(l),
                _ => INNER.alloc(l),
            }
        }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded contract; the same allocator as the allocation.
        unsafe {
            match mode() {
                2 => DEBUG.dealloc(p, l),
                3 => DHAT.dealloc(p, l),
                _ => INNER.dealloc(p, l),
            }
        }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe {
            match mode() {
                2 => DEBUG.realloc(p, l, n),
                3 => DHAT.realloc(p, l, n),
                _ => INNER.realloc(p, l, n),
            }
        }
    }
}

#[global_allocator]
static GLOBAL: Switch = Switch;

fn workload(n: u64) -> f64 {
    let t = Instant::now();
    let mut m = BTreeMap::new();
    for i in 0..n {
        m.insert(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), format!("value-{i}"));
    }
    assert_eq!(m.len() as u64, n);
    drop(m);
    t.elapsed().as_secs_f64() * 1e3
}

/// Child: run the workload once under the configured allocator and print ms.
fn child(n: u64) {
    let level = std::env::var("DEBUGGER_BENCH_LEVEL").unwrap_or_default();
    let ms = match mode() {
        2 => {
            let (lvl, bt_every, interval) = match level.as_str() {
                "full_bt64" => ("full", 64, 0),
                "sampled_all" => ("sampled", 1, 1),
                l => (l, 1, 0),
            };
            DEBUG.set_level(DebugLevel::parse(lvl.as_bytes()).unwrap_or(DebugLevel::Off));
            DEBUG.set_sample_every(0);
            DEBUG.set_backtrace_every(bt_every);
            if interval != 0 {
                DEBUG.set_sample_interval(interval);
            }
            workload(n)
        }
        3 => {
            let _p = dhat::Profiler::builder().testing().build();
            workload(n)
        }
        _ => workload(n),
    };
    println!("RESULT {ms:.3}");
}

fn run(exe: &str, alloc: &str, level: &str, n: u64) -> f64 {
    let out = Command::new(exe)
        .env("DEBUGGER_BENCH_CHILD", n.to_string())
        .env("DEBUGGER_BENCH_ALLOC", alloc)
        .env("DEBUGGER_BENCH_LEVEL", level)
        .output()
        .expect("re-run the bench");
    let s = String::from_utf8_lossy(&out.stdout);
    s.lines()
        .find_map(|l| {
            l.strip_prefix("RESULT ")
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or_else(|| {
            panic!(
                "child {alloc}/{level} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

fn main() {
    if let Ok(n) = std::env::var("DEBUGGER_BENCH_CHILD") {
        child(n.parse().unwrap());
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = if quick { 100_000 } else { 1_000_000 };
    let rounds = 3;
    let exe = std::env::current_exe().unwrap();
    let exe = exe.to_str().unwrap();
    let configs = [
        ("inner", "rusty", ""),
        ("counting", "debug", "counting"),
        ("sampled", "debug", "sampled"),
        ("tracking", "debug", "tracking"),
        ("full", "debug", "full"),
        ("full_bt64", "debug", "full_bt64"),
        ("sampled_all", "debug", "sampled_all"),
        ("dhat", "dhat", ""),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    for _ in 0..rounds {
        for (i, (_, alloc, level)) in configs.iter().enumerate() {
            times[i].push(run(exe, alloc, level, n));
        }
    }
    let med: Vec<f64> = times
        .iter_mut()
        .map(|v| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[v.len() / 2]
        })
        .collect();
    println!(
        "debugger bench: BTreeMap<u64, String> of {n} entries, build + drop, median of {rounds}"
    );
    let dhat_i = configs.len() - 1;
    for (i, (name, _, _)) in configs.iter().enumerate().take(dhat_i).skip(1) {
        println!(
            "BENCH debugger/{name} ours={:.1}ms rustyalloc={:.1}ms ratio={:.2}",
            med[i],
            med[0],
            med[i] / med[0]
        );
    }
    let dhat = med[dhat_i];
    for (name, i) in [
        ("tracking", 3),
        ("full", 4),
        ("full_bt64", 5),
        ("sampled_all", 6),
    ] {
        println!(
            "BENCH debugger/{name}_vs_dhat ours={:.1}ms dhat={dhat:.1}ms ratio={:.3}",
            med[i],
            med[i] / dhat
        );
    }
}
