//! RustyAlloc gives memory back: the depot's bound, idle decay, the background
//! purger and idle threads' caches. `RustyAlloc` is this binary's global
//! allocator; every test that measures process-wide figures (RSS, `stats()`)
//! runs its body in a child process of this binary, so other tests' memory does
//! not count and options can be set through the environment.

#![cfg(not(rustydb_loom))]
// Tests: raw allocator calls are the point; every block is documented where used.
#![allow(clippy::undocumented_unsafe_blocks)]

use std::alloc::{Layout, alloc, dealloc};

use rustydb_memory::{AllocStats, RustyAlloc};

#[global_allocator]
static GLOBAL: RustyAlloc = RustyAlloc::new();

const MIB: usize = 1 << 20;

#[path = "common/process.rs"]
mod process;

use process::{in_child, run_in_child};

/// Hides a pointer from the optimiser.
fn opaque(p: *mut u8) -> *mut u8 {
    std::hint::black_box(p)
}

/// The index of the size class that serves `size` bytes.
fn class_index(s: &AllocStats, size: usize) -> usize {
    s.classes.iter().position(|c| c.size >= size).unwrap()
}

/// Allocates `bytes` of `size`-byte objects (each written), returns them.
fn fill(size: usize, bytes: usize) -> Vec<*mut u8> {
    let l = Layout::from_size_align(size, 8).unwrap();
    (0..bytes / size)
        .map(|i| {
            // SAFETY: a non-zero size.
            let p = unsafe { alloc(l) };
            assert!(!p.is_null());
            // SAFETY: `p` is the live block of `size` bytes just allocated.
            unsafe { p.write_bytes(i as u8, size) };
            opaque(p)
        })
        .collect()
}

fn free_all(size: usize, objs: Vec<*mut u8>) {
    let l = Layout::from_size_align(size, 8).unwrap();
    for p in objs {
        // SAFETY: each block was allocated with `l` by `fill` and is freed once.
        unsafe { dealloc(p, l) };
    }
}

/// Child half of `the_depot_is_bounded_and_frees_carve_no_magazines_beyond_it`.
#[test]
fn depot_bound_child() {
    if !in_child() {
        return;
    }
    // 64 MiB of 48-byte objects (a class nothing else here uses), freed on the
    // same thread: without a bound every full magazine would stay in the depot.
    const SIZE: usize = 48;
    let objs = fill(SIZE, 64 * MIB);
    let before = GLOBAL.stats();
    free_all(SIZE, objs);
    let after = GLOBAL.stats();
    let c = class_index(&after, SIZE);
    let depot_bytes = after.classes[c].depot_objects * after.classes[c].size;
    let carved = after.magazines.saturating_sub(before.magazines);
    println!(
        "depot {} MiB, {} magazines carved by the frees, {} slabs left",
        depot_bytes / MIB,
        carved,
        after.classes[c].slabs
    );
    // The bound is 16 MiB; one magazine of slack per thread in flight.
    assert!(
        depot_bytes <= 16 * MIB + 64 * SIZE,
        "depot holds {depot_bytes} B"
    );
    // 16 MiB / (48 B × 64 rounds) = 5 462 magazines; 64 MiB would need 21 846.
    assert!(
        carved <= 6_000,
        "{carved} magazines carved during the frees"
    );
    // The rest went home: their slabs were released.
    assert!(
        after.classes[c].slabs * 64 * 1024 <= 20 * MIB,
        "{} slabs of the class still held",
        after.classes[c].slabs
    );
}

#[test]
fn the_depot_is_bounded_and_frees_carve_no_magazines_beyond_it() {
    let out = run_in_child("depot_bound_child", &[]);
    assert!(out.contains("magazines carved"), "{out}");
}

/// The process's resident set in bytes (`VmRSS`).
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Objects handed to another thread to free.
struct Objects(Vec<*mut u8>);

// SAFETY: the pointers are heap blocks of the global allocator, which may be
// freed on any thread; the sending thread no longer uses them.
unsafe impl Send for Objects {}

/// The options the purger tests run under: a 100 ms dirty and 100 ms muzzy
/// decay, the background purger on.
const PURGER_ENV: &[(&str, &str)] = &[
    ("RUSTYDB_MEM_BACKGROUND", "1"),
    ("RUSTYDB_MEM_PURGE_DELAY_MS", "100"),
    ("RUSTYDB_MEM_MUZZY_DELAY_MS", "100"),
];

/// Child half of `idle_rss_falls_to_the_live_bytes_with_the_background_purger`.
#[test]
fn purger_rss_child() {
    if !in_child() {
        return;
    }
    let baseline = rss();
    // 100 MiB stay live (128-byte objects); 500 MiB of 96-byte objects are
    // freed by another thread, which then idles without returning.
    const LIVE: usize = 100 * MIB;
    let live = fill(128, LIVE);
    let freed = Objects(fill(96, 500 * MIB));
    let peak = rss();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let (quit_tx, quit_rx) = std::sync::mpsc::channel::<()>();
    let freer = std::thread::spawn(move || {
        let freed = freed;
        free_all(96, freed.0);
        done_tx.send(()).unwrap();
        // Idle: no allocator call until the parent has measured.
        quit_rx.recv().unwrap();
    });
    done_rx.recv().unwrap();
    // The main thread makes no allocator call while it waits: only the
    // purger can give the memory back.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let idle = rss();
    let live_bytes = LIVE + live.capacity() * size_of::<*mut u8>();
    let s = GLOBAL.stats();
    quit_tx.send(()).unwrap();
    freer.join().unwrap();
    println!(
        "baseline {} MiB, peak {} MiB, after 1.5 s idle {} MiB, live {} MiB, purger passes {}",
        baseline / MIB,
        peak / MIB,
        idle / MIB,
        live_bytes / MIB,
        s.purger_passes
    );
    assert!(s.purger_passes > 0, "the purger never ran");
    assert!(
        idle.saturating_sub(baseline) <= live_bytes + live_bytes / 10,
        "RSS {} MiB above the baseline for {} MiB live",
        (idle - baseline) / MIB,
        live_bytes / MIB
    );
    free_all(128, live);
}

#[test]
fn idle_rss_falls_to_the_live_bytes_with_the_background_purger() {
    let out = run_in_child("purger_rss_child", PURGER_ENV);
    assert!(out.contains("after 1.5 s idle"), "{out}");
}

/// Child half of `an_idle_threads_cached_rounds_are_reclaimed`.
#[test]
fn idle_thread_child() {
    if !in_child() {
        return;
    }
    // A class nothing else in this process uses.
    const SIZE: usize = 3000;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let (wake_tx, wake_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let (quit_tx, quit_rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        // Allocate and free: the freed rounds stay in this thread's magazines.
        let objs = fill(SIZE, 300 * SIZE);
        free_all(SIZE, objs);
        ready_tx.send(()).unwrap();
        wake_rx.recv().unwrap();
        // The next call, of another class, gives the taken rounds back.
        let b = std::hint::black_box(Box::new([7u8; 40]));
        drop(b);
        done_tx.send(()).unwrap();
        // Stay alive (an exiting thread flushes its cache anyway).
        quit_rx.recv().unwrap();
    });
    ready_rx.recv().unwrap();
    let s = GLOBAL.stats();
    let c = class_index(&s, SIZE);
    let cached_before = s.classes[c].thread_cached;
    // Idle for many purger ticks (25 ms each).
    std::thread::sleep(std::time::Duration::from_millis(500));
    wake_tx.send(()).unwrap();
    done_rx.recv().unwrap();
    // The depot trims and the empty slabs' release run on the next passes.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let s = GLOBAL.stats();
    println!(
        "thread-cached {} -> {}, slabs of the class {}, depot {}",
        cached_before, s.classes[c].thread_cached, s.classes[c].slabs, s.classes[c].depot_objects
    );
    assert!(cached_before > 0, "nothing was cached to reclaim");
    assert_eq!(s.classes[c].thread_cached, 0, "the rounds stayed cached");
    assert_eq!(s.classes[c].depot_objects, 0, "the depot was not trimmed");
    assert_eq!(s.classes[c].slabs, 0, "the class's slabs were not released");
    quit_tx.send(()).unwrap();
    t.join().unwrap();
}

#[test]
fn an_idle_threads_cached_rounds_are_reclaimed() {
    let out = run_in_child("idle_thread_child", PURGER_ENV);
    assert!(out.contains("thread-cached"), "{out}");
}
