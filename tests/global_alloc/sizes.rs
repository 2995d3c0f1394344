//! Every size and alignment round trips; realloc in place; live blocks never overlap.

use super::*;

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
