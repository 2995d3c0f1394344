//! Buffer pool behaviour: persistence, corruption, bad input, latches,
//! optimistic reads, tiers, shrink, flusher, pressure, and two threads of
//! random reads and writes with per-page checksums.
//!
//! `cargo test --release --test buffer_pool`

mod bp_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bp_common::{Rng, TempFile, fill, valid, zipf};
use rustydb_memory::Error;
use rustydb_memory::buffer_pool::{
    BufferPool, DiskManager, FileDisk, MAX_PAGE_ID, MemDisk, PAGE_HEADER, Policy, Tier,
};
use rustydb_memory::pressure::PressureManager;

fn mem_pool(frames: usize, pages: u64) -> BufferPool {
    BufferPool::builder()
        .frames(frames)
        .disk(MemDisk::with_pages(4096, pages))
        .build()
        .unwrap()
}

#[test]
fn persistence_across_reopen() {
    let tmp = TempFile::new("persist");
    let mut ids = Vec::new();
    {
        let pool = BufferPool::builder()
            .frames(16)
            .policy(Policy::TwoQ)
            .disk(FileDisk::open(&tmp.0, 4096).unwrap())
            .build()
            .unwrap();
        for v in 0..100u64 {
            let mut g = pool.new_page().unwrap();
            let id = g.page_id();
            fill(&mut g, id, v);
            ids.push(id);
        }
        assert_eq!(ids, (0..100).collect::<Vec<_>>());
        assert!(pool.flush_all().unwrap() > 0);
        // Dirty again after the flush: the drop writes it.
        fill(&mut pool.fetch_write(3).unwrap(), 3, 1000);
    }
    let disk = FileDisk::open(&tmp.0, 4096).unwrap();
    assert_eq!(disk.num_pages(), 100);
    let pool = BufferPool::builder().frames(8).disk(disk).build().unwrap();
    for (v, &id) in ids.iter().enumerate() {
        let g = pool.fetch_read(id).unwrap();
        let mut want = vec![0u8; g.len()];
        fill(&mut want, id, if id == 3 { 1000 } else { v as u64 });
        assert_eq!(&g[..], &want[..], "page {id}");
    }
    assert_eq!(pool.stats().corrupt_pages, 0);
}

#[test]
fn direct_io_round_trip() {
    let tmp = TempFile::new("direct");
    let disk = match FileDisk::options()
        .page_size(4096)
        .direct(true)
        .open(&tmp.0)
    {
        Ok(d) => d,
        Err(Error::Io { errno, .. }) if errno == libc_einval() => {
            eprintln!("O_DIRECT not supported on this file system; skipped");
            return;
        }
        Err(e) => panic!("{e:?}"),
    };
    assert!(disk.is_direct());
    let pool = BufferPool::builder().frames(4).disk(disk).build().unwrap();
    for v in 0..20u64 {
        fill(&mut pool.new_page().unwrap(), v, v);
    }
    for v in 0..20u64 {
        let g = pool.fetch_read(v).unwrap();
        assert!(valid(&g));
    }
    pool.flush_all().unwrap();
}

fn libc_einval() -> i32 {
    22
}

#[test]
fn flipped_byte_is_corrupt_never_returned() {
    let tmp = TempFile::new("corrupt");
    {
        let pool = BufferPool::builder()
            .frames(4)
            .disk(FileDisk::open(&tmp.0, 4096).unwrap())
            .build()
            .unwrap();
        for v in 0..3u64 {
            fill(&mut pool.new_page().unwrap(), v, v);
        }
        pool.flush_all().unwrap();
    }
    // Page 1 sits at file offset 2 × 4096 (offset 0 is the superblock).
    for at in [PAGE_HEADER + 100, 5, 4095] {
        let mut bytes = std::fs::read(&tmp.0).unwrap();
        let saved = bytes.clone();
        bytes[2 * 4096 + at] ^= 0x01;
        std::fs::write(&tmp.0, &bytes).unwrap();
        let pool = BufferPool::builder()
            .frames(4)
            .disk(FileDisk::open(&tmp.0, 4096).unwrap())
            .build()
            .unwrap();
        assert_eq!(pool.fetch_read(1).unwrap_err(), Error::Corrupt { page: 1 });
        assert_eq!(
            pool.read_optimistic(1, |p| p.to_vec()).unwrap_err(),
            Error::Corrupt { page: 1 }
        );
        assert!(matches!(
            pool.fetch_write(1),
            Err(Error::Corrupt { page: 1 })
        ));
        assert!(valid(&pool.fetch_read(0).unwrap()));
        assert!(valid(&pool.fetch_read(2).unwrap()));
        assert_eq!(pool.stats().corrupt_pages, 3);
        assert!(!pool.is_resident(1));
        drop(pool);
        std::fs::write(&tmp.0, &saved).unwrap();
    }
    // A torn write: the second half of page 2 replaced by page 0's.
    let mut bytes = std::fs::read(&tmp.0).unwrap();
    let half = bytes[4096 + 2048..2 * 4096].to_vec();
    bytes[3 * 4096 + 2048..4 * 4096].copy_from_slice(&half);
    std::fs::write(&tmp.0, &bytes).unwrap();
    let pool = BufferPool::builder()
        .frames(4)
        .disk(FileDisk::open(&tmp.0, 4096).unwrap())
        .build()
        .unwrap();
    assert_eq!(pool.fetch_read(2).unwrap_err(), Error::Corrupt { page: 2 });
}

#[test]
fn memdisk_corruption_detected() {
    let disk = Arc::new(MemDisk::new(4096));
    let pool = BufferPool::builder()
        .frames(2)
        .shared_disk(disk.clone())
        .build()
        .unwrap();
    let id = pool.new_page().unwrap().page_id();
    pool.flush_all().unwrap();
    let mut img = disk.image(id).unwrap();
    img[2000] ^= 0x80;
    disk.set_image(id, &img).unwrap();
    // Evict it (two other pages) so it is read again.
    drop(pool.new_page().unwrap());
    drop(pool.new_page().unwrap());
    assert!(!pool.is_resident(id));
    assert_eq!(
        pool.fetch_read(id).unwrap_err(),
        Error::Corrupt { page: id }
    );
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let pool = mem_pool(8, 10);
    for id in [10, 11, MAX_PAGE_ID, MAX_PAGE_ID + 1, u64::MAX] {
        assert_eq!(
            pool.fetch_read(id).unwrap_err(),
            Error::PageNotFound { page: id }
        );
        assert!(matches!(
            pool.fetch_write(id),
            Err(Error::PageNotFound { .. })
        ));
        assert!(matches!(
            pool.read_optimistic(id, |_| ()),
            Err(Error::PageNotFound { .. })
        ));
        assert!(matches!(
            pool.delete_page(id),
            Err(Error::PageNotFound { .. })
        ));
        assert!(matches!(pool.flush(id), Err(Error::PageNotFound { .. })));
        assert_eq!(pool.tier_of(id), None);
    }
    // Builder errors.
    let bad = |b: rustydb_memory::buffer_pool::BufferPoolBuilder| {
        assert!(matches!(b.build(), Err(Error::InvalidConfig { .. })));
    };
    bad(BufferPool::builder().frames(0));
    bad(BufferPool::builder().page_size(1000));
    bad(BufferPool::builder().page_size(2048));
    bad(BufferPool::builder().page_size(1 << 21));
    bad(BufferPool::builder().cooling(0.9));
    bad(BufferPool::builder().cooling(f64::NAN));
    bad(BufferPool::builder().policy(Policy::Custom));
    bad(BufferPool::builder().frames(1 << 25));
    bad(BufferPool::builder()
        .page_size(8192)
        .disk(MemDisk::new(4096)));
    bad(BufferPool::builder()
        .frames(10)
        .custom_policy(Policy::Clock.build(11).unwrap()));
    // Disk-level bad input.
    let d = MemDisk::new(4096);
    assert!(matches!(
        d.read_page(0, &mut [0u8; 4096]),
        Err(Error::PageNotFound { page: 0 })
    ));
    assert!(matches!(d.write_page(0, &[0u8; 10]), Err(Error::Io { .. })));
    assert!(matches!(
        d.deallocate_page(7),
        Err(Error::PageNotFound { page: 7 })
    ));
}

#[test]
fn wrong_page_size_and_closed_file() {
    let tmp = TempFile::new("pagesize");
    FileDisk::open(&tmp.0, 4096).unwrap();
    assert!(matches!(
        FileDisk::open(&tmp.0, 8192),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(matches!(
        FileDisk::open(&tmp.0, 1000),
        Err(Error::InvalidConfig { .. })
    ));
    std::fs::write(&tmp.0, b"not a rustydb file, just some bytes to fail on").unwrap();
    assert!(matches!(
        FileDisk::open(&tmp.0, 4096),
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(
        FileDisk::options()
            .create(false)
            .open("/nonexistent/dir/x.db"),
        Err(Error::Io { op: "open", .. })
    ));

    let tmp = TempFile::new("closed");
    let disk = Arc::new(FileDisk::open(&tmp.0, 4096).unwrap());
    let pool = BufferPool::builder()
        .frames(2)
        .shared_disk(disk.clone())
        .build()
        .unwrap();
    let ids: Vec<u64> = (0..3).map(|_| pool.new_page().unwrap().page_id()).collect();
    pool.flush_all().unwrap();
    let resident: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|&id| pool.is_resident(id))
        .collect();
    let gone = ids
        .iter()
        .copied()
        .find(|&id| !pool.is_resident(id))
        .unwrap();
    assert_eq!(resident.len(), 2);
    disk.close();
    // Resident pages still read and write; anything touching the file fails
    // cleanly, and a dirty page whose write-back failed stays in the pool.
    let (a, b) = (resident[0], resident[1]);
    assert_eq!(pool.fetch_read(a).unwrap().page_id(), a);
    pool.fetch_write(b).unwrap()[0] = 1;
    assert!(matches!(pool.flush_all(), Err(Error::Io { errno: 9, .. })));
    assert!(matches!(pool.flush(b), Err(Error::Io { errno: 9, .. })));
    assert!(matches!(
        pool.fetch_read(gone),
        Err(Error::Io { errno: 9, .. })
    ));
    assert!(matches!(
        disk.sync(),
        Err(Error::Io {
            op: "sync",
            errno: 9,
            ..
        })
    ));
    assert_eq!(pool.fetch_read(b).unwrap()[0], 1, "the dirty page survived");
    assert!(matches!(pool.delete_page(a), Err(Error::Io { .. })));
}

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
