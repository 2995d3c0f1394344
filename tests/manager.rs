//! The MemoryManager end to end: `RustyAlloc` global, a budget, contexts and a
//! pool; usage driven upward; reclaimers run in their documented order, the level
//! falls, the history records each step; Prometheus output matches `stats()`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustydb_memory::manager::{MemoryManager, Reclaimable};
use rustydb_memory::pressure::{PressureLevel, UsageSource};
use rustydb_memory::{MemoryContext, RustyAlloc};

#[global_allocator]
static GLOBAL: RustyAlloc = RustyAlloc::new();

/// The two tests compare process-wide figures: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// A cache of clean blocks standing in for a buffer pool's clean frames.
struct CleanCache {
    blocks: Mutex<Vec<Vec<u8>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Reclaimable for CleanCache {
    fn name(&self) -> String {
        "clean-cache".into()
    }
    fn held_bytes(&self) -> u64 {
        self.blocks
            .lock()
            .unwrap()
            .iter()
            .map(|b| b.len() as u64)
            .sum()
    }
    fn reclaim(&self, bytes: u64) -> u64 {
        self.log.lock().unwrap().push("buffer-pools".into());
        let mut g = self.blocks.lock().unwrap();
        let mut freed = 0;
        while freed < bytes {
            match g.pop() {
                Some(b) => freed += b.len() as u64,
                None => break,
            }
        }
        freed
    }
}

#[test]
fn reclaimers_run_in_order_and_bring_the_level_down() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let usage = Arc::new(AtomicU64::new(0));
    let u = usage.clone();
    let log = Arc::new(Mutex::new(Vec::new()));
    let m = MemoryManager::builder()
        .budget(100 << 20)
        .usage_source(UsageSource::Function(Arc::new(move || {
            u.load(Ordering::Relaxed)
        })))
        .monitor(false)
        .build()
        .unwrap();
    // Observe the order in which reclaimers run (after the built-in ones register).
    let l2 = log.clone();
    let _obs = m
        .pressure()
        .register(PressureLevel::Warning, 25, "observer", move |_| {
            l2.lock().unwrap().push("observer".into());
            0
        });
    let cache = Arc::new(CleanCache {
        blocks: Mutex::new((0..8).map(|_| vec![1u8; 4 << 20]).collect()),
        log: log.clone(),
    });
    m.register_pool(cache.clone());
    let mut session = MemoryContext::root("session");
    {
        let q = session.child("query", None);
        q.alloc_slice_copy(&[7u8; 100_000]);
    }
    session.reset(); // leaves a spare chunk for the Warning reclaimer

    // Warning: contexts, allocator caches and large cache run; the pool is left alone.
    usage.store(85 << 20, Ordering::Relaxed);
    assert_eq!(m.check_now(), PressureLevel::Warning);
    assert_eq!(
        *log.lock().unwrap(),
        vec!["observer"],
        "only Warning reclaimers + observer at Warning"
    );
    assert_eq!(session.stats().reserved, 0, "the spare chunk was released");
    log.lock().unwrap().clear();

    // Critical: the same reclaimers, then the pools, until usage is back under 90 % − margin.
    let u3 = usage.clone();
    let c2 = cache.clone();
    let _track = m.pressure().register(
        PressureLevel::Critical,
        31,
        "usage-follows-pool",
        move |_| {
            // The stand-in pool's memory is what the injected usage counts.
            u3.store((60 << 20) + c2.held_bytes() / 4, Ordering::Relaxed);
            0
        },
    );
    usage.store(93 << 20, Ordering::Relaxed);
    let level = m.check_now();
    assert_eq!(*log.lock().unwrap(), vec!["observer", "buffer-pools"]);
    assert!(
        cache.held_bytes() < 32 << 20,
        "the pool gave clean blocks back"
    );
    assert!(level < PressureLevel::Critical, "level fell: {level:?}");
    let h = m.history();
    let ev = h.last().unwrap();
    let names: Vec<&str> = ev.callbacks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "context-spare-chunks",
            "allocator-caches",
            "large-object-cache",
            "observer",
            "buffer-pools",
            "usage-follows-pool"
        ]
    );
    assert!(h.iter().any(|e| e.to == PressureLevel::Warning));
    let s = m.stats();
    assert_eq!(s.pools.len(), 1);
    assert!(s.contexts.iter().any(|c| c.name == "session"));
    assert!(
        s.mapped > 0 && s.in_use > 0 && s.fragmentation >= 1.0,
        "{} {} {}",
        s.mapped,
        s.in_use,
        s.fragmentation
    );
    assert!(!s.recent_events.is_empty());
}

#[cfg(feature = "prometheus")]
#[test]
fn prometheus_exposition_parses_and_matches_stats() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    use prometheus_client::registry::Registry;
    use rustydb_memory::manager::MemoryCollector;

    let m: &'static MemoryManager = Box::leak(Box::new(
        MemoryManager::builder()
            .budget(1 << 40)
            .monitor(false)
            .build()
            .unwrap(),
    ));
    let _ctx = MemoryContext::root("prom-ctx");
    let mut registry = Registry::default();
    registry.register_collector(Box::new(MemoryCollector::new(m)));
    let before = m.stats();
    let mut text = String::with_capacity(1 << 16);
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let s = m.stats();
    // The scrape allocates too: a figure must lie between the two snapshots.
    let between = |v: f64, a: f64, b: f64| v >= a.min(b) && v <= a.max(b);
    // Parse the text format: `# HELP`, `# TYPE`, then `name{labels} value` lines.
    let mut values = std::collections::HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.insert(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (key, value) = line.rsplit_once(' ').expect("name value");
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let name = key.split('{').next().unwrap().trim_end_matches("_total");
        assert!(typed.contains(name), "sample {name} has no TYPE line");
        values.insert(key.to_string(), v);
    }
    assert_eq!(
        values["rustydb_memory_pressure_budget_bytes"],
        (1u64 << 40) as f64
    );
    let seg = values["rustydb_memory_segments"];
    assert!(
        between(
            seg,
            before.allocator.segments as f64,
            s.allocator.segments as f64
        ),
        "segments {seg}"
    );
    let mapped = values["rustydb_memory_bytes_mapped"];
    assert!(
        between(mapped, before.mapped as f64, s.mapped as f64),
        "mapped {mapped} vs {} .. {}",
        before.mapped,
        s.mapped
    );
    assert!(
        values
            .keys()
            .any(|k| k.starts_with("rustydb_memory_context_used_bytes{") && k.contains("prom-ctx"))
    );
    assert!(values.contains_key("rustydb_memory_fragmentation_ratio"));
}

#[test]
fn a_real_buffer_pool_gives_clean_frames_back_and_dirty_pages_reach_disk() {
    use rustydb_memory::{BufferPool, FileDisk, Policy};

    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("rustydb-manager-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pages.db");
    let _ = std::fs::remove_file(&path);
    let pool = Arc::new(
        BufferPool::builder()
            .frames(256)
            .page_size(4096)
            .policy(Policy::Arc)
            .disk(FileDisk::open(&path, 4096).unwrap())
            .build()
            .unwrap(),
    );
    // 200 pages: the first 100 flushed (clean), the other 100 left dirty.
    let mut ids = Vec::new();
    for i in 0..200u64 {
        let mut g = pool.new_page().unwrap();
        g.fill(i as u8);
        ids.push(g.page_id());
    }
    for &id in &ids[..100] {
        pool.flush(id).unwrap();
    }
    // A budget small enough that the pool's 800 KiB matters.
    let budget = 2u64 << 20;
    let base = Arc::new(AtomicU64::new(0));
    let (b, p) = (base.clone(), pool.clone());
    let m = MemoryManager::builder()
        .budget(budget)
        .usage_source(UsageSource::Function(Arc::new(move || {
            b.load(Ordering::Relaxed) + (p.stats().resident * 4096) as u64
        })))
        .monitor(false)
        .build()
        .unwrap();
    m.register_buffer_pool(&pool);
    let held = (pool.stats().resident * 4096) as u64;
    assert!(held >= 200 * 4096);

    // Warning: the pool is not touched.
    base.store(budget * 85 / 100 - held, Ordering::Relaxed);
    assert_eq!(m.check_now(), PressureLevel::Warning);
    assert_eq!(pool.stats().resident, 200);

    // Critical (93 %): the pool gives clean frames back until usage is under
    // 90 % − 2 % (about 26 pages' worth).
    base.store(budget * 93 / 100 - held, Ordering::Relaxed);
    let level = m.check_now();
    assert!(level < PressureLevel::Critical, "{level:?}");
    let resident = pool.stats().resident;
    assert!(
        (100..200).contains(&resident),
        "clean frames released, dirty kept: {resident}"
    );
    for &id in &ids[100..] {
        assert!(pool.is_resident(id), "dirty page {id} dropped");
    }
    let ev = m.history().pop().unwrap();
    let bp = ev
        .callbacks
        .iter()
        .find(|c| c.name == "buffer-pools")
        .expect("pool reclaimer ran");
    assert!(bp.released > 0);
    let s = m.stats();
    assert_eq!(s.buffer_pools.len(), 1);
    assert!(
        s.buffer_pools[0].hits + s.buffer_pools[0].misses > 0 || s.buffer_pools[0].resident > 0
    );

    // Every page, dirty or not, is on disk after a flush and a reopen.
    pool.flush_all().unwrap();
    drop(m);
    drop(pool);
    let reopened = BufferPool::builder()
        .frames(64)
        .page_size(4096)
        .disk(FileDisk::open(&path, 4096).unwrap())
        .build()
        .unwrap();
    for (i, &id) in ids.iter().enumerate() {
        let g = reopened.fetch_read(id).unwrap();
        assert!(
            g.iter().all(|&x| x == i as u8),
            "page {id} lost its contents"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
