//! Model checks (loom) of the magazine ⇄ depot exchange. Run with
//! `cd loom && RUSTFLAGS="--cfg rustydb_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test depot`.
//!
//! Magazines hold distinct tokens in place of object pointers. In every
//! interleaving loom explores, each token must end up in exactly one place
//! (nothing lost, nothing handed out twice), every magazine created must end up
//! in exactly one place, and the depot's full magazines are full and its empty
//! ones empty.

#![cfg(rustydb_loom)]

use loom::sync::Arc;
use loom::thread;
use rustydb_memory::loom_api::{DepotModel, MagazineBox};

/// Rounds per magazine: small, to keep the state space small; what matters is
/// the exchange of whole magazines.
const CAP: u32 = 2;

/// `loom::model` with room for the depot lock's bounded spinning (under loom the
/// lock spins with `yield_now` before it "sleeps"), which needs more branches
/// than loom's default allows once three threads contend. Preemption bounds
/// and the rest still come from the `LOOM_*` environment variables.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.max_branches = 100_000;
    b.check(f);
}

/// A full magazine holding tokens `first..first + CAP`.
fn full_magazine(first: usize) -> MagazineBox {
    let mut m = MagazineBox::new(CAP);
    fill(&mut m, first);
    m
}

fn fill(m: &mut MagazineBox, first: usize) {
    assert!(m.is_empty(), "only empty magazines are refilled");
    for t in first..first + CAP as usize {
        assert!(m.push(t));
    }
    assert!(!m.push(usize::MAX), "a full magazine refuses another round");
}

fn empty_all(m: &mut MagazineBox, into: &mut Vec<usize>) {
    while let Some(t) = m.pop() {
        into.push(t);
    }
    assert!(m.is_empty());
}

/// What a thread still holds when it finishes.
#[derive(Default)]
struct Held {
    tokens: Vec<usize>,
    magazines: Vec<MagazineBox>,
    created: usize,
}

/// Checks the end state: the tokens taken out by threads plus those in the
/// depot's and the threads' magazines are exactly `1..=tokens`, and the
/// magazines are exactly those created.
fn audit(depot: &DepotModel, held: Vec<Held>, tokens: usize, created_before: usize) {
    let (full, empty) = depot.drain();
    let mut all = Vec::new();
    let mut magazines = 0;
    let mut created = created_before;
    for h in held {
        all.extend(h.tokens);
        created += h.created;
        for mut m in h.magazines {
            empty_all(&mut m, &mut all);
            magazines += 1;
        }
    }
    for mut m in full {
        assert_eq!(m.len(), CAP as usize, "the depot's full magazines are full");
        empty_all(&mut m, &mut all);
        magazines += 1;
    }
    for m in &empty {
        assert!(m.is_empty(), "the depot's empty magazines are empty");
        magazines += 1;
    }
    all.sort_unstable();
    let want: Vec<usize> = (1..=tokens).collect();
    assert_eq!(all, want, "every token accounted for exactly once");
    assert_eq!(magazines, created, "magazines are conserved");
    let (f, e) = depot.drain();
    assert!(f.is_empty() && e.is_empty(), "drain takes everything");
}

/// The free path of one thread: fills magazines with fresh tokens and hands them
/// in full, taking an empty one back for the next fill.
fn producer(d: Arc<DepotModel>, first_token: usize, rounds: usize) -> Held {
    let mut h = Held::default();
    let mut spare: Option<MagazineBox> = None;
    for k in 0..rounds {
        let mut m = spare.take().unwrap_or_else(|| {
            h.created += 1;
            MagazineBox::new(CAP)
        });
        fill(&mut m, first_token + k * CAP as usize);
        spare = d.exchange_for_empty(m);
        if let Some(e) = &spare {
            assert!(e.is_empty(), "exchange_for_empty returns an empty magazine");
        }
    }
    h.magazines.extend(spare);
    h
}

/// The alloc path of another thread: takes full magazines, handing in its empty
/// one, and takes every token out.
fn consumer(d: Arc<DepotModel>, rounds: usize) -> Held {
    let mut h = Held::default();
    // A fresh cache has no magazine: the first request hands in none.
    let mut empty: Option<MagazineBox> = None;
    for _ in 0..rounds {
        match d.exchange_for_full(empty.take()) {
            Ok(mut full) => {
                assert_eq!(
                    full.len(),
                    CAP as usize,
                    "exchange_for_full returns a full magazine"
                );
                empty_all(&mut full, &mut h.tokens);
                empty = Some(full);
            }
            // No full magazine yet: ours comes back untouched.
            Err(back) => empty = back,
        }
    }
    h.magazines.extend(empty);
    h
}

/// One producer and one consumer, as a thread that frees what another allocates.
#[test]
fn producer_and_consumer_exchange_magazines_without_loss() {
    model(|| {
        let depot = Arc::new(DepotModel::default());
        // One empty magazine already in the depot, as after an earlier exchange.
        depot.put(MagazineBox::new(CAP));
        let d = Arc::clone(&depot);
        let p = thread::spawn(move || producer(d, 1, 4));
        let d = Arc::clone(&depot);
        let c = thread::spawn(move || consumer(d, 4));
        let held = vec![p.join().unwrap(), c.join().unwrap()];
        audit(&depot, held, 4 * CAP as usize, 1);
    });
}

/// Two threads each doing both, twice: hand in a full magazine, then ask for a
/// full one back with the empty they got; tokens migrate between the threads.
#[test]
fn two_caches_swap_full_and_empty_magazines_symmetrically() {
    const CYCLES: usize = 2;
    model(|| {
        let depot = Arc::new(DepotModel::default());
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let d = Arc::clone(&depot);
                thread::spawn(move || {
                    let mut h = Held::default();
                    let mut spare: Option<MagazineBox> = None;
                    for cycle in 0..CYCLES {
                        // Free path: a full magazine goes in, an empty one comes back.
                        let mut m = spare.take().unwrap_or_else(|| {
                            h.created += 1;
                            MagazineBox::new(CAP)
                        });
                        fill(&mut m, 1 + (t * CYCLES + cycle) * CAP as usize);
                        let empty = d.exchange_for_empty(m).unwrap_or_else(|| {
                            h.created += 1;
                            MagazineBox::new(CAP)
                        });
                        assert!(empty.is_empty());
                        // Alloc path: the empty goes in, a full one (maybe the other
                        // thread's) comes back and is used up.
                        spare = match d.exchange_for_full(Some(empty)) {
                            Ok(mut full) => {
                                assert_eq!(full.len(), CAP as usize);
                                empty_all(&mut full, &mut h.tokens);
                                Some(full)
                            }
                            Err(back) => back,
                        };
                    }
                    h.magazines.extend(spare);
                    h
                })
            })
            .collect();
        let held = handles.into_iter().map(|h| h.join().unwrap()).collect();
        audit(&depot, held, 2 * CYCLES * CAP as usize, 0);
    });
}

/// A thread returning magazines (as at thread exit) while another trims the
/// depot (drains it, as `purge` and the working-set trim do) and takes one.
#[test]
fn put_and_drain_race_without_loss() {
    model(|| {
        let depot = Arc::new(DepotModel::default());
        depot.put(full_magazine(1));

        let d = Arc::clone(&depot);
        let exiting = thread::spawn(move || {
            d.put(full_magazine(1 + CAP as usize));
            d.put(MagazineBox::new(CAP));
            Held {
                created: 2,
                ..Held::default()
            }
        });

        let d = Arc::clone(&depot);
        let trimmer = thread::spawn(move || {
            let mut h = Held::default();
            let (full, empty) = d.drain();
            for m in &full {
                assert_eq!(m.len(), CAP as usize);
            }
            assert!(empty.iter().all(MagazineBox::is_empty));
            h.magazines.extend(full);
            h.magazines.extend(empty);
            if let Ok(m) = d.exchange_for_full(None) {
                h.magazines.push(m);
            }
            h
        });

        let held = vec![exiting.join().unwrap(), trimmer.join().unwrap()];
        audit(&depot, held, 2 * CAP as usize, 1);
    });
}
