//! Arbitrary sequences of alloc / alloc_zeroed / realloc / dealloc on
//! `RustyAlloc`, checked against a shadow model: live blocks never overlap,
//! alignment holds, contents survive realloc, zeroed blocks read zero.
#![no_main]

use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rustydb_memory::RustyAlloc;

#[derive(Arbitrary, Debug)]
enum Op {
    Alloc {
        size: u32,
        align_log: u8,
        zeroed: bool,
    },
    Realloc {
        index: u16,
        size: u32,
    },
    Dealloc {
        index: u16,
    },
    Purge,
}

struct Block {
    ptr: *mut u8,
    layout: Layout,
    fill: u8,
}

/// Sizes spread over every route: small classes, medium, large.
fn size_of(raw: u32) -> usize {
    match raw % 8 {
        0..=3 => (raw as usize >> 3) % 1024 + 1,
        4 | 5 => (raw as usize >> 3) % (256 << 10) + 1,
        _ => (raw as usize >> 3) % (3 << 20) + 1,
    }
}

fn check(b: &Block) {
    let n = b.layout.size();
    // SAFETY: the block is live and `n` bytes long.
    let s = unsafe { std::slice::from_raw_parts(b.ptr, n) };
    // Check the ends and a sample; full scans of multi-MiB blocks are too slow.
    for &i in &[0, n / 2, n - 1] {
        assert_eq!(s[i], b.fill, "contents lost at {i} of {n}");
    }
}

fn fill(b: &Block) {
    // SAFETY: the block is live and `size` bytes long.
    unsafe { b.ptr.write_bytes(b.fill, b.layout.size()) };
}

fuzz_target!(|ops: Vec<Op>| {
    let a = RustyAlloc::new();
    let mut live: Vec<Block> = Vec::new();
    let mut ranges: BTreeMap<usize, usize> = BTreeMap::new();
    let mut next_fill = 1u8;
    let overlaps = |ranges: &BTreeMap<usize, usize>, start: usize, len: usize| {
        ranges
            .range(..start + len)
            .next_back()
            .is_some_and(|(&s, &l)| s + l > start)
    };
    for op in ops.into_iter().take(512) {
        match op {
            Op::Alloc {
                size,
                align_log,
                zeroed,
            } => {
                let size = size_of(size);
                let align = 1usize << (align_log % 13);
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero size.
                let p = unsafe {
                    if zeroed {
                        a.alloc_zeroed(layout)
                    } else {
                        a.alloc(layout)
                    }
                };
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "misaligned");
                assert!(!overlaps(&ranges, p as usize, size), "overlap");
                if zeroed {
                    // SAFETY: live block of `size` bytes.
                    let s = unsafe { std::slice::from_raw_parts(p, size) };
                    assert!(s.iter().all(|&b| b == 0), "alloc_zeroed not zero");
                }
                let b = Block {
                    ptr: p,
                    layout,
                    fill: next_fill,
                };
                next_fill = next_fill.wrapping_add(1).max(1);
                fill(&b);
                ranges.insert(p as usize, size);
                live.push(b);
            }
            Op::Realloc { index, size } if !live.is_empty() => {
                let i = index as usize % live.len();
                let b = &mut live[i];
                check(b);
                let new = size_of(size);
                ranges.remove(&(b.ptr as usize));
                // SAFETY: live block with its layout; non-zero new size.
                let q = unsafe { a.realloc(b.ptr, b.layout, new) };
                assert!(!q.is_null());
                assert_eq!(q as usize % b.layout.align(), 0);
                let keep = b.layout.size().min(new);
                // SAFETY: `keep` bytes of the new block are initialised from the old.
                let s = unsafe { std::slice::from_raw_parts(q, keep) };
                assert!(
                    s[0] == b.fill && s[keep - 1] == b.fill,
                    "realloc lost contents"
                );
                assert!(!overlaps(&ranges, q as usize, new), "overlap after realloc");
                b.ptr = q;
                b.layout = Layout::from_size_align(new, b.layout.align()).unwrap();
                fill(b);
                ranges.insert(q as usize, new);
            }
            Op::Dealloc { index } if !live.is_empty() => {
                let b = live.swap_remove(index as usize % live.len());
                check(&b);
                ranges.remove(&(b.ptr as usize));
                // SAFETY: live block freed with its layout.
                unsafe { a.dealloc(b.ptr, b.layout) };
            }
            Op::Purge => {
                a.purge();
            }
            _ => {}
        }
    }
    for b in live {
        check(&b);
        // SAFETY: as above.
        unsafe { a.dealloc(b.ptr, b.layout) };
    }
});
