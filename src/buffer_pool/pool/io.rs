//! Disk I/O on frames the caller owns (`IO` set) or has pinned: loads with
//! verification, write-back through the before-write hook, flushing.

use crossbeam_utils::Backoff;

use crate::error::{Error, Result};
use crate::sync::Ordering;

use super::{BeforeWrite, Shared, bump};
use crate::buffer_pool::format::{self, PAGE_HEADER};
use crate::buffer_pool::frame::{BUSY, DIRTY, NO_PAGE, PIN_MASK, Pin};
use crate::buffer_pool::scratch::with_scratch;
use crate::buffer_pool::{PageId, words};

impl Shared {
    /// Reads `id` from disk into frame `f` (owned: IO set) and verifies it.
    /// A frame optimistic readers may be reading (`OPTIMISTIC`) is loaded
    /// through a scratch image and atomic word stores; any other directly.
    pub(super) fn read_owned(&self, f: u32, id: PageId) -> Result<()> {
        let r = if self.frames[f as usize].writes_atomic() {
            with_scratch(self.page_size, |buf| {
                let r = self.disk.read_page(id, buf).and_then(|()| {
                    bump(&self.c.disk_reads);
                    format::verify(buf, id)
                });
                if r.is_ok() {
                    // SAFETY: frame `f` is owned (IO): we are its only writer.
                    // The header is never read optimistically, so it is copied
                    // plainly; the payload (8-aligned, a multiple of 8 bytes)
                    // goes through atomic words for the optimistic readers.
                    unsafe {
                        core::ptr::copy_nonoverlapping(
                            buf.as_ptr(),
                            self.frame_ptr(f),
                            PAGE_HEADER,
                        );
                        words::publish(self.frame_ptr(f).add(PAGE_HEADER), &buf[PAGE_HEADER..]);
                    }
                }
                r
            })
        } else {
            // SAFETY: frame `f` is inside the mapping and owned by this thread
            // (IO set) and no optimistic reader has marked it (`writes_atomic`
            // is false after we took IO): nobody else reads or writes these
            // bytes, so this is the only reference to them.
            let buf = unsafe { core::slice::from_raw_parts_mut(self.frame_ptr(f), self.page_size) };
            self.disk.read_page(id, buf).and_then(|()| {
                bump(&self.c.disk_reads);
                format::verify(buf, id)
            })
        };
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                if matches!(e, Error::Corrupt { .. }) {
                    bump(&self.c.corrupt);
                }
                Err(e)
            }
        }
    }

    /// Runs the write-back hook, if any, on the payload about to be written.
    #[inline(always)]
    pub(super) fn before_write(&self, id: PageId, page: &[u8]) -> Result<()> {
        match &self.before_write {
            Some(BeforeWrite(hook)) => hook(id, &page[PAGE_HEADER..]),
            None => Ok(()),
        }
    }

    /// Seals frame `f` (owned: IO set) as page `id` and writes it. A frame
    /// optimistic readers may be reading is sealed in a scratch image, as
    /// `write_pinned` does, so its bytes are only read.
    pub(super) fn write_owned(&self, f: u32, id: PageId) -> Result<()> {
        if self.frames[f as usize].writes_atomic() {
            return self.write_pinned(f, id);
        }
        // SAFETY: as in `read_owned`'s plain branch.
        let buf = unsafe { core::slice::from_raw_parts_mut(self.frame_ptr(f), self.page_size) };
        self.before_write(id, buf)?;
        format::seal(buf, id);
        self.disk.write_page(id, buf)?;
        bump(&self.c.disk_writes);
        Ok(())
    }

    /// Writes page `id` from frame `f`, which the caller has pinned (shared)
    /// or owns (IO): the image is sealed in a scratch buffer, so concurrent
    /// readers and flushers of the same frame only ever read its bytes.
    pub(super) fn write_pinned(&self, f: u32, id: PageId) -> Result<()> {
        // SAFETY: the caller holds a shared pin on `f` or owns it, so no writer
        // or evictor changes these bytes while the shared slice lives (other
        // threads at most read them).
        let src = unsafe { core::slice::from_raw_parts(self.frame_ptr(f), self.page_size) };
        self.before_write(id, src)?;
        with_scratch(self.page_size, |buf| {
            buf[PAGE_HEADER..].copy_from_slice(&src[PAGE_HEADER..]);
            format::seal(buf, id);
            self.disk.write_page(id, buf)
        })?;
        bump(&self.c.disk_writes);
        Ok(())
    }

    /// Flushes page `id` if it is resident and dirty. With `wait`, waits for
    /// a writer (up to the latch timeout); without, skips busy pages.
    /// Returns whether a write was made.
    pub(crate) fn flush_page(&self, id: PageId, wait: bool) -> Result<bool> {
        let mut since = None;
        let backoff = Backoff::new();
        loop {
            let Some(f) = self.table.get(id) else {
                return Ok(false);
            };
            let fm = &self.frames[f as usize];
            match fm.pin_shared(id) {
                Pin::Done(old) => {
                    let r = if old & DIRTY != 0 {
                        self.write_pinned(f, id).map(|()| {
                            // Still pinned: no writer ran since the copy.
                            fm.clear_bits(DIRTY);
                            true
                        })
                    } else {
                        Ok(false)
                    };
                    fm.unpin_shared();
                    if matches!(r, Ok(true)) {
                        bump(&self.c.flushed);
                    }
                    return r;
                }
                Pin::Busy if wait => self.backoff(id, &mut since, &backoff)?,
                Pin::Busy => return Ok(false),
                // The frame changed hands: look the page up again.
                Pin::Moved => self.backoff(id, &mut since, &backoff)?,
                Pin::Overflow => return Ok(false),
            }
        }
    }

    /// Flushes every dirty page and syncs the disk; returns pages written.
    pub(crate) fn flush_all(&self) -> Result<usize> {
        let mut n = 0;
        for f in 0..self.nframes() {
            let fm = &self.frames[f];
            if fm.load() & DIRTY == 0 {
                continue;
            }
            // Relaxed: a hint; `flush_page` re-checks under a pin.
            let page = fm.page.load(Ordering::Relaxed);
            if page == NO_PAGE {
                continue;
            }
            if self.flush_page(page, true)? {
                n += 1;
            }
        }
        self.disk.sync()?;
        Ok(n)
    }

    /// One round of the background flusher: dirty pages of the cooling stage
    /// first (they are next to go), then up to `budget` others, skipping any
    /// page that is busy.
    pub(crate) fn flush_round(&self, cursor: &mut usize, budget: usize) -> usize {
        let cold: Vec<u32> = {
            let g = self.lock_inner();
            g.cooling.iter().map(|&(f, _)| f).collect()
        };
        let mut written = 0;
        let try_frame = |f: usize, written: &mut usize| {
            let fm = &self.frames[f];
            let s = fm.load();
            if s & DIRTY == 0 || s & (BUSY | PIN_MASK) != 0 {
                return;
            }
            // Relaxed: a hint; `flush_page` re-checks under a pin.
            let page = fm.page.load(Ordering::Relaxed);
            if page != NO_PAGE && matches!(self.flush_page(page, false), Ok(true)) {
                *written += 1;
                bump(&self.c.flusher_writes);
            }
        };
        for f in cold {
            try_frame(f as usize, &mut written);
        }
        let n = self.nframes();
        for _ in 0..n {
            if written >= budget {
                break;
            }
            *cursor = (*cursor + 1) % n.max(1);
            try_frame(*cursor, &mut written);
        }
        written
    }
}
