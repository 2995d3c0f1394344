//! `RustyAlloc` beside glibc (`std::alloc::System`), mimalloc and jemalloc, each
//! called directly through `GlobalAlloc` in the same run (the bench binary's own
//! global allocator stays the default, so criterion and the harness allocate from
//! glibc whatever allocator is under test).
//!
//! Cases (BENCHMARKING.md, issue 2):
//! - `hot_pair_<n>`: one alloc + one free of `n` bytes, repeated (ns per pair);
//! - `batch_<n>`: 10 000 allocs of `n` bytes, then 10 000 frees in allocation
//!   order (ns per pair);
//! - `producer_consumer`: one thread allocates 1 000 000 objects of 64 B and hands
//!   them, in batches of 1 000, to a second thread that frees them (ns per run;
//!   the batch buffers are recycled through two lock-free rings, so nothing is
//!   allocated per batch and the rings cost one release store per 1 000 objects;
//!   what remains of the transport — writing the pointers on one core and reading
//!   them on the other — is measured alone with a null allocator in the same
//!   rotation and printed beside the BENCH lines).
//!
//! Every allocation and free goes through one `#[inline(never)]` shim per
//! allocator, as `__rust_alloc` does for a `#[global_allocator]`: our allocator's
//! fast path is inlined into its shim exactly as it is into `__rg_alloc`, and the
//! C allocators pay their usual one extra call.
//!
//! After criterion, the harness measures every case again itself, alternating the
//! four allocators sample by sample (rotating their order each round), takes the
//! median of each and prints one line per case and peer:
//! `BENCH global/<case> ours=<v>ns <peer>=<v>ns ratio=<ours/peer>`.
//!
//! `cargo bench --bench global -- --quick` runs it all in well under a minute;
//! a filter (`cargo bench --bench global -- hot_pair`) restricts both parts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use mimalloc::MiMalloc;
use rustydb_memory::RustyAlloc;
use tikv_jemallocator::Jemalloc;

const HOT_SIZES: [usize; 6] = [16, 64, 256, 1024, 4096, 32768];
const BATCH_SIZES: [usize; 3] = [16, 256, 1024];
const BATCH: usize = 10_000;
const PC_OBJECTS: usize = 1_000_000;
const PC_SIZE: usize = 64;
const PC_BATCH: usize = 1_000;
/// Batch buffers in circulation (bounds the objects in flight to 16 000).
const PC_BUFFERS: usize = 16;

static OURS: RustyAlloc = RustyAlloc::new();
static SYSTEM: System = System;
static MIMALLOC: MiMalloc = MiMalloc;
static JEMALLOC: Jemalloc = Jemalloc;

/// The allocators compared, in BENCH-line order (ours first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Ours,
    System,
    Mimalloc,
    Jemalloc,
}

const PEERS: [Peer; 4] = [Peer::Ours, Peer::System, Peer::Mimalloc, Peer::Jemalloc];

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Ours => "ours",
            Peer::System => "system",
            Peer::Mimalloc => "mimalloc",
            Peer::Jemalloc => "jemalloc",
        }
    }
}

/// Runs the generic workload `$f(&ALLOCATOR, args…)` for `$peer`, monomorphised per
/// allocator (no dynamic dispatch on the measured path).
macro_rules! on_peer {
    ($peer:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $peer {
            Peer::Ours => $f(&OURS, $($arg),*),
            Peer::System => $f(&SYSTEM, $($arg),*),
            Peer::Mimalloc => $f(&MIMALLOC, $($arg),*),
            Peer::Jemalloc => $f(&JEMALLOC, $($arg),*),
        }
    };
}

// ---------------------------------------------------------------------------
// The call shims (what `__rust_alloc` / `__rust_dealloc` are for a global allocator).

/// # Safety
/// `layout` has a non-zero size.
#[inline(never)]
unsafe fn shim_alloc<A: GlobalAlloc>(a: &A, layout: Layout) -> *mut u8 {
    // SAFETY: forwarded contract.
    unsafe { a.alloc(layout) }
}

/// # Safety
/// `p` came from `shim_alloc(a, layout)` and is not used again.
#[inline(never)]
unsafe fn shim_dealloc<A: GlobalAlloc>(a: &A, p: *mut u8, layout: Layout) {
    // SAFETY: forwarded contract.
    unsafe { a.dealloc(p, layout) }
}

/// Allocates through the shim and touches the first byte (a block nobody writes
/// to is not a realistic allocation); aborts on failure.
#[inline(always)]
fn alloc_touch<A: GlobalAlloc>(a: &A, layout: Layout) -> *mut u8 {
    // SAFETY: every layout used here has a non-zero size.
    let p = unsafe { shim_alloc(a, layout) };
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: `p` is a live block of at least one byte.
    unsafe { p.write(1) };
    p
}

// ---------------------------------------------------------------------------
// Workloads. Each returns the time of `iters` repetitions.

fn hot_pairs<A: GlobalAlloc>(a: &A, layout: Layout, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let p = alloc_touch(a, layout);
        // SAFETY: `p` came from this allocator with `layout` and is not used again.
        unsafe { shim_dealloc(a, black_box(p), layout) };
    }
    start.elapsed()
}

/// `iters` rounds of: fill `slots` with fresh blocks, then free them in order.
fn batches<A: GlobalAlloc>(a: &A, layout: Layout, slots: &mut [*mut u8], iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        for s in slots.iter_mut() {
            *s = alloc_touch(a, layout);
        }
        for &p in black_box(&*slots) {
            // SAFETY: each slot holds a distinct live block of `layout` from `a`.
            unsafe { shim_dealloc(a, p, layout) };
        }
    }
    start.elapsed()
}

/// A single-producer single-consumer ring of buffer indices. Its capacity exceeds
/// the number of indices in circulation, so a push never finds it full.
struct Ring {
    slots: [AtomicUsize; 32],
    head: AtomicUsize,
    tail: AtomicUsize,
}

const _: () = assert!(PC_BUFFERS + 1 < 32);

impl Ring {
    fn new() -> Self {
        Self {
            slots: [const { AtomicUsize::new(0) }; 32],
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
        }
    }

    /// Producer side.
    fn push(&self, v: usize) {
        let t = self.tail.load(Ordering::Relaxed);
        self.slots[t % 32].store(v, Ordering::Relaxed);
        // Release: the slot and the buffer it names are written before the index
        // is published.
        self.tail.store(t + 1, Ordering::Release);
    }

    /// Consumer side: spins briefly, then yields, until an index arrives.
    fn pop(&self) -> usize {
        let h = self.head.load(Ordering::Relaxed);
        let mut spins = 0u32;
        // Acquire: pairs with `push`'s Release.
        while self.tail.load(Ordering::Acquire) == h {
            spins += 1;
            if spins < 128 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        let v = self.slots[h % 32].load(Ordering::Relaxed);
        // Release: the slot is read before it may be overwritten.
        self.head.store(h + 1, Ordering::Release);
        v
    }
}

/// The batch buffers, shared by the two threads; a buffer is only touched by the
/// thread that last popped its index (the rings hand ownership over).
struct Buffers(Vec<UnsafeCell<Vec<*mut u8>>>);

// SAFETY: see the type's doc — exclusive access is handed over through the rings'
// Release/Acquire pairs, never shared.
unsafe impl Sync for Buffers {}

const DONE: usize = usize::MAX;

/// One producer/consumer run: `objects` blocks of `PC_SIZE` bytes.
fn producer_consumer_once<A: GlobalAlloc + Sync>(a: &A, objects: usize) -> Duration {
    let layout = Layout::from_size_align(PC_SIZE, 8).expect("layout");
    let bufs = Buffers(
        (0..PC_BUFFERS)
            .map(|_| UnsafeCell::new(Vec::with_capacity(PC_BATCH)))
            .collect(),
    );
    let (full, empty) = (Ring::new(), Ring::new());
    for i in 0..PC_BUFFERS {
        empty.push(i);
    }
    let (bufs, full, empty) = (&bufs, &full, &empty);
    let start = Instant::now();
    std::thread::scope(|s| {
        // Consumer.
        s.spawn(move || {
            loop {
                let i = full.pop();
                if i == DONE {
                    break;
                }
                // SAFETY: popping `i` made this thread the buffer's only user.
                let b = unsafe { &mut *bufs.0[i].get() };
                for &p in b.iter() {
                    // SAFETY: each pointer is a live block of `layout` from `a`,
                    // handed over by the producer and freed once.
                    unsafe { shim_dealloc(a, p, layout) };
                }
                b.clear();
                empty.push(i);
            }
        });
        // Producer.
        s.spawn(move || {
            let mut left = objects;
            while left > 0 {
                let i = empty.pop();
                // SAFETY: popping `i` made this thread the buffer's only user.
                let b = unsafe { &mut *bufs.0[i].get() };
                let n = left.min(PC_BATCH);
                for _ in 0..n {
                    b.push(alloc_touch(a, layout));
                }
                left -= n;
                full.push(i);
            }
            full.push(DONE);
        });
    });
    start.elapsed()
}

fn producer_consumer<A: GlobalAlloc + Sync>(a: &A, iters: u64) -> Duration {
    (0..iters)
        .map(|_| producer_consumer_once(a, PC_OBJECTS))
        .sum()
}

/// An "allocator" that does nothing (every block is the same scratch buffer), to
/// measure what the producer/consumer transport costs on its own.
struct NullAlloc;

#[repr(align(64))]
struct Scratch(UnsafeCell<[u8; 64]>);
// SAFETY: only the producer thread ever writes the scratch bytes (and what it
// writes is never read).
unsafe impl Sync for Scratch {}
static SCRATCH: Scratch = Scratch(UnsafeCell::new([0; 64]));

// SAFETY: not a real allocator — used only by `producer_consumer` with 64-byte,
// 8-aligned layouts, whose blocks are written once and never read.
unsafe impl GlobalAlloc for NullAlloc {
    unsafe fn alloc(&self, _layout: Layout) -> *mut u8 {
        SCRATCH.0.get().cast()
    }
    unsafe fn dealloc(&self, _p: *mut u8, _layout: Layout) {}
}

// ---------------------------------------------------------------------------
// Cases.

#[derive(Debug, Clone, Copy)]
enum Kind {
    Hot(usize),
    Batch(usize),
    ProducerConsumer,
}

#[derive(Debug, Clone, Copy)]
struct Case {
    kind: Kind,
}

impl Case {
    fn all() -> Vec<Case> {
        let mut v: Vec<Case> = HOT_SIZES
            .iter()
            .map(|&n| Case { kind: Kind::Hot(n) })
            .collect();
        v.extend(BATCH_SIZES.iter().map(|&n| Case {
            kind: Kind::Batch(n),
        }));
        v.push(Case {
            kind: Kind::ProducerConsumer,
        });
        v
    }

    fn name(&self) -> String {
        match self.kind {
            Kind::Hot(n) => format!("hot_pair_{n}"),
            Kind::Batch(n) => format!("batch_{n}"),
            Kind::ProducerConsumer => "producer_consumer".to_string(),
        }
    }

    fn layout(&self) -> Layout {
        let n = match self.kind {
            Kind::Hot(n) | Kind::Batch(n) => n,
            Kind::ProducerConsumer => PC_SIZE,
        };
        Layout::from_size_align(n, 8).expect("layout")
    }

    /// Pairs (or runs) one repetition stands for: the unit of the BENCH figure.
    fn per_iter(&self) -> f64 {
        match self.kind {
            Kind::Hot(_) | Kind::ProducerConsumer => 1.0,
            Kind::Batch(_) => BATCH as f64,
        }
    }

    /// Runs `iters` repetitions on `peer`; returns the elapsed time.
    fn run(&self, peer: Peer, iters: u64, slots: &mut [*mut u8]) -> Duration {
        let layout = self.layout();
        match self.kind {
            Kind::Hot(_) => on_peer!(peer, hot_pairs(layout, iters)),
            Kind::Batch(_) => on_peer!(peer, batches(layout, slots, iters)),
            Kind::ProducerConsumer => on_peer!(peer, producer_consumer(iters)),
        }
    }

    /// Repetitions per sample of the harness's own timing loop (a few ms each).
    fn sample_iters(&self) -> u64 {
        match self.kind {
            Kind::Hot(_) => 50_000,
            Kind::Batch(_) => 3,
            Kind::ProducerConsumer => 1,
        }
    }
}

// ---------------------------------------------------------------------------
// Arguments (criterion parses them too; we only need the mode and the filter).

struct Args {
    bench: bool,
    quick: bool,
    list: bool,
    filter: Option<String>,
}

fn args() -> Args {
    const TAKES_VALUE: &[&str] = &[
        "-c",
        "--color",
        "-s",
        "--save-baseline",
        "-b",
        "--baseline",
        "--baseline-lenient",
        "--format",
        "--profile-time",
        "--load-baseline",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--plotting-backend",
        "--output-format",
    ];
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut a = Args {
        bench: false,
        quick: false,
        list: false,
        filter: None,
    };
    let mut i = 0;
    while i < argv.len() {
        let s = argv[i].as_str();
        match s {
            "--bench" => a.bench = true,
            "--test" | "--profile-time" => a.bench = false,
            "--quick" => a.quick = true,
            "--list" => a.list = true,
            _ if TAKES_VALUE.contains(&s) => i += 1,
            _ if !s.starts_with('-') && a.filter.is_none() => a.filter = Some(s.to_string()),
            _ => {}
        }
        i += 1;
    }
    if argv.iter().any(|s| s == "--test") {
        a.bench = false;
    }
    a
}

impl Args {
    /// Whether any benchmark id of `case` matches the filter (a substring match:
    /// criterion's own filter is a regex, which plain names also satisfy).
    fn selects(&self, case: &Case) -> bool {
        let Some(f) = &self.filter else { return true };
        let id = format!("global/{}", case.name());
        id.contains(f.as_str())
            || PEERS
                .iter()
                .any(|p| format!("{id}/{}", p.name()).contains(f.as_str()))
    }
}

// ---------------------------------------------------------------------------
// Criterion part.

fn criterion_part(c: &mut Criterion, cases: &[Case]) {
    let mut slots = vec![std::ptr::null_mut::<u8>(); BATCH];
    for case in cases {
        let mut g = c.benchmark_group(format!("global/{}", case.name()));
        match case.kind {
            Kind::Hot(_) => {
                g.throughput(Throughput::Elements(1));
            }
            Kind::Batch(_) => {
                g.throughput(Throughput::Elements(BATCH as u64));
            }
            Kind::ProducerConsumer => {
                g.throughput(Throughput::Elements(PC_OBJECTS as u64));
                g.sample_size(10);
                g.measurement_time(Duration::from_secs(3));
            }
        }
        for peer in PEERS {
            g.bench_function(peer.name(), |b| {
                b.iter_custom(|iters| case.run(peer, iters, &mut slots));
            });
        }
        g.finish();
    }
}

// ---------------------------------------------------------------------------
// The harness's own alternating timing loop and the BENCH lines.

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median ns per pair (or per run) of each peer, sampled alternately. For the
/// producer/consumer case a fifth entry, the null allocator (the transport
/// alone), joins the rotation, so its figure comes from the same conditions.
fn measure(case: &Case, rounds: usize, slots: &mut [*mut u8]) -> ([f64; 4], Option<f64>) {
    let iters = case.sample_iters();
    let unit = iters as f64 * case.per_iter();
    let with_null = matches!(case.kind, Kind::ProducerConsumer);
    let entries = if with_null { 5 } else { 4 };
    let mut sample = |idx: usize| -> f64 {
        let t = if idx < 4 {
            case.run(PEERS[idx], iters, slots)
        } else {
            producer_consumer(&NullAlloc, iters)
        };
        t.as_nanos() as f64 / unit
    };
    // Warm-up: one sample each, discarded.
    for idx in 0..entries {
        sample(idx);
    }
    let mut samples: [Vec<f64>; 5] = Default::default();
    for r in 0..rounds {
        for k in 0..entries {
            let idx = (r + k) % entries;
            samples[idx].push(sample(idx));
        }
    }
    let mut out = [0.0; 4];
    for (o, s) in out.iter_mut().zip(samples.iter_mut()) {
        *o = median(s);
    }
    (out, with_null.then(|| median(&mut samples[4])))
}

fn fmt_ns(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn bench_lines(cases: &[Case], quick: bool) {
    let mut slots = vec![std::ptr::null_mut::<u8>(); BATCH];
    println!();
    println!(
        "# BENCH lines: medians of alternating samples (allocator order rotated each round), \
         ns per alloc+free pair (hot_pair, batch) or per 1M-object run (producer_consumer)"
    );
    for case in cases {
        let rounds = match (case.kind, quick) {
            (Kind::ProducerConsumer, true) => 5,
            (Kind::ProducerConsumer, false) => 11,
            (_, true) => 11,
            (_, false) => 31,
        };
        let (m, null) = measure(case, rounds, &mut slots);
        for (k, peer) in PEERS.iter().enumerate().skip(1) {
            println!(
                "BENCH global/{} ours={}ns {}={}ns ratio={:.3}",
                case.name(),
                fmt_ns(m[0]),
                peer.name(),
                fmt_ns(m[k]),
                m[0] / m[k]
            );
        }
        if let Some(null) = null {
            println!(
                "# producer_consumer: the transport alone (null allocator, same rotation) takes \
                 {}ns = {:.0}% of ours; net of it, ours/peer = {}",
                fmt_ns(null),
                100.0 * null / m[0],
                PEERS[1..]
                    .iter()
                    .zip(&m[1..])
                    .map(|(p, v)| format!("{}:{:.3}", p.name(), (m[0] - null) / (v - null)))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
    }
}

/// Test mode (`cargo test --benches`): every workload once, small, on every
/// allocator, checking only that it runs.
fn smoke(cases: &[Case]) {
    let mut slots = vec![std::ptr::null_mut::<u8>(); BATCH];
    for case in cases {
        for peer in PEERS {
            match case.kind {
                Kind::ProducerConsumer => {
                    on_peer!(peer, producer_consumer_once(10 * PC_BATCH + 7));
                }
                _ => {
                    case.run(peer, 2, &mut slots);
                }
            }
        }
    }
    producer_consumer_once(&NullAlloc, PC_BATCH);
}

fn main() {
    let a = args();
    let cases: Vec<Case> = Case::all().into_iter().filter(|c| a.selects(c)).collect();
    if a.list {
        let mut c = Criterion::default().configure_from_args();
        criterion_part(&mut c, &cases);
        return;
    }
    if !a.bench {
        smoke(&cases);
        let mut c = Criterion::default().configure_from_args();
        criterion_part(&mut c, &cases);
        c.final_summary();
        return;
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    criterion_part(&mut c, &cases);
    c.final_summary();
    bench_lines(&cases, a.quick);
}
