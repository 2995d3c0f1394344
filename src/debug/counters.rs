//! Per-component counters, one set per thread slot, folded on read.
//!
//! A slot has one writer (its thread), so a count is a plain load and store
//! of a cache line no other thread writes — no `lock`-prefixed instruction on
//! the fast path. Slot 0 is shared (threads without a slot) and counts with
//! atomic adds. Readers sum the slots; the values are cumulative (bytes and
//! blocks allocated and freed), so a slot handed to a new thread simply
//! continues.
//!
//! Peaks need a global live figure: each slot pushes its net change into a
//! shared per-component `live` counter whenever it has moved by more than
//! [`FLUSH_STEP`] bytes, and the peak is raised from it there and on every
//! read. A peak is therefore exact on reads and within `FLUSH_STEP` × threads
//! between them.

use super::components::{ComponentStats, MAX_COMPONENTS, name};
use super::reserved::Reserved;
use super::threads::{MAX_SLOTS, SHARED, high};
use crate::sync::{AtomicU64, Ordering};

/// Net bytes a slot may drift from the shared live figure.
pub(crate) const FLUSH_STEP: u64 = 64 << 10;

/// One component in one slot.
#[repr(C)]
struct Cell {
    alloc_bytes: AtomicU64,
    alloc_count: AtomicU64,
    free_bytes: AtomicU64,
    free_count: AtomicU64,
    /// Net bytes (alloc − free, wrapping) already added to the shared `live`.
    flushed: AtomicU64,
}

type Slot = [Cell; MAX_COMPONENTS];

/// Shared per-component figures.
struct Shared {
    live: AtomicU64,
    peak: AtomicU64,
}

/// The counters of one `DebugAlloc`.
pub(crate) struct Counters {
    /// `MAX_SLOTS` slots in a reservation of our own (zeroed = all counters 0).
    slots: Reserved<Slot, MAX_SLOTS>,
    shared: [Shared; MAX_COMPONENTS],
}

/// `a += v` for the slot's single writer (a plain load and store), or an
/// atomic add for the shared slot.
#[inline(always)]
fn bump(a: &AtomicU64, v: u64, shared: bool) -> u64 {
    // Relaxed: statistics; a slot's only writer is its thread (see module doc).
    if shared {
        a.fetch_add(v, Ordering::Relaxed).wrapping_add(v)
    } else {
        let n = a.load(Ordering::Relaxed).wrapping_add(v);
        a.store(n, Ordering::Relaxed);
        n
    }
}

impl Counters {
    pub(crate) fn new() -> Option<Self> {
        // SAFETY: a slot is atomics only; all-zero atomics are valid (0).
        let slots = unsafe { Reserved::zeroed() }?;
        Some(Self {
            slots,
            shared: [const {
                Shared {
                    live: AtomicU64::new(0),
                    peak: AtomicU64::new(0),
                }
            }; MAX_COMPONENTS],
        })
    }

    #[inline(always)]
    fn cell(&self, slot: usize, component: u16) -> &Cell {
        // `slot` < MAX_SLOTS comes from `threads::slot`; `component` < 256.
        &self.slots.at(slot)[component as usize]
    }

    #[inline(always)]
    pub(crate) fn on_alloc(&self, slot: usize, component: u16, size: usize) {
        let c = self.cell(slot, component);
        let shared = slot == SHARED;
        let bytes = bump(&c.alloc_bytes, size as u64, shared);
        bump(&c.alloc_count, 1, shared);
        // Relaxed: own slot's figures.
        let net = bytes.wrapping_sub(c.free_bytes.load(Ordering::Relaxed));
        let drift = net.wrapping_sub(c.flushed.load(Ordering::Relaxed));
        if drift as i64 > FLUSH_STEP as i64 {
            self.flush_up(c, component, net, drift);
        }
    }

    #[inline(always)]
    pub(crate) fn on_free(&self, slot: usize, component: u16, size: usize) {
        let c = self.cell(slot, component);
        let shared = slot == SHARED;
        let bytes = bump(&c.free_bytes, size as u64, shared);
        bump(&c.free_count, 1, shared);
        // Relaxed: own slot's figures.
        let net = c.alloc_bytes.load(Ordering::Relaxed).wrapping_sub(bytes);
        let drift = c.flushed.load(Ordering::Relaxed).wrapping_sub(net);
        if drift as i64 > FLUSH_STEP as i64 {
            self.flush_down(c, component, net, drift);
        }
    }

    #[cold]
    #[inline(never)]
    fn flush_up(&self, c: &Cell, component: u16, net: u64, drift: u64) {
        let s = &self.shared[component as usize];
        // Relaxed: statistics.
        c.flushed.store(net, Ordering::Relaxed);
        let live = s
            .live
            .fetch_add(drift, Ordering::Relaxed)
            .wrapping_add(drift);
        if (live as i64) > 0 {
            s.peak.fetch_max(live, Ordering::Relaxed);
        }
    }

    #[cold]
    #[inline(never)]
    fn flush_down(&self, c: &Cell, component: u16, net: u64, drift: u64) {
        // Relaxed: statistics.
        c.flushed.store(net, Ordering::Relaxed);
        self.shared[component as usize]
            .live
            .fetch_sub(drift, Ordering::Relaxed);
    }

    /// The folded figures of `component` (None if it never allocated).
    pub(crate) fn snapshot(&self, component: u16) -> Option<ComponentStats> {
        let (mut ab, mut ac, mut fb, mut fc) = (0u64, 0u64, 0u64, 0u64);
        for slot in 0..high() {
            let c = self.cell(slot, component);
            // Relaxed: a statistics snapshot; frees are read first so a racing
            // allocation cannot make live figures underflow.
            fb = fb.wrapping_add(c.free_bytes.load(Ordering::Relaxed));
            fc = fc.wrapping_add(c.free_count.load(Ordering::Relaxed));
            ab = ab.wrapping_add(c.alloc_bytes.load(Ordering::Relaxed));
            ac = ac.wrapping_add(c.alloc_count.load(Ordering::Relaxed));
        }
        if ac == 0 {
            return None;
        }
        let live = ab.saturating_sub(fb);
        // Relaxed: statistics.
        let peak = self.shared[component as usize]
            .peak
            .fetch_max(live, Ordering::Relaxed)
            .max(live);
        Some(ComponentStats {
            name: name(component),
            live_bytes: live,
            live_count: ac.saturating_sub(fc),
            peak_bytes: peak,
            total_bytes: ab,
            total_count: ac,
        })
    }

    /// Folded figures of every component that allocated.
    pub(crate) fn all(&self) -> Vec<ComponentStats> {
        (0..MAX_COMPONENTS as u16)
            .filter_map(|c| self.snapshot(c))
            .collect()
    }
}
