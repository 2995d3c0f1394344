//! The on-disk page format: a 16-byte header at the start of every page, the
//! payload after it.
//!
//! ```text
//! 0      4          8            16                      page_size
//! | magic | checksum | page id    | payload ...            |
//! ```
//!
//! The checksum covers bytes `8..page_size` (the page id and the payload) and
//! is seeded with the page id, so a torn write, a flipped bit and a page
//! written at the wrong offset are all detected. As in PostgreSQL, an
//! all-zero page is a valid *new* page (a file extended but not yet written).
//! A deleted page carries the `FREED` magic.

use crate::error::{Error, Result};

/// Bytes of header at the start of every page.
pub const PAGE_HEADER: usize = 16;
const MAGIC: u32 = 0x5044_4252; // "RBDP" little-endian
const FREED: u32 = 0x4652_4545; // "EERF"

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

#[inline(always)]
fn round(acc: u64, w: u64) -> u64 {
    acc.wrapping_add(w.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

#[inline(always)]
fn word(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(w)
}

/// A 64-bit hash of `data` in the style of xxHash64's main loop (four
/// independent lanes, so it runs at several bytes per cycle).
pub(crate) fn hash64(data: &[u8], seed: u64) -> u64 {
    let mut v = [
        seed.wrapping_add(P1).wrapping_add(P2),
        seed.wrapping_add(P2),
        seed,
        seed.wrapping_sub(P1),
    ];
    let mut i = 0;
    while i + 32 <= data.len() {
        v[0] = round(v[0], word(data, i));
        v[1] = round(v[1], word(data, i + 8));
        v[2] = round(v[2], word(data, i + 16));
        v[3] = round(v[3], word(data, i + 24));
        i += 32;
    }
    let mut h = v[0]
        .rotate_left(1)
        .wrapping_add(v[1].rotate_left(7))
        .wrapping_add(v[2].rotate_left(12))
        .wrapping_add(v[3].rotate_left(18));
    h = h.wrapping_add(data.len() as u64);
    while i + 8 <= data.len() {
        h ^= round(0, word(data, i));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        i += 8;
    }
    while i < data.len() {
        h ^= u64::from(data[i]).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
        i += 1;
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

fn checksum(page: &[u8], id: u64) -> u32 {
    let h = hash64(&page[8..], id ^ P5);
    (h ^ (h >> 32)) as u32
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn get_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

/// Writes the header of page `id` into `page` (whose payload is final).
pub(crate) fn seal(page: &mut [u8], id: u64) {
    put_u32(page, 0, MAGIC);
    page[8..16].copy_from_slice(&id.to_le_bytes());
    let c = checksum(page, id);
    put_u32(page, 4, c);
}

/// Fills `page` with the image of a deleted page `id`.
pub(crate) fn seal_freed(page: &mut [u8], id: u64) {
    page.fill(0);
    put_u32(page, 0, FREED);
    page[8..16].copy_from_slice(&id.to_le_bytes());
    let c = checksum(page, id);
    put_u32(page, 4, c);
}

/// Checks a page read from disk as page `id`: `Ok(true)` for a sealed page,
/// `Ok(false)` for a new (all-zero) page, `Err(PageNotFound)` for a deleted
/// page and `Err(Corrupt)` for anything else.
pub(crate) fn verify(page: &[u8], id: u64) -> Result<bool> {
    let magic = get_u32(page, 0);
    if magic == 0 && page.iter().all(|&b| b == 0) {
        return Ok(false);
    }
    let mut pid = [0u8; 8];
    pid.copy_from_slice(&page[8..16]);
    let ok_sum = get_u32(page, 4) == checksum(page, id);
    if !ok_sum || u64::from_le_bytes(pid) != id {
        return Err(Error::Corrupt { page: id });
    }
    match magic {
        MAGIC => Ok(true),
        FREED => Err(Error::PageNotFound { page: id }),
        _ => Err(Error::Corrupt { page: id }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_verify_and_detect() {
        let mut p = vec![0u8; 4096];
        assert_eq!(verify(&p, 3), Ok(false));
        p[100] = 42;
        assert_eq!(verify(&p, 3), Err(Error::Corrupt { page: 3 }));
        seal(&mut p, 3);
        assert_eq!(verify(&p, 3), Ok(true));
        assert_eq!(verify(&p, 4), Err(Error::Corrupt { page: 4 }));
        for at in [0, 5, 9, 16, 2000, 4095] {
            let mut q = p.clone();
            q[at] ^= 0x10;
            assert_eq!(verify(&q, 3), Err(Error::Corrupt { page: 3 }), "byte {at}");
        }
        // A torn write: the second half of an older image.
        let mut old = vec![0u8; 4096];
        old[3000] = 1;
        seal(&mut old, 3);
        let mut torn = p.clone();
        torn[2048..].copy_from_slice(&old[2048..]);
        assert_eq!(verify(&torn, 3), Err(Error::Corrupt { page: 3 }));
        seal_freed(&mut p, 3);
        assert_eq!(verify(&p, 3), Err(Error::PageNotFound { page: 3 }));
    }

    #[test]
    fn hash_spreads() {
        let a = hash64(b"hello world, this is a buffer pool page!", 1);
        let b = hash64(b"hello world, this is a buffer pool page?", 1);
        let c = hash64(b"hello world, this is a buffer pool page!", 2);
        assert_ne!(a, b);
        assert_ne!(a, c);
    }
}
