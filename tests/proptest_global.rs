//! Random alloc / alloc_zeroed / realloc / dealloc sequences against `RustyAlloc`
//! called directly as a value, checked against a shadow model: every live block
//! holds its own pattern; live blocks never overlap; alignment holds; realloc
//! keeps the prefix; zeroed blocks read zero.

#![cfg(not(rustydb_loom))]
// Tests: raw allocator calls are the point.
#![allow(clippy::undocumented_unsafe_blocks)]

use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::OnceLock;

use proptest::prelude::*;
use rustydb_memory::RustyAlloc;

const MAX_SIZE: usize = 2 << 20;

#[derive(Debug, Clone)]
enum Op {
    Alloc {
        size: usize,
        align_log: u32,
    },
    AllocZeroed {
        size: usize,
        align_log: u32,
    },
    /// `pick` selects a live block (modulo their number).
    Realloc {
        pick: usize,
        new_size: usize,
    },
    Dealloc {
        pick: usize,
    },
}

/// Mostly small blocks, some medium, a few around the 256 KiB large threshold
/// and up to 2 MiB.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        10 => 1usize..=256,
        5 => 257usize..=4096,
        3 => 4097usize..=65_536,
        1 => 65_537usize..=320_000,
        1 => 320_001usize..=MAX_SIZE,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (size(), 0u32..=12).prop_map(|(size, align_log)| Op::Alloc { size, align_log }),
        2 => (size(), 0u32..=12).prop_map(|(size, align_log)| Op::AllocZeroed { size, align_log }),
        3 => (any::<usize>(), size()).prop_map(|(pick, new_size)| Op::Realloc { pick, new_size }),
        3 => any::<usize>().prop_map(|pick| Op::Dealloc { pick }),
    ]
}

/// Random bytes; block `id` holds `pattern()[id % 251..][..size]`, so blocks
/// differ from one another and a shifted copy is noticed.
fn pattern() -> &'static [u8] {
    static P: OnceLock<Vec<u8>> = OnceLock::new();
    P.get_or_init(|| {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        (0..MAX_SIZE + 256)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    })
}

fn expected(id: u64, len: usize) -> &'static [u8] {
    let off = (id % 251) as usize;
    &pattern()[off..off + len]
}

#[derive(Debug)]
struct Block {
    addr: usize,
    layout: Layout,
    id: u64,
}

/// The shadow model: live blocks and the address intervals they occupy.
#[derive(Default)]
struct Model {
    blocks: Vec<Block>,
    /// start → (end, id)
    spans: BTreeMap<usize, (usize, u64)>,
    next_id: u64,
}

impl Model {
    fn bytes(b: &Block) -> &[u8] {
        // SAFETY: a `Block` in the model is live and `layout.size()` bytes long
        // (it leaves the model before it is freed).
        unsafe { std::slice::from_raw_parts(b.addr as *const u8, b.layout.size()) }
    }

    /// Registers a new live block after checking alignment and overlap.
    fn insert(&mut self, addr: usize, layout: Layout, id: u64) -> Result<(), TestCaseError> {
        prop_assert!(addr != 0, "allocation of {:?} failed", layout);
        prop_assert_eq!(
            addr % layout.align(),
            0,
            "{:?} at {:#x} misaligned",
            layout,
            addr
        );
        let end = addr + layout.size();
        if let Some((&s, &(e, other))) = self.spans.range(..=addr).next_back() {
            prop_assert!(
                e <= addr,
                "new block {:#x}..{:#x} overlaps live block {} at {:#x}..{:#x}",
                addr,
                end,
                other,
                s,
                e
            );
        }
        if let Some((&s, &(e, other))) = self.spans.range(addr..).next() {
            prop_assert!(
                s >= end,
                "new block {:#x}..{:#x} overlaps live block {} at {:#x}..{:#x}",
                addr,
                end,
                other,
                s,
                e
            );
        }
        self.spans.insert(addr, (end, id));
        self.blocks.push(Block { addr, layout, id });
        Ok(())
    }

    fn remove(&mut self, i: usize) -> Block {
        let b = self.blocks.swap_remove(i);
        self.spans.remove(&b.addr);
        b
    }

    /// Checks the neighbours of `addr` in address order still hold their patterns
    /// (a write to the block at `addr` must not spill into them).
    fn check_neighbours(&self, addr: usize) -> Result<(), TestCaseError> {
        let before = self.spans.range(..addr).next_back();
        let after = self.spans.range(addr + 1..).next();
        for (&s, &(e, id)) in before.into_iter().chain(after) {
            // SAFETY: `spans` holds exactly the live blocks' intervals.
            let got = unsafe { std::slice::from_raw_parts(s as *const u8, e - s) };
            prop_assert!(
                got == expected(id, e - s),
                "block {} at {:#x} was overwritten by its neighbour at {:#x}",
                id,
                s,
                addr
            );
        }
        Ok(())
    }

    fn check_all(&self) -> Result<(), TestCaseError> {
        for b in &self.blocks {
            prop_assert!(
                Self::bytes(b) == expected(b.id, b.layout.size()),
                "block {} ({:?} at {:#x}) corrupted",
                b.id,
                b.layout,
                b.addr
            );
        }
        Ok(())
    }
}

fn fill(addr: usize, from: usize, id: u64, size: usize) {
    let src = expected(id, size);
    // SAFETY: `[addr, addr + size)` is a live block of the model; `from <= size`.
    unsafe {
        (addr as *mut u8)
            .add(from)
            .copy_from_nonoverlapping(src[from..].as_ptr(), size - from);
    }
    black_box(addr as *mut u8);
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let a = RustyAlloc::new();
    let mut m = Model::default();
    let result = (|| {
        for op in ops {
            match *op {
                Op::Alloc { size, align_log } | Op::AllocZeroed { size, align_log } => {
                    let zeroed = matches!(op, Op::AllocZeroed { .. });
                    let layout = Layout::from_size_align(size, 1 << align_log).unwrap();
                    // SAFETY: `layout` has a non-zero size (the strategies draw sizes >= 1).
                    let p = black_box(unsafe {
                        if zeroed {
                            a.alloc_zeroed(layout)
                        } else {
                            a.alloc(layout)
                        }
                    }) as usize;
                    let id = m.next_id;
                    m.next_id += 1;
                    m.insert(p, layout, id)?;
                    if zeroed {
                        let b = m.blocks.last().unwrap();
                        let bytes = Model::bytes(b);
                        prop_assert!(
                            bytes.iter().all(|&x| x == 0),
                            "alloc_zeroed({:?}) at {:#x}: byte {} is not zero",
                            layout,
                            p,
                            bytes.iter().position(|&x| x != 0).unwrap()
                        );
                    }
                    fill(p, 0, id, size);
                    m.check_neighbours(p)?;
                }
                Op::Realloc { pick, new_size } => {
                    if m.blocks.is_empty() {
                        continue;
                    }
                    let b = m.remove(pick % m.blocks.len());
                    let old = b.layout.size();
                    // SAFETY: `b` was live with `b.layout` and left the model; `new_size` > 0.
                    let q = black_box(unsafe { a.realloc(b.addr as *mut u8, b.layout, new_size) })
                        as usize;
                    let layout = Layout::from_size_align(new_size, b.layout.align()).unwrap();
                    m.insert(q, layout, b.id)?;
                    let keep = old.min(new_size);
                    // SAFETY: `q` is the live block of `new_size >= keep` bytes.
                    let got = unsafe { std::slice::from_raw_parts(q as *const u8, keep) };
                    prop_assert!(
                        got == expected(b.id, keep),
                        "realloc {} → {} (align {}, {:#x} → {:#x}) lost the prefix",
                        old,
                        new_size,
                        b.layout.align(),
                        b.addr,
                        q
                    );
                    if new_size > old {
                        fill(q, old, b.id, new_size);
                    }
                    m.check_neighbours(q)?;
                }
                Op::Dealloc { pick } => {
                    if m.blocks.is_empty() {
                        continue;
                    }
                    let b = m.remove(pick % m.blocks.len());
                    prop_assert!(
                        Model::bytes(&b) == expected(b.id, b.layout.size()),
                        "block {} ({:?} at {:#x}) corrupted before free",
                        b.id,
                        b.layout,
                        b.addr
                    );
                    // SAFETY: `b` was live with `b.layout` and left the model: freed once.
                    unsafe { a.dealloc(black_box(b.addr as *mut u8), b.layout) };
                }
            }
        }
        m.check_all()
    })();
    // Free what is left, whatever the outcome, so failing cases do not leak into
    // the next ones (and shrinking does not run out of memory).
    for b in m.blocks.drain(..) {
        // SAFETY: the model's blocks are live with their layouts; each freed once.
        unsafe { a.dealloc(b.addr as *mut u8, b.layout) };
    }
    result
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_sequences_match_the_shadow_model(ops in prop::collection::vec(op(), 1..300)) {
        run(&ops)?;
    }
}

/// Many small blocks of a few classes, so freed blocks are reused at once and
/// an overlap or stale-content bug in the magazines would show quickly.
fn small_op() -> impl Strategy<Value = Op> {
    let size = prop_oneof![
        Just(8usize),
        Just(16),
        Just(24),
        Just(100),
        Just(1000),
        1usize..=64
    ];
    prop_oneof![
        4 => (size.clone(), 0u32..=6).prop_map(|(size, align_log)| Op::Alloc { size, align_log }),
        2 => (size.clone(), 0u32..=6).prop_map(|(size, align_log)| Op::AllocZeroed { size, align_log }),
        2 => (any::<usize>(), size).prop_map(|(pick, new_size)| Op::Realloc { pick, new_size }),
        4 => any::<usize>().prop_map(|pick| Op::Dealloc { pick }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    })]

    #[test]
    fn small_block_churn_matches_the_shadow_model(ops in prop::collection::vec(small_op(), 1..2000)) {
        run(&ops)?;
    }
}

#[test]
fn impossible_requests_fail_cleanly_and_keep_the_old_block() {
    let a = RustyAlloc::new();
    let huge = Layout::from_size_align(isize::MAX as usize - 8191, 4096).unwrap();
    // SAFETY: a non-zero size; the request fails without touching memory.
    assert!(unsafe { a.alloc(huge) }.is_null());
    // SAFETY: a non-zero size; the request fails without touching memory.
    assert!(unsafe { a.alloc_zeroed(huge) }.is_null());
    for (size, align) in [(100, 8), (5000, 64), (300_000, 8), (300_000, 8192)] {
        let l = Layout::from_size_align(size, align).unwrap();
        // SAFETY: a non-zero size.
        let p = unsafe { a.alloc(l) };
        assert!(!p.is_null());
        // SAFETY: `p` is the live block of `size` bytes just allocated.
        unsafe { p.write_bytes(0x3C, size) };
        // SAFETY: `p` is live with layout `l`; the new size is non-zero.
        let q = unsafe { a.realloc(p, l, isize::MAX as usize - 2 * align + 1) };
        assert!(q.is_null(), "realloc to an impossible size must fail");
        // SAFETY: the failed `realloc` left `p` live, `size` bytes, written above.
        let bytes = unsafe { std::slice::from_raw_parts(black_box(p), size) };
        assert!(
            bytes.iter().all(|&b| b == 0x3C),
            "failed realloc kept the block"
        );
        // SAFETY: `p` is still live with `l` and is freed once.
        unsafe { a.dealloc(p, l) };
    }
}
