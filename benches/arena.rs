//! Memory contexts beside bumpalo, side by side in one run.
//!
//! `cargo bench --bench arena` (add `-- --quick` for a short run). After
//! criterion's report, prints one `BENCH arena/<case> ours=… bumpalo=… ratio=…`
//! line per case from an alternating median-of-samples loop.

use std::alloc::Layout;
use std::hint::black_box;
use std::time::Instant;

use bumpalo::Bump;
use criterion::{Criterion, criterion_group};
use rustydb_memory::{MemoryContext, SharedContext};

const N: usize = 10_000;

fn mixed_sizes() -> Vec<usize> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..N)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            8 + (x % 505) as usize
        })
        .collect()
}

fn ours_u64(ctx: &mut MemoryContext) {
    for i in 0..N {
        black_box(ctx.alloc(i as u64));
    }
    ctx.reset();
}
fn bump_u64(b: &mut Bump) {
    for i in 0..N {
        black_box(b.alloc(i as u64));
    }
    b.reset();
}
fn ours_32(ctx: &mut MemoryContext) {
    for i in 0..N {
        black_box(ctx.alloc([i as u8; 32]));
    }
    ctx.reset();
}
fn bump_32(b: &mut Bump) {
    for i in 0..N {
        black_box(b.alloc([i as u8; 32]));
    }
    b.reset();
}
fn ours_mixed(ctx: &mut MemoryContext, sizes: &[usize]) {
    for &s in sizes {
        black_box(ctx.alloc_layout(Layout::from_size_align(s, 8).unwrap()));
    }
    ctx.reset();
}
fn bump_mixed(b: &mut Bump, sizes: &[usize]) {
    for &s in sizes {
        black_box(b.alloc_layout(Layout::from_size_align(s, 8).unwrap()));
    }
    b.reset();
}

fn bench(c: &mut Criterion) {
    let sizes = mixed_sizes();
    let mut g = c.benchmark_group("arena");
    let mut ctx = MemoryContext::root("bench");
    let mut bump = Bump::new();
    g.bench_function("u64x10k/ours", |b| b.iter(|| ours_u64(&mut ctx)));
    g.bench_function("u64x10k/bumpalo", |b| b.iter(|| bump_u64(&mut bump)));
    g.bench_function("bytes32x10k/ours", |b| b.iter(|| ours_32(&mut ctx)));
    g.bench_function("bytes32x10k/bumpalo", |b| b.iter(|| bump_32(&mut bump)));
    g.bench_function("mixed8-512x10k/ours", |b| {
        b.iter(|| ours_mixed(&mut ctx, &sizes))
    });
    g.bench_function("mixed8-512x10k/bumpalo", |b| {
        b.iter(|| bump_mixed(&mut bump, &sizes))
    });
    let root = MemoryContext::root("bench-root");
    g.bench_function("child_create_drop/ours", |b| {
        b.iter(|| black_box(root.child("q", Some(1 << 20))))
    });
    g.finish();
}

/// Median ns per operation of `f` (which performs `ops` operations), over `samples` runs.
fn median_ns(samples: usize, ops: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut v: Vec<f64> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as f64 / ops as f64
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn line(case: &str, ours: f64, peer_name: &str, peer: f64) {
    println!(
        "BENCH arena/{case} ours={ours:.2}ns {peer_name}={peer:.2}ns ratio={:.3}",
        ours / peer
    );
}

/// Alternates ours and the peer for several rounds and reports medians of medians.
fn pair(case: &str, mut ours: impl FnMut() -> f64, mut peer: impl FnMut() -> f64) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        a.push(ours());
        b.push(peer());
    }
    a.sort_by(|x, y| x.partial_cmp(y).unwrap());
    b.sort_by(|x, y| x.partial_cmp(y).unwrap());
    line(case, a[3], "bumpalo", b[3]);
}

fn bench_lines() {
    let sizes = mixed_sizes();
    let mut ctx = MemoryContext::root("bench-lines");
    let mut bump = Bump::new();
    pair(
        "alloc_u64",
        || median_ns(31, N, || ours_u64(&mut ctx)),
        || median_ns(31, N, || bump_u64(&mut bump)),
    );
    pair(
        "alloc_bytes32",
        || median_ns(31, N, || ours_32(&mut ctx)),
        || median_ns(31, N, || bump_32(&mut bump)),
    );
    pair(
        "alloc_mixed_8_512",
        || median_ns(31, N, || ours_mixed(&mut ctx, &sizes)),
        || median_ns(31, N, || bump_mixed(&mut bump, &sizes)),
    );
    // Reset after 10 000 allocations: time of the reset alone.
    let reset_ours = |ctx: &mut MemoryContext| {
        for i in 0..N {
            black_box(ctx.alloc(i as u64));
        }
        let t = Instant::now();
        ctx.reset();
        t.elapsed().as_nanos() as f64
    };
    let reset_bump = |b: &mut Bump| {
        for i in 0..N {
            black_box(b.alloc(i as u64));
        }
        let t = Instant::now();
        b.reset();
        t.elapsed().as_nanos() as f64
    };
    pair(
        "reset_after_10k",
        || {
            let mut v: Vec<f64> = (0..31).map(|_| reset_ours(&mut ctx)).collect();
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[15]
        },
        || {
            let mut v: Vec<f64> = (0..31).map(|_| reset_bump(&mut bump)).collect();
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[15]
        },
    );
    // Create and drop a child context (target ≤ 200 ns); the peer is creating
    // and dropping a fresh Bump, bumpalo's nearest equivalent.
    let root = MemoryContext::root("bench-root");
    pair(
        "child_create_drop",
        || {
            median_ns(31, 1000, || {
                (0..1000).for_each(|_| drop(black_box(root.child("q", Some(1 << 20)))))
            })
        },
        || {
            median_ns(31, 1000, || {
                (0..1000).for_each(|_| drop(black_box(Bump::new())))
            })
        },
    );
    // SharedContext from 2 threads vs a Mutex<Bump> from 2 threads.
    let shared = SharedContext::root("bench-shared", None);
    let mbump = std::sync::Mutex::new(Bump::new());
    pair(
        "shared_2_threads_u64",
        || {
            median_ns(5, 2 * N, || {
                std::thread::scope(|s| {
                    for _ in 0..2 {
                        s.spawn(|| {
                            for i in 0..N {
                                black_box(shared.try_alloc(i as u64).unwrap());
                            }
                        });
                    }
                });
            })
        },
        || {
            median_ns(5, 2 * N, || {
                std::thread::scope(|s| {
                    for _ in 0..2 {
                        s.spawn(|| {
                            for i in 0..N {
                                let b = mbump.lock().unwrap();
                                black_box(b.alloc(i as u64) as *mut u64);
                            }
                        });
                    }
                });
            })
        },
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
    bench_lines();
}
