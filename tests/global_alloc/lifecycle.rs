//! Stats of live and cached objects, fork beside allocating threads, thread exit.

use super::*;

#[test]
fn stats_count_live_objects_cached_objects_and_large_blocks() {
    let _g = exclusive();
    // 7000 B rounds up to the 7168 B class, which nothing else in this binary
    // uses on purpose; N is not a multiple of any magazine size.
    const N: usize = 1000;
    let layout = Layout::from_size_align(7000, 8).unwrap();
    let s0 = GLOBAL.stats();
    let c = class_index(&s0, 7168);

    let objs: Vec<*mut u8> = (0..N)
        .map(|i| {
            // SAFETY: a non-zero size.
            let p = unsafe { alloc(layout) };
            assert!(!p.is_null());
            // SAFETY: `p` is the live block of `layout.size()` bytes just allocated.
            unsafe { p.write_bytes(i as u8, layout.size()) };
            p
        })
        .collect();
    let s1 = GLOBAL.stats();
    let (a, b) = (s0.classes[c], s1.classes[c]);
    assert!(
        b.live_objects >= a.live_objects + N,
        "live objects {} → {} after {N} allocations",
        a.live_objects,
        b.live_objects
    );
    assert!(
        b.live_objects <= a.live_objects + N + 64,
        "no phantom objects"
    );
    assert!(b.slabs > a.slabs, "new slabs for {N} objects");
    assert!(s1.bytes_in_use + MIB >= s0.bytes_in_use + N * 7168);
    assert!(s1.units_in_use > s0.units_in_use);

    for (i, &p) in objs.iter().enumerate() {
        // SAFETY: byte 6999 of a live 7000-byte block, written when allocated.
        assert_eq!(unsafe { *p.add(6999) }, i as u8);
        // SAFETY: `p` was allocated with `layout` and is freed once.
        unsafe { dealloc(p, layout) };
    }
    let s2 = GLOBAL.stats();
    let d = s2.classes[c];
    assert!(
        d.live_objects + N <= b.live_objects,
        "live objects {} → {} after {N} frees",
        b.live_objects,
        d.live_objects
    );
    assert!(
        d.thread_cached + d.depot_objects > 0,
        "freed objects are cached in magazines"
    );
    assert!(
        d.depot_full > 0,
        "{N} frees overflow the thread's magazines"
    );
    assert_eq!(
        d.depot_objects % d.depot_full.max(1),
        0,
        "depot holds full magazines"
    );
    assert!(s2.bytes_cached >= (d.thread_cached + d.depot_objects) * 7168);

    GLOBAL.purge();
    let s3 = GLOBAL.stats();
    let e = s3.classes[c];
    assert_eq!(e.depot_objects, 0, "purge empties the depot");
    assert_eq!(e.depot_full, 0);
    assert!(e.slabs <= a.slabs.max(1), "empty slabs released");
    assert!(s3.depot_trims > s2.depot_trims);

    // Large blocks.
    let big = Layout::from_size_align(3 * MIB + 5, 4096).unwrap();
    let blocks: Vec<*mut u8> = (0..3)
        .map(|_| {
            // SAFETY: a non-zero size.
            let p = unsafe { alloc(big) };
            assert!(!p.is_null());
            // SAFETY: `p` is the live block of `big.size()` bytes just allocated.
            unsafe { p.write_bytes(1, big.size()) };
            p
        })
        .collect();
    let s4 = GLOBAL.stats();
    assert_eq!(s4.large.live, s3.large.live + 3);
    assert_eq!(
        s4.large.bytes_in_use,
        s3.large.bytes_in_use + 3 * big.size()
    );
    assert!(s4.large.bytes_mapped >= s3.large.bytes_mapped + 3 * big.size());
    // Process-wide: allow the harness's own small traffic (well under 1 MiB).
    assert!(s4.bytes_in_use + MIB >= s3.bytes_in_use + 3 * big.size());
    for p in blocks {
        // SAFETY: each block was allocated with `big` and is freed once.
        unsafe { dealloc(p, big) };
    }
    let s5 = GLOBAL.stats();
    assert_eq!(s5.large.live, s3.large.live);
    assert_eq!(s5.large.bytes_in_use, s3.large.bytes_in_use);
    // Freed large blocks stay mapped in the large-object cache until a purge.
    assert!(s5.large.bytes_mapped <= s4.large.bytes_mapped);
    assert!(
        s5.large.bytes_cached >= 3 * big.size() || s5.large.bytes_mapped < s4.large.bytes_mapped
    );
    GLOBAL.purge();
    let s6 = GLOBAL.stats();
    assert!(
        s6.large.bytes_mapped <= s3.large.bytes_mapped,
        "purge unmaps the cached blocks"
    );
}

// ───────────────────────────── fork ─────────────────────────────

/// Work for a forked child: every layer of the allocator, no std locks, no
/// output. Returns the exit code (0 = success).
fn child_work() -> i32 {
    let mut objs: Vec<Obj> = Vec::new();
    for i in 0..3000u64 {
        let size = if i % 500 == 0 {
            300_000
        } else {
            [8, 100, 700, 5000, 40_000][i as usize % 5]
        };
        objs.push(Obj::new(i, size));
    }
    if !objs.iter().all(|o| check_filled(o.id, &o.data)) {
        return 2;
    }
    drop(objs);
    let s: String = (0..2000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    if s.len() != 2000 {
        return 3;
    }
    // Takes the segment, depot and central locks, then the registry lock.
    GLOBAL.purge();
    if GLOBAL.stats().segments == 0 {
        return 4;
    }
    let v: Vec<u64> = (0..100_000).collect();
    if v.iter().sum::<u64>() != 4_999_950_000 {
        return 5;
    }
    0
}

#[test]
fn fork_while_another_thread_allocates_does_not_deadlock() {
    let _g = shared();
    let stop = Arc::new(AtomicBool::new(false));
    // Keep the allocator's locks busy so that a fork often lands while one is
    // held: one thread purges and reads stats in a loop (every depot, central
    // and segment lock, the registry lock, madvise/munmap under the segment
    // lock); two allocate and free bursts larger than their magazines (depot
    // exchanges, central batches, new slabs and segments under the locks).
    let purger = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                GLOBAL.purge();
                let _ = GLOBAL.stats();
                n += 1;
            }
            n
        })
    };
    let mut busy: Vec<_> = (0..2u64)
        .map(|t| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut rng = Rng::new(t);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let size = [16, 48, 256, 2000, 9000, 70_000, 400_000][rng.below(7)];
                    let l = Layout::from_size_align(size, 8).unwrap();
                    let count = (8 * MIB / size).clamp(2, 3000);
                    let ps: Vec<*mut u8> = (0..count)
                        .map(|i| {
                            // SAFETY: a non-zero size.
                            let p = unsafe { alloc(l) };
                            assert!(!p.is_null());
                            // SAFETY: `p` is a live block of at least 16 bytes.
                            unsafe { p.write(i as u8) };
                            opaque(p)
                        })
                        .collect();
                    for (i, &p) in ps.iter().enumerate() {
                        // SAFETY: `p` is live and its first byte was written when allocated.
                        assert_eq!(unsafe { p.read() }, i as u8);
                        // SAFETY: `p` was allocated with `l` and is freed once.
                        unsafe { dealloc(p, l) };
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    busy.push(purger);
    thread::sleep(Duration::from_millis(20));
    for round in 0..16 {
        // SAFETY: the child only allocates, frees and calls `_exit`; the
        // allocator's fork handlers leave its locks usable in the child.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = child_work();
            // SAFETY: `_exit` has no preconditions; the child skips the test
            // harness's exit path.
            unsafe { libc::_exit(code) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut status = 0;
        loop {
            // SAFETY: `pid` is our child; `status` is a live `c_int`.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break;
            }
            assert_eq!(r, 0, "waitpid failed");
            if Instant::now() > deadline {
                // SAFETY: `pid` is our child (not yet reaped); `status` is a live `c_int`.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                stop.store(true, Ordering::Relaxed);
                panic!("fork round {round}: child hung (allocator lock inherited held?)");
            }
            thread::sleep(Duration::from_millis(2));
        }
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "fork round {round}: child status {status:#x}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for b in busy {
        assert!(b.join().expect("busy thread failed") > 0);
    }
}

// ──────────────────── thread exit and TLS teardown ────────────────────

static LATE_OK: AtomicUsize = AtomicUsize::new(0);
static LATE_FAIL: AtomicUsize = AtomicUsize::new(0);

/// A thread-local whose destructor frees what the thread left in it and then
/// allocates, checks and frees more, while the thread's TLS is being torn down.
struct Late {
    held: RefCell<Vec<Obj>>,
}

impl Drop for Late {
    fn drop(&mut self) {
        // No panics here: a panic in a TLS destructor aborts the process.
        let held = self.held.take();
        let mut ok = held.iter().all(|o| check_filled(o.id, &o.data));
        drop(held);
        let objs: Vec<Obj> = (0..500u64)
            .map(|i| Obj::new(i, [1, 16, 100, 1000, 5000, 40_000, 300_000][i as usize % 7]))
            .collect();
        ok &= objs.iter().all(|o| check_filled(o.id, &o.data));
        let mut m: HashMap<u64, String> = HashMap::new();
        for i in 0..300 {
            m.insert(i, format!("late {i}"));
        }
        ok &= (0..300).all(|i| m[&i] == format!("late {i}"));
        drop(objs);
        drop(m);
        if ok {
            LATE_OK.fetch_add(1, Ordering::SeqCst);
        } else {
            LATE_FAIL.fetch_add(1, Ordering::SeqCst);
        }
    }
}

thread_local! {
    static LATE: Late = const { Late { held: RefCell::new(Vec::new()) } };
}

#[test]
fn exiting_threads_flush_caches_and_tls_destructors_can_allocate() {
    let _g = exclusive();
    // 13000 B → the 13312 B class, used by nothing else in this binary.
    let layout = Layout::from_size_align(13_000, 8).unwrap();
    let base = GLOBAL.stats();
    let c = class_index(&base, 13_312);

    // 1. Threads that cache objects, are counted, and exit.
    const T: usize = 32;
    let barrier = Arc::new(Barrier::new(T + 1));
    let handles: Vec<_> = (0..T)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                // SAFETY: a non-zero size.
                let ps: Vec<*mut u8> = (0..20).map(|_| unsafe { alloc(layout) }).collect();
                assert!(ps.iter().all(|p| !p.is_null()));
                for &p in &ps {
                    // SAFETY: each block was allocated with `layout` and is freed once.
                    unsafe { dealloc(p, layout) };
                }
                barrier.wait(); // counted here
                barrier.wait(); // then exit with the objects still cached
            })
        })
        .collect();
    barrier.wait();
    let during = GLOBAL.stats();
    barrier.wait();
    for h in handles {
        h.join().unwrap();
    }
    let after = GLOBAL.stats();
    assert!(
        during.thread_caches >= base.thread_caches + T,
        "thread caches {} → {} with {T} more threads",
        base.thread_caches,
        during.thread_caches
    );
    assert!(
        after.thread_caches + T - 2 <= during.thread_caches,
        "exited threads' caches unregistered: {} → {}",
        during.thread_caches,
        after.thread_caches
    );
    // Threads of earlier tests may still be exiting (and flushing), so the
    // cached counts are compared with `during`, not only with `base`.
    let (b, d, a) = (base.classes[c], during.classes[c], after.classes[c]);
    assert!(
        d.thread_cached >= a.thread_cached + T,
        "each exiting thread held cached objects, flushed at exit: {} → {}",
        d.thread_cached,
        a.thread_cached
    );
    assert!(a.thread_cached <= b.thread_cached);
    assert_eq!(
        a.live_objects, b.live_objects,
        "flushing loses or invents no object"
    );
    // The flushed objects are usable again.
    let ps: Vec<*mut u8> = (0..T * 20)
        .map(|i| {
            // SAFETY: a non-zero size.
            let p = unsafe { alloc(layout) };
            assert!(!p.is_null());
            // SAFETY: `p` is the live block of `layout.size()` bytes just allocated.
            unsafe { p.write_bytes(i as u8, layout.size()) };
            p
        })
        .collect();
    for (i, &p) in ps.iter().enumerate() {
        assert!(
            // SAFETY: `p` is live, `layout.size()` bytes, written when allocated.
            unsafe { std::slice::from_raw_parts(p, layout.size()) }
                .iter()
                .all(|&b| b == i as u8)
        );
        // SAFETY: `p` was allocated with `layout` and is freed once.
        unsafe { dealloc(p, layout) };
    }

    // 2. Allocation and free from a TLS destructor, in both orders relative to
    //    the allocator's own exit hook (TLS destructors run last-registered
    //    first): (a) `LATE` registered before the thread's first allocation, so
    //    its destructor runs after the cache was flushed and retired; (b) the
    //    other way round; (c) the destructor makes the thread's first allocation.
    LATE_OK.store(0, Ordering::SeqCst);
    LATE_FAIL.store(0, Ordering::SeqCst);
    let mut n = 0;
    for round in 0..4u64 {
        let hs = vec![
            thread::spawn(move || {
                LATE.with(|_| {}); // (a): registered first, no allocation
                let v: Vec<Obj> = (0..200)
                    .map(|i| Obj::new(round * 1000 + i, 1 + i as usize * 37))
                    .collect();
                LATE.with(|l| l.held.borrow_mut().extend(v));
            }),
            thread::spawn(move || {
                let v: Vec<Obj> = (0..200)
                    .map(|i| Obj::new(round * 1000 + i, 1 + i as usize * 37))
                    .collect();
                LATE.with(|l| l.held.borrow_mut().extend(v)); // (b)
            }),
            thread::spawn(|| LATE.with(|_| {})), // (c)
        ];
        n += hs.len();
        for h in hs {
            h.join().unwrap();
        }
    }
    assert_eq!(
        LATE_FAIL.load(Ordering::SeqCst),
        0,
        "a TLS destructor saw corruption"
    );
    assert_eq!(
        LATE_OK.load(Ordering::SeqCst),
        n,
        "every TLS destructor completed"
    );
    let end = GLOBAL.stats();
    assert!(
        end.thread_caches <= after.thread_caches + 2,
        "threads that allocated during TLS teardown left their caches registered: {} → {}",
        after.thread_caches,
        end.thread_caches
    );
}
