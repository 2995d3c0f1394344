//! Threads: churn with content checks, objects through channels, mstress, purge beside churn.

use super::*;

#[test]
fn eight_threads_churn_collections_with_content_checks() {
    let _g = shared();
    let handles: Vec<_> = (0..8)
        .map(|t| thread::spawn(move || churn(t, 12_000)))
        .collect();
    for h in handles {
        h.join().expect("churn thread failed");
    }
}

/// What producers send: objects of many classes (and a few large ones), all
/// freed by the consumer that receives them.
enum Msg {
    Bytes(Obj),
    Words(u64, Box<[u64]>),
    Text(u64, String),
    /// A burst of same-class objects, so the consumer's magazines fill and go to
    /// the depot while the producer's run empty. (Boxed on purpose: 64 separate
    /// 48 B objects, not one 3 KiB buffer.)
    #[allow(clippy::vec_box)]
    Batch(u64, Vec<Box<[u8; 48]>>),
}

fn text_for(id: u64) -> String {
    format!("message {id} {}", "·".repeat((id % 40) as usize))
}

#[test]
fn objects_sent_through_channels_are_checked_and_freed_by_the_consumer() {
    let _g = shared();
    const PRODUCERS: u64 = 4;
    const CONSUMERS: usize = 3;
    const PER_PRODUCER: u64 = 25_000;

    let (txs, rxs): (Vec<_>, Vec<_>) = (0..CONSUMERS)
        .map(|_| mpsc::sync_channel::<Msg>(512))
        .unzip();
    let consumers: Vec<_> = rxs
        .into_iter()
        .map(|rx| {
            thread::spawn(move || {
                let mut seen = Vec::new();
                for m in rx {
                    let id = match m {
                        Msg::Bytes(o) => {
                            o.check();
                            o.id
                        }
                        Msg::Words(id, w) => {
                            assert_eq!(w.len() as u64, id % 1500 + 1);
                            assert!(w.iter().enumerate().all(|(i, &x)| x == id * 7 + i as u64));
                            id
                        }
                        Msg::Text(id, s) => {
                            assert_eq!(s, text_for(id));
                            id
                        }
                        Msg::Batch(id, b) => {
                            assert_eq!(b.len(), 64);
                            for (i, x) in b.iter().enumerate() {
                                assert!(x.iter().all(|&v| v == (id as u8) ^ (i as u8)));
                            }
                            id
                        }
                    };
                    seen.push(id);
                }
                seen
            })
        })
        .collect();

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let txs = txs.clone();
            thread::spawn(move || {
                let mut rng = Rng::new(100 + p);
                for n in 0..PER_PRODUCER {
                    let id = p * PER_PRODUCER + n;
                    let m = match rng.below(4) {
                        0 => Msg::Bytes(Obj::new(id, rng.size())),
                        1 => Msg::Words(id, (0..=id % 1500).map(|i| id * 7 + i).collect()),
                        2 => Msg::Text(id, text_for(id)),
                        _ => Msg::Batch(
                            id,
                            (0..64)
                                .map(|i| Box::new([(id as u8) ^ (i as u8); 48]))
                                .collect(),
                        ),
                    };
                    txs[rng.below(CONSUMERS)].send(m).expect("consumer alive");
                }
            })
        })
        .collect();
    drop(txs);
    for p in producers {
        p.join().expect("producer failed");
    }
    let mut all: Vec<u64> = consumers
        .into_iter()
        .flat_map(|c| c.join().expect("consumer failed"))
        .collect();
    all.sort_unstable();
    assert_eq!(all.len() as u64, PRODUCERS * PER_PRODUCER);
    assert!(
        all.iter().enumerate().all(|(i, &id)| id == i as u64),
        "every message arrives exactly once"
    );
}

#[test]
fn mstress_threads_come_and_go_while_their_objects_live_on() {
    let _g = shared();
    const SLOTS: usize = 4096;
    const ROUNDS: u64 = 30;
    const THREADS: u64 = 6;
    const OPS: usize = 2000;

    let slots: Arc<Vec<Mutex<Option<Obj>>>> =
        Arc::new((0..SLOTS).map(|_| Mutex::new(None)).collect());
    let next_id = Arc::new(AtomicUsize::new(1));
    for round in 0..ROUNDS {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let slots = Arc::clone(&slots);
                let next_id = Arc::clone(&next_id);
                thread::spawn(move || {
                    let mut rng = Rng::new(round * 1000 + t);
                    let mut transient: Vec<Obj> = Vec::new();
                    for _ in 0..OPS {
                        let id = next_id.fetch_add(1, Ordering::Relaxed) as u64;
                        let obj = Obj::new(id, rng.size().min(64 * KIB));
                        let i = rng.below(SLOTS);
                        // The displaced object was (usually) made by a thread that
                        // has exited since; it is checked and freed here.
                        let old = slots[i].lock().unwrap().replace(obj);
                        if let Some(old) = old {
                            old.check();
                        }
                        if rng.below(4) == 0 {
                            transient.push(Obj::new(id ^ 0xABCD, 1 + rng.below(512)));
                            if transient.len() > 64 {
                                let o = transient.swap_remove(rng.below(transient.len()));
                                o.check();
                            }
                        }
                    }
                    transient.iter().for_each(Obj::check);
                })
            })
            .collect();
        for h in handles {
            h.join().expect("mstress thread failed");
        }
        // Between rounds, verify a sample of what the dead threads left behind.
        for s in slots.iter().step_by(7) {
            if let Some(o) = &*s.lock().unwrap() {
                o.check();
            }
        }
    }
    let mut live = 0;
    for s in slots.iter() {
        if let Some(o) = s.lock().unwrap().take() {
            o.check();
            live += 1;
        }
    }
    assert!(live > SLOTS / 2, "the shared structure was populated");
}

#[test]
fn purge_while_other_threads_churn_keeps_live_data_intact() {
    let _g = shared();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3u64)
        .map(|t| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut rng = Rng::new(7000 + t);
                let mut keep: Vec<Obj> = Vec::new();
                let mut id = t << 40;
                for burst in 0..60 {
                    // A burst big enough to create and then empty whole slabs, so
                    // their units are released, dirty, and purged under our feet.
                    let size = [24, 200, 1000, 3000, 20_000][burst % 5];
                    let n = 2 * MIB / size;
                    let mut objs: Vec<Obj> = (0..n)
                        .map(|_| {
                            id += 1;
                            Obj::new(id, size)
                        })
                        .collect();
                    objs.iter().for_each(Obj::check);
                    // Keep a few long-lived survivors per burst.
                    for _ in 0..8 {
                        keep.push(objs.swap_remove(rng.below(objs.len())));
                    }
                    drop(objs);
                    keep.iter().for_each(Obj::check);
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                keep.iter().for_each(Obj::check);
            })
        })
        .collect();
    let purger = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut purges = 0u32;
            while !stop.load(Ordering::Relaxed) {
                GLOBAL.purge();
                let s = GLOBAL.stats();
                assert!(s.bytes_mapped >= s.segments * 2 * MIB);
                purges += 1;
                thread::sleep(Duration::from_millis(2));
            }
            purges
        })
    };
    for w in workers {
        w.join().expect("worker failed");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(purger.join().expect("purger failed") > 0);
}
