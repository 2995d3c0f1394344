//! The write-ahead log: records appended to an in-memory buffer, written to
//! segment files and made durable by one flusher thread (group commit), the
//! control file naming the last checkpoint, and reading the log back.
//!
//! A position in the log ([`Lsn`]) is a byte offset; segment `n` is the file
//! `wal/<n as 16 hex digits>.seg` and holds positions `n·S .. (n+1)·S`. A
//! record never crosses a segment: one that does not fit is preceded by
//! zeros up to the next segment. The flusher writes segments in order and
//! syncs each before the next, so zeros followed by records can only be
//! padding, never a hole.
//!
//! **Group commit.** A committer appends its commit record and asks for the
//! log to be durable up to its end ([`Wal::flush_to`], or [`Wal::durable`]
//! from async code, which holds no thread while it waits). The flusher thread
//! takes *everything* buffered when it wakes, writes it and `fdatasync`s once:
//! every commit appended meanwhile becomes durable with that one sync. The
//! buffer pool's write-back hook calls [`Wal::flush_to`] with a page's LSN
//! before the page is written (WAL-before-data).
//!
//! After a failed write or sync the log refuses everything (`Err`): the
//! process cannot know which bytes reached the disk, so it must restart and
//! recover (PostgreSQL panics for the same reason).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::server::sql::storage::record::{self, HEADER, Lsn, NO_LSN, RedoSrc, Run};
use rustydb_memory::buffer_pool::PageId;

/// The folder of the log in the data directory.
pub const DIR: &str = "wal";
const CONTROL: &str = "control";
const CONTROL_MAGIC: &[u8; 8] = b"RDBWALC1";
const CONTROL_LEN: usize = 8 + 4 + 4 + 8 * 5 + 4;

/// Buffered bytes beyond which an appender asks the flusher to write.
const EAGER_FLUSH: usize = 1 << 20;
/// Buffered bytes beyond which an appender waits for the flusher.
const HARD_CAP: usize = 64 << 20;

/// What the control file says: where recovery starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    /// Page size of the data file.
    pub page_size: u32,
    /// Segment size.
    pub segment: u64,
    /// The last completed checkpoint's record ([`NO_LSN`]: none yet).
    pub checkpoint: Lsn,
    /// Redo starts here.
    pub redo: Lsn,
    /// Reading starts here (≤ `redo`: the first record of a transaction that
    /// was open at the checkpoint, whose undo may be needed).
    pub scan_start: Lsn,
    /// Transaction ids below this may be in the log.
    pub next_txn: u64,
}

impl Control {
    fn encode(&self) -> [u8; CONTROL_LEN] {
        let mut b = [0u8; CONTROL_LEN];
        b[..8].copy_from_slice(CONTROL_MAGIC);
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        b[12..16].copy_from_slice(&self.page_size.to_le_bytes());
        for (i, v) in [
            self.segment,
            self.checkpoint,
            self.redo,
            self.scan_start,
            self.next_txn,
        ]
        .iter()
        .enumerate()
        {
            b[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        let crc = crc32fast::hash(&b[..CONTROL_LEN - 4]);
        b[CONTROL_LEN - 4..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Control> {
        if b.len() != CONTROL_LEN || &b[..8] != CONTROL_MAGIC {
            return None;
        }
        let crc = u32::from_le_bytes(b[CONTROL_LEN - 4..].try_into().ok()?);
        if crc32fast::hash(&b[..CONTROL_LEN - 4]) != crc {
            return None;
        }
        let u =
            |i: usize| u64::from_le_bytes(b[16 + 8 * i..24 + 8 * i].try_into().unwrap_or([0; 8]));
        Some(Control {
            page_size: u32::from_le_bytes(b[12..16].try_into().ok()?),
            segment: u(0),
            checkpoint: u(1),
            redo: u(2),
            scan_start: u(3),
            next_txn: u(4),
        })
    }
}

/// Reads `<dir>/control`: `Ok(None)` if there is none.
pub fn read_control(dir: &Path) -> Result<Option<Control>, String> {
    let path = dir.join(CONTROL);
    match std::fs::read(&path) {
        Ok(b) => Control::decode(&b)
            .map(Some)
            .ok_or_else(|| format!("{} is damaged", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes `<dir>/control` atomically (a new file renamed over the old one,
/// both synced).
pub fn write_control(dir: &Path, c: &Control) -> Result<(), String> {
    let tmp = dir.join("control.tmp");
    let err = |e: std::io::Error| format!("cannot write {}: {e}", tmp.display());
    let f = File::create(&tmp).map_err(err)?;
    f.write_all_at(&c.encode(), 0).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, dir.join(CONTROL)).map_err(err)?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", dir.display()))
}

fn segment_path(dir: &Path, seg: u64) -> PathBuf {
    dir.join(format!("{seg:016x}.seg"))
}

/// Segment numbers present in `dir`, ascending.
pub fn segments(dir: &Path) -> Result<Vec<u64>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut v: Vec<u64> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name();
            let s = n.to_str()?.strip_suffix(".seg")?;
            u64::from_str_radix(s, 16).ok()
        })
        .collect();
    v.sort_unstable();
    Ok(v)
}

/// The append side, under one lock.
#[derive(Debug)]
struct LogBuf {
    /// Bytes from `start` to `next`, not yet handed to the flusher.
    data: Vec<u8>,
    /// A drained buffer kept for reuse.
    spare: Vec<u8>,
    start: Lsn,
    next: Lsn,
    /// The current checkpoint's redo point: a page whose LSN is ≤ this gets a
    /// full image with its next change.
    redo: Lsn,
}

#[derive(Debug)]
struct Sync {
    want: Lsn,
    flushed: Lsn,
    error: Option<String>,
    stop: bool,
}

/// Counters.
#[derive(Debug, Default)]
pub struct WalCounters {
    /// Records appended.
    pub records: AtomicU64,
    /// Commit records appended.
    pub commits: AtomicU64,
    /// Full-page images written.
    pub images: AtomicU64,
    /// Bytes appended (padding included).
    pub bytes: AtomicU64,
    /// `fdatasync` calls of the flusher.
    pub syncs: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    seg: u64,
    buf: Mutex<LogBuf>,
    sync: Mutex<Sync>,
    work: Condvar,
    done: Condvar,
    durable_tx: tokio::sync::watch::Sender<Lsn>,
    /// The flusher's open segment (only the flusher and `reset_end` use it).
    file: Mutex<Option<(u64, File)>>,
    counters: WalCounters,
}

/// The log; see the module documentation.
#[derive(Debug)]
pub struct Wal {
    s: Arc<Shared>,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Wal {
    /// Opens the log in `dir` (created if missing) with `segment`-byte
    /// segments; appends will go at `end` (found by recovery), redo point
    /// `redo`. Starts the flusher thread.
    pub fn open(dir: &Path, segment: u64, end: Lsn, redo: Lsn) -> Result<Wal, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let (durable_tx, _) = tokio::sync::watch::channel(end);
        let s = Arc::new(Shared {
            dir: dir.to_path_buf(),
            seg: segment,
            buf: Mutex::new(LogBuf {
                data: Vec::new(),
                spare: Vec::new(),
                start: end,
                next: end,
                redo,
            }),
            sync: Mutex::new(Sync {
                want: end,
                flushed: end,
                error: None,
                stop: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            durable_tx,
            file: Mutex::new(None),
            counters: WalCounters::default(),
        });
        s.reset_end(end)?;
        let s2 = s.clone();
        let t = std::thread::Builder::new()
            .name("rustydb-wal".into())
            .spawn(move || s2.flusher())
            .map_err(|e| format!("cannot start the log flusher: {e}"))?;
        Ok(Wal {
            s,
            flusher: Mutex::new(Some(t)),
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.s.dir
    }

    /// Segment size.
    pub fn segment_size(&self) -> u64 {
        self.s.seg
    }

    /// Counters.
    pub fn counters(&self) -> &WalCounters {
        &self.s.counters
    }

    /// Where the next record goes.
    pub fn next_lsn(&self) -> Lsn {
        lock(&self.s.buf).next
    }

    /// The durable end of the log.
    pub fn flushed(&self) -> Lsn {
        lock(&self.s.sync).flushed
    }

    /// The error that stopped the log, if any.
    pub fn failed(&self) -> Option<String> {
        lock(&self.s.sync).error.clone()
    }

    /// The current checkpoint's redo point.
    pub fn redo_point(&self) -> Lsn {
        lock(&self.s.buf).redo
    }

    /// Starts a checkpoint: pages changed from now on get a full image with
    /// their first change. Returns the redo point (the next record's LSN).
    pub fn begin_checkpoint(&self) -> Lsn {
        let mut b = lock(&self.s.buf);
        b.redo = b.next;
        b.next
    }

    /// Appends a change of page `page` whose payload went from `before` to
    /// `after` (`runs`: where they differ; `page_lsn`: the page's LSN before
    /// the change, which decides whether a full image is logged). Returns the
    /// record's (start, end).
    #[allow(clippy::too_many_arguments)]
    pub fn append_page(
        &self,
        txn: u64,
        prev: Lsn,
        page: PageId,
        undo_next: Lsn,
        page_lsn: Lsn,
        before: &[u8],
        after: &[u8],
        runs: &[Run],
    ) -> Result<(Lsn, Lsn), String> {
        let body = 8 + 8 + 1 + 4 + 4;
        let undo: usize = runs
            .iter()
            .map(|r| 9 + if r.was_zero { 0 } else { r.len as usize })
            .sum();
        let delta: usize = runs.iter().map(|r| 8 + r.len as usize).sum();
        let image = after.len().saturating_sub(record::PAGE_LSN);
        let mut b = self.lock_for_append()?;
        let full = page_lsn <= b.redo || page_lsn == NO_LSN;
        let len = HEADER + body + undo + if full { image } else { delta };
        let lsn = self.s.reserve(&mut b, len)?;
        let redo = if full {
            RedoSrc::Image(after)
        } else {
            RedoSrc::Runs(runs, after)
        };
        let n = record::encode_page(
            &mut b.data,
            lsn,
            txn,
            prev,
            page,
            undo_next,
            redo,
            (runs, before),
        );
        debug_assert_eq!(n, len);
        b.next = lsn + n as u64;
        let c = &self.s.counters;
        c.records.fetch_add(1, Ordering::Relaxed);
        c.images.fetch_add(u64::from(full), Ordering::Relaxed);
        Ok(self.after_append(b, lsn))
    }

    /// Appends a commit or abort record. Returns its (start, end).
    pub fn append_mark(&self, kind: u8, txn: u64, prev: Lsn) -> Result<(Lsn, Lsn), String> {
        let mut b = self.lock_for_append()?;
        let lsn = self.s.reserve(&mut b, HEADER)?;
        let n = record::encode_mark(&mut b.data, lsn, kind, txn, prev);
        b.next = lsn + n as u64;
        self.s.counters.records.fetch_add(1, Ordering::Relaxed);
        if kind == record::kind::COMMIT {
            self.s.counters.commits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(self.after_append(b, lsn))
    }

    /// Appends a checkpoint record. Returns its (start, end).
    pub fn append_checkpoint(&self, redo: Lsn, scan_start: Lsn) -> Result<(Lsn, Lsn), String> {
        let mut b = self.lock_for_append()?;
        let lsn = self.s.reserve(&mut b, HEADER + 16)?;
        let n = record::encode_checkpoint(&mut b.data, lsn, redo, scan_start);
        b.next = lsn + n as u64;
        self.s.counters.records.fetch_add(1, Ordering::Relaxed);
        Ok(self.after_append(b, lsn))
    }

    fn lock_for_append(&self) -> Result<MutexGuard<'_, LogBuf>, String> {
        if let Some(e) = self.failed() {
            return Err(format!("the write-ahead log failed earlier: {e}"));
        }
        let b = lock(&self.s.buf);
        if b.data.len() < HARD_CAP {
            return Ok(b);
        }
        // Backpressure: wait for the flusher to take the buffer.
        let next = b.next;
        drop(b);
        self.flush_to(next)?;
        Ok(lock(&self.s.buf))
    }

    fn after_append(&self, b: MutexGuard<'_, LogBuf>, lsn: Lsn) -> (Lsn, Lsn) {
        let (next, big) = (b.next, b.data.len() >= EAGER_FLUSH);
        drop(b);
        if big {
            self.s.request(next);
        }
        (lsn, next)
    }

    /// Makes the log durable up to `lsn`, waiting for the flusher.
    pub fn flush_to(&self, lsn: Lsn) -> Result<(), String> {
        let next = self.next_lsn();
        if lsn > next {
            return Err(format!(
                "asked to make the log durable to {lsn}, beyond its end {next} (a page newer than the log?)"
            ));
        }
        let mut s = lock(&self.s.sync);
        if s.flushed >= lsn {
            return Ok(());
        }
        if s.want < lsn {
            s.want = lsn;
            self.s.work.notify_one();
        }
        while s.flushed < lsn {
            if let Some(e) = &s.error {
                return Err(e.clone());
            }
            s = self.s.done.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        Ok(())
    }

    /// Asks the flusher to make the log durable up to `lsn`, without waiting.
    pub fn request_flush(&self, lsn: Lsn) {
        self.s.request(lsn);
    }

    /// [`flush_to`](Self::flush_to) for async code: waits without holding a thread.
    pub async fn durable(&self, lsn: Lsn) -> Result<(), String> {
        let mut rx = self.s.durable_tx.subscribe();
        if *rx.borrow() >= lsn {
            return Ok(());
        }
        self.s.request(lsn);
        let r = rx.wait_for(|&f| f >= lsn).await;
        match (self.failed(), r) {
            (Some(e), _) => Err(e),
            (None, Ok(_)) => Ok(()),
            (None, Err(_)) => Err("the write-ahead log is closed".into()),
        }
    }

    /// Deletes the segments wholly before `lsn`.
    pub fn remove_before(&self, lsn: Lsn) -> Result<usize, String> {
        let keep = lsn / self.s.seg;
        let mut n = 0;
        for seg in segments(&self.s.dir)? {
            if seg >= keep {
                break;
            }
            let p = segment_path(&self.s.dir, seg);
            std::fs::remove_file(&p).map_err(|e| format!("cannot remove {}: {e}", p.display()))?;
            n += 1;
        }
        Ok(n)
    }

    /// Bytes of log from `lsn` to the end.
    pub fn bytes_since(&self, lsn: Lsn) -> u64 {
        self.next_lsn().saturating_sub(lsn)
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        {
            let mut s = lock(&self.s.sync);
            s.stop = true;
            self.s.work.notify_one();
        }
        if let Some(t) = lock(&self.flusher).take() {
            let _ = t.join();
        }
    }
}

impl Shared {
    /// Where a record of `len` bytes goes: pads to the next segment when it
    /// would cross one.
    fn reserve(&self, b: &mut LogBuf, len: usize) -> Result<Lsn, String> {
        if len as u64 > self.seg {
            return Err(format!(
                "a log record of {len} bytes exceeds the segment size {}",
                self.seg
            ));
        }
        let off = b.next % self.seg;
        let mut pad = 0;
        if off + len as u64 > self.seg {
            pad = (self.seg - off) as usize;
            b.data.resize(b.data.len() + pad, 0);
            b.next += pad as u64;
        }
        self.counters
            .bytes
            .fetch_add((len + pad) as u64, Ordering::Relaxed);
        Ok(b.next)
    }

    fn request(&self, lsn: Lsn) {
        let mut s = lock(&self.sync);
        if s.want < lsn {
            s.want = lsn;
            self.work.notify_one();
        }
    }

    fn flusher(&self) {
        loop {
            {
                let mut s = lock(&self.sync);
                while s.want <= s.flushed && !s.stop {
                    s = self.work.wait(s).unwrap_or_else(|e| e.into_inner());
                }
                if s.error.is_some() {
                    return;
                }
                if s.stop && s.want <= s.flushed {
                    // Write what is left (a clean close loses nothing).
                    drop(s);
                    let _ = self.flush_once();
                    return;
                }
            }
            let _ = self.flush_once();
        }
    }

    /// Takes the buffer, writes it, syncs; publishes the new durable end.
    fn flush_once(&self) -> Result<(), String> {
        let (mut data, start, end) = {
            let mut b = lock(&self.buf);
            let spare = std::mem::take(&mut b.spare);
            let data = std::mem::replace(&mut b.data, spare);
            let start = b.start;
            b.start = b.next;
            (data, start, b.next)
        };
        if data.is_empty() {
            return Ok(());
        }
        let r = self.write_synced(start, &data);
        data.clear();
        {
            let mut b = lock(&self.buf);
            if b.spare.capacity() < data.capacity() {
                b.spare = data;
            }
        }
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        let mut s = lock(&self.sync);
        match &r {
            Ok(()) => s.flushed = end,
            Err(e) => s.error = Some(e.clone()),
        }
        self.done.notify_all();
        drop(s);
        self.durable_tx
            .send_replace(if r.is_ok() { end } else { NO_LSN });
        r
    }

    /// Writes `data` at `start`, segment by segment, syncing each.
    fn write_synced(&self, start: Lsn, data: &[u8]) -> Result<(), String> {
        let mut pos = start;
        let mut rest = data;
        let mut f = lock(&self.file);
        while !rest.is_empty() {
            let seg = pos / self.seg;
            let off = pos % self.seg;
            let n = rest.len().min((self.seg - off) as usize);
            if f.as_ref().is_none_or(|(s, _)| *s != seg) {
                let p = segment_path(&self.dir, seg);
                let created = !p.exists();
                let file = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .read(true)
                    .write(true)
                    .open(&p)
                    .map_err(|e| format!("cannot open {}: {e}", p.display()))?;
                if created {
                    sync_dir(&self.dir)?;
                }
                *f = Some((seg, file));
            }
            let Some((_, file)) = f.as_ref() else {
                break;
            };
            file.write_all_at(&rest[..n], off)
                .and_then(|()| file.sync_data())
                .map_err(|e| format!("cannot write the log segment {seg:016x}: {e}"))?;
            pos += n as u64;
            rest = &rest[n..];
        }
        Ok(())
    }

    /// Cuts the log at `end`: the segment holding it is truncated there and
    /// later segments are deleted (they hold nothing recovery accepted).
    fn reset_end(&self, end: Lsn) -> Result<(), String> {
        let seg = end / self.seg;
        for s in segments(&self.dir)? {
            let p = segment_path(&self.dir, s);
            if s > seg || (s == seg && end.is_multiple_of(self.seg)) {
                std::fs::remove_file(&p)
                    .map_err(|e| format!("cannot remove {}: {e}", p.display()))?;
            } else if s == seg {
                let f = OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map_err(|e| format!("cannot open {}: {e}", p.display()))?;
                f.set_len(end % self.seg)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| format!("cannot truncate {}: {e}", p.display()))?;
            }
        }
        sync_dir(&self.dir)
    }
}

/// Reads the log forward from a position, segment by segment, stopping at
/// the first position that does not hold an intact record. Working memory
/// (one segment) comes from the allocator `A` (recovery passes its context).
pub struct LogReader<A: allocator_api2::alloc::Allocator> {
    dir: PathBuf,
    seg: u64,
    buf: allocator_api2::vec::Vec<u8, A>,
    loaded: Option<u64>,
    pos: Lsn,
    end: Lsn,
}

impl<A: allocator_api2::alloc::Allocator> LogReader<A> {
    /// A reader of the log in `dir` from `from`.
    pub fn new(dir: &Path, segment: u64, from: Lsn, alloc: A) -> Self {
        Self {
            dir: dir.to_path_buf(),
            seg: segment,
            buf: allocator_api2::vec::Vec::new_in(alloc),
            loaded: None,
            pos: from,
            end: from,
        }
    }

    /// The end of the last intact record read (where the log ends once
    /// [`next`](Self::next) returned `None`).
    pub fn end(&self) -> Lsn {
        self.end
    }

    fn load(&mut self, seg: u64) -> Result<bool, String> {
        if self.loaded == Some(seg) {
            return Ok(true);
        }
        let p = segment_path(&self.dir, seg);
        let f = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(format!("cannot open {}: {e}", p.display())),
        };
        let len = f
            .metadata()
            .map_err(|e| format!("cannot stat {}: {e}", p.display()))?
            .len()
            .min(self.seg) as usize;
        self.buf.clear();
        self.buf.resize(len, 0);
        f.read_exact_at(&mut self.buf, 0)
            .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        self.loaded = Some(seg);
        Ok(true)
    }

    /// The next intact record, or `None` at the end of the log.
    pub fn next(&mut self) -> Result<Option<record::Record<'_>>, String> {
        loop {
            let seg = self.pos / self.seg;
            let off = (self.pos % self.seg) as usize;
            if !self.load(seg)? {
                return Ok(None);
            }
            let b = self.buf.get(off..).unwrap_or_default();
            match record::claimed_len(b) {
                // Padding to the next segment (zeros can only be padding: see
                // the module documentation).
                Some(0) => {
                    self.pos = (seg + 1) * self.seg;
                    continue;
                }
                None if off > 0 && (self.seg as usize - off) < HEADER => {
                    self.pos = (seg + 1) * self.seg;
                    continue;
                }
                _ => {}
            }
            let pos = self.pos;
            let Some(len) = record::decode(b, pos).map(|r| r.len) else {
                return Ok(None);
            };
            self.pos += len as u64;
            self.end = self.pos;
            let b = &self.buf[off..];
            return Ok(record::decode(b, pos));
        }
    }
}

/// Reads the one record at `lsn` (for undo).
pub fn read_record(dir: &Path, segment: u64, lsn: Lsn) -> Result<Vec<u8>, String> {
    let p = segment_path(dir, lsn / segment);
    let f = File::open(&p).map_err(|e| format!("cannot open {}: {e}", p.display()))?;
    let off = lsn % segment;
    let mut h = [0u8; HEADER];
    f.read_exact_at(&mut h, off)
        .map_err(|e| format!("cannot read the record at {lsn}: {e}"))?;
    let len = record::claimed_len(&h).unwrap_or(0);
    if len < HEADER {
        return Err(format!("no record at {lsn}"));
    }
    let mut b = vec![0u8; len];
    f.read_exact_at(&mut b, off)
        .map_err(|e| format!("cannot read the record at {lsn}: {e}"))?;
    record::decode(&b, lsn).ok_or_else(|| format!("the record at {lsn} is damaged"))?;
    Ok(b)
}
