//! Latches, delete and reuse, flush, optimistic reads, two threads with checksums.

use super::*;

#[test]
fn latch_waits_are_bounded() {
    let pool = BufferPool::builder()
        .frames(4)
        .latch_timeout(Duration::from_millis(30))
        .disk(MemDisk::with_pages(4096, 4))
        .build()
        .unwrap();
    let r = pool.fetch_read(0).unwrap();
    let t = Instant::now();
    assert!(matches!(
        pool.fetch_write(0),
        Err(Error::LatchTimeout { page: 0, .. })
    ));
    assert!(t.elapsed() < Duration::from_secs(2));
    drop(r);
    let w = pool.fetch_write(0).unwrap();
    assert!(matches!(
        pool.fetch_read(0),
        Err(Error::LatchTimeout { page: 0, .. })
    ));
    assert!(matches!(pool.flush(0), Err(Error::LatchTimeout { .. })));
    assert!(matches!(
        pool.delete_page(0),
        Err(Error::PagePinned { page: 0, pins: 1 })
    ));
    drop(w);
    let r2 = pool.fetch_read(0).unwrap();
    assert!(matches!(
        pool.delete_page(0),
        Err(Error::PagePinned { page: 0, pins: 1 })
    ));
    drop(r2);
    pool.delete_page(0).unwrap();
    assert_eq!(
        pool.fetch_read(0).unwrap_err(),
        Error::PageNotFound { page: 0 }
    );
}

#[test]
fn delete_and_reuse_ids() {
    let disk = Arc::new(MemDisk::new(4096));
    let pool = BufferPool::builder()
        .frames(4)
        .shared_disk(disk.clone())
        .build()
        .unwrap();
    let ids: Vec<u64> = (0..6).map(|_| pool.new_page().unwrap().page_id()).collect();
    pool.delete_page(ids[1]).unwrap();
    pool.delete_page(ids[5]).unwrap();
    assert_eq!(
        pool.fetch_read(ids[1]).unwrap_err(),
        Error::PageNotFound { page: ids[1] }
    );
    let again = pool.new_page().unwrap().page_id();
    assert!(again == ids[1] || again == ids[5]);
    assert!(pool.fetch_read(again).unwrap().iter().all(|&b| b == 0));
}

#[test]
fn flush_all_syncs_and_cleans() {
    let disk = Arc::new(MemDisk::new(4096));
    let pool = BufferPool::builder()
        .frames(32)
        .shared_disk(disk.clone())
        .build()
        .unwrap();
    for _ in 0..10 {
        pool.new_page().unwrap()[0] = 9;
    }
    assert_eq!(pool.stats().dirty, 10);
    assert_eq!(pool.flush_all().unwrap(), 10);
    assert_eq!(disk.syncs(), 1);
    assert_eq!(pool.stats().dirty, 0);
    assert_eq!(pool.flush_all().unwrap(), 0);
    pool.fetch_write(3).unwrap()[1] = 1;
    pool.flush(3).unwrap();
    assert_eq!(pool.stats().dirty, 0);
    assert_eq!(disk.image(3).unwrap()[PAGE_HEADER + 1], 1);
}

#[test]
fn optimistic_reads_see_consistent_pages() {
    let pool = mem_pool(16, 16);
    for id in 0..16u64 {
        fill(&mut pool.fetch_write(id).unwrap(), id, 0);
    }
    let v = pool.read_optimistic(3, |p| p.u64_at(0)).unwrap().unwrap();
    assert_eq!(v.to_le_bytes()[..], pool.fetch_read(3).unwrap()[..8]);
    assert_eq!(
        pool.read_optimistic(3, |p| p.u64_at(p.len())).unwrap(),
        None
    );
    assert_eq!(
        pool.read_optimistic(3, |p| p.u8_at(usize::MAX)).unwrap(),
        None
    );
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut r = Rng(1);
            let mut v = 1;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = r.below(16);
                fill(&mut pool.fetch_write(id).unwrap(), id, v);
                v += 1;
            }
        });
        let mut r = Rng(2);
        for _ in 0..20_000 {
            let id = r.below(16);
            let page = pool.read_optimistic(id, |p| p.to_vec()).unwrap();
            assert!(valid(&page), "an optimistic read returned a torn page");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let s = pool.stats();
    assert!(s.optimistic_reads > 0);
    eprintln!(
        "optimistic reads {} retries {}",
        s.optimistic_reads, s.optimistic_retries
    );
}

#[test]
fn writes_to_optimistically_read_pages_go_through_atomic_words() {
    let pool = BufferPool::builder()
        .frames(2)
        .cooling(0.0)
        .disk(MemDisk::new(4096))
        .build()
        .unwrap();
    let payload = pool.payload_size();
    let (a, b) = {
        let mut g = pool.new_page().unwrap();
        g.iter_mut().enumerate().for_each(|(i, x)| *x = i as u8);
        let a = g.page_id();
        drop(g);
        (a, pool.new_page().unwrap().page_id())
    };
    let before = pool.fetch_read(a).unwrap().to_vec();
    // The first optimistic read marks the frame: later writers go atomic.
    assert_eq!(pool.read_optimistic(a, |p| p.u8_at(7)).unwrap(), Some(7));
    {
        let mut g = pool.fetch_write(a).unwrap();
        assert!(g.write(5, b"abc"), "in place, without a private copy");
        assert_eq!(&g[5..8], b"abc");
        assert!(!g.write(payload - 2, b"xyz"), "past the payload");
        assert!(!g.write(usize::MAX, b"x"), "offset overflow");
        g[100] = 0xEE; // a private copy from here on
        assert!(g.write(200, b"q"));
        assert_eq!((&g[5..8], g[100], g[200]), (&b"abc"[..], 0xEE, b'q'));
    }
    let mut want = before;
    want[5..8].copy_from_slice(b"abc");
    want[100] = 0xEE;
    want[200] = b'q';
    assert_eq!(pool.fetch_read(a).unwrap().to_vec(), want);
    assert_eq!(pool.read_optimistic(a, |p| p.to_vec()).unwrap(), want);
    // A marked frame reused for a new page is zeroed, and a marked page
    // loaded again from disk reads back whole.
    assert!(pool.read_optimistic(b, |p| p.u8_at(0)).unwrap().is_some());
    {
        let g = pool.new_page().unwrap();
        assert!(g.iter().all(|&x| x == 0), "a new page is zeroed");
    }
    let d = pool.new_page().unwrap().page_id();
    // Both frames are marked; at least one of `a`, `b` was evicted, so the
    // reads below load it into a marked frame (through atomic words).
    assert!(pool.is_resident(d) && !(pool.is_resident(a) && pool.is_resident(b)));
    assert_eq!(pool.fetch_read(a).unwrap().to_vec(), want);
    assert_eq!(pool.read_optimistic(a, |p| p.to_vec()).unwrap(), want);
    assert!(pool.fetch_read(b).unwrap().iter().all(|&x| x == 0));
    assert_eq!(pool.stats().corrupt_pages, 0);
}

#[test]
fn two_threads_random_reads_and_writes_with_checksums() {
    for p in [Policy::Clock, Policy::Arc, Policy::TwoQ, Policy::LruK] {
        let disk = Arc::new(MemDisk::new(4096));
        let pool = BufferPool::builder()
            .frames(24)
            .policy(p)
            .cooling(0.2)
            .shared_disk(disk.clone())
            .build()
            .unwrap();
        const PAGES: u64 = 64;
        for id in 0..PAGES {
            let mut g = pool.new_page().unwrap();
            assert_eq!(g.page_id(), id);
            fill(&mut g, id, 0);
        }
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let pool = &pool;
                s.spawn(move || {
                    let mut r = Rng(t + 10);
                    for i in 0..20_000u64 {
                        let id = r.below(PAGES);
                        match r.below(10) {
                            0..=5 => {
                                let g = pool.fetch_read(id).unwrap();
                                assert!(valid(&g), "{p}: page {id} torn");
                            }
                            6 => {
                                let ok = pool.read_optimistic(id, |v| valid(&v.to_vec())).unwrap();
                                assert!(ok, "{p}: optimistic read of {id} torn");
                            }
                            7 => pool.flush(id).unwrap(),
                            _ => {
                                let mut g = pool.fetch_write(id).unwrap();
                                assert!(valid(&g), "{p}: page {id} torn before write");
                                fill(&mut g, id, i * 2 + t + 1);
                            }
                        }
                    }
                });
            }
        });
        pool.flush_all().unwrap();
        for id in 0..PAGES {
            assert!(
                valid(&disk.image(id).unwrap()[PAGE_HEADER..]),
                "{p}: disk image {id}"
            );
            assert!(valid(&pool.fetch_read(id).unwrap()));
        }
        let s = pool.stats();
        assert!(s.evictions > 100 && s.dirty_writebacks > 0, "{p}: {s:?}");
        assert_eq!(s.corrupt_pages, 0);
    }
}
