//! Page formats of the SQL storage, as plain functions on a page's payload
//! (the bytes a buffer-pool guard gives access to).
//!
//! * A **heap page** is a slotted page: a 12-byte header (`kind`, slot count,
//!   start of the record area), a slot directory growing up from the header
//!   (8 bytes a slot: offset and length, length 0 for a free slot) and records
//!   growing down from the end of the page. Compaction moves the records
//!   together without changing slot numbers, so a row's `(page, slot)` stays
//!   valid while it lives.
//! * A **chain page** carries a piece of a byte string too long for one page
//!   (an overflowing row, the catalog): a 16-byte header (`kind`, bytes used,
//!   next page or [`NO_PAGE`]) and the bytes.
//!
//! Every reader checks bounds: a damaged page is an error, never a panic.

use rustydb_memory::buffer_pool::PageId;

/// A heap page's `kind`.
pub const HEAP: u32 = 0x5048_4c31; // "1LHP"
/// A chain page's `kind`.
pub const CHAIN: u32 = 0x4843_4e31; // "1NCH"
/// "No next page".
pub const NO_PAGE: PageId = u64::MAX;

const HEAP_HEADER: usize = 12;
const SLOT: usize = 8;
const CHAIN_HEADER: usize = 16;

fn u32_at(p: &[u8], at: usize) -> Option<u32> {
    let b = p.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn put_u32(p: &mut [u8], at: usize, v: u32) {
    if let Some(b) = p.get_mut(at..at + 4) {
        b.copy_from_slice(&v.to_le_bytes());
    }
}

fn u64_at(p: &[u8], at: usize) -> Option<u64> {
    let b = p.get(at..at + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// The kind of a page (0 for a zeroed page).
pub fn kind(p: &[u8]) -> u32 {
    u32_at(p, 0).unwrap_or(0)
}

/// Formats `p` as an empty heap page.
pub fn init_heap(p: &mut [u8]) {
    p.fill(0);
    put_u32(p, 0, HEAP);
    put_u32(p, 4, 0);
    put_u32(p, 8, p.len() as u32);
}

fn nslots(p: &[u8]) -> usize {
    u32_at(p, 4).unwrap_or(0) as usize
}

fn free_end(p: &[u8]) -> usize {
    u32_at(p, 8).map_or(0, |v| v as usize).min(p.len())
}

fn slot(p: &[u8], i: usize) -> Option<(usize, usize)> {
    let at = HEAP_HEADER + i * SLOT;
    Some((u32_at(p, at)? as usize, u32_at(p, at + 4)? as usize))
}

fn set_slot(p: &mut [u8], i: usize, off: usize, len: usize) {
    let at = HEAP_HEADER + i * SLOT;
    put_u32(p, at, off as u32);
    put_u32(p, at + 4, len as u32);
}

/// The largest record a heap page of `payload` bytes takes.
pub fn max_record(payload: usize) -> usize {
    payload.saturating_sub(HEAP_HEADER + SLOT)
}

/// Bytes a record of `len` bytes needs on the page, slot included.
pub fn need(len: usize) -> usize {
    len + SLOT
}

/// Bytes free on the page (after compaction), counting a reusable slot as free.
pub fn free_space(p: &[u8]) -> usize {
    let n = nslots(p);
    let live: usize = (0..n).filter_map(|i| slot(p, i)).map(|(_, l)| l).sum();
    let free_slots = (0..n)
        .filter(|&i| slot(p, i).is_some_and(|(_, l)| l == 0))
        .count();
    p.len()
        .saturating_sub(HEAP_HEADER + n * SLOT + live)
        .saturating_add(free_slots * SLOT)
}

/// The record in slot `i`, if live.
pub fn get(p: &[u8], i: usize) -> Option<&[u8]> {
    if kind(p) != HEAP || i >= nslots(p) {
        return None;
    }
    let (off, len) = slot(p, i)?;
    if len == 0 {
        return None;
    }
    p.get(off..off.checked_add(len)?)
}

/// Live records: `(slot, bytes)`.
pub fn records(p: &[u8]) -> Vec<(usize, &[u8])> {
    if kind(p) != HEAP {
        return Vec::new();
    }
    (0..nslots(p).min(p.len() / SLOT))
        .filter_map(|i| get(p, i).map(|r| (i, r)))
        .collect()
}

/// Frees slot `i` (the space is reclaimed by the next compaction). The
/// record's bytes are zeroed: free space is always zero, so the log's undo
/// image of a later insert there is a length, not a copy.
pub fn delete(p: &mut [u8], i: usize) {
    if i < nslots(p) {
        if let Some((off, len)) = slot(p, i)
            && let Some(b) = p.get_mut(off..off.saturating_add(len))
        {
            b.fill(0);
        }
        set_slot(p, i, 0, 0);
    }
}

/// Moves the live records to the end of the page, closing the holes.
fn compact(p: &mut [u8]) {
    let n = nslots(p);
    let mut live: Vec<(usize, Vec<u8>)> = (0..n)
        .filter_map(|i| get(p, i).map(|r| (i, r.to_vec())))
        .collect();
    // Keep the order of the records on the page (highest offset first).
    live.sort_by_key(|(i, _)| std::cmp::Reverse(slot(p, *i).map_or(0, |s| s.0)));
    let dir_end = HEAP_HEADER + n * SLOT;
    let total: usize = live.iter().map(|(_, r)| r.len()).sum();
    if dir_end.saturating_add(total) > p.len() {
        return; // overlapping records: a damaged page is left as it is
    }
    let mut end = p.len();
    for (i, r) in live {
        end -= r.len();
        p[end..end + r.len()].copy_from_slice(&r);
        set_slot(p, i, end, r.len());
    }
    p[dir_end..end].fill(0);
    put_u32(p, 8, end as u32);
}

/// Stores `rec` on the page; returns its slot, or `None` without room.
pub fn insert(p: &mut [u8], rec: &[u8]) -> Option<usize> {
    if kind(p) != HEAP || rec.is_empty() {
        return None;
    }
    let n = nslots(p);
    let reuse = (0..n).find(|&i| slot(p, i).is_some_and(|(_, l)| l == 0));
    let dir_end = HEAP_HEADER + (n + usize::from(reuse.is_none())) * SLOT;
    if free_end(p).saturating_sub(dir_end) < rec.len() {
        if free_space(p) < rec.len() + if reuse.is_none() { SLOT } else { 0 } {
            return None;
        }
        compact(p);
        if free_end(p).saturating_sub(dir_end) < rec.len() {
            return None;
        }
    }
    let off = free_end(p) - rec.len();
    p[off..off + rec.len()].copy_from_slice(rec);
    put_u32(p, 8, off as u32);
    let i = reuse.unwrap_or(n);
    if reuse.is_none() {
        put_u32(p, 4, (n + 1) as u32);
    }
    set_slot(p, i, off, rec.len());
    Some(i)
}

/// Replaces the record in slot `i` in place when `rec` is no longer than it.
pub fn replace_in_place(p: &mut [u8], i: usize, rec: &[u8]) -> bool {
    match slot(p, i) {
        Some((off, len)) if len >= rec.len() && !rec.is_empty() && off + len <= p.len() => {
            p[off..off + rec.len()].copy_from_slice(rec);
            p[off + rec.len()..off + len].fill(0);
            set_slot(p, i, off, rec.len());
            true
        }
        _ => false,
    }
}

/// Bytes of data a chain page of `payload` bytes carries.
pub fn chain_capacity(payload: usize) -> usize {
    payload.saturating_sub(CHAIN_HEADER)
}

/// Writes a chain page: `data` (at most [`chain_capacity`]) and the next page.
pub fn write_chain(p: &mut [u8], data: &[u8], next: PageId) {
    p.fill(0);
    put_u32(p, 0, CHAIN);
    put_u32(p, 4, data.len() as u32);
    if let Some(b) = p.get_mut(8..16) {
        b.copy_from_slice(&next.to_le_bytes());
    }
    if let Some(b) = p.get_mut(CHAIN_HEADER..CHAIN_HEADER + data.len()) {
        b.copy_from_slice(data);
    }
}

/// Reads a chain page: its data and the next page; `None` if it is not one.
pub fn read_chain(p: &[u8]) -> Option<(&[u8], PageId)> {
    if kind(p) != CHAIN {
        return None;
    }
    let used = u32_at(p, 4)? as usize;
    let next = u64_at(p, 8)?;
    Some((p.get(CHAIN_HEADER..CHAIN_HEADER.checked_add(used)?)?, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_survive_delete_and_compaction() {
        let mut p = vec![0u8; 256];
        init_heap(&mut p);
        let a = insert(&mut p, &[1; 60]).unwrap();
        let b = insert(&mut p, &[2; 60]).unwrap();
        let c = insert(&mut p, &[3; 60]).unwrap();
        assert!(insert(&mut p, &[4; 60]).is_none());
        delete(&mut p, b);
        // Needs compaction: the hole is between a and c.
        let d = insert(&mut p, &[4; 70]).unwrap();
        assert_eq!(d, b);
        assert_eq!(get(&p, a).unwrap(), &[1; 60]);
        assert_eq!(get(&p, c).unwrap(), &[3; 60]);
        assert_eq!(get(&p, d).unwrap(), &[4; 70]);
        assert_eq!(records(&p).len(), 3);
        assert!(replace_in_place(&mut p, a, &[9; 10]));
        assert_eq!(get(&p, a).unwrap(), &[9; 10]);
    }

    #[test]
    fn garbage_pages_read_as_empty() {
        let p = vec![0xffu8; 128];
        assert!(records(&p).is_empty());
        assert!(read_chain(&p).is_none());
        let mut q = vec![0u8; 64];
        write_chain(&mut q, b"abc", 7);
        assert_eq!(read_chain(&q), Some((&b"abc"[..], 7)));
    }
}
