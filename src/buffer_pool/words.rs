//! Page bytes as 8-byte atomic words: how optimistic readers copy a payload
//! out, and how writers write a frame that optimistic readers may be copying.
//!
//! Rust's memory model makes a non-atomic access that races with any other
//! access to the same bytes undefined behaviour, even if a version check
//! throws the value away afterwards (the seqlock caveat crossbeam's
//! `AtomicCell` documents). So an optimistic reader loads the payload through
//! relaxed `AtomicU64` loads, and while a frame may have optimistic readers
//! (its `OPTIMISTIC` bit, see `frame.rs`) its owner writes it through relaxed
//! `AtomicU64` stores of whole aligned words. Every concurrent access to those
//! bytes is then an atomic access of the same size and place, or a read —
//! the model's rule for atomics reached through a pointer ("atomic accesses
//! of different sizes may not partially overlap unless both are reads"):
//! readers never use byte atomics over words a writer stores whole.
//!
//! The words are reached through raw pointers into the pool's mapping, not
//! through `crate::sync` (loom has no atomics over foreign memory); the loom
//! model in `loom/tests/buffer_pool.rs` checks the protocol that decides
//! which side may write plainly (`loom_api::PoolModel`).

use core::sync::atomic::{AtomicU64, Ordering};

/// Bytes per word.
pub(crate) const WORD: usize = 8;

/// The word at `p`, by a relaxed atomic load.
///
/// # Safety
/// `p` is 8-aligned and inside the pool's frame mapping (live for the call);
/// every write that may run concurrently with this load is an atomic store of
/// the whole word at `p` (the optimistic-read protocol of `frame.rs`).
#[inline(always)]
unsafe fn load(p: *const u8) -> u64 {
    // SAFETY: aligned and live (the caller's contract); concurrent writes are
    // same-size atomic stores, so this access is not a data race.
    unsafe { AtomicU64::from_ptr(p.cast::<u64>().cast_mut()) }.load(Ordering::Relaxed)
}

/// Stores `v` into the word at `p` by a relaxed atomic store.
///
/// # Safety
/// `p` is 8-aligned and inside the frame mapping; the caller owns the frame
/// (write latch or `IO`), so no other thread writes it, and concurrent readers
/// only read it (optimistic readers with same-size atomic loads).
#[inline(always)]
unsafe fn store(p: *mut u8, v: u64) {
    // SAFETY: aligned and live (the caller's contract); the only concurrent
    // accesses are reads, the racing ones atomic loads of this same word.
    unsafe { AtomicU64::from_ptr(p.cast::<u64>()) }.store(v, Ordering::Relaxed)
}

/// Copies bytes `offset..offset + out.len()` of the payload at `base` into
/// `out`, one atomic word load per word the range touches.
///
/// The copy is split into a partial head word, whole words and a partial tail
/// word, so that every copy into `out` has a length the compiler knows (8, or
/// 4/2/1 for the partial words): no `memcpy` call per word, and a read of a
/// whole aligned `u64` at a constant offset is one load and one store.
///
/// # Safety
/// `base` is 8-aligned, `offset + out.len()` is at most the payload length,
/// the payload's length is a multiple of 8 and it lies inside the frame
/// mapping for the call; writes racing with the loads are whole-word atomic
/// stores (see the module documentation).
#[inline(always)]
pub(crate) unsafe fn copy_out(base: *const u8, offset: usize, out: &mut [u8]) {
    // Below, `end` is the range's end, `offset + out.len()` for the caller's
    // `out`; the caller's contract has `end ≤ len`, the payload length.
    let mut at = offset;
    let mut out = out;
    let lo = at % WORD;
    if lo != 0 && !out.is_empty() {
        let w = at - lo;
        // SAFETY: `w` is 8-aligned and `w < end ≤ len`, so `w + 8 ≤ len` (the
        // payload length is a multiple of 8): inside the payload.
        let bytes = unsafe { load(base.add(w)) }.to_ne_bytes();
        let k = (WORD - lo).min(out.len());
        let (head, rest) = core::mem::take(&mut out).split_at_mut(k);
        copy_short(head, &bytes[lo..lo + k]);
        out = rest;
        at = w + WORD;
    }
    // `at` is 8-aligned from here on (or `out` is empty).
    let mut words = out.chunks_exact_mut(WORD);
    for chunk in &mut words {
        // SAFETY: `at` is 8-aligned and `at + 8 ≤ end ≤ len` (a whole chunk of
        // `out` is left): inside the payload.
        let bytes = unsafe { load(base.add(at)) }.to_ne_bytes();
        chunk.copy_from_slice(&bytes);
        at += WORD;
    }
    let tail = words.into_remainder();
    if !tail.is_empty() {
        // SAFETY: `at` is 8-aligned and `at < end ≤ len` (a byte of `out` is
        // left), so `at + 8 ≤ len` as above.
        let bytes = unsafe { load(base.add(at)) }.to_ne_bytes();
        let k = tail.len();
        copy_short(tail, &bytes[..k]);
    }
}

/// Copies `src` into `dst` (the same length, less than a word) by copies of
/// 4, 2 and 1 bytes, each of a length known at compile time (a byte loop would
/// be turned into a `memcpy` call).
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    debug_assert!(dst.len() == src.len() && dst.len() < WORD);
    let n = dst.len();
    let mut i = 0;
    if n & 4 != 0 {
        dst[i..i + 4].copy_from_slice(&src[i..i + 4]);
        i += 4;
    }
    if n & 2 != 0 {
        dst[i..i + 2].copy_from_slice(&src[i..i + 2]);
        i += 2;
    }
    if n & 1 != 0 {
        dst[i] = src[i];
    }
}

/// Writes `src` at `offset` of the payload at `base` through atomic word
/// stores; a word `src` covers only in part keeps its other bytes.
///
/// # Safety
/// As [`copy_out`], and the caller owns the frame (write latch or `IO`).
pub(crate) unsafe fn copy_in(base: *mut u8, offset: usize, src: &[u8]) {
    // As in `copy_out`: a partial head word, whole words, a partial tail word,
    // each copy of a length the compiler knows. `end = offset + src.len() ≤ len`.
    let mut at = offset;
    let mut src = src;
    let lo = at % WORD;
    if lo != 0 && !src.is_empty() {
        let w = at - lo;
        // SAFETY: `w` is 8-aligned and `w < end ≤ len`, so `w + 8 ≤ len` (the
        // payload length is a multiple of 8); we are the only writer, so this
        // load returns the word's current value.
        let mut bytes = unsafe { load(base.add(w)) }.to_ne_bytes();
        let k = (WORD - lo).min(src.len());
        let (head, rest) = src.split_at(k);
        copy_short(&mut bytes[lo..lo + k], head);
        // SAFETY: inside the payload (as above), and we own the frame.
        unsafe { store(base.add(w), u64::from_ne_bytes(bytes)) };
        src = rest;
        at = w + WORD;
    }
    // `at` is 8-aligned from here on (or `src` is empty).
    let mut words = src.chunks_exact(WORD);
    for chunk in &mut words {
        let mut bytes = [0; WORD];
        bytes.copy_from_slice(chunk);
        // SAFETY: `at` is 8-aligned and `at + 8 ≤ end ≤ len`: inside the
        // payload, and we own the frame.
        unsafe { store(base.add(at), u64::from_ne_bytes(bytes)) };
        at += WORD;
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        // SAFETY: `at` is 8-aligned and `at < end ≤ len`, so `at + 8 ≤ len`; the
        // only writer reads the word's current value.
        let mut bytes = unsafe { load(base.add(at)) }.to_ne_bytes();
        copy_short(&mut bytes[..tail.len()], tail);
        // SAFETY: as above.
        unsafe { store(base.add(at), u64::from_ne_bytes(bytes)) };
    }
}

/// Publishes `new` (a whole payload) over the payload at `base`, storing only
/// the words that differ: a writer's private copy going back to the frame.
///
/// # Safety
/// `base` is 8-aligned with `new.len()` bytes of payload (a multiple of 8)
/// inside the mapping; the caller owns the frame (write latch or `IO`).
pub(crate) unsafe fn publish(base: *mut u8, new: &[u8]) {
    // Compare a block at a time (a plain read of the frame: we are its only
    // writer, and reads never race with reads); store only changed words.
    const BLOCK: usize = 64;
    debug_assert_eq!(new.len() % WORD, 0);
    for (b, n) in new.chunks(BLOCK).enumerate() {
        let at = b * BLOCK;
        // SAFETY: `n.len()` bytes at `at` are inside the payload (the caller's
        // contract); nobody writes them while we own the frame, and the view
        // ends before we store below.
        let same = unsafe { core::slice::from_raw_parts(base.add(at).cast_const(), n.len()) } == n;
        if same {
            continue;
        }
        for (k, nw) in n.chunks_exact(WORD).enumerate() {
            let mut v = [0; WORD];
            v.copy_from_slice(nw);
            let v = u64::from_ne_bytes(v);
            let p = base.wrapping_add(at + k * WORD);
            // SAFETY: an aligned word inside the payload; we own the frame, so
            // the load returns its current value and the store is the only write.
            unsafe {
                if load(p) != v {
                    store(p, v);
                }
            }
        }
    }
}

/// Fills `len` bytes of payload at `base` with zeros through atomic stores.
///
/// # Safety
/// As [`publish`] with a payload of `len` bytes.
pub(crate) unsafe fn zero(base: *mut u8, len: usize) {
    debug_assert_eq!(len % WORD, 0);
    for w in (0..len).step_by(WORD) {
        // SAFETY: inside the payload; we own the frame.
        unsafe { store(base.add(w), 0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_any_range_and_keeps_neighbours() {
        let mut frame = [0u64; 8];
        let base = frame.as_mut_ptr().cast::<u8>();
        let src: Vec<u8> = (1..=64).collect();
        // SAFETY: `frame` is 64 aligned bytes owned by this test.
        unsafe { copy_in(base, 0, &src) };
        for off in 0..64 {
            for len in 0..=(64 - off) {
                let mut out = vec![0u8; len];
                // SAFETY: as above; `off + len ≤ 64`.
                unsafe { copy_out(base, off, &mut out) };
                assert_eq!(out, &src[off..off + len], "{off}+{len}");
            }
        }
        // SAFETY: as above.
        unsafe { copy_in(base, 5, &[0xAA; 12]) };
        let mut all = [0u8; 64];
        // SAFETY: as above.
        unsafe { copy_out(base, 0, &mut all) };
        assert_eq!(&all[..5], &src[..5]);
        assert_eq!(&all[5..17], &[0xAA; 12]);
        assert_eq!(&all[17..], &src[17..]);
    }

    #[test]
    fn writes_any_range_and_keeps_neighbours() {
        for off in 0..64 {
            for len in 0..=(64 - off) {
                let mut frame = [0x5555_5555_5555_5555u64; 8];
                let base = frame.as_mut_ptr().cast::<u8>();
                let src: Vec<u8> = (0..len).map(|i| 0x80 | i as u8).collect();
                // SAFETY: `frame` is 64 aligned bytes owned by this test; `off + len ≤ 64`.
                unsafe { copy_in(base, off, &src) };
                let mut model = [0x55u8; 64];
                model[off..off + len].copy_from_slice(&src);
                let mut all = [0u8; 64];
                // SAFETY: as above.
                unsafe { copy_out(base, 0, &mut all) };
                assert_eq!(all, model, "{off}+{len}");
            }
        }
    }

    #[test]
    fn publish_and_zero_write_the_whole_payload() {
        let mut frame = [7u64; 32];
        let base = frame.as_mut_ptr().cast::<u8>();
        let mut new = [7u8; 256];
        for (b, x) in new.iter_mut().enumerate() {
            *x = (b * 3) as u8;
        }
        new[..8].copy_from_slice(&7u64.to_ne_bytes());
        // SAFETY: `frame` is 256 aligned bytes owned by this test.
        unsafe { publish(base, &new) };
        let mut out = [0u8; 256];
        // SAFETY: as above.
        unsafe { copy_out(base, 0, &mut out) };
        assert_eq!(out, new);
        // SAFETY: as above.
        unsafe { zero(base, 256) };
        assert_eq!(frame, [0; 32]);
    }
}
