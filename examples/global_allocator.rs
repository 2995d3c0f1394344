//! `RustyAlloc` as the process's global allocator under a multi-threaded workload.
//!
//! Worker threads build and drop `Vec`s, `String`s and `HashMap`s, grow vectors
//! through `realloc`, allocate large buffers (≥ 256 KiB, the large-object path), and
//! send objects through a channel to a sink thread that checks and frees them (so
//! objects are freed on a thread other than the one that allocated them). Every
//! result is checked. While the workers still hold their data, the allocator's
//! figures are printed; after they exit, again; then `purge()` hands free memory
//! back to the OS and what it gave back is printed.
//!
//! ```text
//! cargo run --release --example global_allocator
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Barrier, mpsc};
use std::thread;

use rustydb_memory::{AllocStats, RustyAlloc};

#[global_allocator]
static GLOBAL: RustyAlloc = RustyAlloc::new();

const WORKERS: usize = 4;
const ROUNDS: usize = 20;
const MESSAGES_PER_ROUND: usize = 2_000;

/// What the workers hand to the sink thread, with what it must find inside.
enum Msg {
    /// A string and the sum of its bytes.
    Text(String, u64),
    /// A small buffer filled with one byte value.
    Bytes(Vec<u8>, u8),
    /// A large buffer (≥ 256 KiB) filled with one byte value.
    Big(Vec<u8>, u8),
}

/// Figures a worker reports back, checked by `main`.
#[derive(Debug, Default)]
struct WorkerReport {
    sent: usize,
    maps_checked: usize,
    big_checked: usize,
    kept_strings: usize,
}

fn worker(id: usize, tx: mpsc::Sender<Msg>, ready: Arc<Barrier>, go: Arc<Barrier>) -> WorkerReport {
    let mut report = WorkerReport::default();
    for round in 0..ROUNDS {
        // Vec growth (realloc through the size classes and into the large path).
        let mut v: Vec<u64> = Vec::new();
        for i in 0..50_000u64 {
            v.push(i * id as u64 + round as u64);
        }
        let expect: u64 = (0..50_000u64).map(|i| i * id as u64 + round as u64).sum();
        assert_eq!(v.iter().sum::<u64>(), expect, "vector contents");

        // A HashMap of Strings to Vecs, built, checked and dropped.
        let mut map: HashMap<String, Vec<u32>> = HashMap::new();
        for k in 0..2_000u32 {
            map.insert(format!("w{id}-r{round}-k{k}"), (0..(k % 37)).collect());
        }
        for k in 0..2_000u32 {
            let e = &map[&format!("w{id}-r{round}-k{k}")];
            assert_eq!(e.len(), (k % 37) as usize, "map entry");
        }
        report.maps_checked += map.len();
        drop(map);

        // Objects freed on another thread.
        for m in 0..MESSAGES_PER_ROUND {
            let msg = if m % 2 == 0 {
                let s = format!(
                    "worker {id} round {round} message {m} {}",
                    "x".repeat(m % 200)
                );
                let sum = s.bytes().map(u64::from).sum();
                Msg::Text(s, sum)
            } else {
                let fill = (m % 251) as u8;
                Msg::Bytes(vec![fill; 16 + (m * 7) % 3000], fill)
            };
            tx.send(msg).expect("sink alive");
            report.sent += 1;
        }

        // Large buffers: one checked here, one freed by the sink.
        let fill = (id * 31 + round) as u8;
        let big = vec![fill; 300 << 10];
        assert!(big.iter().all(|&b| b == fill), "large buffer");
        let mut huge = vec![0u8; 1 << 20];
        huge[(1 << 20) - 1] = fill;
        huge.resize(3 << 20, fill); // grows through realloc on the large path
        assert_eq!(huge[(3 << 20) - 1], fill);
        report.big_checked += 2;
        tx.send(Msg::Big(big, fill)).expect("sink alive");
        report.sent += 1;
    }

    // Keep some data alive while `main` looks at the statistics.
    let kept: Vec<String> = (0..20_000).map(|i| format!("kept-{id}-{i}")).collect();
    ready.wait();
    go.wait();
    assert!(
        kept.iter()
            .enumerate()
            .all(|(i, s)| *s == format!("kept-{id}-{i}"))
    );
    report.kept_strings = kept.len();
    report
}

fn sink(rx: mpsc::Receiver<Msg>) -> usize {
    let mut n = 0;
    for msg in rx {
        match msg {
            Msg::Text(s, sum) => assert_eq!(s.bytes().map(u64::from).sum::<u64>(), sum),
            Msg::Bytes(b, fill) | Msg::Big(b, fill) => assert!(b.iter().all(|&x| x == fill)),
        }
        n += 1;
    }
    n
}

fn mib(bytes: impl Into<u64>) -> String {
    format!("{:.2} MiB", bytes.into() as f64 / (1u64 << 20) as f64)
}

fn print_stats(title: &str, s: &AllocStats) {
    println!("── {title}");
    println!(
        "  segments {:>4}   bytes mapped {:>11}   in use {:>11}   cached {:>11}",
        s.segments,
        mib(s.bytes_mapped as u64),
        mib(s.bytes_in_use as u64),
        mib(s.bytes_cached as u64)
    );
    println!(
        "  units in use {:>4}   thread caches {:>3}   magazines {:>5}   depot trims {:>3}",
        s.units_in_use, s.thread_caches, s.magazines, s.depot_trims
    );
    println!(
        "  large: live {:>3}, {:>11} in use, {:>11} mapped",
        s.large.live,
        mib(s.large.bytes_in_use as u64),
        mib(s.large.bytes_mapped as u64)
    );
    println!(
        "  purges {:>5}   purged {:>11}   unmapped segments {:>3}",
        s.purges,
        mib(s.purged_bytes),
        s.unmapped_segments
    );
    let mut busiest: Vec<_> = s.classes.iter().filter(|c| c.live_objects > 0).collect();
    busiest.sort_by_key(|c| std::cmp::Reverse(c.live_objects));
    println!(
        "  busiest classes:      size  live objects  slabs  thread-cached  depot (full/empty mags)"
    );
    for c in busiest.iter().take(8) {
        println!(
            "                   {:>8}  {:>12}  {:>5}  {:>13}  {:>6} ({}/{})",
            c.size,
            c.live_objects,
            c.slabs,
            c.thread_cached,
            c.depot_objects,
            c.depot_full,
            c.depot_empty
        );
    }
    let mut cached: Vec<_> = s
        .classes
        .iter()
        .filter(|c| c.thread_cached + c.depot_objects > 0)
        .collect();
    cached.sort_by_key(|c| std::cmp::Reverse((c.thread_cached + c.depot_objects) * c.size));
    let top: Vec<String> = cached
        .iter()
        .take(4)
        .map(|c| {
            format!(
                "{} B × {} = {}",
                c.size,
                c.thread_cached + c.depot_objects,
                mib(((c.thread_cached + c.depot_objects) * c.size) as u64)
            )
        })
        .collect();
    if !top.is_empty() {
        println!("  largest caches: {}", top.join(", "));
    }
}

fn main() {
    let (tx, rx) = mpsc::channel::<Msg>();
    let sink = thread::spawn(move || sink(rx));
    let ready = Arc::new(Barrier::new(WORKERS + 1));
    let go = Arc::new(Barrier::new(WORKERS + 1));
    let workers: Vec<_> = (0..WORKERS)
        .map(|id| {
            let (tx, ready, go) = (tx.clone(), ready.clone(), go.clone());
            thread::spawn(move || worker(id, tx, ready, go))
        })
        .collect();
    drop(tx);

    // main keeps a map of its own alive through the whole run.
    let own: HashMap<u64, String> = (0..10_000u64).map(|i| (i, i.to_string())).collect();

    ready.wait();
    let during = GLOBAL.stats();
    print_stats(&format!("while {WORKERS} workers hold their data"), &during);
    assert!(
        during.segments > 0 && during.bytes_mapped > 0,
        "segments mapped"
    );
    assert!(during.thread_caches > WORKERS, "one cache per live thread");
    assert!(during.magazines > 0, "magazines carved");
    assert!(
        during.classes.iter().map(|c| c.live_objects).sum::<usize>() >= WORKERS * 20_000,
        "the workers' kept strings are live objects"
    );
    go.wait();

    let reports: Vec<WorkerReport> = workers
        .into_iter()
        .map(|h| h.join().expect("worker"))
        .collect();
    let received = sink.join().expect("sink");
    let sent: usize = reports.iter().map(|r| r.sent).sum();
    assert_eq!(received, sent, "every message arrived and was checked");
    assert_eq!(sent, WORKERS * ROUNDS * (MESSAGES_PER_ROUND + 1));
    for r in &reports {
        assert_eq!(r.maps_checked, ROUNDS * 2_000);
        assert_eq!(r.big_checked, ROUNDS * 2);
        assert_eq!(r.kept_strings, 20_000);
    }
    assert!(own.iter().all(|(k, v)| *v == k.to_string()));
    println!(
        "checked: {sent} objects freed on another thread, {} map entries, {} large buffers",
        reports.iter().map(|r| r.maps_checked).sum::<usize>(),
        reports.iter().map(|r| r.big_checked).sum::<usize>()
    );

    let after = GLOBAL.stats();
    print_stats("after the workers exited (main's map still live)", &after);

    let given_back = GLOBAL.purge();
    let purged = GLOBAL.stats();
    println!(
        "purge(): gave back {} to the OS; bytes mapped {} → {}, segments {} → {}",
        mib(given_back),
        mib(after.bytes_mapped as u64),
        mib(purged.bytes_mapped as u64),
        after.segments,
        purged.segments
    );
    print_stats("after purge()", &purged);
    assert!(
        purged.bytes_mapped <= after.bytes_mapped,
        "purge never maps more"
    );
    drop(own);
}
