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

mod lifecycle;
#[path = "../common/process.rs"]
mod process;
mod purge;
mod remote;
mod sizes;

use process::{in_child, run_in_child};

mod threads;
