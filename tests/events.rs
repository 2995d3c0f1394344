//! The `tracing` feature's events: a pressure level change and a release with
//! the bytes each reclaimer freed reach a subscriber, with their fields; so
//! does the decay round that `RustyAlloc::purge` runs.
#![cfg(feature = "tracing")]

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustydb_memory::{PressureLevel, PressureManager, RustyAlloc};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata};

/// Each event as `target: field=value …`.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut f = Fields(format!("{}: ", event.metadata().target()));
        event.record(&mut f);
        self.0.lock().unwrap().push(f.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn level_changes_and_releases_per_reclaimer_are_events() {
    let usage = Arc::new(AtomicU64::new(0));
    let reading = usage.clone();
    let pm = PressureManager::builder()
        .budget(1000)
        .usage_fn(move || reading.load(Ordering::Relaxed))
        .monitor(false)
        .build()
        .unwrap();
    let cache = usage.clone();
    let _h = pm.register(PressureLevel::Warning, 0, "test-cache", move |req| {
        cache.fetch_sub(req.bytes_wanted, Ordering::Relaxed);
        req.bytes_wanted
    });
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        usage.store(960, Ordering::Relaxed);
        pm.check_now();
    });
    let events = capture.0.lock().unwrap().clone();
    let joined = events.join("\n");
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("rustydb_memory::pressure")
                && e.contains("memory pressure level changed")
                && e.contains("from=\"normal\"")
                && e.contains("to=\"warning\"")),
        "{joined}"
    );
    let released = 960 - usage.load(Ordering::Relaxed);
    assert!(released > 0);
    assert!(
        events.iter().any(|e| e.contains("reclaimer ran")
            && e.contains("reclaimer=test-cache")
            && e.contains("level=\"emergency\"")
            && e.contains(&format!("released={released} "))),
        "{joined}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.contains("memory released under pressure") && e.contains("emergency=true")),
        "{joined}"
    );
}

/// The value of the numeric field `name` in a captured event.
fn field(event: &str, name: &str) -> Option<u64> {
    let at = event.find(&format!(" {name}="))? + name.len() + 2;
    event[at..].split(' ').next()?.parse().ok()
}

#[test]
fn purge_emits_a_decay_round() {
    // Another test's pressure check may drain the ring between this purge's
    // round and its emission (onto that test's subscriber): try a few times.
    for _ in 0..3 {
        let blocks: Vec<*mut u8> = (0..1024).map(|_| RustyAlloc.malloc(4000)).collect();
        for p in blocks {
            // SAFETY: each block came from `malloc` and is freed once.
            unsafe { RustyAlloc.free(p) };
        }
        let capture = Capture::default();
        let returned = tracing::subscriber::with_default(capture.clone(), || RustyAlloc.purge());
        let events = capture.0.lock().unwrap().clone();
        let joined = events.join("\n");
        let Some(round) = events.iter().find(|e| {
            e.starts_with("rustydb_memory::decay: ")
                && e.contains("decay round")
                && e.contains("source=\"purge()\"")
        }) else {
            continue;
        };
        assert!(field(round, "round").unwrap() >= 1, "{joined}");
        let purged = field(round, "purged").unwrap();
        assert!(field(round, "lazily_freed").is_some(), "{joined}");
        // 4 MiB of free 4 KiB-class objects were cached: the round gave pages
        // back, about what purge() reports (other threads may purge meanwhile).
        assert!(purged > 0, "{joined}");
        assert!(
            purged <= 2 * returned + (1 << 20),
            "{purged} vs {returned}: {joined}"
        );
        return;
    }
    panic!("no decay round event from purge()");
}
