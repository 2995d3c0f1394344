//! [`MagazinePool`]: where magazines come from. Magazines are metadata: they
//! never come from the allocator they serve.
//!
//! The pool carves them in `CachePadded` slots from 256 KiB chunks of its own
//! (aligned to their size, so a magazine finds its chunk by masking). Each chunk
//! head keeps a bitmap of its free slots; [`get`](MagazinePool::get) takes the
//! lowest free slot of the lowest chunk that has one, so live magazines gather
//! at the bottom of the pool and whole pages above them empty out;
//! [`release_unused`](MagazinePool::release_unused) gives every page whose slots
//! are all free back to the OS (`MADV_DONTNEED`). Nothing is stored in a free
//! slot, so a released page needs nothing back but zeros.
//!
//! Chunks are never unmapped: statistics read the `count` of other threads'
//! magazines racily and rely on every magazine address staying mapped.

use core::ptr;

use crossbeam_utils::CachePadded;

use super::magazine::Magazine;
use crate::sync::{AtomicUsize, Lock, Ordering};

/// One magazine's slot: padded to (and aligned on) the cache-line pair.
type Slot = CachePadded<Magazine>;
/// Bytes of one slot.
const SLOT: usize = core::mem::size_of::<Slot>();
/// Chunk size and alignment.
const CHUNK: usize = 256 << 10;
/// The chunk head's room: the first slot starts at the slot alignment.
const HEAD: usize = core::mem::align_of::<Slot>();
/// Slots per chunk.
const SLOTS: usize = (CHUNK - HEAD) / SLOT;
/// Words of the free-slot bitmap.
const WORDS: usize = SLOTS.div_ceil(64);
/// The page size the release works in (the smallest the kernel uses; a larger
/// page size only makes some releases fail harmlessly).
const PAGE: usize = 4096;
/// Pages per chunk (page 0 holds the head and is never released).
const PAGES: usize = CHUNK / PAGE;

const _: () = assert!(core::mem::size_of::<ChunkHead>() <= HEAD);
const _: () = assert!(PAGES <= 64);

/// The head of every chunk.
///
/// Invariants: bit `i` of `free` is set iff slot `i` holds no magazine that a
/// cache or depot owns; `live` counts the clear bits; bit `p` of `released` is
/// set only if every slot overlapping page `p` is free and the page was given
/// back; `on_list` iff the chunk is linked in the pool's list of chunks with a
/// free slot, which is sorted by address.
#[repr(C)]
struct ChunkHead {
    free: [u64; WORDS],
    released: u64,
    live: usize,
    next: *mut ChunkHead,
    on_list: bool,
}

/// What the pool's lock guards: the list of chunks with a free slot and, through
/// it and the masking of magazine addresses, every chunk head.
struct PoolInner {
    /// Chunks with at least one free slot, lowest address first.
    with_free: *mut ChunkHead,
}

// SAFETY: the pool's chunks are its own mappings with no thread affinity; the
// `Lock` around `PoolInner` orders every access to them.
unsafe impl Send for PoolInner {}

/// The source of magazines (see the module notes).
pub(crate) struct MagazinePool {
    inner: Lock<PoolInner>,
    /// Magazines handed out and not returned (in caches and depots).
    pub(crate) live: AtomicUsize,
    /// Bytes of chunk memory that may be resident (mapped minus released).
    pub(crate) resident: AtomicUsize,
}

fn chunk_of(m: *mut Magazine) -> *mut ChunkHead {
    (m as usize & !(CHUNK - 1)) as *mut ChunkHead
}

/// The index of the slot holding the magazine at `m`.
fn slot_index(m: *mut Magazine) -> usize {
    (m as usize - chunk_of(m) as usize - HEAD) / SLOT
}

fn slot_addr(c: *mut ChunkHead, i: usize) -> *mut Slot {
    (c as usize + HEAD + i * SLOT) as *mut Slot
}

/// The pages slot `i` overlaps, as a mask.
fn slot_pages(i: usize) -> u64 {
    let start = HEAD + i * SLOT;
    let (first, last) = (start / PAGE, (start + SLOT - 1) / PAGE);
    (u64::MAX >> (63 - last)) & (u64::MAX << first)
}

impl MagazinePool {
    /// An empty pool.
    pub(crate) const fn new() -> Self {
        Self {
            inner: Lock::new(PoolInner {
                with_free: ptr::null_mut(),
            }),
            live: AtomicUsize::new(0),
            resident: AtomicUsize::new(0),
        }
    }

    /// The raw lock, for the fork handlers.
    pub(crate) fn raw_lock(&self) -> &crate::sync::RawLock {
        self.inner.raw()
    }

    /// A new empty magazine of capacity `cap`, or null if the OS refuses memory.
    pub(crate) fn get(&self, cap: u32) -> *mut Magazine {
        let mut inner = self.inner.lock();
        let mut c = inner.with_free;
        if c.is_null() {
            c = match crate::sys::map_aligned(CHUNK, CHUNK) {
                Some(p) => p.as_ptr().cast::<ChunkHead>(),
                None => return ptr::null_mut(),
            };
            let mut free = [u64::MAX; WORDS];
            free[WORDS - 1] = u64::MAX >> (WORDS * 64 - SLOTS);
            // SAFETY: a fresh mapping of CHUNK bytes, aligned, exclusively ours.
            unsafe {
                c.write(ChunkHead {
                    free,
                    released: 0,
                    live: 0,
                    next: ptr::null_mut(),
                    on_list: false,
                });
                insert_sorted(&mut inner, c);
            }
            // Relaxed: a statistic.
            self.resident.fetch_add(CHUNK, Ordering::Relaxed);
        }
        // SAFETY: the lock is held; `c` is a chunk of ours with a free slot
        // (it is on the list), so some bitmap word is non-zero.
        let slot = unsafe {
            let h = &mut *c;
            let w = h.free.iter().position(|&w| w != 0).unwrap_or(0);
            let i = w * 64 + h.free[w].trailing_zeros() as usize;
            h.free[w] &= !(1u64 << (i % 64));
            h.live += 1;
            let pages = slot_pages(i) & h.released;
            if pages != 0 {
                h.released &= !pages;
                // Relaxed: a statistic.
                self.resident
                    .fetch_add(pages.count_ones() as usize * PAGE, Ordering::Relaxed);
            }
            if h.free.iter().all(|&w| w == 0) {
                inner.with_free = h.next;
                h.next = ptr::null_mut();
                h.on_list = false;
            }
            slot_addr(c, i)
        };
        drop(inner);
        // Relaxed: a statistic.
        self.live.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `slot` is a free slot of one of our chunks (its bit was just
        // cleared under the lock, so it is ours alone), aligned for a `Slot`.
        unsafe {
            slot.write(Slot::new(Magazine::new(cap)));
            let padded: &mut Slot = &mut *slot;
            let m: &mut Magazine = padded;
            m
        }
    }

    /// Returns an empty magazine to the pool.
    ///
    /// # Safety
    /// `m` came from `get`, holds no objects that are still needed, and is not
    /// referenced elsewhere; it must not be used afterwards.
    pub(crate) unsafe fn put(&self, m: *mut Magazine) {
        let (c, i) = (chunk_of(m), slot_index(m));
        let mut inner = self.inner.lock();
        // SAFETY: the lock is held; `m` is a live magazine of chunk `c` (caller),
        // so `c` is one of our chunk heads and slot `i`'s bit is clear.
        unsafe {
            let h = &mut *c;
            h.free[i / 64] |= 1u64 << (i % 64);
            h.live -= 1;
            if !h.on_list {
                insert_sorted(&mut inner, c);
            }
        }
        drop(inner);
        // Relaxed: a statistic.
        self.live.fetch_sub(1, Ordering::Relaxed);
    }

    /// Gives every page whose slots are all free back to the OS
    /// (`MADV_DONTNEED`; the chunks stay mapped). Returns the bytes released.
    pub(crate) fn release_unused(&self) -> usize {
        let inner = self.inner.lock();
        let mut released = 0;
        let mut c = inner.with_free;
        while !c.is_null() {
            // SAFETY: the lock is held; listed chunks are ours; the pages chosen
            // hold only free slots, which no cache or depot refers to and in
            // which nothing is stored.
            unsafe {
                let h = &mut *c;
                let pages = free_pages(&h.free) & !h.released;
                let mut rest = pages;
                while rest != 0 {
                    let first = rest.trailing_zeros() as usize;
                    let len = (!(rest >> first)).trailing_zeros() as usize;
                    crate::sys::advise(
                        (c as *mut u8).add(first * PAGE),
                        len * PAGE,
                        crate::sys::Advice::DontNeed,
                    );
                    rest &= !((u64::MAX >> (64 - len)) << first);
                }
                h.released |= pages;
                released += pages.count_ones() as usize * PAGE;
                c = h.next;
            }
        }
        drop(inner);
        // Relaxed: a statistic.
        self.resident.fetch_sub(released, Ordering::Relaxed);
        released
    }
}

/// The pages (beyond page 0) all of whose slots are free, as a mask.
fn free_pages(free: &[u64; WORDS]) -> u64 {
    let is_free = |i: usize| free[i / 64] & (1u64 << (i % 64)) != 0;
    let mut mask = 0u64;
    for p in 1..PAGES {
        let (lo, hi) = (p * PAGE, (p + 1) * PAGE);
        // Slots overlapping [lo, hi): from the one containing `lo` to the one
        // containing `hi - 1` (clamped to the chunk's slots).
        let first = (lo - HEAD) / SLOT;
        let last = ((hi - 1 - HEAD) / SLOT).min(SLOTS - 1);
        if first >= SLOTS || (first..=last).all(is_free) {
            mask |= 1 << p;
        }
    }
    mask
}

/// Links chunk `c` (not on the list) into the list, keeping address order.
///
/// # Safety
/// The pool's lock is held (`inner` is its guarded state); `c` is one of our
/// chunk heads.
unsafe fn insert_sorted(inner: &mut PoolInner, c: *mut ChunkHead) {
    let mut link: *mut *mut ChunkHead = &mut inner.with_free;
    // SAFETY: the lock is held; listed chunks are ours.
    unsafe {
        while !(*link).is_null() && (*link as usize) < c as usize {
            link = &mut (**link).next;
        }
        (*c).next = *link;
        (*c).on_list = true;
        *link = c;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_fill_chunks_lowest_first_and_free_pages_are_released() {
        let pool = MagazinePool::new();
        let ms: Vec<_> = (0..3 * SLOTS / 2).map(|_| pool.get(64)).collect();
        assert!(ms.iter().all(|m| !m.is_null()));
        // The first SLOTS magazines share one chunk, in ascending slots.
        for w in ms[..SLOTS].windows(2) {
            assert_eq!(chunk_of(w[0]), chunk_of(w[1]));
            assert_eq!(w[1] as usize - w[0] as usize, SLOT);
        }
        assert_ne!(chunk_of(ms[0]), chunk_of(ms[SLOTS]));
        assert_eq!(pool.live.load(Ordering::Relaxed), ms.len());
        // Nothing is releasable while every slot of the full chunk is live.
        let resident = pool.resident.load(Ordering::Relaxed);
        let partly = pool.release_unused();
        assert!(partly < CHUNK, "only the second chunk's unused tail");
        // Free all but one magazine of the first chunk, and all of the second:
        // their pages come back.
        for &m in &ms[1..] {
            // SAFETY: each came from `get` and is not used again.
            unsafe { pool.put(m) };
        }
        let more = pool.release_unused();
        assert!(
            more >= 2 * CHUNK - 3 * PAGE - partly,
            "{more} bytes released"
        );
        assert_eq!(
            pool.resident.load(Ordering::Relaxed),
            resident - partly - more
        );
        // A new magazine takes the lowest free slot of the lowest chunk.
        let (first, second) = (chunk_of(ms[0]), chunk_of(ms[SLOTS]));
        let expected = if first < second {
            ms[0] as usize + SLOT
        } else {
            slot_addr(second, 0) as usize
        };
        let again = pool.get(8);
        assert_eq!(again as usize, expected);
        // SAFETY: a live magazine of ours.
        assert_eq!(unsafe { (*again).len() }, 0);
        for m in [again, ms[0]] {
            // SAFETY: as above.
            unsafe { pool.put(m) };
        }
        assert_eq!(pool.live.load(Ordering::Relaxed), 0);
    }
}
