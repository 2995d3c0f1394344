//! A real run: `RustyAlloc` as the global allocator, a budget of current RSS +
//! 64 MiB, allocations that push through 80/90/95 %, a reclaimer that frees a
//! cache, and `admit` refusing work at Emergency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustydb_memory::pressure::{PressureLevel, PressureManager, UsageSource};
use rustydb_memory::{Error, RustyAlloc};

#[global_allocator]
static GLOBAL: RustyAlloc = RustyAlloc::new();

const BLOCK: usize = 4 << 20;

fn block(fill: u8) -> Vec<u8> {
    vec![fill; BLOCK] // touched, so it counts in RSS
}

#[test]
fn pressure_rises_with_real_allocations_and_a_reclaimer_brings_it_down() {
    let rss0 = rustydb_memory::sys::process_rss().unwrap();
    let budget = rss0 + (64 << 20);
    let pm = PressureManager::builder()
        .budget(budget)
        .usage_source(UsageSource::ProcessRss)
        .build()
        .unwrap();

    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let _observer = pm.register(PressureLevel::Warning, 10, "observer", move |req| {
        s.lock().unwrap().push(req.level);
        0
    });
    let cache: Arc<Mutex<Vec<Vec<u8>>>> =
        Arc::new(Mutex::new((0..6).map(|i| block(i as u8)).collect()));
    let freed = Arc::new(AtomicU64::new(0));
    let (c, f) = (cache.clone(), freed.clone());
    let reclaimer = pm.register(PressureLevel::Emergency, 0, "cache", move |_req| {
        let blocks: Vec<Vec<u8>> = std::mem::take(&mut *c.lock().unwrap());
        let bytes = (blocks.len() * BLOCK) as u64;
        drop(blocks);
        // The allocator caches freed large blocks; give them back to the OS.
        GLOBAL.purge();
        f.fetch_add(bytes, Ordering::Relaxed);
        bytes
    });

    // Push usage up until the cache reclaimer has run.
    let mut work = Vec::new();
    let mut levels = Vec::new();
    while freed.load(Ordering::Relaxed) == 0 && work.len() < 64 {
        work.push(block(7));
        levels.push(pm.check_now());
    }
    assert!(
        freed.load(Ordering::Relaxed) >= (6 * BLOCK) as u64,
        "cache reclaimer never ran: {levels:?}"
    );
    let seen_levels = seen.lock().unwrap().clone();
    assert!(
        seen_levels.contains(&PressureLevel::Warning),
        "observer saw {seen_levels:?}"
    );
    assert!(
        seen_levels.contains(&PressureLevel::Critical),
        "observer saw {seen_levels:?}"
    );
    assert!(
        *levels.last().unwrap() < PressureLevel::Emergency,
        "freeing the cache brought the level down: {levels:?}"
    );
    drop(reclaimer);

    // With nothing left to reclaim, Emergency sticks and admit refuses work.
    while pm.check_now() < PressureLevel::Emergency && work.len() < 64 {
        work.push(block(9));
    }
    assert_eq!(pm.level(), PressureLevel::Emergency);
    assert!(matches!(
        pm.admit(4096),
        Err(Error::MemoryPressure {
            level: PressureLevel::Emergency,
            ..
        })
    ));
    assert!(
        work.iter().all(|b| b[0] == 7 || b[0] == 9),
        "contents intact"
    );

    drop(work);
    GLOBAL.purge(); // freed large blocks sit in the allocator's mapping cache
    assert!(
        pm.check_now() < PressureLevel::Warning,
        "usage fell after freeing the work set"
    );
    assert!(pm.admit(4096).is_ok());
    let h = pm.history();
    assert!(h.iter().any(|e| e.to == PressureLevel::Emergency));
    assert!(h.iter().any(|e| {
        e.callbacks
            .iter()
            .any(|c| c.name == "cache" && c.released > 0)
    }));
}
