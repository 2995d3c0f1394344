//! Frame-pointer walking: with frame pointers (`-C force-frame-pointers=yes`)
//! every frame starts with a record `[saved frame pointer, return address]`
//! at the frame pointer, so a stack is a linked list — a few loads per frame,
//! no tables.
//!
//! Every link is validated before it is followed: it must lie in the calling
//! thread's stack (between the current stack pointer and the stack's top),
//! be 8-aligned and move strictly outwards. A code without frame pointers in
//! the chain (libc, a library built without them) ends the walk there; a
//! binary without them gives garbage links, which the validation stops and
//! the calibration in `mod.rs` detects.

/// Walks the frame records from `fp`, within the stack `[lo, hi)`, writing
/// return addresses into `out`; returns how many.
pub(crate) fn walk(mut fp: usize, lo: usize, hi: usize, out: &mut [usize]) -> usize {
    let mut n = 0;
    while n < out.len() {
        if fp < lo || !fp.is_multiple_of(8) || fp > hi.saturating_sub(16) {
            break;
        }
        // SAFETY: [fp, fp + 16) lies inside the calling thread's stack, which
        // is mapped and readable for its whole range [lo, hi); the values are
        // plain integers whatever they hold.
        let (next, ra) = unsafe {
            (
                core::ptr::read_volatile(fp as *const usize),
                core::ptr::read_volatile((fp + 8) as *const usize),
            )
        };
        if ra < 4096 {
            break;
        }
        out[n] = ra;
        n += 1;
        if next <= fp {
            break;
        }
        fp = next;
    }
    n
}
