//! The segment map: one bit per 2 MiB of address space, set while a segment of
//! ours occupies that region. It answers "is this pointer inside one of our
//! segments?" in one load, without reading the memory the pointer points at —
//! what an allocator without layouts (the C `free`, `realloc`,
//! `malloc_usable_size`) needs to tell its small objects from its large blocks
//! and from memory it never handed out (the dynamic linker's allocations from
//! before a preloaded `malloc` took over).
//!
//! The map is a zero-initialised static, so it lives in `.bss`: it costs no
//! memory until a bit in it is set, and then one page per 64 GiB of address
//! space in use (a process whose heap stays within 64 GiB touches one page).
//! It covers the 48-bit user address space of x86-64 and AArch64; a segment
//! mapped above that (the kernel only goes there when asked with a hint) is
//! refused by [`insert`] and unmapped by its caller.
//!
//! Ordering: a bit is set before any object of its segment is handed out and
//! cleared after the last one came back, just before the segment is unmapped.
//! A thread freeing a live object therefore *happens after* the bit was set
//! (through whatever handed it the pointer), so a relaxed load sees it; a
//! pointer into a region whose segment is gone reads a cleared bit.

use super::segment::SEGMENT_SIZE;
use crate::sync::{AtomicU64, Ordering};

/// Address bits the map covers.
const ADDRESS_BITS: u32 = 48;
/// log2 of the segment size.
const SEGMENT_SHIFT: u32 = SEGMENT_SIZE.trailing_zeros();
/// Words of 64 bits in the map (16 MiB of `.bss`).
const WORDS: usize = 1 << (ADDRESS_BITS - SEGMENT_SHIFT - 6);

const _: () = assert!(1 << SEGMENT_SHIFT == SEGMENT_SIZE);

static MAP: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];

/// The word index and bit mask of the region holding `addr`, or `None` above
/// the covered address space.
#[inline(always)]
fn slot(addr: usize) -> Option<(usize, u64)> {
    let region = addr >> SEGMENT_SHIFT;
    let word = region >> 6;
    (word < WORDS).then_some((word, 1u64 << (region & 63)))
}

/// Whether `p` points into one of our live segments. Any value may be asked,
/// null and wild pointers included.
#[inline(always)]
pub(crate) fn contains(p: *const u8) -> bool {
    match slot(p as usize) {
        // SAFETY: `slot` bounds `w` to the array.
        // Relaxed: see the module's ordering note.
        Some((w, bit)) => unsafe { MAP.get_unchecked(w) }.load(Ordering::Relaxed) & bit != 0,
        None => false,
    }
}

/// Marks the segment at `seg` (aligned to [`SEGMENT_SIZE`]) as ours. False if
/// it lies outside the covered address space (nothing is marked then).
pub(crate) fn insert(seg: *const u8) -> bool {
    debug_assert_eq!(seg as usize % SEGMENT_SIZE, 0);
    match slot(seg as usize) {
        Some((w, bit)) => {
            // Relaxed: see the module's ordering note; the segment manager's lock
            // publishes the segment itself.
            MAP[w].fetch_or(bit, Ordering::Relaxed);
            true
        }
        None => false,
    }
}

/// Clears the mark of the segment at `seg`, before it is unmapped.
pub(crate) fn remove(seg: *const u8) {
    if let Some((w, bit)) = slot(seg as usize) {
        // Relaxed: see the module's ordering note.
        MAP[w].fetch_and(!bit, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_per_region_and_exact() {
        // A region no allocation can occupy: the top of the covered space.
        let seg = ((1usize << ADDRESS_BITS) - 3 * SEGMENT_SIZE) as *const u8;
        assert!(!contains(seg));
        assert!(insert(seg));
        assert!(contains(seg));
        assert!(contains(seg.wrapping_add(SEGMENT_SIZE - 1)));
        assert!(!contains(seg.wrapping_add(SEGMENT_SIZE)));
        assert!(!contains(seg.wrapping_sub(1)));
        remove(seg);
        assert!(!contains(seg));
    }

    #[test]
    fn null_and_out_of_range_pointers_are_not_ours() {
        assert!(!contains(core::ptr::null()));
        assert!(!contains(usize::MAX as *const u8));
        assert!(!insert((1usize << ADDRESS_BITS) as *const u8));
        assert!(!contains((1usize << ADDRESS_BITS) as *const u8));
    }

    #[test]
    fn segments_of_the_heap_are_marked_while_mapped() {
        let m = super::super::segment::SegmentManager::new();
        let (seg, _) = m.acquire(1).expect("map");
        let other = m.acquire(32).expect("a second segment").0;
        assert!(contains(seg.cast()) && contains(other.cast()));
        // SAFETY: the units were acquired above and hold nothing.
        unsafe {
            m.release(seg, 0, 1);
            m.release(other, 0, 32);
        }
        m.purge_all();
        // One empty segment is kept (mapped and marked), the other unmapped (its
        // bit cleared first; another test may map a segment there since).
        assert_eq!(m.counters.unmapped_segments.load(Ordering::Relaxed), 1);
        assert!(contains(seg.cast()) || contains(other.cast()));
    }
}
