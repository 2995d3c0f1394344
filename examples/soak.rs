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
//!
//! And a buffer pool on a file (32 frames of 4 KiB over 512 pages, ARC, a
//! background flusher; registered with the manager, so its clean frames are a
//! reclaimer): a writer thread keeps a model of every page's version and
//! checks each page it fetches against it (so evictions, write-backs and
//! re-reads must keep contents), a reader thread checks checksums through
//! pinned and optimistic reads. At the end the pool is dropped and reopened on
//! the same file and every page must read back at its last version.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rustydb_memory::buffer_pool::{BufferPool, FileDisk, Policy};
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

/// Pages of the soak's buffer pool on disk, and its frames.
const BP_PAGES: u64 = 512;
const BP_FRAMES: usize = 32;

/// Fills a page payload for `(page, version)`: both in the first 16 bytes,
/// bytes derived from them, a checksum of the rest in the last 8.
fn fill_page(buf: &mut [u8], page: u64, version: u64) {
    let n = buf.len();
    buf[..8].copy_from_slice(&page.to_le_bytes());
    buf[8..16].copy_from_slice(&version.to_le_bytes());
    let mut x = (page << 32 ^ version) | 1;
    for b in &mut buf[16..n - 8] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let sum = checksum(&buf[..n - 8]);
    buf[n - 8..].copy_from_slice(&sum.to_le_bytes());
}

/// `(page, version)` of a page payload whose checksum holds.
fn check_page(buf: &[u8]) -> Option<(u64, u64)> {
    let n = buf.len();
    let mut w = [0u8; 8];
    w.copy_from_slice(&buf[n - 8..]);
    if checksum(&buf[..n - 8]) != u64::from_le_bytes(w) {
        return None;
    }
    w.copy_from_slice(&buf[..8]);
    let page = u64::from_le_bytes(w);
    w.copy_from_slice(&buf[8..16]);
    Some((page, u64::from_le_bytes(w)))
}

fn bp_build(path: &std::path::Path) -> BufferPool {
    BufferPool::builder()
        .frames(BP_FRAMES)
        .page_size(4096)
        .policy(Policy::Arc)
        .disk(FileDisk::open(path, 4096).expect("soak: open the buffer pool's file"))
        .background_flusher(Duration::from_millis(20))
        .build()
        .expect("soak: build the buffer pool")
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

    // The buffer pool on a file, its writer and its reader.
    let bp_path = std::env::temp_dir().join(format!("rustydb-soak-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&bp_path);
    let pool = Arc::new(bp_build(&bp_path));
    manager.register_buffer_pool(&pool);
    let versions: Vec<u64> = {
        let mut v = Vec::new();
        for p in 0..BP_PAGES {
            let mut g = pool.new_page().expect("soak: new page");
            assert_eq!(g.page_id(), p);
            fill_page(&mut g, p, 0);
            v.push(0);
        }
        v
    };
    let bp_ops = Arc::new(AtomicU64::new(0));
    let bp_errors = Arc::new(AtomicU64::new(0));
    let bp_writer = {
        let (stop, pool, bp_ops, bp_errors) = (
            stop.clone(),
            pool.clone(),
            bp_ops.clone(),
            bp_errors.clone(),
        );
        std::thread::spawn(move || {
            let mut versions = versions;
            let mut rng = Rng(0xB0FF_E2B0_0F00_0001);
            let bad = |what: &str, e: &dyn std::fmt::Display| {
                eprintln!("buffer pool {what}: {e}");
                bp_errors.fetch_add(1, Ordering::Relaxed);
            };
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = rng.next();
                // Skewed: a quarter of the pages take most accesses, so some
                // stay hot while the rest are evicted and read back.
                let page = if r.is_multiple_of(4) {
                    (r >> 8) % BP_PAGES
                } else {
                    (r >> 8) % (BP_PAGES / 4)
                };
                let want = (page, versions[page as usize]);
                if r.is_multiple_of(3) {
                    match pool.fetch_write(page) {
                        Ok(mut g) => {
                            if check_page(&g) != Some(want) {
                                bad("write", &format!("page {page} is not at {want:?}"));
                            }
                            versions[page as usize] += 1;
                            fill_page(&mut g, page, versions[page as usize]);
                        }
                        Err(e) => bad("fetch_write", &e),
                    }
                } else {
                    match pool.fetch_read(page) {
                        Ok(g) => {
                            if check_page(&g) != Some(want) {
                                bad("read", &format!("page {page} is not at {want:?}"));
                            }
                        }
                        Err(e) => bad("fetch_read", &e),
                    }
                }
                if r.is_multiple_of(5000) {
                    if let Err(e) = pool.flush_all() {
                        bad("flush_all", &e);
                    }
                } else if r % 5000 == 1 {
                    pool.shrink_clean(8 << 12);
                }
                n += 1;
                if n.is_multiple_of(256) {
                    bp_ops.fetch_add(256, Ordering::Relaxed);
                }
            }
            versions
        })
    };
    {
        let (stop, pool, bp_ops, bp_errors) = (
            stop.clone(),
            pool.clone(),
            bp_ops.clone(),
            bp_errors.clone(),
        );
        handles.push(std::thread::spawn(move || {
            let mut rng = Rng(0xB0FF_E2B0_0F00_0002);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = rng.next();
                let page = (r >> 8) % BP_PAGES;
                let ok = if r.is_multiple_of(2) {
                    pool.fetch_read(page)
                        .map(|g| check_page(&g).is_some_and(|(p, _)| p == page))
                } else {
                    // Torn values are possible on a failed try; only the
                    // validated result is returned.
                    pool.read_optimistic(page, |v| v.to_vec())
                        .map(|b| check_page(&b).is_some_and(|(p, _)| p == page))
                };
                match ok {
                    Ok(true) => {}
                    Ok(false) => {
                        eprintln!("buffer pool reader: page {page} fails its checksum");
                        bp_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("buffer pool reader: page {page}: {e}");
                        bp_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                n += 1;
                if n.is_multiple_of(256) {
                    bp_ops.fetch_add(256, Ordering::Relaxed);
                }
            }
        }));
    }

    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1).min(Duration::from_secs(seconds)));
        let r = rss();
        samples.push(r);
        let s = GLOBAL.stats();
        let p = manager.pressure().stats();
        let b = pool.stats();
        println!(
            "t={:>4}s ops={:>11} ctx_ops={:>8} bp_ops={:>9} (evictions {}, write-backs {}, disk reads {}) errors={} rss={:>6} MiB mapped={:>6} MiB in_use={:>6} MiB segments={} pressure={} ({:.0}% of budget, {} releases)",
            start.elapsed().as_secs(),
            ops.load(Ordering::Relaxed),
            ctx_ops.load(Ordering::Relaxed),
            bp_ops.load(Ordering::Relaxed),
            b.evictions,
            b.dirty_writebacks,
            b.disk_reads,
            errors.load(Ordering::Relaxed) + bp_errors.load(Ordering::Relaxed),
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
    let versions = bp_writer.join().expect("soak buffer pool writer panicked");
    // Reopen: drop the pool (it writes its dirty pages back), open the file
    // again, and every page must be at its last version.
    let bs = pool.stats();
    drop(pool);
    let reopened = bp_build(&bp_path);
    for (page, &v) in versions.iter().enumerate() {
        let page = page as u64;
        match reopened.fetch_read(page) {
            Ok(g) if check_page(&g) == Some((page, v)) => {}
            Ok(_) => {
                eprintln!("buffer pool after reopen: page {page} is not at version {v}");
                bp_errors.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                eprintln!("buffer pool after reopen: page {page}: {e}");
                bp_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    drop(reopened);
    let _ = std::fs::remove_file(&bp_path);
    let bp_errors = bp_errors.load(Ordering::Relaxed);
    println!(
        "buffer pool: {} ops, {} errors, {} evictions, {} dirty write-backs, {} flusher writes, {} disk reads, {} KiB released, {} pages verified after reopen",
        bp_ops.load(Ordering::Relaxed),
        bp_errors,
        bs.evictions,
        bs.dirty_writebacks,
        bs.flusher_writes,
        bs.disk_reads,
        bs.released_bytes >> 10,
        versions.len()
    );
    let freed = GLOBAL.purge();
    let errors = errors.load(Ordering::Relaxed) + bp_errors;
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
