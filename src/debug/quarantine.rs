//! The quarantine: freed blocks are poisoned and held back from the inner
//! allocator in a FIFO bounded in bytes and entries, so a write after free lands
//! in poisoned memory and is found when the block leaves.

use core::ptr;

use crate::sync::{RawLock, UnsafeCell};
use crate::sys;

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
}

struct Ring {
    items: *mut Entry,
    head: usize,
    len: usize,
    bytes: usize,
}

/// The FIFO.
pub(crate) struct Quarantine {
    lock: RawLock,
    ring: UnsafeCell<Ring>,
}

// SAFETY: `ring` is only accessed with `lock` held.
unsafe impl Sync for Quarantine {}

impl Quarantine {
    pub(crate) const fn new() -> Self {
        Self {
            lock: RawLock::new(),
            ring: UnsafeCell::new(Ring {
                items: ptr::null_mut(),
                head: 0,
                len: 0,
                bytes: 0,
            }),
        }
    }

    /// Adds `e`; moves entries that must leave (over `max_bytes`, or the ring is
    /// full) into `out`, returning how many. Returns `None` if the ring cannot be
    /// set up (the caller then frees `e` directly).
    pub(crate) fn push(&self, e: Entry, max_bytes: usize, out: &mut [Entry; 8]) -> Option<usize> {
        let _g = self.lock.guard();
        // SAFETY: lock held; `items` is our mapping of CAPACITY entries.
        self.ring.with_mut(|r| unsafe {
            if (*r).items.is_null() {
                let bytes =
                    (CAPACITY * core::mem::size_of::<Entry>()).next_multiple_of(sys::page_size());
                (*r).items = sys::map(bytes)?.as_ptr().cast();
            }
            let mut n = 0;
            while n < out.len()
                && (*r).len > 0
                && ((*r).len == CAPACITY || (*r).bytes + e.size > max_bytes)
            {
                out[n] = self.pop(r);
                n += 1;
            }
            if (*r).len == CAPACITY {
                return None; // could not make room with the space in `out`
            }
            let tail = ((*r).head + (*r).len) % CAPACITY;
            *(*r).items.add(tail) = e;
            (*r).len += 1;
            (*r).bytes += e.size;
            Some(n)
        })
    }

    /// Removes up to 8 entries (all of them over repeated calls) into `out`.
    pub(crate) fn drain(&self, out: &mut [Entry; 8]) -> usize {
        let _g = self.lock.guard();
        // SAFETY: lock held.
        self.ring.with_mut(|r| unsafe {
            let mut n = 0;
            while n < out.len() && (*r).len > 0 {
                out[n] = self.pop(r);
                n += 1;
            }
            n
        })
    }

    /// # Safety
    /// Lock held; the ring is not empty.
    unsafe fn pop(&self, r: *mut Ring) -> Entry {
        // SAFETY: see contract.
        unsafe {
            let e = *(*r).items.add((*r).head);
            (*r).head = ((*r).head + 1) % CAPACITY;
            (*r).len -= 1;
            (*r).bytes -= e.size;
            e
        }
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
