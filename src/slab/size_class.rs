//! Size classes: a const table and an O(1) lookup.
//!
//! - 8 B, then 16 B steps up to 128 B (9 classes);
//! - then 8 classes per power of two up to 32 KiB (64 classes): a request above
//!   128 B wastes at most 1/9 (11.1 %) of its class, under the 12.5 % bound;
//! - then 4 classes per power of two up to 256 KiB (12 "medium" classes served from
//!   multi-unit slabs inside segments): at most 20 % waste.
//!
//! 85 classes in all. Every class size above 8 B is a multiple of 16, so every
//! object of those classes is 16-byte aligned; the 8-byte class serves requests
//! of at most 8 bytes with an alignment of at most 8 (callers look up
//! `class_of(size.max(align))`), so its 8-byte alignment is enough.

/// Number of size classes.
pub(crate) const NUM_CLASSES: usize = 85;
/// Largest size served by the "small" classes (the seed's slab range).
pub(crate) const SMALL_MAX: usize = 32 << 10;
/// Largest size served from segments at all.
pub(crate) const MEDIUM_MAX: usize = 256 << 10;
/// Number of small classes (8 B..=32 KiB).
pub(crate) const NUM_SMALL: usize = 73;
/// Largest size resolved through the direct lookup table (the hot path).
pub(crate) const FAST_MAX: usize = 1024;

/// Size in bytes of each class.
pub(crate) static CLASS_SIZE: [u32; NUM_CLASSES] = class_sizes();

/// `(size + 7) / 8` → class, for sizes up to [`FAST_MAX`].
pub(crate) static FAST_CLASS: [u8; FAST_MAX / 8 + 1] = fast_table();

/// `(size + 127) / 128` → class, for sizes up to [`SMALL_MAX`]. Exact above
/// 1 KiB, where every class boundary is a multiple of 128.
pub(crate) static MID_CLASS: [u8; SMALL_MAX / 128 + 1] = mid_table();

const fn mid_table() -> [u8; SMALL_MAX / 128 + 1] {
    let mut t = [0u8; SMALL_MAX / 128 + 1];
    let mut q = 1;
    while q < t.len() {
        t[q] = class_of_slow(q * 128) as u8;
        q += 1;
    }
    t
}

const fn class_sizes() -> [u32; NUM_CLASSES] {
    let mut t = [0u32; NUM_CLASSES];
    t[0] = 8;
    let mut i = 1;
    while i < 9 {
        t[i] = (i * 16) as u32;
        i += 1;
    }
    // 8 per doubling from 128 up to 32 KiB.
    let mut base = 128usize;
    while base < SMALL_MAX {
        let step = base / 8;
        let mut k = 1;
        while k <= 8 {
            t[i] = (base + k * step) as u32;
            i += 1;
            k += 1;
        }
        base *= 2;
    }
    // 4 per doubling up to 256 KiB.
    while base < MEDIUM_MAX {
        let step = base / 4;
        let mut k = 1;
        while k <= 4 {
            t[i] = (base + k * step) as u32;
            i += 1;
            k += 1;
        }
        base *= 2;
    }
    assert!(i == NUM_CLASSES);
    t
}

const fn fast_table() -> [u8; FAST_MAX / 8 + 1] {
    let mut t = [0u8; FAST_MAX / 8 + 1];
    let mut q = 1;
    while q < t.len() {
        t[q] = class_of_slow(q * 8) as u8;
        q += 1;
    }
    t
}

/// The class for `size` bytes (`1..=MEDIUM_MAX`; 0 is treated as 1), computed
/// arithmetically in O(1): a leading-zero count, a shift and an add.
#[inline]
pub(crate) const fn class_of_slow(size: usize) -> usize {
    if size <= 8 {
        return 0;
    }
    if size <= 128 {
        return size.div_ceil(16);
    }
    let s = size - 1;
    let b = (usize::BITS - 1 - s.leading_zeros()) as usize; // floor(log2(s)) ≥ 7
    if size <= SMALL_MAX {
        let shift = b - 3;
        9 + (b - 7) * 8 + ((s >> shift) - 8)
    } else {
        let shift = b - 2;
        NUM_SMALL + (b - 15) * 4 + ((s >> shift) - 4)
    }
}

/// The class for `size` (`0..=MEDIUM_MAX`): one table load up to 32 KiB.
/// Callers pass `size.max(align)` for alignments up to 16, so that only
/// requests with an alignment of at most 8 reach the 8-byte class.
#[inline(always)]
pub(crate) fn class_of(size: usize) -> usize {
    if size <= FAST_MAX {
        FAST_CLASS[(size + 7) >> 3] as usize
    } else if size <= SMALL_MAX {
        MID_CLASS[(size + 127) >> 7] as usize
    } else {
        class_of_slow(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_maps_to_the_smallest_class_that_fits() {
        for size in 1..=MEDIUM_MAX {
            let c = class_of(size);
            let cs = CLASS_SIZE[c] as usize;
            assert!(cs >= size, "size {size} class {c} ({cs}) too small");
            if c > 0 {
                assert!(
                    (CLASS_SIZE[c - 1] as usize) < size,
                    "size {size} skips class {}",
                    c - 1
                );
            }
        }
    }

    #[test]
    fn waste_is_bounded() {
        for size in 129..=MEDIUM_MAX {
            let cs = CLASS_SIZE[class_of(size)] as usize;
            let waste = (cs - size) as f64 / cs as f64;
            let bound = if size <= SMALL_MAX { 0.125 } else { 0.20 };
            assert!(waste <= bound, "size {size}: class {cs} wastes {waste:.3}");
        }
    }

    #[test]
    fn table_is_sorted_and_16_aligned_above_8_bytes() {
        assert_eq!(CLASS_SIZE[0], 8);
        assert_eq!(CLASS_SIZE[1], 16);
        assert_eq!(CLASS_SIZE[NUM_SMALL - 1] as usize, SMALL_MAX);
        assert_eq!(CLASS_SIZE[NUM_CLASSES - 1] as usize, MEDIUM_MAX);
        for w in CLASS_SIZE.windows(2) {
            assert!(w[0] < w[1]);
        }
        assert!(CLASS_SIZE[1..].iter().all(|&s| s % 16 == 0));
    }

    #[test]
    fn only_small_requests_aligned_to_at_most_8_reach_the_8_byte_class() {
        for align in [1usize, 2, 4, 8, 16] {
            for size in 1..=64 {
                let c = class_of(size.max(align));
                assert_eq!(c == 0, size <= 8 && align <= 8, "size {size} align {align}");
                assert_eq!(CLASS_SIZE[c] as usize % align, 0);
            }
        }
    }
}
