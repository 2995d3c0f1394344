//! Persistence, direct I/O, corruption, bad input, wrong page sizes and closed files.

use super::*;

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
