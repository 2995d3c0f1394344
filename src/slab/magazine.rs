//! Magazines (Bonwick & Adams, USENIX 2001): fixed-capacity stacks of free
//! objects of one class that move between a thread's cache and the depot whole.
//!
//! Magazines are metadata: they never come from the allocator they serve
//! (`magazine_pool.rs` carves them from mappings of its own).

use core::ptr;

use crate::sync::{AtomicU32, Ordering};

/// Largest magazine capacity (the default; big classes use fewer rounds).
pub(crate) const MAG_MAX: usize = 64;

/// A stack of up to `cap` free objects of one class.
///
/// Invariant: `rounds[..count]` are free objects (starts of objects of the
/// magazine's class, not in use and in no other magazine); `count <= cap`. Only
/// the owner (one thread's cache, or the depot under its lock) touches `rounds` and
/// `next`; `count` is atomic only so statistics can read it from other threads
/// (relaxed loads and stores: plain moves, no read-modify-write on the hot path).
/// The pool carves each magazine in a `CachePadded` slot (640 bytes on x86_64):
/// one thread's `rounds` must not share a line — or the pair of lines the
/// adjacent-line prefetcher fetches together — with another thread's `count`
/// (measured as false sharing in the whole-program suite's `hot` workload).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Magazine {
    pub(crate) count: AtomicU32,
    pub(crate) cap: u32,
    pub(crate) next: *mut Magazine,
    pub(crate) rounds: [*mut u8; MAG_MAX],
    /// The slab owner whose objects a full magazine in the depot holds (set by
    /// the thread that gives it to the depot; read there under its lock).
    pub(crate) owner: u16,
}

impl Magazine {
    /// An empty magazine of capacity `cap` (`<= MAG_MAX`).
    #[cfg(not(rustydb_loom))]
    pub(crate) const fn new(cap: u32) -> Self {
        Self {
            count: AtomicU32::new(0),
            cap,
            next: ptr::null_mut(),
            rounds: [ptr::null_mut(); MAG_MAX],
            owner: 0,
        }
    }

    /// An empty magazine of capacity `cap` (`<= MAG_MAX`).
    #[cfg(rustydb_loom)]
    pub(crate) fn new(cap: u32) -> Self {
        Self {
            count: AtomicU32::new(0),
            cap,
            next: ptr::null_mut(),
            rounds: [ptr::null_mut(); MAG_MAX],
            owner: 0,
        }
    }

    /// Number of objects held.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        // Relaxed: only the owner writes `count`; other threads read it for stats.
        self.count.load(Ordering::Relaxed) as usize
    }

    /// Whether the magazine holds `cap` objects.
    #[inline(always)]
    pub(crate) fn is_full(&self) -> bool {
        self.len() == self.cap as usize
    }

    /// Sets the number of objects held (owner only).
    #[inline(always)]
    pub(crate) fn set_len(&self, n: usize) {
        // Relaxed: see `len`.
        self.count.store(n as u32, Ordering::Relaxed);
    }
}
