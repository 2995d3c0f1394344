//! Tiers, shrink, the flusher, pressure, stats, tiny pools, write-back hooks.

use super::*;

#[test]
fn tiers_are_real() {
    let pool = BufferPool::builder()
        .frames(100)
        .policy(Policy::Arc)
        .cooling(0.1)
        .disk(MemDisk::with_pages(4096, 10_000))
        .build()
        .unwrap();
    assert_eq!(pool.stats().cooling_target, 10);
    for _ in 0..3 {
        drop(pool.fetch_read(7).unwrap());
    }
    assert_eq!(pool.tier_of(7), Some(Tier::Hot), "re-referenced: T2");
    drop(pool.fetch_read(8).unwrap());
    assert_eq!(pool.tier_of(8), Some(Tier::Warm), "seen once: T1");
    for id in 100..400 {
        drop(pool.fetch_read(id).unwrap());
    }
    let s = pool.stats();
    assert_eq!(s.cold.resident, 10, "{s:?}");
    assert_eq!(s.hot.resident + s.warm.resident + s.cold.resident, 100);
    assert!(s.cold.entered >= 300 - 100);
    assert_eq!(
        pool.tier_of(7),
        Some(Tier::Hot),
        "the hot page survived a scan of T1"
    );
    // The oldest cold page is the next to go; a hit rescues it first.
    let cold: Vec<u64> = (100..400)
        .filter(|&id| pool.tier_of(id) == Some(Tier::Cold))
        .collect();
    assert_eq!(cold.len(), 10);
    drop(pool.fetch_read(cold[0]).unwrap());
    assert_ne!(pool.tier_of(cold[0]), Some(Tier::Cold));
    let s2 = pool.stats();
    assert_eq!(s2.rescued, s.rescued + 1);
    assert_eq!(s2.cold.hits, s.cold.hits + 1);
    drop(pool.fetch_read(5000).unwrap());
    assert!(pool.is_resident(cold[0]), "rescued page kept");
    assert!(
        !pool.is_resident(cold[1]),
        "eviction took the oldest cold page"
    );
}

#[test]
fn shrink_clean_releases_only_clean_pages() {
    let pool = mem_pool(64, 1000);
    for id in 0..64 {
        drop(pool.fetch_read(id).unwrap());
    }
    for id in 0..8 {
        pool.fetch_write(id).unwrap()[0] = 1;
    }
    let pinned = pool.fetch_read(9).unwrap();
    let released = pool.shrink_clean(usize::MAX);
    assert_eq!(released, (64 - 9) * 4096);
    let s = pool.stats();
    assert_eq!(s.resident, 9);
    assert_eq!(s.released_bytes, released as u64);
    for id in 0..8 {
        assert!(pool.is_resident(id), "dirty page {id} dropped");
    }
    drop(pinned);
    assert_eq!(pool.shrink_clean(4096), 4096);
    // Released frames are used again.
    for id in 100..200 {
        drop(pool.fetch_read(id).unwrap());
    }
    assert_eq!(pool.stats().resident, 64);
    assert_eq!(pool.fetch_read(0).unwrap()[0], 1);
}

#[test]
fn background_flusher_cleans_dirty_pages() {
    let disk = Arc::new(MemDisk::new(4096));
    let pool = BufferPool::builder()
        .frames(64)
        .shared_disk(disk.clone())
        .background_flusher(Duration::from_millis(5))
        .build()
        .unwrap();
    for _ in 0..40 {
        pool.new_page().unwrap()[0] = 3;
    }
    let t = Instant::now();
    while pool.stats().dirty > 0 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = pool.stats();
    assert_eq!(s.dirty, 0);
    assert!(s.flusher_writes >= 40);
    assert_eq!(disk.image(39).unwrap()[PAGE_HEADER], 3);
    drop(pool); // stops the flusher thread
}

#[test]
fn pressure_refusal_makes_the_pool_recycle() {
    let usage = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let u = usage.clone();
    let pm = Arc::new(
        PressureManager::builder()
            .budget(1 << 30)
            .usage_fn(move || u.load(std::sync::atomic::Ordering::Relaxed))
            .build()
            .unwrap(),
    );
    let pool = BufferPool::builder()
        .frames(32)
        .pressure(pm.clone())
        .disk(MemDisk::with_pages(4096, 1000))
        .build()
        .unwrap();
    for id in 0..8 {
        drop(pool.fetch_read(id).unwrap());
    }
    usage.store(1 << 30, std::sync::atomic::Ordering::Relaxed);
    pm.check_now();
    for id in 8..100 {
        drop(pool.fetch_read(id).unwrap());
    }
    let s = pool.stats();
    assert_eq!(s.resident, 8, "no fresh frame touched under pressure");
    assert!(s.pressure_refusals > 0);
    // With every resident frame pinned, the refusal is the error.
    let guards: Vec<_> = (92..100).map(|id| pool.fetch_read(id).unwrap()).collect();
    assert!(matches!(
        pool.fetch_read(500),
        Err(Error::MemoryPressure { .. })
    ));
    drop(guards);
    usage.store(0, std::sync::atomic::Ordering::Relaxed);
    pm.check_now();
    for id in 200..232 {
        drop(pool.fetch_read(id).unwrap());
    }
    assert_eq!(pool.stats().resident, 32);
    // The reclaimer: at Critical the pressure manager asks the pool to shrink.
    let _h = pool.register_reclaimer(&pm, 0);
    usage.store(
        (1u64 << 30) / 100 * 92,
        std::sync::atomic::Ordering::Relaxed,
    );
    pm.check_now();
    let s = pool.stats();
    assert!(s.released_bytes > 0 && s.resident < 32, "{s:?}");
    assert!(pm.stats().bytes_released >= s.released_bytes);
}

#[test]
fn stats_and_clones() {
    let pool = mem_pool(8, 100);
    let other = pool.clone();
    let trace = zipf(100, 1.0, 2000, 1);
    for &id in &trace {
        drop(other.fetch_read(id).unwrap());
    }
    let s = pool.stats();
    assert_eq!(s.hits + s.misses, 2000);
    assert_eq!(s.policy, Policy::Adaptive);
    assert_eq!((s.frames, s.page_size), (8, 4096));
    assert_eq!(pool.payload_size(), 4096 - PAGE_HEADER);
    assert!(s.hot.hits + s.warm.hits + s.cold.hits <= s.hits);
    assert!(format!("{pool:?}").contains("Adaptive"));
    let h = std::thread::spawn(move || {
        for &id in &trace {
            drop(other.fetch_read(id).unwrap());
        }
    });
    h.join().unwrap();
    assert_eq!(
        pool.stats().hits + pool.stats().misses,
        4000,
        "thread exit applies its log"
    );
}

#[test]
fn a_one_frame_pool_works() {
    let disk = Arc::new(MemDisk::new(4096));
    let pool = BufferPool::builder()
        .frames(1)
        .shared_disk(disk.clone())
        .background_flusher(Duration::ZERO)
        .optimistic_sampling(0)
        .build()
        .unwrap();
    let ids: Vec<u64> = (0..5u64)
        .map(|v| {
            let mut g = pool.new_page().unwrap();
            g[0] = v as u8 + 1;
            g.page_id()
        })
        .collect();
    for (v, &id) in ids.iter().enumerate() {
        assert_eq!(pool.fetch_read(id).unwrap()[0], v as u8 + 1);
        assert_eq!(
            pool.read_optimistic(id, |p| p.u8_at(0)).unwrap(),
            Some(v as u8 + 1)
        );
    }
    let g = pool.fetch_read(ids[0]).unwrap();
    assert!(matches!(
        pool.fetch_read(ids[1]),
        Err(Error::PoolExhausted { frames: 1 })
    ));
    let mut scan = pool.scan_with_ring(usize::MAX);
    assert!(matches!(
        scan.fetch_read(ids[2]),
        Err(Error::PoolExhausted { .. })
    ));
    drop((g, scan));
    assert_eq!(pool.shrink_clean(0), 0);
    assert_eq!(pool.stats().resident, 1);
}

/// Found by the `buffer_pool_ops` fuzz target: an id above `MAX_PAGE_ID`
/// overflowed the page table's key (`id + 1`) in lookups made before the
/// range check (`fetch_read`, `read_optimistic`, `is_resident`), a panic in
/// builds with overflow checks (`cargo test`, cargo fuzz).
#[test]
fn ids_past_the_page_table_are_not_found() {
    let pool = mem_pool(4, 2);
    for id in [MAX_PAGE_ID + 1, MAX_PAGE_ID + 2, u64::MAX - 1, u64::MAX] {
        assert!(!pool.is_resident(id));
        assert_eq!(pool.tier_of(id), None);
        assert_eq!(
            pool.fetch_read(id).unwrap_err(),
            Error::PageNotFound { page: id }
        );
        assert!(matches!(
            pool.read_optimistic(id, |v| v.u8_at(0)),
            Err(Error::PageNotFound { .. })
        ));
    }
}

/// A `new_page` refused because every frame is pinned must not leave its
/// page id readable: the id was never handed out, so it is not a page.
#[test]
fn refused_new_page_leaves_no_readable_page() {
    let tmp = TempFile::new("refused-new");
    let pool = BufferPool::builder()
        .frames(2)
        .disk(FileDisk::open(&tmp.0, 4096).unwrap())
        .build()
        .unwrap();
    let a = pool.new_page().unwrap();
    let b = pool.new_page().unwrap();
    assert!(matches!(pool.new_page(), Err(Error::PoolExhausted { .. })));
    let c = a.page_id().max(b.page_id()) + 1;
    drop((a, b));
    assert_eq!(
        pool.fetch_read(c).unwrap_err(),
        Error::PageNotFound { page: c }
    );
    assert!(matches!(
        pool.fetch_write(c),
        Err(Error::PageNotFound { .. })
    ));
    // The next page takes the id, zeroed.
    assert_eq!(pool.new_page().unwrap().page_id(), c);
    drop(pool);
    let pool = BufferPool::builder()
        .frames(2)
        .disk(FileDisk::open(&tmp.0, 4096).unwrap())
        .build()
        .unwrap();
    assert!(pool.fetch_read(c).unwrap().iter().all(|&x| x == 0));
}

/// The write-back hook sees every page image before it is written (eviction,
/// flush, flush_all) with the bytes about to be written, and an error from it
/// cancels the write: the page stays dirty, resident and readable.
#[test]
fn write_back_hook_runs_first_and_can_refuse() {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    let disk = Arc::new(MemDisk::new(4096));
    let seen: Arc<Mutex<Vec<(u64, u8)>>> = Arc::default();
    let refuse = Arc::new(AtomicBool::new(false));
    let (s, r, d) = (seen.clone(), refuse.clone(), disk.clone());
    let pool = BufferPool::builder()
        .frames(4)
        .shared_disk(disk.clone())
        .before_write_back(move |id, payload| {
            // The image on disk is still the old one when the hook runs.
            let on_disk = d.image(id).map_or(0, |i| i[PAGE_HEADER]);
            s.lock().unwrap().push((id, payload[0]));
            assert_ne!(on_disk, payload[0], "the hook runs before the write");
            if r.load(Ordering::SeqCst) {
                Err(Error::Io {
                    op: "write",
                    page: id,
                    errno: 5,
                })
            } else {
                Ok(())
            }
        })
        .build()
        .unwrap();
    let ids: Vec<u64> = (1..=8u8)
        .map(|v| {
            let mut g = pool.new_page().unwrap();
            g[0] = v;
            g.page_id()
        })
        .collect();
    // Four frames for eight pages: the first four were evicted, hook first.
    assert_eq!(seen.lock().unwrap().len(), 4);
    pool.flush(ids[7]).unwrap();
    assert_eq!(seen.lock().unwrap().last(), Some(&(ids[7], 8)));
    refuse.store(true, Ordering::SeqCst);
    pool.fetch_write(ids[6]).unwrap()[0] = 70;
    assert!(pool.flush(ids[6]).is_err());
    assert!(pool.flush_all().is_err());
    // Eviction of a dirty page the hook refuses fails the fetch that needed
    // the frame; the refused page keeps its new contents.
    let mut failed = 0;
    for &id in &ids[..4] {
        failed += usize::from(pool.fetch_read(id).is_err());
    }
    assert!(failed > 0);
    assert_eq!(pool.fetch_read(ids[6]).unwrap()[0], 70);
    assert_eq!(disk.image(ids[6]).map(|i| i[PAGE_HEADER]), None);
    refuse.store(false, Ordering::SeqCst);
    pool.flush_all().unwrap();
    assert_eq!(disk.image(ids[6]).unwrap()[PAGE_HEADER], 70);
    for (i, &id) in ids.iter().enumerate() {
        let want = if i == 6 { 70 } else { i as u8 + 1 };
        assert_eq!(pool.fetch_read(id).unwrap()[0], want);
    }
}
