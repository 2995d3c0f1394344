//! Recovery on open: read the log from the last checkpoint, **redo** every
//! page change to the end of the log (repeating history, uncommitted changes
//! included), then **undo** the transactions that neither committed nor
//! aborted, newest change first, logging each undo as a compensation record
//! so that a crash during recovery resumes where it stopped; each gets an
//! abort record.
//!
//! A change is redone when the page's LSN is at or before the record's start
//! (the page on disk predates it). A page whose checksum fails on disk (a
//! torn write) is zeroed and rebuilt from its full-page image, which the log
//! holds for the first change of every page after the checkpoint's redo
//! point; a damaged page without one is an error. Pages the log names beyond
//! the end of the data file are added (the file grows lazily).
//!
//! Working memory — the segment being read and the record lists of open
//! transactions — lives in the memory context `wal-recovery`, dropped when
//! recovery ends.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use allocator_api2::vec::Vec as AVec;
use rustydb_memory::buffer_pool::PageId;
use rustydb_memory::{BufferPool, MemoryContext};

use crate::server::sql::storage::logged::{PageLogger, TxnLog, page_lsn, set_page_lsn};
use crate::server::sql::storage::record::{self, Lsn, NO_LSN, Record, UNDO_DONE, kind};
use crate::server::sql::storage::wal::{self, Control, LogReader, Wal};

/// What recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Records read.
    pub records: u64,
    /// Page changes redone.
    pub redone: u64,
    /// Page changes skipped (the page was newer).
    pub skipped: u64,
    /// Torn pages rebuilt from a full-page image.
    pub torn_pages: u64,
    /// Transactions rolled back.
    pub rolled_back: u64,
    /// Page changes undone.
    pub undone: u64,
    /// Where the log ended.
    pub end: Lsn,
    /// The next transaction id to use.
    pub next_txn: u64,
    /// Peak bytes of the recovery context.
    pub peak_bytes: usize,
}

/// Redoes and undoes the log in `dir` from `control` onto `pool`; opens the
/// log for appending at its end, installs it in `slot` (the pool's
/// write-back hook reads it) and returns it.
pub fn recover(
    dir: &Path,
    control: &Control,
    pool: &BufferPool,
    slot: &Arc<OnceLock<Arc<Wal>>>,
    open_since: &Arc<std::sync::atomic::AtomicU64>,
) -> Result<(Arc<Wal>, Recovered), String> {
    let ctx = MemoryContext::builder("wal-recovery").build();
    let mut out = Recovered {
        next_txn: control.next_txn.max(1),
        ..Default::default()
    };
    // Open transactions: (id, their records' LSNs in order).
    type Lsns<'c> = AVec<Lsn, &'c MemoryContext<'static>>;
    let mut open: AVec<(u64, Lsns<'_>), _> = AVec::new_in(&ctx);
    let mut reader = LogReader::new(dir, control.segment, control.scan_start, &ctx);
    if control.scan_start != NO_LSN {
        while let Some(r) = reader.next()? {
            out.records += 1;
            out.next_txn = out.next_txn.max(r.txn + 1);
            match r.kind {
                kind::PAGE => {
                    if r.lsn >= control.redo {
                        if redo(pool, &r, &mut out.torn_pages)? {
                            out.redone += 1;
                        } else {
                            out.skipped += 1;
                        }
                    }
                    match open.iter_mut().find(|(t, _)| *t == r.txn) {
                        Some((_, l)) => l.push(r.lsn),
                        None => {
                            let mut l = AVec::new_in(&ctx);
                            l.push(r.lsn);
                            open.push((r.txn, l));
                        }
                    }
                }
                kind::COMMIT | kind::ABORT => open.retain(|(t, _)| *t != r.txn),
                _ => {}
            }
        }
    }
    out.end = if control.scan_start == NO_LSN {
        0
    } else {
        reader.end()
    };
    drop(reader);
    let w = Arc::new(Wal::open(dir, control.segment, out.end, control.redo)?);
    let _ = slot.set(w.clone());
    let mut logger = PageLogger::new(w.clone(), open_since.clone());
    for (txn, lsns) in open.iter() {
        out.undone += undo(pool, &mut logger, dir, control.segment, *txn, lsns)?;
        out.rolled_back += 1;
    }
    w.flush_to(w.next_lsn())?;
    out.peak_bytes = ctx.stats().peak;
    Ok((w, out))
}

/// Redoes one page record; whether it was applied. Counts torn pages rebuilt.
fn redo(pool: &BufferPool, r: &Record<'_>, torn: &mut u64) -> Result<bool, String> {
    let c = r
        .page()
        .ok_or_else(|| format!("the page record at {} is malformed", r.lsn))?;
    while pool.disk().num_pages() <= c.page {
        pool.new_page()
            .map_err(|e| format!("cannot grow the data file to page {}: {e}", c.page))?;
    }
    let mut g = match pool.fetch_write(c.page) {
        Ok(g) => g,
        Err(rustydb_memory::Error::Corrupt { .. }) if c.image => {
            // A torn write: the image rebuilds the page; zeros first, so the
            // pool reads it as a new page.
            zero_page(pool, c.page)?;
            *torn += 1;
            pool.fetch_write(c.page)
                .map_err(|e| format!("page {}: {e}", c.page))?
        }
        Err(e) => {
            return Err(format!(
                "page {} cannot be read ({e}) and the log has no full image of it after the checkpoint",
                c.page
            ));
        }
    };
    if page_lsn(&g) > r.lsn {
        return Ok(false);
    }
    if !c.redo(&mut g) {
        return Err(format!(
            "the page record at {} does not fit page {}",
            r.lsn, c.page
        ));
    }
    set_page_lsn(&mut g, r.end());
    Ok(true)
}

fn zero_page(pool: &BufferPool, page: PageId) -> Result<(), String> {
    let zeros = vec![0u8; pool.page_size()];
    pool.disk()
        .write_page(page, &zeros)
        .map_err(|e| format!("cannot rewrite the torn page {page}: {e}"))
}

/// Undoes transaction `txn`'s records (`lsns`, in log order), newest first;
/// returns the changes undone.
fn undo(
    pool: &BufferPool,
    logger: &mut PageLogger,
    dir: &Path,
    segment: u64,
    txn: u64,
    lsns: &[Lsn],
) -> Result<u64, String> {
    let Some(&last) = lsns.last() else {
        return Ok(0);
    };
    let mut log = TxnLog {
        id: txn,
        first: lsns[0],
        last,
    };
    let mut cursor = last;
    let mut n = 0;
    while cursor != NO_LSN {
        let bytes = wal::read_record(dir, segment, cursor)?;
        let r = record::decode(&bytes, cursor).ok_or("a record to undo is damaged")?;
        if r.txn != txn {
            return Err(format!("the record at {cursor} is not transaction {txn}'s"));
        }
        let Some(c) = r.page() else {
            cursor = r.prev;
            continue;
        };
        if c.undo_next != NO_LSN {
            // A compensation record: what it undid needs no second undo.
            cursor = if c.undo_next == UNDO_DONE {
                NO_LSN
            } else {
                c.undo_next
            };
            continue;
        }
        let next = if r.prev == NO_LSN { UNDO_DONE } else { r.prev };
        let mut ok = true;
        logger.modify(pool, &mut log, c.page, next, |p| ok = c.undo(p), |_, _| {})?;
        if !ok {
            return Err(format!(
                "the undo of the record at {cursor} does not fit page {}",
                c.page
            ));
        }
        n += 1;
        cursor = r.prev;
    }
    logger
        .wal
        .append_mark(kind::ABORT, txn, log.last)
        .map(|_| n)
}
