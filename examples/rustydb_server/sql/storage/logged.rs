//! Changing a page through the log: the only way the SQL storage writes a
//! page. The page is latched, copied, changed, compared with its copy; the
//! changed runs go to the log (a full image instead when the page has not
//! changed since the current checkpoint began), and the page takes the
//! record's end as its LSN before the latch is released — so the buffer
//! pool's write-back hook ([`wal_barrier`]) can force the log that far
//! before the page reaches the disk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use rustydb_memory::BufferPool;
use rustydb_memory::buffer_pool::PageId;

use crate::server::sql::storage::record::{self, Lsn, NO_LSN, PAGE_LSN, Run};
use crate::server::sql::storage::wal::Wal;

/// The LSN a page payload carries.
pub fn page_lsn(payload: &[u8]) -> Lsn {
    let mut a = [0u8; 8];
    if let Some(b) = payload.get(..PAGE_LSN) {
        a.copy_from_slice(b);
    }
    u64::from_le_bytes(a)
}

/// Stores `lsn` in a page payload.
pub fn set_page_lsn(payload: &mut [u8], lsn: Lsn) {
    if let Some(b) = payload.get_mut(..PAGE_LSN) {
        b.copy_from_slice(&lsn.to_le_bytes());
    }
}

/// The buffer pool's write-back hook: before a page is written, the log is
/// made durable up to the page's LSN. Until the log is installed in `slot`
/// (during redo, when every page's LSN is within the durable log already)
/// pages are written as they are.
pub fn wal_barrier(
    slot: Arc<OnceLock<Arc<Wal>>>,
) -> impl Fn(PageId, &[u8]) -> rustydb_memory::Result<()> + Send + Sync + 'static {
    move |page, payload| {
        let Some(wal) = slot.get() else { return Ok(()) };
        let lsn = page_lsn(payload);
        if lsn == 0 {
            return Ok(());
        }
        wal.flush_to(lsn).map_err(|_| rustydb_memory::Error::Io {
            op: "write-ahead log",
            page,
            errno: libc::EIO,
        })
    }
}

/// A transaction's place in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnLog {
    /// Its id in the log.
    pub id: u64,
    /// Its first record ([`NO_LSN`] before it changed anything).
    pub first: Lsn,
    /// Its last record.
    pub last: Lsn,
}

impl TxnLog {
    /// A transaction that has logged nothing yet.
    pub fn new(id: u64) -> Self {
        Self {
            id,
            first: NO_LSN,
            last: NO_LSN,
        }
    }
}

/// Writes pages through the log; keeps its copy buffers between changes.
#[derive(Debug)]
pub struct PageLogger {
    /// The log.
    pub wal: Arc<Wal>,
    /// The first LSN (a lower bound) of the transaction writing now, for
    /// checkpoints ([`NO_LSN`]: none).
    pub open_since: Arc<AtomicU64>,
    before: Vec<u8>,
    runs: Vec<Run>,
}

impl PageLogger {
    /// A logger appending to `wal`.
    pub fn new(wal: Arc<Wal>, open_since: Arc<AtomicU64>) -> Self {
        Self {
            wal,
            open_since,
            before: Vec::new(),
            runs: Vec::new(),
        }
    }

    /// Runs `f` on page `page`'s payload (latched for writing) and logs what
    /// it changed for `txn` (`undo_next`: see `record.rs`; [`NO_LSN`] for a
    /// forward change). Returns `f`'s result and whether a record was
    /// logged (an unchanged page gets none, unless it needs a full image).
    /// When the log refuses the record the page is put back as it was.
    ///
    /// `logged(runs, before)` runs after the record is appended, with the
    /// page still latched (the version store records the undo there, so a
    /// reader that pins the page next finds it).
    pub fn modify<R>(
        &mut self,
        pool: &BufferPool,
        txn: &mut TxnLog,
        page: PageId,
        undo_next: Lsn,
        f: impl FnOnce(&mut [u8]) -> R,
        logged: impl FnOnce(&[Run], &[u8]),
    ) -> Result<(R, bool), String> {
        let mut g = pool
            .fetch_write(page)
            .map_err(|e| format!("page {page}: {e}"))?;
        self.before.clear();
        self.before.extend_from_slice(&g);
        let r = f(&mut g);
        record::diff(&self.before, &g, &mut self.runs);
        if self.runs.is_empty() {
            // The latch marked the page dirty: if it has no full image since
            // the checkpoint began, log one anyway, or a torn write of this
            // unchanged page could not be repaired.
            let lsn = page_lsn(&self.before);
            if lsn == 0 || lsn > self.wal.redo_point() {
                return Ok((r, false));
            }
        }
        if txn.first == NO_LSN {
            self.open_since.store(self.wal.next_lsn(), Ordering::SeqCst);
        }
        let appended = self.wal.append_page(
            txn.id,
            txn.last,
            page,
            undo_next,
            page_lsn(&self.before),
            &self.before,
            &g,
            &self.runs,
        );
        let (lsn, end) = match appended {
            Ok(x) => x,
            Err(e) => {
                g.copy_from_slice(&self.before);
                return Err(e);
            }
        };
        if txn.first == NO_LSN {
            txn.first = lsn;
        }
        txn.last = lsn;
        set_page_lsn(&mut g, end);
        logged(&self.runs, &self.before);
        drop(g);
        Ok((r, true))
    }
}
