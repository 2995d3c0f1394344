//! The quarantine: freed blocks are poisoned and held back from the inner
//! allocator in a FIFO bounded in bytes and entries, so a write after free lands
//! in poisoned memory and is found when the block leaves.

use core::ptr;

use super::state::reserve;
use crate::sync::{Lock, RawLock};

/// The poison byte written over freed blocks.
pub(crate) const POISON: u8 = 0xDF;
const CAPACITY: usize = 1 << 15;

/// A block held back.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Entry {
    /// User address and size (the poisoned range).
    pub(crate) user: usize,
    pub(crate) size: usize,
    /// The inner allocation and its layout.
    pub(crate) block: usize,
    pub(crate) block_size: usize,
    pub(crate) block_align: usize,
    /// Whether the user bytes were poisoned (Full level) and must be verified.
    pub(crate) poisoned: bool,
    /// The thread slot whose side table has the block's record.
    pub(crate) owner: u8,
}

/// The ring. Invariant: `items` is null or a mapping of `CAPACITY` entries, of
/// which `len` starting at `head` (wrapping) are held, `bytes` their sizes.
struct Ring {
    items: *mut Entry,
    head: usize,
    len: usize,
    bytes: usize,
}

// SAFETY: the ring owns its mapping; moving it moves that ownership.
unsafe impl Send for Ring {}

impl Ring {
    fn pop(&mut self) -> Entry {
        debug_assert!(self.len > 0);
        // SAFETY: the ring is not empty (callers check), so `head` indexes a
        // held entry of the mapping.
        let e = unsafe { *self.items.add(self.head) };
        self.head = (self.head + 1) % CAPACITY;
        self.len -= 1;
        self.bytes -= e.size;
        e
    }
}

/// The FIFO.
pub(crate) struct Quarantine {
    ring: Lock<Ring>,
}

impl Quarantine {
    pub(crate) const fn new() -> Self {
        Self {
            ring: Lock::new(Ring {
                items: ptr::null_mut(),
                head: 0,
                len: 0,
                bytes: 0,
            }),
        }
    }

    /// The lock, for the fork handlers.
    pub(crate) fn raw(&self) -> &RawLock {
        self.ring.raw()
    }

    /// Adds `e`; moves entries that must leave (over `max_bytes`, or the ring is
    /// full) into `out`, returning how many. Returns `None` if the ring cannot be
    /// set up (the caller then frees `e` directly).
    pub(crate) fn push(&self, e: Entry, max_bytes: usize, out: &mut [Entry; 8]) -> Option<usize> {
        let mut r = self.ring.lock();
        if r.items.is_null() {
            r.items = reserve(CAPACITY * core::mem::size_of::<Entry>())?
                .as_ptr()
                .cast();
        }
        let mut n = 0;
        while n < out.len() && r.len > 0 && (r.len == CAPACITY || r.bytes + e.size > max_bytes) {
            out[n] = r.pop();
            n += 1;
        }
        if r.len == CAPACITY {
            return None; // could not make room with the space in `out`
        }
        let tail = (r.head + r.len) % CAPACITY;
        // SAFETY: `tail` < CAPACITY indexes our mapping, outside the held range.
        unsafe { *r.items.add(tail) = e };
        r.len += 1;
        r.bytes += e.size;
        Some(n)
    }

    /// Removes up to 8 entries (all of them over repeated calls) into `out`.
    pub(crate) fn drain(&self, out: &mut [Entry; 8]) -> usize {
        let mut r = self.ring.lock();
        let mut n = 0;
        while n < out.len() && r.len > 0 {
            out[n] = r.pop();
            n += 1;
        }
        n
    }
}

/// Offset of the first byte in `[p, p+len)` that is not `POISON`.
///
/// # Safety
/// The range is readable.
pub(crate) unsafe fn first_unpoisoned(p: *const u8, len: usize) -> Option<usize> {
    // SAFETY: the range is readable (caller).
    let s = unsafe { core::slice::from_raw_parts(p, len) };
    let word = u64::from_ne_bytes([POISON; 8]);
    let (pre, mid, post) = {
        // SAFETY: reinterpreting initialised bytes as u64 words (any bit pattern is valid).
        unsafe { s.align_to::<u64>() }
    };
    if let Some(i) = pre.iter().position(|&b| b != POISON) {
        return Some(i);
    }
    if let Some(w) = mid.iter().position(|&w| w != word) {
        let base = pre.len() + w * 8;
        return s[base..]
            .iter()
            .position(|&b| b != POISON)
            .map(|i| base + i);
    }
    post.iter()
        .position(|&b| b != POISON)
        .map(|i| pre.len() + mid.len() * 8 + i)
}
