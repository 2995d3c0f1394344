//! Memory contexts: a proptest model of allocation, limits, children, resets
//! and rewinds; collections inside a context; drop order; the registry.

use std::alloc::Layout;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use rustydb_memory::{Error, MemoryContext, arena};

#[derive(Debug, Clone)]
enum Op {
    /// Allocate `size` bytes aligned to 1 << align_log, in the root (false) or child.
    Alloc {
        in_child: bool,
        size: usize,
        align_log: u8,
    },
    /// Drop the child and make a new one.
    NewChild,
    Checkpoint,
    /// Rewind the root to checkpoint `idx % checkpoints.len()`.
    Rewind(usize),
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any::<bool>(), 0usize..3000, 0u8..7).prop_map(|(in_child, size, align_log)| Op::Alloc { in_child, size, align_log }),
        1 => Just(Op::NewChild),
        1 => Just(Op::Checkpoint),
        1 => any::<usize>().prop_map(Op::Rewind),
        1 => Just(Op::Reset),
    ]
}

/// A live allocation: address, length, fill byte, and whose it is.
#[derive(Debug, Clone, Copy)]
struct Live {
    addr: usize,
    len: usize,
    fill: u8,
    in_child: bool,
}

fn check_all(live: &[Live]) {
    let mut by_addr: BTreeMap<usize, usize> = BTreeMap::new();
    for l in live {
        // SAFETY: the model only keeps allocations the context still holds.
        let s = unsafe { std::slice::from_raw_parts(l.addr as *const u8, l.len) };
        assert!(s.iter().all(|&b| b == l.fill), "contents lost");
        if l.len > 0 {
            if let Some((&a, &n)) = by_addr.range(..l.addr + l.len).next_back() {
                assert!(a + n <= l.addr, "overlap");
            }
            by_addr.insert(l.addr, l.len);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn contexts_match_the_model(
        root_limit in prop::option::of(0usize..40_000),
        child_limit in prop::option::of(0usize..20_000),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let b = MemoryContext::builder("model-root").initial_chunk(4096).max_chunk(16384);
        let mut root = match root_limit { Some(l) => b.limit(l).build(), None => b.build() };
        let mut live: Vec<Live> = Vec::new();
        let mut root_own = 0usize; // requested bytes charged by the root itself
        let mut checkpoints: Vec<(rustydb_memory::Checkpoint, usize, usize)> = Vec::new();
        let mut fill = 1u8;
        let mut i = 0;
        while i < ops.len() {
            // An epoch: a child lives until the next reset / rewind / new child.
            {
                let child = root.child("model-child", child_limit);
                let mut child_own = 0usize;
                while i < ops.len() {
                    match ops[i].clone() {
                        Op::Alloc { in_child, size, align_log } => {
                            let align = 1usize << align_log;
                            let layout = Layout::from_size_align(size, align).unwrap();
                            let ctx = if in_child { &child } else { &root };
                            let over_child = in_child && child_limit.is_some_and(|l| child_own + size > l);
                            let over_root = root_limit.is_some_and(|l| root_own + child_own + size > l);
                            match ctx.try_alloc_layout(layout) {
                                Ok(p) => {
                                    prop_assert!(!over_child && !over_root, "limit did not fire");
                                    prop_assert_eq!(p.as_ptr() as usize % align, 0);
                                    // SAFETY: `size` fresh bytes.
                                    unsafe { p.as_ptr().write_bytes(fill, size) };
                                    live.push(Live { addr: p.as_ptr() as usize, len: size, fill, in_child });
                                    fill = fill.wrapping_add(1).max(1);
                                    if in_child { child_own += size } else { root_own += size }
                                }
                                Err(Error::LimitExceeded { context, limit, requested }) => {
                                    prop_assert!(over_child || over_root, "limit fired early");
                                    prop_assert_eq!(requested, size);
                                    if over_child {
                                        prop_assert_eq!(context, "model-child");
                                        prop_assert_eq!(Some(limit), child_limit);
                                    } else {
                                        prop_assert_eq!(context, "model-root");
                                        prop_assert_eq!(Some(limit), root_limit);
                                    }
                                }
                                Err(e) => prop_assert!(false, "unexpected error {e}"),
                            }
                            if root_limit.is_some() {
                                prop_assert_eq!(root.stats().charged, root_own + child_own);
                            }
                            check_all(&live);
                            i += 1;
                        }
                        Op::Checkpoint => {
                            checkpoints.push((root.checkpoint(), root_own, live.iter().filter(|l| !l.in_child).count()));
                            i += 1;
                        }
                        _ => break,
                    }
                }
                drop(child);
                live.retain(|l| !l.in_child);
            }
            if i >= ops.len() {
                break;
            }
            match ops[i].clone() {
                Op::NewChild => {}
                Op::Reset => {
                    root.reset();
                    live.clear();
                    root_own = 0;
                    checkpoints.clear();
                    prop_assert_eq!(root.used(), 0);
                }
                Op::Rewind(k) if !checkpoints.is_empty() => {
                    let k = k % checkpoints.len();
                    let (cp, own, nlive) = checkpoints[k];
                    prop_assert!(root.rewind(&cp).is_ok());
                    root_own = own;
                    live.truncate(nlive);
                    checkpoints.truncate(k + 1);
                    if root_limit.is_some() {
                        prop_assert_eq!(root.stats().charged, root_own);
                    }
                }
                _ => {}
            }
            check_all(&live);
            i += 1;
        }
    }
}

#[test]
fn vec_and_hashmap_live_in_a_context_and_reset_releases_them() {
    let mut ctx = MemoryContext::builder("collections")
        .initial_chunk(4096)
        .build();
    {
        let mut v: allocator_api2::vec::Vec<u64, &MemoryContext> =
            allocator_api2::vec::Vec::new_in(&ctx);
        v.extend(0..10_000u64);
        assert_eq!(v.iter().sum::<u64>(), 49_995_000);
        let mut m: hashbrown::HashMap<u32, String, hashbrown::DefaultHashBuilder, &MemoryContext> =
            hashbrown::HashMap::new_in(&ctx);
        for i in 0..1000 {
            m.insert(i, i.to_string());
        }
        assert_eq!(m[&500], "500");
    }
    let before = ctx.stats();
    assert!(
        before.used >= 80_000,
        "the Vec's buffer lives in the context: {before:?}"
    );
    assert!(before.chunks > 1);
    ctx.reset();
    let after = ctx.stats();
    assert_eq!(after.used, 0);
    assert_eq!(after.chunks, 1, "one chunk kept as spare");
    assert!(after.peak >= before.used);
    assert!(ctx.release_spare() > 0);
    assert_eq!(ctx.stats().reserved, 0);
}

struct Recorder(Arc<std::sync::Mutex<Vec<u32>>>, u32);
impl Drop for Recorder {
    fn drop(&mut self) {
        self.0.lock().unwrap().push(self.1);
    }
}

#[test]
fn drops_run_once_in_reverse_order_at_reset_rewind_and_drop() {
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut ctx = MemoryContext::root("drops");
    for i in 0..5 {
        ctx.alloc_with_drop(Recorder(log.clone(), i));
    }
    ctx.reset();
    assert_eq!(*log.lock().unwrap(), vec![4, 3, 2, 1, 0]);
    log.lock().unwrap().clear();

    ctx.alloc_with_drop(Recorder(log.clone(), 10));
    let cp = ctx.checkpoint();
    ctx.alloc_with_drop(Recorder(log.clone(), 11));
    ctx.alloc_with_drop(Recorder(log.clone(), 12));
    ctx.rewind(&cp).unwrap();
    assert_eq!(*log.lock().unwrap(), vec![12, 11]);
    drop(ctx);
    assert_eq!(*log.lock().unwrap(), vec![12, 11, 10]);
}

#[test]
fn registry_lists_a_child_while_it_lives() {
    let root = MemoryContext::root("registry-root");
    let id = {
        let child = root.child("registry-child", Some(1 << 20));
        child.alloc_str("hello");
        let all = arena::contexts();
        let c = all
            .iter()
            .find(|c| c.id == child.id())
            .expect("child listed");
        assert_eq!(c.parent, Some(root.id()));
        assert_eq!(c.name, "registry-child");
        assert_eq!(c.limit, Some(1 << 20));
        assert!(c.used >= 5);
        assert_eq!(root.stats().children, 1);
        child.id()
    };
    assert!(
        arena::contexts().iter().all(|c| c.id != id),
        "dropped child still listed"
    );
    assert_eq!(root.stats().children, 0);
}

#[test]
fn limits_count_the_subtree_and_report_the_numbers() {
    let txn = MemoryContext::builder("txn").limit(10_000).build();
    let q1 = txn.child("q1", None);
    let q2 = txn.child("q2", Some(4_000));
    q1.try_alloc_layout(Layout::from_size_align(6_001, 8).unwrap())
        .unwrap();
    match q2.try_alloc_layout(Layout::from_size_align(4_500, 8).unwrap()) {
        Err(Error::LimitExceeded {
            context,
            limit,
            requested,
        }) => {
            assert_eq!((context.as_str(), limit, requested), ("q2", 4_000, 4_500));
        }
        other => panic!("expected q2's limit, got {other:?}"),
    }
    match q2.try_alloc_layout(Layout::from_size_align(4_000, 8).unwrap()) {
        Err(Error::LimitExceeded {
            context,
            limit,
            requested,
        }) => {
            assert_eq!((context.as_str(), limit, requested), ("txn", 10_000, 4_000));
        }
        other => panic!("expected txn's limit, got {other:?}"),
    }
    q2.try_alloc_layout(Layout::from_size_align(3_999, 8).unwrap())
        .unwrap();
    assert_eq!(txn.stats().charged, 10_000);
    drop(q1);
    assert_eq!(
        txn.stats().charged,
        3_999,
        "a dropped child gives its bytes back"
    );
}

#[test]
fn a_big_request_gets_its_own_chunk_and_large_chunks_work() {
    let ctx = MemoryContext::root("big");
    let big = ctx.alloc_layout(Layout::from_size_align(3 << 20, 16).unwrap());
    // SAFETY: 3 MiB fresh.
    unsafe { big.as_ptr().write_bytes(0xAB, 3 << 20) };
    let s = ctx.stats();
    assert!(s.reserved >= 3 << 20);
    let small = ctx.alloc(7u64);
    assert_eq!(*small, 7);
}

#[test]
fn stale_checkpoints_are_rejected() {
    let mut a = MemoryContext::root("a");
    let b = MemoryContext::root("b");
    let cp = b.checkpoint();
    assert!(matches!(
        a.rewind(&cp),
        Err(Error::InvalidCheckpoint { .. })
    ));
    a.alloc(1u32);
    let cp = a.checkpoint();
    a.reset();
    assert!(matches!(
        a.rewind(&cp),
        Err(Error::InvalidCheckpoint { .. })
    ));
}

#[test]
fn shared_context_serves_two_threads() {
    let ctx = rustydb_memory::SharedContext::root("shared-test", None);
    let total = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..2usize {
            let (ctx, total) = (&ctx, &total);
            s.spawn(move || {
                for i in 0..10_000usize {
                    let v = ctx.try_alloc(t * 1_000_000 + i).unwrap();
                    assert_eq!(*v, t * 1_000_000 + i);
                    total.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    assert_eq!(total.load(Ordering::Relaxed), 20_000);
    assert!(ctx.stats().used >= 20_000 * 8);
}

#[test]
fn spare_chunks_are_released_process_wide() {
    let mut ctx = MemoryContext::root("spare");
    ctx.alloc_slice_copy(&[0u8; 1000]);
    ctx.reset();
    assert!(ctx.stats().reserved > 0);
    assert!(arena::release_spare_chunks() >= rustydb_memory::arena::DEFAULT_INITIAL_CHUNK);
    assert_eq!(ctx.stats().reserved, 0);
    ctx.alloc(1u8);
}
