//! The memory debugger: every detection is proven by injecting the fault.
//! Each test uses its own `DebugAlloc` (called as a value), so tests running in
//! parallel do not see each other's blocks.

use std::alloc::{GlobalAlloc, Layout, System};

use rustydb_memory::debug::{self, DebugAlloc, DebugLevel, LeakScope, ReportKind};

fn l(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

#[inline(never)]
fn leaky_function(d: &DebugAlloc<System>) -> *mut u8 {
    // SAFETY: non-zero size; the block is written inside its bounds.
    let p = unsafe { d.alloc(l(1234)) };
    // Work after the call, so it is not a tail call (whose frame would vanish).
    // SAFETY: `p` is the live 1234-byte block just allocated.
    unsafe { p.write_bytes(0x11, 1234) };
    std::hint::black_box(p)
}

#[test]
fn a_leak_is_found_with_size_site_and_component() {
    static D: DebugAlloc<System> = DebugAlloc::with_level(System, DebugLevel::Full);
    let mark = D.mark();
    let leaked = debug::with_component("leak_test", || leaky_function(&D));
    // Freed memory is not a leak.
    // SAFETY: allocated from D with this layout, freed once.
    unsafe {
        let p = D.alloc(l(99));
        D.dealloc(p, l(99));
    }
    let r = D.leaks_since(mark, LeakScope::CurrentThread);
    assert_eq!((r.count, r.bytes), (1, 1234), "{r}");
    let g = &r.groups[0];
    assert_eq!(g.component, "leak_test");
    assert!(
        g.site.iter().any(|f| f.contains("leaky_function")),
        "site: {:?}",
        g.site
    );
    let by_comp = D.leaks_since(mark, LeakScope::Component("leak_test".into()));
    assert_eq!(by_comp.bytes, 1234);
    assert_eq!(
        D.leaks_since(mark, LeakScope::Component("other".into()))
            .count,
        0
    );
    // SAFETY: as above.
    unsafe { D.dealloc(leaked, l(1234)) };
    assert_eq!(D.leaks_since(mark, LeakScope::CurrentThread).count, 0);
}

#[test]
fn double_and_invalid_frees_are_reported_and_not_passed_on() {
    static D: DebugAlloc<System> = DebugAlloc::with_level(System, DebugLevel::Tracking);
    // SAFETY: deliberately wrong frees; the debugger must absorb them.
    unsafe {
        let p = D.alloc(l(64));
        D.dealloc(p, l(64));
        D.dealloc(p, l(64)); // double free
        let mut on_stack = [0u64; 8];
        let bogus = on_stack.as_mut_ptr().cast::<u8>().add(16);
        D.dealloc(bogus, l(64)); // invalid free
        assert_eq!(
            on_stack, [0; 8],
            "the invalid free did not write to the pointer's memory"
        );
    }
    // Below Full, a freed block is not remembered (no quarantine): the second
    // free is caught as "not a live block" (InvalidFree), and not passed on.
    let kinds: Vec<ReportKind> = D.reports().iter().map(|r| r.kind).collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(
        kinds
            .iter()
            .all(|k| matches!(k, ReportKind::DoubleFree | ReportKind::InvalidFree)),
        "{kinds:?}"
    );
    // The program continues, uncorrupted.
    let v: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8; 100]).collect();
    assert!(
        v.iter()
            .enumerate()
            .all(|(i, b)| b.iter().all(|&x| x == i as u8))
    );
    // SAFETY: a normal pair still works.
    unsafe {
        let p = D.alloc(l(64));
        p.write_bytes(1, 64);
        D.dealloc(p, l(64));
    }
    assert_eq!(D.reports().len(), 2);
}

#[test]
fn double_free_under_full_names_both_sites() {
    static D: DebugAlloc<System> = DebugAlloc::with_level(System, DebugLevel::Full);
    D.set_sample_every(0);
    // SAFETY: a deliberate double free of a quarantined block.
    unsafe {
        let p = D.alloc(l(48));
        D.dealloc(p, l(48));
        D.dealloc(p, l(48));
    }
    let r = D
        .reports()
        .into_iter()
        .find(|r| r.kind == ReportKind::DoubleFree)
        .expect("reported");
    assert!(
        !r.alloc_site.is_empty() && !r.free_site.is_empty() && !r.site.is_empty(),
        "{r}"
    );
}

#[test]
fn a_write_after_free_is_reported_when_the_block_leaves_quarantine() {
    static D: DebugAlloc<System> = DebugAlloc::with_level(System, DebugLevel::Full);
    D.set_sample_every(0);
    // SAFETY: a deliberate write to a freed (quarantined, still mapped) block.
    unsafe {
        let p = D.alloc(l(200));
        D.dealloc(p, l(200));
        *p.add(17) = 42;
    }
    assert!(
        D.reports()
            .iter()
            .all(|r| r.kind != ReportKind::WriteAfterFree),
        "not yet"
    );
    D.drain_quarantine();
    let r = D
        .reports()
        .into_iter()
        .find(|r| r.kind == ReportKind::WriteAfterFree)
        .expect("reported");
    assert_eq!((r.size, r.offset), (200, 17));
    assert!(!r.alloc_site.is_empty() && !r.free_site.is_empty());
}

#[test]
fn overflow_and_underflow_into_redzones_are_reported_on_free() {
    static D: DebugAlloc<System> = DebugAlloc::with_level(System, DebugLevel::Full);
    D.set_sample_every(0);
    // SAFETY: deliberate writes just outside the block, into its redzones.
    unsafe {
        let p = D.alloc(l(32));
        *p.add(33) = 1;
        D.dealloc(p, l(32));
        let q = D.alloc(l(32));
        *q.sub(17) = 1; // past the 16-byte header, into the lead redzone
        D.dealloc(q, l(32));
    }
    let rs = D.reports();
    let over = rs
        .iter()
        .find(|r| r.kind == ReportKind::Overflow)
        .expect("overflow reported");
    assert_eq!(over.offset, 33);
    assert!(rs.iter().any(|r| r.kind == ReportKind::Underflow), "{rs:?}");
}

#[test]
fn component_accounting_matches_what_was_allocated() {
    static D: DebugAlloc<System> = DebugAlloc::with_level(System, DebugLevel::Counting);
    let mut ptrs = Vec::new();
    debug::with_component("query_exec", || {
        for _ in 0..10 {
            // SAFETY: non-zero size.
            ptrs.push(unsafe { D.alloc(l(100)) });
        }
    });
    let c = |name: &str| D.components().into_iter().find(|c| c.name == name).unwrap();
    let q = c("query_exec");
    assert_eq!(
        (q.live_bytes, q.live_count, q.total_count, q.peak_bytes),
        (1000, 10, 10, 1000)
    );
    for p in ptrs.drain(..5) {
        // SAFETY: from D with this layout.
        unsafe { D.dealloc(p, l(100)) };
    }
    let q = c("query_exec");
    assert_eq!(
        (q.live_bytes, q.live_count, q.peak_bytes, q.total_bytes),
        (500, 5, 1000, 1000)
    );
    for p in ptrs {
        // SAFETY: as above.
        unsafe { D.dealloc(p, l(100)) };
    }
    assert_eq!(c("query_exec").live_bytes, 0);
}

#[test]
fn levels_switch_at_run_time_without_breaking_frees() {
    static D: DebugAlloc<System> = DebugAlloc::with_level(System, DebugLevel::Off);
    // SAFETY: blocks are freed with their layouts at whatever level is current.
    unsafe {
        let a = D.alloc(l(10));
        D.set_level(DebugLevel::Full);
        let b = D.alloc(Layout::from_size_align(24, 64).unwrap());
        assert_eq!(b as usize % 64, 0);
        D.set_level(DebugLevel::Tracking);
        D.dealloc(a, l(10));
        D.set_level(DebugLevel::Counting);
        D.dealloc(b, Layout::from_size_align(24, 64).unwrap());
    }
    D.drain_quarantine();
    assert!(D.reports().is_empty(), "{:?}", D.reports());
    assert_eq!(D.stats().tracked_blocks, 0);
}

#[test]
fn assert_no_leaks_is_scoped_to_the_thread() {
    static D: DebugAlloc<System> = DebugAlloc::with_level(System, DebugLevel::Tracking);
    let other = std::thread::spawn(|| {
        // SAFETY: non-zero size; leaked on purpose on another thread.
        unsafe { D.alloc(l(500)) as usize }
    });
    D.assert_no_leaks(LeakScope::CurrentThread, || {
        // SAFETY: a balanced pair.
        unsafe {
            let p = D.alloc(l(8));
            D.dealloc(p, l(8));
        }
    });
    let leaked = other.join().unwrap();
    let r = std::panic::catch_unwind(|| {
        D.assert_no_leaks(LeakScope::CurrentThread, || {
            // SAFETY: non-zero size; leaked on purpose.
            unsafe { D.alloc(l(77)) }
        })
    });
    assert!(r.is_err(), "a leak on this thread must fail the assertion");
    let long = D.long_lived(std::time::Duration::ZERO, LeakScope::All);
    assert!(long.bytes >= 577);
    // SAFETY: from D with this layout.
    unsafe { D.dealloc(leaked as *mut u8, l(500)) };
}

/// Runs in a child process: an access to a freed sampled block must fault and be reported.
#[test]
fn a_use_after_free_of_a_sampled_block_is_caught_in_a_child() {
    if std::env::var("RUSTYDB_DEBUG_CHILD").is_ok() {
        static D: DebugAlloc<System> = DebugAlloc::with_level(System, DebugLevel::Full);
        D.set_sample_every(1);
        // SAFETY: a deliberate use after free of a guarded block: must fault.
        unsafe {
            let p = D.alloc(l(40));
            D.dealloc(p, l(40));
            std::ptr::write_volatile(p.add(3), 7);
        }
        std::process::exit(0); // not reached if the guard works
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_use_after_free_of_a_sampled_block_is_caught_in_a_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RUSTYDB_DEBUG_CHILD", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the child survived a use after free");
    assert!(
        err.contains("guard page fault") && err.contains("use after free"),
        "stderr: {err}"
    );
}
