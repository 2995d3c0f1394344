//! A safe face over the depot and magazines for the loom model tests
//! (`--cfg rustydb_loom` only; not part of the public API).

use core::ptr::NonNull;

use crate::slab::depot::Depot;
use crate::slab::magazine::Magazine;

/// An owned magazine holding `usize` tokens in place of object pointers.
#[derive(Debug)]
pub struct MagazineBox(NonNull<Magazine>);

// SAFETY: a MagazineBox owns its magazine exclusively.
unsafe impl Send for MagazineBox {}

impl MagazineBox {
    /// An empty magazine of capacity `cap` (≤ 64).
    pub fn new(cap: u32) -> Self {
        Self(NonNull::from(Box::leak(Box::new(Magazine::new(cap)))))
    }
    fn m(&self) -> &Magazine {
        // SAFETY: we own a live boxed magazine.
        unsafe { self.0.as_ref() }
    }
    /// Pushes a token; false if full.
    pub fn push(&mut self, token: usize) -> bool {
        let n = self.m().len();
        if n == self.m().cap as usize {
            return false;
        }
        // SAFETY: exclusive ownership; `n < cap`.
        unsafe { (*self.0.as_ptr()).rounds[n] = token as *mut u8 };
        self.m().set_len(n + 1);
        true
    }
    /// Pops a token.
    pub fn pop(&mut self) -> Option<usize> {
        let n = self.m().len().checked_sub(1)?;
        self.m().set_len(n);
        Some(self.m().rounds[n] as usize)
    }
    /// Tokens held.
    pub fn len(&self) -> usize {
        self.m().len()
    }
    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn into_raw(self) -> *mut Magazine {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        p
    }
    fn from_raw(p: *mut Magazine) -> Option<Self> {
        NonNull::new(p).map(Self)
    }
}

impl Drop for MagazineBox {
    fn drop(&mut self) {
        // SAFETY: the box was leaked in `new` and is owned by us alone.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// A depot of [`MagazineBox`]es.
#[derive(Debug)]
pub struct DepotModel(Depot);

impl core::fmt::Debug for Depot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Depot")
    }
}

impl Default for DepotModel {
    fn default() -> Self {
        Self(Depot::new())
    }
}

impl DepotModel {
    /// Gives `empty` (if any) for a full magazine; `Err(empty)` back if none.
    pub fn exchange_for_full(
        &self,
        empty: Option<MagazineBox>,
    ) -> Result<MagazineBox, Option<MagazineBox>> {
        assert!(empty.as_ref().is_none_or(|m| m.is_empty()));
        let raw = empty.map_or(core::ptr::null_mut(), MagazineBox::into_raw);
        // SAFETY: `raw` is null or an owned empty magazine, given up here.
        let full = unsafe { self.0.exchange_for_full(raw, 0) };
        match MagazineBox::from_raw(full) {
            Some(f) => Ok(f),
            None => Err(MagazineBox::from_raw(raw)),
        }
    }
    /// Gives a full magazine for an empty one, if the depot has one.
    pub fn exchange_for_empty(&self, full: MagazineBox) -> Option<MagazineBox> {
        assert_eq!(full.len(), full.m().cap as usize);
        // SAFETY: an owned full magazine, given up here.
        MagazineBox::from_raw(unsafe { self.0.exchange_for_empty(full.into_raw()) })
    }
    /// Stores a full or empty magazine.
    pub fn put(&self, m: MagazineBox) {
        // SAFETY: an owned full-or-empty magazine, given up here.
        unsafe { self.0.put(m.into_raw()) }
    }
    /// Removes every magazine: `(full, empty)`.
    pub fn drain(&self) -> (Vec<MagazineBox>, Vec<MagazineBox>) {
        let (f, e) = self.0.trim(true);
        (collect(f), collect(e))
    }
}

fn collect(mut p: *mut Magazine) -> Vec<MagazineBox> {
    let mut v = Vec::new();
    while let Some(m) = MagazineBox::from_raw(p) {
        // SAFETY: a detached list handed over whole by the depot.
        p = unsafe { (*p).next };
        v.push(m);
    }
    v
}

// ---------------------------------------------------------------------------
// Buffer pool: the frame state word and the page table, in a two-frame pool.

use crate::buffer_pool::frame::{DIRTY, FrameMeta, Pin, pins};
use crate::buffer_pool::page_table::PageTable;
use crate::sync::{AtomicU64, Ordering, UnsafeCell};

/// One word of a frame's bytes as the pool treats it: written plainly by an
/// owner (write latch or IO) of a frame no optimistic reader has marked,
/// through an atomic store otherwise (`words.rs`); read plainly under a pin,
/// atomically by optimistic readers. `value` holds the contents (an atomic,
/// so every kind of access can read it); the two loom cells stand for the
/// plain accesses, so that loom reports exactly the pairs that would be data
/// races on real memory:
///
/// | access          | `plain_write` | `plain_read` |
/// |-----------------|---------------|--------------|
/// | plain write     | mutable       | mutable      |
/// | atomic write    | shared        | mutable      |
/// | plain read      | shared        | shared       |
/// | atomic read     | shared        | —            |
///
/// A plain write conflicts with every other access, an atomic write with
/// plain reads and other writes, and an atomic read with plain writes only.
#[derive(Debug)]
struct Word {
    value: AtomicU64,
    plain_write: UnsafeCell<()>,
    plain_read: UnsafeCell<()>,
}

impl Word {
    fn new(v: u64) -> Self {
        Self {
            value: AtomicU64::new(v),
            plain_write: UnsafeCell::new(()),
            plain_read: UnsafeCell::new(()),
        }
    }

    /// A write by the frame's owner, plain or atomic as the frame says.
    fn write(&self, v: u64, atomic: bool) {
        if atomic {
            self.plain_write.with(|_| ());
        } else {
            self.plain_write.with_mut(|_| ());
        }
        self.plain_read.with_mut(|_| ());
        // Relaxed: the real store (plain, or a relaxed atomic); published by
        // the owner's Release when it lets the frame go.
        self.value.store(v, Ordering::Relaxed);
    }

    /// A plain read, under a pin or by the owner.
    fn read_plain(&self) -> u64 {
        self.plain_write.with(|_| ());
        self.plain_read.with(|_| ());
        // Relaxed: ordered by the pin's Acquire, as a plain read would be.
        self.value.load(Ordering::Relaxed)
    }

    /// An optimistic reader's relaxed atomic load.
    fn read_atomic(&self) -> u64 {
        self.plain_write.with(|_| ());
        // Relaxed: the seqlock read; the version check decides.
        self.value.load(Ordering::Relaxed)
    }
}

/// A two-frame buffer pool over the real state-word (`frame.rs`) and
/// page-table (`page_table.rs`) code. Each frame's bytes are one [`Word`],
/// written plainly or atomically by the rule `FrameMeta::writes_atomic` gives
/// the real pool, so loom reports any plain write that races with a reader;
/// page `p` holds `p * 1000 + n` after its `n`-th write.
#[derive(Debug)]
pub struct PoolModel {
    frames: [FrameMeta; 2],
    data: [Word; 2],
    table: PageTable,
}

impl Default for PoolModel {
    fn default() -> Self {
        Self::new()
    }
}

impl PoolModel {
    /// Page 10 in frame 0 and page 20 in frame 1, both clean, never read
    /// optimistically.
    pub fn new() -> Self {
        let m = Self {
            frames: [FrameMeta::new(), FrameMeta::new()],
            data: [Word::new(10_000), Word::new(20_000)],
            table: PageTable::new(2),
        };
        for (f, page) in [(0u32, 10u64), (1, 20)] {
            // Relaxed: set up before any thread of the model exists.
            m.frames[f as usize].page.store(page, Ordering::Relaxed);
            m.table.insert(page, f);
        }
        m
    }

    /// Pins `page`, reads its value and unpins; `None` if it is not resident.
    pub fn read(&self, page: u64) -> Option<u64> {
        loop {
            let f = self.table.get(page)? as usize;
            match self.frames[f].pin_shared(page) {
                Pin::Done(_) => {
                    let v = self.data[f].read_plain();
                    self.frames[f].unpin_shared();
                    return Some(v);
                }
                Pin::Busy | Pin::Moved | Pin::Overflow => loom::thread::yield_now(),
            }
        }
    }

    /// Latches `page`, increments its value and unlatches; `false` if not resident.
    pub fn write(&self, page: u64) -> bool {
        loop {
            let Some(f) = self.table.get(page) else {
                return false;
            };
            let f = f as usize;
            match self.frames[f].try_lock_exclusive(page, 0) {
                Pin::Done(_) => {
                    let v = self.data[f].read_plain() + 1;
                    self.data[f].write(v, self.frames[f].writes_atomic());
                    self.frames[f].unlock_exclusive();
                    return true;
                }
                _ => loom::thread::yield_now(),
            }
        }
    }

    /// Evicts an unpinned frame (writing its value back, if dirty, into
    /// `written_back`) and loads page `new` into it; returns the evicted page.
    pub fn evict_and_load(&self, new: u64, written_back: &AtomicU64) -> Option<u64> {
        for f in 0..2u32 {
            let fm = &self.frames[f as usize];
            let Some(s) = fm.try_begin_io(0, 0) else {
                continue;
            };
            // Relaxed: the frame is owned (IO); the id was published before.
            let old = fm.page.load(Ordering::Relaxed);
            self.table.insert(new, f);
            let word = &self.data[f as usize];
            if s & DIRTY != 0 {
                // Relaxed: read by the test after joining the threads.
                written_back.store(word.read_plain(), Ordering::Relaxed);
            }
            self.table.remove(old);
            fm.io_update(DIRTY, 0);
            word.write(new * 1000, fm.writes_atomic());
            // Relaxed: published by `finish_io`'s Release.
            fm.page.store(new, Ordering::Relaxed);
            fm.finish_io(0);
            return Some(old);
        }
        None
    }

    /// An optimistic read of `page`'s value: `Some` only if validated.
    pub fn read_optimistic(&self, page: u64) -> Option<u64> {
        let f = self.table.get(page)? as usize;
        let stamp = self.frames[f].optimistic_begin(page).ok()?;
        let v = self.data[f].read_atomic();
        self.frames[f].optimistic_validate(stamp).then_some(v)
    }

    /// Pins held on both frames (0 when every guard is gone).
    pub fn pins(&self) -> u64 {
        self.frames.iter().map(|f| pins(f.load())).sum()
    }
}
