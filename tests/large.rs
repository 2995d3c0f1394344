//! Behaviour of the large-object allocator: the mapping cache, realloc, advice,
//! prefault, huge pages and their fallbacks. Each test uses its own
//! `LargeObjectAllocator`, so counters are exact even with tests in parallel.

use std::alloc::{GlobalAlloc, Layout};
use std::time::Duration;

use rustydb_memory::{
    Advice, AllocOptions, Error, HugePagePolicy, HugePageSize, LargeObjectAllocator, RustyAlloc,
};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// An allocator with no decay during the test and the given cache bound.
fn fresh() -> LargeObjectAllocator {
    LargeObjectAllocator::builder()
        .huge_pages(HugePagePolicy::Never)
        .cache_max_bytes(256 * MIB)
        .purge_delay(Duration::from_secs(3600))
        .build()
}

/// Pages of `[p, p+len)` resident now, by `mincore`.
fn resident_pages(p: *const u8, len: usize) -> usize {
    let page = 4096;
    let mut v = vec![0u8; len.div_ceil(page)];
    // SAFETY: `p` is page aligned and `[p, p+len)` is mapped; `v` has one byte per page.
    let r = unsafe { libc::mincore(p as *mut libc::c_void, len, v.as_mut_ptr()) };
    assert_eq!(r, 0, "mincore failed");
    v.iter().filter(|&&b| b & 1 != 0).count()
}

/// `AnonHugePages` (bytes) of the mappings overlapping `[start, start+len)`.
fn anon_huge_bytes(start: usize, len: usize) -> usize {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut inside = false;
    let mut total = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            inside = a < start + len && start < b;
            continue;
        }
        if inside && let Some(rest) = line.strip_prefix("AnonHugePages:") {
            let kb: usize = rest.trim().trim_end_matches("kB").trim().parse().unwrap();
            total += kb * 1024;
        }
    }
    total
}

fn read_sys_usize(path: &str) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[test]
fn a_freed_block_is_reused_from_the_cache_without_mapping() {
    let large = fresh();
    let l = layout(MIB);
    let p = large.try_alloc(l).unwrap();
    // SAFETY: `p` is a live 1 MiB block.
    unsafe { p.as_ptr().write_bytes(0x5a, MIB) };
    let before = large.stats();
    assert_eq!((before.live, before.mmap_calls, before.cached), (1, 1, 0));
    // SAFETY: `p` came from `large` with `l`.
    unsafe { large.dealloc(p.as_ptr(), l) };
    let s = large.stats();
    assert_eq!((s.live, s.cached, s.bytes_cached), (0, 1, MIB));
    assert_eq!(s.munmap_calls, 0, "freeing into the cache unmaps nothing");
    let q = large.try_alloc(l).unwrap();
    let s = large.stats();
    assert_eq!(q, p, "the cached mapping comes back");
    assert_eq!(s.mmap_calls, 1, "no new mapping");
    assert_eq!((s.cache_hits, s.cache_misses), (1, 1));
    assert_eq!((s.live, s.bytes_in_use, s.bytes_mapped), (1, MIB, MIB));
    // SAFETY: `q` came from `large` with `l`.
    unsafe { large.dealloc(q.as_ptr(), l) };
}

#[test]
fn zeroed_blocks_from_the_cache_are_zero() {
    let large = fresh();
    for size in [256 * KIB, 300 * KIB + 5, MIB, 4 * MIB] {
        let l = layout(size);
        let p = large.try_alloc(l).unwrap();
        // SAFETY: `p` is a live block of `size` bytes.
        unsafe { p.as_ptr().write_bytes(0xff, size) };
        // SAFETY: `p` came from `large` with `l`.
        unsafe { large.dealloc(p.as_ptr(), l) };
        let maps = large.stats().mmap_calls;
        let q = large.try_alloc_zeroed(l).unwrap();
        assert_eq!(large.stats().mmap_calls, maps, "{size}: reused, not mapped");
        // SAFETY: `q` is a live block of `size` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(q.as_ptr(), size) };
        assert!(
            bytes.iter().all(|&b| b == 0),
            "{size}: dirty bytes in a zeroed block"
        );
        // SAFETY: as above.
        unsafe { large.dealloc(q.as_ptr(), l) };
    }
}

#[test]
fn purge_empties_the_cache_and_the_next_request_maps_again() {
    let large = fresh();
    let ls = [layout(256 * KIB), layout(MIB), layout(3 * MIB)];
    let ps: Vec<_> = ls.iter().map(|&l| large.try_alloc(l).unwrap()).collect();
    for (p, &l) in ps.iter().zip(&ls) {
        // SAFETY: each block came from `large` with its layout.
        unsafe { large.dealloc(p.as_ptr(), l) };
    }
    let s = large.stats();
    assert!(s.cached >= 1 && s.bytes_cached == 256 * KIB + MIB + 3 * MIB);
    let released = large.purge();
    let t = large.stats();
    assert_eq!(released, 256 * KIB + MIB + 3 * MIB);
    assert_eq!((t.cached, t.bytes_cached, t.bytes_mapped), (0, 0, 0));
    assert_eq!(t.munmap_calls, s.munmap_calls + s.cached as u64);
    let p = large.try_alloc(layout(MIB)).unwrap();
    assert_eq!(
        large.stats().mmap_calls,
        t.mmap_calls + 1,
        "cache is empty: maps"
    );
    // SAFETY: `p` came from `large`.
    unsafe { large.dealloc(p.as_ptr(), layout(MIB)) };
}

#[test]
fn cached_blocks_decay_after_the_delay() {
    // Without a muzzy stage, a block is unmapped at the purge delay.
    let large = LargeObjectAllocator::builder()
        .purge_delay(Duration::from_millis(50))
        .muzzy_delay(Duration::ZERO)
        .cache_max_bytes(64 * MIB)
        .build();
    let p = large.try_alloc(layout(MIB)).unwrap();
    // SAFETY: `p` came from `large`.
    unsafe { large.dealloc(p.as_ptr(), layout(MIB)) };
    assert_eq!(large.decay(), 0, "too young to decay");
    assert_eq!(large.stats().cached, 1);
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(large.decay(), MIB);
    let s = large.stats();
    assert_eq!((s.cached, s.cache_decayed), (0, 1));
    assert_eq!(s.cache_lazily_freed_bytes, 0, "no MADV_FREE stage");
}

#[test]
fn cached_blocks_decay_in_two_stages() {
    // Dirty for 50 ms, then MADV_FREE (still cached, reusable), then unmapped
    // after the muzzy delay.
    let large = LargeObjectAllocator::builder()
        .purge_delay(Duration::from_millis(50))
        .muzzy_delay(Duration::from_millis(1000))
        .cache_max_bytes(64 * MIB)
        .build();
    let p = large.try_alloc(layout(MIB)).unwrap();
    // SAFETY: `p` came from `large`.
    unsafe { large.dealloc(p.as_ptr(), layout(MIB)) };
    assert_eq!(large.decay(), 0, "too young to decay");
    assert_eq!(large.stats().cache_lazily_freed_bytes, 0);
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(large.decay(), 0, "muzzy, not unmapped yet");
    let s = large.stats();
    assert_eq!(s.cached, 1);
    assert_eq!(s.cache_lazily_freed_bytes, MIB as u64);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(large.decay(), MIB);
    let s = large.stats();
    assert_eq!((s.cached, s.cache_decayed), (0, 1));
}

#[test]
fn the_cache_respects_its_bounds() {
    let large = LargeObjectAllocator::builder()
        .cache_max_entries(2)
        .cache_max_block(2 * MIB)
        .purge_delay(Duration::from_secs(3600))
        .build();
    // 8 MiB-aligned blocks shorter than 8 MiB can never touch, so none merge.
    let sizes = [256 * KIB, 512 * KIB, MIB, 4 * MIB];
    let al = |s: usize| Layout::from_size_align(s, 8 * MIB).unwrap();
    let ps: Vec<_> = sizes
        .iter()
        .map(|&s| large.try_alloc(al(s)).unwrap())
        .collect();
    let maps = large.stats().munmap_calls; // the over-mapping trims
    for (p, &s) in ps.iter().zip(&sizes) {
        // SAFETY: each block came from `large` with its layout.
        unsafe { large.dealloc(p.as_ptr(), al(s)) };
    }
    let s = large.stats();
    assert_eq!(
        (s.cached, s.bytes_cached),
        (2, 512 * KIB + MIB),
        "the two newest: {s:?}"
    );
    assert_eq!(s.cache_evictions, 1, "the oldest made room");
    assert_eq!(
        s.munmap_calls - maps,
        2,
        "the evicted one and the 4 MiB one (over the block bound)"
    );
    assert_eq!((s.live, s.cache_merges), (0, 0));

    let off = LargeObjectAllocator::builder().cache_max_bytes(0).build();
    let p = off.try_alloc(layout(MIB)).unwrap();
    // SAFETY: `p` came from `off`.
    unsafe { off.dealloc(p.as_ptr(), layout(MIB)) };
    let s = off.stats();
    assert_eq!(
        (s.cached, s.munmap_calls),
        (0, 1),
        "cache disabled: unmapped at once"
    );
}

#[test]
fn a_bigger_cached_block_is_split_and_merges_back_when_freed() {
    let large = fresh();
    let big = large.try_alloc(layout(8 * MIB)).unwrap();
    // SAFETY: `big` came from `large`.
    unsafe { large.dealloc(big.as_ptr(), layout(8 * MIB)) };
    let a = large.try_alloc(layout(MIB)).unwrap();
    let b = large.try_alloc(layout(2 * MIB)).unwrap();
    assert_eq!(a, big, "front of the cached block");
    assert_eq!(
        b.as_ptr() as usize,
        big.as_ptr() as usize + MIB,
        "then the next piece"
    );
    assert_eq!(large.usable_size(a.as_ptr()), Some(MIB));
    let s = large.stats();
    assert_eq!(
        (s.mmap_calls, s.cache_splits, s.cached, s.bytes_cached),
        (1, 2, 1, 5 * MIB)
    );
    // SAFETY: both came from `large`.
    unsafe {
        large.dealloc(a.as_ptr(), layout(MIB));
        large.dealloc(b.as_ptr(), layout(2 * MIB));
    }
    let s = large.stats();
    assert_eq!((s.cached, s.bytes_cached, s.cache_merges), (1, 8 * MIB, 2));
    let again = large.try_alloc(layout(8 * MIB)).unwrap();
    assert_eq!(again, big, "whole again");
    assert_eq!(large.stats().mmap_calls, 1);
    // SAFETY: came from `large`.
    unsafe { large.dealloc(again.as_ptr(), layout(8 * MIB)) };
}

#[test]
fn contents_survive_mremap_growth_from_256k_to_1g() {
    let large = fresh();
    let mark = |i: usize| (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut size = 256 * KIB;
    let mut p = large.try_alloc(layout(size)).unwrap().as_ptr();
    // SAFETY: `p` is a live block of `size` bytes.
    unsafe { p.write_bytes(0xc3, size) };
    let mut marked = 0; // one u64 every 64 KiB of the block, written as it grows
    loop {
        while marked < size / (64 * KIB) {
            // SAFETY: offset `marked * 64 KiB` is inside the block, u64-aligned.
            unsafe { p.add(marked * 64 * KIB).cast::<u64>().write(mark(marked)) };
            marked += 1;
        }
        for i in 0..marked {
            // SAFETY: as above.
            let v = unsafe { p.add(i * 64 * KIB).cast::<u64>().read() };
            assert_eq!(v, mark(i), "mark {i} lost at {size} bytes");
        }
        if size == 1 << 30 {
            break;
        }
        // SAFETY: `p` is live with `layout(size)`; on Ok only the new pointer is used.
        p = unsafe { large.try_realloc(p, layout(size), size * 2) }
            .unwrap()
            .as_ptr();
        size *= 2;
    }
    // SAFETY: the first 256 KiB are live; all but the marks kept their fill.
    let head = unsafe { std::slice::from_raw_parts(p, 256 * KIB) };
    assert!(
        head.iter()
            .enumerate()
            .all(|(i, &b)| i % (64 * KIB) < 8 || b == 0xc3)
    );
    let s = large.stats();
    assert_eq!(s.mremap_calls, 12, "256 KiB → 1 GiB is 12 doublings");
    assert_eq!((s.mmap_calls, s.bytes_in_use), (1, 1 << 30));
    // SAFETY: `p` came from `large` (resized to 1 GiB).
    unsafe { large.dealloc(p, layout(1 << 30)) };
    assert_eq!(large.stats().bytes_mapped, 0, "a 1 GiB block is not cached");
}

#[test]
fn shrinking_unmaps_the_tail_in_place() {
    let large = fresh();
    let p = large.try_alloc(layout(4 * MIB)).unwrap();
    // SAFETY: `p` is a live 4 MiB block.
    unsafe { p.as_ptr().write_bytes(7, 4 * MIB) };
    let before = large.stats().munmap_calls;
    // SAFETY: `p` is live with `layout(4 MiB)`.
    let q = unsafe { large.try_realloc(p.as_ptr(), layout(4 * MIB), MIB + 1) }.unwrap();
    assert_eq!(q, p, "in place");
    assert_eq!(large.usable_size(q.as_ptr()), Some(MIB + 4096));
    let s = large.stats();
    assert_eq!(
        (s.munmap_calls, s.bytes_mapped, s.bytes_in_use),
        (before + 1, MIB + 4096, MIB + 1)
    );
    // SAFETY: `q` has `MIB + 1` live bytes.
    let bytes = unsafe { std::slice::from_raw_parts(q.as_ptr(), MIB + 1) };
    assert!(bytes.iter().all(|&b| b == 7));
    // Growing again within the same page count is free.
    // SAFETY: `q` is live with `layout(MIB + 1)`.
    let r = unsafe { large.try_realloc(q.as_ptr(), layout(MIB + 1), MIB + 4096) }.unwrap();
    assert_eq!((r, large.stats().mremap_calls), (q, 0));
    // SAFETY: came from `large`.
    unsafe { large.dealloc(r.as_ptr(), layout(MIB + 4096)) };
}

#[test]
fn advice_outside_our_live_mappings_is_an_error() {
    let large = fresh();
    let p = large.try_alloc(layout(MIB)).unwrap().as_ptr();
    for a in [
        Advice::Normal,
        Advice::Sequential,
        Advice::Random,
        Advice::WillNeed,
        Advice::HugePage,
        Advice::NoHugePage,
    ] {
        large.advise(p, MIB, a).unwrap();
    }
    // SAFETY: `p + 10` is inside the block.
    large
        .advise(unsafe { p.add(10) }, 5000, Advice::Random)
        .unwrap();

    let on_stack = [0u8; 64];
    let heap = vec![0u8; 2 * MIB];
    let unknown = |r: Result<(), Error>| matches!(r, Err(Error::UnknownRange { .. }));
    assert!(
        unknown(large.advise(on_stack.as_ptr(), 64, Advice::Normal)),
        "stack"
    );
    assert!(
        unknown(large.advise(heap.as_ptr(), MIB, Advice::Sequential)),
        "System heap"
    );
    assert!(
        unknown(large.advise(std::ptr::null(), 4096, Advice::Normal)),
        "null"
    );
    assert!(
        unknown(large.advise(p, MIB + 1, Advice::Normal)),
        "crosses the end"
    );
    // SAFETY: pointer arithmetic only; the range starts inside the block.
    assert!(unknown(large.advise(
        unsafe { p.add(MIB - 4096) },
        8192,
        Advice::WillNeed
    )));
    assert!(
        unknown(large.advise(p, usize::MAX, Advice::Normal)),
        "overflowing length"
    );
    assert!(matches!(
        large.advise(p, MIB, Advice::DontNeed),
        Err(Error::DestructiveAdvice { advice: "DontNeed" })
    ));
    let other = fresh();
    assert!(
        unknown(other.advise(p, 4096, Advice::Normal)),
        "another allocator's block"
    );

    // SAFETY: `p` is a live 1 MiB block.
    unsafe { p.write_bytes(9, MIB) };
    // SAFETY: we no longer need bytes 4096..8192 (whole pages inside the range).
    unsafe { large.unchecked_advise(p.add(100), 8192, Advice::DontNeed) }.unwrap();
    // SAFETY: the block is still ours.
    let b = unsafe { std::slice::from_raw_parts(p, 3 * 4096) };
    assert!(b[..4096].iter().all(|&x| x == 9), "partial first page kept");
    assert!(
        b[4096..8192].iter().all(|&x| x == 0),
        "whole page discarded"
    );
    assert!(b[8192..].iter().all(|&x| x == 9), "partial last page kept");

    // SAFETY: came from `large`.
    unsafe { large.dealloc(p, layout(MIB)) };
    assert!(
        unknown(large.advise(p, 4096, Advice::Normal)),
        "freed (cached) block"
    );
}

#[test]
fn freeing_something_that_is_not_a_live_block_is_refused() {
    let large = fresh();
    let p = large.try_alloc(layout(MIB)).unwrap().as_ptr();
    let x = 5u64;
    // SAFETY: not a block of `large`: refused without effect.
    assert!(unsafe { large.try_dealloc((&x as *const u64).cast_mut().cast()) }.is_err());
    // SAFETY: an interior pointer: refused.
    assert!(unsafe { large.try_dealloc(p.add(4096)) }.is_err());
    // SAFETY: `p` is live; freed once.
    unsafe { large.try_dealloc(p) }.unwrap();
    // SAFETY: second free of the same block: refused, the cache is not corrupted.
    assert!(unsafe { large.try_dealloc(p) }.is_err());
    let s = large.stats();
    assert_eq!((s.live, s.cached), (0, 1));
}

#[test]
fn prefault_makes_the_block_resident_at_once() {
    let large = fresh();
    let size = 8 * MIB;
    let cold = large.try_alloc(layout(size)).unwrap();
    assert_eq!(
        resident_pages(cold.as_ptr(), size),
        0,
        "a fresh mapping is not resident"
    );
    let hot = large
        .try_alloc_with(layout(size), AllocOptions::new().prefault(true))
        .unwrap();
    assert_eq!(
        resident_pages(hot.as_ptr(), size),
        size / 4096,
        "every page resident"
    );
    let s = large.stats();
    assert_eq!(s.prefaults, 1);
    // SAFETY: the blocks came from `large`; the prefaulted one reads zeros.
    unsafe {
        assert!(
            std::slice::from_raw_parts(hot.as_ptr(), size)
                .iter()
                .all(|&b| b == 0)
        );
        large.dealloc(cold.as_ptr(), layout(size));
        large.dealloc(hot.as_ptr(), layout(size));
    }
}

#[test]
fn any_power_of_two_alignment_is_honoured() {
    let large = fresh();
    for align in [4096, 64 * KIB, MIB, 2 * MIB, 64 * MIB] {
        let l = Layout::from_size_align(300 * KIB, align).unwrap();
        let p = large.try_alloc(l).unwrap();
        assert_eq!(p.as_ptr() as usize % align, 0, "align {align}");
        // SAFETY: a live 300 KiB block.
        unsafe { p.as_ptr().write_bytes(1, 300 * KIB) };
        // SAFETY: came from `large` with `l`.
        unsafe { large.dealloc(p.as_ptr(), l) };
        let q = large.try_alloc(l).unwrap();
        assert_eq!(q.as_ptr() as usize % align, 0, "reused, align {align}");
        // SAFETY: as above.
        unsafe { large.dealloc(q.as_ptr(), l) };
    }
    // Growing an over-aligned block keeps its alignment (in place or by copy).
    let l = Layout::from_size_align(MIB, 16 * MIB).unwrap();
    let p = large.try_alloc(l).unwrap();
    // SAFETY: a live 1 MiB block.
    unsafe { p.as_ptr().write_bytes(3, MIB) };
    // SAFETY: `p` is live with `l`.
    let q = unsafe { large.try_realloc(p.as_ptr(), l, 40 * MIB) }.unwrap();
    assert_eq!(q.as_ptr() as usize % (16 * MIB), 0);
    // SAFETY: the first MiB was copied or kept.
    assert!(
        unsafe { std::slice::from_raw_parts(q.as_ptr(), MIB) }
            .iter()
            .all(|&b| b == 3)
    );
    // SAFETY: came from `large`.
    unsafe {
        large.dealloc(
            q.as_ptr(),
            Layout::from_size_align(40 * MIB, 16 * MIB).unwrap(),
        )
    };
}

#[test]
fn impossible_requests_are_errors_not_panics() {
    let large = fresh();
    let huge = Layout::from_size_align(1 << 60, 4096).unwrap();
    assert!(
        matches!(large.try_alloc(huge), Err(Error::OutOfMemory { requested }) if requested == 1 << 60)
    );
    let bad = Layout::from_size_align(isize::MAX as usize - 4095, 4096).unwrap();
    assert!(large.try_alloc(bad).is_err());
    // SAFETY: GlobalAlloc on a failing layout returns null.
    assert!(unsafe { GlobalAlloc::alloc(&large, huge) }.is_null());
    let s = large.stats();
    assert_eq!((s.live, s.bytes_mapped), (0, 0));
}

#[test]
fn transparent_policy_gets_huge_pages_or_counts_the_fallback() {
    let large = LargeObjectAllocator::builder()
        .huge_pages(HugePagePolicy::Transparent)
        .build();
    let size = 8 * MIB;
    let p = large.try_alloc(layout(size)).unwrap();
    assert_eq!(
        p.as_ptr() as usize % (2 * MIB),
        0,
        "THP blocks are 2 MiB aligned"
    );
    // SAFETY: a live 8 MiB block.
    unsafe { p.as_ptr().write_bytes(1, size) };
    let mode =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    let s = large.stats();
    if mode.contains("[always]") || mode.contains("[madvise]") {
        assert_eq!(s.thp_advised, 1);
        let huge = anon_huge_bytes(p.as_ptr() as usize, size);
        assert!(
            huge > 0,
            "AnonHugePages is 0 for an advised, touched 8 MiB block"
        );
    } else {
        assert_eq!(s.thp_fallbacks, 1);
    }
    // SAFETY: came from `large`.
    unsafe { large.dealloc(p.as_ptr(), layout(size)) };
}

#[test]
fn explicit_huge_pages_fall_back_when_none_are_reserved() {
    for (hp, dir) in [
        (HugePageSize::TwoMiB, "hugepages-2048kB"),
        (HugePageSize::OneGiB, "hugepages-1048576kB"),
    ] {
        let large = LargeObjectAllocator::builder()
            .huge_pages(HugePagePolicy::Explicit(hp))
            .cache_max_bytes(8 << 30)
            .cache_max_block(4 << 30)
            .build();
        let size = hp.bytes() + 4096;
        let p = large.try_alloc(layout(size)).unwrap();
        // SAFETY: a live block of `size` bytes; touch its first and last page.
        unsafe {
            p.as_ptr().write(1);
            p.as_ptr().add(size - 1).write(2);
        }
        let free =
            read_sys_usize(&format!("/sys/kernel/mm/hugepages/{dir}/free_hugepages")).unwrap_or(0);
        let s = large.stats();
        let (ok, fell) = match hp {
            HugePageSize::TwoMiB => (s.huge_2m, s.huge_2m_fallbacks),
            HugePageSize::OneGiB => (s.huge_1g, s.huge_1g_fallbacks),
        };
        if free >= size.div_ceil(hp.bytes()) {
            assert_eq!((ok, fell), (1, 0), "{dir}: pages were reserved");
            assert_eq!(large.usable_size(p.as_ptr()), Some(2 * hp.bytes()));
        } else {
            assert_eq!((ok, fell), (0, 1), "{dir}: the fallback is counted");
            assert_eq!(s.thp_advised + s.thp_fallbacks, 1, "and went on to THP");
        }
        // SAFETY: came from `large`.
        unsafe { large.dealloc(p.as_ptr(), layout(size)) };
        // The cached block serves the next explicit request of the same size.
        let q = large.try_alloc(layout(size)).unwrap();
        assert_eq!(q, p);
        // SAFETY: came from `large`.
        unsafe { large.dealloc(q.as_ptr(), layout(size)) };
    }
}

#[test]
fn threads_share_one_allocator_safely() {
    let large = fresh();
    std::thread::scope(|sc| {
        for t in 0..4u8 {
            let large = &large;
            sc.spawn(move || {
                let mut x = 0x1234_5678_u32 ^ t as u32;
                for i in 0..200 {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    let size = 256 * KIB + (x as usize % (3 * MIB));
                    let p = large.try_alloc(layout(size)).unwrap().as_ptr();
                    let tag = t.wrapping_mul(31).wrapping_add(i as u8);
                    // SAFETY: a live block of `size` bytes, ours alone.
                    unsafe {
                        p.write_bytes(tag, size);
                        assert_eq!(*p.add(size / 2), tag);
                        assert_eq!(*p.add(size - 1), tag);
                        if i % 3 == 0 {
                            let q = large
                                .try_realloc(p, layout(size), size * 2)
                                .unwrap()
                                .as_ptr();
                            assert_eq!(*q.add(size - 1), tag);
                            large.dealloc(q, layout(size * 2));
                        } else {
                            large.dealloc(p, layout(size));
                        }
                    }
                }
            });
        }
    });
    let s = large.stats();
    assert_eq!((s.live, s.bytes_in_use), (0, 0));
    assert!(s.cache_hits > 0);
    assert_eq!(s.bytes_mapped, s.bytes_cached);
}

#[test]
fn rusty_alloc_routes_large_requests_to_the_global_instance() {
    let g = LargeObjectAllocator::global();
    let l = Layout::from_size_align(MIB, 16).unwrap();
    // SAFETY: a valid layout; every block is freed with the layout it has.
    unsafe {
        let p = RustyAlloc.alloc(l);
        assert!(!p.is_null());
        p.write_bytes(4, MIB);
        assert_eq!(g.usable_size(p), Some(MIB));
        g.advise(p, MIB, Advice::Sequential).unwrap();
        let q = RustyAlloc.realloc(p, l, 8 * MIB);
        assert!(!q.is_null());
        assert!(std::slice::from_raw_parts(q, MIB).iter().all(|&b| b == 4));
        let l8 = Layout::from_size_align(8 * MIB, 16).unwrap();
        RustyAlloc.dealloc(q, l8);
        assert!(g.advise(q, 4096, Advice::Normal).is_err(), "freed");
        let z = RustyAlloc.alloc_zeroed(l8);
        assert_eq!(z, q, "reused through the cache");
        assert!(
            std::slice::from_raw_parts(z, 8 * MIB)
                .iter()
                .all(|&b| b == 0)
        );
        RustyAlloc.dealloc(z, l8);
    }
    let s = RustyAlloc.stats();
    assert!(s.large.cached >= 1 && s.large.cache_hits >= 1);
    assert!(s.bytes_mapped >= s.large.bytes_mapped);
}

/// `VmSize` of this process in bytes.
fn vm_size() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmSize:")).unwrap();
    let kb: usize = line[7..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

#[test]
fn a_refused_mapping_is_retried_after_emptying_the_cache() {
    // In a child process, so the address-space limit binds nothing else.
    // SAFETY: the child only runs this test's code and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let ok = std::panic::catch_unwind(|| {
            let large = fresh();
            // 24 MiB: below the 32 MiB the cache may hold with nothing live.
            let p = large.try_alloc(layout(24 * MIB)).unwrap();
            // SAFETY: came from `large`.
            unsafe { large.dealloc(p.as_ptr(), layout(24 * MIB)) };
            assert_eq!(large.stats().bytes_cached, 24 * MIB);
            let limit = (vm_size() + 16 * MIB) as libc::rlim_t;
            let rl = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            // SAFETY: a valid rlimit for this process.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) }, 0);
            // 30 MiB more exceeds the limit (16 MiB of headroom): the cached 24 MiB must go first.
            let q = large.try_alloc(layout(30 * MIB)).unwrap();
            let s = large.stats();
            assert_eq!((s.cache_purged, s.cached, s.live), (1, 0, 1));
            // SAFETY: came from `large`.
            unsafe { large.dealloc(q.as_ptr(), layout(30 * MIB)) };
        })
        .is_ok();
        // SAFETY: ends the child without running the parent's test harness.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: `pid` is our child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed: {status:#x}"
    );
}

#[test]
fn the_cache_holds_no_more_than_the_live_large_bytes_beyond_32_mib() {
    let large = fresh();
    let blocks: Vec<_> = (0..6)
        .map(|_| large.try_alloc(layout(20 * MIB)).unwrap())
        .collect();
    for (i, p) in blocks.into_iter().enumerate() {
        // SAFETY: came from `large`, freed once.
        unsafe { large.dealloc(p.as_ptr(), layout(20 * MIB)) };
        let s = large.stats();
        let live = (5 - i) * 20 * MIB;
        assert!(
            s.bytes_cached <= live.max(32 * MIB),
            "{} MiB cached with {} MiB live",
            s.bytes_cached / MIB,
            live / MIB
        );
    }
    // Within the 32 MiB floor. (It may hold nothing: when the kernel placed the
    // blocks side by side, the cache merged them into one run too big to keep.)
    let s = large.stats();
    assert!(s.bytes_cached <= 32 * MIB);
    assert_eq!(s.live, 0);
}
