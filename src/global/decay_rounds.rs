//! Decay rounds for the `tracing` feature's `decay round` events
//! (target `rustydb_memory::decay`).
//!
//! A round — the depot trim and two-stage decay run by an allocating thread's
//! slow path when it is due (`poll`), by [`RustyAlloc::purge`](crate::RustyAlloc::purge)
//! (`purge()`) or by the background purger (`background`) — runs inside the
//! allocator, where nothing may allocate, format or call a subscriber. So a
//! round is only recorded, after its work and with no other lock of ours held,
//! into a fixed ring of [`RING`] entries under a non-allocating lock; a full
//! ring counts the round as dropped. The rounds are emitted later, outside the
//! allocator: by `RustyAlloc::purge` after its work and by the pressure check's
//! event poll (`events::poll`, the manager's monitor or `check_now`).
//!
//! Without the feature, recording is a no-op.

/// Where a decay round ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The periodic decay of an allocating thread's slow path.
    Poll,
    /// [`RustyAlloc::purge`](crate::RustyAlloc::purge).
    Purge,
    /// A pass of the background purger.
    Background,
}

impl Source {
    /// The `source` field of the event.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Source::Poll => "poll",
            Source::Purge => "purge()",
            Source::Background => "background",
        }
    }
}

/// The segments' (bytes lazily freed, bytes purged) so far, to measure a
/// round by (zeros without the feature: nothing is recorded).
#[inline]
pub(crate) fn counters() -> (u64, u64) {
    #[cfg(feature = "tracing")]
    {
        let c = &super::heap::HEAP.segments.counters;
        // Relaxed: statistics, before/after a round.
        (
            c.lazily_freed_bytes.load(crate::sync::Ordering::Relaxed),
            c.purged_bytes.load(crate::sync::Ordering::Relaxed),
        )
    }
    #[cfg(not(feature = "tracing"))]
    (0, 0)
}

/// Records a round of `source` that started when the counters read `before`
/// and also gave `extra_purged` bytes back (the large cache's). Call with no
/// lock of ours held.
#[inline]
pub(crate) fn record_since(source: Source, before: (u64, u64), extra_purged: u64) {
    let after = counters();
    record(
        source,
        after.0.saturating_sub(before.0),
        after.1.saturating_sub(before.1) + extra_purged,
    );
}

#[cfg(feature = "tracing")]
mod imp {
    use super::Source;
    use crate::sync::{AtomicU64, Lock, Ordering, RawLock};

    /// Entries of the ring.
    pub(crate) const RING: usize = 64;

    /// One recorded round.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Round {
        pub(crate) number: u64,
        pub(crate) source: Source,
        pub(crate) lazily_freed: u64,
        pub(crate) purged: u64,
    }

    const EMPTY: Round = Round {
        number: 0,
        source: Source::Poll,
        lazily_freed: 0,
        purged: 0,
    };

    /// The rounds not emitted yet: `len` entries from `head`, oldest first.
    #[derive(Debug)]
    pub(crate) struct Ring {
        buf: [Round; RING],
        head: usize,
        len: usize,
    }

    impl Ring {
        const fn new() -> Self {
            Self {
                buf: [EMPTY; RING],
                head: 0,
                len: 0,
            }
        }

        /// Appends `round`; false if the ring is full.
        fn push(&mut self, round: Round) -> bool {
            if self.len == RING {
                return false;
            }
            self.buf[(self.head + self.len) % RING] = round;
            self.len += 1;
            true
        }

        /// Moves the oldest rounds into `out`; how many.
        fn pop_into(&mut self, out: &mut [Round]) -> usize {
            let n = self.len.min(out.len());
            for (i, o) in out.iter_mut().take(n).enumerate() {
                *o = self.buf[(self.head + i) % RING];
            }
            self.head = (self.head + n) % RING;
            self.len -= n;
            n
        }
    }

    static RINGBUF: Lock<Ring> = Lock::new(Ring::new());
    /// Rounds recorded so far (the next round's number is this + 1).
    static ROUNDS: AtomicU64 = AtomicU64::new(0);
    /// Rounds dropped because the ring was full, not reported yet.
    static DROPPED: AtomicU64 = AtomicU64::new(0);

    /// Records a round (never allocates; a full ring drops it).
    pub(crate) fn record(source: Source, lazily_freed: u64, purged: u64) {
        // Relaxed: a numbering; the ring's lock orders the entries.
        let number = ROUNDS.fetch_add(1, Ordering::Relaxed) + 1;
        let round = Round {
            number,
            source,
            lazily_freed,
            purged,
        };
        let pushed = RINGBUF.lock().push(round);
        if !pushed {
            // Relaxed: a count read by the next `emit`.
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Emits every recorded round (and the count of dropped ones) as events.
    /// Called outside the allocator only: the subscriber may allocate.
    pub(crate) fn emit() {
        loop {
            // Copy a batch out under the lock, emit without it (a subscriber
            // may allocate, and an allocation may record a round).
            let mut batch = [EMPTY; 16];
            let n = RINGBUF.lock().pop_into(&mut batch);
            if n == 0 {
                break;
            }
            for round in &batch[..n] {
                tracing::debug!(
                    target: "rustydb_memory::decay",
                    round = round.number,
                    source = round.source.as_str(),
                    lazily_freed = round.lazily_freed,
                    purged = round.purged,
                    "decay round"
                );
            }
        }
        // Relaxed: a count.
        let dropped = DROPPED.swap(0, Ordering::Relaxed);
        if dropped != 0 {
            tracing::debug!(
                target: "rustydb_memory::decay",
                dropped,
                "decay rounds dropped: the ring of {RING} was full"
            );
        }
    }

    /// The ring's lock, for the fork handlers.
    pub(crate) fn raw_lock() -> &'static RawLock {
        RINGBUF.raw()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_full_ring_refuses_rounds_and_gives_them_back_oldest_first() {
            let mut ring = Ring::new();
            let round = |number| Round { number, ..EMPTY };
            for i in 0..RING as u64 {
                assert!(ring.push(round(i)));
            }
            assert!(!ring.push(round(99)), "the 65th round is dropped");
            let mut out = [EMPTY; 16];
            assert_eq!(ring.pop_into(&mut out), 16);
            assert_eq!(out[0].number, 0);
            assert_eq!(out[15].number, 15);
            assert!(ring.push(round(64)));
            let mut rest = [EMPTY; RING];
            assert_eq!(ring.pop_into(&mut rest), RING - 16 + 1);
            assert_eq!(rest[0].number, 16);
            assert_eq!(rest[RING - 16].number, 64);
            assert_eq!(ring.pop_into(&mut rest), 0);
        }
    }
}

#[cfg(feature = "tracing")]
pub(crate) use imp::{emit, raw_lock, record};

/// Without the feature: nothing.
#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn record(_: Source, _: u64, _: u64) {}

/// Without the feature: nothing.
#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn emit() {}
