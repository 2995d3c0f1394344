//! `RustyAlloc` as this test binary's `#[global_allocator]`: every allocation of
//! the harness, the collections and the threads below goes through it.
//!
//! Tests that measure process-wide figures (`stats()`, RSS, thread-cache counts)
//! take [`exclusive`]; all others take [`shared`], so they may run together but
//! never beside a measuring test.

#![cfg(not(rustydb_loom))]
// Tests: raw allocator calls are the point; every block is documented where used.
#![allow(clippy::undocumented_unsafe_blocks)]

use std::alloc::{Layout, alloc, alloc_zeroed, dealloc, realloc};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use rustydb_memory::{AllocStats, RustyAlloc};

#[global_allocator]
static GLOBAL: RustyAlloc = RustyAlloc::new();

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

// ───────────────────────────── helpers ─────────────────────────────

static GATE: RwLock<()> = RwLock::new(());

/// For tests that only need the allocator to be correct.
fn shared() -> RwLockReadGuard<'static, ()> {
    GATE.read().unwrap_or_else(|e| e.into_inner())
}

/// For tests that measure process-wide figures: no other test runs meanwhile.
fn exclusive() -> RwLockWriteGuard<'static, ()> {
    let g = GATE.write().unwrap_or_else(|e| e.into_inner());
    // Let the threads of tests that just finished complete their exit.
    thread::sleep(Duration::from_millis(50));
    g
}

/// SplitMix64: small, fast, deterministic.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// A size skewed towards small objects, with rare medium and large ones.
    fn size(&mut self) -> usize {
        match self.below(1000) {
            0..=699 => 1 + self.below(256),
            700..=949 => 257 + self.below(4 * KIB),
            950..=995 => 4 * KIB + self.below(60 * KIB),
            _ => 200 * KIB + self.below(200 * KIB), // straddles the 256 KiB large threshold
        }
    }
}

/// The byte at index `i` of the pattern of object `id`: depends on both, so a
/// block swapped with, shifted into or overwritten by another is noticed.
#[inline]
fn pat(id: u64, i: usize) -> u8 {
    let x = id.wrapping_mul(0x9E37_79B9).wrapping_add(i as u64 / 251);
    (x as u8) ^ (i as u8).wrapping_mul(31) ^ ((x >> 8) as u8)
}

fn filled(id: u64, len: usize) -> Box<[u8]> {
    (0..len).map(|i| pat(id, i)).collect()
}

fn check_filled(id: u64, data: &[u8]) -> bool {
    data.iter().enumerate().all(|(i, &b)| b == pat(id, i))
}

/// A heap object with a self-describing, verifiable content.
struct Obj {
    id: u64,
    data: Box<[u8]>,
}

impl Obj {
    fn new(id: u64, len: usize) -> Self {
        Self {
            id,
            data: filled(id, len),
        }
    }
    #[track_caller]
    fn check(&self) {
        assert!(
            check_filled(self.id, &self.data),
            "object {} ({} B at {:p}) corrupted",
            self.id,
            self.data.len(),
            self.data.as_ptr()
        );
    }
}

/// `VmRSS` from `/proc/self/status`, in bytes.
fn vm_rss() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kb: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS value");
    kb * KIB
}

/// Hides a pointer from the optimiser. LLVM knows what `__rust_alloc`,
/// `__rust_alloc_zeroed`, `__rust_realloc` and `__rust_dealloc` do and may fold
/// content checks (a fresh `alloc_zeroed` block "is" zero, a block just copied
/// from `src` "equals" `src`), fold address comparisons with freed pointers, or
/// drop stores to a block that is freed next. Passing the pointer through
/// `black_box` after each allocation and each write makes every check real.
#[inline(always)]
fn opaque(p: *mut u8) -> *mut u8 {
    std::hint::black_box(p)
}

/// Index of the size class whose object size is exactly `size`.
fn class_index(s: &AllocStats, size: usize) -> usize {
    s.classes
        .iter()
        .position(|c| c.size == size)
        .unwrap_or_else(|| panic!("no class of exactly {size} B"))
}

// ───────────────────────── concurrency ─────────────────────────

/// One thread's churn over the std collections; every value's content is a
/// function of its key, checked whenever it is read, replaced or removed.
fn churn(t: u64, rounds: usize) {
    let mut rng = Rng::new(t + 1);
    let mut vecs: Vec<(u64, Vec<u64>)> = Vec::new();
    let mut strings: Vec<(u64, String)> = Vec::new();
    let mut map: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut tree: BTreeMap<String, Box<[u32]>> = BTreeMap::new();

    let vec_ok = |k: u64, v: &[u64]| v.iter().enumerate().all(|(i, &x)| x == k ^ i as u64);
    let string_for = |k: u64| {
        let mut s = format!("t{t}-k{k}:");
        for i in 0..(k % 97) {
            s.push(char::from(b'a' + ((k + i) % 26) as u8));
        }
        s
    };
    let map_val = |k: u64| -> Vec<u8> { (0..(k % 3000) as usize).map(|i| pat(k, i)).collect() };
    let tree_key = |k: u64| format!("{t:02}/{k:010}");
    let tree_val = |k: u64| -> Box<[u32]> { (0..(k % 700) as u32).map(|i| k as u32 ^ i).collect() };

    for round in 0..rounds {
        let k = rng.next() % 100_000;
        match rng.below(10) {
            // Vec grown element by element (realloc up), then shrunk (realloc down).
            0 | 1 => {
                let n = rng.below(600);
                let mut v = Vec::new();
                for i in 0..n {
                    v.push(k ^ i as u64);
                }
                if rng.below(3) == 0 {
                    v.truncate(n / 3);
                    v.shrink_to_fit();
                }
                vecs.push((k, v));
                if vecs.len() > 300 {
                    let (k, v) = vecs.swap_remove(rng.below(vecs.len()));
                    assert!(vec_ok(k, &v), "thread {t}: vec {k} corrupted");
                }
            }
            2 | 3 => {
                strings.push((k, string_for(k)));
                if strings.len() > 400 {
                    let (k, s) = strings.swap_remove(rng.below(strings.len()));
                    assert_eq!(s, string_for(k), "thread {t}: string corrupted");
                }
            }
            4..=6 => {
                let k = k % 2000;
                if let Some(old) = map.insert(k, map_val(k)) {
                    assert_eq!(old, map_val(k), "thread {t}: map value {k} corrupted");
                }
                let probe = rng.next() % 2000;
                if rng.below(2) == 0 {
                    if let Some(v) = map.remove(&probe) {
                        assert_eq!(v, map_val(probe));
                    }
                } else if let Some(v) = map.get(&probe) {
                    assert_eq!(*v, map_val(probe));
                }
            }
            _ => {
                let k = k % 3000;
                if let Some(old) = tree.insert(tree_key(k), tree_val(k)) {
                    assert_eq!(old, tree_val(k), "thread {t}: tree value {k} corrupted");
                }
                if rng.below(2) == 0 {
                    let probe = tree_key(rng.next() % 3000);
                    if let Some((key, v)) = tree.remove_entry(&probe) {
                        let k: u64 = key.rsplit('/').next().unwrap().parse().unwrap();
                        assert_eq!(v, tree_val(k));
                    }
                }
            }
        }
        if round % 1000 == 999 {
            // A full audit now and then.
            assert!(vecs.iter().all(|(k, v)| vec_ok(*k, v)));
            assert!(strings.iter().all(|(k, s)| *s == string_for(*k)));
            assert!(map.iter().all(|(k, v)| *v == map_val(*k)));
            for (key, v) in &tree {
                let k: u64 = key.rsplit('/').next().unwrap().parse().unwrap();
                assert_eq!(*v, tree_val(k));
            }
        }
    }
    assert!(vecs.iter().all(|(k, v)| vec_ok(*k, v)));
    assert!(strings.iter().all(|(k, s)| *s == string_for(*k)));
    assert!(map.iter().all(|(k, v)| *v == map_val(*k)));
}

#[test]
fn eight_threads_churn_collections_with_content_checks() {
    let _g = shared();
    let handles: Vec<_> = (0..8)
        .map(|t| thread::spawn(move || churn(t, 12_000)))
        .collect();
    for h in handles {
        h.join().expect("churn thread failed");
    }
}

/// What producers send: objects of many classes (and a few large ones), all
/// freed by the consumer that receives them.
enum Msg {
    Bytes(Obj),
    Words(u64, Box<[u64]>),
    Text(u64, String),
    /// A burst of same-class objects, so the consumer's magazines fill and go to
    /// the depot while the producer's run empty. (Boxed on purpose: 64 separate
    /// 48 B objects, not one 3 KiB buffer.)
    #[allow(clippy::vec_box)]
    Batch(u64, Vec<Box<[u8; 48]>>),
}

fn text_for(id: u64) -> String {
    format!("message {id} {}", "·".repeat((id % 40) as usize))
}

#[test]
fn objects_sent_through_channels_are_checked_and_freed_by_the_consumer() {
    let _g = shared();
    const PRODUCERS: u64 = 4;
    const CONSUMERS: usize = 3;
    const PER_PRODUCER: u64 = 25_000;

    let (txs, rxs): (Vec<_>, Vec<_>) = (0..CONSUMERS)
        .map(|_| mpsc::sync_channel::<Msg>(512))
        .unzip();
    let consumers: Vec<_> = rxs
        .into_iter()
        .map(|rx| {
            thread::spawn(move || {
                let mut seen = Vec::new();
                for m in rx {
                    let id = match m {
                        Msg::Bytes(o) => {
                            o.check();
                            o.id
                        }
                        Msg::Words(id, w) => {
                            assert_eq!(w.len() as u64, id % 1500 + 1);
                            assert!(w.iter().enumerate().all(|(i, &x)| x == id * 7 + i as u64));
                            id
                        }
                        Msg::Text(id, s) => {
                            assert_eq!(s, text_for(id));
                            id
                        }
                        Msg::Batch(id, b) => {
                            assert_eq!(b.len(), 64);
                            for (i, x) in b.iter().enumerate() {
                                assert!(x.iter().all(|&v| v == (id as u8) ^ (i as u8)));
                            }
                            id
                        }
                    };
                    seen.push(id);
                }
                seen
            })
        })
        .collect();

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let txs = txs.clone();
            thread::spawn(move || {
                let mut rng = Rng::new(100 + p);
                for n in 0..PER_PRODUCER {
                    let id = p * PER_PRODUCER + n;
                    let m = match rng.below(4) {
                        0 => Msg::Bytes(Obj::new(id, rng.size())),
                        1 => Msg::Words(id, (0..=id % 1500).map(|i| id * 7 + i).collect()),
                        2 => Msg::Text(id, text_for(id)),
                        _ => Msg::Batch(
                            id,
                            (0..64)
                                .map(|i| Box::new([(id as u8) ^ (i as u8); 48]))
                                .collect(),
                        ),
                    };
                    txs[rng.below(CONSUMERS)].send(m).expect("consumer alive");
                }
            })
        })
        .collect();
    drop(txs);
    for p in producers {
        p.join().expect("producer failed");
    }
    let mut all: Vec<u64> = consumers
        .into_iter()
        .flat_map(|c| c.join().expect("consumer failed"))
        .collect();
    all.sort_unstable();
    assert_eq!(all.len() as u64, PRODUCERS * PER_PRODUCER);
    assert!(
        all.iter().enumerate().all(|(i, &id)| id == i as u64),
        "every message arrives exactly once"
    );
}

#[test]
fn mstress_threads_come_and_go_while_their_objects_live_on() {
    let _g = shared();
    const SLOTS: usize = 4096;
    const ROUNDS: u64 = 30;
    const THREADS: u64 = 6;
    const OPS: usize = 2000;

    let slots: Arc<Vec<Mutex<Option<Obj>>>> =
        Arc::new((0..SLOTS).map(|_| Mutex::new(None)).collect());
    let next_id = Arc::new(AtomicUsize::new(1));
    for round in 0..ROUNDS {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let slots = Arc::clone(&slots);
                let next_id = Arc::clone(&next_id);
                thread::spawn(move || {
                    let mut rng = Rng::new(round * 1000 + t);
                    let mut transient: Vec<Obj> = Vec::new();
                    for _ in 0..OPS {
                        let id = next_id.fetch_add(1, Ordering::Relaxed) as u64;
                        let obj = Obj::new(id, rng.size().min(64 * KIB));
                        let i = rng.below(SLOTS);
                        // The displaced object was (usually) made by a thread that
                        // has exited since; it is checked and freed here.
                        let old = slots[i].lock().unwrap().replace(obj);
                        if let Some(old) = old {
                            old.check();
                        }
                        if rng.below(4) == 0 {
                            transient.push(Obj::new(id ^ 0xABCD, 1 + rng.below(512)));
                            if transient.len() > 64 {
                                let o = transient.swap_remove(rng.below(transient.len()));
                                o.check();
                            }
                        }
                    }
                    transient.iter().for_each(Obj::check);
                })
            })
            .collect();
        for h in handles {
            h.join().expect("mstress thread failed");
        }
        // Between rounds, verify a sample of what the dead threads left behind.
        for s in slots.iter().step_by(7) {
            if let Some(o) = &*s.lock().unwrap() {
                o.check();
            }
        }
    }
    let mut live = 0;
    for s in slots.iter() {
        if let Some(o) = s.lock().unwrap().take() {
            o.check();
            live += 1;
        }
    }
    assert!(live > SLOTS / 2, "the shared structure was populated");
}

#[test]
fn purge_while_other_threads_churn_keeps_live_data_intact() {
    let _g = shared();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3u64)
        .map(|t| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut rng = Rng::new(7000 + t);
                let mut keep: Vec<Obj> = Vec::new();
                let mut id = t << 40;
                for burst in 0..60 {
                    // A burst big enough to create and then empty whole slabs, so
                    // their units are released, dirty, and purged under our feet.
                    let size = [24, 200, 1000, 3000, 20_000][burst % 5];
                    let n = 2 * MIB / size;
                    let mut objs: Vec<Obj> = (0..n)
                        .map(|_| {
                            id += 1;
                            Obj::new(id, size)
                        })
                        .collect();
                    objs.iter().for_each(Obj::check);
                    // Keep a few long-lived survivors per burst.
                    for _ in 0..8 {
                        keep.push(objs.swap_remove(rng.below(objs.len())));
                    }
                    drop(objs);
                    keep.iter().for_each(Obj::check);
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                keep.iter().for_each(Obj::check);
            })
        })
        .collect();
    let purger = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut purges = 0u32;
            while !stop.load(Ordering::Relaxed) {
                GLOBAL.purge();
                let s = GLOBAL.stats();
                assert!(s.bytes_mapped >= s.segments * 2 * MIB);
                purges += 1;
                thread::sleep(Duration::from_millis(2));
            }
            purges
        })
    };
    for w in workers {
        w.join().expect("worker failed");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(purger.join().expect("purger failed") > 0);
}

// ─────────────────────── sizes and alignments ───────────────────────

/// A pattern long enough for any block below, read at an offset per block so
/// consecutive blocks hold different bytes.
fn pattern(len: usize) -> Vec<u8> {
    let mut rng = Rng::new(42);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// Counters of one round-trip sweep.
#[derive(Default)]
struct Sweep {
    blocks: usize,
    zeroed_reused_dirty: usize,
}

/// Allocates `(size, align)`, fills it, grows it, shrinks it, frees it; checks
/// alignment and the preserved prefix at each step; then dirties the class and
/// checks that `alloc_zeroed` still returns zeros.
fn round_trip(size: usize, align: usize, pat: &[u8], zeros: &[u8], sweep: &mut Sweep) {
    let off = (size * 7 + align) % 4096;
    let src = &pat[off..];
    let layout = Layout::from_size_align(size, align).unwrap();
    // SAFETY: every pointer below is the live block just allocated (or
    // reallocated) with the layout it is used with; reads and writes stay
    // inside its size, and each block is freed once.
    unsafe {
        let p = opaque(alloc(layout));
        assert!(!p.is_null(), "alloc({size}, {align}) failed");
        assert_eq!(p as usize % align, 0, "alloc({size}, {align}) misaligned");
        p.copy_from_nonoverlapping(src.as_ptr(), size);
        let p = opaque(p);
        assert_eq!(std::slice::from_raw_parts(p, size), &src[..size]);

        // Grow within the block's class first, then across classes.
        let up1 = size + 1 + size % 3;
        let p = opaque(realloc(p, layout, up1));
        assert!(!p.is_null());
        assert_eq!(p as usize % align, 0, "realloc({size}→{up1}, {align})");
        assert_eq!(
            std::slice::from_raw_parts(p, size),
            &src[..size],
            "prefix lost growing {size}→{up1} (align {align})"
        );
        p.add(size)
            .copy_from_nonoverlapping(src[size..].as_ptr(), up1 - size);
        let p = opaque(p);
        let l1 = Layout::from_size_align(up1, align).unwrap();
        let up2 = up1 * 2 + 5;
        let p = opaque(realloc(p, l1, up2));
        assert!(!p.is_null());
        assert_eq!(p as usize % align, 0, "realloc({up1}→{up2}, {align})");
        assert_eq!(
            std::slice::from_raw_parts(p, up1),
            &src[..up1],
            "prefix lost growing {up1}→{up2} (align {align})"
        );
        // Use the whole grown block: a block overlapping a neighbour would show.
        p.add(up1)
            .copy_from_nonoverlapping(src[up1..].as_ptr(), up2 - up1);
        let p = opaque(p);
        let l2 = Layout::from_size_align(up2, align).unwrap();
        let down = size.div_ceil(2);
        let p = opaque(realloc(p, l2, down));
        assert!(!p.is_null());
        assert_eq!(p as usize % align, 0, "realloc({up2}→{down}, {align})");
        assert_eq!(
            std::slice::from_raw_parts(p, down),
            &src[..down],
            "prefix lost shrinking {up2}→{down} (align {align})"
        );
        dealloc(p, Layout::from_size_align(down, align).unwrap());

        // Dirty an object of the class, free it, and ask for zeros.
        let d = opaque(alloc(layout));
        assert!(!d.is_null());
        d.write_bytes(0xA5, size);
        let d = opaque(d);
        dealloc(d, layout);
        let z = opaque(alloc_zeroed(layout));
        assert!(!z.is_null());
        assert_eq!(z as usize % align, 0, "alloc_zeroed({size}, {align})");
        let zs = std::slice::from_raw_parts(z, size);
        if zs != &zeros[..size] {
            let i = zs.iter().position(|&b| b != 0).unwrap();
            panic!(
                "alloc_zeroed({size}, {align}) byte {i} is {:#x} (reused dirty block: {})",
                zs[i],
                z == d
            );
        }
        if z == d {
            sweep.zeroed_reused_dirty += 1;
        }
        dealloc(z, layout);
    }
    sweep.blocks += 1;
}

const ALIGNS_TO_4K: [usize; 13] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

fn sweep_sizes(aligns: &[usize]) {
    let _g = shared();
    let pat = pattern(4096 + 80 * KIB);
    let zeros = vec![0u8; 32 * KIB];
    let mut sweep = Sweep::default();
    for size in 1..=32 * KIB {
        for &align in aligns {
            round_trip(size, align, &pat, &zeros, &mut sweep);
        }
    }
    assert_eq!(sweep.blocks, 32 * KIB * aligns.len());
    // The premise of the zeroing check: the dirtied block is what comes back
    // (magazines are LIFO), so alloc_zeroed really had to clear a dirty block.
    assert!(
        sweep.zeroed_reused_dirty * 10 >= sweep.blocks * 9,
        "only {} of {} zeroed blocks reused the dirtied one",
        sweep.zeroed_reused_dirty,
        sweep.blocks
    );
}

#[test]
fn every_size_to_32k_round_trips_with_small_alignments() {
    sweep_sizes(&ALIGNS_TO_4K[..6]); // 1..=32
}

#[test]
fn every_size_to_32k_round_trips_with_large_alignments() {
    sweep_sizes(&ALIGNS_TO_4K[6..]); // 64..=4096
}

#[test]
fn sizes_around_256k_and_several_mib_and_alignments_to_1mib_round_trip() {
    let _g = shared();
    let pat = pattern(4096 + 2 * (8 * MIB + 64));
    let zeros = vec![0u8; 8 * MIB];
    let mut sweep = Sweep::default();
    let t = 256 * KIB;
    let sizes = [
        1,
        100,
        4096,
        32 * KIB,
        100_000,
        t - 4097,
        t - 4096,
        t - 17,
        t - 16,
        t - 1,
        t,
        t + 1,
        t + 4096,
        MIB - 1,
        MIB,
        2 * MIB + 3,
        3 * MIB,
        8 * MIB,
    ];
    let aligns = [1, 16, 64, 4096, 8192, 64 * KIB, 256 * KIB, MIB];
    for &size in &sizes {
        for &align in &aligns {
            round_trip(size, align, &pat, &zeros, &mut sweep);
        }
    }
    assert_eq!(sweep.blocks, sizes.len() * aligns.len());

    // Realloc across the large threshold both ways, checking the prefix.
    for &(from, to) in &[
        (200 * KIB, 300 * KIB),
        (300 * KIB, 200 * KIB),
        (t - 1, t),
        (t, t - 1),
        (1000, 5 * MIB),
        (5 * MIB, 1000),
        (600 * KIB, 6 * MIB),
        (6 * MIB, 600 * KIB),
    ] {
        for align in [8, 4096, 64 * KIB] {
            let l = Layout::from_size_align(from, align).unwrap();
            // SAFETY: `p`, then `q`, is the live block of `from`, then `to`, bytes;
            // copies and writes stay inside it and it is freed once with its layout.
            unsafe {
                let p = opaque(alloc(l));
                assert!(!p.is_null() && (p as usize).is_multiple_of(align));
                p.copy_from_nonoverlapping(pat.as_ptr(), from);
                let q = opaque(realloc(opaque(p), l, to));
                assert!(!q.is_null(), "realloc {from}→{to} failed");
                assert_eq!(q as usize % align, 0, "realloc {from}→{to} align {align}");
                let keep = from.min(to);
                assert_eq!(
                    std::slice::from_raw_parts(q, keep),
                    &pat[..keep],
                    "realloc {from}→{to} (align {align}) lost the prefix"
                );
                q.write_bytes(0x5A, to);
                dealloc(opaque(q), Layout::from_size_align(to, align).unwrap());
            }
        }
    }
}

#[test]
fn realloc_within_a_size_class_is_in_place() {
    let _g = shared();
    let classes = GLOBAL.stats().classes;
    let mut prev = 0;
    // With a lowered large threshold (64 KiB at least) bigger classes go unused.
    let limit = if std::env::var_os("RUSTYDB_MEM_LARGE_THRESHOLD").is_some() {
        64 * KIB
    } else {
        256 * KIB
    };
    for c in classes.iter().filter(|c| c.size < limit) {
        // From just above the previous class to the top of this one: same class.
        let (lo, hi) = (prev + 1, c.size);
        prev = c.size;
        let l = Layout::from_size_align(lo, 8).unwrap();
        // SAFETY: `p`/`q`/`r` are the same live block, sized `lo`, `hi`, then `lo`;
        // writes stay inside the current size and it is freed once with `l`.
        unsafe {
            let p = opaque(alloc(l));
            assert!(!p.is_null());
            p.write_bytes(0x77, lo);
            let q = opaque(realloc(p, l, hi));
            assert_eq!(q, p, "realloc {lo} → {hi} (class {}) moved", c.size);
            assert!(std::slice::from_raw_parts(q, lo).iter().all(|&b| b == 0x77));
            q.add(lo).write_bytes(0x78, hi - lo);
            let r = opaque(realloc(q, Layout::from_size_align(hi, 8).unwrap(), lo));
            assert_eq!(r, p, "realloc {hi} → {lo} (class {}) moved", c.size);
            dealloc(r, l);
        }
    }
}

#[test]
fn live_blocks_of_mixed_sizes_never_overlap() {
    let _g = shared();
    let mut rng = Rng::new(99);
    let mut live: Vec<(usize, Layout)> = Vec::new();
    for _ in 0..40_000 {
        if live.len() < 2000 && rng.below(3) != 0 {
            let align = 1 << rng.below(13);
            let l = Layout::from_size_align(rng.size(), align).unwrap();
            // SAFETY: `l` has a non-zero size (`rng.size()` is at least 1).
            let p = opaque(unsafe { alloc(l) });
            assert!(!p.is_null() && (p as usize).is_multiple_of(align));
            // SAFETY: `p` is the live block of `l.size()` bytes just allocated.
            unsafe { p.write_bytes(live.len() as u8, l.size()) };
            live.push((p as usize, l));
        } else if !live.is_empty() {
            let (p, l) = live.swap_remove(rng.below(live.len()));
            // SAFETY: `p` was allocated with `l` and leaves `live`, so it is freed once.
            unsafe { dealloc(p as *mut u8, l) };
        }
    }
    live.sort_unstable_by_key(|&(p, _)| p);
    for w in live.windows(2) {
        assert!(
            w[0].0 + w[0].1.size() <= w[1].0,
            "blocks {:#x}+{} and {:#x} overlap",
            w[0].0,
            w[0].1.size(),
            w[1].0
        );
    }
    for (p, l) in live {
        // SAFETY: each remaining block was allocated with its layout; freed once.
        unsafe { dealloc(p as *mut u8, l) };
    }
}

// ────────────────────── memory goes back, stats ──────────────────────

#[test]
fn freed_memory_is_given_back_by_purge() {
    let _g = exclusive();
    GLOBAL.purge();
    let s0 = GLOBAL.stats();
    let rss0 = vm_rss();

    // ~200 MiB of small objects (64 B – 4 KiB), every page touched.
    const TARGET: usize = 200 * MIB;
    let mut rng = Rng::new(5);
    let mut objs: Vec<(*mut u8, Layout)> = Vec::with_capacity(TARGET / 1024);
    let mut total = 0;
    while total < TARGET {
        let l = Layout::from_size_align(64 + rng.below(4033), 8).unwrap();
        // SAFETY: a non-zero size.
        let p = unsafe { alloc(l) };
        assert!(!p.is_null());
        // SAFETY: `p` is the live block of `l.size()` bytes just allocated.
        unsafe { p.write_bytes(objs.len() as u8 | 1, l.size()) };
        total += l.size();
        objs.push((p, l));
    }
    let s1 = GLOBAL.stats();
    let rss1 = vm_rss();
    // Free units of segments already mapped are reused first; the rest must be new.
    const UNIT: usize = 64 * KIB;
    assert!(
        s1.units_in_use * UNIT >= s0.units_in_use * UNIT + TARGET * 95 / 100,
        "units in use {} → {} for {} MiB",
        s0.units_in_use,
        s1.units_in_use,
        TARGET / MIB
    );
    assert!(s1.segments * 2 * MIB >= s1.units_in_use * UNIT);
    assert!(s1.segments > s0.segments + TARGET / (4 * MIB));
    assert!(s1.bytes_mapped >= s1.segments * 2 * MIB + s1.large.bytes_mapped);
    assert!(s1.bytes_in_use + MIB >= s0.bytes_in_use + TARGET);
    assert!(
        rss1 >= rss0 + TARGET * 9 / 10,
        "RSS {rss0} → {rss1}: the objects were touched"
    );

    for (i, &(p, l)) in objs.iter().enumerate() {
        // SAFETY: the last byte of the live block `p`, written when allocated.
        let b = unsafe { *p.add(l.size() - 1) };
        assert_eq!(b, i as u8 | 1, "object {i} corrupted");
        // SAFETY: `p` was allocated with `l` and is freed once.
        unsafe { dealloc(p, l) };
    }
    drop(objs);
    let given = GLOBAL.purge();
    let s2 = GLOBAL.stats();
    let rss2 = vm_rss();

    let back = TARGET * 9 / 10;
    assert!(
        given as usize >= back,
        "purge() reported {given} B given back"
    );
    assert!(
        s2.purged_bytes >= s1.purged_bytes + back as u64,
        "purged_bytes {} → {}",
        s1.purged_bytes,
        s2.purged_bytes
    );
    assert!(
        s2.segments <= s0.segments + 4,
        "segments {} before, {} after",
        s0.segments,
        s2.segments
    );
    assert!(
        s2.unmapped_segments >= s1.unmapped_segments + (s1.segments - s0.segments) as u64 - 4,
        "unmapped segments {} → {}",
        s1.unmapped_segments,
        s2.unmapped_segments
    );
    assert!(s2.bytes_mapped + back <= s1.bytes_mapped);
    assert!(
        s2.bytes_in_use + back <= s1.bytes_in_use,
        "bytes_in_use {} → {}",
        s1.bytes_in_use,
        s2.bytes_in_use
    );
    assert!(s2.purges > s1.purges || s2.unmapped_segments > s1.unmapped_segments);
    assert!(
        rss2 + back <= rss1,
        "RSS {} MiB → {} MiB after free + purge",
        rss1 / MIB,
        rss2 / MIB
    );
}

/// Bytes of magazine metadata (`bytes_mapped` minus segments and large mappings).
fn magazine_bytes(s: &AllocStats) -> usize {
    s.bytes_mapped - s.segments * 2 * MIB - s.large.bytes_mapped
}

#[test]
fn freed_tiny_objects_are_given_back_including_magazine_metadata() {
    let _g = exclusive();
    GLOBAL.purge();
    let s0 = GLOBAL.stats();
    let rss0 = vm_rss();

    // 64 MiB of 16 B objects: 4 Mi objects, cached in magazines when freed (up to
    // the depot's bound).
    const TARGET: usize = 64 * MIB;
    let l = Layout::from_size_align(16, 8).unwrap();
    let mut objs: Vec<*mut u8> = Vec::with_capacity(TARGET / 16);
    for i in 0..TARGET / 16 {
        // SAFETY: a non-zero size.
        let p = unsafe { alloc(l) };
        assert!(!p.is_null());
        // SAFETY: `p` is a live block of at least one byte.
        unsafe { p.write(i as u8) };
        objs.push(opaque(p));
    }
    for (i, &p) in objs.iter().enumerate() {
        // SAFETY: `p` is live and its first byte was written above.
        assert_eq!(unsafe { p.read() }, i as u8);
        // SAFETY: `p` was allocated with `l` and is freed once.
        unsafe { dealloc(p, l) };
    }
    drop(objs);
    let s1 = GLOBAL.stats();
    let rss1 = vm_rss();
    GLOBAL.purge();
    let s2 = GLOBAL.stats();
    let rss2 = vm_rss();
    let kept_meta = magazine_bytes(&s2).saturating_sub(magazine_bytes(&s0));
    // Under AddressSanitizer (CI sets ASAN_OPTIONS) RSS also holds the shadow of
    // every byte touched (1/8 of it), which no purge can return.
    let shadow = if std::env::var_os("ASAN_OPTIONS").is_some() {
        rss1 / 8
    } else {
        0
    };
    assert!(
        rss2 <= rss0 + TARGET / 10 + shadow,
        "RSS {} MiB before, {} MiB with the freed objects cached, {} MiB after purge; \
         magazines {} → {} ({} MiB of metadata kept, {} B per magazine)",
        rss0 / MIB,
        rss1 / MIB,
        rss2 / MIB,
        s0.magazines,
        s2.magazines,
        kept_meta / MIB,
        kept_meta / s2.magazines.saturating_sub(s0.magazines).max(1)
    );
    // The depot keeps up to 16 MiB of the class; the rest went to the slabs.
    assert!(s1.bytes_cached >= 15 * MIB, "{} B cached", s1.bytes_cached);
}

/// Runs `test` of this binary in a child process with `env` set (options are
/// read once per process, so this is the only way to test them), and returns
/// the child's output if it passed.
fn run_in_child(test: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"]);
    cmd.env("RUSTYDB_TEST_CHILD", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("spawn the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child {test} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child {test} did not run:\n{text}"
    );
    text
}

/// Child half of `freed_memory_decays_back_to_the_os_without_purge` (does
/// nothing unless started by it).
#[test]
fn decay_child() {
    if std::env::var_os("RUSTYDB_TEST_CHILD").is_none() {
        return;
    }
    // 100 MiB of 1–4 KiB objects, freed, then light unrelated activity (slow
    // paths of another class) for well over the 50 ms decay delay; no purge().
    const TARGET: usize = 100 * MIB;
    let rss0 = vm_rss();
    let mut rng = Rng::new(3);
    let mut objs = Vec::new();
    let mut total = 0;
    while total < TARGET {
        let l = Layout::from_size_align(1024 + rng.below(3 * 1024), 8).unwrap();
        // SAFETY: a non-zero size.
        let p = unsafe { alloc(l) };
        assert!(!p.is_null());
        // SAFETY: `p` is the live block of `l.size()` bytes just allocated.
        unsafe { p.write_bytes(1, l.size()) };
        total += l.size();
        objs.push((opaque(p), l));
    }
    let rss1 = vm_rss();
    for (p, l) in objs.drain(..) {
        // SAFETY: each drained block was allocated with its layout; freed once.
        unsafe { dealloc(p, l) };
    }
    drop(objs);
    let rss2 = vm_rss();
    let l = Layout::from_size_align(200, 8).unwrap();
    let start = Instant::now();
    let mut rss3 = rss2;
    while start.elapsed() < Duration::from_millis(1500) {
        // SAFETY: a non-zero size.
        let ps: Vec<*mut u8> = (0..5000).map(|_| opaque(unsafe { alloc(l) })).collect();
        for p in ps {
            // SAFETY: each block was allocated with `l` and is freed once.
            unsafe { dealloc(p, l) };
        }
        thread::sleep(Duration::from_millis(5));
        rss3 = vm_rss();
        if rss3 + TARGET * 8 / 10 <= rss1 {
            break;
        }
    }
    assert!(rss1 >= rss0 + TARGET * 9 / 10);
    assert!(
        rss3 + TARGET * 8 / 10 <= rss1,
        "RSS {} MiB with 100 MiB live, {} MiB just after free, {} MiB {} ms later (decay 50 ms, no purge)",
        rss1 / MIB,
        rss2 / MIB,
        rss3 / MIB,
        start.elapsed().as_millis()
    );
    println!("decayed in {} ms", start.elapsed().as_millis());
}

#[test]
fn freed_memory_decays_back_to_the_os_without_purge() {
    let _g = shared();
    let out = run_in_child("decay_child", &[("RUSTYDB_MEM_PURGE_DELAY_MS", "50")]);
    assert!(out.contains("decayed in"), "{out}");
}

#[test]
fn stats_count_live_objects_cached_objects_and_large_blocks() {
    let _g = exclusive();
    // 7000 B rounds up to the 7168 B class, which nothing else in this binary
    // uses on purpose; N is not a multiple of any magazine size.
    const N: usize = 1000;
    let layout = Layout::from_size_align(7000, 8).unwrap();
    let s0 = GLOBAL.stats();
    let c = class_index(&s0, 7168);

    let objs: Vec<*mut u8> = (0..N)
        .map(|i| {
            // SAFETY: a non-zero size.
            let p = unsafe { alloc(layout) };
            assert!(!p.is_null());
            // SAFETY: `p` is the live block of `layout.size()` bytes just allocated.
            unsafe { p.write_bytes(i as u8, layout.size()) };
            p
        })
        .collect();
    let s1 = GLOBAL.stats();
    let (a, b) = (s0.classes[c], s1.classes[c]);
    assert!(
        b.live_objects >= a.live_objects + N,
        "live objects {} → {} after {N} allocations",
        a.live_objects,
        b.live_objects
    );
    assert!(
        b.live_objects <= a.live_objects + N + 64,
        "no phantom objects"
    );
    assert!(b.slabs > a.slabs, "new slabs for {N} objects");
    assert!(s1.bytes_in_use + MIB >= s0.bytes_in_use + N * 7168);
    assert!(s1.units_in_use > s0.units_in_use);

    for (i, &p) in objs.iter().enumerate() {
        // SAFETY: byte 6999 of a live 7000-byte block, written when allocated.
        assert_eq!(unsafe { *p.add(6999) }, i as u8);
        // SAFETY: `p` was allocated with `layout` and is freed once.
        unsafe { dealloc(p, layout) };
    }
    let s2 = GLOBAL.stats();
    let d = s2.classes[c];
    assert!(
        d.live_objects + N <= b.live_objects,
        "live objects {} → {} after {N} frees",
        b.live_objects,
        d.live_objects
    );
    assert!(
        d.thread_cached + d.depot_objects > 0,
        "freed objects are cached in magazines"
    );
    assert!(
        d.depot_full > 0,
        "{N} frees overflow the thread's magazines"
    );
    assert_eq!(
        d.depot_objects % d.depot_full.max(1),
        0,
        "depot holds full magazines"
    );
    assert!(s2.bytes_cached >= (d.thread_cached + d.depot_objects) * 7168);

    GLOBAL.purge();
    let s3 = GLOBAL.stats();
    let e = s3.classes[c];
    assert_eq!(e.depot_objects, 0, "purge empties the depot");
    assert_eq!(e.depot_full, 0);
    assert!(e.slabs <= a.slabs.max(1), "empty slabs released");
    assert!(s3.depot_trims > s2.depot_trims);

    // Large blocks.
    let big = Layout::from_size_align(3 * MIB + 5, 4096).unwrap();
    let blocks: Vec<*mut u8> = (0..3)
        .map(|_| {
            // SAFETY: a non-zero size.
            let p = unsafe { alloc(big) };
            assert!(!p.is_null());
            // SAFETY: `p` is the live block of `big.size()` bytes just allocated.
            unsafe { p.write_bytes(1, big.size()) };
            p
        })
        .collect();
    let s4 = GLOBAL.stats();
    assert_eq!(s4.large.live, s3.large.live + 3);
    assert_eq!(
        s4.large.bytes_in_use,
        s3.large.bytes_in_use + 3 * big.size()
    );
    assert!(s4.large.bytes_mapped >= s3.large.bytes_mapped + 3 * big.size());
    // Process-wide: allow the harness's own small traffic (well under 1 MiB).
    assert!(s4.bytes_in_use + MIB >= s3.bytes_in_use + 3 * big.size());
    for p in blocks {
        // SAFETY: each block was allocated with `big` and is freed once.
        unsafe { dealloc(p, big) };
    }
    let s5 = GLOBAL.stats();
    assert_eq!(s5.large.live, s3.large.live);
    assert_eq!(s5.large.bytes_in_use, s3.large.bytes_in_use);
    // Freed large blocks stay mapped in the large-object cache until a purge.
    assert!(s5.large.bytes_mapped <= s4.large.bytes_mapped);
    assert!(
        s5.large.bytes_cached >= 3 * big.size() || s5.large.bytes_mapped < s4.large.bytes_mapped
    );
    GLOBAL.purge();
    let s6 = GLOBAL.stats();
    assert!(
        s6.large.bytes_mapped <= s3.large.bytes_mapped,
        "purge unmaps the cached blocks"
    );
}

// ───────────────────────────── fork ─────────────────────────────

/// Work for a forked child: every layer of the allocator, no std locks, no
/// output. Returns the exit code (0 = success).
fn child_work() -> i32 {
    let mut objs: Vec<Obj> = Vec::new();
    for i in 0..3000u64 {
        let size = if i % 500 == 0 {
            300_000
        } else {
            [8, 100, 700, 5000, 40_000][i as usize % 5]
        };
        objs.push(Obj::new(i, size));
    }
    if !objs.iter().all(|o| check_filled(o.id, &o.data)) {
        return 2;
    }
    drop(objs);
    let s: String = (0..2000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    if s.len() != 2000 {
        return 3;
    }
    // Takes the segment, depot and central locks, then the registry lock.
    GLOBAL.purge();
    if GLOBAL.stats().segments == 0 {
        return 4;
    }
    let v: Vec<u64> = (0..100_000).collect();
    if v.iter().sum::<u64>() != 4_999_950_000 {
        return 5;
    }
    0
}

#[test]
fn fork_while_another_thread_allocates_does_not_deadlock() {
    let _g = shared();
    let stop = Arc::new(AtomicBool::new(false));
    // Keep the allocator's locks busy so that a fork often lands while one is
    // held: one thread purges and reads stats in a loop (every depot, central
    // and segment lock, the registry lock, madvise/munmap under the segment
    // lock); two allocate and free bursts larger than their magazines (depot
    // exchanges, central batches, new slabs and segments under the locks).
    let purger = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                GLOBAL.purge();
                let _ = GLOBAL.stats();
                n += 1;
            }
            n
        })
    };
    let mut busy: Vec<_> = (0..2u64)
        .map(|t| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut rng = Rng::new(t);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let size = [16, 48, 256, 2000, 9000, 70_000, 400_000][rng.below(7)];
                    let l = Layout::from_size_align(size, 8).unwrap();
                    let count = (8 * MIB / size).clamp(2, 3000);
                    let ps: Vec<*mut u8> = (0..count)
                        .map(|i| {
                            // SAFETY: a non-zero size.
                            let p = unsafe { alloc(l) };
                            assert!(!p.is_null());
                            // SAFETY: `p` is a live block of at least 16 bytes.
                            unsafe { p.write(i as u8) };
                            opaque(p)
                        })
                        .collect();
                    for (i, &p) in ps.iter().enumerate() {
                        // SAFETY: `p` is live and its first byte was written when allocated.
                        assert_eq!(unsafe { p.read() }, i as u8);
                        // SAFETY: `p` was allocated with `l` and is freed once.
                        unsafe { dealloc(p, l) };
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    busy.push(purger);
    thread::sleep(Duration::from_millis(20));
    for round in 0..16 {
        // SAFETY: the child only allocates, frees and calls `_exit`; the
        // allocator's fork handlers leave its locks usable in the child.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = child_work();
            // SAFETY: `_exit` has no preconditions; the child skips the test
            // harness's exit path.
            unsafe { libc::_exit(code) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut status = 0;
        loop {
            // SAFETY: `pid` is our child; `status` is a live `c_int`.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break;
            }
            assert_eq!(r, 0, "waitpid failed");
            if Instant::now() > deadline {
                // SAFETY: `pid` is our child (not yet reaped); `status` is a live `c_int`.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                stop.store(true, Ordering::Relaxed);
                panic!("fork round {round}: child hung (allocator lock inherited held?)");
            }
            thread::sleep(Duration::from_millis(2));
        }
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "fork round {round}: child status {status:#x}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for b in busy {
        assert!(b.join().expect("busy thread failed") > 0);
    }
}

// ──────────────────── thread exit and TLS teardown ────────────────────

static LATE_OK: AtomicUsize = AtomicUsize::new(0);
static LATE_FAIL: AtomicUsize = AtomicUsize::new(0);

/// A thread-local whose destructor frees what the thread left in it and then
/// allocates, checks and frees more, while the thread's TLS is being torn down.
struct Late {
    held: RefCell<Vec<Obj>>,
}

impl Drop for Late {
    fn drop(&mut self) {
        // No panics here: a panic in a TLS destructor aborts the process.
        let held = self.held.take();
        let mut ok = held.iter().all(|o| check_filled(o.id, &o.data));
        drop(held);
        let objs: Vec<Obj> = (0..500u64)
            .map(|i| Obj::new(i, [1, 16, 100, 1000, 5000, 40_000, 300_000][i as usize % 7]))
            .collect();
        ok &= objs.iter().all(|o| check_filled(o.id, &o.data));
        let mut m: HashMap<u64, String> = HashMap::new();
        for i in 0..300 {
            m.insert(i, format!("late {i}"));
        }
        ok &= (0..300).all(|i| m[&i] == format!("late {i}"));
        drop(objs);
        drop(m);
        if ok {
            LATE_OK.fetch_add(1, Ordering::SeqCst);
        } else {
            LATE_FAIL.fetch_add(1, Ordering::SeqCst);
        }
    }
}

thread_local! {
    static LATE: Late = const { Late { held: RefCell::new(Vec::new()) } };
}

#[test]
fn exiting_threads_flush_caches_and_tls_destructors_can_allocate() {
    let _g = exclusive();
    // 13000 B → the 13312 B class, used by nothing else in this binary.
    let layout = Layout::from_size_align(13_000, 8).unwrap();
    let base = GLOBAL.stats();
    let c = class_index(&base, 13_312);

    // 1. Threads that cache objects, are counted, and exit.
    const T: usize = 32;
    let barrier = Arc::new(Barrier::new(T + 1));
    let handles: Vec<_> = (0..T)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                // SAFETY: a non-zero size.
                let ps: Vec<*mut u8> = (0..20).map(|_| unsafe { alloc(layout) }).collect();
                assert!(ps.iter().all(|p| !p.is_null()));
                for &p in &ps {
                    // SAFETY: each block was allocated with `layout` and is freed once.
                    unsafe { dealloc(p, layout) };
                }
                barrier.wait(); // counted here
                barrier.wait(); // then exit with the objects still cached
            })
        })
        .collect();
    barrier.wait();
    let during = GLOBAL.stats();
    barrier.wait();
    for h in handles {
        h.join().unwrap();
    }
    let after = GLOBAL.stats();
    assert!(
        during.thread_caches >= base.thread_caches + T,
        "thread caches {} → {} with {T} more threads",
        base.thread_caches,
        during.thread_caches
    );
    assert!(
        after.thread_caches + T - 2 <= during.thread_caches,
        "exited threads' caches unregistered: {} → {}",
        during.thread_caches,
        after.thread_caches
    );
    // Threads of earlier tests may still be exiting (and flushing), so the
    // cached counts are compared with `during`, not only with `base`.
    let (b, d, a) = (base.classes[c], during.classes[c], after.classes[c]);
    assert!(
        d.thread_cached >= a.thread_cached + T,
        "each exiting thread held cached objects, flushed at exit: {} → {}",
        d.thread_cached,
        a.thread_cached
    );
    assert!(a.thread_cached <= b.thread_cached);
    assert_eq!(
        a.live_objects, b.live_objects,
        "flushing loses or invents no object"
    );
    // The flushed objects are usable again.
    let ps: Vec<*mut u8> = (0..T * 20)
        .map(|i| {
            // SAFETY: a non-zero size.
            let p = unsafe { alloc(layout) };
            assert!(!p.is_null());
            // SAFETY: `p` is the live block of `layout.size()` bytes just allocated.
            unsafe { p.write_bytes(i as u8, layout.size()) };
            p
        })
        .collect();
    for (i, &p) in ps.iter().enumerate() {
        assert!(
            // SAFETY: `p` is live, `layout.size()` bytes, written when allocated.
            unsafe { std::slice::from_raw_parts(p, layout.size()) }
                .iter()
                .all(|&b| b == i as u8)
        );
        // SAFETY: `p` was allocated with `layout` and is freed once.
        unsafe { dealloc(p, layout) };
    }

    // 2. Allocation and free from a TLS destructor, in both orders relative to
    //    the allocator's own exit hook (TLS destructors run last-registered
    //    first): (a) `LATE` registered before the thread's first allocation, so
    //    its destructor runs after the cache was flushed and retired; (b) the
    //    other way round; (c) the destructor makes the thread's first allocation.
    LATE_OK.store(0, Ordering::SeqCst);
    LATE_FAIL.store(0, Ordering::SeqCst);
    let mut n = 0;
    for round in 0..4u64 {
        let hs = vec![
            thread::spawn(move || {
                LATE.with(|_| {}); // (a): registered first, no allocation
                let v: Vec<Obj> = (0..200)
                    .map(|i| Obj::new(round * 1000 + i, 1 + i as usize * 37))
                    .collect();
                LATE.with(|l| l.held.borrow_mut().extend(v));
            }),
            thread::spawn(move || {
                let v: Vec<Obj> = (0..200)
                    .map(|i| Obj::new(round * 1000 + i, 1 + i as usize * 37))
                    .collect();
                LATE.with(|l| l.held.borrow_mut().extend(v)); // (b)
            }),
            thread::spawn(|| LATE.with(|_| {})), // (c)
        ];
        n += hs.len();
        for h in hs {
            h.join().unwrap();
        }
    }
    assert_eq!(
        LATE_FAIL.load(Ordering::SeqCst),
        0,
        "a TLS destructor saw corruption"
    );
    assert_eq!(
        LATE_OK.load(Ordering::SeqCst),
        n,
        "every TLS destructor completed"
    );
    let end = GLOBAL.stats();
    assert!(
        end.thread_caches <= after.thread_caches + 2,
        "threads that allocated during TLS teardown left their caches registered: {} → {}",
        after.thread_caches,
        end.thread_caches
    );
}
