//! Batched access recording (BP-Wrapper, Ding et al., ICDE 2009).
//!
//! A hit does not touch the policy: it appends `(frame, page tag)` to a small
//! per-thread log and counts itself there. When the log is half full the
//! thread *tries* the pool lock and, if it gets it, applies the whole log to
//! the policy; when the log is full it waits for the lock. The hit path thus
//! takes no global lock and writes no shared cache line.
//!
//! A thread applies its own log before it handles a miss, so a single thread
//! sees exactly the policy it would see without batching (the hit-ratio
//! benchmarks rely on this). Logs of other threads arrive late, by at most
//! one batch each; `BufferPool::stats` applies the calling thread's log.
//! Thread exit applies the remaining log (if the pool still exists).

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use super::pool::{Inner, Shared};

/// Entries per thread and pool before the log must be applied.
pub(crate) const BATCH: usize = 64;
/// Flag in an entry's frame half: the hit found the frame in the cooling stage.
pub(crate) const COLD_HIT: u64 = 1 << 31;

#[derive(Debug)]
struct Slot {
    uid: u64,
    pool: Weak<Shared>,
    len: usize,
    hits: u64,
    optimistic: u64,
    entries: [u64; BATCH],
}

impl Slot {
    const EMPTY: Slot = Slot {
        uid: 0,
        pool: Weak::new(),
        len: 0,
        hits: 0,
        optimistic: 0,
        entries: [0; BATCH],
    };

    fn apply(&mut self, shared: &Shared, inner: &mut Inner) {
        shared.apply_log(inner, &self.entries[..self.len], self.hits, self.optimistic);
        self.len = 0;
        self.hits = 0;
        self.optimistic = 0;
    }

    /// Applies the log to its pool, if the pool still exists.
    fn flush_detached(&mut self) {
        if self.len == 0 && self.hits == 0 {
            return;
        }
        if let Some(s) = self.pool.upgrade() {
            let mut g = s.lock_inner();
            self.apply(&s, &mut g);
        }
        self.len = 0;
        self.hits = 0;
        self.optimistic = 0;
    }
}

#[derive(Debug)]
struct Local {
    slots: [Slot; 2],
}

impl Drop for Local {
    fn drop(&mut self) {
        for s in &mut self.slots {
            s.flush_detached();
        }
    }
}

thread_local! {
    static LOCAL: RefCell<Local> = const { RefCell::new(Local { slots: [Slot::EMPTY, Slot::EMPTY] }) };
}

/// Records a hit on `frame` holding `page` (`cold`: the frame was in the
/// cooling stage; `optimistic`: an optimistic read).
#[inline]
pub(crate) fn record(shared: &Arc<Shared>, frame: u32, page: u64, cold: bool, optimistic: bool) {
    let entry = (page << 32) | u64::from(frame) | if cold { COLD_HIT } else { 0 };
    let _ = LOCAL.try_with(|l| {
        // A re-entrant call (impossible today: applying a log never records)
        // or a call during thread exit records nothing rather than panicking.
        let Ok(mut l) = l.try_borrow_mut() else {
            return;
        };
        let l = &mut *l;
        if l.slots[0].uid != shared.uid {
            select(l, shared);
        }
        let s = &mut l.slots[0];
        s.entries[s.len] = entry;
        s.len += 1;
        s.hits += 1;
        s.optimistic += u64::from(optimistic);
        if s.len >= BATCH / 2 {
            if let Some(mut g) = shared.try_lock_inner() {
                s.apply(shared, &mut g);
            } else if s.len == BATCH {
                let mut g = shared.lock_inner();
                s.apply(shared, &mut g);
            }
        }
    });
}

#[cold]
fn select(l: &mut Local, shared: &Arc<Shared>) {
    if l.slots[1].uid == shared.uid {
        l.slots.swap(0, 1);
        return;
    }
    l.slots[1].flush_detached();
    l.slots.swap(0, 1);
    let s = &mut l.slots[0];
    s.uid = shared.uid;
    s.pool = Arc::downgrade(shared);
    s.len = 0;
    s.hits = 0;
    s.optimistic = 0;
}

/// Applies this thread's log for `shared` while the caller holds the lock.
pub(crate) fn drain(shared: &Shared, inner: &mut Inner) {
    let _ = LOCAL.try_with(|l| {
        let Ok(mut l) = l.try_borrow_mut() else {
            return;
        };
        for s in &mut l.slots {
            if s.uid == shared.uid && (s.len > 0 || s.hits > 0) {
                s.apply(shared, inner);
            }
        }
    });
}
