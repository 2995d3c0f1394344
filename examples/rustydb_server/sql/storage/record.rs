//! The bytes of a log record, and the page changes they describe.
//!
//! ```text
//! 0    4      8     16     17  24     32     40
//! |len |crc32 |lsn  |kind  |.. |txn   |prev  | body …
//! ```
//!
//! `len` counts the whole record; `crc32` covers bytes `8..len` (the record's
//! own position `lsn` included, so a record read at the wrong place, a torn
//! tail or a stale byte fails it); `prev` is the previous record of the same
//! transaction ([`NO_LSN`] for its first). A `len` of 0 pads the rest of a
//! segment.
//!
//! A **page record**'s body: the page id, `undo_next` (set on a compensation
//! record written while undoing: the next record of its transaction still to
//! undo), the redo part — the page's whole body (a *full-page image*, written
//! for the first change of a page after a checkpoint began, so a page torn on
//! disk is rebuilt from the log) or the changed byte ranges — and the undo
//! part: the same ranges' bytes before the change, a range of zeros stored as
//! its length only (the free space of a heap page is kept zeroed, so an
//! insert's undo costs a few bytes).

use rustydb_memory::buffer_pool::PageId;

/// A log position: the offset of a byte in the (endless) log.
pub type Lsn = u64;
/// "No record".
pub const NO_LSN: Lsn = u64::MAX;
/// A compensation record's `undo_next` when nothing is left to undo.
pub const UNDO_DONE: Lsn = u64::MAX - 1;
/// Bytes of every record's header.
pub const HEADER: usize = 40;
/// Bytes at the start of every page's payload that hold its LSN (the end of
/// the last record that changed it); diffs and images start after them.
pub const PAGE_LSN: usize = 8;

/// Record kinds.
pub mod kind {
    /// A change of one page.
    pub const PAGE: u8 = 1;
    /// A transaction committed.
    pub const COMMIT: u8 = 2;
    /// A transaction was rolled back (its changes are undone before this).
    pub const ABORT: u8 = 3;
    /// A checkpoint completed.
    pub const CHECKPOINT: u8 = 4;
}

/// A run of changed bytes of a page payload: `off..off + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Offset in the payload (≥ [`PAGE_LSN`]).
    pub off: u32,
    /// Length.
    pub len: u32,
    /// Whether the bytes before the change were all zero.
    pub was_zero: bool,
}

/// Runs separated by fewer equal bytes than this are merged into one.
const MERGE_GAP: usize = 16;

/// The runs where `after` differs from `before` (payloads of equal length),
/// from [`PAGE_LSN`] on, appended to `out`.
pub fn diff(before: &[u8], after: &[u8], out: &mut Vec<Run>) {
    out.clear();
    let n = before.len().min(after.len());
    let mut i = PAGE_LSN.min(n);
    let mut open: Option<(usize, usize)> = None;
    while i < n {
        // Eight bytes at a time through the equal stretches.
        if i + 8 <= n && before[i..i + 8] == after[i..i + 8] {
            i += 8;
            continue;
        }
        if before[i] != after[i] {
            open = match open {
                Some((s, e)) if i - e < MERGE_GAP => Some((s, i + 1)),
                Some((s, e)) => {
                    push_run(before, s, e, out);
                    Some((i, i + 1))
                }
                None => Some((i, i + 1)),
            };
        }
        i += 1;
    }
    if let Some((s, e)) = open {
        push_run(before, s, e, out);
    }
}

fn push_run(before: &[u8], s: usize, e: usize, out: &mut Vec<Run>) {
    out.push(Run {
        off: s as u32,
        len: (e - s) as u32,
        was_zero: before[s..e].iter().all(|&b| b == 0),
    });
}

/// The redo part of a page record, to encode.
#[derive(Debug, Clone, Copy)]
pub enum RedoSrc<'a> {
    /// The whole payload after the change (bytes from [`PAGE_LSN`] are logged).
    Image(&'a [u8]),
    /// The runs, their bytes taken from the payload after the change.
    Runs(&'a [Run], &'a [u8]),
}

fn put(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(b);
}

fn header(out: &mut Vec<u8>, lsn: Lsn, kind: u8, txn: u64, prev: Lsn) -> usize {
    let at = out.len();
    put(out, &[0; 8]);
    put(out, &lsn.to_le_bytes());
    put(out, &[kind, 0, 0, 0, 0, 0, 0, 0]);
    put(out, &txn.to_le_bytes());
    put(out, &prev.to_le_bytes());
    at
}

fn seal(out: &mut [u8], at: usize) -> usize {
    let len = out.len() - at;
    out[at..at + 4].copy_from_slice(&(len as u32).to_le_bytes());
    let crc = crc32fast::hash(&out[at + 8..]);
    out[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    len
}

/// Appends a page record at log position `lsn` to `out`; returns its length.
/// `before` is the payload before the change (its runs' bytes are the undo).
#[allow(clippy::too_many_arguments)]
pub fn encode_page(
    out: &mut Vec<u8>,
    lsn: Lsn,
    txn: u64,
    prev: Lsn,
    page: PageId,
    undo_next: Lsn,
    redo: RedoSrc<'_>,
    undo: (&[Run], &[u8]),
) -> usize {
    let at = header(out, lsn, kind::PAGE, txn, prev);
    put(out, &page.to_le_bytes());
    put(out, &undo_next.to_le_bytes());
    match redo {
        RedoSrc::Image(p) => {
            let body = &p[PAGE_LSN.min(p.len())..];
            put(out, &[1]);
            put(out, &(body.len() as u32).to_le_bytes());
            put(out, body);
        }
        RedoSrc::Runs(runs, after) => {
            put(out, &[0]);
            put(out, &(runs.len() as u32).to_le_bytes());
            for r in runs {
                put(out, &r.off.to_le_bytes());
                put(out, &r.len.to_le_bytes());
                put(out, &after[r.off as usize..(r.off + r.len) as usize]);
            }
        }
    }
    let (runs, before) = undo;
    put(out, &(runs.len() as u32).to_le_bytes());
    for r in runs {
        put(out, &r.off.to_le_bytes());
        put(out, &r.len.to_le_bytes());
        put(out, &[u8::from(r.was_zero)]);
        if !r.was_zero {
            put(out, &before[r.off as usize..(r.off + r.len) as usize]);
        }
    }
    seal(out, at)
}

/// Appends a record without a body (commit, abort); returns its length.
pub fn encode_mark(out: &mut Vec<u8>, lsn: Lsn, kind: u8, txn: u64, prev: Lsn) -> usize {
    let at = header(out, lsn, kind, txn, prev);
    seal(out, at)
}

/// Appends a checkpoint record: recovery redoes from `redo` and reads the log
/// from `scan_start` (≤ `redo`: the first record of a transaction still open).
pub fn encode_checkpoint(out: &mut Vec<u8>, lsn: Lsn, redo: Lsn, scan_start: Lsn) -> usize {
    let at = header(out, lsn, kind::CHECKPOINT, 0, NO_LSN);
    put(out, &redo.to_le_bytes());
    put(out, &scan_start.to_le_bytes());
    seal(out, at)
}

/// A decoded record, borrowing the bytes it was read from.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    /// Its position.
    pub lsn: Lsn,
    /// Its length.
    pub len: usize,
    /// [`kind`].
    pub kind: u8,
    /// Its transaction (0 for checkpoints).
    pub txn: u64,
    /// The transaction's previous record.
    pub prev: Lsn,
    body: &'a [u8],
}

/// A page record's parts.
#[derive(Debug, Clone, Copy)]
pub struct PageChange<'a> {
    /// The page.
    pub page: PageId,
    /// On a compensation record: the next record of the transaction to undo.
    pub undo_next: Lsn,
    /// Whether the redo part is a full-page image.
    pub image: bool,
    redo: &'a [u8],
    undo: &'a [u8],
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
}

/// The length a record at the start of `b` claims (0: segment padding),
/// if `b` holds a header.
pub fn claimed_len(b: &[u8]) -> Option<usize> {
    let h = b.get(..4)?;
    Some(u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize)
}

/// Decodes the record at the start of `b`, expected at position `lsn`;
/// `None` if it is not a whole, intact record written there.
pub fn decode(b: &[u8], lsn: Lsn) -> Option<Record<'_>> {
    let len = claimed_len(b)?;
    if len < HEADER || len > b.len() {
        return None;
    }
    let r = &b[..len];
    let crc = u32::from_le_bytes([r[4], r[5], r[6], r[7]]);
    if crc32fast::hash(&r[8..]) != crc {
        return None;
    }
    let mut c = Cursor(&r[8..]);
    if c.u64()? != lsn {
        return None;
    }
    let kind = c.u8()?;
    c.take(7)?;
    let txn = c.u64()?;
    let prev = c.u64()?;
    if !(kind::PAGE..=kind::CHECKPOINT).contains(&kind) {
        return None;
    }
    Some(Record {
        lsn,
        len,
        kind,
        txn,
        prev,
        body: c.0,
    })
}

impl<'a> Record<'a> {
    /// The end of the record: the LSN a page it changed carries.
    pub fn end(&self) -> Lsn {
        self.lsn + self.len as u64
    }

    /// A page record's parts (`None` for other kinds or a malformed body).
    pub fn page(&self) -> Option<PageChange<'a>> {
        if self.kind != kind::PAGE {
            return None;
        }
        let mut c = Cursor(self.body);
        let page = c.u64()?;
        let undo_next = c.u64()?;
        let image = c.u8()? == 1;
        let start = c.0;
        if image {
            let n = c.u32()? as usize;
            c.take(n)?;
        } else {
            for _ in 0..c.u32()? {
                c.u32()?;
                let n = c.u32()? as usize;
                c.take(n)?;
            }
        }
        let redo = &start[..start.len() - c.0.len()];
        Some(PageChange {
            page,
            undo_next,
            image,
            redo,
            undo: c.0,
        })
    }

    /// A checkpoint's (redo, scan_start).
    pub fn checkpoint(&self) -> Option<(Lsn, Lsn)> {
        if self.kind != kind::CHECKPOINT {
            return None;
        }
        let mut c = Cursor(self.body);
        Some((c.u64()?, c.u64()?))
    }
}

impl PageChange<'_> {
    /// Applies the redo part to `payload` (a page's whole payload); `false`
    /// if the record does not fit the page.
    pub fn redo(&self, payload: &mut [u8]) -> bool {
        let mut c = Cursor(self.redo);
        if self.image {
            let Some(n) = c.u32() else { return false };
            let (Some(img), Some(dst)) = (
                c.take(n as usize),
                payload.get_mut(PAGE_LSN..PAGE_LSN + n as usize),
            ) else {
                return false;
            };
            dst.copy_from_slice(img);
            return true;
        }
        let Some(count) = c.u32() else { return false };
        for _ in 0..count {
            let (Some(off), Some(n)) = (c.u32(), c.u32()) else {
                return false;
            };
            let (off, n) = (off as usize, n as usize);
            let (Some(src), Some(dst)) = (c.take(n), payload.get_mut(off..off + n)) else {
                return false;
            };
            if off < PAGE_LSN {
                return false;
            }
            dst.copy_from_slice(src);
        }
        true
    }

    /// Applies the undo part to `payload`: the bytes before the change.
    pub fn undo(&self, payload: &mut [u8]) -> bool {
        self.undo_runs(|off, bytes| match payload.get_mut(off..off + bytes.len) {
            Some(dst) if off >= PAGE_LSN => {
                match bytes.src {
                    Some(s) => dst.copy_from_slice(s),
                    None => dst.fill(0),
                }
                true
            }
            _ => false,
        })
    }

    /// Calls `f(offset, bytes)` for each undo run (last run first, so that
    /// applying them in this order restores the bytes before the change even
    /// where runs overlap); stops with `false` at the first `false`.
    pub fn undo_runs(&self, mut f: impl FnMut(usize, UndoBytes<'_>) -> bool) -> bool {
        let mut c = Cursor(self.undo);
        let Some(count) = c.u32() else { return false };
        let mut runs = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let (Some(off), Some(n), Some(zero)) = (c.u32(), c.u32(), c.u8()) else {
                return false;
            };
            let src = if zero == 1 {
                None
            } else {
                match c.take(n as usize) {
                    Some(s) => Some(s),
                    None => return false,
                }
            };
            runs.push((
                off as usize,
                UndoBytes {
                    len: n as usize,
                    src,
                },
            ));
        }
        runs.into_iter().rev().all(|(off, b)| f(off, b))
    }
}

/// The bytes of one undo run: `src`, or `len` zeros.
#[derive(Debug, Clone, Copy)]
pub struct UndoBytes<'a> {
    /// Length.
    pub len: usize,
    /// The bytes (`None`: zeros).
    pub src: Option<&'a [u8]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_records_round_trip_and_apply() {
        let mut before = vec![0u8; 256];
        before[100..110].copy_from_slice(b"0123456789");
        let mut after = before.clone();
        after[20..24].copy_from_slice(b"abcd"); // into zeros
        after[30] = 7; // merged with the run before (gap < 16)
        after[100..104].copy_from_slice(b"WXYZ");
        after[250] = 1;
        let mut runs = Vec::new();
        diff(&before, &after, &mut runs);
        assert_eq!(runs.len(), 3, "{runs:?}");
        assert!(runs[0].was_zero && !runs[1].was_zero);
        let mut out = vec![0xAA; 5]; // records append after other bytes
        let n = encode_page(
            &mut out,
            1000,
            9,
            NO_LSN,
            42,
            NO_LSN,
            RedoSrc::Runs(&runs, &after),
            (&runs, &before),
        );
        let r = decode(&out[5..], 1000).unwrap();
        assert_eq!(
            (r.len, r.kind, r.txn, r.prev, r.end()),
            (n, 1, 9, NO_LSN, 1000 + n as u64)
        );
        assert!(decode(&out[5..], 1001).is_none(), "another position");
        let p = r.page().unwrap();
        assert_eq!((p.page, p.image), (42, false));
        let mut page = before.clone();
        assert!(p.redo(&mut page));
        assert_eq!(page, after);
        assert!(p.undo(&mut page));
        assert_eq!(page, before);
        // A full image, and a flipped byte is caught by the checksum.
        let mut img = Vec::new();
        encode_page(
            &mut img,
            0,
            1,
            5,
            3,
            7,
            RedoSrc::Image(&after),
            (&runs, &before),
        );
        let p = decode(&img, 0).unwrap().page().unwrap();
        let mut page = vec![0xFF; 256];
        assert!(p.redo(&mut page));
        assert_eq!(page[PAGE_LSN..], after[PAGE_LSN..]);
        assert_eq!(p.undo_next, 7);
        img[60] ^= 1;
        assert!(decode(&img, 0).is_none());
        // Too short, padding, marks and checkpoints.
        assert!(decode(&img[..20], 0).is_none());
        assert!(decode(&[0u8; 64], 0).is_none());
        let mut m = Vec::new();
        encode_mark(&mut m, 77, kind::COMMIT, 9, 1000);
        encode_checkpoint(&mut m, 77 + HEADER as u64, 5, 3);
        let c = decode(&m, 77).unwrap();
        assert_eq!((c.kind, c.prev), (kind::COMMIT, 1000));
        let k = decode(&m[HEADER..], 77 + HEADER as u64).unwrap();
        assert_eq!(k.checkpoint(), Some((5, 3)));
    }

    #[test]
    fn diff_of_equal_pages_is_empty_and_the_lsn_is_ignored() {
        let a = vec![3u8; 4096];
        let mut b = a.clone();
        b[..PAGE_LSN].fill(9);
        let mut runs = vec![Run {
            off: 1,
            len: 1,
            was_zero: false,
        }];
        diff(&a, &b, &mut runs);
        assert!(runs.is_empty());
        b[4095] = 0;
        diff(&a, &b, &mut runs);
        assert_eq!(
            runs,
            vec![Run {
                off: 4095,
                len: 1,
                was_zero: false
            }]
        );
    }
}
