//! Loom model of the buffer pool's state-word protocol: pin vs. evict,
//! write latch vs. evict, optimistic read vs. writer, in a two-frame pool.
//! The frames' bytes are modelled so that loom reports a plain write racing
//! with any read (see `loom_api::PoolModel`): the optimistic reads below are
//! race-free only because owners write a frame an optimistic reader has
//! marked through atomic words.
//!
//! `cd loom && RUSTFLAGS="--cfg rustydb_loom" LOOM_MAX_PREEMPTIONS=2 \
//!  cargo test --release --test buffer_pool`
#![cfg(rustydb_loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU64, Ordering};
use rustydb_memory::loom_api::PoolModel;

#[test]
fn pin_vs_evict() {
    loom::model(|| {
        let m = Arc::new(PoolModel::new());
        let r = {
            let m = m.clone();
            loom::thread::spawn(move || m.read(10))
        };
        let wb = AtomicU64::new(0);
        let evicted = m.evict_and_load(30, &wb);
        let seen = r.join().unwrap();
        // A reader never sees another page's bytes under page 10's id.
        assert!(seen.is_none() || seen == Some(10_000), "{seen:?}");
        assert_eq!(evicted.is_some(), true, "one frame is always unpinned");
        if evicted == Some(10) {
            assert_eq!(m.read(10), None);
        }
        assert_eq!(m.read(30), Some(30_000));
        assert_eq!(m.pins(), 0);
        assert_eq!(
            wb.load(Ordering::Relaxed),
            0,
            "clean pages are not written back"
        );
    });
}

#[test]
fn two_readers_vs_evict() {
    loom::model(|| {
        let m = Arc::new(PoolModel::new());
        let hs: Vec<_> = [10u64, 20]
            .into_iter()
            .map(|p| {
                let m = m.clone();
                loom::thread::spawn(move || (p, m.read(p)))
            })
            .collect();
        let wb = AtomicU64::new(0);
        let evicted = m.evict_and_load(30, &wb);
        for h in hs {
            let (p, seen) = h.join().unwrap();
            assert!(seen.is_none() || seen == Some(p * 1000), "{p}: {seen:?}");
        }
        // Both frames may have been pinned at the moment of the attempt.
        if let Some(old) = evicted {
            assert_eq!(m.read(old), None);
        }
        assert_eq!(m.pins(), 0);
    });
}

#[test]
fn write_latch_vs_evict_writes_back() {
    loom::model(|| {
        let m = Arc::new(PoolModel::new());
        let w = {
            let m = m.clone();
            loom::thread::spawn(move || m.write(10))
        };
        let wb = AtomicU64::new(0);
        let evicted = m.evict_and_load(30, &wb);
        let wrote = w.join().unwrap();
        if evicted == Some(10) {
            if wrote {
                // Written before the eviction: the write-back carries it.
                assert_eq!(wb.load(Ordering::Relaxed), 10_001);
            }
            assert_eq!(m.read(10), None);
        } else {
            assert!(wrote);
            assert_eq!(m.read(10), Some(10_001));
        }
    });
}

#[test]
fn optimistic_read_vs_writer() {
    loom::model(|| {
        let m = Arc::new(PoolModel::new());
        let w = {
            let m = m.clone();
            loom::thread::spawn(move || {
                m.write(10);
                m.write(10);
            })
        };
        let a = m.read_optimistic(10);
        let b = m.read_optimistic(10);
        w.join().unwrap();
        for v in [a, b].into_iter().flatten() {
            assert!((10_000..=10_002).contains(&v), "{v}");
        }
        // Validated reads never go backwards.
        if let (Some(a), Some(b)) = (a, b) {
            assert!(a <= b);
        }
        assert_eq!(m.read_optimistic(10), Some(10_002));
    });
}

#[test]
fn optimistic_read_vs_evict() {
    loom::model(|| {
        let m = Arc::new(PoolModel::new());
        let e = {
            let m = m.clone();
            loom::thread::spawn(move || {
                let wb = AtomicU64::new(0);
                m.evict_and_load(30, &wb)
            })
        };
        let a = m.read_optimistic(10);
        e.join().unwrap();
        assert!(a.is_none() || a == Some(10_000), "{a:?}");
    });
}

#[test]
fn marked_frame_writer_vs_optimistic_and_pinned_readers() {
    loom::model(|| {
        let m = Arc::new(PoolModel::new());
        // The first optimistic read marks frame 0: writes go atomic from now on.
        assert_eq!(m.read_optimistic(10), Some(10_000));
        let w = {
            let m = m.clone();
            loom::thread::spawn(move || assert!(m.write(10)))
        };
        let a = m.read_optimistic(10);
        let b = m.read(10);
        w.join().unwrap();
        assert!(
            a.is_none() || a == Some(10_000) || a == Some(10_001),
            "{a:?}"
        );
        assert!(b == Some(10_000) || b == Some(10_001), "{b:?}");
        // A pinned read after a validated optimistic one never goes back.
        if let (Some(a), Some(b)) = (a, b) {
            assert!(a <= b);
        }
        assert_eq!(m.read(10), Some(10_001));
    });
}
