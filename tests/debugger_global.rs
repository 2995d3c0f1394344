//! `DebugAlloc<RustyAlloc>` as the global allocator of a 4-thread program at
//! the Full level: no deadlock (backtrace capture, side tables and the inner
//! allocator under contention), and exact per-component counts.

use std::collections::BTreeMap;
use std::sync::Barrier;

use rustydb_memory::RustyAlloc;
use rustydb_memory::debug::{self, DebugAlloc, DebugLevel, LeakScope};

#[global_allocator]
static GLOBAL: DebugAlloc<RustyAlloc> = DebugAlloc::with_level(RustyAlloc::new(), DebugLevel::Full);

#[test]
fn four_threads_at_full_level_count_exactly_and_do_not_deadlock() {
    GLOBAL.set_sample_every(97);
    let barrier = Barrier::new(4);
    std::thread::scope(|s| {
        for t in 0..4usize {
            let barrier = &barrier;
            s.spawn(move || {
                let name = format!("worker_{t}");
                let mark = GLOBAL.mark();
                let held = debug::with_component(&name, || {
                    let mut m = BTreeMap::new();
                    for i in 0..2000u64 {
                        m.insert(i, vec![t as u8; 1 + (i as usize % 300)]);
                    }
                    let held: Vec<Box<[u8; 48]>> =
                        (0..100).map(|_| Box::new([t as u8; 48])).collect();
                    drop(m);
                    held
                });
                barrier.wait();
                let c = GLOBAL
                    .components()
                    .into_iter()
                    .find(|c| c.name == name)
                    .expect("component listed");
                // Exactly the 100 boxes and the Vec holding them are live.
                assert_eq!(c.live_count, 101, "{c:?}");
                assert_eq!(
                    c.live_bytes,
                    100 * 48 + 100 * std::mem::size_of::<Box<[u8; 48]>>() as u64,
                    "{c:?}"
                );
                let leaks = GLOBAL.leaks_since(mark, LeakScope::Component(name.clone()));
                assert_eq!(leaks.count, 101);
                assert!(held.iter().all(|b| b.iter().all(|&x| x == t as u8)));
                drop(held);
                barrier.wait();
                let c = GLOBAL
                    .components()
                    .into_iter()
                    .find(|c| c.name == name)
                    .unwrap();
                assert_eq!((c.live_count, c.live_bytes), (0, 0));
                assert!(c.total_count >= 2101, "{c:?}");
            });
        }
    });
    GLOBAL.drain_quarantine();
    assert!(GLOBAL.reports().is_empty(), "{:?}", GLOBAL.reports());
}
