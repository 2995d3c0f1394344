//! Bytes mapped by the crate, and the allocator → pressure-monitor signal.
//!
//! Every mapping made through `sys` (segments, large objects, metadata) is
//! counted here — one atomic add beside a syscall — and when the total crosses a
//! 64 MiB step the registered monitors are woken by a write to their eventfd.
//! No allocation, no lock; the pressure layer registers the eventfds.

use crate::sync::{AtomicI32, AtomicU64, Ordering};

/// Mapped bytes between two wake-ups.
pub const SIGNAL_STEP: u64 = 64 << 20;
const SLOTS: usize = 8;

static MAPPED: AtomicU64 = AtomicU64::new(0);
static WAKE_FDS: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];

/// Bytes currently mapped through `sys` by this crate (segments, large objects,
/// metadata).
pub fn mapped_bytes() -> u64 {
    // Relaxed: a statistic.
    MAPPED.load(Ordering::Relaxed)
}

/// Records `bytes` newly mapped; wakes the monitors when a step is crossed.
#[inline]
pub(crate) fn note_mapped(bytes: usize) {
    // Relaxed: a counter; the wake-up carries no data.
    let before = MAPPED.fetch_add(bytes as u64, Ordering::Relaxed);
    if before / SIGNAL_STEP != (before + bytes as u64) / SIGNAL_STEP {
        wake_monitors();
    }
}

/// Records `bytes` unmapped.
#[inline]
pub(crate) fn note_unmapped(bytes: usize) {
    // Relaxed: as above.
    MAPPED.fetch_sub(bytes as u64, Ordering::Relaxed);
}

/// Wakes every registered monitor (an eventfd write each; no allocation).
pub fn wake_monitors() {
    for slot in &WAKE_FDS {
        // Relaxed: the fd number is all we need; a stale one is at worst a
        // spurious write to a closed descriptor (EBADF), which is ignored.
        let fd = slot.load(Ordering::Relaxed);
        if fd >= 0 {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a valid u64 to a descriptor; errors ignored.
            unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
        }
    }
}

/// Registers an eventfd to be woken; returns its slot, or `None` if all are taken.
pub(crate) fn register_wake_fd(fd: i32) -> Option<usize> {
    (0..SLOTS).find(|&i| {
        // Relaxed: slot ownership only; the fd value is the payload.
        WAKE_FDS[i]
            .compare_exchange(-1, fd, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    })
}

/// Frees a slot taken by [`register_wake_fd`].
pub(crate) fn unregister_wake_fd(slot: usize) {
    // Relaxed: as above.
    WAKE_FDS[slot].store(-1, Ordering::Relaxed);
}
