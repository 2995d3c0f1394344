//! The shared conformance suite of the `EvictionPolicy` contract, run on
//! every policy — once against the trait directly (a model checks each
//! rule), once through a real pool — and the behaviour the papers predict.
//!
//! `cargo test --release --test buffer_pool_policies`

mod bp_common;

use std::collections::HashSet;

use bp_common::{Rng, zipf};
use rustydb_memory::Error;
use rustydb_memory::buffer_pool::{BufferPool, EvictionPolicy, MemDisk, Policy, Tier};

fn pool(p: Policy, frames: usize, pages: u64) -> BufferPool {
    BufferPool::builder()
        .frames(frames)
        .policy(p)
        .disk(MemDisk::with_pages(4096, pages))
        .build()
        .unwrap()
}

fn hit_ratio(pool: &BufferPool, trace: &[u64]) -> f64 {
    let before = pool.stats();
    for &id in trace {
        drop(pool.fetch_read(id).unwrap());
    }
    let s = pool.stats();
    (s.hits - before.hits) as f64 / trace.len() as f64
}

// ---------------------------------------------------------------------------
// The contract, against the trait

/// Drives `p` with random inserts, accesses, removals and victim calls under
/// a random pinned set; checks every rule of the contract against a model.
fn contract(policy: Policy, seed: u64) {
    const CAP: usize = 64;
    let mut p: Box<dyn EvictionPolicy> = policy.build(CAP).unwrap();
    assert_eq!(p.capacity(), CAP);
    assert_eq!(p.kind(), policy);
    let mut member: Vec<Option<u64>> = vec![None; CAP];
    let mut pinned = [false; CAP];
    let mut rng = Rng(seed);
    let mut next_page = 0u64;
    for step in 0..20_000 {
        let f = rng.below(CAP as u64) as u32;
        match rng.below(10) {
            0..=2 => {
                if member[f as usize].is_none() {
                    // Pages come back sometimes, so history and ghosts are used.
                    let page = if rng.below(3) == 0 && next_page > 0 {
                        rng.below(next_page)
                    } else {
                        next_page += 1;
                        next_page
                    };
                    p.insert(f, page);
                    member[f as usize] = Some(page);
                }
            }
            3..=5 => {
                if let Some(page) = member[f as usize] {
                    let t = p.access(f, page);
                    assert!(
                        matches!(t, Tier::Hot | Tier::Warm),
                        "{policy}: access tier {t:?}"
                    );
                }
            }
            6 => {
                if let Some(page) = member[f as usize] {
                    p.remove(f, page);
                    member[f as usize] = None;
                }
            }
            7 => pinned[f as usize] = !pinned[f as usize],
            _ => {
                let len = p.len();
                let mut approved = HashSet::new();
                let mut calls = 0usize;
                let v = p.victim(Some(next_page + 1), &mut |x| {
                    calls += 1;
                    assert!(
                        member.get(x as usize).is_some_and(|m| m.is_some()),
                        "{policy}: evictable asked about frame {x}, not in the policy"
                    );
                    let ok = !pinned[x as usize];
                    if ok {
                        approved.insert(x);
                    }
                    ok
                });
                assert!(
                    calls <= 8 * len + 8,
                    "{policy}: {calls} callbacks for {len} frames"
                );
                match v {
                    Some(x) => {
                        assert!(
                            approved.contains(&x),
                            "{policy}: returned unapproved frame {x}"
                        );
                        assert!(!pinned[x as usize], "{policy}: evicted a pinned frame");
                        assert!(!p.contains(x), "{policy}: victim still held");
                        assert_eq!(p.len(), len - 1);
                        member[x as usize] = None;
                    }
                    None => {
                        let free = (0..CAP).any(|i| member[i].is_some() && !pinned[i]);
                        assert!(
                            !free,
                            "{policy}: None while an unpinned frame is held (step {step})"
                        );
                    }
                }
            }
        }
        let held = member.iter().filter(|m| m.is_some()).count();
        assert_eq!(p.len(), held, "{policy}: len");
        assert!(p.len() <= p.capacity());
        for (i, m) in member.iter().enumerate() {
            assert_eq!(p.contains(i as u32), m.is_some(), "{policy}: contains({i})");
            if m.is_some() {
                assert!(matches!(p.tier(i as u32), Tier::Hot | Tier::Warm));
            }
        }
        let st = p.stats();
        assert!(
            st.history <= 8 * CAP as u64,
            "{policy}: history {} unbounded",
            st.history
        );
    }
}

#[test]
fn contract_holds_for_every_policy() {
    for p in Policy::ALL {
        for seed in 1..=3 {
            contract(p, seed);
        }
    }
}

#[test]
fn all_pinned_gives_none_quickly() {
    for p in Policy::ALL {
        let mut pol = p.build(32).unwrap();
        for f in 0..32u32 {
            pol.insert(f, u64::from(f) + 100);
            pol.access(f, u64::from(f) + 100);
        }
        let mut calls = 0;
        assert_eq!(
            pol.victim(None, &mut |_| {
                calls += 1;
                false
            }),
            None,
            "{p}"
        );
        assert!(calls <= 8 * 32 + 8, "{p}: {calls} callbacks");
        assert_eq!(pol.len(), 32, "{p}: a refused victim must stay");
    }
}

// ---------------------------------------------------------------------------
// The contract, through a pool

#[test]
fn capacity_respected() {
    for p in Policy::ALL {
        let pool = pool(p, 32, 1000);
        let trace = zipf(1000, 0.8, 5000, 3);
        for (i, &id) in trace.iter().enumerate() {
            drop(pool.fetch_read(id).unwrap());
            if i % 97 == 0 {
                let s = pool.stats();
                assert!(s.resident <= 32, "{p}: {} resident", s.resident);
                assert_eq!(s.resident + s.free, 32, "{p}");
                assert_eq!(
                    s.hot.resident + s.warm.resident + s.cold.resident,
                    s.resident
                );
            }
        }
    }
}

#[test]
fn pinned_pages_never_evicted() {
    for p in Policy::ALL {
        let pool = pool(p, 16, 500);
        // Give eight pages distinct contents and keep them pinned.
        for id in 0..8u64 {
            let mut g = pool.fetch_write(id).unwrap();
            g[..8].copy_from_slice(&(id * 1000 + 7).to_le_bytes());
        }
        let guards: Vec<_> = (0..8u64).map(|id| pool.fetch_read(id).unwrap()).collect();
        let mut rng = Rng(9);
        for _ in 0..5000 {
            let id = 8 + rng.below(492);
            drop(pool.fetch_read(id).unwrap());
        }
        for (id, g) in guards.iter().enumerate() {
            assert!(pool.is_resident(id as u64), "{p}: pinned page {id} evicted");
            assert_eq!(g[..8], (id as u64 * 1000 + 7).to_le_bytes(), "{p}");
        }
        assert_eq!(pool.stats().pinned, 8, "{p}");
        drop(guards);
        assert_eq!(pool.stats().pinned, 0, "{p}");
    }
}

#[test]
fn hits_and_misses_counted() {
    for p in Policy::ALL {
        let disk = std::sync::Arc::new(MemDisk::with_pages(4096, 1000));
        let pool = BufferPool::builder()
            .frames(64)
            .policy(p)
            .shared_disk(disk.clone())
            .build()
            .unwrap();
        for id in 0..40 {
            drop(pool.fetch_read(id).unwrap());
        }
        for id in 0..40 {
            drop(pool.fetch_read(id).unwrap());
        }
        let s = pool.stats();
        assert_eq!((s.hits, s.misses), (40, 40), "{p}");
        assert!((s.hit_ratio - 0.5).abs() < 1e-12);
        let trace = zipf(1000, 0.9, 3000, 5);
        for &id in &trace {
            drop(pool.fetch_read(id).unwrap());
        }
        let s = pool.stats();
        assert_eq!(s.hits + s.misses, 80 + 3000, "{p}");
        assert_eq!(
            s.misses,
            disk.reads(),
            "{p}: every miss reads the disk once"
        );
        assert_eq!(s.misses, s.disk_reads, "{p}");
        assert!(s.evictions >= s.misses - 64, "{p}");
    }
}

#[test]
fn dirty_pages_written_before_reuse() {
    for p in Policy::ALL {
        let disk = std::sync::Arc::new(MemDisk::new(4096));
        let pool = BufferPool::builder()
            .frames(8)
            .policy(p)
            .shared_disk(disk.clone())
            .build()
            .unwrap();
        let mut ids = Vec::new();
        for v in 0..40u64 {
            let mut g = pool.new_page().unwrap();
            g[..8].copy_from_slice(&(v ^ 0xABCD).to_le_bytes());
            ids.push(g.page_id());
        }
        let s = pool.stats();
        assert!(
            s.dirty_writebacks >= 32,
            "{p}: {} write-backs",
            s.dirty_writebacks
        );
        assert!(disk.writes() >= 32, "{p}");
        // Every page evicted so far is on disk with its contents.
        for (v, &id) in ids.iter().enumerate() {
            if !pool.is_resident(id) {
                let img = disk.image(id).expect("evicted dirty page was written");
                assert_eq!(img[16..24], (v as u64 ^ 0xABCD).to_le_bytes(), "{p}");
            }
        }
        for (v, &id) in ids.iter().enumerate() {
            assert_eq!(
                pool.fetch_read(id).unwrap()[..8],
                (v as u64 ^ 0xABCD).to_le_bytes(),
                "{p}"
            );
        }
    }
}

#[test]
fn failed_write_back_keeps_the_page() {
    for p in Policy::ALL {
        let disk = std::sync::Arc::new(MemDisk::with_pages(4096, 100));
        let pool = BufferPool::builder()
            .frames(4)
            .policy(p)
            .shared_disk(disk.clone())
            .build()
            .unwrap();
        for id in 0..4u64 {
            pool.fetch_write(id).unwrap()[0] = id as u8 + 1;
        }
        disk.fail_writes(true);
        let e = pool.fetch_read(50).unwrap_err();
        assert!(matches!(e, Error::Io { op: "write", .. }), "{p}: {e:?}");
        disk.fail_writes(false);
        for id in 0..4u64 {
            assert_eq!(
                pool.fetch_read(id).unwrap()[0],
                id as u8 + 1,
                "{p}: page {id} lost"
            );
        }
        drop(pool.fetch_read(50).unwrap());
        assert_eq!(
            pool.flush_all().unwrap() + pool.stats().dirty_writebacks as usize,
            4,
            "{p}"
        );
    }
}

#[test]
fn exhausted_not_deadlocked_with_one_thread_holding_all_guards() {
    for p in Policy::ALL {
        let pool = pool(p, 6, 100);
        let mut guards = Vec::new();
        for id in 0..4 {
            guards.push(pool.fetch_read(id).unwrap());
        }
        let w1 = pool.fetch_write(4).unwrap();
        let w2 = pool.new_page().unwrap();
        match pool.fetch_read(7) {
            Err(Error::PoolExhausted { frames: 6 }) => {}
            other => panic!("{p}: {other:?}"),
        }
        assert!(
            matches!(pool.new_page(), Err(Error::PoolExhausted { .. })),
            "{p}"
        );
        assert!(
            matches!(pool.fetch_write(8), Err(Error::PoolExhausted { .. })),
            "{p}"
        );
        // Hits still work while exhausted.
        assert_eq!(pool.fetch_read(0).unwrap().page_id(), 0);
        drop(w1);
        drop(pool.fetch_read(7).unwrap());
        drop((guards, w2));
        assert!(pool.stats().exhausted >= 3);
    }
}

// ---------------------------------------------------------------------------
// Behaviour the papers predict

/// Zipf phases separated by one-pass scans of pages never seen before.
fn zipf_with_scans(hot_pages: usize, rounds: usize, zipf_len: usize, scan_len: usize) -> Vec<u64> {
    let z = zipf(hot_pages, 0.9, rounds * zipf_len, 17);
    let mut t = Vec::new();
    let mut next_scan = hot_pages as u64;
    for r in 0..rounds {
        t.extend_from_slice(&z[r * zipf_len..(r + 1) * zipf_len]);
        for _ in 0..scan_len {
            t.push(next_scan);
            next_scan += 1;
        }
    }
    t
}

#[test]
fn two_q_and_arc_resist_a_one_pass_scan_better_than_clock() {
    let trace = zipf_with_scans(5000, 10, 20_000, 2000);
    let pages = trace.iter().max().unwrap() + 1;
    let h = |p| hit_ratio(&pool(p, 500, pages), &trace);
    let (clock, two_q, arc) = (h(Policy::Clock), h(Policy::TwoQ), h(Policy::Arc));
    eprintln!("scan resistance: clock {clock:.3} 2q {two_q:.3} arc {arc:.3}");
    assert!(two_q > clock + 0.01, "2Q {two_q} vs CLOCK {clock}");
    assert!(arc > clock + 0.01, "ARC {arc} vs CLOCK {clock}");
}

#[test]
fn two_q_beats_lru_style_policies_on_a_loop_of_1_2x_the_pool() {
    let frames = 500;
    let trace: Vec<u64> = (0..30).flat_map(|_| 0..(frames as u64 * 6 / 5)).collect();
    let h = |p| hit_ratio(&pool(p, frames, 600), &trace);
    let two_q = h(Policy::TwoQ);
    for p in [Policy::Clock, Policy::Arc, Policy::LruK, Policy::Sieve] {
        let other = h(p);
        eprintln!("loop 1.2x: 2q {two_q:.3} {p} {other:.3}");
        assert!(two_q > other + 0.3, "2Q {two_q} vs {p} {other}");
    }
    assert!(two_q > 0.5, "2Q {two_q}");
}

#[test]
fn scan_ring_keeps_the_hot_set() {
    for p in Policy::ALL {
        let pool = pool(p, 200, 20_000);
        let hot = zipf(150, 0.5, 20_000, 4);
        for &id in &hot {
            drop(pool.fetch_read(id).unwrap());
        }
        let resident_before: Vec<u64> = (0..150).filter(|&id| pool.is_resident(id)).collect();
        {
            let mut scan = pool.scan_with_ring(8);
            for id in 1000..11_000 {
                let g = scan.fetch_read(id).unwrap();
                assert_eq!(g.page_id(), id);
            }
            assert_eq!(scan.ring_len(), 8);
            assert_eq!(pool.stats().ring_frames, 8);
        }
        let kept = resident_before
            .iter()
            .filter(|&&id| pool.is_resident(id))
            .count();
        assert!(
            kept + 8 >= resident_before.len(),
            "{p}: the scan displaced {} of {} hot pages",
            resident_before.len() - kept,
            resident_before.len()
        );
        let s = pool.stats();
        assert!(s.ring_reuses >= 9_000, "{p}: {}", s.ring_reuses);
        assert_eq!(s.ring_frames, 0);
    }
}

#[test]
fn policies_refuse_bad_frames_without_panicking() {
    for p in Policy::ALL {
        let mut pol = p.build(4).unwrap();
        for f in [4u32, 100, u32::MAX] {
            pol.insert(f, 1);
            assert_eq!(pol.access(f, 1), Tier::Warm);
            pol.remove(f, 1);
            assert!(!pol.contains(f));
            assert_eq!(pol.tier(f), Tier::Warm);
        }
        assert_eq!(
            pol.access(2, 1),
            Tier::Warm,
            "{p}: access to a frame not held"
        );
        pol.remove(2, 1);
        assert_eq!(pol.len(), 0);
        assert_eq!(pol.victim(None, &mut |_| true), None);
    }
}

// ---------------------------------------------------------------------------
// Generated traces with known answers (the pool as shipped: 2 % cooling stage)

/// Hit ratio of every built-in policy on `trace` with `frames` frames.
fn all_policies(trace: &[u64], frames: usize) -> Vec<(Policy, f64)> {
    let pages = trace.iter().max().unwrap() + 1;
    Policy::ALL
        .into_iter()
        .map(|p| (p, hit_ratio(&pool(p, frames, pages), trace)))
        .collect()
}

fn of(r: &[(Policy, f64)], p: Policy) -> f64 {
    r.iter().find(|(q, _)| *q == p).unwrap().1
}

/// A loop 10× the pool: recency-based policies always evict the page needed
/// next (0 hits); OPT keeps `frames − 1` pages and hits on `99/1000` of each
/// pass after the first (9.4 % over 20 passes). LIRS-family policies and
/// S3-FIFO stay near it; the default follows LIRS.
#[test]
fn known_answers_loop_10x_the_pool() {
    let trace: Vec<u64> = (0..20).flat_map(|_| 0..1000u64).collect();
    let r = all_policies(&trace, 100);
    eprintln!("loop 10x: {r:?}");
    for p in [Policy::Lru, Policy::Clock, Policy::Arc, Policy::Sieve] {
        assert!(of(&r, p) < 0.005, "{p}: {r:?}");
    }
    for p in [
        Policy::Lirs,
        Policy::ClockPro,
        Policy::S3Fifo,
        Policy::Adaptive,
    ] {
        assert!((0.075..=0.095).contains(&of(&r, p)), "{p}: {r:?}");
    }
}

/// A zig-zag (sweeps over 1000 pages, alternately up and down) with 100
/// frames: LRU is optimal — after each turn the `frames` most recent pages are
/// the next ones, `100/1000` of each sweep after the first (9.5 % over 20).
/// LIRS keeps the pages of the first sweep and hits almost nothing; the
/// default follows CLOCK, within a point of LRU.
#[test]
fn known_answers_zigzag() {
    let trace: Vec<u64> = (0..20u64)
        .flat_map(|i| (0..1000u64).map(move |p| if i % 2 == 0 { p } else { 999 - p }))
        .collect();
    let r = all_policies(&trace, 100);
    eprintln!("zigzag: {r:?}");
    let lru = of(&r, Policy::Lru);
    assert!((0.085..=0.096).contains(&lru), "{r:?}");
    assert!(of(&r, Policy::Clock) > lru - 0.005, "{r:?}");
    assert!(of(&r, Policy::Lirs) < 0.03, "{r:?}");
    assert!(of(&r, Policy::Adaptive) > lru - 0.01, "{r:?}");
}

/// A scan over a hot set: a loop over 2000 pages interleaved 1:1 with
/// uniform hits on 60 hot pages, 100 frames. OPT keeps the hot set (every
/// hot request after the first few hits: about 50 %) plus a few loop pages;
/// LRU loses hot pages to the scan (a hot page's reuse distance, about 120
/// requests, holds more than 100 distinct pages) and CLOCK with it.
#[test]
fn known_answers_scan_over_a_hot_set() {
    let mut rng = Rng(19);
    let trace: Vec<u64> = (0..10)
        .flat_map(|_| 0..2000u64)
        .flat_map(|p| [100 + p, rng.below(60)])
        .collect();
    let r = all_policies(&trace, 100);
    eprintln!("scan over hot set: {r:?}");
    let lru = of(&r, Policy::Lru);
    for p in [
        Policy::Lirs,
        Policy::ClockPro,
        Policy::Arc,
        Policy::Adaptive,
    ] {
        assert!(of(&r, p) > 0.48, "{p}: {r:?}");
        assert!(of(&r, p) > lru + 0.05, "{p}: {r:?}");
    }
}
