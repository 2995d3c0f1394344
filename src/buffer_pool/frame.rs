//! The frame state word: one `AtomicU64` per frame holding the pin count, the
//! latch and I/O bits, the dirty bit, the tier hints and a version (vmcache's
//! one-word page state, PostgreSQL's packed buffer header).
//!
//! ```text
//!  63 ........... 28 | 27    | 26  | 25  | 24   | 23   | 22    | 21 | 20    | 19 ........ 0
//!  version (36 bits) | spare | OPT | REF | RING | COLD | DIRTY | IO | WRITE | pins (20 bits)
//! ```
//!
//! - **pins**: read guards (and pins taken by `flush`). A read pin is one
//!   `fetch_add(1)`; a pinner that sees `WRITE` or `IO` undoes its increment, so
//!   the field may hold short-lived *transient* pins that are not real. Every
//!   writer of the word therefore changes it with `fetch_add`/`fetch_and`/
//!   `fetch_or` or a CAS, never a plain store, so transient pins are preserved.
//! - **WRITE**: the exclusive latch of a write guard (no pin count of its own).
//! - **IO**: the frame is exclusively owned by the pool for eviction or loading;
//!   its page id and bytes may change. Nobody reads the bytes while it is set.
//! - **DIRTY**: the bytes differ from the disk copy.
//! - **COLD** / **RING**: the frame is in the cooling stage / in a scan ring
//!   (tier hints for the hit path, which then takes a slower branch).
//! - **REF**: a ring frame was used by a normal (non-scan) access.
//! - **version**: bumped when a write latch is released and whenever the frame
//!   is given a new page, so an optimistic reader that saw the same version
//!   before and after reading read a consistent page.
//! - **OPT** (`OPTIMISTIC`): optimistic readers may be reading the frame's
//!   bytes, so whoever owns it (write latch or `IO`) writes them through atomic
//!   words (`words.rs`), never plainly. Set by an optimistic reader before its
//!   first read of the frame, never cleared (a reader that started long ago may
//!   still be copying, whatever page the frame holds now). The owner reads the
//!   bit after taking the frame ([`FrameMeta::writes_atomic`]): every change of
//!   the word is a read-modify-write, so either the reader's `fetch_or` came
//!   first in the word's modification order and the owner sees the bit, or it
//!   came after the latch and saw `WRITE`/`IO` and read nothing, or after the
//!   release, which then happens before the reader's loads.
//!
//! Everything here goes through `crate::sync`, so the loom model in
//! `loom/tests/buffer_pool.rs` checks this exact code.

use crate::sync::{AtomicU64, Ordering, fence};

/// Mask of the pin count.
pub(crate) const PIN_MASK: u64 = (1 << 20) - 1;
/// A pin count with this bit set is refused (keeps transient increments far
/// from overflowing into `WRITE`).
pub(crate) const PIN_LIMIT: u64 = 1 << 19;
/// Exclusive (write) latch.
pub(crate) const WRITE: u64 = 1 << 20;
/// Owned by the pool for eviction or loading.
pub(crate) const IO: u64 = 1 << 21;
/// Modified since last written to disk.
pub(crate) const DIRTY: u64 = 1 << 22;
/// In the cooling stage (the cold tier).
pub(crate) const COLD: u64 = 1 << 23;
/// Owned by a scan ring.
pub(crate) const RING: u64 = 1 << 24;
/// A ring frame was touched by a normal access.
pub(crate) const REF: u64 = 1 << 25;
/// Optimistic readers may read the bytes: owners write them atomically.
pub(crate) const OPTIMISTIC: u64 = 1 << 26;
/// One unit of the version field.
pub(crate) const VERSION_ONE: u64 = 1 << 28;
/// Mask of the version field.
pub(crate) const VERSION_MASK: u64 = !(VERSION_ONE - 1);

/// Bits that make a frame unreadable.
pub(crate) const BUSY: u64 = WRITE | IO;
/// Tier hints that send the hit path to its slower branch.
pub(crate) const SPECIAL: u64 = COLD | RING;

/// The page id of a frame that holds no page.
pub(crate) const NO_PAGE: u64 = u64::MAX;

/// Per-frame metadata. The pool keeps each in a `CachePadded` so that two
/// threads pinning different frames never write the same line (pair).
#[derive(Debug)]
pub(crate) struct FrameMeta {
    /// The state word.
    pub(crate) state: AtomicU64,
    /// The page held (valid while neither `IO` is set nor the version moved).
    pub(crate) page: AtomicU64,
}

/// Outcome of a pin or latch attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pin {
    /// Pinned / latched; carries the state word seen *before* the operation
    /// (the caller looks at its `COLD` / `RING` bits).
    Done(u64),
    /// Latched by a writer or owned for I/O: wait and retry.
    Busy,
    /// The frame holds another page now: look the page up again.
    Moved,
    /// Too many pins on this frame.
    Overflow,
}

impl Default for FrameMeta {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameMeta {
    /// An empty frame: no pins, no page.
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU64::new(0),
            page: AtomicU64::new(NO_PAGE),
        }
    }

    /// Takes a shared pin on the frame if it holds `page` and is not latched
    /// for writing or owned for I/O: one `fetch_add` on the fast path.
    #[inline(always)]
    pub(crate) fn pin_shared(&self, page: u64) -> Pin {
        // Acquire: pairs with the Release of `finish_io` / `unlock_exclusive`,
        // so the page id and bytes published by a loader or writer are visible.
        let old = self.state.fetch_add(1, Ordering::Acquire);
        if old & (BUSY | PIN_LIMIT) == 0 {
            // Relaxed: ordered after the Acquire RMW above; the id only changes
            // while IO is set, which `old` shows is not the case (and our pin
            // now keeps any evictor out).
            if self.page.load(Ordering::Relaxed) == page {
                return Pin::Done(old);
            }
            self.unpin_shared();
            return Pin::Moved;
        }
        self.unpin_shared();
        if old & PIN_LIMIT != 0 {
            Pin::Overflow
        } else {
            Pin::Busy
        }
    }

    /// Releases a shared pin.
    #[inline(always)]
    pub(crate) fn unpin_shared(&self) {
        // Release: the reads made under the pin happen before an evictor's or a
        // writer's Acquire CAS that sees the count drop.
        self.state.fetch_sub(1, Ordering::Release);
    }

    /// Takes the exclusive (write) latch if the frame holds `page` and has no
    /// pins, latch or I/O; sets `DIRTY` and clears `COLD` in the same CAS.
    /// `set` adds further bits (e.g. `REF`).
    pub(crate) fn try_lock_exclusive(&self, page: u64, set: u64) -> Pin {
        // Acquire: as in `pin_shared`.
        let s = self.state.load(Ordering::Acquire);
        if s & (BUSY | PIN_MASK) != 0 {
            return Pin::Busy;
        }
        // Relaxed: ordered after the Acquire load; if the id changes after this
        // read, IO was set and the version moved, so the CAS below fails.
        if self.page.load(Ordering::Relaxed) != page {
            return Pin::Moved;
        }
        let new = (s | WRITE | DIRTY | set) & !COLD;
        // Acquire on success: we read the bytes the previous owners wrote.
        match self
            .state
            .compare_exchange(s, new, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => {
                // Release fence: an optimistic reader that sees any byte we write
                // next also sees WRITE (or a later version) when it validates
                // (the seqlock writer's fence, as in crossbeam's SeqLock).
                fence(Ordering::Release);
                Pin::Done(s)
            }
            Err(_) => Pin::Busy,
        }
    }

    /// Releases the exclusive latch and bumps the version (one `fetch_add`).
    #[inline]
    pub(crate) fn unlock_exclusive(&self) {
        // WRITE is set, so subtracting it cannot borrow; the version wraps.
        // Release: publishes the bytes written under the latch.
        self.state
            .fetch_add(VERSION_ONE.wrapping_sub(WRITE), Ordering::Release);
    }

    /// Takes the frame for eviction: succeeds if it has no pins, latch or I/O,
    /// every bit of `require` is set and no bit of `forbid` is. Returns the
    /// state word before (its `DIRTY` bit says whether to write back).
    pub(crate) fn try_begin_io(&self, require: u64, forbid: u64) -> Option<u64> {
        // Acquire: the last unpin's Release, so readers are done with the bytes.
        let s = self.state.load(Ordering::Acquire);
        if s & (BUSY | PIN_MASK | forbid) != 0 || s & require != require {
            return None;
        }
        // Acquire on success: as the load above; Relaxed on failure: the
        // caller only learns that the frame is busy.
        match self
            .state
            .compare_exchange(s, s | IO, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => {
                // Release fence: as in `try_lock_exclusive`, for optimistic readers
                // racing with the bytes we are about to overwrite.
                fence(Ordering::Release);
                Some(s)
            }
            Err(_) => None,
        }
    }

    /// Takes a frame that holds no page (free list) for loading. Always
    /// succeeds for a free frame; transient pins are kept.
    pub(crate) fn begin_io_free(&self) -> u64 {
        // Acquire: as in `try_begin_io`.
        let s = self.state.fetch_or(IO, Ordering::Acquire);
        fence(Ordering::Release);
        s
    }

    /// While owning the frame for I/O: clears `clear` and sets `set`.
    pub(crate) fn io_update(&self, clear: u64, set: u64) {
        // Relaxed: the frame is owned (IO); the final `finish_io` Release
        // publishes everything.
        if clear != 0 {
            self.state.fetch_and(!clear, Ordering::Relaxed);
        }
        if set != 0 {
            // Relaxed: as above.
            self.state.fetch_or(set, Ordering::Relaxed);
        }
    }

    /// Ends I/O ownership: clears `IO`, bumps the version and adds `add`
    /// (`1` for a shared pin, `WRITE` for the latch, `DIRTY`, … — bits that are
    /// known to be clear). One `fetch_add`.
    pub(crate) fn finish_io(&self, add: u64) {
        // IO is set, so subtracting it cannot borrow.
        // Release: publishes the page id and the bytes loaded under IO.
        self.state.fetch_add(
            VERSION_ONE.wrapping_add(add).wrapping_sub(IO),
            Ordering::Release,
        );
    }

    /// Sets bits outside I/O ownership (`REF`, `DIRTY` after a failed write).
    pub(crate) fn set_bits(&self, bits: u64) -> u64 {
        // Relaxed: hints read by the pool under its lock or by CAS loops that
        // re-check; no data is published through them.
        self.state.fetch_or(bits, Ordering::Relaxed)
    }

    /// Clears bits outside I/O ownership (`COLD` on a rescue, `DIRTY` after a
    /// write-back made under a pin).
    pub(crate) fn clear_bits(&self, bits: u64) -> u64 {
        // Relaxed: as in `set_bits`.
        self.state.fetch_and(!bits, Ordering::Relaxed)
    }

    /// The current state word.
    #[inline]
    pub(crate) fn load(&self) -> u64 {
        // Acquire: callers that go on to read the frame see what was published.
        self.state.load(Ordering::Acquire)
    }

    /// Starts an optimistic read of `page`: the version stamp to validate, or
    /// `Err(moved)` if the frame is busy (`false`) or holds another page (`true`).
    /// The first optimistic read of a frame marks it `OPTIMISTIC` first.
    #[inline(always)]
    pub(crate) fn optimistic_begin(&self, page: u64) -> Result<u64, bool> {
        // Acquire: as in `pin_shared`.
        let s = self.state.load(Ordering::Acquire);
        if s & BUSY != 0 {
            return Err(false);
        }
        // Relaxed: validated by the version check in `optimistic_validate`.
        if self.page.load(Ordering::Relaxed) != page {
            return Err(true);
        }
        if s & OPTIMISTIC == 0 {
            return self.optimistic_mark(page);
        }
        Ok(s)
    }

    /// Marks the frame `OPTIMISTIC` (once per frame, ever) and starts the read
    /// from the word the mark saw.
    #[cold]
    #[inline(never)]
    fn optimistic_mark(&self, page: u64) -> Result<u64, bool> {
        // Acquire: as in `pin_shared`: an owner that released before this RMW
        // wrote plainly, and its writes happen before our loads.
        let s = self.state.fetch_or(OPTIMISTIC, Ordering::Acquire);
        if s & BUSY != 0 {
            // Owned now: it may be writing plainly; read nothing. The bit
            // stays, and the next owner writes atomically.
            return Err(false);
        }
        // Relaxed: as in `optimistic_begin`.
        if self.page.load(Ordering::Relaxed) != page {
            return Err(true);
        }
        Ok(s | OPTIMISTIC)
    }

    /// Whether the owner of the frame (write latch or `IO`, taken by this
    /// thread) must write its bytes through atomic words: optimistic readers
    /// may be reading them.
    #[inline(always)]
    pub(crate) fn writes_atomic(&self) -> bool {
        // Relaxed: coherence gives us a value no older than our own latch or
        // IO read-modify-write, which is all the argument in the module
        // documentation needs; nothing is published through the bit.
        self.state.load(Ordering::Relaxed) & OPTIMISTIC != 0
    }

    /// Whether nothing changed the frame since `optimistic_begin` returned `stamp`.
    #[inline(always)]
    pub(crate) fn optimistic_validate(&self, stamp: u64) -> bool {
        // Acquire fence then a Relaxed load: the seqlock reader's validation —
        // the reads of the bytes are ordered before the second load of the word.
        fence(Ordering::Acquire);
        let now = self.state.load(Ordering::Relaxed);
        (now ^ stamp) & (VERSION_MASK | BUSY) == 0
    }
}

/// The pin count in a state word.
#[inline]
pub(crate) const fn pins(state: u64) -> u64 {
    state & PIN_MASK
}

#[cfg(all(test, not(rustydb_loom)))]
mod tests {
    use super::*;

    #[test]
    fn pin_unpin_and_latch() {
        let f = FrameMeta::new();
        f.page.store(7, Ordering::Relaxed);
        assert_eq!(f.pin_shared(7), Pin::Done(0));
        assert_eq!(f.pin_shared(8), Pin::Moved);
        assert_eq!(pins(f.load()), 1);
        assert_eq!(f.try_lock_exclusive(7, 0), Pin::Busy);
        assert!(f.try_begin_io(0, 0).is_none());
        f.unpin_shared();
        let v0 = f.load() & VERSION_MASK;
        assert!(matches!(f.try_lock_exclusive(7, 0), Pin::Done(_)));
        assert_eq!(f.pin_shared(7), Pin::Busy);
        f.unlock_exclusive();
        let s = f.load();
        assert_eq!(s & (WRITE | PIN_MASK), 0);
        assert_ne!(s & DIRTY, 0);
        assert_eq!(s & VERSION_MASK, v0.wrapping_add(VERSION_ONE));
    }

    #[test]
    fn io_and_optimistic() {
        let f = FrameMeta::new();
        f.page.store(1, Ordering::Relaxed);
        let stamp = f.optimistic_begin(1).unwrap();
        assert!(f.optimistic_validate(stamp));
        let before = f.try_begin_io(0, 0).unwrap();
        assert_eq!(before & IO, 0);
        assert!(!f.optimistic_validate(stamp));
        assert_eq!(f.optimistic_begin(1), Err(false));
        f.page.store(2, Ordering::Relaxed);
        f.finish_io(1);
        assert!(matches!(f.pin_shared(2), Pin::Done(s) if pins(s) == 1));
        assert_eq!(pins(f.load()), 2);
        assert!(!f.optimistic_validate(stamp));
    }

    #[test]
    fn optimistic_mark_is_sticky_and_seen_by_owners() {
        let f = FrameMeta::new();
        f.page.store(3, Ordering::Relaxed);
        assert!(matches!(f.try_lock_exclusive(3, 0), Pin::Done(_)));
        assert!(!f.writes_atomic(), "no optimistic reader yet");
        // A reader arriving while the frame is latched marks it, reads nothing.
        assert_eq!(f.optimistic_begin(3), Err(false));
        f.unlock_exclusive();
        let stamp = f.optimistic_begin(3).unwrap();
        assert_ne!(stamp & OPTIMISTIC, 0);
        assert!(matches!(f.try_lock_exclusive(3, 0), Pin::Done(_)));
        assert!(f.writes_atomic());
        f.unlock_exclusive();
        assert!(!f.optimistic_validate(stamp));
        let s = f.try_begin_io(0, 0).unwrap();
        assert_ne!(s & OPTIMISTIC, 0);
        f.io_update(DIRTY | COLD | RING | REF, 0);
        f.finish_io(0);
        assert!(f.writes_atomic(), "kept across I/O");
    }
}
