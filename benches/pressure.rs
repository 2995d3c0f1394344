//! Pressure manager: how fast a threshold crossing reaches a callback, and what
//! the monitor thread costs.
//!
//! `cargo bench --bench pressure` (`-- --quick` for a short run). Prints
//! `BENCH pressure/<case> ours=… target=… ratio=…` lines (the targets of
//! BENCHMARKING.md are absolute: ≤ 1 ms, < 0.5 % of a core).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use rustydb_memory::pressure::{PressureLevel, PressureManager, UsageSource, signal};

fn now_ns(origin: Instant) -> u64 {
    origin.elapsed().as_nanos() as u64
}

/// Threshold crossing → callback start, through the allocator's wake-up path:
/// usage jumps above Critical, the allocator signal wakes the monitor, the
/// monitor samples and calls the reclaimer.
fn crossing_latency(rounds: usize) -> (f64, f64) {
    let origin = Instant::now();
    let usage = Arc::new(AtomicU64::new(100));
    let started = Arc::new(AtomicU64::new(0));
    let u = usage.clone();
    let pm = PressureManager::builder()
        .budget(1000)
        .usage_fn(move || u.load(Ordering::Relaxed))
        .interval(Duration::from_millis(100))
        .monitor(true)
        .build()
        .unwrap();
    let (s, u2) = (started.clone(), usage.clone());
    let _h = pm.register(PressureLevel::Critical, 0, "probe", move |_| {
        s.store(now_ns(origin), Ordering::SeqCst);
        u2.store(100, Ordering::Relaxed); // the reclaimer frees everything
        900
    });
    let mut lat = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        started.store(0, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(2));
        let t0 = now_ns(origin);
        usage.store(950, Ordering::Relaxed);
        signal::wake_monitors();
        while started.load(Ordering::SeqCst) == 0 {
            std::hint::spin_loop();
        }
        lat.push((started.load(Ordering::SeqCst) - t0) as f64);
        while pm.level() != PressureLevel::Normal {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (lat[lat.len() / 2], lat[lat.len() * 99 / 100])
}

fn cpu_ns() -> u64 {
    // SAFETY: rusage is plain integers; all-zero is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid rusage to fill.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU used by a monitor sampling RSS every 100 ms, as a fraction of one core.
fn monitor_overhead(seconds: u64) -> f64 {
    let pm = PressureManager::builder()
        .usage_source(UsageSource::ProcessRss)
        .interval(Duration::from_millis(100))
        .monitor(true)
        .build()
        .unwrap();
    let c0 = cpu_ns();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let frac = (cpu_ns() - c0) as f64 / t0.elapsed().as_nanos() as f64;
    assert!(pm.stats().checks >= seconds * 5);
    frac
}

fn bench(c: &mut Criterion) {
    let usage = Arc::new(AtomicU64::new(100));
    let u = usage.clone();
    let pm = PressureManager::builder()
        .budget(1000)
        .usage_fn(move || u.load(Ordering::Relaxed))
        .build()
        .unwrap();
    c.bench_function("pressure/check_now_normal", |b| {
        b.iter(|| black_box(pm.check_now()))
    });
    c.bench_function("pressure/admit", |b| {
        b.iter(|| black_box(pm.admit(4096)).is_ok())
    });
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let quick = std::env::args().any(|a| a == "--quick");
    let (median, p99) = crossing_latency(if quick { 50 } else { 300 });
    println!(
        "BENCH pressure/crossing_to_callback_median ours={median:.0}ns target=1000000ns ratio={:.4}",
        median / 1e6
    );
    println!(
        "BENCH pressure/crossing_to_callback_p99 ours={p99:.0}ns target=1000000ns ratio={:.4}",
        p99 / 1e6
    );
    let frac = monitor_overhead(if quick { 2 } else { 10 });
    println!(
        "BENCH pressure/monitor_overhead_100ms ours={:.4}%core target=0.5%core ratio={:.3}",
        frac * 100.0,
        frac * 100.0 / 0.5
    );
}
