//! The classic allocator workloads, each reimplemented from its published
//! description (mimalloc-bench, rpmalloc's benchmark, Hoard's tests). Every one
//! returns a checksum that depends only on the request sequence (not on thread
//! timing), so every allocator must produce the same value; blocks are checked
//! when freed ([`Blk`]).
//!
//! Six of them duplicate programs of mimalloc-bench (`sh6bench`, `larson`,
//! `xmalloc` ↔ `xmalloc-test`, `mstress`, `cache_scratch` ↔ `cache-scratch`,
//! `rptest`; `big::malloc_large` ↔ `malloc-large`). The originals run unchanged
//! under the same allocators through the C ABI with `scripts/mimalloc-bench`;
//! BENCHMARKS.md ("mimalloc-bench", "The suite beside the originals") sets the
//! ratios of both side by side.

use std::alloc::{Layout, alloc, dealloc};
use std::hint::black_box;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Mutex, mpsc};

use crate::common::{Blk, Rng, fail, par};

/// Hot pair: each thread allocates and frees one object at a time, `n` times,
/// cycling through eight sizes from 16 B to 1 KiB (the allocator's fastest path;
/// the object is written and read back).
pub fn hot(threads: usize, n: usize) -> u64 {
    const SIZES: [usize; 8] = [16, 24, 32, 64, 128, 256, 512, 1024];
    par(threads, |_| {
        let mut sum = 0u64;
        for i in 0..n {
            let layout =
                Layout::from_size_align(SIZES[i & 7], 8).unwrap_or_else(|_| fail("layout"));
            // SAFETY: non-zero size; the block is freed once below with its layout.
            unsafe {
                let p = alloc(layout);
                if p.is_null() {
                    fail("out of memory");
                }
                p.write(i as u8);
                let p = black_box(p);
                sum += u64::from(p.read());
                dealloc(p, layout);
            }
        }
        sum
    })
    .into_iter()
    .sum()
}

/// Batch: each thread allocates 10 000 objects of one size, then frees them in
/// allocation order; `rounds` times, the size cycling 16 B, 64 B, 256 B, 1 KiB.
pub fn batch(threads: usize, rounds: usize) -> u64 {
    const SIZES: [usize; 4] = [16, 64, 256, 1024];
    const BATCH: usize = 10_000;
    par(threads, |_| {
        let mut v: Vec<Blk> = Vec::with_capacity(BATCH);
        let mut sum = 0u64;
        for r in 0..rounds {
            let size = SIZES[r % SIZES.len()];
            for i in 0..BATCH {
                v.push(Blk::new(size, i as u32));
            }
            for b in v.drain(..) {
                sum += u64::from(b.free());
            }
        }
        sum
    })
    .into_iter()
    .sum()
}

/// sh6bench-like: each thread, per round, allocates 2 000 blocks of 16–1 000 B,
/// frees every other one in reverse (LIFO) order and allocates them again, frees
/// all in reverse order, then allocates 2 000 more and frees them in allocation
/// (FIFO) order.
pub fn sh6bench(threads: usize, rounds: usize) -> u64 {
    const N: usize = 2_000;
    par(threads, |t| {
        let mut rng = Rng::new(0x5116 + t as u64);
        let mut v: Vec<Option<Blk>> = (0..N).map(|_| None).collect();
        let mut sum = 0u64;
        let mut id = 0u32;
        let mut new = |rng: &mut Rng, sum: &mut u64| {
            let len = rng.range(16, 1_000);
            *sum += len as u64;
            id = id.wrapping_add(1);
            Blk::new(len, id)
        };
        for _ in 0..rounds {
            for slot in v.iter_mut() {
                *slot = Some(new(&mut rng, &mut sum));
            }
            for i in (1..N).step_by(2).rev() {
                v[i].take().map(Blk::free);
            }
            for i in (1..N).step_by(2) {
                v[i] = Some(new(&mut rng, &mut sum));
            }
            for slot in v.iter_mut().rev() {
                slot.take().map(Blk::free);
            }
            for slot in v.iter_mut() {
                *slot = Some(new(&mut rng, &mut sum));
            }
            for slot in v.iter_mut() {
                slot.take().map(Blk::free);
            }
        }
        sum
    })
    .into_iter()
    .sum()
}

/// larson-like server churn: each thread owns 5 000 slots of 16–1 000 B blocks
/// and replaces a random one at a time (free, then allocate a new random size).
/// The slots are first filled by the main thread, and the work runs in 10
/// generations: each generation's threads exit and hand their slots to fresh
/// threads, which free blocks allocated by threads that no longer exist.
/// `ops` replacements per thread in all.
pub fn larson(threads: usize, ops: usize) -> u64 {
    const SLOTS: usize = 5_000;
    const GENERATIONS: usize = 10;
    let mut init = Rng::new(0x1A450);
    let mut sum = 0u64;
    let mut sets: Vec<Vec<Blk>> = (0..threads)
        .map(|_| {
            (0..SLOTS)
                .map(|i| {
                    let len = init.range(16, 1_000);
                    sum += len as u64;
                    Blk::new(len, i as u32)
                })
                .collect()
        })
        .collect();
    let per_gen = ops / GENERATIONS;
    for g in 0..GENERATIONS {
        let cells: Vec<Mutex<Vec<Blk>>> = sets.drain(..).map(Mutex::new).collect();
        let sums = par(threads, |t| {
            let mut slots = std::mem::take(&mut *cells[t].lock().unwrap_or_else(|_| fail("lock")));
            let mut rng = Rng::new((g * 1_000 + t) as u64);
            let mut s = 0u64;
            for i in 0..per_gen {
                let victim = rng.below(SLOTS);
                let len = rng.range(16, 1_000);
                s += len as u64;
                let fresh = Blk::new(len, i as u32);
                std::mem::replace(&mut slots[victim], fresh).free();
            }
            *cells[t].lock().unwrap_or_else(|_| fail("lock")) = slots;
            s
        });
        sum += sums.iter().sum::<u64>();
        sets = cells
            .into_iter()
            .map(|c| c.into_inner().unwrap_or_else(|_| fail("lock")))
            .collect();
    }
    for set in sets {
        for b in set {
            b.free();
        }
    }
    sum
}

/// xmalloc-like producer/consumer: half the threads (at least one) allocate
/// 16–128 B blocks and send them in batches of 64 to the other half (at least
/// one), which check and free them. `blocks` per producer.
pub fn xmalloc(threads: usize, blocks: usize) -> u64 {
    const BATCH: usize = 64;
    let producers = (threads / 2).max(1);
    let consumers = threads.saturating_sub(producers).max(1);
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..consumers)
        .map(|_| mpsc::sync_channel::<Vec<Blk>>(16))
        .unzip();
    let produced = AtomicU64::new(0);
    let consumed = std::thread::scope(|s| {
        let mut hs = Vec::new();
        for rx in rxs {
            hs.push(s.spawn(move || {
                let mut sum = 0u64;
                for batch in rx {
                    for b in batch {
                        sum += b.check().0 as u64;
                        b.free();
                    }
                }
                sum
            }));
        }
        for p in 0..producers {
            let txs = txs.clone();
            let produced = &produced;
            s.spawn(move || {
                let mut rng = Rng::new(0x3A110C + p as u64);
                let mut batch = Vec::with_capacity(BATCH);
                let mut sum = 0u64;
                for i in 0..blocks {
                    let len = rng.range(16, 128);
                    sum += len as u64;
                    batch.push(Blk::new(len, i as u32));
                    if batch.len() == BATCH || i + 1 == blocks {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        if txs[(p + i / BATCH) % txs.len()].send(full).is_err() {
                            fail("consumer gone");
                        }
                    }
                }
                produced.fetch_add(sum, Ordering::Relaxed);
            });
        }
        drop(txs);
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| fail("consumer panicked")))
            .sum::<u64>()
    });
    if consumed != produced.load(Ordering::Relaxed) {
        fail("xmalloc: consumers freed other bytes than producers allocated");
    }
    consumed
}

/// Size distribution of `mstress`: mostly small, some medium, a few large
/// (0.5 % from 64 to 512 KiB, the large-object path above 256 KiB).
fn mstress_size(rng: &mut Rng) -> usize {
    match rng.below(1_000) {
        0..800 => rng.range(16, 256),
        800..950 => rng.range(257, 4_096),
        950..995 => rng.range(4_097, 65_536),
        _ => rng.range(65_537, 512 << 10),
    }
}

/// mstress-like thread churn (after mimalloc's stress test): 20 rounds, each on
/// fresh threads. Every thread keeps 500 slots; per step it allocates into a
/// random slot, frees one, reallocates one to a new random size (growing or
/// shrinking, contents checked), or swaps one with a process-wide transfer array
/// (so objects are freed by other threads). A quarter of each thread's objects
/// survive it and are adopted and freed by a thread of the next round.
/// `steps` per thread in all.
pub fn mstress(threads: usize, steps: usize) -> u64 {
    const ROUNDS: usize = 20;
    const SLOTS: usize = 500;
    const TRANSFER: usize = 1_000;
    let transfer: Vec<AtomicPtr<u8>> = (0..TRANSFER)
        .map(|_| AtomicPtr::new(std::ptr::null_mut()))
        .collect();
    let survivors: Vec<Mutex<Vec<Blk>>> = (0..threads).map(|_| Mutex::new(Vec::new())).collect();
    let allocs = AtomicU64::new(0);
    let frees = AtomicU64::new(0);
    let mut sum = 0u64;
    let per_round = steps / ROUNDS;
    for r in 0..ROUNDS {
        let sums = par(threads, |t| {
            let mut rng = Rng::new((r * 1_000 + t) as u64 ^ 0x357E55);
            let (mut a, mut f, mut s) = (0u64, 0u64, 0u64);
            let mut slots: Vec<Option<Blk>> = (0..SLOTS).map(|_| None).collect();
            // Adopt the survivors of a thread of the previous round.
            let adopted = std::mem::take(
                &mut *survivors[(t + 1) % threads]
                    .lock()
                    .unwrap_or_else(|_| fail("lock")),
            );
            for (i, b) in adopted.into_iter().enumerate() {
                if let Some(old) = slots[i % SLOTS].replace(b) {
                    old.free();
                    f += 1;
                }
            }
            for i in 0..per_round {
                let slot = rng.below(SLOTS);
                let op = rng.below(100);
                let len = mstress_size(&mut rng);
                s += len as u64;
                match op {
                    0..50 => {
                        let b = Blk::new(len, i as u32);
                        a += 1;
                        if let Some(old) = slots[slot].replace(b) {
                            old.free();
                            f += 1;
                        }
                    }
                    50..70 => {
                        if let Some(old) = slots[slot].take() {
                            old.free();
                            f += 1;
                        }
                    }
                    70..90 => {
                        if let Some(old) = slots[slot].take() {
                            slots[slot] = Some(old.realloc(len, i as u32));
                        }
                    }
                    _ => {
                        let mine = slots[slot]
                            .take()
                            .map_or(std::ptr::null_mut(), Blk::into_raw);
                        let theirs = transfer[rng.below(TRANSFER)].swap(mine, Ordering::AcqRel);
                        // SAFETY: the transfer array holds owned blocks from into_raw;
                        // the swap made this thread their only owner.
                        slots[slot] = unsafe { Blk::from_raw(theirs) };
                    }
                }
            }
            // A quarter of the objects survive the thread.
            let mut keep = Vec::new();
            for (i, b) in slots.into_iter().enumerate() {
                if let Some(b) = b {
                    if i % 4 == 0 {
                        keep.push(b);
                    } else {
                        b.free();
                        f += 1;
                    }
                }
            }
            survivors[t]
                .lock()
                .unwrap_or_else(|_| fail("lock"))
                .extend(keep);
            allocs.fetch_add(a, Ordering::Relaxed);
            frees.fetch_add(f, Ordering::Relaxed);
            s
        });
        sum += sums.iter().sum::<u64>();
    }
    let mut f = 0;
    for cell in survivors {
        for b in cell.into_inner().unwrap_or_else(|_| fail("lock")) {
            b.free();
            f += 1;
        }
    }
    for p in &transfer {
        // SAFETY: as above; no other thread is left.
        if let Some(b) = unsafe { Blk::from_raw(p.swap(std::ptr::null_mut(), Ordering::AcqRel)) } {
            b.free();
            f += 1;
        }
    }
    if allocs.load(Ordering::Relaxed) != frees.load(Ordering::Relaxed) + f {
        fail("mstress: allocations and frees differ");
    }
    sum
}

/// cache-scratch (Hoard's passive false-sharing test): the main thread allocates
/// one 8-byte object per thread and hands it over; each thread frees it, then
/// 1 000 times allocates an 8-byte object, increments it `reps` times and frees
/// it. An allocator that gives the threads objects from one cache line makes the
/// increments fight over that line.
pub fn cache_scratch(threads: usize, reps: usize) -> u64 {
    const ITERATIONS: usize = 1_000;
    let layout = Layout::from_size_align(8, 8).unwrap_or_else(|_| fail("layout"));
    let given: Vec<usize> = (0..threads)
        .map(|_| {
            // SAFETY: non-zero size; freed by the worker with the same layout.
            let p = unsafe { alloc(layout) };
            if p.is_null() {
                fail("out of memory");
            }
            p as usize
        })
        .collect();
    let lines = par(threads, |t| {
        // SAFETY: the object handed to this thread, freed once.
        unsafe { dealloc(given[t] as *mut u8, layout) };
        let mut total = 0u64;
        let mut lines = Vec::new();
        for _ in 0..ITERATIONS {
            // SAFETY: non-zero size; written, read and freed below.
            unsafe {
                let p = alloc(layout).cast::<u64>();
                if p.is_null() {
                    fail("out of memory");
                }
                let line = p as usize / 64;
                if lines.last() != Some(&line) {
                    lines.push(line);
                }
                p.write_volatile(0);
                for _ in 0..reps {
                    p.write_volatile(p.read_volatile() + 1);
                }
                total += p.read_volatile();
                dealloc(p.cast(), layout);
            }
        }
        if total != (ITERATIONS * reps) as u64 {
            fail("cache-scratch: lost increments");
        }
        lines.sort_unstable();
        lines.dedup();
        lines
    });
    // Diagnostic: cache lines that objects of two different threads occupied.
    let mut all: Vec<(usize, usize)> = lines
        .iter()
        .enumerate()
        .flat_map(|(t, ls)| ls.iter().map(move |&l| (l, t)))
        .collect();
    all.sort_unstable();
    let shared = all
        .windows(2)
        .filter(|w| w[0].0 == w[1].0 && w[0].1 != w[1].1)
        .count();
    eprintln!("cache-scratch: {shared} cache line(s) used by objects of two threads");
    (threads * ITERATIONS * reps) as u64
}

/// Size distribution of `rptest`: 16–8 000 B, weighted toward small sizes.
fn rp_size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..60 => rng.range(16, 128),
        60..90 => rng.range(129, 1_024),
        _ => rng.range(1_025, 8_000),
    }
}

/// rptest-like (rpmalloc's benchmark): each thread, per iteration, allocates 256
/// blocks of random size 16–8 000 B, frees a random quarter of them at once in
/// random order, hands an eighth to the next thread (which frees them; at most 8
/// such batches wait per thread, beyond that the sender frees them itself), frees
/// what it was handed, and keeps the rest live for 8 iterations.
pub fn rptest(threads: usize, iterations: usize) -> u64 {
    const BATCH: usize = 256;
    const KEEP: usize = 8;
    const MAILBOX: usize = 8;
    let mailboxes: Vec<Mutex<Vec<Vec<Blk>>>> =
        (0..threads).map(|_| Mutex::new(Vec::new())).collect();
    let sums = par(threads, |t| {
        let mut rng = Rng::new(0x4971E57 + t as u64);
        let mut ring: std::collections::VecDeque<Vec<Blk>> = std::collections::VecDeque::new();
        let mut sum = 0u64;
        for it in 0..iterations {
            let mut batch: Vec<Blk> = Vec::with_capacity(BATCH);
            for k in 0..BATCH {
                let len = rp_size(&mut rng);
                sum += len as u64;
                batch.push(Blk::new(len, (it * BATCH + k) as u32));
            }
            for _ in 0..BATCH / 4 {
                let i = rng.below(batch.len());
                batch.swap_remove(i).free();
            }
            let give = batch.split_off(batch.len() - BATCH / 8);
            {
                let mut next = mailboxes[(t + 1) % threads]
                    .lock()
                    .unwrap_or_else(|_| fail("lock"));
                if next.len() < MAILBOX {
                    next.push(give);
                } else {
                    // The next thread is behind (descheduled): keep the memory in
                    // flight bounded, whatever the scheduling.
                    drop(next);
                    for b in give {
                        b.free();
                    }
                }
            }
            let got = std::mem::take(&mut *mailboxes[t].lock().unwrap_or_else(|_| fail("lock")));
            for b in got.into_iter().flatten() {
                b.free();
            }
            ring.push_back(batch);
            if ring.len() > KEEP {
                for b in ring.pop_front().into_iter().flatten() {
                    b.free();
                }
            }
        }
        for b in ring.into_iter().flatten() {
            b.free();
        }
        sum
    });
    for m in mailboxes {
        for b in m
            .into_inner()
            .unwrap_or_else(|_| fail("lock"))
            .into_iter()
            .flatten()
        {
            b.free();
        }
    }
    sums.iter().sum()
}
