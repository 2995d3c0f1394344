//! Soak run: `RustyAlloc` as the global allocator under several threads of random
//! allocation with checksums and cross-thread frees, for a given time. Reports
//! operations, errors (must be 0) and RSS over time (must stay bounded); exits
//! non-zero otherwise.
//!
//! `cargo run --release --example soak -- --seconds 60 --threads 2`
//!
//! Beside the allocator threads: a memory-context thread (session → transaction →
//! query contexts with limits, checkpoints, rewinds and resets, contents checked)
//! and a `MemoryManager` with its pressure manager at a tight budget (current RSS +
//! 384 MiB, about 1.4× the live set; RSS as the usage source, monitor thread on), whose reclaimers run as
//! the allocator threads push usage up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rustydb_memory::manager::MemoryManager;
use rustydb_memory::pressure::UsageSource;
use rustydb_memory::{Error, MemoryContext, RustyAlloc};

#[global_allocator]
static GLOBAL: RustyAlloc = RustyAlloc::new();

/// A block whose last 8 bytes hold a checksum of the rest.
struct Block(Vec<u8>);

impl Block {
    fn new(len: usize, seed: u64) -> Block {
        let len = len.max(9);
        let mut v = vec![0u8; len];
        let mut x = seed | 1;
        for b in &mut v[..len - 8] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let sum = checksum(&v[..len - 8]);
        v[len - 8..].copy_from_slice(&sum.to_le_bytes());
        Block(v)
    }

    fn ok(&self) -> bool {
        let n = self.0.len();
        checksum(&self.0[..n - 8]).to_le_bytes() == self.0[n - 8..]
    }
}

fn checksum(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x100_0000_01b3)
    })
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Sizes: mostly small, some medium, a few large (up to 4 MiB).
    fn size(&mut self) -> usize {
        let r = self.next();
        match r % 100 {
            0..=79 => (r >> 8) as usize % 1024 + 1,
            80..=97 => (r >> 8) as usize % (256 << 10) + 1,
            _ => (r >> 8) as usize % (4 << 20) + 1,
        }
    }
}

fn rss() -> u64 {
    rustydb_memory::sys::process_rss().unwrap_or(0)
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let seconds = arg("--seconds", 10);
    let threads = arg("--threads", 2).max(2) as usize;
    let max_live = 2000;
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));

    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..threads).map(|_| mpsc::channel::<Block>()).unzip();
    let mut handles = Vec::new();
    for (t, rx) in receivers.into_iter().enumerate() {
        let next = senders[(t + 1) % threads].clone();
        let (stop, ops, errors) = (stop.clone(), ops.clone(), errors.clone());
        handles.push(std::thread::spawn(move || {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
            let mut live: Vec<Block> = Vec::with_capacity(max_live);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Objects from the neighbour thread: verify and free here.
                while let Ok(b) = rx.try_recv() {
                    if !b.ok() {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                }
                let r = rng.next();
                if live.len() < max_live && !r.is_multiple_of(3) {
                    let size = rng.size();
                    live.push(Block::new(size, rng.next()));
                } else if !live.is_empty() {
                    let i = (r >> 8) as usize % live.len();
                    let b = live.swap_remove(i);
                    if !b.ok() {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    if r.is_multiple_of(7) {
                        let _ = next.send(b); // freed by the neighbour
                    }
                }
                if r.is_multiple_of(97) && !live.is_empty() {
                    // Grow one block through realloc, checking its contents survive.
                    let i = (r >> 16) as usize % live.len();
                    let keep = live[i].0.clone();
                    live[i].0.extend_from_slice(&[1, 2, 3]);
                    if live[i].0[..keep.len()] != keep[..] {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    live[i].0.truncate(keep.len());
                }
                n += 1;
                if n.is_multiple_of(1024) {
                    ops.fetch_add(1024, Ordering::Relaxed);
                }
            }
            drop(next);
            for b in live.drain(..) {
                if !b.ok() {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            while let Ok(b) = rx.try_recv() {
                if !b.ok() {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    drop(senders);

    // The memory-context worker.
    let ctx_ops = Arc::new(AtomicU64::new(0));
    {
        let (stop, errors, ctx_ops) = (stop.clone(), errors.clone(), ctx_ops.clone());
        handles.push(std::thread::spawn(move || {
            let mut rng = Rng(0xC0FF_EE00_D15E_A5E5);
            let mut session = MemoryContext::builder("soak-session")
                .limit(64 << 20)
                .build();
            while !stop.load(Ordering::Relaxed) {
                {
                    let txn = session.child("soak-txn", Some(16 << 20));
                    for q in 0..8u64 {
                        let query = txn.child("soak-query", Some(1 << 20));
                        let n = (rng.next() % 4000) as usize + 1;
                        match query.try_alloc_slice_copy(&vec![q as u8; n]) {
                            Ok(s) => {
                                if s.iter().any(|&b| b != q as u8) {
                                    errors.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Err(e) => {
                                eprintln!("context error: {e}");
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        // A runaway query must hit its own limit, not crash.
                        if !matches!(
                            query.try_alloc_slice_copy(&vec![0u8; 2 << 20]),
                            Err(Error::LimitExceeded { .. })
                        ) {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        ctx_ops.fetch_add(2, Ordering::Relaxed);
                    }
                }
                let cp = session.checkpoint();
                let keep = session.alloc_str("kept across the rewind").len();
                session.alloc_slice_copy(&[9u8; 10_000]);
                if session.rewind(&cp).is_err() || keep != 22 {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                if rng.next().is_multiple_of(16) {
                    session.reset();
                }
            }
        }));
    }

    // The memory manager with a tight budget.
    let budget = rss() + (384 << 20);
    let manager = MemoryManager::builder()
        .budget(budget)
        .usage_source(UsageSource::ProcessRss)
        .interval(Duration::from_millis(50))
        .build()
        .expect("memory manager");

    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1).min(Duration::from_secs(seconds)));
        let r = rss();
        samples.push(r);
        let s = GLOBAL.stats();
        let p = manager.pressure().stats();
        println!(
            "t={:>4}s ops={:>11} ctx_ops={:>8} errors={} rss={:>6} MiB mapped={:>6} MiB in_use={:>6} MiB segments={} pressure={} ({:.0}% of budget, {} releases)",
            start.elapsed().as_secs(),
            ops.load(Ordering::Relaxed),
            ctx_ops.load(Ordering::Relaxed),
            errors.load(Ordering::Relaxed),
            r >> 20,
            s.bytes_mapped >> 20,
            s.bytes_in_use >> 20,
            s.segments,
            p.level,
            p.usage as f64 * 100.0 / budget as f64,
            p.releases,
        );
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("soak thread panicked");
    }
    let freed = GLOBAL.purge();
    let errors = errors.load(Ordering::Relaxed);
    // Bounded: the live set is capped, so RSS in the last quarter must not exceed
    // the peak of the first half by more than 25 % + 64 MiB.
    let half = samples.len() / 2;
    let early = samples[..half.max(1)].iter().copied().max().unwrap_or(0);
    let late = samples[samples.len() * 3 / 4..]
        .iter()
        .copied()
        .max()
        .unwrap_or(0);
    let bounded = late <= early + early / 4 + (64 << 20);
    let ps = manager.pressure().stats();
    println!(
        "pressure: {} transitions, {} releases, {} MiB released by reclaimers, {} events in history",
        ps.transitions,
        ps.releases,
        ps.bytes_released >> 20,
        manager.history().len()
    );
    println!(
        "soak: {} ops, {} errors, rss early-peak {} MiB late-peak {} MiB, purge gave back {} MiB, rss after {} MiB: {}",
        ops.load(Ordering::Relaxed),
        errors,
        early >> 20,
        late >> 20,
        freed >> 20,
        rss() >> 20,
        if errors == 0 && bounded {
            "OK"
        } else {
            "FAILED"
        }
    );
    if errors != 0 || !bounded {
        std::process::exit(1);
    }
}
