//! Freed memory goes back to the OS: purge, magazine metadata, decay without purge.

use super::*;

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

/// Child half of `freed_memory_decays_back_to_the_os_without_purge` (does
/// nothing unless started by it).
#[test]
fn decay_child() {
    if !in_child() {
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
    let out = run_in_child(
        "purge::decay_child",
        &[("RUSTYDB_MEM_PURGE_DELAY_MS", "50")],
    );
    assert!(out.contains("decayed in"), "{out}");
}
