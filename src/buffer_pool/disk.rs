//! Where pages live when they are not in a frame: the [`DiskManager`] trait,
//! a file backend ([`FileDisk`], `pread`/`pwrite`, `O_DIRECT` optional) and an
//! in-memory backend ([`MemDisk`]).
//!
//! A disk stores page images of exactly `page_size()` bytes; it knows nothing
//! of checksums (the pool seals and verifies every image, see `format.rs`).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, Result};
use crate::sync::{AtomicBool, AtomicU64, Mutex, Ordering, RwLock, lock};

use super::PageId;

/// Storage for pages. Implementations must be safe to call from several
/// threads at once (the pool reads and writes different pages concurrently)
/// and must never panic on bad input: an id out of range or a buffer of the
/// wrong length is an `Err`.
pub trait DiskManager: Send + Sync + core::fmt::Debug {
    /// Bytes per page.
    fn page_size(&self) -> usize;
    /// Pages allocated so far: ids `0..num_pages()` may exist.
    fn num_pages(&self) -> u64;
    /// Reads page `id` into `buf` (`page_size()` bytes). A page allocated but
    /// never written reads as zeros. `Err(PageNotFound)` if `id` was never
    /// allocated.
    fn read_page(&self, id: PageId, buf: &mut [u8]) -> Result<()>;
    /// Writes `buf` (`page_size()` bytes) as page `id` (`id < num_pages()`).
    fn write_page(&self, id: PageId, buf: &[u8]) -> Result<()>;
    /// Allocates a page id (reusing a deallocated one when it can).
    fn allocate_page(&self) -> Result<PageId>;
    /// Gives `id` back for reuse (the pool has written its tombstone first).
    fn deallocate_page(&self, id: PageId) -> Result<()>;
    /// Makes every completed write durable (`fdatasync` for files).
    fn sync(&self) -> Result<()>;
}

fn check_len(op: &'static str, page: PageId, len: usize, want: usize) -> Result<()> {
    if len == want {
        Ok(())
    } else {
        Err(Error::Io {
            op,
            page,
            errno: libc::EINVAL,
        })
    }
}

fn io_err(op: &'static str, page: PageId, e: &std::io::Error) -> Error {
    Error::Io {
        op,
        page,
        errno: e.raw_os_error().unwrap_or(libc::EIO),
    }
}

// ---------------------------------------------------------------------------
// MemDisk

#[derive(Debug)]
enum MemPage {
    /// Allocated, never written: reads as zeros.
    New,
    Data(Box<[u8]>),
}

#[derive(Debug, Default)]
struct MemPages {
    pages: Vec<MemPage>,
    free: Vec<PageId>,
}

/// Pages in memory: for tests, benchmarks and temporary pools. Pages that were
/// allocated but never written take no memory.
#[derive(Debug)]
pub struct MemDisk {
    page_size: usize,
    pages: RwLock<MemPages>,
    reads: AtomicU64,
    writes: AtomicU64,
    syncs: AtomicU64,
    fail_writes: AtomicBool,
}

impl MemDisk {
    /// An empty in-memory disk with pages of `page_size` bytes.
    pub fn new(page_size: usize) -> Self {
        Self::with_pages(page_size, 0)
    }

    /// An in-memory disk whose pages `0..pages` already exist (as new, zero
    /// pages that take no memory until written).
    pub fn with_pages(page_size: usize, pages: u64) -> Self {
        let n = usize::try_from(pages).unwrap_or(usize::MAX);
        let mut v = Vec::new();
        v.resize_with(n, || MemPage::New);
        Self {
            page_size,
            pages: RwLock::new(MemPages {
                pages: v,
                free: Vec::new(),
            }),
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            fail_writes: AtomicBool::new(false),
        }
    }

    /// The stored image of page `id` (header included), if it was written.
    pub fn image(&self, id: PageId) -> Option<Vec<u8>> {
        let g = self.pages.read().unwrap_or_else(|e| e.into_inner());
        match g.pages.get(usize::try_from(id).ok()?)? {
            MemPage::Data(d) => Some(d.to_vec()),
            MemPage::New => None,
        }
    }

    /// Replaces the stored image of page `id` (for corruption tests).
    pub fn set_image(&self, id: PageId, image: &[u8]) -> Result<()> {
        self.store(id, image)
    }

    /// Page reads served so far.
    pub fn reads(&self) -> u64 {
        // Relaxed: a counter.
        self.reads.load(Ordering::Relaxed)
    }

    /// Page writes served so far.
    pub fn writes(&self) -> u64 {
        // Relaxed: a counter.
        self.writes.load(Ordering::Relaxed)
    }

    /// `sync` calls so far.
    pub fn syncs(&self) -> u64 {
        // Relaxed: a counter.
        self.syncs.load(Ordering::Relaxed)
    }

    /// Makes every later write fail with `EIO` (fault injection) until
    /// called again with `false`.
    pub fn fail_writes(&self, fail: bool) {
        // Relaxed: a test switch.
        self.fail_writes.store(fail, Ordering::Relaxed);
    }

    fn store(&self, id: PageId, buf: &[u8]) -> Result<()> {
        check_len("write", id, buf.len(), self.page_size)?;
        let mut g = self.pages.write().unwrap_or_else(|e| e.into_inner());
        let slot = usize::try_from(id)
            .ok()
            .and_then(|i| g.pages.get_mut(i))
            .ok_or(Error::PageNotFound { page: id })?;
        match slot {
            MemPage::Data(d) => d.copy_from_slice(buf),
            MemPage::New => *slot = MemPage::Data(buf.into()),
        }
        Ok(())
    }
}

impl DiskManager for MemDisk {
    fn page_size(&self) -> usize {
        self.page_size
    }
    fn num_pages(&self) -> u64 {
        let g = self.pages.read().unwrap_or_else(|e| e.into_inner());
        g.pages.len() as u64
    }
    fn read_page(&self, id: PageId, buf: &mut [u8]) -> Result<()> {
        check_len("read", id, buf.len(), self.page_size)?;
        let g = self.pages.read().unwrap_or_else(|e| e.into_inner());
        match usize::try_from(id).ok().and_then(|i| g.pages.get(i)) {
            None => return Err(Error::PageNotFound { page: id }),
            Some(MemPage::New) => buf.fill(0),
            Some(MemPage::Data(d)) => buf.copy_from_slice(d),
        }
        // Relaxed: a counter.
        self.reads.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn write_page(&self, id: PageId, buf: &[u8]) -> Result<()> {
        // Relaxed: a test switch.
        if self.fail_writes.load(Ordering::Relaxed) {
            return Err(Error::Io {
                op: "write",
                page: id,
                errno: libc::EIO,
            });
        }
        self.store(id, buf)?;
        // Relaxed: a counter.
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn allocate_page(&self) -> Result<PageId> {
        let mut g = self.pages.write().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = g.free.pop() {
            if let Some(p) = usize::try_from(id).ok().and_then(|i| g.pages.get_mut(i)) {
                *p = MemPage::New;
            }
            return Ok(id);
        }
        g.pages.push(MemPage::New);
        Ok(g.pages.len() as u64 - 1)
    }
    fn deallocate_page(&self, id: PageId) -> Result<()> {
        let mut g = self.pages.write().unwrap_or_else(|e| e.into_inner());
        if id >= g.pages.len() as u64 {
            return Err(Error::PageNotFound { page: id });
        }
        if !g.free.contains(&id) {
            g.free.push(id);
        }
        Ok(())
    }
    fn sync(&self) -> Result<()> {
        // Relaxed: a counter.
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// FileDisk

const SUPER_MAGIC: &[u8; 8] = b"RUSTYDBF";
const FORMAT_VERSION: u32 = 1;

/// Options for [`FileDisk`].
#[derive(Debug, Clone)]
pub struct FileDiskOptions {
    page_size: usize,
    direct: bool,
    create: bool,
}

impl Default for FileDiskOptions {
    fn default() -> Self {
        Self {
            page_size: 4096,
            direct: false,
            create: true,
        }
    }
}

impl FileDiskOptions {
    /// Page size (default 4096); must match the file's when it exists.
    pub fn page_size(mut self, bytes: usize) -> Self {
        self.page_size = bytes;
        self
    }
    /// Open with `O_DIRECT` (bypass the page cache; default off). Buffers the
    /// pool passes are page aligned, as `O_DIRECT` requires.
    pub fn direct(mut self, on: bool) -> Self {
        self.direct = on;
        self
    }
    /// Create the file when it does not exist (default on).
    pub fn create(mut self, on: bool) -> Self {
        self.create = on;
        self
    }
    /// Opens (or creates) the file at `path`.
    pub fn open(self, path: impl AsRef<Path>) -> Result<FileDisk> {
        FileDisk::open_with(path.as_ref(), self)
    }
}

#[derive(Debug)]
struct Alloc {
    pages: u64,
    free: Vec<PageId>,
}

/// Pages in a file: page `id` at offset `(id + 1) × page_size` (offset 0
/// holds a superblock with the magic and the page size). I/O is
/// `pread`/`pwrite`; `sync` is `fdatasync`. `close` releases the file; every
/// later call returns `Err(Io { errno: EBADF })`.
#[derive(Debug)]
pub struct FileDisk {
    page_size: usize,
    direct: bool,
    file: RwLock<Option<File>>,
    alloc: Mutex<Alloc>,
}

impl FileDisk {
    /// Opens or creates the file at `path` with pages of `page_size` bytes.
    pub fn open(path: impl AsRef<Path>, page_size: usize) -> Result<Self> {
        FileDiskOptions::default().page_size(page_size).open(path)
    }

    /// Options: page size, `O_DIRECT`, create.
    pub fn options() -> FileDiskOptions {
        FileDiskOptions::default()
    }

    fn open_with(path: &Path, o: FileDiskOptions) -> Result<Self> {
        if !o.page_size.is_power_of_two() || !(512..=1 << 20).contains(&o.page_size) {
            return Err(Error::InvalidConfig {
                what: "page size must be a power of two between 512 B and 1 MiB",
            });
        }
        let mut oo = OpenOptions::new();
        oo.read(true).write(true).create(o.create);
        if o.direct {
            oo.custom_flags(libc::O_DIRECT);
        }
        let file = oo.open(path).map_err(|e| io_err("open", u64::MAX, &e))?;
        let len = file
            .metadata()
            .map_err(|e| io_err("stat", u64::MAX, &e))?
            .len();
        let ps = o.page_size as u64;
        let mut sb = super::scratch::AlignedBuf::new(o.page_size);
        if len == 0 {
            let b = sb.as_mut();
            b[..8].copy_from_slice(SUPER_MAGIC);
            b[8..12].copy_from_slice(&(o.page_size as u32).to_le_bytes());
            b[12..16].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
            let h = super::format::hash64(&b[..16], 0);
            b[16..24].copy_from_slice(&h.to_le_bytes());
            file.write_all_at(b, 0)
                .map_err(|e| io_err("write", u64::MAX, &e))?;
            file.sync_all().map_err(|e| io_err("sync", u64::MAX, &e))?;
        } else {
            // The superblock is read with the first 4 KiB or page, whichever is
            // smaller than the file, so a wrong page size is reported as such.
            let b = sb.as_mut();
            let want = (len.min(ps)) as usize;
            read_full(&file, &mut b[..want], 0).map_err(|e| io_err("read", u64::MAX, &e))?;
            let h = super::format::hash64(&b[..16], 0);
            if want < 24 || &b[..8] != SUPER_MAGIC || b[16..24] != h.to_le_bytes() {
                return Err(Error::Corrupt { page: u64::MAX });
            }
            let mut w = [0u8; 4];
            w.copy_from_slice(&b[8..12]);
            if u32::from_le_bytes(w) as usize != o.page_size {
                return Err(Error::InvalidConfig {
                    what: "page size differs from the file's",
                });
            }
        }
        let pages = len.div_ceil(ps).saturating_sub(1);
        Ok(Self {
            page_size: o.page_size,
            direct: o.direct,
            file: RwLock::new(Some(file)),
            alloc: Mutex::new(Alloc {
                pages,
                free: Vec::new(),
            }),
        })
    }

    /// Whether the file was opened with `O_DIRECT`.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Closes the file; later calls fail with `EBADF`.
    pub fn close(&self) {
        let mut g = self.file.write().unwrap_or_else(|e| e.into_inner());
        *g = None;
    }

    fn offset(&self, id: PageId) -> Option<u64> {
        id.checked_add(1)?.checked_mul(self.page_size as u64)
    }

    fn with_file<R>(
        &self,
        op: &'static str,
        id: PageId,
        f: impl FnOnce(&File) -> std::io::Result<R>,
    ) -> Result<R> {
        let g = self.file.read().unwrap_or_else(|e| e.into_inner());
        let file = g.as_ref().ok_or(Error::Io {
            op,
            page: id,
            errno: libc::EBADF,
        })?;
        f(file).map_err(|e| io_err(op, id, &e))
    }
}

/// Reads until `buf` is full or end of file; returns the bytes read.
fn read_full(file: &File, buf: &mut [u8], mut off: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], off) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                off += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

impl DiskManager for FileDisk {
    fn page_size(&self) -> usize {
        self.page_size
    }
    fn num_pages(&self) -> u64 {
        lock(&self.alloc).pages
    }
    fn read_page(&self, id: PageId, buf: &mut [u8]) -> Result<()> {
        check_len("read", id, buf.len(), self.page_size)?;
        if id >= self.num_pages() {
            return Err(Error::PageNotFound { page: id });
        }
        let off = self.offset(id).ok_or(Error::PageNotFound { page: id })?;
        let n = self.with_file("read", id, |f| read_full(f, buf, off))?;
        // Past the end of the file: allocated, never written.
        buf[n..].fill(0);
        Ok(())
    }
    fn write_page(&self, id: PageId, buf: &[u8]) -> Result<()> {
        check_len("write", id, buf.len(), self.page_size)?;
        if id >= self.num_pages() {
            return Err(Error::PageNotFound { page: id });
        }
        let off = self.offset(id).ok_or(Error::PageNotFound { page: id })?;
        self.with_file("write", id, |f| f.write_all_at(buf, off))
    }
    fn allocate_page(&self) -> Result<PageId> {
        let mut a = lock(&self.alloc);
        if let Some(id) = a.free.pop() {
            return Ok(id);
        }
        if a.pages >= super::page_table::MAX_PAGE_ID {
            return Err(Error::InvalidConfig {
                what: "page id space exhausted",
            });
        }
        a.pages += 1;
        Ok(a.pages - 1)
    }
    fn deallocate_page(&self, id: PageId) -> Result<()> {
        let mut a = lock(&self.alloc);
        if id >= a.pages {
            return Err(Error::PageNotFound { page: id });
        }
        if !a.free.contains(&id) {
            a.free.push(id);
        }
        Ok(())
    }
    fn sync(&self) -> Result<()> {
        self.with_file("sync", u64::MAX, |f| f.sync_data())
    }
}
