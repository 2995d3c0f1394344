//! The pressure manager, driven by an injected usage source and clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use PressureLevel::*;
use rustydb_memory::Error;
use rustydb_memory::pressure::{Clock, PressureLevel, PressureManager, Thresholds};

#[derive(Default)]
struct FakeClock(AtomicU64);
impl Clock for FakeClock {
    fn now(&self) -> Duration {
        Duration::from_millis(self.0.fetch_add(1, Ordering::Relaxed))
    }
}

fn manager(usage: &Arc<AtomicU64>, history: usize) -> PressureManager {
    let u = usage.clone();
    PressureManager::builder()
        .budget(1000)
        .usage_fn(move || u.load(Ordering::Relaxed))
        .clock(Arc::new(FakeClock::default()))
        .history(history)
        .build()
        .unwrap()
}

#[test]
fn transitions_up_and_down_every_level_with_hysteresis() {
    let usage = Arc::new(AtomicU64::new(0));
    let pm = manager(&usage, 64);
    let steps = [
        (500, Normal),
        (800, Warning),
        (900, Critical),
        (950, Emergency),
        (940, Emergency), // inside the 2 % margin
        (929, Critical),
        (885, Critical), // inside the margin
        (879, Warning),
        (781, Warning),
        (779, Normal),
    ];
    for (u, want) in steps {
        usage.store(u, Ordering::Relaxed);
        assert_eq!(pm.check_now(), want, "usage {u}");
        assert_eq!(pm.level(), want);
    }
    let h = pm.history();
    let path: Vec<(PressureLevel, PressureLevel)> = h.iter().map(|e| (e.from, e.to)).collect();
    assert_eq!(
        path,
        vec![
            (Normal, Warning),
            (Warning, Critical),
            (Critical, Emergency),
            (Emergency, Critical),
            (Critical, Warning),
            (Warning, Normal)
        ]
    );
    assert!(
        h.windows(2)
            .all(|w| w[0].seq < w[1].seq && w[0].at_ms <= w[1].at_ms)
    );
    assert!(h.iter().all(|e| e.budget == 1000));
}

#[test]
fn callbacks_run_in_priority_order_only_at_their_level() {
    let usage = Arc::new(AtomicU64::new(0));
    let pm = manager(&usage, 64);
    let log = Arc::new(Mutex::new(Vec::new()));
    let mk = |name: &'static str| {
        let log = log.clone();
        move |req: &rustydb_memory::pressure::ReclaimRequest<'_>| {
            log.lock().unwrap().push((name, req.level));
            0
        }
    };
    let _a = pm.register(Critical, 20, "late", mk("late"));
    let _b = pm.register(Warning, 5, "warn", mk("warn"));
    let _c = pm.register(Critical, 10, "early", mk("early"));
    let _d = pm.register(Emergency, 0, "emerg", mk("emerg"));
    usage.store(850, Ordering::Relaxed);
    pm.check_now();
    assert_eq!(*log.lock().unwrap(), vec![("warn", Warning)]);
    log.lock().unwrap().clear();
    usage.store(920, Ordering::Relaxed);
    pm.check_now();
    assert_eq!(
        *log.lock().unwrap(),
        vec![("warn", Critical), ("early", Critical), ("late", Critical)]
    );
    log.lock().unwrap().clear();
    usage.store(990, Ordering::Relaxed);
    pm.check_now();
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            ("emerg", Emergency),
            ("warn", Emergency),
            ("early", Emergency),
            ("late", Emergency)
        ]
    );
}

#[test]
fn emergency_release_stops_under_critical_and_survives_a_panic() {
    let usage = Arc::new(AtomicU64::new(0));
    let pm = manager(&usage, 64);
    let ran = Arc::new(Mutex::new(Vec::new()));
    let (r1, r2, r3) = (ran.clone(), ran.clone(), ran.clone());
    let _p = pm.register(Critical, 0, "panics", move |_| {
        r1.lock().unwrap().push("panics");
        panic!("reclaimer bug");
    });
    let u = usage.clone();
    let _f = pm.register(Critical, 1, "frees", move |req| {
        r2.lock().unwrap().push("frees");
        assert!(req.bytes_wanted > 0);
        u.fetch_sub(200, Ordering::Relaxed);
        200
    });
    let _n = pm.register(Critical, 2, "never", move |_| {
        r3.lock().unwrap().push("never");
        0
    });
    usage.store(960, Ordering::Relaxed);
    let level = pm.check_now();
    assert_eq!(
        *ran.lock().unwrap(),
        vec!["panics", "frees"],
        "stops once under Critical"
    );
    assert_eq!(
        level, Normal,
        "760 is below every threshold less the margin"
    );
    let ev = pm.history().pop().unwrap();
    assert_eq!(
        (ev.from, ev.to, ev.released, ev.usage),
        (Normal, Normal, 200, 760)
    );
    assert!(ev.callbacks[0].panicked && !ev.callbacks[1].panicked);
    let s = pm.stats();
    assert_eq!(
        (s.callback_panics, s.callbacks_run, s.bytes_released),
        (1, 2, 200)
    );
}

#[test]
fn dropped_handles_are_never_called() {
    let usage = Arc::new(AtomicU64::new(0));
    let pm = manager(&usage, 64);
    let calls = Arc::new(AtomicU64::new(0));
    let c = calls.clone();
    let h = pm.register(Warning, 0, "gone", move |_| {
        c.fetch_add(1, Ordering::Relaxed);
        0
    });
    assert_eq!(pm.stats().registered, 1);
    drop(h);
    assert_eq!(pm.stats().registered, 0);
    usage.store(999, Ordering::Relaxed);
    pm.check_now();
    assert_eq!(calls.load(Ordering::Relaxed), 0);
}

#[test]
fn admit_rejects_at_emergency_with_the_numbers() {
    let usage = Arc::new(AtomicU64::new(0));
    let pm = manager(&usage, 64);
    usage.store(500, Ordering::Relaxed);
    pm.check_now();
    assert!(pm.admit(100).is_ok());
    assert!(
        matches!(pm.admit(450), Err(Error::MemoryPressure { .. })),
        "would reach 95 %"
    );
    usage.store(960, Ordering::Relaxed);
    pm.check_now();
    match pm.admit(1) {
        Err(Error::MemoryPressure {
            level,
            usage,
            budget,
            requested,
        }) => {
            assert_eq!((level, usage, budget, requested), (Emergency, 960, 1000, 1));
        }
        other => panic!("expected rejection, got {other:?}"),
    }
    assert_eq!(pm.stats().rejected, 2);
}

#[test]
fn history_is_bounded_and_ordered() {
    let usage = Arc::new(AtomicU64::new(0));
    let pm = manager(&usage, 8);
    for i in 0..100u64 {
        usage.store(if i % 2 == 0 { 990 } else { 100 }, Ordering::Relaxed);
        pm.check_now();
    }
    let h = pm.history();
    assert_eq!(h.len(), 8);
    assert!(h.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    assert_eq!(h.last().unwrap().seq, 100);
}

#[test]
fn bad_configuration_is_an_error() {
    let t = Thresholds {
        warning: 0.9,
        critical: 0.8,
        ..Thresholds::default()
    };
    assert!(matches!(
        PressureManager::builder().thresholds(t).build(),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(
        PressureManager::builder()
            .interval(Duration::ZERO)
            .build()
            .is_err()
    );
}

#[test]
fn the_monitor_thread_reacts_to_usage_on_its_own() {
    let usage = Arc::new(AtomicU64::new(0));
    let u = usage.clone();
    let hit = Arc::new(AtomicU64::new(0));
    let h2 = hit.clone();
    let pm = PressureManager::builder()
        .budget(1000)
        .usage_fn(move || u.load(Ordering::Relaxed))
        .interval(Duration::from_millis(5))
        .monitor(true)
        .build()
        .unwrap();
    let _h = pm.register(Critical, 0, "watch", move |_| {
        h2.fetch_add(1, Ordering::Relaxed);
        0
    });
    usage.store(920, Ordering::Relaxed);
    let t = std::time::Instant::now();
    while hit.load(Ordering::Relaxed) == 0 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        hit.load(Ordering::Relaxed) > 0,
        "monitor never called the reclaimer"
    );
    assert!(pm.monitor_info().unwrap().allocator_signal);
    drop(pm); // joins the monitor
}
