//! Large objects: `RustyAlloc` (whose requests ≥ 256 KiB go to the
//! large-object allocator) beside glibc (`System`), mimalloc and jemalloc, all
//! called directly through `GlobalAlloc` in the same run.
//!
//! Cases (each prints `BENCH large/<case> ours=… <peer>=… ratio=ours/peer` per peer):
//! - `pair_256k`, `pair_1m`, `pair_4m`: one alloc + write one byte + free of a
//!   reused block, ns per pair;
//! - `vec_doubling_1g`: a 256 KiB block grown by `realloc` doubling to 1 GiB,
//!   one byte written per 64 KiB of new space (page tables exist, as in a
//!   `Vec` being filled sparsely), ns per whole growth;
//! - `malloc_large`: mimalloc-bench's malloc-large — 20 slots, each step replaces
//!   a random slot with a new block of 5–25 MiB that is zero-filled (as
//!   `std::make_unique<char[]>` does), ns per step, after 200 untimed steps;
//! - `rss_after_decay`: RSS after allocating and freeing ~96 MiB of touched
//!   large blocks, waiting past the decay delay and doing a little more large
//!   traffic, as a multiple of the RSS before (`x`; 1.00 = all returned).
//!
//! Run: `cargo bench --bench large -- --quick`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::Criterion;
use mimalloc::MiMalloc;
use rustydb_memory::RustyAlloc;
use tikv_jemallocator::Jemalloc;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// `(case, allocator, iterations, ns per iteration)` for every call criterion made.
static SAMPLES: Mutex<Vec<(&'static str, &'static str, u64, f64)>> = Mutex::new(Vec::new());

fn record(case: &'static str, who: &'static str, d: Duration, iters: u64) {
    let ns = d.as_nanos() as f64 / iters.max(1) as f64;
    SAMPLES.lock().unwrap().push((case, who, iters, ns));
}

/// Median ns per iteration over the calls with at least half the largest
/// iteration count: criterion's measured samples (its warm-up and, in `--quick`
/// mode, the first doublings are short calls dominated by cold state).
fn median(case: &str, who: &str) -> Option<f64> {
    let all: Vec<(u64, f64)> = SAMPLES
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.0 == case && s.1 == who)
        .map(|s| (s.2, s.3))
        .collect();
    let most = all.iter().map(|s| s.0).max()?;
    let mut v: Vec<f64> = all
        .iter()
        .filter(|s| s.0 * 2 >= most)
        .map(|s| s.1)
        .collect();
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Minor page faults of this process so far.
fn minor_faults() -> i64 {
    // SAFETY: an all-zero rusage is valid; getrusage fills it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    u.ru_minflt
}

/// Alloc + touch + free of one reused block, `iters` times.
fn pair<A: GlobalAlloc>(a: &A, size: usize, iters: u64) -> Duration {
    let l = Layout::from_size_align(size, 16).unwrap();
    // SAFETY: a valid non-zero layout; each block is freed with it.
    unsafe {
        let warm = a.alloc(l);
        a.dealloc(warm, l);
        let t = Instant::now();
        for _ in 0..iters {
            let p = a.alloc(l);
            p.write_volatile(1);
            a.dealloc(black_box(p), l);
        }
        t.elapsed()
    }
}

/// 256 KiB grown by doubling to 1 GiB, one byte written per 64 KiB of new space.
fn doubling<A: GlobalAlloc>(a: &A, iters: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        let mut size = 256 * KIB;
        let mut l = Layout::from_size_align(size, 16).unwrap();
        // SAFETY: valid layouts; the block is reallocated and freed with its current layout.
        unsafe {
            let mut p = a.alloc(l);
            assert!(!p.is_null());
            let mut touched = 0;
            loop {
                while touched < size {
                    p.add(touched).write_volatile(touched as u8 | 1);
                    touched += 64 * KIB;
                }
                if size == 1 << 30 {
                    break;
                }
                p = a.realloc(p, l, size * 2);
                assert!(!p.is_null());
                size *= 2;
                l = Layout::from_size_align(size, 16).unwrap();
            }
            assert_eq!(p.add(64 * KIB).read_volatile(), (64 * KIB) as u8 | 1);
            a.dealloc(p, l);
        }
    }
    t.elapsed()
}

/// State of the malloc-large workload for one allocator.
struct Slots {
    ptrs: [(usize, usize); 20],
    rng: u64,
}

impl Slots {
    fn new() -> Self {
        Self {
            ptrs: [(0, 0); 20],
            rng: 42,
        }
    }

    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// `iters` steps: a new zero-filled block of 5–25 MiB replaces a random slot.
    fn run<A: GlobalAlloc>(&mut self, a: &A, iters: u64) -> Duration {
        let t = Instant::now();
        for _ in 0..iters {
            let slot = (self.next() % 20) as usize;
            let size = 5 * MIB + (self.next() % (20 * MIB as u64 + 1)) as usize;
            let l = Layout::from_size_align(size, 16).unwrap();
            // SAFETY: valid layouts; every block is freed with the layout it got.
            unsafe {
                let p = a.alloc(l);
                assert!(!p.is_null());
                p.write_bytes(0, size);
                let (old, old_size) = std::mem::replace(&mut self.ptrs[slot], (p as usize, size));
                if old != 0 {
                    a.dealloc(
                        old as *mut u8,
                        Layout::from_size_align(old_size, 16).unwrap(),
                    );
                }
            }
        }
        t.elapsed()
    }

    fn free_all<A: GlobalAlloc>(&mut self, a: &A) {
        for (p, size) in &mut self.ptrs {
            if *p != 0 {
                // SAFETY: each live slot holds a block from `a` of `size` bytes.
                unsafe { a.dealloc(*p as *mut u8, Layout::from_size_align(*size, 16).unwrap()) };
                *p = 0;
            }
        }
    }
}

/// RSS after (touch ~96 MiB of large blocks, free them, wait past the decay
/// delay, 64 more alloc/free pairs of 256 KiB) ÷ RSS before.
fn rss_after_decay<A: GlobalAlloc>(a: &A) -> f64 {
    let rss = || rustydb_memory::sys::process_rss().unwrap_or(0) as f64;
    let sizes: Vec<usize> = (0..40)
        .map(|i| if i % 5 == 0 { 8 * MIB } else { MIB })
        .collect();
    let before = rss();
    // SAFETY: valid layouts; each block is freed with its own.
    unsafe {
        let blocks: Vec<(*mut u8, Layout)> = sizes
            .iter()
            .map(|&s| {
                let l = Layout::from_size_align(s, 16).unwrap();
                let p = a.alloc(l);
                p.write_bytes(7, s);
                (p, l)
            })
            .collect();
        for (p, l) in blocks {
            a.dealloc(p, l);
        }
        // Default decay delay is 1 s (RUSTYDB_MEM_PURGE_DELAY_MS); mimalloc's
        // purge delay is 10 ms, jemalloc's dirty decay 10 s.
        std::thread::sleep(Duration::from_millis(1100));
        let l = Layout::from_size_align(256 * KIB, 16).unwrap();
        for _ in 0..64 {
            let p = a.alloc(l);
            p.write_volatile(1);
            a.dealloc(p, l);
        }
    }
    rss() / before
}

fn bench_all(c: &mut Criterion) {
    macro_rules! each {
        ($f:expr) => {{
            $f("ours", &RustyAlloc);
            $f("system", &System);
            $f("mimalloc", &MiMalloc);
            $f("jemalloc", &Jemalloc);
        }};
    }
    // First, while every allocator is still clean.
    let mut rss = Vec::new();
    each!(|who, a| rss.push((who, rss_after_decay(a))));
    for (who, r) in &rss {
        println!("rss_after_decay {who}: {r:.3}x");
    }
    let ours = rss[0].1;
    for (who, r) in &rss[1..] {
        println!(
            "BENCH large/rss_after_decay ours={ours:.3}x {who}={r:.3}x ratio={:.3}",
            ours / r
        );
    }

    for (case, size) in [
        ("pair_256k", 256 * KIB),
        ("pair_1m", MIB),
        ("pair_4m", 4 * MIB),
    ] {
        let mut g = c.benchmark_group(format!("large/{case}"));
        fn one<A: GlobalAlloc>(
            g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
            case: &'static str,
            who: &'static str,
            a: &A,
            size: usize,
        ) {
            g.bench_function(who, |b| {
                b.iter_custom(|iters| {
                    let d = pair(a, size, iters);
                    record(case, who, d, iters);
                    d
                })
            });
        }
        each!(|who, a| one(&mut g, case, who, a, size));
        g.finish();
    }

    {
        let case = "vec_doubling_1g";
        let mut g = c.benchmark_group(format!("large/{case}"));
        g.sample_size(10).measurement_time(Duration::from_secs(4));
        fn one<A: GlobalAlloc>(
            g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
            who: &'static str,
            a: &A,
        ) {
            g.bench_function(who, |b| {
                b.iter_custom(|iters| {
                    let d = doubling(a, iters);
                    record("vec_doubling_1g", who, d, iters);
                    d
                })
            });
        }
        each!(|who, a| one(&mut g, who, a));
        g.finish();
    }

    {
        let case = "malloc_large";
        let mut g = c.benchmark_group(format!("large/{case}"));
        g.sample_size(10).measurement_time(Duration::from_secs(4));
        fn one<A: GlobalAlloc>(
            g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
            who: &'static str,
            a: &A,
        ) {
            // Steady state: fill the slots and let each allocator settle first.
            let mut slots = Slots::new();
            slots.run(a, 200);
            let (f0, mut steps) = (minor_faults(), 0);
            g.bench_function(who, |b| {
                b.iter_custom(|iters| {
                    let d = slots.run(a, iters);
                    steps += iters;
                    record("malloc_large", who, d, iters);
                    d
                })
            });
            slots.free_all(a);
            let f = (minor_faults() - f0) as f64 / steps.max(1) as f64;
            println!("malloc_large {who}: {steps} steps, {f:.0} minor faults per step");
        }
        each!(|who, a| one(&mut g, who, a));
        g.finish();
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_all(&mut c);
    c.final_summary();
    for case in [
        "pair_256k",
        "pair_1m",
        "pair_4m",
        "vec_doubling_1g",
        "malloc_large",
    ] {
        let Some(ours) = median(case, "ours") else {
            continue;
        };
        for peer in ["system", "mimalloc", "jemalloc"] {
            if let Some(p) = median(case, peer) {
                println!(
                    "BENCH large/{case} ours={ours:.1}ns {peer}={p:.1}ns ratio={:.3}",
                    ours / p
                );
            }
        }
    }
    let s = RustyAlloc.stats().large;
    println!("ours: {s:?}");
    println!(
        "ours: cache hits {} misses {} splits {} merges {} evictions {} decayed {}; mmap {} munmap {} mremap {}",
        s.cache_hits,
        s.cache_misses,
        s.cache_splits,
        s.cache_merges,
        s.cache_evictions,
        s.cache_decayed,
        s.mmap_calls,
        s.munmap_calls,
        s.mremap_calls
    );
}
