//! Test hooks for the crash tests: `RUSTYDB_FAILPOINTS=<name>[=<n>],…` in the
//! environment makes the process kill itself with SIGKILL the `n`-th time
//! (default 1st) it reaches the named point — no destructor, no flush, as in
//! a power cut of the process. Unset (always, outside tests), a point costs
//! one load of an initialised `OnceLock`.
//!
//! Points: `commit-before-log` (the transaction's pages and catalog are
//! logged, its commit record is not), `commit-after-log` (the commit record
//! is buffered, not durable), `commit-after-flush` (durable, not yet
//! answered), and `torn-page-write` (see [`TornDisk`]: a write of a page that
//! existed when the data file was opened stops halfway).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use rustydb_memory::buffer_pool::{DiskManager, PageId};

/// The environment variable.
pub const ENV: &str = "RUSTYDB_FAILPOINTS";

struct Point {
    name: String,
    at: u64,
    seen: AtomicU64,
}

fn points() -> &'static [Point] {
    static P: OnceLock<Vec<Point>> = OnceLock::new();
    P.get_or_init(|| {
        std::env::var(ENV)
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                let (name, at) = s.split_once('=').unwrap_or((s, "1"));
                Point {
                    name: name.trim().to_string(),
                    at: at.trim().parse().unwrap_or(1).max(1),
                    seen: AtomicU64::new(0),
                }
            })
            .collect()
    })
}

/// Whether point `name` is armed at all.
pub fn armed(name: &str) -> bool {
    points().iter().any(|p| p.name == name)
}

/// Counts a pass through `name`; true when this is the pass to fail on.
fn due(name: &str) -> bool {
    points()
        .iter()
        .any(|p| p.name == name && p.seen.fetch_add(1, Ordering::Relaxed) + 1 == p.at)
}

/// Kills the process at point `name` when it is due.
pub fn hit(name: &str) {
    if due(name) {
        crash();
    }
}

/// SIGKILL to this process.
pub fn crash() -> ! {
    eprintln!("rustydb_server: failpoint reached, killing the process");
    // SAFETY: kill has no memory preconditions; SIGKILL cannot be caught.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    std::process::abort()
}

/// A disk that tears a write: at the `n`-th write (point
/// `torn-page-write=n`) of a page that existed when it was opened, it writes
/// the first half of the page and kills the process.
#[derive(Debug)]
pub struct TornDisk<D> {
    inner: D,
    existing: u64,
}

impl<D: DiskManager> TornDisk<D> {
    /// Wraps `inner`.
    pub fn new(inner: D) -> Self {
        let existing = inner.num_pages();
        Self { inner, existing }
    }
}

impl<D: DiskManager> DiskManager for TornDisk<D> {
    fn page_size(&self) -> usize {
        self.inner.page_size()
    }
    fn num_pages(&self) -> u64 {
        self.inner.num_pages()
    }
    fn read_page(&self, id: PageId, buf: &mut [u8]) -> rustydb_memory::Result<()> {
        self.inner.read_page(id, buf)
    }
    fn write_page(&self, id: PageId, buf: &[u8]) -> rustydb_memory::Result<()> {
        if id < self.existing && due("torn-page-write") {
            let mut half = vec![0u8; buf.len()];
            self.inner.read_page(id, &mut half)?;
            half[..buf.len() / 2].copy_from_slice(&buf[..buf.len() / 2]);
            self.inner.write_page(id, &half)?;
            crash();
        }
        self.inner.write_page(id, buf)
    }
    fn allocate_page(&self) -> rustydb_memory::Result<PageId> {
        self.inner.allocate_page()
    }
    fn deallocate_page(&self, id: PageId) -> rustydb_memory::Result<()> {
        self.inner.deallocate_page(id)
    }
    fn sync(&self) -> rustydb_memory::Result<()> {
        self.inner.sync()
    }
}
