//! Buffer pool benchmarks, side by side in one run.
//!
//! `cargo bench --bench buffer_pool -- --quick`
//!
//! 1. Hit ratios: every policy, run through a real pool (`MemDisk`; once as
//!    the pure policy, cooling stage off, and once as shipped, 2 % cooling) on
//!    generated traces of 1 M requests over 100 000 pages,
//!    beside Belady's OPT (computed here), LRU (`lru` crate) and the same
//!    policies in the `libcachesim` Python package on the same trace file
//!    (`scripts/libcachesim_hits.py`; `libcachesim=NA` if it is missing).
//! 2. Hit path: pin+unpin and optimistic read, 1 and 2 threads, beside a
//!    `Mutex<lru::LruCache>` and `quick_cache::sync::Cache`; then pin+unpin
//!    with each policy beside ARC's (`BP_BENCH=policies` runs only that).
//! 3. Miss path with the file backend: µs per miss beside a bare `pread` of
//!    the same pages, and dirty write-back per page beside `pwrite`.
//!
//! Every comparison prints one `BENCH buffer_pool/...` line. `BP_BENCH=hitpath`
//! (or `miss`, `hits`, comma-separated) runs only those sections.

use std::collections::{BinaryHeap, HashMap};
use std::hint::black_box;
use std::io::Write;
use std::num::NonZeroUsize;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Instant;

use criterion::{Criterion, criterion_group};
use rustydb_memory::buffer_pool::{BufferPool, FileDisk, MemDisk, Policy};

// ---------------------------------------------------------------------------
// Traces

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, alpha: f64) -> Self {
        let mut s = 0.0;
        let cdf = (1..=n)
            .map(|i| {
                s += (i as f64).powf(-alpha);
                s
            })
            .collect();
        Self { cdf }
    }
    fn sample(&self, r: &mut Rng) -> u64 {
        let u = r.unit() * self.cdf[self.cdf.len() - 1];
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1) as u64
    }
}

const PAGES: usize = 100_000;

fn zipf_trace(alpha: f64, len: usize, seed: u64) -> Vec<u64> {
    let z = Zipf::new(PAGES, alpha);
    let mut r = Rng(seed);
    (0..len).map(|_| z.sample(&mut r)).collect()
}

/// Zipf 0.9 in phases of 20 000 requests, each followed by a one-pass scan of
/// 5 000 pages never seen before.
fn zipf_scans(len: usize) -> Vec<u64> {
    let z = Zipf::new(PAGES, 0.9);
    let mut r = Rng(11);
    let mut t = Vec::with_capacity(len);
    let mut next_scan = PAGES as u64;
    while t.len() < len {
        for _ in 0..20_000 {
            t.push(z.sample(&mut r));
        }
        for _ in 0..5_000 {
            t.push(next_scan);
            next_scan += 1;
        }
    }
    t.truncate(len);
    t
}

fn loop_trace(pages: u64, len: usize) -> Vec<u64> {
    (0..len as u64).map(|i| i % pages).collect()
}

fn uniform(len: usize) -> Vec<u64> {
    let mut r = Rng(5);
    (0..len).map(|_| r.next() % PAGES as u64).collect()
}

/// Zipf 0.9 whose popular pages move by 20 000 ids every 200 000 requests.
fn shifting(len: usize) -> Vec<u64> {
    let z = Zipf::new(PAGES, 0.9);
    let mut r = Rng(13);
    (0..len)
        .map(|i| (z.sample(&mut r) + (i / 200_000) as u64 * 20_000) % PAGES as u64)
        .collect()
}

/// Index of each request's next use (`usize::MAX` if none).
fn next_use(trace: &[u64]) -> Vec<usize> {
    let mut last: HashMap<u64, usize> = HashMap::new();
    let mut nxt = vec![usize::MAX; trace.len()];
    for i in (0..trace.len()).rev() {
        if let Some(&j) = last.get(&trace[i]) {
            nxt[i] = j;
        }
        last.insert(trace[i], i);
    }
    nxt
}

/// libCacheSim's oracleGeneral format: u32 time, u64 id, u32 size, i64 next.
fn write_oracle(path: &Path, trace: &[u64], nxt: &[usize]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for (i, (&id, &n)) in trace.iter().zip(nxt).enumerate() {
        f.write_all(&(i as u32).to_le_bytes()).unwrap();
        f.write_all(&(id + 1).to_le_bytes()).unwrap();
        f.write_all(&1u32.to_le_bytes()).unwrap();
        let n = if n == usize::MAX { -1i64 } else { n as i64 };
        f.write_all(&n.to_le_bytes()).unwrap();
    }
}

// ---------------------------------------------------------------------------
// References: Belady's OPT and LRU

fn opt_hits(trace: &[u64], nxt: &[usize], cap: usize) -> u64 {
    let mut resident: HashMap<u64, usize> = HashMap::with_capacity(cap * 2);
    let mut heap: BinaryHeap<(usize, u64)> = BinaryHeap::new();
    let mut hits = 0;
    for (i, &id) in trace.iter().enumerate() {
        let n = nxt[i];
        if let Some(v) = resident.get_mut(&id) {
            hits += 1;
            *v = n;
        } else {
            if resident.len() >= cap {
                while let Some((when, victim)) = heap.pop() {
                    if resident.get(&victim) == Some(&when) {
                        resident.remove(&victim);
                        break;
                    }
                }
            }
            resident.insert(id, n);
        }
        heap.push((n, id));
        if heap.len() > 8 * cap + 1024 {
            heap = resident.iter().map(|(&p, &w)| (w, p)).collect();
        }
    }
    hits
}

/// Perfect LFU: evicts the resident page with the fewest references so far
/// (counting every past reference, also from before it was evicted; ties to
/// the least recent). An online policy with unbounded history — on an IRM
/// trace it is about the best any frequency estimate can do.
fn lfu_hits(trace: &[u64], cap: usize) -> u64 {
    let mut count: HashMap<u64, u64> = HashMap::new();
    let mut resident: HashMap<u64, (u64, usize)> = HashMap::with_capacity(cap * 2);
    let mut heap: BinaryHeap<std::cmp::Reverse<(u64, usize, u64)>> = BinaryHeap::new();
    let mut hits = 0;
    for (t, &id) in trace.iter().enumerate() {
        let c = count.entry(id).or_insert(0);
        *c += 1;
        let c = *c;
        if resident.contains_key(&id) {
            hits += 1;
        } else if resident.len() >= cap {
            while let Some(std::cmp::Reverse((vc, vt, v))) = heap.pop() {
                if resident.get(&v) == Some(&(vc, vt)) {
                    resident.remove(&v);
                    break;
                }
            }
        }
        resident.insert(id, (c, t));
        heap.push(std::cmp::Reverse((c, t, id)));
        if heap.len() > 8 * cap + 1024 {
            heap = resident
                .iter()
                .map(|(&p, &(c, t))| std::cmp::Reverse((c, t, p)))
                .collect();
        }
    }
    hits
}

fn lru_hits(trace: &[u64], cap: usize) -> u64 {
    let mut c = lru::LruCache::new(NonZeroUsize::new(cap).unwrap());
    let mut hits = 0;
    for &id in trace {
        if c.get(&id).is_some() {
            hits += 1;
        } else {
            c.put(id, ());
        }
    }
    hits
}

fn pool_hits(p: Policy, trace: &[u64], frames: usize, pages: u64, cooling: f64) -> f64 {
    let pool = BufferPool::builder()
        .frames(frames)
        .policy(p)
        .cooling(cooling)
        .disk(MemDisk::with_pages(4096, pages))
        .build()
        .unwrap();
    for &id in trace {
        black_box(pool.fetch_read(id).unwrap()[0]);
    }
    pool.stats().hit_ratio * 100.0
}

fn libcachesim(path: &Path, cap: usize) -> HashMap<String, f64> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/libcachesim_hits.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(path)
        .arg(cap.to_string())
        .output();
    let mut m = HashMap::new();
    if let Ok(o) = out {
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let mut it = line.split_whitespace();
            if let (Some(k), Some(v)) = (it.next(), it.next())
                && let Ok(v) = v.parse::<f64>()
            {
                m.insert(k.to_string(), v);
            }
        }
    }
    m
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("NA".into(), |v| format!("{v:.2}"))
}

fn hit_ratios(len: usize) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-traces");
    std::fs::create_dir_all(&dir).unwrap();
    let mut cases: Vec<(String, Vec<u64>, f64)> = Vec::new();
    for alpha in [0.6, 0.9, 1.2] {
        let t = zipf_trace(alpha, len, (alpha * 100.0) as u64);
        cases.push((format!("zipf{alpha}-1pct"), t.clone(), 0.01));
        cases.push((format!("zipf{alpha}-10pct"), t, 0.10));
    }
    cases.push(("zipf0.9-scans-10pct".into(), zipf_scans(len), 0.10));
    cases.push(("loop1.2x-10pct".into(), loop_trace(12_000, len), 0.10));
    cases.push(("uniform-10pct".into(), uniform(len), 0.10));
    cases.push(("shifting-10pct".into(), shifting(len), 0.10));

    let mut worst_shortfall: (f64, String) = (f64::NEG_INFINITY, String::new());
    let mut worst_default: (f64, String) = (f64::NEG_INFINITY, String::new());
    let mut best_gap: (f64, String) = (f64::NEG_INFINITY, String::new());
    for (name, trace, frac) in &cases {
        let cap = (PAGES as f64 * frac) as usize;
        let pages = trace.iter().max().unwrap() + 1;
        let nxt = next_use(trace);
        let n = trace.len() as f64;
        let opt = opt_hits(trace, &nxt, cap) as f64 / n * 100.0;
        let lru = lru_hits(trace, cap) as f64 / n * 100.0;
        let path = dir.join(format!("{name}.oracleGeneral"));
        write_oracle(&path, trace, &nxt);
        let theirs = libcachesim(&path, cap);
        let _ = std::fs::remove_file(&path);
        let lfu = lfu_hits(trace, cap) as f64 / n * 100.0;
        println!(
            "BENCH buffer_pool/hit/{name}/lru hit={lru:.2} libcachesim={} opt={opt:.2} libcachesim_opt={} perfect_lfu={lfu:.2} perfect_lfu_gap_closed={:.1}%",
            fmt(theirs.get("lru").copied()),
            fmt(theirs.get("opt").copied()),
            if opt > lru {
                (lfu - lru) / (opt - lru) * 100.0
            } else {
                0.0
            }
        );
        for p in Policy::ALL {
            // `hit`: the pure policy (no cooling stage), the twin of
            // libcachesim's; `hit_default`: the pool as shipped (2 % cooling).
            let ours = pool_hits(p, trace, cap, pages, 0.0);
            let shipped = pool_hits(p, trace, cap, pages, 0.02);
            let twin = theirs.get(p.as_str()).copied();
            let gap = if opt > lru {
                (ours - lru) / (opt - lru)
            } else {
                0.0
            };
            println!(
                "BENCH buffer_pool/hit/{name}/{p} hit={ours:.2} libcachesim={} opt={opt:.2} gap_closed={:.1}% diff={} hit_default={shipped:.2}",
                fmt(twin),
                gap * 100.0,
                twin.map_or("NA".into(), |t| format!("{:+.2}", ours - t))
            );
            if let Some(t) = twin {
                if t - ours > worst_shortfall.0 {
                    worst_shortfall = (t - ours, format!("{p} on {name}"));
                }
                if t - shipped > worst_default.0 {
                    worst_default = (t - shipped, format!("{p} on {name}"));
                }
            }
            if name == "zipf0.9-10pct" && gap > best_gap.0 {
                best_gap = (gap, p.to_string());
            }
        }
    }
    println!(
        "BENCH buffer_pool/hit/summary worst_below_libcachesim={:.2}pt ({}) target<=0.50pt worst_below_with_default_cooling={:.2}pt ({}) best_gap_closed_zipf0.9-10pct={:.1}% ({}) target>=50%",
        worst_shortfall.0.max(0.0),
        worst_shortfall.1,
        worst_default.0.max(0.0),
        worst_default.1,
        best_gap.0 * 100.0,
        best_gap.1
    );
}

// ---------------------------------------------------------------------------
// Hit path

const RESIDENT: u64 = 1000;

fn keys(n: usize, seed: u64) -> Vec<u64> {
    let mut r = Rng(seed);
    (0..n).map(|_| r.next() % RESIDENT).collect()
}

trait HitPath: Sync {
    fn get(&self, id: u64) -> u8;
}

struct Ours(BufferPool);
struct OursOptimistic(BufferPool);
struct MutexLru(Mutex<lru::LruCache<u64, Box<[u8]>>>);
struct Quick(quick_cache::sync::Cache<u64, Arc<[u8]>>);
/// The floor: a `fetch_add` and a `fetch_sub` on one padded word per page —
/// the two locked instructions any pin+unpin needs, and nothing else.
struct BareRmw(Vec<PaddedWord>);
#[repr(align(64))]
struct PaddedWord(std::sync::atomic::AtomicU64);

impl HitPath for Ours {
    #[inline]
    fn get(&self, id: u64) -> u8 {
        self.0.fetch_read(id).unwrap()[0]
    }
}
impl HitPath for OursOptimistic {
    #[inline]
    fn get(&self, id: u64) -> u8 {
        self.0
            .read_optimistic(id, |p| p.u8_at(0))
            .unwrap()
            .unwrap_or(0)
    }
}
impl HitPath for MutexLru {
    #[inline]
    fn get(&self, id: u64) -> u8 {
        self.0.lock().unwrap().get(&id).map_or(0, |v| v[0])
    }
}
impl HitPath for BareRmw {
    #[inline]
    fn get(&self, id: u64) -> u8 {
        use std::sync::atomic::Ordering::{Acquire, Release};
        let w = &self.0[id as usize].0;
        let v = w.fetch_add(1, Acquire);
        w.fetch_sub(1, Release);
        v as u8
    }
}
impl HitPath for Quick {
    #[inline]
    fn get(&self, id: u64) -> u8 {
        self.0.get(&id).map_or(0, |v| v[0])
    }
}

fn hit_pool() -> BufferPool {
    hit_pool_with(Policy::default())
}

fn hit_pool_with(policy: Policy) -> BufferPool {
    let pool = BufferPool::builder()
        .frames(1024)
        .policy(policy)
        .disk(MemDisk::with_pages(4096, RESIDENT))
        .build()
        .unwrap();
    for id in 0..RESIDENT {
        pool.fetch_write(id).unwrap()[0] = id as u8;
    }
    pool
}

fn peers() -> (MutexLru, Quick) {
    let mut l = lru::LruCache::new(NonZeroUsize::new(1024).unwrap());
    let q = quick_cache::sync::Cache::new(1024);
    for id in 0..RESIDENT {
        l.put(id, vec![id as u8; 4096].into_boxed_slice());
        q.insert(id, Arc::from(vec![id as u8; 4096]));
    }
    (MutexLru(Mutex::new(l)), Quick(q))
}

/// ns per operation per thread: `threads` threads each look up `keys`.
fn run_threads(c: &dyn HitPath, threads: usize, keys: &[Vec<u64>]) -> f64 {
    let barrier = Barrier::new(threads);
    let times: Vec<f64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, ks) = (&barrier, &keys[t]);
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    let mut acc = 0u8;
                    for &k in ks {
                        acc = acc.wrapping_add(c.get(k));
                    }
                    black_box(acc);
                    start.elapsed().as_nanos() as f64 / ks.len() as f64
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    times.iter().cloned().fold(0.0, f64::max)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn line(case: &str, ours: f64, peer: &str, theirs: f64, unit: &str) {
    println!(
        "BENCH buffer_pool/{case} ours={ours:.2}{unit} {peer}={theirs:.2}{unit} ratio={:.3}",
        ours / theirs
    );
}

fn hit_path(ops: usize, rounds: usize) {
    let pool = hit_pool();
    let ours = Ours(pool.clone());
    let opt = OursOptimistic(pool);
    let (mlru, quick) = peers();
    let ks: Vec<Vec<u64>> = (0..2).map(|t| keys(ops, 100 + t)).collect();
    let bare = BareRmw(
        (0..RESIDENT)
            .map(|_| PaddedWord(std::sync::atomic::AtomicU64::new(0)))
            .collect(),
    );
    let subjects: [&dyn HitPath; 5] = [&ours, &opt, &mlru, &quick, &bare];
    let mut res = vec![vec![Vec::new(); 5]; 2];
    for s in subjects {
        run_threads(s, 1, &ks); // warm-up
    }
    for _ in 0..rounds {
        for (ti, threads) in [1usize, 2].into_iter().enumerate() {
            for (i, s) in subjects.iter().enumerate() {
                res[ti][i].push(run_threads(*s, threads, &ks));
            }
        }
    }
    let m: Vec<Vec<f64>> = res
        .iter()
        .map(|r| r.iter().map(|v| median(v.clone())).collect())
        .collect();
    for (ti, t) in ["1t", "2t"].into_iter().enumerate() {
        line(
            &format!("pin_unpin_{t}"),
            m[ti][0],
            "mutex_lru",
            m[ti][2],
            "ns",
        );
        line(
            &format!("pin_unpin_{t}"),
            m[ti][0],
            "quick_cache",
            m[ti][3],
            "ns",
        );
        line(
            &format!("optimistic_{t}"),
            m[ti][1],
            "quick_cache",
            m[ti][3],
            "ns",
        );
        line(
            &format!("pin_unpin_{t}"),
            m[ti][0],
            "bare_rmw_pair",
            m[ti][4],
            "ns",
        );
    }
    // Throughput scaling from 1 to 2 threads: 2 × (ns at 1 thread) / (ns at 2).
    let scale = |i: usize| 2.0 * m[0][i] / m[1][i];
    println!(
        "BENCH buffer_pool/optimistic_scaling_1to2 ours={:.2}x quick_cache={:.2}x ratio={:.3} (target ours>=1.60x)",
        scale(1),
        scale(3),
        scale(1) / scale(3)
    );
    println!(
        "BENCH buffer_pool/pin_scaling_1to2 ours={:.2}x mutex_lru={:.2}x ratio={:.3}",
        scale(0),
        scale(2),
        scale(0) / scale(2)
    );
}

/// Pin+unpin per policy against ARC's, 1 thread, rounds alternating between
/// the policies (the hit path is the same; what differs is the policy's
/// `access`, applied in batches).
///
/// `BP_POLICIES=name,...` runs only those policies (no ratio lines unless
/// ARC is first), e.g. one at a time under callgrind for instruction counts:
/// `BP_BENCH=policies BP_POLICIES=adaptive BP_OPS=200000 valgrind
/// --tool=callgrind --toggle-collect='*run_threads*' <bench binary> --quick zzz`.
fn hit_path_policies(ops: usize, rounds: usize) {
    let mut list = vec![Policy::Arc, Policy::default()];
    for p in [
        Policy::Lru,
        Policy::Lirs,
        Policy::ClockPro,
        Policy::WTinyLfu,
        Policy::S3Fifo,
        Policy::Adaptive,
    ] {
        if !list.contains(&p) {
            list.push(p);
        }
    }
    if let Ok(only) = std::env::var("BP_POLICIES") {
        list = only.split(',').filter_map(|n| n.parse().ok()).collect();
        if list.is_empty() {
            return;
        }
    }
    let ops = std::env::var("BP_OPS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(ops);
    let pools: Vec<Ours> = list.iter().map(|&p| Ours(hit_pool_with(p))).collect();
    let ks: Vec<Vec<u64>> = vec![keys(ops, 7)];
    let mut res = vec![Vec::new(); list.len()];
    for p in &pools {
        run_threads(p, 1, &ks); // warm-up
    }
    for _ in 0..rounds {
        for (i, p) in pools.iter().enumerate() {
            res[i].push(run_threads(p, 1, &ks));
        }
    }
    let m: Vec<f64> = res.into_iter().map(median).collect();
    if list[0] != Policy::Arc {
        for (p, ns) in list.iter().zip(&m) {
            println!("pin_unpin_1t/{p}: {ns:.2} ns");
        }
        return;
    }
    for (i, p) in list.iter().enumerate().skip(1) {
        let tag = if *p == Policy::default() {
            format!("{p}(default)")
        } else {
            p.to_string()
        };
        line(&format!("pin_unpin_1t/{tag}"), m[i], "arc", m[0], "ns");
    }
}

// ---------------------------------------------------------------------------
// Miss path with the file backend

fn miss_path(pages: u64, misses: usize, direct: bool) {
    let tag = if direct { "direct" } else { "cached" };
    let path =
        std::env::temp_dir().join(format!("rustydb-bp-bench-{}-{tag}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let disk = match FileDisk::options()
        .page_size(4096)
        .direct(direct)
        .open(&path)
    {
        Ok(d) => d,
        Err(e) => {
            println!("BENCH buffer_pool/miss_file_{tag} skipped: {e}");
            return;
        }
    };
    let pool = BufferPool::builder()
        .frames(256)
        .disk(disk)
        .build()
        .unwrap();
    // Write the file through the pool: write-back per page beside pwrite.
    let t = Instant::now();
    for _ in 0..pages {
        pool.new_page().unwrap()[0] = 1;
    }
    pool.flush_all().unwrap();
    let ours_write = t.elapsed().as_nanos() as f64 / pages as f64 / 1000.0;
    let mut oo = std::fs::OpenOptions::new();
    oo.read(true).write(true);
    if direct {
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut oo, libc::O_DIRECT);
    }
    let raw = oo.open(&path).unwrap();
    let mut buf = AlignedPage::new();
    let t = Instant::now();
    for id in 0..pages {
        raw.write_all_at(buf.bytes(), (pages + 2 + id) * 4096)
            .unwrap();
    }
    raw.sync_data().unwrap();
    let raw_write = t.elapsed().as_nanos() as f64 / pages as f64 / 1000.0;
    line(
        &format!("writeback_per_page_{tag}"),
        ours_write,
        "pwrite",
        raw_write,
        "us",
    );
    println!(
        "BENCH buffer_pool/writeback_mbps_{tag} ours={:.0}MB/s pwrite={:.0}MB/s",
        4096.0 / ours_write,
        4096.0 / raw_write
    );
    // Random misses: the pool holds 256 of `pages` pages.
    let mut r = Rng(3);
    let seq: Vec<u64> = (0..misses).map(|_| r.next() % pages).collect();
    let raw_read = |seq: &[u64], buf: &mut AlignedPage| {
        let t = Instant::now();
        for &id in seq {
            raw.read_exact_at(buf.bytes_mut(), (id + 1) * 4096).unwrap();
        }
        t.elapsed().as_nanos() as f64 / seq.len() as f64 / 1000.0
    };
    let ours_read = |seq: &[u64]| {
        let before = pool.stats().misses;
        let t = Instant::now();
        for &id in seq {
            black_box(pool.fetch_read(id).unwrap()[0]);
        }
        let m = pool.stats().misses - before;
        (t.elapsed().as_nanos() as f64 / 1000.0, m)
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for chunk in seq.chunks(misses / 5) {
        let (us, m) = ours_read(chunk);
        a.push(us / m.max(1) as f64);
        b.push(raw_read(chunk, &mut buf));
    }
    let (ours, dev) = (median(a), median(b));
    line(&format!("miss_file_{tag}"), ours, "pread", dev, "us");
    println!(
        "BENCH buffer_pool/miss_beyond_device_{tag} ours={:.2}us (pool cost per miss beyond the pread)",
        ours - dev
    );
    // Dirty misses: every miss writes back a dirty victim first.
    let t = Instant::now();
    let before = pool.stats().dirty_writebacks;
    for &id in &seq[..misses / 2] {
        pool.fetch_write(id).unwrap()[1] = 2;
    }
    let wb = pool.stats().dirty_writebacks - before;
    let us = t.elapsed().as_nanos() as f64 / 1000.0 / (misses / 2) as f64;
    println!(
        "BENCH buffer_pool/dirty_miss_{tag} ours={us:.2}us pread+pwrite={:.2}us ratio={:.3} ({wb} write-backs)",
        dev + raw_write,
        us / (dev + raw_write)
    );
    drop(pool);
    let _ = std::fs::remove_file(&path);
}

struct AlignedPage(Box<[u8]>, usize);

impl AlignedPage {
    fn new() -> Self {
        let v = vec![7u8; 8192].into_boxed_slice();
        let off = v.as_ptr().align_offset(4096);
        Self(v, off)
    }
    fn bytes(&self) -> &[u8] {
        &self.0[self.1..self.1 + 4096]
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.0[self.1..self.1 + 4096]
    }
}

// ---------------------------------------------------------------------------

fn bench(c: &mut Criterion) {
    let ours = Ours(hit_pool());
    let (mlru, quick) = peers();
    let ks = keys(4096, 1);
    let mut g = c.benchmark_group("buffer_pool");
    g.bench_function("pin_unpin/ours", |b| {
        b.iter(|| ks.iter().map(|&k| ours.get(k) as u64).sum::<u64>())
    });
    g.bench_function("pin_unpin/mutex_lru", |b| {
        b.iter(|| ks.iter().map(|&k| mlru.get(k) as u64).sum::<u64>())
    });
    g.bench_function("pin_unpin/quick_cache", |b| {
        b.iter(|| ks.iter().map(|&k| quick.get(k) as u64).sum::<u64>())
    });
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    benches();
    Criterion::default().configure_from_args().final_summary();
    println!(
        "machine: {} cpus",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // BP_BENCH=hitpath,miss,hits selects sections (default: all).
    let sel = std::env::var("BP_BENCH").unwrap_or_else(|_| "hitpath,miss,hits".into());
    if sel.contains("hitpath") {
        hit_path(
            if quick { 1 << 20 } else { 1 << 22 },
            if quick { 7 } else { 11 },
        );
    }
    if sel.contains("hitpath") || sel.contains("policies") {
        hit_path_policies(
            if quick { 1 << 20 } else { 1 << 22 },
            if quick { 9 } else { 15 },
        );
    }
    if sel.contains("miss") {
        miss_path(
            if quick { 20_000 } else { 60_000 },
            if quick { 20_000 } else { 50_000 },
            false,
        );
        miss_path(
            if quick { 4_000 } else { 20_000 },
            if quick { 4_000 } else { 10_000 },
            true,
        );
    }
    if sel.contains("hits") {
        hit_ratios(1_000_000);
    }
}
